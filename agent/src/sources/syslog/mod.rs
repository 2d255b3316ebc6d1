//! The syslog receiver (`[syslog]`): UDP, TCP (LF framing or RFC 6587 octet counting, told
//! apart per frame), TLS (RFC 5425, rustls, optional client certificates) and a Unix
//! datagram socket; RFC 3164, RFC 5424 and Cisco's forms parsed into log events.
//!
//! - [`framing`]: a TCP/TLS byte stream cut into messages, with the size limit.
//! - [`dialect`]: the PRI, and the Cisco headers syslog_loose cannot read.
//! - [`parse`]: one message into one event (syslog_loose for RFC 3164 and 5424), written
//!   as its NDJSON line by the common writer (`logops_common::write`) without building an
//!   `Event`.
//! - [`udp`], [`unix`], [`datagram`]: datagram sockets, each read by a thread of its own
//!   (and appended by another, so receiving never stalls on the buffer's write); a full
//!   buffer drops (and counts) datagrams, since their senders cannot wait.
//! - [`stream`], [`tls`]: TCP and TLS connections, one task each; a full buffer stops the
//!   reading, which slows the sender down.
//! - [`batch`]: parsed events waiting to be emitted, and the self-metrics.
//!
//! Every listener is bound when the source starts, so a port in use or a certificate that
//! cannot be read fails the start with the address or the configuration key.

pub mod batch;
pub mod datagram;
pub mod dialect;
pub mod framing;
pub mod parse;
pub mod stream;
pub mod tls;
pub mod udp;
pub mod unix;

use std::io;
use std::sync::Arc;

use tokio::sync::Semaphore;

pub use parse::SOURCE;

use crate::config::SyslogConfig;
use crate::pipeline::{Emitter, Shutdown};
use batch::{Batch, TransportCounters};
use parse::Parser;

/// What every listener of the receiver shares.
pub struct Receiver {
    /// `[syslog]`.
    pub config: SyslogConfig,
    /// Where events go.
    pub emitter: Emitter,
    labels: logops_common::event::Labels<'static>,
}

impl Receiver {
    /// The receiver of `config`.
    pub fn new(config: SyslogConfig, emitter: Emitter) -> Self {
        let labels = crate::sources::merge_labels(emitter.agent_labels(), &config.labels);
        Receiver {
            config,
            emitter,
            labels,
        }
    }

    /// `max_message_size` in bytes.
    pub fn max_message_size(&self) -> usize {
        self.config.max_message_size.as_usize()
    }

    /// An empty batch with its own parser.
    pub fn batch(&self, counters: TransportCounters) -> Batch {
        Batch::new(
            Parser::new(
                self.config.timezone,
                self.emitter.agent_id(),
                self.labels.clone(),
            ),
            counters,
        )
    }
}

/// The receiver's threads (datagram sockets) and tasks (stream listeners).
#[derive(Default)]
pub struct Started {
    /// Datagram receive loops.
    pub threads: Vec<std::thread::JoinHandle<()>>,
    /// Stream listeners.
    pub tasks: Vec<tokio::task::JoinHandle<()>>,
}

fn context(what: String) -> impl FnOnce(io::Error) -> io::Error {
    move |e| io::Error::new(e.kind(), format!("{what}: {e}"))
}

/// Binds every configured listener and starts receiving (inside a Tokio runtime).
pub fn start(cfg: &SyslogConfig, emitter: &Emitter, shutdown: &Shutdown) -> io::Result<Started> {
    let r = Arc::new(Receiver::new(cfg.clone(), emitter.clone()));
    let mut started = Started::default();
    let max = r.max_message_size();
    let rcvbuf = cfg.udp_recv_buffer.as_usize();
    let linger = rcvbuf >= datagram::LINGER_MIN_RECV_BUFFER;
    // Every address is bound before anything starts: when one cannot be, nothing of this
    // configuration keeps a socket (a reload then goes back to the running one, which must
    // be able to bind its addresses again).
    let udp = match cfg.udp {
        Some(addr) => Some((
            addr,
            udp::Udp::bind(addr, rcvbuf).map_err(context(format!("syslog.udp: binding {addr}")))?,
        )),
        None => None,
    };
    let unix = match &cfg.unix {
        Some(path) => Some((
            path,
            unix::Unix::bind(path, rcvbuf)
                .map_err(context(format!("syslog.unix: creating {}", path.display())))?,
        )),
        None => None,
    };
    let permits = Arc::new(Semaphore::new(cfg.max_connections));
    let mut listeners = Vec::new();
    if let Some(addr) = cfg.tcp {
        listeners.push(stream::Listener {
            transport: "tcp",
            socket: bind_tcp(addr).map_err(context(format!("syslog.tcp: binding {addr}")))?,
            tls: None,
            permits: permits.clone(),
        });
    }
    if let Some(t) = &cfg.tls {
        let acceptor = tls::acceptor(t)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e.to_string()))?;
        listeners.push(stream::Listener {
            transport: "tls",
            socket: bind_tcp(t.listen)
                .map_err(context(format!("syslog.tls.listen: binding {}", t.listen)))?,
            tls: Some(acceptor),
            permits: permits.clone(),
        });
    }
    if let Some((addr, socket)) = udp {
        let batch = r.batch(TransportCounters::new(emitter.metrics(), "udp"));
        let (e, s) = (emitter.clone(), shutdown.clone());
        started.threads.push(
            std::thread::Builder::new()
                .name("syslog-udp".into())
                .spawn(move || datagram::run(socket, "udp", max, linger, batch, e, s))?,
        );
        tracing::info!(%addr, "syslog: receiving on UDP");
    }
    if let Some((path, socket)) = unix {
        let batch = r.batch(TransportCounters::new(emitter.metrics(), "unix"));
        let (e, s) = (emitter.clone(), shutdown.clone());
        started.threads.push(
            std::thread::Builder::new()
                .name("syslog-unix".into())
                .spawn(move || datagram::run(socket, "unix", max, linger, batch, e, s))?,
        );
        tracing::info!(path = %path.display(), "syslog: receiving on a Unix datagram socket");
    }
    for l in listeners {
        tracing::info!(transport = l.transport, addr = ?l.socket.local_addr().ok(), "syslog: listening");
        started
            .tasks
            .push(tokio::spawn(stream::serve(l, r.clone(), shutdown.clone())));
    }
    Ok(started)
}

/// A listening TCP socket with `SO_REUSEADDR` (a restart does not wait for old connections'
/// TIME_WAIT).
fn bind_tcp(addr: std::net::SocketAddr) -> io::Result<tokio::net::TcpListener> {
    let s = socket2::Socket::new(
        socket2::Domain::for_address(addr),
        socket2::Type::STREAM.cloexec(),
        Some(socket2::Protocol::TCP),
    )?;
    s.set_reuse_address(true)?;
    s.bind(&addr.into())?;
    s.listen(1024)?;
    s.set_nonblocking(true)?;
    tokio::net::TcpListener::from_std(s.into())
}
