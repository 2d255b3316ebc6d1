//! `ingest-load`: load generator benchmark for `logops-ingest`.
//!
//! Starts the release `logops-ingest` (`target/release/logops-ingest`; build both with
//! `cargo build --release -p logops-ingest -p logops-e2e`) on a free loopback port with a
//! fresh data directory and high tenant limits, pre-compresses the batches, then posts
//! them from N connections and reports throughput, ack latency, the ingest's CPU and memory,
//! and the answers it got. Afterwards it counts the stored events with a query and checks
//! that they equal the acknowledged ones.
//!
//! ```text
//! ingest-load [--connections 32] [--batches 2000] [--duration 60] [--events-per-batch 1000]
//!             [--line-bytes 200] [--rate EVENTS_PER_SEC] [--pool N] [--binary PATH] [--timing]
//! ```
//!
//! `--timing` turns on the ingest's timing logs (targets `logops_ingest::timing` and
//! `logops_store::timing`), prints percentiles of each stage of its requests and group
//! commits (where the acknowledgement latency comes from, apart from the machine's load) and
//! saves the ingest's log in the temporary directory.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use logops_common::batch::{AGENT_HEADER, BATCH_HEADER, NEXT_HEADER};
use logops_e2e::pool::{make_pool, Body};
use logops_e2e::process::{cpu_seconds, release_ingest_binary, vm_hwm_bytes, vm_rss_bytes};
use logops_e2e::{IngestHarness, IngestOptions, TenantSpec};

#[derive(Debug, Clone)]
struct Args {
    connections: usize,
    batches: usize,
    duration: Duration,
    events_per_batch: usize,
    line_bytes: usize,
    rate: Option<f64>,
    pool: Option<usize>,
    binary: Option<std::path::PathBuf>,
    timing: bool,
}

const USAGE: &str = "usage: ingest-load [--connections N] [--batches N] [--duration SECS] \
[--events-per-batch N] [--line-bytes N] [--rate EVENTS_PER_SEC] [--pool N] [--binary PATH] \
[--timing]";

fn parse_args() -> anyhow::Result<Args> {
    let mut a = Args {
        connections: 32,
        batches: 2000,
        duration: Duration::from_secs(60),
        events_per_batch: 1000,
        line_bytes: 200,
        rate: None,
        pool: None,
        binary: None,
        timing: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        if flag == "-h" || flag == "--help" {
            println!("{USAGE}");
            std::process::exit(0);
        }
        if flag == "--timing" {
            a.timing = true;
            continue;
        }
        let value = it
            .next()
            .with_context(|| format!("{flag} needs a value\n{USAGE}"))?;
        let num = |v: &str| -> anyhow::Result<f64> {
            let n: f64 = v
                .parse()
                .with_context(|| format!("{flag} {v}: not a number"))?;
            if !(n > 0.0 && n.is_finite()) {
                bail!("{flag} {v}: must be more than 0");
            }
            Ok(n)
        };
        match flag.as_str() {
            "--connections" => a.connections = num(&value)? as usize,
            "--batches" => a.batches = num(&value)? as usize,
            "--duration" => a.duration = Duration::from_secs_f64(num(&value)?),
            "--events-per-batch" => a.events_per_batch = num(&value)? as usize,
            "--line-bytes" => a.line_bytes = num(&value)? as usize,
            "--rate" => a.rate = Some(num(&value)?),
            "--pool" => a.pool = Some(num(&value)? as usize),
            "--binary" => a.binary = Some(value.into()),
            _ => bail!("unknown flag {flag}\n{USAGE}"),
        }
    }
    Ok(a)
}

fn main() {
    if let Err(e) = run() {
        eprintln!("ingest-load: {e:#}");
        std::process::exit(1);
    }
}

fn run() -> anyhow::Result<()> {
    let args = parse_args()?;
    if cfg!(debug_assertions) {
        eprintln!("warning: ingest-load is a debug build; its own CPU use will be high (build with --release)");
    }
    let binary = match &args.binary {
        Some(b) => b.clone(),
        None => release_ingest_binary()?,
    };
    println!("logops-ingest: {}", binary.display());
    let mut opts = IngestOptions::new().binary(binary).tenant(
        TenantSpec::new("load")
            .events_per_second(1_000_000_000)
            .bytes_per_second("1000GiB"),
    );
    if args.timing {
        opts = opts.env("RUST_LOG", TIMING_LOG);
    }
    let h = IngestHarness::try_start(opts)?;
    let key = h.tenant("load").key.clone();
    let url = h.url();
    let pid = h.pid().context("the ingest's pid")?;

    let pool_size = args
        .pool
        .unwrap_or(args.batches)
        .clamp(1, args.batches.max(1));
    let t = Instant::now();
    let pool = Arc::new(make_pool(pool_size, args.events_per_batch, args.line_bytes));
    let compressed: usize = pool.iter().map(|b| b.data.len()).sum();
    let raw: usize = pool.iter().map(|b| b.raw).sum();
    println!(
        "pool: {pool_size} distinct batches of {} events, {:.1} MiB raw, {:.1} MiB zstd (ratio {:.1}), made in {:.1} s",
        args.events_per_batch,
        raw as f64 / 1048576.0,
        compressed as f64 / 1048576.0,
        raw as f64 / compressed as f64,
        t.elapsed().as_secs_f64()
    );
    println!(
        "load: {} connections, up to {} batches or {:.0} s{}",
        args.connections,
        args.batches,
        args.duration.as_secs_f64(),
        args.rate
            .map(|r| format!(", paced at {r:.0} events/s"))
            .unwrap_or_default()
    );

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let cpu_before = cpu_seconds(pid).context("reading the ingest's CPU time")?;
    let own_before = cpu_seconds(std::process::id()).unwrap_or(0.0);
    let result = rt.block_on(load(&args, &url, &key, pool.clone()));
    let result = match result {
        Ok(r) => r,
        Err(e) => {
            eprintln!("--- last lines of the ingest's log ---\n{}", h.log_tail(40));
            return Err(e);
        }
    };
    let own = cpu_seconds(std::process::id()).unwrap_or(0.0) - own_before;
    let cpu_after = cpu_seconds(pid).context("reading the ingest's CPU time")?;
    let hwm = vm_hwm_bytes(pid).unwrap_or(0);
    let rss = vm_rss_bytes(pid).unwrap_or(0);

    let secs = result.elapsed.as_secs_f64();
    let events = result.acked as f64 * args.events_per_batch as f64;
    let cpu = cpu_after - cpu_before;
    let mut lat = result.latencies.clone();
    lat.sort_unstable();
    let pct = |p: f64| -> f64 {
        if lat.is_empty() {
            return f64::NAN;
        }
        let i = ((lat.len() as f64 * p).ceil() as usize).clamp(1, lat.len()) - 1;
        lat[i].as_secs_f64() * 1000.0
    };
    println!("---");
    println!(
        "acknowledged:     {} batches, {} events in {secs:.2} s",
        result.acked, events as u64
    );
    println!(
        "throughput:       {:.0} events/s, {:.1} batches/s, {:.1} MiB/s raw",
        events / secs,
        result.acked as f64 / secs,
        result.acked as f64 * (raw as f64 / pool_size as f64) / secs / 1048576.0
    );
    println!(
        "ack latency (ms): p50 {:.1}  p90 {:.1}  p99 {:.1}  max {:.1}",
        pct(0.50),
        pct(0.90),
        pct(0.99),
        pct(1.0)
    );
    if args.rate.is_some() {
        println!(
            "schedule lag max: {:.1} ms (how late the generator sent a batch)",
            result.max_lag.as_secs_f64() * 1000.0
        );
    }
    println!(
        "ingest CPU:       {cpu:.2} s (user+sys), {:.0} events per CPU-second, {:.0}% of one core",
        events / cpu.max(1e-9),
        cpu / secs * 100.0
    );
    println!("generator CPU:    {own:.2} s (this process, during the load)");
    // The sealer works in the background and may still be busy with the segments that
    // closed during the load (writing their index, or compressing them for a build before
    // segments were made of frames): that is part of the cost of these events.
    let t = Instant::now();
    let stream = h.store_dir().join("load").join("log");
    let caught_up = loop {
        let waiting = logops_e2e::process::list_files(&stream)
            .iter()
            .filter(|(p, _)| {
                let name = p.to_string_lossy();
                name.ends_with(".open.ndjson.zst") || name.ends_with(".ndjson")
            })
            .count();
        if waiting <= 1 || t.elapsed() > Duration::from_secs(60) {
            break waiting <= 1;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let cpu_all = cpu_seconds(pid).context("reading the ingest's CPU time")? - cpu_before;
    println!(
        "ingest CPU incl. sealing: {cpu_all:.2} s, {:.0} events per CPU-second ({}sealing the segments closed during the load, {:.1} s after it)",
        events / cpu_all.max(1e-9),
        if caught_up { "after " } else { "NOT caught up after 60 s " },
        t.elapsed().as_secs_f64()
    );
    println!(
        "ingest memory:    peak RSS {:.1} MiB, RSS at end {:.1} MiB",
        hwm as f64 / 1048576.0,
        rss as f64 / 1048576.0
    );
    println!(
        "answers:          200: {}  429: {}  503: {}  other: {}  transport errors: {}",
        result.ok, result.s429, result.s503, result.other, result.errors
    );

    // The ingest's own view: fdatasync calls and their mean latency.
    if let Ok(m) = h.client().try_get(None, "/metrics", &[]) {
        if let Ok(samples) = logops_e2e::parse_prometheus(&m.body) {
            let count =
                logops_e2e::metric_sum(&samples, "logops_ingest_fsync_duration_seconds_count", &[])
                    .unwrap_or(0.0);
            let sum =
                logops_e2e::metric_sum(&samples, "logops_ingest_fsync_duration_seconds_sum", &[])
                    .unwrap_or(0.0);
            if count > 0.0 {
                println!(
                    "ingest fsyncs:    {count:.0} fdatasync calls (segments + commit log), mean {:.2} ms",
                    sum / count * 1000.0
                );
            }
        }
    }

    if args.timing {
        let log = h.log();
        print_timing(&log);
        let saved = std::env::temp_dir().join(format!("ingest-load-{}.log", std::process::id()));
        match std::fs::write(&saved, &log) {
            Ok(()) => println!("the ingest's log: {}", saved.display()),
            Err(e) => eprintln!("cannot save the ingest's log to {}: {e}", saved.display()),
        }
    }

    // Count what was stored.
    let t = Instant::now();
    let stored = rt.block_on(count_stored(&url, &key))?;
    println!(
        "stored events:    {stored} (counted by query in {:.1} s); acknowledged {}",
        t.elapsed().as_secs_f64(),
        events as u64
    );
    if stored != events as u64 {
        eprintln!("--- last lines of the ingest's log ---\n{}", h.log_tail(40));
        bail!(
            "stored events ({stored}) != acknowledged events ({})",
            events as u64
        );
    }
    println!("OK: stored == acknowledged");
    Ok(())
}

/// The ingest's log filter with `--timing`.
const TIMING_LOG: &str = "info,logops_ingest::timing=debug,logops_store::timing=debug";

/// The `key=value` fields of the timing log lines of `target` whose message is `what`.
fn timing_fields<'a>(
    log: &'a str,
    target: &str,
    what: &str,
) -> Vec<std::collections::HashMap<&'a str, u64>> {
    let marker = format!("{target}: {what} ");
    log.lines()
        .filter_map(|l| l.split_once(&marker).map(|(_, fields)| fields))
        .map(|fields| {
            fields
                .split_whitespace()
                .filter_map(|kv| kv.split_once('='))
                .filter_map(|(k, v)| v.parse().ok().map(|v| (k, v)))
                .collect()
        })
        .collect()
}

/// Prints p50/p90/p99/max of each field of the request and group timing lines.
fn print_timing(log: &str) {
    let table = |title: &str, rows: &[std::collections::HashMap<&str, u64>], keys: &[&str]| {
        println!("{title} ({} lines), ms:", rows.len());
        for key in keys {
            let mut v: Vec<u64> = rows.iter().filter_map(|r| r.get(key).copied()).collect();
            if v.is_empty() {
                continue;
            }
            v.sort_unstable();
            let p = |q: f64| v[((v.len() as f64 * q).ceil() as usize).clamp(1, v.len()) - 1];
            let ms = |us: u64| us as f64 / 1000.0;
            println!(
                "  {key:<18} p50 {:>7.2}  p90 {:>7.2}  p99 {:>7.2}  max {:>7.2}",
                ms(p(0.5)),
                ms(p(0.9)),
                ms(p(0.99)),
                ms(p(1.0))
            );
        }
    };
    let requests = timing_fields(log, "logops_ingest::timing", "request");
    table(
        "requests (read: body arrived; check: decompress+validate+frames; store: queue+group commit)",
        &requests,
        &["read_us", "check_us", "submit_us", "store_us", "total_us"],
    );
    let groups = timing_fields(log, "logops_store::timing", "group");
    table(
        "group commits (oldest_wait: the first batch's time in the queue)",
        &groups,
        &[
            "oldest_wait_us",
            "write_us",
            "segment_sync_us",
            "log_sync_us",
            "rotate_us",
            "commit_us",
            "total_us",
        ],
    );
    let batches: Vec<u64> = groups
        .iter()
        .filter_map(|g| g.get("batches").copied())
        .collect();
    if !batches.is_empty() {
        println!(
            "  batches per group: mean {:.1}, max {}",
            batches.iter().sum::<u64>() as f64 / batches.len() as f64,
            batches.iter().max().unwrap_or(&0)
        );
    }
}

struct LoadResult {
    elapsed: Duration,
    acked: u64,
    ok: u64,
    s429: u64,
    s503: u64,
    other: u64,
    errors: u64,
    latencies: Vec<Duration>,
    max_lag: Duration,
}

async fn load(
    args: &Args,
    url: &str,
    key: &str,
    pool: Arc<Vec<Body>>,
) -> anyhow::Result<LoadResult> {
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(args.connections)
        .timeout(Duration::from_secs(120))
        .no_proxy()
        .build()?;
    let next = Arc::new(AtomicUsize::new(0));
    let counters: Arc<[AtomicU64; 6]> = Arc::new(Default::default());
    let latencies = Arc::new(Mutex::new(Vec::with_capacity(args.batches)));
    let max_lag_us = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let deadline = start + args.duration;
    let batches_per_sec = args.rate.map(|r| r / args.events_per_batch as f64);
    let mut tasks = Vec::new();
    for conn in 0..args.connections {
        let (client, next, counters, latencies, pool, max_lag_us) = (
            client.clone(),
            next.clone(),
            counters.clone(),
            latencies.clone(),
            pool.clone(),
            max_lag_us.clone(),
        );
        let url = format!("{url}/v1/batch");
        let key = key.to_owned();
        let total = args.batches;
        tasks.push(tokio::spawn(async move {
            let agent = format!("load-{conn}");
            let mut seq = 0u64;
            loop {
                let k = next.fetch_add(1, Ordering::Relaxed);
                if k >= total || Instant::now() >= deadline {
                    break;
                }
                if let Some(bps) = batches_per_sec {
                    let due = start + Duration::from_secs_f64(k as f64 / bps);
                    if due >= deadline {
                        break;
                    }
                    tokio::time::sleep_until(due.into()).await;
                    let lag = Instant::now().saturating_duration_since(due);
                    max_lag_us.fetch_max(lag.as_micros() as u64, Ordering::Relaxed);
                }
                let body = &pool[k % pool.len()];
                let id = format!("{agent}:{seq}");
                seq += 1;
                // Resend the same batch until it is acknowledged (or time is up).
                loop {
                    let sent = Instant::now();
                    let r = client
                        .post(&url)
                        .bearer_auth(&key)
                        .header(AGENT_HEADER, &agent)
                        .header(BATCH_HEADER, &id)
                        .header("content-encoding", "zstd")
                        .header("content-type", "application/x-ndjson")
                        .body(body.data)
                        .send()
                        .await;
                    match r.map(|r| r.status().as_u16()) {
                        Ok(200) => {
                            let l = sent.elapsed();
                            counters[0].fetch_add(1, Ordering::Relaxed);
                            latencies.lock().unwrap().push(l);
                            break;
                        }
                        Ok(429) => counters[1].fetch_add(1, Ordering::Relaxed),
                        Ok(503) => counters[2].fetch_add(1, Ordering::Relaxed),
                        Ok(_) => counters[3].fetch_add(1, Ordering::Relaxed),
                        Err(_) => counters[4].fetch_add(1, Ordering::Relaxed),
                    };
                    if Instant::now() >= deadline + Duration::from_secs(30) {
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }));
    }
    for t in tasks {
        t.await?;
    }
    let elapsed = start.elapsed();
    let latencies = std::mem::take(&mut *latencies.lock().unwrap());
    let c = |i: usize| counters[i].load(Ordering::Relaxed);
    Ok(LoadResult {
        elapsed,
        acked: c(0),
        ok: c(0),
        s429: c(1),
        s503: c(2),
        other: c(3),
        errors: c(4),
        latencies,
        max_lag: Duration::from_micros(max_lag_us.load(Ordering::Relaxed)),
    })
}

/// Counts stored log rows page by page (`limit=1000000`, following `X-LogOps-Next`),
/// streaming the bodies.
async fn count_stored(url: &str, key: &str) -> anyhow::Result<u64> {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(600))
        .no_proxy()
        .build()?;
    let mut cursor: Option<String> = None;
    let mut total = 0u64;
    loop {
        let mut u = reqwest::Url::parse(&format!("{url}/v1/logs"))?;
        u.query_pairs_mut().append_pair("limit", "1000000");
        if let Some(c) = &cursor {
            u.query_pairs_mut().append_pair("cursor", c);
        }
        let mut resp = client.get(u).bearer_auth(key).send().await?;
        if resp.status() != 200 {
            bail!(
                "query: HTTP {}: {}",
                resp.status(),
                resp.text().await.unwrap_or_default()
            );
        }
        let next = resp
            .headers()
            .get(NEXT_HEADER)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        while let Some(chunk) = resp.chunk().await? {
            total += chunk.iter().filter(|&&b| b == b'\n').count() as u64;
        }
        match next {
            Some(n) => cursor = Some(n),
            None => return Ok(total),
        }
    }
}
