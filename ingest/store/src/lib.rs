//! The embedded, durable store behind `logops-ingest`.
//!
//! Batches of NDJSON events go to [`Store::submit`] as zstd [`Frame`]s of whole lines of one
//! kind (the frames agents sent when they hold exactly the validated lines, others made by a
//! [`FrameBuilder`]); a single writer thread appends them as they are to one active segment
//! per (tenant, kind) and commits them in groups: every batch queued while a commit is in
//! progress joins the next group, which costs one `fdatasync` per touched segment plus one
//! of the commit log, all at the same time. A batch is answered [`WriteOutcome::Stored`]
//! only once all are done, and [`WriteOutcome::Duplicate`] if its id was stored before (ids
//! are remembered on disk for at least the dedupe window). [`Store::scan`] reads committed
//! lines only. Closed segments get their index from a background thread (small frames are
//! merged then) and are deleted by retention.
//!
//! # On-disk layout
//!
//! ```text
//! <dir>/LOCK                          exclusive lock (File::try_lock): one process per dir
//! <dir>/commits.log                   append-only commit log, one record per group commit
//! <dir>/commits.snapshot              compacted commit log (live dedupe ranges, segments)
//! <dir>/<tenant>/<kind>/<seq:020>.open.ndjson.zst   active, or closed awaiting its index
//! <dir>/<tenant>/<kind>/<seq:020>.ndjson.zst        closed and sealed (indexed)
//! ```
//!
//! * **Segments.** `seq` is one store-wide, increasing `u64` (at open: one more than the
//!   largest seq on disk or in the commit state). A segment is zstd frames of whole lines,
//!   each line an event's original NDJSON bytes followed by `\n`, with a group header (a
//!   skippable frame) before each group's frames, see `format.rs`: `zstd -d` reads any
//!   segment. Creating a segment file fsyncs its directory (and each parent directory
//!   created for it). An active segment is closed when its content reaches
//!   `segment_max_bytes` (uncompressed; checked at group boundaries; a batch is never
//!   split) or `segment_max_age` (also checked by a timer, so quiet streams close too).
//! * **`commits.log`.** Records `u32 length | u32 CRC-32 | payload`; a *group* record holds
//!   the Unix ms, the (tenant, agent, seq) of each batch stored and (segment seq, committed
//!   length in the file, and the start and CRC-32 of the bytes the group added) of each
//!   segment written;
//!   a *close* record marks a rotated segment. A torn or corrupt tail is cut at open, and so
//!   is a last group record whose segment bytes did not reach the disk (it is fdatasync'd
//!   together with them). See `commit_log.rs`.
//! * **`commits.snapshot`.** When the log exceeds `commit_log_max_bytes` (64 MiB) and at
//!   clean shutdown, the live dedupe ranges (expired ones dropped), the commit state of
//!   every unsealed segment and the next seq are written to `commits.snapshot.tmp`,
//!   fsync'd, renamed over `commits.snapshot`, the directory fsync'd, and the log emptied.
//!   Recovery loads the snapshot then replays the log; replay is idempotent (committed
//!   lengths only grow, ids merge into ranges). See `snapshot.rs`.
//! * **Sealing.** A closed segment gets the index appended (a skippable frame: per frame
//!   compressed offset and length, uncompressed offset and length, lines, min/max ts, and
//!   segment totals), is fdatasync'd and renamed to `.ndjson.zst`, the directory fsync'd.
//!   When its frames average less than 64 KiB they are merged into ~1 MiB frames instead,
//!   written as `.ndjson.zst.tmp`, fsync'd, renamed, the directory fsync'd, then the open
//!   file is deleted. See `sealer.rs`.
//!
//! # Recovery (at open, after a crash at any instant)
//!
//! Leftover `.tmp` files are removed. The last group record is dropped if the CRCs of the
//! segment bytes it covers do not match (none of its batches was acknowledged). Every open
//! segment is cut back to its last committed length (one with no commit record is removed)
//! and its frames are read from its group headers, so no torn frame and no uncommitted
//! batch becomes visible; an open segment whose `.ndjson.zst` exists is removed; closed
//! open segments are sealed again. Every batch whose commit record was fsync'd is in the
//! store and in the dedupe set.
//!
//! # Retention
//!
//! Every `retention_interval` and after each rotation or sealing: closed segments whose
//! last write is older than `retention_max_age` are deleted, then, while the store takes
//! more than `retention_max_bytes`, the closed segment with the lowest seq. Active segments
//! are never deleted.

#![warn(missing_docs)]

mod batch;
mod catalog;
mod codec;
mod commit_log;
mod dedupe;
mod dirlock;
mod error;
mod format;
mod frame;
mod fsutil;
mod options;
mod position;
mod recovery;
mod retention;
mod scan;
mod sealer;
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

pub use batch::{WriteBatch, WriteOutcome};
/// The type of [`Frame::data`] (the `bytes` crate's, which HTTP servers hand out).
pub use bytes::Bytes;
pub use error::{StoreError, SubmitError};
pub use frame::{Frame, FrameBuilder, FRAME_TARGET};
pub use options::{FsyncObserver, StoreOptions};
pub use position::{ParsePositionError, Position};
pub use scan::{Order, ScanRange};
pub use segment::LineStats;
pub use stats::{StoreStats, StreamStats};

use retention::RetentionMsg;
use sealer::SealMsg;
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
    sealer: Option<JoinHandle<()>>,
    retention: Option<JoinHandle<()>>,
    seal_tx: Sender<SealMsg>,
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
        let _ = self.seal_tx.send(SealMsg::Stop);
        let _ = self.retention_tx.send(RetentionMsg::Stop);
        for handle in [self.sealer.take(), self.retention.take()]
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

/// Background sealing (repacking small frames) yields the CPU to the writer and the request
/// handlers: measured with the ingest's load generator, compressing a closed 64 MiB segment
/// at normal priority showed up as acknowledgement latency spikes on a 2-core machine.
fn lower_priority() {
    // SAFETY: setpriority on the calling thread (who = 0 with PRIO_PROCESS means the calling
    // thread on Linux); a failure only leaves the priority unchanged.
    let rc = unsafe { libc::setpriority(libc::PRIO_PROCESS, 0, 10) };
    if rc != 0 {
        tracing::debug!(
            "could not lower the sealer's priority: {}",
            std::io::Error::last_os_error()
        );
    }
}

impl Store {
    /// Opens (or creates) the store in `opts.dir`: takes the directory lock, recovers (see
    /// the crate documentation) and starts the writer, sealer and retention threads.
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
        let (seal_tx, seal_rx) = mpsc::channel();
        let (retention_tx, retention_rx) = mpsc::channel();
        let stop = Arc::new(AtomicBool::new(false));
        let mut threads = Threads {
            writer: None,
            sealer: None,
            retention: None,
            seal_tx: seal_tx.clone(),
            retention_tx: retention_tx.clone(),
            stop: stop.clone(),
        };

        let (s, r) = (shared.clone(), retention_tx.clone());
        match spawn("sealer", move || {
            lower_priority();
            sealer::run(s, seal_rx, r, stop)
        }) {
            Ok(h) => threads.sealer = Some(h),
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
            seal_tx.clone(),
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
        for seq in recovered.to_seal {
            let _ = seal_tx.send(SealMsg::Segment(seq));
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
    /// batch's frames and its commit record are fdatasync'd, `Duplicate` if its id was
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
    /// (inclusive) if given. Segments and frames whose time range
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
