//! How chunks, batches and dead letters are laid out as sled values (little-endian headers).

use logops_common::batch::Encoding;

use crate::codec::{encoding_from_tag, encoding_tag};

/// A stored chunk: `appended_ms u64 | events u32 | raw_len u32 | [checkpoints] | zstd frame
/// of the NDJSON`.
///
/// Chunks are compressed when appended: sled writes a tenth of the bytes, and a batch is the
/// concatenation of its chunks' frames (a valid zstd body), so nothing is compressed twice.
///
/// The positions of the sources that read the events travel in the chunk (bit 31 of
/// `events` says they are there: `count u32 | (key_len u32 | key | value_len u32 | value)*`,
/// `value_len` `u32::MAX` for a position forgotten): one sled insert is atomic by itself, so
/// an append needs no sled transaction (sled rolls its write buffer twice for each one,
/// measured at three times the CPU of a plain insert). A chunk may hold positions and no
/// events. Chunks written before positions moved into them have the bit clear.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChunkRecord<'a> {
    /// When it was appended (Unix ms).
    pub appended_ms: u64,
    /// Number of events (= lines).
    pub events: u32,
    /// Size of the NDJSON before compression.
    pub raw_len: u32,
    /// The sources' new positions (key → position; `None` forgets it), in order.
    pub checkpoints: Vec<(&'a [u8], Option<&'a [u8]>)>,
    /// One zstd frame holding the NDJSON lines (empty when there are no events).
    pub frame: &'a [u8],
}

/// Bit of the `events` field that says positions follow the header.
const HAS_CHECKPOINTS: u32 = 1 << 31;
/// `value_len` of a position that is forgotten.
const FORGOTTEN: u32 = u32::MAX;

impl<'a> ChunkRecord<'a> {
    /// Encodes a chunk value around an already compressed frame, with the sources' new
    /// positions.
    pub fn encode(
        appended_ms: u64,
        events: u32,
        raw_len: u32,
        checkpoints: &[(String, Option<Vec<u8>>)],
        frame: &[u8],
    ) -> Vec<u8> {
        assert!(
            events < HAS_CHECKPOINTS,
            "a chunk holds fewer than 2^31 events"
        );
        let cp_len: usize = checkpoints
            .iter()
            .map(|(k, v)| 8 + k.len() + v.as_ref().map_or(0, Vec::len))
            .sum();
        let mut v = Vec::with_capacity(20 + cp_len + frame.len());
        v.extend_from_slice(&appended_ms.to_le_bytes());
        let flag = if checkpoints.is_empty() {
            0
        } else {
            HAS_CHECKPOINTS
        };
        v.extend_from_slice(&(events | flag).to_le_bytes());
        v.extend_from_slice(&raw_len.to_le_bytes());
        if !checkpoints.is_empty() {
            v.extend_from_slice(&(checkpoints.len() as u32).to_le_bytes());
            for (k, val) in checkpoints {
                v.extend_from_slice(&(k.len() as u32).to_le_bytes());
                v.extend_from_slice(k.as_bytes());
                match val {
                    Some(val) => {
                        v.extend_from_slice(&(val.len() as u32).to_le_bytes());
                        v.extend_from_slice(val);
                    }
                    None => v.extend_from_slice(&FORGOTTEN.to_le_bytes()),
                }
            }
        }
        v.extend_from_slice(frame);
        v
    }

    /// Decodes a chunk value.
    pub fn decode(v: &'a [u8]) -> Option<Self> {
        let u32_at = |at: usize| -> Option<u32> {
            Some(u32::from_le_bytes(v.get(at..at + 4)?.try_into().ok()?))
        };
        let events = u32_at(8)?;
        let mut rec = ChunkRecord {
            appended_ms: u64::from_le_bytes(v.get(..8)?.try_into().ok()?),
            events: events & !HAS_CHECKPOINTS,
            raw_len: u32_at(12)?,
            checkpoints: Vec::new(),
            frame: &[],
        };
        let mut at = 16;
        if events & HAS_CHECKPOINTS != 0 {
            let count = u32_at(at)?;
            at += 4;
            for _ in 0..count {
                let klen = u32_at(at)? as usize;
                let key = v.get(at + 4..at + 4 + klen)?;
                at += 4 + klen;
                let vlen = u32_at(at)?;
                at += 4;
                let value = if vlen == FORGOTTEN {
                    None
                } else {
                    let val = v.get(at..at + vlen as usize)?;
                    at += vlen as usize;
                    Some(val)
                };
                rec.checkpoints.push((key, value));
            }
        }
        rec.frame = v.get(at..)?;
        Some(rec)
    }

    /// The NDJSON lines.
    pub fn data(&self) -> std::io::Result<Vec<u8>> {
        if self.frame.is_empty() && self.events == 0 {
            return Ok(Vec::new());
        }
        zstd::bulk::decompress(self.frame, self.raw_len as usize)
    }
}

/// Where a cut batch stands in the send queue (its sled key): the order batches are sent in,
/// which is the order their events were read.
///
/// A batch cut from the chunks stands at its own sequence number (8 bytes, big-endian).
/// When the ingest finds a batch too large (413), its two halves take its place: their
/// positions are the parent's plus one byte, 0 for the first half and 1 for the second, so
/// they sort after everything before the parent and before everything after it, however
/// often they are split again. (Their sequence numbers are new: see `Buffer::split`.)
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct BatchPos(Vec<u8>);

impl BatchPos {
    /// The position of a batch cut (or replayed) under `seq`.
    pub fn of_seq(seq: u64) -> BatchPos {
        BatchPos(seq.to_be_bytes().to_vec())
    }

    /// The position of half `which` (0 or 1) of the batch at `self`.
    pub fn half(&self, which: u8) -> BatchPos {
        let mut v = Vec::with_capacity(self.0.len() + 1);
        v.extend_from_slice(&self.0);
        v.push(which);
        BatchPos(v)
    }

    /// A stored key (at least the 8 bytes of a sequence number).
    pub fn from_key(k: &[u8]) -> Option<BatchPos> {
        (k.len() >= 8).then(|| BatchPos(k.to_vec()))
    }

    /// The sled key.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

impl std::fmt::Display for BatchPos {
    /// `<seq>` or `<seq>/0/1` (the halves of halves).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (seq, path) = self.0.split_at(8);
        write!(
            f,
            "{}",
            u64::from_be_bytes(seq.try_into().expect("8 bytes"))
        )?;
        for b in path {
            write!(f, "/{b}")?;
        }
        Ok(())
    }
}

/// A cut batch. Stored in the send queue under its [`BatchPos`] as
/// `seq u64 | created_ms u64 | events u32 | encoding u8 | body` (the body exactly as sent);
/// in a dead letter (keyed by its sequence number) without the leading `seq`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchRecord {
    /// Its place in the send queue.
    pub pos: BatchPos,
    /// Its sequence number: the id it is sent under, `<agent>:<seq>`.
    pub seq: u64,
    /// When its oldest chunk was appended (Unix ms).
    pub created_ms: u64,
    /// Number of events.
    pub events: u32,
    /// How the body is compressed.
    pub encoding: Encoding,
    /// The body, compressed, exactly as sent on every try.
    pub body: Vec<u8>,
}

/// Bytes of a queued value before the body.
const QUEUED_HEADER: usize = 21;

impl BatchRecord {
    /// Encodes the queue value.
    pub fn encode(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(QUEUED_HEADER + self.body.len());
        v.extend_from_slice(&self.seq.to_le_bytes());
        v.extend_from_slice(&self.created_ms.to_le_bytes());
        v.extend_from_slice(&self.events.to_le_bytes());
        v.push(encoding_tag(self.encoding));
        v.extend_from_slice(&self.body);
        v
    }

    /// Size of the encoded queue value.
    pub fn encoded_len(&self) -> usize {
        QUEUED_HEADER + self.body.len()
    }

    /// (seq, created_ms, events) from a queue value, without copying the body.
    pub fn header(v: &[u8]) -> Option<(u64, u64, u32)> {
        Some((
            u64::from_le_bytes(v.get(..8)?.try_into().ok()?),
            u64::from_le_bytes(v.get(8..16)?.try_into().ok()?),
            u32::from_le_bytes(v.get(16..20)?.try_into().ok()?),
        ))
    }

    /// Decodes a queue value stored at `pos`.
    pub fn decode(pos: BatchPos, v: &[u8]) -> Option<Self> {
        let seq = u64::from_le_bytes(v.get(..8)?.try_into().ok()?);
        Self::decode_keyed(pos, seq, v.get(8..)?)
    }

    /// Decodes a value without the leading `seq` (dead letters, and the batches of buffers
    /// written before the send queue existed), which is `seq`'s.
    pub fn decode_keyed(pos: BatchPos, seq: u64, v: &[u8]) -> Option<Self> {
        Some(BatchRecord {
            pos,
            seq,
            created_ms: u64::from_le_bytes(v.get(..8)?.try_into().ok()?),
            events: u32::from_le_bytes(v.get(8..12)?.try_into().ok()?),
            encoding: encoding_from_tag(*v.get(12)?)?,
            body: v.get(13..)?.to_vec(),
        })
    }

    /// A queue value without its leading `seq`: what a dead letter holds.
    pub fn keyed_part(queued: &[u8]) -> &[u8] {
        queued.get(8..).unwrap_or_default()
    }

    /// The queue value of a value without its leading `seq`.
    pub fn queued_from_keyed(seq: u64, keyed: &[u8]) -> Vec<u8> {
        let mut v = Vec::with_capacity(8 + keyed.len());
        v.extend_from_slice(&seq.to_le_bytes());
        v.extend_from_slice(keyed);
        v
    }
}

/// A batch the ingest refused for good, keyed by its sequence number: `failed_ms u64 |
/// status u16 | reason_len u32 | reason | batch value without its seq`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct DeadLetter {
    /// The batch's sequence number.
    pub seq: u64,
    /// When it was refused (Unix ms).
    pub failed_ms: u64,
    /// The HTTP status of the refusal.
    pub status: u16,
    /// The ingest's answer (what was wrong).
    pub reason: String,
    /// Number of events in it.
    pub events: u32,
    /// The stored batch value (without its seq).
    #[serde(skip)]
    pub batch: Vec<u8>,
}

impl DeadLetter {
    /// Encodes a dead letter holding a batch value without its seq.
    pub fn encode(failed_ms: u64, status: u16, reason: &str, batch: &[u8]) -> Vec<u8> {
        let mut v = Vec::with_capacity(14 + reason.len() + batch.len());
        v.extend_from_slice(&failed_ms.to_le_bytes());
        v.extend_from_slice(&status.to_le_bytes());
        v.extend_from_slice(&(reason.len() as u32).to_le_bytes());
        v.extend_from_slice(reason.as_bytes());
        v.extend_from_slice(batch);
        v
    }

    /// Decodes a dead letter stored under `seq`.
    pub fn decode(seq: u64, v: &[u8]) -> Option<Self> {
        let failed_ms = u64::from_le_bytes(v.get(..8)?.try_into().ok()?);
        let status = u16::from_le_bytes(v.get(8..10)?.try_into().ok()?);
        let len = u32::from_le_bytes(v.get(10..14)?.try_into().ok()?) as usize;
        let reason = String::from_utf8_lossy(v.get(14..14 + len)?).into_owned();
        let batch = v.get(14 + len..)?.to_vec();
        let events = BatchRecord::decode_keyed(BatchPos::of_seq(seq), seq, &batch)?.events;
        Some(DeadLetter {
            seq,
            failed_ms,
            status,
            reason,
            events,
            batch,
        })
    }
}
