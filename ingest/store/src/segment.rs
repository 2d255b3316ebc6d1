//! Segment files: their names and paths, and what the store keeps in memory about them.

use std::path::{Path, PathBuf};
use std::sync::{Arc, PoisonError, RwLock};

use logops_common::Kind;

use crate::format::FrameInfo;

/// A stream of segments: one tenant's events of one kind.
pub(crate) type StreamKey = (Arc<str>, Kind);

/// Whether `name` is a valid tenant, `[a-z0-9_-]{1,64}` (it names a directory).
pub(crate) fn valid_tenant(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
}

/// The directory of a stream's segments: `<root>/<tenant>/<kind>`.
pub(crate) fn stream_dir(root: &Path, tenant: &str, kind: Kind) -> PathBuf {
    root.join(tenant).join(kind.as_str())
}

/// The file name of an open (or closed but not yet sealed) segment:
/// `<seq:020>.open.ndjson.zst`.
pub(crate) fn open_name(seq: u64) -> String {
    format!("{seq:020}.open.ndjson.zst")
}

/// The file name of a sealed segment: `<seq:020>.ndjson.zst`.
pub(crate) fn zst_name(seq: u64) -> String {
    format!("{seq:020}.ndjson.zst")
}

/// What a file in a stream directory is, by its name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SegmentFile {
    /// `<seq>.open.ndjson.zst`
    Open(u64),
    /// `<seq>.ndjson.zst`
    Zst(u64),
    /// `<seq>.ndjson`: an uncompressed segment of a development version before segments
    /// were made of frames.
    Legacy(u64),
    /// A leftover `*.tmp` of an interrupted repack.
    Tmp,
    /// Anything else.
    Other,
}

/// Classifies a file name found in a stream directory.
pub(crate) fn classify(name: &str) -> SegmentFile {
    if name.ends_with(".tmp") {
        return SegmentFile::Tmp;
    }
    let seq = |stem: &str| {
        (stem.len() == 20 && stem.bytes().all(|b| b.is_ascii_digit()))
            .then(|| stem.parse::<u64>().ok())
            .flatten()
    };
    let parsed = if let Some(stem) = name.strip_suffix(".open.ndjson.zst") {
        seq(stem).map(SegmentFile::Open)
    } else if let Some(stem) = name.strip_suffix(".ndjson.zst") {
        seq(stem).map(SegmentFile::Zst)
    } else if let Some(stem) = name.strip_suffix(".ndjson") {
        seq(stem).map(SegmentFile::Legacy)
    } else {
        None
    };
    parsed.unwrap_or(SegmentFile::Other)
}

/// The frames of a segment, shared by the writer (which appends those of each group it
/// commits) and the catalog; scans copy the ones they read.
#[derive(Debug, Default)]
pub(crate) struct FrameTable(RwLock<Vec<FrameInfo>>);

impl FrameTable {
    /// A table holding `frames`.
    pub(crate) fn new(frames: Vec<FrameInfo>) -> Self {
        FrameTable(RwLock::new(frames))
    }

    /// Appends frames (whose offsets follow the last one's).
    pub(crate) fn extend(&self, frames: impl IntoIterator<Item = FrameInfo>) {
        self.0
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .extend(frames);
    }

    /// The frames that end at or before `u_end` and hold a byte of `lo..=hi`.
    pub(crate) fn select(&self, u_end: u64, lo: u64, hi: u64) -> Vec<FrameInfo> {
        let frames = self.0.read().unwrap_or_else(PoisonError::into_inner);
        let first = frames.partition_point(|f| f.u_end() <= lo);
        frames[first..]
            .iter()
            .take_while(|f| f.u_off <= hi && f.u_end() <= u_end)
            .copied()
            .collect()
    }

    /// Every frame that ends at or before `u_end`.
    pub(crate) fn upto(&self, u_end: u64) -> Vec<FrameInfo> {
        self.select(u_end, 0, u64::MAX)
    }
}

/// What the store keeps in memory about one segment.
#[derive(Debug, Clone)]
pub(crate) struct SegmentMeta {
    /// The store-wide sequence number.
    pub(crate) seq: u64,
    /// The tenant.
    pub(crate) tenant: Arc<str>,
    /// The kind of its events.
    pub(crate) kind: Kind,
    /// The file as it is now (`.open.ndjson.zst`, or `.ndjson.zst` once sealed).
    pub(crate) path: PathBuf,
    /// Closed: no more writes (rotated, awaiting sealing, or sealed).
    pub(crate) closed: bool,
    /// Sealed: closed, with its index (`path` is the `.ndjson.zst`).
    pub(crate) sealed: bool,
    /// The bytes the file takes (for an open segment: its committed length, what the
    /// commit log records).
    pub(crate) bytes_on_disk: u64,
    /// The committed length of its uncompressed content: readers never look past it.
    pub(crate) committed_len: u64,
    /// The committed lines' timestamps (ns); `i64::MAX..i64::MIN` when there are none.
    pub(crate) ts: LineStats,
    /// When the segment got its first commit (Unix ms).
    pub(crate) created_ms: u64,
    /// When the segment got its last commit (Unix ms).
    pub(crate) last_write_ms: u64,
    /// Its frames (of an open segment: also some a group is committing right now; readers
    /// take those within `committed_len`).
    pub(crate) frames: Arc<FrameTable>,
    /// Held (cloned) by every scan that listed this file: once the catalog has moved on to
    /// another file, a count of one means that nobody can be reading the old one.
    pub(crate) readers: Arc<()>,
}

/// Line count and timestamp range of a run of lines.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LineStats {
    /// Number of lines.
    pub lines: u64,
    /// The smallest timestamp (ns since the Unix epoch).
    pub min_ts: i64,
    /// The largest timestamp (ns since the Unix epoch).
    pub max_ts: i64,
}

impl Default for LineStats {
    fn default() -> Self {
        LineStats {
            lines: 0,
            min_ts: i64::MAX,
            max_ts: i64::MIN,
        }
    }
}

impl LineStats {
    /// Counts a line with timestamp `ts`; a line without a readable timestamp widens the
    /// range to all of time, so that time pruning can never skip it.
    pub fn add(&mut self, ts: Option<i64>) {
        self.lines += 1;
        let (lo, hi) = ts.map_or((i64::MIN, i64::MAX), |t| (t, t));
        self.min_ts = self.min_ts.min(lo);
        self.max_ts = self.max_ts.max(hi);
    }

    /// Adds the lines of `other`.
    pub fn merge(&mut self, other: &LineStats) {
        self.lines += other.lines;
        self.min_ts = self.min_ts.min(other.min_ts);
        self.max_ts = self.max_ts.max(other.max_ts);
    }

    /// Whether `[min_ts, max_ts]` overlaps `[since, until)`.
    pub(crate) fn overlaps(&self, since: Option<i64>, until: Option<i64>) -> bool {
        self.lines > 0
            && self.min_ts <= self.max_ts
            && since.is_none_or(|s| self.max_ts >= s)
            && until.is_none_or(|u| self.min_ts < u)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_others_are_recognised() {
        assert_eq!(open_name(18), "00000000000000000018.open.ndjson.zst");
        assert_eq!(classify(&open_name(18)), SegmentFile::Open(18));
        assert_eq!(classify(&zst_name(u64::MAX)), SegmentFile::Zst(u64::MAX));
        assert_eq!(
            classify("00000000000000000018.ndjson"),
            SegmentFile::Legacy(18)
        );
        assert_eq!(
            classify("00000000000000000018.ndjson.zst.tmp"),
            SegmentFile::Tmp
        );
        assert_eq!(classify("18.ndjson.zst"), SegmentFile::Other);
        assert_eq!(classify("x.open.ndjson.zst"), SegmentFile::Other);
        assert_eq!(classify("notes.txt"), SegmentFile::Other);
    }

    #[test]
    fn tenants_are_safe_directory_names() {
        assert!(valid_tenant("acme_01-x"));
        for bad in ["", "Acme", "a/b", "..", "a.b", &"x".repeat(65)] {
            assert!(!valid_tenant(bad), "{bad}");
        }
    }

    #[test]
    fn line_stats_tell_whether_a_time_range_overlaps() {
        let mut stats = LineStats::default();
        assert!(!stats.overlaps(None, None), "no lines");
        stats.add(Some(1_000_000_000));
        stats.add(Some(3_000_000_000));
        assert_eq!(stats.lines, 2);
        assert!(stats.overlaps(Some(3_000_000_000), None));
        assert!(!stats.overlaps(Some(3_000_000_001), None));
        assert!(!stats.overlaps(None, Some(1_000_000_000)));
        let mut odd = LineStats::default();
        odd.add(None);
        assert!(odd.overlaps(Some(0), Some(1)));
    }

    #[test]
    fn frame_tables_select_committed_frames_holding_a_range() {
        let frame = |u_off, u_len| FrameInfo {
            c_off: u_off,
            c_len: u_len,
            u_off,
            u_len,
            ts: LineStats::default(),
        };
        let table = FrameTable::new(vec![frame(0, 10), frame(10, 10)]);
        table.extend([frame(20, 10), frame(30, 10)]);
        let offs = |v: Vec<FrameInfo>| v.iter().map(|f| f.u_off).collect::<Vec<_>>();
        assert_eq!(offs(table.upto(40)), [0, 10, 20, 30]);
        assert_eq!(offs(table.upto(35)), [0, 10, 20], "an uncommitted frame");
        assert_eq!(offs(table.select(40, 10, 20)), [10, 20]);
        assert_eq!(offs(table.select(40, 15, 15)), [10]);
        assert_eq!(offs(table.select(40, 39, u64::MAX)), [30]);
        assert!(table.select(40, 40, u64::MAX).is_empty());
    }
}
