//! The receive loop of a datagram socket (UDP or Unix), on a thread of its own: one datagram
//! is one message. Datagram senders cannot be made to wait, so a full buffer
//! (`when_full = "block"`) drops the batch and counts it ([`Emitter::try_emit`]).

use std::io;
use std::time::{Duration, Instant};

use logops_common::timestamp::Timestamp;

use super::batch::Batch;
use super::parse::{Origin, SOURCE};
use crate::pipeline::{EmitError, Emitter, Shutdown};

/// How long a receive waits before the loop looks at the shutdown signal and the batch.
const POLL: Duration = Duration::from_millis(50);
/// A batch is emitted at the latest this long after its first message.
const MAX_DELAY: Duration = Duration::from_millis(100);

/// A socket the loop reads.
pub trait DatagramSocket {
    /// Receives one datagram into `buf` (blocking at most [`POLL`]): its length and the
    /// sender (written into `peer`, which is left as it is when the sender did not change).
    fn recv(&mut self, buf: &mut [u8], peer: &mut String) -> io::Result<usize>;

    /// Called about once a second: reports what the kernel dropped since the last call.
    fn kernel_drops(&mut self) -> u64 {
        0
    }
}

/// Receives until shutdown. `max` is `max_message_size`.
pub fn run(
    mut socket: impl DatagramSocket,
    transport: &'static str,
    max: usize,
    mut batch: Batch,
    emitter: Emitter,
    shutdown: Shutdown,
) {
    // One byte more than the limit tells a datagram that was cut.
    let mut buf = vec![0u8; max.min(65_535) + 1];
    let mut peer = String::new();
    let mut first_at: Option<Instant> = None;
    let mut next_drop_check = Instant::now();
    let mut warned_full = false;
    loop {
        let stop = shutdown.is_triggered();
        let received = if stop {
            None
        } else {
            match socket.recv(&mut buf, &mut peer) {
                Ok(n) => Some(n),
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock
                            | io::ErrorKind::TimedOut
                            | io::ErrorKind::Interrupted
                    ) =>
                {
                    None
                }
                Err(e) => {
                    tracing::warn!(transport, error = %e, "syslog: receive failed");
                    std::thread::sleep(POLL);
                    None
                }
            }
        };
        if let Some(n) = received {
            let origin = Origin {
                transport,
                peer: &peer,
                received: Timestamp::now(),
            };
            let truncated = n > max;
            batch.push(&buf[..n.min(max)], truncated, &origin);
            first_at.get_or_insert_with(Instant::now);
        }
        let now = Instant::now();
        let due =
            received.is_none() || batch.is_full() || first_at.is_some_and(|t| now - t >= MAX_DELAY);
        if due && !batch.is_empty() {
            first_at = None;
            let chunk = batch.take();
            match emitter.try_emit(SOURCE, &chunk, &[]) {
                Ok(true) => warned_full = false,
                Ok(false) => {
                    batch.dropped_full(chunk.events());
                    if !warned_full {
                        tracing::warn!(
                            transport,
                            "syslog: the buffer is full: datagrams are dropped (counted in logops_agent_syslog_messages_dropped_total) until the shipper frees room"
                        );
                        warned_full = true;
                    }
                }
                Err(EmitError::ShuttingDown) => batch.dropped_at_shutdown(chunk.events()),
                Err(EmitError::Buffer(e)) => {
                    batch.dropped_full(chunk.events());
                    tracing::error!(transport, error = %e, "syslog: the buffer failed: these messages are lost");
                }
            }
        }
        if now >= next_drop_check {
            next_drop_check = now + Duration::from_secs(1);
            let d = socket.kernel_drops();
            if d > 0 {
                batch.dropped_kernel(d);
            }
        }
        if stop {
            return;
        }
    }
}
