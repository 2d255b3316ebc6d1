//! The embedded, durable store behind `logops-ingest`.
//!
//! Batches of NDJSON events go to [`Store::submit`]; a single writer thread appends their
//! lines to one active segment per (tenant, kind) and commits them in groups: every batch
//! queued while a commit is in progress joins the next group, which costs one `fdatasync`
//! per touched segment plus one of the commit log, all at the same time. A batch is answered
//! [`WriteOutcome::Stored`] only once all are done, and [`WriteOutcome::Duplicate`] if its
//! id was stored before (ids are remembered on disk for at least the dedupe window).
//! [`Store::scan`] reads committed lines only. Closed segments are compressed by a
//! background thread and deleted by retention.
//!
//! # On-disk layout
//!
//! ```text
//! <dir>/LOCK                          exclusive lock (File::try_lock): one process per dir
//! <dir>/commits.log                   append-only commit log, one record per group commit
//! <dir>/commits.snapshot              compacted commit log (live dedupe ranges, segments)
//! <dir>/<tenant>/<kind>/<seq:020>.ndjson       active, or closed awaiting compression
//! <dir>/<tenant>/<kind>/<seq:020>.ndjson.zst   closed and compressed
//! ```
//!
//! * **Segments.** `seq` is one store-wide, increasing `u64` (at open: one more than the
//!   largest seq on disk or in the commit state). Each line is an event's original NDJSON
//!   bytes followed by `\n`. Creating a segment file fsyncs its directory (and each parent
//!   directory created for it). An active segment is closed when it reaches
//!   `segment_max_bytes` (checked at group boundaries; a batch is never split) or
//!   `segment_max_age` (also checked by a timer, so quiet streams close too).
//! * **`commits.log`.** Records `u32 length | u32 CRC-32 | payload`; a *group* record holds
//!   the Unix ms, the (tenant, agent, seq) of each batch stored and (segment seq, committed
//!   length, and the start and CRC-32 of the bytes the group added) of each segment written;
//!   a *close* record marks a rotated segment. A torn or corrupt tail is cut at open, and so
//!   is a last group record whose segment bytes did not reach the disk (it is fdatasync'd
//!   together with them). See `commit_log.rs`.
//! * **`commits.snapshot`.** When the log exceeds `commit_log_max_bytes` (64 MiB) and at
//!   clean shutdown, the live dedupe ranges (expired ones dropped), the commit state of
//!   every uncompressed segment and the next seq are written to `commits.snapshot.tmp`,
//!   fsync'd, renamed over `commits.snapshot`, the directory fsync'd, and the log emptied.
//!   Recovery loads the snapshot then replays the log; replay is idempotent (committed
//!   lengths only grow, ids merge into ranges). See `snapshot.rs`.
//! * **`.ndjson.zst`.** Independent zstd frames of whole lines (~1 MiB uncompressed each),
//!   then a zstd skippable frame (magic `0x184D2A5E`) with the index: per frame (compressed
//!   offset and length, uncompressed offset and length, lines, min/max ts) and segment
//!   totals (lines, min/max ts, uncompressed length, first and last commit time). Plain
//!   `zstd -d` yields the original NDJSON. Written as `.zst.tmp`, fsync'd, renamed, the
//!   directory fsync'd, then the `.ndjson` is deleted. See `compress.rs`.
//!
//! # Recovery (at open, after a crash at any instant)
//!
//! Leftover `.tmp` files are removed. The last group record is dropped if the CRCs of the
//! segment bytes it covers do not match (none of its batches was acknowledged). Every
//! `.ndjson` is cut back to its last committed
//! length (one with no commit record is removed), so no torn line and no uncommitted batch
//! becomes visible; a `.ndjson` whose `.zst` exists is removed; closed `.ndjson` segments
//! are compressed again. Every batch whose commit record was fsync'd is in the store and in
//! the dedupe set.
//!
//! # Retention
//!
//! Every `retention_interval` and after each rotation or compression: closed segments whose
//! last write is older than `retention_max_age` are deleted, then, while the store takes
//! more than `retention_max_bytes`, the closed segment with the lowest seq. Active segments
//! are never deleted.

#![warn(missing_docs)]

mod batch;
mod catalog;
mod codec;
mod commit_log;
mod compress;
mod compressor;
mod dedupe;
mod dirlock;
mod error;
mod fsutil;
mod options;
mod position;
mod recovery;
mod retention;
mod scan;
mod segment;
mod shared;
mod snapshot;
mod stats;
mod writer;

#[cfg(test)]
mod tests;

use std::ops::ControlFlow;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::{self, Sender, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use logops_common::BatchId;
use tokio::sync::oneshot;
use tracing::{error, info};

pub use batch::{LineInfo, WriteBatch, WriteOutcome};
pub use error::{StoreError, SubmitError};
pub use options::{FsyncObserver, StoreOptions};
pub use position::{ParsePositionError, Position};
pub use scan::{Order, ScanRange};
pub use stats::{StoreStats, StreamStats};

use compressor::CompressMsg;
use retention::RetentionMsg;
use shared::{lock, Shared};
use writer::{Job, Writer};

/// The receiving end of a submitted batch's outcome.
pub type OutcomeReceiver = oneshot::Receiver<Result<WriteOutcome, StoreError>>;

/// An open store. Cheap to clone (an `Arc` inside); `Send + Sync`. The store shuts down
/// when [`Store::shutdown`] is called or the last clone is dropped.
#[derive(Clone)]
pub struct Store {
    handle: Arc<Handle>,
}

/// The store's threads and the senders that drive them.
struct Threads {
    writer: Option<JoinHandle<()>>,
    compressor: Option<JoinHandle<()>>,
    retention: Option<JoinHandle<()>>,
    compress_tx: Sender<CompressMsg>,
    retention_tx: Sender<RetentionMsg>,
    stop: Arc<AtomicBool>,
}

impl Threads {
    /// Waits for the writer (its job sender must be gone), then stops the others.
    fn stop(mut self) {
        if let Some(writer) = self.writer.take() {
            if writer.join().is_err() {
                error!("the store's writer thread panicked");
            }
        }
        self.stop.store(true, Ordering::Relaxed);
        // Sending fails only if the thread is already gone.
        let _ = self.compress_tx.send(CompressMsg::Stop);
        let _ = self.retention_tx.send(RetentionMsg::Stop);
        for handle in [self.compressor.take(), self.retention.take()]
            .into_iter()
            .flatten()
        {
            if handle.join().is_err() {
                error!("a background thread of the store panicked");
            }
        }
    }
}

struct Handle {
    shared: Arc<Shared>,
    sender: Mutex<Option<SyncSender<Job>>>,
    threads: Mutex<Option<Threads>>,
    /// Holds the directory lock; released once the threads are joined.
    dir_lock: std::fs::File,
}

impl Handle {
    fn shutdown(&self) {
        let mut threads = lock(&self.threads);
        let Some(running) = threads.take() else {
            return;
        };
        // Stop accepting; the writer commits what is queued, compacts the log and exits.
        drop(lock(&self.sender).take());
        running.stop();
        if let Err(e) = self.dir_lock.unlock() {
            error!(error = %e, "cannot release the store directory's lock");
        }
        info!(dir = %self.shared.opts.dir.display(), "store shut down");
    }
}

impl Drop for Handle {
    fn drop(&mut self) {
        self.shutdown();
    }
}

fn spawn(
    name: &'static str,
    f: impl FnOnce() + Send + 'static,
) -> Result<JoinHandle<()>, StoreError> {
    std::thread::Builder::new()
        .name(format!("logops-store-{name}"))
        .spawn(f)
        .map_err(|e| StoreError::Spawn {
            name,
            source: Arc::new(e),
        })
}

/// Background compression yields the CPU to the writer and the request handlers: measured
/// with the ingest's load generator, compressing a closed 64 MiB segment at normal priority
/// showed up as acknowledgement latency spikes on a 2-core machine.
fn lower_priority() {
    // SAFETY: setpriority on the calling thread (who = 0 with PRIO_PROCESS means the calling
    // thread on Linux); a failure only leaves the priority unchanged.
    let rc = unsafe { libc::setpriority(libc::PRIO_PROCESS, 0, 10) };
    if rc != 0 {
        tracing::debug!(
            "could not lower the compressor's priority: {}",
            std::io::Error::last_os_error()
        );
    }
}

impl Store {
    /// Opens (or creates) the store in `opts.dir`: takes the directory lock, recovers (see
    /// the crate documentation) and starts the writer, compressor and retention threads.
    pub fn open(opts: StoreOptions) -> Result<Store, StoreError> {
        let dir_lock = dirlock::acquire(&opts.dir)?;
        let recovered = recovery::recover(&opts.dir)?;
        let shared = Arc::new(Shared {
            catalog: Mutex::new(recovered.catalog),
            dedupe: Mutex::new(recovered.dedupe),
            counters: Default::default(),
            queue_len: AtomicUsize::new(0),
            writable: AtomicBool::new(true),
            last_write_error: Mutex::new(None),
            opts,
        });
        let (job_tx, job_rx) = mpsc::sync_channel(shared.opts.queue_capacity.max(1));
        let (compress_tx, compress_rx) = mpsc::channel();
        let (retention_tx, retention_rx) = mpsc::channel();
        let stop = Arc::new(AtomicBool::new(false));
        let mut threads = Threads {
            writer: None,
            compressor: None,
            retention: None,
            compress_tx: compress_tx.clone(),
            retention_tx: retention_tx.clone(),
            stop: stop.clone(),
        };

        let (s, r) = (shared.clone(), retention_tx.clone());
        match spawn("compressor", move || {
            lower_priority();
            compressor::run(s, compress_rx, r, stop)
        }) {
            Ok(h) => threads.compressor = Some(h),
            Err(e) => {
                threads.stop();
                return Err(e);
            }
        }
        let s = shared.clone();
        match spawn("retention", move || retention::run(s, retention_rx)) {
            Ok(h) => threads.retention = Some(h),
            Err(e) => {
                threads.stop();
                return Err(e);
            }
        }
        let writer = Writer::new(
            shared.clone(),
            job_rx,
            recovered.log,
            recovered.active,
            recovered.next_seq,
            compress_tx.clone(),
            retention_tx.clone(),
        );
        match spawn("writer", move || writer.run()) {
            Ok(h) => threads.writer = Some(h),
            Err(e) => {
                threads.stop();
                return Err(e);
            }
        }
        // The threads are running, so these receivers exist.
        for seq in recovered.to_compress {
            let _ = compress_tx.send(CompressMsg::Segment(seq, None));
        }
        let _ = retention_tx.send(RetentionMsg::Run);

        Ok(Store {
            handle: Arc::new(Handle {
                shared,
                sender: Mutex::new(Some(job_tx)),
                threads: Mutex::new(Some(threads)),
                dir_lock,
            }),
        })
    }

    fn shared(&self) -> &Shared {
        &self.handle.shared
    }

    /// Queues `batch` for the writer without blocking. The receiver gets `Stored` once the
    /// batch's lines and its commit record are fdatasync'd, `Duplicate` if its id was
    /// already stored, or the error that failed its group.
    pub fn submit(&self, batch: WriteBatch) -> Result<OutcomeReceiver, SubmitError> {
        let (reply, outcome) = oneshot::channel();
        let sender = lock(&self.handle.sender);
        let sender = sender.as_ref().ok_or(SubmitError::Closed)?;
        let queue_len = &self.shared().queue_len;
        queue_len.fetch_add(1, Ordering::Relaxed);
        match sender.try_send(Job {
            batch,
            reply,
            queued: std::time::Instant::now(),
        }) {
            Ok(()) => Ok(outcome),
            Err(e) => {
                queue_len.fetch_sub(1, Ordering::Relaxed);
                Err(match e {
                    TrySendError::Full(_) => SubmitError::QueueFull,
                    TrySendError::Disconnected(_) => SubmitError::Closed,
                })
            }
        }
    }

    /// Submits `batch` and waits for its outcome. Blocking: not for async contexts (use
    /// [`Store::submit`] and await the receiver there).
    pub fn write_blocking(&self, batch: WriteBatch) -> Result<WriteOutcome, StoreError> {
        let outcome = self.submit(batch)?;
        outcome.blocking_recv().map_err(|_| StoreError::Closed)?
    }

    /// Whether `tenant`'s batch `id` is already stored, without I/O: a fast pre-check (the
    /// writer checks again when the batch is committed).
    pub fn contains(&self, tenant: &str, id: &BatchId) -> bool {
        lock(&self.shared().dedupe).contains(tenant, &id.agent, id.seq)
    }

    /// Visits the committed lines of one tenant and kind, blocking (call it from
    /// `spawn_blocking` in async code).
    ///
    /// `Asc` visits the oldest segment first and lines in file order; `Desc` the exact
    /// reverse. The scan starts at `from` (inclusive; `None`: the very beginning for `Asc`,
    /// the newest line committed when the call starts for `Desc`) and stops after `to`
    /// (inclusive) if given. Segments (and frames of compressed segments) whose time range
    /// does not overlap `[since, until)` are skipped unread; other lines outside the range
    /// are visited all the same (filter them per line). `visit` returns `Break` to stop.
    pub fn scan(
        &self,
        q: &ScanRange,
        visit: &mut dyn FnMut(Position, &[u8]) -> ControlFlow<()>,
    ) -> Result<(), StoreError> {
        scan::scan(self.shared(), q, visit)
    }

    /// Sizes and counters, for metrics.
    pub fn stats(&self) -> StoreStats {
        let shared = self.shared();
        let mut stats = StoreStats::collect(&shared.counters, &lock(&shared.catalog));
        stats.dedupe_ranges = lock(&shared.dedupe).range_count() as u64;
        stats.queue_len = shared.queue_len.load(Ordering::Relaxed);
        stats.last_write_error = lock(&shared.last_write_error).clone();
        stats
    }

    /// False after a failed group commit, until a later one succeeds (a readiness probe).
    pub fn is_writable(&self) -> bool {
        self.shared().writable.load(Ordering::Relaxed)
    }

    /// Stops accepting batches, commits everything already queued, compacts the commit log
    /// and joins the store's threads, then releases the directory lock. Idempotent; also
    /// done when the last clone is dropped. Scans keep working afterwards (as long as no
    /// other process opens the directory). Blocks until done: call it from `spawn_blocking`
    /// in async code.
    pub fn shutdown(&self) {
        self.handle.shutdown();
    }
}
