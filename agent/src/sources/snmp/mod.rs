//! The SNMP source (`[snmp]`): polls devices with SNMPv2c or SNMPv3 every `interval` and
//! emits their values as events (see [`convert`] for names, types and labels).
//!
//! - One task per device (not a thread): it sleeps until its next poll, takes one of
//!   `max_concurrent` permits, and makes its requests one at a time. Devices' first polls are
//!   spread over their interval.
//! - Every device shares a handful of UDP sockets ([`transport`]); answers are matched to
//!   requests by request id (msgID for v3) and sender. Timeouts and retries are ours
//!   (snmp2's session has neither).
//! - Walks use GETBULK and stop at the end of the subtree or at endOfMibView; a device that
//!   rejects GETBULK is walked with GETNEXT from then on ([`walk`]).
//! - SNMPv3: engine discovery, time synchronisation and re-discovery after a device restart
//!   ([`session`]); USM failures are named (unknown user, wrong auth password, wrong priv
//!   password, unsupported security level, not in time window). A wrong priv password makes
//!   net-snmp drop requests silently: after such a timeout the same user is probed without
//!   privacy, and an answer proves the priv password (or protocol) wrong.
//! - A failed poll still emits what was complete, with `snmp_up` 0; the error names the
//!   device and the OID, and is logged when it first happens (then at debug).
//! - Self-metrics: `logops_agent_collector_rounds_total{collector="snmp"}`,
//!   `logops_agent_collector_timeouts_total` (every timed-out attempt) and
//!   `logops_agent_collector_errors_total{reason}`.

pub mod codec;
pub mod convert;
pub mod error;
pub mod names;
pub mod oid;
pub mod poll;
pub mod session;
pub mod transport;
pub mod walk;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Semaphore;
use tokio::task::JoinSet;

pub use convert::SOURCE;
pub use error::SnmpError;

use crate::chunk::Chunk;
use crate::config::{Config, DeviceSettings, SnmpConfig};
use crate::metrics::{CollectorLabels, CollectorReasonLabels};
use crate::pipeline::{EmitError, Emitter, Shutdown};
use poll::Poller;
use session::{Counters, Secrets, Session};
use transport::Transport;

fn collector() -> CollectorLabels {
    CollectorLabels {
        collector: SOURCE.into(),
    }
}

/// Polls every configured device until shutdown.
pub async fn run(cfg: SnmpConfig, emitter: Emitter, mut shutdown: Shutdown) {
    let devices = cfg.devices();
    let transport = Transport::new(cfg.sockets);
    let permits = Arc::new(Semaphore::new(cfg.max_concurrent.max(1)));
    let n = devices.len().max(1);
    let mut tasks = JoinSet::new();
    for (i, d) in devices.into_iter().enumerate() {
        let secrets = match Secrets::load(&d.name, &d.credentials) {
            Ok(s) => s,
            Err(e) => {
                tracing::error!("snmp: {e}: this device is not polled");
                emitter
                    .metrics()
                    .collector_errors
                    .get_or_create(&CollectorReasonLabels {
                        collector: SOURCE.into(),
                        reason: e.reason().into(),
                    })
                    .inc();
                continue;
            }
        };
        let session = Session::new(&d, secrets, transport.clone(), i);
        let poller = Poller::new(&d, emitter.agent_id().clone(), emitter.agent_labels());
        let offset = d.interval.mul_f64(i as f64 / n as f64);
        tasks.spawn(device_loop(
            d.interval,
            offset,
            session,
            poller,
            permits.clone(),
            emitter.clone(),
            shutdown.clone(),
        ));
    }
    tracing::info!(
        devices = tasks.len(),
        max_concurrent = cfg.max_concurrent,
        "snmp: polling"
    );
    shutdown.wait().await;
    while tasks.join_next().await.is_some() {}
    let stats = transport.stats();
    tracing::info!(
        sent = stats.sent.load(std::sync::atomic::Ordering::Relaxed),
        unmatched = stats.unmatched.load(std::sync::atomic::Ordering::Relaxed),
        "snmp: stopped"
    );
}

fn record(emitter: &Emitter, counters: &Counters, error: Option<&SnmpError>) {
    let m = emitter.metrics();
    m.collector_rounds.get_or_create(&collector()).inc();
    if counters.timeouts > 0 {
        m.collector_timeouts
            .get_or_create(&collector())
            .inc_by(counters.timeouts);
    }
    if let Some(e) = error {
        m.collector_errors
            .get_or_create(&CollectorReasonLabels {
                collector: SOURCE.into(),
                reason: e.reason().into(),
            })
            .inc();
    }
}

async fn device_loop(
    interval: Duration,
    offset: Duration,
    mut session: Session,
    mut poller: Poller,
    permits: Arc<Semaphore>,
    emitter: Emitter,
    mut shutdown: Shutdown,
) {
    let mut next = tokio::time::Instant::now() + offset;
    let mut last_reason: Option<&'static str> = None;
    loop {
        tokio::select! {
            _ = tokio::time::sleep_until(next) => {}
            _ = shutdown.wait() => break,
        }
        let polled = tokio::select! {
            p = async {
                let _permit = permits.acquire().await;
                poller.poll(&mut session, false).await
            } => p,
            _ = shutdown.wait() => break,
        };
        record(&emitter, &polled.counters, polled.error.as_ref());
        let reason = polled.error.as_ref().map(SnmpError::reason);
        match &polled.error {
            Some(e) if reason != last_reason => tracing::warn!("snmp: {e}"),
            Some(e) => tracing::debug!("snmp: {e}"),
            None if last_reason.is_some() => {
                tracing::info!(device = session.device(), "snmp: the device answers again")
            }
            None => {}
        }
        last_reason = reason;
        let mut chunk = Chunk::with_capacity(polled.events.len() * 300);
        for e in &polled.events {
            chunk.push(e);
        }
        match emitter.emit(SOURCE, chunk, vec![], &shutdown).await {
            Ok(()) => {}
            Err(EmitError::ShuttingDown) => break,
            Err(e) => tracing::error!(
                device = session.device(),
                error = %e,
                "snmp: a poll could not be buffered and is lost"
            ),
        }
        next += interval;
        let now = tokio::time::Instant::now();
        if next <= now {
            // The poll (or the wait for a permit) took longer than the interval: skip the
            // rounds that are already late rather than polling back to back.
            let behind = (now - next).as_secs_f64() / interval.as_secs_f64();
            next += interval.mul_f64(behind.floor() + 1.0);
            tracing::debug!(
                device = session.device(),
                "snmp: a poll overran its interval; skipped to the next round"
            );
        }
    }
}

/// What `logops-agent test snmp DEVICE` found.
pub struct TestOutcome {
    /// The device's settings.
    pub settings: DeviceSettings,
    /// Where it was reached.
    pub peer: Option<SocketAddr>,
    /// `v2c`, `v3 authPriv user ...`.
    pub security: String,
    /// Whether walks used GETBULK (false after a fallback to GETNEXT).
    pub bulk: bool,
    /// The poll.
    pub polled: poll::Polled,
}

/// Polls one configured device once, diagnosing any timeout.
pub async fn test_device(config: &Config, name: &str) -> anyhow::Result<TestOutcome> {
    let snmp = config
        .snmp
        .as_ref()
        .ok_or_else(|| anyhow::anyhow!("the configuration has no [snmp] section"))?;
    let settings = crate::sources::device_to_test(
        "snmp.device",
        name,
        snmp.find(name),
        snmp.device.iter().map(|d| d.name.as_str()),
    )?;
    let secrets = Secrets::load(&settings.name, &settings.credentials)?;
    let transport = Transport::new(1);
    let mut session = Session::new(&settings, secrets, transport, 0);
    let mut poller = Poller::new(
        &settings,
        Arc::from(config.agent_id()),
        &config.agent.labels,
    );
    let polled = poller.poll(&mut session, true).await;
    Ok(TestOutcome {
        peer: session.peer(),
        security: session.describe_security(),
        bulk: poller.bulk(),
        settings,
        polled,
    })
}
