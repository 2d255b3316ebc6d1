//! The events of one target's round (see the table in the module documentation).

use std::net::IpAddr;

use logops_common::event::Attrs;

use super::stats::TargetRound;
use crate::sources::metric::Metrics;

/// Adds the metrics of one target's round to `m`. `name`: the target as configured;
/// `is_name`: it is a host name (then `ping_resolved` says whether it had an address);
/// `error`: why it was not pinged (or a send failed), put into the `attrs` of `ping_up`.
pub fn target_events(
    m: &mut Metrics,
    name: &str,
    is_name: bool,
    addr: Option<IpAddr>,
    error: Option<&str>,
    r: &TargetRound,
) {
    let addr_text = addr.map(|a| a.to_string());
    let mut labels: Vec<(&str, &str)> = vec![("target", name)];
    if let Some(a) = &addr_text {
        labels.push(("address", a));
    }
    let l = labels.as_slice();
    let up = if r.received > 0 { 1.0 } else { 0.0 };
    m.gauge("ping_up", l, up);
    if let (Some(e), Some(last)) = (error, m.events.last_mut()) {
        let mut map = serde_json::Map::new();
        map.insert("error".into(), e.into());
        last.attrs = Some(Attrs::from_map(&map));
    }
    if is_name {
        m.gauge("ping_resolved", l, if addr.is_some() { 1.0 } else { 0.0 });
    }
    m.gauge("ping_packets_sent", l, f64::from(r.sent));
    m.gauge("ping_packets_received", l, f64::from(r.received));
    m.gauge("ping_loss_ratio", l, r.loss_ratio());
    m.gauge("ping_late_replies", l, f64::from(r.late));
    m.gauge("ping_duplicate_replies", l, f64::from(r.duplicates));
    if let Some(s) = r.summary() {
        let mut with_stat = labels.clone();
        with_stat.push(("stat", ""));
        for (stat, v) in s.stats() {
            *with_stat.last_mut().expect("pushed above") = ("stat", stat);
            m.gauge("ping_rtt_seconds", &with_stat, v);
        }
    }
}
