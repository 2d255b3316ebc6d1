//! Deduplication by batch id: a resend is acknowledged as a duplicate and not written again,
//! also after a restart (SIGTERM) and after `kill -9`.

use std::collections::HashMap;

use logops_e2e::events::{batch_lines, body_of};
use logops_e2e::{Client, Encoding, IngestHarness, IngestOptions, TenantSpec};

fn assert_stored(c: &Client, key: &str, agent: &str, seq: u64, lines: &[String], duplicate: bool) {
    let r = c.post_batch(key, agent, seq, lines, Encoding::Zstd);
    assert_eq!(r.status, 200, "{agent}:{seq}: {}", r.body);
    let j = r.json();
    assert_eq!(
        j["duplicate"], duplicate,
        "{agent}:{seq} duplicate should be {duplicate}: {}",
        r.body
    );
    assert_eq!(j["batch"], format!("{agent}:{seq}"), "{}", r.body);
}

/// Every body in `expected` appears exactly once among the stored logs, and nothing else.
fn assert_exactly_once(c: &Client, key: &str, expected: &[String]) {
    let rows = c.query_all(key, "/v1/logs", &[("limit", "1000000")]);
    let mut counts: HashMap<String, usize> = HashMap::new();
    for r in &rows {
        *counts
            .entry(body_of(r).unwrap_or_else(|| panic!("not a log line: {r}")))
            .or_default() += 1;
    }
    for e in expected {
        let b = body_of(e).unwrap();
        assert_eq!(
            counts.get(&b).copied().unwrap_or(0),
            1,
            "`{b}` should be stored exactly once"
        );
    }
    assert_eq!(rows.len(), expected.len(), "stored rows: {rows:#?}");
}

#[test]
fn resends_are_duplicates_across_restarts() {
    let mut h = IngestHarness::start(IngestOptions::new().tenant(TenantSpec::new("acme")));
    let key = h.tenant("acme").key.clone();
    let a1 = batch_lines("agent", 1, 5);
    let a2 = batch_lines("agent", 2, 5);

    assert_stored(h.client(), &key, "agent", 1, &a1, false);
    assert_stored(h.client(), &key, "agent", 1, &a1, true);
    // The same id answers duplicate whatever the body (a resend carries the same bytes; the
    // id is what counts), and the other body is not written.
    assert_stored(h.client(), &key, "agent", 1, &a2, true);
    // The same sequence number from another agent is another batch.
    let b1 = batch_lines("agent-b", 1, 3);
    assert_stored(h.client(), &key, "agent-b", 1, &b1, false);
    let expected: Vec<String> = a1.iter().chain(&b1).cloned().collect();
    assert_exactly_once(h.client(), &key, &expected);

    // Restart (SIGTERM, start again): still a duplicate.
    let status = h.sigterm_and_wait();
    assert!(status.success(), "SIGTERM exit: {status}");
    h.start_again();
    assert_stored(h.client(), &key, "agent", 1, &a1, true);
    assert_stored(h.client(), &key, "agent-b", 1, &b1, true);
    assert_exactly_once(h.client(), &key, &expected);

    // A batch acknowledged just before kill -9 is remembered too (200 means durable).
    assert_stored(h.client(), &key, "agent", 2, &a2, false);
    h.kill9();
    h.start_again();
    assert_stored(h.client(), &key, "agent", 2, &a2, true);
    assert_stored(h.client(), &key, "agent", 1, &a1, true);
    let expected: Vec<String> = a1.iter().chain(&b1).chain(&a2).cloned().collect();
    assert_exactly_once(h.client(), &key, &expected);

    let metrics =
        logops_e2e::parse_prometheus(&h.client().get("/metrics").body).expect("/metrics parses");
    let dups = logops_e2e::metric_sum(
        &metrics,
        "logops_ingest_duplicate_batches_total",
        &[("tenant", "acme")],
    );
    assert_eq!(dups, Some(2.0), "duplicates counted since the last start");
}

#[test]
fn concurrent_resends_store_once() {
    let h = IngestHarness::start(IngestOptions::new().tenant(TenantSpec::new("acme")));
    let key = h.tenant("acme").key.clone();
    let lines = batch_lines("racer", 7, 20);
    // Eight clients send the same batch at once: exactly one stores it.
    let answers: Vec<serde_json::Value> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..8)
            .map(|_| {
                let c = h.client().clone();
                let (key, lines) = (&key, &lines);
                s.spawn(move || {
                    let r = c.post_batch(key, "racer", 7, lines, Encoding::Zstd);
                    assert_eq!(r.status, 200, "{}", r.body);
                    r.json()
                })
            })
            .collect();
        handles.into_iter().map(|t| t.join().unwrap()).collect()
    });
    let stored = answers.iter().filter(|j| j["duplicate"] == false).count();
    assert_eq!(
        stored, 1,
        "exactly one of 8 concurrent sends should store: {answers:#?}"
    );
    assert_exactly_once(h.client(), &key, &lines);
}

#[test]
fn gaps_and_out_of_order_sequences_are_not_duplicates() {
    let mut h = IngestHarness::start(IngestOptions::new().tenant(TenantSpec::new("acme")));
    let key = h.tenant("acme").key.clone();
    let batch = |seq: u64| batch_lines("gappy", seq, 2);
    let mut expected = Vec::new();
    // Out of order and with gaps; 0 and u64::MAX are valid sequence numbers.
    for seq in [5u64, 7, 1, u64::MAX, 0, 3] {
        assert_stored(h.client(), &key, "gappy", seq, &batch(seq), false);
        expected.extend(batch(seq));
    }
    for seq in [5u64, 7, 1, u64::MAX, 0, 3] {
        assert_stored(h.client(), &key, "gappy", seq, &batch(seq), true);
    }
    // The gaps are not "stored" just because their neighbours are.
    assert_stored(h.client(), &key, "gappy", 6, &batch(6), false);
    expected.extend(batch(6));
    assert_stored(
        h.client(),
        &key,
        "gappy",
        u64::MAX - 1,
        &batch(u64::MAX - 1),
        false,
    );
    expected.extend(batch(u64::MAX - 1));

    // The same after a clean restart (snapshot) and after kill -9 (commit log replay).
    h.restart();
    for seq in [0u64, 1, 3, 5, 6, 7, u64::MAX - 1, u64::MAX] {
        assert_stored(h.client(), &key, "gappy", seq, &batch(seq), true);
    }
    assert_stored(h.client(), &key, "gappy", 2, &batch(2), false);
    expected.extend(batch(2));
    h.kill9();
    h.start_again();
    for seq in [0u64, 1, 2, 3, 5, 6, 7, u64::MAX - 1, u64::MAX] {
        assert_stored(h.client(), &key, "gappy", seq, &batch(seq), true);
    }
    assert_stored(h.client(), &key, "gappy", 4, &batch(4), false);
    expected.extend(batch(4));
    assert_exactly_once(h.client(), &key, &expected);
}
