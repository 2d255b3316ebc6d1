//! The host metrics source against Debian's `prometheus-node-exporter`, read at the same
//! moments on the same machine: memory, filesystems, CPU busy share, load and the disk and
//! network counters must agree.
//!
//! node_exporter runs on 127.0.0.1 on a port chosen free at run time and is stopped by its PID
//! (a guard kills it if the test panics). Install it with `tests/install-peers.sh`.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use logops_agent::config::HostConfig;
use logops_agent::sources::host::{procfs, HostSampler};
use logops_common::event::{Event, MetricValue, Payload};

const BINARY: &str = "prometheus-node-exporter";

/// One series: name, labels, value.
type Series = (String, BTreeMap<String, String>, f64);

/// A running node_exporter, killed when dropped (also on panic).
struct NodeExporter {
    child: Child,
    port: u16,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl Drop for NodeExporter {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn find_binary() -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/bin"), PathBuf::from("/usr/sbin")])
        .map(|d| d.join(BINARY))
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!(
                "`{BINARY}` is not installed: run tests/install-peers.sh (as root) first \
                 (it installs Debian's prometheus-node-exporter)"
            )
        })
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("bind 127.0.0.1:0")
        .port()
}

impl NodeExporter {
    fn start() -> NodeExporter {
        let binary = find_binary();
        let mut last_log = String::new();
        // The port is free when chosen; another process may take it before node_exporter
        // binds it, so a start that fails is retried on another port.
        for _ in 0..5 {
            let dir = tempfile::tempdir().expect("temp dir");
            let log = dir.path().join("node_exporter.log");
            let out = std::fs::File::create(&log).expect("log file");
            let port = free_port();
            let child = Command::new(&binary)
                .arg(format!("--web.listen-address=127.0.0.1:{port}"))
                .arg("--no-collector.systemd")
                // Only the collectors compared here: a scrape takes milliseconds, so it and
                // our sample see the same moment.
                .args([
                    "--collector.disable-defaults",
                    "--collector.cpu",
                    "--collector.stat",
                    "--collector.meminfo",
                    "--collector.filesystem",
                    "--collector.diskstats",
                    "--collector.netdev",
                    "--collector.loadavg",
                ])
                // Same block devices as ours (Debian's 1.5 default lacks `z?` before `ram`) and
                // the same source for network counters (/proc/net/dev, not netlink).
                .arg(format!(
                    "--collector.diskstats.device-exclude={}",
                    procfs::NODE_DISK_EXCLUDE
                ))
                .arg("--no-collector.netdev.netlink")
                .stdin(Stdio::null())
                .stdout(out.try_clone().expect("log file"))
                .stderr(out)
                .spawn()
                .unwrap_or_else(|e| panic!("cannot start {}: {e}", binary.display()));
            let mut node = NodeExporter {
                child,
                port,
                log,
                _dir: dir,
            };
            if node.wait_ready() {
                return node;
            }
            last_log = std::fs::read_to_string(&node.log).unwrap_or_default();
        }
        panic!("{BINARY} did not start on 127.0.0.1; its last log:\n{last_log}");
    }

    /// Waits until `/metrics` answers; false if the process exited (e.g. the port was taken).
    fn wait_ready(&mut self) -> bool {
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return false;
            }
            if http_get(self.port, "/metrics").is_ok() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!(
            "{BINARY} did not answer on 127.0.0.1:{} within a minute; log:\n{}",
            self.port,
            std::fs::read_to_string(&self.log).unwrap_or_default()
        );
    }

    fn scrape(&self) -> Vec<Series> {
        let body = http_get(self.port, "/metrics").unwrap_or_else(|e| {
            panic!(
                "scraping {BINARY}: {e}; log:\n{}",
                std::fs::read_to_string(&self.log).unwrap_or_default()
            )
        });
        parse_exposition(&body)
    }
}

/// A plain HTTP/1.0 GET (no chunked encoding, no compression asked for).
fn http_get(port: u16, path: &str) -> Result<String, String> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).map_err(|e| e.to_string())?;
    s.set_read_timeout(Some(Duration::from_secs(30)))
        .map_err(|e| e.to_string())?;
    write!(
        s,
        "GET {path} HTTP/1.0\r\nHost: 127.0.0.1:{port}\r\nAccept: text/plain\r\n\r\n"
    )
    .map_err(|e| e.to_string())?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).map_err(|e| e.to_string())?;
    let text = String::from_utf8_lossy(&raw);
    let (head, body) = text.split_once("\r\n\r\n").ok_or("no HTTP header")?;
    let status = head.lines().next().unwrap_or_default();
    if !status.contains(" 200 ") {
        return Err(format!("answered `{status}`"));
    }
    Ok(body.to_owned())
}

/// Parses the Prometheus text format (what is needed here: escaped label values, optional
/// timestamps); lines it cannot read are skipped.
fn parse_exposition(text: &str) -> Vec<Series> {
    let mut out = Vec::new();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (name, labels, rest) = match line.find(['{', ' ']) {
            Some(i) if line.as_bytes()[i] == b'{' => match parse_labels(&line[i + 1..]) {
                Some((labels, used)) => (&line[..i], labels, &line[i + 1 + used..]),
                None => continue,
            },
            Some(i) => (&line[..i], BTreeMap::new(), &line[i..]),
            None => continue,
        };
        if let Some(Ok(v)) = rest.split_whitespace().next().map(str::parse::<f64>) {
            out.push((name.to_owned(), labels, v));
        }
    }
    out
}

/// `a="x",b="y\"z"}` → the labels and the bytes used (up to and including `}`).
fn parse_labels(s: &str) -> Option<(BTreeMap<String, String>, usize)> {
    let b = s.as_bytes();
    let mut labels = BTreeMap::new();
    let mut i = 0;
    loop {
        while b.get(i).is_some_and(|c| *c == b',' || *c == b' ') {
            i += 1;
        }
        if *b.get(i)? == b'}' {
            return Some((labels, i + 1));
        }
        let start = i;
        while *b.get(i)? != b'=' {
            i += 1;
        }
        let key = s[start..i].trim().to_owned();
        i += 1;
        if *b.get(i)? != b'"' {
            return None;
        }
        i += 1;
        let mut value = Vec::new();
        loop {
            match *b.get(i)? {
                b'\\' => {
                    i += 1;
                    value.push(match *b.get(i)? {
                        b'n' => b'\n',
                        c => c,
                    });
                }
                b'"' => break,
                c => value.push(c),
            }
            i += 1;
        }
        i += 1;
        labels.insert(key, String::from_utf8_lossy(&value).into_owned());
    }
}

fn from_events(events: &[Event<'static>]) -> Vec<Series> {
    events
        .iter()
        .filter_map(|e| match &e.payload {
            Payload::Metric {
                name,
                value: MetricValue::Gauge(v) | MetricValue::Counter(v),
            } => Some((
                name.to_string(),
                e.labels
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
                *v,
            )),
            _ => None,
        })
        .collect()
}

fn get(series: &[Series], name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    series
        .iter()
        .find(|(n, l, _)| {
            n == name
                && labels
                    .iter()
                    .all(|(k, v)| l.get(*k).map(String::as_str) == Some(*v))
        })
        .map(|s| s.2)
}

fn must(series: &[Series], who: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    get(series, name, labels).unwrap_or_else(|| panic!("{who} has no {name}{labels:?}"))
}

fn label_values(series: &[Series], name: &str, label: &str) -> BTreeSet<String> {
    series
        .iter()
        .filter(|(n, _, _)| n == name)
        .filter_map(|(_, l, _)| l.get(label).cloned())
        .collect()
}

fn rel_diff(a: f64, b: f64) -> f64 {
    if a == b {
        0.0
    } else {
        (a - b).abs() / a.abs().max(b.abs())
    }
}

/// The comparisons' outcomes, printed as they are made.
#[derive(Default)]
struct Report {
    failures: Vec<String>,
}

impl Report {
    fn check(&mut self, ok: bool, what: String) {
        println!("{} {what}", if ok { "ok  " } else { "FAIL" });
        if !ok {
            self.failures.push(what);
        }
    }

    /// `before <= ours <= after` (with a relative epsilon for float formatting).
    fn bracket(&mut self, what: String, ours: f64, before: f64, after: f64) {
        let eps = |v: f64| v.abs() * 1e-12;
        self.check(
            before - eps(before) <= ours && ours <= after + eps(after),
            format!("{what}: {before} <= {ours} <= {after}"),
        );
    }
}

/// CPU time of this thread.
fn thread_cpu() -> Duration {
    // SAFETY: getrusage fills the struct it is given.
    let ru = unsafe {
        let mut ru = std::mem::zeroed::<libc::rusage>();
        libc::getrusage(libc::RUSAGE_THREAD, &mut ru);
        ru
    };
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

#[test]
fn host_metrics_agree_with_node_exporter() {
    let node = NodeExporter::start();
    let mut sampler = HostSampler::new(&HostConfig::default());
    // The CPU usage ratio needs a previous reading at least half a second old.
    std::thread::sleep(Duration::from_secs(1));

    let t0 = Instant::now();
    let n1 = node.scrape();
    let t1 = Instant::now();
    let s1 = from_events(&sampler.sample());
    let t2 = Instant::now();
    std::thread::sleep(Duration::from_secs(4));
    let t3 = Instant::now();
    let n2 = node.scrape();
    let t4 = Instant::now();
    let s2 = from_events(&sampler.sample());
    let t5 = Instant::now();

    println!(
        "node scrape {:?} / {:?}, our sample {:?} / {:?}, window {:?}",
        t1 - t0,
        t4 - t3,
        t2 - t1,
        t5 - t4,
        t4 - t1
    );
    let mut report = Report::default();

    // Memory: within 2 %.
    for (node_name, ours) in [
        ("node_memory_MemTotal_bytes", "host_memory_total_bytes"),
        (
            "node_memory_MemAvailable_bytes",
            "host_memory_available_bytes",
        ),
    ] {
        let (n, o) = (
            must(&n1, "node", node_name, &[]),
            must(&s1, "ours", ours, &[]),
        );
        let d = rel_diff(n, o);
        report.check(
            d <= 0.02,
            format!("{ours} {o} vs {node_name} {n}: {:.4} %", d * 100.0),
        );
    }

    // Filesystems present in both: size and avail within 2 %.
    let mut common_fs = 0;
    for mp in label_values(&s1, "host_filesystem_size_bytes", "mountpoint") {
        let at = [("mountpoint", mp.as_str())];
        let Some(n_size) = get(&n1, "node_filesystem_size_bytes", &at) else {
            println!("     {mp}: not reported by node_exporter");
            continue;
        };
        common_fs += 1;
        let o_size = must(&s1, "ours", "host_filesystem_size_bytes", &at);
        let d = rel_diff(n_size, o_size);
        report.check(
            d <= 0.02,
            format!(
                "filesystem {mp} size {o_size} vs {n_size}: {:.4} %",
                d * 100.0
            ),
        );
        let n_avail = must(&n1, "node", "node_filesystem_avail_bytes", &at);
        let o_avail = must(&s1, "ours", "host_filesystem_avail_bytes", &at);
        let d = rel_diff(n_avail, o_avail);
        report.check(
            d <= 0.02,
            format!(
                "filesystem {mp} avail {o_avail} vs {n_avail}: {:.4} %",
                d * 100.0
            ),
        );
        if let Some(n_free) = get(&n1, "node_filesystem_free_bytes", &at) {
            let o_free = must(&s1, "ours", "host_filesystem_free_bytes", &at);
            println!(
                "     filesystem {mp} free {o_free} vs {n_free}: {:.4} %",
                rel_diff(n_free, o_free) * 100.0
            );
        }
    }
    report.check(
        common_fs > 0,
        format!("{common_fs} filesystem(s) reported by both"),
    );

    // CPU busy share over the same ~4 s window: within 5 points. Each side reads its
    // counters right after the other's (node_exporter somewhere inside its scrape), so the
    // windows are shifted by up to a scrape; while other processes' load swings, that shift
    // alone can move the share by several points: up to two more windows are measured, and
    // one within 5 points passes (a wrong computation misses in all three).
    let cpu_sum = |s: &[Series], idle_only: bool| -> f64 {
        s.iter()
            .filter(|(n, l, _)| {
                n == "node_cpu_seconds_total"
                    && (!idle_only || l.get("mode").map(String::as_str) == Some("idle"))
            })
            .map(|s| s.2)
            .sum()
    };
    let busy = |n_a: &[Series], n_b: &[Series], s_b: &[Series]| -> (f64, f64) {
        let (d_total, d_idle) = (
            cpu_sum(n_b, false) - cpu_sum(n_a, false),
            cpu_sum(n_b, true) - cpu_sum(n_a, true),
        );
        assert!(d_total > 0.0, "node_cpu_seconds_total did not advance");
        (
            1.0 - d_idle / d_total,
            must(s_b, "ours", "host_cpu_usage_ratio", &[("cpu", "total")]),
        )
    };
    let mut windows = vec![busy(&n1, &n2, &s2)];
    let mut last_node = n2.clone();
    while windows.len() < 3 && windows.iter().all(|(n, o)| (n - o).abs() > 0.05) {
        std::thread::sleep(Duration::from_secs(4));
        let n = node.scrape();
        let s = from_events(&sampler.sample());
        windows.push(busy(&last_node, &n, &s));
        last_node = n;
    }
    for (node_busy, ours_busy) in &windows {
        println!(
            "     cpu busy {ours_busy:.4} vs node 1 − Δidle/Δtotal {node_busy:.4}: {:.2} points",
            (node_busy - ours_busy).abs() * 100.0
        );
    }
    report.check(
        windows.iter().any(|(n, o)| (n - o).abs() <= 0.05),
        format!(
            "cpu busy: node 1 − Δidle/Δtotal vs ours, (node, ours) in {} window(s): {windows:.4?}",
            windows.len()
        ),
    );
    let iowait = |s: &[Series]| -> f64 {
        s.iter()
            .filter(|(n, l, _)| {
                n == "node_cpu_seconds_total" && l.get("mode").map(String::as_str) == Some("iowait")
            })
            .map(|s| s.2)
            .sum()
    };
    println!(
        "     (iowait share of the window {:.4}; ours counts it as idle, like sysinfo)",
        (iowait(&n2) - iowait(&n1)) / (cpu_sum(&n2, false) - cpu_sum(&n1, false))
    );

    // Load: both read /proc/loadavg within milliseconds; the kernel updates it every 5 s by
    // at most ~8 % of the distance to the number of runnable tasks.
    let (n, o) = (
        must(&n1, "node", "node_load1", &[]),
        must(&s1, "ours", "host_load1", &[]),
    );
    report.check(
        (n - o).abs() <= 1.0f64.max(0.25 * n),
        format!("load1 {o} vs {n}: {:.3}", (n - o).abs()),
    );
    let (n, o) = (
        must(&n1, "node", "node_boot_time_seconds", &[]),
        must(&s1, "ours", "host_boot_time_seconds", &[]),
    );
    report.check(n == o, format!("boot time {o} vs {n}"));

    // Counters: ours, read between node's two scrapes, lie between its two readings.
    let devices = |s: &[Series], name: &str| label_values(s, name, "device");
    for (kind, ours_probe, node_probe, pairs) in [
        (
            "disk",
            "host_disk_read_bytes_total",
            "node_disk_read_bytes_total",
            &[
                ("host_disk_read_bytes_total", "node_disk_read_bytes_total"),
                (
                    "host_disk_written_bytes_total",
                    "node_disk_written_bytes_total",
                ),
                (
                    "host_disk_reads_completed_total",
                    "node_disk_reads_completed_total",
                ),
                (
                    "host_disk_writes_completed_total",
                    "node_disk_writes_completed_total",
                ),
                (
                    "host_disk_io_time_seconds_total",
                    "node_disk_io_time_seconds_total",
                ),
            ][..],
        ),
        (
            "network",
            "host_network_receive_bytes_total",
            "node_network_receive_bytes_total",
            &[
                (
                    "host_network_receive_bytes_total",
                    "node_network_receive_bytes_total",
                ),
                (
                    "host_network_transmit_bytes_total",
                    "node_network_transmit_bytes_total",
                ),
                (
                    "host_network_receive_packets_total",
                    "node_network_receive_packets_total",
                ),
                (
                    "host_network_transmit_packets_total",
                    "node_network_transmit_packets_total",
                ),
                (
                    "host_network_receive_errs_total",
                    "node_network_receive_errs_total",
                ),
                (
                    "host_network_transmit_errs_total",
                    "node_network_transmit_errs_total",
                ),
                (
                    "host_network_receive_drop_total",
                    "node_network_receive_drop_total",
                ),
                (
                    "host_network_transmit_drop_total",
                    "node_network_transmit_drop_total",
                ),
            ][..],
        ),
    ] {
        let (ours_devs, node_devs) = (devices(&s1, ours_probe), devices(&n1, node_probe));
        report.check(
            ours_devs == node_devs,
            format!("{kind} devices {ours_devs:?} vs node {node_devs:?}"),
        );
        for dev in ours_devs.intersection(&node_devs) {
            let at = [("device", dev.as_str())];
            for (ours, theirs) in pairs {
                report.bracket(
                    format!("{ours}{{device={dev}}}"),
                    must(&s1, "ours", ours, &at),
                    must(&n1, "node", theirs, &at),
                    must(&n2, "node", theirs, &at),
                );
            }
        }
    }
    // CPU time per core and mode (idle and iowait can step back by a tick in the kernel).
    for cpu in label_values(&n1, "node_cpu_seconds_total", "cpu") {
        for mode in ["user", "nice", "system", "irq", "softirq", "steal"] {
            let at = [("cpu", cpu.as_str()), ("mode", mode)];
            report.bracket(
                format!("host_cpu_seconds_total{{cpu={cpu},mode={mode}}}"),
                must(&s1, "ours", "host_cpu_seconds_total", &at),
                must(&n1, "node", "node_cpu_seconds_total", &at),
                must(&n2, "node", "node_cpu_seconds_total", &at),
            );
        }
    }

    // What a sample costs (reported, not asserted).
    let samples = 20;
    let before = thread_cpu();
    for _ in 0..samples {
        std::hint::black_box(sampler.sample());
    }
    let per = (thread_cpu() - before) / samples;
    println!(
        "     one sample costs {per:?} of CPU: {:.4} % of a core every 10 s",
        per.as_secs_f64() / 10.0 * 100.0
    );

    assert!(
        report.failures.is_empty(),
        "{} disagreement(s) with node_exporter:\n{}",
        report.failures.len(),
        report.failures.join("\n")
    );
}

#[test]
fn the_exposition_parser_reads_node_exporter_lines() {
    let text = "# HELP x y\n# TYPE x gauge\nnode_load1 4.16\n\
                node_filesystem_size_bytes{device=\"/dev/vda\",fstype=\"ext4\",mountpoint=\"/\"} 2.70553174016e+11\n\
                odd{a=\"q\\\"uote\",b=\"c,d}\"} 1 1700000000000\n\
                bad{a=\"1\"\nbad{a=\"1\nbad{a\nbad{a=1} 2\nnovalue\nnan_is_a_value NaN\n";
    let s = parse_exposition(text);
    assert_eq!(s.len(), 4, "{s:?}");
    assert_eq!(get(&s, "node_load1", &[]), Some(4.16));
    assert_eq!(
        get(&s, "node_filesystem_size_bytes", &[("mountpoint", "/")]),
        Some(270553174016.0)
    );
    assert_eq!(
        get(&s, "odd", &[("a", "q\"uote"), ("b", "c,d}")]),
        Some(1.0)
    );
    assert!(get(&s, "nan_is_a_value", &[]).unwrap().is_nan());
}
