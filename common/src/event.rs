//! The event: one line of a wire-format v1 batch.
//!
//! Every source produces the same shape, serialized as one flat JSON object per line:
//!
//! ```json
//! {"ts":"2026-11-22T10:00:00.123456789Z","kind":"log","host":"web-01","source":"file",
//!  "labels":{"service":"nginx"},"attrs":{"path":"/var/log/nginx/access.log","offset":12345},
//!  "severity":"info","body":"GET / 200"}
//! ```
//!
//! Deserialization is hand-written: it borrows strings from the input where it can (the
//! ingest validates a million events per CPU-second), and every error names the field it
//! happened in (see [`parse_line`]).

use std::borrow::Cow;
use std::cell::Cell;
use std::collections::BTreeMap;
use std::fmt;

use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::value::RawValue;

use crate::timestamp::Timestamp;

/// String labels (`{"env":"prod"}`): identify a series or a stream; sorted by key.
pub type Labels<'a> = BTreeMap<Cow<'a, str>, Cow<'a, str>>;

/// One event of any kind.
#[derive(Debug, Clone, PartialEq)]
pub struct Event<'a> {
    /// When it happened (RFC 3339, serialized with nanoseconds, UTC).
    pub ts: Timestamp,
    /// The host the event is about (the agent's id by default).
    pub host: Cow<'a, str>,
    /// The source that produced it: `file`, `host`, `ping`, `snmp`, `ssh`, `syslog`, ...
    pub source: Cow<'a, str>,
    /// String labels.
    pub labels: Labels<'a>,
    /// Free-form JSON attributes (a JSON object), kept as raw JSON text.
    pub attrs: Option<Attrs<'a>>,
    /// What kind of event it is, with the fields of that kind.
    pub payload: Payload<'a>,
}

/// Attributes: a JSON object kept as its raw text, so that passing it through costs nothing.
#[derive(Debug, Clone)]
pub struct Attrs<'a>(Cow<'a, RawValue>);

impl PartialEq for Attrs<'_> {
    fn eq(&self, other: &Self) -> bool {
        self.0.get() == other.0.get()
    }
}

impl<'a> Attrs<'a> {
    /// Attributes from a JSON object map.
    pub fn from_map(map: &serde_json::Map<String, serde_json::Value>) -> Attrs<'static> {
        let text = serde_json::to_string(map).expect("a JSON map always serializes");
        Attrs(Cow::Owned(
            RawValue::from_string(text).expect("serde_json produced valid JSON"),
        ))
    }

    /// Attributes from raw JSON text; fails unless it is a JSON object.
    pub fn from_raw(raw: &'a RawValue) -> Result<Self, &'static str> {
        if raw.get().trim_start().starts_with('{') {
            Ok(Attrs(Cow::Borrowed(raw)))
        } else {
            Err("expected a JSON object")
        }
    }

    /// The raw JSON text of the object.
    pub fn as_json(&self) -> &str {
        self.0.get()
    }

    /// Parses the attributes into a JSON map.
    pub fn to_map(&self) -> serde_json::Map<String, serde_json::Value> {
        serde_json::from_str(self.0.get()).unwrap_or_default()
    }

    /// Detaches from the input buffer.
    pub fn into_owned(self) -> Attrs<'static> {
        Attrs(Cow::Owned(self.0.into_owned()))
    }
}

/// The kind-specific part of an event.
#[derive(Debug, Clone, PartialEq)]
pub enum Payload<'a> {
    /// A log line or message.
    Log {
        /// Severity, when the source knows it.
        severity: Option<Severity>,
        /// The message text.
        body: Cow<'a, str>,
    },
    /// A numeric sample.
    Metric {
        /// Metric name, Prometheus style (`[a-zA-Z_:][a-zA-Z0-9_:]*`).
        name: Cow<'a, str>,
        /// The value and its type.
        value: MetricValue,
    },
    /// A structured row (parsed CLI output, an SNMP table row, ...): its fields are `attrs`.
    Record,
}

/// The three event kinds, as they appear in the `kind` field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// `"log"`
    Log,
    /// `"metric"`
    Metric,
    /// `"record"`
    Record,
}

impl Kind {
    /// All kinds, in a fixed order.
    pub const ALL: [Kind; 3] = [Kind::Log, Kind::Metric, Kind::Record];

    /// The name used on the wire and in paths.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Log => "log",
            Kind::Metric => "metric",
            Kind::Record => "record",
        }
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Kind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "log" => Ok(Kind::Log),
            "metric" => Ok(Kind::Metric),
            "record" => Ok(Kind::Record),
            _ => Err(format!(
                "unknown kind `{s}`; expected `log`, `metric` or `record`"
            )),
        }
    }
}

/// Log severity, syslog's eight levels plus `trace`, from least to most severe.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Finer than debug.
    Trace,
    /// Debug (syslog 7).
    Debug,
    /// Informational (syslog 6).
    Info,
    /// Normal but significant (syslog 5).
    Notice,
    /// Warning (syslog 4).
    Warning,
    /// Error (syslog 3).
    Error,
    /// Critical (syslog 2).
    Critical,
    /// Action must be taken immediately (syslog 1).
    Alert,
    /// System is unusable (syslog 0).
    Emergency,
}

impl Severity {
    /// All severities from least to most severe.
    pub const ALL: [Severity; 9] = [
        Severity::Trace,
        Severity::Debug,
        Severity::Info,
        Severity::Notice,
        Severity::Warning,
        Severity::Error,
        Severity::Critical,
        Severity::Alert,
        Severity::Emergency,
    ];

    /// The name used on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Trace => "trace",
            Severity::Debug => "debug",
            Severity::Info => "info",
            Severity::Notice => "notice",
            Severity::Warning => "warning",
            Severity::Error => "error",
            Severity::Critical => "critical",
            Severity::Alert => "alert",
            Severity::Emergency => "emergency",
        }
    }

    /// The severity for a syslog severity number (0 = emergency ... 7 = debug).
    pub fn from_syslog(n: u8) -> Option<Severity> {
        Some(match n {
            0 => Severity::Emergency,
            1 => Severity::Alert,
            2 => Severity::Critical,
            3 => Severity::Error,
            4 => Severity::Warning,
            5 => Severity::Notice,
            6 => Severity::Info,
            7 => Severity::Debug,
            _ => return None,
        })
    }
}

impl std::str::FromStr for Severity {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Severity::ALL
            .into_iter()
            .find(|v| v.as_str() == s)
            .ok_or_else(|| {
                format!("unknown severity `{s}`; expected one of trace, debug, info, notice, warning, error, critical, alert, emergency")
            })
    }
}

/// The type of a metric, as it appears in the `type` field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MetricType {
    /// A value that goes up and down.
    Gauge,
    /// A monotonically increasing total.
    Counter,
    /// Cumulative buckets with a count and a sum.
    Histogram,
}

impl MetricType {
    /// The name used on the wire (and in Prometheus `# TYPE` lines).
    pub fn as_str(self) -> &'static str {
        match self {
            MetricType::Gauge => "gauge",
            MetricType::Counter => "counter",
            MetricType::Histogram => "histogram",
        }
    }
}

/// A metric's value.
#[derive(Debug, Clone, PartialEq)]
pub enum MetricValue {
    /// `"type":"gauge","value":v`
    Gauge(f64),
    /// `"type":"counter","value":v` (v ≥ 0)
    Counter(f64),
    /// `"type":"histogram","buckets":[{"le":0.1,"count":3},...],"count":n,"sum":s`
    Histogram(Histogram),
}

impl MetricValue {
    /// The metric type of this value.
    pub fn metric_type(&self) -> MetricType {
        match self {
            MetricValue::Gauge(_) => MetricType::Gauge,
            MetricValue::Counter(_) => MetricType::Counter,
            MetricValue::Histogram(_) => MetricType::Histogram,
        }
    }
}

/// A cumulative histogram, Prometheus style.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Histogram {
    /// Buckets by ascending upper bound; counts are cumulative. The `+Inf` bucket is implied
    /// by `count`.
    pub buckets: Vec<Bucket>,
    /// Number of observations.
    pub count: u64,
    /// Sum of the observations.
    pub sum: f64,
}

/// One histogram bucket: observations ≤ `le`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Bucket {
    /// Upper bound (inclusive), finite.
    pub le: f64,
    /// Cumulative count of observations ≤ `le`.
    pub count: u64,
}

impl<'a> Event<'a> {
    /// The kind of this event.
    pub fn kind(&self) -> Kind {
        match self.payload {
            Payload::Log { .. } => Kind::Log,
            Payload::Metric { .. } => Kind::Metric,
            Payload::Record => Kind::Record,
        }
    }

    /// The event as one NDJSON line (without the newline).
    pub fn to_json(&self) -> String {
        let mut out = Vec::with_capacity(256);
        crate::write::write_event(&mut out, self);
        String::from_utf8(out).expect("the writer writes UTF-8")
    }

    /// Appends the event and a newline to `out` ([`crate::write`]).
    pub fn write_line(&self, out: &mut Vec<u8>) {
        crate::write::write_event(out, self);
        out.push(b'\n');
    }

    /// Detaches the event from the buffer it was parsed from.
    pub fn into_owned(self) -> Event<'static> {
        Event {
            ts: self.ts,
            host: Cow::Owned(self.host.into_owned()),
            source: Cow::Owned(self.source.into_owned()),
            labels: self
                .labels
                .into_iter()
                .map(|(k, v)| (Cow::Owned(k.into_owned()), Cow::Owned(v.into_owned())))
                .collect(),
            attrs: self.attrs.map(Attrs::into_owned),
            payload: match self.payload {
                Payload::Log { severity, body } => Payload::Log {
                    severity,
                    body: Cow::Owned(body.into_owned()),
                },
                Payload::Metric { name, value } => Payload::Metric {
                    name: Cow::Owned(name.into_owned()),
                    value,
                },
                Payload::Record => Payload::Record,
            },
        }
    }
}

/// Why one line of a batch is not a valid event.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {}{message}", field.as_deref().map(|f| format!("field `{f}`: ")).unwrap_or_default())]
pub struct LineError {
    /// 1-based line number in the (decompressed) body.
    pub line: usize,
    /// The field the error is in, when it is in one.
    pub field: Option<String>,
    /// What was wrong.
    pub message: String,
}

/// Parses and validates one NDJSON line (1-based `line` number for the error).
///
/// Strings are borrowed from `text` where possible. The error names the field the problem is
/// in and says what was wrong: unknown fields, missing fields, wrong types, fields that do not
/// belong to the event's kind, bad timestamps, bad metric names and non-finite values are all
/// rejected.
pub fn parse_line(text: &str, line: usize) -> Result<Event<'_>, LineError> {
    let field = Cell::new(None);
    let mut de = serde_json::Deserializer::from_str(text);
    let result = EventSeed { field: &field }
        .deserialize(&mut de)
        .and_then(|ev| de.end().map(|()| ev));
    result.map_err(|e| {
        let mut message = e.to_string();
        // serde_json appends " at line L column C"; the line is always 1 here, the column
        // is useful only outside a field.
        if let Some(at) = message.rfind(" at line ") {
            message.truncate(at);
        }
        let field = field.get().map(str::to_owned);
        if field.is_none() && e.column() > 0 {
            message = format!("{message} (column {})", e.column());
        }
        LineError {
            line,
            field,
            message,
        }
    })
}

impl<'de: 'a, 'a> Deserialize<'de> for Event<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let field = Cell::new(None);
        EventSeed { field: &field }.deserialize(d)
    }
}

/// Deserializes an event and records which field it was reading when it failed.
struct EventSeed<'c> {
    field: &'c Cell<Option<&'static str>>,
}

const FIELDS: &[&str] = &[
    "ts", "kind", "host", "source", "labels", "attrs", "severity", "body", "name", "type", "value",
    "buckets", "count", "sum",
];

/// The `&'static` name of a known field (one `match` on the key instead of comparing it with
/// each of [`FIELDS`] in turn: this runs for every field of every event the ingest takes).
fn known_field(key: &str) -> Option<&'static str> {
    let known = match key {
        "ts" => "ts",
        "kind" => "kind",
        "host" => "host",
        "source" => "source",
        "labels" => "labels",
        "attrs" => "attrs",
        "severity" => "severity",
        "body" => "body",
        "name" => "name",
        "type" => "type",
        "value" => "value",
        "buckets" => "buckets",
        "count" => "count",
        "sum" => "sum",
        _ => return None,
    };
    debug_assert!(FIELDS.contains(&known));
    Some(known)
}

impl<'de, 'c> DeserializeSeed<'de> for EventSeed<'c> {
    type Value = Event<'de>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Event<'de>, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de, 'c> Visitor<'de> for EventSeed<'c> {
    type Value = Event<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an event object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Event<'de>, A::Error> {
        let mut ts: Option<Timestamp> = None;
        let mut kind: Option<Kind> = None;
        let mut host: Option<Cow<'de, str>> = None;
        let mut source: Option<Cow<'de, str>> = None;
        let mut labels: Option<Labels<'de>> = None;
        let mut attrs: Option<Attrs<'de>> = None;
        let mut severity: Option<Severity> = None;
        let mut body: Option<Cow<'de, str>> = None;
        let mut name: Option<Cow<'de, str>> = None;
        let mut mtype: Option<MetricType> = None;
        let mut value: Option<f64> = None;
        let mut buckets: Option<Vec<Bucket>> = None;
        let mut count: Option<u64> = None;
        let mut sum: Option<f64> = None;

        fn once<T, E: de::Error>(slot: &Option<T>, name: &'static str) -> Result<(), E> {
            if slot.is_some() {
                Err(E::custom(format!("duplicate field `{name}`")))
            } else {
                Ok(())
            }
        }

        while let Some(key) = map.next_key::<CowStr<'de>>()? {
            let key = key.0;
            let Some(known) = known_field(&key) else {
                self.field.set(None);
                return Err(de::Error::custom(format!(
                    "unknown field `{key}`; expected one of {}",
                    FIELDS.join(", ")
                )));
            };
            self.field.set(Some(known));
            match known {
                "ts" => {
                    once(&ts, known)?;
                    ts = Some(map.next_value()?);
                }
                "kind" => {
                    once(&kind, known)?;
                    kind = Some(map.next_value::<ByName<Kind>>()?.0);
                }
                "host" => {
                    once(&host, known)?;
                    host = Some(map.next_value::<CowStr>()?.0);
                }
                "source" => {
                    once(&source, known)?;
                    source = Some(map.next_value::<CowStr>()?.0);
                }
                "labels" => {
                    once(&labels, known)?;
                    labels = Some(map.next_value::<LabelsDe>()?.0);
                }
                "attrs" => {
                    once(&attrs, known)?;
                    let raw: &'de RawValue = map.next_value()?;
                    attrs = Some(Attrs::from_raw(raw).map_err(de::Error::custom)?);
                }
                "severity" => {
                    once(&severity, known)?;
                    severity = Some(map.next_value::<ByName<Severity>>()?.0);
                }
                "body" => {
                    once(&body, known)?;
                    body = Some(map.next_value::<CowStr>()?.0);
                }
                "name" => {
                    once(&name, known)?;
                    name = Some(map.next_value::<CowStr>()?.0);
                }
                "type" => {
                    once(&mtype, known)?;
                    mtype = Some(map.next_value::<ByName<MetricType>>()?.0);
                }
                "value" => {
                    once(&value, known)?;
                    value = Some(map.next_value()?);
                }
                "buckets" => {
                    once(&buckets, known)?;
                    buckets = Some(map.next_value()?);
                }
                "count" => {
                    once(&count, known)?;
                    count = Some(map.next_value()?);
                }
                "sum" => {
                    once(&sum, known)?;
                    sum = Some(map.next_value()?);
                }
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
            self.field.set(None);
        }

        let field = self.field;
        let fail = |name: &'static str, msg: String| {
            field.set(Some(name));
            de::Error::custom(msg)
        };
        let missing = |name: &'static str| {
            field.set(Some(name));
            de::Error::missing_field(name)
        };
        let not_for = |name: &'static str, kind: Kind| {
            field.set(Some(name));
            de::Error::custom(format!("not allowed for kind `{kind}`"))
        };

        let ts = ts.ok_or_else(|| missing("ts"))?;
        let kind = kind.ok_or_else(|| missing("kind"))?;
        let host = host.ok_or_else(|| missing("host"))?;
        if host.is_empty() {
            return Err(fail("host", "must not be empty".into()));
        }
        let source = source.ok_or_else(|| missing("source"))?;
        if source.is_empty() {
            return Err(fail("source", "must not be empty".into()));
        }
        let labels = labels.unwrap_or_default();

        let presence = [
            ("severity", severity.is_some()),
            ("body", body.is_some()),
            ("name", name.is_some()),
            ("type", mtype.is_some()),
            ("value", value.is_some()),
            ("buckets", buckets.is_some()),
            ("count", count.is_some()),
            ("sum", sum.is_some()),
        ];
        let present = |n: &str| presence.iter().any(|(f, p)| *p && *f == n);
        let allowed: &[&str] = match kind {
            Kind::Log => &["severity", "body"],
            Kind::Metric => &["name", "type", "value", "buckets", "count", "sum"],
            Kind::Record => &[],
        };
        for (f, is_present) in presence {
            if is_present && !allowed.contains(&f) {
                return Err(not_for(f, kind));
            }
        }

        let payload = match kind {
            Kind::Log => Payload::Log {
                severity,
                body: body.ok_or_else(|| missing("body"))?,
            },
            Kind::Record => {
                if attrs.is_none() {
                    return Err(missing("attrs"));
                }
                Payload::Record
            }
            Kind::Metric => {
                let name = name.ok_or_else(|| missing("name"))?;
                if !is_metric_name(&name) {
                    return Err(fail(
                        "name",
                        format!("`{name}` is not a valid metric name ([a-zA-Z_:][a-zA-Z0-9_:]*)"),
                    ));
                }
                for key in labels.keys() {
                    if !is_label_name(key) {
                        return Err(fail(
                            "labels",
                            format!("`{key}` is not a valid label name for a metric ([a-zA-Z_][a-zA-Z0-9_]*)"),
                        ));
                    }
                }
                let mtype = mtype.ok_or_else(|| missing("type"))?;
                let value = match mtype {
                    MetricType::Gauge | MetricType::Counter => {
                        for f in ["buckets", "count", "sum"] {
                            if present(f) {
                                return Err(fail(
                                    f,
                                    format!("only for type `histogram`, not `{}`", mtype.as_str()),
                                ));
                            }
                        }
                        let v = value.ok_or_else(|| missing("value"))?;
                        if !v.is_finite() {
                            return Err(fail("value", "must be a finite number".into()));
                        }
                        if mtype == MetricType::Counter {
                            if v < 0.0 {
                                return Err(fail("value", "a counter must not be negative".into()));
                            }
                            MetricValue::Counter(v)
                        } else {
                            MetricValue::Gauge(v)
                        }
                    }
                    MetricType::Histogram => {
                        if present("value") {
                            return Err(fail(
                                "value",
                                "a histogram has `buckets`, `count` and `sum` instead".into(),
                            ));
                        }
                        let buckets = buckets.ok_or_else(|| missing("buckets"))?;
                        let count = count.ok_or_else(|| missing("count"))?;
                        let sum = sum.ok_or_else(|| missing("sum"))?;
                        if !sum.is_finite() {
                            return Err(fail("sum", "must be a finite number".into()));
                        }
                        let mut prev: Option<&Bucket> = None;
                        for b in &buckets {
                            if !b.le.is_finite() {
                                return Err(fail(
                                    "buckets",
                                    "`le` must be finite (the +Inf bucket is `count`)".into(),
                                ));
                            }
                            if let Some(p) = prev {
                                if b.le <= p.le {
                                    return Err(fail(
                                        "buckets",
                                        "`le` must be strictly ascending".into(),
                                    ));
                                }
                                if b.count < p.count {
                                    return Err(fail(
                                        "buckets",
                                        "counts must be cumulative (never decreasing)".into(),
                                    ));
                                }
                            }
                            if b.count > count {
                                return Err(fail(
                                    "buckets",
                                    "a bucket count exceeds `count`".into(),
                                ));
                            }
                            prev = Some(b);
                        }
                        MetricValue::Histogram(Histogram {
                            buckets,
                            count,
                            sum,
                        })
                    }
                };
                Payload::Metric { name, value }
            }
        };
        field.set(None);
        Ok(Event {
            ts,
            host,
            source,
            labels,
            attrs,
            payload,
        })
    }
}

/// `[a-zA-Z_:][a-zA-Z0-9_:]*`
pub fn is_metric_name(s: &str) -> bool {
    let mut bytes = s.bytes();
    matches!(bytes.next(), Some(b'a'..=b'z' | b'A'..=b'Z' | b'_' | b':'))
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b':')
}

/// `[a-zA-Z_][a-zA-Z0-9_]*`
pub fn is_label_name(s: &str) -> bool {
    let mut bytes = s.bytes();
    matches!(bytes.next(), Some(b'a'..=b'z' | b'A'..=b'Z' | b'_'))
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// A unit enum whose wire names are its variants' names.
trait Named: Sized + Copy + 'static {
    /// Every variant.
    const ALL: &'static [Self];
    /// Their names, in the same order.
    const NAMES: &'static [&'static str];
}

impl Named for Kind {
    const ALL: &'static [Self] = &Kind::ALL;
    const NAMES: &'static [&'static str] = &["log", "metric", "record"];
}

impl Named for Severity {
    const ALL: &'static [Self] = &Severity::ALL;
    const NAMES: &'static [&'static str] = &[
        "trace",
        "debug",
        "info",
        "notice",
        "warning",
        "error",
        "critical",
        "alert",
        "emergency",
    ];
}

impl Named for MetricType {
    const ALL: &'static [Self] = &[
        MetricType::Gauge,
        MetricType::Counter,
        MetricType::Histogram,
    ];
    const NAMES: &'static [&'static str] = &["gauge", "counter", "histogram"];
}

/// A unit enum read from its name with a string compare (serde's derived enum machinery was
/// ~2 % of the ingest's CPU); the error for an unknown name is serde's own.
struct ByName<T>(T);

impl<'de, T: Named> Deserialize<'de> for ByName<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let name = CowStr::deserialize(d)?.0;
        match T::NAMES.iter().position(|n| *n == name) {
            Some(i) => Ok(ByName(T::ALL[i])),
            None => Err(de::Error::unknown_variant(&name, T::NAMES)),
        }
    }
}

/// A string that borrows from the input when it has no escapes.
struct CowStr<'de>(Cow<'de, str>);

impl<'de> Deserialize<'de> for CowStr<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = CowStr<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(CowStr(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(CowStr(Cow::Owned(v.to_owned())))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
                Ok(CowStr(Cow::Owned(v)))
            }
        }
        d.deserialize_str(V)
    }
}

/// A labels object whose keys and values borrow from the input; duplicate keys are errors.
struct LabelsDe<'de>(Labels<'de>);

impl<'de> Deserialize<'de> for LabelsDe<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = LabelsDe<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an object of string values")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut out = Labels::new();
                while let Some(k) = map.next_key::<CowStr<'de>>()? {
                    let v = map
                        .next_value::<CowStr<'de>>()
                        .map_err(|e| de::Error::custom(format!("label `{}`: {e}", k.0)))?;
                    if k.0.is_empty() {
                        return Err(de::Error::custom("a label name must not be empty"));
                    }
                    if out.insert(k.0.clone(), v.0).is_some() {
                        return Err(de::Error::custom(format!("duplicate label `{}`", k.0)));
                    }
                }
                Ok(LabelsDe(out))
            }
        }
        d.deserialize_map(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(line: &str) -> LineError {
        parse_line(line, 7).expect_err("should be rejected")
    }

    #[test]
    fn the_architecture_examples_parse_and_round_trip() {
        let lines = [
            r#"{"ts":"2026-11-22T10:00:00.123456789Z","kind":"log","host":"web-01","source":"file","labels":{"env":"prod","service":"nginx"},"attrs":{"path":"/var/log/nginx/access.log","offset":12345},"severity":"info","body":"GET / 200"}"#,
            r#"{"ts":"2026-11-22T10:00:00.000000000Z","kind":"metric","host":"web-01","source":"host","labels":{"cpu":"total"},"name":"host_cpu_usage_ratio","type":"gauge","value":0.23}"#,
            r#"{"ts":"2026-11-22T10:00:00.000000000Z","kind":"record","host":"web-01","source":"ssh","labels":{"command":"show ip interface brief","device":"edge-rtr1"},"attrs":{"interface":"Gi0/1","ip":"10.0.0.1","status":"up"}}"#,
            r#"{"ts":"2026-11-22T10:00:00.000000000Z","kind":"metric","host":"h","source":"s","name":"rtt_seconds","type":"histogram","buckets":[{"le":0.001,"count":2},{"le":0.01,"count":5}],"count":6,"sum":0.031}"#,
        ];
        for l in lines {
            let ev = parse_line(l, 1).unwrap();
            assert_eq!(ev.to_json(), l, "round trip");
        }
    }

    #[test]
    fn strings_without_escapes_are_borrowed() {
        let l =
            r#"{"ts":"2026-11-22T10:00:00Z","kind":"log","host":"h","source":"s","body":"plain"}"#;
        let ev = parse_line(l, 1).unwrap();
        assert!(matches!(ev.host, Cow::Borrowed(_)));
        let Payload::Log { body, .. } = ev.payload else {
            panic!()
        };
        assert!(matches!(body, Cow::Borrowed(_)));
    }

    #[test]
    fn errors_name_the_line_and_field() {
        let e = err(r#"{"ts":"yesterday","kind":"log","host":"h","source":"s","body":"b"}"#);
        assert_eq!((e.line, e.field.as_deref()), (7, Some("ts")));
        assert!(e.message.contains("RFC 3339"), "{}", e.message);

        let e = err(
            r#"{"ts":"2026-11-22T10:00:00Z","kind":"metric","host":"h","source":"s","name":"x","type":"gauge","value":"high"}"#,
        );
        assert_eq!(e.field.as_deref(), Some("value"));
        assert!(e.message.contains("invalid type"), "{}", e.message);

        let e = err(r#"{"ts":"2026-11-22T10:00:00Z","kind":"log","host":"h","source":"s"}"#);
        assert_eq!(e.field.as_deref(), Some("body"));
        assert!(e.message.contains("missing field"), "{}", e.message);

        let e = err(
            r#"{"ts":"2026-11-22T10:00:00Z","kind":"log","host":"h","source":"s","body":"b","colour":1}"#,
        );
        assert!(
            e.message.contains("unknown field `colour`"),
            "{}",
            e.message
        );

        let e = err(
            r#"{"ts":"2026-11-22T10:00:00Z","kind":"log","host":"h","source":"s","body":"b","value":1}"#,
        );
        assert_eq!(e.field.as_deref(), Some("value"));
        assert!(
            e.message.contains("not allowed for kind `log`"),
            "{}",
            e.message
        );

        let e = err(
            r#"{"ts":"2026-11-22T10:00:00Z","kind":"metric","host":"h","source":"s","name":"bad-name","type":"gauge","value":1}"#,
        );
        assert_eq!(e.field.as_deref(), Some("name"));

        let e = err(
            r#"{"ts":"2026-11-22T10:00:00Z","kind":"metric","host":"h","source":"s","name":"c","type":"counter","value":-1}"#,
        );
        assert_eq!(e.field.as_deref(), Some("value"));

        let e = err(
            r#"{"ts":"2026-11-22T10:00:00Z","kind":"record","host":"h","source":"s","attrs":[1]}"#,
        );
        assert_eq!(e.field.as_deref(), Some("attrs"));

        let e = err(
            r#"{"ts":"2026-11-22T10:00:00Z","kind":"log","host":"h","source":"s","labels":{"a":1},"body":"b"}"#,
        );
        assert_eq!(e.field.as_deref(), Some("labels"));
        assert!(e.message.contains("label `a`"), "{}", e.message);

        let e = err(r#"{"ts":"2026-11-22T10:00:00Z","kind":"log","host":"h""#);
        assert_eq!(e.field, None);
        assert!(e.message.contains("column"), "{}", e.message);

        let e =
            err(r#"{"ts":"2026-11-22T10:00:00Z","kind":"log","host":"","source":"s","body":"b"}"#);
        assert_eq!(e.field.as_deref(), Some("host"));

        let e = err(
            r#"{"ts":"2026-11-22T10:00:00Z","kind":"log","host":"h","source":"s","body":"b"} x"#,
        );
        assert!(e.message.contains("trailing"), "{}", e.message);
    }

    #[test]
    fn enums_are_read_by_their_wire_names() {
        for k in Kind::ALL {
            assert_eq!(<Kind as Named>::NAMES[k as usize], k.as_str());
        }
        for v in Severity::ALL {
            assert_eq!(<Severity as Named>::NAMES[v as usize], v.as_str());
        }
        for (i, t) in <MetricType as Named>::ALL.iter().enumerate() {
            assert_eq!(<MetricType as Named>::NAMES[i], t.as_str());
        }
        let e = err(r#"{"ts":"2026-11-22T10:00:00Z","kind":"lg","host":"h","source":"s"}"#);
        assert_eq!(e.field.as_deref(), Some("kind"));
        assert!(
            e.message
                .contains("unknown variant `lg`, expected one of `log`, `metric`, `record`"),
            "{}",
            e.message
        );
        let e = err(
            r#"{"ts":"2026-11-22T10:00:00Z","kind":"log","host":"h","source":"s","severity":"loud","body":"b"}"#,
        );
        assert_eq!(e.field.as_deref(), Some("severity"));
        assert!(
            e.message.contains("unknown variant `loud`"),
            "{}",
            e.message
        );
        let ev = parse_line(
            r#"{"ts":"2026-11-22T10:00:00Z","kind":"log","host":"h","source":"s","severity":"emergency","body":"b"}"#,
            1,
        )
        .unwrap();
        assert!(matches!(
            ev.payload,
            Payload::Log {
                severity: Some(Severity::Emergency),
                ..
            }
        ));
    }

    #[test]
    fn every_field_is_known_by_its_name() {
        for f in FIELDS {
            assert_eq!(known_field(f), Some(*f));
        }
        assert_eq!(known_field("colour"), None);
        assert_eq!(known_field("Ts"), None);
    }

    #[test]
    fn line_error_display_is_self_contained() {
        let e = LineError {
            line: 3,
            field: Some("value".into()),
            message: "must be a finite number".into(),
        };
        assert_eq!(
            e.to_string(),
            "line 3: field `value`: must be a finite number"
        );
    }
}
