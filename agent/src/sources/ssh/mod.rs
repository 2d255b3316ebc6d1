//! The SSH collector (`[ssh]`, `[[ssh.device]]`): logs in to device CLIs the way Netmiko
//! does, runs `show` commands and parses their output with ntc-templates (TextFSM).
//!
//! - ssh2 (libssh2) is blocking, so sessions run on a pool of `max_sessions` worker threads
//!   (fewer when there are fewer devices); one more thread parses the outputs and emits the
//!   events (TextFSM's regexes keep caches per thread: one parser keeps one set). One async task schedules the devices: each is
//!   due every `interval`, first polls spread over it; a device whose previous poll is
//!   still queued or running skips its turn (counted as `reason="overrun"`). A poll opens
//!   one session, runs the device's commands and closes it, so at most `max_sessions`
//!   sockets are open however many devices are configured.
//! - [`session`]: connect, handshake, host key against known_hosts ([`known_hosts`]),
//!   authentication, PTY and shell. [`cli`]: prompt, enable, paging, commands, on the
//!   [`screen`] model of the terminal. [`platform`]: the per-`device_type` table.
//! - [`poll`]: one poll and its events: a `record` per parsed row (labels `device`,
//!   `command`, `template`), configured metrics, optionally the raw output as a log event,
//!   `ssh_up` and `ssh_poll_duration_seconds`.
//! - Self-metrics: `logops_agent_collector_rounds_total{collector="ssh"}` (polls),
//!   `..._timeouts_total` (connect, prompt and command timeouts) and `..._errors_total{reason}`.

pub mod cli;
pub mod error;
pub mod known_hosts;
pub mod platform;
pub mod poll;
pub mod screen;
pub mod session;

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::sync::{mpsc, Arc, Mutex};

use logops_textfsm::TemplateLibrary;
use tokio::time::Instant;

pub use error::SshError;
pub use poll::{Polled, SOURCE};

use crate::chunk::Chunk;
use crate::config::{Config, SshConfig, SshDeviceSettings};
use crate::metrics::{CollectorLabels, CollectorReasonLabels};
use crate::pipeline::{EmitError, Emitter, Shutdown};
use poll::EventMaker;

/// Stack of a worker thread: libssh2, OpenSSL and the TextFSM engine need little.
const WORKER_STACK: usize = 1024 * 1024;

fn count_error(emitter: &Emitter, reason: &str) {
    emitter
        .metrics()
        .collector_errors
        .get_or_create(&CollectorReasonLabels {
            collector: SOURCE.into(),
            reason: reason.into(),
        })
        .inc();
}

/// One device as the workers see it.
struct Device {
    settings: SshDeviceSettings,
    events: EventMaker,
    /// The reasons of the last poll's errors, so a repeated failure is logged once.
    last_reasons: Mutex<Vec<&'static str>>,
}

/// Opens the templates directory with the index rows of the devices' platforms only (the
/// whole ntc-templates index compiled costs ~17 MiB); a failure is logged and outputs are
/// then kept raw.
fn open_templates(cfg: &SshConfig, devices: &[SshDeviceSettings]) -> Option<Arc<TemplateLibrary>> {
    let dir = cfg.templates_dir.as_ref()?;
    let mut platforms: Vec<&str> = devices.iter().map(|d| d.platform.device_type).collect();
    platforms.sort_unstable();
    platforms.dedup();
    match TemplateLibrary::open_for(dir, &platforms) {
        Ok(l) => Some(Arc::new(l)),
        Err(e) => {
            tracing::error!("ssh: templates_dir: {e}; outputs are kept raw, not parsed");
            None
        }
    }
}

/// A poll done by a worker, on its way to be parsed and emitted.
struct Done {
    device: usize,
    ts: logops_common::Timestamp,
    polled: Polled,
}

/// Parses a poll's outputs, turns them into events, counts and logs its errors, and emits
/// the events. Runs on the one parser thread: TextFSM's regexes keep per-thread caches, so
/// parsing on every session thread would multiply them by `max_sessions`.
fn finish(
    device: &Device,
    done: Done,
    templates: Option<&TemplateLibrary>,
    emitter: &Emitter,
    shutdown: &Shutdown,
) {
    let s = &device.settings;
    let Done { ts, mut polled, .. } = done;
    if let Some(lib) = templates {
        poll::parse(&mut polled, lib, s.platform.device_type);
    }
    let events = device.events.events(ts, &mut polled);
    let m = emitter.metrics();
    let collector = CollectorLabels {
        collector: SOURCE.into(),
    };
    m.collector_rounds.get_or_create(&collector).inc();
    let timeouts = polled.timeouts();
    if timeouts > 0 {
        m.collector_timeouts
            .get_or_create(&collector)
            .inc_by(timeouts);
    }
    let errors = polled.errors();
    let mut reasons: Vec<&'static str> = errors.iter().map(|(r, _)| *r).collect();
    reasons.sort_unstable();
    reasons.dedup();
    {
        let mut last = device
            .last_reasons
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        for (reason, message) in &errors {
            count_error(emitter, reason);
            if last.contains(reason) {
                tracing::debug!("ssh: {message}");
            } else {
                tracing::warn!("ssh: {message}");
            }
        }
        if errors.is_empty() && !last.is_empty() {
            tracing::info!(device = %s.name, "ssh: the device answers again");
        }
        *last = reasons;
    }
    for c in &polled.commands {
        if let Some(logops_textfsm::LibraryError::NoTemplate { .. }) = &c.parse_error {
            tracing::debug!(
                device = %s.name,
                command = %c.spec.command,
                "ssh: no template for {} `{}`; the raw output is kept as a log event",
                s.platform.device_type,
                c.spec.command
            );
        }
    }
    let mut chunk = Chunk::with_capacity(events.len() * 300);
    for e in &events {
        chunk.push(e);
    }
    match emitter.emit_blocking(SOURCE, &chunk, &[], shutdown) {
        Ok(()) | Err(EmitError::ShuttingDown) => {}
        Err(e) => tracing::error!(
            device = %s.name,
            error = %e,
            "ssh: a poll could not be buffered and is lost"
        ),
    }
}

/// Polls every configured device until shutdown.
pub async fn run(cfg: SshConfig, emitter: Emitter, mut shutdown: Shutdown) {
    let settings = cfg.devices();
    if settings.is_empty() {
        return;
    }
    let templates = open_templates(&cfg, &settings);
    let devices: Arc<Vec<Device>> = Arc::new(
        settings
            .into_iter()
            .map(|s| Device {
                events: EventMaker::new(&s, emitter.agent_id().clone(), emitter.agent_labels()),
                settings: s,
                last_reasons: Mutex::new(Vec::new()),
            })
            .collect(),
    );
    let n = devices.len();
    let workers = cfg.max_sessions.clamp(1, n);
    let (jobs, queue) = mpsc::channel::<usize>();
    let queue = Arc::new(Mutex::new(queue));
    let (done_tx, mut done) = tokio::sync::mpsc::unbounded_channel::<usize>();
    // Workers hand their polls to the parser; a full channel makes them wait (back-pressure
    // from parsing and the buffer).
    let (polled_tx, polled_rx) = mpsc::sync_channel::<Done>(workers);
    let mut threads = Vec::with_capacity(workers + 1);
    {
        let devices = devices.clone();
        let emitter = emitter.clone();
        let stop = shutdown.clone();
        let done_tx = done_tx.clone();
        let spawned = std::thread::Builder::new()
            .name("ssh-parse".into())
            .spawn(move || {
                for d in polled_rx {
                    let i = d.device;
                    if !stop.is_triggered() {
                        finish(&devices[i], d, templates.as_deref(), &emitter, &stop);
                    }
                    let _ = done_tx.send(i);
                }
            });
        match spawned {
            Ok(t) => threads.push(t),
            Err(e) => {
                tracing::error!("ssh: cannot start the parser thread: {e}; not polling");
                return;
            }
        }
    }
    for w in 0..workers {
        let queue = queue.clone();
        let devices = devices.clone();
        let stop = shutdown.clone();
        let polled_tx = polled_tx.clone();
        let done_tx = done_tx.clone();
        let spawned = std::thread::Builder::new()
            .name(format!("ssh-{w}"))
            .stack_size(WORKER_STACK)
            .spawn(move || loop {
                let next = queue.lock().unwrap_or_else(|p| p.into_inner()).recv();
                let Ok(i) = next else { break };
                if stop.is_triggered() {
                    let _ = done_tx.send(i);
                    continue;
                }
                let ts = logops_common::Timestamp::now();
                let polled = poll::poll(&devices[i].settings, Some(&stop));
                let d = Done {
                    device: i,
                    ts,
                    polled,
                };
                if polled_tx.send(d).is_err() {
                    let _ = done_tx.send(i);
                }
            });
        match spawned {
            Ok(t) => threads.push(t),
            Err(e) => tracing::error!("ssh: cannot start worker thread {w}: {e}"),
        }
    }
    drop(polled_tx);
    drop(done_tx);
    tracing::info!(devices = n, workers = threads.len() - 1, "ssh: polling");
    let start = Instant::now();
    let mut due: BinaryHeap<Reverse<(Instant, usize)>> = (0..n)
        .map(|i| {
            let interval = devices[i].settings.interval;
            Reverse((start + interval.mul_f64(i as f64 / n as f64), i))
        })
        .collect();
    let mut busy = vec![false; n];
    loop {
        let next = due.peek().map(|Reverse((t, _))| *t).unwrap_or(start);
        tokio::select! {
            _ = tokio::time::sleep_until(next) => {
                let now = Instant::now();
                while let Some(Reverse((t, i))) = due.peek().copied() {
                    if t > now {
                        break;
                    }
                    due.pop();
                    let interval = devices[i].settings.interval;
                    if busy[i] {
                        count_error(&emitter, "overrun");
                        tracing::debug!(
                            device = %devices[i].settings.name,
                            "ssh: the previous poll is still queued or running; this one is skipped"
                        );
                    } else if jobs.send(i).is_ok() {
                        busy[i] = true;
                    }
                    let mut t = t + interval;
                    if t <= now {
                        let behind = (now - t).as_secs_f64() / interval.as_secs_f64();
                        t += interval.mul_f64(behind.floor() + 1.0);
                    }
                    due.push(Reverse((t, i)));
                }
            }
            Some(i) = done.recv() => busy[i] = false,
            _ = shutdown.wait() => break,
        }
    }
    drop(jobs);
    // The workers end first (their queue is closed), then the parser (its senders are gone).
    for t in threads.into_iter().rev() {
        let _ = tokio::task::spawn_blocking(move || t.join()).await;
    }
    tracing::info!("ssh: stopped");
}

/// What `logops-agent test ssh DEVICE` found.
pub struct TestOutcome {
    /// The device's settings.
    pub settings: SshDeviceSettings,
    /// Whether `[ssh] templates_dir` could be opened (and what went wrong if not).
    pub templates: Result<Option<std::path::PathBuf>, String>,
    /// The poll.
    pub polled: Polled,
    /// Its events.
    pub events: Vec<logops_common::Event<'static>>,
}

/// Polls one configured device once, on the calling thread.
pub fn test_device(config: &Config, name: &str) -> anyhow::Result<TestOutcome> {
    let ssh = config
        .ssh
        .as_ref()
        .ok_or_else(|| anyhow::anyhow!("the configuration has no [ssh] section"))?;
    let settings = crate::sources::device_to_test(
        "ssh.device",
        name,
        ssh.find(name),
        ssh.device.iter().map(|d| d.name.as_str()),
    )?;
    let (library, templates) = match &ssh.templates_dir {
        None => (None, Ok(None)),
        Some(dir) => match TemplateLibrary::open_for(dir, &[settings.platform.device_type]) {
            Ok(l) => (Some(l), Ok(Some(dir.clone()))),
            Err(e) => (None, Err(e.to_string())),
        },
    };
    let ts = logops_common::Timestamp::now();
    let mut polled = poll::poll(&settings, None);
    if let Some(lib) = &library {
        poll::parse(&mut polled, lib, settings.platform.device_type);
    }
    let maker = EventMaker::new(
        &settings,
        Arc::from(config.agent_id()),
        &config.agent.labels,
    );
    let events = maker.events(ts, &mut polled);
    Ok(TestOutcome {
        settings,
        templates,
        polled,
        events,
    })
}
