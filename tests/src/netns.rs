//! Private network namespaces for network tests: [`NetnsPair`] is a "pinger" and a "target"
//! namespace joined by a veth pair, with addresses that exist only on that veth
//! (198.18.0.0/15, the RFC 2544 benchmark range, and the ULA fd00:198:18::/64). Nothing is
//! added to the host's own namespace, so traffic between them never leaves them; dropping
//! the pair deletes both namespaces (and with them the veths and every rule inside), also
//! when a test fails.
//!
//! Code runs inside a namespace in a thread of its own ([`in_netns`]: `setns(2)` changes
//! only the calling thread); commands run with `ip netns exec`.

use std::net::{Ipv4Addr, Ipv6Addr};
use std::os::fd::AsRawFd;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};

use anyhow::{bail, Context};

/// The pinger's address on the veth.
pub const PINGER_V4: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);
/// The target's address on the veth.
pub const TARGET_V4: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 2);
/// An address in the veth's subnet that nobody has (no ARP answer: unreachable).
pub const ABSENT_V4: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 99);
/// The pinger's IPv6 address.
pub const PINGER_V6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0x198, 0x18, 0, 0, 0, 0, 1);
/// The target's IPv6 address.
pub const TARGET_V6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0x198, 0x18, 0, 0, 0, 0, 2);

/// Two namespaces joined by a veth pair; deleted on drop.
pub struct NetnsPair {
    /// The namespace to ping from.
    pub pinger: String,
    /// The namespace holding the target addresses.
    pub target: String,
}

static PAIRS: AtomicU32 = AtomicU32::new(0);

impl NetnsPair {
    /// Creates the pair (names unique per process and call). Needs root (CAP_SYS_ADMIN,
    /// CAP_NET_ADMIN).
    pub fn new() -> anyhow::Result<NetnsPair> {
        let n = PAIRS.fetch_add(1, Ordering::Relaxed);
        let tag = format!("pg{}x{n}", std::process::id() % 100_000);
        let pair = NetnsPair {
            pinger: format!("{tag}p"),
            target: format!("{tag}t"),
        };
        // From here on Drop cleans up whatever was made.
        let (a, b) = (format!("{tag}a"), format!("{tag}b"));
        ip(&["netns", "add", &pair.pinger])?;
        ip(&["netns", "add", &pair.target])?;
        ip(&["link", "add", &a, "type", "veth", "peer", "name", &b])?;
        ip(&["link", "set", &a, "netns", &pair.pinger])?;
        ip(&["link", "set", &b, "netns", &pair.target])?;
        for (ns, dev, v4, v6) in [
            (&pair.pinger, &a, PINGER_V4, PINGER_V6),
            (&pair.target, &b, TARGET_V4, TARGET_V6),
        ] {
            ip(&["-n", ns, "addr", "add", &format!("{v4}/24"), "dev", dev])?;
            ip(&[
                "-n",
                ns,
                "addr",
                "add",
                &format!("{v6}/64"),
                "dev",
                dev,
                "nodad",
            ])?;
            ip(&["-n", ns, "link", "set", "lo", "up"])?;
            ip(&["-n", ns, "link", "set", dev, "up"])?;
        }
        Ok(pair)
    }

    /// Runs a command inside namespace `ns`, failing with its output if it fails.
    pub fn exec(&self, ns: &str, args: &[&str]) -> anyhow::Result<String> {
        let mut full = vec!["netns", "exec", ns];
        full.extend_from_slice(args);
        run("ip", &full, None)
    }

    /// Runs a command inside namespace `ns` with `stdin` as its input.
    pub fn exec_stdin(&self, ns: &str, args: &[&str], stdin: &str) -> anyhow::Result<String> {
        let mut full = vec!["netns", "exec", ns];
        full.extend_from_slice(args);
        run("ip", &full, Some(stdin))
    }

    /// Sets a sysctl inside namespace `ns` (network sysctls are per namespace).
    pub fn sysctl(&self, ns: &str, key: &str, value: &str) -> anyhow::Result<()> {
        self.exec(ns, &["sysctl", "-q", "-w", &format!("{key}={value}")])
            .map(|_| ())
    }
}

impl Drop for NetnsPair {
    fn drop(&mut self) {
        // Deleting a namespace destroys the veth end inside it, and with it its peer.
        for ns in [&self.pinger, &self.target] {
            let _ = Command::new("ip")
                .args(["netns", "del", ns])
                .stderr(Stdio::null())
                .status();
        }
    }
}

/// Runs `f` on a new thread that has joined network namespace `ns` (`/run/netns/NS`).
pub fn in_netns<T: Send + 'static>(
    ns: &str,
    f: impl FnOnce() -> T + Send + 'static,
) -> anyhow::Result<T> {
    let path = format!("/run/netns/{ns}");
    let file = std::fs::File::open(&path).with_context(|| format!("opening {path}"))?;
    let handle = std::thread::spawn(move || {
        // SAFETY: a valid namespace descriptor; setns affects only this thread.
        if unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(f())
    });
    match handle.join() {
        Ok(r) => r.with_context(|| format!("setns into {path}")),
        Err(p) => std::panic::resume_unwind(p),
    }
}

/// Removes a capability from this thread's effective set (capabilities are per thread on
/// Linux), e.g. `CAP_NET_RAW` (13) to see what an unprivileged agent sees.
pub fn drop_effective_capability(cap: u32) -> std::io::Result<()> {
    #[repr(C)]
    struct Header {
        version: u32,
        pid: i32,
    }
    #[repr(C)]
    #[derive(Clone, Copy, Default)]
    struct Data {
        effective: u32,
        permitted: u32,
        inheritable: u32,
    }
    const VERSION_3: u32 = 0x2008_0522;
    let mut h = Header {
        version: VERSION_3,
        pid: 0,
    };
    let mut d = [Data::default(); 2];
    // SAFETY: header and two data structs as capget(2) v3 wants.
    if unsafe { libc::syscall(libc::SYS_capget, &mut h, d.as_mut_ptr()) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    d[(cap / 32) as usize].effective &= !(1 << (cap % 32));
    // SAFETY: as above.
    if unsafe { libc::syscall(libc::SYS_capset, &mut h, d.as_ptr()) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

fn ip(args: &[&str]) -> anyhow::Result<String> {
    run("ip", args, None)
}

fn run(cmd: &str, args: &[&str], stdin: Option<&str>) -> anyhow::Result<String> {
    use std::io::Write;
    let mut child = Command::new(cmd)
        .args(args)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("running {cmd} (installed by tests/install-peers.sh?)"))?;
    if let (Some(text), Some(mut input)) = (stdin, child.stdin.take()) {
        input.write_all(text.as_bytes())?;
    }
    let out = child.wait_with_output()?;
    if !out.status.success() {
        bail!(
            "{cmd} {}: {}\n{}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}
