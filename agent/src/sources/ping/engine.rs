//! [`Engine`]: every `[[ping]]` group on two shared sockets (one per family), driven by one
//! task: no socket, task or timer per target or per request.
//!
//! A round of a group sends `count` requests to each target, `packet_interval` apart, the
//! targets' requests spread evenly over each `packet_interval` (so 10,000 targets at 200ms go
//! out at 50 a millisecond, not in one burst). A target's round ends `timeout` after its last
//! request; its events are made then (64 targets at a time), a chunk goes out every 128 KiB
//! and at the end of the round. The task wakes at most once per [`TICK`] (10 ms) and does
//! everything due at once; it reads the sockets every wake-up rather than on readiness. A reply names its request in the echoed payload (group, target, round, index) and
//! must also come from the target's address with the request's sequence number (and, on a
//! raw socket, our identifier): the lookup is an index, not a table of requests in flight.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use logops_common::Timestamp;
use tokio::sync::mpsc;

use super::packet::{self, ProbeId, REQUEST_LEN};
use super::resolve::{self, ResolveError, Target};
use super::socket::{realtime_ns, Family, IcmpSocket, OpenError, SocketKind};
use super::stats::TargetRound;
use super::SOURCE;
use crate::chunk::Chunk;
use crate::config::PingConfig;
use crate::metrics::{AgentMetrics, CollectorLabels, CollectorReasonLabels};
use crate::sources::metric::Metrics;

/// A chunk is handed on when it reaches this size (and at the end of every round).
const CHUNK_BYTES: usize = 128 << 10;

/// The engine wakes up at most once per tick (sooner only when the sockets' receive
/// buffers could fill up before): every due request is sent, every queued reply read and
/// every due report made together. A request goes out at most a tick after its slot, which
/// does not matter: its time is taken when it is sent, and the reply's by the kernel. At
/// fping's pace (1 request a millisecond) this is 10 wake-ups instead of 10 requests' worth
/// of wake-ups each.
const TICK: Duration = Duration::from_millis(10);

/// Targets reported per step: their events are made and handed on before the next ones, so
/// 10,000 targets ending together never sit in memory at once.
const REPORT_BATCH: usize = 64;

/// One configured group, ready to run.
#[derive(Debug, Clone)]
pub struct GroupSpec {
    /// The configuration.
    pub cfg: PingConfig,
    /// Labels of its events: the agent's merged with the group's.
    pub labels: Arc<BTreeMap<String, String>>,
}

/// The two sockets (or why one could not be opened).
pub struct Sockets {
    v4: Result<IcmpSocket, OpenError>,
    v6: Result<IcmpSocket, OpenError>,
}

impl Sockets {
    /// Opens both families, datagram first (see [`IcmpSocket::open`]). Must run inside a
    /// tokio runtime, in the network namespace to ping from.
    pub fn open() -> Sockets {
        Sockets {
            v4: IcmpSocket::open(Family::V4),
            v6: IcmpSocket::open(Family::V6),
        }
    }

    /// Given sockets (for tests that choose the kind).
    pub fn from_parts(
        v4: Result<IcmpSocket, OpenError>,
        v6: Result<IcmpSocket, OpenError>,
    ) -> Sockets {
        Sockets { v4, v6 }
    }

    fn get(&self, f: Family) -> &Result<IcmpSocket, OpenError> {
        match f {
            Family::V4 => &self.v4,
            Family::V6 => &self.v6,
        }
    }

    fn get_mut(&mut self, f: Family) -> &mut Result<IcmpSocket, OpenError> {
        match f {
            Family::V4 => &mut self.v4,
            Family::V6 => &mut self.v6,
        }
    }

    /// The kind of each open socket (for logs and tests).
    pub fn kinds(&self) -> (Option<SocketKind>, Option<SocketKind>) {
        (
            self.v4.as_ref().ok().map(|s| s.kind()),
            self.v6.as_ref().ok().map(|s| s.kind()),
        )
    }
}

/// Where the engine's events go.
pub struct Output {
    /// `host` of the events (the agent id).
    pub host: Arc<str>,
    /// Chunks of events, in order.
    pub chunks: mpsc::Sender<Chunk>,
    /// The agent's own metrics (rounds, timeouts, errors).
    pub metrics: Arc<AgentMetrics>,
}

/// State of one request of a round.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
enum ProbeState {
    /// Not sent yet.
    #[default]
    Unsent,
    /// Sent at this realtime instant (ns), no reply yet.
    Sent(i64),
    /// Answered in time, after this many nanoseconds (negative: the realtime clock was
    /// stepped back in between; counted as answered, left out of the times).
    Answered(i64),
    /// Answered after the timeout.
    Late,
}

/// One target in one round.
#[derive(Debug)]
struct RoundTarget {
    addr: Option<IpAddr>,
    error: Option<String>,
    stats: TargetRound,
    probes: Vec<ProbeState>,
    seq_base: u16,
    finalized: bool,
}

/// A running round of a group.
#[derive(Debug)]
struct Round {
    no: u32,
    ts: Timestamp,
    start: Instant,
    targets: Vec<RoundTarget>,
    /// Indices of the targets that are pinged, in sending order.
    active: Vec<u32>,
    step: Duration,
    next_send: usize,
    next_final: usize,
    /// Targets not pinged (no address, no socket) still to be reported.
    unpinged: Vec<u32>,
}

impl Round {
    fn send_at(&self, i: usize, pi: Duration) -> Instant {
        let n = self.active.len();
        self.start + pi * (i / n) as u32 + self.step * (i % n) as u32
    }

    fn final_at(&self, j: usize, pi: Duration, count: u16, timeout: Duration) -> Instant {
        self.start + pi * u32::from(count - 1) + self.step * j as u32 + timeout
    }
}

/// Late and duplicate replies waiting for a target's next report.
#[derive(Debug, Clone, Copy, Default)]
struct Carry {
    late: u32,
    duplicates: u32,
}

struct Group {
    spec: GroupSpec,
    targets: Vec<(String, Target)>,
    interval: Duration,
    pi: Duration,
    timeout: Duration,
    count: u16,
    next_start: Instant,
    rounds_done: u32,
    round_no: u32,
    round: Option<Round>,
    /// A lookup for the round `round_no` is running.
    resolving: bool,
    carry: Vec<Carry>,
    /// Targets whose failure was already logged (logged again once it recovered).
    failing: Vec<bool>,
}

/// Results of a group's lookups: (group, round, per name target).
type Resolved = (usize, u32, Vec<Result<IpAddr, ResolveError>>);

/// What woke the engine.
enum Wake {
    Stop,
    Writable,
    Resolved(Resolved),
    Timer,
}

/// Pings every group, round after round.
pub struct Engine {
    sockets: Sockets,
    token: u64,
    ident: u16,
    groups: Vec<Group>,
    out: Output,
    chunk: Chunk,
    buf: Vec<u8>,
    resolved_tx: mpsc::UnboundedSender<Resolved>,
    resolved_rx: mpsc::UnboundedReceiver<Resolved>,
    /// A send hit a full socket buffer: wait until writable.
    send_blocked: bool,
    /// A round ended: hand the chunk on.
    chunk_due: bool,
    /// When the engine last woke up.
    last_wake: Instant,
    /// Open errors already logged, per family.
    logged_open: [bool; 2],
}

impl Engine {
    /// An engine for `groups` on `sockets`, writing to `out`. The first round of every group
    /// starts right away.
    pub fn new(groups: Vec<GroupSpec>, sockets: Sockets, out: Output) -> Engine {
        let token = random_u64();
        let now = Instant::now();
        let groups = groups
            .into_iter()
            .map(|spec| {
                let targets: Vec<_> = spec
                    .cfg
                    .targets
                    .iter()
                    .map(|t| (t.clone(), Target::parse(t)))
                    .collect();
                Group {
                    interval: spec.cfg.interval.get(),
                    pi: spec.cfg.packet_interval.get(),
                    timeout: spec.cfg.timeout.get(),
                    count: spec.cfg.count.max(1),
                    next_start: now,
                    rounds_done: 0,
                    round_no: 0,
                    round: None,
                    resolving: false,
                    carry: vec![Carry::default(); targets.len()],
                    failing: vec![false; targets.len()],
                    targets,
                    spec,
                }
            })
            .collect();
        let (resolved_tx, resolved_rx) = mpsc::unbounded_channel();
        Engine {
            sockets,
            token,
            ident: (token >> 48) as u16,
            groups,
            out,
            chunk: Chunk::with_capacity(CHUNK_BYTES * 2),
            buf: vec![0; 2048],
            resolved_tx,
            resolved_rx,
            send_blocked: false,
            chunk_due: false,
            last_wake: now,
            logged_open: [false; 2],
        }
    }

    /// Runs until `stop` resolves, or until every group finished `max_rounds` rounds.
    pub async fn run(
        mut self,
        stop: impl std::future::Future<Output = ()>,
        max_rounds: Option<u32>,
    ) {
        tokio::pin!(stop);
        loop {
            if let Some(n) = max_rounds {
                if self.groups.iter().all(|g| g.rounds_done >= n) {
                    break;
                }
            }
            let wake = self.next_wake(max_rounds);
            let woke = {
                let v4 = self.sockets.v4.as_ref().ok();
                let v6 = self.sockets.v6.as_ref().ok();
                let blocked = self.send_blocked;
                tokio::select! {
                    biased;
                    _ = &mut stop => Wake::Stop,
                    Some(r) = self.resolved_rx.recv() => Wake::Resolved(r),
                    _ = writable(v4, blocked) => Wake::Writable,
                    _ = writable(v6, blocked) => Wake::Writable,
                    _ = sleep_until(wake) => Wake::Timer,
                }
            };
            self.last_wake = Instant::now();
            match woke {
                Wake::Stop => break,
                Wake::Writable => self.send_blocked = false,
                Wake::Resolved(r) => self.resolved(r),
                Wake::Timer => {}
            }
            self.drain(Family::V4);
            self.drain(Family::V6);
            self.advance(Instant::now(), max_rounds);
            self.flush(false).await;
        }
        self.flush(true).await;
    }

    /// The earliest instant something is due, but no sooner than the tick after the last
    /// wake-up (see [`TICK`]).
    fn next_wake(&self, max_rounds: Option<u32>) -> Option<Instant> {
        let due = self.next_due(max_rounds)?;
        if due <= Instant::now() {
            // Left over from the last wake-up (reports go out a batch at a time).
            return Some(due);
        }
        // Replies arrive at about the rate requests go out; the sockets are read every
        // wake-up, and must not fill up in between.
        let rate: f64 = self
            .groups
            .iter()
            .filter_map(|g| {
                g.round
                    .as_ref()
                    .map(|r| r.active.len() as f64 / g.pi.as_secs_f64())
            })
            .sum();
        let room = [&self.sockets.v4, &self.sockets.v6]
            .into_iter()
            .filter_map(|s| s.as_ref().ok().map(|s| s.buffer_packets()))
            .min()
            .unwrap_or(usize::MAX) as f64;
        let gap = if rate > 0.0 {
            Duration::from_secs_f64((room / 2.0 / rate).min(TICK.as_secs_f64()))
                .max(Duration::from_millis(1))
        } else {
            TICK
        };
        Some(due.max(self.last_wake + gap))
    }

    /// The earliest instant something is due.
    fn next_due(&self, max_rounds: Option<u32>) -> Option<Instant> {
        let mut wake: Option<Instant> = None;
        let mut at = |t: Instant| wake = Some(wake.map_or(t, |w| w.min(t)));
        for g in &self.groups {
            match &g.round {
                Some(r) => {
                    if !r.unpinged.is_empty() {
                        at(r.start);
                    }
                    if r.next_send < r.active.len() * usize::from(g.count) && !self.send_blocked {
                        at(r.send_at(r.next_send, g.pi));
                    }
                    if r.next_final < r.active.len() {
                        at(r.final_at(r.next_final, g.pi, g.count, g.timeout));
                    }
                }
                None if !g.resolving && max_rounds.is_none_or(|n| g.rounds_done < n) => {
                    at(g.next_start)
                }
                None => {}
            }
        }
        wake
    }

    /// Does everything due at `now`: starts rounds, sends requests, ends targets' rounds.
    fn advance(&mut self, now: Instant, max_rounds: Option<u32>) {
        for gi in 0..self.groups.len() {
            let g = &self.groups[gi];
            if g.round.is_none()
                && !g.resolving
                && g.next_start <= now
                && max_rounds.is_none_or(|n| g.rounds_done < n)
            {
                self.start_round(gi, now);
            }
            self.send_due(gi, now);
            self.finalize_due(gi, now);
        }
    }

    /// Starts a round: looks up the names first (on other tasks) if there are any.
    fn start_round(&mut self, gi: usize, now: Instant) {
        let g = &mut self.groups[gi];
        g.round_no = g.round_no.wrapping_add(1);
        // The next round is due one interval after this one was due (not after it started:
        // no drift), but never in the past.
        g.next_start = (g.next_start + g.interval).max(now);
        let names: Vec<String> = g
            .targets
            .iter()
            .filter_map(|(_, t)| match t {
                Target::Name(n) => Some(n.clone()),
                Target::Addr(_) => None,
            })
            .collect();
        if names.is_empty() {
            self.begin(gi, Vec::new());
        } else {
            g.resolving = true;
            let tx = self.resolved_tx.clone();
            let round = g.round_no;
            tokio::spawn(async move {
                let r = resolve::resolve_all(names).await;
                let _ = tx.send((gi, round, r));
            });
        }
    }

    fn resolved(&mut self, (gi, round, results): Resolved) {
        let Some(g) = self.groups.get_mut(gi) else {
            return;
        };
        if !g.resolving || g.round_no != round {
            return;
        }
        g.resolving = false;
        self.begin(gi, results);
    }

    /// Sets up the round's targets (addresses known) and its schedule, starting now.
    fn begin(&mut self, gi: usize, mut lookups: Vec<Result<IpAddr, ResolveError>>) {
        lookups.reverse();
        // Retry a family whose socket could not be opened (a sysctl or capability may have
        // been granted since).
        for f in [Family::V4, Family::V6] {
            let needed = self.groups[gi].targets.iter().any(|(_, t)| match t {
                Target::Addr(a) => Family::of(a) == f,
                Target::Name(_) => true,
            });
            if needed && self.sockets.get(f).is_err() {
                let reopened = IcmpSocket::open(f);
                if reopened.is_ok() {
                    tracing::info!(family = f.name(), "ping: ICMP socket opened");
                    self.logged_open[f as usize] = false;
                }
                *self.sockets.get_mut(f) = reopened;
            }
        }
        let g = &mut self.groups[gi];
        let count = usize::from(g.count);
        let seq_base = (g.round_no.wrapping_mul(u32::from(g.count))) as u16;
        let mut targets = Vec::with_capacity(g.targets.len());
        let mut active = Vec::new();
        for (i, (name, t)) in g.targets.iter().enumerate() {
            let resolved = match t {
                Target::Addr(a) => Ok(*a),
                Target::Name(_) => lookups
                    .pop()
                    .unwrap_or_else(|| Err(ResolveError::Timeout { name: name.clone() })),
            };
            let (addr, error) = match resolved {
                Ok(a) => match self.sockets.get(Family::of(&a)) {
                    Ok(_) => (Some(a), None),
                    Err(e) => {
                        let f = Family::of(&a) as usize;
                        if !self.logged_open[f] {
                            self.logged_open[f] = true;
                            tracing::error!("ping: {e}");
                        }
                        self.out
                            .metrics
                            .collector_errors
                            .get_or_create(&reason("socket"))
                            .inc();
                        (Some(a), Some(e.to_string()))
                    }
                },
                Err(e) => {
                    if !g.failing[i] {
                        tracing::warn!(target = %name, "ping: {e} (a metric until it resolves; logged once)");
                    }
                    g.failing[i] = true;
                    self.out
                        .metrics
                        .collector_errors
                        .get_or_create(&reason("resolve"))
                        .inc();
                    (None, Some(e.to_string()))
                }
            };
            let pinged = error.is_none();
            if pinged {
                if g.failing[i] {
                    tracing::info!(target = %name, "ping: resolves again");
                }
                g.failing[i] = false;
                active.push(i as u32);
            }
            targets.push(RoundTarget {
                addr,
                error,
                stats: TargetRound::default(),
                // Only pinged targets have requests.
                probes: vec![ProbeState::Unsent; if pinged { count } else { 0 }],
                seq_base,
                finalized: false,
            });
        }
        let step = if active.is_empty() {
            Duration::ZERO
        } else {
            g.pi / active.len() as u32
        };
        g.round = Some(Round {
            no: g.round_no,
            ts: Timestamp::now(),
            start: Instant::now(),
            unpinged: (0..targets.len() as u32)
                .rev()
                .filter(|&i| targets[i as usize].probes.is_empty())
                .collect(),
            targets,
            active,
            step,
            next_send: 0,
            next_final: 0,
        });
    }

    /// Sends every request of group `gi` that is due.
    fn send_due(&mut self, gi: usize, now: Instant) {
        let token = self.token;
        let ident = self.ident;
        let g = &mut self.groups[gi];
        let Some(r) = &mut g.round else { return };
        let total = r.active.len() * usize::from(g.count);
        let mut pkt = [0u8; REQUEST_LEN];
        while !self.send_blocked && r.next_send < total && r.send_at(r.next_send, g.pi) <= now {
            let n = r.active.len();
            let (k, j) = (r.next_send / n, r.next_send % n);
            let ti = r.active[j] as usize;
            let t = &mut r.targets[ti];
            let addr = t.addr.expect("active targets have an address");
            let Ok(sock) = self.sockets.get(Family::of(&addr)) else {
                unreachable!("active targets have a socket")
            };
            let seq = t.seq_base.wrapping_add(k as u16);
            let probe = ProbeId {
                group: gi as u32,
                target: ti as u32,
                round: r.no,
                index: k as u16,
            };
            packet::echo_request(&mut pkt, addr.is_ipv6(), ident, seq, token, probe);
            // The send time is taken before the send: on loopback the reply can be queued
            // before sendto even returns.
            let at = realtime_ns();
            match sock.try_send_to(&pkt, addr) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    self.send_blocked = true;
                    break;
                }
                Err(e) => {
                    // Counted as sent and lost: the target is not reachable from here.
                    tracing::debug!(target = %addr, error = %e, "ping: send failed");
                    self.out
                        .metrics
                        .collector_errors
                        .get_or_create(&reason("send"))
                        .inc();
                    if t.error.is_none() {
                        t.error = Some(format!("cannot send to {addr}: {e}"));
                    }
                }
            }
            t.probes[k] = ProbeState::Sent(at);
            t.stats.sent += 1;
            r.next_send += 1;
        }
    }

    /// Reads every queued packet of a family's socket.
    fn drain(&mut self, f: Family) {
        loop {
            let Ok(sock) = self.sockets.get(f) else {
                return;
            };
            let got = match sock.try_recv(&mut self.buf) {
                Ok(got) => got,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    // ICMP errors queued on the socket and the like: nothing to match.
                    tracing::debug!(error = %e, "ping: receive failed");
                    continue;
                }
            };
            let raw = sock.kind() == SocketKind::Raw;
            let Some(reply) = packet::parse_reply(
                &self.buf[..got.len],
                got.from,
                sock.has_ip_header(),
                self.token,
            ) else {
                continue;
            };
            if raw && reply.ident != self.ident {
                continue;
            }
            self.on_reply(reply, got.from, got.at_ns);
        }
    }

    fn on_reply(&mut self, reply: packet::EchoReply, from: IpAddr, at_ns: i64) {
        let p = reply.probe;
        let Some(g) = self.groups.get_mut(p.group as usize) else {
            return;
        };
        let ti = p.target as usize;
        if ti >= g.carry.len() {
            return;
        }
        let timeout_ns = g.timeout.as_nanos() as i64;
        let Some(r) = g.round.as_mut().filter(|r| r.no == p.round) else {
            // A reply to an earlier round: late (the round ended a timeout after its last
            // request). A round number from the future is not ours.
            if p.round.wrapping_sub(g.round_no) as i32 <= 0 {
                g.carry[ti].late += 1;
            }
            return;
        };
        let t = &mut r.targets[ti];
        let Some(state) = t.probes.get_mut(usize::from(p.index)) else {
            return;
        };
        if t.addr != Some(from) || t.seq_base.wrapping_add(p.index) != reply.seq {
            return;
        }
        let (late, dup) = match *state {
            ProbeState::Unsent => return,
            ProbeState::Sent(sent) => {
                let rtt = at_ns - sent;
                if rtt <= timeout_ns {
                    *state = ProbeState::Answered(rtt);
                    t.stats.received += 1;
                    (0, 0)
                } else {
                    *state = ProbeState::Late;
                    (1, 0)
                }
            }
            ProbeState::Answered(_) | ProbeState::Late => (0, 1),
        };
        if t.finalized {
            g.carry[ti].late += late;
            g.carry[ti].duplicates += dup;
        } else {
            t.stats.late += late;
            t.stats.duplicates += dup;
        }
    }

    /// Reports the targets of group `gi` whose round is over.
    fn finalize_due(&mut self, gi: usize, now: Instant) {
        let g = &mut self.groups[gi];
        let Some(r) = &mut g.round else { return };
        let mut ready: Vec<usize> = Vec::new();
        while ready.len() < REPORT_BATCH {
            match r.unpinged.pop() {
                Some(i) => ready.push(i as usize),
                None => break,
            }
        }
        while ready.len() < REPORT_BATCH
            && r.next_final < r.active.len()
            && r.final_at(r.next_final, g.pi, g.count, g.timeout) <= now
        {
            ready.push(r.active[r.next_final] as usize);
            r.next_final += 1;
        }
        if ready.is_empty() {
            return;
        }
        for ti in ready {
            let mut m = Metrics::new(r.ts, self.out.host.clone(), SOURCE, g.spec.labels.clone());
            let t = &mut r.targets[ti];
            t.finalized = true;
            let carry = std::mem::take(&mut g.carry[ti]);
            t.stats.late += carry.late;
            t.stats.duplicates += carry.duplicates;
            let lost = t.stats.sent - t.stats.received.min(t.stats.sent);
            if lost > 0 {
                self.out
                    .metrics
                    .collector_timeouts
                    .get_or_create(&collector())
                    .inc_by(u64::from(lost));
            }
            t.stats.rtts = t
                .probes
                .iter()
                .filter_map(|p| match p {
                    ProbeState::Answered(ns) if *ns >= 0 => Some(*ns as f64 / 1e9),
                    _ => None,
                })
                .collect();
            let name = &g.targets[ti].0;
            let is_name = matches!(g.targets[ti].1, Target::Name(_));
            super::events::target_events(
                &mut m,
                name,
                is_name,
                t.addr,
                t.error.as_deref(),
                &t.stats,
            );
            // The target is reported: free what it held (10,000 targets).
            t.stats.rtts = Vec::new();
            t.probes = Vec::new();
            for e in &m.events {
                self.chunk.push(e);
            }
            for name in m.bad_values {
                tracing::debug!(
                    metric = name,
                    "ping: a value that is not finite was left out"
                );
            }
        }
        if r.next_final == r.active.len() && r.unpinged.is_empty() {
            g.round = None;
            g.rounds_done += 1;
            self.out
                .metrics
                .collector_rounds
                .get_or_create(&collector())
                .inc();
            // End of round: hand on what it made.
            self.chunk_due = true;
        }
    }

    /// Hands the chunk on when it is big enough, at the end of a round, or when `all`.
    async fn flush(&mut self, all: bool) {
        let due = std::mem::take(&mut self.chunk_due);
        if self.chunk.is_empty() || !(all || due || self.chunk.len() >= CHUNK_BYTES) {
            return;
        }
        let chunk = std::mem::replace(&mut self.chunk, Chunk::with_capacity(CHUNK_BYTES * 2));
        // Waits only when the consumer is behind (a full buffer with `when_full = block`).
        let _ = self.out.chunks.send(chunk).await;
    }
}

fn collector() -> CollectorLabels {
    CollectorLabels {
        collector: SOURCE.into(),
    }
}

fn reason(r: &str) -> CollectorReasonLabels {
    CollectorReasonLabels {
        collector: SOURCE.into(),
        reason: r.into(),
    }
}

async fn writable(s: Option<&IcmpSocket>, blocked: bool) {
    match s {
        Some(s) if blocked => {
            let _ = s.writable().await;
        }
        _ => std::future::pending().await,
    }
}

async fn sleep_until(t: Option<Instant>) {
    match t {
        Some(t) => tokio::time::sleep_until(t.into()).await,
        None => std::future::pending().await,
    }
}

/// A random 64-bit number (the token that marks this process's requests).
fn random_u64() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(realtime_ns() as u128 ^ u128::from(std::process::id()));
    h.finish()
}
