//! A write storm: several agent threads posting distinct batches continuously, each one
//! resending its current batch (same id, same bytes) until it is acknowledged, like a real
//! agent across ingest crashes and restarts. Every acknowledged batch is recorded.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use logops_common::batch::Encoding;

use crate::client::{zstd_frames_body, BatchRequest, Client};
use crate::events::{body_of, now, parse_stored, realistic_line};

/// A batch that got 200.
#[derive(Debug, Clone)]
pub struct AckedBatch {
    /// Agent id.
    pub agent: String,
    /// Sequence number.
    pub seq: u64,
    /// The lines sent.
    pub lines: Vec<String>,
    /// Attempts it took (1 = first try).
    pub attempts: u32,
    /// Whether an earlier attempt failed with a transport error (e.g. the ingest was killed
    /// while it was in flight).
    pub interrupted: bool,
    /// Whether the 200 said `"duplicate": true`.
    pub duplicate: bool,
}

/// How long one batch may keep failing before its thread gives up.
pub const BATCH_DEADLINE: Duration = Duration::from_secs(120);

/// The running storm.
pub struct Storm {
    stop: Arc<AtomicBool>,
    acked: Arc<Mutex<Vec<AckedBatch>>>,
    threads: Vec<JoinHandle<Result<(), String>>>,
}

impl Storm {
    /// Starts `agents` threads posting batches of `lines_per_batch` ~200-byte zstd log lines
    /// with `key`, agent ids `<prefix>-<n>`. `client` makes each thread's client. Agents
    /// with an even `n` send each batch as one zstd frame (which the ingest stores as it
    /// is); odd ones as two frames, half of the lines then the rest with `\r\n` line
    /// ends (the ingest keeps the first and compresses the lines of the second anew), so
    /// that both paths are stormed.
    pub fn start(
        client: impl Fn() -> Client,
        key: &str,
        prefix: &str,
        agents: usize,
        lines_per_batch: usize,
    ) -> Storm {
        let stop = Arc::new(AtomicBool::new(false));
        let acked = Arc::new(Mutex::new(Vec::new()));
        let threads = (0..agents)
            .map(|n| {
                let c = client();
                let key = key.to_owned();
                let agent = format!("{prefix}-{n}");
                let stop = stop.clone();
                let acked = acked.clone();
                std::thread::Builder::new()
                    .name(agent.clone())
                    .spawn(move || agent_loop(&c, &key, &agent, lines_per_batch, &stop, &acked))
                    .expect("spawning a storm thread")
            })
            .collect();
        Storm {
            stop,
            acked,
            threads,
        }
    }

    /// Batches acknowledged so far.
    pub fn acked_count(&self) -> usize {
        self.acked.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    /// A copy of the acknowledged batches so far.
    pub fn acked(&self) -> Vec<AckedBatch> {
        self.acked.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Waits until `n` more batches than now are acknowledged (at most `timeout`; panics
    /// saying so when it gives up, or when a storm thread failed).
    pub fn wait_for_more(&self, n: usize, timeout: Duration) {
        let start = self.acked_count();
        let deadline = Instant::now() + timeout;
        while self.acked_count() < start + n {
            if self.threads.iter().any(|t| t.is_finished()) {
                panic!("a storm thread stopped early (see stop() for its error)");
            }
            if Instant::now() > deadline {
                panic!(
                    "gave up after {timeout:?} waiting for {n} more acknowledged batches (got {})",
                    self.acked_count() - start
                );
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Stops the threads (each finishes its current batch, resending until it is
    /// acknowledged) and returns every acknowledged batch. Panics if a thread failed.
    pub fn stop(self) -> Vec<AckedBatch> {
        self.stop.store(true, Ordering::SeqCst);
        let mut errors = Vec::new();
        for t in self.threads {
            match t.join() {
                Ok(Ok(())) => {}
                Ok(Err(e)) => errors.push(e),
                Err(_) => errors.push("a storm thread panicked".into()),
            }
        }
        assert!(errors.is_empty(), "storm threads failed: {errors:#?}");
        let acked = self.acked.lock().unwrap_or_else(|p| p.into_inner()).clone();
        acked
    }
}

fn agent_loop(
    c: &Client,
    key: &str,
    agent: &str,
    n: usize,
    stop: &AtomicBool,
    acked: &Mutex<Vec<AckedBatch>>,
) -> Result<(), String> {
    let mut seq = 0u64;
    while !stop.load(Ordering::SeqCst) {
        let ts = now();
        let lines: Vec<String> = (0..n)
            .map(|i| realistic_line(agent, seq, i, ts, 200))
            .collect();
        let req = if agent.ends_with(['1', '3', '5', '7', '9']) {
            let cut = lines.len() / 2;
            let body = zstd_frames_body(&[(&lines[..cut], "\n"), (&lines[cut..], "\r\n")]);
            BatchRequest::raw(Some(key), agent, seq, body, Some(Encoding::Zstd.as_str()))
        } else {
            BatchRequest::new(key, agent, seq, &lines, Encoding::Zstd)
        };
        let started = Instant::now();
        let mut attempts = 0;
        let mut interrupted = false;
        loop {
            attempts += 1;
            match c.send(&req) {
                Ok(r) if r.status == 200 => {
                    let duplicate = r.json()["duplicate"] == true;
                    acked
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .push(AckedBatch {
                            agent: agent.to_owned(),
                            seq,
                            lines,
                            attempts,
                            interrupted,
                            duplicate,
                        });
                    break;
                }
                Ok(r) if r.status == 429 || r.status == 503 => {
                    // Busy or shutting down: back off briefly and resend the same batch.
                    std::thread::sleep(Duration::from_millis(200));
                }
                Ok(r) => {
                    return Err(format!(
                        "{agent}:{seq}: unexpected {}: {}",
                        r.status, r.body
                    ))
                }
                Err(_) => {
                    interrupted = true;
                    std::thread::sleep(Duration::from_millis(50));
                }
            }
            if started.elapsed() > BATCH_DEADLINE {
                return Err(format!(
                    "{agent}:{seq}: not acknowledged within {BATCH_DEADLINE:?}"
                ));
            }
        }
        seq += 1;
    }
    Ok(())
}

/// What [`verify_exactly_once`] found.
#[derive(Debug, Clone, Default)]
pub struct StoredCheck {
    /// Rows stored.
    pub rows: usize,
    /// Acknowledged lines.
    pub acked_lines: usize,
}

/// Reads every stored log row of `key`'s tenant (`limit=1000000`, following
/// `X-LogOps-Next`) and checks that every row is a valid event (no torn line), every line of
/// every acknowledged batch is there exactly once, and nothing else is.
pub fn verify_exactly_once(c: &Client, key: &str, acked: &[AckedBatch]) -> StoredCheck {
    verify_stored(c, key, acked, true)
}

/// Like [`verify_exactly_once`] while batches may still be in flight: every acknowledged
/// line is stored exactly once and no row is stored twice, but rows of batches not (yet)
/// acknowledged are allowed.
pub fn verify_acked_once(c: &Client, key: &str, acked: &[AckedBatch]) -> StoredCheck {
    verify_stored(c, key, acked, false)
}

fn verify_stored(c: &Client, key: &str, acked: &[AckedBatch], exact: bool) -> StoredCheck {
    let rows = c.query_all(key, "/v1/logs", &[("limit", "1000000")]);
    let mut counts: HashMap<String, usize> = HashMap::with_capacity(rows.len());
    for (i, r) in rows.iter().enumerate() {
        if let Err(e) = parse_stored(r) {
            panic!("stored row {i} is not a valid event ({e}): {r:?}");
        }
        body_of(r).expect("a log row");
        // The row itself, byte for byte: a stored line is the line as sent.
        *counts.entry(r.clone()).or_default() += 1;
    }
    let mut acked_lines = 0;
    let mut problems = Vec::new();
    for b in acked {
        for l in &b.lines {
            acked_lines += 1;
            let body = body_of(l).expect("sent lines are logs");
            match counts.get(l).copied().unwrap_or(0) {
                1 => {}
                n => problems.push(format!(
                    "{}:{} `{}…` stored {n} times",
                    b.agent,
                    b.seq,
                    &body[..body.len().min(40)]
                )),
            }
        }
    }
    assert!(
        problems.is_empty(),
        "{} acknowledged lines are not stored exactly once, e.g.: {:#?}",
        problems.len(),
        &problems[..problems.len().min(20)]
    );
    if let Some((row, n)) = counts.iter().find(|(_, n)| **n > 1) {
        panic!("`{row}` is stored {n} times");
    }
    if !exact {
        return StoredCheck {
            rows: rows.len(),
            acked_lines,
        };
    }
    assert_eq!(
        rows.len(),
        acked_lines,
        "stored rows ({}) != acknowledged lines ({acked_lines}): something was stored twice or never acknowledged",
        rows.len()
    );
    StoredCheck {
        rows: rows.len(),
        acked_lines,
    }
}
