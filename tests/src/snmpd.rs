//! [`Snmpd`]: Debian's net-snmp `snmpd` on 127.0.0.1, on free UDP ports chosen at run time,
//! with its own configuration: a v2c community and v3 users at every security level with
//! several auth/priv protocols ([`USERS`]). Stopped by its PID (SIGTERM) when dropped, and
//! killed if the thread that started it exits (`PR_SET_PDEATHSIG`).
//!
//! [`Snmpd::snmpget`] and [`Snmpd::snmpbulkwalk`] run net-snmp's own tools against it, for
//! reference values. Install both with `tests/install-peers.sh` (packages `snmpd`, `snmp`).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{anyhow, Context};
use tempfile::TempDir;

use crate::process::{send_signal, terminate};

/// The v2c community.
pub const COMMUNITY: &str = "public";
/// `sysName.0` of every test snmpd.
pub const SYS_NAME: &str = "logops-test-snmpd";
/// The auth password of every v3 user.
pub const AUTH_PASSWORD: &str = "authpass123";
/// The priv password of every v3 user with privacy.
pub const PRIV_PASSWORD: &str = "privpass123";

/// A v3 user of the test snmpd.
#[derive(Debug, Clone, Copy)]
pub struct User {
    /// Its name.
    pub name: &'static str,
    /// `noAuthNoPriv`, `authNoPriv` or `authPriv` (what `rouser` requires).
    pub level: &'static str,
    /// net-snmp's auth protocol name (`SHA-256`), if any.
    pub net_snmp_auth: Option<&'static str>,
    /// The agent's `auth_protocol` value.
    pub auth: Option<&'static str>,
    /// net-snmp's priv protocol name (`AES256C`), if any.
    pub net_snmp_priv: Option<&'static str>,
    /// The agent's `priv_protocol` value.
    pub privacy: Option<&'static str>,
}

const fn user(
    name: &'static str,
    level: &'static str,
    auth: Option<(&'static str, &'static str)>,
    privacy: Option<(&'static str, &'static str)>,
) -> User {
    User {
        name,
        level,
        net_snmp_auth: match auth {
            Some((n, _)) => Some(n),
            None => None,
        },
        auth: match auth {
            Some((_, a)) => Some(a),
            None => None,
        },
        net_snmp_priv: match privacy {
            Some((n, _)) => Some(n),
            None => None,
        },
        privacy: match privacy {
            Some((_, p)) => Some(p),
            None => None,
        },
    }
}

/// The v3 users: every level, every auth protocol, DES, AES and both AES-192/256 key
/// extensions.
pub const USERS: &[User] = &[
    user("noAuthUser", "noAuthNoPriv", None, None),
    user("authOnlyUser", "authNoPriv", Some(("SHA", "sha")), None),
    user(
        "authPrivUser",
        "authPriv",
        Some(("SHA", "sha")),
        Some(("AES", "aes")),
    ),
    user(
        "md5DesUser",
        "authPriv",
        Some(("MD5", "md5")),
        Some(("DES", "des")),
    ),
    user(
        "sha224Aes192User",
        "authPriv",
        Some(("SHA-224", "sha224")),
        Some(("AES192", "aes192")),
    ),
    user(
        "sha256Aes256User",
        "authPriv",
        Some(("SHA-256", "sha256")),
        Some(("AES256", "aes256")),
    ),
    user(
        "sha384AesUser",
        "authPriv",
        Some(("SHA-384", "sha384")),
        Some(("AES", "aes")),
    ),
    user(
        "sha512Aes192User",
        "authPriv",
        Some(("SHA-512", "sha512")),
        Some(("AES192", "aes192")),
    ),
    user(
        "shaAes256User",
        "authPriv",
        Some(("SHA", "sha")),
        Some(("AES256", "aes256")),
    ),
    user(
        "shaAes256cUser",
        "authPriv",
        Some(("SHA", "sha")),
        Some(("AES256C", "aes256c")),
    ),
];

/// The user called `name`.
pub fn find_user(name: &str) -> User {
    *USERS
        .iter()
        .find(|u| u.name == name)
        .unwrap_or_else(|| panic!("no test user {name}"))
}

/// The path of net-snmp's `binary` (snmpd, snmpget, ...), or how to install it.
pub(crate) fn find(binary: &str) -> anyhow::Result<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/sbin"), PathBuf::from("/usr/bin")])
        .map(|d| d.join(binary))
        .find(|p| p.is_file())
        .ok_or_else(|| {
            anyhow!("`{binary}` is not installed: run tests/install-peers.sh as root (Debian packages snmpd and snmp)")
        })
}

/// A running snmpd.
pub struct Snmpd {
    child: Option<Child>,
    ports: Vec<u16>,
    dir: TempDir,
}

/// Free UDP ports on 127.0.0.1 (bound, read, released).
pub(crate) fn free_udp_ports(n: usize) -> Vec<u16> {
    let sockets: Vec<std::net::UdpSocket> = (0..n)
        .map(|_| std::net::UdpSocket::bind("127.0.0.1:0").expect("binding 127.0.0.1:0"))
        .collect();
    sockets
        .iter()
        .map(|s| s.local_addr().expect("bound").port())
        .collect()
}

/// Whether a UDP socket is bound on 127.0.0.1:`port` (from /proc/net/udp).
pub(crate) fn udp_bound(port: u16) -> bool {
    let want = format!("0100007F:{port:04X}");
    std::fs::read_to_string("/proc/net/udp")
        .map(|t| {
            t.lines()
                .skip(1)
                .any(|l| l.split_whitespace().nth(1) == Some(want.as_str()))
        })
        .unwrap_or(false)
}

impl Snmpd {
    /// Starts snmpd listening on `ports` free UDP ports of 127.0.0.1 (each a "device").
    pub fn start(ports: usize) -> anyhow::Result<Snmpd> {
        let binary = find("snmpd")?;
        let mut last = String::new();
        for _ in 0..5 {
            let dir = tempfile::Builder::new().prefix("logops-snmpd-").tempdir()?;
            let ports = free_udp_ports(ports.max(1));
            match Self::try_start(&binary, dir, ports) {
                Ok(s) => return Ok(s),
                Err(e) => last = format!("{e:#}"),
            }
        }
        Err(anyhow!("snmpd did not start in 5 tries; last: {last}"))
    }

    fn try_start(binary: &Path, dir: TempDir, ports: Vec<u16>) -> anyhow::Result<Snmpd> {
        let persist = dir.path().join("persist");
        std::fs::create_dir_all(&persist)?;
        std::fs::set_permissions(
            &persist,
            <std::fs::Permissions as std::os::unix::fs::PermissionsExt>::from_mode(0o700),
        )?;
        let mut conf = String::new();
        let _ = writeln!(conf, "[snmp] persistentDir {}", persist.display());
        let _ = writeln!(conf, "[snmp] mibs :");
        let endpoints: Vec<String> = ports.iter().map(|p| format!("udp:127.0.0.1:{p}")).collect();
        let _ = writeln!(conf, "agentAddress {}", endpoints.join(","));
        let _ = writeln!(conf, "sysName {SYS_NAME}");
        let _ = writeln!(conf, "sysLocation loopback");
        let _ = writeln!(conf, "sysContact root@localhost");
        let _ = writeln!(conf, "rocommunity {COMMUNITY} 127.0.0.1");
        for u in USERS {
            let mut line = format!("createUser {}", u.name);
            if let Some(a) = u.net_snmp_auth {
                let _ = write!(line, " {a} \"{AUTH_PASSWORD}\"");
            }
            if let Some(p) = u.net_snmp_priv {
                let _ = write!(line, " {p} \"{PRIV_PASSWORD}\"");
            }
            let _ = writeln!(conf, "{line}");
            let min = match u.level {
                "noAuthNoPriv" => "noauth",
                "authNoPriv" => "auth",
                _ => "priv",
            };
            let _ = writeln!(conf, "rouser {} {min}", u.name);
        }
        let conf_path = dir.path().join("snmpd.conf");
        std::fs::write(&conf_path, conf)?;
        let log = dir.path().join("snmpd.log");
        let mut cmd = Command::new(binary);
        cmd.arg("-f")
            .arg("-Lf")
            .arg(&log)
            .arg("-C")
            .arg("-c")
            .arg(&conf_path)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .env("SNMP_PERSISTENT_DIR", &persist);
        // SAFETY: prctl is async-signal-safe; nothing else runs between fork and exec.
        unsafe {
            cmd.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong);
                Ok(())
            });
        }
        let child = cmd.spawn().context("spawning snmpd")?;
        let mut s = Snmpd {
            child: Some(child),
            ports,
            dir,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(status) = s.child.as_mut().and_then(|c| c.try_wait().ok().flatten()) {
                s.child = None;
                anyhow::bail!("snmpd exited with {status}; its log:\n{}", s.log());
            }
            if s.ports.iter().all(|p| udp_bound(*p)) {
                return Ok(s);
            }
            if Instant::now() > deadline {
                anyhow::bail!(
                    "snmpd did not bind its ports within 20 s; its log:\n{}",
                    s.log()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Its PID.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().map(Child::id).expect("running")
    }

    /// The first port.
    pub fn port(&self) -> u16 {
        self.ports[0]
    }

    /// Every port.
    pub fn ports(&self) -> &[u16] {
        &self.ports
    }

    /// `127.0.0.1:<first port>`.
    pub fn address(&self) -> String {
        format!("127.0.0.1:{}", self.port())
    }

    /// Its log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("snmpd.log")).unwrap_or_default()
    }

    /// Pauses it (SIGSTOP): requests queue up unanswered until [`Snmpd::resume`].
    pub fn pause(&self) {
        send_signal(self.pid(), libc::SIGSTOP).expect("SIGSTOP snmpd");
    }

    /// Resumes it (SIGCONT).
    pub fn resume(&self) {
        send_signal(self.pid(), libc::SIGCONT).expect("SIGCONT snmpd");
    }

    /// Stops it by PID (SIGTERM, then SIGKILL after 10 s).
    pub fn stop(&mut self) {
        if let Some(c) = self.child.take() {
            // A stopped (SIGSTOP) daemon must run to act on SIGTERM.
            let _ = send_signal(c.id(), libc::SIGCONT);
            terminate(c, Duration::from_secs(10));
        }
    }

    fn tool(&self, tool: &str, args: &[String]) -> anyhow::Result<String> {
        net_snmp_tool(tool, args, &self.dir.path().join("client"))
    }

    fn v2c_args(&self, extra: &[&str]) -> Vec<String> {
        let mut a: Vec<String> = ["-v2c", "-c", COMMUNITY, "-Onqet", "-t", "2", "-r", "1"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        a.extend(extra.iter().map(|s| s.to_string()));
        a.push(self.address());
        a
    }

    /// net-snmp's `snmpget -v2c`: OID → value as net-snmp prints it (`-Onqet`).
    pub fn snmpget(&self, oids: &[&str]) -> anyhow::Result<BTreeMap<String, String>> {
        let mut args = self.v2c_args(&[]);
        args.extend(oids.iter().map(|s| s.to_string()));
        Ok(parse_lines(&self.tool("snmpget", &args)?))
    }

    /// net-snmp's `snmpbulkwalk -v2c` of a subtree: OID → value (`-Onqet`).
    pub fn snmpbulkwalk(&self, root: &str) -> anyhow::Result<BTreeMap<String, String>> {
        let mut args = self.v2c_args(&["-Cr25"]);
        args.push(root.to_owned());
        Ok(parse_lines(&self.tool("snmpbulkwalk", &args)?))
    }
}

/// Runs net-snmp's `tool` (without MIB files) with `args`, keeping its persistent state in
/// `persist` (not /var/lib/snmp); its standard output, or an error with its standard error.
pub(crate) fn net_snmp_tool(tool: &str, args: &[String], persist: &Path) -> anyhow::Result<String> {
    let out = Command::new(find(tool)?)
        .arg("-m")
        .arg("")
        .args(args)
        .env("SNMP_PERSISTENT_DIR", persist)
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("running {tool}"))?;
    anyhow::ensure!(
        out.status.success(),
        "{tool} {args:?}: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// `.1.3.6.1.2.1.1.3.0 12345` lines → `1.3.6.1.2.1.1.3.0` → `12345` (strings keep quotes).
pub(crate) fn parse_lines(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .filter_map(|l| {
            let (oid, value) = l.split_once(' ')?;
            Some((oid.trim_start_matches('.').to_owned(), value.to_owned()))
        })
        .collect()
}

impl Drop for Snmpd {
    fn drop(&mut self) {
        self.stop();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn net_snmp_output_is_parsed() {
        let m = parse_lines(".1.3.6.1.2.1.1.3.0 101946\n.1.3.6.1.2.1.1.5.0 \"x y\"\n");
        assert_eq!(m["1.3.6.1.2.1.1.3.0"], "101946");
        assert_eq!(m["1.3.6.1.2.1.1.5.0"], "\"x y\"");
    }
}
