//! The ping source (`[[ping]]`): ICMP echo to groups of hosts, IPv4 and IPv6, every
//! `interval`, `count` requests per target per round, `packet_interval` apart; a reply later
//! than `timeout` is late. Names are looked up again every round.
//!
//! Per target and round, all with the round's start as timestamp, source `ping`, labels
//! `target` (as configured) and `address` (the address pinged, when there is one) on top of
//! the agent's and the group's:
//!
//! | metric | type | |
//! |---|---|---|
//! | `ping_up` | gauge | 1 if at least one request was answered in time, else 0; when the target could not be pinged (no address, no socket) or a send failed, `attrs.error` says why |
//! | `ping_resolved` | gauge | host names only: 1 if the name gave an address this round, 0 if the lookup failed |
//! | `ping_packets_sent`, `ping_packets_received` | gauge | requests sent this round, and answered within `timeout` |
//! | `ping_loss_ratio` | gauge | 1 − received ÷ sent (1 when nothing was sent) |
//! | `ping_rtt_seconds` | gauge | `stat` = `min`, `avg`, `max`, `stddev` (population), `p50`, `p95` (linear between ranks) of the answered requests; absent when none was answered |
//! | `ping_late_replies` | gauge | replies that came after their timeout, since the target's previous report |
//! | `ping_duplicate_replies` | gauge | second (and later) replies to one request, since the previous report |
//!
//! Self-metrics: `logops_agent_collector_rounds_total`, `..._timeouts_total` (unanswered
//! requests) and `..._errors_total{reason}` (`resolve`, `send`, `socket`), all with
//! `collector="ping"`.
//!
//! Every group shares two sockets, one per family (see [`socket`]); one task sends, receives
//! and reports (see [`engine`]).

pub mod engine;
mod events;
pub mod packet;
pub mod resolve;
pub mod socket;
pub mod stats;

use std::sync::Arc;

use tokio::sync::mpsc;

pub use engine::{Engine, GroupSpec, Output, Sockets};
pub use resolve::check_target;

use crate::config::PingConfig;
use crate::pipeline::{EmitError, Emitter, Shutdown};
use crate::sources::merge_labels;

/// The `source` of ping events.
pub const SOURCE: &str = "ping";

/// Labels the source sets itself; a group may not set them.
pub const RESERVED_LABELS: &[&str] = &["target", "address", "stat"];

/// Chunks waiting between the pinger and the buffer.
const QUEUED_CHUNKS: usize = 4;

/// The groups of a configuration with their labels (the agent's merged with the group's).
pub fn group_specs(
    cfgs: &[PingConfig],
    agent_labels: &std::collections::BTreeMap<String, String>,
) -> Vec<GroupSpec> {
    cfgs.iter()
        .map(|cfg| GroupSpec {
            cfg: cfg.clone(),
            labels: Arc::new(
                merge_labels(agent_labels, &cfg.labels)
                    .into_iter()
                    .map(|(k, v)| (k.into_owned(), v.into_owned()))
                    .collect(),
            ),
        })
        .collect()
}

/// Pings every group until shutdown, handing each round's events to the buffer.
pub async fn run(cfgs: Vec<PingConfig>, emitter: Emitter, shutdown: Shutdown) {
    let sockets = Sockets::open();
    let (v4, v6) = sockets.kinds();
    let kind = |k: Option<socket::SocketKind>| k.map_or("none", |k| k.name());
    tracing::info!(
        groups = cfgs.len(),
        ipv4 = kind(v4),
        ipv6 = kind(v6),
        "ping: started"
    );
    let (tx, mut rx) = mpsc::channel(QUEUED_CHUNKS);
    let out = Output {
        host: emitter.agent_id().clone(),
        chunks: tx,
        metrics: emitter.metrics().clone(),
    };
    let engine = Engine::new(group_specs(&cfgs, emitter.agent_labels()), sockets, out);
    let mut stop = shutdown.clone();
    let pinger = tokio::spawn(engine.run(async move { stop.wait().await }, None));
    while let Some(chunk) = rx.recv().await {
        match emitter.emit(SOURCE, chunk, vec![], &shutdown).await {
            Ok(()) => {}
            Err(EmitError::ShuttingDown) => break,
            Err(e) => {
                tracing::error!(error = %e, "ping: a round's events could not be buffered and are lost")
            }
        }
    }
    let _ = pinger.await;
    tracing::info!("ping: stopped");
}

/// Runs `rounds` rounds of every group standalone, without a buffer: each chunk of events
/// goes to `sink` (tests, the benchmark). Runs on the current tokio runtime.
pub async fn run_rounds(
    groups: Vec<GroupSpec>,
    sockets: Sockets,
    host: Arc<str>,
    metrics: Arc<crate::metrics::AgentMetrics>,
    rounds: u32,
    mut sink: impl FnMut(crate::chunk::Chunk),
) {
    let (tx, mut rx) = mpsc::channel(QUEUED_CHUNKS);
    let engine = Engine::new(
        groups,
        sockets,
        Output {
            host,
            chunks: tx,
            metrics,
        },
    );
    let consume = async {
        while let Some(c) = rx.recv().await {
            sink(c);
        }
    };
    tokio::join!(engine.run(std::future::pending(), Some(rounds)), consume);
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use logops_common::event::{MetricValue, Payload};
    use logops_common::units::HumanDuration;

    use super::*;
    use crate::pipeline::testing::TestPipeline;

    /// The source as the agent runs it: rounds land in the buffer until shutdown. Needs
    /// root or ping_group_range (as the test suite runs).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn rounds_reach_the_buffer_until_shutdown() {
        let p = TestPipeline::new("agent-7", &[("env", "test")], 64 << 20);
        let (trigger, shutdown) = Shutdown::new();
        let cfg = PingConfig {
            targets: vec!["127.0.0.1".into(), "::1".into()],
            interval: HumanDuration::secs(1),
            count: 2,
            packet_interval: HumanDuration::millis(10),
            timeout: HumanDuration::millis(200),
            labels: [("site".to_owned(), "lab".to_owned())].into(),
        };
        let task = tokio::spawn(run(vec![cfg], p.emitter.clone(), shutdown));
        p.wait_for_chunks(2, Duration::from_secs(10), "a second round")
            .await;
        trigger.trigger();
        task.await.unwrap();
        let body = p.take_all();
        let mut up = 0;
        for line in body.lines() {
            let e = logops_common::parse_line(line, 1).unwrap();
            assert_eq!((e.host.as_ref(), e.source.as_ref()), ("agent-7", "ping"));
            assert_eq!(
                (e.labels["env"].as_ref(), e.labels["site"].as_ref()),
                ("test", "lab")
            );
            if let Payload::Metric { name, value } = e.payload {
                if name == "ping_up" {
                    assert_eq!(value, MetricValue::Gauge(1.0), "{line}");
                    up += 1;
                }
            }
        }
        assert!(up >= 4, "two targets, at least two rounds: {up}");
    }
}
