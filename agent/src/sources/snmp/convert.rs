//! Varbinds → events.
//!
//! - Numbers are metrics named `snmp_<MIB name>` (`snmp_ifHCInOctets`): Counter32 and
//!   Counter64 are counters, Gauge32/Unsigned32, INTEGER and TimeTicks (hundredths of a
//!   second, as sent) gauges.
//! - A Counter32 is extended to 64 bits across wraps: a value below the previous one while
//!   `sysUpTime` kept growing is a wrap (+2^32), so downstream rates never see a false reset.
//!   After a reboot (`sysUpTime` went back) counting starts over from the device's value.
//! - Table rows: every metric of a row is labelled with the table's index label (`ifIndex`)
//!   and its label columns (`ifName`, `ifAlias`; `hrStorageType`, `hrStorageDescr`). The
//!   row's other strings (`ifDescr`, `ifPhysAddress`, ...) go into one `record` event per row.
//! - String scalars (`sysDescr.0`, `sysName.0`, ...) go into one `record` per poll.
//! - Objects without a built-in name are named by their OID: a GET of `1.3.6.1.4.1.9.2.1.58.0`
//!   gives `snmp_1_3_6_1_4_1_9_2_1_58_0`; a walk of `1.3.6.1.4.1.2021.10.1.5` gives
//!   `snmp_1_3_6_1_4_1_2021_10_1_5` labelled `index` (`1`, `2`, ...); their strings go into
//!   one record per walk keyed by OID.
//!
//! Every event has `source` `snmp`, the agent id as `host`, and labels: the agent's, the
//! device's `labels`, and `device` (its name).

use std::borrow::Cow;
use std::collections::hash_map::DefaultHasher;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::hash::{Hash, Hasher};
use std::sync::{Arc, LazyLock};

use logops_common::event::{Attrs, Event, Labels, MetricValue, Payload};
use logops_common::Timestamp;

use super::codec::{Value, Varbind};
use super::names::{self, Known, Role, Table};
use super::oid::Oid;
use crate::sources::merge_labels;

/// The `source` of SNMP events.
pub const SOURCE: &str = "snmp";

/// `sysUpTime.0`.
pub const SYS_UPTIME: [u32; 9] = [1, 3, 6, 1, 2, 1, 1, 3, 0];

/// Metric names of the built-in objects, made once.
static METRIC_NAMES: LazyLock<HashMap<&'static str, &'static str>> = LazyLock::new(|| {
    let mut m = HashMap::new();
    let columns = names::TABLES
        .iter()
        .flat_map(|t| t.columns.iter().map(|c| c.name));
    for n in columns.chain(names::SCALARS.iter().map(|s| s.name)) {
        let leaked: &'static str = Box::leak(format!("snmp_{n}").into_boxed_str());
        m.insert(n, leaked);
    }
    m
});

fn metric_name(mib_name: &'static str) -> Cow<'static, str> {
    match METRIC_NAMES.get(mib_name) {
        Some(n) => Cow::Borrowed(n),
        None => Cow::Owned(format!("snmp_{mib_name}")),
    }
}

/// A value as a number and its type, or `None` for strings and exceptions.
fn number(v: &Value) -> Option<(f64, bool)> {
    match v {
        Value::Integer(i) => Some((*i as f64, false)),
        Value::Gauge32(g) => Some((f64::from(*g), false)),
        Value::TimeTicks(t) => Some((f64::from(*t), false)),
        Value::Counter32(c) => Some((f64::from(*c), true)),
        Value::Counter64(c) => Some((*c as f64, true)),
        _ => None,
    }
}

/// A value as text (strings, OIDs, addresses), or `None` for numbers and exceptions.
pub fn text(v: &Value) -> Option<String> {
    match v {
        Value::OctetString(b) => Some(octets(b)),
        Value::Oid(o) => Some(names::value_name(o).map_or_else(|| o.to_string(), str::to_owned)),
        Value::IpAddress(a) => Some(std::net::Ipv4Addr::from(*a).to_string()),
        Value::Opaque(b) => Some(hex(b)),
        _ => None,
    }
}

/// An OCTET STRING as text when it is printable UTF-8 (trailing NULs dropped), else as hex
/// octets `2a:8f:bd:eb:c0:04` (MAC addresses and other binary values).
pub fn octets(b: &[u8]) -> String {
    let trimmed = {
        let end = b.iter().rposition(|&c| c != 0).map_or(0, |p| p + 1);
        &b[..end]
    };
    match std::str::from_utf8(trimmed) {
        Ok(s)
            if s.chars()
                .all(|c| !c.is_control() || c == '\t' || c == '\n' || c == '\r') =>
        {
            s.to_owned()
        }
        _ => hex(b),
    }
}

fn hex(b: &[u8]) -> String {
    let mut s = String::with_capacity(b.len() * 3);
    for (i, x) in b.iter().enumerate() {
        if i > 0 {
            s.push(':');
        }
        s.push_str(&format!("{x:02x}"));
    }
    s
}

/// What a poll brought back.
#[derive(Debug, Default, Clone)]
pub struct PollData {
    /// Answers to the GETs.
    pub gets: Vec<Varbind>,
    /// Each walk's root and varbinds (complete walks only).
    pub walks: Vec<(Oid, Vec<Varbind>)>,
    /// Label columns fetched for rows whose label table was not walked.
    pub labels: Vec<Varbind>,
    /// Whether every request of the poll succeeded.
    pub complete: bool,
}

/// Counter32 wrap state of one instance.
#[derive(Debug, Clone, Copy)]
struct Wrap {
    last: u32,
    high: u64,
}

/// Turns one device's polls into events; keeps the Counter32 wrap state between polls.
pub struct Converter {
    host: Arc<str>,
    base: Labels<'static>,
    wraps: HashMap<u64, Wrap>,
    last_uptime: Option<u32>,
}

fn key(oid: &Oid) -> u64 {
    let mut h = DefaultHasher::new();
    oid.arcs().hash(&mut h);
    h.finish()
}

/// Events of one poll, all with the same timestamp and base labels.
struct Out<'a> {
    ts: Timestamp,
    host: &'a Arc<str>,
    base: &'a Labels<'static>,
    events: Vec<Event<'static>>,
}

impl Out<'_> {
    fn labels(&self, extra: &[(&'static str, String)]) -> Labels<'static> {
        let mut l = self.base.clone();
        for (k, v) in extra {
            if !v.is_empty() {
                l.insert(Cow::Borrowed(*k), Cow::Owned(v.clone()));
            }
        }
        l
    }

    fn metric(&mut self, name: Cow<'static, str>, labels: Labels<'static>, value: MetricValue) {
        self.events.push(Event {
            ts: self.ts,
            host: Cow::Owned(self.host.to_string()),
            source: Cow::Borrowed(SOURCE),
            labels,
            attrs: None,
            payload: Payload::Metric { name, value },
        });
    }

    fn record(
        &mut self,
        labels: Labels<'static>,
        attrs: serde_json::Map<String, serde_json::Value>,
    ) {
        if attrs.is_empty() {
            return;
        }
        self.events.push(Event {
            ts: self.ts,
            host: Cow::Owned(self.host.to_string()),
            source: Cow::Borrowed(SOURCE),
            labels,
            attrs: Some(Attrs::from_map(&attrs)),
            payload: Payload::Record,
        });
    }
}

/// One table row being assembled.
#[derive(Default)]
struct Row {
    /// Column name, value (a number), wrap-state key.
    metrics: Vec<(&'static str, Value, u64)>,
    strings: serde_json::Map<String, serde_json::Value>,
}

impl Converter {
    /// A converter for a device: `host` is the agent id; labels are the agent's, then the
    /// device's, then `device`.
    pub fn new(
        host: Arc<str>,
        agent_labels: &BTreeMap<String, String>,
        device: &str,
        device_labels: &BTreeMap<String, String>,
    ) -> Converter {
        let mut own = device_labels.clone();
        own.insert("device".into(), device.to_owned());
        Converter {
            host,
            base: merge_labels(agent_labels, &own),
            wraps: HashMap::new(),
            last_uptime: None,
        }
    }

    /// The base labels (agent's, device's, `device`).
    pub fn base_labels(&self) -> &Labels<'static> {
        &self.base
    }

    /// A counter value with Counter32 wraps accounted for.
    fn counter(&mut self, k: u64, v: &Value, seen: &mut Vec<u64>) -> f64 {
        let Value::Counter32(raw) = *v else {
            return number(v).map_or(0.0, |(n, _)| n);
        };
        seen.push(k);
        let w = self.wraps.entry(k).or_insert(Wrap { last: raw, high: 0 });
        if raw < w.last {
            w.high += 1 << 32;
        }
        w.last = raw;
        (w.high + u64::from(raw)) as f64
    }

    /// The events of a poll taken at `ts`, plus `snmp_up` and `snmp_poll_duration_seconds`.
    pub fn events(
        &mut self,
        ts: Timestamp,
        data: &PollData,
        up: bool,
        duration_seconds: f64,
    ) -> Vec<Event<'static>> {
        // A reboot (sysUpTime went back) starts counting over.
        let uptime = data
            .gets
            .iter()
            .find_map(|v| match (&v.value, v.oid.arcs() == SYS_UPTIME) {
                (Value::TimeTicks(t), true) => Some(*t),
                _ => None,
            });
        if let (Some(now), Some(before)) = (uptime, self.last_uptime) {
            if now < before {
                self.wraps.clear();
            }
        }
        if uptime.is_some() {
            self.last_uptime = uptime;
        }

        // Label cells of this poll: (entry OID, column, index) → text.
        let mut label_cells: HashMap<(&'static [u32], u32, String), String> = HashMap::new();
        let all_walked = data.walks.iter().flat_map(|(_, v)| v.iter());
        for vb in all_walked.chain(data.labels.iter()) {
            if let Known::Cell {
                table,
                column,
                index,
            } = names::classify(&vb.oid)
            {
                if let Some(label) = table.labels.iter().find(|l| {
                    l.sub == column.sub
                        && names::table_of_entry(l.entry).is_some_and(|t| std::ptr::eq(t, table))
                }) {
                    if let Some(t) =
                        text(&vb.value).or_else(|| number(&vb.value).map(|(n, _)| n.to_string()))
                    {
                        label_cells.insert((label.entry, label.sub, index), t);
                    }
                }
            }
        }

        let mut seen = Vec::new();
        let base = self.base.clone();
        let host = self.host.clone();
        let mut out = Out {
            ts,
            host: &host,
            base: &base,
            events: Vec::new(),
        };
        let mut scalar_strings = serde_json::Map::new();
        // An object fetched twice in one poll (`sysUpTime.0`, always fetched, inside a walk
        // of `system`; overlapping walks) is one sample: the first one counts.
        let mut fetched: HashSet<&Oid> = HashSet::new();
        for vb in &data.gets {
            if fetched.insert(&vb.oid) {
                self.scalar_or_unknown(&mut out, vb, None, &mut scalar_strings, &mut seen);
            }
        }
        for (root, varbinds) in &data.walks {
            let mut rows: BTreeMap<(&'static str, String), (&'static Table, Row)> = BTreeMap::new();
            let mut unknown_strings = serde_json::Map::new();
            for vb in varbinds {
                if !fetched.insert(&vb.oid) {
                    continue;
                }
                match names::classify(&vb.oid) {
                    Known::Cell {
                        table,
                        column,
                        index,
                    } => {
                        if column.role != Role::Value {
                            continue;
                        }
                        let row = &mut rows
                            .entry((table.name, index))
                            .or_insert_with(|| (table, Row::default()))
                            .1;
                        if number(&vb.value).is_some() {
                            let k = if matches!(vb.value, Value::Counter32(_)) {
                                key(&vb.oid)
                            } else {
                                0
                            };
                            row.metrics.push((column.name, vb.value.clone(), k));
                        } else if let Some(t) = text(&vb.value) {
                            row.strings.insert(column.name.to_owned(), t.into());
                        }
                    }
                    _ => self.scalar_or_unknown(
                        &mut out,
                        vb,
                        Some(root),
                        if matches!(names::classify(&vb.oid), Known::Scalar(_)) {
                            &mut scalar_strings
                        } else {
                            &mut unknown_strings
                        },
                        &mut seen,
                    ),
                }
            }
            for ((_, index), (table, row)) in rows {
                let mut extra: Vec<(&'static str, String)> = vec![(table.index, index.clone())];
                for l in table.labels {
                    if let Some(v) = label_cells.get(&(l.entry, l.sub, index.clone())) {
                        extra.push((l.name, v.clone()));
                    }
                }
                let labels = out.labels(&extra);
                for (name, v, k) in row.metrics {
                    let value = match number(&v) {
                        Some((_, true)) => MetricValue::Counter(self.counter(k, &v, &mut seen)),
                        Some((n, false)) => MetricValue::Gauge(n),
                        None => continue,
                    };
                    out.metric(metric_name(name), labels.clone(), value);
                }
                if !row.strings.is_empty() {
                    let mut l = labels;
                    l.insert(Cow::Borrowed("table"), Cow::Borrowed(table.name));
                    out.record(l, row.strings);
                }
            }
            if !unknown_strings.is_empty() {
                let l = out.labels(&[("walk", root.to_string())]);
                out.record(l, unknown_strings);
            }
        }
        if !scalar_strings.is_empty() {
            let l = out.labels(&[]);
            out.record(l, scalar_strings);
        }
        out.metric(
            Cow::Borrowed("snmp_up"),
            base.clone(),
            MetricValue::Gauge(if up { 1.0 } else { 0.0 }),
        );
        out.metric(
            Cow::Borrowed("snmp_poll_duration_seconds"),
            base.clone(),
            MetricValue::Gauge(duration_seconds),
        );
        if data.complete {
            // Forget instances that are gone (interfaces removed), so state stays bounded.
            seen.sort_unstable();
            self.wraps.retain(|k, _| seen.binary_search(k).is_ok());
        }
        out.events
    }

    /// A scalar, or an OID without a name (named by `root` in a walk, by itself in a GET).
    fn scalar_or_unknown(
        &mut self,
        out: &mut Out<'_>,
        vb: &Varbind,
        root: Option<&Oid>,
        strings: &mut serde_json::Map<String, serde_json::Value>,
        seen: &mut Vec<u64>,
    ) {
        if vb.value.is_exception() {
            return;
        }
        let (name, attr, extra): (Cow<'static, str>, String, Vec<(&'static str, String)>) =
            match names::classify(&vb.oid) {
                Known::Scalar(s) => (metric_name(s.name), s.name.to_owned(), vec![]),
                Known::Cell {
                    column,
                    index,
                    table,
                } => (
                    metric_name(column.name),
                    format!("{}.{index}", column.name),
                    vec![(table.index, index)],
                ),
                Known::Unknown => match root {
                    Some(r) if vb.oid.len() > r.len() => (
                        Cow::Owned(format!("snmp_{}", r.underscored())),
                        vb.oid.to_string(),
                        vec![("index", vb.oid.suffix_after(r.arcs()))],
                    ),
                    _ => (
                        Cow::Owned(format!("snmp_{}", vb.oid.underscored())),
                        vb.oid.to_string(),
                        vec![],
                    ),
                },
            };
        match number(&vb.value) {
            Some((_, true)) => {
                let v = self.counter(key(&vb.oid), &vb.value, seen);
                let labels = out.labels(&extra);
                out.metric(name, labels, MetricValue::Counter(v));
            }
            Some((n, false)) => {
                let labels = out.labels(&extra);
                out.metric(name, labels, MetricValue::Gauge(n));
            }
            None => {
                if let Some(t) = text(&vb.value) {
                    strings.insert(attr, t.into());
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vb(oid: &str, value: Value) -> Varbind {
        Varbind {
            oid: oid.parse().unwrap(),
            value,
        }
    }

    fn conv() -> Converter {
        let agent: BTreeMap<String, String> = [("env".to_owned(), "test".to_owned())].into();
        let dev: BTreeMap<String, String> = [("site".to_owned(), "dc1".to_owned())].into();
        Converter::new(Arc::from("agent-1"), &agent, "sw1", &dev)
    }

    fn find<'a>(
        events: &'a [Event<'static>],
        name: &str,
        labels: &[(&str, &str)],
    ) -> Vec<&'a Event<'static>> {
        events
            .iter()
            .filter(|e| match &e.payload {
                Payload::Metric { name: n, .. } => n == name,
                _ => false,
            })
            .filter(|e| {
                labels
                    .iter()
                    .all(|(k, v)| e.labels.get(*k).map(|x| x.as_ref()) == Some(*v))
            })
            .collect()
    }

    fn value(e: &Event<'_>) -> MetricValue {
        match &e.payload {
            Payload::Metric { value, .. } => value.clone(),
            _ => panic!("not a metric"),
        }
    }

    fn if_poll(uptime: u32, in_octets: u32, hc: u64) -> PollData {
        PollData {
            gets: vec![
                vb("1.3.6.1.2.1.1.3.0", Value::TimeTicks(uptime)),
                vb(
                    "1.3.6.1.2.1.1.1.0",
                    Value::OctetString(b"Linux box".to_vec()),
                ),
            ],
            walks: vec![
                (
                    "1.3.6.1.2.1.2.2".parse().unwrap(),
                    vec![
                        vb("1.3.6.1.2.1.2.2.1.1.1", Value::Integer(1)),
                        vb("1.3.6.1.2.1.2.2.1.2.1", Value::OctetString(b"lo".to_vec())),
                        vb("1.3.6.1.2.1.2.2.1.5.1", Value::Gauge32(10_000_000)),
                        vb(
                            "1.3.6.1.2.1.2.2.1.6.1",
                            Value::OctetString(vec![0x2a, 0x8f, 0, 0, 0xc0, 4]),
                        ),
                        vb("1.3.6.1.2.1.2.2.1.10.1", Value::Counter32(in_octets)),
                    ],
                ),
                (
                    "1.3.6.1.2.1.31.1.1".parse().unwrap(),
                    vec![
                        vb(
                            "1.3.6.1.2.1.31.1.1.1.1.1",
                            Value::OctetString(b"lo".to_vec()),
                        ),
                        vb("1.3.6.1.2.1.31.1.1.1.6.1", Value::Counter64(hc)),
                        vb(
                            "1.3.6.1.2.1.31.1.1.1.18.1",
                            Value::OctetString(b"".to_vec()),
                        ),
                    ],
                ),
            ],
            labels: vec![],
            complete: true,
        }
    }

    #[test]
    fn an_object_fetched_twice_in_a_poll_is_one_sample() {
        let mut c = conv();
        let mut data = if_poll(100, 7, 1);
        // `system` walked (sysUpTime.0 is also always fetched by GET), and ifTable walked
        // again through one of its columns.
        data.walks.push((
            "1.3.6.1.2.1.1".parse().unwrap(),
            vec![vb("1.3.6.1.2.1.1.3.0", Value::TimeTicks(103))],
        ));
        data.walks.push((
            "1.3.6.1.2.1.2.2.1.10".parse().unwrap(),
            vec![vb("1.3.6.1.2.1.2.2.1.10.1", Value::Counter32(9))],
        ));
        let events = c.events(Timestamp::now(), &data, true, 0.01);
        let up = find(&events, "snmp_sysUpTime", &[]);
        assert_eq!(up.len(), 1, "{up:?}");
        assert_eq!(
            value(up[0]),
            MetricValue::Gauge(100.0),
            "the first fetch counts"
        );
        let octets = find(&events, "snmp_ifInOctets", &[("ifIndex", "1")]);
        assert_eq!(octets.len(), 1, "{octets:?}");
        assert_eq!(value(octets[0]), MetricValue::Counter(7.0));
    }

    #[test]
    fn rows_become_labelled_metrics_and_strings_records() {
        let mut c = conv();
        let events = c.events(Timestamp::now(), &if_poll(100, 7, 1 << 40), true, 0.01);
        for e in &events {
            assert_eq!((e.host.as_ref(), e.source.as_ref()), ("agent-1", "snmp"));
            assert_eq!(e.labels["device"], "sw1");
            assert_eq!(e.labels["site"], "dc1");
            assert_eq!(e.labels["env"], "test");
            logops_common::parse_line(&e.to_json(), 1).unwrap();
        }
        let speed = find(
            &events,
            "snmp_ifSpeed",
            &[("ifIndex", "1"), ("ifName", "lo")],
        );
        assert_eq!(speed.len(), 1);
        assert_eq!(value(speed[0]), MetricValue::Gauge(1e7));
        assert!(
            !speed[0].labels.contains_key("ifAlias"),
            "empty labels are left out"
        );
        let hc = find(
            &events,
            "snmp_ifHCInOctets",
            &[("ifIndex", "1"), ("ifName", "lo")],
        );
        assert_eq!(value(hc[0]), MetricValue::Counter((1u64 << 40) as f64));
        assert!(
            find(&events, "snmp_ifIndex", &[]).is_empty(),
            "the index is not a metric"
        );
        assert!(
            find(&events, "snmp_ifName", &[]).is_empty(),
            "labels are not metrics"
        );
        assert_eq!(
            value(find(&events, "snmp_sysUpTime", &[])[0]),
            MetricValue::Gauge(100.0)
        );
        assert_eq!(
            value(find(&events, "snmp_up", &[])[0]),
            MetricValue::Gauge(1.0)
        );
        let records: Vec<_> = events
            .iter()
            .filter(|e| matches!(e.payload, Payload::Record))
            .collect();
        assert_eq!(records.len(), 2, "{records:?}");
        let row = records
            .iter()
            .find(|r| r.labels.get("table").map(|t| t.as_ref()) == Some("ifTable"))
            .unwrap();
        let attrs = row.attrs.as_ref().unwrap().to_map();
        assert_eq!(attrs["ifDescr"], "lo");
        assert_eq!(attrs["ifPhysAddress"], "2a:8f:00:00:c0:04");
        assert_eq!(row.labels["ifName"], "lo");
        let sys = records
            .iter()
            .find(|r| !r.labels.contains_key("table"))
            .unwrap();
        assert_eq!(
            sys.attrs.as_ref().unwrap().to_map()["sysDescr"],
            "Linux box"
        );
    }

    #[test]
    fn counter32_wraps_are_extended_and_reboots_start_over() {
        let mut c = conv();
        let v = |c: &mut Converter, up, n| {
            let e = c.events(Timestamp::now(), &if_poll(up, n, 0), true, 0.0);
            match value(find(&e, "snmp_ifInOctets", &[])[0]) {
                MetricValue::Counter(v) => v,
                other => panic!("{other:?}"),
            }
        };
        assert_eq!(v(&mut c, 100, u32::MAX - 10), f64::from(u32::MAX - 10));
        assert_eq!(v(&mut c, 200, 5), (1u64 << 32) as f64 + 5.0, "a wrap");
        assert_eq!(v(&mut c, 300, 7), (1u64 << 32) as f64 + 7.0);
        assert_eq!(v(&mut c, 400, 3), (2u64 << 32) as f64 + 3.0, "another wrap");
        assert_eq!(v(&mut c, 50, 2), 2.0, "after a reboot");
    }

    #[test]
    fn unknown_oids_are_named_by_what_was_asked() {
        let mut c = conv();
        let data = PollData {
            gets: vec![
                vb("1.3.6.1.4.1.9.2.1.58.0", Value::Gauge32(12)),
                vb("1.3.6.1.4.1.9.2.1.59.0", Value::NoSuchObject),
                vb("1.3.6.1.4.1.9.9.9.0", Value::OctetString(b"hello".to_vec())),
            ],
            walks: vec![(
                "1.3.6.1.4.1.2021.10.1.5".parse().unwrap(),
                vec![
                    vb("1.3.6.1.4.1.2021.10.1.5.1", Value::Integer(42)),
                    vb("1.3.6.1.4.1.2021.10.1.5.2", Value::Counter64(9)),
                ],
            )],
            labels: vec![],
            complete: true,
        };
        let events = c.events(Timestamp::now(), &data, true, 0.0);
        assert_eq!(
            value(find(&events, "snmp_1_3_6_1_4_1_9_2_1_58_0", &[])[0]),
            MetricValue::Gauge(12.0)
        );
        assert!(find(&events, "snmp_1_3_6_1_4_1_9_2_1_59_0", &[]).is_empty());
        assert_eq!(
            value(find(&events, "snmp_1_3_6_1_4_1_2021_10_1_5", &[("index", "2")])[0]),
            MetricValue::Counter(9.0)
        );
        let rec = events
            .iter()
            .find(|e| matches!(e.payload, Payload::Record))
            .unwrap();
        assert_eq!(
            rec.attrs.as_ref().unwrap().to_map()["1.3.6.1.4.1.9.9.9.0"],
            "hello"
        );
    }

    #[test]
    fn octet_strings_print_as_text_or_hex() {
        assert_eq!(octets(b"eth0"), "eth0");
        assert_eq!(octets(b"eth0\0\0"), "eth0");
        assert_eq!(octets(&[0, 0x1b, 0xff]), "00:1b:ff");
        assert_eq!(octets(b""), "");
        assert_eq!(text(&Value::IpAddress([10, 0, 0, 1])).unwrap(), "10.0.0.1");
        assert_eq!(
            text(&Value::Oid("1.3.6.1.2.1.25.2.1.4".parse().unwrap())).unwrap(),
            "hrStorageFixedDisk"
        );
    }
}
