//! `ping-bench`: the agent's pinger beside Debian's fping on the same 10,000 loopback
//! targets (127.10.0.0/16 ...), in the same run. Figures are printed; nothing is asserted.
//! Needs root (raw sockets, a network namespace for the datagram variant) and fping
//! (tests/install-peers.sh). Build with `cargo build --release -p logops-e2e`.
//!
//! Each side runs as a child process of its own and is measured by `wait4(2)`: CPU seconds
//! (`ru_utime + ru_stime`) and peak RSS (`ru_maxrss`) of the whole process.
//!
//! - fping: `fping -c COUNT -i 1 -q -f TARGETS` (1 ms between any two requests, the
//!   issue's reference command).
//! - the pinger: this binary re-run as `ping-bench --pinger ...`: the agent's ping engine
//!   standalone (`logops_agent::sources::ping::run_rounds`) on a current-thread tokio
//!   runtime, one round of one `[[ping]]` group with all targets; its chunks of events
//!   (NDJSON, as they would go to the buffer) are counted and dropped. So its CPU and RSS are
//!   the pinger part of the agent plus a bare runtime, without the buffer and shipper.
//! - `--dgram` adds a run on unprivileged datagram sockets: the child unshares a network
//!   namespace of its own (loopback up, `ping_group_range` opened there only).
//!
//! ```text
//! ping-bench [--targets 10000] [--count 5] [--packet-interval 10s] [--timeout 2s]
//!            [--dgram] [--skip-fping]
//! ```
//! The default packet interval spreads each round of requests over 10 s, one request per
//! millisecond like fping `-i 1`; `--packet-interval 200ms` is the issue's example (50
//! requests per millisecond).

use std::io::Write;
use std::net::Ipv4Addr;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Instant;

use anyhow::{bail, Context};
use logops_agent::metrics::AgentMetrics;
use logops_agent::sources::ping::{self, Sockets};
use logops_common::event::{MetricValue, Payload};

const USAGE: &str = "usage: ping-bench [--targets N] [--count N] [--packet-interval DUR] [--timeout DUR] [--dgram] [--skip-fping]";

struct Args {
    targets: usize,
    count: u16,
    packet_interval: String,
    timeout: String,
    dgram: bool,
    skip_fping: bool,
    /// Child mode: the target file.
    pinger: Option<String>,
}

fn parse_args() -> anyhow::Result<Args> {
    let mut a = Args {
        targets: 10_000,
        count: 5,
        packet_interval: "10s".into(),
        timeout: "2s".into(),
        dgram: false,
        skip_fping: false,
        pinger: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().with_context(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "-h" | "--help" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            "--targets" => a.targets = value()?.parse()?,
            "--count" => a.count = value()?.parse()?,
            "--packet-interval" => a.packet_interval = value()?,
            "--timeout" => a.timeout = value()?,
            "--dgram" => a.dgram = true,
            "--skip-fping" => a.skip_fping = true,
            "--pinger" => a.pinger = Some(value()?),
            other => bail!("unknown argument {other}\n{USAGE}"),
        }
    }
    Ok(a)
}

/// 127.10.0.1, 127.10.0.2, ... (1..=250 in the last byte).
fn targets(n: usize) -> Vec<Ipv4Addr> {
    (0..n)
        .map(|i| {
            let (hi, lo) = (i / 250, i % 250 + 1);
            Ipv4Addr::new(127, 10 + (hi / 256) as u8, (hi % 256) as u8, lo as u8)
        })
        .collect()
}

/// CPU seconds and peak RSS of a finished child, from wait4(2).
struct Measured {
    cpu: f64,
    max_rss: u64,
    wall: f64,
    ok: bool,
}

fn run_measured(mut cmd: Command, out: &std::path::Path) -> anyhow::Result<Measured> {
    let file = std::fs::File::create(out)?;
    let err = file.try_clone()?;
    let started = Instant::now();
    let child = cmd
        .stdin(Stdio::null())
        .stdout(file)
        .stderr(err)
        .spawn()
        .with_context(|| format!("starting {cmd:?}"))?;
    let pid = child.id() as libc::pid_t;
    let mut status = 0;
    // SAFETY: an all-zero rusage is valid.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: pid is our child; status and ru are valid for writes.
    if unsafe { libc::wait4(pid, &mut status, 0, &mut ru) } != pid {
        bail!("wait4: {}", std::io::Error::last_os_error());
    }
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    Ok(Measured {
        cpu: secs(ru.ru_utime) + secs(ru.ru_stime),
        max_rss: ru.ru_maxrss as u64 * 1024,
        wall: started.elapsed().as_secs_f64(),
        ok: libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
    })
}

fn mib(b: u64) -> f64 {
    b as f64 / (1 << 20) as f64
}

fn main() -> anyhow::Result<()> {
    let a = parse_args()?;
    if let Some(file) = &a.pinger {
        return pinger_child(&a, file);
    }
    let dir = tempfile::tempdir()?;
    let list = dir.path().join("targets.txt");
    let mut f = std::fs::File::create(&list)?;
    for t in targets(a.targets) {
        writeln!(f, "{t}")?;
    }
    drop(f);
    println!(
        "ping-bench: {} targets in 127.10.0.0/16 x {} requests, one round",
        a.targets, a.count
    );
    if !a.skip_fping {
        let out = dir.path().join("fping.txt");
        let mut cmd = Command::new("fping");
        cmd.args(["-c", &a.count.to_string(), "-i", "1", "-q", "-f"])
            .arg(&list);
        let m = run_measured(cmd, &out)?;
        let text = std::fs::read_to_string(&out)?;
        let (sent, recv, avg) = fping_totals(&text);
        println!(
            "fping -c {} -i 1:        wall {:6.1} s  CPU {:6.3} s  peak RSS {:5.1} MiB  sent {sent} received {recv}  mean of avg RTT {:.1} us{}",
            a.count,
            m.wall,
            m.cpu,
            mib(m.max_rss),
            avg * 1e6,
            if m.ok || recv > 0 { "" } else { "  (fping failed)" }
        );
    }
    let mut variants = vec![false];
    if a.dgram {
        variants.push(true);
    }
    for dgram in variants {
        let out = dir.path().join("pinger.txt");
        let mut cmd = Command::new(std::env::current_exe()?);
        cmd.args([
            "--pinger",
            list.to_str().context("temp path")?,
            "--count",
            &a.count.to_string(),
            "--packet-interval",
            &a.packet_interval,
            "--timeout",
            &a.timeout,
        ]);
        if dgram {
            cmd.arg("--dgram");
        }
        let m = run_measured(cmd, &out)?;
        let text = std::fs::read_to_string(&out)?;
        let (checks, rest) = text.split_once('\n').unwrap_or(("0", &text));
        let checks: f64 = checks.trim().parse().unwrap_or(0.0);
        println!(
            "pinger ({:8}, pi {}): wall {:6.1} s  CPU {:6.3} s  peak RSS {:5.1} MiB  {}\n    (CPU without the {checks:.3} s the bench's own parsing of the events took; with it {:.3} s)",
            if dgram { "datagram" } else { "raw" },
            a.packet_interval,
            m.wall,
            m.cpu - checks,
            mib(m.max_rss),
            rest.trim(),
            m.cpu,
        );
        if !m.ok {
            bail!("the pinger child failed: {text}");
        }
    }
    Ok(())
}

/// Sums fping's `-q` summary lines: `127.10.0.1 : xmt/rcv/%loss = 5/5/0%, min/avg/max = ...`.
fn fping_totals(text: &str) -> (u64, u64, f64) {
    let (mut sent, mut recv, mut avg_sum, mut n) = (0, 0, 0.0, 0);
    for l in text.lines() {
        let Some(rest) = l.split("xmt/rcv/%loss = ").nth(1) else {
            continue;
        };
        let mut p = rest.split(['/', ',']);
        sent += p
            .next()
            .and_then(|x| x.trim().parse::<u64>().ok())
            .unwrap_or(0);
        recv += p
            .next()
            .and_then(|x| x.trim().parse::<u64>().ok())
            .unwrap_or(0);
        if let Some(mm) = l.split("min/avg/max = ").nth(1) {
            if let Some(avg) = mm
                .split('/')
                .nth(1)
                .and_then(|x| x.trim().parse::<f64>().ok())
            {
                avg_sum += avg / 1000.0;
                n += 1;
            }
        }
    }
    (sent, recv, if n > 0 { avg_sum / n as f64 } else { 0.0 })
}

/// The child: one round of the agent's pinger over the targets in `file`.
fn pinger_child(a: &Args, file: &str) -> anyhow::Result<()> {
    if a.dgram {
        private_netns_with_ping_sockets()?;
    }
    let text = std::fs::read_to_string(file)?;
    let targets: Vec<String> = text.lines().map(str::to_owned).collect();
    let cfg = logops_e2e::ping::group(&format!(
        "targets = {}\ninterval = \"60s\"\ncount = {}\npacket_interval = \"{}\"\ntimeout = \"{}\"",
        toml_list(&targets),
        a.count,
        a.packet_interval,
        a.timeout
    ));
    drop(text);
    drop(targets);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let (mut bytes, mut events, mut up, mut rtt_sum, mut rtt_n, mut zero_rtts) =
        (0usize, 0u64, 0u64, 0.0, 0u64, 0u64);
    let mut received = 0.0;
    let mut checks_cpu = 0.0;
    let started = Instant::now();
    rt.block_on(async {
        let sockets = Sockets::open();
        let kinds = sockets.kinds();
        assert!(kinds.0.is_some(), "no IPv4 socket");
        ping::run_rounds(
            ping::group_specs(&[cfg], &Default::default()),
            sockets,
            Arc::from("bench"),
            Arc::new(AgentMetrics::new()),
            1,
            |chunk| {
                let t0 = thread_cpu();
                bytes += chunk.len();
                events += u64::from(chunk.events());
                // Checked on the side, from the events as they would be buffered.
                for line in std::str::from_utf8(chunk.data()).unwrap_or("").lines() {
                    let Ok(e) = logops_common::parse_line(line, 1) else {
                        continue;
                    };
                    if let Payload::Metric {
                        name,
                        value: MetricValue::Gauge(v),
                    } = &e.payload
                    {
                        match name.as_ref() {
                            "ping_up" => up += (*v == 1.0) as u64,
                            "ping_packets_received" => received += v,
                            "ping_rtt_seconds"
                                if e.labels.get("stat").map(|s| s.as_ref()) == Some("avg") =>
                            {
                                rtt_sum += v;
                                rtt_n += 1;
                            }
                            "ping_rtt_seconds"
                                if e.labels.get("stat").map(|s| s.as_ref()) == Some("min")
                                    && *v <= 0.0 =>
                            {
                                zero_rtts += 1;
                            }
                            _ => {}
                        }
                    }
                }
                checks_cpu += thread_cpu() - t0;
            },
        )
        .await;
    });
    // First line: for the parent, the CPU the checks above took (not the pinger's).
    println!("{checks_cpu:.6}");
    println!(
        "round {:.1} s, {events} events ({:.1} MiB NDJSON), targets up {up}, received {received}, mean of avg RTT {:.1} us, zero min RTTs {zero_rtts}",
        started.elapsed().as_secs_f64(),
        mib(bytes as u64),
        if rtt_n > 0 { rtt_sum / rtt_n as f64 * 1e6 } else { 0.0 },
    );
    Ok(())
}

/// CPU time of the calling thread, in seconds.
fn thread_cpu() -> f64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: ts is valid for writes.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    ts.tv_sec as f64 + ts.tv_nsec as f64 / 1e9
}

fn toml_list(items: &[String]) -> String {
    let mut s = String::from("[");
    for (i, t) in items.iter().enumerate() {
        if i > 0 {
            s.push(',');
        }
        s.push('"');
        s.push_str(t);
        s.push('"');
    }
    s.push(']');
    s
}

/// Moves this (still single-threaded) process into a new network namespace with loopback
/// up and ICMP datagram sockets allowed for every group there.
fn private_netns_with_ping_sockets() -> anyhow::Result<()> {
    // SAFETY: no other thread exists yet.
    if unsafe { libc::unshare(libc::CLONE_NEWNET) } != 0 {
        bail!("unshare(CLONE_NEWNET): {}", std::io::Error::last_os_error());
    }
    let st = Command::new("ip")
        .args(["link", "set", "lo", "up"])
        .status()?;
    if !st.success() {
        bail!("ip link set lo up: {st}");
    }
    std::fs::write("/proc/sys/net/ipv4/ping_group_range", "0 2147483647")
        .context("opening ping_group_range in the private namespace")?;
    Ok(())
}
