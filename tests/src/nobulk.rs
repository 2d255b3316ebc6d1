//! [`NoBulkAgent`]: an SNMP agent without GETBULK, for the collector's GETNEXT fallback.
//!
//! It is pysnmp's command responder with only its GET and GETNEXT applications registered
//! (`tests/peers/snmp_nobulk.py`), serving pysnmp's built-in MIB on a free UDP port of
//! 127.0.0.1: to a GETBULK it answers nothing over SNMPv2c and a report of
//! snmpUnknownPDUHandlers over SNMPv3, as agents without GETBULK do. The interpreter is the
//! venv `tests/install-peers.sh` makes (`/opt/logops-tests/snmp-venv`, pysnmp 7.1 with
//! `cryptography` for AES); `LOGOPS_PYSNMP_PYTHON` overrides it. Stopped by its PID when
//! dropped, and killed if the thread that started it exits (`PR_SET_PDEATHSIG`).

use std::collections::BTreeMap;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{anyhow, Context};
use tempfile::TempDir;

use crate::process::terminate;
use crate::snmpd::{free_udp_ports, net_snmp_tool, parse_lines, udp_bound};

/// Its v2c community.
pub const COMMUNITY: &str = "nobulk";
/// Its v3 user (HMAC-SHA-96 + CFB-AES-128, authPriv).
pub const USER: &str = "nobulkUser";
/// The v3 user's auth password.
pub const AUTH_PASSWORD: &str = "nobulkauth123";
/// The v3 user's priv password.
pub const PRIV_PASSWORD: &str = "nobulkpriv123";

/// The Python of the pysnmp venv.
fn python() -> PathBuf {
    std::env::var_os("LOGOPS_PYSNMP_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/opt/logops-tests/snmp-venv/bin/python"))
}

/// A running pysnmp agent without GETBULK.
pub struct NoBulkAgent {
    child: Option<Child>,
    port: u16,
    dir: TempDir,
}

impl NoBulkAgent {
    /// Starts it on a free UDP port of 127.0.0.1 and waits until the port is bound.
    pub fn start() -> anyhow::Result<NoBulkAgent> {
        let python = python();
        anyhow::ensure!(
            python.is_file(),
            "{} is missing: run tests/install-peers.sh as root (it makes the pysnmp venv)",
            python.display()
        );
        let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("peers/snmp_nobulk.py");
        let dir = tempfile::Builder::new()
            .prefix("logops-nobulk-")
            .tempdir()?;
        let port = free_udp_ports(1)[0];
        let log = std::fs::File::create(dir.path().join("agent.log"))?;
        let mut cmd = Command::new(&python);
        cmd.arg(&script)
            .arg(port.to_string())
            .args([COMMUNITY, USER, AUTH_PASSWORD, PRIV_PASSWORD])
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log);
        // SAFETY: prctl is async-signal-safe; nothing else runs between fork and exec.
        unsafe {
            cmd.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong);
                Ok(())
            });
        }
        let child = cmd
            .spawn()
            .with_context(|| format!("spawning {}", python.display()))?;
        let mut agent = NoBulkAgent {
            child: Some(child),
            port,
            dir,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = agent
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                agent.child = None;
                return Err(anyhow!(
                    "the pysnmp agent exited with {status}; its log:\n{}",
                    agent.log()
                ));
            }
            if udp_bound(port) {
                return Ok(agent);
            }
            if Instant::now() > deadline {
                return Err(anyhow!(
                    "the pysnmp agent did not bind 127.0.0.1:{port} within 30 s; its log:\n{}",
                    agent.log()
                ));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// `127.0.0.1:<port>`.
    pub fn address(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Its output so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("agent.log")).unwrap_or_default()
    }

    fn tool(&self, tool: &str, v3: bool, root: &str) -> anyhow::Result<BTreeMap<String, String>> {
        let mut args: Vec<String> = if v3 {
            vec![
                "-v3",
                "-l",
                "authPriv",
                "-u",
                USER,
                "-a",
                "SHA",
                "-A",
                AUTH_PASSWORD,
                "-x",
                "AES",
                "-X",
                PRIV_PASSWORD,
            ]
        } else {
            vec!["-v2c", "-c", COMMUNITY]
        }
        .into_iter()
        .map(String::from)
        .collect();
        args.extend(["-Onqet", "-t", "2", "-r", "0"].map(String::from));
        args.push(self.address());
        args.push(root.to_owned());
        Ok(parse_lines(&net_snmp_tool(
            tool,
            &args,
            &self.dir.path().join("client"),
        )?))
    }

    /// net-snmp's `snmpwalk` (GETNEXT) of a subtree, v2c or v3: OID → value (`-Onqet`).
    pub fn snmpwalk(&self, v3: bool, root: &str) -> anyhow::Result<BTreeMap<String, String>> {
        self.tool("snmpwalk", v3, root)
    }

    /// net-snmp's `snmpbulkwalk` of a subtree: fails against this agent.
    pub fn snmpbulkwalk(&self, v3: bool, root: &str) -> anyhow::Result<BTreeMap<String, String>> {
        self.tool("snmpbulkwalk", v3, root)
    }
}

impl Drop for NoBulkAgent {
    fn drop(&mut self) {
        if let Some(c) = self.child.take() {
            terminate(c, Duration::from_secs(5));
        }
    }
}
