//! How chunks, batches and dead letters are laid out as sled values (little-endian headers).

use logops_common::batch::Encoding;

use crate::codec::{encoding_from_tag, encoding_tag};

/// A stored chunk: `appended_ms u64 | events u32 | raw_len u32 | zstd frame of the NDJSON`.
///
/// Chunks are compressed when appended: sled writes a tenth of the bytes, and a batch is the
/// concatenation of its chunks' frames (a valid zstd body), so nothing is compressed twice.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChunkRecord<'a> {
    /// When it was appended (Unix ms).
    pub appended_ms: u64,
    /// Number of events (= lines).
    pub events: u32,
    /// Size of the NDJSON before compression.
    pub raw_len: u32,
    /// One zstd frame holding the NDJSON lines.
    pub frame: &'a [u8],
}

impl<'a> ChunkRecord<'a> {
    /// Encodes a chunk value around an already compressed frame.
    pub fn encode(appended_ms: u64, events: u32, raw_len: u32, frame: &[u8]) -> Vec<u8> {
        let mut v = Vec::with_capacity(16 + frame.len());
        v.extend_from_slice(&appended_ms.to_le_bytes());
        v.extend_from_slice(&events.to_le_bytes());
        v.extend_from_slice(&raw_len.to_le_bytes());
        v.extend_from_slice(frame);
        v
    }

    /// Decodes a chunk value.
    pub fn decode(v: &'a [u8]) -> Option<Self> {
        Some(ChunkRecord {
            appended_ms: u64::from_le_bytes(v.get(..8)?.try_into().ok()?),
            events: u32::from_le_bytes(v.get(8..12)?.try_into().ok()?),
            raw_len: u32::from_le_bytes(v.get(12..16)?.try_into().ok()?),
            frame: v.get(16..)?,
        })
    }

    /// The NDJSON lines.
    pub fn data(&self) -> std::io::Result<Vec<u8>> {
        zstd::bulk::decompress(self.frame, self.raw_len as usize)
    }
}

/// A cut batch: `created_ms u64 | events u32 | encoding u8 | body` (the body exactly as sent).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchRecord {
    /// Its sequence number (the key).
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

impl BatchRecord {
    /// Encodes the value (the sequence number is the key).
    pub fn encode(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(13 + self.body.len());
        v.extend_from_slice(&self.created_ms.to_le_bytes());
        v.extend_from_slice(&self.events.to_le_bytes());
        v.push(encoding_tag(self.encoding));
        v.extend_from_slice(&self.body);
        v
    }

    /// Size of the encoded value.
    pub fn encoded_len(&self) -> usize {
        13 + self.body.len()
    }

    /// (created_ms, events) from a stored value, without copying the body.
    pub fn header(v: &[u8]) -> Option<(u64, u32)> {
        Some((
            u64::from_le_bytes(v.get(..8)?.try_into().ok()?),
            u32::from_le_bytes(v.get(8..12)?.try_into().ok()?),
        ))
    }

    /// Decodes a value stored under `seq`.
    pub fn decode(seq: u64, v: &[u8]) -> Option<Self> {
        Some(BatchRecord {
            seq,
            created_ms: u64::from_le_bytes(v.get(..8)?.try_into().ok()?),
            events: u32::from_le_bytes(v.get(8..12)?.try_into().ok()?),
            encoding: encoding_from_tag(*v.get(12)?)?,
            body: v.get(13..)?.to_vec(),
        })
    }
}

/// A batch the ingest refused for good: `failed_ms u64 | status u16 | reason_len u32 | reason
/// | batch value`.
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
    /// The stored batch value.
    #[serde(skip)]
    pub batch: Vec<u8>,
}

impl DeadLetter {
    /// Encodes a dead letter holding a stored batch value.
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
        let events = BatchRecord::decode(seq, &batch)?.events;
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
