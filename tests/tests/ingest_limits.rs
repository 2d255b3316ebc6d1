//! Request limits: body size (413), decompression bombs (413 with bounded memory), and
//! per-tenant rate limits (429 + Retry-After, then accepted after waiting).

use std::time::Duration;

use logops_e2e::events::{batch_lines, ndjson};
use logops_e2e::{
    gzip_zero_bomb, zstd_zero_bomb, BatchRequest, Encoding, IngestHarness, IngestOptions,
    TenantSpec,
};

const GIB: u64 = 1 << 30;
const MIB: u64 = 1 << 20;

/// Posts a chunked body of `size` bytes (valid NDJSON) over a raw connection, reading the
/// answer on this thread while another one writes; returns what was read.
fn raw_chunked_post(port: u16, key: &str, size: usize) -> String {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
    stream
        .set_read_timeout(Some(std::time::Duration::from_secs(60)))
        .unwrap();
    let mut writer = stream.try_clone().unwrap();
    let head = format!(
        "POST /v1/batch HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAuthorization: Bearer {key}\r\n\
         X-LogOps-Agent: chunky\r\nX-LogOps-Batch: chunky:1\r\nContent-Type: application/x-ndjson\r\n\
         Transfer-Encoding: chunked\r\n\r\n"
    );
    let chunk = ndjson(&batch_lines("chunky", 1, 500));
    let t = std::thread::spawn(move || -> std::io::Result<()> {
        writer.write_all(head.as_bytes())?;
        let mut sent = 0;
        while sent < size {
            writer.write_all(format!("{:x}\r\n", chunk.len()).as_bytes())?;
            writer.write_all(&chunk)?;
            writer.write_all(b"\r\n")?;
            sent += chunk.len();
        }
        writer.write_all(b"0\r\n\r\n")
    });
    let mut answer = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                answer.extend_from_slice(&buf[..n]);
                if answer.windows(4).any(|w| w == b"\r\n\r\n") {
                    break;
                }
            }
        }
    }
    drop(stream);
    let _ = t.join();
    String::from_utf8_lossy(&answer).into_owned()
}

#[test]
fn bodies_over_max_body_are_413() {
    let h = IngestHarness::start(
        IngestOptions::new()
            .tenant(TenantSpec::new("acme"))
            .set("limits", "max_body", "1MiB"),
    );
    let key = h.tenant("acme").key.clone();
    let c = h.client();

    // ~2.6 MB of valid NDJSON, sent uncompressed with a Content-Length.
    let lines: Vec<String> = batch_lines("big", 1, 20_000);
    let body = ndjson(&lines);
    assert!(body.len() as u64 > MIB + MIB / 2, "{}", body.len());
    let req = BatchRequest::raw(Some(&key), "big", 1, body.clone(), Some("identity"));
    let r = c.send(&req).expect("a 413 answer, not a transport error");
    assert_eq!(r.status, 413, "{}", r.body);
    assert!(r.json()["error"].is_string(), "{}", r.body);

    // Chunked (no Content-Length), 64 MiB: the limit applies while reading. The server
    // answers before the client has finished sending, so read the answer while writing.
    let answer = raw_chunked_post(h.port(), &key, 64 << 20);
    assert!(
        answer.starts_with("HTTP/1.1 413"),
        "chunked 64 MiB body: {answer:?}"
    );
    assert!(
        h.vm_hwm_bytes().unwrap() < 200 * MIB,
        "a refused chunked body was buffered"
    );

    // Under the limit (compressed) the same lines are fine: the limit is on the body as sent.
    let r = c.post_batch(&key, "big", 1, &lines, Encoding::Zstd);
    assert_eq!(r.status, 200, "{}", r.body);
    let rows = c.query_all(&key, "/v1/logs", &[("limit", "1000000")]);
    assert_eq!(rows.len(), lines.len());
}

/// A client sends the whole body before it reads the answer. If the server answered early
/// and closed with unread bytes, the kernel would reset the connection and the client would
/// see a broken pipe instead of the answer, and retry the same batch forever. Bodies more
/// than the socket buffers hold (loopback takes a few MB) make that race certain.
#[test]
fn refused_bodies_are_read_so_the_client_gets_the_answer() {
    let h = IngestHarness::start(
        IngestOptions::new()
            .tenant(TenantSpec::new("acme"))
            .set("limits", "max_body", "4MiB"),
    );
    let key = h.tenant("acme").key.clone();
    let c = h.client();
    let lines: Vec<String> = batch_lines("big", 1, 100_000);
    let body = ndjson(&lines);
    assert!(
        body.len() as u64 > 12 * MIB && (body.len() as u64) < 16 * MIB,
        "{}",
        body.len()
    );

    for round in 0..3 {
        let req = BatchRequest::raw(Some(&key), "big", 1, body.clone(), Some("identity"));
        let r = c
            .send(&req)
            .unwrap_or_else(|e| panic!("round {round}: no answer: {e}"));
        assert_eq!(r.status, 413, "{}", r.body);

        let req = BatchRequest::raw(Some("not-a-key"), "big", 1, body.clone(), Some("identity"));
        let r = c
            .send(&req)
            .unwrap_or_else(|e| panic!("round {round}: no answer: {e}"));
        assert_eq!(r.status, 401, "{}", r.body);
    }
}

#[test]
fn decompression_bombs_are_413_with_bounded_memory() {
    // Default limits: max_body 8MiB, max_decompressed 64MiB.
    let h = IngestHarness::start(IngestOptions::new().tenant(TenantSpec::new("acme")));
    let key = h.tenant("acme").key.clone();
    let c = h.client();

    let bombs: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "zstd, 1 GiB, size in the frame header",
            zstd_zero_bomb(GIB, true),
            "zstd",
        ),
        (
            "zstd, 1 GiB, streaming frame without a size",
            zstd_zero_bomb(GIB, false),
            "zstd",
        ),
        (
            "gzip, 1 GiB (16 members of 64 MiB)",
            gzip_zero_bomb(64 << 20, 16),
            "gzip",
        ),
    ];
    for (i, (what, body, enc)) in bombs.iter().enumerate() {
        assert!(body.len() < 2 << 20, "{what}: {} bytes", body.len());
        let req = BatchRequest::raw(Some(&key), "bomb", i as u64, body.clone(), Some(enc));
        let r = c
            .send(&req)
            .unwrap_or_else(|e| panic!("{what}: transport error {e}"));
        assert_eq!(r.status, 413, "{what}: {}", r.body);
        // And chunked, so no Content-Length hint helps.
        let r = c
            .send(&req.clone().chunked())
            .unwrap_or_else(|e| panic!("{what} (chunked): {e}"));
        assert_eq!(r.status, 413, "{what} (chunked): {}", r.body);
    }

    // All three bombs again, concurrently.
    std::thread::scope(|s| {
        for (i, (what, body, enc)) in bombs.iter().enumerate() {
            let key = &key;
            s.spawn(move || {
                for round in 0..3u64 {
                    let req = BatchRequest::raw(
                        Some(key),
                        "bomb",
                        100 + i as u64 * 10 + round,
                        body.clone(),
                        Some(enc),
                    );
                    let r = c.send(&req).unwrap_or_else(|e| panic!("{what}: {e}"));
                    assert!(
                        r.status == 413 || r.status == 503,
                        "{what} (concurrent): {} {}",
                        r.status,
                        r.body
                    );
                }
            });
        }
    });

    let hwm = h.vm_hwm_bytes().expect("VmHWM of the ingest");
    eprintln!(
        "ingest VmHWM after the bombs: {:.1} MiB",
        hwm as f64 / MIB as f64
    );
    assert!(
        hwm < 200 * MIB,
        "the ingest's peak RSS reached {:.1} MiB after 1 GiB bombs (must stay under 200 MiB)",
        hwm as f64 / MIB as f64
    );

    // Still serving, nothing stored.
    assert_eq!(c.get("/healthz").status, 200);
    let rows = c.query_all(&key, "/v1/logs", &[("limit", "1000000")]);
    assert!(rows.is_empty(), "{} rows stored from bombs", rows.len());
    let r = c.post_batch(
        &key,
        "after-bombs",
        1,
        &batch_lines("after-bombs", 1, 2),
        Encoding::Gzip,
    );
    assert_eq!(r.status, 200, "{}", r.body);
}

#[test]
fn bursts_over_the_rate_are_429_then_accepted_after_retry_after() {
    let h = IngestHarness::start(
        IngestOptions::new().tenant(TenantSpec::new("slow").events_per_second(100).burst("1s")),
    );
    let key = h.tenant("slow").key.clone();
    let c = h.client();

    // A burst of batches of 100 events: the bucket holds 100 and refills 100 per second,
    // so unless each post takes over a second, the second one is refused.
    let per_batch = 100;
    let mut accepted = Vec::new();
    let mut limited = None;
    for seq in 0..10u64 {
        let lines = batch_lines("burst", seq, per_batch);
        let r = c.post_batch(&key, "burst", seq, &lines, Encoding::Zstd);
        match r.status {
            200 => accepted.push(seq),
            429 => {
                limited = Some((seq, lines, r));
                break;
            }
            s => panic!("unexpected {s}: {}", r.body),
        }
    }
    let (seq, lines, r) = limited.unwrap_or_else(|| {
        panic!("no 429 in a burst of 1000 events at 100/s (accepted {accepted:?})")
    });
    assert!(
        !accepted.is_empty(),
        "the first batch of the burst should fit the bucket"
    );
    let retry_after: u64 = r
        .header("retry-after")
        .unwrap_or_else(|| panic!("429 without Retry-After: {:?}", r.headers))
        .parse()
        .expect("Retry-After in seconds");
    assert!((1..=60).contains(&retry_after), "Retry-After {retry_after}");
    assert_eq!(r.json()["error"], "rate_limited", "{}", r.body);

    // Waiting as told is enough.
    std::thread::sleep(Duration::from_secs(retry_after));
    let r = c.post_batch(&key, "burst", seq, &lines, Encoding::Zstd);
    assert_eq!(
        r.status, 200,
        "after waiting Retry-After={retry_after}: {}",
        r.body
    );
    assert_eq!(r.json()["duplicate"], false, "{}", r.body);

    // The refused attempt stored nothing: exactly the accepted batches plus the retried one.
    let rows = c.query_all(&key, "/v1/logs", &[("limit", "1000000")]);
    assert_eq!(rows.len(), (accepted.len() + 1) * per_batch);
}

#[test]
fn a_stalled_upload_gets_408_after_request_timeout_and_others_are_served() {
    use std::io::{Read, Write};
    let h = IngestHarness::start(IngestOptions::new().tenant(TenantSpec::new("acme")).set(
        "limits",
        "request_timeout",
        "2s",
    ));
    let key = h.tenant("acme").key.clone();
    let port = h.port();
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
    // Bounded: the ingest should answer after ~2 s; 60 s means it never will.
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    let head = format!(
        "POST /v1/batch HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAuthorization: Bearer {key}\r\n\
         X-LogOps-Agent: slow\r\nX-LogOps-Batch: slow:1\r\nContent-Type: application/x-ndjson\r\n\
         Content-Length: 100000\r\n\r\n{{\"ts\":"
    );
    s.write_all(head.as_bytes()).unwrap();

    // Meanwhile the ingest serves others.
    let r = h
        .client()
        .post_batch(&key, "fast", 1, &batch_lines("fast", 1, 3), Encoding::Zstd);
    assert_eq!(r.status, 200, "{}", r.body);

    let mut answer = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                answer.extend_from_slice(&buf[..n]);
                if answer.windows(4).any(|w| w == b"\r\n\r\n") {
                    break;
                }
            }
            Err(e) => {
                panic!("no answer to a stalled upload within 60 s (request_timeout is 2 s): {e}")
            }
        }
    }
    let answer = String::from_utf8_lossy(&answer);
    assert!(
        answer.starts_with("HTTP/1.1 408"),
        "stalled upload: {answer:?}"
    );
    let rows = h.client().query_all(&key, "/v1/logs", &[]);
    assert_eq!(rows.len(), 3, "{rows:#?}");
}

/// Valid NDJSON of about `bytes` bytes (lines of ~200 bytes).
fn valid_ndjson(agent: &str, bytes: usize) -> Vec<u8> {
    let ts = logops_e2e::events::now();
    let lines: Vec<String> = (0..bytes / 200 + 1)
        .map(|i| logops_e2e::events::realistic_line(agent, 1, i, ts, 200))
        .collect();
    ndjson(&lines)
}

/// zstd frames of `chunk` bytes each (every frame states its content size), concatenated:
/// how agents send a batch of buffered chunks.
fn zstd_frames(data: &[u8], chunk: usize) -> Vec<u8> {
    data.chunks(chunk)
        .flat_map(|c| zstd::bulk::compress(c, 3).expect("zstd"))
        .collect()
}

#[test]
fn valid_batches_over_max_decompressed_are_413_whatever_the_encoding() {
    let h = IngestHarness::start(
        IngestOptions::new()
            .tenant(TenantSpec::new("acme"))
            .set("limits", "max_body", "1MiB")
            .set("limits", "max_decompressed", "4MiB")
            .set("limits", "max_in_flight", "256MiB"),
    );
    let key = h.tenant("acme").key.clone();
    let c = h.client();

    // Under the limit: one frame, several frames (the agent's format), gzip: all stored.
    let small = valid_ndjson("under", 3 << 20);
    for (seq, (what, body, enc)) in [
        (
            "one zstd frame",
            zstd::bulk::compress(&small, 3).unwrap(),
            "zstd",
        ),
        (
            "zstd frames of 512 KiB",
            zstd_frames(&small, 512 << 10),
            "zstd",
        ),
        ("gzip", logops_e2e::compress(&small, Encoding::Gzip), "gzip"),
    ]
    .into_iter()
    .enumerate()
    {
        let r = c
            .send(&BatchRequest::raw(
                Some(&key),
                "under",
                seq as u64,
                body,
                Some(enc),
            ))
            .unwrap();
        assert_eq!(
            r.status, 200,
            "{what}, 3 MiB decompressed (limit 4 MiB): {}",
            r.body
        );
    }

    // Over the limit: 6 MiB of valid events, compressed under max_body.
    let mut answers = Vec::new();
    let big = valid_ndjson("over", 6 << 20);
    for (seq, (what, body, enc)) in [
        (
            "one zstd frame stating its size",
            zstd::bulk::compress(&big, 3).unwrap(),
            "zstd",
        ),
        (
            "zstd frames of 512 KiB stating their sizes",
            zstd_frames(&big, 512 << 10),
            "zstd",
        ),
        (
            "one zstd frame without a size",
            {
                let mut e = zstd::stream::write::Encoder::new(Vec::new(), 3).unwrap();
                e.include_contentsize(false).unwrap();
                std::io::Write::write_all(&mut e, &big).unwrap();
                e.finish().unwrap()
            },
            "zstd",
        ),
        ("gzip", logops_e2e::compress(&big, Encoding::Gzip), "gzip"),
    ]
    .into_iter()
    .enumerate()
    {
        assert!(
            body.len() < 1 << 20,
            "{what}: {} bytes compressed",
            body.len()
        );
        let r = c
            .send(&BatchRequest::raw(
                Some(&key),
                "over",
                seq as u64,
                body,
                Some(enc),
            ))
            .unwrap();
        answers.push(format!("{what}: {} {}", r.status, r.body));
    }
    assert!(
        answers.iter().all(|a| a.contains(": 413 ")),
        "6 MiB of valid events with limits.max_decompressed = 4MiB must be 413 (every case is \
         tried first, to show which are affected):\n{}",
        answers.join("\n")
    );
    let stored = c.query_all(
        &key,
        "/v1/logs",
        &[("limit", "1000000"), ("q", "over seq 1 line")],
    );
    assert!(
        stored.is_empty(),
        "{} rows of batches over max_decompressed were stored",
        stored.len()
    );
}
