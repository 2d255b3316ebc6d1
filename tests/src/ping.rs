//! Running the agent's pinger standalone for tests: rounds of `[[ping]]` groups, optionally
//! from inside a network namespace, and the metric events they made.

use std::collections::BTreeMap;
use std::sync::Arc;

use logops_agent::config::PingConfig;
use logops_agent::metrics::AgentMetrics;
use logops_agent::sources::ping::{self, Sockets};
use logops_common::event::{Event, MetricValue, Payload};

/// The TOML of one `[[ping]]` group, parsed the way the agent parses it.
pub fn group(toml_body: &str) -> PingConfig {
    #[derive(serde::Deserialize)]
    struct Wrap {
        ping: Vec<PingConfig>,
    }
    let text = format!("[[ping]]\n{toml_body}\n");
    let mut w: Wrap = toml::from_str(&text).expect("a valid [[ping]] group");
    w.ping.remove(0)
}

/// Runs `rounds` rounds of `groups` on sockets from `open` (called inside the runtime, on
/// the calling thread: open them inside a namespace by calling this from
/// [`crate::netns::in_netns`]); returns every event, parsed back from the chunks' NDJSON.
pub fn run(
    groups: Vec<PingConfig>,
    rounds: u32,
    open: impl FnOnce() -> Sockets,
) -> (Vec<Event<'static>>, Arc<AgentMetrics>) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    let metrics = Arc::new(AgentMetrics::new());
    let mut lines = Vec::new();
    rt.block_on(async {
        let specs = ping::group_specs(&groups, &BTreeMap::new());
        ping::run_rounds(
            specs,
            open(),
            Arc::from("test-agent"),
            metrics.clone(),
            rounds,
            |chunk| lines.extend_from_slice(chunk.data()),
        )
        .await;
    });
    let text = String::from_utf8(lines).expect("NDJSON is UTF-8");
    let events = text
        .lines()
        .enumerate()
        .map(|(i, l)| {
            logops_common::parse_line(l, i + 1)
                .unwrap_or_else(|e| panic!("invalid event line {l}: {e}"))
                .into_owned()
        })
        .collect();
    (events, metrics)
}

/// The events of one target (by its configured name), in order.
pub fn of_target<'a>(events: &'a [Event<'static>], target: &str) -> Vec<&'a Event<'static>> {
    events
        .iter()
        .filter(|e| e.labels.get("target").map(|t| t.as_ref()) == Some(target))
        .collect()
}

/// The values of metric `name` (with `stat` if given) of `target`, one per round.
pub fn values(events: &[Event<'static>], target: &str, name: &str, stat: Option<&str>) -> Vec<f64> {
    of_target(events, target)
        .into_iter()
        .filter(|e| stat.is_none_or(|s| e.labels.get("stat").map(|x| x.as_ref()) == Some(s)))
        .filter_map(|e| match &e.payload {
            Payload::Metric {
                name: n,
                value: MetricValue::Gauge(v) | MetricValue::Counter(v),
            } if n == name => Some(*v),
            _ => None,
        })
        .collect()
}

/// The single value of metric `name` of `target` (exactly one round).
pub fn value(events: &[Event<'static>], target: &str, name: &str, stat: Option<&str>) -> f64 {
    let v = values(events, target, name, stat);
    assert_eq!(v.len(), 1, "{target} {name} {stat:?}: {v:?}");
    v[0]
}
