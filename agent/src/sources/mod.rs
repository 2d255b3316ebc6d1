//! Sources: each turns one part of the outside world into events and hands them, with its
//! position where it has one, to the [`Emitter`](crate::pipeline::Emitter). A source knows
//! nothing of the buffer's engine, batches or HTTP; adding one is a new module here and a
//! config section.

pub mod exec;
pub mod files;
pub mod host;
pub mod journald;
pub mod lines;
pub mod metric;
pub mod ping;
pub mod process;
pub mod snmp;
pub mod ssh;
pub mod stdin;
pub mod syslog;

use std::borrow::Cow;
use std::collections::BTreeMap;

use logops_common::event::Labels;

/// The agent's labels merged with a source's own (the source's win).
pub fn merge_labels(
    agent: &BTreeMap<String, String>,
    own: &BTreeMap<String, String>,
) -> Labels<'static> {
    agent
        .iter()
        .chain(own.iter())
        .map(|(k, v)| (Cow::Owned(k.clone()), Cow::Owned(v.clone())))
        .collect()
}

/// `host:port`, `host`, `[v6]:port` or a bare IPv6 address → (host, port), `default_port`
/// when the address has none.
pub fn split_host_port(address: &str, default_port: u16) -> (String, u16) {
    if let Ok(sa) = address.parse::<std::net::SocketAddr>() {
        return (sa.ip().to_string(), sa.port());
    }
    if let Ok(ip) = address.parse::<std::net::IpAddr>() {
        return (ip.to_string(), default_port);
    }
    match address.rsplit_once(':') {
        Some((h, p)) => match p.parse() {
            Ok(port) => (h.trim_matches(['[', ']']).to_owned(), port),
            Err(_) => (address.to_owned(), default_port),
        },
        None => (address.to_owned(), default_port),
    }
}

/// For `logops-agent test snmp|ssh DEVICE`: the settings of the `[[<table>]]` entry named
/// `name` (`found`, from the section's `find`), or an error saying why it cannot be used or
/// which devices there are.
pub fn device_to_test<T>(
    table: &str,
    name: &str,
    found: Option<Result<T, Vec<(String, String)>>>,
    known: impl IntoIterator<Item = impl AsRef<str>>,
) -> anyhow::Result<T> {
    match found {
        Some(Ok(s)) => Ok(s),
        Some(Err(problems)) => anyhow::bail!(
            "device `{name}` is not usable: {}",
            problems
                .iter()
                .map(|(k, m)| format!("{k}: {m}"))
                .collect::<Vec<_>>()
                .join("; ")
        ),
        None => {
            let known: Vec<String> = known.into_iter().map(|k| k.as_ref().to_owned()).collect();
            anyhow::bail!(
                "no [[{table}]] is named `{name}` (devices: {})",
                known.join(", ")
            )
        }
    }
}

/// The sources of one configuration, running.
#[derive(Default)]
pub struct RunningSources {
    threads: Vec<std::thread::JoinHandle<()>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl RunningSources {
    /// Waits for every source to stop (after their shutdown was triggered).
    pub async fn join(self) {
        for t in self.tasks {
            let _ = t.await;
        }
        for t in self.threads {
            let _ = tokio::task::spawn_blocking(move || t.join()).await;
        }
    }

    /// Number of running sources.
    pub fn len(&self) -> usize {
        self.threads.len() + self.tasks.len()
    }

    /// Whether no source runs.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Sources that did not all start: the error, and those that did (to stop and join, so
/// that none outlives its configuration).
pub struct StartFailure {
    /// What failed (a listener that cannot bind, a thread that cannot be spawned).
    pub error: std::io::Error,
    /// The sources started before it.
    pub started: RunningSources,
}

/// Starts every source the configuration enables, and the stdin source when the agent
/// reads its standard input (`run --stdin`). The syslog listeners come first: binding their
/// addresses is what can fail.
pub fn start_all(
    config: &crate::config::Config,
    emitter: &crate::pipeline::Emitter,
    shutdown: &crate::pipeline::Shutdown,
    stdin: Option<&std::sync::Arc<stdin::StdinFeed>>,
) -> Result<RunningSources, StartFailure> {
    let mut running = RunningSources::default();
    match start_into(&mut running, config, emitter, shutdown, stdin) {
        Ok(()) => Ok(running),
        Err(error) => Err(StartFailure {
            error,
            started: running,
        }),
    }
}

fn start_into(
    running: &mut RunningSources,
    config: &crate::config::Config,
    emitter: &crate::pipeline::Emitter,
    shutdown: &crate::pipeline::Shutdown,
    stdin: Option<&std::sync::Arc<stdin::StdinFeed>>,
) -> std::io::Result<()> {
    if let Some(cfg) = &config.syslog {
        let started = syslog::start(cfg, emitter, shutdown)?;
        running.threads.extend(started.threads);
        running.tasks.extend(started.tasks);
    }
    if let Some(feed) = stdin {
        let (feed, emitter, stop) = (feed.clone(), emitter.clone(), shutdown.clone());
        running.threads.push(
            std::thread::Builder::new()
                .name("stdin".into())
                .spawn(move || feed.run(emitter, stop))?,
        );
    }
    for e in &config.exec {
        running.tasks.push(tokio::spawn(exec::run(
            e.clone(),
            emitter.clone(),
            shutdown.clone(),
        )));
    }
    if let Some(j) = &config.journald {
        running.tasks.push(tokio::spawn(journald::run(
            j.clone(),
            emitter.clone(),
            shutdown.clone(),
        )));
    }
    // `[kubernetes]` is a files group with a decoder: same identity, rotation and
    // checkpoint rules, one tailer.
    let mut file_groups = config.files.clone();
    file_groups.extend(
        config
            .kubernetes
            .as_ref()
            .map(crate::config::KubernetesConfig::files_group),
    );
    if !file_groups.is_empty() {
        let source = files::FilesSource::new(file_groups, emitter.clone());
        let stop = shutdown.clone();
        running.threads.push(
            std::thread::Builder::new()
                .name("files".into())
                .spawn(move || source.run(stop))?,
        );
    }
    if let Some(host) = &config.host {
        running.tasks.push(tokio::spawn(host::run(
            host.clone(),
            emitter.clone(),
            shutdown.clone(),
        )));
    }
    if !config.ping.is_empty() {
        running.tasks.push(tokio::spawn(ping::run(
            config.ping.clone(),
            emitter.clone(),
            shutdown.clone(),
        )));
    }
    if let Some(snmp) = &config.snmp {
        running.tasks.push(tokio::spawn(snmp::run(
            snmp.clone(),
            emitter.clone(),
            shutdown.clone(),
        )));
    }
    if let Some(ssh) = &config.ssh {
        running.tasks.push(tokio::spawn(ssh::run(
            ssh.clone(),
            emitter.clone(),
            shutdown.clone(),
        )));
    }
    Ok(())
}
