//! Segment files: their names and paths, their in-memory metadata, and reading the event
//! timestamps of an uncompressed segment.

use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use logops_common::{Kind, Timestamp};
use serde::Deserialize;

use crate::compress::FrameInfo;
use crate::error::StoreError;

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

/// The file name of an uncompressed segment: `<seq:020>.ndjson`.
pub(crate) fn ndjson_name(seq: u64) -> String {
    format!("{seq:020}.ndjson")
}

/// The file name of a compressed segment: `<seq:020>.ndjson.zst`.
pub(crate) fn zst_name(seq: u64) -> String {
    format!("{seq:020}.ndjson.zst")
}

/// What a file in a stream directory is, by its name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SegmentFile {
    /// `<seq>.ndjson`
    Ndjson(u64),
    /// `<seq>.ndjson.zst`
    Zst(u64),
    /// A leftover `*.tmp` of an interrupted compression.
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
    if let Some(stem) = name.strip_suffix(".ndjson.zst") {
        return seq(stem).map_or(SegmentFile::Other, SegmentFile::Zst);
    }
    if let Some(stem) = name.strip_suffix(".ndjson") {
        return seq(stem).map_or(SegmentFile::Other, SegmentFile::Ndjson);
    }
    SegmentFile::Other
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
    /// The file as it is now (`.ndjson`, or `.ndjson.zst` once compressed).
    pub(crate) path: PathBuf,
    /// Closed: no more writes (rotated, awaiting compression or compressed).
    pub(crate) closed: bool,
    /// Compressed (`path` is the `.zst`).
    pub(crate) compressed: bool,
    /// The bytes the file takes (for an active segment: its committed length).
    pub(crate) bytes_on_disk: u64,
    /// The committed, uncompressed length: readers never look past it.
    pub(crate) committed_len: u64,
    /// The committed lines' timestamps (ns); `i64::MAX..i64::MIN` when there are none.
    pub(crate) ts: LineStats,
    /// When the segment got its first commit (Unix ms).
    pub(crate) created_ms: u64,
    /// When the segment got its last commit (Unix ms).
    pub(crate) last_write_ms: u64,
    /// The frame index of a compressed segment.
    pub(crate) frames: Option<Arc<[FrameInfo]>>,
    /// Held (cloned) by every scan that listed this file: once the catalog has moved on to
    /// another file, a count of one means that nobody can be reading the old one.
    pub(crate) readers: Arc<()>,
}

/// Line count and timestamp range of a run of lines.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct LineStats {
    /// Number of lines.
    pub(crate) lines: u64,
    /// The smallest timestamp (ns).
    pub(crate) min_ts: i64,
    /// The largest timestamp (ns).
    pub(crate) max_ts: i64,
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
    pub(crate) fn add(&mut self, ts: Option<i64>) {
        self.lines += 1;
        let (lo, hi) = ts.map_or((i64::MIN, i64::MAX), |t| (t, t));
        self.min_ts = self.min_ts.min(lo);
        self.max_ts = self.max_ts.max(hi);
    }

    /// Adds the lines of `other`.
    pub(crate) fn merge(&mut self, other: &LineStats) {
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

#[derive(Deserialize)]
struct TsOnly {
    ts: Timestamp,
}

/// The `ts` of an NDJSON event line, in ns since the epoch.
///
/// Lines in segments were validated by the ingest (one JSON object, no duplicate fields),
/// and agents write `ts` first: a line starting `{"ts":"<no escapes>"` has its timestamp
/// read from there without parsing the rest. The compressor reads every line of every
/// closed segment, and a full JSON parse per line was a third of its CPU. Anything else is
/// parsed as JSON.
pub(crate) fn line_ts(line: &[u8]) -> Option<i64> {
    if let Some(rest) = line.strip_prefix(br#"{"ts":""#) {
        if let Some(end) = rest.iter().position(|&b| b == b'"' || b == b'\\') {
            if rest[end] == b'"' {
                if let Ok(ts) = std::str::from_utf8(&rest[..end])
                    .map_err(|e| e.to_string())
                    .and_then(Timestamp::parse)
                {
                    return Some(ts.as_nanos_i64());
                }
            }
        }
    }
    serde_json::from_slice::<TsOnly>(line)
        .ok()
        .map(|t| t.ts.as_nanos_i64())
}

/// Reads the first `limit` bytes of an uncompressed segment: the stats of its complete lines
/// and the length they take (a torn last line is not counted).
pub(crate) fn scan_ndjson(path: &Path, limit: u64) -> Result<(LineStats, u64), StoreError> {
    let file = File::open(path).map_err(StoreError::io_fn("open the segment", path))?;
    let mut reader = BufReader::with_capacity(1 << 20, file.take(limit));
    let mut stats = LineStats::default();
    let mut complete = 0u64;
    let mut line = Vec::new();
    loop {
        line.clear();
        let n = reader
            .read_until(b'\n', &mut line)
            .map_err(StoreError::io_fn("read the segment", path))?;
        if n == 0 || line.last() != Some(&b'\n') {
            break;
        }
        stats.add(line_ts(&line[..n - 1]));
        complete += n as u64;
    }
    Ok((stats, complete))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_others_are_recognised() {
        assert_eq!(ndjson_name(18), "00000000000000000018.ndjson");
        assert_eq!(classify(&ndjson_name(18)), SegmentFile::Ndjson(18));
        assert_eq!(classify(&zst_name(u64::MAX)), SegmentFile::Zst(u64::MAX));
        assert_eq!(
            classify("00000000000000000018.ndjson.zst.tmp"),
            SegmentFile::Tmp
        );
        assert_eq!(classify("18.ndjson"), SegmentFile::Other);
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
    fn scanning_counts_complete_lines_and_reads_timestamps() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join(ndjson_name(1));
        let data = b"{\"ts\":\"1970-01-01T00:00:01Z\"}\n{\"ts\":\"1970-01-01T00:00:03Z\",\"x\":1}\n{\"ts\":\"19";
        std::fs::write(&path, data).unwrap();
        let (stats, complete) = scan_ndjson(&path, data.len() as u64).unwrap();
        assert_eq!(stats.lines, 2);
        assert_eq!((stats.min_ts, stats.max_ts), (1_000_000_000, 3_000_000_000));
        assert_eq!(complete, data.len() as u64 - b"{\"ts\":\"19".len() as u64);
        assert!(stats.overlaps(Some(3_000_000_000), None));
        assert!(!stats.overlaps(Some(3_000_000_001), None));
        assert!(!stats.overlaps(None, Some(1_000_000_000)));

        // The fast path (ts first) and the JSON parse agree; escapes and other orders work.
        for (line, want) in [
            (
                &br#"{"ts":"1970-01-01T00:00:02.5Z","kind":"log"}"#[..],
                Some(2_500_000_000),
            ),
            (
                br#"{"kind":"log","ts":"1970-01-01T00:00:02Z"}"#,
                Some(2_000_000_000),
            ),
            (
                br#"{"ts":"1970-01-01T00:00:0\u0032Z"}"#,
                Some(2_000_000_000),
            ),
            (
                br#"{"ts":"1970-01-01T01:00:02+01:00"}"#,
                Some(2_000_000_000),
            ),
            (br#"{"ts":"not a time"}"#, None),
        ] {
            assert_eq!(line_ts(line), want, "{}", String::from_utf8_lossy(line));
        }

        let mut odd = LineStats::default();
        odd.add(None);
        assert!(odd.overlaps(Some(0), Some(1)));
    }
}
