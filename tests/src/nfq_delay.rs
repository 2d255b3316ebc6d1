//! [`DelayHolder`]: a userspace stand-in for `netem delay` (this kernel has no netem): holds
//! every packet of an NFQUEUE for a fixed time, then accepts it. Meant for probe rates
//! (ICMP), not bulk traffic.
//!
//! Usage inside a namespace: `iptables -A OUTPUT -p icmp -j NFQUEUE --queue-num Q
//! --queue-bypass` (nftables' `queue` is not in this kernel; `--queue-bypass` lets packets
//! through undelayed while nothing listens), then `DelayHolder::start(ns, Q, delay)`.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;

/// Holds the packets of one NFQUEUE for `delay`; stops (accepting whatever it still holds)
/// when dropped.
pub struct DelayHolder {
    stop: Arc<AtomicBool>,
    held: Arc<AtomicU64>,
    /// Sum and maximum of the times packets were actually held, in nanoseconds.
    held_ns: Arc<(AtomicU64, AtomicU64)>,
    thread: Option<std::thread::JoinHandle<anyhow::Result<()>>>,
}

impl DelayHolder {
    /// Binds queue `queue` inside namespace `ns` and starts holding. Returns once bound.
    pub fn start(ns: &str, queue: u16, delay: Duration) -> anyhow::Result<DelayHolder> {
        let path = format!("/run/netns/{ns}");
        let file = std::fs::File::open(&path).with_context(|| format!("opening {path}"))?;
        let stop = Arc::new(AtomicBool::new(false));
        let held = Arc::new(AtomicU64::new(0));
        let held_ns = Arc::new((AtomicU64::new(0), AtomicU64::new(0)));
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let thread = {
            let (stop, held, held_ns) = (stop.clone(), held.clone(), held_ns.clone());
            std::thread::spawn(move || -> anyhow::Result<()> {
                use std::os::fd::AsRawFd;
                // SAFETY: a valid namespace descriptor; setns affects only this thread.
                if unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
                    let e = std::io::Error::last_os_error();
                    let _ = ready_tx.send(Err(anyhow::anyhow!("setns: {e}")));
                    return Ok(());
                }
                let bound = (|| -> anyhow::Result<nfq::Queue> {
                    let mut q = nfq::Queue::open().context("opening a netfilter queue socket")?;
                    q.bind(queue)
                        .with_context(|| format!("binding NFQUEUE {queue}"))?;
                    q.set_nonblocking(true);
                    Ok(q)
                })();
                let mut q = match bound {
                    Ok(q) => {
                        let _ = ready_tx.send(Ok(()));
                        q
                    }
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                        return Ok(());
                    }
                };
                hold(&mut q, delay, &stop, &held, &held_ns)?;
                let _ = q.unbind(queue);
                Ok(())
            })
        };
        ready_rx
            .recv()
            .context("the holder thread ended before binding")??;
        Ok(DelayHolder {
            stop,
            held,
            held_ns,
            thread: Some(thread),
        })
    }

    /// Packets held (and released) so far.
    pub fn held(&self) -> u64 {
        self.held.load(Ordering::Relaxed)
    }

    /// The mean and the longest time packets were really held (at least the delay; more
    /// when this thread was not scheduled in time), in seconds.
    pub fn held_times(&self) -> (f64, f64) {
        let n = self.held().max(1) as f64;
        (
            self.held_ns.0.load(Ordering::Relaxed) as f64 / n / 1e9,
            self.held_ns.1.load(Ordering::Relaxed) as f64 / 1e9,
        )
    }
}

impl Drop for DelayHolder {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The loop: take new packets, release those whose time has come. The queue's socket is not
/// exposed for poll(2), so an idle holder naps 200 µs between checks (releases are at most
/// that late).
fn hold(
    q: &mut nfq::Queue,
    delay: Duration,
    stop: &AtomicBool,
    held: &AtomicU64,
    held_ns: &(AtomicU64, AtomicU64),
) -> anyhow::Result<()> {
    let mut waiting: VecDeque<(Instant, nfq::Message)> = VecDeque::new();
    loop {
        let stopping = stop.load(Ordering::Relaxed);
        let mut idle = true;
        match q.recv() {
            Ok(msg) => {
                waiting.push_back((Instant::now() + delay, msg));
                held.fetch_add(1, Ordering::Relaxed);
                idle = false;
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(e) => return Err(e).context("reading the queue"),
        }
        let now = Instant::now();
        // Same delay for all: release in arrival order.
        while waiting
            .front()
            .is_some_and(|(due, _)| stopping || *due <= now)
        {
            let (due, mut msg) = waiting.pop_front().expect("checked");
            msg.set_verdict(nfq::Verdict::Accept);
            q.verdict(msg).context("accepting a held packet")?;
            let ns = (Instant::now() - (due - delay)).as_nanos() as u64;
            held_ns.0.fetch_add(ns, Ordering::Relaxed);
            held_ns.1.fetch_max(ns, Ordering::Relaxed);
        }
        if stopping {
            return Ok(());
        }
        if idle {
            std::thread::sleep(Duration::from_micros(200));
        }
    }
}
