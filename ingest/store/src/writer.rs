//! The writer thread: group commit, segment rotation and commit-log compaction.
//!
//! One group: take every batch queued (up to `max_group_bytes`), drop duplicates, append
//! each stream's frames to its active segment as one unit (a group header, then the frames
//! as they came), append one commit record (with the CRC of each segment's new bytes),
//! fdatasync the touched segments and the log at the same time, then publish the new
//! committed lengths, frames and ids and answer every batch of the group.

use std::collections::{HashMap, HashSet};
use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::oneshot;
use tracing::{debug, error, info, warn};

use crate::batch::{WriteBatch, WriteOutcome};
use crate::commit_log::{self, CommitLog};
use crate::error::StoreError;
use crate::format::Unit;
use crate::frame::Frame;
use crate::fsutil::{create_dirs_durably, datasync, remove_if_exists, sync_dir, unix_ms};
use crate::options::FsyncObserver;
use crate::retention::RetentionMsg;
use crate::sealer::SealMsg;
use crate::segment::{open_name, stream_dir, FrameTable, LineStats, SegmentMeta, StreamKey};
use crate::shared::{lock, Shared};
use crate::snapshot::{self, SegState, Snapshot};
use crate::stats::Counters;

/// At most this many threads fdatasync the segments of one group.
const MAX_SYNC_THREADS: usize = 8;

/// A queued batch and where its outcome goes.
pub(crate) struct Job {
    /// The batch.
    pub(crate) batch: WriteBatch,
    /// Receives the outcome.
    pub(crate) reply: oneshot::Sender<Result<WriteOutcome, StoreError>>,
    /// When it was queued (for the group's timing log).
    pub(crate) queued: Instant,
}

/// Where one group's time went, logged at debug level (target `logops_store::timing`) to
/// find where acknowledgement latency comes from.
#[derive(Debug, Default)]
struct GroupTimes {
    /// Laying the frames out per stream and writing them to the segments.
    write: Duration,
    /// fdatasync of the touched segments.
    segment_sync: Duration,
    /// Commit record append + fdatasync.
    log_sync: Duration,
    /// Segment rotations (close records, new segment files, directory fsyncs).
    rotate: Duration,
}

/// The writer's handle on a stream's active segment.
pub(crate) struct ActiveSegment {
    /// Its seq.
    pub(crate) seq: u64,
    /// Its path.
    pub(crate) path: PathBuf,
    /// The open file.
    pub(crate) file: File,
    /// Its committed length in the file: the next unit goes there.
    pub(crate) committed: u64,
    /// The committed length of its uncompressed content.
    pub(crate) u_len: u64,
    /// When it was created (Unix ms), for rotation by age.
    pub(crate) created_ms: u64,
    /// Its frames, shared with the catalog.
    pub(crate) frames: Arc<FrameTable>,
}

/// A stream's unit of a group and the segment it goes to.
struct Target {
    key: StreamKey,
    seg: ActiveSegment,
    unit: Unit,
}

/// The writer thread's state.
pub(crate) struct Writer {
    shared: Arc<Shared>,
    jobs: Receiver<Job>,
    log: CommitLog,
    active: HashMap<StreamKey, ActiveSegment>,
    next_seq: u64,
    seal: Sender<SealMsg>,
    retention: Sender<RetentionMsg>,
    carry: Option<Job>,
    last_age_check: Instant,
    times: GroupTimes,
}

fn reply(job: Job, outcome: Result<WriteOutcome, StoreError>) {
    // The submitter may have stopped waiting; the outcome stands anyway.
    let _ = job.reply.send(outcome);
}

/// How often the writer checks segment ages when idle.
fn age_tick(max_age: Duration) -> Duration {
    (max_age / 4).clamp(Duration::from_millis(10), Duration::from_secs(1))
}

/// fdatasyncs `files`, spreading them over up to [`MAX_SYNC_THREADS`] scoped threads.
fn sync_files(
    files: &[(&File, &Path)],
    observer: Option<&FsyncObserver>,
) -> Result<(), StoreError> {
    let sync_chunk = |chunk: &[(&File, &Path)]| {
        chunk
            .iter()
            .try_for_each(|&(file, path)| datasync(file, path, observer))
    };
    if files.len() <= 1 {
        return sync_chunk(files);
    }
    let per_thread = files.len().div_ceil(MAX_SYNC_THREADS.min(files.len()));
    std::thread::scope(|scope| {
        let mut chunks = files.chunks(per_thread);
        let mine = chunks.next().unwrap_or_default();
        let mut handles = Vec::new();
        let mut result = Ok(());
        for chunk in chunks {
            match std::thread::Builder::new()
                .name("logops-store-fsync".into())
                .spawn_scoped(scope, move || sync_chunk(chunk))
            {
                Ok(handle) => handles.push((handle, chunk)),
                Err(_) => result = result.and(sync_chunk(chunk)),
            }
        }
        result = result.and(sync_chunk(mine));
        for (handle, chunk) in handles {
            let outcome = handle.join().unwrap_or_else(|_| {
                Err(StoreError::io(
                    "fdatasync",
                    chunk[0].1,
                    std::io::Error::other("the fsync thread panicked"),
                ))
            });
            result = result.and(outcome);
        }
        result
    })
}

impl Writer {
    /// A writer continuing from the recovered state.
    pub(crate) fn new(
        shared: Arc<Shared>,
        jobs: Receiver<Job>,
        log: CommitLog,
        active: Vec<(StreamKey, ActiveSegment)>,
        next_seq: u64,
        seal: Sender<SealMsg>,
        retention: Sender<RetentionMsg>,
    ) -> Self {
        Writer {
            shared,
            jobs,
            log,
            active: active.into_iter().collect(),
            next_seq,
            seal,
            retention,
            carry: None,
            last_age_check: Instant::now(),
            times: GroupTimes::default(),
        }
    }

    /// Runs until every sender is gone and the queue is empty, then compacts the log.
    pub(crate) fn run(mut self) {
        let tick = age_tick(self.shared.opts.segment_max_age);
        loop {
            let first = match self.carry.take() {
                Some(job) => job,
                None => match self.jobs.recv_timeout(tick) {
                    Ok(job) => {
                        self.dequeued();
                        job
                    }
                    Err(RecvTimeoutError::Timeout) => {
                        self.rotate_due();
                        continue;
                    }
                    Err(RecvTimeoutError::Disconnected) => break,
                },
            };
            let started = Instant::now();
            let group = self.gather(first);
            let timing = tracing::enabled!(target: "logops_store::timing", tracing::Level::DEBUG);
            let summary = timing.then(|| {
                let oldest = group.iter().map(|j| j.queued).min().unwrap_or(started);
                let bytes: usize = group.iter().map(|j| j.batch.compressed_len()).sum();
                (
                    group.len(),
                    bytes,
                    started.saturating_duration_since(oldest),
                )
            });
            self.times = GroupTimes::default();
            self.commit_group(group);
            let committed = started.elapsed();
            if self.last_age_check.elapsed() >= tick {
                let t = Instant::now();
                self.rotate_due();
                self.times.rotate += t.elapsed();
            }
            let compacting = self.log.size() > self.shared.opts.commit_log_max_bytes;
            if compacting {
                self.compact();
            }
            if let Some((batches, bytes, waited)) = summary {
                let us = |d: Duration| d.as_micros() as u64;
                let t = &self.times;
                debug!(
                    target: "logops_store::timing",
                    batches,
                    bytes,
                    oldest_wait_us = us(waited),
                    commit_us = us(committed),
                    write_us = us(t.write),
                    segment_sync_us = us(t.segment_sync),
                    log_sync_us = us(t.log_sync),
                    rotate_us = us(t.rotate),
                    compacted = compacting,
                    total_us = us(started.elapsed()),
                    "group"
                );
            }
        }
        self.compact();
        debug!("the store's writer stopped");
    }

    fn dequeued(&self) {
        self.shared.queue_len.fetch_sub(1, Ordering::Relaxed);
    }

    /// `first` and whatever else is queued, up to `max_group_bytes` of frames.
    fn gather(&mut self, first: Job) -> Vec<Job> {
        let max = self.shared.opts.max_group_bytes;
        let mut bytes = first.batch.compressed_len();
        let mut group = vec![first];
        while bytes < max {
            let Ok(job) = self.jobs.try_recv() else { break };
            self.dequeued();
            let len = job.batch.compressed_len();
            if bytes + len > max {
                self.carry = Some(job);
                break;
            }
            bytes += len;
            group.push(job);
        }
        group
    }

    fn commit_group(&mut self, group: Vec<Job>) {
        let now = unix_ms();
        let mut valid = Vec::with_capacity(group.len());
        for job in group {
            match job.batch.validate() {
                Ok(()) => valid.push(job),
                Err(reason) => {
                    let b = &job.batch;
                    let e = StoreError::InvalidBatch {
                        tenant: b.tenant.to_string(),
                        id: b.id.to_string(),
                        reason,
                    };
                    warn!(error = %e, "rejecting a batch");
                    reply(job, Err(e));
                }
            }
        }

        let shared = self.shared.clone();
        let counters = &shared.counters;
        let mut accepted = Vec::with_capacity(valid.len());
        // Second submissions of an id first submitted in this very group: they share the
        // first one's fate (Duplicate if it is stored, its error if not).
        let mut echoes = Vec::new();
        {
            let dedupe = lock(&shared.dedupe);
            let mut in_group = HashSet::with_capacity(valid.len());
            for job in valid {
                let b = &job.batch;
                if dedupe.contains(&b.tenant, &b.id.agent, b.id.seq) {
                    Counters::add(&counters.duplicates, 1);
                    reply(job, Ok(WriteOutcome::Duplicate));
                } else if !in_group.insert((b.tenant.clone(), b.id.agent.clone(), b.id.seq)) {
                    echoes.push(job);
                } else {
                    accepted.push(job);
                }
            }
        }
        if accepted.is_empty() {
            return;
        }

        match self.write_group(&accepted, now) {
            Ok(()) => {
                self.shared.writable.store(true, Ordering::Relaxed);
                Counters::add(&counters.batches_stored, accepted.len() as u64);
                Counters::add(&counters.duplicates, echoes.len() as u64);
                for job in accepted {
                    reply(job, Ok(WriteOutcome::Stored));
                }
                for job in echoes {
                    reply(job, Ok(WriteOutcome::Duplicate));
                }
            }
            Err(e) => {
                error!(error = %e, batches = accepted.len() + echoes.len(), "a group commit failed; its batches are not stored");
                self.shared.writable.store(false, Ordering::Relaxed);
                *lock(&self.shared.last_write_error) = Some(e.to_string());
                for job in accepted.into_iter().chain(echoes) {
                    reply(job, Err(e.clone()));
                }
            }
        }
    }

    /// Lays the accepted batches' frames out per stream, in submission order: one unit
    /// per stream.
    fn layout(accepted: &[Job]) -> Vec<(StreamKey, Unit)> {
        let mut streams: Vec<(StreamKey, Vec<&Frame>)> = Vec::new();
        let mut index: HashMap<StreamKey, usize> = HashMap::new();
        for job in accepted {
            let b = &job.batch;
            for frame in &b.frames {
                let key = (b.tenant.clone(), frame.kind);
                let i = *index.entry(key.clone()).or_insert_with(|| {
                    streams.push((key, Vec::new()));
                    streams.len() - 1
                });
                streams[i].1.push(frame);
            }
        }
        streams
            .into_iter()
            .map(|(key, frames)| (key, Unit::of(&frames)))
            .collect()
    }

    fn write_group(&mut self, accepted: &[Job], now: u64) -> Result<(), StoreError> {
        let t = Instant::now();
        let mut targets = Vec::new();
        let pending = Self::layout(accepted);
        self.times.write += t.elapsed();
        let t = Instant::now();
        for (key, unit) in pending {
            match self.take_active(&key, now) {
                Ok(seg) => targets.push(Target { key, seg, unit }),
                Err(e) => {
                    self.restore(targets, false);
                    return Err(e);
                }
            }
        }
        self.times.rotate += t.elapsed();

        if let Err(e) = self.write_segments(&targets) {
            self.restore(targets, true);
            return Err(e);
        }
        let t = Instant::now();
        let segments: Vec<(u64, u64)> = targets
            .iter()
            .map(|t| (t.seg.seq, t.seg.committed + t.unit.bytes.len() as u64))
            .collect();
        let checks: Vec<(u64, u32)> = targets
            .iter()
            .map(|t| (t.seg.committed, crc32fast::hash(&t.unit.bytes)))
            .collect();
        let record = commit_log::encode_group(
            now,
            accepted
                .iter()
                .map(|j| (&*j.batch.tenant, j.batch.id.agent.as_str(), j.batch.id.seq)),
            &segments,
            Some(&checks),
        );
        // The record and the segment bytes it covers are fdatasync'd at the same time (one
        // journal commit instead of two in a row); the record's CRCs let recovery tell if it
        // got to the disk without them. Nothing is acknowledged before both are done.
        let observer = self.shared.opts.fsync_observer.clone();
        let files: Vec<(&File, &Path)> = targets
            .iter()
            .map(|t| (&t.seg.file, t.seg.path.as_path()))
            .collect();
        let mut segment_sync = Duration::ZERO;
        let synced = self.log.append_while(&record, observer.as_ref(), || {
            let t = Instant::now();
            let synced = sync_files(&files, observer.as_ref());
            segment_sync = t.elapsed();
            synced
        });
        drop(files);
        self.times.segment_sync += segment_sync;
        if let Err(e) = synced {
            self.restore(targets, true);
            return Err(e);
        }
        Counters::add(&self.shared.counters.segment_fsyncs, targets.len() as u64);
        self.times.log_sync += t.elapsed();
        let t = Instant::now();

        self.publish(&mut targets, accepted, now);
        let max_bytes = self.shared.opts.segment_max_bytes;
        for t in targets {
            if t.seg.u_len >= max_bytes {
                if let Err(seg) = self.close(&t.key, t.seg) {
                    self.active.insert(t.key, seg);
                }
            } else {
                self.active.insert(t.key, t.seg);
            }
        }
        self.times.rotate += t.elapsed();
        Ok(())
    }

    /// Writes each target's unit after its committed length (not synced yet).
    fn write_segments(&mut self, targets: &[Target]) -> Result<(), StoreError> {
        let t = Instant::now();
        for t in targets {
            t.seg
                .file
                .write_all_at(&t.unit.bytes, t.seg.committed)
                .map_err(StoreError::io_fn("write to the segment", &t.seg.path))?;
        }
        self.times.write += t.elapsed();
        Ok(())
    }

    /// Makes a committed group visible: frames, committed lengths, segment stats, stored
    /// ids.
    fn publish(&self, targets: &mut [Target], accepted: &[Job], now: u64) {
        let mut lines = 0;
        for t in targets.iter() {
            let (c_base, u_base) = (t.seg.committed, t.seg.u_len);
            t.seg.frames.extend(t.unit.frames.iter().map(|f| {
                let mut f = *f;
                f.c_off += c_base;
                f.u_off += u_base;
                f
            }));
        }
        {
            let mut catalog = lock(&self.shared.catalog);
            for t in targets.iter_mut() {
                t.seg.committed += t.unit.bytes.len() as u64;
                t.seg.u_len += t.unit.u_len;
                lines += t.unit.ts.lines;
                if let Some(m) = catalog.get_mut(t.seg.seq) {
                    m.committed_len = t.seg.u_len;
                    m.bytes_on_disk = t.seg.committed;
                    m.ts.merge(&t.unit.ts);
                    m.last_write_ms = now;
                }
            }
        }
        {
            let mut dedupe = lock(&self.shared.dedupe);
            for job in accepted {
                let b = &job.batch;
                dedupe.insert(&b.tenant, &b.id.agent, b.id.seq, now);
            }
        }
        let counters = &self.shared.counters;
        Counters::add(&counters.lines_committed, lines);
        Counters::add(&counters.groups_committed, 1);
    }

    /// Puts segments taken for a group back, cutting what the group wrote if `cut`.
    fn restore(&mut self, targets: Vec<Target>, cut: bool) {
        for t in targets {
            if cut {
                if let Err(e) = t.seg.file.set_len(t.seg.committed) {
                    error!(path = %t.seg.path.display(), error = %e, "cannot cut a failed write off a segment (it is cut at the next open)");
                }
            }
            self.active.insert(t.key, t.seg);
        }
    }

    fn is_due(&self, seg: &ActiveSegment, now: u64) -> bool {
        let max_age = self.shared.opts.segment_max_age.as_millis() as u64;
        seg.u_len >= self.shared.opts.segment_max_bytes
            || now.saturating_sub(seg.created_ms) >= max_age
    }

    /// The stream's active segment, rotated first if due; a new one if it has none.
    fn take_active(&mut self, key: &StreamKey, now: u64) -> Result<ActiveSegment, StoreError> {
        if let Some(seg) = self.active.remove(key) {
            if !self.is_due(&seg, now) {
                return Ok(seg);
            }
            if let Err(seg) = self.close(key, seg) {
                return Ok(seg);
            }
        }
        self.create_segment(key, now)
    }

    fn create_segment(&mut self, key: &StreamKey, now: u64) -> Result<ActiveSegment, StoreError> {
        let seq = self.next_seq;
        self.next_seq += 1;
        let root = &self.shared.opts.dir;
        let dir = stream_dir(root, &key.0, key.1);
        create_dirs_durably(root, &dir)?;
        let path = dir.join(open_name(seq));
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&path)
            .map_err(StoreError::io_fn("create the segment", &path))?;
        if let Err(e) = sync_dir(&dir) {
            if let Err(rm) = remove_if_exists(&path) {
                warn!(error = %rm, "cannot remove a segment that could not be made durable");
            }
            return Err(e);
        }
        let frames = Arc::new(FrameTable::default());
        lock(&self.shared.catalog).insert(SegmentMeta {
            seq,
            tenant: key.0.clone(),
            kind: key.1,
            path: path.clone(),
            closed: false,
            sealed: false,
            bytes_on_disk: 0,
            committed_len: 0,
            ts: LineStats::default(),
            created_ms: now,
            last_write_ms: now,
            frames: frames.clone(),
            readers: Default::default(),
        });
        debug!(path = %path.display(), "segment created");
        Ok(ActiveSegment {
            seq,
            path,
            file,
            committed: 0,
            u_len: 0,
            created_ms: now,
            frames,
        })
    }

    /// Closes a segment: records it in the log and hands it to the sealer (an empty one is
    /// just removed). Gives the segment back if the close could not be recorded.
    fn close(&mut self, key: &StreamKey, seg: ActiveSegment) -> Result<(), ActiveSegment> {
        if seg.committed == 0 {
            lock(&self.shared.catalog).remove(seg.seq);
            drop(seg.file);
            if let Err(e) = remove_if_exists(&seg.path) {
                warn!(error = %e, "cannot remove an empty segment (it is removed at the next open)");
            }
            return Ok(());
        }
        let record = commit_log::encode_close(unix_ms(), seg.seq);
        let observer = self.shared.opts.fsync_observer.clone();
        if let Err(e) = self.log.append(&record, observer.as_ref()) {
            warn!(error = %e, path = %seg.path.display(), "cannot close a segment now; retrying later");
            return Err(seg);
        }
        if let Some(m) = lock(&self.shared.catalog).get_mut(seg.seq) {
            m.closed = true;
        }
        info!(
            tenant = %key.0,
            kind = %key.1,
            path = %seg.path.display(),
            bytes = seg.committed,
            uncompressed = seg.u_len,
            "segment closed"
        );
        // The receivers only go away at shutdown, when the closed segment is picked up at
        // the next open instead.
        let _ = self.seal.send(SealMsg::Segment(seg.seq));
        let _ = self.retention.send(RetentionMsg::Run);
        Ok(())
    }

    /// Closes the active segments that are too big or too old.
    fn rotate_due(&mut self) {
        self.last_age_check = Instant::now();
        let now = unix_ms();
        let due: Vec<StreamKey> = self
            .active
            .iter()
            .filter(|(_, seg)| self.is_due(seg, now))
            .map(|(key, _)| key.clone())
            .collect();
        for key in due {
            if let Some(seg) = self.active.remove(&key) {
                if let Err(seg) = self.close(&key, seg) {
                    self.active.insert(key, seg);
                }
            }
        }
    }

    /// Writes the live state to `commits.snapshot` and empties the commit log.
    fn compact(&mut self) {
        let now = unix_ms();
        let window = self.shared.opts.dedupe_window.as_millis() as u64;
        let (ranges, forgotten) = {
            let mut dedupe = lock(&self.shared.dedupe);
            let forgotten = dedupe.expire(now.saturating_sub(window));
            (dedupe.entries(), forgotten)
        };
        let segments: Vec<SegState> = lock(&self.shared.catalog)
            .iter()
            .filter(|m| !m.sealed && m.bytes_on_disk > 0)
            .map(|m| SegState {
                seq: m.seq,
                committed: m.bytes_on_disk,
                closed: m.closed,
                created_ms: m.created_ms,
                last_write_ms: m.last_write_ms,
            })
            .collect();
        let snap = Snapshot {
            unix_ms: now,
            next_seq: self.next_seq,
            segments,
            ranges,
        };
        let log_bytes = self.log.size();
        match snapshot::write(&self.shared.opts.dir, &snap).and_then(|()| self.log.clear()) {
            Ok(()) => info!(
                log_bytes,
                dedupe_ranges = snap.ranges.len(),
                expired_ranges = forgotten,
                segments = snap.segments.len(),
                "commit log compacted into the snapshot"
            ),
            Err(e) => {
                error!(error = %e, "cannot compact the commit log; it keeps growing until this works")
            }
        }
    }
}
