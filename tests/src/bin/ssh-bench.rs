//! `ssh-bench`: the SSH collector polling many simulated devices, end to end (release
//! binaries: `cargo build --release -p logops-agent -p logops-ingest -p logops-e2e`).
//! Figures are printed; nothing is asserted.
//!
//! One private OpenSSH server (tests/src/sshd.rs, `MaxStartups` raised) whose ForceCommand
//! is the fake Cisco router stands in for `--devices` devices: each `[[ssh.device]]` is a
//! separate device to the agent (its own session every poll: TCP, key exchange, password,
//! prompt, enable, paging off, the commands, TextFSM). The real `logops-agent` polls them
//! every `--interval` with `--commands` (`show version`, `show ip interface brief`, `show
//! interfaces`) and `max_sessions = --max-sessions`, shipping to a real `logops-ingest`.
//! From the start (first polls are spread over the interval) for `--measure` seconds
//! (default: one interval and 10 %), it samples the agent every second and prints: device
//! polls per minute, failed polls by reason, how many distinct devices were polled, the
//! agent's threads, open file descriptors, sockets, RSS (peak and at the end), CPU-seconds,
//! and the CPU-seconds of sshd and its per-connection processes (the fake router's bash).
//!
//! ```text
//! ssh-bench [--devices 1000] [--interval 300] [--measure SECS] [--max-sessions 64]
//!           [--agent PATH] [--ingest PATH]
//! ```

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use logops_e2e::agent::{release_agent_binary, AgentHarness, AgentOptions, ProcStats, ShipTarget};
use logops_e2e::process::{self, release_ingest_binary};
use logops_e2e::sshd::{Sshd, SshdOptions, ENABLE_SECRET, USER};
use logops_e2e::{metric_sum, ntc, IngestHarness, IngestOptions, TenantSpec};

const USAGE: &str = "usage: ssh-bench [--devices N] [--interval SECS] [--measure SECS] [--max-sessions N] [--agent PATH] [--ingest PATH]";

const COMMANDS: [&str; 3] = ["show version", "show ip interface brief", "show interfaces"];

struct Args {
    devices: usize,
    interval: u64,
    measure: Option<u64>,
    max_sessions: usize,
    agent: Option<PathBuf>,
    ingest: Option<PathBuf>,
}

fn parse_args() -> anyhow::Result<Args> {
    let mut a = Args {
        devices: 1000,
        interval: 300,
        measure: None,
        max_sessions: 64,
        agent: None,
        ingest: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        if flag == "-h" || flag == "--help" {
            println!("{USAGE}");
            std::process::exit(0);
        }
        let value = it
            .next()
            .with_context(|| format!("{flag} needs a value\n{USAGE}"))?;
        let num = |v: &str| -> anyhow::Result<u64> {
            v.replace('_', "")
                .parse()
                .with_context(|| format!("{flag} {v}: not a number"))
        };
        match flag.as_str() {
            "--devices" => a.devices = num(&value)?.max(1) as usize,
            "--interval" => a.interval = num(&value)?.max(1),
            "--measure" => a.measure = Some(num(&value)?.max(1)),
            "--max-sessions" => a.max_sessions = num(&value)?.max(1) as usize,
            "--agent" => a.agent = Some(value.into()),
            "--ingest" => a.ingest = Some(value.into()),
            _ => bail!("unknown flag {flag}\n{USAGE}"),
        }
    }
    Ok(a)
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

/// Peaks of what is sampled every second.
#[derive(Default)]
struct Peaks {
    threads: u64,
    fds: u64,
    sockets: u64,
    rss: u64,
}

fn main() -> anyhow::Result<()> {
    let args = parse_args()?;
    let agent_bin = match &args.agent {
        Some(p) => p.clone(),
        None => release_agent_binary()?,
    };
    let ingest_bin = match &args.ingest {
        Some(p) => p.clone(),
        None => release_ingest_binary()?,
    };
    let mut opts = SshdOptions::router(&[]);
    opts.max_startups = args.max_sessions * 2 + 10;
    let sshd = Sshd::start(opts)?;
    let sshd_pid = sshd.pid().context("sshd runs")?;
    let measure = args.measure.unwrap_or(args.interval + args.interval / 10);
    println!(
        "ssh-bench: {} devices (one private sshd, fake router) every {} s, {} commands each, max_sessions {}; measuring {} s from the start",
        args.devices,
        args.interval,
        COMMANDS.len(),
        args.max_sessions,
        measure
    );
    let ingest = IngestHarness::try_start(
        IngestOptions::new()
            .tenant(
                TenantSpec::new("bench")
                    .events_per_second(100_000_000)
                    .bytes_per_second("100GiB"),
            )
            .binary(ingest_bin),
    )?;
    let dir = tempfile::tempdir()?;
    let kh = dir.path().join("known_hosts");
    std::fs::write(&kh, format!("{}\n", sshd.known_hosts_line()))?;
    let quoted: Vec<String> = COMMANDS.iter().map(|c| format!("{c:?}")).collect();
    let mut ssh = String::new();
    let _ = writeln!(
        ssh,
        "[ssh]\ntemplates_dir = {:?}\nmax_sessions = {}\nknown_hosts = {:?}\ninterval = \"{}s\"\n",
        ntc::templates_dir().display().to_string(),
        args.max_sessions,
        kh.display().to_string(),
        args.interval
    );
    for i in 0..args.devices {
        let _ = writeln!(
            ssh,
            "[[ssh.device]]\nname = \"rtr{i:05}\"\naddress = \"{}\"\ndevice_type = \"cisco_ios\"\nusername = \"{USER}\"\npassword_env = \"RTR_PASS\"\nsecret_env = \"RTR_ENABLE\"\ncommands = [{}]\n",
            sshd.address(),
            quoted.join(", ")
        );
    }
    let opts = AgentOptions::new("ssh-bench")
        .binary(agent_bin)
        .env("RTR_PASS", sshd.password())
        .env("RTR_ENABLE", ENABLE_SECRET)
        .extra(&ssh);
    let agent = AgentHarness::try_start(ShipTarget::of(&ingest, "bench"), opts)?;
    let pid = agent.pid().context("the agent runs")?;
    let started = Instant::now();
    let cpu0 = ProcStats::of(pid).context("agent stats")?.cpu;
    let sshd0 = process::cpu_seconds(sshd_pid).unwrap_or(0.0)
        + process::children_cpu_seconds(sshd_pid).unwrap_or(0.0);
    let mut peaks = Peaks::default();
    let mut last_report = Instant::now();
    while started.elapsed() < Duration::from_secs(measure) {
        std::thread::sleep(Duration::from_secs(1));
        peaks.threads = peaks.threads.max(process::threads(pid).unwrap_or(0));
        peaks.fds = peaks.fds.max(process::open_fds(pid).unwrap_or(0));
        peaks.sockets = peaks.sockets.max(process::sockets(pid).unwrap_or(0));
        peaks.rss = peaks.rss.max(process::vm_rss_bytes(pid).unwrap_or(0));
        if last_report.elapsed() >= Duration::from_secs(30) {
            last_report = Instant::now();
            let samples = agent.metrics().unwrap_or_default();
            let rounds = metric_sum(
                &samples,
                "logops_agent_collector_rounds_total",
                &[("collector", "ssh")],
            )
            .unwrap_or(0.0);
            println!(
                "  {:>4.0} s: {rounds:.0} polls, threads {}, fds {}, RSS {:.1} MiB",
                started.elapsed().as_secs_f64(),
                process::threads(pid).unwrap_or(0),
                process::open_fds(pid).unwrap_or(0),
                mib(process::vm_rss_bytes(pid).unwrap_or(0))
            );
        }
    }
    let wall = started.elapsed().as_secs_f64();
    let end = ProcStats::of(pid).context("agent stats")?;
    let sshd_cpu = process::cpu_seconds(sshd_pid).unwrap_or(0.0)
        + process::children_cpu_seconds(sshd_pid).unwrap_or(0.0)
        - sshd0;
    let samples = agent.metrics().unwrap_or_default();
    let get =
        |name: &str, labels: &[(&str, &str)]| metric_sum(&samples, name, labels).unwrap_or(0.0);
    let rounds = get(
        "logops_agent_collector_rounds_total",
        &[("collector", "ssh")],
    );
    let timeouts = get(
        "logops_agent_collector_timeouts_total",
        &[("collector", "ssh")],
    );
    let events = get("logops_agent_events_total", &[("source", "ssh")]);
    let mut errors: BTreeMap<String, f64> = BTreeMap::new();
    for s in &samples {
        if s.name == "logops_agent_collector_errors_total"
            && s.labels.get("collector").map(String::as_str) == Some("ssh")
        {
            *errors
                .entry(s.labels.get("reason").cloned().unwrap_or_default())
                .or_default() += s.value;
        }
    }
    // Which devices got polled successfully: their `ssh_up 1` in the ingest.
    std::thread::sleep(Duration::from_secs(2));
    let key = ingest.tenant("bench").key.clone();
    let ups = ingest
        .client()
        .query_all(&key, "/v1/metrics", &[("name", "ssh_up")]);
    let mut up_devices = std::collections::BTreeSet::new();
    for l in &ups {
        if let Ok(e) = logops_common::parse_line(l, 1) {
            if let logops_common::event::Payload::Metric {
                value: logops_common::event::MetricValue::Gauge(v),
                ..
            } = e.payload
            {
                if v == 1.0 {
                    if let Some(d) = e.labels.get("device") {
                        up_devices.insert(d.to_string());
                    }
                }
            }
        }
    }
    println!("measured over {wall:.1} s from the agent's start (load: whatever else runs on this machine):");
    println!(
        "  device polls:        {rounds:.0} = {:.0} per minute; configured demand {:.0} per minute",
        rounds / wall * 60.0,
        args.devices as f64 * 60.0 / args.interval as f64
    );
    println!(
        "  devices polled OK:   {} of {} (distinct devices with ssh_up 1 in the ingest)",
        up_devices.len(),
        args.devices
    );
    println!("  errors by reason:    {errors:?}; timeouts: {timeouts:.0}");
    println!(
        "  events:              {events:.0} ({:.0} per poll)",
        events / rounds.max(1.0)
    );
    let cpu = end.cpu - cpu0;
    println!(
        "  agent CPU:           {cpu:.2} CPU-seconds = {:.1}% of one core; {:.1} ms per device poll",
        cpu / wall * 100.0,
        cpu / rounds.max(1.0) * 1000.0
    );
    println!(
        "  agent memory:        RSS peak (sampled) {:.1} MiB, VmHWM {:.1} MiB, at the end {:.1} MiB",
        mib(peaks.rss),
        mib(end.hwm),
        mib(end.rss)
    );
    println!(
        "  agent threads:       peak {} (max_sessions {}); open fds peak {}, sockets peak {}",
        peaks.threads, args.max_sessions, peaks.fds, peaks.sockets
    );
    println!(
        "  sshd + sessions CPU: {sshd_cpu:.2} CPU-seconds ({:.1} ms per device poll)",
        sshd_cpu / rounds.max(1.0) * 1000.0
    );
    let log = agent.log();
    let warns = log.lines().filter(|l| l.contains(" WARN ")).count();
    println!("  agent log: {warns} warning line(s)");
    for l in log
        .lines()
        .filter(|l| l.contains(" WARN ") || l.contains(" ERROR "))
        .take(5)
    {
        println!("    {l}");
    }
    Ok(())
}
