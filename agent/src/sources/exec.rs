//! `[[exec]]`: runs a command and turns the lines of its stdout and stderr into log events
//! (`source = "exec"`, attrs `command`, `pid`, `stream`, `offset`).
//!
//! - The command runs without a shell, in its own process group, with the agent's
//!   environment plus `env`, in `working_dir`, stdin from /dev/null.
//! - Each pipe is read by its own task in blocks; the block's complete lines are appended
//!   before the next read. When the buffer blocks (`when_full = "block"`), the pipe is not
//!   read: it fills and the command blocks in `write`, so memory stays bounded.
//! - When the command exits, an event says how (`exit_code` or `signal`, severity `warning`
//!   unless it exited 0), and it is started again per `restart`, after a delay that starts
//!   at `restart_delay_min` and doubles (with jitter, backon) up to `restart_delay_max`; a
//!   run that lasted `restart_reset_after` resets it.
//! - On shutdown and reload: SIGTERM to its process group, SIGKILL after `stop_timeout`;
//!   the lines it writes meanwhile are still appended.
//!
//! Metrics: `logops_agent_process_{starts,exits,running}{source="exec",name=...}` and
//! `logops_agent_source_lines{source="exec",name=...,stream=...}`.

use std::borrow::Cow;
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use logops_common::event::{Attrs, Event, Labels, Payload, Severity};
use logops_common::Timestamp;
use tokio::io::{AsyncRead, AsyncReadExt};

use crate::chunk::Chunk;
use crate::config::{exec_name, ExecConfig, RestartPolicy};
use crate::metrics::{ProcessExitLabels, ProcessLabels, SourceStreamLabels};
use crate::pipeline::{EmitError, Emitter, Shutdown};
use crate::sources::lines::StreamLines;
use crate::sources::merge_labels;
use crate::sources::process::{describe_exit, restart_delays, signal_group, stop_group};

/// `source` of the events.
const SOURCE: &str = "exec";

/// What the tasks of one command share.
struct Ctx {
    cfg: ExecConfig,
    name: String,
    emitter: Emitter,
    labels: Labels<'static>,
}

/// How one run ended.
enum Ended {
    /// By itself.
    Exited(std::process::ExitStatus),
    /// Stopped for the agent's shutdown or reload.
    Stopped,
    /// It could not be started.
    SpawnFailed(std::io::Error),
}

/// Runs one `[[exec]]` command until shutdown.
pub async fn run(cfg: ExecConfig, emitter: Emitter, shutdown: Shutdown) {
    let name = exec_name(&cfg);
    let labels = merge_labels(emitter.agent_labels(), &cfg.labels);
    let cx = Arc::new(Ctx {
        cfg,
        name,
        emitter,
        labels,
    });
    let m = cx.emitter.metrics().clone();
    let plabels = ProcessLabels {
        source: SOURCE.into(),
        name: cx.name.clone(),
    };
    let mut shutdown = shutdown;
    let (min, max) = (
        cx.cfg.restart_delay_min.get(),
        cx.cfg.restart_delay_max.get(),
    );
    let mut delays = restart_delays(min, max);
    let mut runs = 0u64;
    loop {
        if shutdown.is_triggered() {
            return;
        }
        let started = Instant::now();
        runs += 1;
        m.process_starts.get_or_create(&plabels).inc();
        m.process_running.get_or_create(&plabels).set(1);
        let (ended, pid) = run_once(&cx, &shutdown).await;
        m.process_running.get_or_create(&plabels).set(0);
        let ran = started.elapsed();
        let (words, status, failed) = match &ended {
            Ended::Stopped => return,
            Ended::Exited(s) => {
                let (w, st) = describe_exit(s);
                (w, st, !s.success())
            }
            Ended::SpawnFailed(e) => (
                format!("could not be started: {e}"),
                "spawn_error".into(),
                true,
            ),
        };
        m.process_exits
            .get_or_create(&ProcessExitLabels {
                source: SOURCE.into(),
                name: cx.name.clone(),
                status,
            })
            .inc();
        let restart = match cx.cfg.restart {
            RestartPolicy::Always => true,
            RestartPolicy::OnFailure => failed,
            RestartPolicy::Never => false,
        };
        if ran >= cx.cfg.restart_reset_after.get() {
            delays = restart_delays(min, max);
        }
        let delay = restart.then(|| delays.next().unwrap_or(max));
        let what = match delay {
            Some(d) => format!("restarting in {}", logops_common::units::HumanDuration(d)),
            None => "not restarting (restart policy)".into(),
        };
        let body = format!(
            "command `{}` {words} after {:.1}s; {what}",
            cx.name,
            ran.as_secs_f64()
        );
        if failed {
            tracing::warn!(command = %cx.name, "exec: {body}");
        } else {
            tracing::info!(command = %cx.name, "exec: {body}");
        }
        exit_event(&cx, &ended, pid, runs, &body, failed, &shutdown).await;
        match delay {
            Some(d) => {
                if shutdown.sleep(d).await {
                    return;
                }
            }
            None => {
                shutdown.wait().await;
                return;
            }
        }
    }
}

/// The event that says how a run ended.
async fn exit_event(
    cx: &Ctx,
    ended: &Ended,
    pid: Option<u32>,
    runs: u64,
    body: &str,
    failed: bool,
    shutdown: &Shutdown,
) {
    let mut attrs = serde_json::Map::new();
    attrs.insert("command".into(), cx.name.clone().into());
    if let Some(pid) = pid {
        attrs.insert("pid".into(), pid.into());
    }
    attrs.insert("runs".into(), runs.into());
    match ended {
        Ended::Exited(s) => {
            use std::os::unix::process::ExitStatusExt;
            if let Some(c) = s.code() {
                attrs.insert("exit_code".into(), c.into());
            }
            if let Some(sig) = s.signal() {
                attrs.insert("signal".into(), sig.into());
            }
        }
        Ended::SpawnFailed(e) => {
            attrs.insert("error".into(), e.to_string().into());
        }
        Ended::Stopped => {}
    }
    let ev = Event {
        ts: Timestamp::now(),
        host: Cow::Borrowed(cx.emitter.agent_id()),
        source: Cow::Borrowed(SOURCE),
        labels: cx.labels.clone(),
        attrs: Some(Attrs::from_map(&attrs)),
        payload: Payload::Log {
            severity: Some(if failed {
                Severity::Warning
            } else {
                Severity::Info
            }),
            body: Cow::Borrowed(body),
        },
    };
    let mut chunk = Chunk::new();
    chunk.push(&ev);
    if let Err(e) = cx.emitter.emit(SOURCE, chunk, Vec::new(), shutdown).await {
        tracing::warn!(command = %cx.name, error = %e, "exec: the exit event was not appended");
    }
}

/// Starts the command once and reads its output until it ends or shutdown.
async fn run_once(cx: &Arc<Ctx>, shutdown: &Shutdown) -> (Ended, Option<u32>) {
    let cfg = &cx.cfg;
    let mut cmd = tokio::process::Command::new(&cfg.command[0]);
    cmd.args(&cfg.command[1..])
        .envs(&cfg.env)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true);
    if let Some(dir) = &cfg.working_dir {
        cmd.current_dir(dir);
    }
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => {
            let dir = cfg
                .working_dir
                .as_ref()
                .map(|d| format!(" in {}", d.display()))
                .unwrap_or_default();
            let e = std::io::Error::new(e.kind(), format!("`{}`{dir}: {e}", cfg.command[0]));
            return (Ended::SpawnFailed(e), None);
        }
    };
    let pid = child.id();
    tracing::info!(command = %cx.name, pid, "exec: started");
    let mut pumps = Vec::new();
    if let Some(out) = child.stdout.take() {
        pumps.push(tokio::spawn(pump(
            cx.clone(),
            out,
            "stdout",
            pid,
            shutdown.clone(),
        )));
    }
    if let Some(err) = child.stderr.take() {
        pumps.push(tokio::spawn(pump(
            cx.clone(),
            err,
            "stderr",
            pid,
            shutdown.clone(),
        )));
    }
    let mut stop = shutdown.clone();
    let grace = cfg.stop_timeout.get();
    let ended = tokio::select! {
        status = child.wait() => match status {
            Ok(s) => Ended::Exited(s),
            Err(e) => Ended::SpawnFailed(e),
        },
        _ = stop.wait() => {
            tracing::info!(command = %cx.name, pid, "exec: stopping (SIGTERM to its process group)");
            stop_group(&mut child, grace).await;
            Ended::Stopped
        }
    };
    // The pipes end when every process holding them is gone; a child left running in the
    // background keeps them open: it gets `stop_timeout`, then its group is killed.
    let drained = async {
        for p in &mut pumps {
            let _ = p.await;
        }
    };
    if tokio::time::timeout(grace, drained).await.is_err() {
        if let Some(pid) = pid {
            tracing::warn!(command = %cx.name, pid, "exec: the command ended but its output pipes are still open (a child in the background?); killing its process group");
            signal_group(pid, libc::SIGKILL);
        }
        for p in pumps {
            let _ = tokio::time::timeout(Duration::from_secs(1), p).await;
        }
    }
    (ended, pid)
}

/// Reads one pipe to its end, appending its lines.
async fn pump(
    cx: Arc<Ctx>,
    mut pipe: impl AsyncRead + Unpin,
    stream: &'static str,
    pid: Option<u32>,
    shutdown: Shutdown,
) {
    let mut attrs = serde_json::Map::new();
    attrs.insert("command".into(), cx.name.clone().into());
    if let Some(pid) = pid {
        attrs.insert("pid".into(), pid.into());
    }
    attrs.insert("stream".into(), stream.into());
    let max_line = usize::try_from(cx.cfg.max_line_bytes.bytes()).unwrap_or(usize::MAX);
    let mut lines = StreamLines::new(max_line.min(1 << 30), &attrs);
    let counter = cx
        .emitter
        .metrics()
        .source_lines
        .get_or_create_owned(&SourceStreamLabels {
            source: SOURCE.into(),
            name: cx.name.clone(),
            stream: stream.into(),
        });
    let host = cx.emitter.agent_id().clone();
    loop {
        let n = match pipe.read(lines.spare()).await {
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => {
                tracing::warn!(command = %cx.name, stream, error = %e, "exec: cannot read the output");
                0
            }
        };
        let chunk = if n == 0 {
            lines.finish(&host, SOURCE, &cx.labels)
        } else {
            lines.feed(n, &host, SOURCE, &cx.labels)
        };
        if !chunk.is_empty() {
            let events = u64::from(chunk.events());
            // Blocks while the buffer is full: the pipe is not read meanwhile.
            match cx.emitter.emit(SOURCE, chunk, Vec::new(), &shutdown).await {
                Ok(()) => {
                    counter.inc_by(events);
                }
                Err(EmitError::ShuttingDown) => {
                    tracing::warn!(command = %cx.name, stream, events, "exec: the buffer is full and the agent is stopping: lines not appended");
                    return;
                }
                Err(EmitError::Buffer(e)) => {
                    tracing::error!(command = %cx.name, stream, error = %e, events, "exec: cannot append to the buffer: lines lost");
                }
            }
        }
        if n == 0 {
            return;
        }
    }
}
