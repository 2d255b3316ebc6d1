//! The running agent: buffer, sources, shipper and the local endpoint, with SIGTERM (drain
//! and exit) and SIGHUP (reload the configuration without losing or doubling anything).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use tokio::signal::unix::{signal, SignalKind};

use crate::buffer::{Buffer, BufferOptions};
use crate::config::Config;
use crate::metrics::AgentMetrics;
use crate::pipeline::{Emitter, Shutdown};
use crate::shipper::Shipper;
use crate::sources::stdin::StdinFeed;

/// The buffer directory under `data_dir`.
pub fn buffer_dir(config: &Config) -> PathBuf {
    config.agent.data_dir.join("buffer")
}

/// Opens the buffer a configuration names.
pub fn open_buffer(config: &Config) -> anyhow::Result<Buffer> {
    let opts = BufferOptions {
        cache_bytes: config.buffer.cache_size.bytes(),
        flush_interval: config.buffer.flush_interval.get(),
        zstd_level: config.ship.zstd_level,
    };
    Ok(Buffer::open(&buffer_dir(config), &opts)?)
}

/// What ended a configuration's run.
enum Stop {
    Terminate(&'static str),
    Reload,
}

/// The emitter and shipper of a configuration: built (secrets and certificates read) before
/// the configuration is used, so that a SIGHUP with one that cannot be used keeps the
/// running one, and used as built.
fn prepare(
    config: &Config,
    buffer: &Buffer,
    metrics: &Arc<AgentMetrics>,
) -> anyhow::Result<(Emitter, Shipper)> {
    let emitter = Emitter::new(
        buffer.clone(),
        config.buffer.max_size.bytes(),
        config.buffer.when_full,
        metrics.clone(),
        Arc::from(config.agent_id()),
        config.agent.labels.clone(),
    );
    let shipper = Shipper::new(&config.ship, emitter.clone())?;
    Ok((emitter, shipper))
}

/// How long after its sources start the agent releases the code pages of its start-up.
const START_UP_SETTLE: std::time::Duration = std::time::Duration::from_secs(15);

fn release_start_up_pages() {
    tokio::task::spawn_blocking(|| match crate::footprint::release_start_up_pages() {
        Ok(r) => tracing::debug!(
            mappings = r.mappings,
            bytes = r.bytes,
            "released the code pages of start-up"
        ),
        Err(e) => tracing::debug!("cannot release the code pages of start-up: {e}"),
    });
}

/// Runs the agent until SIGTERM or SIGINT, or with `stdin`, until the end of its standard
/// input (see [`crate::sources::stdin`]: then it fails if what was read could not all be
/// sent within `ship.shutdown_timeout`).
pub async fn run(config_path: &Path, first: Config, stdin: bool) -> anyhow::Result<()> {
    let buffer = open_buffer(&first)
        .with_context(|| format!("opening the buffer in {}", first.agent.data_dir.display()))?;
    let metrics = Arc::new(AgentMetrics::new());
    let mut term = signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
    let mut int = signal(SignalKind::interrupt()).context("installing the SIGINT handler")?;
    let mut hup = signal(SignalKind::hangup()).context("installing the SIGHUP handler")?;
    let data_dir = first.agent.data_dir.clone();
    let stdin = match stdin {
        true => Some(StdinFeed::start().context("starting to read stdin")?),
        false => None,
    };
    let mut prepared = Some(prepare(&first, &buffer, &metrics)?);
    let mut config = first;
    // After a reload, the configuration it replaced, until the new one's sources started.
    let mut previous: Option<Config> = None;
    loop {
        let (emitter, shipper) = prepared.take().expect("prepared before each run");
        let agent_id = emitter.agent_id().clone();
        let (stop_sources, sources_stop) = Shutdown::new();
        let (drain_shipper, shipper_drain) = Shutdown::new();
        let (abort_shipper, shipper_abort) = Shutdown::new();
        let (stop_admin, admin_stop) = Shutdown::new();
        let drain = config.ship.shutdown_timeout.get();
        let ship_task = tokio::spawn(shipper.run(shipper_drain, shipper_abort, drain));
        let admin = config.self_metrics.enabled.then(|| {
            tokio::spawn(crate::admin::serve(
                config.self_metrics.listen,
                emitter.clone(),
                admin_stop,
            ))
        });
        let sources = match crate::sources::start_all(
            &config,
            &emitter,
            &sources_stop,
            stdin.as_ref(),
        ) {
            Ok(s) => s,
            Err(failure) => {
                // Nothing of this configuration may outlive it: stop what started.
                stop_sources.trigger();
                failure.started.join().await;
                abort_shipper.trigger();
                stop_admin.trigger();
                let _ = ship_task.await;
                if let Some(a) = admin {
                    let _ = a.await;
                }
                let Some(previous) = previous.take() else {
                    return Err(anyhow::Error::new(failure.error).context("starting the sources"));
                };
                tracing::error!(
                    "SIGHUP: the new configuration's sources cannot start ({}): going back to the previous configuration",
                    failure.error
                );
                prepared = Some(prepare(&previous, &buffer, &metrics)?);
                config = previous;
                continue;
            }
        };
        // It runs: a later reload that cannot start goes back to this one.
        previous = None;
        let input_ended = async {
            match &stdin {
                Some(feed) => feed.ended().await,
                None => std::future::pending().await,
            }
        };
        tokio::pin!(input_ended);
        tracing::info!(agent = %agent_id, sources = sources.len(), url = %config.ship.url, "logops-agent running");

        // Start-up is over once the sources have run a little: give back the code pages
        // only it used (see crate::footprint).
        let settled = tokio::time::sleep(START_UP_SETTLE);
        tokio::pin!(settled);
        let mut released = false;
        let stop = loop {
            tokio::select! {
                _ = &mut settled, if !released => {
                    released = true;
                    release_start_up_pages();
                }
                _ = term.recv() => break Stop::Terminate("SIGTERM"),
                _ = int.recv() => break Stop::Terminate("SIGINT"),
                _ = &mut input_ended => break Stop::Terminate("end of stdin"),
                _ = hup.recv() => match Config::load(config_path) {
                    Err(errors) => tracing::error!("SIGHUP: the new configuration is not valid, keeping the running one:\n{errors}"),
                    // Secrets and certificates are read now, while the old configuration
                    // still runs: a key file that cannot be read keeps it running.
                    Ok(new) => match prepare(&new, &buffer, &metrics) {
                        Err(e) => tracing::error!("SIGHUP: the new [ship] section cannot be used, keeping the running configuration: {e:#}"),
                        Ok(next) => {
                            if new.agent.data_dir != data_dir {
                                tracing::warn!("SIGHUP: agent.data_dir changed; that takes a restart (still using {})", data_dir.display());
                            }
                            prepared = Some(next);
                            previous = Some(std::mem::replace(&mut config, new));
                            break Stop::Reload;
                        }
                    },
                },
            }
        };
        // Sources first: their last chunks and positions land in the buffer together.
        stop_sources.trigger();
        sources.join().await;
        match stop {
            Stop::Terminate(signal) => {
                tracing::info!(
                    signal,
                    "stopping: sending what is buffered (up to ship.shutdown_timeout)"
                );
                drain_shipper.trigger();
                stop_admin.trigger();
                let _ = ship_task.await;
                if let Some(a) = admin {
                    let _ = a.await;
                }
                buffer.flush()?;
                if signal == "end of stdin" {
                    let left = buffer.stats()?;
                    let events = left.queued_events + left.batch_events;
                    anyhow::ensure!(
                        events == 0,
                        "{events} event(s) are still in the buffer after ship.shutdown_timeout (is the ingest reachable?): they are sent by the next start with data_dir {}",
                        data_dir.display()
                    );
                    tracing::info!("stopped: everything read from stdin was sent");
                    return Ok(());
                }
                tracing::info!("stopped");
                return Ok(());
            }
            Stop::Reload => {
                // The old shipper stops at once (no drain) and is awaited before the new
                // one starts, so that two never send side by side. Sends in flight are
                // abandoned, not lost: their batches stay in the buffer and the new
                // shipper sends them first, under the same ids.
                abort_shipper.trigger();
                stop_admin.trigger();
                let _ = ship_task.await;
                if let Some(a) = admin {
                    let _ = a.await;
                }
                tracing::info!("configuration reloaded");
            }
        }
    }
}
