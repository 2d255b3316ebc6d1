//! Retention: the store shrinks to `retention.max_bytes` (plus the open segment), deleting
//! the oldest data first; and closed segments older than `retention.max_age` go away.

use std::time::Duration;

use logops_e2e::events::{body_of, now, realistic_line, LogEvent};
use logops_e2e::process::describe_files;
use logops_e2e::{random_hex, wait_for, Encoding, IngestHarness, IngestOptions, TenantSpec};

const KIB: u64 = 1024;

/// A line of ~400 bytes whose body is mostly random hex (so it does not compress away).
fn incompressible_line(batch: u64, i: usize) -> String {
    LogEvent::new(
        now(),
        "ret-host",
        format!("ret batch {batch} line {i} {}", random_hex(150)),
    )
    .line()
}

#[test]
fn store_shrinks_to_max_bytes_oldest_first() {
    let segment = 64 * KIB;
    let max_bytes = 256 * KIB;
    let h = IngestHarness::start(
        IngestOptions::new()
            .tenant(TenantSpec::new("acme"))
            .set("store", "segment_max_bytes", "64KiB")
            .set("retention", "max_bytes", "256KiB")
            .set("retention", "interval", "1s"),
    );
    let key = h.tenant("acme").key.clone();
    let c = h.client();

    // ~4 MiB in 100 batches of 100 lines of ~400 bytes (a batch is never split across
    // segments, so batches stay well under a segment).
    let batches = 100u64;
    let per_batch = 100usize;
    for b in 0..batches {
        let lines: Vec<String> = (0..per_batch).map(|i| incompressible_line(b, i)).collect();
        let r = c.post_batch(&key, "ret", b, &lines, Encoding::Zstd);
        assert_eq!(r.status, 200, "batch {b}: {}", r.body);
    }
    let written = h.store_disk_bytes();
    eprintln!("store on disk right after writing: {} KiB", written / KIB);

    let limit = max_bytes + segment;
    let size = wait_for(
        "the store on disk to shrink to retention.max_bytes + one segment",
        Duration::from_secs(30),
        Duration::from_millis(200),
        |last| {
            let size = h.store_disk_bytes();
            *last = format!(
                "{} KiB > {} KiB; {}",
                size / KIB,
                limit / KIB,
                describe_files(&h.store_dir(), 8)
            );
            (size <= limit).then_some(size)
        },
    );
    eprintln!("store on disk after retention: {} KiB", size / KIB);

    // Oldest gone, newest kept, and what is left is a contiguous run of the newest batches.
    let rows = c.query_all(&key, "/v1/logs", &[("limit", "1000000")]);
    assert!(!rows.is_empty(), "retention deleted everything");
    let batch_of = |row: &String| -> u64 {
        let body = body_of(row).expect("log row");
        body.split_whitespace()
            .nth(2)
            .and_then(|n| n.parse().ok())
            .expect("ret batch N")
    };
    let kept: Vec<u64> = rows.iter().map(batch_of).collect();
    assert!(!kept.contains(&0), "the oldest batch is still queryable");
    let newest_rows = kept.iter().filter(|&&b| b == batches - 1).count();
    assert_eq!(newest_rows, per_batch, "the newest batch lost rows");
    let first_kept = kept[0];
    assert!(
        kept.windows(2).all(|w| w[0] <= w[1]),
        "rows out of order after retention"
    );
    // Everything after the first kept batch is complete: only whole old segments went away.
    for b in first_kept + 1..batches {
        assert_eq!(
            kept.iter().filter(|&&k| k == b).count(),
            per_batch,
            "batch {b} is incomplete"
        );
    }
    assert!(
        rows.len() < batches as usize * per_batch,
        "nothing was deleted"
    );

    let metrics = logops_e2e::parse_prometheus(&c.get("/metrics").body).expect("/metrics parses");
    let deleted = logops_e2e::metric_sum(&metrics, "logops_ingest_retention_deleted_segments", &[]);
    assert!(
        deleted.unwrap_or(0.0) > 0.0,
        "retention_deleted_segments: {deleted:?}"
    );
}

#[test]
fn closed_segments_older_than_max_age_are_deleted() {
    let h = IngestHarness::start(
        IngestOptions::new()
            .tenant(TenantSpec::new("acme"))
            .set("store", "segment_max_age", "1s")
            .set("retention", "max_age", "2s")
            .set("retention", "interval", "1s"),
    );
    let key = h.tenant("acme").key.clone();
    let c = h.client();
    let old: Vec<String> = (0..20)
        .map(|i| realistic_line("old", 0, i, now(), 200))
        .collect();
    let r = c.post_batch(&key, "old", 0, &old, Encoding::Zstd);
    assert_eq!(r.status, 200, "{}", r.body);

    // Keep writing small batches (segments may only rotate on a write) until the old batch
    // is gone from queries.
    let mut seq = 0u64;
    wait_for(
        "the batch older than retention.max_age to disappear",
        Duration::from_secs(30),
        Duration::from_millis(250),
        |last| {
            seq += 1;
            let r = c.post_batch(
                &key,
                "filler",
                seq,
                &[realistic_line("filler", seq, 0, now(), 200)],
                Encoding::Zstd,
            );
            assert_eq!(r.status, 200, "{}", r.body);
            let rows = c.query_all(&key, "/v1/logs", &[("q", "old seq 0 line")]);
            *last = format!(
                "{} old rows still there; store: {}",
                rows.len(),
                describe_files(&h.store_dir(), 8)
            );
            rows.is_empty().then_some(())
        },
    );
    // New data is accepted and kept.
    let new: Vec<String> = (0..20)
        .map(|i| realistic_line("new", 0, i, now(), 200))
        .collect();
    let r = c.post_batch(&key, "new", 0, &new, Encoding::Zstd);
    assert_eq!(r.status, 200, "{}", r.body);
    let rows = c.query_all(&key, "/v1/logs", &[("q", "new seq 0 line")]);
    assert_eq!(rows.len(), 20, "the newest batch should be queryable");
}

#[test]
fn a_cursor_into_deleted_segments_still_answers_sanely() {
    let mut h = IngestHarness::start(IngestOptions::new().tenant(TenantSpec::new("acme")).set(
        "store",
        "segment_max_bytes",
        "32KiB",
    ));
    let key = h.tenant("acme").key.clone();
    let mut all = Vec::new();
    for b in 0..30u64 {
        let lines: Vec<String> = (0..125)
            .map(|i| realistic_line("cur", b, i, now(), 200))
            .collect();
        assert_eq!(
            h.client()
                .post_batch(&key, "cur", b, &lines, Encoding::Zstd)
                .status,
            200
        );
        all.extend(lines);
    }
    let cursor = |params: &[(&str, &str)]| {
        let r = h.client().query(&key, "/v1/logs", params);
        r.header("x-logops-next").expect("more pages").to_owned()
    };
    let cursors = [
        (cursor(&[("limit", "100")]), "asc"),
        (cursor(&[("limit", "1500")]), "asc"),
        (cursor(&[("limit", "100"), ("order", "desc")]), "desc"),
        (cursor(&[("limit", "3600"), ("order", "desc")]), "desc"),
    ];
    // Now shrink the budget so that the oldest segments (where the cursors point) go.
    h.reconfigure(|o| {
        o.set("retention", "max_bytes", "20KiB")
            .set("retention", "interval", "1s")
    });
    h.restart();
    let kept = wait_for(
        "retention to delete old segments",
        Duration::from_secs(30),
        Duration::from_millis(200),
        |last| {
            let rows = h
                .client()
                .query_all(&key, "/v1/logs", &[("limit", "1000000")]);
            *last = format!("{} rows; {}", rows.len(), describe_files(&h.store_dir(), 5));
            (rows.len() < all.len()).then_some(rows)
        },
    );
    let first_kept = all
        .iter()
        .position(|l| *l == kept[0])
        .expect("kept rows were written");
    assert!(
        all[first_kept..] == kept[..],
        "retention kept a contiguous newest run"
    );
    for (cursor, order) in &cursors {
        let r = h.client().query(
            &key,
            "/v1/logs",
            &[("limit", "1000000"), ("cursor", cursor), ("order", order)],
        );
        assert!(
            r.status < 500,
            "cursor {cursor} ({order}) after retention: {} {}",
            r.status,
            r.body
        );
        if r.status != 200 {
            continue;
        }
        let rows = r.lines();
        // An in-order run of the kept rows, each once.
        let mut want: Vec<&String> = kept.iter().collect();
        if *order == "desc" {
            want.reverse();
        }
        let start = rows.first().map(|f| {
            want.iter()
                .position(|w| *w == f)
                .unwrap_or_else(|| panic!("cursor {cursor}: a row that is not kept: {f}"))
        });
        if let Some(s) = start {
            assert!(
                rows.iter().zip(&want[s..]).all(|(a, b)| a == *b) && rows.len() <= want.len() - s,
                "cursor {cursor} ({order}): rows are not an in-order run of the kept rows"
            );
        }
    }
}
