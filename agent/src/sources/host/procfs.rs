//! Parsers of the `/proc` files sysinfo does not cover the way the host source needs:
//! `/proc/stat` (CPU time per mode, boot time), `/proc/diskstats` (IO per block device) and
//! `/proc/net/dev` (traffic, errors and drops per interface).
//!
//! They are pure functions of the file's text: they never panic, borrow names from the text
//! (nothing is allocated per device), skip what they cannot read and report it as an
//! [`Issue`] for the caller to log.

use std::fs::File;
use std::io::{self, Read};
use std::path::Path;
use std::sync::LazyLock;

/// Where procfs is mounted.
pub const PROC: &str = "/proc";
/// `/proc/stat`, relative to [`PROC`].
pub const STAT: &str = "stat";
/// `/proc/diskstats`, relative to [`PROC`].
pub const DISKSTATS: &str = "diskstats";
/// `/proc/net/dev`, relative to [`PROC`].
pub const NET_DEV: &str = "net/dev";

/// Something in a file that was skipped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Issue {
    /// 1-based line number; 0 when it is about the whole file.
    pub line: usize,
    /// What was wrong (a fixed text: it is the key under which it is logged once).
    pub what: &'static str,
    /// The line (shortened), or empty.
    pub text: String,
}

impl Issue {
    fn at(line: usize, what: &'static str, text: &str) -> Self {
        const MAX: usize = 120;
        let text = match text.char_indices().nth(MAX) {
            Some((cut, _)) => format!("{}...", &text[..cut]),
            None => text.to_owned(),
        };
        Issue { line, what, text }
    }

    fn file(what: &'static str) -> Self {
        Issue {
            line: 0,
            what,
            text: String::new(),
        }
    }
}

/// Reads a whole (proc) file into `buf` (cleared first), reusing its allocation.
pub fn read_into(path: &Path, buf: &mut String) -> io::Result<()> {
    buf.clear();
    File::open(path)?.read_to_string(buf)?;
    Ok(())
}

/// Parses up to `N` whitespace-separated unsigned integers; `None` if one is not a number or
/// fewer than `min` are present.
fn numbers<const N: usize>(fields: &mut dyn Iterator<Item = &str>, min: usize) -> Option<[u64; N]> {
    let mut out = [0u64; N];
    let mut n = 0;
    for (slot, field) in out.iter_mut().zip(fields) {
        *slot = field.parse().ok()?;
        n += 1;
    }
    (n >= min).then_some(out)
}

// ---------------------------------------------------------------------------------------------
// /proc/stat

/// CPU time of one `cpu` line of `/proc/stat`, in USER_HZ ticks.
///
/// `user` and `nice` include `guest` and `guest_nice` (as the kernel reports them and as
/// node_exporter exports them); the guest columns are not kept.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CpuTimes {
    /// Normal processes in user mode.
    pub user: u64,
    /// Niced processes in user mode.
    pub nice: u64,
    /// Kernel mode.
    pub system: u64,
    /// Idle.
    pub idle: u64,
    /// Idle while IO was outstanding.
    pub iowait: u64,
    /// Servicing interrupts.
    pub irq: u64,
    /// Servicing softirqs.
    pub softirq: u64,
    /// Stolen by the hypervisor.
    pub steal: u64,
}

impl CpuTimes {
    /// The `mode` label values, in the order of [`CpuTimes::modes`].
    pub const MODES: [&'static str; 8] = [
        "user", "nice", "system", "idle", "iowait", "irq", "softirq", "steal",
    ];

    /// The ticks per mode, in the order of [`CpuTimes::MODES`].
    pub fn modes(&self) -> [u64; 8] {
        [
            self.user,
            self.nice,
            self.system,
            self.idle,
            self.iowait,
            self.irq,
            self.softirq,
            self.steal,
        ]
    }

    fn from_modes(m: [u64; 8]) -> Self {
        CpuTimes {
            user: m[0],
            nice: m[1],
            system: m[2],
            idle: m[3],
            iowait: m[4],
            irq: m[5],
            softirq: m[6],
            steal: m[7],
        }
    }

    /// All ticks (the eight modes).
    pub fn total(&self) -> u64 {
        self.modes().iter().fold(0u64, |a, &b| a.saturating_add(b))
    }

    /// Ticks not busy: idle and iowait (sysinfo's definition of idle time).
    pub fn idle_all(&self) -> u64 {
        self.idle.saturating_add(self.iowait)
    }

    /// These times, made monotone against the previous reading the way node_exporter does:
    /// a mode that went backwards (the kernel's iowait and idle can, by a few ticks) keeps its
    /// previous value, unless idle went back by `jump_back` ticks or more, which is a CPU
    /// hotplug: then the new reading is taken as it is.
    pub fn monotone_after(self, prev: &CpuTimes, jump_back: u64) -> CpuTimes {
        if prev.idle.saturating_sub(self.idle) >= jump_back {
            return self;
        }
        let (new, old) = (self.modes(), prev.modes());
        let mut out = [0; 8];
        for i in 0..8 {
            out[i] = new[i].max(old[i]);
        }
        CpuTimes::from_modes(out)
    }

    /// The busy share between `prev` and `self`: `1 − Δ(idle + iowait) / Δtotal`, in
    /// [0, 1]; `None` when no tick passed or a counter went backwards.
    pub fn busy_ratio_since(&self, prev: &CpuTimes) -> Option<f64> {
        let d_total = self.total().checked_sub(prev.total())?;
        let d_idle = self.idle_all().checked_sub(prev.idle_all())?;
        if d_total == 0 {
            return None;
        }
        Some((1.0 - d_idle as f64 / d_total as f64).clamp(0.0, 1.0))
    }
}

/// Which CPU a `/proc/stat` line is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum CpuId {
    /// The `cpu` line: all CPUs.
    Total,
    /// A `cpuN` line.
    Core(u32),
}

/// What the host source uses of `/proc/stat`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Stat {
    /// The `cpu` and `cpuN` lines, in file order.
    pub cpus: Vec<(CpuId, CpuTimes)>,
    /// `btime`: boot time, seconds since the Unix epoch.
    pub btime: Option<u64>,
}

/// Parses `/proc/stat`.
pub fn parse_stat(text: &str, issues: &mut Vec<Issue>) -> Stat {
    let mut stat = Stat::default();
    for (i, line) in text.lines().enumerate() {
        let mut fields = line.split_whitespace();
        let Some(key) = fields.next() else { continue };
        if let Some(n) = key.strip_prefix("cpu") {
            let id = if n.is_empty() {
                CpuId::Total
            } else if let Ok(n) = n.parse() {
                CpuId::Core(n)
            } else {
                issues.push(Issue::at(i + 1, "unknown cpu line", line));
                continue;
            };
            // user nice system idle are always there; iowait, irq, softirq (2.6), steal
            // (2.6.11) may not be.
            match numbers::<8>(&mut fields, 4) {
                Some(m) => stat.cpus.push((id, CpuTimes::from_modes(m))),
                None => issues.push(Issue::at(i + 1, "malformed cpu line", line)),
            }
        } else if key == "btime" {
            match fields.next().and_then(|v| v.parse().ok()) {
                Some(v) => stat.btime = Some(v),
                None => issues.push(Issue::at(i + 1, "malformed btime line", line)),
            }
        }
    }
    if stat.cpus.is_empty() {
        issues.push(Issue::file("no cpu line"));
    }
    if stat.btime.is_none() {
        issues.push(Issue::file("no btime line"));
    }
    stat
}

// ---------------------------------------------------------------------------------------------
// /proc/diskstats

/// One block device of `/proc/diskstats`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DiskStat<'a> {
    /// Device name (`vda`, `nvme0n1`, `dm-0`).
    pub name: &'a str,
    /// Reads completed.
    pub reads_completed: u64,
    /// Sectors read (512 bytes each, whatever the device's sector size).
    pub sectors_read: u64,
    /// Writes completed.
    pub writes_completed: u64,
    /// Sectors written.
    pub sectors_written: u64,
    /// Milliseconds spent doing IO.
    pub io_time_ms: u64,
}

/// The unit of `/proc/diskstats` sector counts.
pub const SECTOR_BYTES: u64 = 512;

/// Parses `/proc/diskstats` (14, 18 or 20 fields a line, depending on the kernel).
pub fn parse_diskstats<'a>(text: &'a str, issues: &mut Vec<Issue>) -> Vec<DiskStat<'a>> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let mut fields = line.split_whitespace();
        let (Some(_major), Some(_minor), Some(name)) =
            (fields.next(), fields.next(), fields.next())
        else {
            if !line.trim().is_empty() {
                issues.push(Issue::at(i + 1, "short diskstats line", line));
            }
            continue;
        };
        // reads, reads merged, sectors read, ms reading, writes, writes merged,
        // sectors written, ms writing, IOs in progress, ms doing IO.
        match numbers::<10>(&mut fields, 10) {
            Some(v) => out.push(DiskStat {
                name,
                reads_completed: v[0],
                sectors_read: v[2],
                writes_completed: v[4],
                sectors_written: v[6],
                io_time_ms: v[9],
            }),
            None => issues.push(Issue::at(i + 1, "malformed diskstats line", line)),
        }
    }
    out
}

/// node_exporter's default `--collector.diskstats.device-exclude`: partitions, RAM disks,
/// loop and floppy devices.
pub const NODE_DISK_EXCLUDE: &str = r"^(z?ram|loop|fd|(h|s|v|xv)d[a-z]|nvme[0-9]+n[0-9]+p)[0-9]+$";

static DISK_EXCLUDE: LazyLock<regex::Regex> =
    LazyLock::new(|| regex::Regex::new(NODE_DISK_EXCLUDE).expect("a valid regex"));

/// Whether a block device is left out of the disk IO metrics ([`NODE_DISK_EXCLUDE`]).
pub fn disk_excluded(name: &str) -> bool {
    DISK_EXCLUDE.is_match(name)
}

// ---------------------------------------------------------------------------------------------
// /proc/net/dev

/// One interface of `/proc/net/dev`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NetDev<'a> {
    /// Interface name.
    pub name: &'a str,
    /// Bytes received.
    pub rx_bytes: u64,
    /// Packets received.
    pub rx_packets: u64,
    /// Receive errors.
    pub rx_errs: u64,
    /// Received packets dropped (the kernel adds missed errors).
    pub rx_drop: u64,
    /// Bytes sent.
    pub tx_bytes: u64,
    /// Packets sent.
    pub tx_packets: u64,
    /// Transmit errors.
    pub tx_errs: u64,
    /// Packets dropped on transmit.
    pub tx_drop: u64,
}

/// Parses `/proc/net/dev` (two header lines, then `name: 8 receive and 8 transmit fields`).
pub fn parse_net_dev<'a>(text: &'a str, issues: &mut Vec<Issue>) -> Vec<NetDev<'a>> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.contains('|') || line.trim().is_empty() {
            continue; // the headers
        }
        // Interface names cannot contain ':'; old kernels glue a large first counter to it.
        let Some((name, rest)) = line.split_once(':') else {
            issues.push(Issue::at(i + 1, "net/dev line without `:`", line));
            continue;
        };
        let name = name.trim();
        match numbers::<16>(&mut rest.split_whitespace(), 12) {
            Some(v) if !name.is_empty() => out.push(NetDev {
                name,
                rx_bytes: v[0],
                rx_packets: v[1],
                rx_errs: v[2],
                rx_drop: v[3],
                tx_bytes: v[8],
                tx_packets: v[9],
                tx_errs: v[10],
                tx_drop: v[11],
            }),
            _ => issues.push(Issue::at(i + 1, "malformed net/dev line", line)),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// This machine's `/proc/stat` (Linux 6.18, 2 vCPUs; `intr` shortened).
    const STAT_TEXT: &str = "\
cpu  184238 0 40155 175351 2223 0 421 2606 0 0
cpu0 91388 0 19243 89810 683 0 73 1284 0 0
cpu1 92849 0 20912 85540 1540 0 347 1321 0 0
intr 1287300 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 1 1 16 0 0 0 0 381 243 0
ctxt 1941780
btime 1795343558
processes 60980
procs_running 10
procs_blocked 0
softirq 756594 0 113870 4 20691 204911 0 432 123422 1133 292131
";

    /// This machine's `/proc/diskstats` (Linux 6.18: 20 fields a line).
    const DISKSTATS_TEXT: &str = "\
   7       0 loop0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0
   7       1 loop1 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0
 254       0 vda 190728 10286 12271402 502490 138539 64646 37402432 181842 0 59148 720725 24982 36 14636728 29920 37197 6472
 253       0 zram0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0
";

    /// This machine's `/proc/net/dev`.
    const NET_DEV_TEXT: &str = "\
Inter-|   Receive                                                |  Transmit
 face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed
    lo: 288071186   17956    0    0    0     0          0         0 288071186   17956    0    0    0     0       0          0
  ifb0:       0       0    0    0    0     0          0         0        0       0    0    0    0     0       0          0
  ifb1:       0       0    0    0    0     0          0         0        0       0    0    0    0     0       0          0
  eth0: 131941565    7424    0    0    0     0          0         0   557230    4932    0    0    0     0       0          0
";

    #[test]
    fn stat_of_this_machine() {
        let mut issues = Vec::new();
        let s = parse_stat(STAT_TEXT, &mut issues);
        assert!(issues.is_empty(), "{issues:?}");
        assert_eq!(s.btime, Some(1795343558));
        assert_eq!(s.cpus.len(), 3);
        assert_eq!(
            s.cpus[0],
            (
                CpuId::Total,
                CpuTimes {
                    user: 184238,
                    nice: 0,
                    system: 40155,
                    idle: 175351,
                    iowait: 2223,
                    irq: 0,
                    softirq: 421,
                    steal: 2606,
                }
            )
        );
        assert_eq!(s.cpus[2].0, CpuId::Core(1));
        assert_eq!(s.cpus[2].1.steal, 1321);
        assert_eq!(
            s.cpus[0].1.total(),
            184238 + 40155 + 175351 + 2223 + 421 + 2606
        );
        assert_eq!(s.cpus[0].1.idle_all(), 175351 + 2223);
    }

    #[test]
    fn stat_old_kernels_and_odd_lines() {
        // A 2.4 kernel has four columns; the rest are zero.
        let mut issues = Vec::new();
        let s = parse_stat("cpu 1 2 3 4\ncpu0 1 2 3 4\nbtime 7\n", &mut issues);
        assert!(issues.is_empty(), "{issues:?}");
        assert_eq!(s.cpus[1].1.modes(), [1, 2, 3, 4, 0, 0, 0, 0]);

        let text = "cpu 1 2 3\ncpuX 1 2 3 4\ncpu0 1 2 x 4\ncpu1 5 6 7 8 9\nbtime soon\n\n";
        let mut issues = Vec::new();
        let s = parse_stat(text, &mut issues);
        assert_eq!(
            s.cpus,
            vec![(
                CpuId::Core(1),
                CpuTimes::from_modes([5, 6, 7, 8, 9, 0, 0, 0])
            )]
        );
        let whats: Vec<_> = issues.iter().map(|i| (i.line, i.what)).collect();
        assert_eq!(
            whats,
            vec![
                (1, "malformed cpu line"),
                (2, "unknown cpu line"),
                (3, "malformed cpu line"),
                (5, "malformed btime line"),
                (0, "no btime line"),
            ]
        );
        assert_eq!(issues[1].text, "cpuX 1 2 3 4");

        let mut issues = Vec::new();
        assert_eq!(parse_stat("", &mut issues), Stat::default());
        assert_eq!(issues.len(), 2);
        // Binary garbage does not panic.
        let mut issues = Vec::new();
        parse_stat(
            "cpu \u{0}\u{fffd} 1\ncpu18446744073709551616 1 2 3 4",
            &mut issues,
        );
        assert_eq!(issues.len(), 4);
    }

    #[test]
    fn busy_ratio_and_monotone_cpu_times() {
        let a = CpuTimes::from_modes([100, 0, 50, 800, 50, 0, 0, 0]);
        let b = CpuTimes::from_modes([160, 0, 70, 900, 70, 0, 0, 0]);
        // Δtotal 200, Δidle+iowait 120.
        assert_eq!(b.busy_ratio_since(&a), Some(0.4));
        assert_eq!(a.busy_ratio_since(&a), None);
        assert_eq!(a.busy_ratio_since(&b), None);

        // iowait went back by 2 ticks: it keeps its value, the rest moves on.
        let c = CpuTimes::from_modes([170, 0, 70, 910, 68, 0, 0, 0]);
        assert_eq!(
            c.monotone_after(&b, 300).modes(),
            [170, 0, 70, 910, 70, 0, 0, 0]
        );
        // Idle went back by more than the jump-back limit: a hotplugged CPU, taken as it is.
        let d = CpuTimes::from_modes([1, 0, 1, 2, 0, 0, 0, 0]);
        assert_eq!(d.monotone_after(&b, 300), d);
    }

    #[test]
    fn diskstats_of_this_machine() {
        let mut issues = Vec::new();
        let d = parse_diskstats(DISKSTATS_TEXT, &mut issues);
        assert!(issues.is_empty(), "{issues:?}");
        assert_eq!(d.len(), 4);
        assert_eq!(
            d[2],
            DiskStat {
                name: "vda",
                reads_completed: 190728,
                sectors_read: 12271402,
                writes_completed: 138539,
                sectors_written: 37402432,
                io_time_ms: 59148,
            }
        );
        let kept: Vec<_> = d
            .iter()
            .map(|d| d.name)
            .filter(|n| !disk_excluded(n))
            .collect();
        assert_eq!(kept, ["vda"]);
    }

    #[test]
    fn diskstats_old_format_and_odd_lines() {
        // Linux < 4.18: 14 fields.
        let text = "   8       0 sda 1 2 3 4 5 6 7 8 9 10 11\n\n 8 1\n 8 2 sdb 1 2 x 4 5 6 7 8 9 10 11\n 8 3 sdc 1 2 3\n";
        let mut issues = Vec::new();
        let d = parse_diskstats(text, &mut issues);
        assert_eq!(d.len(), 1);
        assert_eq!(
            (
                d[0].reads_completed,
                d[0].sectors_read,
                d[0].writes_completed
            ),
            (1, 3, 5)
        );
        assert_eq!((d[0].sectors_written, d[0].io_time_ms), (7, 10));
        let whats: Vec<_> = issues.iter().map(|i| (i.line, i.what)).collect();
        assert_eq!(
            whats,
            vec![
                (3, "short diskstats line"),
                (4, "malformed diskstats line"),
                (5, "malformed diskstats line"),
            ]
        );
    }

    #[test]
    fn disk_exclusion_follows_node_exporter() {
        for name in [
            "sda1",
            "sdz12",
            "vda1",
            "xvda3",
            "hda1",
            "nvme0n1p1",
            "nvme12n3p45",
            "loop0",
            "loop17",
            "ram0",
            "zram0",
            "fd0",
        ] {
            assert!(disk_excluded(name), "{name} should be excluded");
        }
        for name in [
            "sda",
            "vda",
            "xvdb",
            "nvme0n1",
            "dm-0",
            "md0",
            "mmcblk0",
            "mmcblk0p1",
            "sr0",
            "vdaa",
            "loop",
            "zram",
        ] {
            assert!(!disk_excluded(name), "{name} should be kept");
        }
    }

    #[test]
    fn net_dev_of_this_machine() {
        let mut issues = Vec::new();
        let n = parse_net_dev(NET_DEV_TEXT, &mut issues);
        assert!(issues.is_empty(), "{issues:?}");
        let names: Vec<_> = n.iter().map(|d| d.name).collect();
        assert_eq!(names, ["lo", "ifb0", "ifb1", "eth0"]);
        assert_eq!(
            n[3],
            NetDev {
                name: "eth0",
                rx_bytes: 131941565,
                rx_packets: 7424,
                rx_errs: 0,
                rx_drop: 0,
                tx_bytes: 557230,
                tx_packets: 4932,
                tx_errs: 0,
                tx_drop: 0,
            }
        );
    }

    #[test]
    fn net_dev_glued_names_and_odd_lines() {
        let text = "Inter-|   Receive |  Transmit\n face |bytes packets|bytes\n\
                    eth1:4294967296 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16\n\
                    eth2 1 2 3\n\
                    eth3: 1 2 3\n\
                    : 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16\n\
                    eth4: 1 2 3 4 5 6 7 8 9 10 11 -12 13 14 15 16\n";
        let mut issues = Vec::new();
        let n = parse_net_dev(text, &mut issues);
        assert_eq!(n.len(), 1);
        assert_eq!(n[0].name, "eth1");
        assert_eq!((n[0].rx_bytes, n[0].rx_drop), (4294967296, 4));
        assert_eq!(
            (n[0].tx_bytes, n[0].tx_packets, n[0].tx_errs, n[0].tx_drop),
            (9, 10, 11, 12)
        );
        let whats: Vec<_> = issues.iter().map(|i| (i.line, i.what)).collect();
        assert_eq!(
            whats,
            vec![
                (4, "net/dev line without `:`"),
                (5, "malformed net/dev line"),
                (6, "malformed net/dev line"),
                (7, "malformed net/dev line"),
            ]
        );
    }

    #[test]
    fn long_lines_are_shortened_in_issues() {
        let long = format!("cpu0 {}", "x".repeat(500));
        let mut issues = Vec::new();
        parse_stat(&long, &mut issues);
        assert_eq!(issues[0].text.chars().count(), 123);
    }

    #[test]
    fn the_real_files_parse_without_issues() {
        let mut buf = String::new();
        let mut issues = Vec::new();
        let proc = Path::new(PROC);
        read_into(&proc.join(STAT), &mut buf).unwrap();
        let s = parse_stat(&buf, &mut issues);
        assert!(s.cpus.len() >= 2 && s.btime.is_some());
        read_into(&proc.join(DISKSTATS), &mut buf).unwrap();
        parse_diskstats(&buf, &mut issues);
        read_into(&proc.join(NET_DEV), &mut buf).unwrap();
        assert!(!parse_net_dev(&buf, &mut issues).is_empty());
        assert!(issues.is_empty(), "{issues:?}");
    }
}
