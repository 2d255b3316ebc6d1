//! A chunk: events serialized as NDJSON, appended to the buffer as one value.
//!
//! Sources serialize each event as they make it, so a chunk holds bytes, not `Event`s; the
//! buffer stores one value per chunk (never one key per event).

use logops_common::event::Severity;
use logops_common::write::{write_log_line, write_log_line_at, LineHead};
use logops_common::{Event, Timestamp};

/// NDJSON lines of events read together, plus their count.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Chunk {
    data: Vec<u8>,
    events: u32,
}

impl Chunk {
    /// An empty chunk.
    pub fn new() -> Self {
        Chunk::default()
    }

    /// An empty chunk with room for `bytes`.
    pub fn with_capacity(bytes: usize) -> Self {
        Chunk {
            data: Vec::with_capacity(bytes),
            events: 0,
        }
    }

    /// Appends one event as a line.
    pub fn push(&mut self, event: &Event<'_>) {
        event.write_line(&mut self.data);
        self.events += 1;
    }

    /// Appends one log event with the fields of `head` but its own timestamp `ts`, the raw
    /// text of its attributes (a JSON object), its severity and body
    /// ([`write_log_line_at`]).
    pub fn push_log_at(
        &mut self,
        head: &LineHead,
        ts: Timestamp,
        attrs: &[u8],
        severity: Option<Severity>,
        body: &str,
    ) {
        write_log_line_at(&mut self.data, head, ts, Some(attrs), severity, body);
        self.events += 1;
    }

    /// Appends one log event made of a head shared with other events, the raw text of its
    /// attributes (a JSON object) and its body ([`write_log_line`]).
    pub fn push_log(&mut self, head: &LineHead, attrs: &str, body: &str) {
        write_log_line(&mut self.data, head, Some(attrs), None, body);
        self.events += 1;
    }

    /// Empties it, keeping its memory (a source reuses one chunk).
    pub fn clear(&mut self) {
        self.data.clear();
        self.events = 0;
    }

    /// Rebuilds a chunk from stored NDJSON and its event count.
    pub fn from_parts(data: Vec<u8>, events: u32) -> Self {
        Chunk { data, events }
    }

    /// The NDJSON bytes.
    pub fn data(&self) -> &[u8] {
        &self.data
    }

    /// Number of events.
    pub fn events(&self) -> u32 {
        self.events
    }

    /// Size in bytes.
    pub fn len(&self) -> usize {
        self.data.len()
    }

    /// Whether it holds no events.
    pub fn is_empty(&self) -> bool {
        self.events == 0
    }
}
