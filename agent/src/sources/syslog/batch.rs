//! Messages parsed into a chunk until it is emitted, with the counts the self-metrics need.

use crate::chunk::Chunk;
use crate::metrics::{AgentMetrics, TransportLabels, TransportReasonLabels};
use prometheus_client::metrics::counter::Counter;

use super::parse::{Origin, Parser};

/// A chunk is emitted at this many events ...
pub const CHUNK_EVENTS: u32 = 2_000;
/// ... or this many bytes (or when the socket has nothing more to read).
pub const CHUNK_BYTES: usize = 512 * 1024;

/// A transport's counters, looked up once (not per message).
#[derive(Clone)]
pub struct TransportCounters {
    received: Counter,
    parsed: Counter,
    parse_errors: Counter,
    truncated: Counter,
    invalid_utf8: Counter,
    dropped_full: Counter,
    dropped_shutdown: Counter,
    dropped_kernel: Counter,
}

impl TransportCounters {
    /// The counters of `transport` (`udp`, `tcp`, `tls`, `unix`).
    pub fn new(m: &AgentMetrics, transport: &str) -> Self {
        let t = TransportLabels {
            transport: transport.to_owned(),
        };
        let dropped = |reason: &str| {
            m.syslog_dropped
                .get_or_create(&TransportReasonLabels {
                    transport: transport.to_owned(),
                    reason: reason.to_owned(),
                })
                .clone()
        };
        TransportCounters {
            received: m.syslog_received.get_or_create(&t).clone(),
            parsed: m.syslog_parsed.get_or_create(&t).clone(),
            parse_errors: m.syslog_parse_errors.get_or_create(&t).clone(),
            truncated: m.syslog_truncated.get_or_create(&t).clone(),
            invalid_utf8: m.syslog_invalid_utf8.get_or_create(&t).clone(),
            dropped_full: dropped("buffer_full"),
            dropped_shutdown: dropped("shutdown"),
            dropped_kernel: dropped("kernel"),
        }
    }
}

impl TransportCounters {
    /// Counts messages lost because the buffer was full (or failed).
    pub fn dropped_full(&self, events: u32) {
        self.dropped_full.inc_by(u64::from(events));
    }

    /// Counts messages lost because the agent stopped before they could be appended.
    pub fn dropped_at_shutdown(&self, events: u32) {
        self.dropped_shutdown.inc_by(u64::from(events));
    }
}

/// Counts of one batch, added to the counters when it is done with.
#[derive(Debug, Clone, Copy, Default)]
struct Tally {
    received: u64,
    parse_errors: u64,
    truncated: u64,
    invalid_utf8: u64,
}

/// Events of one connection or socket waiting to be emitted.
pub struct Batch {
    parser: Parser,
    chunk: Chunk,
    tally: Tally,
    counters: TransportCounters,
}

impl Batch {
    /// An empty batch.
    pub fn new(parser: Parser, counters: TransportCounters) -> Self {
        Batch {
            parser,
            chunk: Chunk::with_capacity(CHUNK_BYTES + 64 * 1024),
            tally: Tally::default(),
            counters,
        }
    }

    /// Parses one message into the batch.
    pub fn push(&mut self, raw: &[u8], truncated: bool, origin: &Origin<'_>) {
        let o = self.parser.push(&mut self.chunk, raw, truncated, origin);
        self.tally.received += 1;
        self.tally.parse_errors += u64::from(o.parse_error);
        self.tally.invalid_utf8 += u64::from(o.invalid_utf8);
        self.tally.truncated += u64::from(truncated);
    }

    /// Whether it holds no event.
    pub fn is_empty(&self) -> bool {
        self.chunk.is_empty()
    }

    /// Its size in bytes.
    pub fn len(&self) -> usize {
        self.chunk.len()
    }

    /// Whether it should be emitted now.
    pub fn is_full(&self) -> bool {
        self.chunk.events() >= CHUNK_EVENTS || self.chunk.len() >= CHUNK_BYTES
    }

    /// Takes the chunk out (the batch starts over) and counts its messages as received.
    pub fn take(&mut self) -> Chunk {
        let t = std::mem::take(&mut self.tally);
        let c = &self.counters;
        c.received.inc_by(t.received);
        c.parsed.inc_by(t.received - t.parse_errors);
        c.parse_errors.inc_by(t.parse_errors);
        c.truncated.inc_by(t.truncated);
        c.invalid_utf8.inc_by(t.invalid_utf8);
        std::mem::replace(
            &mut self.chunk,
            Chunk::with_capacity(CHUNK_BYTES + 64 * 1024),
        )
    }

    /// The transport's counters.
    pub fn counters(&self) -> &TransportCounters {
        &self.counters
    }

    /// Counts a taken chunk's events as lost because the buffer was full.
    pub fn dropped_full(&self, events: u32) {
        self.counters.dropped_full(events);
    }

    /// Counts datagrams the kernel dropped (its receive buffer was full).
    pub fn dropped_kernel(&self, datagrams: u64) {
        self.counters.dropped_kernel.inc_by(datagrams);
    }

    /// Counts a taken chunk's events as lost because the agent stopped before they could be
    /// appended (the buffer was full).
    pub fn dropped_at_shutdown(&self, events: u32) {
        self.counters.dropped_at_shutdown(events);
    }
}
