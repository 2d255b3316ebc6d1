//! The sections of the sources that capture the output of processes and containers:
//! `[[exec]]`, `[journald]` and `[kubernetes]` (stdin has no section: `run --stdin`).

use std::collections::BTreeMap;
use std::path::PathBuf;

use logops_common::units::{ByteSize, HumanDuration};
use serde::Deserialize;

use super::{FilesConfig, StartAt};

/// `[[exec]]`: a command whose stdout and stderr lines are events.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExecConfig {
    /// The program and its arguments (no shell: `["sh", "-c", "..."]` for one).
    pub command: Vec<String>,
    /// Its name in events (`attrs.command`) and metrics; default: the program's file name.
    pub name: Option<String>,
    /// Environment variables added to the agent's.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// Working directory (default: the agent's).
    pub working_dir: Option<PathBuf>,
    /// Labels added to its events.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Lines longer than this are split into flagged pieces.
    #[serde(default = "default_exec_max_line")]
    pub max_line_bytes: ByteSize,
    /// `always` (default), `on-failure` (only after a non-zero exit or a signal) or `never`.
    #[serde(default)]
    pub restart: RestartPolicy,
    /// First delay before a restart; doubles (with jitter) after each quick exit.
    #[serde(default = "default_restart_min")]
    pub restart_delay_min: HumanDuration,
    /// Longest delay before a restart.
    #[serde(default = "default_restart_max")]
    pub restart_delay_max: HumanDuration,
    /// A run that lasted this long resets the delay to `restart_delay_min`.
    #[serde(default = "default_restart_reset")]
    pub restart_reset_after: HumanDuration,
    /// On shutdown or reload: SIGTERM to its process group, SIGKILL after this long.
    #[serde(default = "default_stop_timeout")]
    pub stop_timeout: HumanDuration,
}

/// When `[[exec]]` restarts its command.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RestartPolicy {
    /// After every exit.
    #[default]
    Always,
    /// After a non-zero exit status or a death by signal.
    OnFailure,
    /// Never: one run.
    Never,
}

fn default_exec_max_line() -> ByteSize {
    ByteSize::kib(64)
}
fn default_restart_min() -> HumanDuration {
    HumanDuration::secs(1)
}
fn default_restart_max() -> HumanDuration {
    HumanDuration::secs(60)
}
fn default_restart_reset() -> HumanDuration {
    HumanDuration::secs(60)
}
fn default_stop_timeout() -> HumanDuration {
    HumanDuration::secs(5)
}

/// `[journald]`: the systemd journal, followed through `journalctl`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JournaldConfig {
    /// Only these units (`journalctl --unit`, any of them); empty: every entry.
    #[serde(default)]
    pub units: Vec<String>,
    /// Read the journal files in this directory (`journalctl --directory`) instead of the
    /// system journal.
    pub directory: Option<PathBuf>,
    /// Read these journal files (`journalctl --file`, globs allowed) instead.
    #[serde(default)]
    pub files: Vec<String>,
    /// With no stored cursor: `end` (only new entries) or `beginning` (everything kept).
    #[serde(default)]
    pub start_at: StartAt,
    /// The `journalctl` program.
    #[serde(default = "default_journalctl")]
    pub journalctl: PathBuf,
    /// Labels added to its events.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// First delay before journalctl is started again after it exited.
    #[serde(default = "default_restart_min")]
    pub restart_delay_min: HumanDuration,
    /// Longest delay before a restart.
    #[serde(default = "default_restart_max")]
    pub restart_delay_max: HumanDuration,
}

fn default_journalctl() -> PathBuf {
    PathBuf::from("journalctl")
}

/// How container log lines are written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ContainerFormat {
    /// Detected per line: a line starting with `{` is Docker's, any other CRI.
    #[default]
    Auto,
    /// CRI (containerd, CRI-O): `<ts> <stream> <P|F> <message>`.
    Cri,
    /// Docker's json-file driver: `{"log":"...","stream":"...","time":"..."}`.
    Docker,
}

/// `[kubernetes]`: container logs, read by the files source with a decoder.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KubernetesConfig {
    /// Glob patterns of the container log files.
    #[serde(default = "default_pod_paths")]
    pub paths: Vec<String>,
    /// Glob patterns (file name or path) left out.
    #[serde(default)]
    pub exclude: Vec<String>,
    /// `auto`, `cri` or `docker`.
    #[serde(default)]
    pub format: ContainerFormat,
    /// For files present when the source first starts: `end` or `beginning`.
    #[serde(default)]
    pub start_at: StartAt,
    /// Labels added to its events (besides namespace, pod, uid and container).
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// A raw line longer than this is split into flagged pieces, undecoded.
    #[serde(default = "default_k8s_max_line")]
    pub max_line_bytes: ByteSize,
    /// Partial lines are joined up to this many bytes of message; the rest is a new event
    /// flagged `split`.
    #[serde(default = "default_k8s_max_message")]
    pub max_message_bytes: ByteSize,
    /// How often the globs are re-expanded (notify covers most changes sooner).
    #[serde(default = "default_k8s_rescan")]
    pub rescan_interval: HumanDuration,
    /// A rotated file (`0.log.<timestamp>`) is read until it has been quiet this long.
    #[serde(default = "default_k8s_rotate_wait")]
    pub rotate_wait: HumanDuration,
}

fn default_pod_paths() -> Vec<String> {
    vec!["/var/log/pods/*/*/*.log".into()]
}
fn default_k8s_max_line() -> ByteSize {
    ByteSize::kib(64)
}
fn default_k8s_max_message() -> ByteSize {
    ByteSize::mib(1)
}
fn default_k8s_rescan() -> HumanDuration {
    HumanDuration::secs(5)
}
fn default_k8s_rotate_wait() -> HumanDuration {
    HumanDuration::secs(5)
}

/// What a files group decodes (set for the `[kubernetes]` group).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ContainerDecoding {
    /// The line format.
    pub format: ContainerFormat,
    /// The bound of a joined message.
    pub max_message_bytes: u64,
}

impl KubernetesConfig {
    /// The files group that reads these logs.
    pub fn files_group(&self) -> FilesConfig {
        FilesConfig {
            paths: self.paths.clone(),
            exclude: self.exclude.clone(),
            start_at: self.start_at,
            labels: self.labels.clone(),
            max_line_bytes: self.max_line_bytes,
            multiline: None,
            rescan_interval: self.rescan_interval,
            rotate_wait: self.rotate_wait,
            container: Some(ContainerDecoding {
                format: self.format,
                max_message_bytes: self.max_message_bytes.bytes(),
            }),
        }
    }
}

/// Label names the sources of this module set themselves.
pub const KUBERNETES_LABELS: [&str; 4] = ["namespace", "pod", "uid", "container"];

/// Checks of these sections: (key path, message) for each problem.
pub(crate) fn check(config: &super::Config, err: &mut impl FnMut(&str, String)) {
    use std::time::Duration;
    let labels = |key: &str, l: &BTreeMap<String, String>, err: &mut dyn FnMut(&str, String)| {
        for k in l.keys() {
            if !logops_common::event::is_label_name(k) {
                err(
                    &format!("{key}.labels.{k}"),
                    "label names match [a-zA-Z_][a-zA-Z0-9_]*".into(),
                );
            }
        }
    };
    let mut names: BTreeMap<String, usize> = BTreeMap::new();
    for (i, e) in config.exec.iter().enumerate() {
        let key = |k: &str| format!("exec[{i}].{k}");
        match e.command.first() {
            None => err(
                &key("command"),
                "give the program and its arguments, e.g. [\"/usr/bin/app\", \"--flag\"]".into(),
            ),
            Some(p) if p.is_empty() => {
                err(&format!("exec[{i}].command[0]"), "empty program".into())
            }
            Some(_) => {}
        }
        if let Some(d) = &e.working_dir {
            if !d.is_absolute() {
                err(
                    &key("working_dir"),
                    format!("`{}` must be an absolute path", d.display()),
                );
            }
        }
        if e.max_line_bytes.bytes() < 256 {
            err(&key("max_line_bytes"), "must be at least 256B".into());
        }
        if e.restart_delay_min.get() < Duration::from_millis(10) {
            err(&key("restart_delay_min"), "must be at least 10ms".into());
        }
        if e.restart_delay_min > e.restart_delay_max {
            err(
                &key("restart_delay_min"),
                "is larger than restart_delay_max".into(),
            );
        }
        labels(&format!("exec[{i}]"), &e.labels, err);
        let name = exec_name(e);
        if let Some(first) = names.insert(name.clone(), i) {
            err(
                &key("name"),
                format!("`{name}` is also the name of exec[{first}]: give each a distinct `name`"),
            );
        }
    }
    if let Some(j) = &config.journald {
        if j.directory.is_some() && !j.files.is_empty() {
            err(
                "journald",
                "set directory or files, not both (journalctl reads one or the other)".into(),
            );
        }
        if j.restart_delay_min > j.restart_delay_max {
            err(
                "journald.restart_delay_min",
                "is larger than restart_delay_max".into(),
            );
        }
        for (k, u) in j.units.iter().enumerate() {
            if u.is_empty() || u.starts_with('-') {
                err(
                    &format!("journald.units[{k}]"),
                    format!("`{u}` is not a unit name"),
                );
            }
        }
        labels("journald", &j.labels, err);
    }
    if let Some(k) = &config.kubernetes {
        if k.paths.is_empty() {
            err("kubernetes.paths", "list at least one glob pattern".into());
        }
        for (j, p) in k.paths.iter().enumerate() {
            if !std::path::Path::new(p).is_absolute() {
                err(
                    &format!("kubernetes.paths[{j}]"),
                    format!("`{p}` must be an absolute path"),
                );
            } else if let Err(e) = glob::Pattern::new(p) {
                err(
                    &format!("kubernetes.paths[{j}]"),
                    format!("`{p}` is not a glob pattern: {e}"),
                );
            }
        }
        if k.max_line_bytes.bytes() < 256 {
            err("kubernetes.max_line_bytes", "must be at least 256B".into());
        }
        if k.max_message_bytes < k.max_line_bytes {
            err(
                "kubernetes.max_message_bytes",
                format!("is smaller than max_line_bytes ({})", k.max_line_bytes),
            );
        }
        labels("kubernetes", &k.labels, err);
        for l in KUBERNETES_LABELS {
            if k.labels.contains_key(l) {
                err(
                    &format!("kubernetes.labels.{l}"),
                    format!("`{l}` is set from each file's path"),
                );
            }
        }
    }
}

/// The name of an `[[exec]]` command: `name`, or the program's file name.
pub fn exec_name(e: &ExecConfig) -> String {
    e.name.clone().unwrap_or_else(|| {
        e.command
            .first()
            .map(|p| {
                std::path::Path::new(p)
                    .file_name()
                    .map_or_else(|| p.clone(), |f| f.to_string_lossy().into_owned())
            })
            .unwrap_or_default()
    })
}
