//! The pinger against this machine's loopback: 127.0.0.0/8 and ::1 answer from the kernel
//! itself. Run as root (raw sockets; the datagram path is tested in `ping_netns.rs`).

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
