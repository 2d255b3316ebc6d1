//! Writing events as NDJSON lines: the one definition of an event's text on the wire.
//!
//! Hand-written rather than through serde: an agent writes every event it ships once, and
//! for 100-byte log lines serde's generic map serializer, its byte-at-a-time string escaping
//! and formatting the timestamp through `fmt` were most of the files source's CPU. The
//! output is what `serde_json` writes for the same JSON object (the same escapes, the same
//! number formatting; the tests compare the two).
//!
//! A line is a [`LineHead`] (`ts`, `kind`, `host`, `source`, `labels`), then `attrs`, then the
//! payload's fields. Sources that write many log events sharing the head (a block read from
//! one file) make the head once and add each event's attributes and body with
//! [`write_log_line`].

use serde::Serialize;

use crate::event::{Event, Labels, MetricValue, Payload, Severity};
use crate::timestamp::Timestamp;
use crate::Kind;

/// What a JSON string needs escaped: 0 = nothing, else the character after the backslash
/// (`u` = `\u00XX`). Matches `serde_json`'s table.
const ESCAPE: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut i = 0;
    while i < 0x20 {
        t[i] = b'u';
        i += 1;
    }
    t[0x08] = b'b';
    t[0x09] = b't';
    t[0x0A] = b'n';
    t[0x0C] = b'f';
    t[0x0D] = b'r';
    t[b'"' as usize] = b'"';
    t[b'\\' as usize] = b'\\';
    t
};

const LOW_BITS: u64 = 0x0101_0101_0101_0101;
const HIGH_BITS: u64 = 0x8080_8080_8080_8080;

/// Whether any of the 8 bytes of `w` needs escaping (a control character, `"` or `\`).
#[inline]
fn needs_escape(w: u64) -> bool {
    // Bytes below 0x20 (exact for any byte: the borrow trick only errs above a hit).
    let control = w.wrapping_sub(LOW_BITS * 0x20) & !w;
    let has_zero = |v: u64| v.wrapping_sub(LOW_BITS) & !v;
    let quote = has_zero(w ^ (LOW_BITS * u64::from(b'"')));
    let backslash = has_zero(w ^ (LOW_BITS * u64::from(b'\\')));
    (control | quote | backslash) & HIGH_BITS != 0
}

/// Appends `s` as a JSON string (quotes included), escaped as `serde_json` escapes it.
pub fn write_str(out: &mut Vec<u8>, s: &str) {
    let b = s.as_bytes();
    out.reserve(b.len() + 2);
    out.push(b'"');
    // Clean runs are copied whole; words of 8 bytes are checked at once.
    let mut start = 0;
    let mut i = 0;
    while i < b.len() {
        if i + 8 <= b.len() {
            let w = u64::from_le_bytes(b[i..i + 8].try_into().expect("8 bytes"));
            if !needs_escape(w) {
                i += 8;
                continue;
            }
        }
        let esc = ESCAPE[b[i] as usize];
        if esc == 0 {
            i += 1;
            continue;
        }
        out.extend_from_slice(&b[start..i]);
        match esc {
            b'u' => {
                const HEX: &[u8; 16] = b"0123456789abcdef";
                out.extend_from_slice(b"\\u00");
                out.push(HEX[(b[i] >> 4) as usize]);
                out.push(HEX[(b[i] & 0xF) as usize]);
            }
            c => out.extend_from_slice(&[b'\\', c]),
        }
        i += 1;
        start = i;
    }
    out.extend_from_slice(&b[start..]);
    out.push(b'"');
}

/// Appends the decimal digits of `n`.
pub fn write_u64(out: &mut Vec<u8>, mut n: u64) {
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[i..]);
}

/// Appends a value through `serde_json` (numbers: its float formatting is the definition).
fn write_serde<T: Serialize + ?Sized>(out: &mut Vec<u8>, v: &T) {
    serde_json::to_writer(&mut *out, v).expect("writing to a Vec cannot fail");
}

/// The start of an event's line, up to (not including) `attrs`: `{"ts":...,"kind":...,
/// "host":...,"source":...[,"labels":{...}]`. Shared by events with the same timestamp,
/// kind, host, source and labels; [`write_log_line_at`] writes it with another timestamp
/// (events that share everything else: syslog messages, container log lines).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LineHead {
    bytes: Vec<u8>,
    /// Where the part after the timestamp (`","kind":...`) starts.
    after_ts: usize,
}

/// What every line starts with, before its timestamp.
const TS_OPEN: &[u8] = b"{\"ts\":\"";

impl LineHead {
    /// The head of events with these fields.
    pub fn new(ts: Timestamp, kind: Kind, host: &str, source: &str, labels: &Labels<'_>) -> Self {
        let mut bytes = Vec::with_capacity(96);
        bytes.extend_from_slice(TS_OPEN);
        ts.write_rfc3339(&mut bytes);
        let after_ts = bytes.len();
        write_head_after_ts(&mut bytes, kind, host, source, labels);
        LineHead { bytes, after_ts }
    }

    /// The bytes written so far.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// Appends the head with `ts` instead of its own timestamp.
    fn write_at(&self, out: &mut Vec<u8>, ts: Timestamp) {
        out.extend_from_slice(TS_OPEN);
        ts.write_rfc3339(out);
        out.extend_from_slice(&self.bytes[self.after_ts..]);
    }
}

fn write_head(
    out: &mut Vec<u8>,
    ts: Timestamp,
    kind: Kind,
    host: &str,
    source: &str,
    labels: &Labels<'_>,
) {
    out.extend_from_slice(TS_OPEN);
    ts.write_rfc3339(out);
    write_head_after_ts(out, kind, host, source, labels);
}

fn write_head_after_ts(
    out: &mut Vec<u8>,
    kind: Kind,
    host: &str,
    source: &str,
    labels: &Labels<'_>,
) {
    out.extend_from_slice(b"\",\"kind\":\"");
    out.extend_from_slice(kind.as_str().as_bytes());
    out.extend_from_slice(b"\",\"host\":");
    write_str(out, host);
    out.extend_from_slice(b",\"source\":");
    write_str(out, source);
    if !labels.is_empty() {
        out.extend_from_slice(b",\"labels\":{");
        for (n, (k, v)) in labels.iter().enumerate() {
            if n > 0 {
                out.push(b',');
            }
            write_str(out, k);
            out.push(b':');
            write_str(out, v);
        }
        out.push(b'}');
    }
}

fn write_log_payload(out: &mut Vec<u8>, severity: Option<Severity>, body: &str) {
    if let Some(sev) = severity {
        out.extend_from_slice(b",\"severity\":\"");
        out.extend_from_slice(sev.as_str().as_bytes());
        out.push(b'"');
    }
    out.extend_from_slice(b",\"body\":");
    write_str(out, body);
}

/// Appends one log event line (with its newline): `head`, then `attrs` (the raw text of a
/// JSON object, written as is; the caller guarantees it is one), then severity and body.
pub fn write_log_line(
    out: &mut Vec<u8>,
    head: &LineHead,
    attrs: Option<&str>,
    severity: Option<Severity>,
    body: &str,
) {
    debug_assert!(
        attrs.is_none_or(
            |a| serde_json::from_str::<serde_json::Map<String, serde_json::Value>>(a).is_ok()
        ),
        "attrs must be a JSON object: {attrs:?}"
    );
    out.extend_from_slice(&head.bytes);
    write_log_rest(out, attrs.map(str::as_bytes), severity, body);
}

/// [`write_log_line`] with the timestamp `ts` instead of the head's own, and `attrs` as
/// bytes (the raw text of a JSON object, valid UTF-8; the caller guarantees it is one).
pub fn write_log_line_at(
    out: &mut Vec<u8>,
    head: &LineHead,
    ts: Timestamp,
    attrs: Option<&[u8]>,
    severity: Option<Severity>,
    body: &str,
) {
    debug_assert!(
        attrs.is_none_or(
            |a| serde_json::from_slice::<serde_json::Map<String, serde_json::Value>>(a).is_ok()
        ),
        "attrs must be a JSON object: {attrs:?}"
    );
    head.write_at(out, ts);
    write_log_rest(out, attrs, severity, body);
}

/// A log line after its head: `attrs`, severity, body, `}` and the newline.
fn write_log_rest(out: &mut Vec<u8>, attrs: Option<&[u8]>, severity: Option<Severity>, body: &str) {
    if let Some(a) = attrs {
        out.extend_from_slice(b",\"attrs\":");
        out.extend_from_slice(a);
    }
    write_log_payload(out, severity, body);
    out.extend_from_slice(b"}\n");
}

/// Appends `event` as one JSON object (no newline).
pub fn write_event(out: &mut Vec<u8>, event: &Event<'_>) {
    write_head(
        out,
        event.ts,
        event.kind(),
        &event.host,
        &event.source,
        &event.labels,
    );
    if let Some(attrs) = &event.attrs {
        out.extend_from_slice(b",\"attrs\":");
        out.extend_from_slice(attrs.as_json().as_bytes());
    }
    match &event.payload {
        Payload::Log { severity, body } => write_log_payload(out, *severity, body),
        Payload::Metric { name, value } => {
            out.extend_from_slice(b",\"name\":");
            write_str(out, name);
            out.extend_from_slice(b",\"type\":\"");
            out.extend_from_slice(value.metric_type().as_str().as_bytes());
            out.push(b'"');
            match value {
                MetricValue::Gauge(v) | MetricValue::Counter(v) => {
                    out.extend_from_slice(b",\"value\":");
                    write_serde(out, v);
                }
                MetricValue::Histogram(h) => {
                    out.extend_from_slice(b",\"buckets\":");
                    write_serde(out, &h.buckets);
                    out.extend_from_slice(b",\"count\":");
                    write_u64(out, h.count);
                    out.extend_from_slice(b",\"sum\":");
                    write_serde(out, &h.sum);
                }
            }
        }
        Payload::Record => {}
    }
    out.push(b'}');
}

#[cfg(test)]
mod tests {
    use std::borrow::Cow;

    use serde_json::value::RawValue;

    use super::*;
    use crate::event::{Attrs, Bucket, Histogram};

    /// What `serde_json` writes for the same object, built field by field.
    fn reference(e: &Event<'_>) -> String {
        use serde::ser::{SerializeMap, Serializer};
        let mut out = Vec::new();
        let mut ser = serde_json::Serializer::new(&mut out);
        let mut m = ser.serialize_map(None).unwrap();
        m.serialize_entry("ts", &e.ts.to_string()).unwrap();
        m.serialize_entry("kind", e.kind().as_str()).unwrap();
        m.serialize_entry("host", &e.host).unwrap();
        m.serialize_entry("source", &e.source).unwrap();
        if !e.labels.is_empty() {
            m.serialize_entry("labels", &e.labels).unwrap();
        }
        if let Some(a) = &e.attrs {
            let raw: &RawValue = serde_json::from_str(a.as_json()).unwrap();
            m.serialize_entry("attrs", raw).unwrap();
        }
        match &e.payload {
            Payload::Log { severity, body } => {
                if let Some(s) = severity {
                    m.serialize_entry("severity", s).unwrap();
                }
                m.serialize_entry("body", body).unwrap();
            }
            Payload::Metric { name, value } => {
                m.serialize_entry("name", name).unwrap();
                m.serialize_entry("type", &value.metric_type()).unwrap();
                match value {
                    MetricValue::Gauge(v) | MetricValue::Counter(v) => {
                        m.serialize_entry("value", v).unwrap()
                    }
                    MetricValue::Histogram(h) => {
                        m.serialize_entry("buckets", &h.buckets).unwrap();
                        m.serialize_entry("count", &h.count).unwrap();
                        m.serialize_entry("sum", &h.sum).unwrap();
                    }
                }
            }
            Payload::Record => {}
        }
        m.end().unwrap();
        String::from_utf8(out).unwrap()
    }

    fn mine(e: &Event<'_>) -> String {
        let mut out = Vec::new();
        write_event(&mut out, e);
        String::from_utf8(out).unwrap()
    }

    /// A small deterministic generator (no dependency for a test).
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
        fn string(&mut self) -> String {
            let len = (self.next() % 40) as usize;
            (0..len)
                .map(|_| match self.next() % 10 {
                    0 => char::from_u32((self.next() % 0x20) as u32).unwrap(),
                    1 => '"',
                    2 => '\\',
                    3 => char::from_u32(0x7F + (self.next() % 0x2000) as u32).unwrap_or('é'),
                    4 => '😀',
                    5 => '/',
                    _ => char::from(b' ' + (self.next() % 95) as u8),
                })
                .collect()
        }
    }

    #[test]
    fn strings_are_escaped_as_serde_json_escapes_them() {
        for b in 0u8..=127 {
            let s = format!("ab{}cdefghijk{}", b as char, b as char);
            let mut out = Vec::new();
            write_str(&mut out, &s);
            assert_eq!(
                String::from_utf8(out).unwrap(),
                serde_json::to_string(&s).unwrap(),
                "byte {b:#04x}"
            );
        }
        let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
        for _ in 0..20_000 {
            let s = rng.string();
            let mut out = Vec::new();
            write_str(&mut out, &s);
            assert_eq!(
                String::from_utf8(out).unwrap(),
                serde_json::to_string(&s).unwrap()
            );
        }
    }

    #[test]
    fn events_are_written_as_serde_json_writes_them() {
        let mut rng = Rng(42);
        for n in 0..5_000u64 {
            let labels: Labels<'_> = (0..rng.next() % 3)
                .map(|_| (Cow::Owned(rng.string()), Cow::Owned(rng.string())))
                .collect();
            let attrs = (n % 2 == 0).then(|| {
                let text = format!(
                    r#"{{"path":{},"offset":{}}}"#,
                    serde_json::to_string(&rng.string()).unwrap(),
                    rng.next()
                );
                Attrs::from_raw(Box::leak(RawValue::from_string(text).unwrap())).unwrap()
            });
            let f = f64::from_bits(rng.next());
            let value = if f.is_finite() {
                f
            } else {
                (rng.next() % 1000) as f64 / 7.0
            };
            let payload = match n % 5 {
                0 => Payload::Log {
                    severity: None,
                    body: Cow::Owned(rng.string()),
                },
                1 => Payload::Log {
                    severity: Some(Severity::ALL[(rng.next() % 9) as usize]),
                    body: Cow::Owned(rng.string()),
                },
                2 => Payload::Metric {
                    name: Cow::Borrowed("host_load1"),
                    value: MetricValue::Gauge(value),
                },
                3 => Payload::Metric {
                    name: Cow::Borrowed("x_total"),
                    value: MetricValue::Histogram(Histogram {
                        buckets: vec![
                            Bucket {
                                le: 0.001,
                                count: 1,
                            },
                            Bucket {
                                le: 1e21,
                                count: rng.next(),
                            },
                        ],
                        count: rng.next(),
                        sum: value,
                    }),
                },
                _ => Payload::Record,
            };
            let ts = Timestamp::from_nanos(i128::from(rng.next() >> 2) - (1i128 << 61));
            let e = Event {
                ts,
                host: Cow::Owned(rng.string()),
                source: Cow::Borrowed("file"),
                labels,
                attrs,
                payload,
            };
            assert_eq!(mine(&e), reference(&e));
        }
    }

    #[test]
    fn a_log_line_from_a_head_is_the_event_line() {
        let labels: Labels<'_> = [(Cow::Borrowed("env"), Cow::Borrowed("prod"))].into();
        let ts = Timestamp::parse("2026-11-22T10:00:00.123456789Z").unwrap();
        let head = LineHead::new(ts, Kind::Log, "web-01", "file", &labels);
        let attrs = r#"{"path":"/var/log/a.log","offset":12}"#;
        let mut out = Vec::new();
        write_log_line(&mut out, &head, Some(attrs), None, "GET \"/\" 200");
        let e = Event {
            ts,
            host: "web-01".into(),
            source: "file".into(),
            labels,
            attrs: Some(Attrs::from_raw(serde_json::from_str(attrs).unwrap()).unwrap()),
            payload: Payload::Log {
                severity: None,
                body: "GET \"/\" 200".into(),
            },
        };
        let mut line = Vec::new();
        e.write_line(&mut line);
        assert_eq!(out, line);
    }
}
