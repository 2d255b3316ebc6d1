//! One journal entry of `journalctl -o json` as an event.
//!
//! Fields: `MESSAGE` → body (journalctl writes a value that is not printable UTF-8 as an
//! array of byte values: kept lossily, flagged `invalid_utf8`; a field given several times
//! is an array of values: joined with newlines); `PRIORITY` → severity;
//! `__REALTIME_TIMESTAMP` (µs) → ts; `_SYSTEMD_UNIT` → label `unit`; `_PID`, `_HOSTNAME`,
//! `SYSLOG_IDENTIFIER`, `_COMM`, `_TRANSPORT` → attrs `pid`, `hostname`,
//! `syslog_identifier`, `comm`, `transport`. `__CURSOR` is the position.

use std::borrow::Cow;

use logops_common::event::{Attrs, Event, Labels, Payload, Severity};
use logops_common::Timestamp;
use serde_json::{Map, Value};

/// Why a line is not a journal entry.
#[derive(Debug, thiserror::Error)]
pub enum EntryError {
    /// Not a JSON object.
    #[error("not a JSON object: {0}")]
    Json(#[from] serde_json::Error),
    /// No `__CURSOR`.
    #[error("the entry has no __CURSOR")]
    NoCursor,
}

/// A journal entry made into an event.
#[derive(Debug)]
pub struct Entry {
    /// The event.
    pub event: Event<'static>,
    /// Its `__CURSOR`.
    pub cursor: String,
}

/// A field's text: a string, bytes (lossy; `true` when they were not UTF-8), or several
/// values joined with newlines.
fn text(v: &Value) -> Option<(String, bool)> {
    match v {
        Value::String(s) => Some((s.clone(), false)),
        Value::Array(items) if items.iter().all(Value::is_number) => {
            let bytes: Vec<u8> = items
                .iter()
                .map(|n| {
                    n.as_u64()
                        .and_then(|n| u8::try_from(n).ok())
                        .unwrap_or(b'?')
                })
                .collect();
            match String::from_utf8(bytes) {
                Ok(s) => Some((s, false)),
                Err(e) => Some((String::from_utf8_lossy(e.as_bytes()).into_owned(), true)),
            }
        }
        Value::Array(items) => {
            let mut out = String::new();
            let mut invalid = false;
            for (i, (t, bad)) in items.iter().filter_map(text).enumerate() {
                if i > 0 {
                    out.push('\n');
                }
                out.push_str(&t);
                invalid |= bad;
            }
            Some((out, invalid))
        }
        _ => None,
    }
}

fn field(m: &Map<String, Value>, k: &str) -> Option<String> {
    m.get(k).and_then(text).map(|(t, _)| t)
}

/// Parses one line of `journalctl -o json`; `labels` are the agent's and the section's.
pub fn parse(line: &[u8], host: &str, labels: &Labels<'static>) -> Result<Entry, EntryError> {
    let m: Map<String, Value> = serde_json::from_slice(line)?;
    let cursor = field(&m, "__CURSOR").ok_or(EntryError::NoCursor)?;
    let (body, invalid) = m.get("MESSAGE").and_then(text).unwrap_or_default();
    let severity = field(&m, "PRIORITY")
        .and_then(|p| p.trim().parse::<u8>().ok())
        .and_then(Severity::from_syslog);
    let ts = field(&m, "__REALTIME_TIMESTAMP")
        .and_then(|us| us.parse::<i128>().ok())
        .map_or_else(Timestamp::now, |us| Timestamp::from_nanos(us * 1000));
    let mut labels = labels.clone();
    if let Some(unit) = field(&m, "_SYSTEMD_UNIT") {
        labels.insert(Cow::Borrowed("unit"), Cow::Owned(unit));
    }
    let mut attrs = Map::new();
    if let Some(pid) = field(&m, "_PID") {
        match pid.parse::<u64>() {
            Ok(n) => attrs.insert("pid".into(), n.into()),
            Err(_) => attrs.insert("pid".into(), pid.into()),
        };
    }
    for (k, name) in [
        ("_HOSTNAME", "hostname"),
        ("SYSLOG_IDENTIFIER", "syslog_identifier"),
        ("_COMM", "comm"),
        ("_TRANSPORT", "transport"),
    ] {
        if let Some(v) = field(&m, k) {
            attrs.insert(name.into(), v.into());
        }
    }
    if invalid {
        attrs.insert("invalid_utf8".into(), true.into());
    }
    Ok(Entry {
        event: Event {
            ts,
            host: Cow::Owned(host.to_owned()),
            source: Cow::Borrowed(super::SOURCE),
            labels,
            attrs: Some(Attrs::from_map(&attrs)),
            payload: Payload::Log {
                severity,
                body: Cow::Owned(body),
            },
        },
        cursor,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> String {
        let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/journald")
            .join(name);
        std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
    }

    fn parse_all(name: &str) -> Vec<Entry> {
        let labels = Labels::from([(Cow::Borrowed("env"), Cow::Borrowed("test"))]);
        fixture(name)
            .lines()
            .map(|l| parse(l.as_bytes(), "h1", &labels).unwrap())
            .collect()
    }

    #[test]
    fn maps_the_fields() {
        let e = parse_all("entries.json");
        let ev = &e[0].event;
        assert_eq!(
            e[0].cursor,
            "s=739ad463348b4ceca5a9e69c95a3c93f;i=4ece7;b=6c7c6013a8cb4aa4b52c1d1f1b4ee1b2;m=7a0c2c8;t=5d1c7f4e2b1a0;x=b40c5ae4c0a2e2c"
        );
        assert_eq!(ev.ts.to_string(), "2024-01-02T03:04:05.123456000Z");
        assert_eq!(
            ev.payload,
            Payload::Log {
                severity: Some(Severity::Warning),
                body: Cow::Borrowed("disk almost full")
            }
        );
        assert_eq!(
            ev.labels.get("unit").map(|v| v.as_ref()),
            Some("nginx.service")
        );
        assert_eq!(ev.labels.get("env").map(|v| v.as_ref()), Some("test"));
        let a = ev.attrs.as_ref().unwrap().to_map();
        assert_eq!(a["pid"], 4242);
        assert_eq!(a["hostname"], "web-01");
        assert_eq!(a["syslog_identifier"], "nginx");
        assert_eq!(a["comm"], "nginx");
        assert_eq!(a["transport"], "syslog");
    }

    #[test]
    fn message_as_bytes_multiple_values_and_missing_fields() {
        let e = parse_all("entries.json");
        // MESSAGE as an array of bytes, valid UTF-8 with a control character.
        match &e[1].event.payload {
            Payload::Log { body, severity } => {
                assert_eq!(body, "tab\there\u{1b}[0m");
                assert_eq!(*severity, Some(Severity::Info));
            }
            p => panic!("{p:?}"),
        }
        assert!(!e[1]
            .event
            .attrs
            .as_ref()
            .unwrap()
            .to_map()
            .contains_key("invalid_utf8"));
        // Not UTF-8: lossy and flagged.
        match &e[2].event.payload {
            Payload::Log { body, .. } => assert_eq!(body, "bad \u{FFFD} byte"),
            p => panic!("{p:?}"),
        }
        assert_eq!(
            e[2].event.attrs.as_ref().unwrap().to_map()["invalid_utf8"],
            true
        );
        // A field given twice; no PRIORITY, no unit.
        match &e[3].event.payload {
            Payload::Log { body, severity } => {
                assert_eq!(body, "first\nsecond");
                assert_eq!(*severity, None);
            }
            p => panic!("{p:?}"),
        }
        assert!(!e[3].event.labels.contains_key("unit"));
    }

    #[test]
    fn garbage_is_an_error() {
        let l = Labels::new();
        assert!(parse(b"not json", "h", &l).is_err());
        assert!(matches!(
            parse(br#"{"MESSAGE":"x"}"#, "h", &l),
            Err(EntryError::NoCursor)
        ));
    }
}
