//! The agent's acceptance test: files with rename rotations and copytruncate, the agent
//! killed with SIGKILL every few seconds, the ingest stopped for a while — and at the end
//! the ingest holds every line exactly once, in order per file.
//!
//! - [`FILES`] writer threads each append ~100-byte lines `f<id> <seq:08> <padding>` to
//!   `app-<id>.log` in one directory, paced so that writing takes `LOGOPS_E2E_WRITE_SECS`
//!   (default 60 s). Every 4–12 s (seeded RNG) a writer rotates its file:
//!   - by rename (2 of 3): `app-<id>.log` → `app-<id>.log.<k>` (numbered, so nothing is ever
//!     deleted), a few more lines written to the old descriptor (as a logger that has not
//!     reopened yet would), then a new `app-<id>.log`. A file the agent never saw can not
//!     be followed once it is renamed out of the glob, so a rename waits until the ingest
//!     holds at least one line of the current file (then its checkpoint is on disk: a batch
//!     is cut and flushed before it is sent).
//!   - by copytruncate (1 of 3): once the ingest holds the file's last line (copytruncate
//!     loses what the agent has not read yet — inherent to it), the file is copied to
//!     `app-<id>.log.ct<k>` and truncated; writing continues through the same `O_APPEND`
//!     descriptor. The copies are left out with `exclude = ["*.ct*"]`. Only files of 4 KiB
//!     or more are copytruncated: below 256 bytes the agent can miss a truncation (see
//!     `copytruncate_of_a_small_file_loses_nothing_written_after_it` in `agent_cli.rs`).
//! - The main thread SIGKILLs the agent every 2–4 s and restarts it, and once (at about a
//!   third of the writing) stops the ingest with SIGTERM for 5 s.
//! - A follower thread pages through the ingest (`X-LogOps-Resume`) to know how far each
//!   file has arrived; the writers' waits use it.
//! - At the end: a bounded wait until every line arrived (or nothing arrived for 60 s), the
//!   agent stopped with SIGTERM (exit 0), `logops-agent buffer check` (exit 0), then a full
//!   query (`limit=1000000` pages through `X-LogOps-Next`) is compared with what was
//!   written: every line exactly once, byte-exact bodies, `source = "file"`, `attrs.path`
//!   the file's name (or its rotated name) and never a copy, and per file (one inode: a
//!   generation between two renames) the sequence numbers in increasing order in the
//!   ingest's order. Order across generations of one writer is reported, not asserted: the
//!   agent reads an old and a new file side by side after a rename.
//!
//! Knobs: `LOGOPS_E2E_LINES` (default 1,000,000 lines in total: the default run took
//! 107–147 s on 2 cores with the debug binaries, ~65 s of it writing and ~45 s the final
//! query and check), `LOGOPS_E2E_WRITE_SECS` (60), `LOGOPS_E2E_SEED` (random; printed),
//! `LOGOPS_E2E_KILL_EVERY_MS` (`2000-4000`; e.g. `300-1000` for a harder hunt).

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use logops_common::batch::NEXT_HEADER;
use logops_e2e::agent::{
    for_each_log, quick_body, AgentHarness, AgentOptions, FilesGroup, ShipTarget,
};
use logops_e2e::{Client, IngestHarness, IngestOptions, TenantSpec};

/// Writer threads (files).
const FILES: usize = 4;
/// Bytes per line, newline included.
const LINE_BYTES: usize = 100;
/// The agent id (`host` of the events).
const AGENT_ID: &str = "e2e-agent";
/// Longest wait of a writer for the agent to catch up.
const CATCH_UP: Duration = Duration::from_secs(240);

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .map(|v| {
            v.replace('_', "")
                .parse()
                .unwrap_or_else(|_| panic!("{name}={v}: not a number"))
        })
        .unwrap_or(default)
}

/// xorshift64*: small, seeded, good enough to pick moments and sizes.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Self {
        Rng(seed.max(1))
    }
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    /// Uniform in `lo..=hi`.
    fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next() % (hi - lo + 1)
    }
    fn millis(&mut self, lo: u64, hi: u64) -> Duration {
        Duration::from_millis(self.range(lo, hi))
    }
}

/// The body of line `seq` of file `id` (without the newline): `f<id> <seq:08> <padding>`.
fn body(id: usize, seq: u64) -> String {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    let mut s = format!("f{id} {seq:08} ");
    let start = (seq % ALPHABET.len() as u64) as usize;
    while s.len() < LINE_BYTES - 1 {
        s.push(ALPHABET[(start + s.len()) % ALPHABET.len()] as char);
    }
    s
}

/// `(id, seq)` of a body; `None` if it is not one of ours.
fn parse_body(b: &str) -> Option<(usize, u64)> {
    let mut parts = b.splitn(3, ' ');
    let id = parts.next()?.strip_prefix('f')?.parse().ok()?;
    let seq = parts.next()?.parse().ok()?;
    Some((id, seq))
}

/// How far each file has arrived at the ingest, kept up to date by the follower.
struct Progress {
    /// Per file: the highest sequence number stored (-1: none yet).
    stored_max: Vec<AtomicI64>,
    /// Rows the follower has read.
    rows: AtomicU64,
    /// Rows that were not lines of ours.
    foreign: AtomicU64,
    /// Failed follower requests (the ingest is down, ...).
    errors: AtomicU64,
}

impl Progress {
    fn new() -> Self {
        Progress {
            stored_max: (0..FILES).map(|_| AtomicI64::new(-1)).collect(),
            rows: AtomicU64::new(0),
            foreign: AtomicU64::new(0),
            errors: AtomicU64::new(0),
        }
    }

    fn has(&self, id: usize, seq: u64) -> bool {
        self.stored_max[id].load(Ordering::Relaxed) >= seq as i64
    }

    fn describe(&self) -> String {
        let max: Vec<i64> = self
            .stored_max
            .iter()
            .map(|m| m.load(Ordering::Relaxed))
            .collect();
        format!(
            "rows read {} ({} not ours), highest seq per file {max:?}, follower errors {}",
            self.rows.load(Ordering::Relaxed),
            self.foreign.load(Ordering::Relaxed),
            self.errors.load(Ordering::Relaxed)
        )
    }
}

/// Follows the ingest's logs of the tenant with `X-LogOps-Resume` until `stop`.
fn follow(client: Client, key: String, progress: Arc<Progress>, stop: Arc<AtomicBool>) {
    let mut cursor: Option<String> = None;
    while !stop.load(Ordering::Relaxed) {
        let mut params = vec![("limit", "50000".to_owned())];
        if let Some(c) = &cursor {
            params.push(("cursor", c.clone()));
        }
        let p: Vec<(&str, &str)> = params.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let r = match client.try_get(Some(&key), "/v1/logs", &p) {
            Ok(r) if r.status == 200 => r,
            _ => {
                progress.errors.fetch_add(1, Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(200));
                continue;
            }
        };
        let mut rows = 0;
        for line in r.body.lines().filter(|l| !l.is_empty()) {
            rows += 1;
            match quick_body(line).as_deref().and_then(parse_body) {
                Some((id, seq)) if id < FILES => {
                    progress.stored_max[id].fetch_max(seq as i64, Ordering::Relaxed);
                }
                _ => {
                    progress.foreign.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
        progress.rows.fetch_add(rows, Ordering::Relaxed);
        let next = r.header(NEXT_HEADER).map(str::to_owned);
        let resume = r.header("x-logops-resume").map(str::to_owned);
        match next {
            Some(n) => cursor = Some(n),
            None => {
                cursor = resume.or(cursor);
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    }
}

/// One file between two renames: the lines `first..end` of a writer.
#[derive(Debug, Clone)]
struct Generation {
    first: u64,
    end: u64,
    /// Where it went when it was rotated (`app-<id>.log.<k>`), if it was.
    rotated_to: Option<String>,
}

#[derive(Debug)]
struct WriterReport {
    id: usize,
    written: u64,
    generations: Vec<Generation>,
    renames: usize,
    copytruncates: usize,
    skipped_copytruncates: usize,
    waited: Duration,
}

struct Writer {
    id: usize,
    dir: PathBuf,
    total: u64,
    rate: f64,
    rng: Rng,
    file: File,
    seq: u64,
    gens: Vec<Generation>,
    bytes_in_file: u64,
    progress: Arc<Progress>,
    stop: Arc<AtomicBool>,
    report: WriterReport,
}

fn open_append(path: &Path) -> File {
    OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o644)
        .open(path)
        .unwrap_or_else(|e| panic!("opening {}: {e}", path.display()))
}

impl Writer {
    fn new(
        id: usize,
        dir: &Path,
        total: u64,
        rate: f64,
        seed: u64,
        progress: Arc<Progress>,
        stop: Arc<AtomicBool>,
    ) -> Writer {
        let path = dir.join(format!("app-{id}.log"));
        Writer {
            id,
            dir: dir.to_owned(),
            total,
            rate,
            rng: Rng::new(seed ^ (id as u64 + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15)),
            file: open_append(&path),
            seq: 0,
            gens: vec![Generation {
                first: 0,
                end: 0,
                rotated_to: None,
            }],
            bytes_in_file: 0,
            progress,
            stop,
            report: WriterReport {
                id,
                written: 0,
                generations: Vec::new(),
                renames: 0,
                copytruncates: 0,
                skipped_copytruncates: 0,
                waited: Duration::ZERO,
            },
        }
    }

    fn path(&self) -> PathBuf {
        self.dir.join(format!("app-{}.log", self.id))
    }

    /// Appends up to `n` lines in one write.
    fn write_lines(&mut self, n: u64) {
        let n = n.min(self.total - self.seq);
        let mut buf = String::with_capacity(n as usize * LINE_BYTES);
        for s in self.seq..self.seq + n {
            buf.push_str(&body(self.id, s));
            buf.push('\n');
        }
        self.file
            .write_all(buf.as_bytes())
            .expect("appending lines");
        self.seq += n;
        self.bytes_in_file += buf.len() as u64;
        self.gens.last_mut().expect("a generation").end = self.seq;
    }

    /// Waits until the ingest holds line `seq` of this file.
    fn wait_stored(&mut self, seq: u64, why: &str) {
        let started = Instant::now();
        while !self.progress.has(self.id, seq) {
            if self.stop.load(Ordering::Relaxed) {
                return;
            }
            assert!(
                started.elapsed() < CATCH_UP,
                "writer {}: gave up after {CATCH_UP:?} waiting for the ingest to hold line {seq} ({why}); {}",
                self.id,
                self.progress.describe()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        self.report.waited += started.elapsed();
    }

    fn rename_rotation(&mut self) {
        // The agent must have seen the file: one of its lines is stored.
        let first = self.gens.last().expect("a generation").first;
        if self.seq == first {
            self.write_lines(1);
        }
        self.wait_stored(
            first,
            "before a rename: the agent has seen the current file",
        );
        let k = self.gens.len();
        let to = self.dir.join(format!("app-{}.log.{k}", self.id));
        std::fs::rename(self.path(), &to).expect("renaming the log file");
        self.gens.last_mut().expect("a generation").rotated_to =
            Some(to.to_string_lossy().into_owned());
        // A logger writes a little more to the old descriptor before it reopens.
        for _ in 0..self.rng.range(0, 3) {
            let n = self.rng.range(1, 20);
            self.write_lines(n);
        }
        self.file = open_append(&self.path());
        self.bytes_in_file = 0;
        self.gens.push(Generation {
            first: self.seq,
            end: self.seq,
            rotated_to: None,
        });
        self.report.renames += 1;
    }

    fn copytruncate(&mut self) {
        // Below 4 KiB the agent may not have the file's fingerprint (256 bytes) yet, and a
        // truncated file that regrows past the read position before the agent looks again
        // can not be told from a grown one; keep clear of that corner here.
        if self.bytes_in_file < 4096 || self.seq == 0 {
            self.report.skipped_copytruncates += 1;
            return;
        }
        self.wait_stored(
            self.seq - 1,
            "before copytruncate: the agent has read the whole file",
        );
        let k = self.report.copytruncates + 1;
        let copy = self.dir.join(format!("app-{}.log.ct{k}", self.id));
        std::fs::copy(self.path(), &copy).expect("copying the log file");
        self.file.set_len(0).expect("truncating the log file");
        self.bytes_in_file = 0;
        self.report.copytruncates += 1;
    }

    fn run(mut self) -> WriterReport {
        let started = Instant::now();
        let mut next_rotation = started + self.rng.millis(4_000, 12_000);
        while self.seq < self.total && !self.stop.load(Ordering::Relaxed) {
            let burst = self.rng.range(1, 400);
            self.write_lines(burst);
            // Pace: `seq` lines should take `seq / rate` seconds (waits for the agent count).
            let due = Duration::from_secs_f64(self.seq as f64 / self.rate);
            let elapsed = started.elapsed().saturating_sub(self.report.waited);
            if due > elapsed {
                std::thread::sleep((due - elapsed).min(Duration::from_millis(200)));
            }
            if Instant::now() >= next_rotation && self.seq < self.total {
                if self.rng.range(0, 2) < 2 {
                    self.rename_rotation();
                } else {
                    self.copytruncate();
                }
                next_rotation = Instant::now() + self.rng.millis(4_000, 12_000);
            }
        }
        self.file.sync_all().ok();
        self.report.written = self.seq;
        self.report.generations = self.gens;
        self.report
    }
}

/// What the final query found.
#[derive(Default)]
struct Verdict {
    rows: u64,
    counts: Vec<Vec<u8>>,
    foreign: Vec<String>,
    bad_rows: Vec<String>,
    order_in_file: Vec<String>,
    order_in_file_count: u64,
    order_across_files: u64,
    order_across_examples: Vec<String>,
}

/// The fields of a stored row the check looks at.
#[derive(Debug, PartialEq)]
struct Row {
    kind: String,
    host: String,
    source: String,
    path: String,
    offset: Option<u64>,
    body: String,
}

/// The text of `"key":"..."` in `line` (first occurrence; `None` if absent or escaped).
fn quick_str<'a>(line: &'a str, key: &str) -> Option<&'a str> {
    let pat = format!("\"{key}\":\"");
    let start = line.find(&pat)? + pat.len();
    let rest = &line[start..];
    let end = rest.find('"')?;
    let s = &rest[..end];
    (!s.contains('\\')).then_some(s)
}

impl Row {
    fn quick(line: &str) -> Row {
        let s = |k: &str| quick_str(line, k).unwrap_or_default().to_owned();
        let offset = line.find("\"offset\":").and_then(|i| {
            let digits: String = line[i + 9..]
                .chars()
                .take_while(char::is_ascii_digit)
                .collect();
            digits.parse().ok()
        });
        Row {
            kind: s("kind"),
            host: s("host"),
            source: s("source"),
            path: s("path"),
            offset,
            body: quick_body(line).unwrap_or_default(),
        }
    }

    fn full(line: &str) -> Option<Row> {
        let ev: serde_json::Value = serde_json::from_str(line).ok()?;
        let s = |v: &serde_json::Value| v.as_str().unwrap_or_default().to_owned();
        Some(Row {
            kind: s(&ev["kind"]),
            host: s(&ev["host"]),
            source: s(&ev["source"]),
            path: s(&ev["attrs"]["path"]),
            offset: ev["attrs"]["offset"].as_u64(),
            body: s(&ev["body"]),
        })
    }
}

fn generation_of(gens: &[Generation], seq: u64) -> usize {
    gens.partition_point(|g| g.end <= seq)
}

fn verify(ingest: &IngestHarness, key: &str, reports: &[WriterReport]) -> Verdict {
    let mut v = Verdict {
        counts: reports
            .iter()
            .map(|r| vec![0u8; r.written as usize])
            .collect(),
        ..Verdict::default()
    };
    // Per file and generation, and per file: the last sequence number seen.
    let mut last_in_gen: Vec<Vec<Option<u64>>> = reports
        .iter()
        .map(|r| vec![None; r.generations.len()])
        .collect();
    let mut last_in_file: Vec<Option<u64>> = vec![None; reports.len()];
    let dir_prefix = |id: usize| format!("app-{id}.log");
    let mut parsed = 0u64;
    let rows = for_each_log(ingest.client(), key, &[], 1_000_000, |line| {
        // The fields read without a JSON parser (1,000,000 full parses take ~20 s in a
        // debug build); every 1,000th row is also parsed in full and compared.
        let row = Row::quick(line);
        if parsed.is_multiple_of(1000) && Some(&row) != Row::full(line).as_ref() {
            v.bad_rows.push(format!(
                "the quick and the full parse disagree ({row:?} / {:?}): {line}",
                Row::full(line)
            ));
        }
        parsed += 1;
        let body = row.body.as_str();
        let Some((id, seq)) = parse_body(body).filter(|(id, _)| *id < reports.len()) else {
            if v.foreign.len() < 10 {
                v.foreign.push(line.to_owned());
            }
            return;
        };
        let r = &reports[id];
        if seq >= r.written || body != self::body(id, seq) {
            v.bad_rows
                .push(format!("a line that was never written: {line}"));
            return;
        }
        let c = &mut v.counts[id][seq as usize];
        *c = c.saturating_add(1);
        let g = generation_of(&r.generations, seq);
        // Metadata: host, source, path (the file's name or where it was renamed to), offset.
        let path = row.path.as_str();
        let name = Path::new(path)
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let path_ok =
            name == dir_prefix(id) || r.generations[g].rotated_to.as_deref() == Some(path);
        if row.host != AGENT_ID
            || row.source != "file"
            || row.kind != "log"
            || !path_ok
            || row.offset.is_none()
        {
            v.bad_rows
                .push(format!("wrong metadata (generation {g}): {line}"));
        }
        // Order within the generation (one inode), and across generations of the file.
        if let Some(prev) = last_in_gen[id][g] {
            if seq <= prev {
                v.order_in_file_count += 1;
                if v.order_in_file.len() < 10 {
                    v.order_in_file
                        .push(format!("file {id} generation {g}: seq {seq} after {prev}"));
                }
            }
        }
        last_in_gen[id][g] = Some(seq);
        if let Some(prev) = last_in_file[id] {
            if seq < prev && generation_of(&r.generations, prev) != g {
                v.order_across_files += 1;
                if v.order_across_examples.len() < 5 {
                    v.order_across_examples.push(format!(
                        "file {id}: seq {seq} (generation {g}) after {prev} (generation {})",
                        generation_of(&r.generations, prev)
                    ));
                }
            }
        }
        last_in_file[id] = Some(seq);
    })
    .unwrap_or_else(|e| panic!("the final query failed: {e:#}"));
    v.rows = rows;
    v
}

fn examples(it: impl Iterator<Item = String>, n: usize) -> String {
    let v: Vec<String> = it.take(n).collect();
    v.join(", ")
}

#[test]
fn a_million_lines_survive_rotations_kill_9_and_an_ingest_outage_exactly_once() {
    let total = env_u64("LOGOPS_E2E_LINES", 1_000_000);
    let write_secs = env_u64("LOGOPS_E2E_WRITE_SECS", 60).max(1);
    let (kill_lo, kill_hi) = match std::env::var("LOGOPS_E2E_KILL_EVERY_MS") {
        Ok(v) => {
            let (lo, hi) = v.split_once('-').unwrap_or((&v, &v));
            let ms = |x: &str| -> u64 {
                x.trim()
                    .parse()
                    .unwrap_or_else(|_| panic!("LOGOPS_E2E_KILL_EVERY_MS={v}: expected LO-HI"))
            };
            (ms(lo), ms(hi).max(ms(lo)))
        }
        Err(_) => (2_000, 4_000),
    };
    let seed = std::env::var("LOGOPS_E2E_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| u64::from_str_radix(&logops_e2e::random_hex(8), 16).unwrap());
    eprintln!(
        "agent_e2e: {total} lines in {FILES} files over ~{write_secs}s, kill -9 every {kill_lo}-{kill_hi} ms; LOGOPS_E2E_SEED={seed}"
    );
    let t_start = Instant::now();
    let mut rng = Rng::new(seed);

    let mut ingest = IngestHarness::start(
        IngestOptions::new()
            .tenant(
                TenantSpec::new("acme")
                    .events_per_second(10_000_000)
                    .bytes_per_second("4GiB"),
            )
            // Small segments: closing and compressing also happen during the test.
            .set("store", "segment_max_bytes", "8MiB"),
    );
    let key = ingest.tenant("acme").key.clone();
    let logs = tempfile::Builder::new()
        .prefix("logops-e2e-files-")
        .tempdir()
        .expect("a temporary directory");

    let progress = Arc::new(Progress::new());
    let stop = Arc::new(AtomicBool::new(false));
    let per_file = total / FILES as u64;
    let rate = per_file as f64 / write_secs as f64;
    let mut writers: Vec<Writer> = (0..FILES)
        .map(|id| {
            let n = if id == FILES - 1 {
                total - per_file * (FILES as u64 - 1)
            } else {
                per_file
            };
            Writer::new(
                id,
                logs.path(),
                n,
                rate,
                seed,
                progress.clone(),
                stop.clone(),
            )
        })
        .collect();
    // Lines that are there before the agent first starts: start_at = "beginning".
    for w in &mut writers {
        w.write_lines(500);
    }

    let mut agent = AgentHarness::start(
        ShipTarget::of(&ingest, "acme"),
        AgentOptions::new(AGENT_ID).files(
            FilesGroup::new(&[logs.path().join("*.log")])
                .exclude("*.ct*")
                .set("rotate_wait", "1s"),
        ),
    );

    let follower = {
        let client = Client::new(&ingest.url(), None, Duration::from_secs(60)).expect("client");
        let (key, progress, stop) = (key.clone(), progress.clone(), stop.clone());
        std::thread::spawn(move || follow(client, key, progress, stop))
    };
    let handles: Vec<JoinHandle<WriterReport>> = writers
        .into_iter()
        .map(|w| {
            std::thread::Builder::new()
                .name(format!("writer-{}", w.id))
                .spawn(move || w.run())
                .expect("spawning a writer")
        })
        .collect();

    // The killer: SIGKILL + restart every 2–4 s (by default); one ingest outage of 5 s.
    let outage_at = t_start + Duration::from_secs_f64(write_secs as f64 / 3.0);
    let mut outage: Option<Instant> = None;
    let mut outage_done = false;
    let mut kills = 0u32;
    let writing_started = Instant::now();
    while !handles.iter().all(JoinHandle::is_finished) {
        let next_kill = Instant::now() + rng.millis(kill_lo, kill_hi);
        while Instant::now() < next_kill && !handles.iter().all(JoinHandle::is_finished) {
            if !outage_done && outage.is_none() && Instant::now() >= outage_at {
                let status = ingest.sigterm_and_wait();
                assert!(
                    status.success(),
                    "logops-ingest exited with {status} after SIGTERM"
                );
                eprintln!(
                    "agent_e2e: ingest stopped at {:.1}s ({})",
                    t_start.elapsed().as_secs_f64(),
                    progress.describe()
                );
                outage = Some(Instant::now());
            }
            if let Some(since) = outage {
                if since.elapsed() >= Duration::from_secs(5) {
                    ingest.start_again();
                    eprintln!(
                        "agent_e2e: ingest started again at {:.1}s",
                        t_start.elapsed().as_secs_f64()
                    );
                    outage = None;
                    outage_done = true;
                }
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        if handles.iter().all(JoinHandle::is_finished) {
            break;
        }
        agent.kill9();
        kills += 1;
        agent.start_again();
    }
    if outage.is_some() {
        ingest.start_again();
    }
    let writing = writing_started.elapsed();
    let reports: Vec<WriterReport> = handles
        .into_iter()
        .map(|h| {
            h.join()
                .unwrap_or_else(|_| panic!("a writer failed (see above)"))
        })
        .collect();
    let written: u64 = reports.iter().map(|r| r.written).sum();
    assert_eq!(written, total, "the writers wrote every line");
    eprintln!(
        "agent_e2e: writing took {:.1}s, {kills} kill -9, ingest outage done: {outage_done}; {}",
        writing.as_secs_f64(),
        progress.describe()
    );
    for r in &reports {
        eprintln!(
            "agent_e2e: file {}: {} lines, {} generations, {} renames, {} copytruncates ({} skipped: file < 4 KiB), waited {:.1}s for the agent",
            r.id,
            r.written,
            r.generations.len(),
            r.renames,
            r.copytruncates,
            r.skipped_copytruncates,
            r.waited.as_secs_f64()
        );
    }

    // Catch-up: every file's last line stored, or no progress for 60 s (then the check
    // below says what is missing). Bounded overall.
    let catch_up = Instant::now();
    let all_in = || {
        reports.iter().all(|r| progress.has(r.id, r.written - 1))
            && progress.rows.load(Ordering::Relaxed) >= written
    };
    let mut last_rows = progress.rows.load(Ordering::Relaxed);
    let mut last_change = Instant::now();
    while !all_in() {
        let rows = progress.rows.load(Ordering::Relaxed);
        if rows != last_rows {
            last_rows = rows;
            last_change = Instant::now();
        }
        if last_change.elapsed() > Duration::from_secs(60)
            || catch_up.elapsed() > Duration::from_secs(300)
        {
            eprintln!(
                "agent_e2e: stopped waiting for the agent to catch up after {:.1}s: {}",
                catch_up.elapsed().as_secs_f64(),
                progress.describe()
            );
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    eprintln!(
        "agent_e2e: caught up {:.1}s after the writers finished; {}",
        catch_up.elapsed().as_secs_f64(),
        progress.describe()
    );
    stop.store(true, Ordering::Relaxed);
    follower.join().expect("the follower thread");

    // The agent stops cleanly and leaves a consistent buffer.
    let status = agent.sigterm_and_wait();
    assert!(
        status.success(),
        "logops-agent exited with {status} after SIGTERM"
    );
    let check = agent.run_cli(&["buffer", "check"]);
    assert!(
        check.status.success(),
        "`logops-agent buffer check` failed ({}):\n{}{}",
        check.status,
        String::from_utf8_lossy(&check.stdout),
        String::from_utf8_lossy(&check.stderr)
    );

    let t_verify = Instant::now();
    let v = verify(&ingest, &key, &reports);
    eprintln!(
        "agent_e2e: final query of {} rows checked in {:.1}s",
        v.rows,
        t_verify.elapsed().as_secs_f64()
    );
    let missing: Vec<(usize, u64)> = v
        .counts
        .iter()
        .enumerate()
        .flat_map(|(id, c)| {
            c.iter()
                .enumerate()
                .filter(|(_, n)| **n == 0)
                .map(move |(s, _)| (id, s as u64))
        })
        .collect();
    let doubled: Vec<(usize, u64, u8)> = v
        .counts
        .iter()
        .enumerate()
        .flat_map(|(id, c)| {
            c.iter()
                .enumerate()
                .filter(|(_, n)| **n > 1)
                .map(move |(s, n)| (id, s as u64, *n))
        })
        .collect();
    let describe_line = |id: usize, seq: u64| {
        let g = generation_of(&reports[id].generations, seq);
        format!(
            "f{id} seq {seq} (generation {g}{})",
            reports[id].generations[g]
                .rotated_to
                .as_deref()
                .map(|p| format!(", renamed to {p}"))
                .unwrap_or_default()
        )
    };
    if v.order_across_files > 0 {
        eprintln!(
            "agent_e2e: note: {} lines arrived before lines of an older generation of the same writer (an old and a new file are read side by side), e.g. {}",
            v.order_across_files,
            v.order_across_examples.join("; ")
        );
    }
    // What the run went through, from the agent's log and the ingest's metrics.
    let log = agent.log();
    let seen = |what: &str| log.matches(what).count();
    let dup_batches = ingest
        .client()
        .try_get(None, "/metrics", &[])
        .ok()
        .and_then(|r| logops_e2e::parse_prometheus(&r.body).ok())
        .and_then(|m| logops_e2e::metric_sum(&m, "logops_ingest_duplicate_batches_total", &[]));
    eprintln!(
        "agent_e2e: the agent logged {} renames seen while running, {} renamed files finished after a restart, {} truncations detected, {} rotated files closed, {} starts with batches already cut; the ingest answered {} resent batches as duplicates (since its restart)",
        seen("files: file rotated or removed"),
        seen("finishing a file renamed while the agent was stopped"),
        seen("file truncated or its first bytes changed"),
        seen("closed a rotated file read to its end"),
        seen("sending batches already in the buffer first"),
        dup_batches.map_or("?".into(), |n| n.to_string())
    );
    let mut failures = Vec::new();
    if !missing.is_empty() {
        failures.push(format!(
            "{} lines missing, e.g. {}",
            missing.len(),
            examples(missing.iter().map(|(i, s)| describe_line(*i, *s)), 10)
        ));
    }
    if !doubled.is_empty() {
        failures.push(format!(
            "{} lines stored more than once, e.g. {}",
            doubled.len(),
            examples(
                doubled
                    .iter()
                    .map(|(i, s, n)| format!("{} ×{n}", describe_line(*i, *s))),
                10
            )
        ));
    }
    if !v.bad_rows.is_empty() {
        failures.push(format!(
            "{} bad rows, e.g. {}",
            v.bad_rows.len(),
            examples(v.bad_rows.iter().cloned(), 5)
        ));
    }
    if !v.foreign.is_empty() {
        failures.push(format!(
            "rows that are not ours, e.g. {}",
            v.foreign.join(" | ")
        ));
    }
    if v.order_in_file_count > 0 {
        failures.push(format!(
            "{} lines out of order within a file, e.g. {}",
            v.order_in_file_count,
            v.order_in_file.join("; ")
        ));
    }
    if v.rows != written {
        failures.push(format!(
            "{} rows stored for {written} lines written",
            v.rows
        ));
    }
    assert!(
        failures.is_empty(),
        "seed {seed}: {}\n(agent restarted {} times)",
        failures.join("\n"),
        agent.starts()
    );
    eprintln!(
        "agent_e2e: OK: {written} lines exactly once and in order per file; {kills} kill -9, {} agent starts, total {:.1}s (seed {seed})",
        agent.starts(),
        t_start.elapsed().as_secs_f64()
    );
}
