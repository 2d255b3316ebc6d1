//! The files source against real files and a real buffer. Waits are bounded polls on what
//! lands in the buffer (mostly: "the file's checkpoint reached offset N", which is written
//! atomically with the events before it), never timed assertions.

use std::collections::BTreeMap;
use std::fs::{self, OpenOptions};
use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::sync::Arc;
use std::thread::JoinHandle;

use logops_common::batch::Encoding;
use logops_common::event::Payload;
use logops_common::units::{ByteSize, HumanDuration};

use super::*;
use crate::buffer::{Buffer, BufferOptions};
use crate::codec;
use crate::config::{MultilineConfig, WhenFull};
use crate::metrics::AgentMetrics;
use crate::pipeline::ShutdownTrigger;

const WAIT: Duration = Duration::from_secs(10);

/// One event as it landed in the buffer.
#[derive(Debug, Clone, PartialEq)]
struct Got {
    body: String,
    path: String,
    offset: u64,
    split: bool,
    invalid: bool,
}

struct Env {
    dir: tempfile::TempDir,
    buffer: Buffer,
    got: Vec<Got>,
    raw: Vec<String>,
}

struct Running {
    trigger: ShutdownTrigger,
    handle: Option<JoinHandle<()>>,
    metrics: Arc<AgentMetrics>,
}

impl Running {
    fn stop(mut self) {
        self.trigger.trigger();
        self.handle.take().unwrap().join().unwrap();
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.trigger.trigger();
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

fn group(paths: &[&Path]) -> FilesConfig {
    FilesConfig {
        paths: paths
            .iter()
            .map(|p| p.to_string_lossy().into_owned())
            .collect(),
        exclude: vec![],
        start_at: StartAt::Beginning,
        labels: BTreeMap::from([("service".into(), "test".into())]),
        max_line_bytes: ByteSize::kib(64),
        multiline: None,
        rescan_interval: HumanDuration::secs(2),
        rotate_wait: HumanDuration::millis(300),
        container: None,
    }
}

fn append(path: &Path, data: &[u8]) {
    let mut f = OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap();
    f.write_all(data).unwrap();
}

fn size(path: &Path) -> u64 {
    fs::metadata(path).unwrap().len()
}

impl Env {
    fn new() -> Env {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir(dir.path().join("logs")).unwrap();
        let buffer = Buffer::open(
            &dir.path().join("buffer"),
            &BufferOptions {
                cache_bytes: 1 << 20,
                flush_interval: Duration::from_millis(100),
                zstd_level: 3,
            },
        )
        .unwrap();
        Env {
            dir,
            buffer,
            got: Vec::new(),
            raw: Vec::new(),
        }
    }

    fn log(&self, name: &str) -> PathBuf {
        self.dir.path().join("logs").join(name)
    }

    fn start(&self, groups: Vec<FilesConfig>) -> Running {
        self.start_with(groups, 1 << 30)
    }

    fn start_with(&self, groups: Vec<FilesConfig>, max_bytes: u64) -> Running {
        let metrics = Arc::new(AgentMetrics::new());
        let emitter = Emitter::new(
            self.buffer.clone(),
            max_bytes,
            WhenFull::Block,
            metrics.clone(),
            Arc::from("test-host"),
            BTreeMap::from([("env".into(), "ci".into())]),
        );
        let (trigger, shutdown) = Shutdown::new();
        let handle = std::thread::spawn(move || FilesSource::new(groups, emitter).run(shutdown));
        Running {
            trigger,
            handle: Some(handle),
            metrics,
        }
    }

    /// Moves everything in the buffer into `got`.
    fn drain(&mut self) {
        while let Some(b) = self
            .buffer
            .cut(usize::MAX, usize::MAX, Encoding::Identity, 0)
            .unwrap()
        {
            let data = codec::decode(&b.body, b.encoding).unwrap();
            for line in data.split(|&c| c == b'\n').filter(|l| !l.is_empty()) {
                let text = std::str::from_utf8(line).unwrap();
                let ev = logops_common::parse_line(text, 1).unwrap();
                let attrs = ev.attrs.as_ref().unwrap().to_map();
                let Payload::Log { severity, body } = &ev.payload else {
                    panic!("not a log: {text}")
                };
                assert_eq!(*severity, None);
                assert_eq!(ev.source, "file");
                assert_eq!(ev.host, "test-host");
                self.got.push(Got {
                    body: body.to_string(),
                    path: attrs["path"].as_str().unwrap().to_owned(),
                    offset: attrs["offset"].as_u64().unwrap(),
                    split: attrs.get("split") == Some(&serde_json::Value::Bool(true)),
                    invalid: attrs.get("invalid_utf8") == Some(&serde_json::Value::Bool(true)),
                });
                self.raw.push(text.to_owned());
            }
            self.buffer.ack(&b.pos).unwrap();
        }
    }

    fn bodies(&mut self) -> Vec<String> {
        self.drain();
        self.got.iter().map(|g| g.body.clone()).collect()
    }

    /// The bodies read from files whose path attribute ends with `name`.
    fn bodies_of(&mut self, name: &str) -> Vec<String> {
        self.drain();
        self.got
            .iter()
            .filter(|g| g.path.ends_with(name))
            .map(|g| g.body.clone())
            .collect()
    }

    /// The checkpoint of the file now at `path`.
    fn checkpoint(&self, path: &Path) -> Option<FileCheckpoint> {
        let m = fs::metadata(path).ok()?;
        self.checkpoint_of(m.dev(), m.ino())
    }

    fn checkpoint_of(&self, dev: u64, ino: u64) -> Option<FileCheckpoint> {
        let suffix = format!(":{dev}:{ino}");
        self.buffer
            .checkpoints("file:")
            .unwrap()
            .into_iter()
            .find(|(k, _)| k.ends_with(&suffix))
            .map(|(_, v)| FileCheckpoint::decode(&v).unwrap())
    }

    fn wait_until(&mut self, what: &str, mut f: impl FnMut(&mut Env) -> bool) {
        let deadline = Instant::now() + WAIT;
        loop {
            if f(self) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}; got {:#?}",
                self.got
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits until the checkpoint of the file at `path` is `offset`.
    fn wait_offset(&mut self, path: &Path, offset: u64) {
        self.wait_until(&format!("{} at offset {offset}", path.display()), |e| {
            e.checkpoint(path).is_some_and(|c| c.offset == offset)
        });
        self.drain();
    }

    /// Waits until the file at `path` is read to its end.
    fn wait_read(&mut self, path: &Path) {
        self.wait_offset(path, size(path));
    }

    fn wait_count(&mut self, n: usize) {
        self.wait_until(&format!("{n} events"), |e| {
            e.drain();
            e.got.len() >= n
        });
    }
}

fn lines(range: std::ops::Range<usize>) -> String {
    range.map(|i| format!("line {i}\n")).collect()
}

fn names(range: std::ops::Range<usize>) -> Vec<String> {
    range.map(|i| format!("line {i}")).collect()
}

#[test]
fn tails_from_the_beginning() {
    let mut env = Env::new();
    let app = env.log("app.log");
    fs::write(&app, "one\ntwo\r\nthree\n").unwrap();
    let run = env.start(vec![group(&[&env.log("*.log")])]);
    env.wait_read(&app);
    append(&app, b"four\n");
    env.wait_read(&app);
    assert_eq!(env.bodies(), ["one", "two", "three", "four"]);
    let offsets: Vec<u64> = env.got.iter().map(|g| g.offset).collect();
    assert_eq!(offsets, [0, 4, 9, 15]);
    assert!(env
        .got
        .iter()
        .all(|g| g.path == app.to_string_lossy() && !g.split && !g.invalid));
    // Labels: the agent's merged with the group's; kind log.
    let first: serde_json::Value = serde_json::from_str(&env.raw[0]).unwrap();
    assert_eq!(first["kind"], "log");
    assert_eq!(first["labels"]["env"], "ci");
    assert_eq!(first["labels"]["service"], "test");
    let cp = env.checkpoint(&app).unwrap();
    assert_eq!(cp.path, app.to_string_lossy());
    // Shorter than 256 bytes: the head covers what there is.
    assert_eq!(cp.head(), Head::of_bytes(b"one\ntwo\r\nthree\nfour\n"));
    let text = run.metrics.render(None);
    let pattern = env.log("*.log").to_string_lossy().into_owned();
    assert!(
        text.contains(&format!(
            "logops_agent_file_lines_read_total{{group=\"{pattern}\"}} 4"
        )),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "logops_agent_file_bytes_behind{{path=\"{}\"}} 0",
            app.display()
        )),
        "{text}"
    );
    run.stop();
}

#[test]
fn checkpoint_format_and_pattern_marker() {
    let mut env = Env::new();
    let app = env.log("app.log");
    let content = lines(0..40); // > 256 bytes: fingerprinted
    fs::write(&app, &content).unwrap();
    let cfg = group(&[&env.log("*.log")]);
    let pattern = cfg.paths[0].clone();
    let run = env.start(vec![cfg]);
    env.wait_read(&app);
    run.stop();
    let m = fs::metadata(&app).unwrap();
    let key = format!("file:{}:{}", m.dev(), m.ino());
    let value = env
        .buffer
        .checkpoint(&key)
        .unwrap()
        .expect("checkpoint key");
    let json: serde_json::Value = serde_json::from_slice(&value).unwrap();
    assert_eq!(json["path"], app.to_string_lossy().as_ref());
    assert_eq!(json["offset"], content.len() as u64);
    let fp = identity::fnv1a(&[&content.as_bytes()[..256]]);
    assert_eq!(json["fingerprint"], format!("{fp:016x}"));
    assert_eq!(json["dev"], m.dev());
    assert_eq!(json["ino"], m.ino());
    let marker = env
        .buffer
        .checkpoint(&format!("filepattern:{pattern}"))
        .unwrap()
        .expect("pattern marker");
    let marker: serde_json::Value = serde_json::from_slice(&marker).unwrap();
    assert_eq!(marker["start_at"], "beginning");
}

#[test]
fn start_at_end_reads_only_new_lines_and_is_not_applied_again() {
    let mut env = Env::new();
    let app = env.log("app.log");
    fs::write(&app, "old 1\nold 2\n").unwrap();
    let mut cfg = group(&[&env.log("*.log")]);
    cfg.start_at = StartAt::End;
    let run = env.start(vec![cfg.clone()]);
    // The starting position is written at once, with the group marker.
    env.wait_offset(&app, 12);
    append(&app, b"new 1\n");
    env.wait_read(&app);
    // A file that appears later is read from its beginning.
    let late = env.log("late.log");
    fs::write(&late, "late 1\n").unwrap();
    env.wait_read(&late);
    run.stop();
    // While stopped: more lines, and another new file.
    append(&app, b"new 2\n");
    let other = env.log("other.log");
    fs::write(&other, "other 1\n").unwrap();
    let run = env.start(vec![cfg]);
    env.wait_read(&app);
    env.wait_read(&other);
    run.stop();
    assert_eq!(env.bodies_of("app.log"), ["new 1", "new 2"]);
    assert_eq!(env.bodies_of("late.log"), ["late 1"]);
    assert_eq!(env.bodies_of("other.log"), ["other 1"]);
}

#[test]
fn start_at_end_waits_for_an_unfinished_last_line() {
    let mut env = Env::new();
    let app = env.log("app.log");
    fs::write(&app, "old\nhalf").unwrap();
    let mut cfg = group(&[&env.log("*.log")]);
    cfg.start_at = StartAt::End;
    let _run = env.start(vec![cfg]);
    env.wait_offset(&app, 4);
    append(&app, b" done\n");
    env.wait_read(&app);
    assert_eq!(env.bodies(), ["half done"]);
}

#[test]
fn a_partial_line_is_completed_later_and_not_checkpointed() {
    let mut env = Env::new();
    let app = env.log("app.log");
    fs::write(&app, "first\nabc").unwrap();
    let _run = env.start(vec![group(&[&app])]);
    env.wait_offset(&app, 6);
    assert_eq!(env.bodies(), ["first"]);
    append(&app, b"def\n");
    env.wait_read(&app);
    assert_eq!(env.bodies(), ["first", "abcdef"]);
    assert_eq!(env.got[1].offset, 6);
}

#[test]
fn a_restart_resumes_exactly_at_the_checkpoint() {
    let mut env = Env::new();
    let app = env.log("app.log");
    fs::write(&app, "l1\nl2\nl3\npar").unwrap();
    let cfg = group(&[&env.log("*.log")]);
    let run = env.start(vec![cfg.clone()]);
    env.wait_offset(&app, 9);
    run.stop();
    append(&app, b"tial\nl4\n");
    let run = env.start(vec![cfg]);
    env.wait_read(&app);
    run.stop();
    assert_eq!(env.bodies(), ["l1", "l2", "l3", "partial", "l4"]);
    assert_eq!(env.got[3].offset, 9);
}

#[test]
fn restarts_while_a_writer_writes_lose_and_double_nothing() {
    let mut env = Env::new();
    let app = env.log("app.log");
    fs::write(&app, "").unwrap();
    let cfg = group(&[&app]);
    const N: usize = 20_000;
    let writer = {
        let app = app.clone();
        std::thread::spawn(move || {
            let mut f = OpenOptions::new().append(true).open(&app).unwrap();
            for i in 0..N {
                // Lines land in two writes, so the source sees unfinished lines.
                let line = format!("line {i}\n");
                let (a, b) = line.as_bytes().split_at(3);
                f.write_all(a).unwrap();
                f.write_all(b).unwrap();
                if i % 500 == 0 {
                    std::thread::sleep(Duration::from_millis(5));
                }
            }
        })
    };
    for _ in 0..5 {
        let run = env.start(vec![cfg.clone()]);
        env.wait_until("some progress", |e| {
            e.checkpoint(&app).is_some_and(|c| c.offset > 0)
        });
        std::thread::sleep(Duration::from_millis(30));
        run.stop();
    }
    writer.join().unwrap();
    let _run = env.start(vec![cfg]);
    env.wait_read(&app);
    assert_eq!(env.bodies(), names(0..N));
}

#[test]
fn rotation_by_rename_while_running_reads_the_old_file_to_its_end() {
    let mut env = Env::new();
    let app = env.log("app.log");
    let mut old = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&app)
        .unwrap();
    old.write_all(b"old 1\n").unwrap();
    let old_meta = fs::metadata(&app).unwrap();
    let _run = env.start(vec![group(&[&env.log("*.log")])]);
    env.wait_read(&app);
    fs::rename(&app, env.log("app.log.1")).unwrap();
    // The writer still has the old file open: these lines go to app.log.1.
    old.write_all(b"old 2\n").unwrap();
    fs::write(&app, "new 1\n").unwrap();
    old.write_all(b"old 3\n").unwrap();
    env.wait_read(&app);
    env.wait_count(4);
    // Once quiet for rotate_wait, the old file is closed and its checkpoint forgotten.
    env.wait_until("the old checkpoint forgotten", |e| {
        e.checkpoint_of(old_meta.dev(), old_meta.ino()).is_none()
    });
    let mut bodies = env.bodies();
    bodies.sort();
    assert_eq!(bodies, ["new 1", "old 1", "old 2", "old 3"]);
    // The new file is read from offset 0 under its path.
    let new_one = env.got.iter().find(|g| g.body == "new 1").unwrap();
    assert_eq!(
        (new_one.offset, new_one.path.as_str()),
        (0, &*app.to_string_lossy())
    );
    let old: Vec<u64> = env
        .got
        .iter()
        .filter(|g| g.body.starts_with("old"))
        .map(|g| g.offset)
        .collect();
    assert_eq!(
        old,
        [0, 6, 12],
        "the old file in order, through its descriptor"
    );
}

#[test]
fn rename_while_stopped_finishes_the_old_file_from_its_checkpoint() {
    let mut env = Env::new();
    let app = env.log("app.log");
    fs::write(&app, "1\n2\n").unwrap();
    let cfg = group(&[&env.log("*.log")]);
    let run = env.start(vec![cfg.clone()]);
    env.wait_read(&app);
    run.stop();
    append(&app, b"3\n4");
    let rotated = env.log("app.log.1");
    fs::rename(&app, &rotated).unwrap();
    fs::write(&app, "n1\n").unwrap();
    let old = fs::metadata(&rotated).unwrap();
    let _run = env.start(vec![cfg]);
    env.wait_read(&app);
    // app.log.1 no longer matches the glob but is finished (its last line too, once it
    // has been quiet for rotate_wait), then its checkpoint is forgotten.
    env.wait_until("the old checkpoint forgotten", |e| {
        e.checkpoint_of(old.dev(), old.ino()).is_none()
    });
    env.drain();
    assert_eq!(env.bodies_of("app.log.1"), ["3", "4"]);
    assert_eq!(env.bodies_of("app.log"), ["1", "2", "n1"]);
    let three = env.got.iter().find(|g| g.body == "3").unwrap();
    assert_eq!(three.offset, 4);
}

#[test]
fn a_rotated_file_still_being_read_at_a_stop_is_finished_after_the_restart() {
    let mut env = Env::new();
    let app = env.log("app.log");
    fs::write(&app, "1\n2\n").unwrap();
    let mut cfg = group(&[&env.log("*.log")]);
    cfg.labels.insert("service".into(), "mine".into());
    cfg.rotate_wait = HumanDuration::secs(60);
    // Another group in the same directory: the file goes back to the one that read it.
    let mut other = group(&[&env.log("*.txt")]);
    other.labels.insert("service".into(), "other".into());
    let groups = vec![other, cfg];
    let run = env.start(groups.clone());
    env.wait_read(&app);
    // Rotated while running: read on through its descriptor (its checkpoint now names
    // app.log.1, which no pattern matches) ...
    let rotated = env.log("app.log.1");
    fs::rename(&app, &rotated).unwrap();
    append(&rotated, b"3\n");
    env.wait_read(&rotated);
    // ... and stopped before it was quiet for rotate_wait.
    run.stop();
    append(&rotated, b"4\n");
    let _run = env.start(groups);
    env.wait_read(&rotated);
    assert_eq!(env.bodies(), ["1", "2", "3", "4"]);
    assert!(services_of(&mut env, "app.log.1")
        .iter()
        .all(|s| s == "mine"));
}

#[test]
fn checkpoints_of_files_that_are_gone_are_forgotten() {
    let mut env = Env::new();
    let app = env.log("app.log");
    fs::write(&app, "1\n").unwrap();
    let cfg = group(&[&env.log("*.log")]);
    let run = env.start(vec![cfg.clone()]);
    env.wait_read(&app);
    let m = fs::metadata(&app).unwrap();
    run.stop();
    fs::remove_file(&app).unwrap();
    // Even if this file reuses the inode, it is not the checkpointed file (too short).
    let keep = env.log("keep.txt");
    fs::write(&keep, "x").unwrap();
    let _run = env.start(vec![cfg]);
    env.wait_until("the checkpoint forgotten", |e| {
        e.checkpoint_of(m.dev(), m.ino()).is_none()
    });
}

#[test]
fn copytruncate_restarts_at_zero() {
    let mut env = Env::new();
    let app = env.log("app.log");
    fs::write(&app, "l1\nl2\nl3\n").unwrap();
    let _run = env.start(vec![group(&[&app])]);
    env.wait_read(&app);
    let f = OpenOptions::new().write(true).open(&app).unwrap();
    f.set_len(0).unwrap();
    drop(f);
    append(&app, b"n1\n");
    env.wait_count(4);
    env.wait_offset(&app, 3);
    assert_eq!(env.bodies(), ["l1", "l2", "l3", "n1"]);
    assert_eq!(env.got[3].offset, 0);
}

#[test]
fn copytruncate_that_regrew_past_the_position_is_seen_by_the_fingerprint() {
    let mut env = Env::new();
    let app = env.log("app.log");
    fs::write(&app, lines(0..40)).unwrap(); // > 256 bytes: fingerprinted
    let _run = env.start(vec![group(&[&app])]);
    env.wait_read(&app);
    // Truncated and rewritten longer than before, possibly before the source looks.
    fs::write(&app, lines(100..160)).unwrap();
    env.wait_read(&app);
    let mut want = names(0..40);
    want.extend(names(100..160));
    assert_eq!(env.bodies(), want);
}

#[test]
fn copytruncate_of_a_small_file_that_regrew_past_the_position_is_seen_by_its_head() {
    let mut env = Env::new();
    let app = env.log("app.log");
    fs::write(&app, "t0000\nt0001\n").unwrap(); // < 256 bytes: no full fingerprint
    let cfg = group(&[&app]);
    let run = env.start(vec![cfg.clone()]);
    env.wait_read(&app);
    // While running: truncated and written longer again, possibly before the source looks.
    fs::write(&app, "t0002\nt0003\nt0004\n").unwrap();
    env.wait_count(5);
    env.wait_read(&app);
    run.stop();
    // While stopped (always before the source looks): the checkpoint's head tells.
    fs::write(&app, "t0005\nt0006\nt0007\nt0008\n").unwrap();
    let _run = env.start(vec![cfg]);
    env.wait_count(9);
    env.wait_read(&app);
    let want: Vec<String> = (0..9).map(|i| format!("t{i:04}")).collect();
    assert_eq!(env.bodies(), want);
}

#[test]
fn inode_reuse_and_copies_are_told_apart() {
    let mut env = Env::new();
    let app = env.log("app.log");
    fs::write(&app, lines(0..40)).unwrap(); // > 256 bytes
    let cfg = group(&[&env.log("*.log")]);
    let run = env.start(vec![cfg.clone()]);
    env.wait_read(&app);
    // A copy has the same content but another inode: a file of its own, read from 0.
    let copy = env.log("copy.log");
    fs::copy(&app, &copy).unwrap();
    env.wait_read(&copy);
    run.stop();
    // Same device and inode, other content (what inode reuse looks like): read from 0,
    // even though it is longer than the checkpoint.
    let ino = fs::metadata(&app).unwrap().ino();
    let f = OpenOptions::new().write(true).open(&app).unwrap();
    f.set_len(0).unwrap();
    drop(f);
    append(&app, lines(100..150).as_bytes());
    assert_eq!(fs::metadata(&app).unwrap().ino(), ino);
    let _run = env.start(vec![cfg]);
    env.wait_read(&app);
    let mut want = names(0..40);
    want.extend(names(100..150));
    assert_eq!(env.bodies_of("app.log"), want);
    assert_eq!(env.bodies_of("copy.log"), names(0..40));
}

#[test]
fn excludes_match_names_and_paths() {
    let mut env = Env::new();
    let keep = env.log("a.log");
    let by_name = env.log("skip-me.log");
    let by_path = env.log("other.log");
    for p in [&keep, &by_name, &by_path] {
        fs::write(p, "x\n").unwrap();
    }
    let mut cfg = group(&[&env.log("*.log")]);
    cfg.exclude = vec!["skip*".into(), by_path.to_string_lossy().into_owned()];
    let _run = env.start(vec![cfg]);
    env.wait_read(&keep);
    // New and growing excluded files stay out too.
    fs::write(env.log("skip-2.log"), "y\n").unwrap();
    append(&by_path, b"z\n");
    append(&keep, b"x2\n");
    env.wait_read(&keep);
    assert_eq!(env.bodies(), ["x", "x2"]);
    assert!(env.checkpoint(&by_name).is_none());
    assert!(env.checkpoint(&by_path).is_none());
}

#[test]
fn long_lines_are_split_into_flagged_pieces() {
    let mut env = Env::new();
    let app = env.log("app.log");
    let long = "a".repeat(600);
    fs::write(&app, format!("{long}\nshort\n")).unwrap();
    let mut cfg = group(&[&app]);
    cfg.max_line_bytes = ByteSize(256);
    let _run = env.start(vec![cfg]);
    env.wait_read(&app);
    let pieces: Vec<(usize, u64, bool)> = env
        .got
        .iter()
        .map(|g| (g.body.len(), g.offset, g.split))
        .collect();
    assert_eq!(
        pieces,
        [
            (256, 0, true),
            (256, 256, true),
            (88, 512, true),
            (5, 601, false)
        ]
    );
    // An unfinished line is cut as it grows: memory stays bounded, and the checkpoint
    // moves with the pieces.
    append(&app, "b".repeat(700).as_bytes());
    env.wait_offset(&app, 607 + 512);
    let cp = env.checkpoint(&app).unwrap();
    assert!(cp.mid_line);
    append(&app, b"\n");
    env.wait_read(&app);
    let tail: Vec<(usize, bool)> = env.got[4..]
        .iter()
        .map(|g| (g.body.len(), g.split))
        .collect();
    assert_eq!(tail, [(256, true), (256, true), (188, true)]);
}

#[test]
fn invalid_utf8_is_kept_lossily_and_flagged() {
    let mut env = Env::new();
    let app = env.log("app.log");
    fs::write(&app, b"ok\n\xff\xfebad\xc3\n").unwrap();
    let _run = env.start(vec![group(&[&app])]);
    env.wait_read(&app);
    assert_eq!(env.bodies(), ["ok", "\u{FFFD}\u{FFFD}bad\u{FFFD}"]);
    assert!(!env.got[0].invalid);
    assert!(env.got[1].invalid);
}

fn multiline(timeout: HumanDuration) -> Option<MultilineConfig> {
    Some(MultilineConfig {
        start_pattern: r"^\d".into(),
        timeout,
        max_lines: 500,
    })
}

#[test]
fn multiline_joins_lines_and_flushes_on_timeout() {
    let mut env = Env::new();
    let app = env.log("app.log");
    let text = "1 start\n  at a\n  at b\n2 next\n";
    fs::write(&app, text).unwrap();
    let mut cfg = group(&[&app]);
    cfg.multiline = multiline(HumanDuration::millis(200));
    let _run = env.start(vec![cfg]);
    // The second event is complete only once the timeout passed.
    env.wait_read(&app);
    assert_eq!(env.bodies(), ["1 start\n  at a\n  at b", "2 next"]);
    assert_eq!(env.got[1].offset, 22);
}

#[test]
fn a_pending_multiline_event_is_read_again_after_a_restart() {
    let mut env = Env::new();
    let app = env.log("app.log");
    fs::write(&app, "1 a\n b\n2 c\n d\n").unwrap();
    let mut cfg = group(&[&app]);
    cfg.multiline = multiline(HumanDuration::secs(3600));
    let run = env.start(vec![cfg.clone()]);
    // "2 c\n d" is pending: the checkpoint stays at its start.
    env.wait_offset(&app, 7);
    assert_eq!(env.bodies(), ["1 a\n b"]);
    run.stop();
    cfg.multiline = multiline(HumanDuration::millis(100));
    let _run = env.start(vec![cfg]);
    env.wait_read(&app);
    assert_eq!(env.bodies(), ["1 a\n b", "2 c\n d"]);
}

#[test]
fn a_full_buffer_blocks_and_the_checkpoint_does_not_advance() {
    let mut env = Env::new();
    let app = env.log("app.log");
    fs::write(&app, lines(0..100)).unwrap();
    let cfg = group(&[&app]);
    let marker = format!("filepattern:{}", cfg.paths[0]);
    // Room for the starting positions (no events), not for a chunk.
    let run = env.start_with(vec![cfg.clone()], 64);
    env.wait_until("the pattern marker", |e| {
        e.buffer.checkpoint(&marker).unwrap().is_some()
    });
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(env.checkpoint(&app).map(|c| c.offset), Some(0));
    assert_eq!(env.buffer.queued_events(), 0);
    // Shutdown ends the blocked emit without advancing.
    run.stop();
    assert_eq!(env.checkpoint(&app).map(|c| c.offset), Some(0));
    assert_eq!(env.buffer.queued_events(), 0);
    let _run = env.start(vec![cfg]);
    env.wait_read(&app);
    assert_eq!(env.bodies(), names(0..100));
}

/// The `service` label of each event read from files whose path ends with `name`.
fn services_of(env: &mut Env, name: &str) -> Vec<String> {
    env.drain();
    env.got
        .iter()
        .zip(&env.raw)
        .filter(|(g, _)| g.path.ends_with(name))
        .map(|(_, raw)| {
            let v: serde_json::Value = serde_json::from_str(raw).unwrap();
            v["labels"]["service"]
                .as_str()
                .unwrap_or_default()
                .to_owned()
        })
        .collect()
}

#[test]
fn editing_the_groups_reads_nothing_twice_and_skips_nothing() {
    let mut env = Env::new();
    let (a, b, c) = (env.log("a.log"), env.log("b.log"), env.log("c.log"));
    fs::write(&a, lines(0..3)).unwrap();
    let run = env.start(vec![group(&[&a])]);
    env.wait_read(&a);
    run.stop();

    // A pattern added to the group: a.log goes on from its checkpoint (also what it got
    // meanwhile); b.log is new to the configuration, so its group's start_at applies.
    append(&a, lines(3..5).as_bytes());
    fs::write(&b, "b0\n").unwrap();
    let run = env.start(vec![group(&[&a, &b])]);
    env.wait_read(&a);
    env.wait_read(&b);
    run.stop();
    assert_eq!(env.bodies_of("a.log"), names(0..5));
    assert_eq!(env.bodies_of("b.log"), ["b0"]);

    // Split into two groups, reordered, with start_at = end and a new pattern: the files
    // already read go on from their checkpoints; only c.log starts at its end.
    append(&a, b"a5\n");
    append(&b, b"b1\n");
    fs::write(&c, "c-old\n").unwrap();
    let mut gb = group(&[&b, &c]);
    gb.start_at = StartAt::End;
    gb.labels.insert("service".into(), "second".into());
    let mut ga = group(&[&a]);
    ga.start_at = StartAt::End;
    let run = env.start(vec![gb, ga]);
    env.wait_read(&a);
    env.wait_read(&b);
    env.wait_offset(&c, 6);
    append(&c, b"c-new\n");
    env.wait_read(&c);
    run.stop();
    let mut want_a = names(0..5);
    want_a.push("a5".into());
    assert_eq!(env.bodies_of("a.log"), want_a);
    assert_eq!(env.bodies_of("b.log"), ["b0", "b1"]);
    assert_eq!(env.bodies_of("c.log"), ["c-new"]);
}

#[test]
fn a_file_matched_by_two_groups_is_read_once_by_the_first() {
    let mut env = Env::new();
    let app = env.log("app.log");
    fs::write(&app, lines(0..3)).unwrap();
    let first = group(&[&env.log("*.log")]);
    let mut second = group(&[&app]);
    second.labels.insert("service".into(), "second".into());
    let run = env.start(vec![first.clone(), second.clone()]);
    env.wait_read(&app);
    append(&app, lines(3..5).as_bytes());
    env.wait_read(&app);
    // A file created later too.
    let late = env.log("late.log");
    let mut late_group = group(&[&late]);
    late_group.labels.insert("service".into(), "late".into());
    run.stop();
    let run = env.start(vec![first, second, late_group]);
    fs::write(&late, "l0\n").unwrap();
    env.wait_read(&late);
    run.stop();
    assert_eq!(env.bodies_of("app.log"), names(0..5));
    assert!(services_of(&mut env, "app.log").iter().all(|s| s == "test"));
    assert_eq!(env.bodies_of("late.log"), ["l0"]);
    assert_eq!(services_of(&mut env, "late.log"), ["test"]);
}

#[test]
fn checkpoints_of_the_per_group_layout_are_rewritten_and_go_on() {
    let mut env = Env::new();
    let app = env.log("app.log");
    fs::write(&app, lines(0..3)).unwrap();
    let cfg = group(&[&env.log("*.log")]);
    // What an agent of the per-group layout left: app.log read to offset 14 ("line 0\n"
    // and "line 1\n"), its group started.
    let m = fs::metadata(&app).unwrap();
    let key = FileKey::of(&m);
    let legacy = |gid: &str| format!("file:{gid}:{}:{}", m.dev(), m.ino());
    let old = |offset| {
        let p = app.to_string_lossy();
        FileCheckpoint::encode(&p, &p, key, offset, Head::NONE, false, None)
    };
    let marker = format!(
        r#"{{"paths":[{:?}],"start_at":"end","started":"2026-01-01T00:00:00Z"}}"#,
        cfg.paths[0]
    );
    env.buffer
        .append(
            &crate::chunk::Chunk::new(),
            &[
                (legacy("00000000000000aa"), Some(old(14))),
                // The same file under a second group that was behind.
                (legacy("00000000000000bb"), Some(old(7))),
                (
                    "filegroup:00000000000000aa".into(),
                    Some(marker.into_bytes()),
                ),
            ],
        )
        .unwrap();
    let run = env.start(vec![cfg.clone()]);
    env.wait_read(&app);
    run.stop();
    assert_eq!(
        env.bodies(),
        ["line 2"],
        "read on from the furthest old position"
    );
    let keys: Vec<String> = env
        .buffer
        .checkpoints("file")
        .unwrap()
        .into_iter()
        .map(|(k, _)| k)
        .collect();
    assert_eq!(
        keys,
        [
            format!("file:{}:{}", m.dev(), m.ino()),
            format!("filepattern:{}", cfg.paths[0]),
        ]
    );
}

#[test]
fn a_rotated_file_another_group_matches_is_taken_over_from_its_checkpoint() {
    let mut env = Env::new();
    let (app, app1) = (env.log("app.log"), env.log("app.log.1"));
    fs::write(&app, lines(0..3)).unwrap();
    let current = group(&[&app]);
    let mut archive = group(&[&env.log("app.log.*")]);
    archive.labels.insert("service".into(), "archive".into());
    let _run = env.start(vec![current, archive]);
    env.wait_read(&app);
    // Renamed: the first group reads it until it has been quiet for rotate_wait, then the
    // second group (whose pattern matches the new name) goes on from where it stopped.
    fs::rename(&app, &app1).unwrap();
    let mut written = 3;
    let deadline = Instant::now() + WAIT;
    while !services_of(&mut env, "app.log.1")
        .iter()
        .any(|s| s == "archive")
    {
        assert!(
            Instant::now() < deadline,
            "the archive group never read app.log.1"
        );
        append(&app1, lines(written..written + 1).as_bytes());
        written += 1;
        std::thread::sleep(Duration::from_millis(400));
    }
    env.wait_read(&app1);
    assert_eq!(env.bodies(), names(0..written));
    let services = services_of(&mut env, "app.log");
    assert!(services[..3].iter().all(|s| s == "test"), "{services:?}");
}
