//! What the ingest hands the store: a batch of NDJSON lines and its id.

use std::sync::Arc;

use logops_common::{BatchId, Kind};

use crate::segment::valid_tenant;

/// One batch to store: the decompressed NDJSON body and where each event's line is in it.
#[derive(Debug, Clone)]
pub struct WriteBatch {
    /// The tenant, `[a-z0-9_-]{1,64}` (it names a directory; anything else is rejected).
    pub tenant: Arc<str>,
    /// The batch id; stored ids are remembered for at least `StoreOptions::dedupe_window`.
    pub id: BatchId,
    /// The decompressed NDJSON body.
    pub data: Vec<u8>,
    /// One entry per event, in body order.
    pub lines: Vec<LineInfo>,
}

/// One event's line in [`WriteBatch::data`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LineInfo {
    /// The event's kind: it selects the segment the line goes to.
    pub kind: Kind,
    /// The event's timestamp, nanoseconds since the Unix epoch (for time pruning).
    pub ts: i64,
    /// The first byte of the line in `data`.
    pub start: u32,
    /// One past the last byte of the line in `data`, excluding the `\n`.
    pub end: u32,
}

/// What became of a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteOutcome {
    /// Its lines and its commit record are on disk (fdatasync'd).
    Stored,
    /// Its id was already stored; nothing was written.
    Duplicate,
}

/// The longest agent id the store accepts (the wire format allows 128 bytes).
const MAX_AGENT_LEN: usize = 1024;

impl WriteBatch {
    /// Checks the contract the writer relies on: a valid tenant and agent id, and lines that
    /// are non-empty byte ranges of `data` without a `\n` inside.
    pub(crate) fn validate(&self) -> Result<(), String> {
        if !valid_tenant(&self.tenant) {
            return Err(format!(
                "the tenant `{}` is not 1 to 64 characters of [a-z0-9_-]",
                self.tenant
            ));
        }
        if self.id.agent.is_empty() || self.id.agent.len() > MAX_AGENT_LEN {
            return Err(format!(
                "the agent id is {} bytes long; 1 to {MAX_AGENT_LEN} are accepted",
                self.id.agent.len()
            ));
        }
        for (i, line) in self.lines.iter().enumerate() {
            let (start, end) = (line.start as usize, line.end as usize);
            if start >= end || end > self.data.len() {
                return Err(format!(
                    "line {i} has the byte range {start}..{end}, which is empty or outside the {}-byte body",
                    self.data.len()
                ));
            }
            if memchr::memchr(b'\n', &self.data[start..end]).is_some() {
                return Err(format!("line {i} ({start}..{end}) contains a newline"));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch(tenant: &str, data: &[u8], lines: &[(u32, u32)]) -> WriteBatch {
        WriteBatch {
            tenant: tenant.into(),
            id: BatchId::new("agent", 1),
            data: data.to_vec(),
            lines: lines
                .iter()
                .map(|&(start, end)| LineInfo {
                    kind: Kind::Log,
                    ts: 0,
                    start,
                    end,
                })
                .collect(),
        }
    }

    #[test]
    fn validation_catches_what_would_corrupt_a_segment() {
        assert!(batch("t1", b"ab\ncd\n", &[(0, 2), (3, 5)])
            .validate()
            .is_ok());
        assert!(batch("../x", b"ab", &[(0, 2)])
            .validate()
            .unwrap_err()
            .contains("tenant"));
        assert!(batch("t1", b"ab\ncd", &[(0, 5)])
            .validate()
            .unwrap_err()
            .contains("newline"));
        assert!(batch("t1", b"ab", &[(0, 3)])
            .validate()
            .unwrap_err()
            .contains("outside"));
        assert!(batch("t1", b"ab", &[(1, 1)])
            .validate()
            .unwrap_err()
            .contains("empty"));
    }
}
