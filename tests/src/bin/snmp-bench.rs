//! `snmp-bench`: the SNMP collector polling many devices, end to end (release binaries:
//! `cargo build --release -p logops-agent -p logops-ingest -p logops-e2e`). Figures are
//! printed; nothing is asserted.
//!
//! Devices are simulated by net-snmp `snmpd` instances listening on many loopback ports each
//! (one snmpd serves an 88-varbind ifTable bulkwalk in about 0.55 ms of CPU). `--devices`
//! `[[snmp.device]]` entries are spread over the ports; the real `logops-agent` polls them
//! every `--interval`, walking `--walk` (default `ifTable,hrStorageTable`), and ships to a
//! real `logops-ingest`. After one interval of warm-up (first polls are spread over it), for
//! `--measure` seconds: device polls per minute (from the agent's
//! `logops_agent_collector_rounds_total`), failed polls by reason, timed-out requests, the
//! agent's CPU-seconds (`utime + stime`), RSS and peak RSS, threads and sockets, and the
//! snmpd instances' CPU-seconds.
//!
//! ```text
//! snmp-bench [--devices 5000] [--interval 60] [--measure 60] [--snmpd 2] [--ports 50]
//!            [--walk ifTable,hrStorageTable] [--max-concurrent 256] [--v3 0]
//!            [--agent PATH] [--ingest PATH]
//! ```
//! `--v3 N`: the first N devices use SNMPv3 authPriv (SHA + AES) instead of v2c.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use logops_e2e::agent::{release_agent_binary, AgentHarness, AgentOptions, ProcStats, ShipTarget};
use logops_e2e::process::{self, release_ingest_binary};
use logops_e2e::snmpd::{Snmpd, AUTH_PASSWORD, COMMUNITY, PRIV_PASSWORD};
use logops_e2e::{metric_sum, IngestHarness, IngestOptions, TenantSpec};

const USAGE: &str = "usage: snmp-bench [--devices N] [--interval SECS] [--measure SECS] [--snmpd N] [--ports N] [--walk LIST] [--max-concurrent N] [--v3 N] [--agent PATH] [--ingest PATH]";

struct Args {
    devices: usize,
    interval: u64,
    measure: u64,
    snmpd: usize,
    ports: usize,
    walk: Vec<String>,
    max_concurrent: usize,
    v3: usize,
    agent: Option<PathBuf>,
    ingest: Option<PathBuf>,
}

fn parse_args() -> anyhow::Result<Args> {
    let mut a = Args {
        devices: 5000,
        interval: 60,
        measure: 60,
        snmpd: 2,
        ports: 50,
        walk: vec!["ifTable".into(), "hrStorageTable".into()],
        max_concurrent: 256,
        v3: 0,
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
            "--measure" => a.measure = num(&value)?.max(1),
            "--snmpd" => a.snmpd = num(&value)?.max(1) as usize,
            "--ports" => a.ports = num(&value)?.max(1) as usize,
            "--walk" => a.walk = value.split(',').map(str::to_owned).collect(),
            "--max-concurrent" => a.max_concurrent = num(&value)?.max(1) as usize,
            "--v3" => a.v3 = num(&value)? as usize,
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

/// The agent's self-metrics that matter here.
struct Counts {
    rounds: f64,
    timeouts: f64,
    errors: f64,
    events: f64,
}

fn counts(agent: &AgentHarness) -> Counts {
    let samples = agent.metrics().unwrap_or_default();
    let get =
        |name: &str, labels: &[(&str, &str)]| metric_sum(&samples, name, labels).unwrap_or(0.0);
    Counts {
        rounds: get(
            "logops_agent_collector_rounds_total",
            &[("collector", "snmp")],
        ),
        timeouts: get(
            "logops_agent_collector_timeouts_total",
            &[("collector", "snmp")],
        ),
        errors: get(
            "logops_agent_collector_errors_total",
            &[("collector", "snmp")],
        ),
        events: get("logops_agent_events_total", &[("source", "snmp")]),
    }
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
    let snmpds: Vec<Snmpd> = (0..args.snmpd)
        .map(|_| Snmpd::start(args.ports))
        .collect::<anyhow::Result<_>>()?;
    let ports: Vec<u16> = snmpds.iter().flat_map(|s| s.ports().to_vec()).collect();
    println!(
        "snmp-bench: {} devices every {} s on {} snmpd × {} ports, walking {:?}, max_concurrent {}, {} of them v3 authPriv (SHA+AES)",
        args.devices, args.interval, args.snmpd, args.ports, args.walk, args.max_concurrent, args.v3.min(args.devices)
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
    let walk: Vec<String> = args.walk.iter().map(|w| format!("\"{w}\"")).collect();
    let mut snmp = String::new();
    let timeout = (args.interval as f64 / 3.0).clamp(0.5, 3.0);
    let _ = writeln!(
        snmp,
        "[snmp]\nmax_concurrent = {}\n\n[snmp.profile.v2]\nversion = \"v2c\"\ncommunity_env = \"SNMP_COMMUNITY\"\ninterval = \"{}s\"\ntimeout = \"{timeout}s\"\nretries = 1\nwalk = [{}]\n",
        args.max_concurrent,
        args.interval,
        walk.join(", ")
    );
    let _ = writeln!(
        snmp,
        "[snmp.profile.v3]\nversion = \"v3\"\nuser = \"authPrivUser\"\nsecurity_level = \"authPriv\"\nauth_protocol = \"sha\"\nauth_password_env = \"SNMP_AUTH\"\npriv_protocol = \"aes\"\npriv_password_env = \"SNMP_PRIV\"\ninterval = \"{}s\"\ntimeout = \"{timeout}s\"\nretries = 1\nwalk = [{}]\n",
        args.interval,
        walk.join(", ")
    );
    for i in 0..args.devices {
        let profile = if i < args.v3 { "v3" } else { "v2" };
        let _ = writeln!(
            snmp,
            "[[snmp.device]]\nname = \"dev{i:05}\"\naddress = \"127.0.0.1:{}\"\nprofile = \"{profile}\"\n",
            ports[i % ports.len()]
        );
    }
    let opts = AgentOptions::new("snmp-bench")
        .binary(agent_bin)
        .env("SNMP_COMMUNITY", COMMUNITY)
        .env("SNMP_AUTH", AUTH_PASSWORD)
        .env("SNMP_PRIV", PRIV_PASSWORD)
        .extra(&snmp);
    let agent = AgentHarness::try_start(ShipTarget::of(&ingest, "bench"), opts)?;
    let pid = agent.pid().context("the agent runs")?;
    let snmpd_cpu = || -> f64 {
        snmpds
            .iter()
            .filter_map(|s| process::cpu_seconds(s.pid()))
            .sum()
    };
    let started = Instant::now();
    println!(
        "warm-up: one interval ({} s): first polls are spread over it",
        args.interval
    );
    std::thread::sleep(Duration::from_secs(args.interval));
    let a = ProcStats::of(pid).context("agent stats")?;
    let ca = counts(&agent);
    let sa = snmpd_cpu();
    let t0 = Instant::now();
    std::thread::sleep(Duration::from_secs(args.measure));
    let wall = t0.elapsed().as_secs_f64();
    let b = ProcStats::of(pid).context("agent stats")?;
    let cb = counts(&agent);
    let sb = snmpd_cpu();
    let threads = process::threads(pid).unwrap_or(0);
    let sockets = process::sockets(pid).unwrap_or(0);
    let rounds = cb.rounds - ca.rounds;
    let per_min = rounds / wall * 60.0;
    let cpu = b.cpu - a.cpu;
    println!(
        "measured over {wall:.1} s (after {:.0} s of warm-up):",
        t0.duration_since(started).as_secs_f64()
    );
    println!(
        "  device polls:        {rounds:.0} = {per_min:.0} per minute ({:.1} per second); configured demand {:.0} per minute",
        rounds / wall,
        args.devices as f64 * 60.0 / args.interval as f64
    );
    println!(
        "  failed polls:        {:.0}; timed-out requests: {:.0}",
        cb.errors - ca.errors,
        cb.timeouts - ca.timeouts
    );
    println!(
        "  events:              {:.0} ({:.0} per poll)",
        cb.events - ca.events,
        (cb.events - ca.events) / rounds.max(1.0)
    );
    println!(
        "  agent CPU:           {cpu:.2} CPU-seconds = {:.1}% of one core; {:.3} ms per device poll; {:.2} CPU-seconds per 5,000 polls",
        cpu / wall * 100.0,
        cpu / rounds.max(1.0) * 1000.0,
        cpu / rounds.max(1.0) * 5000.0
    );
    println!(
        "  agent memory:        RSS {:.1} MiB, peak {:.1} MiB",
        mib(b.rss),
        mib(b.hwm)
    );
    println!("  agent threads:       {threads}; sockets: {sockets}");
    println!(
        "  snmpd CPU:           {:.2} CPU-seconds ({:.3} ms per device poll)",
        sb - sa,
        (sb - sa) / rounds.max(1.0) * 1000.0
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
