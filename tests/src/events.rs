//! Builders of valid wire-format v1 lines (log, metric, record) with unique bodies that a
//! test can find again, plus helpers to read stored lines back.

use std::collections::BTreeMap;

use logops_common::{parse_line, Event, LineError, Payload, Timestamp};
use serde_json::{json, Map, Value};

/// The current time.
pub fn now() -> Timestamp {
    Timestamp::now()
}

/// `base` plus `millis` milliseconds.
pub fn ts_plus_millis(base: Timestamp, millis: i64) -> Timestamp {
    Timestamp::from_nanos(base.as_nanos() + i128::from(millis) * 1_000_000)
}

/// `base` plus `nanos` nanoseconds.
pub fn ts_plus_nanos(base: Timestamp, nanos: i64) -> Timestamp {
    Timestamp::from_nanos(base.as_nanos() + i128::from(nanos))
}

/// A log event.
#[derive(Debug, Clone)]
pub struct LogEvent {
    /// `ts`.
    pub ts: Timestamp,
    /// `host`.
    pub host: String,
    /// `source`.
    pub source: String,
    /// `severity` (omitted when `None`).
    pub severity: Option<String>,
    /// `body`.
    pub body: String,
    /// `labels` (omitted when empty).
    pub labels: BTreeMap<String, String>,
    /// `attrs` (omitted when `None`).
    pub attrs: Option<Value>,
}

impl LogEvent {
    /// A log event at `ts` from `host`, source `file`, severity `info`.
    pub fn new(ts: Timestamp, host: &str, body: impl Into<String>) -> Self {
        LogEvent {
            ts,
            host: host.to_owned(),
            source: "file".to_owned(),
            severity: Some("info".to_owned()),
            body: body.into(),
            labels: BTreeMap::new(),
            attrs: None,
        }
    }

    /// Sets the source.
    pub fn source(mut self, source: &str) -> Self {
        self.source = source.to_owned();
        self
    }

    /// Sets (or with `None` removes) the severity.
    pub fn severity(mut self, severity: Option<&str>) -> Self {
        self.severity = severity.map(str::to_owned);
        self
    }

    /// Adds a label.
    pub fn label(mut self, k: &str, v: &str) -> Self {
        self.labels.insert(k.to_owned(), v.to_owned());
        self
    }

    /// Sets the attributes (a JSON object).
    pub fn attrs(mut self, attrs: Value) -> Self {
        self.attrs = Some(attrs);
        self
    }

    /// The NDJSON line (no newline).
    pub fn line(&self) -> String {
        let mut m = Map::new();
        m.insert("ts".into(), json!(self.ts.to_string()));
        m.insert("kind".into(), json!("log"));
        m.insert("host".into(), json!(self.host));
        m.insert("source".into(), json!(self.source));
        if !self.labels.is_empty() {
            m.insert("labels".into(), json!(self.labels));
        }
        if let Some(a) = &self.attrs {
            m.insert("attrs".into(), a.clone());
        }
        if let Some(s) = &self.severity {
            m.insert("severity".into(), json!(s));
        }
        m.insert("body".into(), json!(self.body));
        Value::Object(m).to_string()
    }
}

/// A gauge (or counter, with `metric_type`) sample.
#[derive(Debug, Clone)]
pub struct MetricEvent {
    /// `ts`.
    pub ts: Timestamp,
    /// `host`.
    pub host: String,
    /// `source`.
    pub source: String,
    /// `name`.
    pub name: String,
    /// `type`: `gauge` or `counter`.
    pub metric_type: String,
    /// `value`.
    pub value: f64,
    /// `labels`.
    pub labels: BTreeMap<String, String>,
}

impl MetricEvent {
    /// A gauge sample at `ts` from `host`, source `host`.
    pub fn gauge(ts: Timestamp, host: &str, name: &str, value: f64) -> Self {
        MetricEvent {
            ts,
            host: host.to_owned(),
            source: "host".to_owned(),
            name: name.to_owned(),
            metric_type: "gauge".to_owned(),
            value,
            labels: BTreeMap::new(),
        }
    }

    /// Adds a label.
    pub fn label(mut self, k: &str, v: &str) -> Self {
        self.labels.insert(k.to_owned(), v.to_owned());
        self
    }

    /// Sets the source.
    pub fn source(mut self, source: &str) -> Self {
        self.source = source.to_owned();
        self
    }

    /// The NDJSON line (no newline).
    pub fn line(&self) -> String {
        let mut m = Map::new();
        m.insert("ts".into(), json!(self.ts.to_string()));
        m.insert("kind".into(), json!("metric"));
        m.insert("host".into(), json!(self.host));
        m.insert("source".into(), json!(self.source));
        if !self.labels.is_empty() {
            m.insert("labels".into(), json!(self.labels));
        }
        m.insert("name".into(), json!(self.name));
        m.insert("type".into(), json!(self.metric_type));
        m.insert("value".into(), json!(self.value));
        Value::Object(m).to_string()
    }
}

/// A record line: `attrs` are its fields.
pub fn record_line(ts: Timestamp, host: &str, source: &str, attrs: Value) -> String {
    json!({"ts": ts.to_string(), "kind": "record", "host": host, "source": source, "attrs": attrs})
        .to_string()
}

/// The unique, checkable body of line `line` of batch `seq` from `agent`:
/// `"<agent> seq <seq> line <line>"`.
pub fn unique_body(agent: &str, seq: u64, line: usize) -> String {
    format!("{agent} seq {seq} line {line}")
}

/// `n` log lines of batch `agent:seq`, bodies from [`unique_body`], timestamps now.
pub fn batch_lines(agent: &str, seq: u64, n: usize) -> Vec<String> {
    let ts = now();
    (0..n)
        .map(|i| {
            LogEvent::new(
                ts_plus_nanos(ts, i as i64),
                agent,
                unique_body(agent, seq, i),
            )
            .line()
        })
        .collect()
}

/// Words to make realistic, varied log bodies.
const WORDS: &[&str] = &[
    "GET",
    "POST",
    "/api/v1/orders",
    "/healthz",
    "200",
    "404",
    "503",
    "upstream",
    "timeout",
    "user=alice",
    "user=bob",
    "latency_ms=12",
    "latency_ms=340",
    "cache",
    "miss",
    "hit",
    "session",
    "expired",
    "retrying",
    "connection",
    "reset",
    "by",
    "peer",
    "db=orders",
    "rows=17",
    "tls",
    "handshake",
    "completed",
    "worker-3",
    "queue=ingest",
    "bytes=5120",
];

/// A realistic log line of about `target_len` bytes (≥ ~150) whose body starts with
/// [`unique_body`]`(agent, seq, line)` followed by varied words.
pub fn realistic_line(
    agent: &str,
    seq: u64,
    line: usize,
    ts: Timestamp,
    target_len: usize,
) -> String {
    let severities = [
        "info", "info", "info", "debug", "warning", "error", "notice",
    ];
    // A small deterministic mixer, so that lines differ but runs are reproducible.
    let mut x = (seq.wrapping_mul(0x9E37_79B9_7F4A_7C15))
        ^ (line as u64).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    let mut next = || {
        x ^= x >> 31;
        x = x.wrapping_mul(0x94D0_49BB_1331_11EB);
        x ^= x >> 29;
        x
    };
    let host = format!("web-{:02}", next() % 16);
    let severity = severities[(next() % severities.len() as u64) as usize];
    let mut ev = LogEvent::new(ts, &host, unique_body(agent, seq, line))
        .severity(Some(severity))
        .label("service", ["nginx", "api", "worker"][(next() % 3) as usize]);
    let skeleton = ev.line().len();
    let mut body = ev.body.clone();
    while skeleton + (body.len() - ev.body.len()) < target_len {
        body.push(' ');
        body.push_str(WORDS[(next() % WORDS.len() as u64) as usize]);
    }
    ev.body = body;
    ev.line()
}

/// Parses a stored line as a wire-format v1 event.
pub fn parse_stored(line: &str) -> Result<Event<'_>, LineError> {
    parse_line(line, 1)
}

/// The body of a log line, if it is a valid log event.
pub fn body_of(line: &str) -> Option<String> {
    match parse_line(line, 1).ok()?.payload {
        Payload::Log { body, .. } => Some(body.into_owned()),
        _ => None,
    }
}

/// NDJSON text of `lines` (each followed by `\n`).
pub fn ndjson(lines: &[String]) -> Vec<u8> {
    let mut out = Vec::with_capacity(lines.iter().map(|l| l.len() + 1).sum());
    for l in lines {
        out.extend_from_slice(l.as_bytes());
        out.push(b'\n');
    }
    out
}
