//! The agent's own metrics, served as Prometheus text on `self_metrics.listen`.

use std::sync::atomic::AtomicU64;

use prometheus_client::encoding::{text::encode, EncodeLabelSet};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

use crate::buffer::BufferStats;

/// Labels naming a file group (`[[files]]` entry: its first pattern).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct GroupLabels {
    /// The group.
    pub group: String,
}

/// Labels naming one file.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PathLabels {
    /// The file.
    pub path: String,
}

/// Labels naming a source.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SourceLabels {
    /// `file`, `host`, ...
    pub source: String,
}

/// Labels naming a collector (`snmp`, `ping`, ...).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CollectorLabels {
    /// The collector.
    pub collector: String,
}

/// Labels naming a collector and a reason.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CollectorReasonLabels {
    /// The collector.
    pub collector: String,
    /// Why (`timeout`, `wrong_auth`, ...).
    pub reason: String,
}

/// Labels naming a child process of a source (an `[[exec]]` command, journalctl).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ProcessLabels {
    /// `exec` or `journald`.
    pub source: String,
    /// The command's name.
    pub name: String,
}

/// Labels of a child process's exit.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ProcessExitLabels {
    /// `exec` or `journald`.
    pub source: String,
    /// The command's name.
    pub name: String,
    /// The exit code, `signal_N`, or `spawn_error`.
    pub status: String,
}

/// Labels naming a syslog transport (`udp`, `tcp`, `tls`, `unix`).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TransportLabels {
    /// The transport.
    pub transport: String,
}

/// Labels naming a syslog transport and a reason.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TransportReasonLabels {
    /// The transport.
    pub transport: String,
    /// Why (`buffer_full`, `kernel`, `max_connections`, `tls_handshake`, ...).
    pub reason: String,
}

/// Labels with a reason.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabels {
    /// Why.
    pub reason: String,
}

/// Every metric of the agent.
pub struct AgentMetrics {
    registry: Registry,
    /// Lines read per file group.
    pub lines_read: Family<GroupLabels, Counter>,
    /// Bytes read per file group.
    pub bytes_read: Family<GroupLabels, Counter>,
    /// Bytes between the read position and the end of each tracked file.
    pub bytes_behind: Family<PathLabels, Gauge>,
    /// Events appended to the buffer per source.
    pub events: Family<SourceLabels, Counter>,
    /// Events dropped, by reason (`buffer_full`, ...).
    pub dropped_events: Family<ReasonLabels, Counter>,
    /// Batches acknowledged by the ingest.
    pub batches_sent: Counter,
    /// Failed sends, by reason (`network`, `status_503`, ...).
    pub batches_failed: Family<ReasonLabels, Counter>,
    /// Sends that were retries.
    pub batches_retried: Counter,
    /// Batches moved to the dead letters.
    pub batches_dead: Counter,
    /// Send latency (request to answer).
    pub send_seconds: Histogram,
    /// Buffer bytes (chunks + batches).
    pub buffer_bytes: Gauge<u64, AtomicU64>,
    /// Events in the buffer (queued + in batches).
    pub buffer_events: Gauge<u64, AtomicU64>,
    /// Age of the oldest buffered data.
    pub buffer_oldest_seconds: Gauge<f64, AtomicU64>,
    /// Dead letters waiting.
    pub dead_letters: Gauge<u64, AtomicU64>,
    /// Rounds completed per polling collector (a ping group's round, an SNMP poll).
    pub collector_rounds: Family<CollectorLabels, Counter>,
    /// Requests that got no answer in time, per collector.
    pub collector_timeouts: Family<CollectorLabels, Counter>,
    /// Errors per collector and reason (`resolve`, `send`, `socket`, ...).
    pub collector_errors: Family<CollectorReasonLabels, Counter>,
    /// Child processes started per source and command (the first start and restarts).
    pub process_starts: Family<ProcessLabels, Counter>,
    /// Child process exits per source, command and status.
    pub process_exits: Family<ProcessExitLabels, Counter>,
    /// Whether each child process runs (1) or waits to be restarted (0).
    pub process_running: Family<ProcessLabels, Gauge>,
    /// Lines read per source and stream (`exec`, `stdin`: stdout/stderr/stdin; `journald`:
    /// journal entries).
    pub source_lines: Family<SourceStreamLabels, Counter>,
    /// Input a source could not decode (kept raw, flagged `parse_error`), per source.
    pub decode_errors: Family<SourceLabels, Counter>,
    /// Syslog messages received per transport (each becomes an event, parsed or not).
    pub syslog_received: Family<TransportLabels, Counter>,
    /// Syslog messages whose header parsed, per transport.
    pub syslog_parsed: Family<TransportLabels, Counter>,
    /// Syslog messages kept raw with `parse_error`, per transport.
    pub syslog_parse_errors: Family<TransportLabels, Counter>,
    /// Syslog messages cut at `max_message_size`, per transport.
    pub syslog_truncated: Family<TransportLabels, Counter>,
    /// Syslog messages with bytes that are not UTF-8, per transport.
    pub syslog_invalid_utf8: Family<TransportLabels, Counter>,
    /// Syslog messages lost, per transport and reason: `buffer_full` (ours, UDP and Unix
    /// when the buffer is full) and `kernel` (the socket's receive buffer overflowed).
    pub syslog_dropped: Family<TransportReasonLabels, Counter>,
    /// TCP and TLS connections accepted.
    pub syslog_connections: Family<TransportLabels, Counter>,
    /// TCP and TLS connections open now.
    pub syslog_connections_open: Family<TransportLabels, Gauge>,
    /// Connections closed at once, by reason (`max_connections`, `tls_handshake`).
    pub syslog_connections_refused: Family<TransportReasonLabels, Counter>,
    /// Connections closed after `idle_timeout` without data.
    pub syslog_connections_idle_closed: Family<TransportLabels, Counter>,
}

/// Labels naming a source and one of its streams.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SourceStreamLabels {
    /// `exec`, `stdin`, `journald`.
    pub source: String,
    /// The command's name (`exec`), else the source.
    pub name: String,
    /// `stdout`, `stderr`, `stdin`, `journal`.
    pub stream: String,
}

impl Default for AgentMetrics {
    fn default() -> Self {
        Self::new()
    }
}

impl AgentMetrics {
    /// Creates and registers every metric.
    pub fn new() -> Self {
        let mut r = Registry::with_prefix("logops_agent");
        let lines_read = Family::default();
        r.register(
            "file_lines_read",
            "Lines read per file group",
            lines_read.clone(),
        );
        let bytes_read = Family::default();
        r.register(
            "file_bytes_read",
            "Bytes read per file group",
            bytes_read.clone(),
        );
        let bytes_behind = Family::default();
        r.register(
            "file_bytes_behind",
            "Bytes between the read position and the end of the file",
            bytes_behind.clone(),
        );
        let events = Family::default();
        r.register(
            "events",
            "Events appended to the buffer per source",
            events.clone(),
        );
        let dropped_events = Family::default();
        r.register(
            "dropped_events",
            "Events dropped, by reason",
            dropped_events.clone(),
        );
        let batches_sent = Counter::default();
        r.register(
            "batches_sent",
            "Batches acknowledged by the ingest",
            batches_sent.clone(),
        );
        let batches_failed = Family::default();
        r.register(
            "batches_failed",
            "Failed sends by reason",
            batches_failed.clone(),
        );
        let batches_retried = Counter::default();
        r.register(
            "batches_retried",
            "Sends that were retries",
            batches_retried.clone(),
        );
        let batches_dead = Counter::default();
        r.register(
            "batches_dead_lettered",
            "Batches moved to the dead letters",
            batches_dead.clone(),
        );
        let send_seconds = Histogram::new(exponential_buckets(0.0005, 2.0, 16));
        r.register(
            "send_duration_seconds",
            "Time from sending a batch to its answer",
            send_seconds.clone(),
        );
        let buffer_bytes = Gauge::default();
        r.register(
            "buffer_bytes",
            "Bytes held in the buffer",
            buffer_bytes.clone(),
        );
        let buffer_events = Gauge::default();
        r.register(
            "buffer_events",
            "Events held in the buffer",
            buffer_events.clone(),
        );
        let buffer_oldest_seconds = Gauge::default();
        r.register(
            "buffer_oldest_age_seconds",
            "Age of the oldest buffered data",
            buffer_oldest_seconds.clone(),
        );
        let dead_letters = Gauge::default();
        r.register(
            "dead_letters",
            "Batches in the dead letters",
            dead_letters.clone(),
        );
        let collector_rounds = Family::default();
        r.register(
            "collector_rounds",
            "Rounds completed per collector",
            collector_rounds.clone(),
        );
        let collector_timeouts = Family::default();
        r.register(
            "collector_timeouts",
            "Requests not answered in time per collector",
            collector_timeouts.clone(),
        );
        let collector_errors = Family::default();
        r.register(
            "collector_errors",
            "Errors per collector and reason",
            collector_errors.clone(),
        );
        let process_starts = Family::default();
        r.register(
            "process_starts",
            "Child processes started (exec commands, journalctl), restarts included",
            process_starts.clone(),
        );
        let process_exits = Family::default();
        r.register(
            "process_exits",
            "Child process exits by status",
            process_exits.clone(),
        );
        let process_running = Family::default();
        r.register(
            "process_running",
            "Whether each child process runs (1) or waits for its restart (0)",
            process_running.clone(),
        );
        let source_lines = Family::default();
        r.register(
            "source_lines",
            "Lines (journal entries) read per source and stream",
            source_lines.clone(),
        );
        let decode_errors = Family::default();
        r.register(
            "decode_errors",
            "Input kept raw because it did not decode, per source",
            decode_errors.clone(),
        );
        let syslog_received = Family::default();
        r.register(
            "syslog_messages_received",
            "Syslog messages received per transport",
            syslog_received.clone(),
        );
        let syslog_parsed = Family::default();
        r.register(
            "syslog_messages_parsed",
            "Syslog messages whose header parsed, per transport",
            syslog_parsed.clone(),
        );
        let syslog_parse_errors = Family::default();
        r.register(
            "syslog_parse_errors",
            "Syslog messages kept raw with parse_error, per transport",
            syslog_parse_errors.clone(),
        );
        let syslog_truncated = Family::default();
        r.register(
            "syslog_messages_truncated",
            "Syslog messages cut at max_message_size, per transport",
            syslog_truncated.clone(),
        );
        let syslog_invalid_utf8 = Family::default();
        r.register(
            "syslog_messages_invalid_utf8",
            "Syslog messages with bytes that are not UTF-8, per transport",
            syslog_invalid_utf8.clone(),
        );
        let syslog_dropped = Family::default();
        r.register(
            "syslog_messages_dropped",
            "Syslog messages lost, per transport and reason (buffer_full: ours; kernel: the socket's receive buffer)",
            syslog_dropped.clone(),
        );
        let syslog_connections = Family::default();
        r.register(
            "syslog_connections",
            "Syslog TCP and TLS connections accepted",
            syslog_connections.clone(),
        );
        let syslog_connections_open = Family::default();
        r.register(
            "syslog_connections_open",
            "Syslog TCP and TLS connections open",
            syslog_connections_open.clone(),
        );
        let syslog_connections_refused = Family::default();
        r.register(
            "syslog_connections_refused",
            "Syslog connections closed at once, by reason",
            syslog_connections_refused.clone(),
        );
        let syslog_connections_idle_closed = Family::default();
        r.register(
            "syslog_connections_idle_closed",
            "Syslog connections closed after idle_timeout",
            syslog_connections_idle_closed.clone(),
        );
        AgentMetrics {
            registry: r,
            lines_read,
            bytes_read,
            bytes_behind,
            events,
            dropped_events,
            batches_sent,
            batches_failed,
            batches_retried,
            batches_dead,
            send_seconds,
            buffer_bytes,
            buffer_events,
            buffer_oldest_seconds,
            dead_letters,
            collector_rounds,
            collector_timeouts,
            collector_errors,
            process_starts,
            process_exits,
            process_running,
            source_lines,
            decode_errors,
            syslog_received,
            syslog_parsed,
            syslog_parse_errors,
            syslog_truncated,
            syslog_invalid_utf8,
            syslog_dropped,
            syslog_connections,
            syslog_connections_open,
            syslog_connections_refused,
            syslog_connections_idle_closed,
        }
    }

    /// Renders the Prometheus text exposition, refreshing the buffer gauges first.
    pub fn render(&self, buffer: Option<&BufferStats>) -> String {
        if let Some(b) = buffer {
            self.buffer_bytes.set(b.bytes);
            self.buffer_events.set(b.queued_events + b.batch_events);
            self.dead_letters.set(b.dead_letters);
            let age = b.oldest_ms.map_or(0.0, |ms| {
                let now = jiff::Timestamp::now().as_millisecond().max(0) as u64;
                now.saturating_sub(ms) as f64 / 1000.0
            });
            self.buffer_oldest_seconds.set(age);
        }
        let mut out = String::with_capacity(8 * 1024);
        encode(&mut out, &self.registry).expect("writing to a String cannot fail");
        out
    }
}
