//! Real SSH peers for the SSH collector's tests, on free 127.0.0.1 ports, stopped by PID:
//!
//! - [`Sshd`]: a private OpenSSH server (Debian's `/usr/sbin/sshd`) with its own
//!   configuration and host key in a temporary directory, serving one throwaway user,
//!   [`USER`]. As a [`Role::Router`] it forces `tests/peers/fake_router.sh` (a canned Cisco
//!   IOS CLI: `router1>`/`router1#`, `enable`, paging, `show hang`) on every session; as a
//!   [`Role::Shell`] it is a plain Linux host (bash).
//! - [`FakeSwitch`]: PyPI `fake-switches` (Twisted conch) as a Cisco switch, through
//!   `tests/peers/run_fake_switch.py` (its launcher fixes).
//! - [`netmiko`]: Netmiko run against either, the reference for outputs.
//!
//! sshd needs a real account for passwords and ForceCommand. [`USER`] is created once
//! (idempotently) and given a random password only while some [`Sshd`] of this process
//! runs; when the last one stops its password is removed again (`*`: no password login
//! anywhere, on any sshd). Keys are only ever authorized in the private sshd's own
//! `AuthorizedKeysFile` in its temporary directory, never in the user's home. The private
//! sshd listens on 127.0.0.1 only and allows only [`USER`]; a system sshd is told to deny it
//! ([`SYSTEM_DENY_FILE`]).
//!
//! `tests/install-peers.sh` installs `openssh-server` and the venv with netmiko and
//! fake-switches ([`SSH_VENV`]).

use std::fmt::Write as _;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context};
use tempfile::TempDir;

use crate::harness::{free_port, random_hex};
use crate::process::terminate;

/// The account the private sshd serves.
pub const USER: &str = "logops-ssh-e2e";
/// The venv with netmiko and fake-switches (`tests/install-peers.sh`).
pub const SSH_VENV: &str = "/opt/logops-tests/ssh-venv";
/// The fake router's enable secret.
pub const ENABLE_SECRET: &str = "enable123";
/// Where the private sshds keep their files (root's, mode 755 all the way up).
pub const PRIVATE_ROOT: &str = "/run/logops-tests";
/// fake-switches' login.
pub const SWITCH_USER: &str = "admin";
/// fake-switches' password.
pub const SWITCH_PASSWORD: &str = "admin123";

/// `tests/peers/NAME`.
pub fn peer_file(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("peers")
        .join(name)
}

fn run(cmd: &mut Command) -> anyhow::Result<String> {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("running {cmd:?}"))?;
    if !out.status.success() {
        bail!(
            "{cmd:?}: {}: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn run_with_input(cmd: &mut Command, input: &str) -> anyhow::Result<()> {
    use std::io::Write;
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("running {cmd:?}"))?;
    child
        .stdin
        .take()
        .expect("piped")
        .write_all(input.as_bytes())?;
    let out = child.wait_with_output()?;
    if !out.status.success() {
        bail!(
            "{cmd:?}: {}: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

/// A system sshd (Debian's reads `/etc/ssh/sshd_config.d/*.conf`) never lets [`USER`] in,
/// even while it has a password: this drop-in only ever tightens it. The private sshd has
/// its own configuration and does not read it.
pub const SYSTEM_DENY_FILE: &str = "/etc/ssh/sshd_config.d/logops-e2e-deny-test-user.conf";

fn deny_on_system_sshd() -> anyhow::Result<()> {
    let path = Path::new(SYSTEM_DENY_FILE);
    let want = format!(
        "# Written by the logops tests (tests/src/sshd.rs): their throwaway account never logs in here.\nDenyUsers {USER}\n"
    );
    if path.parent().is_some_and(Path::is_dir)
        && std::fs::read_to_string(path).ok().as_deref() != Some(want.as_str())
    {
        std::fs::write(path, want).with_context(|| format!("writing {SYSTEM_DENY_FILE}"))?;
    }
    Ok(())
}

/// Users of [`USER`]'s password in this process, and the password.
static ACCOUNT: Mutex<(usize, String)> = Mutex::new((0, String::new()));

/// Holds [`USER`]'s password set; the last one dropped removes it.
pub struct Account {
    password: String,
}

impl Account {
    /// Creates [`USER`] if missing and gives it a random password (once for all holders).
    pub fn acquire() -> anyhow::Result<Account> {
        let mut a = ACCOUNT.lock().unwrap_or_else(|p| p.into_inner());
        if a.0 == 0 {
            if Command::new("id")
                .arg("-u")
                .arg(USER)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .map(|s| !s.success())
                .unwrap_or(true)
            {
                run(Command::new("useradd").args([
                    "-m",
                    "-s",
                    "/bin/bash",
                    "-c",
                    "logops SSH collector tests (no password between test runs)",
                    USER,
                ]))
                .context("creating the test account (run the tests as root)")?;
            }
            deny_on_system_sshd()?;
            let password = random_hex(12);
            // SHA-512 crypt: checked in a few ms per login (yescrypt takes far longer),
            // which matters for the 1,000-device benchmark.
            run_with_input(
                Command::new("chpasswd").args(["-c", "SHA512"]),
                &format!("{USER}:{password}\n"),
            )
            .context("setting the test account's password")?;
            a.1 = password;
        }
        a.0 += 1;
        Ok(Account {
            password: a.1.clone(),
        })
    }

    /// The password.
    pub fn password(&self) -> &str {
        &self.password
    }
}

impl Drop for Account {
    fn drop(&mut self) {
        let mut a = ACCOUNT.lock().unwrap_or_else(|p| p.into_inner());
        a.0 -= 1;
        if a.0 == 0 {
            // No password at all (not `!`, which would also refuse keys with UsePAM no).
            let _ = run(Command::new("usermod").args(["-p", "*", USER]));
            a.1.clear();
        }
    }
}

/// `ssh-keygen -t ed25519` into `path` (`path.pub` too), with a passphrase or none.
pub fn keygen(path: &Path, passphrase: &str) -> anyhow::Result<String> {
    run(Command::new("ssh-keygen")
        .args([
            "-q",
            "-t",
            "ed25519",
            "-C",
            "logops-e2e",
            "-N",
            passphrase,
            "-f",
        ])
        .arg(path))?;
    Ok(std::fs::read_to_string(path.with_extension("pub"))?
        .trim()
        .to_owned())
}

/// What the private sshd is.
#[derive(Debug, Clone)]
pub enum Role {
    /// Every session runs `fake_router.sh` with these arguments.
    Router(Vec<String>),
    /// A plain Linux host: the user's bash.
    Shell,
}

/// How the private sshd is set up.
#[derive(Debug, Clone)]
pub struct SshdOptions {
    /// Router or shell.
    pub role: Role,
    /// Password logins through keyboard-interactive only (PAM), not `password`.
    pub keyboard_interactive_only: bool,
    /// `MaxStartups` (unauthenticated connections at once).
    pub max_startups: usize,
}

impl SshdOptions {
    /// The fake router with these `fake_router.sh` arguments.
    pub fn router(args: &[&str]) -> Self {
        SshdOptions {
            role: Role::Router(args.iter().map(|s| s.to_string()).collect()),
            keyboard_interactive_only: false,
            max_startups: 10,
        }
    }

    /// A plain Linux host.
    pub fn shell() -> Self {
        SshdOptions {
            role: Role::Shell,
            keyboard_interactive_only: false,
            max_startups: 10,
        }
    }
}

/// A running private sshd.
pub struct Sshd {
    child: Option<Child>,
    port: u16,
    dir: TempDir,
    host_key: String,
    account: Account,
}

fn find_sshd() -> anyhow::Result<PathBuf> {
    let p = PathBuf::from("/usr/sbin/sshd");
    if p.is_file() {
        Ok(p)
    } else {
        Err(anyhow!(
            "/usr/sbin/sshd is not installed: run tests/install-peers.sh as root (package openssh-server)"
        ))
    }
}

/// Waits until something accepts TCP connections on 127.0.0.1:`port`.
pub fn wait_listening(
    port: u16,
    child: &mut Child,
    what: &str,
    log: &dyn Fn() -> String,
) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(status) = child.try_wait()? {
            bail!("{what} exited with {status}; its log:\n{}", log());
        }
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!(
                "{what} did not listen on 127.0.0.1:{port} within 30 s; its log:\n{}",
                log()
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn spawn_with_pdeathsig(cmd: &mut Command) -> std::io::Result<Child> {
    // SAFETY: prctl is async-signal-safe; nothing else runs between fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong);
            Ok(())
        });
    }
    cmd.spawn()
}

impl Sshd {
    /// Starts a private sshd on a free port of 127.0.0.1.
    pub fn start(opts: SshdOptions) -> anyhow::Result<Sshd> {
        let sshd = find_sshd()?;
        let account = Account::acquire()?;
        let mut last = String::new();
        for _ in 0..5 {
            match Self::try_start(&sshd, &opts) {
                Ok((child, port, dir, host_key)) => {
                    return Ok(Sshd {
                        child: Some(child),
                        port,
                        dir,
                        host_key,
                        account,
                    })
                }
                Err(e) => last = format!("{e:#}"),
            }
        }
        Err(anyhow!("sshd did not start in 5 tries; last: {last}"))
    }

    fn try_start(sshd: &Path, opts: &SshdOptions) -> anyhow::Result<(Child, u16, TempDir, String)> {
        // Not under /tmp: sshd's StrictModes refuses authorized keys below a world-writable
        // directory.
        std::fs::create_dir_all(PRIVATE_ROOT)?;
        std::fs::set_permissions(PRIVATE_ROOT, std::fs::Permissions::from_mode(0o755))?;
        let dir = tempfile::Builder::new()
            .prefix("sshd-")
            .tempdir_in(PRIVATE_ROOT)?;
        let d = dir.path();
        // The account enters it to run the forced command and read its authorized keys.
        std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o755))?;
        std::fs::create_dir_all("/run/sshd")?;
        let host_key = keygen(&d.join("ssh_host_ed25519_key"), "")?;
        let keys = d.join("authorized_keys");
        std::fs::create_dir(&keys)?;
        std::fs::set_permissions(&keys, std::fs::Permissions::from_mode(0o755))?;
        std::fs::write(keys.join(USER), "")?;
        std::fs::set_permissions(keys.join(USER), std::fs::Permissions::from_mode(0o644))?;
        let port = free_port();
        let mut c = String::new();
        let _ = writeln!(c, "# private sshd of a logops test (tests/src/sshd.rs)");
        let _ = writeln!(c, "Port {port}\nListenAddress 127.0.0.1");
        let _ = writeln!(c, "HostKey {}/ssh_host_ed25519_key", d.display());
        let _ = writeln!(c, "PidFile {}/sshd.pid", d.display());
        let _ = writeln!(c, "LogLevel VERBOSE");
        let kbd = opts.keyboard_interactive_only;
        let _ = writeln!(c, "UsePAM {}", if kbd { "yes" } else { "no" });
        let _ = writeln!(
            c,
            "PasswordAuthentication {}",
            if kbd { "no" } else { "yes" }
        );
        let _ = writeln!(
            c,
            "KbdInteractiveAuthentication {}",
            if kbd { "yes" } else { "no" }
        );
        let _ = writeln!(c, "PermitRootLogin no\nAllowUsers {USER}");
        let _ = writeln!(c, "PubkeyAuthentication yes");
        let _ = writeln!(c, "AuthorizedKeysFile {}/authorized_keys/%u", d.display());
        let _ = writeln!(
            c,
            "X11Forwarding no\nAllowTcpForwarding no\nAllowAgentForwarding no\nPermitTunnel no"
        );
        let _ = writeln!(c, "PrintMotd no\nPrintLastLog no\nBanner none\nUseDNS no");
        let _ = writeln!(
            c,
            "MaxStartups {}\nMaxSessions 10\nLoginGraceTime 60",
            opts.max_startups
        );
        let _ = writeln!(c, "PermitTTY yes");
        if let Role::Router(args) = &opts.role {
            let script = d.join("fake_router.sh");
            std::fs::copy(peer_file("fake_router.sh"), &script)?;
            std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755))?;
            let args: Vec<String> = args.iter().map(|a| shell_quote(a)).collect();
            let _ = writeln!(c, "ForceCommand {} {}", script.display(), args.join(" "));
        }
        let conf = d.join("sshd_config");
        std::fs::write(&conf, c)?;
        let log = d.join("sshd.log");
        let mut child = spawn_with_pdeathsig(
            Command::new(sshd)
                .arg("-D")
                .arg("-f")
                .arg(&conf)
                .arg("-E")
                .arg(&log)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null()),
        )
        .context("spawning sshd")?;
        let read_log = || std::fs::read_to_string(&log).unwrap_or_default();
        if let Err(e) = wait_listening(port, &mut child, "sshd", &read_log) {
            let _ = child.kill();
            let _ = child.wait();
            return Err(e);
        }
        Ok((child, port, dir, host_key))
    }

    /// Its port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `127.0.0.1:PORT`.
    pub fn address(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// The password of [`USER`].
    pub fn password(&self) -> &str {
        self.account.password()
    }

    /// Its host key, as a known_hosts line (`[127.0.0.1]:PORT ssh-ed25519 AAAA...`).
    pub fn known_hosts_line(&self) -> String {
        let mut f = self.host_key.split_whitespace();
        let (t, k) = (f.next().unwrap_or_default(), f.next().unwrap_or_default());
        format!("[127.0.0.1]:{} {t} {k}", self.port)
    }

    /// Lets `public_key` (an `ssh-ed25519 AAAA...` line) log in as [`USER`].
    pub fn authorize(&self, public_key: &str) -> anyhow::Result<()> {
        use std::io::Write;
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(self.dir.path().join("authorized_keys").join(USER))?;
        writeln!(f, "{public_key}")?;
        Ok(())
    }

    /// Its temporary directory.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Its log.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("sshd.log")).unwrap_or_default()
    }

    /// Its PID.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Stops it by PID (SIGTERM, then SIGKILL after 10 s). Sessions still open keep their
    /// own processes until their client goes away, as with any sshd.
    pub fn stop(&mut self) {
        if let Some(c) = self.child.take() {
            terminate(c, Duration::from_secs(10));
        }
    }
}

impl Drop for Sshd {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Quotes for sshd's ForceCommand (run by the user's shell).
fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}

/// The venv's Python.
pub fn venv_python() -> anyhow::Result<PathBuf> {
    let p = PathBuf::from(SSH_VENV).join("bin/python");
    if p.is_file() {
        Ok(p)
    } else {
        Err(anyhow!(
            "{} is missing: run tests/install-peers.sh as root (netmiko, fake-switches)",
            p.display()
        ))
    }
}

/// A running fake-switches Cisco switch.
pub struct FakeSwitch {
    child: Option<Child>,
    port: u16,
    dir: TempDir,
}

impl FakeSwitch {
    /// Starts one with this hostname on a free port of 127.0.0.1 (login
    /// [`SWITCH_USER`]/[`SWITCH_PASSWORD`], enable secret [`ENABLE_SECRET`]).
    pub fn start(hostname: &str) -> anyhow::Result<FakeSwitch> {
        let python = venv_python()?;
        let dir = tempfile::Builder::new()
            .prefix("logops-fakesw-")
            .tempdir()?;
        let log = dir.path().join("fakeswitch.log");
        let mut last = String::new();
        for _ in 0..5 {
            let port = free_port();
            let mut child = spawn_with_pdeathsig(
                Command::new(&python)
                    .arg(peer_file("run_fake_switch.py"))
                    .args(["--listen-port", &port.to_string(), "--hostname", hostname])
                    .args(["--username", SWITCH_USER, "--password", SWITCH_PASSWORD])
                    .args(["--enable-secret", ENABLE_SECRET])
                    .current_dir(dir.path())
                    .stdin(Stdio::null())
                    .stdout(std::fs::File::create(&log)?)
                    .stderr(std::fs::File::options().append(true).open(&log)?),
            )
            .context("spawning fake-switches")?;
            let read_log = || std::fs::read_to_string(&log).unwrap_or_default();
            match wait_listening(port, &mut child, "fake-switches", &read_log) {
                Ok(()) => {
                    return Ok(FakeSwitch {
                        child: Some(child),
                        port,
                        dir,
                    })
                }
                Err(e) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    last = format!("{e:#}");
                }
            }
        }
        Err(anyhow!(
            "fake-switches did not start in 5 tries; last: {last}"
        ))
    }

    /// Its port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Its log.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("fakeswitch.log")).unwrap_or_default()
    }
}

impl Drop for FakeSwitch {
    fn drop(&mut self) {
        if let Some(c) = self.child.take() {
            terminate(c, Duration::from_secs(10));
        }
    }
}

/// `ssh-keyscan` of 127.0.0.1:`port`: known_hosts lines.
pub fn keyscan(port: u16) -> anyhow::Result<String> {
    run(Command::new("ssh-keyscan").args(["-p", &port.to_string(), "127.0.0.1"]))
}

/// What Netmiko got.
#[derive(Debug, Clone)]
pub struct NetmikoRun {
    /// `find_prompt()` after login (and enable).
    pub prompt: String,
    /// `send_command()` of each command.
    pub outputs: Vec<String>,
}

/// Runs Netmiko (`tests/peers/netmiko_capture.py`) against 127.0.0.1:`port`.
pub fn netmiko(
    device_type: &str,
    port: u16,
    user: &str,
    password: &str,
    secret: Option<&str>,
    commands: &[&str],
) -> anyhow::Result<NetmikoRun> {
    let out = Command::new(venv_python()?)
        .arg(peer_file("netmiko_capture.py"))
        .args([device_type, &port.to_string(), user])
        .args(commands)
        .env("NETMIKO_PASSWORD", password)
        .env("NETMIKO_SECRET", secret.unwrap_or(""))
        .stdin(Stdio::null())
        .output()
        .context("running netmiko")?;
    if !out.status.success() {
        bail!(
            "netmiko: {}: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let v: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    Ok(NetmikoRun {
        prompt: v["prompt"].as_str().unwrap_or_default().to_owned(),
        outputs: v["outputs"]
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|x| x.as_str().unwrap_or_default().to_owned())
                    .collect()
            })
            .unwrap_or_default(),
    })
}
