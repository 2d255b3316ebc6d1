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
        b.ack(a.seq).unwrap();
        b.ack(c.seq).unwrap();
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
    let (x, y) = b.split(batch.seq, 3).unwrap().unwrap();
    assert_eq!((x.events, y.events), (2, 3));
    assert_eq!(
        [bodies(&x), bodies(&y)].concat(),
        ["line 0", "line 1", "line 2", "line 3", "line 4"]
    );
    assert!(x.seq > batch.seq && y.seq == x.seq + 1);
    b.dead_letter(x.seq, 400, "line 1: field `ts`: bad")
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
