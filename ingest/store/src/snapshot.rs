//! `commits.snapshot`: the compacted state of the commit log, i.e. the live dedupe ranges,
//! the commit state of every unsealed segment and the next segment seq.
//!
//! Format: `b"LOGOPSS1" | u32 CRC-32 of body | u64 body length | body`, body =
//! `u64 unix ms | u64 next seq | u32 n | n × (u64 seq, u64 committed length, u8 closed,
//! u64 created ms, u64 last write ms) | u32 m | m × (str tenant, str agent, u64 start,
//! u64 end, u64 last seen ms)`. It is replaced atomically (write `.tmp`, fsync, rename,
//! fsync the directory), so a corrupt snapshot means the disk lost data: open fails.

use std::fs::File;
use std::io::{self, Write};
use std::path::Path;

use crate::codec::{Dec, DecodeError, Put};
use crate::dedupe::{DedupeEntry, SeqRange};
use crate::error::StoreError;
use crate::fsutil::sync_dir;

/// The snapshot's file name in the store directory.
pub(crate) const SNAPSHOT_FILE: &str = "commits.snapshot";
/// Where a new snapshot is written before it is renamed into place.
pub(crate) const SNAPSHOT_TMP: &str = "commits.snapshot.tmp";
const MAGIC: &[u8; 8] = b"LOGOPSS1";

/// The commit state of one unsealed segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SegState {
    /// The segment's seq.
    pub(crate) seq: u64,
    /// Its committed length.
    pub(crate) committed: u64,
    /// Closed by rotation.
    pub(crate) closed: bool,
    /// Its first commit (Unix ms).
    pub(crate) created_ms: u64,
    /// Its last commit (Unix ms).
    pub(crate) last_write_ms: u64,
}

/// The content of a snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Snapshot {
    /// When it was taken (Unix ms).
    pub(crate) unix_ms: u64,
    /// The next segment seq.
    pub(crate) next_seq: u64,
    /// The unsealed segments.
    pub(crate) segments: Vec<SegState>,
    /// The dedupe ranges.
    pub(crate) ranges: Vec<DedupeEntry>,
}

fn encode(s: &Snapshot) -> Vec<u8> {
    let mut body = Vec::with_capacity(32 + s.segments.len() * 33 + s.ranges.len() * 64);
    body.put_u64(s.unix_ms);
    body.put_u64(s.next_seq);
    body.put_u32(s.segments.len() as u32);
    for g in &s.segments {
        body.put_u64(g.seq);
        body.put_u64(g.committed);
        body.put_u8(u8::from(g.closed));
        body.put_u64(g.created_ms);
        body.put_u64(g.last_write_ms);
    }
    body.put_u32(s.ranges.len() as u32);
    for e in &s.ranges {
        body.put_str(&e.tenant);
        body.put_str(&e.agent);
        body.put_u64(e.range.start);
        body.put_u64(e.range.end);
        body.put_u64(e.range.last_seen_ms);
    }
    let mut out = Vec::with_capacity(20 + body.len());
    out.extend_from_slice(MAGIC);
    out.put_u32(crc32fast::hash(&body));
    out.put_u64(body.len() as u64);
    out.extend_from_slice(&body);
    out
}

fn decode(buf: &[u8]) -> Result<Snapshot, DecodeError> {
    let mut d = Dec::new(buf);
    if d.bytes(MAGIC.len())? != MAGIC {
        return Err(d.error("not a LogOps snapshot (bad magic)"));
    }
    let crc = d.u32()?;
    let len = d.u64()? as usize;
    if d.remaining() != len {
        return Err(d.error(format!(
            "the body should be {len} bytes, {} are there",
            d.remaining()
        )));
    }
    let body = d.bytes(len)?;
    if crc32fast::hash(body) != crc {
        return Err(d.error("bad CRC"));
    }
    let mut d = Dec::new(body);
    let unix_ms = d.u64()?;
    let next_seq = d.u64()?;
    let n = d.count(33)?;
    let mut segments = Vec::with_capacity(n);
    for _ in 0..n {
        segments.push(SegState {
            seq: d.u64()?,
            committed: d.u64()?,
            closed: d.u8()? != 0,
            created_ms: d.u64()?,
            last_write_ms: d.u64()?,
        });
    }
    let m = d.count(32)?;
    let mut ranges = Vec::with_capacity(m);
    for _ in 0..m {
        ranges.push(DedupeEntry {
            tenant: d.str()?.to_string(),
            agent: d.str()?.to_string(),
            range: SeqRange {
                start: d.u64()?,
                end: d.u64()?,
                last_seen_ms: d.u64()?,
            },
        });
    }
    Ok(Snapshot {
        unix_ms,
        next_seq,
        segments,
        ranges,
    })
}

/// Writes `snapshot` to `dir/commits.snapshot` atomically and durably.
pub(crate) fn write(dir: &Path, snapshot: &Snapshot) -> Result<(), StoreError> {
    let tmp = dir.join(SNAPSHOT_TMP);
    let path = dir.join(SNAPSHOT_FILE);
    let bytes = encode(snapshot);
    let written = File::create(&tmp).and_then(|mut f| {
        f.write_all(&bytes)?;
        f.sync_all()
    });
    written.map_err(StoreError::io_fn("write the snapshot", &tmp))?;
    std::fs::rename(&tmp, &path).map_err(StoreError::io_fn("rename the snapshot into", &path))?;
    sync_dir(dir)
}

/// Loads `dir/commits.snapshot`, if there is one.
pub(crate) fn load(dir: &Path) -> Result<Option<Snapshot>, StoreError> {
    let path = dir.join(SNAPSHOT_FILE);
    let bytes = match std::fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(StoreError::io("read the snapshot", path, e)),
    };
    decode(&bytes).map(Some).map_err(|e| StoreError::Corrupt {
        path,
        what: e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Snapshot {
        Snapshot {
            unix_ms: 7,
            next_seq: 42,
            segments: vec![SegState {
                seq: 41,
                committed: 4096,
                closed: true,
                created_ms: 1,
                last_write_ms: 2,
            }],
            ranges: vec![DedupeEntry {
                tenant: "t".into(),
                agent: "a".into(),
                range: SeqRange {
                    start: 1,
                    end: 99,
                    last_seen_ms: 5,
                },
            }],
        }
    }

    #[test]
    fn snapshots_round_trip_and_corruption_is_reported_with_the_path() {
        let tmp = tempfile::tempdir().unwrap();
        assert_eq!(load(tmp.path()).unwrap(), None);
        write(tmp.path(), &sample()).unwrap();
        assert_eq!(load(tmp.path()).unwrap(), Some(sample()));
        assert!(!tmp.path().join(SNAPSHOT_TMP).exists());

        let path = tmp.path().join(SNAPSHOT_FILE);
        let mut bytes = std::fs::read(&path).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        std::fs::write(&path, &bytes).unwrap();
        let err = load(tmp.path()).unwrap_err().to_string();
        assert!(
            err.contains("commits.snapshot") && err.contains("CRC"),
            "{err}"
        );
    }
}
