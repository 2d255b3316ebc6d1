//! The receive loop of a datagram socket (UDP or Unix), on a thread of its own: one datagram
//! is one message. Datagram senders cannot be made to wait, so a full buffer
//! (`when_full = "block"`) drops the batch and counts it ([`Emitter::try_emit`]).

use std::io;
use std::time::{Duration, Instant};

use logops_common::timestamp::Timestamp;

use super::batch::{Batch, TransportCounters};
use super::parse::{Origin, SOURCE};
use crate::chunk::Chunk;
use crate::pipeline::{EmitError, Emitter, Shutdown};

/// How long a wait for the first datagram lasts before the loop looks at the shutdown
/// signal.
const POLL: Duration = Duration::from_millis(50);
/// Once datagrams flow, the loop sleeps this long between two drains of the socket, so one
/// wake-up reads many datagrams (the kernel's receive buffer holds them meanwhile) ...
const LINGER: Duration = Duration::from_millis(5);
/// ... and appends at the latest this long after the first one.
const MAX_DELAY: Duration = Duration::from_millis(50);
/// Lingering needs room in the kernel's buffer: below this `udp_recv_buffer` every datagram
/// is read as soon as it comes.
pub const LINGER_MIN_RECV_BUFFER: usize = 256 * 1024;

/// A socket the loop reads. It is non-blocking.
pub trait DatagramSocket: std::os::fd::AsRawFd {
    /// Receives one datagram into `buf` if one is waiting (`WouldBlock` if not): its length
    /// and the sender (written into `peer`, which is left as it is when the sender did not
    /// change).
    fn recv(&mut self, buf: &mut [u8], peer: &mut String) -> io::Result<usize>;

    /// Called about once a second: reports what the kernel dropped since the last call.
    fn kernel_drops(&mut self) -> u64 {
        0
    }
}

/// Waits up to `timeout` for the socket to be readable.
fn wait_readable(fd: &impl std::os::fd::AsRawFd, timeout: Duration) {
    let mut p = libc::pollfd {
        fd: fd.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one valid pollfd for the duration of the call.
    unsafe { libc::poll(&mut p, 1, timeout.as_millis() as libc::c_int) };
}

/// Chunks waiting for the append thread, at most.
const APPEND_QUEUE: usize = 8;

/// Appends chunks until the receiving side is done; a full buffer drops them (counted).
fn append_all(
    chunks: std::sync::mpsc::Receiver<Chunk>,
    transport: &str,
    emitter: &Emitter,
    counters: &TransportCounters,
) {
    let mut warned_full = false;
    for chunk in chunks {
        match emitter.try_emit(SOURCE, &chunk, &[]) {
            Ok(true) => warned_full = false,
            Ok(false) => {
                counters.dropped_full(chunk.events());
                if !warned_full {
                    tracing::warn!(
                        transport,
                        "syslog: the buffer is full: datagrams are dropped (counted in logops_agent_syslog_messages_dropped_total) until the shipper frees room"
                    );
                    warned_full = true;
                }
            }
            Err(EmitError::ShuttingDown) => counters.dropped_at_shutdown(chunk.events()),
            Err(EmitError::Buffer(e)) => {
                counters.dropped_full(chunk.events());
                tracing::error!(transport, error = %e, "syslog: the buffer failed: these messages are lost");
            }
        }
    }
}

/// Receives until shutdown. `max` is `max_message_size`; `linger`: whether to sleep
/// between drains (see [`LINGER_MIN_RECV_BUFFER`]).
pub fn run(
    mut socket: impl DatagramSocket,
    transport: &'static str,
    max: usize,
    linger: bool,
    mut batch: Batch,
    emitter: Emitter,
    shutdown: Shutdown,
) {
    // One byte more than the limit tells a datagram that was cut.
    let mut buf = vec![0u8; max.min(65_535) + 1];
    let mut peer = String::new();
    let mut next_drop_check = Instant::now();
    // Appending (compression, the buffer's write) happens on a thread of its own, so the
    // receiving never stalls while the kernel's buffer fills up.
    let (to_appender, chunks) = std::sync::mpsc::sync_channel::<Chunk>(APPEND_QUEUE);
    let counters = batch.counters().clone();
    let appender = std::thread::Builder::new()
        .name(format!("syslog-{transport}-append"))
        .spawn(move || append_all(chunks, transport, &emitter, &counters));
    let appender = match appender {
        Ok(a) => a,
        Err(e) => {
            tracing::error!(transport, error = %e, "syslog: cannot start the append thread: not receiving");
            return;
        }
    };
    let emit = |batch: &mut Batch| {
        if !batch.is_empty() {
            let _ = to_appender.send(batch.take());
        }
    };
    loop {
        if shutdown.is_triggered() {
            emit(&mut batch);
            drop(to_appender);
            let _ = appender.join();
            return;
        }
        wait_readable(&socket, POLL);
        // Drain what is waiting; while it flows, sleep a little and drain again.
        let started = Instant::now();
        let mut slept = false;
        loop {
            let mut got = 0usize;
            loop {
                match socket.recv(&mut buf, &mut peer) {
                    Ok(n) => {
                        let origin = Origin {
                            transport,
                            peer: &peer,
                            received: Timestamp::now(),
                        };
                        batch.push(&buf[..n.min(max)], n > max, &origin);
                        got += 1;
                        if batch.is_full() {
                            emit(&mut batch);
                        }
                    }
                    Err(e)
                        if matches!(
                            e.kind(),
                            io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
                        ) =>
                    {
                        break
                    }
                    Err(e) => {
                        tracing::warn!(transport, error = %e, "syslog: receive failed");
                        std::thread::sleep(POLL);
                        break;
                    }
                }
            }
            if !linger
                || (slept && got == 0)
                || started.elapsed() >= MAX_DELAY
                || shutdown.is_triggered()
            {
                break;
            }
            std::thread::sleep(LINGER);
            slept = true;
        }
        emit(&mut batch);
        let now = Instant::now();
        if now >= next_drop_check {
            next_drop_check = now + Duration::from_secs(1);
            let d = socket.kernel_drops();
            if d > 0 {
                batch.dropped_kernel(d);
            }
        }
    }
}
