//! Tests of the whole store against real files in temporary directories.

use std::collections::{BTreeMap, BTreeSet};
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use logops_common::{BatchId, Kind, Timestamp};

use crate::format::Unit;
use crate::segment::{open_name, stream_dir, zst_name};
use crate::shared::lock;
use crate::{
    Frame, FrameBuilder, Order, Position, ScanRange, Store, StoreError, StoreOptions, SubmitError,
    WriteBatch, WriteOutcome,
};

/// 2026-09-21T...: a plausible event time, in ns.
const T0: i64 = 1_790_000_000_000_000_000;
const SECOND: i64 = 1_000_000_000;
const DAY: i64 = 86_400 * SECOND;

/// One event line: `{"ts":...,"kind":...,"body":...}`.
fn event(kind: Kind, ts: i64, body: &str) -> String {
    format!(
        r#"{{"ts":"{}","kind":"{kind}","body":"{body}"}}"#,
        Timestamp::from_nanos(ts.into())
    )
}

/// The frames of `(kind, ts, line)`s, as a `FrameBuilder` makes them.
fn frames_of(events: &[(Kind, i64, String)]) -> Vec<Frame> {
    let mut b = FrameBuilder::new(1).unwrap();
    for (kind, ts, line) in events {
        b.push_line(*kind, line.as_bytes(), *ts).unwrap();
    }
    b.finish().unwrap()
}

/// A batch of `(kind, ts, line)`.
fn batch(tenant: &str, agent: &str, seq: u64, events: &[(Kind, i64, String)]) -> WriteBatch {
    WriteBatch {
        tenant: tenant.into(),
        id: BatchId::new(agent, seq),
        frames: frames_of(events),
    }
}

/// The bytes a group writing `events` to one stream appends to its open segment.
fn unit_of(events: &[(Kind, i64, String)]) -> Vec<u8> {
    let frames = frames_of(events);
    Unit::of(&frames.iter().collect::<Vec<_>>()).bytes
}

/// `n` log lines of about `pad + 80` bytes, at `ts0`, `ts0 + 1 s`, ...; bodies name the batch.
fn log_events(agent: &str, seq: u64, n: usize, pad: usize, ts0: i64) -> Vec<(Kind, i64, String)> {
    (0..n)
        .map(|i| {
            let ts = ts0 + i as i64 * SECOND;
            let body = format!("{agent}/{seq}/{i} {}", "x".repeat(pad));
            (Kind::Log, ts, event(Kind::Log, ts, &body))
        })
        .collect()
}

fn lines_of(events: &[(Kind, i64, String)]) -> Vec<String> {
    events.iter().map(|(_, _, l)| l.clone()).collect()
}

fn options(dir: &Path) -> StoreOptions {
    StoreOptions::new(dir)
}

fn write(store: &Store, b: WriteBatch) -> WriteOutcome {
    store.write_blocking(b).expect("write")
}

fn range(tenant: &str, kind: Kind, order: Order) -> ScanRange {
    ScanRange {
        tenant: tenant.into(),
        kind,
        order,
        from: None,
        to: None,
        since: None,
        until: None,
    }
}

fn collect(store: &Store, q: &ScanRange) -> Vec<(Position, String)> {
    let mut out = Vec::new();
    store
        .scan(q, &mut |pos, line| {
            out.push((pos, String::from_utf8(line.to_vec()).expect("utf-8")));
            ControlFlow::Continue(())
        })
        .expect("scan");
    out
}

fn texts(found: &[(Position, String)]) -> Vec<String> {
    found.iter().map(|(_, l)| l.clone()).collect()
}

fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Copies a store directory as it is on disk right now: what a crash would leave.
fn crash_image(src: &Path, dst: &Path) {
    std::fs::create_dir_all(dst).unwrap();
    for entry in std::fs::read_dir(src).unwrap() {
        let entry = entry.unwrap();
        let to = dst.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            crash_image(&entry.path(), &to);
        } else {
            std::fs::copy(entry.path(), to).unwrap();
        }
    }
}

fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(files_under(&path));
        } else {
            out.push(path);
        }
    }
    out.sort();
    out
}

#[test]
fn store_handles_are_send_and_sync() {
    fn check<T: Send + Sync + Clone>() {}
    check::<Store>();
}

#[test]
fn concurrent_batches_share_group_commits_and_fsyncs() {
    let tmp = tempfile::tempdir().unwrap();
    let fsyncs = Arc::new(AtomicU64::new(0));
    let mut opts = options(tmp.path());
    let counter = fsyncs.clone();
    // A slow disk: batches pile up while a group is being synced.
    opts.fsync_observer = Some(Arc::new(move |_| {
        counter.fetch_add(1, Ordering::Relaxed);
        std::thread::sleep(Duration::from_millis(3));
    }));
    let store = Store::open(opts).unwrap();

    const THREADS: u64 = 8;
    const PER_THREAD: u64 = 40;
    std::thread::scope(|s| {
        for t in 0..THREADS {
            let store = store.clone();
            s.spawn(move || {
                let tenant = if t % 2 == 0 { "even" } else { "odd" };
                let agent = format!("agent-{t}");
                let receivers: Vec<_> = (1..=PER_THREAD)
                    .map(|seq| {
                        let events = log_events(&agent, seq, 5, 20, T0);
                        store.submit(batch(tenant, &agent, seq, &events)).unwrap()
                    })
                    .collect();
                for rx in receivers {
                    assert_eq!(rx.blocking_recv().unwrap().unwrap(), WriteOutcome::Stored);
                }
            });
        }
    });

    let stats = store.stats();
    let batches = THREADS * PER_THREAD;
    assert_eq!(stats.batches_stored, batches);
    assert_eq!(stats.lines_committed, batches * 5);
    assert!(
        stats.groups_committed < batches / 4,
        "{} groups for {batches} batches",
        stats.groups_committed
    );
    // One fsync per touched segment plus one of the log per group, no more.
    assert_eq!(
        fsyncs.load(Ordering::Relaxed),
        stats.segment_fsyncs + stats.groups_committed
    );
    assert!(
        stats.segment_fsyncs > stats.groups_committed,
        "groups touch both tenants"
    );
    assert!(stats.segment_fsyncs <= 2 * stats.groups_committed);
    assert_eq!(stats.queue_len, 0);
    for tenant in ["even", "odd"] {
        let found = collect(&store, &range(tenant, Kind::Log, Order::Asc));
        assert_eq!(found.len() as u64, batches / 2 * 5);
        // Each agent's batches appear in its submission order.
        let mut last: BTreeMap<String, u64> = BTreeMap::new();
        for (_, line) in &found {
            let body = line.split("\"body\":\"").nth(1).unwrap();
            let mut parts = body.split('/');
            let (agent, seq) = (
                parts.next().unwrap(),
                parts.next().unwrap().parse().unwrap(),
            );
            let prev = last.insert(agent.to_string(), seq).unwrap_or(0);
            assert!(seq >= prev, "{agent}: {seq} after {prev}");
        }
    }
}

#[test]
fn the_same_id_twice_in_one_group_is_stored_once() {
    let tmp = tempfile::tempdir().unwrap();
    let slow = Arc::new(AtomicBool::new(true));
    let mut opts = options(tmp.path());
    let flag = slow.clone();
    opts.fsync_observer = Some(Arc::new(move |_| {
        if flag.load(Ordering::Relaxed) {
            std::thread::sleep(Duration::from_millis(300));
        }
    }));
    let store = Store::open(opts).unwrap();

    let first = store
        .submit(batch("t1", "a", 1, &log_events("a", 1, 2, 0, T0)))
        .unwrap();
    // Once the writer took the first batch it is syncing it (slowly): these two queue up
    // for the next group.
    wait_until("the writer to take the first batch", || {
        store.stats().queue_len == 0
    });
    let events = log_events("a", 2, 3, 0, T0);
    let again = store.submit(batch("t1", "a", 2, &events)).unwrap();
    let echo = store.submit(batch("t1", "a", 2, &events)).unwrap();
    slow.store(false, Ordering::Relaxed);

    assert_eq!(
        first.blocking_recv().unwrap().unwrap(),
        WriteOutcome::Stored
    );
    assert_eq!(
        again.blocking_recv().unwrap().unwrap(),
        WriteOutcome::Stored
    );
    assert_eq!(
        echo.blocking_recv().unwrap().unwrap(),
        WriteOutcome::Duplicate
    );
    let stats = store.stats();
    assert_eq!(
        stats.groups_committed, 2,
        "both submissions were in the second group"
    );
    assert_eq!((stats.batches_stored, stats.duplicates), (2, 1));
    assert_eq!(
        collect(&store, &range("t1", Kind::Log, Order::Asc)).len(),
        5
    );
}

#[test]
fn stored_ids_are_duplicates_across_groups_restarts_and_crashes() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("store");
    let store = Store::open(options(&dir)).unwrap();
    let mut expected = Vec::new();
    for seq in 1..=5 {
        let events = log_events("a", seq, 3, 10, T0);
        expected.extend(lines_of(&events));
        assert_eq!(
            write(&store, batch("t1", "a", seq, &events)),
            WriteOutcome::Stored
        );
    }
    // An id with no lines is remembered too.
    assert_eq!(
        write(&store, batch("t1", "b", 7, &[])),
        WriteOutcome::Stored
    );

    assert!(store.contains("t1", &BatchId::new("a", 3)));
    assert!(!store.contains("t1", &BatchId::new("a", 6)));
    assert!(
        !store.contains("t2", &BatchId::new("a", 3)),
        "ids are per tenant"
    );
    let resend = batch("t1", "a", 3, &log_events("a", 3, 3, 10, T0));
    assert_eq!(write(&store, resend.clone()), WriteOutcome::Duplicate);
    assert_eq!(
        store.stats().dedupe_ranges,
        2,
        "consecutive ids make one range"
    );

    // A crash now: the commit log (not yet compacted) is all there is.
    let crashed = tmp.path().join("crashed");
    crash_image(&dir, &crashed);
    let after_crash = Store::open(options(&crashed)).unwrap();
    assert_eq!(write(&after_crash, resend.clone()), WriteOutcome::Duplicate);
    assert_eq!(
        write(&after_crash, batch("t1", "b", 7, &[])),
        WriteOutcome::Duplicate
    );
    assert_eq!(
        texts(&collect(&after_crash, &range("t1", Kind::Log, Order::Asc))),
        expected
    );
    after_crash.shutdown();

    // A clean restart.
    store.shutdown();
    drop(store);
    let store = Store::open(options(&dir)).unwrap();
    assert!(store.contains("t1", &BatchId::new("a", 5)));
    assert_eq!(write(&store, resend), WriteOutcome::Duplicate);
    let events = log_events("a", 6, 1, 0, T0);
    expected.extend(lines_of(&events));
    assert_eq!(
        write(&store, batch("t1", "a", 6, &events)),
        WriteOutcome::Stored
    );
    assert_eq!(
        texts(&collect(&store, &range("t1", Kind::Log, Order::Asc))),
        expected
    );
}

#[test]
fn stored_ids_survive_commit_log_compaction() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("store");
    let mut opts = options(&dir);
    opts.commit_log_max_bytes = 1; // compact after every group
    let store = Store::open(opts.clone()).unwrap();
    for seq in 1..=10 {
        for agent in ["a", "b"] {
            let events = log_events(agent, seq, 2, 0, T0);
            assert_eq!(
                write(&store, batch("t1", agent, seq, &events)),
                WriteOutcome::Stored
            );
        }
    }
    // The writer compacts right after answering the last group.
    wait_until("the compaction", || {
        std::fs::metadata(dir.join("commits.log")).unwrap().len() == 0
    });
    assert!(dir.join("commits.snapshot").exists());

    let crashed = tmp.path().join("crashed");
    crash_image(&dir, &crashed);
    opts.dir = crashed;
    let reopened = Store::open(opts).unwrap();
    assert_eq!(reopened.stats().dedupe_ranges, 2);
    for seq in 1..=10 {
        for agent in ["a", "b"] {
            let events = log_events(agent, seq, 2, 0, T0);
            assert_eq!(
                write(&reopened, batch("t1", agent, seq, &events)),
                WriteOutcome::Duplicate
            );
        }
    }
    // The active segment's committed length came from the snapshot: the lines are there.
    assert_eq!(
        collect(&reopened, &range("t1", Kind::Log, Order::Asc)).len(),
        40
    );
}

#[test]
fn ids_idle_longer_than_the_window_are_forgotten_at_compaction() {
    let tmp = tempfile::tempdir().unwrap();
    let mut opts = options(tmp.path());
    opts.commit_log_max_bytes = 1;
    opts.dedupe_window = Duration::from_millis(500);
    let store = Store::open(opts).unwrap();
    write(
        &store,
        batch("t1", "old", 1, &log_events("old", 1, 1, 0, T0)),
    );
    std::thread::sleep(Duration::from_millis(800));
    write(
        &store,
        batch("t1", "new", 1, &log_events("new", 1, 1, 0, T0)),
    );
    // The compaction that follows the group forgets the idle range.
    wait_until("the compaction", || store.stats().dedupe_ranges == 1);
    assert!(!store.contains("t1", &BatchId::new("old", 1)));
    assert!(store.contains("t1", &BatchId::new("new", 1)));
}

#[test]
fn recovery_cuts_torn_lines_uncommitted_batches_and_torn_log_records() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("store");
    let store = Store::open(options(&dir)).unwrap();
    let mut expected = Vec::new();
    for seq in 1..=3 {
        let events = log_events("a", seq, 4, 30, T0);
        expected.extend(lines_of(&events));
        write(&store, batch("t1", "a", seq, &events));
    }
    let crashed = tmp.path().join("crashed");
    crash_image(&dir, &crashed);
    store.shutdown();

    // What a crash in the middle of the next group leaves behind: an uncommitted unit and
    // half of another in the active segment, and a torn commit record.
    let seg_dir = stream_dir(&crashed, "t1", Kind::Log);
    let segment = seg_dir.join(open_name(1));
    let committed = std::fs::metadata(&segment).unwrap().len();
    let mut tail = unit_of(&log_events("a", 4, 3, 0, T0));
    let torn_unit = unit_of(&log_events("a", 5, 3, 0, T0));
    tail.extend_from_slice(&torn_unit[..torn_unit.len() - 7]);
    append(&segment, &tail);
    let log_path = crashed.join("commits.log");
    let log_len = std::fs::metadata(&log_path).unwrap().len();
    let torn = crate::commit_log::encode_group(
        123,
        [("t1", "a", 4u64)].into_iter(),
        &[(1, committed + tail.len() as u64)],
        None,
    );
    append(&log_path, &torn[..torn.len() - 5]);
    // A segment created just before the crash, never committed, and a half-written
    // repack.
    std::fs::write(
        seg_dir.join(open_name(40)),
        unit_of(&log_events("a", 6, 1, 0, T0)),
    )
    .unwrap();
    std::fs::write(seg_dir.join("00000000000000000001.ndjson.zst.tmp"), b"junk").unwrap();

    let store = Store::open(options(&crashed)).unwrap();
    assert_eq!(std::fs::metadata(&segment).unwrap().len(), committed);
    assert_eq!(std::fs::metadata(&log_path).unwrap().len(), log_len);
    assert!(!seg_dir.join(open_name(40)).exists());
    assert!(!seg_dir.join("00000000000000000001.ndjson.zst.tmp").exists());
    assert!(!store.contains("t1", &BatchId::new("a", 4)));
    let found = collect(&store, &range("t1", Kind::Log, Order::Asc));
    assert_eq!(texts(&found), expected);
    let desc = collect(&store, &range("t1", Kind::Log, Order::Desc));
    assert_eq!(
        texts(&desc),
        expected.iter().rev().cloned().collect::<Vec<_>>()
    );

    // The retry of the lost batch is stored right after the committed lines.
    let events = log_events("a", 4, 3, 0, T0);
    expected.extend(lines_of(&events));
    assert_eq!(
        write(&store, batch("t1", "a", 4, &events)),
        WriteOutcome::Stored
    );
    assert_eq!(
        texts(&collect(&store, &range("t1", Kind::Log, Order::Asc))),
        expected
    );
    // `zstd -d` reads the open segment: group headers are skippable frames.
    let content = zstd::stream::decode_all(std::fs::File::open(&segment).unwrap()).unwrap();
    assert_eq!(
        String::from_utf8(content).unwrap(),
        expected.join("\n") + "\n"
    );
}

/// The writer fdatasyncs a group's record and its segment bytes at the same time: after a
/// crash the record may be on disk without (all of) them. Recovery checks the record's CRCs
/// and drops it then - and keeps it when the bytes are there.
#[test]
fn a_group_record_whose_bytes_did_not_reach_the_disk_is_dropped() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("store");
    let store = Store::open(options(&dir)).unwrap();
    let mut expected = Vec::new();
    for seq in 1..=2 {
        let events = log_events("a", seq, 4, 30, T0);
        expected.extend(lines_of(&events));
        write(&store, batch("t1", "a", seq, &events));
    }
    let images = ["lost", "torn", "garbled", "kept"].map(|name| {
        let image = tmp.path().join(name);
        crash_image(&dir, &image);
        image
    });
    store.shutdown();

    let next = log_events("a", 3, 3, 10, T0);
    let tail = unit_of(&next);
    for image in &images {
        let segment = stream_dir(image, "t1", Kind::Log).join(open_name(1));
        let committed = std::fs::metadata(&segment).unwrap().len();
        let log_path = image.join("commits.log");
        let log_len = std::fs::metadata(&log_path).unwrap().len();
        let record = crate::commit_log::encode_group(
            456,
            [("t1", "a", 3u64)].into_iter(),
            &[(1, committed + tail.len() as u64)],
            Some(&[(committed, crc32fast::hash(&tail))]),
        );
        append(&log_path, &record);
        let name = image.file_name().unwrap().to_str().unwrap();
        match name {
            "lost" => {}
            "torn" => append(&segment, &tail[..tail.len() / 2]),
            "garbled" => append(&segment, &vec![0u8; tail.len()]),
            _ => append(&segment, &tail),
        }

        let store = Store::open(options(image)).unwrap();
        let found = texts(&collect(&store, &range("t1", Kind::Log, Order::Asc)));
        if name == "kept" {
            assert!(store.contains("t1", &BatchId::new("a", 3)), "{name}");
            let mut all = expected.clone();
            all.extend(lines_of(&next));
            assert_eq!(found, all, "{name}");
        } else {
            assert!(!store.contains("t1", &BatchId::new("a", 3)), "{name}");
            assert_eq!(found, expected, "{name}");
            assert_eq!(
                std::fs::metadata(&log_path).unwrap().len(),
                log_len,
                "{name}"
            );
            assert_eq!(
                std::fs::metadata(&segment).unwrap().len(),
                committed,
                "{name}"
            );
            // The batch is stored when it is sent again.
            assert_eq!(
                write(&store, batch("t1", "a", 3, &next)),
                WriteOutcome::Stored
            );
        }
        store.shutdown();
    }
}

fn append(path: &Path, bytes: &[u8]) {
    use std::io::Write;
    let mut f = std::fs::OpenOptions::new().append(true).open(path).unwrap();
    f.write_all(bytes).unwrap();
}

/// The seqs of a stream's segments, with whether each is compressed.
fn segments(store: &Store, tenant: &str, kind: Kind) -> Vec<(u64, bool)> {
    lock(&store.handle.shared.catalog)
        .stream(tenant, kind)
        .map(|s| s.values().map(|m| (m.seq, m.sealed)).collect())
        .unwrap_or_default()
}

/// Whether the stream's newest segment is still open.
fn has_active(store: &Store, tenant: &str, kind: Kind) -> bool {
    lock(&store.handle.shared.catalog)
        .stream(tenant, kind)
        .and_then(|s| s.values().next_back().map(|m| !m.closed))
        .unwrap_or(false)
}

#[test]
fn segments_rotate_by_size_without_splitting_batches() {
    let tmp = tempfile::tempdir().unwrap();
    let mut opts = options(tmp.path());
    opts.segment_max_bytes = 4096;
    let store = Store::open(opts).unwrap();
    for seq in 1..=12 {
        write(
            &store,
            batch("t1", "a", seq, &log_events("a", seq, 10, 60, T0)),
        );
    }
    let segs = segments(&store, "t1", Kind::Log);
    assert!(segs.len() >= 3, "{segs:?}");
    let mut batch_segment: BTreeMap<u64, BTreeSet<u64>> = BTreeMap::new();
    for (pos, line) in collect(&store, &range("t1", Kind::Log, Order::Asc)) {
        let seq = line.split('/').nth(1).unwrap().parse().unwrap();
        batch_segment.entry(seq).or_default().insert(pos.segment);
    }
    assert_eq!(batch_segment.len(), 12);
    for (seq, in_segments) in batch_segment {
        assert_eq!(
            in_segments.len(),
            1,
            "batch {seq} was split over {in_segments:?}"
        );
    }
    // Every closed segment reached the limit; only the newest may still be open.
    let catalog = lock(&store.handle.shared.catalog);
    let metas: Vec<_> = catalog.stream("t1", Kind::Log).unwrap().values().collect();
    for (i, m) in metas.iter().enumerate() {
        assert!(m.closed || i == metas.len() - 1, "{m:?}");
        if m.closed {
            assert!(m.committed_len >= 4096, "{m:?}");
        }
    }
}

#[test]
fn quiet_segments_rotate_by_age_and_get_sealed() {
    let tmp = tempfile::tempdir().unwrap();
    let mut opts = options(tmp.path());
    opts.segment_max_age = Duration::from_millis(200);
    let store = Store::open(opts).unwrap();
    let first = log_events("a", 1, 3, 0, T0);
    write(&store, batch("t1", "a", 1, &first));
    wait_until("the age rotation and sealing", || {
        store.stats().sealed_segments == 1
    });
    assert_eq!(segments(&store, "t1", Kind::Log), vec![(1, true)]);
    let dir = stream_dir(tmp.path(), "t1", Kind::Log);
    assert!(!dir.join(open_name(1)).exists());
    assert!(dir.join(zst_name(1)).exists());

    let second = log_events("a", 2, 2, 0, T0);
    write(&store, batch("t1", "a", 2, &second));
    let found = collect(&store, &range("t1", Kind::Log, Order::Asc));
    assert_eq!(
        found.last().unwrap().0.segment,
        2,
        "a new segment took over"
    );
    assert_eq!(
        texts(&found),
        [lines_of(&first), lines_of(&second)].concat()
    );
}

/// The length of a sealed segment without its index: what the open file held.
fn without_index(zst: &Path) -> u64 {
    let bytes = std::fs::read(zst).unwrap();
    let n = bytes.len();
    let frame_size = u32::from_le_bytes(bytes[n - 8..n - 4].try_into().unwrap()) as usize;
    (n - frame_size - 8) as u64
}

#[test]
fn closed_segments_a_crash_left_unsealed_are_sealed_at_open() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("store");
    let mut opts = options(&dir);
    opts.segment_max_bytes = 1000;
    let store = Store::open(opts.clone()).unwrap();
    let mut expected = Vec::new();
    for seq in 1..=4 {
        let events = log_events("a", seq, 5, 150, T0);
        expected.extend(lines_of(&events));
        write(&store, batch("t1", "a", seq, &events));
    }
    wait_until("sealing", || store.stats().sealed_segments == 4);
    let crashed = tmp.path().join("crashed");
    crash_image(&dir, &crashed);
    store.shutdown();

    // Segment 1: the crash came after its index was written, before the rename. Segment 2:
    // before the index was written. Segment 3: a repack's result was renamed, the open
    // file not yet deleted.
    let seg_dir = stream_dir(&crashed, "t1", Kind::Log);
    for seq in [1, 2, 3] {
        let zst = seg_dir.join(zst_name(seq));
        let open = seg_dir.join(open_name(seq));
        std::fs::copy(&zst, &open).unwrap();
        if seq == 2 {
            let f = std::fs::OpenOptions::new().write(true).open(&open).unwrap();
            f.set_len(without_index(&zst)).unwrap();
        }
        if seq != 3 {
            std::fs::remove_file(zst).unwrap();
        }
    }
    opts.dir = crashed;
    let store = Store::open(opts).unwrap();
    assert!(!seg_dir.join(open_name(3)).exists());
    wait_until("the sealing at open", || store.stats().sealed_segments == 4);
    for seq in [1, 2] {
        assert!(!seg_dir.join(open_name(seq)).exists());
        assert!(crate::format::read_index(&seg_dir.join(zst_name(seq))).is_ok());
    }
    assert_eq!(
        texts(&collect(&store, &range("t1", Kind::Log, Order::Asc))),
        expected
    );
    assert_eq!(files_under(&seg_dir).len(), 4);
}

#[test]
fn open_and_sealed_segments_decode_with_a_plain_zstd_decoder() {
    let tmp = tempfile::tempdir().unwrap();
    let mut opts = options(tmp.path());
    opts.segment_max_bytes = 3 << 20;
    let store = Store::open(opts).unwrap();
    let mut written = Vec::new();
    let mut seq = 0;
    while written.len() < (3 << 20) + (200 << 10) {
        seq += 1;
        let events = log_events("a", seq, 100, 200, T0 + seq as i64 * 100 * SECOND);
        for line in lines_of(&events) {
            written.extend_from_slice(line.as_bytes());
            written.push(b'\n');
        }
        write(&store, batch("t1", "a", seq, &events));
    }
    wait_until("the sealing", || store.stats().sealed_segments == 1);
    let dir = stream_dir(tmp.path(), "t1", Kind::Log);
    let plain =
        zstd::stream::decode_all(std::fs::File::open(dir.join(zst_name(1))).unwrap()).unwrap();
    assert!(plain.len() >= 3 << 20);
    assert!(
        plain == written[..plain.len()],
        "zstd -d gives back the original bytes"
    );
    assert_eq!(plain.last(), Some(&b'\n'));
    let rest =
        zstd::stream::decode_all(std::fs::File::open(dir.join(open_name(2))).unwrap()).unwrap();
    assert!(
        rest == written[plain.len()..],
        "zstd -d reads the open segment too"
    );
    // Its ~28 KB frames (one per batch) were merged into frames of about 1 MiB.
    let frames = lock(&store.handle.shared.catalog)
        .get(1)
        .map(|m| m.frames.upto(u64::MAX))
        .unwrap();
    assert!((3..=4).contains(&frames.len()), "{} frames", frames.len());
    assert!(
        frames[0].u_len >= crate::FRAME_TARGET as u64,
        "{:?}",
        frames[0]
    );
    // Reads through the index give the same lines as the bytes written.
    let found = collect(&store, &range("t1", Kind::Log, Order::Asc));
    let all: Vec<u8> = found
        .iter()
        .flat_map(|(_, l)| l.bytes().chain(std::iter::once(b'\n')))
        .collect();
    assert!(all == written);
}

#[test]
fn scans_follow_store_order_both_ways_between_cursors() {
    let tmp = tempfile::tempdir().unwrap();
    let mut opts = options(tmp.path());
    opts.segment_max_bytes = 2000;
    let store = Store::open(opts).unwrap();
    let mut expected = Vec::new();
    let mut metrics = Vec::new();
    for seq in 1..=30 {
        let mut events = log_events("a", seq, 4, (seq as usize * 7) % 50, T0);
        expected.extend(lines_of(&events));
        let ts = T0 + seq as i64;
        let m = event(Kind::Metric, ts, &format!("m{seq}"));
        metrics.push(m.clone());
        events.insert(2, (Kind::Metric, ts, m));
        write(&store, batch("t1", "a", seq, &events));
    }
    if !has_active(&store, "t1", Kind::Log) {
        // The last batch closed its segment: one more line opens the next.
        let events = log_events("a", 31, 1, 0, T0);
        expected.extend(lines_of(&events));
        write(&store, batch("t1", "a", 31, &events));
    }
    assert!(has_active(&store, "t1", Kind::Log));
    wait_until("sealing of the closed segments", || {
        let segs = segments(&store, "t1", Kind::Log);
        segs.len() > 4 && segs[..segs.len() - 1].iter().all(|&(_, c)| c)
    });

    let asc = collect(&store, &range("t1", Kind::Log, Order::Asc));
    assert_eq!(texts(&asc), expected);
    assert!(asc.windows(2).all(|w| w[0].0 < w[1].0), "positions ascend");
    let desc = collect(&store, &range("t1", Kind::Log, Order::Desc));
    let reversed: Vec<_> = asc.iter().rev().cloned().collect();
    assert_eq!(desc, reversed);
    assert_eq!(
        texts(&collect(&store, &range("t1", Kind::Metric, Order::Asc))),
        metrics
    );
    assert!(collect(&store, &range("t2", Kind::Log, Order::Asc)).is_empty());

    let n = asc.len();
    for (i, j) in [
        (0, n - 1),
        (0, 0),
        (3, 17),
        (5, 6),
        (n / 2, n - 2),
        (n - 1, n - 1),
        (1, n / 3),
    ] {
        let cursor: Position = asc[i].0.to_string().parse().unwrap();
        let mut q = range("t1", Kind::Log, Order::Asc);
        q.from = Some(cursor);
        q.to = Some(asc[j].0);
        assert_eq!(collect(&store, &q), asc[i..=j].to_vec(), "asc {i}..={j}");
        let mut q = range("t1", Kind::Log, Order::Desc);
        q.from = Some(asc[j].0);
        q.to = Some(asc[i].0);
        let want: Vec<_> = asc[i..=j].iter().rev().cloned().collect();
        assert_eq!(collect(&store, &q), want, "desc {j}..={i}");
    }
    // A position inside a line resumes at the next line (asc) or that line (desc).
    for i in [4, n - 2] {
        let inside = Position {
            segment: asc[i].0.segment,
            offset: asc[i].0.offset + 3,
        };
        let mut q = range("t1", Kind::Log, Order::Asc);
        q.from = Some(inside);
        assert_eq!(collect(&store, &q)[0], asc[i + 1]);
        let mut q = range("t1", Kind::Log, Order::Desc);
        q.from = Some(inside);
        assert_eq!(collect(&store, &q)[0], asc[i]);
    }
    // Paging: stop after 7 lines, resume after the last one seen.
    let mut pages = Vec::new();
    let mut q = range("t1", Kind::Log, Order::Desc);
    loop {
        let mut page = Vec::new();
        store
            .scan(&q, &mut |pos, line| {
                page.push((pos, String::from_utf8_lossy(line).into_owned()));
                if page.len() == 7 {
                    ControlFlow::Break(())
                } else {
                    ControlFlow::Continue(())
                }
            })
            .unwrap();
        let Some(&(last, _)) = page.last() else { break };
        pages.extend(page);
        // The next line before `last` in store order: last.offset - 1 is inside it.
        q.from = match last.offset {
            0 => Some(Position {
                segment: last.segment - 1,
                offset: u64::MAX,
            }),
            off => Some(Position {
                segment: last.segment,
                offset: off - 1,
            }),
        };
    }
    assert_eq!(pages, reversed);
}

#[test]
fn scans_skip_segments_and_frames_outside_the_time_range() {
    let tmp = tempfile::tempdir().unwrap();
    let mut opts = options(tmp.path());
    opts.segment_max_bytes = 1; // one segment per batch
    let store = Store::open(opts).unwrap();
    for day in 0..5 {
        let events = log_events("a", day + 1, 3, 0, T0 + day as i64 * DAY);
        write(&store, batch("t1", "a", day + 1, &events));
    }
    wait_until("sealing", || store.stats().sealed_segments == 5);
    let mut q = range("t1", Kind::Log, Order::Asc);
    q.since = Some(T0 + 2 * DAY);
    q.until = Some(T0 + 3 * DAY);
    let before = store.stats().scan_segments_pruned;
    let found = collect(&store, &q);
    assert_eq!(store.stats().scan_segments_pruned - before, 4);
    assert_eq!(found.len(), 3);
    assert!(found.iter().all(|(_, l)| l.contains("a/3/")), "{found:?}");
    // `until` is exclusive: a range ending where day 2 starts reads days 0 and 1.
    q.since = None;
    q.until = Some(T0 + 2 * DAY);
    assert_eq!(collect(&store, &q).len(), 6);

    // Frames inside one big compressed segment are pruned the same way.
    let tmp = tempfile::tempdir().unwrap();
    let mut opts = options(tmp.path());
    opts.segment_max_bytes = 5 << 19; // 2.5 MiB
    let store = Store::open(opts).unwrap();
    let mut seq = 0;
    let mut ts = T0;
    while store.stats().segments < 2 {
        seq += 1;
        let events = log_events("a", seq, 200, 150, ts);
        ts += 200 * SECOND;
        write(&store, batch("t1", "a", seq, &events));
    }
    wait_until("sealing", || store.stats().sealed_segments == 1);
    let newest_in_first = collect(&store, &range("t1", Kind::Log, Order::Asc))
        .into_iter()
        .filter(|(p, _)| p.segment == 1)
        .count();
    let mut q = range("t1", Kind::Log, Order::Asc);
    q.to = Some(Position {
        segment: 1,
        offset: u64::MAX,
    });
    q.since = Some(T0 + (newest_in_first as i64 - 1) * SECOND);
    let found = collect(&store, &q);
    assert!(store.stats().scan_frames_pruned >= 2);
    assert!(!found.is_empty() && found.len() < newest_in_first / 2);
    assert!(found.last().unwrap().1.contains(&format!("/{} ", 199)));
}

#[test]
fn retention_deletes_the_oldest_closed_segments_over_the_byte_budget() {
    let tmp = tempfile::tempdir().unwrap();
    let mut opts = options(tmp.path());
    opts.segment_max_bytes = 1000;
    opts.retention_max_bytes = 3000;
    opts.compression_level = 1;
    let store = Store::open(opts).unwrap();
    let mut rng = 0x2545_f491_4f6c_dd1d_u64;
    for seq in 1..=12 {
        // Random letters, so that compressed segments stay big enough to matter.
        let body: String = (0..1200)
            .map(|_| {
                rng ^= rng << 13;
                rng ^= rng >> 7;
                rng ^= rng << 17;
                char::from(b'a' + (rng % 26) as u8)
            })
            .collect();
        let line = event(Kind::Log, T0, &format!("a/{seq}/0 {body}"));
        write(&store, batch("t1", "a", seq, &[(Kind::Log, T0, line)]));
    }
    // A small batch that stays in the active segment.
    write(&store, batch("t1", "a", 13, &log_events("a", 13, 1, 0, T0)));
    let seg_dir = stream_dir(tmp.path(), "t1", Kind::Log);
    wait_until("sealing and retention", || {
        crate::retention::enforce(&store.handle.shared);
        let segs = segments(&store, "t1", Kind::Log);
        segs[..segs.len() - 1].iter().all(|&(_, c)| c) && files_under(&seg_dir).len() == segs.len()
    });

    let segs = segments(&store, "t1", Kind::Log);
    let seqs: Vec<u64> = segs.iter().map(|&(s, _)| s).collect();
    let newest = *seqs.last().unwrap();
    assert_eq!(newest, 13, "the active segment is kept");
    assert_eq!(
        seqs,
        (seqs[0]..=newest).collect::<Vec<_>>(),
        "only the oldest were deleted"
    );
    assert!(seqs[0] > 1);
    let stats = store.stats();
    assert_eq!(stats.retention_deleted_segments, seqs[0] - 1);
    let closed_bytes: u64 = lock(&store.handle.shared.catalog)
        .iter()
        .map(|m| m.bytes_on_disk)
        .sum();
    assert!(closed_bytes <= 3000, "{closed_bytes}");
    // Scans resume after deleted segments, from a cursor into one of them too.
    let mut q = range("t1", Kind::Log, Order::Asc);
    q.from = Some(Position {
        segment: 1,
        offset: 0,
    });
    let found = collect(&store, &q);
    assert_eq!(found[0].0.segment, seqs[0]);
    assert!(found.last().unwrap().1.contains("a/13/0"));
}

#[test]
fn retention_deletes_closed_segments_past_their_age_but_not_the_active_one() {
    let tmp = tempfile::tempdir().unwrap();
    let mut opts = options(tmp.path());
    opts.segment_max_bytes = 500;
    opts.retention_max_age = Duration::from_millis(300);
    opts.retention_interval = Duration::from_millis(50);
    let store = Store::open(opts).unwrap();
    for seq in 1..=3 {
        write(
            &store,
            batch("t1", "a", seq, &log_events("a", seq, 5, 100, T0)),
        );
    }
    let active = log_events("a", 4, 1, 0, T0);
    write(&store, batch("t1", "a", 4, &active));
    wait_until("age retention", || {
        store.stats().retention_deleted_segments == 3
    });
    std::thread::sleep(Duration::from_millis(400));
    assert_eq!(segments(&store, "t1", Kind::Log), vec![(4, false)]);
    assert_eq!(store.stats().retention_deleted_segments, 3);
    assert_eq!(
        texts(&collect(&store, &range("t1", Kind::Log, Order::Asc))),
        lines_of(&active)
    );
}

#[test]
fn retention_never_deletes_the_active_segment() {
    let tmp = tempfile::tempdir().unwrap();
    let mut opts = options(tmp.path());
    opts.segment_max_bytes = 500;
    opts.retention_max_bytes = 1; // less than the active segment alone
    let store = Store::open(opts).unwrap();
    write(&store, batch("t1", "a", 1, &log_events("a", 1, 5, 100, T0)));
    let active = log_events("a", 2, 1, 0, T0);
    write(&store, batch("t1", "a", 2, &active));
    wait_until("retention", || {
        store.stats().retention_deleted_segments == 1
    });
    crate::retention::enforce(&store.handle.shared);
    assert_eq!(segments(&store, "t1", Kind::Log), vec![(2, false)]);
    assert_eq!(
        texts(&collect(&store, &range("t1", Kind::Log, Order::Asc))),
        lines_of(&active)
    );
}

#[test]
fn a_second_open_of_the_same_directory_fails_clearly() {
    let tmp = tempfile::tempdir().unwrap();
    let store = Store::open(options(tmp.path())).unwrap();
    let err = Store::open(options(tmp.path()))
        .err()
        .expect("second open fails");
    assert!(matches!(err, StoreError::Locked { .. }));
    let msg = err.to_string();
    assert!(
        msg.contains(&tmp.path().display().to_string()) && msg.contains("in use"),
        "{msg}"
    );
    store.shutdown();
    Store::open(options(tmp.path())).expect("open after shutdown");
}

#[test]
fn a_failed_group_fails_its_batches_and_the_writer_carries_on() {
    let tmp = tempfile::tempdir().unwrap();
    // A file where tenant t2's directory should go: creating its segment fails.
    std::fs::write(tmp.path().join("t2"), b"").unwrap();
    let store = Store::open(options(tmp.path())).unwrap();
    let blocked = batch("t2", "a", 1, &log_events("a", 1, 2, 0, T0));
    let err = store.write_blocking(blocked.clone()).unwrap_err();
    assert!(err.to_string().contains("t2"), "{err}");
    assert!(err.io_kind().is_some());
    assert!(!store.is_writable());
    assert!(store.stats().last_write_error.unwrap().contains("t2"));
    assert!(!store.contains("t2", &BatchId::new("a", 1)));

    assert_eq!(
        write(&store, batch("t1", "a", 1, &log_events("a", 1, 2, 0, T0))),
        WriteOutcome::Stored
    );
    assert!(store.is_writable());
    std::fs::remove_file(tmp.path().join("t2")).unwrap();
    assert_eq!(write(&store, blocked), WriteOutcome::Stored);
    assert_eq!(
        collect(&store, &range("t2", Kind::Log, Order::Asc)).len(),
        2
    );
}

#[test]
fn invalid_batches_are_rejected_with_the_reason() {
    let tmp = tempfile::tempdir().unwrap();
    let store = Store::open(options(tmp.path())).unwrap();
    let mut b = batch("t1", "a", 1, &log_events("a", 1, 2, 0, T0));
    b.frames[0].u_len += 10;
    let err = store.write_blocking(b).unwrap_err();
    assert!(matches!(err, StoreError::InvalidBatch { .. }), "{err}");
    assert!(err.to_string().contains("states"), "{err}");
    assert!(!store.contains("t1", &BatchId::new("a", 1)));
}

#[test]
fn shutdown_commits_what_is_queued_and_compacts_the_log() {
    let tmp = tempfile::tempdir().unwrap();
    let store = Store::open(options(tmp.path())).unwrap();
    let receivers: Vec<_> = (1..=50)
        .map(|seq| {
            store
                .submit(batch("t1", "a", seq, &log_events("a", seq, 2, 0, T0)))
                .unwrap()
        })
        .collect();
    store.shutdown();
    store.shutdown();
    for rx in receivers {
        assert_eq!(rx.blocking_recv().unwrap().unwrap(), WriteOutcome::Stored);
    }
    assert_eq!(
        store
            .submit(batch("t1", "a", 51, &log_events("a", 51, 1, 0, T0)))
            .err(),
        Some(SubmitError::Closed)
    );
    assert_eq!(
        collect(&store, &range("t1", Kind::Log, Order::Asc)).len(),
        100
    );
    assert_eq!(
        std::fs::metadata(tmp.path().join("commits.log"))
            .unwrap()
            .len(),
        0
    );
    assert!(tmp.path().join("commits.snapshot").exists());
}

#[test]
fn a_full_queue_is_reported_without_blocking() {
    let tmp = tempfile::tempdir().unwrap();
    let release = Arc::new(AtomicBool::new(false));
    let mut opts = options(tmp.path());
    opts.queue_capacity = 2;
    let gate = release.clone();
    opts.fsync_observer = Some(Arc::new(move |_| {
        while !gate.load(Ordering::Relaxed) {
            std::thread::sleep(Duration::from_millis(5));
        }
    }));
    let store = Store::open(opts).unwrap();
    let mut receivers = vec![store
        .submit(batch("t1", "a", 1, &log_events("a", 1, 1, 0, T0)))
        .unwrap()];
    wait_until("the writer to take the first batch", || {
        store.stats().queue_len == 0
    });
    let mut full = false;
    for seq in 2..=4 {
        match store.submit(batch("t1", "a", seq, &log_events("a", seq, 1, 0, T0))) {
            Ok(rx) => receivers.push(rx),
            Err(e) => {
                assert_eq!(e, SubmitError::QueueFull);
                full = true;
            }
        }
    }
    assert!(full);
    assert_eq!(store.stats().queue_len, 2);
    release.store(true, Ordering::Relaxed);
    for rx in receivers {
        assert_eq!(rx.blocking_recv().unwrap().unwrap(), WriteOutcome::Stored);
    }
}

/// A frame as an agent sends it: its own zstd level, no checksum.
fn agent_frame(events: &[(Kind, i64, String)]) -> Frame {
    let mut content = Vec::new();
    let mut ts = crate::LineStats::default();
    for (_, t, line) in events {
        content.extend_from_slice(line.as_bytes());
        content.push(b'\n');
        ts.add(Some(*t));
    }
    Frame {
        kind: events[0].0,
        data: zstd::bulk::compress(&content, 3).unwrap().into(),
        u_len: content.len() as u64,
        ts,
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

#[test]
fn frames_are_stored_as_they_came_and_small_ones_merged_at_sealing() {
    let tmp = tempfile::tempdir().unwrap();
    let mut opts = options(tmp.path());
    opts.segment_max_bytes = 200 << 10;
    let store = Store::open(opts).unwrap();

    // Big frames (~90 KB): the segment is sealed in place, each frame stays byte for byte.
    let mut expected = Vec::new();
    let mut sent = Vec::new();
    for seq in 1..=3 {
        let events = log_events("big", seq, 400, 150, T0);
        expected.extend(lines_of(&events));
        let frame = agent_frame(&events);
        sent.push(frame.data.clone());
        let b = WriteBatch {
            tenant: "t1".into(),
            id: BatchId::new("big", seq),
            frames: vec![frame],
        };
        assert_eq!(write(&store, b), WriteOutcome::Stored);
    }
    let dir = stream_dir(tmp.path(), "t1", Kind::Log);
    wait_until("sealing", || store.stats().sealed_segments == 1);
    let sealed = std::fs::read(dir.join(zst_name(1))).unwrap();
    for data in &sent {
        assert!(contains(&sealed, data), "a frame was not kept as sent");
    }
    assert_eq!(
        texts(&collect(&store, &range("t1", Kind::Log, Order::Asc))),
        expected
    );

    // Small frames (one line each), several per batch and kinds mixed: the frames are
    // stored as they came, and merged when the segment is sealed.
    let mut logs = Vec::new();
    let mut metrics = Vec::new();
    let mut seq = 0;
    while store.stats().sealed_segments < 2 {
        seq += 1;
        let events = log_events("small", seq, 8, 200, T0);
        let mut frames = Vec::new();
        for (i, e) in events.iter().enumerate() {
            frames.push(agent_frame(std::slice::from_ref(e)));
            if i % 4 == 0 {
                let m = event(Kind::Metric, T0 + i as i64, &format!("m{seq}/{i}"));
                metrics.push(m.clone());
                frames.push(agent_frame(&[(Kind::Metric, T0, m)]));
            }
        }
        logs.extend(lines_of(&events));
        let b = WriteBatch {
            tenant: "t2".into(),
            id: BatchId::new("small", seq),
            frames,
        };
        assert_eq!(write(&store, b), WriteOutcome::Stored);
        if seq == 1 {
            let open = std::fs::read(
                stream_dir(tmp.path(), "t2", Kind::Log)
                    .join(open_name(segments(&store, "t2", Kind::Log)[0].0)),
            )
            .unwrap();
            assert!(contains(&open, &agent_frame(&events[..1]).data));
        }
        assert!(seq < 1000, "no segment was sealed");
    }
    let first = segments(&store, "t2", Kind::Log)[0].0;
    let catalog = lock(&store.handle.shared.catalog);
    let m = catalog.get(first).unwrap();
    let frames = m.frames.upto(u64::MAX);
    assert!(m.sealed && frames.len() == 1, "{} frames", frames.len());
    drop(catalog);
    assert_eq!(
        texts(&collect(&store, &range("t2", Kind::Log, Order::Asc))),
        logs
    );
    assert_eq!(
        texts(&collect(&store, &range("t2", Kind::Metric, Order::Asc))),
        metrics
    );
}

#[test]
fn a_store_holding_segments_of_an_old_format_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = stream_dir(tmp.path(), "t1", Kind::Log);
    std::fs::create_dir_all(&dir).unwrap();
    let old = dir.join("00000000000000000001.ndjson");
    std::fs::write(&old, b"{}\n").unwrap();
    let err = Store::open(options(tmp.path())).err().expect("refused");
    assert!(matches!(err, StoreError::OldFormat { .. }), "{err}");
    let msg = err.to_string();
    assert!(msg.contains(&old.display().to_string()), "{msg}");
    assert!(old.exists(), "nothing is deleted");
}

/// Committed bytes the disk lost (a damaged group header in the middle of a segment): the
/// groups before it are kept, the writer goes on after them.
#[test]
fn a_damaged_group_header_keeps_the_groups_before_it() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("store");
    let store = Store::open(options(&dir)).unwrap();
    let mut expected = Vec::new();
    let mut units = Vec::new();
    for seq in 1..=3 {
        let events = log_events("a", seq, 4, 30, T0);
        if seq == 1 {
            expected.extend(lines_of(&events));
        }
        units.push(unit_of(&events).len());
        write(&store, batch("t1", "a", seq, &events));
    }
    let crashed = tmp.path().join("crashed");
    crash_image(&dir, &crashed);
    store.shutdown();
    let segment = stream_dir(&crashed, "t1", Kind::Log).join(open_name(1));
    let mut bytes = std::fs::read(&segment).unwrap();
    bytes[units[0] + 12] ^= 1;
    std::fs::write(&segment, &bytes).unwrap();

    let store = Store::open(options(&crashed)).unwrap();
    assert_eq!(std::fs::metadata(&segment).unwrap().len(), units[0] as u64);
    assert_eq!(
        texts(&collect(&store, &range("t1", Kind::Log, Order::Asc))),
        expected
    );
    let events = log_events("a", 4, 2, 0, T0);
    expected.extend(lines_of(&events));
    write(&store, batch("t1", "a", 4, &events));
    assert_eq!(
        texts(&collect(&store, &range("t1", Kind::Log, Order::Asc))),
        expected
    );
}
