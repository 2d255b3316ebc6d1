//! Queries across many segments, most of them closed and sealed: pagination in
//! both orders, time filters that skip segments, the streamed big page, `latest`, and the
//! same after a restart.

use std::time::Duration;

use logops_e2e::events::{now, realistic_line, ts_plus_millis, MetricEvent};
use logops_e2e::process::{describe_files, list_files};
use logops_e2e::{
    parse_prometheus, wait_for, Client, Encoding, IngestHarness, IngestOptions, TenantSpec,
};

fn zst_segments(h: &IngestHarness) -> usize {
    list_files(&h.store_dir())
        .iter()
        .filter(|(p, _)| {
            let name = p.to_string_lossy();
            name.ends_with(".ndjson.zst") && !name.ends_with(".open.ndjson.zst")
        })
        .count()
}

fn check_pages(c: &Client, key: &str, all: &[String], limit: usize, what: &str) {
    let l = limit.to_string();
    let asc = c.query_pages(key, "/v1/logs", &[("limit", &l)]);
    assert!(
        asc.iter().rev().skip(1).all(|p| p.len() == limit),
        "{what}: short page before the last"
    );
    let asc: Vec<String> = asc.concat();
    assert_eq!(
        asc.len(),
        all.len(),
        "{what}: rows in ascending pages of {limit}"
    );
    if let Some(i) = (0..all.len()).find(|&i| asc[i] != all[i]) {
        panic!(
            "{what}: ascending pages of {limit} differ at row {i}:\n got {}\nwant {}",
            asc[i], all[i]
        );
    }
    let desc: Vec<String> = c
        .query_pages(key, "/v1/logs", &[("limit", &l), ("order", "desc")])
        .concat();
    assert_eq!(
        desc.len(),
        all.len(),
        "{what}: rows in descending pages of {limit}"
    );
    if let Some(i) = (0..all.len()).find(|&i| desc[i] != all[all.len() - 1 - i]) {
        panic!("{what}: descending pages of {limit} differ at row {i}");
    }
}

#[test]
fn pagination_and_filters_across_compressed_segments() {
    let mut h = IngestHarness::start(IngestOptions::new().tenant(TenantSpec::new("acme")).set(
        "store",
        "segment_max_bytes",
        "32KiB",
    ));
    let key = h.tenant("acme").key.clone();
    let base = ts_plus_millis(now(), -600_000);
    // 40 batches of 125 lines of ~200 bytes: ~1 MB, ~30 segments. Timestamps grow by 10 ms.
    let mut all = Vec::new();
    for b in 0..40u64 {
        let lines: Vec<String> = (0..125)
            .map(|i| {
                let n = b as i64 * 125 + i as i64;
                realistic_line("seg", b, i, ts_plus_millis(base, n * 10), 200)
            })
            .collect();
        let r = h
            .client()
            .post_batch(&key, "seg", b, &lines, Encoding::Zstd);
        assert_eq!(r.status, 200, "{}", r.body);
        all.extend(lines);
    }
    wait_for(
        "closed segments to be sealed",
        Duration::from_secs(30),
        Duration::from_millis(100),
        |last| {
            *last = describe_files(&h.store_dir(), 5);
            (zst_segments(&h) >= 10).then_some(())
        },
    );

    for round in ["before restart", "after restart"] {
        let c = h.client().clone();
        for limit in [1, 333, 1000, 1_000_000] {
            if limit == 1 {
                // Every row as its own page would be 5,000 requests: check the first 300.
                let mut cursor: Option<String> = None;
                for (i, want) in all.iter().take(300).enumerate() {
                    let mut p = vec![("limit", "1")];
                    if let Some(cur) = &cursor {
                        p.push(("cursor", cur));
                    }
                    let r = c.query(&key, "/v1/logs", &p);
                    assert_eq!(r.lines(), vec![want.clone()], "{round}: page {i} of 1 row");
                    cursor = r.header("x-logops-next").map(str::to_owned);
                    assert!(cursor.is_some(), "{round}: no next after row {i}");
                }
                continue;
            }
            check_pages(&c, &key, &all, limit, round);
        }
        // Time windows that start and end inside different segments.
        for (from, to) in [
            (0usize, 10usize),
            (100, 2_600),
            (1_234, 4_321),
            (4_990, 5_000),
        ] {
            let since = ts_plus_millis(base, from as i64 * 10).to_string();
            let until = ts_plus_millis(base, to as i64 * 10).to_string();
            for order in ["asc", "desc"] {
                let got = c.query_all(
                    &key,
                    "/v1/logs",
                    &[
                        ("since", &since),
                        ("until", &until),
                        ("limit", "700"),
                        ("order", order),
                    ],
                );
                let mut want = all[from..to].to_vec();
                if order == "desc" {
                    want.reverse();
                }
                assert!(
                    got == want,
                    "{round}: since row {from} until row {to}, {order}: {} rows, want {}",
                    got.len(),
                    want.len()
                );
            }
        }
        // A big page streamed over compressed segments (the page is over the in-memory
        // buffer, so the second pass runs).
        let r = c.query(&key, "/v1/logs", &[("limit", "1000000")]);
        assert!(r.lines() == all, "{round}: one big page over all segments");
        let q = c.query_all(
            &key,
            "/v1/logs",
            &[("q", "seg seq 17 line "), ("limit", "50")],
        );
        assert_eq!(q.len(), 125, "{round}: q over compressed segments");
        if round == "before restart" {
            h.restart();
        }
    }
}

#[test]
fn latest_and_metrics_across_compressed_segments() {
    let h = IngestHarness::start(IngestOptions::new().tenant(TenantSpec::new("acme")).set(
        "store",
        "segment_max_bytes",
        "16KiB",
    ));
    let key = h.tenant("acme").key.clone();
    let c = h.client();
    let base = ts_plus_millis(now(), -300_000);
    // 50 batches of 100 samples of 5 series: the newest sample of each series is in the last
    // batch, the oldest segments are compressed.
    let mut all = Vec::new();
    for b in 0..50i64 {
        let lines: Vec<String> = (0..100i64)
            .map(|i| {
                let n = b * 100 + i;
                MetricEvent::gauge(ts_plus_millis(base, n), "m-host", "seg_gauge", n as f64)
                    .label("series", &format!("s{}", n % 5))
                    .line()
            })
            .collect();
        assert_eq!(
            c.post_batch(&key, "segm", b as u64, &lines, Encoding::Zstd)
                .status,
            200
        );
        all.extend(lines);
    }
    wait_for(
        "closed segments to be sealed",
        Duration::from_secs(30),
        Duration::from_millis(100),
        |last| {
            *last = describe_files(&h.store_dir(), 5);
            (zst_segments(&h) >= 5).then_some(())
        },
    );
    assert!(
        c.query_all(&key, "/v1/metrics", &[("limit", "777")]) == all,
        "metrics pages"
    );
    let r = c.query(&key, "/v1/metrics/latest", &[]);
    let samples = parse_prometheus(&r.body).unwrap_or_else(|e| panic!("{e}\n{}", r.body));
    assert_eq!(samples.len(), 5, "{}", r.body);
    for s in &samples {
        let series: i64 = s.labels["series"][1..].parse().unwrap();
        let want = 4_995 + series; // the last n with n % 5 == series
        assert_eq!(
            s.value, want as f64,
            "latest of series {series}:\n{}",
            r.body
        );
        assert_eq!(s.timestamp, Some(ts_plus_millis(base, want).as_millis()));
    }
}
