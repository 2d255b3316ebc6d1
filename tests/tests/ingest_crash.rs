//! Crash safety: `kill -9` in the middle of a write storm, three times. Every acknowledged
//! batch survives exactly once, no stored line is torn, and batches that were in flight
//! when the ingest died end up stored exactly once after their resend.

use std::time::Duration;

use logops_e2e::storm::{verify_exactly_once, Storm};
use logops_e2e::{Client, Encoding, IngestHarness, IngestOptions, TenantSpec};

/// `LOGOPS_E2E_CRASH_ROUNDS` (default 3) kills; `LOGOPS_E2E_CRASH_SEGMENT` (default
/// `256KiB`) segment size, for longer hunts.
fn knobs() -> (usize, String) {
    let rounds = std::env::var("LOGOPS_E2E_CRASH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3);
    let segment = std::env::var("LOGOPS_E2E_CRASH_SEGMENT").unwrap_or_else(|_| "256KiB".into());
    (rounds, segment)
}

#[test]
fn kill_9_mid_storm_three_times_loses_and_duplicates_nothing() {
    let (rounds, segment) = knobs();
    let mut h = IngestHarness::start(
        IngestOptions::new()
            .tenant(TenantSpec::new("acme"))
            // Small segments, so that kills also land around segment rotation and compression.
            .set("store", "segment_max_bytes", &segment),
    );
    let key = h.tenant("acme").key.clone();
    let (url, tls) = (h.url(), h.client_tls());
    let storm = Storm::start(
        || Client::new(&url, tls.as_ref(), Duration::from_secs(60)).expect("client"),
        &key,
        "storm",
        4,
        50,
    );

    for round in 1..=rounds {
        storm.wait_for_more(15, Duration::from_secs(120));
        let before_kill = storm.acked();
        h.kill9();
        eprintln!(
            "round {round}: killed with {} batches acknowledged",
            before_kill.len()
        );
        h.start_again();

        // The last batches acknowledged before the kill were durable: resending them now is
        // a duplicate.
        for b in before_kill.iter().rev().take(4) {
            let r = h
                .client()
                .post_batch(&key, &b.agent, b.seq, &b.lines, Encoding::Zstd);
            assert_eq!(
                r.status, 200,
                "{}:{} after kill -9: {}",
                b.agent, b.seq, r.body
            );
            assert_eq!(
                r.json()["duplicate"],
                true,
                "{}:{} was acknowledged before kill -9 but is not known after the restart: {}",
                b.agent,
                b.seq,
                r.body
            );
        }
    }
    storm.wait_for_more(10, Duration::from_secs(120));
    let acked = storm.stop();

    let interrupted = acked.iter().filter(|b| b.interrupted).count();
    let dup_answers = acked.iter().filter(|b| b.duplicate).count();
    eprintln!(
        "{} batches acknowledged, {interrupted} of them after an interrupted attempt ({dup_answers} answered as duplicates)",
        acked.len()
    );
    assert!(
        interrupted > 0,
        "no batch was in flight at any of the {rounds} kills; the test did not exercise resends"
    );

    let check = verify_exactly_once(h.client(), &key, &acked);
    eprintln!(
        "{} rows stored, all valid, each acknowledged line exactly once",
        check.rows
    );

    // And once more after a clean restart (recovery after kills left a consistent store).
    h.restart();
    verify_exactly_once(h.client(), &key, &acked);
}

#[test]
fn queries_during_a_write_storm_see_consistent_data() {
    use std::collections::HashSet;
    let h = IngestHarness::start(
        IngestOptions::new()
            .tenant(TenantSpec::new("acme"))
            // Tiny segments: rotation and compression run all the time under the scans.
            .set("store", "segment_max_bytes", "16KiB"),
    );
    let key = h.tenant("acme").key.clone();
    let (url, tls) = (h.url(), h.client_tls());
    let storm = Storm::start(
        || Client::new(&url, tls.as_ref(), Duration::from_secs(60)).expect("client"),
        &key,
        "live",
        3,
        40,
    );
    storm.wait_for_more(20, Duration::from_secs(120));
    for round in 0..6 {
        let acked_before = storm.acked();
        let (limit, order) = [("97", "asc"), ("1000", "desc"), ("1000000", "asc")][round % 3];
        // Bounded by `until` = now: the storm keeps appending, and ascending pages would
        // chase the tail for ever. Everything acknowledged so far is older.
        let until = logops_e2e::events::now().to_string();
        let started = std::time::Instant::now();
        let rows = h.client().query_all(
            &key,
            "/v1/logs",
            &[("limit", limit), ("order", order), ("until", &until)],
        );
        eprintln!(
            "round {round}: {} rows ({order}, pages of {limit}) in {:?}",
            rows.len(),
            started.elapsed()
        );
        let mut seen = HashSet::with_capacity(rows.len());
        for r in &rows {
            if let Err(e) = logops_e2e::events::parse_stored(r) {
                panic!("round {round}: torn or invalid row while writing ({e}): {r:?}");
            }
            assert!(
                seen.insert(r.as_str()),
                "round {round} ({order}, pages of {limit}): row returned twice: {r}"
            );
        }
        for b in &acked_before {
            for l in &b.lines {
                assert!(seen.contains(l.as_str()), "round {round} ({order}, pages of {limit}): {}:{} acknowledged before the query but missing", b.agent, b.seq);
            }
        }
        // Ascending pages are in store order: per agent, sequence numbers never go back.
        if order == "asc" {
            let mut last: std::collections::HashMap<String, u64> = Default::default();
            for r in &rows {
                let body = logops_e2e::events::body_of(r).unwrap();
                let mut w = body.split_whitespace();
                let (agent, seq) = (
                    w.next().unwrap().to_owned(),
                    w.nth(1).unwrap().parse::<u64>().unwrap(),
                );
                let prev = last.insert(agent.clone(), seq);
                assert!(
                    prev.is_none_or(|p| p <= seq),
                    "round {round}: {agent} seq {seq} after {prev:?} in ascending order"
                );
            }
        }
        // The storm keeps writing while the queries run: stop once there is plenty, so the
        // test stays short on a slow machine.
        if rows.len() > 30_000 && round >= 2 {
            break;
        }
    }
    let acked = storm.stop();
    verify_exactly_once(h.client(), &key, &acked);
}
