//! Write throughput of the store: `cargo bench -p logops-store --bench store_write`.
//!
//! 8 threads submit 2,000 batches of 1,000 ~250-byte log lines in all, each batch one zstd
//! frame as agents send it (each thread keeps up to 32 batches in flight), to a store in a
//! temporary directory, then the figures are printed. Environment: `STORE_BENCH_DIR` (a directory on the disk to measure; default the
//! system temp dir), `STORE_BENCH_BATCHES`, `STORE_BENCH_THREADS`.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use logops_common::{BatchId, Kind, Timestamp};
use logops_store::{
    Frame, FrameBuilder, OutcomeReceiver, Store, StoreOptions, WriteBatch, WriteOutcome,
};

const LINES_PER_BATCH: usize = 1_000;
const IN_FLIGHT: usize = 32;
const T0: i64 = 1_790_000_000_000_000_000;

fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// A batch of `LINES_PER_BATCH` log lines of about 250 bytes as one frame, and the bytes
/// of its lines.
fn body(thread: usize, seq: u64) -> (Vec<Frame>, usize) {
    let mut frames = FrameBuilder::new(1).expect("zstd");
    let mut bytes = 0;
    for i in 0..LINES_PER_BATCH {
        let ts = T0 + (seq as i64 * LINES_PER_BATCH as i64 + i as i64) * 1_000_000;
        let line = format!(
            r#"{{"ts":"{}","kind":"log","severity":"info","attrs":{{"host":"web-{thread:02}","svc":"api"}},"body":"GET /api/v1/items/{} 200 {}us user={} trace={:016x}"}}"#,
            Timestamp::from_nanos(ts.into()),
            seq * 7919 + i as u64,
            (i * 37) % 5000,
            i % 97,
            (seq << 20) ^ i as u64 ^ 0x9e37_79b9_7f4a_7c15,
        );
        let pad = 250usize.saturating_sub(line.len() + 9);
        let line = line.replacen(
            r#""body":""#,
            &format!(r#""pad":"{}","body":""#, "-".repeat(pad)),
            1,
        );
        bytes += line.len() + 1;
        frames
            .push_line(Kind::Log, line.as_bytes(), ts)
            .expect("zstd");
    }
    (frames.finish().expect("zstd"), bytes)
}

fn main() {
    let batches = env_or("STORE_BENCH_BATCHES", 2_000);
    let threads = env_or("STORE_BENCH_THREADS", 8);
    let parent = std::env::var_os("STORE_BENCH_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(std::env::temp_dir);
    let tmp = tempfile::tempdir_in(parent).expect("temporary directory");

    let fsyncs = Arc::new(AtomicU64::new(0));
    let fsync_nanos = Arc::new(AtomicU64::new(0));
    let mut opts = StoreOptions::new(tmp.path());
    let (count, nanos) = (fsyncs.clone(), fsync_nanos.clone());
    opts.fsync_observer = Some(Arc::new(move |d: Duration| {
        count.fetch_add(1, Ordering::Relaxed);
        nanos.fetch_add(d.as_nanos() as u64, Ordering::Relaxed);
    }));
    let store = Store::open(opts).expect("open the store");

    // Bodies are built before the clock starts; each batch clones its thread's template.
    let templates: Vec<_> = (0..threads).map(|t| body(t, t as u64)).collect();
    let line_bytes = templates[0].1;

    let started = Instant::now();
    std::thread::scope(|s| {
        for (t, (frames, _)) in templates.iter().enumerate() {
            let store = store.clone();
            let count = batches / threads + usize::from(t < batches % threads);
            s.spawn(move || {
                let agent = format!("bench-{t}");
                let mut pending = VecDeque::new();
                for seq in 1..=count as u64 {
                    if pending.len() == IN_FLIGHT {
                        wait(&mut pending);
                    }
                    let batch = WriteBatch {
                        tenant: "bench".into(),
                        id: BatchId::new(agent.clone(), seq),
                        frames: frames.clone(),
                    };
                    pending.push_back(store.submit(batch).expect("queue has room"));
                }
                while !pending.is_empty() {
                    wait(&mut pending);
                }
            });
        }
    });
    let elapsed = started.elapsed().as_secs_f64();
    let stats = store.stats();
    store.shutdown();

    let lines = stats.lines_committed as f64;
    let fsync_count = fsyncs.load(Ordering::Relaxed);
    println!(
        "store_write: {threads} threads, {batches} batches x {LINES_PER_BATCH} lines of ~{} bytes",
        line_bytes / LINES_PER_BATCH
    );
    println!("  elapsed          {elapsed:.2} s");
    println!(
        "  batches/s        {:.0}",
        stats.batches_stored as f64 / elapsed
    );
    println!("  lines/s          {:.0}", lines / elapsed);
    println!(
        "  MiB/s            {:.1}",
        (batches * line_bytes) as f64 / elapsed / (1 << 20) as f64
    );
    println!("  groups           {}", stats.groups_committed);
    println!(
        "  batches/group    {:.1}",
        stats.batches_stored as f64 / stats.groups_committed as f64
    );
    println!(
        "  lines per fsync  {:.0} (per group commit: {:.0})",
        lines / fsync_count as f64,
        lines / stats.groups_committed as f64
    );
    println!(
        "  fsyncs           {fsync_count} (mean {:.2} ms)",
        fsync_nanos.load(Ordering::Relaxed) as f64 / fsync_count as f64 / 1e6
    );
    println!(
        "  segments         {} ({} sealed), {:.0} MiB on disk",
        stats.segments,
        stats.sealed_segments,
        stats.bytes_on_disk as f64 / (1 << 20) as f64
    );
}

fn wait(pending: &mut VecDeque<OutcomeReceiver>) {
    if let Some(rx) = pending.pop_front() {
        let outcome = rx
            .blocking_recv()
            .expect("the store answers")
            .expect("stored");
        assert_eq!(outcome, WriteOutcome::Stored);
    }
}
