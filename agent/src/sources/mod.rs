//! Sources: each turns one part of the outside world into events and hands them, with its
//! position where it has one, to the [`Emitter`](crate::pipeline::Emitter). A source knows
//! nothing of the buffer's engine, batches or HTTP; adding one is a new module here and a
//! config section.

pub mod files;
pub mod host;
pub mod metric;
pub mod ping;
pub mod snmp;
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

/// Starts every source the configuration enables.
pub fn start_all(
    config: &crate::config::Config,
    emitter: &crate::pipeline::Emitter,
    shutdown: &crate::pipeline::Shutdown,
) -> std::io::Result<RunningSources> {
    let mut running = RunningSources::default();
    if !config.files.is_empty() {
        let source = files::FilesSource::new(config.files.clone(), emitter.clone());
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
    if let Some(cfg) = &config.syslog {
        let started = syslog::start(cfg, emitter, shutdown)?;
        running.threads.extend(started.threads);
        running.tasks.extend(started.tasks);
    }
    Ok(running)
}
