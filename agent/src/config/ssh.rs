//! `[ssh]`: the SSH collector's settings and its devices (`[[ssh.device]]`).
//!
//! `[ssh]` holds the global settings (`templates_dir`, `max_sessions`) and defaults for every
//! device (`known_hosts`, `host_key_policy`, `interval`, `command_timeout`,
//! `connect_timeout`, `keepalive`, `keep_raw`); a device's own value wins. Secrets (login
//! password, key passphrase, enable secret) come from an environment variable (`*_env`) or a
//! file (`*_file`), never inline.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use logops_common::units::HumanDuration;
use serde::de::{self, MapAccess, Visitor};
use serde::{Deserialize, Deserializer};

use crate::sources::ssh::platform;

/// What to do with a host key.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum HostKeyPolicy {
    /// The key must be in `known_hosts` (default).
    #[default]
    Strict,
    /// A host not in `known_hosts` has its key recorded there; a known host must match.
    AcceptNew,
    /// Any key is accepted (lab use only).
    Insecure,
}

impl fmt::Display for HostKeyPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            HostKeyPolicy::Strict => "strict",
            HostKeyPolicy::AcceptNew => "accept-new",
            HostKeyPolicy::Insecure => "insecure",
        })
    }
}

/// The type of a metric taken from parsed records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MetricKind {
    /// A value that goes up and down.
    Gauge,
    /// A total that only grows.
    Counter,
}

/// `metrics = [{ field, name, type, labels }]` of a command: one metric per parsed record.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricSpec {
    /// The record field holding the number (lower-case, as the records are keyed).
    pub field: String,
    /// The metric's name.
    pub name: String,
    /// `gauge` or `counter`.
    #[serde(rename = "type")]
    pub kind: MetricKind,
    /// Record fields that become labels of the metric.
    #[serde(default)]
    pub labels: Vec<String>,
}

/// One entry of a device's `commands`: `"show version"`, or a table
/// `{ command = "show interfaces", metrics = [...], keep_raw = true }`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandSpec {
    /// The command line sent to the device.
    pub command: String,
    /// Metrics taken from its parsed records.
    pub metrics: Vec<MetricSpec>,
    /// Keep its raw output as a log event (default: the device's `keep_raw`).
    pub keep_raw: Option<bool>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CommandTable {
    command: String,
    #[serde(default)]
    metrics: Vec<MetricSpec>,
    keep_raw: Option<bool>,
}

impl<'de> Deserialize<'de> for CommandSpec {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct CommandVisitor;
        impl<'de> Visitor<'de> for CommandVisitor {
            type Value = CommandSpec;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(
                    "a command (\"show version\") or a table { command = \"...\", metrics = [...], keep_raw = true }",
                )
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<CommandSpec, E> {
                Ok(CommandSpec {
                    command: v.to_owned(),
                    metrics: Vec::new(),
                    keep_raw: None,
                })
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<CommandSpec, A::Error> {
                let t = CommandTable::deserialize(de::value::MapAccessDeserializer::new(map))?;
                Ok(CommandSpec {
                    command: t.command,
                    metrics: t.metrics,
                    keep_raw: t.keep_raw,
                })
            }
        }
        d.deserialize_any(CommandVisitor)
    }
}

/// `[[ssh.device]]`: one device whose CLI is scraped.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SshDevice {
    /// Its name: the `device` label of its events and how `test ssh` finds it.
    pub name: String,
    /// `host:port` (port 22 when left out; `[v6]:port` for IPv6).
    pub address: String,
    /// The platform (Netmiko's `device_type`): `cisco_ios`, `juniper_junos`, `linux`, ...
    pub device_type: String,
    /// The login user.
    pub username: String,
    /// Environment variable holding the login password.
    pub password_env: Option<String>,
    /// File holding the login password.
    pub password_file: Option<PathBuf>,
    /// Refused: passwords never live inline (here only to give a clear error).
    pub password: Option<String>,
    /// Private key file (OpenSSH or PEM format) for public-key authentication.
    pub key_file: Option<PathBuf>,
    /// Environment variable holding the key's passphrase.
    pub passphrase_env: Option<String>,
    /// File holding the key's passphrase.
    pub passphrase_file: Option<PathBuf>,
    /// Refused: passphrases never live inline.
    pub passphrase: Option<String>,
    /// Environment variable holding the enable secret.
    pub secret_env: Option<String>,
    /// File holding the enable secret.
    pub secret_file: Option<PathBuf>,
    /// Refused: secrets never live inline.
    pub secret: Option<String>,
    /// The known_hosts file (default: `[ssh] known_hosts`).
    pub known_hosts: Option<PathBuf>,
    /// `strict`, `accept-new` or `insecure` (default: `[ssh] host_key_policy`).
    pub host_key_policy: Option<HostKeyPolicy>,
    /// The commands, run in order at every poll.
    #[serde(default)]
    pub commands: Vec<CommandSpec>,
    /// How often the device is polled (default: `[ssh] interval`).
    pub interval: Option<HumanDuration>,
    /// How long one command may take (default: `[ssh] command_timeout`).
    pub command_timeout: Option<HumanDuration>,
    /// How long connecting, the SSH handshake, authentication and finding the prompt may
    /// each take (default: `[ssh] connect_timeout`).
    pub connect_timeout: Option<HumanDuration>,
    /// Keep every command's raw output as a log event (default: `[ssh] keep_raw`).
    pub keep_raw: Option<bool>,
    /// Labels added to the device's events.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
}

/// `[ssh]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SshConfig {
    /// ntc-templates' `templates/` directory (with its `index`); without it, outputs are
    /// kept raw and not parsed.
    pub templates_dir: Option<PathBuf>,
    /// Sessions open at the same time, at most (each on one of as many worker threads).
    #[serde(default = "default_max_sessions")]
    pub max_sessions: usize,
    /// Default known_hosts file.
    #[serde(default = "default_known_hosts")]
    pub known_hosts: PathBuf,
    /// Default host key policy.
    #[serde(default)]
    pub host_key_policy: HostKeyPolicy,
    /// Default poll interval.
    #[serde(default = "default_interval")]
    pub interval: HumanDuration,
    /// Default command timeout.
    #[serde(default = "default_command_timeout")]
    pub command_timeout: HumanDuration,
    /// Default connect (and handshake, authentication, prompt) timeout.
    #[serde(default = "default_connect_timeout")]
    pub connect_timeout: HumanDuration,
    /// SSH keepalive interval while a session is open.
    #[serde(default = "default_keepalive")]
    pub keepalive: HumanDuration,
    /// Default for keeping raw outputs as log events.
    #[serde(default)]
    pub keep_raw: bool,
    /// The devices.
    #[serde(default)]
    pub device: Vec<SshDevice>,
}

fn default_max_sessions() -> usize {
    64
}
fn default_known_hosts() -> PathBuf {
    PathBuf::from("/etc/logops/known_hosts")
}
fn default_interval() -> HumanDuration {
    HumanDuration::secs(300)
}
fn default_command_timeout() -> HumanDuration {
    HumanDuration::secs(30)
}
fn default_connect_timeout() -> HumanDuration {
    HumanDuration::secs(10)
}
fn default_keepalive() -> HumanDuration {
    HumanDuration::secs(30)
}

/// Where a secret comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretSource {
    /// An environment variable.
    Env(String),
    /// A file (one trailing newline is dropped).
    File(PathBuf),
}

impl SecretSource {
    /// Reads the secret; the error names the variable or file.
    pub fn load(&self) -> Result<String, String> {
        match self {
            SecretSource::Env(name) => match std::env::var(name) {
                Ok(v) if !v.is_empty() => Ok(v),
                Ok(_) => Err(format!("environment variable {name} is empty")),
                Err(_) => Err(format!("environment variable {name} is not set")),
            },
            SecretSource::File(path) => match std::fs::read_to_string(path) {
                Ok(v) => {
                    let v = v.strip_suffix('\n').unwrap_or(&v);
                    let v = v.strip_suffix('\r').unwrap_or(v);
                    if v.is_empty() {
                        Err(format!("{} is empty", path.display()))
                    } else {
                        Ok(v.to_owned())
                    }
                }
                Err(e) => Err(format!("cannot read {}: {e}", path.display())),
            },
        }
    }
}

impl fmt::Display for SecretSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SecretSource::Env(n) => write!(f, "${n}"),
            SecretSource::File(p) => write!(f, "{}", p.display()),
        }
    }
}

/// Everything needed to poll one device, defaults merged in.
#[derive(Debug, Clone)]
pub struct SshDeviceSettings {
    /// Its position in `[[ssh.device]]` (for key paths in messages: `ssh.device[3]`).
    pub index: usize,
    /// `device` label.
    pub name: String,
    /// As configured.
    pub address: String,
    /// Host name or address.
    pub host: String,
    /// TCP port.
    pub port: u16,
    /// The platform's table entry.
    pub platform: &'static platform::Platform,
    /// Login user.
    pub username: String,
    /// Login password.
    pub password: Option<SecretSource>,
    /// Private key.
    pub key_file: Option<PathBuf>,
    /// Its passphrase.
    pub passphrase: Option<SecretSource>,
    /// Enable secret.
    pub secret: Option<SecretSource>,
    /// known_hosts file.
    pub known_hosts: PathBuf,
    /// Host key policy.
    pub host_key_policy: HostKeyPolicy,
    /// The commands.
    pub commands: Vec<CommandSpec>,
    /// Poll interval.
    pub interval: Duration,
    /// Timeout of one command.
    pub command_timeout: Duration,
    /// Timeout of each connection step.
    pub connect_timeout: Duration,
    /// Keepalive interval.
    pub keepalive: Duration,
    /// Keep raw outputs by default.
    pub keep_raw: bool,
    /// Labels.
    pub labels: BTreeMap<String, String>,
}

/// Labels the SSH source sets itself.
pub const RESERVED_LABELS: [&str; 3] = ["device", "command", "template"];

fn env_name_ok(name: &str) -> bool {
    !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// One secret from `<what>_env` / `<what>_file`, refusing the inline `<what>`.
fn secret(
    at: &str,
    what: &str,
    inline: &Option<String>,
    env: &Option<String>,
    file: &Option<PathBuf>,
    errs: &mut Vec<(String, String)>,
) -> Option<SecretSource> {
    if inline.is_some() {
        errs.push((
            format!("{at}.{what}"),
            format!("secrets never live in the configuration: use {what}_env or {what}_file"),
        ));
    }
    match (env, file) {
        (Some(_), Some(_)) => {
            errs.push((
                at.to_owned(),
                format!("set {what}_env or {what}_file, not both"),
            ));
            None
        }
        (Some(n), None) if !env_name_ok(n) => {
            errs.push((
                format!("{at}.{what}_env"),
                format!("`{n}` is not an environment variable name"),
            ));
            None
        }
        (Some(n), None) => Some(SecretSource::Env(n.clone())),
        (None, Some(p)) if !p.is_absolute() => {
            errs.push((
                format!("{at}.{what}_file"),
                format!("`{}` must be an absolute path", p.display()),
            ));
            None
        }
        (None, Some(p)) => Some(SecretSource::File(p.clone())),
        (None, None) => None,
    }
}

fn check_metric(at: &str, m: &MetricSpec, errs: &mut Vec<(String, String)>) {
    if !logops_common::event::is_metric_name(&m.name) {
        errs.push((
            format!("{at}.name"),
            format!(
                "`{}` is not a metric name ([a-zA-Z_:][a-zA-Z0-9_:]*)",
                m.name
            ),
        ));
    }
    let field_ok = |f: &str| !f.is_empty() && f == f.to_lowercase();
    if !field_ok(&m.field) {
        errs.push((
            format!("{at}.field"),
            format!(
                "`{}`: record fields are the template's Value names in lower case (`{}`)",
                m.field,
                m.field.to_lowercase()
            ),
        ));
    }
    for (j, l) in m.labels.iter().enumerate() {
        let key = format!("{at}.labels[{j}]");
        if !logops_common::event::is_label_name(l) {
            errs.push((
                key,
                format!("`{l}` is not a label name ([a-zA-Z_][a-zA-Z0-9_]*)"),
            ));
        } else if !field_ok(l) {
            errs.push((
                key,
                format!(
                    "`{l}`: record fields are lower case (`{}`)",
                    l.to_lowercase()
                ),
            ));
        } else if RESERVED_LABELS.contains(&l.as_str()) {
            errs.push((key, format!("`{l}` is set by the SSH source itself")));
        }
    }
}

impl SshConfig {
    /// Every device with the defaults merged in. Only meaningful for a configuration that
    /// passed [`check`]; devices with problems are left out.
    pub fn devices(&self) -> Vec<SshDeviceSettings> {
        (0..self.device.len())
            .filter_map(|i| self.device_settings(i).ok())
            .collect()
    }

    /// The device called `name`.
    pub fn find(&self, name: &str) -> Option<Result<SshDeviceSettings, Vec<(String, String)>>> {
        let i = self.device.iter().position(|d| d.name == name)?;
        Some(self.device_settings(i))
    }

    /// Device `i` with the defaults merged in, or its problems (key path, message).
    fn device_settings(&self, i: usize) -> Result<SshDeviceSettings, Vec<(String, String)>> {
        let d = &self.device[i];
        let at = format!("ssh.device[{i}]");
        let mut errs = Vec::new();
        if d.name.is_empty() {
            errs.push((format!("{at}.name"), "must not be empty".into()));
        }
        if let Err(m) = super::snmp::parse_address(&d.address) {
            errs.push((format!("{at}.address"), m));
        }
        let (host, port) = crate::sources::split_host_port(&d.address, 22);
        let platform = match platform::find(&d.device_type) {
            Some(p) => Some(p),
            None => {
                let hint = platform::PLATFORMS
                    .iter()
                    .map(|p| (strsim::jaro_winkler(&d.device_type, p.device_type), p))
                    .filter(|(s, _)| *s >= 0.8)
                    .max_by(|a, b| a.0.total_cmp(&b.0))
                    .map_or_else(
                        || {
                            let all: Vec<&str> =
                                platform::PLATFORMS.iter().map(|p| p.device_type).collect();
                            format!("; known: {}", all.join(", "))
                        },
                        |(_, p)| format!("; did you mean `{}`?", p.device_type),
                    );
                errs.push((
                    format!("{at}.device_type"),
                    format!("unknown device_type `{}`{hint}", d.device_type),
                ));
                None
            }
        };
        if d.username.is_empty() {
            errs.push((format!("{at}.username"), "must not be empty".into()));
        }
        let password = secret(
            &at,
            "password",
            &d.password,
            &d.password_env,
            &d.password_file,
            &mut errs,
        );
        let passphrase = secret(
            &at,
            "passphrase",
            &d.passphrase,
            &d.passphrase_env,
            &d.passphrase_file,
            &mut errs,
        );
        let secret = secret(
            &at,
            "secret",
            &d.secret,
            &d.secret_env,
            &d.secret_file,
            &mut errs,
        );
        let has_password = d.password_env.is_some() || d.password_file.is_some();
        if !has_password && d.key_file.is_none() && d.password.is_none() {
            errs.push((
                at.clone(),
                "set password_env, password_file or key_file (or a key and a password)".into(),
            ));
        }
        if let Some(k) = &d.key_file {
            if !k.is_absolute() {
                errs.push((
                    format!("{at}.key_file"),
                    format!("`{}` must be an absolute path", k.display()),
                ));
            }
        } else if d.passphrase_env.is_some() || d.passphrase_file.is_some() {
            errs.push((
                at.clone(),
                "a passphrase is for key_file, which is not set".into(),
            ));
        }
        if let Some(p) = platform {
            if p.enable.is_none() && (d.secret_env.is_some() || d.secret_file.is_some()) {
                errs.push((
                    at.clone(),
                    format!(
                        "device_type `{}` has no enable mode: drop secret_env/secret_file",
                        p.device_type
                    ),
                ));
            }
        }
        let known_hosts = d
            .known_hosts
            .clone()
            .unwrap_or_else(|| self.known_hosts.clone());
        if !known_hosts.is_absolute() {
            let key = if d.known_hosts.is_some() {
                format!("{at}.known_hosts")
            } else {
                "ssh.known_hosts".into()
            };
            errs.push((
                key,
                format!("`{}` must be an absolute path", known_hosts.display()),
            ));
        }
        if d.commands.is_empty() {
            errs.push((format!("{at}.commands"), "list at least one command".into()));
        }
        for (j, c) in d.commands.iter().enumerate() {
            let key = format!("{at}.commands[{j}]");
            if c.command.trim().is_empty() {
                errs.push((key.clone(), "an empty command".into()));
            } else if c.command.contains(['\n', '\r']) {
                errs.push((key.clone(), "one line per command".into()));
            }
            for (k, m) in c.metrics.iter().enumerate() {
                check_metric(&format!("{key}.metrics[{k}]"), m, &mut errs);
            }
        }
        let pick =
            |own: Option<HumanDuration>, default: HumanDuration| own.unwrap_or(default).get();
        let interval = pick(d.interval, self.interval);
        let command_timeout = pick(d.command_timeout, self.command_timeout);
        let connect_timeout = pick(d.connect_timeout, self.connect_timeout);
        let from = |own: bool, k: &str| {
            if own {
                format!("{at}.{k}")
            } else {
                format!("ssh.{k}")
            }
        };
        if interval < Duration::from_secs(1) {
            errs.push((
                from(d.interval.is_some(), "interval"),
                "must be at least 1s".into(),
            ));
        }
        if command_timeout < Duration::from_millis(100) {
            errs.push((
                from(d.command_timeout.is_some(), "command_timeout"),
                "must be at least 100ms".into(),
            ));
        }
        if connect_timeout < Duration::from_millis(100) {
            errs.push((
                from(d.connect_timeout.is_some(), "connect_timeout"),
                "must be at least 100ms".into(),
            ));
        }
        for k in d.labels.keys() {
            if !logops_common::event::is_label_name(k) {
                errs.push((
                    format!("{at}.labels.{k}"),
                    format!("`{k}` is not a label name ([a-zA-Z_][a-zA-Z0-9_]*)"),
                ));
            } else if RESERVED_LABELS.contains(&k.as_str()) {
                errs.push((
                    format!("{at}.labels.{k}"),
                    format!("`{k}` is set by the SSH source itself"),
                ));
            }
        }
        match platform {
            Some(platform) if errs.is_empty() => Ok(SshDeviceSettings {
                index: i,
                name: d.name.clone(),
                address: d.address.clone(),
                host,
                port,
                platform,
                username: d.username.clone(),
                password,
                key_file: d.key_file.clone(),
                passphrase,
                secret,
                known_hosts,
                host_key_policy: d.host_key_policy.unwrap_or(self.host_key_policy),
                commands: d.commands.clone(),
                interval,
                command_timeout,
                connect_timeout,
                keepalive: self.keepalive.get(),
                keep_raw: d.keep_raw.unwrap_or(self.keep_raw),
                labels: d.labels.clone(),
            }),
            _ => Err(errs),
        }
    }
}

fn check_templates_dir(dir: &Path, errs: &mut Vec<(String, String)>) {
    if !dir.is_absolute() {
        errs.push((
            "ssh.templates_dir".into(),
            format!("`{}` must be an absolute path", dir.display()),
        ));
    } else if !dir.join("index").is_file() {
        errs.push((
            "ssh.templates_dir".into(),
            format!(
                "`{}` has no `index` file: point it at ntc-templates' templates/ directory",
                dir.display()
            ),
        ));
    }
}

/// Checks `[ssh]`: (key path, message) for each problem.
pub(crate) fn check(ssh: &SshConfig, errs: &mut Vec<(String, String)>) {
    if !(1..=4096).contains(&ssh.max_sessions) {
        errs.push(("ssh.max_sessions".into(), "must be 1 to 4096".into()));
    }
    if ssh.keepalive.get() < Duration::from_secs(1) {
        errs.push(("ssh.keepalive".into(), "must be at least 1s".into()));
    }
    if let Some(dir) = &ssh.templates_dir {
        check_templates_dir(dir, errs);
    }
    let mut seen = std::collections::HashMap::new();
    for (i, d) in ssh.device.iter().enumerate() {
        if let Some(first) = seen.insert(d.name.as_str(), i) {
            errs.push((
                format!("ssh.device[{i}].name"),
                format!("`{}` is also the name of ssh.device[{first}]", d.name),
            ));
        }
        if let Err(e) = ssh.device_settings(i) {
            for p in e {
                if !errs.contains(&p) {
                    errs.push(p);
                }
            }
        }
    }
}
