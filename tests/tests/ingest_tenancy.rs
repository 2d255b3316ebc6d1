//! Tenant isolation: a key reads only its own tenant's data, whatever it asks for.

use logops_e2e::events::{batch_lines, body_of, now, record_line, MetricEvent};
use logops_e2e::{Encoding, IngestHarness, IngestOptions, TenantSpec};

#[test]
fn a_key_sees_only_its_tenant() {
    let h = IngestHarness::start(
        IngestOptions::new()
            .tenant(TenantSpec::new("a"))
            .tenant(TenantSpec::new("b")),
    );
    let (a, b) = (h.tenant("a").clone(), h.tenant("b").clone());
    let c = h.client();

    // Same agent id and sequence in both tenants: different batches.
    let a_logs = batch_lines("tenant-a-agent", 1, 30);
    let b_logs = batch_lines("tenant-b-agent", 1, 40);
    assert_eq!(
        c.post_batch(&a.key, "shared", 1, &a_logs, Encoding::Zstd)
            .status,
        200
    );
    let r = c.post_batch(&b.key, "shared", 1, &b_logs, Encoding::Zstd);
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        r.json()["duplicate"],
        false,
        "a batch id of tenant a made b's batch a duplicate"
    );
    let ts = now();
    let a_other = vec![
        MetricEvent::gauge(ts, "host-a", "a_metric", 1.0).line(),
        record_line(ts, "host-a", "ssh", serde_json::json!({"owner": "a"})),
    ];
    let b_other = vec![
        MetricEvent::gauge(ts, "host-b", "b_metric", 2.0).line(),
        record_line(ts, "host-b", "ssh", serde_json::json!({"owner": "b"})),
    ];
    assert_eq!(
        c.post_batch(&a.key, "shared", 2, &a_other, Encoding::Zstd)
            .status,
        200
    );
    assert_eq!(
        c.post_batch(&b.key, "shared", 2, &b_other, Encoding::Zstd)
            .status,
        200
    );

    for (who, keys, logs, other, foreign) in [
        ("a", [&a.key, &a.read_key], &a_logs, &a_other, "b"),
        ("b", [&b.key, &b.read_key], &b_logs, &b_other, "a"),
    ] {
        for key in keys {
            let rows = c.query_all(key, "/v1/logs", &[("limit", "1000000")]);
            let mut bodies: Vec<String> = rows.iter().map(|r| body_of(r).unwrap()).collect();
            let mut want: Vec<String> = logs.iter().map(|l| body_of(l).unwrap()).collect();
            bodies.sort();
            want.sort();
            assert_eq!(bodies, want, "tenant {who}'s logs");
            let metrics = c.query_all(key, "/v1/metrics", &[]);
            assert_eq!(metrics, vec![other[0].clone()], "tenant {who}'s metrics");
            let records = c.query_all(key, "/v1/records", &[]);
            assert_eq!(records, vec![other[1].clone()], "tenant {who}'s records");
            let latest = c.query(key, "/v1/metrics/latest", &[]);
            assert_eq!(latest.status, 200);
            assert!(
                latest.body.contains(&format!("{who}_metric"))
                    && !latest.body.contains(&format!("{foreign}_metric")),
                "tenant {who}'s latest: {}",
                latest.body
            );

            // Asking for the other tenant is refused, not answered with own data.
            for path in [
                "/v1/logs",
                "/v1/metrics",
                "/v1/records",
                "/v1/metrics/latest",
            ] {
                let r = c.query(key, path, &[("tenant", foreign)]);
                assert_eq!(
                    r.status, 403,
                    "{who}'s key, {path}?tenant={foreign}: {}",
                    r.body
                );
                assert!(
                    !r.body.contains("seq 1 line"),
                    "403 answer leaks rows: {}",
                    r.body
                );
            }
            let r = c.query(key, "/v1/logs", &[("tenant", who)]);
            assert_eq!(r.status, 200, "{who}'s key, ?tenant={who}: {}", r.body);
            let http = reqwest::blocking::Client::new();
            let r = http
                .get(format!("{}/v1/logs", c.base()))
                .bearer_auth(key)
                .header("x-logops-tenant", foreign)
                .send()
                .unwrap();
            assert_eq!(
                r.status().as_u16(),
                403,
                "{who}'s key with X-LogOps-Tenant: {foreign}"
            );
        }
    }
}
