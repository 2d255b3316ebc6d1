//! The pinger between two network namespaces the test makes (veth pair, addresses only
//! inside them; deleted on drop), with loss (nftables `numgen random` drops), delay (an
//! NFQUEUE holder, this kernel has no netem) and duplicates (nftables `dup`) injected in the
//! target's namespace. Needs root; peers from tests/install-peers.sh (iproute2, nftables,
//! iptables).

use std::time::Duration;

use logops_agent::sources::ping::socket::{Family, IcmpSocket, OpenError, SocketKind};
use logops_agent::sources::ping::Sockets;
use logops_e2e::netns::{
    drop_effective_capability, in_netns, NetnsPair, ABSENT_V4, TARGET_V4, TARGET_V6,
};
use logops_e2e::nfq_delay::DelayHolder;
use logops_e2e::ping::{group, run, value, values};

const CAP_NET_RAW: u32 = 13;

/// Opens the pinger's sockets, asserting which kind both families got.
fn open_expecting(kind: SocketKind) -> impl FnOnce() -> Sockets {
    move || {
        let s = Sockets::open();
        assert_eq!(s.kinds(), (Some(kind), Some(kind)), "socket kinds");
        s
    }
}

/// The packets counted by the nftables rule carrying `comment` in namespace `ns`.
fn nft_counter(pair: &NetnsPair, ns: &str, comment: &str) -> u64 {
    let text = pair.exec(ns, &["nft", "list", "ruleset"]).unwrap();
    let line = text
        .lines()
        .find(|l| l.contains(&format!("comment \"{comment}\"")))
        .unwrap_or_else(|| panic!("no rule {comment} in\n{text}"));
    let after = line.split("counter packets ").nth(1).unwrap();
    after.split_whitespace().next().unwrap().parse().unwrap()
}

#[test]
fn injected_loss_and_delay_are_measured_on_the_unprivileged_path() {
    let pair = NetnsPair::new().unwrap();
    // The unprivileged path: ICMP datagram sockets allowed for every group, in the pinger's
    // namespace only (the sysctl is per namespace).
    pair.sysctl(&pair.pinger, "net.ipv4.ping_group_range", "0 2147483647")
        .unwrap();
    // 30% of echo requests dropped at random, each drop counted.
    pair.exec_stdin(
        &pair.target,
        &["nft", "-f", "-"],
        r#"table inet impair {
    chain input {
        type filter hook input priority 0; policy accept;
        icmp type echo-request numgen random mod 100 < 30 counter drop comment "loss4"
        icmpv6 type echo-request numgen random mod 100 < 30 counter drop comment "loss6"
    }
}"#,
    )
    .unwrap();
    // Echo replies held 20 ms in NFQUEUE 7.
    pair.exec(
        &pair.target,
        &[
            "iptables",
            "-A",
            "OUTPUT",
            "-p",
            "icmp",
            "--icmp-type",
            "echo-reply",
            "-j",
            "NFQUEUE",
            "--queue-num",
            "7",
            "--queue-bypass",
        ],
    )
    .unwrap();
    pair.exec(
        &pair.target,
        &[
            "ip6tables",
            "-A",
            "OUTPUT",
            "-p",
            "icmpv6",
            "--icmpv6-type",
            "echo-reply",
            "-j",
            "NFQUEUE",
            "--queue-num",
            "7",
            "--queue-bypass",
        ],
    )
    .unwrap();
    let delay = Duration::from_millis(20);
    let holder = DelayHolder::start(&pair.target, 7, delay).unwrap();

    let (v4, v6) = (TARGET_V4.to_string(), TARGET_V6.to_string());
    let g = group(&format!(
        r#"targets = ["{v4}", "{v6}"]
interval = "5s"
count = 100
packet_interval = "5ms"
timeout = "1s""#
    ));
    let (events, _) = in_netns(&pair.pinger, || {
        run(vec![g], 1, open_expecting(SocketKind::Datagram))
    })
    .unwrap();
    let holder_times = holder.held_times();
    assert!(holder.held() > 0, "the holder saw the replies");
    drop(holder);
    // What was really injected: 20 ms, or more when the holder's thread ran late.
    let (held_mean, held_max) = holder_times;

    for (target, rule) in [(&v4, "loss4"), (&v6, "loss6")] {
        let dropped = nft_counter(&pair, &pair.target, rule) as f64;
        // Random: 30 of 100 expected; 3.3 standard deviations either side.
        assert!(
            (15.0..=45.0).contains(&dropped),
            "{target}: {dropped} dropped"
        );
        assert_eq!(value(&events, target, "ping_packets_sent", None), 100.0);
        // Exactly the requests nftables dropped are missing: no loss of our own.
        assert_eq!(
            value(&events, target, "ping_packets_received", None),
            100.0 - dropped,
            "{target}"
        );
        let loss = value(&events, target, "ping_loss_ratio", None);
        assert!((loss - dropped / 100.0).abs() < 1e-9, "{target}: {loss}");
        assert_eq!(value(&events, target, "ping_late_replies", None), 0.0);
        // Delay: every reply was held at least 20 ms (the holder naps 0.2 ms between checks
        // and may be scheduled late on a busy machine; it measures what it really held).
        // Tolerance: min ≥ 20 ms; avg within 1 ms of the mean hold (the veth and the kernel
        // add microseconds).
        let min = value(&events, target, "ping_rtt_seconds", Some("min"));
        let avg = value(&events, target, "ping_rtt_seconds", Some("avg"));
        let p95 = value(&events, target, "ping_rtt_seconds", Some("p95"));
        let max = value(&events, target, "ping_rtt_seconds", Some("max"));
        assert!(min >= 0.020, "{target}: min {min}");
        assert!(
            avg >= held_mean - 0.0002 && avg < held_mean + 0.001,
            "{target}: avg {avg}, mean hold {held_mean}"
        );
        // Single packets can also wait in the queue before the holder reads them (not
        // measured), so the maximum is not compared; the median is.
        let p50 = value(&events, target, "ping_rtt_seconds", Some("p50"));
        assert!(
            p50 < held_max + 0.001,
            "{target}: p50 {p50}, longest hold {held_max}"
        );
        assert!(
            p50 <= p95 && p95 <= max,
            "{target}: p50 {p50} p95 {p95} max {max}"
        );
    }
}

#[test]
fn raw_path_and_an_unreachable_target() {
    let pair = NetnsPair::new().unwrap();
    // ping_group_range stays "1 0" (closed) in the new namespace: root falls back to raw.
    let absent6 = "fd00:198:18::99";
    let (v4, v6, absent4) = (
        TARGET_V4.to_string(),
        TARGET_V6.to_string(),
        ABSENT_V4.to_string(),
    );
    let g = group(&format!(
        r#"targets = ["{v4}", "{v6}", "{absent4}", "{absent6}"]
interval = "2s"
count = 3
packet_interval = "10ms"
timeout = "300ms""#
    ));
    let (events, metrics) = in_netns(&pair.pinger, || {
        run(vec![g], 1, open_expecting(SocketKind::Raw))
    })
    .unwrap();
    for t in [&v4, &v6] {
        assert_eq!(value(&events, t, "ping_up", None), 1.0, "{t}");
        assert_eq!(value(&events, t, "ping_packets_received", None), 3.0, "{t}");
        let min = value(&events, t, "ping_rtt_seconds", Some("min"));
        assert!(min > 0.0 && min < 0.01, "{t}: {min}");
    }
    for t in [absent4.as_str(), absent6] {
        assert_eq!(value(&events, t, "ping_up", None), 0.0, "{t}");
        assert_eq!(value(&events, t, "ping_packets_sent", None), 3.0, "{t}");
        assert_eq!(value(&events, t, "ping_packets_received", None), 0.0, "{t}");
        assert_eq!(value(&events, t, "ping_loss_ratio", None), 1.0, "{t}");
        assert!(
            values(&events, t, "ping_rtt_seconds", None).is_empty(),
            "{t}"
        );
    }
    assert!(metrics
        .render(None)
        .contains("logops_agent_collector_timeouts_total{collector=\"ping\"} 6"));
}

#[test]
fn without_the_sysctl_or_cap_net_raw_one_error_says_what_to_grant() {
    let pair = NetnsPair::new().unwrap();
    let target = TARGET_V4.to_string();
    let (err, events) = in_netns(&pair.pinger, move || {
        drop_effective_capability(CAP_NET_RAW).unwrap();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let err = rt
            .block_on(async { IcmpSocket::open(Family::V4).err() })
            .expect("no socket without the sysctl or the capability");
        let g = group(&format!(
            "targets = [\"{target}\"]\ninterval = \"1s\"\ncount = 2\npacket_interval = \"10ms\"\ntimeout = \"100ms\""
        ));
        (err, run(vec![g], 1, Sockets::open).0)
    })
    .unwrap();
    assert!(
        matches!(err, OpenError::NotPermitted { gid: 0, .. }),
        "{err:?}"
    );
    let text = err.to_string();
    for part in [
        "net.ipv4.ping_group_range is \"1 0\"",
        "sysctl -w net.ipv4.ping_group_range=\"0 0\"",
        "CAP_NET_RAW",
        "AmbientCapabilities=CAP_NET_RAW",
    ] {
        assert!(text.contains(part), "{part} missing in: {text}");
    }
    // The round still reports the target, down, with the reason.
    let t = TARGET_V4.to_string();
    assert_eq!(value(&events, &t, "ping_up", None), 0.0);
    assert_eq!(value(&events, &t, "ping_packets_sent", None), 0.0);
    let up = events
        .iter()
        .find(|e| matches!(&e.payload, logops_common::Payload::Metric { name, .. } if name == "ping_up"))
        .unwrap();
    let why = up.attrs.as_ref().unwrap().to_map()["error"].to_string();
    assert!(why.contains("ping_group_range"), "{why}");
}

#[test]
fn late_and_duplicate_replies_are_counted_not_taken_for_answers() {
    // Late: replies held 150 ms against a 100 ms timeout.
    let slow = NetnsPair::new().unwrap();
    slow.exec(
        &slow.target,
        &[
            "iptables",
            "-A",
            "OUTPUT",
            "-p",
            "icmp",
            "--icmp-type",
            "echo-reply",
            "-j",
            "NFQUEUE",
            "--queue-num",
            "9",
            "--queue-bypass",
        ],
    )
    .unwrap();
    let holder = DelayHolder::start(&slow.target, 9, Duration::from_millis(150)).unwrap();
    let t = TARGET_V4.to_string();
    let g = group(&format!(
        "targets = [\"{t}\"]\ninterval = \"1s\"\ncount = 3\npacket_interval = \"100ms\"\ntimeout = \"100ms\""
    ));
    let (events, _) = in_netns(&slow.pinger, || run(vec![g], 2, Sockets::open)).unwrap();
    drop(holder);
    assert_eq!(
        values(&events, &t, "ping_packets_received", None),
        [0.0, 0.0]
    );
    assert_eq!(values(&events, &t, "ping_up", None), [0.0, 0.0]);
    // Requests at 0, 100 and 200 ms, replies 150 ms later, the report at 300 ms: two late
    // replies in the round, the third after the report, counted in the next round's.
    assert_eq!(values(&events, &t, "ping_late_replies", None), [2.0, 3.0]);
    assert_eq!(
        values(&events, &t, "ping_duplicate_replies", None),
        [0.0, 0.0]
    );

    // Duplicates: every echo reply is sent twice (nftables `dup`).
    let dup = NetnsPair::new().unwrap();
    dup.exec_stdin(
        &dup.target,
        &["nft", "-f", "-"],
        &format!(
            r#"table ip twice {{
    chain output {{
        type filter hook output priority 0; policy accept;
        icmp type echo-reply counter dup to {} comment "dup"
    }}
}}"#,
            logops_e2e::netns::PINGER_V4
        ),
    )
    .unwrap();
    let g = group(&format!(
        "targets = [\"{t}\"]\ninterval = \"1s\"\ncount = 5\npacket_interval = \"20ms\"\ntimeout = \"200ms\""
    ));
    let (events, _) = in_netns(&dup.pinger, || run(vec![g], 1, Sockets::open)).unwrap();
    // The rule counts each reply and its copy (the copy passes the output hook too).
    let passed = nft_counter(&dup, &dup.target, "dup") as f64;
    assert_eq!(passed, 10.0, "nftables duplicated every reply");
    assert_eq!(value(&events, &t, "ping_packets_received", None), 5.0);
    assert_eq!(value(&events, &t, "ping_loss_ratio", None), 0.0);
    assert_eq!(value(&events, &t, "ping_duplicate_replies", None), 5.0);
}
