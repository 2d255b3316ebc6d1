//! Throughput of the files source: 1,000,000 lines of 100 bytes, read from the beginning
//! into a real buffer (sled). Prints lines/s, MiB/s and the CPU time of the whole process
//! (reader, serialization, sled and its flusher; getrusage).
//!
//! `cargo bench -p logops-agent --bench files_read` (`FILES_BENCH_LINES=n` for another
//! count).

use std::collections::BTreeMap;
use std::io::{BufWriter, Write};
use std::sync::Arc;
use std::time::{Duration, Instant};

use logops_agent::buffer::{Buffer, BufferOptions};
use logops_agent::config::{FilesConfig, StartAt, WhenFull};
use logops_agent::metrics::AgentMetrics;
use logops_agent::pipeline::{Emitter, Shutdown};
use logops_agent::sources::files::FilesSource;
use logops_common::units::{ByteSize, HumanDuration};

/// User + system CPU seconds of this process so far.
fn cpu_seconds() -> f64 {
    // SAFETY: getrusage only writes the struct it is given.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    let rc = unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    assert_eq!(rc, 0, "getrusage");
    let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

/// CPU seconds per thread name (user+sys, from /proc/self/task), summed by name
/// without digits (`sled-io-3` → `sled-io-`).
fn cpu_by_thread() -> BTreeMap<String, f64> {
    // SAFETY: sysconf has no preconditions.
    let tick = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    let mut out = BTreeMap::new();
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return out;
    };
    for t in tasks.flatten() {
        let (Ok(comm), Ok(stat)) = (
            std::fs::read_to_string(t.path().join("comm")),
            std::fs::read_to_string(t.path().join("stat")),
        ) else {
            continue;
        };
        // Fields after the ")" that closes the name: utime and stime are the 12th and 13th.
        let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r) else {
            continue;
        };
        let f: Vec<&str> = rest.split_whitespace().collect();
        let ticks: f64 = f.get(11).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0)
            + f.get(12).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
        let name: String = comm
            .trim()
            .chars()
            .filter(|c| !c.is_ascii_digit())
            .collect();
        *out.entry(name).or_insert(0.0) += ticks / tick;
    }
    out
}

fn main() {
    let lines: u64 = std::env::var("FILES_BENCH_LINES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let dir = tempfile::tempdir().expect("temp dir");
    let logs = dir.path().join("logs");
    std::fs::create_dir(&logs).unwrap();
    let path = logs.join("app.log");
    {
        let mut w = BufWriter::with_capacity(1 << 20, std::fs::File::create(&path).unwrap());
        for i in 0..lines {
            // 99 bytes of text + '\n' = 100 bytes.
            let head = format!(
                "2026-11-22T10:00:00.{:06}Z INFO http request id={i:010} method=GET path=/api/v1/items",
                i % 1_000_000
            );
            writeln!(w, "{head:<99.99}").unwrap();
        }
        w.flush().unwrap();
    }
    let bytes = std::fs::metadata(&path).unwrap().len();
    assert_eq!(bytes, lines * 100);

    // The defaults of [buffer].
    let buffer = Buffer::open(
        &dir.path().join("buffer"),
        &BufferOptions {
            cache_bytes: 4 << 20,
            flush_interval: Duration::from_millis(500),
            zstd_level: 3,
        },
    )
    .unwrap();
    let emitter = Emitter::new(
        buffer.clone(),
        16 << 30,
        WhenFull::Block,
        Arc::new(AgentMetrics::new()),
        Arc::from("bench-host"),
        BTreeMap::from([("env".to_string(), "bench".to_string())]),
    );
    let group = FilesConfig {
        paths: vec![logs.join("*.log").to_string_lossy().into_owned()],
        exclude: vec![],
        start_at: StartAt::Beginning,
        labels: BTreeMap::from([("service".to_string(), "bench".to_string())]),
        max_line_bytes: ByteSize::kib(64),
        multiline: None,
        rescan_interval: HumanDuration::secs(10),
        rotate_wait: HumanDuration::secs(5),
        container: None,
    };

    let cpu0 = cpu_seconds();
    let t0 = Instant::now();
    let (trigger, shutdown) = Shutdown::new();
    let source = std::thread::Builder::new()
        .name("files-source".into())
        .spawn(move || FilesSource::new(vec![group], emitter).run(shutdown))
        .unwrap();
    while buffer.queued_events() < lines {
        std::thread::sleep(Duration::from_millis(5));
    }
    let wall = t0.elapsed().as_secs_f64();
    let cpu = cpu_seconds() - cpu0;
    let threads = cpu_by_thread();
    trigger.trigger();
    source.join().unwrap();

    let mib = bytes as f64 / (1024.0 * 1024.0);
    println!("files_read: {lines} lines of 100 bytes ({mib:.1} MiB) into a sled buffer");
    println!("  wall        {wall:.3} s");
    println!("  lines/s     {:.0}", lines as f64 / wall);
    println!("  MiB/s       {:.1}", mib / wall);
    println!(
        "  CPU         {cpu:.3} s (user+sys, whole process) = {:.3} CPU-s per million lines",
        cpu / (lines as f64 / 1e6)
    );
    for (name, secs) in &threads {
        if !name.starts_with("files_read") && *secs > 0.0 {
            println!("    thread {name:<12} {secs:.2} s");
        }
    }
    println!(
        "  buffer      {} bytes of chunks",
        buffer.stats().map(|s| s.bytes).unwrap_or(0)
    );
}
