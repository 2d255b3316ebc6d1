//! `commits.log`: the append-only log of group commits.
//!
//! Record framing: `u32 payload length | u32 CRC-32 of the payload | payload`, little endian.
//! Payload, first byte the record type:
//! - `1` group: `u64 unix ms | u32 n | n × (str tenant, str agent, u64 seq) | u32 m |
//!   m × (u64 segment seq, u64 committed length)`
//! - `2` close: `u64 unix ms | u64 segment seq` (the segment was rotated)
//!
//! Strings are `u32 length | UTF-8`. At open the log is read up to the first record that is
//! incomplete or fails its CRC; that torn tail is cut off.

use std::fs::{File, OpenOptions};
use std::io::Read;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use tracing::{error, warn};

use crate::codec::{Dec, DecodeError, Put};
use crate::error::StoreError;
use crate::fsutil::datasync;
use crate::options::FsyncObserver;

/// The commit log's file name in the store directory.
pub(crate) const LOG_FILE: &str = "commits.log";

const GROUP: u8 = 1;
const CLOSE: u8 = 2;
const HEADER: usize = 8;

/// A stored batch id as the log records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct LoggedId {
    /// The tenant.
    pub(crate) tenant: String,
    /// The agent id.
    pub(crate) agent: String,
    /// The batch sequence number.
    pub(crate) seq: u64,
}

/// One record of the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Record {
    /// A group commit: the ids it stored and the new committed length of each segment it
    /// wrote to.
    Group {
        /// When it was committed (Unix ms).
        unix_ms: u64,
        /// The batch ids it stored.
        ids: Vec<LoggedId>,
        /// (segment seq, committed length) per segment written.
        segments: Vec<(u64, u64)>,
    },
    /// A segment was closed by rotation.
    Close {
        /// When (Unix ms).
        unix_ms: u64,
        /// The segment's seq.
        segment: u64,
    },
}

fn frame(payload: Vec<u8>) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER + payload.len());
    out.put_u32(payload.len() as u32);
    out.put_u32(crc32fast::hash(&payload));
    out.extend_from_slice(&payload);
    out
}

/// The framed bytes of a group record.
pub(crate) fn encode_group<'a>(
    unix_ms: u64,
    ids: impl ExactSizeIterator<Item = (&'a str, &'a str, u64)>,
    segments: &[(u64, u64)],
) -> Vec<u8> {
    let mut p = Vec::with_capacity(32 + ids.len() * 48 + segments.len() * 16);
    p.put_u8(GROUP);
    p.put_u64(unix_ms);
    p.put_u32(ids.len() as u32);
    for (tenant, agent, seq) in ids {
        p.put_str(tenant);
        p.put_str(agent);
        p.put_u64(seq);
    }
    p.put_u32(segments.len() as u32);
    for &(seq, len) in segments {
        p.put_u64(seq);
        p.put_u64(len);
    }
    frame(p)
}

/// The framed bytes of a close record.
pub(crate) fn encode_close(unix_ms: u64, segment: u64) -> Vec<u8> {
    let mut p = Vec::with_capacity(17);
    p.put_u8(CLOSE);
    p.put_u64(unix_ms);
    p.put_u64(segment);
    frame(p)
}

fn decode_payload(payload: &[u8]) -> Result<Record, DecodeError> {
    let mut d = Dec::new(payload);
    let record = match d.u8()? {
        GROUP => {
            let unix_ms = d.u64()?;
            let n = d.count(16)?;
            let mut ids = Vec::with_capacity(n);
            for _ in 0..n {
                ids.push(LoggedId {
                    tenant: d.str()?.to_string(),
                    agent: d.str()?.to_string(),
                    seq: d.u64()?,
                });
            }
            let m = d.count(16)?;
            let mut segments = Vec::with_capacity(m);
            for _ in 0..m {
                segments.push((d.u64()?, d.u64()?));
            }
            Record::Group {
                unix_ms,
                ids,
                segments,
            }
        }
        CLOSE => Record::Close {
            unix_ms: d.u64()?,
            segment: d.u64()?,
        },
        other => return Err(d.error(format!("unknown record type {other}"))),
    };
    if d.remaining() != 0 {
        return Err(d.error("trailing bytes in a record"));
    }
    Ok(record)
}

/// Decodes the valid prefix of a log: its records, the length they take, and why decoding
/// stopped before the end (if it did).
pub(crate) fn decode_all(buf: &[u8]) -> (Vec<Record>, usize, Option<String>) {
    let mut records = Vec::new();
    let mut pos = 0;
    while pos < buf.len() {
        let rest = &buf[pos..];
        if rest.len() < HEADER {
            return (records, pos, Some("an incomplete record header".into()));
        }
        let len = u32::from_le_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
        let crc = u32::from_le_bytes([rest[4], rest[5], rest[6], rest[7]]);
        if rest.len() - HEADER < len {
            return (
                records,
                pos,
                Some(format!("an incomplete {len}-byte record")),
            );
        }
        let payload = &rest[HEADER..HEADER + len];
        if crc32fast::hash(payload) != crc {
            return (records, pos, Some("a record with a bad CRC".into()));
        }
        match decode_payload(payload) {
            Ok(r) => records.push(r),
            Err(e) => return (records, pos, Some(format!("an undecodable record: {e}"))),
        }
        pos += HEADER + len;
    }
    (records, pos, None)
}

/// The open commit log (owned by the writer thread).
pub(crate) struct CommitLog {
    path: PathBuf,
    file: File,
    len: u64,
}

impl CommitLog {
    /// Opens (or creates) `dir/commits.log`, returns its records and cuts a torn tail.
    pub(crate) fn open(dir: &Path) -> Result<(CommitLog, Vec<Record>), StoreError> {
        let path = dir.join(LOG_FILE);
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(StoreError::io_fn("open the commit log", &path))?;
        let mut buf = Vec::new();
        file.read_to_end(&mut buf)
            .map_err(StoreError::io_fn("read the commit log", &path))?;
        let (records, valid, why) = decode_all(&buf);
        if let Some(why) = why {
            warn!(
                path = %path.display(),
                valid_bytes = valid,
                cut_bytes = buf.len() - valid,
                "the commit log ends in {why}; cutting it there (a write was interrupted)"
            );
            file.set_len(valid as u64)
                .map_err(StoreError::io_fn("truncate the commit log", &path))?;
            datasync(&file, &path, None)?;
        }
        Ok((
            CommitLog {
                path,
                file,
                len: valid as u64,
            },
            records,
        ))
    }

    /// Appends a framed record and fdatasyncs the log. On failure the log is cut back to its
    /// previous length, so a failed record never precedes later ones.
    pub(crate) fn append(
        &mut self,
        record: &[u8],
        observer: Option<&FsyncObserver>,
    ) -> Result<(), StoreError> {
        let written = self
            .file
            .write_all_at(record, self.len)
            .map_err(StoreError::io_fn("append to the commit log", &self.path))
            .and_then(|()| datasync(&self.file, &self.path, observer));
        if let Err(e) = written {
            if let Err(cut) = self.file.set_len(self.len) {
                error!(path = %self.path.display(), error = %cut, "cannot cut a failed record off the commit log");
            }
            return Err(e);
        }
        self.len += record.len() as u64;
        Ok(())
    }

    /// The log's length in bytes.
    pub(crate) fn size(&self) -> u64 {
        self.len
    }

    /// Empties the log (after its content went into a snapshot).
    pub(crate) fn clear(&mut self) -> Result<(), StoreError> {
        self.file
            .set_len(0)
            .map_err(StoreError::io_fn("truncate the commit log", &self.path))?;
        datasync(&self.file, &self.path, None)?;
        self.len = 0;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn group(ms: u64, seq: u64) -> Vec<u8> {
        encode_group(ms, [("t1", "agent-1", seq)].into_iter(), &[(3, 100 * seq)])
    }

    #[test]
    fn records_round_trip() {
        let mut buf = group(10, 1);
        buf.extend(encode_close(11, 3));
        let (records, valid, why) = decode_all(&buf);
        assert_eq!((valid, why), (buf.len(), None));
        assert_eq!(
            records,
            vec![
                Record::Group {
                    unix_ms: 10,
                    ids: vec![LoggedId {
                        tenant: "t1".into(),
                        agent: "agent-1".into(),
                        seq: 1
                    }],
                    segments: vec![(3, 100)],
                },
                Record::Close {
                    unix_ms: 11,
                    segment: 3
                },
            ]
        );
    }

    #[test]
    fn torn_and_corrupt_tails_are_cut_at_open_and_appends_continue_after_them() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join(LOG_FILE);
        let first = group(1, 1);
        let second = group(2, 2);
        let mut content = first.clone();
        content.extend_from_slice(&second[..second.len() - 3]);
        std::fs::write(&path, &content).unwrap();

        let (mut log, records) = CommitLog::open(tmp.path()).unwrap();
        assert_eq!(records.len(), 1);
        assert_eq!(std::fs::metadata(&path).unwrap().len(), first.len() as u64);
        log.append(&second, None).unwrap();
        drop(log);

        // A flipped bit in the last record: the CRC catches it.
        let mut content = std::fs::read(&path).unwrap();
        let last = content.len() - 1;
        content[last] ^= 0x40;
        std::fs::write(&path, &content).unwrap();
        let (log, records) = CommitLog::open(tmp.path()).unwrap();
        assert_eq!(records.len(), 1);
        assert_eq!(log.size(), first.len() as u64);
    }
}
