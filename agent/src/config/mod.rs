//! The agent's configuration: one TOML file (`/etc/logops/agent.toml` by default).
//!
//! `config.example.toml` at the repository root documents every option. Loading reports
//! every error at once, each with file, line, column and key path; unknown keys get a
//! "did you mean" hint (see [`report`]).

mod report;
mod snmp;
mod ssh;
mod stdout;
mod syslog;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use logops_common::units::{ByteSize, HumanDuration};
use serde::Deserialize;

pub use report::{ConfigError, ConfigErrors};
pub use snmp::{
    AuthProtocol, Credentials, DeviceSettings, PrivProtocol, SecurityLevel, SnmpConfig, SnmpDevice,
    SnmpProfile, SnmpVersion, UsmSettings,
};
pub use ssh::{
    CommandSpec, HostKeyPolicy, MetricKind, MetricSpec, SecretSource, SshConfig, SshDevice,
    SshDeviceSettings,
};
pub use stdout::{
    exec_name, ContainerDecoding, ContainerFormat, ExecConfig, JournaldConfig, KubernetesConfig,
    RestartPolicy, KUBERNETES_LABELS,
};
pub use syslog::{SyslogConfig, SyslogTimezone, SyslogTlsConfig};

/// The whole configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// `[agent]`: identity and where state lives.
    #[serde(default)]
    pub agent: AgentConfig,
    /// `[ship]`: where and how batches go.
    pub ship: ShipConfig,
    /// `[buffer]`: the durable buffer.
    #[serde(default)]
    pub buffer: BufferConfig,
    /// `[[files]]`: groups of files to tail.
    #[serde(default)]
    pub files: Vec<FilesConfig>,
    /// `[host]`: host metrics; absent = off.
    pub host: Option<HostConfig>,
    /// `[[ping]]`: groups of hosts pinged (ICMP echo) every `interval`.
    #[serde(default)]
    pub ping: Vec<PingConfig>,
    /// `[snmp]`: SNMP devices to poll (`[snmp.profile.NAME]`, `[[snmp.device]]`); absent = off.
    pub snmp: Option<SnmpConfig>,
    /// `[[exec]]`: commands whose stdout and stderr lines are events.
    #[serde(default)]
    pub exec: Vec<ExecConfig>,
    /// `[journald]`: the systemd journal; absent = off.
    pub journald: Option<JournaldConfig>,
    /// `[kubernetes]`: container logs (`/var/log/pods`); absent = off.
    pub kubernetes: Option<KubernetesConfig>,
    /// `[ssh]`: device CLIs scraped over SSH (`[[ssh.device]]`); absent = off.
    pub ssh: Option<SshConfig>,
    /// `[syslog]`: the syslog receiver (UDP, TCP, TLS, Unix socket); absent = off.
    pub syslog: Option<SyslogConfig>,
    /// `[self_metrics]`: the agent's own Prometheus endpoint.
    #[serde(default)]
    pub self_metrics: SelfMetricsConfig,
}

/// `[agent]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AgentConfig {
    /// The agent id: `host` of its events and the first part of its batch ids. Default: the
    /// hostname.
    pub id: Option<String>,
    /// Where the buffer (events, batches, checkpoints, dead letters) lives.
    pub data_dir: PathBuf,
    /// Labels added to every event.
    pub labels: BTreeMap<String, String>,
}

impl Default for AgentConfig {
    fn default() -> Self {
        AgentConfig {
            id: None,
            data_dir: PathBuf::from("/var/lib/logops"),
            labels: BTreeMap::new(),
        }
    }
}

/// Compression of shipped batches.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    /// zstd (default).
    #[default]
    Zstd,
    /// gzip.
    Gzip,
    /// none.
    None,
}

/// `[ship]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShipConfig {
    /// The ingest's batch URL, e.g. `https://ingest.example.net/v1/batch`.
    pub url: String,
    /// File holding the API key.
    pub api_key_file: Option<PathBuf>,
    /// Environment variable holding the API key.
    pub api_key_env: Option<String>,
    /// Refused: keys never live inline (here only to give a clear error).
    #[serde(default)]
    pub api_key: Option<String>,
    /// Extra CA certificate (PEM) to trust.
    pub ca_file: Option<PathBuf>,
    /// Client certificate (PEM) for mTLS.
    pub client_cert: Option<PathBuf>,
    /// Client key (PEM) for mTLS.
    pub client_key: Option<PathBuf>,
    /// File holding an HMAC secret: batches are signed when set (or `hmac_secret_env`).
    pub hmac_secret_file: Option<PathBuf>,
    /// Environment variable holding an HMAC secret.
    pub hmac_secret_env: Option<String>,
    /// A batch is cut at this many events ...
    #[serde(default = "default_batch_events")]
    pub batch_max_events: usize,
    /// ... or this many (uncompressed) bytes ...
    #[serde(default = "default_batch_bytes")]
    pub batch_max_bytes: ByteSize,
    /// ... or when its oldest event is this old.
    #[serde(default = "default_batch_age")]
    pub batch_max_age: HumanDuration,
    /// Compression of batches.
    #[serde(default)]
    pub compression: Compression,
    /// zstd level.
    #[serde(default = "default_zstd_level")]
    pub zstd_level: i32,
    /// Batches sent at once. 1 (default) keeps the ingest's copy in the agent's order; more
    /// raise throughput on slow links, but a retried batch may then land after a newer one.
    #[serde(default = "default_in_flight")]
    pub max_in_flight: usize,
    /// Timeout of one request.
    #[serde(default = "default_request_timeout")]
    pub timeout: HumanDuration,
    /// First retry delay (doubles with jitter).
    #[serde(default = "default_backoff_min")]
    pub backoff_min: HumanDuration,
    /// Longest retry delay.
    #[serde(default = "default_backoff_max")]
    pub backoff_max: HumanDuration,
    /// On SIGTERM, how long to keep sending what is buffered before exiting.
    #[serde(default = "default_shutdown_timeout")]
    pub shutdown_timeout: HumanDuration,
}

fn default_batch_events() -> usize {
    5_000
}
fn default_batch_bytes() -> ByteSize {
    ByteSize::mib(2)
}
fn default_batch_age() -> HumanDuration {
    HumanDuration::secs(1)
}
fn default_zstd_level() -> i32 {
    1
}
fn default_in_flight() -> usize {
    1
}
fn default_request_timeout() -> HumanDuration {
    HumanDuration::secs(30)
}
fn default_backoff_min() -> HumanDuration {
    HumanDuration::millis(500)
}
fn default_backoff_max() -> HumanDuration {
    HumanDuration::secs(60)
}
fn default_shutdown_timeout() -> HumanDuration {
    HumanDuration::secs(10)
}

/// What to do when the buffer is full.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WhenFull {
    /// Sources wait (files stop advancing); nothing is lost.
    #[default]
    Block,
    /// The oldest unsent events are dropped and counted.
    DropOldest,
}

/// `[buffer]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BufferConfig {
    /// Largest buffer (events + cut batches).
    pub max_size: ByteSize,
    /// `block` or `drop_oldest`.
    pub when_full: WhenFull,
    /// sled's page cache.
    pub cache_size: ByteSize,
    /// How often sled flushes its log to disk; what a power loss can take (see README).
    pub flush_interval: HumanDuration,
}

impl Default for BufferConfig {
    fn default() -> Self {
        BufferConfig {
            max_size: ByteSize::gib(1),
            when_full: WhenFull::Block,
            cache_size: ByteSize::mib(4),
            flush_interval: HumanDuration::millis(500),
        }
    }
}

/// Where to start in a file seen for the first time.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StartAt {
    /// At its end (only new lines).
    #[default]
    End,
    /// At its beginning.
    Beginning,
}

/// `[[files]]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FilesConfig {
    /// Glob patterns of files to tail.
    pub paths: Vec<String>,
    /// Glob patterns (of the file name or the whole path) to leave out.
    #[serde(default)]
    pub exclude: Vec<String>,
    /// For files present when a pattern of this group is first started (a pattern added to
    /// the configuration later applies it to its own files): `end` or `beginning`. Files
    /// that appear later (rotation) are always read from their beginning.
    #[serde(default)]
    pub start_at: StartAt,
    /// Labels added to this group's events.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Lines longer than this are split into flagged pieces.
    #[serde(default = "default_max_line")]
    pub max_line_bytes: ByteSize,
    /// Join continuation lines into one event.
    pub multiline: Option<MultilineConfig>,
    /// How often the globs are re-expanded (notify covers most changes sooner).
    #[serde(default = "default_rescan")]
    pub rescan_interval: HumanDuration,
    /// After a rotation by rename, the old file is read until it has been quiet this long.
    #[serde(default = "default_rotate_wait")]
    pub rotate_wait: HumanDuration,
    /// Set for the `[kubernetes]` group: container log lines are decoded (not a
    /// `[[files]]` option).
    #[serde(skip)]
    pub container: Option<ContainerDecoding>,
}

fn default_max_line() -> ByteSize {
    ByteSize::kib(64)
}
fn default_rescan() -> HumanDuration {
    HumanDuration::secs(10)
}
fn default_rotate_wait() -> HumanDuration {
    HumanDuration::secs(5)
}

/// `[files.multiline]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MultilineConfig {
    /// A line matching this regex starts a new event; others continue the previous one.
    pub start_pattern: String,
    /// An event is emitted when no continuation arrived for this long.
    #[serde(default = "default_multiline_timeout")]
    pub timeout: HumanDuration,
    /// At most this many lines are joined.
    #[serde(default = "default_multiline_lines")]
    pub max_lines: usize,
}

fn default_multiline_timeout() -> HumanDuration {
    HumanDuration::secs(1)
}
fn default_multiline_lines() -> usize {
    500
}

/// `[host]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HostConfig {
    /// Sampling interval.
    pub interval: HumanDuration,
    /// Filesystem types left out (pseudo filesystems).
    pub exclude_fs_types: Vec<String>,
    /// Mount points left out (glob patterns).
    pub exclude_mounts: Vec<String>,
    /// Network interfaces left out (glob patterns).
    pub exclude_interfaces: Vec<String>,
}

impl Default for HostConfig {
    fn default() -> Self {
        HostConfig {
            interval: HumanDuration::secs(10),
            exclude_fs_types: [
                "autofs",
                "binfmt_misc",
                "bpf",
                "cgroup",
                "cgroup2",
                "configfs",
                "debugfs",
                "devpts",
                "devtmpfs",
                "fusectl",
                "hugetlbfs",
                "mqueue",
                "nsfs",
                "overlay",
                "proc",
                "procfs",
                "pstore",
                "rpc_pipefs",
                "securityfs",
                "selinuxfs",
                "squashfs",
                "sysfs",
                "tracefs",
                "tmpfs",
                "ramfs",
                "nfsd",
                "efivarfs",
            ]
            .map(String::from)
            .to_vec(),
            exclude_mounts: vec![
                "/proc/*".into(),
                "/sys/*".into(),
                "/dev/*".into(),
                "/run/*".into(),
            ],
            exclude_interfaces: vec!["lo".into()],
        }
    }
}

/// `[[ping]]`: targets pinged together, `count` echo requests each per round.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PingConfig {
    /// IPv4 or IPv6 addresses, or host names (resolved again every round).
    pub targets: Vec<String>,
    /// Time between the starts of two rounds.
    #[serde(default = "default_ping_interval")]
    pub interval: HumanDuration,
    /// Echo requests per target per round.
    #[serde(default = "default_ping_count")]
    pub count: u16,
    /// Time between two echo requests to the same target.
    #[serde(default = "default_ping_packet_interval")]
    pub packet_interval: HumanDuration,
    /// A reply later than this after its request is late: counted, not answered.
    #[serde(default = "default_ping_timeout")]
    pub timeout: HumanDuration,
    /// Labels added to this group's events.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
}

fn default_ping_interval() -> HumanDuration {
    HumanDuration::secs(60)
}
fn default_ping_count() -> u16 {
    5
}
fn default_ping_packet_interval() -> HumanDuration {
    HumanDuration::millis(200)
}
fn default_ping_timeout() -> HumanDuration {
    HumanDuration::secs(2)
}

impl PingConfig {
    /// How long a round lasts at most: the targets' requests are spread over each
    /// `packet_interval`, so the last target's last request goes out up to
    /// `count × packet_interval` after the first, and its reply may take `timeout`.
    pub fn round_length(&self) -> std::time::Duration {
        self.packet_interval.get() * u32::from(self.count) + self.timeout.get()
    }
}

/// Checks of one `[[ping]]` group: (key path, message) for each problem.
fn check_ping(i: usize, p: &PingConfig, err: &mut impl FnMut(&str, String)) {
    use std::time::Duration;
    let key = |k: &str| format!("ping[{i}].{k}");
    if p.targets.is_empty() {
        err(
            &key("targets"),
            "list at least one address or host name".into(),
        );
    }
    for (j, t) in p.targets.iter().enumerate() {
        if let Err(m) = crate::sources::ping::check_target(t) {
            err(&format!("ping[{i}].targets[{j}]"), m);
        }
    }
    if p.count == 0 {
        err(&key("count"), "must be at least 1".into());
    }
    if p.packet_interval.get() < Duration::from_millis(1) {
        err(&key("packet_interval"), "must be at least 1ms".into());
    }
    if p.timeout.get() < Duration::from_millis(1) {
        err(&key("timeout"), "must be at least 1ms".into());
    }
    if p.interval.get() < Duration::from_secs(1) {
        err(&key("interval"), "must be at least 1s".into());
    } else if p.round_length() > p.interval.get() {
        err(
            &key("interval"),
            format!(
                "a round takes up to count × packet_interval + timeout = {}, longer than the \
                 interval {}: lower count, packet_interval or timeout, or raise interval",
                logops_common::units::HumanDuration(p.round_length()),
                p.interval
            ),
        );
    }
    for k in p.labels.keys() {
        if !logops_common::event::is_label_name(k) {
            err(
                &format!("ping[{i}].labels.{k}"),
                "label names match [a-zA-Z_][a-zA-Z0-9_]*".into(),
            );
        } else if crate::sources::ping::RESERVED_LABELS.contains(&k.as_str()) {
            err(
                &format!("ping[{i}].labels.{k}"),
                format!("`{k}` is set by the ping source itself"),
            );
        }
    }
}

/// `[self_metrics]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SelfMetricsConfig {
    /// Address of the agent's own `/metrics` (and `/buffer`) endpoint; `enabled = false` turns it off.
    pub listen: SocketAddr,
    /// Whether to serve it.
    pub enabled: bool,
}

impl Default for SelfMetricsConfig {
    fn default() -> Self {
        SelfMetricsConfig {
            listen: "127.0.0.1:9598".parse().expect("valid address"),
            enabled: true,
        }
    }
}

impl Config {
    /// Reads and checks a configuration file; every problem is reported.
    pub fn load(path: &Path) -> Result<Config, ConfigErrors> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| ConfigErrors::single(path, format!("cannot read the file: {e}")))?;
        Config::parse(&text, path)
    }

    /// Parses and checks configuration text (`path` is used in messages).
    pub fn parse(text: &str, path: &Path) -> Result<Config, ConfigErrors> {
        report::parse_all(text, path)
    }

    /// The agent id: `[agent] id` or the hostname.
    pub fn agent_id(&self) -> String {
        self.agent.id.clone().unwrap_or_else(hostname)
    }
}

/// The machine's hostname (`localhost` if it cannot be read).
pub fn hostname() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: the buffer is valid for its length; gethostname NUL-terminates on success.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    if rc == 0 {
        let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
        if let Ok(s) = std::str::from_utf8(&buf[..end]) {
            if !s.is_empty() {
                return s.to_owned();
            }
        }
    }
    "localhost".into()
}

/// Semantic checks after the file parsed: (key path, message) for each problem.
pub(crate) fn check(config: &Config) -> Vec<(String, String)> {
    let mut errs = Vec::new();
    let mut err = |k: &str, m: String| errs.push((k.to_owned(), m));
    if let Some(id) = &config.agent.id {
        if let Err(m) = logops_common::batch::check_agent_id(id) {
            err("agent.id", m);
        }
    }
    let ship = &config.ship;
    if !(ship.url.starts_with("http://") || ship.url.starts_with("https://")) {
        err(
            "ship.url",
            format!("`{}` is not an http:// or https:// URL", ship.url),
        );
    } else if reqwest::Url::parse(&ship.url).is_err() {
        err("ship.url", format!("`{}` is not a valid URL", ship.url));
    }
    if ship.api_key.is_some() {
        err(
            "ship.api_key",
            "API keys never live in the configuration: use api_key_file or api_key_env".into(),
        );
    }
    match (&ship.api_key_file, &ship.api_key_env) {
        (None, None) if ship.api_key.is_none() => {
            err("ship", "set api_key_file or api_key_env".into())
        }
        (Some(_), Some(_)) => err("ship", "set api_key_file or api_key_env, not both".into()),
        _ => {}
    }
    if ship.hmac_secret_file.is_some() && ship.hmac_secret_env.is_some() {
        err(
            "ship",
            "set hmac_secret_file or hmac_secret_env, not both".into(),
        );
    }
    if ship.client_cert.is_some() != ship.client_key.is_some() {
        err("ship", "client_cert and client_key go together".into());
    }
    if ship.batch_max_events == 0 {
        err("ship.batch_max_events", "must be at least 1".into());
    }
    if ship.batch_max_bytes.bytes() < 1024 {
        err("ship.batch_max_bytes", "must be at least 1KiB".into());
    }
    if ship.max_in_flight == 0 {
        err("ship.max_in_flight", "must be at least 1".into());
    }
    if !(1..=22).contains(&ship.zstd_level) {
        err("ship.zstd_level", "zstd levels are 1 to 22".into());
    }
    if ship.backoff_min > ship.backoff_max {
        err("ship.backoff_min", "is larger than backoff_max".into());
    }
    if config.buffer.max_size < ByteSize::mib(1) {
        err("buffer.max_size", "must be at least 1MiB".into());
    }
    if config.buffer.max_size < ship.batch_max_bytes {
        err(
            "buffer.max_size",
            format!(
                "is smaller than ship.batch_max_bytes ({})",
                ship.batch_max_bytes
            ),
        );
    }
    for (i, f) in config.files.iter().enumerate() {
        if f.paths.is_empty() {
            err(
                &format!("files[{i}].paths"),
                "list at least one glob pattern".into(),
            );
        }
        for (j, p) in f.paths.iter().enumerate() {
            if !Path::new(p).is_absolute() {
                err(
                    &format!("files[{i}].paths[{j}]"),
                    format!("`{p}` must be an absolute path"),
                );
            } else if let Err(e) = glob::Pattern::new(p) {
                err(
                    &format!("files[{i}].paths[{j}]"),
                    format!("`{p}` is not a glob pattern: {e}"),
                );
            }
        }
        for (j, p) in f.exclude.iter().enumerate() {
            if let Err(e) = glob::Pattern::new(p) {
                err(
                    &format!("files[{i}].exclude[{j}]"),
                    format!("`{p}` is not a glob pattern: {e}"),
                );
            }
        }
        if f.max_line_bytes.bytes() < 256 {
            err(
                &format!("files[{i}].max_line_bytes"),
                "must be at least 256B".into(),
            );
        }
        if let Some(m) = &f.multiline {
            if let Err(e) = regex::Regex::new(&m.start_pattern) {
                err(
                    &format!("files[{i}].multiline.start_pattern"),
                    format!("not a regular expression: {e}"),
                );
            }
            if m.max_lines == 0 {
                err(
                    &format!("files[{i}].multiline.max_lines"),
                    "must be at least 1".into(),
                );
            }
        }
    }
    if let Some(h) = &config.host {
        if h.interval.get() < std::time::Duration::from_secs(1) {
            err("host.interval", "must be at least 1s".into());
        }
        for (j, p) in h
            .exclude_mounts
            .iter()
            .chain(&h.exclude_interfaces)
            .enumerate()
        {
            if let Err(e) = glob::Pattern::new(p) {
                err(
                    "host",
                    format!("exclude pattern {j} `{p}` is not a glob pattern: {e}"),
                );
            }
        }
    }
    for (i, p) in config.ping.iter().enumerate() {
        check_ping(i, p, &mut err);
    }
    if let Some(s) = &config.snmp {
        snmp::check(s, &mut errs);
    }
    stdout::check(config, &mut |k: &str, m: String| {
        errs.push((k.to_owned(), m))
    });
    if let Some(s) = &config.ssh {
        ssh::check(s, &mut errs);
    }
    if let Some(s) = &config.syslog {
        syslog::check(s, &mut errs);
    }
    errs
}

#[cfg(test)]
mod tests;
