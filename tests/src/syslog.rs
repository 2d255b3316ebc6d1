//! Syslog peers and helpers for the syslog tests and benchmark: free ports for the agent's
//! listeners, util-linux `logger`, a private `rsyslogd` forwarding to the agent (started
//! with its own configuration, stopped by its PID), socat as a TLS sender, and the stored
//! syslog events read back from the ingest.
//!
//! Install the peers with `tests/install-peers.sh` (`rsyslog`, `socat`, `bsdutils` for
//! `logger`).

use std::fmt::Write as _;
use std::io::Write as _;
use std::net::{TcpListener, UdpSocket};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use anyhow::{anyhow, Context};
use tempfile::TempDir;

use crate::harness::IngestHarness;
use crate::process::{send_signal, terminate};

/// A port free on 127.0.0.1 for both TCP and UDP.
pub fn free_tcp_udp_port() -> u16 {
    for _ in 0..100 {
        let t = TcpListener::bind("127.0.0.1:0").expect("binding 127.0.0.1:0");
        let port = t.local_addr().expect("local address").port();
        if UdpSocket::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no port free for both TCP and UDP in 100 tries");
}

/// The agent's syslog listeners on free loopback ports.
#[derive(Debug, Clone)]
pub struct SyslogPorts {
    /// `syslog.udp` port.
    pub udp: u16,
    /// `syslog.tcp` port.
    pub tcp: u16,
    /// `syslog.tls.listen` port.
    pub tls: u16,
}

impl SyslogPorts {
    /// Three free ports.
    pub fn free() -> Self {
        SyslogPorts {
            udp: free_tcp_udp_port(),
            tcp: free_tcp_udp_port(),
            tls: free_tcp_udp_port(),
        }
    }

    /// `[syslog]` with `udp` and `tcp` on 127.0.0.1 and the extra raw TOML lines (`tls =`,
    /// `unix =`, limits, ...).
    pub fn section(&self, extra: &str) -> String {
        let mut s = String::from("[syslog]\n");
        let _ = writeln!(s, "udp = \"127.0.0.1:{}\"", self.udp);
        let _ = writeln!(s, "tcp = \"127.0.0.1:{}\"", self.tcp);
        s.push_str(extra);
        s.push('\n');
        s
    }
}

/// Where a program is: `/usr/bin/NAME`, `/usr/sbin/NAME`, `/bin/NAME` or `/sbin/NAME`;
/// the error says to run `tests/install-peers.sh`.
pub fn find_program(name: &str) -> anyhow::Result<PathBuf> {
    for dir in ["/usr/bin", "/usr/sbin", "/bin", "/sbin"] {
        let p = Path::new(dir).join(name);
        if p.is_file() {
            return Ok(p);
        }
    }
    Err(anyhow!(
        "{name} is not installed: run tests/install-peers.sh (as root)"
    ))
}

/// Runs util-linux `logger` with `args` (bounded to 30 s); panics with its stderr on failure.
pub fn logger(args: &[&str]) {
    let out = run_bounded(
        Command::new(find_program("logger").unwrap()).args(args),
        None,
    );
    assert!(
        out.status.success(),
        "logger {args:?}: {}: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Runs a command with `stdin` as its input, killing it after 30 s.
pub fn run_bounded(cmd: &mut Command, stdin: Option<&[u8]>) -> Output {
    let mut child = cmd
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("spawning {cmd:?}: {e}"));
    if let Some(data) = stdin {
        let mut i = child.stdin.take().expect("piped stdin");
        let data = data.to_vec();
        std::thread::spawn(move || {
            let _ = i.write_all(&data);
        });
    }
    let pid = child.id();
    let (tx, rx) = std::sync::mpsc::channel::<()>();
    let watchdog = std::thread::spawn(move || {
        if rx.recv_timeout(Duration::from_secs(30)).is_err() {
            let _ = send_signal(pid, libc::SIGKILL);
        }
    });
    let out = child.wait_with_output().expect("waiting for the command");
    let _ = tx.send(());
    let _ = watchdog.join();
    out
}

/// Sends `data` over TLS to `127.0.0.1:port` with socat (`OPENSSL:`), trusting `ca` and
/// presenting `cert` + `key` when given. Returns socat's output (its exit status and
/// stderr say whether the server refused it).
pub fn socat_tls_send(port: u16, ca: &Path, client: Option<(&Path, &Path)>, data: &[u8]) -> Output {
    let mut addr = format!(
        "OPENSSL:127.0.0.1:{port},cafile={},commonname=127.0.0.1",
        ca.display()
    );
    if let Some((cert, key)) = client {
        let _ = write!(addr, ",cert={},key={}", cert.display(), key.display());
    }
    run_bounded(
        Command::new(find_program("socat").unwrap()).args(["-t", "2", "-u", "STDIN", &addr]),
        Some(data),
    )
}

/// A private rsyslogd forwarding what it gets on its Unix socket to the agent: RFC 5424
/// and RFC 3164 ("traditional") over TCP with octet counting, and both over UDP.
pub struct RsyslogForwarder {
    child: Option<Child>,
    dir: TempDir,
}

impl RsyslogForwarder {
    /// Starts rsyslogd forwarding to `127.0.0.1:tcp_port` and `127.0.0.1:udp_port`.
    pub fn start(tcp_port: u16, udp_port: u16) -> anyhow::Result<RsyslogForwarder> {
        let binary = find_program("rsyslogd")?;
        let dir = tempfile::Builder::new()
            .prefix("logops-rsyslog-")
            .tempdir()?;
        let d = dir.path();
        std::fs::create_dir_all(d.join("spool"))?;
        let conf = format!(
            r#"global(workDirectory="{d}/spool")
module(load="imuxsock" SysSock.Use="off")
input(type="imuxsock" Socket="{d}/in.sock" CreatePath="on")
action(type="omfwd" target="127.0.0.1" port="{tcp_port}" protocol="tcp" TCP_Framing="octet-counted"
       template="RSYSLOG_SyslogProtocol23Format" queue.type="LinkedList" action.resumeRetryCount="-1")
action(type="omfwd" target="127.0.0.1" port="{tcp_port}" protocol="tcp" TCP_Framing="octet-counted"
       template="RSYSLOG_TraditionalForwardFormat" queue.type="LinkedList" action.resumeRetryCount="-1")
action(type="omfwd" target="127.0.0.1" port="{udp_port}" protocol="udp" template="RSYSLOG_SyslogProtocol23Format")
action(type="omfwd" target="127.0.0.1" port="{udp_port}" protocol="udp" template="RSYSLOG_TraditionalForwardFormat")
"#,
            d = d.display()
        );
        let conf_path = d.join("rsyslog.conf");
        std::fs::write(&conf_path, conf)?;
        let check = run_bounded(
            Command::new(&binary).arg("-N1").arg("-f").arg(&conf_path),
            None,
        );
        anyhow::ensure!(
            check.status.success(),
            "rsyslogd -N1 refused the configuration: {}",
            String::from_utf8_lossy(&check.stderr)
        );
        let mut cmd = Command::new(&binary);
        cmd.arg("-n")
            .arg("-f")
            .arg(&conf_path)
            .arg("-i")
            .arg(d.join("rsyslogd.pid"))
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(d.join("rsyslogd.out"))?)
            .stderr(std::fs::File::create(d.join("rsyslogd.err"))?);
        // SAFETY: prctl is async-signal-safe; nothing else runs between fork and exec.
        unsafe {
            cmd.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong);
                Ok(())
            });
        }
        let child = cmd.spawn().context("spawning rsyslogd")?;
        let mut r = RsyslogForwarder {
            child: Some(child),
            dir,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while !r.socket().exists() {
            if let Some(status) = r.child.as_mut().and_then(|c| c.try_wait().ok().flatten()) {
                r.child = None;
                anyhow::bail!("rsyslogd exited with {status}: {}", r.stderr());
            }
            anyhow::ensure!(
                Instant::now() < deadline,
                "rsyslogd did not create its socket within 20 s: {}",
                r.stderr()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(r)
    }

    /// The Unix socket it reads (`logger -u PATH`).
    pub fn socket(&self) -> PathBuf {
        self.dir.path().join("in.sock")
    }

    /// Its stderr so far.
    pub fn stderr(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("rsyslogd.err")).unwrap_or_default()
    }

    /// Stops it by PID (SIGTERM, SIGKILL after 10 s).
    pub fn stop(&mut self) {
        if let Some(c) = self.child.take() {
            terminate(c, Duration::from_secs(10));
        }
    }
}

impl Drop for RsyslogForwarder {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Every stored syslog event of the tenant `key` can read, parsed.
pub fn stored_syslog(ingest: &IngestHarness, key: &str) -> Vec<serde_json::Value> {
    ingest
        .client()
        .query_all(key, "/v1/logs", &[("source", "syslog")])
        .iter()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l}: {e}")))
        .collect()
}

/// Polls the stored syslog events (every 200 ms, at most `timeout`) until `done` says they
/// are complete; panics with what it waited for and what was there.
pub fn wait_syslog(
    ingest: &IngestHarness,
    key: &str,
    what: &str,
    timeout: Duration,
    mut done: impl FnMut(&[serde_json::Value]) -> bool,
) -> Vec<serde_json::Value> {
    let deadline = Instant::now() + timeout;
    loop {
        let events = stored_syslog(ingest, key);
        if done(&events) {
            return events;
        }
        if Instant::now() > deadline {
            let shown: Vec<String> = events.iter().take(20).map(|e| e.to_string()).collect();
            panic!(
                "gave up after {timeout:?} waiting for {what}; {} syslog events stored, first ones:\n{}",
                events.len(),
                shown.join("\n")
            );
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The events whose body contains `needle`.
pub fn with_body<'a>(events: &'a [serde_json::Value], needle: &str) -> Vec<&'a serde_json::Value> {
    events
        .iter()
        .filter(|e| e["body"].as_str().is_some_and(|b| b.contains(needle)))
        .collect()
}
