//! Opening a store directory after a clean shutdown or a crash: load the snapshot, replay
//! the commit log, then reconcile the segment files with what was committed.

use std::collections::{BTreeMap, HashMap};
use std::fs::{self, OpenOptions};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use logops_common::Kind;
use tracing::{error, info, warn};

use crate::catalog::Catalog;
use crate::commit_log::{CommitLog, Record};
use crate::dedupe::{DedupeSet, SeqRange};
use crate::error::StoreError;
use crate::format::{self, walk_units};
use crate::fsutil::{datasync, remove_if_exists};
use crate::segment::{
    classify, open_name, valid_tenant, zst_name, FrameTable, SegmentFile, SegmentMeta, StreamKey,
};
use crate::snapshot::{self, SegState, Snapshot, SNAPSHOT_TMP};
use crate::writer::ActiveSegment;

/// What `recover` found: the state the threads start from.
pub(crate) struct Recovered {
    /// Every segment.
    pub(crate) catalog: Catalog,
    /// Stored batch ids.
    pub(crate) dedupe: DedupeSet,
    /// The commit log, torn tail cut.
    pub(crate) log: CommitLog,
    /// The active segment of each stream that has one.
    pub(crate) active: Vec<(StreamKey, ActiveSegment)>,
    /// Closed segments still to seal.
    pub(crate) to_seal: Vec<u64>,
    /// The seq of the next segment.
    pub(crate) next_seq: u64,
}

/// The committed state: snapshot, then commit-log records, applied idempotently.
struct CommitState {
    dedupe: DedupeSet,
    segments: HashMap<u64, SegState>,
    next_seq: u64,
}

impl CommitState {
    fn load(&mut self, snap: Snapshot) {
        for e in snap.ranges {
            self.dedupe.insert_range(&e.tenant, &e.agent, e.range);
        }
        for s in snap.segments {
            self.next_seq = self.next_seq.max(s.seq + 1);
            self.segments.insert(s.seq, s);
        }
        self.next_seq = self.next_seq.max(snap.next_seq);
    }

    fn segment(&mut self, seq: u64, unix_ms: u64) -> &mut SegState {
        self.next_seq = self.next_seq.max(seq + 1);
        self.segments.entry(seq).or_insert(SegState {
            seq,
            committed: 0,
            closed: false,
            created_ms: unix_ms,
            last_write_ms: unix_ms,
        })
    }

    fn replay(&mut self, record: Record) {
        match record {
            Record::Group {
                unix_ms,
                ids,
                segments,
                ..
            } => {
                for id in ids {
                    self.dedupe.insert_range(
                        &id.tenant,
                        &id.agent,
                        SeqRange {
                            start: id.seq,
                            end: id.seq,
                            last_seen_ms: unix_ms,
                        },
                    );
                }
                for (seq, committed) in segments {
                    let s = self.segment(seq, unix_ms);
                    // Committed lengths only grow: `max` makes replaying records that a
                    // snapshot already holds harmless.
                    s.committed = s.committed.max(committed);
                    s.created_ms = s.created_ms.min(unix_ms);
                    s.last_write_ms = s.last_write_ms.max(unix_ms);
                }
            }
            Record::Close { unix_ms, segment } => self.segment(segment, unix_ms).closed = true,
        }
    }
}

/// Segment files of one seq found on disk.
struct Found {
    key: StreamKey,
    dir: PathBuf,
    open: bool,
    zst: bool,
}

fn read_dir(dir: &Path) -> Result<Vec<fs::DirEntry>, StoreError> {
    fs::read_dir(dir)
        .and_then(|entries| entries.collect::<Result<Vec<_>, _>>())
        .map_err(StoreError::io_fn("list the directory", dir))
}

/// Lists the segment files under `root`, removing leftover `.tmp` files. Refuses a
/// directory holding uncompressed segments of a development version.
fn walk(root: &Path) -> Result<BTreeMap<u64, Found>, StoreError> {
    let mut found: BTreeMap<u64, Found> = BTreeMap::new();
    for tenant_entry in read_dir(root)? {
        let tenant_path = tenant_entry.path();
        let Some(tenant) = tenant_entry.file_name().to_str().map(str::to_owned) else {
            continue;
        };
        if !tenant_path.is_dir() {
            continue;
        }
        if !valid_tenant(&tenant) {
            warn!(path = %tenant_path.display(), "ignoring a directory that is not a tenant");
            continue;
        }
        let tenant: Arc<str> = tenant.into();
        for kind_entry in read_dir(&tenant_path)? {
            let kind_path = kind_entry.path();
            let kind = kind_entry
                .file_name()
                .to_str()
                .and_then(|k| k.parse::<Kind>().ok());
            let Some(kind) = kind.filter(|_| kind_path.is_dir()) else {
                warn!(path = %kind_path.display(), "ignoring an entry that is not a kind directory");
                continue;
            };
            for file in read_dir(&kind_path)? {
                let path = file.path();
                let name = file.file_name();
                let (seq, is_zst) = match classify(&name.to_string_lossy()) {
                    SegmentFile::Open(seq) => (seq, false),
                    SegmentFile::Zst(seq) => (seq, true),
                    SegmentFile::Legacy(_) => {
                        return Err(StoreError::OldFormat {
                            path,
                            what: "an uncompressed segment",
                        })
                    }
                    SegmentFile::Tmp => {
                        info!(path = %path.display(), "removing a leftover temporary file");
                        remove_if_exists(&path)?;
                        continue;
                    }
                    SegmentFile::Other => {
                        warn!(path = %path.display(), "ignoring a file that is not a segment");
                        continue;
                    }
                };
                let entry = found.entry(seq).or_insert_with(|| Found {
                    key: (tenant.clone(), kind),
                    dir: kind_path.clone(),
                    open: false,
                    zst: false,
                });
                if entry.key != (tenant.clone(), kind) {
                    error!(path = %path.display(), seq, "ignoring a segment whose seq another stream already uses");
                    continue;
                }
                if is_zst {
                    entry.zst = true;
                } else {
                    entry.open = true;
                }
            }
        }
    }
    Ok(found)
}

/// Brings an open segment back to its committed length and reads its frames from its group
/// headers; `None` if nothing of it was committed (the file is then removed).
fn recover_open(
    seq: u64,
    found: &Found,
    path: PathBuf,
    state: Option<&SegState>,
) -> Result<Option<SegmentMeta>, StoreError> {
    let Some(state) = state.filter(|s| s.committed > 0) else {
        info!(path = %path.display(), "removing a segment that has no commit record");
        remove_if_exists(&path)?;
        return Ok(None);
    };
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .open(&path)
        .map_err(StoreError::io_fn("open", &path))?;
    let file_len = file
        .metadata()
        .map_err(StoreError::io_fn("stat", &path))?
        .len();
    let walked = walk_units(&file, &path, state.committed.min(file_len))?;
    if walked.end < state.committed {
        error!(
            path = %path.display(),
            committed = state.committed,
            on_disk = walked.end,
            problem = walked.stopped.as_deref().unwrap_or("the file is shorter"),
            "the segment holds less than its committed length: committed lines were lost by the disk"
        );
    }
    if walked.end == 0 {
        drop(file);
        remove_if_exists(&path)?;
        return Ok(None);
    }
    if file_len != walked.end {
        warn!(
            path = %path.display(),
            cut_bytes = file_len.saturating_sub(walked.end),
            "cutting the uncommitted tail of a segment"
        );
        file.set_len(walked.end)
            .map_err(StoreError::io_fn("truncate", &path))?;
        datasync(&file, &path, None)?;
    }
    Ok(Some(SegmentMeta {
        seq,
        tenant: found.key.0.clone(),
        kind: found.key.1,
        path,
        closed: state.closed,
        sealed: false,
        bytes_on_disk: walked.end,
        committed_len: walked.u_len,
        ts: walked.ts,
        created_ms: state.created_ms,
        last_write_ms: state.last_write_ms,
        frames: Arc::new(FrameTable::new(walked.frames)),
        readers: Default::default(),
    }))
}

/// Checks that the bytes a checked group record covers are in its segments, as written.
fn check_written(
    found: &BTreeMap<u64, Found>,
    segments: &[(u64, u64)],
    checks: &[(u64, u32)],
) -> Result<(), String> {
    use std::os::unix::fs::FileExt;
    for (&(seq, end), &(start, crc)) in segments.iter().zip(checks) {
        let Some(f) = found.get(&seq).filter(|f| f.open) else {
            return Err(format!("segment {seq} is missing"));
        };
        let path = f.dir.join(open_name(seq));
        let mut buf = vec![0u8; end.saturating_sub(start) as usize];
        fs::File::open(&path)
            .and_then(|file| file.read_exact_at(&mut buf, start))
            .map_err(|e| format!("{} cannot be read up to {end}: {e}", path.display()))?;
        if crc32fast::hash(&buf) != crc {
            return Err(format!(
                "the bytes {start}..{end} of {} are not the ones written",
                path.display()
            ));
        }
    }
    Ok(())
}

/// Recovers the store in `dir` (whose lock the caller holds).
pub(crate) fn recover(dir: &Path) -> Result<Recovered, StoreError> {
    remove_if_exists(&dir.join(SNAPSHOT_TMP))?;
    let mut state = CommitState {
        dedupe: DedupeSet::default(),
        segments: HashMap::new(),
        next_seq: 1,
    };
    if let Some(snap) = snapshot::load(dir)? {
        state.load(snap);
    }
    let found = walk(dir)?;
    let (mut log, mut records) = CommitLog::open(dir)?;
    if let Some(Record::Group {
        segments,
        checks: Some(checks),
        ids,
        ..
    }) = records.last()
    {
        if let Err(why) = check_written(&found, segments, checks) {
            warn!(
                batches = ids.len(),
                "the last group commit is in the log but {why}: it was never acknowledged; dropping it"
            );
            log.cut_last()?;
            records.pop();
        }
    }
    let replayed = records.len();
    for record in records {
        state.replay(record);
    }

    let mut catalog = Catalog::default();
    let mut max_seq = 0;
    for (&seq, f) in &found {
        max_seq = max_seq.max(seq);
        let open = f.dir.join(open_name(seq));
        let zst = f.dir.join(zst_name(seq));
        if f.zst {
            match format::read_index(&zst) {
                Ok((index, size)) => {
                    if f.open && remove_if_exists(&open)? {
                        info!(path = %open.display(), "removing a segment that was already repacked");
                    }
                    catalog.insert(SegmentMeta {
                        seq,
                        tenant: f.key.0.clone(),
                        kind: f.key.1,
                        path: zst,
                        closed: true,
                        sealed: true,
                        bytes_on_disk: size,
                        committed_len: index.u_len,
                        ts: index.ts,
                        created_ms: index.created_ms,
                        last_write_ms: index.last_write_ms,
                        frames: Arc::new(FrameTable::new(index.frames)),
                        readers: Default::default(),
                    });
                    continue;
                }
                Err(e) if f.open => {
                    warn!(error = %e, "sealing the segment again from its open file");
                    remove_if_exists(&zst)?;
                }
                Err(e) => {
                    error!(error = %e, "leaving out a compressed segment that cannot be read");
                    continue;
                }
            }
        }
        if !f.open {
            continue;
        }
        if let Some(meta) = recover_open(seq, f, open, state.segments.get(&seq))? {
            catalog.insert(meta);
        }
    }

    // The newest open segment of each stream stays active; any other unsealed one is closed
    // (it lost its close record) and, like every closed one, sealed.
    let mut newest: HashMap<StreamKey, u64> = HashMap::new();
    for m in catalog.iter().filter(|m| !m.closed) {
        newest.insert((m.tenant.clone(), m.kind), m.seq);
    }
    let mut to_seal = Vec::new();
    let seqs: Vec<u64> = catalog.iter().map(|m| m.seq).collect();
    for seq in seqs {
        let Some(m) = catalog.get_mut(seq) else {
            continue;
        };
        if !m.closed && newest.get(&(m.tenant.clone(), m.kind)) != Some(&seq) {
            m.closed = true;
        }
        if m.closed && !m.sealed {
            to_seal.push(seq);
        }
    }
    let mut active = Vec::with_capacity(newest.len());
    for (key, seq) in newest {
        let Some(m) = catalog.get(seq) else { continue };
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(&m.path)
            .map_err(StoreError::io_fn("open the segment", &m.path))?;
        active.push((
            key,
            ActiveSegment {
                seq,
                path: m.path.clone(),
                file,
                committed: m.bytes_on_disk,
                u_len: m.committed_len,
                created_ms: m.created_ms,
                frames: m.frames.clone(),
            },
        ));
    }

    let next_seq = state.next_seq.max(max_seq + 1);
    info!(
        dir = %dir.display(),
        segments = found.len(),
        active = active.len(),
        to_seal = to_seal.len(),
        replayed_records = replayed,
        dedupe_ranges = state.dedupe.range_count(),
        next_seq,
        "store recovered"
    );
    Ok(Recovered {
        catalog,
        dedupe: state.dedupe,
        log,
        active,
        to_seal,
        next_seq,
    })
}
