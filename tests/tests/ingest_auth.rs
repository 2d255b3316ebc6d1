//! Authentication and authorization of `POST /v1/batch`: API keys, scopes, tenants, HMAC
//! signatures with a replay window, audit log lines that never contain a key.

use logops_e2e::events::batch_lines;
use logops_e2e::{
    unix_now, BatchRequest, Encoding, IngestHarness, IngestOptions, Reply, TenantSpec,
};

fn assert_refused(r: &Reply, status: u16, reason: &str, what: &str) {
    assert_eq!(
        r.status, status,
        "{what}: expected {status}, got {}: {}",
        r.status, r.body
    );
    let j = r.json();
    assert_eq!(
        j["reason"].as_str(),
        Some(reason),
        "{what}: the JSON answer should carry reason `{reason}`: {}",
        r.body
    );
}

/// The log has an audit line naming the peer (127.0.0.1:port) and `reason`.
fn assert_audit_line(log: &str, reason: &str) {
    let found = log.lines().any(|l| {
        l.contains("audit")
            && [
                format!("reason={reason}"),
                format!("reason=\"{reason}\""),
                format!("\"reason\":\"{reason}\""),
            ]
            .iter()
            .any(|form| l.contains(form.as_str()))
            && l.contains("127.0.0.1:")
    });
    assert!(
        found,
        "no audit line with the peer address and reason={reason} in the ingest's log:\n{log}"
    );
}

#[test]
fn keys_scopes_tenants_and_signatures() {
    let mut h = IngestHarness::start(
        IngestOptions::new()
            .tenant(TenantSpec::new("acme"))
            .tenant(TenantSpec::new("other"))
            .tenant(TenantSpec::new("signed").hmac()),
    );
    let c = h.client().clone();
    let acme = h.tenant("acme").clone();
    let other = h.tenant("other").clone();
    let signed = h.tenant("signed").clone();
    let secret = signed
        .hmac_secret
        .clone()
        .expect("hmac tenant has a secret");
    let lines = batch_lines("auth-agent", 1, 3);

    // A control: the right key is accepted.
    let r = c.post_batch(&acme.key, "auth-agent", 1, &lines, Encoding::Zstd);
    assert_eq!(r.status, 200, "{}", r.body);

    // No key.
    let req = BatchRequest::raw(
        None,
        "auth-agent",
        2,
        logops_e2e::compress(&logops_e2e::events::ndjson(&lines), Encoding::Zstd),
        Some("zstd"),
    );
    assert_refused(&c.send(&req).unwrap(), 401, "missing_key", "no key");

    // A key nobody has.
    let wrong_key = format!("lo_e2e_wrong_{}", logops_e2e::random_hex(16));
    let r = c.post_batch(&wrong_key, "auth-agent", 2, &lines, Encoding::Zstd);
    assert_refused(&r, 401, "unknown_key", "wrong key");

    // A read-only key may not write.
    let r = c.post_batch(&acme.read_key, "auth-agent", 2, &lines, Encoding::Zstd);
    assert_refused(&r, 403, "forbidden", "read-only key posting");

    // A key of acme naming another tenant.
    let req = BatchRequest::new(&acme.key, "auth-agent", 2, &lines, Encoding::Zstd).tenant("other");
    assert_refused(
        &c.send(&req).unwrap(),
        403,
        "forbidden",
        "X-LogOps-Tenant: other",
    );
    // ... naming its own tenant is fine.
    let req = BatchRequest::new(&acme.key, "auth-agent", 2, &lines, Encoding::Zstd).tenant("acme");
    assert_eq!(c.send(&req).unwrap().status, 200);

    // HMAC: unsigned → 401.
    let r = c.post_batch(&signed.key, "sig-agent", 1, &lines, Encoding::Zstd);
    assert_eq!(
        r.status, 401,
        "unsigned batch of an HMAC tenant: {}",
        r.body
    );
    assert!(r.json()["reason"].is_string(), "{}", r.body);

    // Good signature → 200.
    let r = c.post_batch_signed(
        &signed.key,
        secret.as_bytes(),
        "sig-agent",
        1,
        &lines,
        Encoding::Zstd,
    );
    assert_eq!(r.status, 200, "good signature: {}", r.body);

    // Wrong secret → 401 mismatch.
    let req = BatchRequest::new(&signed.key, "sig-agent", 2, &lines, Encoding::Zstd)
        .signed(b"not the secret", unix_now());
    assert_refused(
        &c.send(&req).unwrap(),
        401,
        "signature_mismatch",
        "wrong signature",
    );

    // A signature of another body → 401 mismatch.
    let other_body = BatchRequest::new(
        &signed.key,
        "sig-agent",
        2,
        &batch_lines("x", 1, 1),
        Encoding::Zstd,
    )
    .signed(secret.as_bytes(), unix_now());
    let mut req = BatchRequest::new(&signed.key, "sig-agent", 2, &lines, Encoding::Zstd);
    req.signature = other_body.signature;
    assert_refused(
        &c.send(&req).unwrap(),
        401,
        "signature_mismatch",
        "signature of another body",
    );

    // 301 s old, 301 s in the future: outside the 300 s replay window, though correctly signed.
    let req = BatchRequest::new(&signed.key, "sig-agent", 2, &lines, Encoding::Zstd)
        .signed(secret.as_bytes(), unix_now() - 301);
    assert_refused(
        &c.send(&req).unwrap(),
        401,
        "signature_replay_window",
        "timestamp 301 s old",
    );
    let req = BatchRequest::new(&signed.key, "sig-agent", 2, &lines, Encoding::Zstd)
        .signed(secret.as_bytes(), unix_now() + 301);
    assert_refused(
        &c.send(&req).unwrap(),
        401,
        "signature_replay_window",
        "timestamp 301 s ahead",
    );

    // Garbage signature header.
    let req = BatchRequest::new(&signed.key, "sig-agent", 2, &lines, Encoding::Zstd)
        .signature_headers(&unix_now().to_string(), "v1=zz");
    assert_eq!(c.send(&req).unwrap().status, 401);

    // Refused batches were not stored: acme has exactly batches 1 and 2, `signed` has 1.
    let acme_rows = c.query_all(&acme.key, "/v1/logs", &[("limit", "1000000")]);
    assert_eq!(
        acme_rows.len(),
        2 * lines.len(),
        "acme rows: {acme_rows:#?}"
    );
    let signed_rows = c.query_all(&signed.key, "/v1/logs", &[("limit", "1000000")]);
    assert_eq!(
        signed_rows.len(),
        lines.len(),
        "signed rows: {signed_rows:#?}"
    );
    let other_rows = c.query_all(&other.key, "/v1/logs", &[("limit", "1000000")]);
    assert!(other_rows.is_empty(), "{other_rows:#?}");

    // Queries need a key too.
    let r = c.try_get(None, "/v1/logs", &[]).unwrap();
    assert_refused(&r, 401, "missing_key", "query without key");
    let r = c.query(&wrong_key, "/v1/logs", &[]);
    assert_refused(&r, 401, "unknown_key", "query with wrong key");

    // The audit log names peer and reason, and never holds a key or the secret.
    let status = h.sigterm_and_wait();
    assert!(status.success(), "{status}");
    let log = h.log();
    for reason in [
        "missing_key",
        "unknown_key",
        "forbidden",
        "signature_mismatch",
        "signature_replay_window",
    ] {
        assert_audit_line(&log, reason);
    }
    for (what, secret_text) in [
        ("acme's key", acme.key.as_str()),
        ("acme's read key", acme.read_key.as_str()),
        ("the wrong key", wrong_key.as_str()),
        ("signed's key", signed.key.as_str()),
        ("the HMAC secret", secret.as_str()),
    ] {
        assert!(
            !log.contains(secret_text),
            "the ingest's log contains {what}:\n{log}"
        );
    }
}

#[test]
fn malformed_authorization_headers_are_401() {
    let h = IngestHarness::start(IngestOptions::new().tenant(TenantSpec::new("acme")));
    let key = h.tenant("acme").key.clone();
    let c = h.client();
    // `Basic` instead of `Bearer`; the raw key without a scheme.
    for value in [format!("Basic {key}"), key.clone(), "Bearer ".to_owned()] {
        let http = reqwest::blocking::Client::new();
        let body = logops_e2e::compress(
            &logops_e2e::events::ndjson(&batch_lines("m", 1, 1)),
            Encoding::Zstd,
        );
        let r = http
            .post(format!("{}/v1/batch", c.base()))
            .header("authorization", &value)
            .header("x-logops-agent", "m")
            .header("x-logops-batch", "m:1")
            .header("content-encoding", "zstd")
            .body(body)
            .send()
            .unwrap();
        assert_eq!(r.status().as_u16(), 401, "Authorization: {value:?}");
    }
    assert!(
        !h.log().contains(&key),
        "the log contains the key:\n{}",
        h.log()
    );
}
