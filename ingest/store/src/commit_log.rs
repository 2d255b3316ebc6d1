//! `commits.log`: the append-only log of group commits.
//!
//! Record framing: `u32 payload length | u32 CRC-32 of the payload | payload`, little endian.
//! Payload, first byte the record type:
//! - `1` group: `u64 unix ms | u32 n | n × (str tenant, str agent, u64 seq) | u32 m |
//!   m × (u64 segment seq, u64 committed length)`
//! - `2` close: `u64 unix ms | u64 segment seq` (the segment was rotated)
//! - `3` checked group: as `1`, but each segment entry is `u64 segment seq, u64 committed
//!   length, u64 start, u32 CRC-32 of the bytes start..committed length`. The writer
//!   fdatasyncs such a record *at the same time* as the segment bytes it covers, so after a
//!   crash the last record may be on disk without them: recovery checks the CRCs of the
//!   last record and drops it if they do not match (no batch of it was acknowledged). Every
//!   earlier record was complete before the next group was written.
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
const CHECKED_GROUP: u8 = 3;
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
        /// Per segment, where the group's bytes start and their CRC-32 (checked records).
        checks: Option<Vec<(u64, u32)>>,
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

/// The framed bytes of a group record: checked (type 3) if `checks` has the start and CRC
/// of each segment's new bytes.
pub(crate) fn encode_group<'a>(
    unix_ms: u64,
    ids: impl ExactSizeIterator<Item = (&'a str, &'a str, u64)>,
    segments: &[(u64, u64)],
    checks: Option<&[(u64, u32)]>,
) -> Vec<u8> {
    let mut p = Vec::with_capacity(32 + ids.len() * 48 + segments.len() * 28);
    p.put_u8(if checks.is_some() {
        CHECKED_GROUP
    } else {
        GROUP
    });
    p.put_u64(unix_ms);
    p.put_u32(ids.len() as u32);
    for (tenant, agent, seq) in ids {
        p.put_str(tenant);
        p.put_str(agent);
        p.put_u64(seq);
    }
    p.put_u32(segments.len() as u32);
    for (i, &(seq, len)) in segments.iter().enumerate() {
        p.put_u64(seq);
        p.put_u64(len);
        if let Some(checks) = checks {
            let (start, crc) = checks[i];
            p.put_u64(start);
            p.put_u32(crc);
        }
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
        kind @ (GROUP | CHECKED_GROUP) => {
            let checked = kind == CHECKED_GROUP;
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
            let m = d.count(if checked { 28 } else { 16 })?;
            let mut segments = Vec::with_capacity(m);
            let mut checks = checked.then(|| Vec::with_capacity(m));
            for _ in 0..m {
                segments.push((d.u64()?, d.u64()?));
                if let Some(checks) = &mut checks {
                    checks.push((d.u64()?, d.u32()?));
                }
            }
            Record::Group {
                unix_ms,
                ids,
                segments,
                checks,
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

/// Where the last record of a valid log starts (its length if it has none).
fn last_record_start(valid: &[u8]) -> u64 {
    let mut pos = 0;
    let mut last = 0;
    while pos + HEADER <= valid.len() {
        let len = u32::from_le_bytes([valid[pos], valid[pos + 1], valid[pos + 2], valid[pos + 3]]);
        last = pos;
        pos += HEADER + len as usize;
    }
    if pos == 0 {
        valid.len() as u64
    } else {
        last as u64
    }
}

/// The open commit log (owned by the writer thread).
pub(crate) struct CommitLog {
    path: PathBuf,
    file: File,
    len: u64,
    /// Where the last record starts (its length when there is none).
    last_start: u64,
    /// A thread that fdatasyncs the log while the writer fdatasyncs segments.
    syncer: Option<Syncer>,
}

/// A thread with its own handle on the log that fdatasyncs it on request.
struct Syncer {
    requests: std::sync::mpsc::SyncSender<Option<FsyncObserver>>,
    done: std::sync::mpsc::Receiver<Result<(), StoreError>>,
}

impl Syncer {
    fn start(file: &File, path: &Path) -> std::io::Result<Syncer> {
        let file = file.try_clone()?;
        let path = path.to_path_buf();
        let (requests, work) = std::sync::mpsc::sync_channel::<Option<FsyncObserver>>(1);
        let (report, done) = std::sync::mpsc::sync_channel(1);
        std::thread::Builder::new()
            .name("logops-store-logsync".into())
            .spawn(move || {
                while let Ok(observer) = work.recv() {
                    if report
                        .send(datasync(&file, &path, observer.as_ref()))
                        .is_err()
                    {
                        break;
                    }
                }
            })?;
        Ok(Syncer { requests, done })
    }
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
        let last_start = last_record_start(&buf[..valid]);
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
                last_start,
                syncer: None,
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
        self.last_start = self.len;
        self.len += record.len() as u64;
        Ok(())
    }

    /// Appends a framed (checked group) record and fdatasyncs the log while `meanwhile`
    /// runs on this thread (it fdatasyncs the segments the record covers); succeeds only if
    /// both do. On failure the log is cut back to its previous length.
    pub(crate) fn append_while(
        &mut self,
        record: &[u8],
        observer: Option<&FsyncObserver>,
        meanwhile: impl FnOnce() -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        if self.syncer.is_none() {
            match Syncer::start(&self.file, &self.path) {
                Ok(s) => self.syncer = Some(s),
                Err(e) => {
                    warn!(error = %e, "cannot start the commit log's sync thread; syncing in turn");
                    meanwhile()?;
                    return self.append(record, observer);
                }
            }
        }
        let written = self
            .file
            .write_all_at(record, self.len)
            .map_err(StoreError::io_fn("append to the commit log", &self.path));
        let result = written.and_then(|()| {
            let syncer = self.syncer.as_ref().expect("started above");
            let asked = syncer.requests.send(observer.cloned()).is_ok();
            let segments = meanwhile();
            let log = if asked {
                syncer.done.recv().unwrap_or_else(|_| {
                    Err(StoreError::io(
                        "fdatasync",
                        &self.path,
                        std::io::Error::other("the commit log's sync thread stopped"),
                    ))
                })
            } else {
                datasync(&self.file, &self.path, observer)
            };
            segments.and(log)
        });
        if let Err(e) = result {
            if let Err(cut) = self.file.set_len(self.len) {
                error!(path = %self.path.display(), error = %cut, "cannot cut a failed record off the commit log");
            }
            // Every request got its answer; a thread that stopped is started again next time.
            if self.syncer.as_ref().is_some_and(|s| {
                matches!(
                    s.done.try_recv(),
                    Err(std::sync::mpsc::TryRecvError::Disconnected)
                )
            }) {
                self.syncer = None;
            }
            return Err(e);
        }
        self.last_start = self.len;
        self.len += record.len() as u64;
        Ok(())
    }

    /// Cuts the last record off (at open, when the segment bytes it covers are not on disk).
    pub(crate) fn cut_last(&mut self) -> Result<(), StoreError> {
        self.file
            .set_len(self.last_start)
            .map_err(StoreError::io_fn("truncate the commit log", &self.path))?;
        datasync(&self.file, &self.path, None)?;
        self.len = self.last_start;
        let valid = self.len;
        let mut buf = vec![0u8; valid as usize];
        self.file
            .read_exact_at(&mut buf, 0)
            .map_err(StoreError::io_fn("read the commit log", &self.path))?;
        self.last_start = last_record_start(&buf);
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
        self.last_start = 0;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn group(ms: u64, seq: u64) -> Vec<u8> {
        encode_group(
            ms,
            [("t1", "agent-1", seq)].into_iter(),
            &[(3, 100 * seq)],
            None,
        )
    }

    #[test]
    fn records_round_trip() {
        let mut buf = group(10, 1);
        buf.extend(encode_close(11, 3));
        let (records, valid, why) = decode_all(&buf);
        assert_eq!((valid, why), (buf.len(), None));
        assert_eq!(last_record_start(&buf), group(10, 1).len() as u64);
        assert_eq!(last_record_start(&[]), 0);
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
                    checks: None,
                },
                Record::Close {
                    unix_ms: 11,
                    segment: 3
                },
            ]
        );
    }

    #[test]
    fn checked_records_round_trip_and_the_last_can_be_cut() {
        let tmp = tempfile::tempdir().unwrap();
        let checked = encode_group(
            5,
            [("t1", "a", 9)].into_iter(),
            &[(3, 200), (4, 50)],
            Some(&[(100, 0xdead_beef), (0, 7)]),
        );
        let (records, _, why) = decode_all(&checked);
        assert_eq!(why, None);
        assert!(matches!(
            &records[0],
            Record::Group { segments, checks: Some(c), .. }
                if segments == &[(3, 200), (4, 50)] && c == &[(100, 0xdead_beef), (0, 7)]
        ));

        let (mut log, _) = CommitLog::open(tmp.path()).unwrap();
        log.append(&group(1, 1), None).unwrap();
        log.append_while(&checked, None, || Ok(())).unwrap();
        // A failing segment sync fails the append and leaves the log as it was.
        let before = log.size();
        let failed = log.append_while(&group(2, 2), None, || {
            Err(StoreError::io(
                "fdatasync",
                tmp.path(),
                std::io::Error::other("planted"),
            ))
        });
        assert!(failed.is_err());
        assert_eq!(log.size(), before);
        drop(log);
        let (mut log, records) = CommitLog::open(tmp.path()).unwrap();
        assert_eq!(records.len(), 2);
        log.cut_last().unwrap();
        assert_eq!(log.size(), group(1, 1).len() as u64);
        log.cut_last().unwrap();
        assert_eq!(log.size(), 0);
        drop(log);
        let (_, records) = CommitLog::open(tmp.path()).unwrap();
        assert!(records.is_empty());
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
