//! Queries: pagination with `X-LogOps-Next`, order, filters, metrics by name, records by
//! source, `/v1/metrics/latest`, and a page big enough to be streamed.

use logops_common::Severity;
use logops_e2e::events::{now, realistic_line, record_line, ts_plus_millis, LogEvent, MetricEvent};
use logops_e2e::{parse_prometheus, Encoding, IngestHarness, IngestOptions, TenantSpec};

const WORDS: [&str; 4] = ["alpha", "beta", "gamma", "delta"];
const SEVERITIES: [Option<&str>; 6] = [
    None,
    Some("debug"),
    Some("info"),
    Some("warning"),
    Some("error"),
    Some("critical"),
];

struct Row {
    line: String,
    host: String,
    source: &'static str,
    severity: Option<Severity>,
    body: String,
    ts: logops_common::Timestamp,
}

fn dataset(n: usize) -> Vec<Row> {
    let base = ts_plus_millis(now(), -3_600_000);
    (0..n)
        .map(|i| {
            let host = format!("web-0{}", i % 3 + 1);
            // Staggered periods, so that every combination of attributes occurs.
            let source = if (i / 3) % 2 == 0 { "file" } else { "syslog" };
            let sev = SEVERITIES[(i / 7) % 6];
            let body = format!("query event {i:05} {}", WORDS[(i / 5) % 4]);
            let ts = ts_plus_millis(base, i as i64);
            let line = LogEvent::new(ts, &host, body.clone())
                .source(source)
                .severity(sev)
                .line();
            Row {
                line,
                host,
                source,
                severity: sev.map(|s| s.parse().unwrap()),
                body,
                ts,
            }
        })
        .collect()
}

fn expect(rows: &[Row], f: impl Fn(&Row) -> bool) -> Vec<String> {
    rows.iter()
        .filter(|r| f(r))
        .map(|r| r.line.clone())
        .collect()
}

#[test]
fn pagination_order_and_filters() {
    let h = IngestHarness::start(IngestOptions::new().tenant(TenantSpec::new("acme")));
    let key = h.tenant("acme").key.clone();
    let c = h.client();
    let data = dataset(2_500);
    for (seq, chunk) in data.chunks(500).enumerate() {
        let lines: Vec<String> = chunk.iter().map(|r| r.line.clone()).collect();
        let r = c.post_batch(&key, "query", seq as u64, &lines, Encoding::Zstd);
        assert_eq!(r.status, 200, "{}", r.body);
    }
    let all: Vec<String> = data.iter().map(|r| r.line.clone()).collect();

    // Pages of 1000: 1000, 1000, 500; the last has no X-LogOps-Next.
    let pages = c.query_pages(&key, "/v1/logs", &[("limit", "1000")]);
    let sizes: Vec<usize> = pages.iter().map(Vec::len).collect();
    assert_eq!(sizes, [1000, 1000, 500], "page sizes");
    let joined: Vec<String> = pages.concat();
    assert!(
        joined == all,
        "pages of 1000 do not reproduce the 2,500 events in order"
    );
    let first = c.query(&key, "/v1/logs", &[("limit", "1000")]);
    assert!(
        first.header("x-logops-next").is_some(),
        "first page without X-LogOps-Next"
    );
    if let Some(rows) = first.header("x-logops-rows") {
        assert_eq!(rows, "1000");
    }
    // Exactly the limit: one page, no next.
    let one = c.query(&key, "/v1/logs", &[("limit", "2500")]);
    assert_eq!(one.lines().len(), 2500);
    assert!(
        one.header("x-logops-next").is_none(),
        "a page holding everything has X-LogOps-Next"
    );
    // The default page is 1000 rows.
    assert_eq!(c.query(&key, "/v1/logs", &[]).lines().len(), 1000);

    // Descending: the exact reverse, also across pages.
    let desc = c.query_all(&key, "/v1/logs", &[("limit", "1000"), ("order", "desc")]);
    let mut rev = all.clone();
    rev.reverse();
    assert!(
        desc == rev,
        "order=desc is not the reverse ({} rows)",
        desc.len()
    );
    let desc_small = c.query_all(
        &key,
        "/v1/logs",
        &[
            ("limit", "7"),
            ("order", "desc"),
            ("host", "web-02"),
            ("q", "gamma"),
        ],
    );
    let mut want = expect(&data, |r| r.host == "web-02" && r.body.contains("gamma"));
    want.reverse();
    assert!(desc_small == want, "desc pages of 7 with filters");

    // Filters, each checked against the same filter applied locally, through pages of 1000.
    let check = |params: &[(&str, &str)], want: Vec<String>, what: &str| {
        let mut p = params.to_vec();
        p.push(("limit", "1000"));
        let got = c.query_all(&key, "/v1/logs", &p);
        assert!(
            !want.is_empty(),
            "{what}: the expectation is empty, the check would be weak"
        );
        assert!(
            got == want,
            "{what}: got {} rows, want {}; first got: {:?}",
            got.len(),
            want.len(),
            got.first()
        );
    };
    check(
        &[("host", "web-02")],
        expect(&data, |r| r.host == "web-02"),
        "host",
    );
    check(
        &[("source", "syslog")],
        expect(&data, |r| r.source == "syslog"),
        "source",
    );
    check(
        &[("severity", "warning")],
        expect(&data, |r| {
            r.severity.is_some_and(|s| s >= Severity::Warning)
        }),
        "severity ≥ warning",
    );
    check(
        &[("severity", "critical")],
        expect(&data, |r| r.severity == Some(Severity::Critical)),
        "severity ≥ critical",
    );
    check(
        &[("q", "gamma")],
        expect(&data, |r| r.body.contains("gamma")),
        "q",
    );
    check(
        &[("q", "event 0012")],
        expect(&data, |r| r.body.contains("event 0012")),
        "q prefix",
    );
    let (since, until) = (data[100].ts.to_string(), data[200].ts.to_string());
    check(
        &[("since", &since), ("until", &until)],
        all[100..200].to_vec(),
        "since (inclusive) / until (exclusive)",
    );
    check(
        &[("since", &data[2_400].ts.to_string())],
        all[2_400..].to_vec(),
        "since",
    );
    check(
        &[("until", &data[10].ts.to_string())],
        all[..10].to_vec(),
        "until",
    );
    check(
        &[
            ("host", "web-01"),
            ("source", "file"),
            ("severity", "info"),
            ("q", "alpha"),
            ("since", &since),
        ],
        expect(&data, |r| {
            r.host == "web-01"
                && r.source == "file"
                && r.severity.is_some_and(|s| s >= Severity::Info)
                && r.body.contains("alpha")
                && r.ts >= data[100].ts
        }),
        "combined",
    );
    let none = c.query(&key, "/v1/logs", &[("host", "nobody")]);
    assert_eq!((none.status, none.lines().len()), (200, 0));
    assert!(none.header("x-logops-next").is_none());

    // Bad parameters are 400 and named.
    for (k, v) in [
        ("limit", "0"),
        ("limit", "1000001"),
        ("order", "sideways"),
        ("severity", "loud"),
        ("since", "last tuesday"),
        ("cursor", "garbage"),
        ("colour", "red"),
    ] {
        let r = c.query(&key, "/v1/logs", &[(k, v)]);
        assert_eq!(r.status, 400, "{k}={v}: {}", r.body);
        assert!(
            r.body.contains(k),
            "the 400 for {k}={v} should name it: {}",
            r.body
        );
    }
}

#[test]
fn metrics_records_and_latest() {
    let h = IngestHarness::start(IngestOptions::new().tenant(TenantSpec::new("acme")));
    let key = h.tenant("acme").key.clone();
    let c = h.client();
    let t0 = ts_plus_millis(now(), -60_000);

    let mut cpu = Vec::new();
    let mut mixed = Vec::new();
    for i in 0..20 {
        let ts = ts_plus_millis(t0, i);
        let name = if i % 2 == 0 {
            "q_cpu_ratio"
        } else {
            "q_mem_bytes"
        };
        let line = MetricEvent::gauge(ts, "m-host", name, i as f64)
            .label("core", "0")
            .line();
        if i % 2 == 0 {
            cpu.push(line.clone());
        }
        mixed.push(line);
    }
    let mut snmp = Vec::new();
    for i in 0..10 {
        let source = if i % 3 == 0 { "snmp" } else { "ssh" };
        let line = record_line(
            ts_plus_millis(t0, i),
            "r-host",
            source,
            serde_json::json!({"if": format!("Gi0/{i}"), "up": true}),
        );
        if source == "snmp" {
            snmp.push(line.clone());
        }
        mixed.push(line);
    }
    mixed.push(LogEvent::new(t0, "l-host", "a log among metrics").line());
    assert_eq!(
        c.post_batch(&key, "m", 1, &mixed, Encoding::Zstd).status,
        200
    );

    assert_eq!(
        c.query_all(&key, "/v1/metrics", &[("name", "q_cpu_ratio")]),
        cpu,
        "/v1/metrics?name="
    );
    assert_eq!(
        c.query_all(&key, "/v1/metrics", &[]).len(),
        20,
        "all metrics, no logs or records"
    );
    assert_eq!(
        c.query_all(&key, "/v1/records", &[("source", "snmp")]),
        snmp,
        "/v1/records?source="
    );
    assert_eq!(c.query_all(&key, "/v1/records", &[]).len(), 10);
    assert_eq!(c.query_all(&key, "/v1/logs", &[]).len(), 1);

    // Latest: the later timestamp wins, even when it was written first.
    let (early, late) = (
        ts_plus_millis(now(), -20_000),
        ts_plus_millis(now(), -10_000),
    );
    let room_a_late = MetricEvent::gauge(late, "h1", "q_temp_celsius", 22.5)
        .label("room", "a")
        .line();
    let room_b = MetricEvent::gauge(early, "h1", "q_temp_celsius", 19.0)
        .label("room", "b")
        .line();
    assert_eq!(
        c.post_batch(&key, "m", 2, &[room_a_late, room_b], Encoding::Zstd)
            .status,
        200
    );
    let room_a_early = MetricEvent::gauge(early, "h1", "q_temp_celsius", 30.0)
        .label("room", "a")
        .line();
    assert_eq!(
        c.post_batch(&key, "m", 3, &[room_a_early], Encoding::Zstd)
            .status,
        200
    );

    let r = c.query(&key, "/v1/metrics/latest", &[]);
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(
        r.header("content-type")
            .unwrap_or("")
            .starts_with("text/plain"),
        "{:?}",
        r.headers
    );
    let samples = parse_prometheus(&r.body)
        .unwrap_or_else(|e| panic!("latest is not Prometheus text ({e}):\n{}", r.body));
    assert!(r.body.contains("# TYPE q_temp_celsius gauge"), "{}", r.body);
    let temp: Vec<_> = samples
        .iter()
        .filter(|s| s.name == "q_temp_celsius")
        .collect();
    assert_eq!(temp.len(), 2, "one sample per series:\n{}", r.body);
    let a = temp
        .iter()
        .find(|s| s.labels.get("room").map(String::as_str) == Some("a"))
        .expect("room a");
    assert_eq!(a.value, 22.5, "the later sample wins:\n{}", r.body);
    assert_eq!(
        a.labels.get("host").map(String::as_str),
        Some("h1"),
        "{}",
        r.body
    );
    assert_eq!(a.timestamp, Some(late.as_millis()), "{}", r.body);
    let b = temp
        .iter()
        .find(|s| s.labels.get("room").map(String::as_str) == Some("b"))
        .expect("room b");
    assert_eq!(b.value, 19.0);
    // The 20 earlier samples of two series: latest values 18 (cpu) and 19 (mem).
    let cpu_latest = samples
        .iter()
        .find(|s| s.name == "q_cpu_ratio")
        .expect("q_cpu_ratio in latest");
    assert_eq!(cpu_latest.value, 18.0, "{}", r.body);
    // Filtered by name.
    let r = c.query(&key, "/v1/metrics/latest", &[("name", "q_mem_bytes")]);
    let samples = parse_prometheus(&r.body).unwrap();
    assert!(
        samples.iter().all(|s| s.name == "q_mem_bytes") && samples.len() == 1,
        "{}",
        r.body
    );
    assert_eq!(samples[0].value, 19.0);
}

#[test]
fn a_big_page_is_streamed_completely() {
    let h = IngestHarness::start(IngestOptions::new().tenant(TenantSpec::new("acme")));
    let key = h.tenant("acme").key.clone();
    let c = h.client();
    let n = 100_000usize;
    let base = now();
    let lines: Vec<String> = (0..n)
        .map(|i| {
            realistic_line(
                "big",
                (i / 5000) as u64,
                i % 5000,
                ts_plus_millis(base, i as i64 / 100),
                200,
            )
        })
        .collect();
    let total: usize = lines.iter().map(|l| l.len() + 1).sum();
    eprintln!("{n} lines, {:.1} MiB", total as f64 / (1 << 20) as f64);
    for (seq, chunk) in lines.chunks(5000).enumerate() {
        let r = c.post_batch(&key, "big", seq as u64, chunk, Encoding::Zstd);
        assert_eq!(r.status, 200, "{}", r.body);
    }

    let r = c.query(&key, "/v1/logs", &[("limit", "200000")]);
    assert_eq!(r.status, 200);
    assert!(
        r.header("x-logops-next").is_none(),
        "everything fits: no next page"
    );
    let got = r.lines();
    assert_eq!(got.len(), n, "rows in a 200,000-row page");
    assert!(got == lines, "the big page differs from what was written");
    assert_eq!(r.body.len(), total, "bytes of the big page");

    // Split in two big pages.
    let pages = c.query_pages(&key, "/v1/logs", &[("limit", "60000")]);
    assert_eq!(
        pages.iter().map(Vec::len).collect::<Vec<_>>(),
        [60_000, 40_000]
    );
    assert!(pages.concat() == lines);
    // And descending.
    let desc = c
        .query(&key, "/v1/logs", &[("limit", "200000"), ("order", "desc")])
        .lines();
    assert_eq!(desc.len(), n);
    assert!(desc.iter().rev().eq(lines.iter()), "big page, order=desc");
}
