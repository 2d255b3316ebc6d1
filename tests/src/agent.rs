//! [`AgentHarness`]: the real `logops-agent` binary with a generated configuration, its
//! `data_dir` and log file in a temporary directory, shipping to an [`IngestHarness`] (or
//! any batch URL given as a [`ShipTarget`]).
//!
//! The directory holds `agent.toml`, `data/` (the `data_dir`: sled buffer, checkpoints),
//! `agent.log` (stderr and stdout of every start, appended, each start preceded by a marker
//! line), the API key file and TLS files. `[self_metrics]` listens on a free loopback port
//! that stays the same across restarts, so the harness (and `logops-agent buffer ...`) can
//! ask a running agent.
//!
//! Like the ingest harness, the process gets SIGKILL when the harness is dropped and when
//! the thread that started it exits (`PR_SET_PDEATHSIG`): start, restart and keep a harness
//! on one long-lived thread (the test's main thread).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::fs::OpenOptions;
use std::io::Write as _;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use anyhow::{anyhow, Context};
use logops_common::batch::{BATCH_PATH, NEXT_HEADER};
use tempfile::TempDir;

use crate::client::Client;
use crate::harness::{free_port, run_binary, strip_ansi, toml_string, IngestHarness};
use crate::pki::CertAndKey;
use crate::process::{self, send_signal};
use crate::{metric_sum, parse_prometheus, Sample};

/// Environment variable that overrides where the `logops-agent` binary is.
pub const AGENT_BIN_ENV: &str = "LOGOPS_AGENT_BIN";
/// How long [`AgentHarness`] waits for a start to be up ("logops-agent running" logged).
pub const AGENT_START_TIMEOUT: Duration = Duration::from_secs(30);
/// How long [`AgentHarness::sigterm_and_wait`] waits by default for the process to exit.
pub const AGENT_STOP_TIMEOUT: Duration = Duration::from_secs(60);
/// What the agent logs once its sources run (see `agent/src/app.rs`).
pub const RUNNING_MARKER: &str = "logops-agent running";

/// The `logops-agent` binary of the profile the tests were built with
/// (`target/<profile>/logops-agent`), or `$LOGOPS_AGENT_BIN`.
///
/// `cargo test -p logops-e2e` does not build other packages' binaries: run
/// `cargo build --workspace --bins` first. A binary older than a source file of the agent
/// or of `logops-common` is refused (`LOGOPS_E2E_ALLOW_STALE=1` skips that check).
pub fn agent_binary() -> anyhow::Result<PathBuf> {
    if let Some(p) = std::env::var_os(AGENT_BIN_ENV) {
        return require_agent(PathBuf::from(p), &format!("it comes from ${AGENT_BIN_ENV}"));
    }
    let path = require_agent(
        process::profile_dir().join("logops-agent"),
        "run `cargo build --workspace --bins` first (cargo test does not build other packages' binaries)",
    )?;
    check_fresh(&path)?;
    Ok(path)
}

/// The release `logops-agent` (`target/release/logops-agent`), or `$LOGOPS_AGENT_BIN`.
pub fn release_agent_binary() -> anyhow::Result<PathBuf> {
    if let Some(p) = std::env::var_os(AGENT_BIN_ENV) {
        return require_agent(PathBuf::from(p), &format!("it comes from ${AGENT_BIN_ENV}"));
    }
    require_agent(
        process::target_dir().join("release").join("logops-agent"),
        "build it with `cargo build --release -p logops-agent -p logops-ingest -p logops-e2e`",
    )
}

fn require_agent(path: PathBuf, hint: &str) -> anyhow::Result<PathBuf> {
    match std::fs::metadata(&path) {
        Ok(m) if m.is_file() => Ok(path),
        _ => anyhow::bail!(
            "the logops-agent binary {} is missing: {hint}",
            path.display()
        ),
    }
}

/// Fails if `binary` is older than a source file of the agent or the common crate.
fn check_fresh(binary: &Path) -> anyhow::Result<()> {
    if std::env::var_os("LOGOPS_E2E_ALLOW_STALE").is_some() {
        return Ok(());
    }
    let Ok(built) = std::fs::metadata(binary).and_then(|m| m.modified()) else {
        return Ok(());
    };
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    for dir in ["agent/src", "common/src"] {
        for (path, _) in process::list_files(&root.join(dir)) {
            if std::fs::metadata(&path)
                .and_then(|m| m.modified())
                .is_ok_and(|t| t > built)
            {
                anyhow::bail!(
                    "{} is older than {}: run `cargo build --workspace --bins` (or set LOGOPS_E2E_ALLOW_STALE=1)",
                    binary.display(),
                    path.display()
                );
            }
        }
    }
    Ok(())
}

/// Where the agent ships: the ingest's batch URL, the key, and TLS material.
#[derive(Debug, Clone)]
pub struct ShipTarget {
    /// `http(s)://127.0.0.1:PORT/v1/batch`.
    pub url: String,
    /// The API key (written to a file: `ship.api_key_file`).
    pub api_key: String,
    /// `ship.ca_file` (PEM), for an https ingest with a private CA.
    pub ca_pem: Option<String>,
    /// `ship.client_cert` + `ship.client_key`, for mTLS.
    pub client: Option<CertAndKey>,
}

impl ShipTarget {
    /// The batch URL of `ingest` with the write key of `tenant`; for an https ingest,
    /// `ca_file` is the CA the harness's own client trusts. No client certificate: see
    /// [`ShipTarget::client_cert`].
    pub fn of(ingest: &IngestHarness, tenant: &str) -> ShipTarget {
        ShipTarget {
            url: format!("{}{BATCH_PATH}", ingest.url()),
            api_key: ingest.tenant(tenant).key.clone(),
            ca_pem: ingest.client_tls().map(|t| t.ca_pem),
            client: None,
        }
    }

    /// Trusts this CA (`ship.ca_file`).
    pub fn ca(mut self, pem: &str) -> Self {
        self.ca_pem = Some(pem.to_owned());
        self
    }

    /// Presents this client certificate (`ship.client_cert`, `ship.client_key`).
    pub fn client_cert(mut self, c: &CertAndKey) -> Self {
        self.client = Some(c.clone());
        self
    }
}

/// One `[[files]]` group.
#[derive(Debug, Clone, Default)]
pub struct FilesGroup {
    /// `paths`: absolute glob patterns.
    pub paths: Vec<String>,
    /// `exclude`.
    pub exclude: Vec<String>,
    /// Other keys of the group: key → raw TOML value (`start_at`, `rotate_wait`, ...).
    pub settings: BTreeMap<String, String>,
}

impl FilesGroup {
    /// A group tailing these patterns, `start_at = "beginning"`, `rescan_interval = "1s"`.
    pub fn new<P: AsRef<Path>>(paths: &[P]) -> Self {
        FilesGroup {
            paths: paths
                .iter()
                .map(|p| p.as_ref().to_string_lossy().into_owned())
                .collect(),
            exclude: Vec::new(),
            settings: BTreeMap::new(),
        }
        .set("start_at", "beginning")
        .set("rescan_interval", "1s")
    }

    /// Adds an `exclude` pattern.
    pub fn exclude(mut self, pattern: &str) -> Self {
        self.exclude.push(pattern.to_owned());
        self
    }

    /// Sets a string key, e.g. `.set("rotate_wait", "1s")`.
    pub fn set(self, key: &str, value: &str) -> Self {
        self.set_raw(key, &toml_string(value))
    }

    /// Sets a key to raw TOML.
    pub fn set_raw(mut self, key: &str, toml: &str) -> Self {
        self.settings.insert(key.to_owned(), toml.to_owned());
        self
    }
}

/// What to run: identity, sections, environment.
#[derive(Debug, Clone)]
pub struct AgentOptions {
    /// `[agent] id` (also `host` of the events).
    pub id: String,
    /// `[agent] labels`.
    pub labels: BTreeMap<String, String>,
    /// `[ship]` settings beyond url and key: key → raw TOML. Defaults: `backoff_min =
    /// "100ms"`, `backoff_max = "1s"`, `batch_max_age = "200ms"`.
    pub ship: BTreeMap<String, String>,
    /// `[buffer]` settings: key → raw TOML.
    pub buffer: BTreeMap<String, String>,
    /// `[[files]]` groups.
    pub files: Vec<FilesGroup>,
    /// `[host]` (with these raw settings) when `Some`.
    pub host: Option<BTreeMap<String, String>>,
    /// `[self_metrics] enabled` (on a free loopback port).
    pub self_metrics: bool,
    /// Extra environment variables for the process.
    pub env: Vec<(String, String)>,
    /// The binary to run (default: [`agent_binary`]).
    pub binary: Option<PathBuf>,
    /// Raw TOML appended to the configuration (a source's sections: `[snmp]`, ...).
    pub extra: Vec<String>,
    /// Arguments added after `run --config FILE` (e.g. `--stdin`).
    pub run_args: Vec<String>,
    /// Give the process a pipe as stdin ([`AgentHarness::take_stdin`]) instead of
    /// /dev/null.
    pub stdin_pipe: bool,
}

impl Default for AgentOptions {
    fn default() -> Self {
        AgentOptions::new("e2e-agent")
    }
}

impl AgentOptions {
    /// Agent `id`, short retry delays and batch age, no sources.
    pub fn new(id: &str) -> Self {
        let ship = [
            ("backoff_min", "\"100ms\""),
            ("backoff_max", "\"1s\""),
            ("batch_max_age", "\"200ms\""),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        AgentOptions {
            id: id.to_owned(),
            labels: BTreeMap::new(),
            ship,
            buffer: BTreeMap::new(),
            files: Vec::new(),
            host: None,
            self_metrics: true,
            env: Vec::new(),
            binary: None,
            extra: Vec::new(),
            run_args: Vec::new(),
            stdin_pipe: false,
        }
    }

    /// The idle scenario of the footprint target: host metrics every 10 s, one quiet file
    /// (rescanned every 10 s), default shipping. Used by agent-bench and symbol-order.
    pub fn idle(id: &str, quiet_file: &Path) -> Self {
        let mut opts = AgentOptions::new(id)
            .files(FilesGroup::new(&[quiet_file]).set("rescan_interval", "10s"))
            .host("10s");
        opts.ship.clear();
        opts
    }

    /// Runs `logops-agent run --config FILE --stdin` with a pipe as its stdin.
    pub fn stdin(mut self) -> Self {
        self.run_args.push("--stdin".into());
        self.stdin_pipe = true;
        self
    }

    /// Appends raw TOML (whole sections) to the configuration.
    pub fn extra(mut self, toml: &str) -> Self {
        self.extra.push(toml.to_owned());
        self
    }

    /// Adds a `[[files]]` group.
    pub fn files(mut self, g: FilesGroup) -> Self {
        self.files.push(g);
        self
    }

    /// Sets a `[ship]` string setting.
    pub fn ship(self, key: &str, value: &str) -> Self {
        self.ship_raw(key, &toml_string(value))
    }

    /// Sets a `[ship]` setting to raw TOML.
    pub fn ship_raw(mut self, key: &str, toml: &str) -> Self {
        self.ship.insert(key.to_owned(), toml.to_owned());
        self
    }

    /// Sets a `[buffer]` string setting.
    pub fn buffer(mut self, key: &str, value: &str) -> Self {
        self.buffer.insert(key.to_owned(), toml_string(value));
        self
    }

    /// Enables `[host]` with `interval`.
    pub fn host(mut self, interval: &str) -> Self {
        self.host = Some(BTreeMap::from([(
            "interval".to_owned(),
            toml_string(interval),
        )]));
        self
    }

    /// Adds an environment variable.
    pub fn env(mut self, k: &str, v: &str) -> Self {
        self.env.push((k.to_owned(), v.to_owned()));
        self
    }

    /// Runs this binary instead of the default one.
    pub fn binary(mut self, path: PathBuf) -> Self {
        self.binary = Some(path);
        self
    }
}

/// Resource figures of a live process, from `/proc`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ProcStats {
    /// `VmRSS`, bytes.
    pub rss: u64,
    /// `VmHWM` (peak RSS), bytes.
    pub hwm: u64,
    /// `utime + stime`, seconds.
    pub cpu: f64,
}

impl ProcStats {
    /// Reads `/proc/<pid>/status` and `/proc/<pid>/stat`; `None` if the process is gone.
    pub fn of(pid: u32) -> Option<ProcStats> {
        Some(ProcStats {
            rss: process::vm_rss_bytes(pid)?,
            hwm: process::vm_hwm_bytes(pid)?,
            cpu: process::cpu_seconds(pid)?,
        })
    }
}

/// The real `logops-agent` running in a temporary directory. See the module docs.
pub struct AgentHarness {
    dir: Option<TempDir>,
    root: PathBuf,
    opts: AgentOptions,
    target: ShipTarget,
    binary: PathBuf,
    metrics_port: u16,
    child: Option<Child>,
    starts: u32,
    log_mark: u64,
    http: reqwest::blocking::Client,
}

impl AgentHarness {
    /// Starts the agent; panics with the reason (and log tail) if it does not come up.
    pub fn start(target: ShipTarget, opts: AgentOptions) -> AgentHarness {
        AgentHarness::try_start(target, opts)
            .unwrap_or_else(|e| panic!("starting logops-agent: {e:#}"))
    }

    /// Writes the configuration and key files, spawns `logops-agent run` and waits (up to
    /// [`AGENT_START_TIMEOUT`]) until it logs that it runs.
    pub fn try_start(target: ShipTarget, opts: AgentOptions) -> anyhow::Result<AgentHarness> {
        let mut h = AgentHarness::prepare(target, opts)?;
        h.start_again_inner()?;
        Ok(h)
    }

    /// Like [`AgentHarness::try_start`] without starting the process: the configuration is
    /// written (for `check-config` and `buffer` commands, or to start later with
    /// [`AgentHarness::start_again`]).
    pub fn prepare(target: ShipTarget, opts: AgentOptions) -> anyhow::Result<AgentHarness> {
        let binary = match &opts.binary {
            Some(b) => require_agent(b.clone(), "it was given explicitly")?,
            None => agent_binary()?,
        };
        let dir = tempfile::Builder::new()
            .prefix("logops-e2e-agent-")
            .tempdir()
            .context("creating a temporary directory")?;
        let root = dir.path().to_path_buf();
        let h = AgentHarness {
            dir: Some(dir),
            root,
            opts,
            target,
            binary,
            metrics_port: free_port(),
            child: None,
            starts: 0,
            log_mark: 0,
            http: reqwest::blocking::Client::builder()
                .timeout(Duration::from_secs(10))
                .no_proxy()
                .build()
                .context("building an HTTP client")?,
        };
        h.write_files()?;
        Ok(h)
    }

    fn write_files(&self) -> anyhow::Result<()> {
        std::fs::write(
            self.root.join("api_key"),
            format!("{}\n", self.target.api_key),
        )?;
        if let Some(ca) = &self.target.ca_pem {
            std::fs::write(self.root.join("ingest-ca.crt"), ca)?;
        }
        if let Some(c) = &self.target.client {
            std::fs::write(self.root.join("agent.crt"), &c.cert_pem)?;
            std::fs::write(self.root.join("agent.key"), &c.key_pem)?;
        }
        std::fs::write(self.config_path(), self.config_text())?;
        Ok(())
    }

    fn path_value(&self, name: &str) -> String {
        toml_string(&self.root.join(name).to_string_lossy())
    }

    /// The configuration file text for the current options.
    pub fn config_text(&self) -> String {
        let o = &self.opts;
        let mut s = String::new();
        let _ = writeln!(s, "# written by logops-e2e");
        let _ = writeln!(s, "[agent]");
        let _ = writeln!(s, "id = {}", toml_string(&o.id));
        let _ = writeln!(
            s,
            "data_dir = {}",
            toml_string(&self.data_dir().to_string_lossy())
        );
        if !o.labels.is_empty() {
            let kv: Vec<String> = o
                .labels
                .iter()
                .map(|(k, v)| format!("{} = {}", toml_string(k), toml_string(v)))
                .collect();
            let _ = writeln!(s, "labels = {{ {} }}", kv.join(", "));
        }
        let _ = writeln!(s, "\n[ship]");
        let _ = writeln!(s, "url = {}", toml_string(&self.target.url));
        let _ = writeln!(s, "api_key_file = {}", self.path_value("api_key"));
        if self.target.ca_pem.is_some() {
            let _ = writeln!(s, "ca_file = {}", self.path_value("ingest-ca.crt"));
        }
        if self.target.client.is_some() {
            let _ = writeln!(s, "client_cert = {}", self.path_value("agent.crt"));
            let _ = writeln!(s, "client_key = {}", self.path_value("agent.key"));
        }
        for (k, v) in &o.ship {
            let _ = writeln!(s, "{k} = {v}");
        }
        if !o.buffer.is_empty() {
            let _ = writeln!(s, "\n[buffer]");
            for (k, v) in &o.buffer {
                let _ = writeln!(s, "{k} = {v}");
            }
        }
        for g in &o.files {
            let _ = writeln!(s, "\n[[files]]");
            let list = |v: &[String]| {
                v.iter()
                    .map(|p| toml_string(p))
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            let _ = writeln!(s, "paths = [{}]", list(&g.paths));
            if !g.exclude.is_empty() {
                let _ = writeln!(s, "exclude = [{}]", list(&g.exclude));
            }
            for (k, v) in &g.settings {
                let _ = writeln!(s, "{k} = {v}");
            }
        }
        if let Some(host) = &o.host {
            let _ = writeln!(s, "\n[host]");
            for (k, v) in host {
                let _ = writeln!(s, "{k} = {v}");
            }
        }
        for x in &o.extra {
            let _ = writeln!(s, "\n{x}");
        }
        let _ = writeln!(s, "\n[self_metrics]");
        let _ = writeln!(
            s,
            "listen = {}",
            toml_string(&format!("127.0.0.1:{}", self.metrics_port))
        );
        let _ = writeln!(s, "enabled = {}", o.self_metrics);
        s
    }

    /// Changes the options and rewrites the configuration file; it takes effect at the next
    /// start or [`AgentHarness::sighup`].
    pub fn reconfigure(&mut self, f: impl FnOnce(AgentOptions) -> AgentOptions) {
        self.opts = f(self.opts.clone());
        std::fs::write(self.config_path(), self.config_text()).expect("writing the configuration");
    }

    /// Ships elsewhere or with other credentials: rewrites the key and TLS files and the
    /// configuration; it takes effect at the next start or [`AgentHarness::sighup`].
    pub fn retarget(&mut self, target: ShipTarget) {
        self.target = target;
        self.write_files()
            .expect("writing the key, TLS and configuration files");
    }

    /// Overwrites the configuration file with `text` (e.g. an invalid one); the options are
    /// kept, so [`AgentHarness::reconfigure`] writes a generated file again.
    pub fn write_config_text(&self, text: &str) {
        std::fs::write(self.config_path(), text).expect("writing the configuration");
    }

    /// The current options.
    pub fn options(&self) -> &AgentOptions {
        &self.opts
    }

    fn spawn(&mut self) -> anyhow::Result<()> {
        let mut log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .context("opening the log file")?;
        self.starts += 1;
        writeln!(
            log,
            "----- logops-e2e: start #{} of {} -----",
            self.starts,
            self.binary.display()
        )?;
        self.log_mark = log.metadata().map(|m| m.len()).unwrap_or(0);
        let mut cmd = Command::new(&self.binary);
        cmd.arg("run")
            .arg("--config")
            .arg(self.config_path())
            .args(&self.opts.run_args)
            .stdin(if self.opts.stdin_pipe {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(log.try_clone()?)
            .stderr(log)
            .env("NO_COLOR", "1")
            .env(
                "RUST_LOG",
                std::env::var("LOGOPS_E2E_AGENT_RUST_LOG").unwrap_or_else(|_| "info".into()),
            );
        for (k, v) in &self.opts.env {
            cmd.env(k, v);
        }
        // SAFETY: prctl is async-signal-safe; nothing else runs between fork and exec.
        unsafe {
            cmd.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong);
                Ok(())
            });
        }
        self.child = Some(
            cmd.spawn()
                .with_context(|| format!("spawning {}", self.binary.display()))?,
        );
        Ok(())
    }

    /// Waits until the current start logged [`RUNNING_MARKER`] (and, with self metrics,
    /// until `/metrics` answers). `Ok(false)` when the self-metrics port was taken.
    fn wait_running(&mut self) -> anyhow::Result<bool> {
        let deadline = Instant::now() + AGENT_START_TIMEOUT;
        loop {
            let child = self.child.as_mut().expect("just spawned");
            if let Ok(Some(status)) = child.try_wait() {
                self.child = None;
                return Err(anyhow!(
                    "logops-agent exited with {status} before it ran; its log:\n{}",
                    self.log_since_start()
                ));
            }
            let log = self.log_since_start();
            if log.contains("self_metrics: cannot listen") {
                return Ok(false);
            }
            let metrics_up = !self.opts.self_metrics
                || self
                    .http
                    .get(self.metrics_url())
                    .timeout(Duration::from_secs(2))
                    .send()
                    .is_ok_and(|r| r.status().is_success());
            if log.contains(RUNNING_MARKER) && metrics_up {
                return Ok(true);
            }
            if Instant::now() > deadline {
                self.kill9();
                anyhow::bail!(
                    "gave up after {AGENT_START_TIMEOUT:?} waiting for logops-agent to log {RUNNING_MARKER:?}{}; log:\n{}",
                    if self.opts.self_metrics { " and answer /metrics" } else { "" },
                    self.log_since_start()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn start_again_inner(&mut self) -> anyhow::Result<()> {
        anyhow::ensure!(
            self.child.is_none(),
            "start_again: logops-agent is still running"
        );
        for _ in 0..8 {
            self.spawn()?;
            if self.wait_running()? {
                return Ok(());
            }
            // Another process took the self-metrics port: move to a new one.
            self.kill9();
            self.metrics_port = free_port();
            std::fs::write(self.config_path(), self.config_text())?;
        }
        anyhow::bail!("logops-agent found no free self_metrics port after 8 tries")
    }

    /// Starts the process again after [`AgentHarness::kill9`] or a stop: same configuration
    /// file and `data_dir`. Panics if it does not come up.
    pub fn start_again(&mut self) {
        self.start_again_inner()
            .unwrap_or_else(|e| panic!("restarting logops-agent: {e:#}"));
    }

    /// Stops the process with SIGTERM if it runs (panicking unless it exits 0), then starts
    /// it again with the same `data_dir`.
    pub fn restart(&mut self) {
        if self.is_running() {
            let status = self.sigterm_and_wait();
            assert!(
                status.success(),
                "logops-agent exited with {status} after SIGTERM; log:\n{}",
                self.log_since_start()
            );
        }
        self.start_again();
    }

    /// The write end of the process's stdin (with [`AgentOptions::stdin`]); dropping it
    /// ends the agent's input.
    pub fn take_stdin(&mut self) -> Option<std::process::ChildStdin> {
        self.child.as_mut().and_then(|c| c.stdin.take())
    }

    /// Kills the process with SIGKILL and reaps it. No-op if it is not running.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Sends `signal` to the running process.
    pub fn signal(&self, signal: i32) {
        let pid = self.pid().expect("signal: logops-agent is not running");
        send_signal(pid, signal).expect("sending a signal to logops-agent");
    }

    /// Sends SIGHUP (reload the configuration file).
    pub fn sighup(&self) {
        self.signal(libc::SIGHUP);
    }

    /// Sends SIGTERM (without waiting).
    pub fn sigterm(&self) {
        self.signal(libc::SIGTERM);
    }

    /// Waits (up to `timeout`) for the process to exit and reaps it; on timeout kills it
    /// with SIGKILL and panics.
    pub fn wait_exit(&mut self, timeout: Duration) -> ExitStatus {
        let child = self
            .child
            .as_mut()
            .expect("wait_exit: logops-agent is not running");
        match crate::process::wait_for_exit(child, timeout).expect("waiting for logops-agent") {
            Some(status) => {
                self.child = None;
                status
            }
            None => {
                self.kill9();
                panic!(
                    "logops-agent did not exit within {timeout:?} (killed it); log:\n{}",
                    self.log_since_start()
                );
            }
        }
    }

    /// Sends SIGTERM and waits (up to [`AGENT_STOP_TIMEOUT`]) for the exit status.
    pub fn sigterm_and_wait(&mut self) -> ExitStatus {
        self.sigterm();
        self.wait_exit(AGENT_STOP_TIMEOUT)
    }

    /// Whether the process is running (not exited).
    pub fn is_running(&mut self) -> bool {
        match self.child.as_mut() {
            None => false,
            Some(c) => matches!(c.try_wait(), Ok(None)),
        }
    }

    /// The process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// `/proc` figures of the running process.
    pub fn proc_stats(&self) -> Option<ProcStats> {
        self.pid().and_then(ProcStats::of)
    }

    /// How many times the process was started.
    pub fn starts(&self) -> u32 {
        self.starts
    }

    /// The temporary directory.
    pub fn dir(&self) -> &Path {
        &self.root
    }

    /// The `data_dir`.
    pub fn data_dir(&self) -> PathBuf {
        self.root.join("data")
    }

    /// The sled buffer directory (`data_dir/buffer`).
    pub fn buffer_dir(&self) -> PathBuf {
        self.data_dir().join("buffer")
    }

    /// The configuration file.
    pub fn config_path(&self) -> PathBuf {
        self.root.join("agent.toml")
    }

    /// The log file.
    pub fn log_path(&self) -> PathBuf {
        self.root.join("agent.log")
    }

    /// The binary.
    pub fn binary(&self) -> &Path {
        &self.binary
    }

    /// The whole log (all starts), with ANSI escapes removed.
    pub fn log(&self) -> String {
        strip_ansi(&String::from_utf8_lossy(
            &std::fs::read(self.log_path()).unwrap_or_default(),
        ))
    }

    /// The log of the current (or last) start.
    pub fn log_since_start(&self) -> String {
        let bytes = std::fs::read(self.log_path()).unwrap_or_default();
        let from = (self.log_mark as usize).min(bytes.len());
        strip_ansi(&String::from_utf8_lossy(&bytes[from..]))
    }

    /// The last `n` lines of the log.
    pub fn log_tail(&self, n: usize) -> String {
        let log = self.log();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(n)..].join("\n")
    }

    /// Waits (bounded) until the log of the current start contains `needle`; panics saying
    /// what it waited for, with the log tail.
    pub fn wait_for_log(&self, needle: &str, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        while !self.log_since_start().contains(needle) {
            if Instant::now() > deadline {
                panic!(
                    "gave up after {timeout:?} waiting for the agent to log {needle:?}; log tail:\n{}",
                    self.log_tail(40)
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The self-metrics port.
    pub fn metrics_port(&self) -> u16 {
        self.metrics_port
    }

    /// `http://127.0.0.1:PORT/metrics`.
    pub fn metrics_url(&self) -> String {
        format!("http://127.0.0.1:{}/metrics", self.metrics_port)
    }

    /// The agent's own metrics, parsed.
    pub fn metrics(&self) -> anyhow::Result<Vec<Sample>> {
        let text = self
            .http
            .get(self.metrics_url())
            .send()
            .and_then(|r| r.error_for_status())
            .and_then(|r| r.text())
            .with_context(|| format!("GET {}", self.metrics_url()))?;
        parse_prometheus(&text).map_err(|e| anyhow!("{}: {e}", self.metrics_url()))
    }

    /// The sum of a self-metric's samples with these labels (`None` if absent or the agent
    /// does not answer).
    pub fn metric(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        self.metrics()
            .ok()
            .and_then(|s| metric_sum(&s, name, labels))
    }

    /// Runs `logops-agent <args...> --config <this config>` and returns its output (bounded
    /// to 60 s).
    pub fn run_cli(&self, args: &[&str]) -> std::process::Output {
        let config = self.config_path().to_string_lossy().into_owned();
        let mut all: Vec<&str> = args.to_vec();
        all.extend(["--config", config.as_str()]);
        run_binary(&self.binary, &all)
    }
}

impl Drop for AgentHarness {
    fn drop(&mut self) {
        self.kill9();
        if std::thread::panicking() {
            eprintln!(
                "----- logops-e2e: last lines of {} -----\n{}\n----- end of log -----",
                self.log_path().display(),
                self.log_tail(80)
            );
            if std::env::var_os("LOGOPS_E2E_KEEP").is_some() {
                if let Some(dir) = self.dir.take() {
                    eprintln!("logops-e2e: kept {}", dir.keep().display());
                }
            }
        }
    }
}

/// One stored log event, as much of it as the agent tests look at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredLog {
    /// `host` (the agent id).
    pub host: String,
    /// `source`.
    pub source: String,
    /// `attrs.path`.
    pub path: Option<String>,
    /// `attrs.offset`.
    pub offset: Option<u64>,
    /// `body`.
    pub body: String,
}

impl StoredLog {
    /// Parses a stored NDJSON line; `None` if it is not a log event.
    pub fn parse(line: &str) -> Option<StoredLog> {
        let v: serde_json::Value = serde_json::from_str(line).ok()?;
        let s = |k: &str| v.get(k).and_then(|x| x.as_str()).map(str::to_owned);
        let attrs = v.get("attrs");
        Some(StoredLog {
            host: s("host")?,
            source: s("source")?,
            path: attrs
                .and_then(|a| a.get("path"))
                .and_then(|p| p.as_str())
                .map(str::to_owned),
            offset: attrs.and_then(|a| a.get("offset")).and_then(|o| o.as_u64()),
            body: s("body")?,
        })
    }
}

/// The `body` of a stored log line without a full JSON parse: the text after `"body":"` up
/// to the next unescaped quote, unescaped by serde. `None` if there is none.
pub fn quick_body(line: &str) -> Option<String> {
    const KEY: &str = "\"body\":\"";
    let start = line.find(KEY)? + KEY.len();
    let rest = &line[start..];
    let bytes = rest.as_bytes();
    // Skip escapes two bytes at a time; the first plain quote ends the string.
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' => i += 2,
            b'"' => break,
            _ => i += 1,
        }
    }
    let raw = &rest[..i.min(rest.len())];
    if raw.contains('\\') {
        serde_json::from_str(&format!("\"{raw}\"")).ok()
    } else {
        Some(raw.to_owned())
    }
}

/// Calls `f` on every stored row of `GET /v1/logs` with `params`, page by page (`limit`
/// rows each, following `X-LogOps-Next`), without holding more than one page. Returns the
/// number of rows. Errors on a transport error or a non-200 page.
pub fn for_each_log(
    client: &Client,
    key: &str,
    params: &[(&str, &str)],
    limit: usize,
    mut f: impl FnMut(&str),
) -> anyhow::Result<u64> {
    let limit = limit.to_string();
    let mut cursor: Option<String> = None;
    let mut rows = 0u64;
    loop {
        let mut p: Vec<(&str, &str)> = params.to_vec();
        p.push(("limit", &limit));
        if let Some(c) = &cursor {
            p.push(("cursor", c));
        }
        let r = client
            .try_get(Some(key), "/v1/logs", &p)
            .with_context(|| format!("GET /v1/logs {p:?}"))?;
        anyhow::ensure!(
            r.status == 200,
            "GET /v1/logs {p:?}: {} {}",
            r.status,
            r.body
        );
        for line in r.body.lines().filter(|l| !l.is_empty()) {
            rows += 1;
            f(line);
        }
        match r.header(NEXT_HEADER) {
            Some(next) if cursor.as_deref() != Some(next) => cursor = Some(next.to_owned()),
            Some(next) => anyhow::bail!("X-LogOps-Next did not move: {next}"),
            None => return Ok(rows),
        }
    }
}

/// Every stored log of the tenant `key` can read, parsed (small data sets only).
pub fn stored_logs(client: &Client, key: &str) -> Vec<StoredLog> {
    let mut out = Vec::new();
    for_each_log(client, key, &[], 100_000, |l| {
        out.push(StoredLog::parse(l).unwrap_or_else(|| panic!("not a stored log event: {l}")))
    })
    .unwrap_or_else(|e| panic!("querying the stored logs: {e:#}"));
    out
}

/// Appends `lines` (each followed by a newline) to `path` in one write, creating it.
pub fn append_lines<S: AsRef<str>>(path: &Path, lines: &[S]) {
    let mut text = String::new();
    for l in lines {
        text.push_str(l.as_ref());
        text.push('\n');
    }
    let mut f = OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap_or_else(|e| panic!("opening {}: {e}", path.display()));
    f.write_all(text.as_bytes())
        .unwrap_or_else(|e| panic!("appending to {}: {e}", path.display()));
}

/// Polls the stored logs of the tenant `key` can read (every 100 ms, at most `timeout`)
/// until `done` says they are complete; returns them. Panics saying what it waited for,
/// with how many rows there were.
pub fn wait_logs(
    client: &Client,
    key: &str,
    what: &str,
    timeout: Duration,
    mut done: impl FnMut(&[StoredLog]) -> bool,
) -> Vec<StoredLog> {
    let deadline = Instant::now() + timeout;
    loop {
        let mut logs = Vec::new();
        let ok = for_each_log(client, key, &[], 100_000, |l| {
            logs.extend(StoredLog::parse(l));
        });
        if ok.is_ok() && done(&logs) {
            return logs;
        }
        if Instant::now() > deadline {
            panic!(
                "gave up after {timeout:?} waiting for {what}; last query: {}",
                match ok {
                    Ok(n) => format!("{n} rows"),
                    Err(e) => format!("{e:#}"),
                }
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The bodies of `logs` from `host`, in the ingest's order.
pub fn bodies_of(logs: &[StoredLog], host: &str) -> Vec<String> {
    logs.iter()
        .filter(|l| l.host == host)
        .map(|l| l.body.clone())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quick_body_reads_plain_and_escaped_bodies() {
        let l = r#"{"ts":"x","kind":"log","host":"h","source":"file","attrs":{"path":"/a","offset":3},"body":"f1 00000003 abc"}"#;
        assert_eq!(quick_body(l).as_deref(), Some("f1 00000003 abc"));
        let l = r#"{"body":"a \"q\" \\ b","x":1}"#;
        assert_eq!(quick_body(l).as_deref(), Some("a \"q\" \\ b"));
        let l = r#"{"body":"ends with \\","x":1}"#;
        assert_eq!(quick_body(l).as_deref(), Some("ends with \\"));
        assert_eq!(quick_body(r#"{"kind":"metric"}"#), None);
        let s = StoredLog::parse(
            r#"{"ts":"x","kind":"log","host":"h","source":"file","attrs":{"path":"/a","offset":3},"body":"b"}"#,
        )
        .unwrap();
        assert_eq!(s.path.as_deref(), Some("/a"));
        assert_eq!(s.offset, Some(3));
    }
}
