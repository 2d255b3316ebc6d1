//! The shipper against the real ingest (in-process, loopback, real store on disk).

use std::borrow::Cow;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use logops_agent::buffer::{Buffer, BufferOptions};
use logops_agent::chunk::Chunk;
use logops_agent::config::{Config, WhenFull};
use logops_agent::metrics::AgentMetrics;
use logops_agent::pipeline::{Emitter, Shutdown};
use logops_agent::shipper::Shipper;
use logops_common::event::{Event, Payload};
use logops_common::sign::api_key_sha256;
use logops_common::Timestamp;

const KEY: &str = "lo_test_key_for_the_shipper_tests";

struct Ingest {
    running: logops_ingest::server::Running,
    port: u16,
}

async fn start_ingest(dir: &Path, port: u16, extra: &str) -> Ingest {
    let text = format!(
        "listen = \"127.0.0.1:{port}\"\ndata_dir = \"{}\"\n{extra}\n[[tenant]]\nname = \"t\"\napi_key_sha256 = [\"{}\"]\n",
        dir.display(),
        api_key_sha256(KEY)
    );
    let config = logops_ingest::config::Config::parse(&text, Path::new("ingest.toml")).unwrap();
    let running = logops_ingest::server::start(config).await.unwrap();
    let port = running.addr.port();
    Ingest { running, port }
}

struct Agent {
    emitter: Emitter,
    buffer: Buffer,
    config: Config,
}

fn agent(dir: &Path, port: u16, key: &str, ship_extra: &str) -> Agent {
    let _ = tracing_subscriber::fmt()
        .with_test_writer()
        .with_env_filter("info")
        .try_init();
    std::fs::write(dir.join("api_key"), key).unwrap();
    let age = if ship_extra.contains("batch_max_age") {
        ""
    } else {
        "batch_max_age = \"100ms\"\n"
    };
    let text = format!(
        "[agent]\nid = \"shipper-test\"\ndata_dir = \"{d}\"\n[ship]\nurl = \"http://127.0.0.1:{port}/v1/batch\"\napi_key_file = \"{d}/api_key\"\nbackoff_min = \"50ms\"\nbackoff_max = \"200ms\"\n{age}shutdown_timeout = \"5s\"\n{ship_extra}\n",
        d = dir.display()
    );
    let config = Config::parse(&text, Path::new("agent.toml")).unwrap();
    let buffer = Buffer::open(
        &dir.join("buffer"),
        &BufferOptions {
            cache_bytes: 1 << 20,
            flush_interval: Duration::from_millis(100),
            zstd_level: 3,
        },
    )
    .unwrap();
    let emitter = Emitter::new(
        buffer.clone(),
        64 << 20,
        WhenFull::Block,
        Arc::new(AgentMetrics::new()),
        Arc::from("shipper-test"),
        Default::default(),
    );
    Agent {
        emitter,
        buffer,
        config,
    }
}

fn log(i: usize) -> Event<'static> {
    Event {
        ts: Timestamp::now(),
        host: Cow::Borrowed("shipper-test"),
        source: Cow::Borrowed("test"),
        labels: Default::default(),
        attrs: None,
        payload: Payload::Log {
            severity: None,
            body: Cow::Owned(format!("event {i:06} {}", "x".repeat(80))),
        },
    }
}

fn emit(a: &Agent, range: std::ops::Range<usize>) {
    let mut c = Chunk::new();
    for i in range {
        c.push(&log(i));
    }
    let (_t, s) = Shutdown::new();
    a.emitter.emit_blocking("test", &c, &[], &s).unwrap();
}

/// Bodies stored in the ingest, in store order.
async fn stored(port: u16) -> Vec<String> {
    let text = reqwest::Client::new()
        .get(format!("http://127.0.0.1:{port}/v1/logs?limit=1000000"))
        .bearer_auth(KEY)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .map(|l| match logops_common::parse_line(l, 1).unwrap().payload {
            Payload::Log { body, .. } => body[..12].to_owned(),
            _ => unreachable!(),
        })
        .collect()
}

async fn wait_for(port: u16, n: usize) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let got = stored(port).await;
        if got.len() >= n || Instant::now() > deadline {
            return got;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn expected(range: std::ops::Range<usize>) -> Vec<String> {
    range.map(|i| format!("event {i:06}")).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delivers_every_event_once_and_empties_the_buffer() {
    let dir = tempfile::tempdir().unwrap();
    let ingest = start_ingest(&dir.path().join("ingest"), 0, "").await;
    let a = agent(dir.path(), ingest.port, KEY, "batch_max_events = 150");
    for k in 0..4 {
        emit(&a, k * 100..(k + 1) * 100);
    }
    let (stop, s) = Shutdown::new();
    // Never triggered: these tests stop by draining (SIGTERM), not by a reload.
    let (_abort, no_abort) = Shutdown::new();
    let task = tokio::spawn(
        Shipper::new(&a.config.ship, a.emitter.clone())
            .unwrap()
            .run(s, no_abort, Duration::from_secs(5)),
    );
    assert_eq!(wait_for(ingest.port, 400).await, expected(0..400));
    stop.trigger();
    task.await.unwrap();
    let st = a.buffer.stats().unwrap();
    assert_eq!((st.queued_events, st.batches, st.bytes), (0, 0, 0));
    ingest
        .running
        .shutdown(Duration::from_secs(5))
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outage_is_retried_and_nothing_is_doubled() {
    let dir = tempfile::tempdir().unwrap();
    let ingest_dir = dir.path().join("ingest");
    let ingest = start_ingest(&ingest_dir, 0, "").await;
    let port = ingest.port;
    ingest
        .running
        .shutdown(Duration::from_secs(5))
        .await
        .unwrap();

    let a = agent(dir.path(), port, KEY, "");
    emit(&a, 0..300);
    let (stop, s) = Shutdown::new();
    // Never triggered: these tests stop by draining (SIGTERM), not by a reload.
    let (_abort, no_abort) = Shutdown::new();
    let task = tokio::spawn(
        Shipper::new(&a.config.ship, a.emitter.clone())
            .unwrap()
            .run(s, no_abort, Duration::from_secs(5)),
    );
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert!(
        a.emitter.metrics().batches_retried.get() > 0,
        "sends were retried during the outage"
    );
    emit(&a, 300..500);
    let ingest = start_ingest(&ingest_dir, port, "").await;
    assert_eq!(wait_for(port, 500).await, expected(0..500));
    stop.trigger();
    task.await.unwrap();
    ingest
        .running
        .shutdown(Duration::from_secs(5))
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn too_large_batches_are_split_until_they_fit() {
    let dir = tempfile::tempdir().unwrap();
    let ingest = start_ingest(
        &dir.path().join("ingest"),
        0,
        "[limits]\nmax_body = \"8KiB\"\n",
    )
    .await;
    let a = agent(
        dir.path(),
        ingest.port,
        KEY,
        "compression = \"none\"\nbatch_max_events = 1000",
    );
    emit(&a, 0..400); // ~40 KB uncompressed: must be split at least three times
    let (stop, s) = Shutdown::new();
    // Never triggered: these tests stop by draining (SIGTERM), not by a reload.
    let (_abort, no_abort) = Shutdown::new();
    let task = tokio::spawn(
        Shipper::new(&a.config.ship, a.emitter.clone())
            .unwrap()
            .run(s, no_abort, Duration::from_secs(5)),
    );
    let got = wait_for(ingest.port, 400).await;
    let mut sorted = got.clone();
    sorted.sort();
    assert_eq!(sorted, expected(0..400), "every event exactly once");
    stop.trigger();
    task.await.unwrap();
    assert!(a.buffer.dead_letters().unwrap().is_empty());
    ingest
        .running
        .shutdown(Duration::from_secs(5))
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_batch_goes_to_the_dead_letters_with_the_reason_and_can_be_replayed() {
    let dir = tempfile::tempdir().unwrap();
    let ingest = start_ingest(&dir.path().join("ingest"), 0, "").await;
    let a = agent(dir.path(), ingest.port, KEY, "");
    // A record needs attrs: the ingest answers 400 naming the line and the field.
    let mut bad = Chunk::new();
    bad.push(&Event {
        payload: Payload::Record,
        ..log(0)
    });
    let (_t, s0) = Shutdown::new();
    a.emitter.emit_blocking("test", &bad, &[], &s0).unwrap();
    let (stop, s) = Shutdown::new();
    // Never triggered: these tests stop by draining (SIGTERM), not by a reload.
    let (_abort, no_abort) = Shutdown::new();
    let task = tokio::spawn(
        Shipper::new(&a.config.ship, a.emitter.clone())
            .unwrap()
            .run(s, no_abort, Duration::from_secs(5)),
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    while a.buffer.dead_letters().unwrap().is_empty() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let dead = a.buffer.dead_letters().unwrap();
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].status, 400);
    assert!(
        dead[0].reason.contains("line 1") && dead[0].reason.contains("attrs"),
        "{}",
        dead[0].reason
    );
    // Good events still flow.
    emit(&a, 1..51);
    assert_eq!(wait_for(ingest.port, 50).await, expected(1..51));
    // Replaying sends it again (and it is refused again, for the same reason).
    assert_eq!(a.emitter.replay(None).unwrap(), 1);
    let deadline = Instant::now() + Duration::from_secs(20);
    while a.buffer.dead_letters().unwrap().is_empty() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(a.buffer.dead_letters().unwrap().len(), 1);
    stop.trigger();
    task.await.unwrap();
    ingest
        .running
        .shutdown(Duration::from_secs(5))
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_key_is_retried_not_dead_lettered() {
    let dir = tempfile::tempdir().unwrap();
    let ingest = start_ingest(&dir.path().join("ingest"), 0, "").await;
    let a = agent(dir.path(), ingest.port, "lo_wrong", "");
    emit(&a, 0..10);
    let (stop, s) = Shutdown::new();
    // Never triggered: these tests stop by draining (SIGTERM), not by a reload.
    let (_abort, no_abort) = Shutdown::new();
    let task = tokio::spawn(
        Shipper::new(&a.config.ship, a.emitter.clone())
            .unwrap()
            .run(s, no_abort, Duration::from_millis(200)),
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    while a.emitter.metrics().batches_retried.get() < 3 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(a.emitter.metrics().batches_retried.get() >= 3);
    stop.trigger();
    task.await.unwrap();
    assert!(a.buffer.dead_letters().unwrap().is_empty());
    assert_eq!(
        a.buffer.stats().unwrap().batch_events,
        10,
        "the batch waits in the buffer"
    );
    ingest
        .running
        .shutdown(Duration::from_secs(5))
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_sends_what_is_queued_before_exiting() {
    let dir = tempfile::tempdir().unwrap();
    let ingest = start_ingest(&dir.path().join("ingest"), 0, "").await;
    let a = agent(
        dir.path(),
        ingest.port,
        KEY,
        "batch_max_age = \"1h\"\nbatch_max_events = 100000",
    );
    emit(&a, 0..123);
    let (stop, s) = Shutdown::new();
    // Never triggered: these tests stop by draining (SIGTERM), not by a reload.
    let (_abort, no_abort) = Shutdown::new();
    stop.trigger();
    Shipper::new(&a.config.ship, a.emitter.clone())
        .unwrap()
        .run(s, no_abort, Duration::from_secs(5))
        .await;
    assert_eq!(stored(ingest.port).await, expected(0..123));
    ingest
        .running
        .shutdown(Duration::from_secs(5))
        .await
        .unwrap();
}

/// After full batches, the rest of a burst is sent as soon as a send slot is free, not
/// after `batch_max_age` (here an hour); a trickle that follows waits for its age again
/// (so it is gathered into fewer batches), until the shutdown drains it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_tail_of_a_burst_does_not_wait_for_batch_max_age() {
    let dir = tempfile::tempdir().unwrap();
    let ingest = start_ingest(&dir.path().join("ingest"), 0, "").await;
    let a = agent(
        dir.path(),
        ingest.port,
        KEY,
        "batch_max_age = \"1h\"\nbatch_max_events = 100",
    );
    for k in 0..5 {
        emit(&a, k * 50..(k + 1) * 50);
    }
    let (stop, s) = Shutdown::new();
    let (_abort, no_abort) = Shutdown::new();
    let task = tokio::spawn(
        Shipper::new(&a.config.ship, a.emitter.clone())
            .unwrap()
            .run(s, no_abort, Duration::from_secs(5)),
    );
    assert_eq!(
        wait_for(ingest.port, 250).await,
        expected(0..250),
        "two full batches and the tail of 50"
    );
    emit(&a, 250..260);
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(
        stored(ingest.port).await.len(),
        250,
        "a trickle after the burst waits for batch_max_age"
    );
    stop.trigger();
    task.await.unwrap();
    assert_eq!(stored(ingest.port).await, expected(0..260));
    ingest
        .running
        .shutdown(Duration::from_secs(5))
        .await
        .unwrap();
}
