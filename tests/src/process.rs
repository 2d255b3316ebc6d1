//! Locating the binaries under test, signalling processes by PID and reading their
//! resource figures from `/proc`.

use anyhow::Context as _;
use std::path::{Path, PathBuf};

/// Environment variable that overrides where the `logops-ingest` binary is.
pub const INGEST_BIN_ENV: &str = "LOGOPS_INGEST_BIN";

/// The profile directory the current executable runs from: `target/debug` for tests (which
/// run from `target/debug/deps`), `target/release` for `target/release/ingest-load`.
pub fn profile_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("the path of the running executable is known");
    let dir = exe
        .parent()
        .expect("the running executable is in a directory");
    if dir.file_name().is_some_and(|n| n == "deps") {
        dir.parent()
            .expect("target/<profile>/deps has a parent")
            .to_path_buf()
    } else {
        dir.to_path_buf()
    }
}

/// The cargo target directory (the parent of [`profile_dir`]).
pub fn target_dir() -> PathBuf {
    let profile = profile_dir();
    profile.parent().map(Path::to_path_buf).unwrap_or(profile)
}

/// The `logops-ingest` binary of the profile the tests were built with
/// (`target/<profile>/logops-ingest`), or `$LOGOPS_INGEST_BIN`.
///
/// `cargo test -p logops-e2e` does not build other packages' binaries: run
/// `cargo build --workspace --bins` first. The error says so.
pub fn ingest_binary() -> anyhow::Result<PathBuf> {
    if let Some(p) = std::env::var_os(INGEST_BIN_ENV) {
        return require_binary(
            PathBuf::from(p),
            &format!("it comes from ${INGEST_BIN_ENV}"),
        );
    }
    let path = require_binary(
        profile_dir().join("logops-ingest"),
        "run `cargo build --workspace --bins` first (cargo test does not build other packages' binaries)",
    )?;
    check_fresh(&path)?;
    Ok(path)
}

/// Fails if `binary` is older than a source file of the ingest, its store or the common
/// crate: `cargo test -p logops-e2e` does not rebuild it, and testing yesterday's binary
/// proves nothing. `LOGOPS_E2E_ALLOW_STALE=1` skips the check.
fn check_fresh(binary: &Path) -> anyhow::Result<()> {
    if std::env::var_os("LOGOPS_E2E_ALLOW_STALE").is_some() {
        return Ok(());
    }
    let Ok(built) = std::fs::metadata(binary).and_then(|m| m.modified()) else {
        return Ok(());
    };
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut newest: Option<(std::time::SystemTime, PathBuf)> = None;
    for dir in ["ingest/src", "ingest/store/src", "common/src"] {
        for (path, _) in list_files(&root.join(dir)) {
            if let Ok(t) = std::fs::metadata(&path).and_then(|m| m.modified()) {
                if newest.as_ref().is_none_or(|(n, _)| t > *n) {
                    newest = Some((t, path));
                }
            }
        }
    }
    match newest {
        Some((t, path)) if t > built => anyhow::bail!(
            "{} is older than {}: run `cargo build --workspace --bins` (or set LOGOPS_E2E_ALLOW_STALE=1)",
            binary.display(),
            path.display()
        ),
        _ => Ok(()),
    }
}

/// The release `logops-ingest` (`target/release/logops-ingest`), or `$LOGOPS_INGEST_BIN`.
pub fn release_ingest_binary() -> anyhow::Result<PathBuf> {
    if let Some(p) = std::env::var_os(INGEST_BIN_ENV) {
        return require_binary(
            PathBuf::from(p),
            &format!("it comes from ${INGEST_BIN_ENV}"),
        );
    }
    require_binary(
        target_dir().join("release").join("logops-ingest"),
        "build it with `cargo build --release -p logops-ingest -p logops-e2e`",
    )
}

/// `path` if it is an executable file, else an error that says how to build it.
pub fn require_binary(path: PathBuf, hint: &str) -> anyhow::Result<PathBuf> {
    match std::fs::metadata(&path) {
        Ok(m) if m.is_file() => Ok(path),
        _ => anyhow::bail!(
            "the logops-ingest binary {} is missing: {hint}",
            path.display()
        ),
    }
}

/// Sends `signal` (e.g. `libc::SIGTERM`) to process `pid`.
pub fn send_signal(pid: u32, signal: i32) -> std::io::Result<()> {
    let pid = i32::try_from(pid).map_err(|_| std::io::Error::other("pid out of range"))?;
    // SAFETY: kill(2) has no memory-safety preconditions.
    let rc = unsafe { libc::kill(pid, signal) };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

fn status_field_kib(pid: u32, field: &str) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    text.lines().find_map(|l| {
        let rest = l.strip_prefix(field)?.strip_prefix(':')?;
        rest.split_whitespace().next()?.parse().ok()
    })
}

/// Peak resident set size (`VmHWM`) of a live process, in bytes.
pub fn vm_hwm_bytes(pid: u32) -> Option<u64> {
    status_field_kib(pid, "VmHWM").map(|k| k * 1024)
}

/// Current resident set size (`VmRSS`) of a live process, in bytes.
pub fn vm_rss_bytes(pid: u32) -> Option<u64> {
    status_field_kib(pid, "VmRSS").map(|k| k * 1024)
}

/// Number of threads (`Threads` of `/proc/<pid>/status`) of a live process.
pub fn threads(pid: u32) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix("Threads:")?.trim().parse().ok())
}

/// Number of open file descriptors of a live process.
pub fn open_fds(pid: u32) -> Option<u64> {
    Some(std::fs::read_dir(format!("/proc/{pid}/fd")).ok()?.count() as u64)
}

/// CPU time of a process's reaped children (`cutime + cstime`), in seconds: for a server
/// that forks a process per connection (sshd), the work of the connections that ended.
pub fn children_cpu_seconds(pid: u32) -> Option<f64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &text[text.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let cutime: u64 = fields.get(13)?.parse().ok()?;
    let cstime: u64 = fields.get(14)?.parse().ok()?;
    // SAFETY: sysconf has no memory-safety preconditions.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    let ticks = if ticks > 0 { ticks as f64 } else { 100.0 };
    Some((cutime + cstime) as f64 / ticks)
}

/// Number of open sockets (file descriptors linking to `socket:[...]`) of a live process.
pub fn sockets(pid: u32) -> Option<u64> {
    let entries = std::fs::read_dir(format!("/proc/{pid}/fd")).ok()?;
    Some(
        entries
            .flatten()
            .filter(|e| {
                std::fs::read_link(e.path())
                    .is_ok_and(|t| t.to_string_lossy().starts_with("socket:"))
            })
            .count() as u64,
    )
}

/// CPU time (user + system, `utime + stime` of `/proc/<pid>/stat`) of a live process, in
/// seconds.
pub fn cpu_seconds(pid: u32) -> Option<f64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) is in parentheses and may contain spaces.
    let rest = &text[text.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // `rest` starts at field 3 (state); utime and stime are fields 14 and 15.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    // SAFETY: sysconf has no memory-safety preconditions.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    let ticks = if ticks > 0 { ticks as f64 } else { 100.0 };
    Some((utime + stime) as f64 / ticks)
}

/// `RssAnon` and `RssFile` (file-backed pages: the executable's code and data, the shared
/// libraries) of a live process, in bytes.
pub fn rss_anon_file_bytes(pid: u32) -> Option<(u64, u64)> {
    Some((
        status_field_kib(pid, "RssAnon")? * 1024,
        status_field_kib(pid, "RssFile")? * 1024,
    ))
}

/// Resident bytes of a process's file-backed mappings, summed per file, largest first
/// (`/proc/<pid>/smaps`): which code and libraries make up `RssFile`.
pub fn rss_by_file(pid: u32) -> Option<Vec<(String, u64)>> {
    let smaps = std::fs::read_to_string(format!("/proc/{pid}/smaps")).ok()?;
    let mut by_file: std::collections::BTreeMap<String, u64> = Default::default();
    for m in logops_agent::footprint::parse_smaps(&smaps) {
        if m.file_backed() && m.rss_kb > 0 {
            *by_file.entry(m.path).or_default() += m.rss_kb * 1024;
        }
    }
    let mut v: Vec<(String, u64)> = by_file.into_iter().collect();
    v.sort_by_key(|(_, bytes)| std::cmp::Reverse(*bytes));
    Some(v)
}

/// How much of a symbol-ordering list (`agent/symbol-order.txt`: one mangled name per line,
/// `#` comments) the release binary has: (names found among its symbols, names listed).
/// Hashes in the names depend on the toolchain, Cargo.lock and the features of the build,
/// so a binary built otherwise than the list was made for finds few of them.
pub fn symbol_order_coverage(binary: &Path, list: &Path) -> anyhow::Result<(usize, usize)> {
    let listed: Vec<String> = std::fs::read_to_string(list)
        .with_context(|| format!("reading {}", list.display()))?
        .lines()
        .map(|l| l.split('#').next().unwrap_or("").trim().to_owned())
        .filter(|l| !l.is_empty())
        .collect();
    let nm = std::process::Command::new("nm")
        .arg("--defined-only")
        .arg(binary)
        .output()
        .context("running nm (binutils)")?;
    anyhow::ensure!(
        nm.status.success(),
        "nm {}: {}",
        binary.display(),
        nm.status
    );
    let symbols: std::collections::HashSet<&str> = std::str::from_utf8(&nm.stdout)
        .unwrap_or("")
        .lines()
        .filter_map(|l| l.split_whitespace().nth(2))
        .collect();
    let found = listed
        .iter()
        .filter(|n| symbols.contains(n.as_str()))
        .count();
    Ok((found, listed.len()))
}

/// The 1-minute load average of the machine (`/proc/loadavg`).
pub fn load_average() -> Option<f64> {
    std::fs::read_to_string("/proc/loadavg")
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// CPU time of a process to the nanosecond, for figures too small for `/proc/<pid>/stat`'s
/// clock ticks (an idle agent uses a few ticks a minute): the sum of its threads' run time
/// (`/proc/<pid>/task/*/schedstat`). A thread that ends takes the time since the last
/// [`CpuTracker::sample`] with it, so sample often (every second loses at most a second of
/// a thread that ends).
#[derive(Debug, Default)]
pub struct CpuTracker {
    pid: u32,
    /// Run time of every thread seen, by thread id.
    threads: std::collections::HashMap<u32, u64>,
    /// Context switches of every thread seen, by thread id.
    switches: std::collections::HashMap<u32, u64>,
}

impl CpuTracker {
    /// Starts tracking `pid` (takes a first sample).
    pub fn new(pid: u32) -> CpuTracker {
        let mut t = CpuTracker {
            pid,
            ..CpuTracker::default()
        };
        t.sample();
        t
    }

    /// Reads every thread's run time and context switches now.
    pub fn sample(&mut self) {
        let Ok(tasks) = std::fs::read_dir(format!("/proc/{}/task", self.pid)) else {
            return;
        };
        for task in tasks.flatten() {
            let Some(tid) = task.file_name().to_str().and_then(|n| n.parse().ok()) else {
                continue;
            };
            if let Some(ns) = std::fs::read_to_string(task.path().join("schedstat"))
                .ok()
                .and_then(|s| s.split_whitespace().next()?.parse::<u64>().ok())
            {
                self.threads.insert(tid, ns);
            }
            if let Ok(status) = std::fs::read_to_string(task.path().join("status")) {
                let n: u64 = status
                    .lines()
                    .filter(|l| l.contains("ctxt_switches:"))
                    .filter_map(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
                    .sum();
                self.switches.insert(tid, n);
            }
        }
    }

    /// CPU seconds of every thread seen so far (since each one started).
    pub fn cpu_seconds(&self) -> f64 {
        self.threads.values().sum::<u64>() as f64 / 1e9
    }

    /// Context switches (voluntary and not) of every thread seen so far: how often the
    /// process woke up, about.
    pub fn context_switches(&self) -> u64 {
        self.switches.values().sum()
    }
}

/// Sum of the sizes of all files under `dir` (recursively); 0 if it does not exist.
pub fn dir_size(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    let mut total = 0;
    for entry in entries.flatten() {
        let Ok(meta) = entry.metadata() else { continue };
        if meta.is_dir() {
            total += dir_size(&entry.path());
        } else {
            total += meta.len();
        }
    }
    total
}

/// Every file under `dir` with its size, sorted by path (for failure messages).
pub fn list_files(dir: &Path) -> Vec<(PathBuf, u64)> {
    let mut out = Vec::new();
    fn walk(dir: &Path, out: &mut Vec<(PathBuf, u64)>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for entry in entries.flatten() {
            let Ok(meta) = entry.metadata() else { continue };
            if meta.is_dir() {
                walk(&entry.path(), out);
            } else {
                out.push((entry.path(), meta.len()));
            }
        }
    }
    walk(dir, &mut out);
    out.sort();
    out
}

/// A short description of the files under `dir` for failure messages: how many, their total
/// size, and the `max` largest.
pub fn describe_files(dir: &Path, max: usize) -> String {
    let mut files = list_files(dir);
    let total: u64 = files.iter().map(|(_, n)| n).sum();
    let count = files.len();
    files.sort_by_key(|f| std::cmp::Reverse(f.1));
    let shown: Vec<String> = files
        .iter()
        .take(max)
        .map(|(p, n)| format!("{} ({n} B)", p.strip_prefix(dir).unwrap_or(p).display()))
        .collect();
    format!(
        "{count} files, {total} bytes; largest: {}",
        shown.join(", ")
    )
}

/// Polls `child` every 20 ms until it exits (its status) or `timeout` passes (`None`).
pub fn wait_for_exit(
    child: &mut std::process::Child,
    timeout: std::time::Duration,
) -> std::io::Result<Option<std::process::ExitStatus>> {
    let deadline = std::time::Instant::now() + timeout;
    loop {
        if let Some(status) = child.try_wait()? {
            return Ok(Some(status));
        }
        if std::time::Instant::now() > deadline {
            return Ok(None);
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// Stops `child` by its PID: SIGTERM, then SIGKILL if it has not exited within `grace`;
/// reaps it either way.
pub fn terminate(mut child: std::process::Child, grace: std::time::Duration) {
    let _ = send_signal(child.id(), libc::SIGTERM);
    if !matches!(wait_for_exit(&mut child, grace), Ok(Some(_))) {
        let _ = child.kill();
        let _ = child.wait();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rss_by_file_lists_this_test_binary_largest_first() {
        let me = std::env::current_exe().unwrap();
        let files = rss_by_file(std::process::id()).unwrap();
        assert!(files.windows(2).all(|w| w[0].1 >= w[1].1), "{files:?}");
        let (_, bytes) = files
            .iter()
            .find(|(f, _)| Path::new(f) == me)
            .unwrap_or_else(|| panic!("{} not among {files:?}", me.display()));
        assert!(*bytes > 0);
    }

    #[test]
    fn a_binary_older_than_the_sources_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let bin = dir.path().join("logops-ingest");
        let f = std::fs::File::create(&bin).unwrap();
        f.set_modified(std::time::UNIX_EPOCH + std::time::Duration::from_secs(1))
            .unwrap();
        drop(f);
        if std::env::var_os("LOGOPS_E2E_ALLOW_STALE").is_none() {
            let e = check_fresh(&bin).unwrap_err().to_string();
            assert!(e.contains("cargo build --workspace --bins"), "{e}");
        }
        let f = std::fs::File::options().write(true).open(&bin).unwrap();
        f.set_modified(std::time::SystemTime::now() + std::time::Duration::from_secs(3600))
            .unwrap();
        drop(f);
        check_fresh(&bin).unwrap();
    }
}
