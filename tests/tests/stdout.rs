//! The stdout sources against the real binaries: `[[exec]]` (a script that prints, crashes
//! and is restarted; back-pressure on its pipe), `run --stdin`, `[journald]` (a real journal
//! file written by systemd-journal-remote, read by the real journalctl, across kill -9) and
//! `[kubernetes]` (CRI and Docker files with partial lines, rotation and kill -9 between a
//! partial line and its end), each shipping to a real logops-ingest.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use logops_e2e::agent::{for_each_log, AgentHarness, AgentOptions, ShipTarget};
use logops_e2e::harness::{free_port, toml_string, wait_for};
use logops_e2e::{IngestHarness, IngestOptions, TenantSpec};
use serde_json::Value;

const ARRIVE: Duration = Duration::from_secs(60);

fn ingest() -> IngestHarness {
    IngestHarness::start(IngestOptions::new().tenant(TenantSpec::new("acme")))
}

fn tmp(prefix: &str) -> tempfile::TempDir {
    tempfile::Builder::new().prefix(prefix).tempdir().unwrap()
}

/// Every stored log event, as JSON.
fn stored(ingest: &IngestHarness) -> Vec<Value> {
    let mut out = Vec::new();
    let key = ingest.tenant("acme").key.clone();
    for_each_log(ingest.client(), &key, &[], 100_000, |l| {
        out.push(serde_json::from_str(l).unwrap())
    })
    .unwrap_or_else(|e| panic!("querying the stored logs: {e:#}"));
    out
}

/// Waits until `done` holds for the stored events of `source`; returns them.
fn wait_source(
    ingest: &IngestHarness,
    source: &str,
    what: &str,
    mut done: impl FnMut(&[Value]) -> bool,
) -> Vec<Value> {
    wait_for(what, ARRIVE, Duration::from_millis(200), |last| {
        let all: Vec<Value> = stored(ingest)
            .into_iter()
            .filter(|e| e["source"] == source)
            .collect();
        *last = format!(
            "{} events: {:?}",
            all.len(),
            bodies(&all).iter().rev().take(5).collect::<Vec<_>>()
        );
        done(&all).then_some(all)
    })
}

fn bodies(evs: &[Value]) -> Vec<String> {
    evs.iter()
        .map(|e| e["body"].as_str().unwrap_or_default().to_owned())
        .collect()
}

/// Asserts every body in `want` was stored exactly once among `evs`.
fn assert_once(evs: &[Value], want: &[String]) {
    let got = bodies(evs);
    for w in want {
        let n = got.iter().filter(|g| *g == w).count();
        assert_eq!(n, 1, "{w:?} stored {n} times; stored: {got:?}");
    }
}

fn count(evs: &[Value], body: &str) -> usize {
    evs.iter().filter(|e| e["body"] == body).count()
}

/// Whether process `pid` is gone (or a zombie nobody reaped).
fn gone(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(s) => s
            .rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z')),
    }
}

/// The pids whose parent is `ppid`.
fn children(ppid: u32) -> Vec<u32> {
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        let Some((_, rest)) = stat.rsplit_once(')') else {
            continue;
        };
        let ppid_field = rest
            .split_whitespace()
            .nth(1)
            .and_then(|p| p.parse::<u32>().ok());
        if ppid_field == Some(ppid) {
            out.push(pid);
        }
    }
    out
}

/// Bytes written by `pid` (`/proc/<pid>/io` wchar).
fn written(pid: u32) -> Option<u64> {
    let io = std::fs::read_to_string(format!("/proc/{pid}/io")).ok()?;
    io.lines()
        .find_map(|l| l.strip_prefix("wchar: "))
        .and_then(|v| v.trim().parse().ok())
}

#[test]
fn exec_captures_both_streams_restarts_with_backoff_and_stops_its_process_group() {
    let ingest = ingest();
    let dir = tmp("logops-e2e-exec-");
    let script = dir.path().join("crashy.sh");
    let long = "L".repeat(600);
    std::fs::write(
        &script,
        format!(
            r#"#!/bin/sh
n=$(cat "$STATE" 2>/dev/null || echo 0); n=$((n+1)); echo $n > "$STATE"
echo "out run $n"
echo "err run $n" >&2
printf 'bad \377 byte run %s\n' $n
echo "{long}"
echo "cwd $(pwd) greeting $GREETING"
if [ $n -lt 3 ]; then exit 3; fi
sleep 1000 &
echo "child $!"
printf 'no newline at the end'
wait
"#
        ),
    )
    .unwrap();
    let state = dir.path().join("state");
    let extra = format!(
        r#"[[exec]]
command = ["/bin/sh", {script}]
name = "crashy"
env = {{ GREETING = "hi", STATE = {state} }}
working_dir = {wd}
max_line_bytes = "256B"
restart_delay_min = "100ms"
restart_delay_max = "400ms"
stop_timeout = "2s"
labels = {{ team = "core" }}
"#,
        script = toml_string(&script.to_string_lossy()),
        state = toml_string(&state.to_string_lossy()),
        wd = toml_string(&dir.path().to_string_lossy()),
    );
    let mut agent = AgentHarness::start(
        ShipTarget::of(&ingest, "acme"),
        AgentOptions::new("exec-agent").extra(&extra),
    );
    let evs = wait_source(&ingest, "exec", "the third run's child pid", |e| {
        bodies(e).iter().any(|b| b.starts_with("child "))
    });
    let b = bodies(&evs);
    for n in 1..=3 {
        assert_once(&evs, &[format!("out run {n}"), format!("err run {n}")]);
        assert_eq!(count(&evs, &format!("bad \u{FFFD} byte run {n}")), 1);
    }
    let by_body = |body: &str| evs.iter().find(|e| e["body"] == body).unwrap().clone();
    let out1 = by_body("out run 1");
    assert_eq!(out1["attrs"]["stream"], "stdout");
    assert_eq!(out1["attrs"]["command"], "crashy");
    assert!(out1["attrs"]["pid"].as_u64().is_some());
    assert_eq!(out1["labels"]["team"], "core");
    assert_eq!(by_body("err run 1")["attrs"]["stream"], "stderr");
    assert_eq!(
        by_body("bad \u{FFFD} byte run 2")["attrs"]["invalid_utf8"],
        true
    );
    let cwd = format!("cwd {} greeting hi", dir.path().display());
    assert_eq!(count(&evs, &cwd), 3, "working_dir and env: {b:?}");
    // The 600-byte line: 256 + 256 + 88, each flagged split, three runs.
    let pieces: Vec<&Value> = evs
        .iter()
        .filter(|e| e["body"].as_str().is_some_and(|s| s.starts_with('L')))
        .collect();
    assert_eq!(pieces.len(), 9, "{b:?}");
    assert!(pieces.iter().all(|e| e["attrs"]["split"] == true));
    // The two crashes are events, with the status, as warnings.
    let exits: Vec<&Value> = evs
        .iter()
        .filter(|e| e["attrs"]["exit_code"] == 3)
        .collect();
    assert_eq!(exits.len(), 2, "{b:?}");
    assert!(exits.iter().all(|e| e["severity"] == "warning"));
    assert!(exits[0]["body"].as_str().unwrap().contains("restarting in"));
    let m = |name: &str, l: &[(&str, &str)]| agent.metric(name, l).unwrap_or(-1.0);
    assert_eq!(
        m(
            "logops_agent_process_starts_total",
            &[("source", "exec"), ("name", "crashy")]
        ),
        3.0
    );
    assert_eq!(
        m(
            "logops_agent_process_exits_total",
            &[("name", "crashy"), ("status", "3")]
        ),
        2.0
    );
    assert_eq!(
        m("logops_agent_process_running", &[("name", "crashy")]),
        1.0
    );

    // SIGTERM: the script and its background child get SIGTERM (process group); the
    // unterminated last line is still appended.
    let sleeper: u32 = b
        .iter()
        .find_map(|x| x.strip_prefix("child "))
        .unwrap()
        .parse()
        .unwrap();
    assert!(!gone(sleeper), "the background child runs before the stop");
    let status = agent.sigterm_and_wait();
    assert!(status.success(), "agent exit: {status}");
    wait_for(
        "the background child to be gone",
        Duration::from_secs(10),
        Duration::from_millis(100),
        |_| gone(sleeper).then_some(()),
    );
    let evs = wait_source(&ingest, "exec", "the unterminated last line", |e| {
        count(e, "no newline at the end") == 1
    });
    assert_eq!(count(&evs, "out run 3"), 1);
}

#[test]
fn exec_stops_reading_its_pipe_while_the_buffer_is_full() {
    // Nothing listens at the ship URL: the 1 MiB buffer fills and stays full.
    let target = ShipTarget {
        url: format!("http://127.0.0.1:{}/v1/batch", free_port()),
        api_key: "k".into(),
        ca_pem: None,
        client: None,
    };
    // Incompressible lines: the buffer's size counts compressed batches, and `yes` output
    // would fit a million lines into it.
    let extra = r#"[[exec]]
command = ["sh", "-c", "exec base64 -w 100 /dev/urandom"]
name = "flood"
"#;
    let mut agent = AgentHarness::start(
        target,
        AgentOptions::new("pressure-agent")
            .extra(extra)
            .buffer("max_size", "1MiB")
            .ship("batch_max_bytes", "256KiB")
            .ship("shutdown_timeout", "1s"),
    );
    let pid = agent.pid().unwrap();
    let yes = wait_for(
        "the flood to run",
        Duration::from_secs(10),
        Duration::from_millis(50),
        |_| children(pid).first().copied(),
    );
    let events = |a: &AgentHarness| {
        a.metric("logops_agent_events_total", &[("source", "exec")])
            .unwrap_or(0.0)
    };
    // Wait until appending stops (the buffer is full) ...
    let mut last = (events(&agent), written(yes));
    wait_for(
        "the buffer to block the flood",
        Duration::from_secs(30),
        Duration::from_millis(700),
        |s| {
            let now = (events(&agent), written(yes));
            let held = agent
                .metric("logops_agent_buffer_bytes", &[])
                .unwrap_or(0.0);
            *s = format!("{now:?}, buffer {held} bytes");
            let still = now == last && held > 768.0 * 1024.0;
            last = now;
            still.then_some(())
        },
    );
    // ... then `yes` is blocked in write: it writes nothing for 2 s, and the agent's memory
    // stays bounded.
    let before = written(yes).unwrap();
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(
        written(yes).unwrap(),
        before,
        "the flood kept writing: the pipe is still read"
    );
    assert!(!gone(yes));
    let events_held = events(&agent);
    assert!(
        (2_000.0..40_000.0).contains(&events_held),
        "about 1 MiB of compressed 100-byte random lines in the buffer, got {events_held}"
    );
    let rss = agent.proc_stats().unwrap().rss;
    assert!(
        rss < 150 << 20,
        "agent RSS {rss} bytes with a blocked flood"
    );
    let status = agent.sigterm_and_wait();
    assert!(status.success(), "{status}");
    wait_for(
        "the flood to be stopped",
        Duration::from_secs(10),
        Duration::from_millis(100),
        |_| gone(yes).then_some(()),
    );
}

#[test]
fn stdin_lines_are_shipped_then_the_agent_exits_0() {
    let ingest = ingest();
    let mut agent = AgentHarness::start(
        ShipTarget::of(&ingest, "acme"),
        AgentOptions::new("stdin-agent").stdin(),
    );
    let mut pipe = agent.take_stdin().unwrap();
    let want: Vec<String> = (0..3000).map(|i| format!("stdin line {i:05}")).collect();
    for chunk in want.chunks(700) {
        let mut text = chunk.join("\n");
        text.push('\n');
        pipe.write_all(text.as_bytes()).unwrap();
        std::thread::sleep(Duration::from_millis(50));
    }
    pipe.write_all(b"bad \xff\r\nlast without newline").unwrap();
    drop(pipe);
    let status = agent.wait_exit(Duration::from_secs(60));
    assert!(
        status.success(),
        "exit {status}; log:\n{}",
        agent.log_tail(20)
    );
    assert!(agent
        .log_since_start()
        .contains("everything read from stdin was sent"));
    // Exit 0 means stored: no wait.
    let evs: Vec<Value> = stored(&ingest)
        .into_iter()
        .filter(|e| e["source"] == "stdin")
        .collect();
    assert_eq!(evs.len(), 3002);
    assert_eq!(bodies(&evs[..3000]), want, "in order, each once");
    assert_eq!(evs[3000]["body"], "bad \u{FFFD}");
    assert_eq!(evs[3000]["attrs"]["invalid_utf8"], true);
    assert_eq!(evs[3001]["body"], "last without newline");
}

#[test]
fn stdin_exits_1_when_what_was_read_could_not_be_sent() {
    let target = ShipTarget {
        url: format!("http://127.0.0.1:{}/v1/batch", free_port()),
        api_key: "k".into(),
        ca_pem: None,
        client: None,
    };
    let mut agent = AgentHarness::start(
        target,
        AgentOptions::new("stdin-down")
            .stdin()
            .ship("shutdown_timeout", "1s"),
    );
    let mut pipe = agent.take_stdin().unwrap();
    pipe.write_all(b"one\ntwo\n").unwrap();
    drop(pipe);
    let status = agent.wait_exit(Duration::from_secs(30));
    assert_eq!(status.code(), Some(1), "log:\n{}", agent.log_tail(20));
    assert!(
        agent
            .log_since_start()
            .contains("2 event(s) are still in the buffer"),
        "{}",
        agent.log_tail(10)
    );
}

// ---------------------------------------------------------------------------------------
// journald

const JOURNAL_REMOTE: &str = "/lib/systemd/systemd-journal-remote";

/// Appends entries (journal export format) to the journal file `file` with
/// systemd-journal-remote: `(unit, message bytes)`.
fn write_journal(file: &Path, entries: &[(&str, Vec<u8>)], seq: &mut u64) {
    let mut export = Vec::new();
    for (unit, msg) in entries {
        *seq += 1;
        let us = 1_700_000_000_000_000u64 + *seq;
        write!(
            export,
            "__REALTIME_TIMESTAMP={us}\n__MONOTONIC_TIMESTAMP={seq}\n_BOOT_ID=6c7c6013a8cb4aa4b52c1d1f1b4ee1b2\n_SYSTEMD_UNIT={unit}\nPRIORITY=3\n_PID={seq}\n_HOSTNAME=jhost\nSYSLOG_IDENTIFIER=app\n_COMM=app\n"
        )
        .unwrap();
        export.extend_from_slice(b"MESSAGE\n");
        export.extend_from_slice(&(msg.len() as u64).to_le_bytes());
        export.extend_from_slice(msg);
        export.extend_from_slice(b"\n\n");
    }
    let mut child = Command::new(JOURNAL_REMOTE)
        .arg(format!("--output={}", file.display()))
        .arg("-")
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| {
            panic!("{JOURNAL_REMOTE} (tests/install-peers.sh installs systemd-journal-remote): {e}")
        });
    child.stdin.take().unwrap().write_all(&export).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn journald_agent(ingest: &IngestHarness, id: &str, section: &str) -> AgentHarness {
    AgentHarness::start(
        ShipTarget::of(ingest, "acme"),
        AgentOptions::new(id).extra(section),
    )
}

#[test]
fn journald_follows_a_journal_across_kill9_without_loss_or_doubles_and_filters_units() {
    let ingest = ingest();
    let dir = tmp("logops-e2e-journal-");
    let jdir = dir.path().join("journal");
    std::fs::create_dir(&jdir).unwrap();
    let file = jdir.join("remote.journal");
    let mut seq = 0u64;
    let msg = |i: usize| format!("entry {i:06}").into_bytes();
    let first: Vec<(&str, Vec<u8>)> = (0..300)
        .map(|i| (if i % 3 == 0 { "a.service" } else { "b.service" }, msg(i)))
        .collect();
    write_journal(&file, &first, &mut seq);
    // A binary MESSAGE (not UTF-8): journalctl prints it as an array of bytes.
    write_journal(
        &file,
        &[("a.service", b"raw \xff bytes".to_vec())],
        &mut seq,
    );

    let all = format!(
        "[journald]\ndirectory = {}\nstart_at = \"beginning\"\nrestart_delay_min = \"100ms\"\nlabels = {{ role = \"j\" }}\n",
        toml_string(&jdir.to_string_lossy())
    );
    let units = format!(
        "[journald]\nfiles = [{}]\nunits = [\"a.service\"]\nstart_at = \"beginning\"\n",
        toml_string(&file.to_string_lossy())
    );
    let mut agent = journald_agent(&ingest, "journal-all", &all);
    let filtered = journald_agent(&ingest, "journal-a", &units);
    let of = |evs: &[Value], host: &str| -> Vec<Value> {
        evs.iter().filter(|e| e["host"] == host).cloned().collect()
    };
    let evs = wait_source(&ingest, "journald", "the first 301 entries", |e| {
        of(e, "journal-all").len() >= 301
    });
    let mine = of(&evs, "journal-all");
    let e0 = mine.iter().find(|e| e["body"] == "entry 000000").unwrap();
    assert_eq!(e0["labels"]["unit"], "a.service");
    assert_eq!(e0["labels"]["role"], "j");
    assert_eq!(e0["severity"], "error");
    assert_eq!(e0["attrs"]["pid"], 1);
    assert_eq!(e0["attrs"]["hostname"], "jhost");
    assert_eq!(e0["attrs"]["syslog_identifier"], "app");
    assert_eq!(e0["attrs"]["comm"], "app");
    assert_eq!(e0["ts"], "2023-11-14T22:13:20.000001000Z");
    let raw = mine
        .iter()
        .find(|e| e["attrs"]["invalid_utf8"] == true)
        .unwrap();
    assert_eq!(raw["body"], "raw \u{FFFD} bytes");

    // Kill -9 while a large append is being read, append more while it is down, restart.
    let second: Vec<(&str, Vec<u8>)> = (300..20_300).map(|i| ("b.service", msg(i))).collect();
    write_journal(&file, &second, &mut seq);
    wait_for(
        "the agent to be reading the large append",
        ARRIVE,
        Duration::from_millis(20),
        |s| {
            let n = agent
                .metric("logops_agent_source_lines_total", &[("source", "journald")])
                .unwrap_or(0.0);
            *s = format!("{n} entries");
            (n > 1_000.0).then_some(())
        },
    );
    agent.kill9();
    let third: Vec<(&str, Vec<u8>)> = (20_300..20_400).map(|i| ("a.service", msg(i))).collect();
    write_journal(&file, &third, &mut seq);
    agent.start_again();
    // And while it runs again.
    let fourth: Vec<(&str, Vec<u8>)> = (20_400..20_500).map(|i| ("a.service", msg(i))).collect();
    write_journal(&file, &fourth, &mut seq);
    wait_source(&ingest, "journald", "all 20,501 entries", |e| {
        of(e, "journal-all").len() >= 20_501 && of(e, "journal-a").len() >= 301
    });
    // Anything doubled would arrive with or after the rest: look again a little later.
    std::thread::sleep(Duration::from_secs(1));
    let evs: Vec<Value> = stored(&ingest)
        .into_iter()
        .filter(|e| e["source"] == "journald")
        .collect();
    let mine = of(&evs, "journal-all");
    let mut want: Vec<String> = (0..20_500).map(|i| format!("entry {i:06}")).collect();
    want.push("raw \u{FFFD} bytes".into());
    let mut got = bodies(&mine);
    got.sort();
    want.sort();
    assert_eq!(
        got.len(),
        want.len(),
        "doubled or lost entries across the kill -9"
    );
    assert!(got == want, "the stored entries are not the written ones");
    // The unit filter: a.service only (every third of the first 300, the binary one, the
    // last 200), through the real journalctl.
    let a = of(&evs, "journal-a");
    assert!(a.iter().all(|e| e["labels"]["unit"] == "a.service"));
    assert_eq!(a.len(), 100 + 1 + 200, "{:?}", &bodies(&a)[..5]);
    drop(filtered);

    live_journald(&ingest);
}

/// The system journal, where a systemd-journald runs; otherwise says why it is skipped.
fn live_journald(ingest: &IngestHarness) {
    let socket = Path::new("/run/systemd/journal/socket");
    let running = socket.exists()
        && Command::new("systemctl")
            .args(["is-active", "--quiet", "systemd-journald"])
            .status()
            .is_ok_and(|s| s.success());
    if !running {
        eprintln!(
            "journald live part SKIPPED: no systemd-journald runs on this machine ({} {}); the journal-file part above used the real journalctl",
            socket.display(),
            if socket.exists() { "exists but systemd-journald is not active" } else { "is missing" }
        );
        return;
    }
    let _agent = journald_agent(ingest, "journal-live", "[journald]\nstart_at = \"end\"\n");
    std::thread::sleep(Duration::from_secs(2));
    let tag = format!("logops-e2e-{}", std::process::id());
    let mut cat = Command::new("systemd-cat")
        .args(["-t", &tag])
        .stdin(Stdio::piped())
        .spawn()
        .expect("systemd-cat");
    cat.stdin
        .take()
        .unwrap()
        .write_all(b"hello from the live journal\n")
        .unwrap();
    cat.wait().unwrap();
    wait_source(ingest, "journald", "the live journal entry", |e| {
        e.iter()
            .any(|x| x["attrs"]["syslog_identifier"] == tag.as_str())
    });
}

// ---------------------------------------------------------------------------------------
// kubernetes

const TS: &str = "2024-05-06T07:08:09.123456789Z";

fn cri(stream: &str, tag: &str, msg: &str) -> String {
    format!("{TS} {stream} {tag} {msg}")
}

fn docker(stream: &str, log: &str) -> String {
    serde_json::json!({"log": log, "stream": stream, "time": "2024-05-06T07:08:09.5Z"}).to_string()
}

fn append(path: &Path, lines: &[String]) {
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap();
    let mut text = lines.join("\n");
    text.push('\n');
    f.write_all(text.as_bytes()).unwrap();
}

#[test]
fn kubernetes_cri_and_docker_logs_join_partials_across_rotation_and_kill9() {
    let ingest = ingest();
    let dir = tmp("logops-e2e-pods-");
    let pods = dir.path().join("pods");
    let web = pods.join("shop_web-0_0b1c-11aa/app");
    let db = pods.join("data_db-0_22cc-33dd/db");
    std::fs::create_dir_all(&web).unwrap();
    std::fs::create_dir_all(&db).unwrap();
    let cri_log = web.join("0.log");
    let docker_log = db.join("0.log");
    append(
        &cri_log,
        &[
            cri("stdout", "F", "web line 1"),
            cri("stdout", "P", "web joined a "),
            cri("stdout", "P", "b "),
            cri("stdout", "F", "c"),
            cri("stderr", "F", "web error 1"),
            "garbage that is not CRI".into(),
        ],
    );
    append(
        &docker_log,
        &[
            docker("stdout", "db line 1\n"),
            docker("stderr", "db joined \"x\" "),
            docker("stderr", "and y\n"),
        ],
    );
    let extra = format!(
        "[kubernetes]\npaths = [{}]\nstart_at = \"beginning\"\nrotate_wait = \"1s\"\nrescan_interval = \"1s\"\nlabels = {{ cluster = \"c1\" }}\n",
        toml_string(&format!("{}/*/*/*.log", pods.display()))
    );
    let mut agent = AgentHarness::start(
        ShipTarget::of(&ingest, "acme"),
        AgentOptions::new("k8s-agent").extra(&extra),
    );
    let evs = wait_source(&ingest, "kubernetes", "the first lines", |e| e.len() >= 6);
    assert_once(
        &evs,
        &[
            "web line 1".into(),
            "web joined a b c".into(),
            "web error 1".into(),
            "db line 1".into(),
            "db joined \"x\" and y".into(),
            "garbage that is not CRI".into(),
        ],
    );
    let w = evs
        .iter()
        .find(|e| e["body"] == "web joined a b c")
        .unwrap();
    assert_eq!(w["ts"], TS);
    assert_eq!(w["attrs"]["stream"], "stdout");
    assert_eq!(
        w["attrs"]["offset"],
        cri("stdout", "F", "web line 1").len() + 1
    );
    let want_labels: BTreeMap<String, String> = [
        ("cluster", "c1"),
        ("namespace", "shop"),
        ("pod", "web-0"),
        ("uid", "0b1c-11aa"),
        ("container", "app"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    let got_labels: BTreeMap<String, String> = serde_json::from_value(w["labels"].clone()).unwrap();
    assert_eq!(got_labels, want_labels);
    let d = evs
        .iter()
        .find(|e| e["body"] == "db joined \"x\" and y")
        .unwrap();
    assert_eq!(d["attrs"]["stream"], "stderr");
    assert_eq!(d["ts"], "2024-05-06T07:08:09.500000000Z");
    assert_eq!(d["labels"]["namespace"], "data");
    assert_eq!(d["labels"]["container"], "db");
    let g = evs
        .iter()
        .find(|e| e["body"] == "garbage that is not CRI")
        .unwrap();
    assert_eq!(g["attrs"]["parse_error"], true);

    // A partial stderr line, then complete stdout lines after it (which are shipped while
    // the checkpoint stays at the partial line); kill -9 before the stderr line ends.
    append(
        &cri_log,
        &[
            cri("stderr", "P", "held part one "),
            cri("stdout", "F", "after the partial 1"),
            cri("stdout", "F", "after the partial 2"),
        ],
    );
    append(
        &docker_log,
        &[
            docker("stdout", "docker held "),
            docker("stderr", "docker marker\n"),
        ],
    );
    wait_source(
        &ingest,
        "kubernetes",
        "the lines after the partial ones",
        |e| count(e, "after the partial 2") == 1 && count(e, "docker marker") == 1,
    );
    agent.kill9();
    append(
        &cri_log,
        &[
            cri("stderr", "F", "and its end"),
            cri("stdout", "F", "web line 2"),
        ],
    );
    append(&docker_log, &[docker("stdout", "and its docker end\n")]);
    agent.start_again();
    let evs = wait_source(&ingest, "kubernetes", "the partial lines completed", |e| {
        count(e, "web line 2") == 1 && count(e, "docker held and its docker end") == 1
    });
    assert_once(
        &evs,
        &[
            "held part one and its end".into(),
            "after the partial 1".into(),
            "after the partial 2".into(),
            "docker marker".into(),
            "web line 1".into(),
        ],
    );

    // Rotation the kubelet way: rename to 0.log.<timestamp>; the runtime still ends its
    // partial line in the old file (through its open descriptor), then writes the new
    // 0.log.
    let rotated = web.join("0.log.20240506-070809");
    append(&cri_log, &[cri("stdout", "P", "before the ")]);
    std::fs::rename(&cri_log, &rotated).unwrap();
    append(&rotated, &[cri("stdout", "F", "rename")]);
    append(
        &cri_log,
        &[
            cri("stdout", "P", "new file "),
            cri("stdout", "F", "joined"),
        ],
    );
    let evs = wait_source(
        &ingest,
        "kubernetes",
        "the lines around the rotation",
        |e| count(e, "new file joined") == 1 && count(e, "before the rename") == 1,
    );
    let r = evs
        .iter()
        .find(|e| e["body"] == "before the rename")
        .unwrap();
    assert_eq!(r["labels"]["pod"], "web-0", "labels survive the rename");
    // `path` is the file's name when its end was read: the new name if the agent saw the
    // rename first, the old one if it read both pieces before it noticed.
    let path = r["attrs"]["path"].as_str().unwrap();
    assert!(
        path.ends_with("0.log.20240506-070809") || path.ends_with("/0.log"),
        "{path}"
    );
    // Nothing doubled at the end either.
    std::thread::sleep(Duration::from_millis(1500));
    let evs: Vec<Value> = stored(&ingest)
        .into_iter()
        .filter(|e| e["source"] == "kubernetes")
        .collect();
    let mut b = bodies(&evs);
    b.sort();
    let n = b.len();
    b.dedup();
    assert_eq!(b.len(), n, "doubled events: {:?}", bodies(&evs));
    assert_eq!(n, 14, "{:?}", bodies(&evs));
}
