//! Validation: a batch with any invalid line is refused as a whole with the line and field
//! named, and nothing of it is written.

use logops_e2e::events::{ndjson, now, LogEvent, MetricEvent};
use logops_e2e::{
    compress, BatchRequest, Encoding, IngestHarness, IngestOptions, Reply, TenantSpec,
};

fn valid_log(marker: &str, i: usize) -> String {
    LogEvent::new(now(), "val-host", format!("{marker} valid line {i}")).line()
}

fn assert_400(r: &Reply, what: &str) -> serde_json::Value {
    assert_eq!(r.status, 400, "{what}: {}", r.body);
    let j = r.json();
    assert!(
        j["error"].is_string() && j["message"].is_string(),
        "{what}: {}",
        r.body
    );
    j
}

#[test]
fn invalid_batches_are_refused_whole_and_nothing_is_written() {
    let h = IngestHarness::start(IngestOptions::new().tenant(TenantSpec::new("acme")));
    let key = h.tenant("acme").key.clone();
    let c = h.client();
    let ts = now().to_string();

    // 1. Line 3 is a metric whose value is a string.
    let m = "bad-value";
    let lines = vec![
        valid_log(m, 1),
        MetricEvent::gauge(now(), "val-host", "ok_metric", 1.0).line(),
        format!(
            r#"{{"ts":"{ts}","kind":"metric","host":"val-host","source":"host","name":"cpu","type":"gauge","value":"high"}}"#
        ),
        valid_log(m, 4),
    ];
    let r = c.post_batch(&key, "val", 1, &lines, Encoding::Zstd);
    let j = assert_400(&r, "value \"high\"");
    assert_eq!(j["line"], 3, "{}", r.body);
    assert_eq!(j["field"], "value", "{}", r.body);

    // 2. Unknown field on line 2.
    let m = "unknown-field";
    let lines = vec![
        valid_log(m, 1),
        format!(
            r#"{{"ts":"{ts}","kind":"log","host":"h","source":"s","body":"{m} x","colour":"red"}}"#
        ),
    ];
    let r = c.post_batch(&key, "val", 2, &lines, Encoding::Zstd);
    let j = assert_400(&r, "unknown field");
    assert_eq!(j["line"], 2, "{}", r.body);
    assert!(
        r.body.contains("colour"),
        "the answer should name the unknown field: {}",
        r.body
    );

    // 3. Missing body on line 2.
    let m = "missing-field";
    let lines = vec![
        valid_log(m, 1),
        format!(r#"{{"ts":"{ts}","kind":"log","host":"h","source":"s","severity":"info"}}"#),
        valid_log(m, 3),
    ];
    let r = c.post_batch(&key, "val", 3, &lines, Encoding::Gzip);
    let j = assert_400(&r, "missing field");
    assert_eq!(
        (j["line"].as_u64(), j["field"].as_str()),
        (Some(2), Some("body")),
        "{}",
        r.body
    );

    // 4. Bad timestamp on line 1.
    let m = "bad-ts";
    let lines = vec![
        format!(r#"{{"ts":"yesterday","kind":"log","host":"h","source":"s","body":"{m} x"}}"#),
        valid_log(m, 2),
    ];
    let r = c.post_batch(&key, "val", 4, &lines, Encoding::Identity);
    let j = assert_400(&r, "bad timestamp");
    assert_eq!(
        (j["line"].as_u64(), j["field"].as_str()),
        (Some(1), Some("ts")),
        "{}",
        r.body
    );

    // 5. Invalid UTF-8 in line 2.
    let m = "bad-utf8";
    let mut body = ndjson(&[valid_log(m, 1)]);
    body.extend_from_slice(
        format!(r#"{{"ts":"{ts}","kind":"log","host":"h","source":"s","body":"{m} "#).as_bytes(),
    );
    body.extend_from_slice(&[0xff, 0xfe]);
    body.extend_from_slice(b"\"}\n");
    let req = BatchRequest::raw(
        Some(&key),
        "val",
        5,
        compress(&body, Encoding::Zstd),
        Some("zstd"),
    );
    let r = c.send(&req).unwrap();
    let j = assert_400(&r, "invalid UTF-8");
    assert_eq!(j["line"], 2, "{}", r.body);

    // 6. Corrupt zstd: a valid frame with bytes flipped in the middle, and plain garbage.
    let good = compress(
        &ndjson(&[valid_log("corrupt-zstd", 1), valid_log("corrupt-zstd", 2)]),
        Encoding::Zstd,
    );
    let mut flipped = good.clone();
    let mid = flipped.len() / 2;
    for b in &mut flipped[mid..mid + 4] {
        *b ^= 0x5a;
    }
    for (what, body) in [
        ("flipped bytes", flipped),
        ("garbage", b"this is not zstd at all".to_vec()),
        ("truncated", good[..good.len() - 3].to_vec()),
    ] {
        let req = BatchRequest::raw(Some(&key), "val", 6, body, Some("zstd"));
        let r = c.send(&req).unwrap();
        assert_400(&r, what);
    }
    // Corrupt gzip too.
    let req = BatchRequest::raw(
        Some(&key),
        "val",
        6,
        b"\x1f\x8b\x08\x00garbage".to_vec(),
        Some("gzip"),
    );
    assert_400(&c.send(&req).unwrap(), "corrupt gzip");

    // 7. Empty batch and an unknown encoding.
    let req = BatchRequest::raw(Some(&key), "val", 7, b"\n\n".to_vec(), Some("identity"));
    assert_400(&c.send(&req).unwrap(), "empty batch");
    let req = BatchRequest::raw(
        Some(&key),
        "val",
        7,
        ndjson(&[valid_log("br", 1)]),
        Some("br"),
    );
    let r = c.send(&req).unwrap();
    assert!(
        r.status == 415 || r.status == 400,
        "Content-Encoding: br → {} {}",
        r.status,
        r.body
    );

    // Nothing of any refused batch was written.
    let all: Vec<String> = ["/v1/logs", "/v1/metrics", "/v1/records"]
        .iter()
        .flat_map(|p| c.query_all(&key, p, &[("limit", "1000000")]))
        .collect();
    assert!(
        all.is_empty(),
        "rows from refused batches were stored: {all:#?}"
    );

    // The refused ids were not remembered: a valid batch under id val:1 is stored, not a
    // duplicate.
    let r = c.post_batch(&key, "val", 1, &[valid_log("fixed", 1)], Encoding::Zstd);
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        r.json()["duplicate"],
        false,
        "a refused batch id was remembered: {}",
        r.body
    );
    let rows = c.query_all(&key, "/v1/logs", &[]);
    assert_eq!(rows.len(), 1, "{rows:#?}");
    assert!(rows[0].contains("fixed valid line 1"), "{rows:#?}");
}

#[test]
fn envelope_headers_are_checked() {
    let h = IngestHarness::start(IngestOptions::new().tenant(TenantSpec::new("acme")));
    let key = h.tenant("acme").key.clone();
    let c = h.client();
    let lines = vec![valid_log("env", 1)];

    // Batch id of another agent.
    let mut req = BatchRequest::new(&key, "agent-a", 1, &lines, Encoding::Zstd);
    req.batch_id = "agent-b:1".into();
    assert_400(&c.send(&req).unwrap(), "batch id of another agent");
    // Batch id without a sequence.
    req.batch_id = "agent-a".into();
    assert_400(&c.send(&req).unwrap(), "batch id without sequence");
    // Agent id with a space.
    let req = BatchRequest::new(&key, "agent a", 1, &lines, Encoding::Zstd);
    assert_400(&c.send(&req).unwrap(), "agent id with a space");
    let rows = c.query_all(&key, "/v1/logs", &[]);
    assert!(rows.is_empty(), "{rows:#?}");
}

#[test]
fn crlf_and_blank_lines_are_accepted_and_stored_clean() {
    let h = IngestHarness::start(IngestOptions::new().tenant(TenantSpec::new("acme")));
    let key = h.tenant("acme").key.clone();
    let c = h.client();
    let (a, b) = (valid_log("crlf", 1), valid_log("crlf", 2));
    let body = format!("{a}\r\n\r\n   \n{b}  \r\n\n");
    let req = BatchRequest::raw(
        Some(&key),
        "crlf",
        1,
        compress(body.as_bytes(), Encoding::Zstd),
        Some("zstd"),
    );
    let r = c.send(&req).unwrap();
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["events"], 2, "{}", r.body);
    // No trailing newline on the last line is fine too.
    let third = valid_log("crlf", 3);
    let req = BatchRequest::raw(Some(&key), "crlf", 2, third.clone().into_bytes(), None);
    assert_eq!(c.send(&req).unwrap().status, 200);
    // Stored without `\r`, trailing blanks or blank lines.
    let rows = c.query(&key, "/v1/logs", &[]);
    assert_eq!(rows.body, format!("{a}\n{b}\n{third}\n"), "stored rows");
}
