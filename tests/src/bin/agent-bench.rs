//! `agent-bench`: end-to-end benchmarks of `logops-agent` shipping to `logops-ingest` on the
//! same machine. Figures are printed; nothing is asserted. Build the binaries as they ship,
//! then the benchmarks (one command for all three would build the agent with the test
//! crate's dependency features, and its idle code would not be laid out together: see
//! agent/build.rs):
//!
//! ```text
//! cargo build --release --locked -p logops-agent -p logops-ingest
//! cargo build --release --locked -p logops-e2e
//! ```
//!
//! 1. Throughput, `--runs` times (a fresh ingest and agent each time): N lines of B bytes
//!    are written to one file **before** the agent starts (`start_at = "beginning"`); from
//!    the agent's start until the ingest has stored all of them (its
//!    `logops_ingest_events_total{outcome="accepted"}`, polled every 20 ms): lines/s and
//!    MiB/s end to end, the agent's CPU seconds per million lines (`utime + stime` from
//!    `/proc`) and peak RSS (`VmHWM`), the ingest's CPU seconds, the two together (what
//!    decides whether both fit on the machine's cores at a given rate), the machine's load
//!    average, and the sled buffer directory's size (when the agent is up, its peak, and
//!    after the drain). A query then checks the count. Wall-clock figures depend on what
//!    else runs; CPU seconds much less.
//! 2. Idle: a fresh agent with `[host] interval = "10s"` and one quiet file for S seconds:
//!    its RSS at the end (anonymous and file-backed), its CPU use as a share of one core
//!    over the S seconds (threads' run time from `schedstat`, to the nanosecond: an idle
//!    agent uses a few clock ticks a minute), its threads and its wake-ups (context
//!    switches) per second.
//!
//! ```text
//! agent-bench [--lines 1000000] [--line-bytes 100] [--runs 3] [--idle-secs 60]
//!             [--ship KEY=TOML]... [--skip-idle] [--skip-throughput] [--agent PATH]
//!             [--ingest PATH]
//! ```
//!
//! `--ship` sets a `[ship]` option of the throughput runs' agent (raw TOML value), e.g.
//! `--ship max_in_flight=2 --ship batch_max_events=10000`; by default it runs on the
//! agent's defaults.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use logops_e2e::agent::{
    for_each_log, release_agent_binary, AgentHarness, AgentOptions, FilesGroup, ProcStats,
    ShipTarget,
};
use logops_e2e::process::{
    dir_size, load_average, release_ingest_binary, rss_anon_file_bytes, rss_by_file,
    symbol_order_coverage, threads, CpuTracker,
};
use logops_e2e::{metric_sum, parse_prometheus, IngestHarness, IngestOptions, TenantSpec};

const USAGE: &str = "usage: agent-bench [--lines N] [--line-bytes N] [--runs N] [--idle-secs N] [--ship KEY=TOML]... [--skip-idle] [--skip-throughput] [--agent PATH] [--ingest PATH]";

struct Args {
    lines: u64,
    line_bytes: usize,
    runs: usize,
    idle: Duration,
    /// `[ship]` settings of the throughput runs: key → raw TOML.
    ship: Vec<(String, String)>,
    skip_idle: bool,
    skip_throughput: bool,
    agent: Option<PathBuf>,
    ingest: Option<PathBuf>,
}

fn parse_args() -> anyhow::Result<Args> {
    let mut a = Args {
        lines: 1_000_000,
        line_bytes: 100,
        runs: 3,
        idle: Duration::from_secs(60),
        ship: Vec::new(),
        skip_idle: false,
        skip_throughput: false,
        agent: None,
        ingest: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        match flag.as_str() {
            "-h" | "--help" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            "--skip-idle" => {
                a.skip_idle = true;
                continue;
            }
            "--skip-throughput" => {
                a.skip_throughput = true;
                continue;
            }
            _ => {}
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
            "--lines" => a.lines = num(&value)?.max(1),
            "--line-bytes" => a.line_bytes = (num(&value)? as usize).max(20),
            "--runs" => a.runs = (num(&value)? as usize).max(1),
            "--ship" => {
                let (k, v) = value
                    .split_once('=')
                    .with_context(|| format!("--ship {value}: expected KEY=TOML\n{USAGE}"))?;
                a.ship.push((k.trim().to_owned(), v.trim().to_owned()));
            }
            "--idle-secs" => a.idle = Duration::from_secs(num(&value)?.max(1)),
            "--agent" => a.agent = Some(value.into()),
            "--ingest" => a.ingest = Some(value.into()),
            _ => bail!("unknown flag {flag}\n{USAGE}"),
        }
    }
    Ok(a)
}

/// User + system CPU seconds of this process so far.
fn own_cpu_seconds() -> f64 {
    // SAFETY: getrusage only writes the struct it is given.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    if unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) } != 0 {
        return 0.0;
    }
    let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

/// Events the ingest has stored for `tenant`, from its `/metrics`.
fn stored(ingest: &IngestHarness, tenant: &str) -> Option<u64> {
    let r = ingest.client().try_get(None, "/metrics", &[]).ok()?;
    let samples = parse_prometheus(&r.body).ok()?;
    metric_sum(
        &samples,
        "logops_ingest_events_total",
        &[("tenant", tenant), ("outcome", "accepted")],
    )
    .map(|v| v as u64)
}

fn write_file(path: &std::path::Path, lines: u64, line_bytes: usize) -> anyhow::Result<u64> {
    let mut w = std::io::BufWriter::with_capacity(
        1 << 20,
        std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?,
    );
    let pad: String = "abcdefghijklmnopqrstuvwxyz0123456789"
        .chars()
        .cycle()
        .take(line_bytes)
        .collect();
    let mut bytes = 0u64;
    for i in 0..lines {
        let head = format!("bench {i:010} ");
        let rest = line_bytes.saturating_sub(head.len() + 1);
        w.write_all(head.as_bytes())?;
        w.write_all(&pad.as_bytes()[..rest])?;
        w.write_all(b"\n")?;
        bytes += (head.len() + rest + 1) as u64;
    }
    w.flush()?;
    w.get_ref().sync_all()?;
    Ok(bytes)
}

/// What one throughput run measured.
struct Run {
    /// From the agent's start until the ingest stored every line.
    secs: f64,
    /// Until it stored 99 % (before the last partial batch).
    secs_99: Option<f64>,
    agent_cpu: f64,
    agent_hwm: u64,
    ingest_cpu: f64,
    load: Option<f64>,
}

fn throughput(args: &Args, agent_bin: &Path, ingest_bin: &Path) -> anyhow::Result<()> {
    let dir = tempfile::Builder::new()
        .prefix("logops-agent-bench-")
        .tempdir()?;
    let file = dir.path().join("bench.log");
    let t = Instant::now();
    let bytes = write_file(&file, args.lines, args.line_bytes)?;
    println!(
        "wrote {} lines, {:.1} MiB to {} in {:.1}s",
        args.lines,
        mib(bytes),
        file.display(),
        t.elapsed().as_secs_f64()
    );
    let mut runs = Vec::new();
    for n in 1..=args.runs {
        println!(
            "\n== throughput run {n} of {}: {} lines of {} bytes, one file written before the agent started",
            args.runs, args.lines, args.line_bytes
        );
        runs.push(one_run(args, &file, bytes, agent_bin, ingest_bin)?);
    }
    let millions = args.lines as f64 / 1e6;
    let mut rates: Vec<f64> = runs.iter().map(|r| args.lines as f64 / r.secs).collect();
    rates.sort_by(f64::total_cmp);
    let per_m = |f: fn(&Run) -> f64| {
        let mut v: Vec<f64> = runs.iter().map(|r| f(r) / millions).collect();
        v.sort_by(f64::total_cmp);
        v
    };
    let (agent, ingest, both) = (
        per_m(|r| r.agent_cpu),
        per_m(|r| r.ingest_cpu),
        per_m(|r| r.agent_cpu + r.ingest_cpu),
    );
    let median = |v: &[f64]| v[v.len() / 2];
    let hwm = runs.iter().map(|r| r.agent_hwm).max().unwrap_or(0);
    let loads: Vec<String> = runs
        .iter()
        .map(|r| r.load.map_or("?".into(), |l| format!("{l:.1}")))
        .collect();
    let settings: Vec<String> = args
        .ship
        .iter()
        .map(|(k, v)| format!("{k} = {v}"))
        .collect();
    println!(
        "\n== throughput, {} runs (median, min-max), [ship] {}",
        runs.len(),
        if settings.is_empty() {
            "defaults".to_owned()
        } else {
            settings.join(", ")
        }
    );
    println!(
        "end to end                           {:.0} lines/s ({:.0}-{:.0}), {:.1} MiB/s   (target ≥ 1,000,000 lines/s); load average {}",
        median(&rates),
        rates[0],
        rates[rates.len() - 1],
        mib(bytes) * median(&rates) / args.lines as f64,
        loads.join(", ")
    );
    let mut tails: Vec<f64> = runs
        .iter()
        .filter_map(|r| Some(r.secs - r.secs_99?))
        .collect();
    tails.sort_by(f64::total_cmp);
    if !tails.is_empty() {
        println!(
            "last 1 % stored in                   {:.2}s ({:.2}-{:.2})",
            median(&tails),
            tails[0],
            tails[tails.len() - 1]
        );
    }
    println!(
        "agent CPU per million lines          {:.2} ({:.2}-{:.2})   (target ≤ 1.0)",
        median(&agent),
        agent[0],
        agent[agent.len() - 1]
    );
    println!(
        "ingest CPU per million lines         {:.2} ({:.2}-{:.2})",
        median(&ingest),
        ingest[0],
        ingest[ingest.len() - 1]
    );
    println!(
        "agent + ingest CPU per million lines {:.2} ({:.2}-{:.2})   (≤ 2.0 lets 1,000,000 lines/s fit on 2 cores)",
        median(&both),
        both[0],
        both[both.len() - 1]
    );
    println!(
        "agent peak RSS (VmHWM), highest      {:.1} MiB   (target ≤ 32 MiB)",
        mib(hwm)
    );
    Ok(())
}

fn one_run(
    args: &Args,
    file: &Path,
    bytes: u64,
    agent_bin: &Path,
    ingest_bin: &Path,
) -> anyhow::Result<Run> {
    let ingest = IngestHarness::try_start(
        IngestOptions::new()
            .tenant(
                TenantSpec::new("bench")
                    .events_per_second(100_000_000)
                    .bytes_per_second("100GiB"),
            )
            .binary(ingest_bin.to_owned()),
    )?;
    // The agent's defaults (batch size, age, compression) unless --ship says otherwise,
    // tailing that one file.
    let mut opts = AgentOptions::new("bench-agent")
        .files(FilesGroup::new(&[file]).set("rescan_interval", "10s"))
        .binary(agent_bin.to_owned());
    opts.ship.clear();
    for (k, v) in &args.ship {
        opts = opts.ship_raw(k, v);
    }
    let ingest_cpu0 = ingest.cpu_seconds().unwrap_or(0.0);
    let own_cpu0 = own_cpu_seconds();
    let started = Instant::now();
    let agent = AgentHarness::try_start(ShipTarget::of(&ingest, "bench"), opts)?;
    let up = started.elapsed();
    let pid = agent.pid().context("the agent runs")?;
    let buffer_at_start = dir_size(&agent.buffer_dir());
    let mut buffer_peak = buffer_at_start;
    let mut last = ProcStats::of(pid).context("reading /proc of the agent")?;
    let deadline = Instant::now() + Duration::from_secs(600);
    let mut next_print = Instant::now() + Duration::from_millis(500);
    let mut at_99: Option<Duration> = None;
    let elapsed = loop {
        let n = stored(&ingest, "bench").unwrap_or(0);
        if at_99.is_none() && n * 100 >= args.lines * 99 {
            at_99 = Some(started.elapsed());
        }
        if let Some(s) = ProcStats::of(pid) {
            last = s;
        }
        buffer_peak = buffer_peak.max(dir_size(&agent.buffer_dir()));
        if n >= args.lines {
            break started.elapsed();
        }
        if Instant::now() > deadline {
            bail!(
                "gave up after 600 s: the ingest stored {n} of {} lines",
                args.lines
            );
        }
        if Instant::now() >= next_print {
            eprintln!(
                "  {:5.1}s: {n} stored, agent cpu {:.2}s rss {:.1} MiB",
                started.elapsed().as_secs_f64(),
                last.cpu,
                mib(last.rss)
            );
            next_print += Duration::from_millis(500);
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let load = load_average();
    let own_cpu = own_cpu_seconds() - own_cpu0;
    let ingest_cpu = ingest.cpu_seconds().unwrap_or(0.0) - ingest_cpu0;
    // Everything is acknowledged: let the shipper delete the last batch, then measure the
    // buffer once more.
    std::thread::sleep(Duration::from_secs(2));
    if let Some(s) = ProcStats::of(pid) {
        last = s;
    }
    let buffer_after = dir_size(&agent.buffer_dir());
    let key = ingest.tenant("bench").key.clone();
    let rows = for_each_log(ingest.client(), &key, &[], 1_000_000, |_| {})?;

    let secs = elapsed.as_secs_f64();
    let millions = args.lines as f64 / 1e6;
    println!(
        "agent up (logged \"running\") after   {:.3}s",
        up.as_secs_f64()
    );
    println!(
        "all stored after                     {secs:.2}s (load average {})",
        load.map_or("?".into(), |l| format!("{l:.1}"))
    );
    if let Some(t) = at_99 {
        println!(
            "99 % stored after                    {:.2}s = {:.0} lines/s",
            t.as_secs_f64(),
            args.lines as f64 * 0.99 / t.as_secs_f64()
        );
    }
    println!(
        "end to end                           {:.0} lines/s, {:.1} MiB/s   (target ≥ 1,000,000 lines/s)",
        args.lines as f64 / secs,
        mib(bytes) / secs
    );
    println!(
        "agent CPU                            {:.2}s = {:.2} CPU-s per million lines   (target ≤ 1.0)",
        last.cpu,
        last.cpu / millions
    );
    println!(
        "agent peak RSS (VmHWM)               {:.1} MiB   (target ≤ 32 MiB); RSS now {:.1} MiB",
        mib(last.hwm),
        mib(last.rss)
    );
    println!(
        "ingest CPU                           {ingest_cpu:.2}s = {:.2} CPU-s per million lines",
        ingest_cpu / millions
    );
    println!(
        "agent + ingest CPU                   {:.2} CPU-s per million lines",
        (last.cpu + ingest_cpu) / millions
    );
    println!(
        "this bench's own CPU meanwhile       {own_cpu:.2}s (polling the ingest's /metrics every 20 ms)"
    );
    println!(
        "sled buffer dir                      {:.1} MiB when up, {:.1} MiB at its peak, {:.1} MiB after the drain",
        mib(buffer_at_start),
        mib(buffer_peak),
        mib(buffer_after)
    );
    println!(
        "ingest store on disk                 {:.1} MiB",
        mib(ingest.store_disk_bytes())
    );
    println!("stored rows (query)                  {rows}");
    if rows != args.lines {
        bail!(
            "the ingest holds {rows} rows for {} lines written",
            args.lines
        );
    }
    Ok(Run {
        secs,
        secs_99: at_99.map(|t| t.as_secs_f64()),
        agent_cpu: last.cpu,
        agent_hwm: last.hwm,
        ingest_cpu,
        load,
    })
}

fn idle(args: &Args, agent_bin: &Path, ingest_bin: &Path) -> anyhow::Result<()> {
    let ingest = IngestHarness::try_start(
        IngestOptions::new()
            .tenant(TenantSpec::new("bench"))
            .binary(ingest_bin.to_owned()),
    )?;
    let dir = tempfile::Builder::new()
        .prefix("logops-agent-bench-")
        .tempdir()?;
    let file = dir.path().join("quiet.log");
    std::fs::write(&file, "one line\n")?;
    let opts = AgentOptions::idle("idle-agent", &file).binary(agent_bin.to_owned());
    let agent = AgentHarness::try_start(ShipTarget::of(&ingest, "bench"), opts)?;
    let pid = agent.pid().context("the agent runs")?;
    // Past the start and the first host sample.
    std::thread::sleep(Duration::from_secs(5));
    let mut cpu = CpuTracker::new(pid);
    let (cpu0, switches0) = (cpu.cpu_seconds(), cpu.context_switches());
    let t = Instant::now();
    while t.elapsed() < args.idle {
        std::thread::sleep(Duration::from_secs(1).min(args.idle.saturating_sub(t.elapsed())));
        cpu.sample();
    }
    let wall = t.elapsed().as_secs_f64();
    let b = ProcStats::of(pid).context("reading /proc of the agent")?;
    let (anon, file_backed) = rss_anon_file_bytes(pid).unwrap_or_default();
    let used = cpu.cpu_seconds() - cpu0;
    println!("\n== idle: [host] interval 10s, one quiet file, {wall:.0}s");
    println!(
        "agent RSS at the end                 {:.1} MiB   (target ≤ 8 MiB): {:.1} MiB anonymous, {:.1} MiB file-backed (code, libraries); peak {:.1} MiB",
        mib(b.rss),
        mib(anon),
        mib(file_backed),
        mib(b.hwm)
    );
    for (file, bytes) in rss_by_file(pid).unwrap_or_default().iter().take(6) {
        println!("  {:>6.2} MiB  {file}", mib(*bytes));
    }
    let list = Path::new(env!("CARGO_MANIFEST_DIR")).join("../agent/symbol-order.txt");
    match symbol_order_coverage(agent_bin, &list) {
        Ok((found, listed)) => println!(
            "idle code laid out together          {found} of the {listed} functions of agent/symbol-order.txt are in the binary"
        ),
        Err(e) => println!("idle code laid out together          unknown: {e:#}"),
    }
    println!(
        "agent CPU                            {:.4}s over {wall:.0}s = {:.3} % of a core   (target ≤ 0.1 %)",
        used,
        used / wall * 100.0
    );
    println!(
        "threads, wake-ups                    {} threads, {:.1} context switches/s",
        threads(pid).unwrap_or(0),
        (cpu.context_switches() - switches0) as f64 / wall
    );
    Ok(())
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
    println!(
        "agent-bench: {} and {}",
        agent_bin.display(),
        ingest_bin.display()
    );
    if !args.skip_throughput {
        throughput(&args, &agent_bin, &ingest_bin)?;
    }
    if !args.skip_idle {
        idle(&args, &agent_bin, &ingest_bin)?;
    }
    Ok(())
}
