//! Segments are made of the frames agents send: a zstd frame that holds exactly validated
//! lines of one kind is stored byte for byte; other lines are compressed by the ingest. Open
//! and sealed segments are read back by queries and by the real `zstd` command, and the
//! real agent's batches take the kept path.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use logops_e2e::agent::{
    append_lines, bodies_of, wait_logs, AgentHarness, AgentOptions, FilesGroup, ShipTarget,
};
use logops_e2e::client::zstd_frames_body;
use logops_e2e::events::{now, realistic_line, MetricEvent};
use logops_e2e::process::list_files;
use logops_e2e::{
    metric_sum, parse_prometheus, wait_for, BatchRequest, Client, IngestHarness, IngestOptions,
    TenantSpec,
};

fn segment_files(h: &IngestHarness, kind: &str, open: bool) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = list_files(&h.store_dir().join("acme").join(kind))
        .into_iter()
        .map(|(p, _)| p)
        .filter(|p| {
            let name = p.to_string_lossy();
            name.ends_with(".ndjson.zst") && name.contains(".open.") == open
        })
        .collect();
    files.sort();
    files
}

/// `zstd -dc FILE`: what an operator gets with the standard tool.
fn zstd_cat(path: &Path) -> String {
    let out = Command::new("zstd")
        .arg("-dcq")
        .arg(path)
        .output()
        .expect("the zstd command (tests/install-peers.sh installs it)");
    assert!(
        out.status.success(),
        "zstd -dc {}: {}",
        path.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("UTF-8 NDJSON")
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// Posts batch `a:seq` with a zstd `body` as given; it must be stored.
fn post(c: &Client, key: &str, seq: u64, body: &[u8]) {
    let req = BatchRequest::raw(Some(key), "a", seq, body.to_vec(), Some("zstd"));
    let r = c.send(&req).expect("POST /v1/batch");
    assert_eq!(r.status, 200, "a:{seq}: {}", r.body);
}

fn lines(agent: &str, seq: u64, n: usize) -> Vec<String> {
    let ts = now();
    (0..n)
        .map(|i| realistic_line(agent, seq, i, ts, 200))
        .collect()
}

#[test]
fn agent_frames_are_stored_as_sent_and_zstd_reads_every_segment() {
    let h = IngestHarness::start(IngestOptions::new().tenant(TenantSpec::new("acme")).set(
        "store",
        "segment_max_bytes",
        "256KiB",
    ));
    let key = h.tenant("acme").key.clone();
    let c = h.client();

    // One frame of valid lines: kept byte for byte.
    let first = lines("a", 1, 100);
    let body = zstd_frames_body(&[(&first, "\n")]);
    post(c, &key, 1, &body);
    let open = segment_files(&h, "log", true);
    assert_eq!(open.len(), 1, "{open:?}");
    assert!(
        contains(&std::fs::read(&open[0]).unwrap(), &body),
        "the agent's frame is not in the segment as sent"
    );
    assert_eq!(zstd_cat(&open[0]), first.join("\n") + "\n");

    // Two frames, the second with `\r\n` line ends, and a metric in a log frame: the first
    // frame is kept, the other lines compressed anew per kind.
    let second = lines("a", 2, 60);
    let metric = MetricEvent::gauge(now(), "h", "ratio", 0.5).line();
    let mixed = [
        second[..30].to_vec(),
        vec![metric.clone()],
        second[30..].to_vec(),
    ]
    .concat();
    let body = zstd_frames_body(&[(&second[..30], "\n"), (&mixed[30..], "\r\n")]);
    post(c, &key, 2, &body);
    let kept = zstd_frames_body(&[(&second[..30], "\n")]);
    assert!(contains(&std::fs::read(&open[0]).unwrap(), &kept));
    // One kind, but `\r\n` line ends: the lines are stored without the `\r`.
    let third = lines("a", 3, 40);
    let body = zstd_frames_body(&[(&third, "\r\n")]);
    post(c, &key, 3, &body);
    assert!(!contains(&std::fs::read(&open[0]).unwrap(), &body));
    let logs: Vec<String> = [first.clone(), second.clone(), third].concat();
    assert_eq!(zstd_cat(&open[0]), logs.join("\n") + "\n");
    assert_eq!(c.query_all(&key, "/v1/logs", &[("limit", "1000")]), logs);
    assert_eq!(c.query_all(&key, "/v1/metrics", &[]), vec![metric.clone()]);
    let metrics_open = segment_files(&h, "metric", true);
    assert_eq!(zstd_cat(&metrics_open[0]), metric + "\n");

    // Enough batches of ~80 KB frames to close segments: sealed ones hold the frames as
    // they came (segments of smaller frames are repacked, see the store's tests) and the
    // same lines, with an index `zstd` skips.
    let mut all = logs;
    let mut bodies = Vec::new();
    for seq in 4..=13 {
        let batch = lines("a", seq, 400);
        let body = zstd_frames_body(&[(&batch, "\n")]);
        post(c, &key, seq, &body);
        all.extend(batch);
        bodies.push(body);
    }
    let sealed = wait_for(
        "sealed segments",
        Duration::from_secs(30),
        Duration::from_millis(50),
        |last| {
            let s = segment_files(&h, "log", false);
            *last = format!("{s:?}");
            (s.len() >= 2).then_some(s)
        },
    );
    let mut decoded = String::new();
    for f in sealed.iter().chain(segment_files(&h, "log", true).iter()) {
        let test = Command::new("zstd").arg("-tq").arg(f).status().unwrap();
        assert!(test.success(), "zstd -t {}", f.display());
        decoded.push_str(&zstd_cat(f));
    }
    assert!(
        decoded == all.join("\n") + "\n",
        "zstd -d of all segments in order"
    );
    let sealed_bytes: Vec<u8> = sealed
        .iter()
        .flat_map(|f| std::fs::read(f).unwrap())
        .collect();
    // The first segment averages less than 64 KiB a frame and is repacked; the second holds
    // four of the ~80 KB frames as sent.
    let kept = bodies.iter().filter(|b| contains(&sealed_bytes, b)).count();
    assert!(kept >= 4, "{kept} frames kept as sent in sealed segments");
    assert_eq!(c.query_all(&key, "/v1/logs", &[("limit", "1000")]), all);

    // The ingest counts which events came in frames it kept: batch 1 (100), the first frame
    // of batch 2 (30) and batches 4 to 13 (10 × 400); the rest it compressed (31 + 40).
    assert_eq!(frame_events(&h, "kept"), 100.0 + 30.0 + 4000.0);
    assert_eq!(frame_events(&h, "compressed"), 31.0 + 40.0);
}

/// `logops_ingest_frame_events_total{tenant="acme",frame}`.
fn frame_events(h: &IngestHarness, frame: &str) -> f64 {
    let samples = parse_prometheus(&h.client().get("/metrics").body).expect("Prometheus text");
    metric_sum(
        &samples,
        "logops_ingest_frame_events_total",
        &[("tenant", "acme"), ("frame", frame)],
    )
    .unwrap_or(0.0)
}

/// The batches the real agent ships from a busy file (full chunks of up to 1,000 lines, one
/// zstd frame each) are stored as the agent compressed them.
#[test]
fn the_real_agents_batches_are_stored_as_sent() {
    let ingest = IngestHarness::start(IngestOptions::new().tenant(TenantSpec::new("acme")));
    let key = ingest.tenant("acme").key.clone();
    let dir = tempfile::Builder::new()
        .prefix("logops-e2e-frames-")
        .tempdir()
        .expect("a temporary directory");
    let file = dir.path().join("busy.log");
    let written: Vec<String> = (0..20_000)
        .map(|i| format!("line {i:06} {}", "x".repeat(150)))
        .collect();
    append_lines(&file, &written);
    let _agent = AgentHarness::start(
        ShipTarget::of(&ingest, "acme"),
        AgentOptions::new("busy").files(FilesGroup::new(&[&file])),
    );
    let logs = wait_logs(
        ingest.client(),
        &key,
        "the agent's 20,000 lines",
        Duration::from_secs(60),
        |l| l.len() >= written.len(),
    );
    assert_eq!(bodies_of(&logs, "busy"), written);
    let (kept, compressed) = (
        frame_events(&ingest, "kept"),
        frame_events(&ingest, "compressed"),
    );
    assert_eq!(kept + compressed, written.len() as f64);
    eprintln!("{kept} lines in kept frames, {compressed} compressed by the ingest");
    assert!(
        kept >= 0.9 * written.len() as f64,
        "only {kept} of {} lines came in frames the ingest could keep",
        written.len()
    );
}
