//! `[journald]`: follows the systemd journal through
//! `journalctl --output=json --follow --all`, optionally of given journal files or a
//! directory, and of given units.
//!
//! # Position
//!
//! Each entry's `__CURSOR` is its position. The cursor of the last entry of a chunk is
//! written in the same atomic write as the chunk (`journald:<journal>`), like a file's
//! offset; journalctl is started with `--after-cursor=<it>`, so a crash or a kill -9 of the
//! agent neither loses nor doubles an entry. With no cursor, `start_at` says where to
//! begin: `end` (`--lines=0`) or `beginning` (`--no-tail`). A cursor journalctl refuses
//! (the entry was vacuumed) is forgotten, with an error in the log, and `start_at` applies.
//!
//! journalctl is started again when it exits, after a delay that doubles (backon) from
//! `restart_delay_min` to `restart_delay_max`; it is stopped (SIGTERM, then SIGKILL) on
//! shutdown and reload. When the buffer blocks, its output is not read, and it blocks.

mod entry;

use std::process::Stdio;
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, BufReader};

use crate::chunk::Chunk;
use crate::config::{JournaldConfig, StartAt};
use crate::metrics::{ProcessExitLabels, ProcessLabels, SourceLabels, SourceStreamLabels};
use crate::pipeline::{EmitError, Emitter, Shutdown};
use crate::sources::merge_labels;
use crate::sources::process::{describe_exit, restart_delays, stop_group};

pub use entry::{parse, Entry, EntryError};

/// `source` of the events.
pub const SOURCE: &str = "journald";
/// A chunk is emitted at this many entries ...
const CHUNK_EVENTS: u32 = 1_000;
/// ... or this many bytes of NDJSON, or when journalctl has nothing more to say now.
const CHUNK_BYTES: usize = 256 * 1024;
/// How long journalctl gets to stop before SIGKILL.
const STOP_GRACE: Duration = Duration::from_secs(2);
/// A run shorter than this that ended with an error about the cursor means the cursor is
/// not usable.
const QUICK_EXIT: Duration = Duration::from_secs(5);

/// The checkpoint key: one cursor per journal read (the system's, a directory, files).
pub fn checkpoint_key(cfg: &JournaldConfig) -> String {
    if let Some(d) = &cfg.directory {
        format!("journald:directory:{}", d.display())
    } else if !cfg.files.is_empty() {
        format!("journald:files:{}", cfg.files.join(","))
    } else {
        "journald:system".into()
    }
}

/// journalctl's arguments.
pub fn arguments(cfg: &JournaldConfig, cursor: Option<&str>) -> Vec<String> {
    let mut a: Vec<String> = [
        "--output=json",
        "--follow",
        "--all",
        "--no-pager",
        "--quiet",
    ]
    .map(String::from)
    .to_vec();
    if let Some(d) = &cfg.directory {
        a.push(format!("--directory={}", d.display()));
    }
    for f in &cfg.files {
        a.push(format!("--file={f}"));
    }
    for u in &cfg.units {
        a.push(format!("--unit={u}"));
    }
    match (cursor, cfg.start_at) {
        (Some(c), _) => a.push(format!("--after-cursor={c}")),
        (None, StartAt::End) => a.push("--lines=0".into()),
        (None, StartAt::Beginning) => a.push("--no-tail".into()),
    }
    a
}

/// Follows the journal until shutdown.
pub async fn run(cfg: JournaldConfig, emitter: Emitter, shutdown: Shutdown) {
    let key = checkpoint_key(&cfg);
    let mut cursor = match emitter.checkpoint(&key) {
        Ok(v) => v.and_then(|b| String::from_utf8(b).ok()),
        Err(e) => {
            tracing::error!(error = %e, "journald: cannot read the stored cursor; starting per start_at");
            None
        }
    };
    let m = emitter.metrics().clone();
    let plabels = ProcessLabels {
        source: SOURCE.into(),
        name: "journalctl".into(),
    };
    let (min, max) = (cfg.restart_delay_min.get(), cfg.restart_delay_max.get());
    let mut delays = restart_delays(min, max);
    let mut shutdown = shutdown;
    loop {
        if shutdown.is_triggered() {
            return;
        }
        let args = arguments(&cfg, cursor.as_deref());
        tracing::info!(journalctl = %cfg.journalctl.display(), args = %args.join(" "), "journald: starting journalctl");
        let started = Instant::now();
        m.process_starts.get_or_create(&plabels).inc();
        let mut child = match tokio::process::Command::new(&cfg.journalctl)
            .args(&args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .kill_on_drop(true)
            .spawn()
        {
            Ok(c) => c,
            Err(e) => {
                let d = delays.next().unwrap_or(max);
                tracing::error!(journalctl = %cfg.journalctl.display(), error = %e, retry_in = ?d,
                    "journald: cannot start journalctl (set journald.journalctl to its path)");
                exit_metric(&emitter, "spawn_error");
                if shutdown.sleep(d).await {
                    return;
                }
                continue;
            }
        };
        m.process_running.get_or_create(&plabels).set(1);
        let stderr = child.stderr.take().map(|e| tokio::spawn(collect_stderr(e)));
        let stdout = child.stdout.take().expect("stdout is piped");
        let mut stop = shutdown.clone();
        let read = follow(stdout, &emitter, &key, &cfg, &mut cursor, &shutdown);
        let stopped = tokio::select! {
            r = read => r,
            _ = stop.wait() => true,
        };
        m.process_running.get_or_create(&plabels).set(0);
        // Stopped, at the end of its output, or after a failed append (it may still run):
        // its group goes in every case, and its status says how it ended.
        let status = stop_group(&mut child, STOP_GRACE).await;
        if stopped || shutdown.is_triggered() {
            return;
        }
        let errors = match stderr {
            Some(t) => t.await.unwrap_or_default(),
            None => String::new(),
        };
        let (words, label) = status
            .as_ref()
            .map_or_else(|| ("ended".into(), "unknown".into()), describe_exit);
        exit_metric(&emitter, &label);
        let quick = started.elapsed() < QUICK_EXIT;
        if quick && cursor.is_some() && errors.to_lowercase().contains("cursor") {
            tracing::error!(stderr = %errors.trim(), "journald: journalctl refused the stored cursor; forgetting it and starting per start_at");
            cursor = None;
        }
        if !quick {
            delays = restart_delays(min, max);
        }
        let d = delays.next().unwrap_or(max);
        tracing::warn!(stderr = %errors.trim(), retry_in = ?d, "journald: journalctl {words}; starting it again");
        if shutdown.sleep(d).await {
            return;
        }
    }
}

fn exit_metric(emitter: &Emitter, status: &str) {
    emitter
        .metrics()
        .process_exits
        .get_or_create(&ProcessExitLabels {
            source: SOURCE.into(),
            name: "journalctl".into(),
            status: status.into(),
        })
        .inc();
}

/// What journalctl wrote on stderr (bounded).
async fn collect_stderr(e: tokio::process::ChildStderr) -> String {
    let mut out = String::new();
    let mut lines = BufReader::new(e).lines();
    while let Ok(Some(l)) = lines.next_line().await {
        tracing::debug!(line = %l, "journald: journalctl says");
        if out.len() < 4096 {
            out.push_str(&l);
            out.push('\n');
        }
    }
    out
}

/// Reads entries until journalctl's output ends (false) or the agent stops (true),
/// appending them in chunks, each with the cursor of its last entry.
async fn follow(
    stdout: tokio::process::ChildStdout,
    emitter: &Emitter,
    key: &str,
    cfg: &JournaldConfig,
    cursor: &mut Option<String>,
    shutdown: &Shutdown,
) -> bool {
    let labels = merge_labels(emitter.agent_labels(), &cfg.labels);
    let host = emitter.agent_id().clone();
    let m = emitter.metrics();
    let entries = m.source_lines.get_or_create_owned(&SourceStreamLabels {
        source: SOURCE.into(),
        name: SOURCE.into(),
        stream: "journal".into(),
    });
    let errors = m.decode_errors.get_or_create_owned(&SourceLabels {
        source: SOURCE.into(),
    });
    let mut reader = BufReader::with_capacity(256 * 1024, stdout);
    let mut line = Vec::new();
    let mut chunk = Chunk::new();
    let mut last: Option<String> = None;
    loop {
        line.clear();
        let n = match reader.read_until(b'\n', &mut line).await {
            Ok(n) => n,
            Err(e) => {
                tracing::warn!(error = %e, "journald: cannot read journalctl's output");
                0
            }
        };
        if n > 0 {
            let text = line.strip_suffix(b"\n").unwrap_or(&line);
            match entry::parse(text, &host, &labels) {
                Ok(e) => {
                    chunk.push(&e.event);
                    last = Some(e.cursor);
                }
                Err(e) => {
                    errors.inc();
                    tracing::warn!(error = %e, line = %String::from_utf8_lossy(&text[..text.len().min(200)]),
                        "journald: journalctl wrote a line that is not an entry; skipped");
                }
            }
        }
        // Emit when the chunk is full or nothing more is waiting (or at the end).
        let more_waiting = reader.buffer().contains(&b'\n');
        let full = chunk.events() >= CHUNK_EVENTS || chunk.len() >= CHUNK_BYTES;
        if last.is_some() && (n == 0 || full || !more_waiting) {
            let c = last.take().expect("checked");
            let events = u64::from(chunk.events());
            let cps = vec![(key.to_owned(), Some(c.clone().into_bytes()))];
            match emitter
                .emit(SOURCE, std::mem::take(&mut chunk), cps, shutdown)
                .await
            {
                Ok(()) => {
                    entries.inc_by(events);
                    *cursor = Some(c);
                }
                Err(EmitError::ShuttingDown) => return true,
                Err(EmitError::Buffer(e)) => {
                    // Not committed: journalctl starts again after the committed cursor.
                    tracing::error!(error = %e, "journald: cannot append to the buffer; reading again from the last cursor");
                    return false;
                }
            }
        }
        if n == 0 {
            return false;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(toml: &str) -> JournaldConfig {
        toml::from_str(toml).unwrap()
    }

    #[test]
    fn arguments_follow_the_configuration() {
        let c = cfg(r#"units = ["a.service", "b.service"]
directory = "/j""#);
        let a = arguments(&c, None);
        assert!(a.contains(&"--directory=/j".to_string()));
        assert!(a.contains(&"--unit=a.service".to_string()));
        assert!(a.contains(&"--unit=b.service".to_string()));
        assert!(a.contains(&"--lines=0".to_string()));
        let a = arguments(&c, Some("s=1;i=2"));
        assert!(a.contains(&"--after-cursor=s=1;i=2".to_string()));
        assert!(!a.iter().any(|x| x.starts_with("--lines")));
        let c = cfg(r#"files = ["/x/*.journal"]
start_at = "beginning""#);
        let a = arguments(&c, None);
        assert!(a.contains(&"--file=/x/*.journal".to_string()));
        assert!(a.contains(&"--no-tail".to_string()));
        assert_eq!(checkpoint_key(&c), "journald:files:/x/*.journal");
        assert_eq!(checkpoint_key(&cfg("")), "journald:system");
    }
}
