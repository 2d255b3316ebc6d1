//! The shipper: cuts batches from the buffer and sends them to the ingest until each is
//! acknowledged.
//!
//! - A batch is cut (numbered, compressed, flushed) before its first send; every retry sends
//!   the identical bytes under the same id, so the ingest's dedupe makes retries safe.
//! - Only a 200 deletes a batch. 429/503 wait for `Retry-After`; network errors, timeouts,
//!   5xx, 408 and 401/403 (a key the operator can fix) retry with exponential backoff and
//!   jitter (backon), capped at `backoff_max`. 413 splits the batch in two halves that take
//!   its place in the send queue, so the order of the lines is kept. Any other 4xx
//!   moves it to the dead letters with the ingest's answer as the reason.

use std::collections::HashSet;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use backon::{BackoffBuilder, ExponentialBuilder};
use logops_common::batch::{Encoding, AGENT_HEADER, BATCH_HEADER, NDJSON};
use logops_common::sign;
use tokio::task::{JoinHandle, JoinSet};

use crate::buffer::{BatchPos, BatchRecord, Buffer, BufferError};
use crate::codec;
use crate::config::ShipConfig;
use crate::metrics::{AgentMetrics, ReasonLabels};
use crate::pipeline::{Emitter, Shutdown};

/// When the queued events are to be cut into a batch.
enum Due {
    /// Nothing is queued.
    Nothing,
    /// Now (enough events or bytes, or the oldest is `batch_max_age` old).
    Now,
    /// When the oldest will be `batch_max_age` old.
    After(Duration),
}

/// How long the loop waits before trying again after the buffer failed to cut a batch.
const CUT_RETRY: Duration = Duration::from_secs(1);

/// How one send ended.
#[derive(Debug)]
enum Outcome {
    /// 200: stored (or a duplicate of a stored batch).
    Acked,
    /// Try again later.
    Retry {
        after: Option<Duration>,
        reason: String,
    },
    /// 413: the batch must be split.
    TooLarge(String),
    /// A refusal retrying cannot fix.
    Rejected { status: u16, reason: String },
}

/// Everything a send needs; shared by the send tasks.
struct Sender {
    client: reqwest::Client,
    url: reqwest::Url,
    api_key: String,
    agent_id: Arc<str>,
    hmac: Option<Vec<u8>>,
    buffer: Buffer,
    emitter: Emitter,
    metrics: Arc<AgentMetrics>,
    backoff: ExponentialBuilder,
    zstd_level: i32,
    /// The TLS configuration of an https URL (also for [`crate::tls::probe`]).
    tls: Option<Arc<rustls::ClientConfig>>,
    has_client_cert: bool,
    connect_timeout: Duration,
}

/// The shipper.
pub struct Shipper {
    sender: Arc<Sender>,
    cfg: ShipConfig,
}

fn read_secret(
    file: Option<&Path>,
    env: Option<&str>,
    what: &str,
) -> anyhow::Result<Option<String>> {
    let value = match (file, env) {
        (Some(f), _) => std::fs::read_to_string(f)
            .with_context(|| format!("reading {what} file {}", f.display()))?,
        (None, Some(var)) => std::env::var(var)
            .with_context(|| format!("{what}: environment variable {var} is not set"))?,
        (None, None) => return Ok(None),
    };
    let value = value.trim().to_owned();
    anyhow::ensure!(!value.is_empty(), "{what} is empty");
    Ok(Some(value))
}

impl Shipper {
    /// Builds the HTTP client (rustls; extra CA; client certificate) and reads the secrets.
    pub fn new(cfg: &ShipConfig, emitter: Emitter) -> anyhow::Result<Shipper> {
        let api_key = read_secret(
            cfg.api_key_file.as_deref(),
            cfg.api_key_env.as_deref(),
            "ship.api_key",
        )?
        .context("ship: no API key (set api_key_file or api_key_env)")?;
        let hmac = read_secret(
            cfg.hmac_secret_file.as_deref(),
            cfg.hmac_secret_env.as_deref(),
            "ship.hmac_secret",
        )?
        .map(String::into_bytes);
        let mut builder = reqwest::Client::builder()
            .timeout(cfg.timeout.get())
            .connect_timeout(cfg.timeout.get().min(Duration::from_secs(10)))
            .pool_max_idle_per_host(cfg.max_in_flight)
            .user_agent(concat!("logops-agent/", env!("CARGO_PKG_VERSION")));
        let url = reqwest::Url::parse(&cfg.url).context("ship.url")?;
        let tls = if url.scheme() == "https" {
            let tls = crate::tls::client_config(cfg)?;
            builder = builder.tls_backend_preconfigured((*tls).clone());
            Some(tls)
        } else {
            // Plain http: no trust store to load (reqwest would read and parse every
            // system CA at startup: memory and code an http agent never uses). A redirect
            // to https would fail certificate verification, visibly.
            builder = builder.tls_certs_only([]);
            None
        };
        let client = builder.build().context("building the HTTP client")?;
        let backoff = ExponentialBuilder::default()
            .with_min_delay(cfg.backoff_min.get())
            .with_max_delay(cfg.backoff_max.get())
            .with_factor(2.0)
            .with_jitter()
            .without_max_times();
        Ok(Shipper {
            sender: Arc::new(Sender {
                client,
                api_key,
                agent_id: emitter.agent_id().clone(),
                hmac,
                buffer: emitter.buffer().clone(),
                metrics: emitter.metrics().clone(),
                emitter,
                backoff,
                zstd_level: cfg.zstd_level,
                tls,
                url,
                has_client_cert: cfg.client_cert.is_some(),
                connect_timeout: cfg.timeout.get().min(Duration::from_secs(10)),
            }),
            cfg: cfg.clone(),
        })
    }

    fn encoding(&self) -> Encoding {
        codec::encoding(self.cfg.compression)
    }

    /// When queued events should be cut into a batch: when there are enough events or
    /// bytes for a full one, when the oldest is `batch_max_age` old, or now if anything is
    /// queued and `early` (stopping; or the tail of a burst, see [`Shipper::run`]).
    fn due(&self, early: bool) -> anyhow::Result<Due> {
        let b = &self.sender.buffer;
        if b.queued_events() == 0 {
            return Ok(Due::Nothing);
        }
        if early || self.full_batch_queued() {
            return Ok(Due::Now);
        }
        let now = jiff::Timestamp::now().as_millisecond().max(0) as u64;
        let oldest = b.oldest_chunk_ms()?.unwrap_or(now);
        let age = Duration::from_millis(now.saturating_sub(oldest));
        Ok(match self.cfg.batch_max_age.get().checked_sub(age) {
            Some(left) if !left.is_zero() => Due::After(left),
            _ => Due::Now,
        })
    }

    /// Whether the queued events fill a batch.
    fn full_batch_queued(&self) -> bool {
        let b = &self.sender.buffer;
        b.queued_events() >= self.cfg.batch_max_events as u64
            || b.queued_bytes() >= self.cfg.batch_max_bytes.bytes()
    }

    /// Cuts a batch on the blocking pool (it reads the chunks and flushes the buffer to
    /// disk: not work for the runtime's threads).
    fn start_cut(&self) -> JoinHandle<Result<Option<BatchRecord>, BufferError>> {
        let buffer = self.sender.buffer.clone();
        let (events, bytes) = (
            self.cfg.batch_max_events,
            self.cfg.batch_max_bytes.as_usize(),
        );
        let (encoding, level) = (self.encoding(), self.cfg.zstd_level);
        tokio::task::spawn_blocking(move || buffer.cut(events, bytes, encoding, level))
    }

    /// Sends until `shutdown`; then, for at most `drain`, cuts and sends what is left.
    /// `abort` stops at once (a reload): sends in flight are abandoned. Whatever is still
    /// unsent stays in the buffer and is sent under the same ids by the next shipper.
    ///
    /// The loop sleeps until something happens — a source appended events (or dead letters
    /// were replayed: [`Emitter::replay`]), a send or a cut ended, the oldest queued event
    /// reaches `batch_max_age`, a stop — so an idle agent's shipper never wakes up.
    ///
    /// Cutting overlaps sending: while every send slot is busy, the next full batch is cut
    /// (numbered and flushed to disk) ahead, at most `max_in_flight` batches ahead, so a
    /// slot that frees up is refilled at once. The tail of a burst goes at once too: after a
    /// full batch, what is left is cut as soon as a slot is free instead of waiting for
    /// `batch_max_age` (which is for trickles, to gather them into fewer batches).
    pub async fn run(self, shutdown: Shutdown, abort: Shutdown, drain: Duration) {
        let (stop_sends, sends_stop) = Shutdown::new();
        // Batches being sent; any other stored batch (cut ahead, cut before the last stop,
        // split, or replayed from the dead letters while running) is sent when a slot is
        // free, in queue order.
        let mut in_flight: HashSet<BatchPos> = HashSet::new();
        let mut tasks: JoinSet<BatchPos> = JoinSet::new();
        let mut cutting: Option<JoinHandle<Result<Option<BatchRecord>, BufferError>>> = None;
        // The last cut was a full batch: a burst is being shipped.
        let mut burst = false;
        let mut draining_since: Option<Instant> = None;
        let mut shutdown = shutdown;
        let mut abort = abort;
        let mut first = true;
        // After a failed cut, cut again only then.
        let mut retry_cut_at: Option<Instant> = None;
        loop {
            let now = Instant::now();
            // When to look again without an event (a batch that comes due, a retry).
            let mut wake: Option<Instant> = retry_cut_at.filter(|t| *t > now);
            if abort.is_triggered() {
                stop_sends.trigger();
                while tasks.join_next().await.is_some() {}
                if let Some(c) = cutting.take() {
                    let _ = c.await;
                }
                break;
            }
            let draining = draining_since.is_some();
            // Fill the free send slots with stored batches, in queue order.
            let waiting = match self.sender.buffer.pending_positions() {
                Ok(queue) => queue
                    .into_iter()
                    .filter(|p| !in_flight.contains(p))
                    .collect::<Vec<_>>(),
                Err(e) => {
                    tracing::error!("reading unsent batches: {e}");
                    Vec::new()
                }
            };
            if first && !waiting.is_empty() {
                tracing::info!("sending batches already in the buffer first");
            }
            first = false;
            let mut waiting = waiting.into_iter();
            while tasks.len() < self.cfg.max_in_flight {
                let Some(pos) = waiting.next() else { break };
                let batch = match self.sender.buffer.batch(&pos) {
                    Ok(Some(b)) => b,
                    Ok(None) => continue,
                    Err(e) => {
                        tracing::error!("reading the batch at {pos}: {e}");
                        continue;
                    }
                };
                in_flight.insert(batch.pos.clone());
                let sender = self.sender.clone();
                let stop = sends_stop.clone();
                tasks.spawn(async move {
                    let pos = batch.pos.clone();
                    sender.deliver(batch, stop).await;
                    pos
                });
            }
            let ahead = waiting.count();
            // Cut the next batch: for a free slot, or ahead of the sends.
            if cutting.is_none()
                && ahead < self.cfg.max_in_flight
                && retry_cut_at.is_none_or(|t| t <= now)
            {
                retry_cut_at = None;
                let slot_free = tasks.len() < self.cfg.max_in_flight;
                let early = draining || (burst && slot_free && ahead == 0);
                match self.due(early) {
                    Ok(Due::Now) => {
                        burst = self.full_batch_queued();
                        cutting = Some(self.start_cut());
                    }
                    Ok(Due::After(d)) => wake = Some(now + d),
                    Ok(Due::Nothing) => burst = false,
                    Err(e) => {
                        tracing::error!("reading the buffer: {e:#}");
                        retry_cut_at = Some(now + CUT_RETRY);
                        wake = retry_cut_at;
                    }
                }
            }
            if let Some(since) = draining_since {
                let left = self.sender.buffer.queued_events() > 0
                    || !tasks.is_empty()
                    || cutting.is_some()
                    || ahead > 0;
                if !left {
                    tracing::info!("everything buffered was delivered");
                    break;
                }
                if since.elapsed() >= drain {
                    tracing::warn!("shutdown_timeout reached; unsent batches stay in the buffer for the next start");
                    stop_sends.trigger();
                    while tasks.join_next().await.is_some() {}
                    if let Some(c) = cutting.take() {
                        let _ = c.await;
                    }
                    break;
                }
            }
            tokio::select! {
                Some(done) = tasks.join_next(), if !tasks.is_empty() => {
                    if let Ok(pos) = done {
                        in_flight.remove(&pos);
                    }
                }
                cut = async { cutting.as_mut().expect("guarded").await }, if cutting.is_some() => {
                    cutting = None;
                    let failed = match cut {
                        Ok(Ok(Some(_))) => None,
                        // Events were counted but none were found: do not spin on it.
                        Ok(Ok(None)) => Some("no events found to cut".to_owned()),
                        Ok(Err(e)) => Some(e.to_string()),
                        Err(e) => Some(e.to_string()),
                    };
                    if let Some(e) = failed {
                        tracing::error!("cutting a batch: {e}");
                        retry_cut_at = Some(Instant::now() + CUT_RETRY);
                    }
                }
                _ = self.sender.emitter.data_arrived() => {}
                _ = sleep_until(wake), if wake.is_some() => {}
                _ = sleep_until(draining_since.map(|s| s + drain)), if draining => {}
                _ = shutdown.wait(), if !draining => {
                    draining_since = Some(Instant::now());
                }
                _ = abort.wait() => {}
            }
        }
        if let Err(e) = self.sender.buffer.flush() {
            tracing::error!("flushing the buffer: {e}");
        }
    }
}

impl Sender {
    /// Sends one batch until it is acknowledged, split (the halves are stored and picked up
    /// by the loop), dead-lettered, or `stop` (it stays in the buffer).
    async fn deliver(&self, batch: BatchRecord, mut stop: Shutdown) {
        let mut delays = self.backoff.build();
        let mut attempt = 0u32;
        loop {
            if attempt > 0 {
                self.metrics.batches_retried.inc();
            }
            attempt += 1;
            let started = Instant::now();
            // Stopping abandons a request in flight: the batch stays in the buffer and is
            // sent again under the same id (the ingest's dedupe makes that safe).
            let outcome = tokio::select! {
                o = self.send(&batch) => o,
                _ = stop.wait() => return,
            };
            self.metrics
                .send_seconds
                .observe(started.elapsed().as_secs_f64());
            let id = format!("{}:{}", self.agent_id, batch.seq);
            match outcome {
                Outcome::Acked => {
                    if let Err(e) = self.buffer.ack(&batch.pos) {
                        tracing::error!(batch = %id, "removing an acknowledged batch: {e}");
                    }
                    self.metrics.batches_sent.inc();
                    self.emitter.space_freed();
                    tracing::debug!(batch = %id, events = batch.events, "batch acknowledged");
                    return;
                }
                Outcome::TooLarge(reason) => match self.buffer.split(&batch.pos, self.zstd_level) {
                    Ok(Some((a, b))) => {
                        tracing::warn!(batch = %id, "the ingest found the batch too large; split into {} and {}", a.seq, b.seq);
                        return;
                    }
                    Ok(None) => return self.reject(&batch, 413, &reason),
                    Err(e) => {
                        tracing::error!(batch = %id, "splitting: {e}");
                        return self.reject(&batch, 413, &reason);
                    }
                },
                Outcome::Rejected { status, reason } => {
                    return self.reject(&batch, status, &reason)
                }
                Outcome::Retry { after, reason } => {
                    self.metrics
                        .batches_failed
                        .get_or_create(&ReasonLabels {
                            reason: reason_label(&reason),
                        })
                        .inc();
                    let wait =
                        after.unwrap_or_else(|| delays.next().unwrap_or(Duration::from_secs(60)));
                    tracing::warn!(batch = %id, attempt, wait_ms = wait.as_millis() as u64, "send failed, will retry: {reason}");
                    if stop.sleep(wait).await {
                        return;
                    }
                }
            }
        }
    }

    fn reject(&self, batch: &BatchRecord, status: u16, reason: &str) {
        tracing::error!(batch = %format!("{}:{}", self.agent_id, batch.seq), status, events = batch.events, "the ingest refused the batch; moved to the dead letters: {reason}");
        self.metrics.batches_dead.inc();
        self.metrics
            .batches_failed
            .get_or_create(&ReasonLabels {
                reason: format!("status_{status}"),
            })
            .inc();
        if let Err(e) = self.buffer.dead_letter(&batch.pos, status, reason) {
            tracing::error!("moving batch {} to the dead letters: {e}", batch.seq);
        }
        self.emitter.space_freed();
    }

    async fn send(&self, batch: &BatchRecord) -> Outcome {
        let mut req = self
            .client
            .post(self.url.clone())
            .bearer_auth(&self.api_key)
            .header(AGENT_HEADER, &*self.agent_id)
            .header(BATCH_HEADER, format!("{}:{}", self.agent_id, batch.seq))
            .header(reqwest::header::CONTENT_TYPE, NDJSON)
            .header(reqwest::header::CONTENT_ENCODING, batch.encoding.as_str());
        if let Some(secret) = &self.hmac {
            let ts = jiff::Timestamp::now().as_second();
            req = req.header(sign::TIMESTAMP_HEADER, ts.to_string()).header(
                sign::SIGNATURE_HEADER,
                sign::signature(secret, ts, &batch.body),
            );
        }
        let resp = match req.body(batch.body.clone()).send().await {
            Ok(r) => r,
            Err(e) => {
                let kind = if e.is_timeout() {
                    "timeout"
                } else if e.is_connect() {
                    "connect"
                } else {
                    "network"
                };
                let tls = self.tls_refusal(&e, kind).await;
                let reason = match tls {
                    Some(t) => format!(
                        "{kind}: {} ({})",
                        crate::tls::describe(&t, self.has_client_cert),
                        error_chain(&e)
                    ),
                    None => format!("{kind}: {}", error_chain(&e)),
                };
                return Outcome::Retry {
                    after: None,
                    reason,
                };
            }
        };
        let status = resp.status().as_u16();
        let retry_after = resp
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        let text = resp.text().await.unwrap_or_default();
        let reason = format!(
            "HTTP {status}: {}",
            text.trim().chars().take(1024).collect::<String>()
        );
        match status {
            200..=299 => Outcome::Acked,
            413 => Outcome::TooLarge(reason),
            429 | 503 => Outcome::Retry {
                after: retry_after,
                reason,
            },
            408 | 500..=599 => Outcome::Retry {
                after: retry_after,
                reason,
            },
            401 | 403 => Outcome::Retry {
                after: None,
                reason: format!("{reason} (check ship.api_key_file / api_key_env)"),
            },
            _ => Outcome::Rejected { status, reason },
        }
    }
}

impl Sender {
    /// The TLS error behind a failed send: from the error's chain, or, when a connection
    /// ended without one (TLS 1.3 refuses a client certificate after the handshake, and
    /// the HTTP client loses that alert), from one probing connection.
    async fn tls_refusal(&self, e: &reqwest::Error, kind: &str) -> Option<rustls::Error> {
        if let Some(t) = crate::tls::refusal_in_chain(e) {
            return Some(t);
        }
        let config = self.tls.clone()?;
        if kind != "network" {
            // Timeouts and refused connections are what they say.
            return None;
        }
        crate::tls::probe(config, &self.url, self.connect_timeout).await
    }
}

/// Sleeps until `at` (`None`: never; the branch using it is disabled then).
async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at.into()).await,
        None => std::future::pending().await,
    }
}

/// A short label for the failure metric.
fn reason_label(reason: &str) -> String {
    if let Some(rest) = reason.strip_prefix("HTTP ") {
        return format!(
            "status_{}",
            rest.chars()
                .take_while(char::is_ascii_digit)
                .collect::<String>()
        );
    }
    reason.split(':').next().unwrap_or("network").to_owned()
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}
