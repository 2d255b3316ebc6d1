//! TCP and TLS: the accept loop (at most `max_connections` open, TCP and TLS together) and
//! one task per connection that reads, cuts frames ([`Framer`]), parses and emits.
//!
//! Back-pressure: a connection emits what one read brought before it reads again, and
//! `emit` waits while the buffer is full (`when_full = "block"`), so the connection stops
//! reading, the kernel's receive window fills and the sender is slowed down: nothing is
//! dropped. A connection that sends nothing for `idle_timeout` is closed.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use logops_common::timestamp::Timestamp;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;

use super::batch::{Batch, TransportCounters};
use super::framing::Framer;
use super::parse::{Origin, SOURCE};
use super::Receiver;
use crate::metrics::{TransportLabels, TransportReasonLabels};
use crate::pipeline::{EmitError, Shutdown};

/// Bytes asked of one read.
const READ_SIZE: usize = 64 * 1024;
/// After a read, how long a connection waits for more before appending ...
const LINGER: Duration = Duration::from_millis(5);
/// ... and at most in all (a message waits no longer than this to be appended).
const MAX_LINGER: Duration = Duration::from_millis(50);
/// Longest TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(30);
/// Refusals are logged at most this often per listener (all are counted).
const WARN_EVERY: Duration = Duration::from_secs(10);

/// One listener: TCP, or TCP with TLS.
pub struct Listener {
    /// `tcp` or `tls`.
    pub transport: &'static str,
    /// The bound socket.
    pub socket: TcpListener,
    /// The TLS acceptor (`tls` only).
    pub tls: Option<TlsAcceptor>,
    /// Shared by the TCP and TLS listeners: `max_connections` permits.
    pub permits: Arc<Semaphore>,
}

/// A listener's metrics.
struct ConnMetrics {
    accepted: Counter,
    open: Gauge,
    refused_full: Counter,
    refused_tls: Counter,
    idle_closed: Counter,
    /// When a failed handshake was last logged (a scanner must not flood the log).
    last_tls_warn: std::sync::Mutex<Option<Instant>>,
}

/// Whether a warning last given at `*last` may be given again now (and notes it).
fn warn_due(last: &mut Option<Instant>) -> bool {
    let now = Instant::now();
    let due = last.is_none_or(|t| now - t >= WARN_EVERY);
    if due {
        *last = Some(now);
    }
    due
}

impl ConnMetrics {
    fn new(r: &Receiver, transport: &str) -> Self {
        let m = r.emitter.metrics();
        let t = TransportLabels {
            transport: transport.to_owned(),
        };
        let refused = |reason: &str| {
            m.syslog_connections_refused
                .get_or_create(&TransportReasonLabels {
                    transport: transport.to_owned(),
                    reason: reason.to_owned(),
                })
                .clone()
        };
        ConnMetrics {
            accepted: m.syslog_connections.get_or_create(&t).clone(),
            open: m.syslog_connections_open.get_or_create(&t).clone(),
            refused_full: refused("max_connections"),
            refused_tls: refused("tls_handshake"),
            idle_closed: m.syslog_connections_idle_closed.get_or_create(&t).clone(),
            last_tls_warn: std::sync::Mutex::new(None),
        }
    }
}

/// Accepts connections until shutdown, then waits for them to finish.
pub async fn serve(l: Listener, r: Arc<Receiver>, mut shutdown: Shutdown) {
    let metrics = Arc::new(ConnMetrics::new(&r, l.transport));
    let counters = TransportCounters::new(r.emitter.metrics(), l.transport);
    let mut conns = JoinSet::new();
    let mut last_warn: Option<Instant> = None;
    loop {
        tokio::select! {
            accepted = l.socket.accept() => match accepted {
                Ok((stream, peer)) => {
                    let Ok(permit) = l.permits.clone().try_acquire_owned() else {
                        metrics.refused_full.inc();
                        if warn_due(&mut last_warn) {
                            tracing::warn!(transport = l.transport, %peer, max_connections = r.config.max_connections,
                                "syslog: too many connections: closed this one (raise syslog.max_connections)");
                        }
                        continue;
                    };
                    conns.spawn(connection(
                        stream,
                        peer,
                        permit,
                        l.transport,
                        l.tls.clone(),
                        r.clone(),
                        counters.clone(),
                        metrics.clone(),
                        shutdown.clone(),
                    ));
                }
                Err(e) => {
                    // Out of descriptors and the like: wait a little, keep serving.
                    tracing::warn!(transport = l.transport, error = %e, "syslog: accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
            _ = shutdown.wait() => break,
        }
    }
    while conns.join_next().await.is_some() {}
}

#[allow(clippy::too_many_arguments)]
async fn connection(
    stream: TcpStream,
    peer: SocketAddr,
    _permit: OwnedSemaphorePermit,
    transport: &'static str,
    tls: Option<TlsAcceptor>,
    r: Arc<Receiver>,
    counters: TransportCounters,
    metrics: Arc<ConnMetrics>,
    shutdown: Shutdown,
) {
    metrics.accepted.inc();
    metrics.open.inc();
    let batch = r.batch(counters);
    match tls {
        None => read_loop(stream, peer, transport, batch, &r, &metrics, shutdown).await,
        Some(acceptor) => {
            match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                Ok(Ok(s)) => read_loop(s, peer, transport, batch, &r, &metrics, shutdown).await,
                Ok(Err(e)) => handshake_failed(&metrics, peer, &e.to_string()),
                Err(_) => handshake_failed(&metrics, peer, "timed out"),
            }
        }
    }
    metrics.open.dec();
}

/// Counts a refused TLS handshake and logs it (at most every [`WARN_EVERY`], then at debug).
fn handshake_failed(metrics: &ConnMetrics, peer: SocketAddr, error: &str) {
    metrics.refused_tls.inc();
    let due = warn_due(
        &mut metrics
            .last_tls_warn
            .lock()
            .unwrap_or_else(|p| p.into_inner()),
    );
    if due {
        tracing::warn!(%peer, error, "syslog: TLS handshake failed: connection closed (counted in logops_agent_syslog_connections_refused_total)");
    } else {
        tracing::debug!(%peer, error, "syslog: TLS handshake failed: connection closed");
    }
}

/// Why a connection's read loop ended.
#[derive(Debug, PartialEq, Eq)]
enum End {
    Eof,
    Idle,
    Shutdown,
}

async fn read_loop<S: AsyncRead + Unpin>(
    mut stream: S,
    peer: SocketAddr,
    transport: &'static str,
    mut batch: Batch,
    r: &Receiver,
    metrics: &ConnMetrics,
    mut shutdown: Shutdown,
) {
    let peer_text = peer.to_string();
    let mut framer = Framer::new(r.max_message_size());
    let idle = r.config.idle_timeout.get();
    tracing::debug!(transport, %peer, "syslog: connection opened");
    let end = loop {
        let read = tokio::select! {
            read = tokio::time::timeout(idle, stream.read_buf(framer.read_buffer(READ_SIZE))) => read,
            _ = shutdown.wait() => break End::Shutdown,
        };
        let mut eof = match read {
            Err(_) => break End::Idle,
            Ok(result) => ended(result, transport, peer),
        };
        let origin = Origin {
            transport,
            peer: &peer_text,
            received: Timestamp::now(),
        };
        cut(&mut framer, &mut batch, eof, &origin);
        // Under load more is already waiting, or arrives within a few milliseconds: it goes
        // into the same chunk, read in larger pieces (far fewer reads, wake-ups and appends),
        // as long as the chunk has room and each pause brought more.
        let lingering_since = Instant::now();
        let mut slept = false;
        loop {
            let before = batch.len();
            while !eof && !batch.is_full() {
                match poll_once(stream.read_buf(framer.read_buffer(READ_SIZE))) {
                    None => break,
                    Some(result) => eof = ended(result, transport, peer),
                }
                cut(&mut framer, &mut batch, eof, &origin);
            }
            let quiet = slept && batch.len() == before;
            if eof
                || batch.is_full()
                || quiet
                || lingering_since.elapsed() >= MAX_LINGER
                || shutdown.is_triggered()
            {
                break;
            }
            tokio::time::sleep(LINGER).await;
            slept = true;
        }
        if !emit(&mut batch, r, &shutdown).await {
            break End::Shutdown;
        }
        if eof {
            break End::Eof;
        }
    };
    if end != End::Eof {
        // What arrived of an unfinished message is kept.
        let origin = Origin {
            transport,
            peer: &peer_text,
            received: Timestamp::now(),
        };
        cut(&mut framer, &mut batch, true, &origin);
        emit(&mut batch, r, &shutdown).await;
    }
    if end == End::Idle {
        metrics.idle_closed.inc();
        tracing::debug!(transport, %peer, "syslog: connection idle for syslog.idle_timeout: closed");
    } else {
        tracing::debug!(transport, %peer, ?end, "syslog: connection closed");
    }
}

/// Whether a read ended the stream (0 bytes, or an error: a reset, or a TLS peer that
/// closed without close_notify).
fn ended(result: std::io::Result<usize>, transport: &str, peer: SocketAddr) -> bool {
    match result {
        Ok(n) => n == 0,
        Err(e) => {
            tracing::debug!(transport, %peer, error = %e, "syslog: connection read failed");
            true
        }
    }
}

/// Cuts what the framer holds into messages of the batch (all of it at the end).
fn cut(framer: &mut Framer, batch: &mut Batch, eof: bool, origin: &Origin<'_>) {
    if eof {
        while let Some(f) = framer.finish() {
            batch.push(f.bytes, f.truncated, origin);
        }
    } else {
        while let Some(f) = framer.next_frame() {
            batch.push(f.bytes, f.truncated, origin);
        }
    }
}

/// Polls a future once: its output if it is ready now, `None` if it would wait (a read
/// future may be dropped then: nothing was read).
fn poll_once<F: std::future::Future>(f: F) -> Option<F::Output> {
    let mut f = std::pin::pin!(f);
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    match f.as_mut().poll(&mut cx) {
        std::task::Poll::Ready(v) => Some(v),
        std::task::Poll::Pending => None,
    }
}

/// Emits the batch, waiting while the buffer is full; false when the agent is stopping.
async fn emit(batch: &mut Batch, r: &Receiver, shutdown: &Shutdown) -> bool {
    if batch.is_empty() {
        return true;
    }
    let chunk = batch.take();
    let events = chunk.events();
    match r.emitter.emit(SOURCE, chunk, vec![], shutdown).await {
        Ok(()) => true,
        Err(EmitError::ShuttingDown) => {
            batch.dropped_at_shutdown(events);
            false
        }
        Err(EmitError::Buffer(e)) => {
            batch.dropped_full(events);
            tracing::error!(error = %e, "syslog: the buffer failed: these messages are lost");
            true
        }
    }
}
