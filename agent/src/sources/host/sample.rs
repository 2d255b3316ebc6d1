//! [`HostSampler`]: one sample of the host's metrics as events.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::ffi::CString;
use std::fmt::Write as _;
use std::mem::MaybeUninit;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use logops_common::event::Event;
use logops_common::Timestamp;
use sysinfo::{DiskRefreshKind, Disks, MemoryRefreshKind, System};

use super::procfs::{self, CpuId, CpuTimes, Issue};
use crate::config::HostConfig;
use crate::sources::metric::Metrics;

/// The `source` of host events.
pub const SOURCE: &str = "host";

/// The CPU usage ratio is left out of a sample taken sooner than this after the previous
/// reading: at 100 ticks a second a shorter window is mostly rounding.
const MIN_RATIO_WINDOW: Duration = Duration::from_millis(500);

/// node_exporter's CPU jump-back limit: idle going back by this much is a CPU hotplug.
const JUMP_BACK_SECONDS: u64 = 3;

/// At most this many distinct problems are remembered as "already logged".
const MAX_LOGGED: usize = 512;

/// Which mounts and interfaces are left out.
#[derive(Debug, Clone, Default)]
pub struct Exclusions {
    fs_types: HashSet<String>,
    mounts: Vec<glob::Pattern>,
    interfaces: Vec<glob::Pattern>,
}

impl Exclusions {
    /// The rules of a `[host]` section. Patterns that are not globs (the configuration check
    /// reports them) are logged and ignored.
    pub fn new(cfg: &HostConfig) -> Self {
        let patterns = |list: &[String], what: &str| {
            list.iter()
                .filter_map(|p| match glob::Pattern::new(p) {
                    Ok(p) => Some(p),
                    Err(e) => {
                        tracing::warn!(pattern = %p, error = %e, "host metrics: ignoring an {what} pattern that is not a glob");
                        None
                    }
                })
                .collect()
        };
        Exclusions {
            fs_types: cfg.exclude_fs_types.iter().cloned().collect(),
            mounts: patterns(&cfg.exclude_mounts, "exclude_mounts"),
            interfaces: patterns(&cfg.exclude_interfaces, "exclude_interfaces"),
        }
    }

    /// Whether a filesystem is left out: its type is in `exclude_fs_types` or its mount point
    /// matches an `exclude_mounts` glob.
    pub fn filesystem(&self, fstype: &str, mountpoint: &str) -> bool {
        self.fs_types.contains(fstype) || self.mounts.iter().any(|p| p.matches(mountpoint))
    }

    /// Whether an interface matches an `exclude_interfaces` glob.
    pub fn interface(&self, name: &str) -> bool {
        self.interfaces.iter().any(|p| p.matches(name))
    }
}

/// Logs each distinct problem once (at warn), then only at debug.
#[derive(Debug, Default)]
struct LogOnce {
    seen: HashSet<String>,
}

impl LogOnce {
    /// True the first time `key` is seen.
    fn first(&mut self, key: String) -> bool {
        if self.seen.contains(&key) {
            return false;
        }
        if self.seen.len() < MAX_LOGGED {
            self.seen.insert(key);
        }
        true
    }

    fn problem(&mut self, path: &str, what: &str, detail: &dyn std::fmt::Display) {
        if self.first(format!("{path}\0{what}")) {
            tracing::warn!(
                path,
                "host metrics: {what}: {detail} (skipped; logged once)"
            );
        } else {
            tracing::debug!(path, "host metrics: {what}: {detail} (skipped)");
        }
    }

    fn issues(&mut self, path: &str, issues: &mut Vec<Issue>) {
        for i in issues.drain(..) {
            let detail = if i.line == 0 {
                "in the whole file".to_owned()
            } else {
                format!("line {}: `{}`", i.line, i.text)
            };
            self.problem(path, i.what, &detail);
        }
    }
}

/// Samples host metrics. Keeps its state between samples (sysinfo's lists, the previous CPU
/// times, read buffers), so a sample costs a few reads of `/proc` and one `statvfs` per
/// filesystem.
pub struct HostSampler {
    excl: Exclusions,
    host: Arc<str>,
    agent_labels: Arc<BTreeMap<String, String>>,
    system: Option<System>,
    disks: Option<Disks>,
    user_hz: u64,
    /// The last CPU reading (made monotone).
    prev_cpu: HashMap<CpuId, CpuTimes>,
    /// The reading the usage ratio is computed from, and when it was taken.
    ratio_base: HashMap<CpuId, CpuTimes>,
    ratio_base_at: Instant,
    proc_root: PathBuf,
    buf: String,
    issues: Vec<Issue>,
    log: LogOnce,
}

impl HostSampler {
    /// A sampler for `cfg`. Events have the hostname as `host` and no agent labels until
    /// [`HostSampler::with_identity`]. Takes a first CPU reading, so that the first sample
    /// (taken at least half a second later) has a CPU usage ratio.
    pub fn new(cfg: &HostConfig) -> Self {
        let mut log = LogOnce::default();
        // SAFETY: sysconf has no preconditions.
        let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
        let user_hz = if hz > 0 {
            hz as u64
        } else {
            log.problem(
                "sysconf(_SC_CLK_TCK)",
                "no clock tick rate",
                &"assuming 100",
            );
            100
        };
        let system = match System::new() {
            Ok(s) => Some(s),
            Err(e) => {
                log.problem("/proc/meminfo", "sysinfo is not available", &e);
                None
            }
        };
        let disks = match Disks::new() {
            Ok(d) => Some(d),
            Err(e) => {
                log.problem("/proc/mounts", "sysinfo is not available", &e);
                None
            }
        };
        let mut s = HostSampler {
            excl: Exclusions::new(cfg),
            host: Arc::from(crate::config::hostname()),
            agent_labels: Arc::default(),
            system,
            disks,
            user_hz,
            prev_cpu: HashMap::new(),
            ratio_base: HashMap::new(),
            ratio_base_at: Instant::now(),
            proc_root: PathBuf::from(procfs::PROC),
            buf: String::new(),
            issues: Vec::new(),
            log,
        };
        s.cpu_baseline();
        s
    }

    /// Sets the events' `host` (the agent id) and the agent's labels (merged into every
    /// event's labels; the metric's own win).
    pub fn with_identity(
        mut self,
        host: impl Into<Arc<str>>,
        agent_labels: Arc<BTreeMap<String, String>>,
    ) -> Self {
        self.host = host.into();
        self.agent_labels = agent_labels;
        self
    }

    /// Reads `stat`, `diskstats` and `net/dev` under `root` instead of `/proc` (for tests;
    /// what comes from sysinfo still comes from `/proc`).
    pub fn with_proc_root(mut self, root: impl Into<PathBuf>) -> Self {
        self.proc_root = root.into();
        self.cpu_baseline();
        self
    }

    /// One sample: every metric as an event, all with the same timestamp. What cannot be read
    /// is logged once and left out.
    pub fn sample(&mut self) -> Vec<Event<'static>> {
        let mut out = Metrics::new(
            Timestamp::now(),
            self.host.clone(),
            SOURCE,
            self.agent_labels.clone(),
        );
        out.events.reserve(128);
        self.cpu_and_boot(&mut out);
        self.memory(&mut out);
        self.filesystems(&mut out);
        self.disk_io(&mut out);
        self.network(&mut out);
        self.load_and_uptime(&mut out);
        for name in std::mem::take(&mut out.bad_values) {
            self.log.problem(
                name,
                "a value that is not finite (or a negative counter)",
                &"left out",
            );
        }
        out.events
    }

    /// Reads a file of procfs into `self.buf`; its path to show in messages, or `None` (the
    /// error logged once) if it cannot be read.
    fn read(&mut self, file: &str) -> Option<String> {
        let path = self.proc_root.join(file);
        let shown = path.display().to_string();
        match procfs::read_into(&path, &mut self.buf) {
            Ok(()) => Some(shown),
            Err(e) => {
                self.log.problem(&shown, "cannot read", &e);
                None
            }
        }
    }

    fn read_stat(&mut self) -> Option<procfs::Stat> {
        let path = self.read(procfs::STAT)?;
        let stat = procfs::parse_stat(&self.buf, &mut self.issues);
        self.log.issues(&path, &mut self.issues);
        Some(stat)
    }

    /// Takes the CPU reading the next sample's usage ratio starts from.
    fn cpu_baseline(&mut self) {
        self.prev_cpu.clear();
        if let Some(stat) = self.read_stat() {
            self.prev_cpu = stat.cpus.into_iter().collect();
        }
        self.ratio_base = self.prev_cpu.clone();
        self.ratio_base_at = Instant::now();
    }

    fn cpu_and_boot(&mut self, out: &mut Metrics) {
        let Some(stat) = self.read_stat() else { return };
        let now = Instant::now();
        let with_ratio = now.duration_since(self.ratio_base_at) >= MIN_RATIO_WINDOW;
        let hz = self.user_hz as f64;
        let mut label = String::new();
        for &(id, times) in &stat.cpus {
            let times = match self.prev_cpu.get(&id) {
                Some(p) => times.monotone_after(p, JUMP_BACK_SECONDS * self.user_hz),
                None => times,
            };
            self.prev_cpu.insert(id, times);
            label.clear();
            match id {
                CpuId::Total => label.push_str("total"),
                CpuId::Core(n) => {
                    let _ = write!(label, "{n}");
                }
            }
            for (mode, ticks) in CpuTimes::MODES.iter().zip(times.modes()) {
                out.counter(
                    "host_cpu_seconds_total",
                    &[("cpu", &label), ("mode", mode)],
                    ticks as f64 / hz,
                );
            }
            let base = self.ratio_base.get(&id);
            if with_ratio {
                if let Some(ratio) = base.and_then(|b| times.busy_ratio_since(b)) {
                    out.gauge("host_cpu_usage_ratio", &[("cpu", &label)], ratio);
                }
            }
            if with_ratio || base.is_none() {
                self.ratio_base.insert(id, times);
            }
        }
        if with_ratio {
            self.ratio_base_at = now;
        }
        if let Some(btime) = stat.btime {
            out.gauge("host_boot_time_seconds", &[], btime as f64);
        }
    }

    fn memory(&mut self, out: &mut Metrics) {
        let Some(sys) = &mut self.system else { return };
        sys.refresh_memory_specifics(MemoryRefreshKind::everything());
        let total = sys.total_memory();
        if total == 0 {
            self.log
                .problem("/proc/meminfo", "no MemTotal", &"memory left out");
            return;
        }
        out.gauge("host_memory_total_bytes", &[], total as f64);
        out.gauge("host_memory_used_bytes", &[], sys.used_memory() as f64);
        out.gauge(
            "host_memory_available_bytes",
            &[],
            sys.available_memory() as f64,
        );
        out.gauge("host_swap_total_bytes", &[], sys.total_swap() as f64);
        out.gauge("host_swap_used_bytes", &[], sys.used_swap() as f64);
    }

    fn filesystems(&mut self, out: &mut Metrics) {
        let Some(disks) = &mut self.disks else { return };
        // The list (from /proc/mounts) and size/available (statvfs); not the IO counters
        // (per mount, read below per device) nor the disk kind.
        disks.refresh_specifics(true, DiskRefreshKind::nothing().with_storage());
        let mut seen = HashSet::new();
        for disk in disks.iter() {
            let mount = disk.mount_point();
            let mountpoint = mount.to_string_lossy();
            let fstype = disk.file_system().to_string_lossy();
            let device = disk.name().to_string_lossy();
            if self.excl.filesystem(&fstype, &mountpoint)
                || !seen.insert((device.clone(), mountpoint.clone()))
            {
                continue;
            }
            let size = disk.total_space();
            if size == 0 {
                continue; // statvfs failed or a pseudo filesystem
            }
            let labels = [
                ("mountpoint", &*mountpoint),
                ("device", &*device),
                ("fstype", &*fstype),
            ];
            out.gauge("host_filesystem_size_bytes", &labels, size as f64);
            out.gauge(
                "host_filesystem_avail_bytes",
                &labels,
                disk.available_space() as f64,
            );
            match statvfs(mount) {
                Ok(st) => {
                    let free = st.free_bytes();
                    out.gauge("host_filesystem_free_bytes", &labels, free as f64);
                    out.gauge(
                        "host_filesystem_used_bytes",
                        &labels,
                        size.saturating_sub(free) as f64,
                    );
                    out.gauge("host_filesystem_files", &labels, st.files as f64);
                    out.gauge("host_filesystem_files_free", &labels, st.files_free as f64);
                }
                Err(e) => self.log.problem(&mountpoint, "statvfs failed", &e),
            }
        }
    }

    fn disk_io(&mut self, out: &mut Metrics) {
        let Some(path) = self.read(procfs::DISKSTATS) else {
            return;
        };
        for d in procfs::parse_diskstats(&self.buf, &mut self.issues) {
            if procfs::disk_excluded(d.name) {
                continue;
            }
            let l = [("device", d.name)];
            let bytes = |sectors: u64| sectors.saturating_mul(procfs::SECTOR_BYTES) as f64;
            out.counter("host_disk_read_bytes_total", &l, bytes(d.sectors_read));
            out.counter(
                "host_disk_written_bytes_total",
                &l,
                bytes(d.sectors_written),
            );
            out.counter(
                "host_disk_reads_completed_total",
                &l,
                d.reads_completed as f64,
            );
            out.counter(
                "host_disk_writes_completed_total",
                &l,
                d.writes_completed as f64,
            );
            out.counter(
                "host_disk_io_time_seconds_total",
                &l,
                d.io_time_ms as f64 / 1000.0,
            );
        }
        self.log.issues(&path, &mut self.issues);
    }

    fn network(&mut self, out: &mut Metrics) {
        let Some(path) = self.read(procfs::NET_DEV) else {
            return;
        };
        for n in procfs::parse_net_dev(&self.buf, &mut self.issues) {
            if self.excl.interface(n.name) {
                continue;
            }
            let l = [("device", n.name)];
            for (name, v) in [
                ("host_network_receive_bytes_total", n.rx_bytes),
                ("host_network_receive_packets_total", n.rx_packets),
                ("host_network_receive_errs_total", n.rx_errs),
                ("host_network_receive_drop_total", n.rx_drop),
                ("host_network_transmit_bytes_total", n.tx_bytes),
                ("host_network_transmit_packets_total", n.tx_packets),
                ("host_network_transmit_errs_total", n.tx_errs),
                ("host_network_transmit_drop_total", n.tx_drop),
            ] {
                out.counter(name, &l, v as f64);
            }
        }
        self.log.issues(&path, &mut self.issues);
    }

    fn load_and_uptime(&mut self, out: &mut Metrics) {
        match System::load_average() {
            Ok(l) => {
                out.gauge("host_load1", &[], l.one);
                out.gauge("host_load5", &[], l.five);
                out.gauge("host_load15", &[], l.fifteen);
            }
            Err(e) => self.log.problem("/proc/loadavg", "cannot read", &e),
        }
        match System::uptime() {
            Ok(u) => out.gauge("host_uptime_seconds", &[], u as f64),
            Err(e) => self.log.problem("/proc/uptime", "cannot read", &e),
        }
    }
}

/// What `statvfs` adds to sysinfo's size and available space.
#[derive(Debug, Clone, Copy)]
struct FsStat {
    frsize: u64,
    bfree: u64,
    files: u64,
    files_free: u64,
}

impl FsStat {
    fn free_bytes(&self) -> u64 {
        self.bfree.saturating_mul(self.frsize)
    }
}

fn statvfs(path: &Path) -> std::io::Result<FsStat> {
    let c = CString::new(path.as_os_str().as_bytes())?;
    let mut st = MaybeUninit::<libc::statvfs>::uninit();
    loop {
        // SAFETY: `c` is NUL-terminated and `st` is valid for writes of a statvfs.
        if unsafe { libc::statvfs(c.as_ptr(), st.as_mut_ptr()) } == 0 {
            break;
        }
        let e = std::io::Error::last_os_error();
        if e.kind() != std::io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
    // SAFETY: statvfs returned 0, so it filled `st`.
    let st = unsafe { st.assume_init() };
    #[allow(clippy::unnecessary_cast)] // the field widths vary by target (32-bit: c_ulong)
    Ok(FsStat {
        frsize: st.f_frsize as u64,
        bfree: st.f_bfree as u64,
        files: st.f_files as u64,
        files_free: st.f_ffree as u64,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use logops_common::event::{MetricValue, Payload};
    use logops_common::Kind;

    fn cfg() -> HostConfig {
        HostConfig::default()
    }

    #[test]
    fn default_exclusions() {
        let e = Exclusions::new(&cfg());
        for (fstype, mount) in [
            ("tmpfs", "/dev/shm"),
            ("tmpfs", "/tmp"),
            ("ext4", "/proc/fs/x"),
            ("ext4", "/sys/fs/cgroup"),
            ("ext4", "/run/user/1000"),
            ("ext4", "/dev/sda"),
            ("overlay", "/var/lib/docker/overlay2/x/merged"),
            ("squashfs", "/snap/core/1"),
            ("cgroup2", "/sys/fs/cgroup/unified"),
            ("nsfs", "/run/netns/a"),
        ] {
            assert!(
                e.filesystem(fstype, mount),
                "{fstype} {mount} should be excluded"
            );
        }
        for (fstype, mount) in [
            ("ext4", "/"),
            ("xfs", "/var"),
            ("vfat", "/boot/efi"),
            ("btrfs", "/home"),
            ("ext4", "/run"),
            ("ext4", "/devices"),
        ] {
            assert!(
                !e.filesystem(fstype, mount),
                "{fstype} {mount} should be kept"
            );
        }
        assert!(e.interface("lo"));
        for name in ["eth0", "lo0", "lo1", "ens3", "wlan0"] {
            assert!(!e.interface(name), "{name}");
        }
    }

    #[test]
    fn configured_exclusions_and_bad_patterns() {
        let c = HostConfig {
            exclude_fs_types: vec!["xfs".into()],
            exclude_mounts: vec!["/mnt/**".into(), "/data[".into(), "/srv/backup?".into()],
            exclude_interfaces: vec!["veth*".into(), "docker?".into(), "br-[0-9a-f]*".into()],
            ..cfg()
        };
        let e = Exclusions::new(&c);
        assert!(e.filesystem("xfs", "/"));
        assert!(
            !e.filesystem("tmpfs", "/dev/shm"),
            "only the configured types"
        );
        assert!(e.filesystem("ext4", "/mnt/a/b"));
        assert!(e.filesystem("ext4", "/srv/backup1"));
        assert!(!e.filesystem("ext4", "/srv/backup10"));
        assert!(
            !e.filesystem("ext4", "/data["),
            "the bad pattern is ignored"
        );
        assert!(e.interface("veth12ab"));
        assert!(e.interface("docker0"));
        assert!(e.interface("br-1f2e"));
        assert!(!e.interface("lo"), "lo is only excluded by default");
        assert!(!e.interface("eth0"));
    }

    #[test]
    fn log_once_remembers_a_bounded_number_of_problems() {
        let mut l = LogOnce::default();
        assert!(l.first("a".into()));
        assert!(!l.first("a".into()));
        for i in 0..2 * MAX_LOGGED {
            l.first(i.to_string());
        }
        assert_eq!(l.seen.len(), MAX_LOGGED);
    }

    #[test]
    fn missing_and_odd_proc_files_are_logged_once_and_left_out() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("stat"),
            "cpu 1 2 x\ncpu0 100 0 50 800\n\u{0}\u{1}garbage\n",
        )
        .unwrap();
        // No diskstats, no net/dev.
        let mut s = HostSampler::new(&cfg()).with_proc_root(dir.path());
        let mut names = HashSet::new();
        for _ in 0..3 {
            for e in s.sample() {
                if let Payload::Metric { name, .. } = e.payload {
                    names.insert(name.into_owned());
                }
            }
        }
        assert!(names.contains("host_cpu_seconds_total"));
        assert!(
            names.contains("host_memory_total_bytes"),
            "sysinfo's part goes on"
        );
        assert!(names.contains("host_load1"));
        for absent in [
            "host_boot_time_seconds",
            "host_disk_read_bytes_total",
            "host_network_receive_bytes_total",
        ] {
            assert!(!names.contains(absent), "{absent}");
        }
        let root = dir.path().display();
        let mut logged: Vec<_> = s.log.seen.iter().map(|k| k.replace('\0', " | ")).collect();
        logged.sort();
        assert_eq!(
            logged,
            [
                format!("{root}/diskstats | cannot read"),
                format!("{root}/net/dev | cannot read"),
                format!("{root}/stat | malformed cpu line"),
                format!("{root}/stat | no btime line"),
            ],
            "each problem once, with its path"
        );
    }

    fn find<'a>(
        events: &'a [Event<'static>],
        name: &str,
        labels: &[(&str, &str)],
    ) -> Option<&'a MetricValue> {
        events.iter().find_map(|e| match &e.payload {
            Payload::Metric { name: n, value }
                if n == name
                    && labels
                        .iter()
                        .all(|(k, v)| e.labels.get(*k).map(|x| x.as_ref()) == Some(*v)) =>
            {
                Some(value)
            }
            _ => None,
        })
    }

    fn value(events: &[Event<'static>], name: &str, labels: &[(&str, &str)]) -> f64 {
        match find(events, name, labels) {
            Some(MetricValue::Gauge(v) | MetricValue::Counter(v)) => *v,
            other => panic!("{name} {labels:?}: {other:?}"),
        }
    }

    #[test]
    fn a_sample_of_this_machine() {
        let labels: BTreeMap<String, String> = [
            ("env".to_owned(), "test".to_owned()),
            ("device".to_owned(), "overridden".to_owned()),
        ]
        .into();
        let mut s = HostSampler::new(&cfg()).with_identity("test-host", Arc::new(labels));
        let first = s.sample();
        std::thread::sleep(MIN_RATIO_WINDOW + Duration::from_millis(100));
        let events = s.sample();

        let ts = events[0].ts;
        for e in first.iter().chain(&events) {
            assert_eq!(e.kind(), Kind::Metric);
            assert_eq!((e.host.as_ref(), e.source.as_ref()), ("test-host", "host"));
            assert_eq!(e.labels.get("env").map(|v| v.as_ref()), Some("test"));
            // Every event is valid on the wire.
            let line = e.to_json();
            logops_common::parse_line(&line, 1).unwrap_or_else(|err| panic!("{line}: {err}"));
        }
        assert!(
            events.iter().all(|e| e.ts == ts),
            "one timestamp per sample"
        );

        // The first sample comes too soon after `new` for a usage ratio; the second has one.
        assert!(find(&first, "host_cpu_usage_ratio", &[]).is_none());
        let ncpu = std::thread::available_parallelism().map_or(1, |n| n.get());
        for cpu in std::iter::once("total".to_owned()).chain((0..ncpu).map(|n| n.to_string())) {
            let r = value(&events, "host_cpu_usage_ratio", &[("cpu", &cpu)]);
            assert!((0.0..=1.0).contains(&r), "{cpu}: {r}");
            for mode in CpuTimes::MODES {
                let v = find(
                    &events,
                    "host_cpu_seconds_total",
                    &[("cpu", &cpu), ("mode", mode)],
                );
                assert!(matches!(v, Some(MetricValue::Counter(_))), "{cpu} {mode}");
            }
        }
        let total = value(&events, "host_memory_total_bytes", &[]);
        let avail = value(&events, "host_memory_available_bytes", &[]);
        let used = value(&events, "host_memory_used_bytes", &[]);
        assert!(total > 0.0 && avail <= total && used == total - avail);
        assert!(
            value(&events, "host_swap_used_bytes", &[])
                <= value(&events, "host_swap_total_bytes", &[])
        );

        // The root filesystem, with the metric's own `device` label winning over the agent's.
        let root = [("mountpoint", "/")];
        let size = value(&events, "host_filesystem_size_bytes", &root);
        let free = value(&events, "host_filesystem_free_bytes", &root);
        let avail = value(&events, "host_filesystem_avail_bytes", &root);
        assert!(size > 0.0 && avail <= free && free <= size);
        assert_eq!(
            value(&events, "host_filesystem_used_bytes", &root),
            size - free
        );
        assert!(
            value(&events, "host_filesystem_files", &root)
                >= value(&events, "host_filesystem_files_free", &root)
        );
        let rootfs = events
            .iter()
            .find(|e| e.labels.get("mountpoint").map(|m| m.as_ref()) == Some("/"))
            .unwrap();
        assert_ne!(rootfs.labels["device"], "overridden");
        // No pseudo or excluded filesystem, each device+mount once.
        let mut mounts = HashSet::new();
        for e in &events {
            if let Payload::Metric { name, .. } = &e.payload {
                if name == "host_filesystem_size_bytes" {
                    let fstype = &e.labels["fstype"];
                    assert!(
                        !cfg().exclude_fs_types.iter().any(|t| t == fstype),
                        "{fstype}"
                    );
                    let m = (e.labels["device"].clone(), e.labels["mountpoint"].clone());
                    assert!(mounts.insert(m.clone()), "{m:?} twice");
                }
                if name.starts_with("host_disk_") {
                    assert!(!procfs::disk_excluded(&e.labels["device"]));
                }
                if name.starts_with("host_network_") {
                    assert_ne!(e.labels["device"], "lo");
                }
            }
        }
        for name in [
            "host_load1",
            "host_load5",
            "host_load15",
            "host_uptime_seconds",
            "host_boot_time_seconds",
        ] {
            assert!(value(&events, name, &[]) >= 0.0, "{name}");
        }
        let boot = value(&events, "host_boot_time_seconds", &[]);
        let up = value(&events, "host_uptime_seconds", &[]);
        let now = ts.as_nanos() as f64 / 1e9;
        assert!(
            (boot + up - now).abs() < 5.0,
            "boot {boot} + uptime {up} ≈ now {now}"
        );
    }
}
