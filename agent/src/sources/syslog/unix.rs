//! The Unix datagram socket (`syslog.unix`, like `/dev/log`): created at start (a stale
//! socket file left by an earlier run is replaced; any other file is an error), writable by
//! every local user like `/dev/log`, and removed when the source stops.

use std::io;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};

use socket2::SockRef;

use super::datagram::DatagramSocket;
use super::udp::set_recv_buffer;

/// The bound socket; the file is removed on drop.
pub struct Unix {
    socket: UnixDatagram,
    path: PathBuf,
}

impl Unix {
    /// Creates the socket at `path` with a receive buffer of `recv_buffer` bytes.
    pub fn bind(path: &Path, recv_buffer: usize) -> io::Result<Unix> {
        match std::fs::symlink_metadata(path) {
            Ok(m) if m.file_type().is_socket() => std::fs::remove_file(path)?,
            Ok(_) => {
                return Err(io::Error::new(
                    io::ErrorKind::AlreadyExists,
                    "the path exists and is not a socket",
                ))
            }
            Err(_) => {}
        }
        let socket = UnixDatagram::bind(path)?;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o666))?;
        set_recv_buffer(&SockRef::from(&socket), recv_buffer);
        socket.set_nonblocking(true)?;
        Ok(Unix {
            socket,
            path: path.to_owned(),
        })
    }
}

impl std::os::fd::AsRawFd for Unix {
    fn as_raw_fd(&self) -> std::os::fd::RawFd {
        self.socket.as_raw_fd()
    }
}

impl DatagramSocket for Unix {
    fn recv(&mut self, buf: &mut [u8], peer: &mut String) -> io::Result<usize> {
        let (n, from) = self.socket.recv_from(buf)?;
        // Senders are usually unnamed (`logger -u`, syslog(3)): no peer then.
        match from.as_pathname() {
            Some(p) => {
                if peer.as_str() != p.to_string_lossy() {
                    peer.clear();
                    peer.push_str(&p.to_string_lossy());
                }
            }
            None => peer.clear(),
        }
        Ok(n)
    }
}

impl Drop for Unix {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}
