//! [`Transport`]: a handful of UDP sockets shared by every device, with request-id matching,
//! timeouts and retries.
//!
//! Each socket has one receive task that reads every datagram, peeks its id (request-id, or
//! msgID for v3) and hands it to the request waiting for that id from that address. A request
//! is sent again after each timeout under a new id; the ids of earlier attempts stay
//! registered, so a slow device's late answer to the first attempt still completes it. An
//! answer nobody waits for any more (a duplicate, or one after the last timeout) is counted
//! and dropped.

use std::collections::HashMap;
use std::io;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::codec;

/// Receive buffer asked for on each socket (the kernel caps it at `net.core.rmem_max`).
const RECV_BUFFER: usize = 4 << 20;
/// Largest datagram read.
const MAX_DATAGRAM: usize = 65_535;

/// Counters of the transport.
#[derive(Debug, Default)]
pub struct TransportStats {
    /// Datagrams sent.
    pub sent: AtomicU64,
    /// Datagrams that matched a waiting request.
    pub matched: AtomicU64,
    /// Datagrams that matched nothing (late, duplicate, unknown id or sender).
    pub unmatched: AtomicU64,
}

/// Who waits for an id.
struct Waiter {
    peer: SocketAddr,
    tx: mpsc::Sender<(i32, Vec<u8>)>,
}

type Pending = Arc<Mutex<HashMap<i32, Waiter>>>;

/// One family's sockets.
struct Family {
    sockets: Vec<Arc<UdpSocket>>,
    tasks: Vec<JoinHandle<()>>,
}

/// Shared SNMP sockets.
pub struct Transport {
    pending: Pending,
    next_id: AtomicU32,
    per_family: usize,
    v4: Mutex<Option<Family>>,
    v6: Mutex<Option<Family>>,
    stats: Arc<TransportStats>,
}

/// What an exchange got.
#[derive(Debug)]
pub struct Exchange {
    /// The answer's bytes.
    pub reply: Vec<u8>,
    /// The id it answered (that of some attempt).
    pub id: i32,
    /// Attempts sent.
    pub attempts: u32,
    /// Attempts that timed out before the answer came.
    pub timeouts: u32,
}

/// Why an exchange failed.
#[derive(Debug, thiserror::Error)]
pub enum ExchangeError<E> {
    /// No answer to any attempt.
    #[error("no answer after {attempts} attempt(s)")]
    Timeout {
        /// Attempts sent (each timed out).
        attempts: u32,
    },
    /// The socket failed.
    #[error("socket: {0}")]
    Io(#[from] io::Error),
    /// The request could not be encoded.
    #[error("{0}")]
    Encode(E),
}

/// Unregisters an exchange's ids when it ends, however it ends.
struct Registration<'a> {
    pending: &'a Pending,
    ids: Vec<i32>,
}

impl Drop for Registration<'_> {
    fn drop(&mut self) {
        let mut p = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        for id in &self.ids {
            p.remove(id);
        }
    }
}

impl Transport {
    /// A transport with `per_family` sockets for IPv4 and, when first needed, for IPv6.
    /// Sockets are opened on first use (inside a tokio runtime).
    pub fn new(per_family: usize) -> Arc<Transport> {
        let mut seed = [0u8; 4];
        // A random start makes ids of a restarted agent unlike its previous ones.
        let start = if getrandom::fill(&mut seed).is_ok() {
            u32::from_le_bytes(seed)
        } else {
            std::process::id()
        };
        Arc::new(Transport {
            pending: Arc::default(),
            next_id: AtomicU32::new(start),
            per_family: per_family.max(1),
            v4: Mutex::new(None),
            v6: Mutex::new(None),
            stats: Arc::default(),
        })
    }

    /// The counters.
    pub fn stats(&self) -> &Arc<TransportStats> {
        &self.stats
    }

    /// Number of open sockets.
    pub fn sockets(&self) -> usize {
        [&self.v4, &self.v6]
            .iter()
            .map(|f| {
                f.lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .as_ref()
                    .map_or(0, |f| f.sockets.len())
            })
            .sum()
    }

    /// A new id: positive, never 0.
    fn id(&self) -> i32 {
        loop {
            let v = (self.next_id.fetch_add(1, Ordering::Relaxed) & 0x7fff_ffff) as i32;
            if v != 0 {
                return v;
            }
        }
    }

    fn socket(&self, peer: &SocketAddr, shard: usize) -> io::Result<Arc<UdpSocket>> {
        let slot = if peer.is_ipv4() { &self.v4 } else { &self.v6 };
        let mut family = slot.lock().unwrap_or_else(|e| e.into_inner());
        if family.is_none() {
            let mut f = Family {
                sockets: Vec::new(),
                tasks: Vec::new(),
            };
            for _ in 0..self.per_family {
                let s = Arc::new(open_socket(peer.is_ipv4())?);
                f.tasks.push(tokio::spawn(receive(
                    s.clone(),
                    self.pending.clone(),
                    self.stats.clone(),
                )));
                f.sockets.push(s);
            }
            *family = Some(f);
        }
        let f = family.as_ref().expect("opened above");
        Ok(f.sockets[shard % f.sockets.len()].clone())
    }

    /// Sends the request `encode(id)` to `peer` and waits up to `timeout` for the answer;
    /// after a timeout, sends it again (a new id, newly encoded) up to `retries` times.
    /// `shard` picks the socket (a device always uses the same one).
    pub async fn exchange<E>(
        &self,
        peer: SocketAddr,
        shard: usize,
        timeout: Duration,
        retries: u32,
        mut encode: impl FnMut(i32) -> Result<Vec<u8>, E>,
    ) -> Result<Exchange, ExchangeError<E>> {
        let socket = self.socket(&peer, shard)?;
        let (tx, mut rx) = mpsc::channel(1);
        let mut reg = Registration {
            pending: &self.pending,
            ids: Vec::with_capacity(retries as usize + 1),
        };
        for attempt in 0..=retries {
            let id = self.id();
            let bytes = encode(id).map_err(ExchangeError::Encode)?;
            self.pending
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(
                    id,
                    Waiter {
                        peer,
                        tx: tx.clone(),
                    },
                );
            reg.ids.push(id);
            socket.send_to(&bytes, peer).await?;
            self.stats.sent.fetch_add(1, Ordering::Relaxed);
            if let Ok(Some((id, reply))) = tokio::time::timeout(timeout, rx.recv()).await {
                return Ok(Exchange {
                    reply,
                    id,
                    attempts: attempt + 1,
                    timeouts: attempt,
                });
            }
        }
        Err(ExchangeError::Timeout {
            attempts: retries + 1,
        })
    }
}

impl Drop for Transport {
    fn drop(&mut self) {
        for slot in [&self.v4, &self.v6] {
            if let Some(f) = slot.lock().unwrap_or_else(|e| e.into_inner()).take() {
                for t in f.tasks {
                    t.abort();
                }
            }
        }
    }
}

fn open_socket(v4: bool) -> io::Result<UdpSocket> {
    use socket2::{Domain, Protocol, Socket, Type};
    let (domain, addr): (Domain, SocketAddr) = if v4 {
        (Domain::IPV4, (Ipv4Addr::UNSPECIFIED, 0).into())
    } else {
        (Domain::IPV6, (Ipv6Addr::UNSPECIFIED, 0).into())
    };
    let s = Socket::new(domain, Type::DGRAM, Some(Protocol::UDP))?;
    if !v4 {
        s.set_only_v6(true)?;
    }
    // Best effort: a smaller buffer only matters under bursts.
    let _ = s.set_recv_buffer_size(RECV_BUFFER);
    s.set_nonblocking(true)?;
    s.bind(&addr.into())?;
    UdpSocket::from_std(s.into())
}

/// Reads datagrams and hands each to the request waiting for its id and sender.
async fn receive(socket: Arc<UdpSocket>, pending: Pending, stats: Arc<TransportStats>) {
    let mut buf = vec![0u8; MAX_DATAGRAM];
    loop {
        let (n, from) = match socket.recv_from(&mut buf).await {
            Ok(r) => r,
            Err(e) => {
                // ICMP errors reported on the socket, or a transient failure: go on.
                tracing::debug!(error = %e, "snmp: receive failed");
                continue;
            }
        };
        let bytes = &buf[..n];
        let delivered = codec::peek_id(bytes).is_some_and(|id| {
            let p = pending.lock().unwrap_or_else(|e| e.into_inner());
            match p.get(&id) {
                Some(w) if same_peer(&w.peer, &from) => w.tx.try_send((id, bytes.to_vec())).is_ok(),
                _ => false,
            }
        });
        if delivered {
            stats.matched.fetch_add(1, Ordering::Relaxed);
        } else {
            stats.unmatched.fetch_add(1, Ordering::Relaxed);
            tracing::debug!(%from, bytes = n, "snmp: an answer nobody waits for (late, duplicate or unknown)");
        }
    }
}

/// Whether an answer from `from` may answer a request sent to `peer` (IPv4-mapped IPv6
/// addresses compare equal to their IPv4 address).
fn same_peer(peer: &SocketAddr, from: &SocketAddr) -> bool {
    let canon = |a: &SocketAddr| match a {
        SocketAddr::V6(v6) => match v6.ip().to_ipv4_mapped() {
            Some(v4) => SocketAddr::from((v4, v6.port())),
            None => *a,
        },
        SocketAddr::V4(_) => *a,
    };
    canon(peer) == canon(from)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_positive_and_distinct() {
        let t = Transport::new(1);
        t.next_id.store(u32::MAX - 2, Ordering::Relaxed);
        let ids: Vec<i32> = (0..6).map(|_| t.id()).collect();
        assert!(ids.iter().all(|&i| i > 0), "{ids:?}");
        let set: std::collections::HashSet<_> = ids.iter().collect();
        assert_eq!(set.len(), ids.len());
    }

    #[test]
    fn mapped_addresses_are_the_same_peer() {
        let a: SocketAddr = "127.0.0.1:161".parse().unwrap();
        let b: SocketAddr = "[::ffff:127.0.0.1]:161".parse().unwrap();
        let c: SocketAddr = "127.0.0.1:162".parse().unwrap();
        assert!(same_peer(&a, &b));
        assert!(!same_peer(&a, &c));
    }

    /// A UDP peer on loopback that answers the second attempt only (not a mock of a device:
    /// this checks the transport's own matching and retry bookkeeping).
    #[tokio::test]
    async fn a_late_answer_to_an_earlier_attempt_completes_the_request() {
        let peer = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let addr = peer.local_addr().unwrap();
        let t = Transport::new(1);
        let echo = tokio::spawn(async move {
            let mut buf = [0u8; 1500];
            // Hold the first attempt, answer it after the second arrived.
            let (n1, from) = peer.recv_from(&mut buf).await.unwrap();
            let first = buf[..n1].to_vec();
            let (_n2, _) = peer.recv_from(&mut buf).await.unwrap();
            peer.send_to(&first, from).await.unwrap();
            peer.send_to(&first, from).await.unwrap(); // a duplicate
        });
        let o: Vec<super::super::oid::Oid> = vec!["1.3.6.1.2.1.1.3.0".parse().unwrap()];
        let mut sent = Vec::new();
        let ex = t
            .exchange(addr, 0, Duration::from_millis(200), 3, |id| {
                sent.push(id);
                codec::encode_v2c(b"public", id, &codec::Request::Get(&o))
            })
            .await
            .unwrap();
        echo.await.unwrap();
        assert_eq!(ex.id, sent[0], "the first attempt's id");
        assert_eq!((ex.attempts, ex.timeouts), (2, 1));
        assert_eq!(codec::peek_id(&ex.reply), Some(sent[0]));
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(
            t.stats().unmatched.load(Ordering::Relaxed),
            1,
            "the duplicate"
        );
        assert!(
            t.pending.lock().unwrap().is_empty(),
            "nothing left registered"
        );
    }

    #[tokio::test]
    async fn silence_is_a_timeout_after_every_retry() {
        let silent = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let addr = silent.local_addr().unwrap();
        let t = Transport::new(2);
        let mut n = 0;
        let started = std::time::Instant::now();
        let r = t
            .exchange(addr, 1, Duration::from_millis(50), 2, |id| {
                n += 1;
                codec::encode_v2c(b"public", id, &codec::Request::Get(&[]))
            })
            .await;
        assert!(
            matches!(r, Err(ExchangeError::Timeout { attempts: 3 })),
            "{r:?}"
        );
        assert_eq!(n, 3);
        assert!(started.elapsed() >= Duration::from_millis(150));
        assert_eq!(t.sockets(), 2);
        let mut buf = [0u8; 1500];
        for _ in 0..3 {
            silent.recv_from(&mut buf).await.unwrap();
        }
    }
}
