use super::*;
use logops_common::event::{Event, Payload};
use logops_common::Timestamp;
use std::borrow::Cow;

fn opts() -> BufferOptions {
    BufferOptions {
        cache_bytes: 1 << 20,
        flush_interval: Duration::from_millis(100),
        zstd_level: 3,
    }
}

/// Opens the buffer again after the previous handle was dropped: sled releases its file lock
/// from a background thread shortly after the last handle goes.
fn reopen(dir: &std::path::Path) -> Buffer {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        match Buffer::open(dir, &opts()) {
            Ok(b) => return b,
            Err(BufferError::Locked { .. }) if std::time::Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(20))
            }
            Err(e) => panic!("reopening the buffer: {e}"),
        }
    }
}

fn chunk(from: usize, n: usize) -> Chunk {
    let mut c = Chunk::new();
    for i in from..from + n {
        c.push(&Event {
            ts: Timestamp::now(),
            host: Cow::Borrowed("h"),
            source: Cow::Borrowed("test"),
            labels: Default::default(),
            attrs: None,
            payload: Payload::Log {
                severity: None,
                body: Cow::Owned(format!("line {i}")),
            },
        });
    }
    c
}

fn bodies(b: &BatchRecord) -> Vec<String> {
    let data = codec::decode(&b.body, b.encoding).unwrap();
    data.split(|&c| c == b'\n')
        .filter(|l| !l.is_empty())
        .map(|l| logops_common::parse_line(std::str::from_utf8(l).unwrap(), 1).unwrap())
        .map(|e| match e.payload {
            Payload::Log { body, .. } => body.into_owned(),
            _ => unreachable!(),
        })
        .collect()
}

#[test]
fn events_and_checkpoints_survive_a_reopen_together() {
    let dir = tempfile::tempdir().unwrap();
    {
        let b = Buffer::open(dir.path(), &opts()).unwrap();
        b.append(&chunk(0, 3), &[("file:1".into(), Some(b"120".to_vec()))])
            .unwrap();
        b.flush().unwrap();
    }
    let b = reopen(dir.path());
    assert_eq!(
        b.checkpoint("file:1").unwrap().as_deref(),
        Some(&b"120"[..])
    );
    assert_eq!(b.queued_events(), 3);
    let batch = b.cut(100, 1 << 20, Encoding::Zstd, 3).unwrap().unwrap();
    assert_eq!(bodies(&batch), ["line 0", "line 1", "line 2"]);
}

#[test]
fn cut_respects_limits_and_sequence_only_grows_across_reopens() {
    let dir = tempfile::tempdir().unwrap();
    let first_seq;
    {
        let b = Buffer::open(dir.path(), &opts()).unwrap();
        for i in 0..5 {
            b.append(&chunk(i * 10, 10), &[]).unwrap();
        }
        let a = b.cut(25, 1 << 20, Encoding::Zstd, 3).unwrap().unwrap();
        assert_eq!(a.events, 20, "two whole chunks fit in 25 events");
        let c = b.cut(25, 1 << 20, Encoding::Zstd, 3).unwrap().unwrap();
        assert_eq!(c.seq, a.seq + 1);
        first_seq = a.seq;
        b.ack(&a.pos).unwrap();
        b.ack(&c.pos).unwrap();
        assert_eq!(b.pending().unwrap().len(), 0);
    }
    let b = reopen(dir.path());
    let d = b.cut(25, 1 << 20, Encoding::Gzip, 3).unwrap().unwrap();
    assert_eq!(
        d.seq,
        first_seq + 2,
        "the sequence continues after a reopen"
    );
    assert_eq!(bodies(&d).first().map(String::as_str), Some("line 40"));
    assert!(b.cut(25, 1 << 20, Encoding::Zstd, 3).unwrap().is_none());
}

#[test]
fn a_cut_batch_is_resent_identically_after_a_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let cut;
    {
        let b = Buffer::open(dir.path(), &opts()).unwrap();
        b.append(&chunk(0, 50), &[]).unwrap();
        cut = b.cut(100, 1 << 20, Encoding::Zstd, 3).unwrap().unwrap();
    }
    let b = reopen(dir.path());
    assert_eq!(b.pending().unwrap(), vec![cut]);
}

#[test]
fn split_dead_letter_and_replay() {
    let dir = tempfile::tempdir().unwrap();
    let b = Buffer::open(dir.path(), &opts()).unwrap();
    b.append(&chunk(0, 5), &[]).unwrap();
    let batch = b.cut(100, 1 << 20, Encoding::Zstd, 3).unwrap().unwrap();
    let (x, y) = b.split(&batch.pos, 3).unwrap().unwrap();
    assert_eq!((x.events, y.events), (2, 3));
    assert_eq!(
        [bodies(&x), bodies(&y)].concat(),
        ["line 0", "line 1", "line 2", "line 3", "line 4"]
    );
    assert!(x.seq > batch.seq && y.seq == x.seq + 1);
    b.dead_letter(&x.pos, 400, "line 1: field `ts`: bad")
        .unwrap();
    let dead = b.dead_letters().unwrap();
    assert_eq!((dead.len(), dead[0].status, dead[0].events), (1, 400, 2));
    assert!(dead[0].reason.contains("field `ts`"));
    assert_eq!(b.pending().unwrap(), vec![y.clone()]);
    assert_eq!(b.replay(None).unwrap(), 1);
    assert_eq!(b.pending().unwrap().len(), 2);
    assert!(b.dead_letters().unwrap().is_empty());
    let report = b.check().unwrap();
    assert!(report.problems.is_empty(), "{:?}", report.problems);
    assert_eq!(report.batches, 2);
}

#[test]
fn split_halves_take_the_place_of_their_batch_under_new_ids() {
    let dir = tempfile::tempdir().unwrap();
    let b = Buffer::open(dir.path(), &opts()).unwrap();
    b.append(&chunk(0, 8), &[]).unwrap();
    let first = b.cut(8, 1 << 20, Encoding::Zstd, 3).unwrap().unwrap();
    b.append(&chunk(8, 4), &[]).unwrap();
    let second = b.cut(8, 1 << 20, Encoding::Zstd, 3).unwrap().unwrap();
    // The first batch is split, then its first half again (the ingest refused both).
    let (h0, h1) = b.split(&first.pos, 3).unwrap().unwrap();
    let (h00, h01) = b.split(&h0.pos, 3).unwrap().unwrap();
    let queue = b.pending().unwrap();
    let order: Vec<u64> = queue.iter().map(|r| r.seq).collect();
    assert_eq!(order, [h00.seq, h01.seq, h1.seq, second.seq], "send order");
    let lines: Vec<String> = queue.iter().flat_map(bodies).collect();
    let want: Vec<String> = (0..12).map(|i| format!("line {i}")).collect();
    assert_eq!(lines, want, "the lines in the order they were read");
    // Ids: never used before, from the one growing counter, the refused ones not reused.
    let mut ids = vec![first.seq, second.seq, h0.seq, h1.seq, h00.seq, h01.seq];
    assert_eq!(
        ids,
        (first.seq..first.seq + 6).collect::<Vec<_>>(),
        "consecutive, in the order they were given"
    );
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), 6);
    assert_eq!(
        b.pending_positions().unwrap(),
        queue.iter().map(|r| r.pos.clone()).collect::<Vec<_>>()
    );
    assert_eq!(h01.pos.to_string(), format!("{}/0/1", first.seq));
    // The order survives a reopen, and acks remove exactly their batch.
    drop(b);
    let b = reopen(dir.path());
    assert_eq!(b.pending().unwrap(), queue);
    b.ack(&h00.pos).unwrap();
    assert_eq!(b.pending().unwrap(), queue[1..].to_vec());
    let report = b.check().unwrap();
    assert!(report.problems.is_empty(), "{:?}", report.problems);
}

#[test]
fn batches_of_a_buffer_from_before_the_send_queue_are_moved_into_it() {
    let dir = tempfile::tempdir().unwrap();
    let cut: Vec<BatchRecord>;
    {
        let b = Buffer::open(dir.path(), &opts()).unwrap();
        b.append(&chunk(0, 3), &[]).unwrap();
        let x = b.cut(2, 1 << 20, Encoding::Zstd, 3).unwrap().unwrap();
        b.append(&chunk(3, 3), &[]).unwrap();
        let y = b.cut(2, 1 << 20, Encoding::Zstd, 3).unwrap().unwrap();
        cut = vec![x, y];
    }
    {
        // Rewrite them the way the agent stored batches before: tree `batches`, key = seq
        // BE, value without the seq.
        let db = loop {
            match sled::Config::new().path(dir.path()).open() {
                Ok(db) => break db,
                Err(_) => std::thread::sleep(Duration::from_millis(20)),
            }
        };
        let queue = db.open_tree(QUEUE_TREE).unwrap();
        let legacy = db.open_tree(LEGACY_BATCHES_TREE).unwrap();
        for r in &cut {
            let v = queue.remove(r.pos.as_bytes()).unwrap().unwrap();
            legacy
                .insert(r.seq.to_be_bytes(), BatchRecord::keyed_part(&v))
                .unwrap();
        }
        db.flush().unwrap();
    }
    let b = reopen(dir.path());
    assert_eq!(b.pending().unwrap(), cut, "same ids, bodies and order");
    assert_eq!(b.stats().unwrap().batches, 2);
    drop(b);
    let b = reopen(dir.path());
    assert_eq!(b.pending().unwrap(), cut);
    assert!(!b
        .inner
        .db
        .tree_names()
        .iter()
        .any(|n| n == LEGACY_BATCHES_TREE.as_bytes()));
}

#[test]
fn drop_oldest_frees_room_and_counts() {
    let dir = tempfile::tempdir().unwrap();
    let b = Buffer::open(dir.path(), &opts()).unwrap();
    for i in 0..10 {
        b.append(&chunk(i * 10, 10), &[]).unwrap();
    }
    let total = b.bytes();
    let (events, bytes) = b.drop_oldest(total / 2, total).unwrap();
    assert!(events >= 40 && bytes >= total / 2, "{events} {bytes}");
    let batch = b.cut(1000, 1 << 20, Encoding::Zstd, 3).unwrap().unwrap();
    assert_eq!(
        bodies(&batch).first().map(String::as_str),
        Some(format!("line {events}").as_str())
    );
}

#[test]
fn a_second_opener_is_told_the_buffer_is_in_use() {
    let dir = tempfile::tempdir().unwrap();
    let _b = Buffer::open(dir.path(), &opts()).unwrap();
    let e = Buffer::open(dir.path(), &opts())
        .err()
        .expect("second open fails");
    assert!(e.to_string().contains("in use"), "{e}");
}

fn cp(b: &Buffer, key: &str) -> Option<String> {
    b.checkpoint(key)
        .unwrap()
        .map(|v| String::from_utf8(v).unwrap())
}

fn all_cps(b: &Buffer, prefix: &str) -> Vec<(String, String)> {
    b.checkpoints(prefix)
        .unwrap()
        .into_iter()
        .map(|(k, v)| (k, String::from_utf8(v).unwrap()))
        .collect()
}

fn set(key: &str, value: &str) -> (String, Option<Vec<u8>>) {
    (key.into(), Some(value.as_bytes().to_vec()))
}

/// Positions travel in their chunks: the newest chunk's position is the one read, before a
/// cut (also after a reopen), and a cut moves it into the checkpoints for good.
#[test]
fn positions_in_chunks_win_until_a_cut_moves_them() {
    let dir = tempfile::tempdir().unwrap();
    {
        let b = Buffer::open(dir.path(), &opts()).unwrap();
        b.append(&chunk(0, 2), &[set("file:1", "10"), set("file:2", "5")])
            .unwrap();
        let first = b.cut(100, 1 << 20, Encoding::Zstd, 3).unwrap().unwrap();
        assert_eq!(first.events, 2);
        // Settled into the checkpoints by the cut.
        assert_eq!(cp(&b, "file:1").as_deref(), Some("10"));
        b.append(&chunk(2, 2), &[set("file:1", "20")]).unwrap();
        b.append(&chunk(4, 2), &[set("file:1", "30")]).unwrap();
        // Forgotten in a chunk that holds only positions.
        b.append(&Chunk::new(), &[("file:2".into(), None)]).unwrap();
        assert_eq!(cp(&b, "file:1").as_deref(), Some("30"));
        assert_eq!(cp(&b, "file:2"), None);
        assert_eq!(all_cps(&b, "file:"), [("file:1".into(), "30".into())]);
        assert_eq!(b.check().unwrap().problems, Vec::<String>::new());
        b.flush().unwrap();
    }
    let b = reopen(dir.path());
    assert_eq!(cp(&b, "file:1").as_deref(), Some("30"), "after a reopen");
    assert_eq!(cp(&b, "file:2"), None, "forgotten after a reopen");
    assert_eq!(b.queued_events(), 4);
    // A cut of the first chunk only: the second's position still wins.
    let batch = b.cut(2, 1 << 20, Encoding::Zstd, 3).unwrap().unwrap();
    assert_eq!(bodies(&batch), ["line 2", "line 3"]);
    assert_eq!(cp(&b, "file:1").as_deref(), Some("30"));
    let batch = b.cut(100, 1 << 20, Encoding::Zstd, 3).unwrap().unwrap();
    assert_eq!(
        bodies(&batch),
        ["line 4", "line 5"],
        "the positions-only chunk adds no line"
    );
    assert_eq!(b.stats().unwrap().queued_chunks, 0);
    assert_eq!(all_cps(&b, ""), [("file:1".into(), "30".into())]);
    drop(b);
    let b = reopen(dir.path());
    assert_eq!(all_cps(&b, ""), [("file:1".into(), "30".into())]);
}

/// Chunks holding only positions are settled by a cut without making a batch.
#[test]
fn positions_alone_make_no_batch() {
    let dir = tempfile::tempdir().unwrap();
    let b = Buffer::open(dir.path(), &opts()).unwrap();
    b.append(&Chunk::new(), &[set("file:1", "7")]).unwrap();
    assert_eq!(b.queued_events(), 0);
    assert_eq!(b.oldest_chunk_ms().unwrap(), None);
    assert!(b.cut(100, 1 << 20, Encoding::Zstd, 3).unwrap().is_none());
    assert_eq!(b.stats().unwrap().queued_chunks, 0);
    assert_eq!(cp(&b, "file:1").as_deref(), Some("7"));
    assert!(b.pending().unwrap().is_empty());
}

/// A dropped chunk's events are gone, its position is kept (nothing is read twice).
#[test]
fn drop_oldest_keeps_the_positions_of_what_it_drops() {
    let dir = tempfile::tempdir().unwrap();
    let b = Buffer::open(dir.path(), &opts()).unwrap();
    for i in 0..4 {
        b.append(
            &chunk(i * 10, 10),
            &[set("file:1", &format!("{}", (i + 1) * 10))],
        )
        .unwrap();
    }
    let total = b.bytes();
    let (events, _) = b.drop_oldest(total - 1, total).unwrap();
    assert_eq!(events, 40, "every chunk had to go");
    assert_eq!(cp(&b, "file:1").as_deref(), Some("40"));
    drop(b);
    let b = reopen(dir.path());
    assert_eq!(cp(&b, "file:1").as_deref(), Some("40"));
    assert_eq!(b.queued_events(), 0);
}

/// Chunks stored before positions moved into them still decode (no positions).
#[test]
fn chunks_of_the_earlier_layout_still_decode() {
    let frame = zstd::bulk::compress(b"{}\n", 3).unwrap();
    let mut old = Vec::new();
    old.extend_from_slice(&1_700_000_000_000u64.to_le_bytes());
    old.extend_from_slice(&1u32.to_le_bytes());
    old.extend_from_slice(&3u32.to_le_bytes());
    old.extend_from_slice(&frame);
    let rec = ChunkRecord::decode(&old).unwrap();
    assert_eq!((rec.events, rec.raw_len), (1, 3));
    assert!(rec.checkpoints.is_empty());
    assert_eq!(rec.data().unwrap(), b"{}\n");
    let new = ChunkRecord::encode(5, 1, 3, &[set("a", "b"), ("c".into(), None)], &frame);
    let rec = ChunkRecord::decode(&new).unwrap();
    assert_eq!(
        rec.checkpoints,
        [(&b"a"[..], Some(&b"b"[..])), (&b"c"[..], None)]
    );
    assert_eq!(rec.data().unwrap(), b"{}\n");
}
