//! [`IcmpSocket`]: one shared ICMP socket of a family, unprivileged datagram first, raw as
//! the fallback, with kernel receive timestamps.
//!
//! - `socket(AF_INET[6], SOCK_DGRAM, IPPROTO_ICMP[V6])` (a "ping socket") needs the
//!   process's group to be inside `net.ipv4.ping_group_range` (the one sysctl covers IPv6
//!   too). The kernel sets the identifier and hands the socket only the replies that carry
//!   it.
//! - `SOCK_RAW` needs `CAP_NET_RAW`. It sees every ICMP packet of the host (IPv4: with the IP
//!   header); a kernel filter (`ICMP_FILTER`, `ICMP6_FILTER`) lets only echo replies through.
//!
//! Send times are taken right before `sendto`, receive times are the kernel's
//! (`SO_TIMESTAMPNS`), both on the realtime clock: a reply read late by a busy agent still
//! gets its true round-trip time, and a loopback reply that arrives while `sendto` is still
//! running is still later than its send time.

use std::io;
use std::mem::{size_of, MaybeUninit};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::os::fd::AsRawFd;

use socket2::{Domain, Protocol, SockAddr, Socket, Type};
use tokio::io::unix::AsyncFd;
use tokio::io::Interest;

/// `SO_TIMESTAMPNS` (asm-generic; the value on every Linux architecture but a few we do not
/// build for).
const SO_TIMESTAMPNS: libc::c_int = 35;
/// `SO_RCVBUFFORCE`: a receive buffer above `net.core.rmem_max` (needs CAP_NET_ADMIN).
const SO_RCVBUFFORCE: libc::c_int = 33;
/// `SOL_RAW` / `ICMP_FILTER` (linux/icmp.h): bit N set = drop ICMPv4 type N.
const SOL_RAW: libc::c_int = 255;
const ICMP_FILTER: libc::c_int = 1;
/// `ICMP6_FILTER` (linux/icmpv6.h), at level IPPROTO_ICMPV6: 256 bits, set = block.
const ICMP6_FILTER: libc::c_int = 1;

/// The receive buffer asked for: bursts of replies from thousands of targets must not
/// overflow it while the agent is busy elsewhere.
const RCVBUF: usize = 4 << 20;

/// IPv4 or IPv6.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Family {
    /// IPv4 (ICMP).
    V4,
    /// IPv6 (ICMPv6).
    V6,
}

impl Family {
    /// The family of an address.
    pub fn of(addr: &IpAddr) -> Family {
        if addr.is_ipv4() {
            Family::V4
        } else {
            Family::V6
        }
    }

    /// `IPv4` / `IPv6`.
    pub fn name(self) -> &'static str {
        match self {
            Family::V4 => "IPv4",
            Family::V6 => "IPv6",
        }
    }
}

/// Which kind of ICMP socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SocketKind {
    /// Unprivileged ICMP datagram socket (`net.ipv4.ping_group_range`).
    Datagram,
    /// Raw socket (`CAP_NET_RAW`).
    Raw,
}

impl SocketKind {
    /// `datagram` / `raw`.
    pub fn name(self) -> &'static str {
        match self {
            SocketKind::Datagram => "datagram",
            SocketKind::Raw => "raw",
        }
    }
}

/// Why no ICMP socket of a family could be opened.
#[derive(Debug, Clone, thiserror::Error)]
pub enum OpenError {
    /// Neither kind is allowed: says what to grant.
    #[error(
        "cannot open an {family} ICMP socket: an unprivileged ICMP datagram socket is not allowed \
         for this process's group {gid} (net.ipv4.ping_group_range is \"{range}\": {dgram}) and a \
         raw socket needs the capability CAP_NET_RAW ({raw}). Grant one of them: \
         `sysctl -w net.ipv4.ping_group_range=\"{gid} {gid}\"` (or a range containing {gid}; \
         persist it in /etc/sysctl.d/), or CAP_NET_RAW (systemd: AmbientCapabilities=CAP_NET_RAW)"
    )]
    NotPermitted {
        /// `IPv4` / `IPv6`.
        family: &'static str,
        /// The process's effective group id.
        gid: u32,
        /// The sysctl's value, as read from /proc (or why it could not be read).
        range: String,
        /// The datagram socket's error.
        dgram: String,
        /// The raw socket's error.
        raw: String,
    },
    /// The system has no such family (no IPv6).
    #[error("{family} is not available on this system: {error}")]
    Unsupported {
        /// `IPv4` / `IPv6`.
        family: &'static str,
        /// The error of `socket()`.
        error: String,
    },
    /// Something else failed.
    #[error("cannot open an {family} ICMP socket: {error}")]
    Other {
        /// `IPv4` / `IPv6`.
        family: &'static str,
        /// What failed.
        error: String,
    },
}

/// A received echo packet and when the kernel received it.
#[derive(Debug, Clone, Copy)]
pub struct Received {
    /// Bytes in the buffer.
    pub len: usize,
    /// The sender.
    pub from: IpAddr,
    /// Kernel receive time, realtime clock, in nanoseconds since the epoch.
    pub at_ns: i64,
}

/// An open ICMP socket of one family, non-blocking, registered with tokio.
pub struct IcmpSocket {
    fd: AsyncFd<Socket>,
    family: Family,
    kind: SocketKind,
    buffer_packets: usize,
}

impl IcmpSocket {
    /// Opens a datagram socket, or a raw one if that is not allowed.
    pub fn open(family: Family) -> Result<IcmpSocket, OpenError> {
        let dgram = match Self::open_kind(family, SocketKind::Datagram) {
            Ok(s) => return Ok(s),
            Err(e) => e,
        };
        let raw = match Self::open_kind(family, SocketKind::Raw) {
            Ok(s) => {
                tracing::debug!(family = family.name(), error = %dgram, "ping: no datagram ICMP socket; using a raw socket");
                return Ok(s);
            }
            Err(e) => e,
        };
        let denied =
            |e: &io::Error| matches!(e.raw_os_error(), Some(libc::EACCES) | Some(libc::EPERM));
        let unsupported = |e: &io::Error| e.raw_os_error() == Some(libc::EAFNOSUPPORT);
        if unsupported(&dgram) && unsupported(&raw) {
            return Err(OpenError::Unsupported {
                family: family.name(),
                error: raw.to_string(),
            });
        }
        if denied(&dgram) && denied(&raw) {
            // SAFETY: getegid has no preconditions and cannot fail.
            let gid = unsafe { libc::getegid() };
            let range = std::fs::read_to_string("/proc/sys/net/ipv4/ping_group_range")
                .map(|s| s.split_whitespace().collect::<Vec<_>>().join(" "))
                .unwrap_or_else(|e| format!("unreadable: {e}"));
            return Err(OpenError::NotPermitted {
                family: family.name(),
                gid,
                range,
                dgram: dgram.to_string(),
                raw: raw.to_string(),
            });
        }
        Err(OpenError::Other {
            family: family.name(),
            error: format!("datagram: {dgram}; raw: {raw}"),
        })
    }

    /// Opens a socket of one kind. Must be called inside a tokio runtime.
    pub fn open_kind(family: Family, kind: SocketKind) -> io::Result<IcmpSocket> {
        let (domain, proto) = match family {
            Family::V4 => (Domain::IPV4, Protocol::ICMPV4),
            Family::V6 => (Domain::IPV6, Protocol::ICMPV6),
        };
        let ty = match kind {
            SocketKind::Datagram => Type::DGRAM,
            SocketKind::Raw => Type::RAW,
        };
        let s = Socket::new(domain, ty.nonblocking().cloexec(), Some(proto))?;
        if kind == SocketKind::Raw {
            // Only echo replies reach the socket (not our own requests on lo, not the
            // host's other ICMP traffic).
            match family {
                Family::V4 => setsockopt(&s, SOL_RAW, ICMP_FILTER, &!(1u32 << 0))?,
                Family::V6 => {
                    let mut filter = [u32::MAX; 8];
                    let t = super::packet::V6_ECHO_REPLY as usize;
                    filter[t >> 5] &= !(1u32 << (t & 31));
                    setsockopt(&s, libc::IPPROTO_ICMPV6, ICMP6_FILTER, &filter)?;
                }
            }
        }
        let on: libc::c_int = 1;
        setsockopt(&s, libc::SOL_SOCKET, SO_TIMESTAMPNS, &on)?;
        let want = RCVBUF as libc::c_int;
        if setsockopt(&s, libc::SOL_SOCKET, SO_RCVBUFFORCE, &want).is_err() {
            // Capped at net.core.rmem_max; what we get is fine for moderate target counts.
            let _ = s.set_recv_buffer_size(RCVBUF);
        }
        // SAFETY: the Socket owns its descriptor for as long as the AsyncFd owns the Socket,
        // and its as_raw_fd always returns that descriptor.
        let fd = unsafe { AsyncFd::register_with_interest(s, Interest::WRITABLE) }?;
        // The kernel charges a queued reply its truesize: measured on loopback (MTU 64 KiB)
        // about 16 KiB; on Ethernet far less. Assume the worst.
        let buffer_packets = fd.get_ref().recv_buffer_size().unwrap_or(208 << 10) / (16 << 10);
        Ok(IcmpSocket {
            fd,
            family,
            kind,
            buffer_packets,
        })
    }

    /// The family.
    pub fn family(&self) -> Family {
        self.family
    }

    /// The kind.
    pub fn kind(&self) -> SocketKind {
        self.kind
    }

    /// Whether received packets start with an IP header (raw IPv4).
    pub fn has_ip_header(&self) -> bool {
        self.kind == SocketKind::Raw && self.family == Family::V4
    }

    /// Sends `packet` to `to` without waiting; `WouldBlock` when the send buffer is full.
    pub fn try_send_to(&self, packet: &[u8], to: IpAddr) -> io::Result<()> {
        let addr = SockAddr::from(SocketAddr::new(to, 0));
        self.fd.get_ref().send_to(packet, &addr).map(|_| ())
    }

    /// About how many replies the receive buffer holds.
    pub fn buffer_packets(&self) -> usize {
        self.buffer_packets
    }

    /// Waits until the socket is writable.
    pub async fn writable(&self) -> io::Result<()> {
        let mut guard = self.fd.writable().await?;
        guard.clear_ready();
        Ok(())
    }

    /// Receives one packet without waiting; `WouldBlock` when none is queued.
    pub fn try_recv(&self, buf: &mut [u8]) -> io::Result<Received> {
        recv_timestamped(self.fd.get_ref(), buf)
    }
}

fn setsockopt<T>(s: &Socket, level: libc::c_int, name: libc::c_int, v: &T) -> io::Result<()> {
    // SAFETY: `v` points to a live T of the given size for the duration of the call.
    let rc = unsafe {
        libc::setsockopt(
            s.as_raw_fd(),
            level,
            name,
            (v as *const T).cast(),
            size_of::<T>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// The realtime clock in nanoseconds since the epoch (the clock of `SO_TIMESTAMPNS`).
pub fn realtime_ns() -> i64 {
    let mut ts = MaybeUninit::<libc::timespec>::uninit();
    // SAFETY: ts is valid for writes; CLOCK_REALTIME always exists.
    unsafe { libc::clock_gettime(libc::CLOCK_REALTIME, ts.as_mut_ptr()) };
    // SAFETY: clock_gettime filled it.
    let ts = unsafe { ts.assume_init() };
    timespec_ns(&ts)
}

/// A timespec in nanoseconds.
#[allow(clippy::unnecessary_cast)] // time_t and c_long are 32 bits wide on some targets
fn timespec_ns(ts: &libc::timespec) -> i64 {
    ts.tv_sec as i64 * 1_000_000_000 + ts.tv_nsec as i64
}

/// `recvmsg` with the `SCM_TIMESTAMPNS` control message; falls back to the clock now when
/// the kernel gave no timestamp.
fn recv_timestamped(s: &Socket, buf: &mut [u8]) -> io::Result<Received> {
    // sockaddr_in6 is the larger of the two.
    let mut addr = MaybeUninit::<libc::sockaddr_in6>::zeroed();
    // u64 alignment for the cmsghdr.
    let mut control = [0u64; 8];
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    // SAFETY: an all-zero msghdr is valid; every pointer set below outlives the call.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_name = addr.as_mut_ptr().cast();
    msg.msg_namelen = size_of::<libc::sockaddr_in6>() as libc::socklen_t;
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr().cast();
    msg.msg_controllen = size_of::<[u64; 8]>() as _;
    // SAFETY: msg describes valid buffers of the stated sizes.
    let n = unsafe { libc::recvmsg(s.as_raw_fd(), &mut msg, libc::MSG_DONTWAIT) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    let mut at_ns = None;
    // SAFETY: the kernel filled msg_control up to msg_controllen with valid cmsgs.
    unsafe {
        let mut c = libc::CMSG_FIRSTHDR(&msg);
        while !c.is_null() {
            if (*c).cmsg_level == libc::SOL_SOCKET && (*c).cmsg_type == SO_TIMESTAMPNS {
                let ts: libc::timespec = std::ptr::read_unaligned(libc::CMSG_DATA(c).cast());
                at_ns = Some(timespec_ns(&ts));
            }
            c = libc::CMSG_NXTHDR(&msg, c);
        }
    }
    // SAFETY: the kernel wrote a sockaddr of the socket's family into `addr`.
    let from = unsafe {
        let sa = addr.as_ptr().cast::<libc::sockaddr>();
        match i32::from((*sa).sa_family) {
            libc::AF_INET => {
                let sin = &*addr.as_ptr().cast::<libc::sockaddr_in>();
                IpAddr::V4(Ipv4Addr::from(u32::from_be(sin.sin_addr.s_addr)))
            }
            libc::AF_INET6 => {
                let sin6 = &*addr.as_ptr();
                IpAddr::V6(Ipv6Addr::from(sin6.sin6_addr.s6_addr))
            }
            _ => return Err(io::Error::other("a packet with an unknown address family")),
        }
    };
    Ok(Received {
        len: n as usize,
        from,
        at_ns: at_ns.unwrap_or_else(realtime_ns),
    })
}
