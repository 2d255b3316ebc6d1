//! Opening an SSH session with ssh2 (libssh2): resolve, TCP connect, handshake, host key
//! check against known_hosts, authentication (public key with passphrase, password,
//! keyboard-interactive), then a PTY 511 columns wide with a shell on it. Every step is
//! bounded by the device's `connect_timeout` (libssh2's session timeout while blocking).

use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use ssh2::{Channel, KeyboardInteractivePrompt, MethodType, Prompt, Session};

use super::error::{ChangedHostKey, SshError, UnknownHostKey};
use super::known_hosts::{self, Verdict};
use crate::config::{HostKeyPolicy, SecretSource, SshDeviceSettings};

/// PTY size: wide enough that no line wraps (Netmiko's 511 columns), tall enough that
/// nothing pages on devices that page by terminal height.
pub const PTY_COLUMNS: u32 = 511;
/// PTY rows.
pub const PTY_ROWS: u32 = 1000;

/// libssh2's timeout error code.
const LIBSSH2_ERROR_TIMEOUT: i32 = -9;

/// The secrets of one device, read when it is polled.
#[derive(Default)]
pub struct Secrets {
    /// Login password.
    pub password: Option<String>,
    /// Key passphrase.
    pub passphrase: Option<String>,
    /// Enable secret.
    pub secret: Option<String>,
}

impl Secrets {
    /// Reads the device's secrets; the error names the variable or file.
    pub fn load(s: &SshDeviceSettings) -> Result<Secrets, SshError> {
        let read = |what: &'static str, src: &Option<SecretSource>| -> Result<_, SshError> {
            match src {
                None => Ok(None),
                Some(src) => src.load().map(Some).map_err(|message| SshError::Secret {
                    device: s.name.clone(),
                    what,
                    source_name: src.to_string(),
                    message,
                }),
            }
        };
        Ok(Secrets {
            password: read("password", &s.password)?,
            passphrase: read("passphrase", &s.passphrase)?,
            secret: read("secret", &s.secret)?,
        })
    }
}

/// An open session with a shell on a PTY.
pub struct Opened {
    /// The session.
    pub session: Session,
    /// The shell's channel.
    pub channel: Channel,
    /// The socket (for poll(2)).
    pub fd: std::os::fd::RawFd,
    /// Where it is connected.
    pub peer: SocketAddr,
    /// The host key's type and fingerprint (`ssh-ed25519 SHA256:...`).
    pub host_key: String,
    /// Set when `accept-new` recorded the key: the known_hosts line.
    pub recorded_at: Option<usize>,
}

fn message(e: &ssh2::Error) -> String {
    if e.code() == ssh2::ErrorCode::Session(LIBSSH2_ERROR_TIMEOUT) {
        "timed out".into()
    } else {
        e.message().to_owned()
    }
}

fn ms(d: Duration) -> u32 {
    d.as_millis().clamp(1, u128::from(u32::MAX)) as u32
}

/// Resolves and connects, each address in turn, within the connect timeout.
fn tcp(s: &SshDeviceSettings) -> Result<TcpStream, SshError> {
    let addrs: Vec<SocketAddr> = (s.host.as_str(), s.port)
        .to_socket_addrs()
        .map_err(|e| SshError::Resolve {
            device: s.name.clone(),
            host: s.host.clone(),
            message: e.to_string(),
        })?
        .collect();
    if addrs.is_empty() {
        return Err(SshError::Resolve {
            device: s.name.clone(),
            host: s.host.clone(),
            message: "no address".into(),
        });
    }
    let mut last = String::new();
    for a in &addrs {
        match TcpStream::connect_timeout(a, s.connect_timeout) {
            Ok(t) => {
                let _ = t.set_nodelay(true);
                return Ok(t);
            }
            Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {
                last = format!(
                    "{a}: timed out after {}",
                    super::error::words(s.connect_timeout)
                )
            }
            Err(e) => last = format!("{a}: {e}"),
        }
    }
    Err(SshError::Tcp {
        device: s.name.clone(),
        address: s.address.clone(),
        message: last,
    })
}

/// Host key algorithms: the types known_hosts has for this host first (as OpenSSH orders
/// them), then the rest libssh2 supports.
fn host_key_preference(session: &Session, known: &[String]) -> Option<String> {
    let supported = session.supported_algs(MethodType::HostKey).ok()?;
    let mut order: Vec<&str> = Vec::new();
    for t in known {
        // An `ssh-rsa` key is also used with the rsa-sha2 signature algorithms.
        let algs: Vec<&str> = if t == "ssh-rsa" {
            vec!["rsa-sha2-512", "rsa-sha2-256", "ssh-rsa"]
        } else {
            vec![t.as_str()]
        };
        for a in algs {
            if supported.contains(&a) && !order.contains(&a) {
                order.push(a);
            }
        }
    }
    if order.is_empty() {
        return None;
    }
    for a in supported {
        if !order.contains(&a) {
            order.push(a);
        }
    }
    Some(order.join(","))
}

/// Checks the server's host key against known_hosts as the policy says.
fn check_host_key(
    s: &SshDeviceSettings,
    session: &Session,
    token: &str,
) -> Result<(String, Option<usize>), SshError> {
    let (blob, _) = session.host_key().ok_or_else(|| SshError::Handshake {
        device: s.name.clone(),
        address: s.address.clone(),
        message: "the server sent no host key".into(),
    })?;
    let key = format!(
        "{} {}",
        known_hosts::blob_key_type(blob).unwrap_or("unknown"),
        known_hosts::fingerprint(blob)
    );
    let kh_error = |e: std::io::Error| SshError::KnownHosts {
        device: s.name.clone(),
        path: s.known_hosts.clone(),
        message: e.to_string(),
    };
    if s.host_key_policy == HostKeyPolicy::Insecure {
        return Ok((key, None));
    }
    let entries = known_hosts::load(&s.known_hosts).map_err(kh_error)?;
    let mut verdict = known_hosts::verdict(&entries, token, blob);
    let mut recorded = None;
    if verdict == Verdict::Unknown && s.host_key_policy == HostKeyPolicy::AcceptNew {
        let (v, line) = known_hosts::record(&s.known_hosts, token, blob).map_err(kh_error)?;
        if line > 0 {
            tracing::info!(
                device = %s.name,
                "ssh: recorded the host key of {token} ({key}) at {}:{line} (host_key_policy = accept-new)",
                s.known_hosts.display()
            );
            recorded = Some(line);
        }
        verdict = v;
    }
    match verdict {
        Verdict::Known => Ok((key, recorded)),
        Verdict::Unknown => Err(SshError::HostKeyUnknown(Box::new(UnknownHostKey {
            device: s.name.clone(),
            token: token.to_owned(),
            host: s.host.clone(),
            port_flag: if s.port == 22 {
                String::new()
            } else {
                format!(" -p {}", s.port)
            },
            key,
            path: s.known_hosts.clone(),
        }))),
        Verdict::Changed(old) => Err(SshError::HostKeyChanged(Box::new(ChangedHostKey {
            device: s.name.clone(),
            token: token.to_owned(),
            key,
            path: s.known_hosts.clone(),
            line: old.line,
            old_type: old.key_type,
        }))),
        Verdict::Revoked(entry) => Err(SshError::HostKeyRevoked {
            device: s.name.clone(),
            token: token.to_owned(),
            key,
            path: s.known_hosts.clone(),
            line: entry.line,
        }),
    }
}

/// Answers every keyboard-interactive prompt with the password.
struct PasswordPrompt<'a>(&'a str);

impl KeyboardInteractivePrompt for PasswordPrompt<'_> {
    fn prompt<'b>(
        &mut self,
        _username: &str,
        _instructions: &str,
        prompts: &[Prompt<'b>],
    ) -> Vec<String> {
        prompts.iter().map(|_| self.0.to_owned()).collect()
    }
}

/// Tries the key, then the password, then keyboard-interactive with the password, as the
/// server allows.
fn authenticate(
    s: &SshDeviceSettings,
    session: &Session,
    secrets: &Secrets,
) -> Result<(), SshError> {
    let user = format!("{}{}", s.username, s.platform.username_suffix);
    let offered = match session.auth_methods(&user) {
        Ok(m) => m.to_owned(),
        Err(e) if session.authenticated() => {
            let _ = e;
            return Ok(());
        }
        Err(e) => {
            return Err(SshError::Handshake {
                device: s.name.clone(),
                address: s.address.clone(),
                message: format!("asking for authentication methods: {}", message(&e)),
            })
        }
    };
    let has = |m: &str| offered.split(',').any(|x| x == m);
    let mut tried: Vec<String> = Vec::new();
    if let Some(key) = &s.key_file {
        if let Err(e) = std::fs::metadata(key) {
            tried.push(format!("key_file {}: {e}", key.display()));
        } else if !has("publickey") {
            tried.push(format!(
                "key_file {} (publickey not offered)",
                key.display()
            ));
        } else {
            match session.userauth_pubkey_file(&user, None, key, secrets.passphrase.as_deref()) {
                Ok(()) if session.authenticated() => return Ok(()),
                Ok(()) => tried.push(format!("key {}: refused", key.display())),
                Err(e) if e.code() == ssh2::ErrorCode::Session(-16) => tried.push(format!(
                    "key {}: cannot be read or decrypted ({}; {})",
                    key.display(),
                    message(&e),
                    if secrets.passphrase.is_some() {
                        "wrong passphrase?"
                    } else {
                        "does it need passphrase_env or passphrase_file?"
                    }
                )),
                Err(e) => tried.push(format!("key {}: {}", key.display(), message(&e))),
            }
        }
    }
    if let Some(password) = &secrets.password {
        if has("password") {
            match session.userauth_password(&user, password) {
                Ok(()) if session.authenticated() => return Ok(()),
                Ok(()) => tried.push("password: refused".into()),
                Err(e) => tried.push(format!("password: {}", message(&e))),
            }
        }
        if has("keyboard-interactive") && !session.authenticated() {
            match session.userauth_keyboard_interactive(&user, &mut PasswordPrompt(password)) {
                Ok(()) if session.authenticated() => return Ok(()),
                Ok(()) => tried.push("keyboard-interactive: refused".into()),
                Err(e) => tried.push(format!("keyboard-interactive: {}", message(&e))),
            }
        }
        if !has("password") && !has("keyboard-interactive") {
            tried
                .push("the password (neither password nor keyboard-interactive is offered)".into());
        }
    }
    if session.authenticated() {
        return Ok(());
    }
    Err(SshError::Auth {
        device: s.name.clone(),
        user,
        detail: if tried.is_empty() {
            "no credential to try".into()
        } else {
            format!("tried {}", tried.join("; "))
        },
        offered,
    })
}

/// Connects, checks the host key, authenticates and starts a shell on a PTY.
pub fn open(s: &SshDeviceSettings, secrets: &Secrets) -> Result<Opened, SshError> {
    let started = Instant::now();
    let stream = tcp(s)?;
    let peer = stream.peer_addr().map_err(|e| SshError::Tcp {
        device: s.name.clone(),
        address: s.address.clone(),
        message: e.to_string(),
    })?;
    let fd = stream.as_raw_fd();
    let handshake_error = |e: ssh2::Error| SshError::Handshake {
        device: s.name.clone(),
        address: s.address.clone(),
        message: message(&e),
    };
    let mut session = Session::new().map_err(handshake_error)?;
    session.set_timeout(ms(s.connect_timeout));
    session.set_tcp_stream(stream);
    let token = known_hosts::host_token(&s.host, s.port);
    if s.host_key_policy != HostKeyPolicy::Insecure {
        if let Ok(entries) = known_hosts::load(&s.known_hosts) {
            let known = known_hosts::known_types(&entries, &token);
            if let Some(pref) = host_key_preference(&session, &known) {
                let _ = session.method_pref(MethodType::HostKey, &pref);
            }
        }
    }
    session.handshake().map_err(handshake_error)?;
    let (host_key, recorded_at) = check_host_key(s, &session, &token)?;
    authenticate(s, &session, secrets)?;
    session.set_keepalive(
        false,
        s.keepalive.as_secs().clamp(1, u64::from(u32::MAX)) as u32,
    );
    let channel_error = |what: &'static str| {
        move |e: ssh2::Error| SshError::Channel {
            device: s.name.clone(),
            what,
            message: message(&e),
        }
    };
    let mut channel = session
        .channel_session()
        .map_err(channel_error("opening a session channel"))?;
    channel
        .request_pty("vt100", None, Some((PTY_COLUMNS, PTY_ROWS, 0, 0)))
        .map_err(channel_error("requesting a PTY"))?;
    channel.shell().map_err(channel_error("starting a shell"))?;
    session.set_blocking(false);
    tracing::debug!(
        device = %s.name,
        %peer,
        host_key = %host_key,
        ms = started.elapsed().as_millis() as u64,
        "ssh: session open"
    );
    Ok(Opened {
        session,
        channel,
        fd,
        peer,
        host_key,
        recorded_at,
    })
}
