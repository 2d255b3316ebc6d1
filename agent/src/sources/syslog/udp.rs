//! The UDP socket: bound at start (so a taken port fails the start with its address), with
//! the configured kernel receive buffer, and the kernel's drop count read from
//! `/proc/net/udp{,6}` (the `drops` column of this socket's inode).

use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;

use socket2::{Domain, Protocol, Socket, Type};

use super::datagram::DatagramSocket;

/// `SO_RCVBUFFORCE`: a receive buffer above `net.core.rmem_max` (needs CAP_NET_ADMIN).
const SO_RCVBUFFORCE: libc::c_int = 33;

/// A bound UDP socket and what the kernel said it dropped so far.
pub struct Udp {
    socket: UdpSocket,
    inode: u64,
    v6: bool,
    drops_seen: Option<u64>,
    last_peer: Option<SocketAddr>,
}

impl Udp {
    /// Binds `addr` with a receive buffer of `recv_buffer` bytes (forced above
    /// `net.core.rmem_max` when the agent may, else as much as the kernel allows: a warning
    /// says so).
    pub fn bind(addr: SocketAddr, recv_buffer: usize) -> io::Result<Udp> {
        let s = Socket::new(
            Domain::for_address(addr),
            Type::DGRAM.cloexec(),
            Some(Protocol::UDP),
        )?;
        if addr.is_ipv6() {
            // Like a plain bind: `[::]` takes IPv4 too only if the system says so.
            let _ = s.set_only_v6(false);
        }
        set_recv_buffer(&s, recv_buffer);
        s.bind(&addr.into())?;
        s.set_nonblocking(true)?;
        let socket: UdpSocket = s.into();
        let inode = inode(&socket)?;
        Ok(Udp {
            socket,
            inode,
            v6: addr.is_ipv6(),
            drops_seen: None,
            last_peer: None,
        })
    }

    /// The bound address (the port, when 0 was asked).
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.socket.local_addr()
    }
}

impl AsRawFd for Udp {
    fn as_raw_fd(&self) -> std::os::fd::RawFd {
        self.socket.as_raw_fd()
    }
}

impl DatagramSocket for Udp {
    fn recv(&mut self, buf: &mut [u8], peer: &mut String) -> io::Result<usize> {
        let (n, from) = self.socket.recv_from(buf)?;
        if self.last_peer != Some(from) {
            self.last_peer = Some(from);
            peer.clear();
            use std::fmt::Write as _;
            let _ = write!(peer, "{from}");
        }
        Ok(n)
    }

    fn kernel_drops(&mut self) -> u64 {
        let Some(now) = read_drops(self.inode, self.v6) else {
            return 0;
        };
        let before = self.drops_seen.replace(now).unwrap_or(0);
        now.saturating_sub(before)
    }
}

/// Sets a socket's receive buffer: `SO_RCVBUFFORCE` when allowed, else `SO_RCVBUF` (capped
/// by `net.core.rmem_max`); warns when the kernel gave less than asked.
pub fn set_recv_buffer(s: &Socket, bytes: usize) {
    let want = bytes.min(i32::MAX as usize) as libc::c_int;
    // SAFETY: `want` is a live c_int for the duration of the call, its size is passed.
    let forced = unsafe {
        libc::setsockopt(
            s.as_raw_fd(),
            libc::SOL_SOCKET,
            SO_RCVBUFFORCE,
            (&want as *const libc::c_int).cast(),
            size_of::<libc::c_int>() as libc::socklen_t,
        )
    } == 0;
    if !forced {
        let _ = s.set_recv_buffer_size(bytes);
    }
    // Linux reports twice the size asked (it counts its bookkeeping).
    let got = s.recv_buffer_size().unwrap_or(0) / 2;
    if got < bytes {
        tracing::warn!(
            asked = bytes,
            got,
            "syslog: the kernel gave a smaller receive buffer than syslog.udp_recv_buffer: raise net.core.rmem_max (or run with CAP_NET_ADMIN)"
        );
    }
}

/// The inode of a socket (its `/proc/net/*` rows name it).
pub fn inode(fd: &impl AsRawFd) -> io::Result<u64> {
    let mut st = std::mem::MaybeUninit::<libc::stat>::uninit();
    // SAFETY: fstat writes a whole `stat` into the buffer on success.
    if unsafe { libc::fstat(fd.as_raw_fd(), st.as_mut_ptr()) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fstat succeeded.
    Ok(unsafe { st.assume_init() }.st_ino)
}

/// The `drops` column of the socket with `inode` in `/proc/net/udp` (or `udp6`).
fn read_drops(inode: u64, v6: bool) -> Option<u64> {
    let path = if v6 {
        "/proc/net/udp6"
    } else {
        "/proc/net/udp"
    };
    let text = std::fs::read_to_string(path).ok()?;
    drops_of(&text, inode)
}

/// Finds `inode`'s row of a `/proc/net/udp` table and returns its `drops` (the last column).
pub fn drops_of(table: &str, inode: u64) -> Option<u64> {
    let inode = inode.to_string();
    table.lines().skip(1).find_map(|line| {
        let cols: Vec<&str> = line.split_whitespace().collect();
        // sl local rem st tx:rx tr:when retrnsmt uid timeout inode ref pointer drops
        (cols.len() >= 13 && cols[9] == inode).then(|| cols[cols.len() - 1].parse().ok())?
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drops_are_read_from_the_socket_row() {
        let table = "   sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref pointer drops\n\
  573: 0100007F:0202 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 12345 2 0000000000000000 0\n\
  574: 0100007F:4E20 00000000:0000 07 00000000:00034000 00:00000000 00000000     0        0 67890 2 0000000000000000 4211\n";
        assert_eq!(drops_of(table, 67890), Some(4211));
        assert_eq!(drops_of(table, 12345), Some(0));
        assert_eq!(drops_of(table, 1), None);
    }

    #[test]
    fn a_bound_socket_finds_its_own_row() {
        let u = Udp::bind("127.0.0.1:0".parse().unwrap(), 64 * 1024).unwrap();
        assert_eq!(read_drops(u.inode, false), Some(0));
    }
}
