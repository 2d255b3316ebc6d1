//! The pinger against this machine's loopback: 127.0.0.0/8 and ::1 answer from the kernel
//! itself; first standalone, then inside the running `logops-agent`, shipping to a real
//! ingest. Run as root (raw sockets; the datagram path is tested in `ping_netns.rs`).

use logops_agent::sources::ping::Sockets;
use logops_e2e::ping::{group, run, values};

#[test]
fn loopback_v4_v6_and_a_name_answer_with_sub_millisecond_rtts_that_are_never_zero() {
    let g = group(
        r#"targets = ["127.0.0.1", "127.0.0.2", "::1", "localhost"]
interval = "1s"
count = 5
packet_interval = "20ms"
timeout = "500ms"
labels = { site = "lab" }"#,
    );
    let (events, metrics) = run(vec![g], 2, Sockets::open);
    for target in ["127.0.0.1", "127.0.0.2", "::1", "localhost"] {
        assert_eq!(
            values(&events, target, "ping_up", None),
            [1.0, 1.0],
            "{target}"
        );
        assert_eq!(
            values(&events, target, "ping_packets_sent", None),
            [5.0, 5.0]
        );
        assert_eq!(
            values(&events, target, "ping_packets_received", None),
            [5.0, 5.0]
        );
        assert_eq!(values(&events, target, "ping_loss_ratio", None), [0.0, 0.0]);
        assert_eq!(
            values(&events, target, "ping_late_replies", None),
            [0.0, 0.0]
        );
        assert_eq!(
            values(&events, target, "ping_duplicate_replies", None),
            [0.0, 0.0]
        );
        // Loopback replies come back within microseconds; a send time taken after the send
        // (surge-ping 0.9) makes them 0.
        let mins = values(&events, target, "ping_rtt_seconds", Some("min"));
        assert_eq!(mins.len(), 2, "{target}: one min RTT per round");
        for rtt in mins {
            assert!(rtt > 0.0 && rtt < 0.005, "{target}: min rtt {rtt}");
        }
        for stat in ["avg", "max", "p50", "p95"] {
            for rtt in values(&events, target, "ping_rtt_seconds", Some(stat)) {
                assert!(rtt > 0.0 && rtt < 0.05, "{target}: {stat} {rtt}");
            }
        }
    }
    assert_eq!(
        values(&events, "localhost", "ping_resolved", None),
        [1.0, 1.0]
    );
    assert!(
        values(&events, "127.0.0.1", "ping_resolved", None).is_empty(),
        "only for names"
    );
    // Labels: the group's, the target as configured, the address pinged.
    let e = events
        .iter()
        .find(|e| e.labels.get("target").map(|t| t.as_ref()) == Some("::1"))
        .unwrap();
    assert_eq!((e.source.as_ref(), e.host.as_ref()), ("ping", "test-agent"));
    assert_eq!(e.labels["site"], "lab");
    assert_eq!(e.labels["address"], "::1");
    let text = metrics.render(None);
    assert!(
        text.contains("logops_agent_collector_rounds_total{collector=\"ping\"} 2"),
        "{text}"
    );
}

#[test]
fn a_name_that_does_not_resolve_is_a_metric_and_the_others_go_on() {
    let g = group(
        r#"targets = ["no-such-host.invalid", "127.0.0.3"]
interval = "1s"
count = 2
packet_interval = "10ms"
timeout = "200ms""#,
    );
    let (events, metrics) = run(vec![g], 2, Sockets::open);
    let bad = "no-such-host.invalid";
    assert_eq!(values(&events, bad, "ping_resolved", None), [0.0, 0.0]);
    assert_eq!(values(&events, bad, "ping_up", None), [0.0, 0.0]);
    assert_eq!(values(&events, bad, "ping_packets_sent", None), [0.0, 0.0]);
    assert_eq!(values(&events, bad, "ping_loss_ratio", None), [1.0, 1.0]);
    assert!(values(&events, bad, "ping_rtt_seconds", None).is_empty());
    let up = events
        .iter()
        .find(|e| {
            e.labels.get("target").map(|t| t.as_ref()) == Some(bad)
                && matches!(&e.payload, logops_common::Payload::Metric { name, .. } if name == "ping_up")
        })
        .unwrap();
    assert!(!up.labels.contains_key("address"));
    let attrs = up.attrs.as_ref().expect("the reason is in attrs").to_map();
    let why = attrs["error"].as_str().unwrap();
    assert!(
        why.contains("cannot resolve `no-such-host.invalid`"),
        "{why}"
    );
    assert_eq!(values(&events, "127.0.0.3", "ping_up", None), [1.0, 1.0]);
    assert!(metrics
        .render(None)
        .contains("logops_agent_collector_errors_total{collector=\"ping\",reason=\"resolve\"} 2"));
}

#[test]
fn the_running_agent_ships_ping_metrics_and_counts_rounds_and_errors() {
    use std::time::{Duration, Instant};

    use logops_e2e::agent::{AgentHarness, AgentOptions, ShipTarget};
    use logops_e2e::{IngestHarness, IngestOptions, TenantSpec};

    let ingest = IngestHarness::start(IngestOptions::new().tenant(TenantSpec::new("acme")));
    let opts = AgentOptions::new("ping-agent").extra(
        r#"[[ping]]
targets = ["127.0.0.1", "::1", "no-such-host.invalid"]
interval = "1s"
count = 3
packet_interval = "20ms"
timeout = "300ms"
labels = { site = "lab" }
"#,
    );
    let agent = AgentHarness::start(ShipTarget::of(&ingest, "acme"), opts);
    let key = ingest.tenant("acme").key.clone();
    let stored = |name: &str| {
        ingest
            .client()
            .query_all(&key, "/v1/metrics", &[("name", name), ("source", "ping")])
            .iter()
            .map(|l| logops_common::parse_line(l, 1).unwrap().into_owned())
            .collect::<Vec<_>>()
    };
    let value = |e: &logops_common::Event<'_>| match &e.payload {
        logops_common::Payload::Metric {
            value: logops_common::event::MetricValue::Gauge(v),
            ..
        } => *v,
        other => panic!("not a gauge: {other:?}"),
    };
    let of = |events: &[logops_common::Event<'static>], target: &str| -> Vec<f64> {
        events
            .iter()
            .filter(|e| e.labels.get("target").map(|t| t.as_ref()) == Some(target))
            .map(value)
            .collect()
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut up = Vec::new();
    while Instant::now() < deadline {
        up = stored("ping_up");
        if ["127.0.0.1", "::1", "no-such-host.invalid"]
            .iter()
            .all(|t| of(&up, t).len() >= 2)
        {
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    for target in ["127.0.0.1", "::1"] {
        let ups = of(&up, target);
        assert!(
            ups.len() >= 2 && ups.iter().all(|v| *v == 1.0),
            "{target}: ping_up {ups:?}; agent log:\n{}",
            agent.log_tail(30)
        );
    }
    assert!(of(&up, "no-such-host.invalid").iter().all(|v| *v == 0.0));
    for e in &up {
        assert_eq!((e.host.as_ref(), e.source.as_ref()), ("ping-agent", "ping"));
        assert_eq!(e.labels["site"], "lab");
    }
    let loss = stored("ping_loss_ratio");
    assert!(of(&loss, "127.0.0.1").iter().all(|v| *v == 0.0));
    let rtts: Vec<f64> = stored("ping_rtt_seconds")
        .iter()
        .filter(|e| e.labels.get("stat").map(|s| s.as_ref()) == Some("min"))
        .map(value)
        .collect();
    assert!(!rtts.is_empty());
    assert!(
        rtts.iter().all(|r| *r > 0.0 && *r < 0.05),
        "loopback RTTs are above 0: {rtts:?}"
    );
    let resolved = stored("ping_resolved");
    assert!(of(&resolved, "no-such-host.invalid")
        .iter()
        .all(|v| *v == 0.0));
    let m = |name: &str, labels: &[(&str, &str)]| agent.metric(name, labels).unwrap_or(0.0);
    assert!(
        m(
            "logops_agent_collector_rounds_total",
            &[("collector", "ping")]
        ) >= 2.0
    );
    assert!(
        m(
            "logops_agent_collector_errors_total",
            &[("collector", "ping"), ("reason", "resolve")]
        ) >= 2.0
    );
}
