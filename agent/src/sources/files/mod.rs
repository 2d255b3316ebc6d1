//! The files source: tails the `[[files]]` groups.
//!
//! # Why not linemux
//!
//! This source is built on `notify` 8 (inotify on Linux) plus our own reader, because
//! `linemux` cannot keep the agent's checkpoint rule ("a position is committed in the same
//! write as the events read up to it"): it gives no byte offsets, cannot start reading a
//! file at one, lost a line written to the old file after a rename, and dropped lines that
//! are not UTF-8.
//!
//! # How it works
//!
//! One thread runs every group. It blocks on one channel that carries notify's events (each
//! pattern's parent directory is watched, non-recursively) and the shutdown signal, with a
//! timeout for the next timer: the periodic rescan (`rescan_interval`, the fallback when an
//! event is missed), the polling of rotated files, multiline timeouts and retries. Idle, it
//! costs nothing.
//!
//! A file is known by device + inode ([`identity`]), plus a hash of its first bytes (up to
//! 256, as many as were read) that tells inode reuse and truncation apart. Each file is read through its own descriptor in
//! 256 KiB blocks into one reused buffer; lines are found with `memchr` and events borrow
//! their bodies from that buffer. Events go to the [`Emitter`] in chunks of at most ~1,000
//! lines or ~256 KiB, each with the file's checkpoint in the same atomic write: the offset
//! just after the last line in the chunk. An unfinished last line and a pending multiline
//! event are not covered, so after a restart they are read again: no line is lost, none is
//! doubled. When the buffer is full the emitter blocks and the file simply does not
//! advance.
//!
//! - Rotation by rename: the old file keeps being read through its descriptor until it has
//!   been quiet for `rotate_wait`, while the new file at the path is read from offset 0.
//!   At startup, a checkpoint whose path now holds another file (or none) is looked for in
//!   its directory by dev+ino (e.g. `app.log.1`) and finished from its offset; checkpoints
//!   of files that are gone are forgotten.
//! - Copytruncate: a file shorter than the read position, or whose first bytes (as far as
//!   they were read, up to 256) changed, is read again from 0 — also a small file that was
//!   written past the old position again before the source looked.
//! - Checkpoints belong to files (`file:<dev>:<ino>`), not to groups: a file keeps its
//!   position whatever group reads it, so adding a pattern to a group, reordering or
//!   splitting groups reads nothing twice and skips nothing.
//! - `start_at` applies to the files present when a pattern first starts; a marker per
//!   pattern (`filepattern:<pattern>`) keeps a restart from applying it again, so a file
//!   that appeared meanwhile is read from its beginning. See [`checkpoint`] for the stored
//!   format and how the per-group layout of earlier versions is rewritten.
//! - A file that several groups match is read by one: the first group (in the order of
//!   the configuration) that finds it; the others skip it, with a warning. When that group
//!   is done with it (a rotated file read to its end) and another group matches its new
//!   name, the other one takes it over from its checkpoint.

mod checkpoint;
mod container;
mod discovery;
mod identity;
mod multiline;
pub(crate) mod reader;
#[cfg(test)]
mod tests;

use std::borrow::Cow;
use std::cell::RefCell;
use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::time::{Duration, Instant};

use logops_common::event::Labels;
use logops_common::write::LineHead;
use logops_common::{Kind, Timestamp};
use notify::{EventKind, RecursiveMode, Watcher};
use prometheus_client::metrics::counter::Counter;

use crate::chunk::Chunk;
use crate::config::{ContainerDecoding, FilesConfig, StartAt, KUBERNETES_LABELS};
use crate::metrics::{GroupLabels, PathLabels};
use crate::pipeline::{CheckpointUpdate, EmitError, Emitter, Shutdown};
use crate::sources::merge_labels;

use checkpoint::{pattern_marker_key, FileCheckpoint, PatternMarker};
use container::{Decoder, Skip};
use discovery::Patterns;
use identity::{FileKey, Head};
use multiline::Multiline;
use reader::{current_path, is_at, start_of_last_line, Records, Split, Tail, READ_SIZE};

/// `source` of the events.
const SOURCE: &str = "file";
/// `source` of the events of the `[kubernetes]` group.
const KUBERNETES_SOURCE: &str = "kubernetes";
/// A chunk is emitted at this many events ...
const CHUNK_EVENTS: u32 = 1_000;
/// ... or this many bytes of NDJSON.
const CHUNK_BYTES: usize = 256 * 1024;
/// Blocks read from one file before the others get a turn.
const READ_BUDGET: usize = 16;
/// How often rotated files (which may be outside any watched directory) are looked at.
const ROTATED_POLL: Duration = Duration::from_millis(250);
/// Watcher events taken at once before the files are read.
const MAX_EVENTS_PER_TURN: usize = 10_000;
/// After a failed read or emit, try the file again after this long.
const RETRY: Duration = Duration::from_secs(1);

/// Tails the files of every `[[files]]` group.
pub struct FilesSource {
    groups: Vec<FilesConfig>,
    emitter: Emitter,
}

impl FilesSource {
    /// One source for all [[files]] groups.
    pub fn new(groups: Vec<FilesConfig>, emitter: Emitter) -> Self {
        FilesSource { groups, emitter }
    }

    /// Runs until `shutdown`; call on a dedicated std thread (it blocks).
    pub fn run(self, shutdown: Shutdown) {
        let (tx, rx) = mpsc::channel();
        let waiter = spawn_shutdown_waiter(&shutdown, tx.clone());
        let watcher = match notify::recommended_watcher(Handler(tx)) {
            Ok(w) => Some(w),
            Err(e) => {
                tracing::warn!(error = %e, "files: cannot watch for changes; relying on rescans");
                None
            }
        };
        let max_line = self
            .groups
            .iter()
            .map(|g| line_limit(g.max_line_bytes.bytes()))
            .max()
            .unwrap_or(0);
        let matchers: Vec<Arc<Patterns>> = self
            .groups
            .iter()
            .map(|g| Arc::new(Patterns::new(&g.paths, &g.exclude)))
            .collect();
        let mut cx = Ctx {
            matchers: matchers.clone(),
            saved: HashMap::new(),
            owners: HashMap::new(),
            started: HashSet::new(),
            overlaps: HashSet::new(),
            buf: vec![0; max_line + READ_SIZE],
            records: Records::default(),
            chunk: RefCell::new(Chunk::with_capacity(CHUNK_BYTES + 16 * 1024)),
            watcher,
            watched: HashMap::new(),
            watch_failed: HashSet::new(),
            again: Vec::new(),
            emitter: self.emitter.clone(),
            shutdown,
            waiter,
        };
        let mut groups: Vec<Group> = self
            .groups
            .into_iter()
            .zip(matchers)
            .enumerate()
            .map(|(i, (cfg, patterns))| Group::new(i, cfg, patterns, &self.emitter))
            .collect();
        let mut runner = Runner { rx };
        if runner.run(&mut cx, &mut groups).is_err() {
            tracing::debug!("files: stopped by shutdown");
        }
    }
}

/// The rescan interval (at least 100ms: a zero would spin).
fn rescan_interval(cfg: &FilesConfig) -> Duration {
    cfg.rescan_interval.get().max(Duration::from_millis(100))
}

fn line_limit(bytes: u64) -> usize {
    usize::try_from(bytes)
        .unwrap_or(usize::MAX)
        .clamp(1, 1 << 30)
}

/// The agent is stopping.
#[derive(Debug)]
struct Stop;

/// Why emitting stopped.
enum Halt {
    /// Shutdown: nothing was written.
    Shutdown,
    /// The buffer failed (logged): read the file again from its checkpoint later.
    Failed,
}

/// What the last write of an emit says about the file.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Last {
    /// Its position after the last record.
    Keep,
    /// Offset 0 (the file was truncated).
    Reset,
    /// Forget it (the file is finished and closed).
    Forget,
}

enum Msg {
    Fs(notify::Result<notify::Event>),
    Shutdown,
}

/// Forwards notify's events to the source's channel.
struct Handler(Sender<Msg>);

impl notify::EventHandler for Handler {
    fn handle_event(&mut self, event: notify::Result<notify::Event>) {
        let _ = self.0.send(Msg::Fs(event));
    }
}

/// Sends `Msg::Shutdown` when shutdown is requested, so the source never polls for it.
/// Returns whether the waiter runs.
fn spawn_shutdown_waiter(shutdown: &Shutdown, tx: Sender<Msg>) -> bool {
    let mut s = shutdown.clone();
    std::thread::Builder::new()
        .name("files-shutdown".into())
        .spawn(move || {
            block_on(s.wait());
            let _ = tx.send(Msg::Shutdown);
        })
        .is_ok()
}

/// Runs a future on this thread (the shutdown signal is a tokio watch, which needs no
/// runtime to be awaited).
fn block_on<F: Future>(f: F) -> F::Output {
    struct Unpark(std::thread::Thread);
    impl Wake for Unpark {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
    }
    let waker = Waker::from(Arc::new(Unpark(std::thread::current())));
    let mut cx = Context::from_waker(&waker);
    let mut f = std::pin::pin!(f);
    loop {
        if let Poll::Ready(v) = f.as_mut().poll(&mut cx) {
            return v;
        }
        std::thread::park();
    }
}

/// Where a newly found file starts when it has no checkpoint.
#[derive(Clone, Copy)]
enum Start {
    /// The group's `start_at` (files present when their patterns first start).
    Configured(StartAt),
    /// Offset 0 (files that appeared later).
    Zero,
}

/// What a group's events share.
struct GroupOut {
    /// `file`, or `kubernetes` for container logs.
    source: &'static str,
    labels: Labels<'static>,
    lines_read: Counter,
    bytes_read: Counter,
}

/// One `[[files]]` group and its files.
struct Group {
    index: usize,
    cfg: FilesConfig,
    patterns: Arc<Patterns>,
    multiline: Option<Multiline>,
    max_line: usize,
    out: GroupOut,
    /// Open files by identity.
    files: HashMap<FileKey, Tail>,
    /// Matching paths → the file there.
    by_path: HashMap<PathBuf, FileKey>,
    /// Paths whose error was logged at warn level (then debug until it clears).
    failing: HashSet<PathBuf>,
    next_rescan: Instant,
    next_rotated_poll: Instant,
}

impl Group {
    fn new(index: usize, cfg: FilesConfig, patterns: Arc<Patterns>, emitter: &Emitter) -> Group {
        let name = GroupLabels {
            group: cfg.paths.first().cloned().unwrap_or_default(),
        };
        let metrics = emitter.metrics();
        let now = Instant::now();
        Group {
            index,
            patterns,
            multiline: cfg.multiline.as_ref().and_then(Multiline::new),
            max_line: line_limit(cfg.max_line_bytes.bytes()),
            out: GroupOut {
                source: if cfg.container.is_some() {
                    KUBERNETES_SOURCE
                } else {
                    SOURCE
                },
                labels: merge_labels(emitter.agent_labels(), &cfg.labels),
                lines_read: metrics.lines_read.get_or_create_owned(&name),
                bytes_read: metrics.bytes_read.get_or_create_owned(&name),
            },
            files: HashMap::new(),
            by_path: HashMap::new(),
            failing: HashSet::new(),
            next_rescan: now + rescan_interval(&cfg),
            next_rotated_poll: now,
            cfg,
        }
    }

    /// Sets up what a new tail of this group decodes: container logs get a decoder (resuming
    /// with the checkpoint's `skip`) and the labels their path gives.
    fn prepare(&self, t: &mut Tail, skip: Option<Skip>) {
        if let Some(ContainerDecoding {
            format,
            max_message_bytes,
        }) = self.cfg.container
        {
            let max = usize::try_from(max_message_bytes).unwrap_or(usize::MAX);
            t.decode_containers(Decoder::new(format, max), skip);
            t.labels = pod_labels(&t.path);
        }
    }

    /// Logs a problem with a path: at warn level the first time, then at debug level until
    /// it clears (it is retried at every rescan).
    fn report(&mut self, path: &Path, what: &str, e: &std::io::Error) {
        if self.failing.insert(path.to_owned()) {
            tracing::warn!(path = %path.display(), error = %e, "files: {what}; retrying at every rescan");
        } else {
            tracing::debug!(path = %path.display(), error = %e, "files: {what}");
        }
    }
}

/// Everything but the groups: the emitter, the read buffer, the watcher, and what the
/// groups share (checkpoints, which group reads which file).
struct Ctx {
    emitter: Emitter,
    /// Every group's patterns, by group index.
    matchers: Vec<Arc<Patterns>>,
    /// Checkpoints not yet matched to an open file (unreadable for now, not matched by any
    /// group now, or handed over by a group done with the file).
    saved: HashMap<FileKey, FileCheckpoint>,
    /// Which group reads each open file.
    owners: HashMap<FileKey, usize>,
    /// Patterns with a marker (started before).
    started: HashSet<String>,
    /// (group, path) skipped because another group reads the file (warned once).
    overlaps: HashSet<(usize, PathBuf)>,
    shutdown: Shutdown,
    /// The read buffer: the longest carry plus one block.
    buf: Vec<u8>,
    records: Records,
    /// The chunk records are written into (one, reused: its 256 KiB are allocated once).
    chunk: RefCell<Chunk>,
    watcher: Option<notify::RecommendedWatcher>,
    /// Watched directories and their identity (a directory recreated is watched again).
    watched: HashMap<PathBuf, FileKey>,
    /// Directories whose watch failed (logged once).
    watch_failed: HashSet<PathBuf>,
    /// Files with more to read after their budget: (group, file).
    again: Vec<(usize, FileKey)>,
    /// Whether the shutdown waiter runs (else shutdown is polled).
    waiter: bool,
}

/// The events of one turn.
#[derive(Default)]
struct Changes {
    overflow: bool,
    /// Paths whose content changed.
    data: HashSet<PathBuf>,
    /// Paths created, removed, renamed, or whose metadata changed.
    changed: HashSet<PathBuf>,
}

struct Runner {
    rx: Receiver<Msg>,
}

impl Runner {
    fn run(&mut self, cx: &mut Ctx, groups: &mut [Group]) -> Result<(), Stop> {
        cx.start(groups)?;
        for g in groups.iter_mut() {
            let keys: Vec<FileKey> = g.files.keys().copied().collect();
            for k in keys {
                cx.read(g, k, Instant::now())?;
            }
        }
        loop {
            let now = Instant::now();
            let mut deadline = next_deadline(cx, groups, now);
            if !cx.waiter {
                let poll = now + Duration::from_millis(500);
                deadline = Some(deadline.map_or(poll, |d| d.min(poll)));
            }
            let first = match deadline {
                Some(d) if d <= now => self.rx.try_recv().ok(),
                Some(d) => match self.rx.recv_timeout(d - now) {
                    Ok(m) => Some(m),
                    Err(RecvTimeoutError::Timeout) => None,
                    Err(RecvTimeoutError::Disconnected) => {
                        std::thread::sleep(d - now);
                        None
                    }
                },
                None => match self.rx.recv() {
                    Ok(m) => Some(m),
                    Err(_) => {
                        std::thread::sleep(Duration::from_secs(1));
                        None
                    }
                },
            };
            let mut changes = Changes::default();
            let mut stop = false;
            // What queued up meanwhile, bounded so that a flood of events cannot starve
            // the timers.
            for msg in first
                .into_iter()
                .chain(std::iter::from_fn(|| self.rx.try_recv().ok()).take(MAX_EVENTS_PER_TURN))
            {
                stop |= !absorb(msg, &mut changes);
            }
            if stop || cx.shutdown.is_triggered() {
                return Err(Stop);
            }
            cx.turn(groups, &changes)?;
        }
    }
}

/// Adds a message to the turn's changes; false on shutdown.
fn absorb(msg: Msg, c: &mut Changes) -> bool {
    let ev = match msg {
        Msg::Shutdown => return false,
        Msg::Fs(Err(e)) => {
            tracing::warn!(error = %e, "files: watcher error; rescanning");
            c.overflow = true;
            return true;
        }
        Msg::Fs(Ok(ev)) => ev,
    };
    if ev.need_rescan() {
        tracing::info!("files: watcher events were lost (queue overflow); rescanning");
        c.overflow = true;
    }
    match ev.kind {
        // Opens and closes, ours included: nothing to do.
        EventKind::Access(_) => {}
        EventKind::Modify(notify::event::ModifyKind::Data(_)) => c.data.extend(ev.paths),
        EventKind::Other => {}
        _ => c.changed.extend(ev.paths),
    }
    true
}

/// When the source must wake up next without an event.
fn next_deadline(cx: &Ctx, groups: &[Group], now: Instant) -> Option<Instant> {
    if !cx.again.is_empty() {
        return Some(now);
    }
    let mut d: Option<Instant> = None;
    let mut at = |t: Instant| d = Some(d.map_or(t, |d| d.min(t)));
    for g in groups {
        at(g.next_rescan);
        for t in g.files.values() {
            if t.rotated.is_some() {
                at(g.next_rotated_poll);
            }
            if let Some(r) = t.retry_at {
                at(r);
            }
            if let Some(p) = g
                .multiline
                .as_ref()
                .and_then(|ml| t.joiner.pending.deadline(ml))
            {
                at(p);
            }
        }
    }
    d
}

/// What [`emit_records`] needs besides the file.
struct Out<'a> {
    emitter: &'a Emitter,
    shutdown: &'a Shutdown,
    group: &'a GroupOut,
    chunk: &'a RefCell<Chunk>,
}

/// Emits records in chunks, each with `t`'s checkpoint after its last record; the last
/// write carries `last`. With no record, writes only the checkpoint, and only when `last`
/// is not `Keep` or the checkpoint changed (`t.dirty`).
fn emit_records(
    o: &Out<'_>,
    t: &mut Tail,
    buf: &[u8],
    recs: &Records,
    last: Last,
) -> Result<(), Halt> {
    let n = recs.list.len();
    if n == 0 {
        if last == Last::Keep && !t.dirty {
            return Ok(());
        }
        let update = match last {
            Last::Keep => Some((t.committed, t.committed_mid, t.committed_skip)),
            Last::Reset => Some((0, false, None)),
            Last::Forget => None,
        };
        return emit(o, t, &Chunk::new(), update, (0, 0));
    }
    // Every record of one read shares the host, source and labels (a container log's pod
    // labels included) and, unless the runtime stamped it (container logs), the timestamp:
    // one line head, written once.
    let now = Timestamp::now();
    let own_labels;
    let labels = if t.labels.is_empty() {
        &o.group.labels
    } else {
        let mut l = o.group.labels.clone();
        l.extend(t.labels.iter().map(|(k, v)| (k.clone(), v.clone())));
        own_labels = l;
        &own_labels
    };
    let host = o.emitter.agent_id();
    let head = LineHead::new(now, Kind::Log, host, o.group.source, labels);
    let mut chunk = o.chunk.borrow_mut();
    chunk.clear();
    let (mut lines, mut bytes) = (0u64, 0u64);
    for (i, rec) in recs.list.iter().enumerate() {
        let attrs = &recs.attrs[rec.attrs.clone()];
        match rec.ts {
            None => chunk.push_log(&head, attrs, recs.body(rec, buf)),
            Some(ts) => chunk.push_log(
                &LineHead::new(ts, Kind::Log, host, o.group.source, labels),
                attrs,
                recs.body(rec, buf),
            ),
        }
        lines += u64::from(rec.lines);
        bytes += rec.bytes;
        let is_last = i + 1 == n;
        if is_last || chunk.events() >= CHUNK_EVENTS || chunk.len() >= CHUNK_BYTES {
            let update = match last {
                Last::Reset if is_last => Some((0, false, None)),
                Last::Forget if is_last => None,
                _ => Some((rec.end, rec.mid_line, rec.skip)),
            };
            emit(o, t, &chunk, update, (lines, bytes))?;
            (lines, bytes) = (0, 0);
            chunk.clear();
        }
    }
    Ok(())
}

/// One atomic write: `chunk` and `t`'s new checkpoint (`None` forgets it).
fn emit(
    o: &Out<'_>,
    t: &mut Tail,
    chunk: &Chunk,
    update: Option<(u64, bool, Option<Skip>)>,
    (lines, bytes): (u64, u64),
) -> Result<(), Halt> {
    let value = update.map(|(off, mid, skip)| t.checkpoint(off, mid, skip));
    let cps: [CheckpointUpdate; 1] = [(t.cp_key.clone(), value)];
    match o
        .emitter
        .emit_blocking(o.group.source, chunk, &cps, o.shutdown)
    {
        Ok(()) => {
            if let Some((off, mid, skip)) = update {
                t.committed = off;
                t.committed_mid = mid;
                t.committed_skip = skip;
            }
            t.dirty = false;
            o.group.lines_read.inc_by(lines);
            o.group.bytes_read.inc_by(bytes);
            Ok(())
        }
        Err(EmitError::ShuttingDown) => Err(Halt::Shutdown),
        Err(EmitError::Buffer(e)) => {
            tracing::error!(path = %t.path.display(), error = %e,
                "files: cannot write to the buffer; reading again from the checkpoint later");
            Err(Halt::Failed)
        }
    }
}

/// How a checkpoint applies to the file found at its dev+ino.
enum Resume {
    /// Continue at this offset (inside a split line?).
    At(u64, bool),
    /// Other content: not the checkpointed file (inode reused, rewritten, truncated).
    Replaced,
}

fn resume(cp: &FileCheckpoint, file: &File, size: u64, path: &Path) -> Resume {
    let (reason, replaced) = match cp.head().matches(file) {
        Ok(false) => (
            "same device and inode but other first bytes (inode reused, or the file rewritten or truncated)",
            true,
        ),
        _ if size < cp.offset => ("shorter than its checkpoint: truncated", true),
        _ => ("", false),
    };
    if replaced {
        tracing::info!(path = %path.display(), checkpoint = cp.offset, size, "files: {reason}; reading it from the beginning");
        Resume::Replaced
    } else {
        Resume::At(cp.offset, cp.mid_line)
    }
}

/// In the directory of a checkpoint's path, the file with its dev+ino (a rename while the
/// agent was down, e.g. to `app.log.1`).
fn find_moved(cp: &FileCheckpoint, key: FileKey) -> Option<PathBuf> {
    let dir = Path::new(&cp.path).parent()?;
    let entries = std::fs::read_dir(dir).ok()?;
    entries.flatten().find_map(|e| {
        let m = e.metadata().ok()?;
        (m.is_file() && FileKey::of(&m) == key).then(|| e.path())
    })
}

impl Ctx {
    fn out<'a>(&'a self, g: &'a GroupOut) -> Out<'a> {
        Out {
            emitter: &self.emitter,
            shutdown: &self.shutdown,
            group: g,
            chunk: &self.chunk,
        }
    }

    /// Reads the stored checkpoints and pattern markers, rewriting those of the per-group
    /// layout of earlier versions (one write).
    fn load(&mut self) -> Result<(), Stop> {
        let read = |prefix: &str| match self.emitter.checkpoints(prefix) {
            Ok(v) => v,
            Err(e) => {
                tracing::error!(error = %e, "files: cannot read checkpoints");
                Vec::new()
            }
        };
        let stored = checkpoint::migrate(
            read(checkpoint::FILE_PREFIX),
            read(checkpoint::PATTERN_PREFIX),
            read(checkpoint::LEGACY_GROUP_PREFIX),
        );
        if !stored.updates.is_empty() {
            match self
                .emitter
                .emit_blocking(SOURCE, &Chunk::new(), &stored.updates, &self.shutdown)
            {
                Ok(()) => tracing::debug!(
                    writes = stored.updates.len(),
                    "files: checkpoints rewritten per file"
                ),
                Err(EmitError::ShuttingDown) => return Err(Stop),
                // They are used as read; the next start rewrites them again.
                Err(EmitError::Buffer(e)) => {
                    tracing::error!(error = %e, "files: cannot rewrite the checkpoints")
                }
            }
        }
        self.saved = stored.files;
        self.started = stored.started;
        Ok(())
    }

    /// Loads the checkpoints, opens every group's files, finds files renamed while the agent
    /// was stopped, and writes the starting positions (and the markers of patterns started
    /// for the first time) in one write.
    fn start(&mut self, groups: &mut [Group]) -> Result<(), Stop> {
        self.load()?;
        let now = Instant::now();
        let mut updates: Vec<CheckpointUpdate> = Vec::new();
        for g in groups.iter_mut() {
            self.watch(g);
            for p in g.patterns.expand() {
                // A file only patterns never started match is new to the configuration.
                let seen = g
                    .patterns
                    .matching(&p)
                    .any(|pat| self.started.contains(pat));
                let start = if seen {
                    Start::Zero
                } else {
                    Start::Configured(g.cfg.start_at)
                };
                self.open(g, &p, start);
            }
        }
        // Checkpoints no group opened a file for.
        let left: Vec<(FileKey, FileCheckpoint)> = self.saved.drain().collect();
        for (key, cp) in left {
            let at_path = Path::new(&cp.path);
            let here = is_at(at_path, key);
            if here && groups.iter().any(|g| g.patterns.matches(at_path)) {
                // At a matching path but could not be opened: kept for the retries.
                self.saved.insert(key, cp);
                continue;
            }
            // Rotated out of the patterns (before the stop, or while stopped): the first
            // group that matches the name it was read under finishes it (for checkpoints
            // of earlier versions, which lack that name, a group watching its directory).
            let matched = Path::new(cp.matched_path());
            let finisher = groups
                .iter()
                .position(|g| g.patterns.matches(matched))
                .or_else(|| {
                    let dir = matched.parent()?;
                    groups.iter().position(|g| g.patterns.is_watch_dir(dir))
                });
            let Some(i) = finisher else {
                if here {
                    // No group reads it now: kept, so that one that does later goes on
                    // from here.
                    self.saved.insert(key, cp);
                } else {
                    tracing::info!(path = %cp.path, "files: forgetting the checkpoint of a file no group reads and that is gone");
                    updates.push((checkpoint::file_key(key), None));
                }
                continue;
            };
            let finished = find_moved(&cp, key)
                .and_then(|p| self.open_moved(&mut groups[i], &p, key, &cp, now));
            match finished {
                Some(p) => tracing::info!(path = %p.display(), was = %cp.path, offset = cp.offset,
                    "files: finishing a file renamed while the agent was stopped"),
                None => {
                    tracing::info!(path = %cp.path, "files: forgetting the checkpoint of a file that is gone");
                    updates.push((checkpoint::file_key(key), None));
                }
            }
        }
        let mut written = Vec::new();
        for g in groups.iter() {
            for t in g.files.values().filter(|t| t.dirty) {
                updates.push((t.cp_key.clone(), Some(t.committed_checkpoint())));
                written.push((g.index, t.key));
            }
            for p in &g.cfg.paths {
                if self.started.insert(p.clone()) {
                    let m = PatternMarker {
                        start_at: match g.cfg.start_at {
                            StartAt::End => "end".into(),
                            StartAt::Beginning => "beginning".into(),
                        },
                        started: Timestamp::now().to_string(),
                    };
                    updates.push((
                        pattern_marker_key(p),
                        Some(serde_json::to_vec(&m).expect("serializes")),
                    ));
                }
            }
        }
        if updates.is_empty() {
            return Ok(());
        }
        match self
            .emitter
            .emit_blocking(SOURCE, &Chunk::new(), &updates, &self.shutdown)
        {
            Ok(()) => {
                for (i, k) in written {
                    if let Some(t) = groups[i].files.get_mut(&k) {
                        t.dirty = false;
                    }
                }
                Ok(())
            }
            Err(EmitError::ShuttingDown) => Err(Stop),
            Err(EmitError::Buffer(e)) => {
                // Without the markers, the next start applies start_at again: that is all.
                tracing::error!(error = %e, "files: cannot write the starting positions");
                Ok(())
            }
        }
    }

    /// Whether another group reads `key`; if so, `g` skips the file at `path` (warned once).
    fn read_by_another(&mut self, g: &Group, key: FileKey, path: &Path) -> bool {
        let Some(&owner) = self.owners.get(&key) else {
            return false;
        };
        if owner == g.index {
            return false;
        }
        if self.overlaps.insert((g.index, path.to_owned())) {
            tracing::warn!(path = %path.display(),
                "files: matched by more than one [[files]] group: files[{owner}] reads it, files[{}] skips it", g.index);
        }
        true
    }

    /// A file found at startup under another name than its checkpoint's: read it to its
    /// end from the checkpoint, then close it.
    fn open_moved(
        &mut self,
        g: &mut Group,
        path: &Path,
        key: FileKey,
        cp: &FileCheckpoint,
        now: Instant,
    ) -> Option<PathBuf> {
        let file = File::open(path).ok()?;
        let meta = file.metadata().ok()?;
        if FileKey::of(&meta) != key {
            return None;
        }
        let size = meta.len();
        let head = Head::read(&file, size).ok()?;
        let Resume::At(offset, mid) = resume(cp, &file, size, path) else {
            return None;
        };
        if self.read_by_another(g, key, path) {
            return None;
        }
        let mut t = Tail::new(file, key, path.to_owned(), offset, mid, head, size);
        g.prepare(&mut t, cp.skip);
        t.dirty = head != cp.head() || path.to_string_lossy() != cp.path.as_str();
        t.set_matched(cp.matched_path());
        t.rotated = Some(now);
        g.files.insert(key, t);
        self.owners.insert(key, g.index);
        Some(path.to_owned())
    }

    /// Watches the group's directories (again, if one was recreated).
    fn watch(&mut self, g: &Group) {
        let Some(w) = self.watcher.as_mut() else {
            return;
        };
        // Forget directories that are gone, so that they are watched again once recreated.
        self.watched.retain(|d, k| {
            let same = std::fs::metadata(d).is_ok_and(|m| FileKey::of(&m) == *k);
            if !same {
                let _ = w.unwatch(d);
            }
            same
        });
        for dir in g.patterns.watch_dirs() {
            if self.watched.contains_key(&dir) {
                continue;
            }
            let Ok(meta) = std::fs::metadata(&dir) else {
                continue;
            };
            match w.watch(&dir, RecursiveMode::NonRecursive) {
                Ok(()) => {
                    self.watch_failed.remove(&dir);
                    self.watched.insert(dir, FileKey::of(&meta));
                }
                Err(e) if self.watch_failed.insert(dir.clone()) => {
                    tracing::warn!(dir = %dir.display(), error = %e,
                        "files: cannot watch a directory; relying on rescans");
                }
                Err(e) => tracing::debug!(dir = %dir.display(), error = %e,
                    "files: cannot watch a directory"),
            }
        }
    }

    /// Opens a file found at `path`; `None` (reported) if it cannot be.
    fn open(&mut self, g: &mut Group, path: &Path, start: Start) -> Option<FileKey> {
        let file = match File::open(path) {
            Ok(f) => f,
            Err(e) => {
                if e.kind() != std::io::ErrorKind::NotFound {
                    g.report(path, "cannot open", &e);
                }
                return None;
            }
        };
        let meta = match file.metadata() {
            Ok(m) if m.is_file() => m,
            Ok(_) => return None,
            Err(e) => {
                g.report(path, "cannot stat", &e);
                return None;
            }
        };
        g.failing.remove(path);
        let key = FileKey::of(&meta);
        if g.files.contains_key(&key) {
            g.by_path.insert(path.to_owned(), key);
            return Some(key);
        }
        if self.read_by_another(g, key, path) {
            return None;
        }
        let size = meta.len();
        let head = match Head::read(&file, size) {
            Ok(h) => h,
            Err(e) => {
                g.report(path, "cannot read", &e);
                return None;
            }
        };
        let (offset, mid, skip, dirty) = match self.saved.remove(&key) {
            Some(cp) => match resume(&cp, &file, size, path) {
                Resume::At(o, m) => (
                    o,
                    m,
                    cp.skip,
                    head != cp.head() || path.to_string_lossy() != cp.path.as_str(),
                ),
                Resume::Replaced => (0, false, None, true),
            },
            None => match start {
                Start::Configured(StartAt::End) => match start_of_last_line(&file, size) {
                    Ok(o) => (o, false, None, true),
                    Err(e) => {
                        g.report(path, "cannot read", &e);
                        return None;
                    }
                },
                Start::Configured(StartAt::Beginning) | Start::Zero => (0, false, None, true),
            },
        };
        let mut t = Tail::new(file, key, path.to_owned(), offset, mid, head, size);
        g.prepare(&mut t, skip);
        t.dirty = dirty;
        t.behind = Some(
            self.emitter
                .metrics()
                .bytes_behind
                .get_or_create_owned(&PathLabels {
                    path: t.path_str().to_owned(),
                }),
        );
        tracing::debug!(path = %path.display(), offset, "files: tailing");
        g.files.insert(key, t);
        g.by_path.insert(path.to_owned(), key);
        self.owners.insert(key, g.index);
        Some(key)
    }

    /// Brings what is known of `path` up to date; returns the file to read there.
    fn reconcile(
        &mut self,
        g: &mut Group,
        path: &Path,
        now: Instant,
    ) -> Result<Option<FileKey>, Stop> {
        let current = g.by_path.get(path).copied();
        let found = match std::fs::metadata(path) {
            Ok(m) if m.is_file() => Some(FileKey::of(&m)),
            Ok(_) => None,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => {
                g.report(path, "cannot stat", &e);
                return Ok(current);
            }
        };
        if found.is_some() && found == current {
            return Ok(current);
        }
        if let Some(old) = current {
            g.by_path.remove(path);
            self.detach(g, old, now)?;
        }
        let Some(key) = found else {
            return Ok(None);
        };
        if !g.patterns.matches(path) {
            return Ok(None);
        }
        if let Some(t) = g.files.get_mut(&key) {
            // A file we read, under a (new) matching name: go on with it.
            g.by_path.insert(path.to_owned(), key);
            if t.rotated.take().is_some() || !is_at(&t.path, key) {
                t.set_matched_path(path.to_owned());
            }
            return Ok(Some(key));
        }
        Ok(self.open(g, path, Start::Zero))
    }

    /// `key` is no longer at its path: read it to its end, then keep reading it until it
    /// has been quiet for `rotate_wait`.
    fn detach(&mut self, g: &mut Group, key: FileKey, now: Instant) -> Result<(), Stop> {
        if let Some(alias) = g
            .by_path
            .iter()
            .find(|(_, k)| **k == key)
            .map(|(p, _)| p.clone())
        {
            // Still under another matching name (a hard link).
            if let Some(t) = g.files.get_mut(&key) {
                t.set_matched_path(alias);
            }
            return Ok(());
        }
        let Some(t) = g.files.get_mut(&key) else {
            return Ok(());
        };
        if t.rotated.is_none() {
            tracing::info!(path = %t.path.display(),
                "files: file rotated or removed; reading it until it has been quiet for rotate_wait");
            // Where it went (its events and checkpoint say so); a removed file keeps its name.
            if let Some(p) = current_path(&t.file) {
                t.set_path(p);
            }
        }
        self.read(g, key, now)?;
        if let Some(t) = g.files.get_mut(&key) {
            t.rotated = Some(now);
        }
        Ok(())
    }

    /// Reads what `key` has past its read position (at most [`READ_BUDGET`] blocks; more
    /// is queued in `again`), emitting as it goes.
    fn read(&mut self, g: &mut Group, key: FileKey, now: Instant) -> Result<(), Stop> {
        let Group {
            files,
            out,
            multiline,
            max_line,
            index,
            ..
        } = g;
        let Some(t) = files.get_mut(&key) else {
            return Ok(());
        };
        if t.retry_at.is_some_and(|r| r > now) {
            return Ok(());
        }
        t.retry_at = None;
        let cx = Split {
            max_line: *max_line,
            multiline: multiline.as_ref(),
            now,
        };
        let o = Out {
            emitter: &self.emitter,
            shutdown: &self.shutdown,
            group: out,
            chunk: &self.chunk,
        };
        let size = match t.file.metadata() {
            Ok(m) => m.len(),
            Err(e) => {
                tracing::warn!(path = %t.path.display(), error = %e, "files: cannot stat");
                t.retry_at = Some(now + RETRY);
                return Ok(());
            }
        };
        // Copytruncate that regrew past our position before we looked shows as changed
        // first bytes: the head, as far as it was read, hashes differently (one pread of at
        // most 256 bytes per look, not per block).
        let replaced = t.head.matches(&t.file).is_ok_and(|same| !same);
        if size < t.read_pos || replaced {
            tracing::info!(path = %t.path.display(), size, offset = t.read_pos,
                "files: file truncated or its first bytes changed (copytruncate?); reading it again from the beginning");
            t.finish(&cx, &mut self.records);
            let r = emit_records(&o, t, &[], &self.records, Last::Reset);
            self.records.clear();
            match r {
                Ok(()) => t.reset(),
                Err(h) => return halted(h, t, now),
            }
        }
        t.size = size;
        let mut blocks = 0;
        loop {
            if blocks == READ_BUDGET {
                self.again.push((*index, key));
                break;
            }
            if self.shutdown.is_triggered() {
                return Err(Stop);
            }
            let (data, base) = match t.read_block(&mut self.buf) {
                Ok(Some(b)) => b,
                Ok(None) => break,
                Err(e) => {
                    tracing::warn!(path = %t.path.display(), error = %e, "files: cannot read");
                    t.rewind();
                    t.retry_at = Some(now + RETRY);
                    return Ok(());
                }
            };
            blocks += 1;
            if t.rotated.is_some() {
                t.rotated = Some(now);
            }
            t.split_block(data, base, &cx, &mut self.records);
            let r = emit_records(&o, t, data, &self.records, Last::Keep);
            self.records.clear();
            if let Err(h) = r {
                return halted(h, t, now);
            }
        }
        if t.dirty {
            if let Err(h) = emit_records(&o, t, &[], &self.records, Last::Keep) {
                return halted(h, t, now);
            }
        }
        if let Some(gauge) = &t.behind {
            gauge.set(i64::try_from(t.size.saturating_sub(t.committed)).unwrap_or(i64::MAX));
        }
        Ok(())
    }

    /// Emits `key`'s pending multiline event if it timed out.
    fn flush_timed_out(&mut self, g: &mut Group, key: FileKey, now: Instant) -> Result<(), Stop> {
        let Group {
            files,
            out,
            multiline,
            ..
        } = g;
        let (Some(t), Some(ml)) = (files.get_mut(&key), multiline.as_ref()) else {
            return Ok(());
        };
        if t.joiner.pending.deadline(ml).is_none_or(|d| d > now) {
            return Ok(());
        }
        t.flush_pending(&mut self.records);
        let o = Out {
            emitter: &self.emitter,
            shutdown: &self.shutdown,
            group: out,
            chunk: &self.chunk,
        };
        let r = emit_records(&o, t, &[], &self.records, Last::Keep);
        self.records.clear();
        match r {
            Ok(()) => Ok(()),
            Err(h) => halted(h, t, now),
        }
    }

    /// Closes a rotated file that has been quiet for `rotate_wait`: its last unfinished line
    /// and pending event are emitted and its checkpoint is forgotten, in one write — unless
    /// another group matches the file's name now: that group takes it over from the
    /// checkpoint (kept).
    fn close(&mut self, g: &mut Group, key: FileKey, now: Instant) -> Result<(), Stop> {
        let Group {
            files,
            out,
            multiline,
            max_line,
            by_path,
            index,
            ..
        } = g;
        let Some(t) = files.get_mut(&key) else {
            return Ok(());
        };
        let cx = Split {
            max_line: *max_line,
            multiline: multiline.as_ref(),
            now,
        };
        t.finish(&cx, &mut self.records);
        let handover = self
            .matchers
            .iter()
            .enumerate()
            .any(|(i, m)| i != *index && m.matches(&t.path));
        let last = if handover { Last::Keep } else { Last::Forget };
        let o = self.out(out);
        let r = emit_records(&o, t, &[], &self.records, last);
        self.records.clear();
        if let Err(h) = r {
            return halted(h, t, now);
        }
        tracing::info!(path = %t.path.display(), "files: closed a rotated file read to its end");
        let t = files.remove(&key).expect("present");
        by_path.retain(|_, k| *k != key);
        self.owners.remove(&key);
        if handover {
            if let Some(cp) = FileCheckpoint::decode(&t.committed_checkpoint()) {
                self.saved.insert(key, cp);
            }
        }
        if t.behind.is_some() {
            let label = PathLabels {
                path: t.path_str().to_owned(),
            };
            if !files.values().any(|o| o.path_str() == label.path) {
                self.emitter.metrics().bytes_behind.remove(&label);
            }
        }
        Ok(())
    }

    /// Re-expands the group's patterns, re-stats every file and reads what changed.
    fn rescan(&mut self, g: &mut Group, now: Instant) -> Result<(), Stop> {
        g.next_rescan = now + rescan_interval(&g.cfg);
        self.watch(g);
        let paths = g.patterns.expand();
        for p in &paths {
            self.reconcile(g, p, now)?;
        }
        let stale: Vec<PathBuf> = g
            .by_path
            .keys()
            .filter(|p| paths.binary_search(*p).is_err())
            .cloned()
            .collect();
        for p in stale {
            self.reconcile(g, &p, now)?;
        }
        let keys: Vec<FileKey> = g.files.keys().copied().collect();
        for key in keys {
            self.read(g, key, now)?;
        }
        Ok(())
    }

    /// One turn: applies the changes notify reported, then the timers.
    fn turn(&mut self, groups: &mut [Group], c: &Changes) -> Result<(), Stop> {
        let now = Instant::now();
        let again = std::mem::take(&mut self.again);
        for g in groups.iter_mut() {
            if c.overflow || now >= g.next_rescan {
                self.rescan(g, now)?;
            } else {
                let mut keys = Vec::new();
                for p in &c.changed {
                    if g.by_path.contains_key(p) || g.patterns.matches(p) {
                        if let Some(k) = self.reconcile(g, p, now)? {
                            keys.push(k);
                        }
                    } else if g.patterns.is_watch_dir(p) {
                        // A new directory the patterns cover: look into it now.
                        g.next_rescan = now;
                    }
                }
                for p in &c.data {
                    if let Some(&k) = g.by_path.get(p) {
                        keys.push(k);
                    } else if let Some(t) = g
                        .files
                        .values()
                        .find(|t| t.rotated.is_some() && t.path == *p)
                    {
                        keys.push(t.key);
                    } else if g.patterns.matches(p) {
                        if let Some(k) = self.reconcile(g, p, now)? {
                            keys.push(k);
                        }
                    }
                }
                keys.extend(again.iter().filter(|(i, _)| *i == g.index).map(|(_, k)| *k));
                keys.extend(
                    g.files
                        .values()
                        .filter(|t| t.retry_at.is_some_and(|r| r <= now))
                        .map(|t| t.key),
                );
                keys.sort_unstable();
                keys.dedup();
                for k in keys {
                    self.read(g, k, now)?;
                }
                if now >= g.next_rescan {
                    self.rescan(g, now)?;
                }
            }
            if now >= g.next_rotated_poll {
                g.next_rotated_poll = now + ROTATED_POLL;
                let rotated: Vec<FileKey> = g
                    .files
                    .values()
                    .filter(|t| t.rotated.is_some())
                    .map(|t| t.key)
                    .collect();
                for k in rotated {
                    self.read(g, k, now)?;
                    let quiet = g.files.get(&k).is_some_and(|t| {
                        t.retry_at.is_none()
                            && !self.again.contains(&(g.index, k))
                            && t.rotated
                                .is_some_and(|r| now >= r + g.cfg.rotate_wait.get())
                    });
                    if quiet {
                        self.close(g, k, now)?;
                    }
                }
            }
            if g.multiline.is_some() {
                let keys: Vec<FileKey> = g.files.keys().copied().collect();
                for k in keys {
                    self.flush_timed_out(g, k, now)?;
                }
            }
        }
        Ok(())
    }
}

/// After a failed emit: stop on shutdown; otherwise read the file again from its checkpoint
/// a little later.
fn halted(h: Halt, t: &mut Tail, now: Instant) -> Result<(), Stop> {
    match h {
        Halt::Shutdown => Err(Stop),
        Halt::Failed => {
            t.rewind();
            t.retry_at = Some(now + RETRY);
            Ok(())
        }
    }
}

/// The labels of a Kubernetes container log from its path,
/// `/var/log/pods/<namespace>_<pod>_<uid>/<container>/<restart>.log` (also after rotation to
/// `<restart>.log.<timestamp>` in the same directory). Namespaces, pod names and uids cannot
/// hold `_`. Empty for other layouts.
fn pod_labels(path: &Path) -> Labels<'static> {
    let mut labels = Labels::new();
    let container = path.parent();
    let pod_dir = container.and_then(Path::parent);
    let (Some(container), Some(pod_dir)) = (
        container
            .and_then(|c| c.file_name())
            .and_then(|c| c.to_str()),
        pod_dir.and_then(|p| p.file_name()).and_then(|p| p.to_str()),
    ) else {
        return labels;
    };
    let parts: Vec<&str> = pod_dir.split('_').collect();
    let [namespace, pod, uid] = parts[..] else {
        tracing::debug!(path = %path.display(), "kubernetes: not a /var/log/pods/<namespace>_<pod>_<uid>/<container>/ path; no pod labels");
        return labels;
    };
    for (k, v) in KUBERNETES_LABELS
        .iter()
        .zip([namespace, pod, uid, container])
    {
        labels.insert(Cow::Borrowed(*k), Cow::Owned(v.to_owned()));
    }
    labels
}
