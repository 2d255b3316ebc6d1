//! What the ingest hands the store: a batch's frames and its id.

use std::sync::Arc;

use logops_common::BatchId;

use crate::frame::Frame;
use crate::segment::valid_tenant;

/// One batch to store: its lines as frames (see [`Frame`]), in body order per kind.
#[derive(Debug, Clone)]
pub struct WriteBatch {
    /// The tenant, `[a-z0-9_-]{1,64}` (it names a directory; anything else is rejected).
    pub tenant: Arc<str>,
    /// The batch id; stored ids are remembered for at least `StoreOptions::dedupe_window`.
    pub id: BatchId,
    /// The lines, as frames of one kind each (a [`crate::FrameBuilder`] makes them).
    pub frames: Vec<Frame>,
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
    /// The bytes its frames take.
    pub fn compressed_len(&self) -> usize {
        self.frames.iter().map(|f| f.data.len()).sum()
    }

    /// The lines it holds.
    pub fn lines(&self) -> u64 {
        self.frames.iter().map(|f| f.ts.lines).sum()
    }

    /// Checks the contract the writer relies on: a valid tenant and agent id, and frames
    /// that are what they say as far as their headers show (see [`Frame`]).
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
        for (i, frame) in self.frames.iter().enumerate() {
            frame.check().map_err(|e| format!("frame {i}: {e}"))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::FrameBuilder;
    use logops_common::Kind;

    fn batch(tenant: &str, lines: &[&str]) -> WriteBatch {
        let mut b = FrameBuilder::new(1).unwrap();
        for line in lines {
            b.push_line(Kind::Log, line.as_bytes(), 0).unwrap();
        }
        WriteBatch {
            tenant: tenant.into(),
            id: BatchId::new("agent", 1),
            frames: b.finish().unwrap(),
        }
    }

    #[test]
    fn validation_catches_what_would_corrupt_a_segment() {
        let ok = batch("t1", &["ab", "cd"]);
        assert!(ok.validate().is_ok());
        assert_eq!((ok.lines(), ok.frames.len()), (2, 1));
        assert!(batch("../x", &["ab"])
            .validate()
            .unwrap_err()
            .contains("tenant"));
        let mut lying = batch("t1", &["ab", "cd"]);
        lying.frames[0].u_len += 1;
        assert!(lying.validate().unwrap_err().starts_with("frame 0: "));
        let mut cut = batch("t1", &["ab"]);
        let data = cut.frames[0].data.slice(..cut.frames[0].data.len() - 1);
        cut.frames[0].data = data;
        assert!(cut.validate().is_err());
    }
}
