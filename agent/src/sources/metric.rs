//! [`Metrics`]: how sources make metric events. Every event of one collection has the same
//! timestamp, `source`, the agent id as `host` and the agent's (and the source's) labels
//! merged with the metric's own (the metric's win). Values the ingest would refuse (not
//! finite, a negative counter) are left out and named in [`Metrics::bad_values`].

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::sync::Arc;

use logops_common::event::{Event, MetricValue, Payload};
use logops_common::Timestamp;

use crate::sources::merge_labels;

/// The metric events of one collection (a host sample, a ping round, ...).
pub struct Metrics {
    ts: Timestamp,
    host: Arc<str>,
    source: &'static str,
    labels: Arc<BTreeMap<String, String>>,
    /// The events made so far.
    pub events: Vec<Event<'static>>,
    /// Names of metrics left out because their value was not finite (or a negative counter).
    pub bad_values: Vec<&'static str>,
}

impl Metrics {
    /// Events at `ts` from `source`, about `host`, carrying `labels` (the agent's, merged with
    /// the source's own).
    pub fn new(
        ts: Timestamp,
        host: Arc<str>,
        source: &'static str,
        labels: Arc<BTreeMap<String, String>>,
    ) -> Self {
        Metrics {
            ts,
            host,
            source,
            labels,
            events: Vec::new(),
            bad_values: Vec::new(),
        }
    }

    /// A gauge.
    pub fn gauge(&mut self, name: &'static str, labels: &[(&str, &str)], v: f64) {
        self.push(name, labels, MetricValue::Gauge(v), v.is_finite());
    }

    /// A counter (a total that only grows).
    pub fn counter(&mut self, name: &'static str, labels: &[(&str, &str)], v: f64) {
        self.push(
            name,
            labels,
            MetricValue::Counter(v),
            v.is_finite() && v >= 0.0,
        );
    }

    fn push(&mut self, name: &'static str, labels: &[(&str, &str)], value: MetricValue, ok: bool) {
        if !ok {
            // The ingest rejects non-finite values and negative counters.
            self.bad_values.push(name);
            return;
        }
        let own: BTreeMap<String, String> = labels
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        self.events.push(Event {
            ts: self.ts,
            host: Cow::Owned(self.host.to_string()),
            source: Cow::Borrowed(self.source),
            labels: merge_labels(&self.labels, &own),
            attrs: None,
            payload: Payload::Metric {
                name: Cow::Borrowed(name),
                value,
            },
        });
    }
}
