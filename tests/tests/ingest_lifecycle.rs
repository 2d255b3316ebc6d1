//! Lifecycle and operations: graceful SIGTERM under load, the `keygen`, `check-config` and
//! `query` subcommands, `/metrics`, `/readyz`.

use std::time::Duration;

use logops_e2e::events::batch_lines;
use logops_e2e::process::ingest_binary;
use logops_e2e::storm::{verify_acked_once, verify_exactly_once, Storm};
use logops_e2e::{
    metric_sum, parse_prometheus, run_binary, Client, Encoding, IngestHarness, IngestOptions,
    TenantSpec,
};

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn sigterm_with_requests_in_flight_exits_0_and_keeps_every_acknowledged_batch() {
    let mut h = IngestHarness::start(IngestOptions::new().tenant(TenantSpec::new("acme")));
    let key = h.tenant("acme").key.clone();
    let (url, tls) = (h.url(), h.client_tls());
    let storm = Storm::start(
        || Client::new(&url, tls.as_ref(), Duration::from_secs(60)).expect("client"),
        &key,
        "term",
        4,
        200,
    );
    storm.wait_for_more(10, Duration::from_secs(120));
    let at_sigterm = storm.acked_count();
    h.sigterm();
    let status = h.wait_exit(Duration::from_secs(60));
    let at_exit = storm.acked_count();
    eprintln!("SIGTERM with {at_sigterm} batches acknowledged; {at_exit} at exit");
    assert!(
        status.success(),
        "SIGTERM under load: exit status {status}; log:\n{}",
        h.log_tail(40)
    );

    h.start_again();
    // Every batch acknowledged so far is there, once (the storm keeps going, resending the
    // interrupted batch of each agent under the same id, so more rows may appear).
    verify_acked_once(h.client(), &key, &storm.acked());
    storm.wait_for_more(5, Duration::from_secs(120));
    let acked = storm.stop();
    let check = verify_exactly_once(h.client(), &key, &acked);
    eprintln!(
        "{} batches, {} rows, each exactly once",
        acked.len(),
        check.rows
    );
}

/// Sends the head and half the body of a batch over a raw connection, returns the stream
/// and the rest of the body.
fn half_sent_batch(port: u16, key: &str, lines: &[String]) -> (std::net::TcpStream, Vec<u8>) {
    use std::io::Write;
    let body = logops_e2e::compress(&logops_e2e::events::ndjson(lines), Encoding::Zstd);
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    let head = format!(
        "POST /v1/batch HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAuthorization: Bearer {key}\r\n\
         X-LogOps-Agent: inflight\r\nX-LogOps-Batch: inflight:1\r\nContent-Encoding: zstd\r\n\
         Content-Type: application/x-ndjson\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes()).unwrap();
    let half = body.len() / 2;
    s.write_all(&body[..half]).unwrap();
    s.flush().unwrap();
    (s, body[half..].to_vec())
}

#[test]
fn a_request_in_flight_at_sigterm_is_finished_and_stored() {
    use std::io::{Read, Write};
    let mut h = IngestHarness::start(IngestOptions::new().tenant(TenantSpec::new("acme")));
    let key = h.tenant("acme").key.clone();
    let lines = batch_lines("inflight", 1, 2000);
    let (mut stream, rest) = half_sent_batch(h.port(), &key, &lines);
    // The server has the request head and half the body (give it a moment to read them),
    // then it is asked to stop, then the rest of the body arrives.
    std::thread::sleep(Duration::from_millis(300));
    h.sigterm();
    std::thread::sleep(Duration::from_millis(300));
    let wrote = stream.write_all(&rest);
    let mut answer = String::new();
    let read = stream.read_to_string(&mut answer);
    let status = h.wait_exit(Duration::from_secs(60));
    assert!(status.success(), "exit status {status}");
    assert!(
        answer.starts_with("HTTP/1.1 200"),
        "a request in flight at SIGTERM was not finished: write {wrote:?}, read {read:?}, answer {answer:?}; log:\n{}",
        h.log_since_start()
    );
    h.start_again();
    let rows = h
        .client()
        .query_all(&key, "/v1/logs", &[("limit", "1000000")]);
    assert!(
        rows == lines,
        "the batch acknowledged during shutdown is not stored ({} rows)",
        rows.len()
    );
}

#[test]
fn keygen_prints_a_key_and_its_sha256_line_which_works() {
    let bin = ingest_binary().unwrap_or_else(|e| panic!("{e:#}"));
    let out = run_binary(&bin, &["keygen", "--tenant", "acme"]);
    assert!(out.status.success(), "keygen failed: {}", text(&out.stderr));
    let stdout = text(&out.stdout);
    let hash_line = stdout
        .lines()
        .find(|l| l.trim_start().starts_with("api_key_sha256 = [\""))
        .unwrap_or_else(|| panic!("no `api_key_sha256 = [\"...\"]` line in:\n{stdout}"));
    let hash = hash_line
        .split('"')
        .nth(1)
        .unwrap_or_else(|| panic!("cannot read the hash from {hash_line:?}"));
    assert!(
        hash.len() == 64 && hash.bytes().all(|b| b.is_ascii_hexdigit()),
        "{hash_line}"
    );
    let keys: Vec<&str> = stdout
        .split_whitespace()
        .filter(|t| logops_common::sign::api_key_sha256(t) == hash)
        .collect();
    assert_eq!(
        keys.len(),
        1,
        "exactly one printed token should hash to {hash}:\n{stdout}"
    );
    let key = keys[0].to_owned();
    assert!(key.len() >= 32, "the key is short: {key}");
    assert!(stdout.contains("name = \"acme\""), "{stdout}");

    // Two runs, two keys.
    let again = text(&run_binary(&bin, &["keygen", "--tenant", "acme"]).stdout);
    assert!(!again.contains(&key), "keygen printed the same key twice");

    // Read-only keys go to read_key_sha256.
    let ro = text(&run_binary(&bin, &["keygen", "--tenant", "acme", "--read-only"]).stdout);
    assert!(ro.contains("read_key_sha256 = [\""), "{ro}");
    // A bad tenant name is refused.
    let bad = run_binary(&bin, &["keygen", "--tenant", "Not A Name"]);
    assert!(!bad.status.success(), "keygen accepted a bad tenant name");

    // The printed line works: an ingest configured with it accepts the key.
    let h =
        IngestHarness::start(IngestOptions::new().tenant(TenantSpec::new("acme").key_sha256(hash)));
    let r = h
        .client()
        .post_batch(&key, "kg", 1, &batch_lines("kg", 1, 2), Encoding::Zstd);
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(!h.log().contains(&key), "the key is in the log");
}

#[test]
fn check_config_names_the_file_and_line() {
    let bin = ingest_binary().unwrap_or_else(|e| panic!("{e:#}"));
    let dir = tempfile::tempdir().unwrap();

    let broken = dir.path().join("broken-ingest.toml");
    std::fs::write(&broken, "listen = \"127.0.0.1:8080\"\nlistne = 1\n").unwrap();
    let out = run_binary(
        &bin,
        &["check-config", "--config", broken.to_str().unwrap()],
    );
    let msg = format!("{}{}", text(&out.stdout), text(&out.stderr));
    assert!(
        !out.status.success(),
        "check-config accepted an unknown key:\n{msg}"
    );
    assert!(
        msg.contains("broken-ingest.toml"),
        "the message should name the file:\n{msg}"
    );
    assert!(
        msg.contains("line 2"),
        "the message should name the line:\n{msg}"
    );
    assert!(
        msg.contains("listne"),
        "the message should name the key:\n{msg}"
    );

    let bad_value = dir.path().join("bad-value.toml");
    std::fs::write(&bad_value, "[limits]\nmax_body = \"8 parsecs\"\n").unwrap();
    let out = run_binary(&bin, &["check-config", "-c", bad_value.to_str().unwrap()]);
    let msg = text(&out.stderr);
    assert!(
        !out.status.success() && msg.contains("bad-value.toml") && msg.contains("line 2"),
        "{msg}"
    );

    let bad_hash = dir.path().join("bad-hash.toml");
    std::fs::write(
        &bad_hash,
        "[[tenant]]\nname = \"acme\"\napi_key_sha256 = [\"abc\"]\n",
    )
    .unwrap();
    let out = run_binary(&bin, &["check-config", "-c", bad_hash.to_str().unwrap()]);
    let msg = text(&out.stderr);
    assert!(
        !out.status.success() && msg.contains("bad-hash.toml") && msg.contains("api_key_sha256"),
        "{msg}"
    );

    let missing = dir.path().join("missing.toml");
    let out = run_binary(&bin, &["check-config", "-c", missing.to_str().unwrap()]);
    assert!(
        !out.status.success() && text(&out.stderr).contains("missing.toml"),
        "{}",
        text(&out.stderr)
    );

    // A good file (the harness's) passes.
    let h = IngestHarness::start(IngestOptions::new().tenant(TenantSpec::new("acme")));
    let out = run_binary(
        &bin,
        &["check-config", "-c", h.config_path().to_str().unwrap()],
    );
    assert!(
        out.status.success(),
        "check-config on a working config: {}",
        text(&out.stderr)
    );
}

#[test]
fn query_subcommand_prints_the_stored_lines() {
    let h = IngestHarness::start(IngestOptions::new().tenant(TenantSpec::new("acme")));
    let key = h.tenant("acme").key.clone();
    let lines = batch_lines("cli", 1, 250);
    assert_eq!(
        h.client()
            .post_batch(&key, "cli", 1, &lines, Encoding::Zstd)
            .status,
        200
    );
    let key_file = h.dir().join("query.key");
    std::fs::write(&key_file, format!("{key}\n")).unwrap();
    let kf = key_file.to_str().unwrap();
    let url = h.url();

    let out = h.run_cli(&[
        "query",
        "logs",
        "--url",
        &url,
        "--api-key-file",
        kf,
        "--all",
        "--limit",
        "100",
    ]);
    assert!(out.status.success(), "query --all: {}", text(&out.stderr));
    let printed: Vec<String> = text(&out.stdout).lines().map(str::to_owned).collect();
    assert!(
        printed == lines,
        "query --all printed {} lines, want the 250 stored",
        printed.len()
    );

    // Without --all: one page and the cursor of the next.
    let out = h.run_cli(&[
        "query",
        "logs",
        "--url",
        &url,
        "--api-key-file",
        kf,
        "--limit",
        "100",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout).lines().count(), 100);
    assert!(
        text(&out.stderr).contains("--cursor"),
        "{}",
        text(&out.stderr)
    );

    // A wrong key fails with the status.
    std::fs::write(&key_file, "lo_wrong\n").unwrap();
    let out = h.run_cli(&["query", "logs", "--url", &url, "--api-key-file", kf]);
    assert!(!out.status.success(), "query with a wrong key succeeded");
    assert!(text(&out.stderr).contains("401"), "{}", text(&out.stderr));
}

#[test]
fn metrics_and_readiness() {
    let h = IngestHarness::start(IngestOptions::new().tenant(TenantSpec::new("acme")));
    let key = h.tenant("acme").key.clone();
    let c = h.client();
    assert_eq!(c.get("/readyz").status, 200, "readyz");
    assert_eq!(c.get("/healthz").status, 200, "healthz");

    let mut events = 0;
    for seq in 0..12u64 {
        let lines = batch_lines("metrics", seq, 10 + seq as usize);
        events += lines.len();
        assert_eq!(
            c.post_batch(&key, "metrics", seq, &lines, Encoding::Zstd)
                .status,
            200
        );
    }
    // Two duplicates and one refused key.
    for seq in [3u64, 7] {
        let r = c.post_batch(
            &key,
            "metrics",
            seq,
            &batch_lines("metrics", seq, 10 + seq as usize),
            Encoding::Zstd,
        );
        assert_eq!(r.json()["duplicate"], true);
    }
    assert_eq!(
        c.post_batch(
            "lo_nope",
            "metrics",
            99,
            &batch_lines("metrics", 99, 1),
            Encoding::Zstd
        )
        .status,
        401
    );

    let r = c.get("/metrics");
    assert_eq!(r.status, 200);
    let samples = parse_prometheus(&r.body)
        .unwrap_or_else(|e| panic!("/metrics does not parse: {e}\n{}", r.body));
    let get = |name: &str, labels: &[(&str, &str)]| {
        metric_sum(&samples, name, labels)
            .unwrap_or_else(|| panic!("no {name}{labels:?} in /metrics:\n{}", r.body))
    };
    assert_eq!(
        get(
            "logops_ingest_requests_total",
            &[
                ("route", "/v1/batch"),
                ("status", "200"),
                ("tenant", "acme")
            ]
        ),
        14.0
    );
    assert!(
        get(
            "logops_ingest_requests_total",
            &[("route", "/v1/batch"), ("status", "401")]
        ) >= 1.0
    );
    assert_eq!(
        get(
            "logops_ingest_events_total",
            &[("tenant", "acme"), ("outcome", "accepted")]
        ),
        events as f64
    );
    assert_eq!(
        get(
            "logops_ingest_duplicate_batches_total",
            &[("tenant", "acme")]
        ),
        2.0
    );
    let fsyncs = get("logops_ingest_fsync_duration_seconds_count", &[]);
    assert!(fsyncs >= 1.0, "fsync count {fsyncs}");
    let fsync_sum = get("logops_ingest_fsync_duration_seconds_sum", &[]);
    assert!(
        fsync_sum > 0.0 && fsync_sum / fsyncs < 10.0,
        "fsync seconds sum {fsync_sum} over {fsyncs}"
    );
    let store_bytes = get("logops_ingest_store_bytes", &[]);
    let on_disk = h.store_disk_bytes() as f64;
    let payload: f64 = (0..12)
        .map(|s| {
            batch_lines("metrics", s, 10 + s as usize)
                .iter()
                .map(|l| l.len() + 1)
                .sum::<usize>() as f64
        })
        .sum();
    eprintln!("store_bytes {store_bytes}, files under store/ {on_disk}, payload {payload}");
    assert!(store_bytes > 0.0, "store_bytes is 0 after writes");
    assert!(
        store_bytes <= on_disk,
        "store_bytes {store_bytes} > bytes of the files under store/ ({on_disk})"
    );
    assert!(
        store_bytes >= payload / 20.0,
        "store_bytes {store_bytes} is implausibly small for {payload} bytes of events"
    );
    assert_eq!(c.get("/readyz").status, 200, "readyz after writes");
}

#[test]
fn a_second_ingest_on_the_same_data_dir_refuses_to_start() {
    let h = IngestHarness::start(IngestOptions::new().tenant(TenantSpec::new("acme")));
    let key = h.tenant("acme").key.clone();
    assert_eq!(
        h.client()
            .post_batch(&key, "lock", 1, &batch_lines("lock", 1, 2), Encoding::Zstd)
            .status,
        200
    );
    let port = logops_e2e::free_port().to_string();
    let listen = format!("127.0.0.1:{port}");
    let mut child = std::process::Command::new(ingest_binary().unwrap())
        .args([
            "--config",
            h.config_path().to_str().unwrap(),
            "--listen",
            &listen,
        ])
        .env("NO_COLOR", "1")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // It must exit by itself (bounded: killed after 30 s).
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("a second ingest on the same data_dir kept running (it should refuse the locked directory)");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut err = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
    assert!(
        !status.success(),
        "the second ingest exited successfully: {err}"
    );
    assert!(
        err.to_lowercase().contains("lock") || err.contains("in use"),
        "the message should say the directory is locked: {err}"
    );
    // The first one is unharmed.
    assert_eq!(h.client().query_all(&key, "/v1/logs", &[]).len(), 2);
    assert_eq!(
        h.client()
            .post_batch(&key, "lock", 2, &batch_lines("lock", 2, 2), Encoding::Zstd)
            .status,
        200
    );
}

#[test]
fn sigterm_with_a_stalled_query_reader_exits_after_the_grace_period() {
    use std::io::{Read, Write};
    let mut h = IngestHarness::start(
        IngestOptions::new()
            .tenant(TenantSpec::new("acme"))
            .shutdown_grace("2s"),
    );
    let key = h.tenant("acme").key.clone();
    // ~8 MB of rows: more than the socket buffers, so a reader that stops reading stalls the
    // streamed answer.
    for seq in 0..8u64 {
        let lines: Vec<String> = (0..5000)
            .map(|i| {
                logops_e2e::events::realistic_line("stall", seq, i, logops_e2e::events::now(), 200)
            })
            .collect();
        assert_eq!(
            h.client()
                .post_batch(&key, "stall", seq, &lines, Encoding::Zstd)
                .status,
            200
        );
    }
    let port = h.port();
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.write_all(format!("GET /v1/logs?limit=1000000 HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAuthorization: Bearer {key}\r\n\r\n").as_bytes()).unwrap();
    let mut first = [0u8; 1024];
    let n = s.read(&mut first).unwrap();
    assert!(
        first[..n].starts_with(b"HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&first[..n])
    );
    // Stop reading; ask the ingest to stop. It must exit on its own (bounded at 60 s here).
    std::thread::sleep(Duration::from_millis(300));
    h.sigterm();
    let status = h.wait_exit(Duration::from_secs(60));
    assert!(
        status.success(),
        "exit status {status} with a stalled reader; log:\n{}",
        h.log_tail(20)
    );
    drop(s);
    // The store is intact.
    h.start_again();
    assert_eq!(
        h.client()
            .query_all(&key, "/v1/logs", &[("limit", "1000000")])
            .len(),
        40_000
    );
}
