//! The agent's command line and operations against the real binaries: `check-config`,
//! shipping over mTLS, SIGHUP reloads, SIGTERM with the ingest down, `buffer status` and
//! `buffer dead-letters` / `replay`.

use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Duration;

use logops_e2e::agent::{
    agent_binary, append_lines, bodies_of, wait_logs, AgentHarness, AgentOptions, FilesGroup,
    ShipTarget, StoredLog,
};
use logops_e2e::pki::TestPki;
use logops_e2e::{run_binary, IngestHarness, IngestOptions, IngestTls, TenantSpec};

/// Bounded waits for data to arrive.
const ARRIVE: Duration = Duration::from_secs(60);

fn text(o: &Output) -> String {
    format!(
        "exit {}\n--- stdout\n{}--- stderr\n{}",
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn ingest() -> IngestHarness {
    IngestHarness::start(IngestOptions::new().tenant(TenantSpec::new("acme")))
}

/// `n` lines `<tag> <i:06>` for `i` in `from..from + n`.
fn lines(tag: &str, from: usize, n: usize) -> Vec<String> {
    (from..from + n).map(|i| format!("{tag} {i:06}")).collect()
}

/// Asserts that `host` delivered exactly `expected`, in this order.
fn assert_exactly(logs: &[StoredLog], host: &str, expected: &[String]) {
    let got = bodies_of(logs, host);
    if got != expected {
        let missing: Vec<&String> = expected.iter().filter(|e| !got.contains(e)).collect();
        let mut seen = std::collections::HashSet::new();
        let doubled: Vec<&String> = got.iter().filter(|g| !seen.insert(*g)).collect();
        panic!(
            "{host}: {} stored for {} written; missing {:?}; doubled {:?}; first stored {:?}",
            got.len(),
            expected.len(),
            &missing[..missing.len().min(10)],
            &doubled[..doubled.len().min(10)],
            &got[..got.len().min(30)]
        );
    }
}

/// Asserts that `host` delivered exactly `expected`, each once, in any order.
fn assert_exactly_once_any_order(logs: &[StoredLog], host: &str, expected: &[String]) {
    let mut got = bodies_of(logs, host);
    let mut want = expected.to_vec();
    got.sort();
    want.sort();
    if got != want {
        assert_exactly(logs, host, expected);
    }
}

/// A temporary directory for the files the agent tails.
fn logs_dir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("logops-e2e-files-")
        .tempdir()
        .expect("a temporary directory")
}

fn check_config(path: &Path) -> Output {
    let bin = agent_binary().unwrap_or_else(|e| panic!("{e:#}"));
    run_binary(&bin, &["check-config", "--config", &path.to_string_lossy()])
}

/// A broken configuration, and what `check-config` must say about it: each expected
/// message is `<file>:<line>:<column>: <key path>: <text>` (the file is prefixed here).
struct Broken {
    name: &'static str,
    text: &'static str,
    expect: &'static [&'static str],
    must_not_contain: &'static [&'static str],
}

const BROKEN: &[Broken] = &[
    Broken {
        name: "unknown-key",
        text: r#"[agent]
idd = "web-01"
data_dir = "/var/lib/logops"

[ship]
url = "http://127.0.0.1:8080/v1/batch"
api_key_file = "/etc/logops/api_key"
"#,
        expect: &[":2:1: agent.idd: unknown key `idd`; did you mean `id`?"],
        must_not_contain: &[],
    },
    Broken {
        name: "wrong-type",
        text: r#"[ship]
url = "http://127.0.0.1:8080/v1/batch"
api_key_file = "/etc/logops/api_key"
batch_max_events = "many"
"#,
        expect: &[
            ":4:20: ship.batch_max_events: invalid type: string \"many\", expected usize",
        ],
        must_not_contain: &[],
    },
    Broken {
        name: "bad-enum",
        text: r#"[ship]
url = "http://127.0.0.1:8080/v1/batch"
api_key_file = "/etc/logops/api_key"
compression = "lz4"

[buffer]
when_full = "explode"
"#,
        expect: &[
            ":4:15: ship.compression: unknown variant `lz4`, expected one of `zstd`, `gzip`, `none`",
            ":7:13: buffer.when_full: unknown variant `explode`, expected `block` or `drop_oldest`",
        ],
        must_not_contain: &[],
    },
    Broken {
        name: "relative-path",
        text: r#"[ship]
url = "http://127.0.0.1:8080/v1/batch"
api_key_file = "/etc/logops/api_key"

[[files]]
paths = ["/var/log/*.log", "logs/*.log"]
"#,
        expect: &[":6:28: files[0].paths[1]: `logs/*.log` must be an absolute path"],
        must_not_contain: &[],
    },
    Broken {
        name: "inline-api-key",
        text: r#"[ship]
url = "http://127.0.0.1:8080/v1/batch"
api_key = "lo_inline_secret_0123456789"
"#,
        expect: &[
            ":3:11: ship.api_key: API keys never live in the configuration: use api_key_file or api_key_env",
        ],
        must_not_contain: &["lo_inline_secret_0123456789"],
    },
    Broken {
        name: "missing-ship",
        text: "# an agent without a [ship] section\n",
        expect: &[":1:1: ship: missing field `ship`"],
        must_not_contain: &[],
    },
    Broken {
        name: "missing-ship-after-a-table",
        text: "[agent]\nid = \"web-01\"\n",
        expect: &[":1:1: ship: missing field `ship`"],
        must_not_contain: &["agent.ship"],
    },
    Broken {
        name: "syntax-error",
        text: r#"[ship]
url = "http://127.0.0.1:8080/v1/batch
api_key_file = "/etc/logops/api_key"
"#,
        // A syntax error has a position but no key path.
        expect: &[":2:38: invalid basic string"],
        must_not_contain: &[],
    },
    Broken {
        name: "several-type-errors",
        text: r#"[agent]
idd = "x"

[ship]
url = "http://127.0.0.1:8080/v1/batch"
api_key_file = "/etc/logops/api_key"
batch_max_events = "many"
compression = "lz4"

[buffer]
when_full = "explode"

[[files]]
paths = ["/var/log/*.log"]
start_at = "middle"
"#,
        expect: &[
            ":2:1: agent.idd: unknown key `idd`; did you mean `id`?",
            ":7:20: ship.batch_max_events: invalid type: string \"many\", expected usize",
            ":8:15: ship.compression: unknown variant `lz4`",
            ":11:13: buffer.when_full: unknown variant `explode`",
            ":15:12: files[0].start_at: unknown variant `middle`, expected `end` or `beginning`",
            "5 error(s) in",
        ],
        must_not_contain: &[],
    },
    Broken {
        name: "several-checks",
        text: r#"[ship]
url = "ftp://ingest.example"
api_key = "lo_inline_secret_0123456789"
batch_max_events = 0

[[files]]
paths = ["relative/*.log"]
multiline = { start_pattern = "([" }
"#,
        expect: &[
            ":2:7: ship.url: `ftp://ingest.example` is not an http:// or https:// URL",
            ":3:11: ship.api_key: API keys never live in the configuration",
            ":4:20: ship.batch_max_events: must be at least 1",
            ":7:10: files[0].paths[0]: `relative/*.log` must be an absolute path",
            "files[0].multiline.start_pattern: not a regular expression",
            "5 error(s) in",
        ],
        must_not_contain: &["lo_inline_secret_0123456789"],
    },
];

#[test]
fn check_config_reports_every_error_with_file_line_column_and_key() {
    let dir = tempfile::tempdir().unwrap();
    let mut failures = Vec::new();
    for b in BROKEN {
        let path = dir.path().join(format!("{}.toml", b.name));
        std::fs::write(&path, b.text).unwrap();
        let out = check_config(&path);
        let all = text(&out);
        if out.status.code() != Some(1) {
            failures.push(format!("{}: expected exit 1\n{all}", b.name));
            continue;
        }
        let file = path.to_string_lossy();
        for e in b.expect {
            let want = if e.starts_with(':') {
                format!("{file}{e}")
            } else {
                (*e).to_owned()
            };
            if !all.contains(&want) {
                failures.push(format!("{}: missing {want:?}\n{all}", b.name));
            }
        }
        for s in b.must_not_contain {
            if all.contains(s) {
                failures.push(format!("{}: the output contains {s:?}\n{all}", b.name));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));

    // The shipped example, as it is.
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("../config.example.toml");
    let out = check_config(&example);
    assert!(out.status.success(), "config.example.toml: {}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains(": ok"),
        "{}",
        text(&out)
    );
}

/// A key missing in the second `[[files]]` group is named `files.paths`, not
/// `files[1].paths` (every other error in a group carries its index).
#[test]
fn check_config_names_a_missing_key_of_a_files_group_with_its_index() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("no-paths.toml");
    std::fs::write(
        &path,
        r#"[ship]
url = "http://127.0.0.1:8080/v1/batch"
api_key_file = "/etc/logops/api_key"

[[files]]
paths = ["/var/log/*.log"]

[[files]]
exclude = ["*.gz"]
"#,
    )
    .unwrap();
    let out = check_config(&path);
    let all = text(&out);
    assert_eq!(out.status.code(), Some(1), "{all}");
    assert!(
        all.contains(": files[1].paths: missing field `paths`"),
        "expected the key path `files[1].paths`:\n{all}"
    );
}

/// README: `check-config` reports "every error". A type error and a relative path in one
/// file: only the type error is reported; the path error shows up once it is fixed
/// (report.rs runs the semantic checks only when deserialization had no error).
#[test]
fn check_config_reports_type_and_semantic_errors_together() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("mixed.toml");
    std::fs::write(
        &path,
        r#"[ship]
url = "http://127.0.0.1:8080/v1/batch"
api_key_file = "/etc/logops/api_key"
compression = "lz4"

[[files]]
paths = ["relative/*.log"]
"#,
    )
    .unwrap();
    let out = check_config(&path);
    let all = text(&out);
    assert_eq!(out.status.code(), Some(1), "{all}");
    assert!(
        all.contains(":4:15: ship.compression: unknown variant `lz4`"),
        "{all}"
    );
    assert!(
        all.contains(":7:10: files[0].paths[0]: `relative/*.log` must be an absolute path"),
        "the relative path is not reported with the type error:\n{all}"
    );
}

/// An agent tailing `file` (a fresh `[[files]]` group with `start_at = "beginning"`).
fn tail(id: &str, file: &Path) -> AgentOptions {
    AgentOptions::new(id).files(FilesGroup::new(&[file]))
}

#[test]
fn mtls_delivers_and_a_missing_client_certificate_is_retried_not_dead_lettered() {
    let pki = TestPki::generate().unwrap();
    let ingest = IngestHarness::start(
        IngestOptions::new()
            .tenant(TenantSpec::new("acme"))
            .tls(IngestTls::from_pki(&pki, true)),
    );
    assert!(ingest.url().starts_with("https://"));
    let key = ingest.tenant("acme").key.clone();
    let dir = logs_dir();

    // With the CA and a client certificate: delivered.
    let good_file = dir.path().join("good.log");
    let good_lines = lines("mtls-good", 0, 50);
    append_lines(&good_file, &good_lines);
    let target = ShipTarget::of(&ingest, "acme").ca(&pki.ca_pem);
    let good = AgentHarness::start(
        target.clone().client_cert(&pki.client),
        tail("mtls-good", &good_file),
    );
    let logs = wait_logs(
        ingest.client(),
        &key,
        "the lines sent over mTLS",
        ARRIVE,
        |l| bodies_of(l, "mtls-good").len() >= good_lines.len(),
    );
    assert_exactly(&logs, "mtls-good", &good_lines);
    drop(good);

    // Without a client certificate: the handshake fails, the agent retries (a certificate
    // the operator can fix), nothing arrives and nothing is dead-lettered.
    let bad_file = dir.path().join("bad.log");
    let bad_lines = lines("mtls-nocert", 0, 20);
    append_lines(&bad_file, &bad_lines);
    // (A reload stops the old shipper at once; shutdown_timeout only bounds SIGTERM.)
    let mut bad = AgentHarness::start(
        target,
        tail("mtls-nocert", &bad_file).ship("shutdown_timeout", "2s"),
    );
    bad.wait_for_log("send failed, will retry", ARRIVE);
    // Several attempts: it keeps retrying.
    logops_e2e::wait_for(
        "three failed sends of the agent without a client certificate",
        ARRIVE,
        Duration::from_millis(100),
        |last| {
            let n = bad
                .log_since_start()
                .matches("send failed, will retry")
                .count();
            *last = format!("{n} failed sends logged");
            (n >= 3).then_some(())
        },
    );
    let log = bad.log_since_start();
    let failure = log
        .lines()
        .find(|l| l.contains("send failed, will retry"))
        .unwrap_or_default()
        .to_owned();
    // Classified as a network failure (retried with backoff), not as a refusal.
    assert!(
        failure.contains("send failed, will retry: network:"),
        "{failure}"
    );
    assert!(
        !log.contains("dead letters"),
        "a TLS failure was dead-lettered:\n{log}"
    );
    assert_eq!(
        bad.metric("logops_agent_batches_dead_lettered_total", &[]),
        Some(0.0)
    );
    let dead = bad.run_cli(&["buffer", "dead-letters"]);
    assert!(dead.status.success(), "{}", text(&dead));
    assert!(
        String::from_utf8_lossy(&dead.stdout).contains("no dead letters"),
        "{}",
        text(&dead)
    );
    let logs = wait_logs(ingest.client(), &key, "a query", ARRIVE, |_| true);
    assert!(
        bodies_of(&logs, "mtls-nocert").is_empty(),
        "lines arrived without a client certificate"
    );

    // Given the certificate (SIGHUP), the same buffered lines are delivered, once.
    bad.retarget(
        ShipTarget::of(&ingest, "acme")
            .ca(&pki.ca_pem)
            .client_cert(&pki.client),
    );
    bad.sighup();
    bad.wait_for_log("configuration reloaded", ARRIVE);
    let logs = wait_logs(
        ingest.client(),
        &key,
        "the lines held back without a client certificate, after SIGHUP gave it one",
        ARRIVE,
        |l| bodies_of(l, "mtls-nocert").len() >= bad_lines.len(),
    );
    assert_exactly(&logs, "mtls-nocert", &bad_lines);
    assert_exactly(&logs, "mtls-good", &good_lines);
}

/// Lines of `tag` appended to `file` by a thread every few milliseconds until stopped;
/// returns what it wrote.
struct Appender {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    handle: std::thread::JoinHandle<Vec<String>>,
}

impl Appender {
    fn start(file: PathBuf, tag: &'static str, from: usize) -> Appender {
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let s = stop.clone();
        let handle = std::thread::spawn(move || {
            let mut written = Vec::new();
            let mut i = from;
            while !s.load(std::sync::atomic::Ordering::Relaxed) {
                let batch = lines(tag, i, 5);
                append_lines(&file, &batch);
                i += batch.len();
                written.extend(batch);
                std::thread::sleep(Duration::from_millis(10));
            }
            written
        });
        Appender { stop, handle }
    }

    fn stop(self) -> Vec<String> {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        self.handle.join().expect("the appender thread")
    }
}

/// SIGHUP while the ingest is down and `shutdown_timeout` is long: the old shipper used to
/// drain (retrying) for up to `shutdown_timeout` while the reload waited at most 35 s and
/// then started a second shipper beside it. The old shipper now stops at once, and the new
/// one starts after it: the reload is prompt, and the batches held back arrive once, in
/// order.
#[test]
fn sighup_while_the_ingest_is_down_reloads_at_once_and_delivers_once_in_order() {
    let mut ingest = ingest();
    let key = ingest.tenant("acme").key.clone();
    let dir = logs_dir();
    let file = dir.path().join("app.log");
    let mut want = lines("hup-down", 0, 30);
    append_lines(&file, &want);
    let mut agent = AgentHarness::start(
        ShipTarget::of(&ingest, "acme"),
        tail("hup-down", &file)
            .ship("shutdown_timeout", "60s")
            .ship("backoff_max", "1s"),
    );
    wait_logs(ingest.client(), &key, "the first 30 lines", ARRIVE, |l| {
        bodies_of(l, "hup-down").len() >= 30
    });
    let status = ingest.sigterm_and_wait();
    assert!(status.success(), "ingest exit: {status}");
    let more = lines("hup-down", 30, 40);
    append_lines(&file, &more);
    want.extend(more);
    agent.wait_for_log("send failed, will retry", ARRIVE);

    // Well within shutdown_timeout (60 s) and the old 35 s wait.
    agent.reconfigure(|o| o.ship_raw("batch_max_events", "7"));
    agent.sighup();
    agent.wait_for_log("configuration reloaded", Duration::from_secs(15));
    let more = lines("hup-down", 70, 20);
    append_lines(&file, &more);
    want.extend(more);

    ingest.start_again();
    let logs = wait_logs(ingest.client(), &key, "all 90 lines", ARRIVE, |l| {
        bodies_of(l, "hup-down").len() >= 90
    });
    std::thread::sleep(Duration::from_secs(1));
    let logs = {
        let again = wait_logs(ingest.client(), &key, "a query", ARRIVE, |_| true);
        if again.len() >= logs.len() {
            again
        } else {
            logs
        }
    };
    assert_exactly(&logs, "hup-down", &want);
    drop(agent);
}

/// What an operator sees when the ingest refuses the agent's missing client certificate.
#[test]
fn a_refused_client_certificate_is_named_in_the_agent_log() {
    let pki = TestPki::generate().unwrap();
    let ingest = IngestHarness::start(
        IngestOptions::new()
            .tenant(TenantSpec::new("acme"))
            .tls(IngestTls::from_pki(&pki, true)),
    );
    let dir = logs_dir();
    let file = dir.path().join("a.log");
    append_lines(&file, &lines("nocert", 0, 5));
    let agent = AgentHarness::start(
        ShipTarget::of(&ingest, "acme").ca(&pki.ca_pem),
        tail("nocert", &file),
    );
    agent.wait_for_log("send failed, will retry", ARRIVE);
    let log = agent.log_since_start();
    let reason = log
        .lines()
        .find(|l| l.contains("send failed, will retry"))
        .and_then(|l| l.split("will retry:").nth(1))
        .and_then(|r| r.split(" batch=").next())
        .unwrap_or_default()
        .to_lowercase();
    assert!(
        ["tls", "certificate", "alert", "handshake"]
            .iter()
            .any(|w| reason.contains(w)),
        "the retry reason does not name the TLS failure: {reason}"
    );
    // ... and points at the configuration keys that fix it.
    assert!(
        reason.contains("client certificate") && reason.contains("ship.client_cert"),
        "the retry reason does not point at ship.client_cert: {reason}"
    );
    eprintln!("the retry reason: {reason}");
}

#[test]
fn sighup_adds_a_file_and_a_bad_configuration_keeps_the_running_one() {
    let ingest = ingest();
    let key = ingest.tenant("acme").key.clone();
    let dir = logs_dir();
    let (a, b) = (dir.path().join("a.log"), dir.path().join("b.log"));
    let mut want_a = lines("reload-a", 0, 100);
    let mut want_b = lines("reload-b", 0, 100);
    append_lines(&a, &want_a);
    // b.log exists before it is tailed: its group's start_at = "beginning" applies.
    append_lines(&b, &want_b);
    let mut agent = AgentHarness::start(ShipTarget::of(&ingest, "acme"), tail("reload", &a));
    wait_logs(
        ingest.client(),
        &key,
        "the first lines of a.log",
        ARRIVE,
        |l| bodies_of(l, "reload").len() >= 100,
    );

    // Lines keep coming to both files while the configuration changes.
    let wa = Appender::start(a.clone(), "reload-a", 100);
    let wb = Appender::start(b.clone(), "reload-b", 100);
    // b.log in a group of its own: a.log's group (its checkpoints) stays as it is.
    agent.reconfigure(|o| o.files(FilesGroup::new(&[&b])));
    agent.sighup();
    agent.wait_for_log("configuration reloaded", ARRIVE);
    wait_logs(
        ingest.client(),
        &key,
        "lines of b.log after the reload",
        ARRIVE,
        |l| l.iter().any(|x| x.body.starts_with("reload-b")),
    );

    // A configuration that does not parse: reported with its position, the running one kept.
    let config = agent.config_path().to_string_lossy().into_owned();
    agent.write_config_text("[ship\nurl = 1\n");
    agent.sighup();
    agent.wait_for_log(
        "SIGHUP: the new configuration is not valid, keeping the running one",
        ARRIVE,
    );
    agent.wait_for_log(&format!("{config}:1:"), ARRIVE);
    // One that parses but whose key file cannot be read: also kept.
    let good = agent.config_text();
    let missing_key = dir.path().join("no-such-key");
    agent.write_config_text(&good.replace(
        &format!("{}\"", agent.dir().join("api_key").display()),
        &format!("{}\"", missing_key.display()),
    ));
    agent.sighup();
    agent.wait_for_log("keeping the running configuration", ARRIVE);
    assert!(agent.is_running(), "the agent exited after a bad SIGHUP");

    // Still delivering both files: what the appenders wrote and lines written after the
    // bad reloads arrive, each exactly once, in order.
    want_a.extend(wa.stop());
    want_b.extend(wb.stop());
    let tail_a = lines("reload-a", want_a.len(), 10);
    let tail_b = lines("reload-b", want_b.len(), 10);
    append_lines(&a, &tail_a);
    append_lines(&b, &tail_b);
    want_a.extend(tail_a);
    want_b.extend(tail_b);
    let logs = wait_logs(
        ingest.client(),
        &key,
        "every line of a.log and b.log",
        ARRIVE,
        |l| bodies_of(l, "reload").len() >= want_a.len() + want_b.len(),
    );
    let only = |prefix: &str| -> Vec<StoredLog> {
        logs.iter()
            .filter(|l| l.body.starts_with(prefix))
            .cloned()
            .collect()
    };
    assert_exactly(&only("reload-a "), "reload", &want_a);
    assert_exactly(&only("reload-b "), "reload", &want_b);
    assert_eq!(
        bodies_of(&logs, "reload").len(),
        want_a.len() + want_b.len()
    );
    assert!(agent.is_running());
    let status = agent.sigterm_and_wait();
    assert!(status.success(), "exit after SIGTERM: {status}");
}

/// The number after `label` in `buffer status` output (`queued events:   12 (3 chunks)`).
fn status_number(out: &str, label: &str) -> Option<u64> {
    let line = out.lines().find(|l| l.starts_with(label))?;
    line[label.len()..]
        .split_whitespace()
        .next()?
        .trim_matches(|c: char| !c.is_ascii_digit())
        .parse()
        .ok()
}

/// Events held in the buffer (queued + in cut batches) per `buffer status`.
fn buffered_events(out: &Output) -> Option<u64> {
    let s = String::from_utf8_lossy(&out.stdout);
    let queued = status_number(&s, "queued events:")?;
    let line = s.lines().find(|l| l.starts_with("cut batches:"))?;
    let in_batches: u64 = line
        .split('(')
        .nth(1)?
        .split_whitespace()
        .next()?
        .parse()
        .ok()?;
    Some(queued + in_batches)
}

#[test]
fn sigterm_with_the_ingest_down_exits_0_in_time_and_the_rest_arrives_after_a_restart() {
    let mut ingest = ingest();
    let key = ingest.tenant("acme").key.clone();
    let dir = logs_dir();
    let file = dir.path().join("app.log");
    let mut want = lines("term", 0, 50);
    append_lines(&file, &want);
    let mut agent = AgentHarness::start(
        ShipTarget::of(&ingest, "acme"),
        tail("term", &file).ship("shutdown_timeout", "3s"),
    );
    wait_logs(ingest.client(), &key, "the first 50 lines", ARRIVE, |l| {
        bodies_of(l, "term").len() >= 50
    });

    let status = ingest.sigterm_and_wait();
    assert!(status.success(), "ingest exit: {status}");
    let more = lines("term", 50, 200);
    append_lines(&file, &more);
    want.extend(more);
    logops_e2e::wait_for(
        "the agent to read all 250 lines",
        ARRIVE,
        Duration::from_millis(100),
        |last| {
            let n = agent.metric("logops_agent_file_lines_read_total", &[]);
            *last = format!("{n:?} lines read");
            (n >= Some(250.0)).then_some(())
        },
    );
    agent.wait_for_log("send failed, will retry", ARRIVE);

    // shutdown_timeout is 3 s: the agent must be gone well within 3 s + 10 s.
    agent.sigterm();
    let status = agent.wait_exit(Duration::from_secs(3 + 10));
    assert!(
        status.success(),
        "agent exit after SIGTERM: {status}\n{}",
        agent.log_tail(20)
    );
    let log = agent.log_since_start();
    assert!(log.contains("shutdown_timeout reached"), "{log}");
    let st = agent.run_cli(&["buffer", "status"]);
    assert!(st.status.success(), "{}", text(&st));
    assert_eq!(buffered_events(&st), Some(200), "{}", text(&st));

    ingest.start_again();
    agent.start_again();
    let logs = wait_logs(ingest.client(), &key, "all 250 lines", ARRIVE, |l| {
        bodies_of(l, "term").len() >= 250
    });
    assert_exactly(&logs, "term", &want);
}

#[test]
fn buffer_status_answers_for_a_stopped_and_a_running_agent() {
    let mut ingest = ingest();
    let key = ingest.tenant("acme").key.clone();
    // The ingest is down: everything the agent reads stays in its buffer.
    let status = ingest.sigterm_and_wait();
    assert!(status.success());
    let dir = logs_dir();
    let file = dir.path().join("app.log");
    let want = lines("status", 0, 120);
    append_lines(&file, &want);
    let mut agent = AgentHarness::start(
        ShipTarget::of(&ingest, "acme"),
        tail("status", &file).ship("shutdown_timeout", "1s"),
    );

    // Running: the CLI asks the agent's self_metrics endpoint (sled is locked by the agent).
    let running = logops_e2e::wait_for(
        "`buffer status` of the running agent to count 120 events",
        ARRIVE,
        Duration::from_millis(200),
        |last| {
            let out = agent.run_cli(&["buffer", "status"]);
            *last = text(&out);
            (out.status.success() && buffered_events(&out) == Some(120)).then_some(out)
        },
    );
    let s = String::from_utf8_lossy(&running.stdout).into_owned();
    for label in [
        "queued events:",
        "cut batches:",
        "dead letters:",
        "buffer bytes:",
        "oldest:",
        "next batch seq:",
    ] {
        assert!(s.contains(label), "{label} missing:\n{s}");
    }
    // Proof that the endpoint answered: without it, the CLI cannot open the locked buffer.
    agent.reconfigure(|mut o| {
        o.self_metrics = false;
        o
    });
    let out = agent.run_cli(&["buffer", "status"]);
    assert!(!out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("in use by a running agent and [self_metrics] is disabled"),
        "{}",
        text(&out)
    );
    agent.reconfigure(|mut o| {
        o.self_metrics = true;
        o
    });

    // Stopped: the CLI opens the buffer itself.
    let status = agent.sigterm_and_wait();
    assert!(status.success(), "{status}");
    let stopped = agent.run_cli(&["buffer", "status"]);
    assert!(stopped.status.success(), "{}", text(&stopped));
    assert_eq!(buffered_events(&stopped), Some(120), "{}", text(&stopped));
    let check = agent.run_cli(&["buffer", "check"]);
    assert!(check.status.success(), "{}", text(&check));
    assert!(
        String::from_utf8_lossy(&check.stdout).contains("consistent"),
        "{}",
        text(&check)
    );

    // Delivered after both come back; then the buffer is empty.
    ingest.start_again();
    agent.start_again();
    let logs = wait_logs(
        ingest.client(),
        &key,
        "the 120 buffered lines",
        ARRIVE,
        |l| bodies_of(l, "status").len() >= 120,
    );
    assert_exactly(&logs, "status", &want);
    logops_e2e::wait_for(
        "`buffer status` to show an empty buffer",
        ARRIVE,
        Duration::from_millis(200),
        |last| {
            let out = agent.run_cli(&["buffer", "status"]);
            *last = text(&out);
            (out.status.success() && buffered_events(&out) == Some(0)).then_some(())
        },
    );
}

/// A line of `n` printable characters that zstd can hardly compress.
fn incompressible(n: usize, seed: u64) -> String {
    let mut x = seed.max(1);
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            // Printable ASCII without `"` and `\`.
            let c = b'#' + (x % 57) as u8;
            c as char
        })
        .collect()
}

/// An ingest with `max_body = 2KiB` and an agent tailing 10 short lines, a 16 KiB line that
/// does not compress, and 10 more short lines: the first batch (all 21) is refused with
/// 413 and split until the large line is alone, which can not be split and is dead-lettered.
fn too_large_line_scenario() -> (
    IngestHarness,
    tempfile::TempDir,
    AgentHarness,
    Vec<String>,
    String,
) {
    let ingest = IngestHarness::start(
        IngestOptions::new()
            .tenant(TenantSpec::new("acme"))
            .set("limits", "max_body", "2KiB"),
    );
    let dir = logs_dir();
    let file = dir.path().join("app.log");
    let big = format!("dead-big {}", incompressible(16 * 1024, 7));
    let mut short = lines("dead-short", 0, 10);
    let mut all = short.clone();
    all.push(big.clone());
    let after = lines("dead-short", 10, 10);
    all.extend(after.iter().cloned());
    short.extend(after);
    append_lines(&file, &all);
    let agent = AgentHarness::start(ShipTarget::of(&ingest, "acme"), tail("dead", &file));
    (ingest, dir, agent, short, big)
}

/// README: "`ship.max_in_flight = 1` (default) keeps the ingest's copy in the agent's
/// order", also when 413 splits a batch again and again (the halves take its place in the
/// send queue; before, they were queued after every pending batch and stored
/// `0..9, 14..19, 11..13, 10`).
#[test]
fn a_413_split_keeps_the_order_of_the_lines() {
    let (ingest, _dir, agent, short, _big) = too_large_line_scenario();
    let key = ingest.tenant("acme").key.clone();
    let logs = wait_logs(ingest.client(), &key, "the 20 short lines", ARRIVE, |l| {
        bodies_of(l, "dead").len() >= 20
    });
    drop(agent);
    assert_exactly(&logs, "dead", &short);
}

#[test]
fn a_line_too_large_for_the_ingest_is_dead_lettered_listed_and_replayed() {
    let (mut ingest, _dir, agent, short, big) = too_large_line_scenario();
    let key = ingest.tenant("acme").key.clone();
    logops_e2e::wait_for(
        "the agent to dead-letter the large line",
        ARRIVE,
        Duration::from_millis(100),
        |last| {
            let n = agent.metric("logops_agent_batches_dead_lettered_total", &[]);
            *last = format!("{n:?} dead-lettered");
            (n >= Some(1.0)).then_some(())
        },
    );
    // The short lines around it were split off and delivered, once.
    let logs = wait_logs(ingest.client(), &key, "the 20 short lines", ARRIVE, |l| {
        bodies_of(l, "dead").len() >= 20
    });
    assert_exactly(&logs, "dead", &short);
    assert!(agent.log().contains("split into"), "{}", agent.log_tail(30));
    assert!(
        agent.log().contains("moved to the dead letters"),
        "{}",
        agent.log_tail(30)
    );

    // Listed, through the running agent, with the ingest's answer.
    let out = agent.run_cli(&["buffer", "dead-letters"]);
    assert!(out.status.success(), "{}", text(&out));
    let listed = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(listed.contains("1 events  HTTP 413"), "{listed}");
    assert!(!listed.contains("no dead letters"), "{listed}");

    // Replayed once the ingest takes larger bodies: stored once.
    ingest.reconfigure(|o| o.set("limits", "max_body", "8MiB"));
    ingest.restart();
    let out = agent.run_cli(&["buffer", "replay"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("1 dead letter(s) queued to be sent again"),
        "{}",
        text(&out)
    );
    let logs = wait_logs(
        ingest.client(),
        &key,
        "the replayed large line",
        ARRIVE,
        |l| bodies_of(l, "dead").len() >= 21,
    );
    let mut want = short.clone();
    want.push(big);
    assert_exactly_once_any_order(&logs, "dead", &want);
    let out = agent.run_cli(&["buffer", "dead-letters"]);
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("no dead letters"),
        "{}",
        text(&out)
    );
}

/// Adding a pattern to an existing group (the obvious edit: `paths = [A]` → `[A, B]`)
/// keeps A's position (checkpoints belong to files, not groups; they used to be keyed by a
/// hash of the group's `paths`, so every line of A was read and shipped again).
#[test]
fn sighup_adding_a_pattern_to_a_group_reads_nothing_twice() {
    let ingest = ingest();
    let key = ingest.tenant("acme").key.clone();
    let dir = logs_dir();
    let (a, b) = (dir.path().join("a.log"), dir.path().join("b.log"));
    let mut want = lines("grow-a", 0, 50);
    append_lines(&a, &want);
    let mut agent = AgentHarness::start(ShipTarget::of(&ingest, "acme"), tail("grow", &a));
    wait_logs(ingest.client(), &key, "the lines of a.log", ARRIVE, |l| {
        bodies_of(l, "grow").len() >= 50
    });
    let more_b = lines("grow-b", 0, 20);
    append_lines(&b, &more_b);
    agent.reconfigure(|mut o| {
        o.files[0].paths.push(b.to_string_lossy().into_owned());
        o
    });
    agent.sighup();
    agent.wait_for_log("configuration reloaded", ARRIVE);
    let more_a = lines("grow-a", 50, 10);
    append_lines(&a, &more_a);
    want.extend(more_a);
    want.extend(more_b);
    wait_logs(
        ingest.client(),
        &key,
        "the lines of a.log and b.log",
        ARRIVE,
        |l| bodies_of(l, "grow").len() >= want.len(),
    );
    // Whatever else is still on its way arrives too: nothing may be there twice.
    std::thread::sleep(Duration::from_secs(2));
    let logs = wait_logs(ingest.client(), &key, "a query", ARRIVE, |_| true);
    assert_exactly_once_any_order(&logs, "grow", &want);
}

/// copytruncate of a file shorter than the fingerprint (256 bytes), written to again at
/// once: if the file has regrown past the agent's read position before the agent looks,
/// only its first bytes tell the truncation apart from growth (the agent used to read on
/// from its old offset and lose the first lines written *after* the truncation; README:
/// copytruncate may lose lines written *before* it). A race: each round lost with a
/// probability of about one half, so the test makes up to 12 rounds with a growing file.
#[test]
fn copytruncate_of_a_small_file_loses_nothing_written_after_it() {
    let ingest = ingest();
    let key = ingest.tenant("acme").key.clone();
    let dir = logs_dir();
    let file = dir.path().join("small.log");
    // 7-byte lines: `t0000` .. ; the file stays under 256 bytes.
    let line = |i: usize| format!("t{i:04}");
    let mut want: Vec<String> = (0..2).map(line).collect();
    append_lines(&file, &want);
    let agent = AgentHarness::start(ShipTarget::of(&ingest, "acme"), tail("small", &file));
    // What the ingest holds once it has `n` lines, or after 5 s (the agent gave up on some:
    // then the check says so).
    let settle = |n: usize| {
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        loop {
            let logs = wait_logs(ingest.client(), &key, "a query", ARRIVE, |_| true);
            if bodies_of(&logs, "small").len() >= n || std::time::Instant::now() > deadline {
                return logs;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    };
    for round in 1..=12 {
        if bodies_of(&settle(want.len()), "small") != want {
            eprintln!("round {round}: the agent lost lines");
            break;
        }
        // copytruncate, then the application writes more than was there, right away.
        std::fs::copy(&file, dir.path().join(format!("small.log.{round}"))).unwrap();
        let size = std::fs::metadata(&file).unwrap().len() as usize;
        let f = std::fs::OpenOptions::new().write(true).open(&file).unwrap();
        f.set_len(0).unwrap();
        drop(f);
        let n = size / 7 + 2;
        let after: Vec<String> = (want.len()..want.len() + n).map(line).collect();
        append_lines(&file, &after);
        want.extend(after);
    }
    let logs = settle(want.len());
    drop(agent);
    assert_exactly(&logs, "small", &want);
}
