//! [`SshError`]: what went wrong with a device, in words that say what to fix. Every error
//! names the device; those that happen after bytes were received show the last of them.

use std::path::PathBuf;
use std::time::Duration;

use logops_common::units::HumanDuration;

/// The last bytes received, for messages: at most this many.
pub const TAIL_BYTES: usize = 300;

/// Shows received bytes as an escaped string (`"router1>\r\n..."`).
pub fn show_bytes(bytes: &[u8]) -> String {
    format!("{:?}", String::from_utf8_lossy(bytes))
}

/// A host key known_hosts does not have (policy `strict`).
#[derive(Debug, thiserror::Error)]
#[error("{device}: the host key of {token} is not in {path} (the server offers {key}): add it (ssh-keyscan{port_flag} {host} >> {path}) or set host_key_policy = \"accept-new\"", path = .path.display())]
pub struct UnknownHostKey {
    /// Device name.
    pub device: String,
    /// The known_hosts name (`[host]:port`).
    pub token: String,
    /// Host, for the hint.
    pub host: String,
    /// ` -p PORT` when not 22.
    pub port_flag: String,
    /// `ssh-ed25519 SHA256:...`.
    pub key: String,
    /// The known_hosts file.
    pub path: PathBuf,
}

/// A host key that differs from the one known_hosts has: always refused.
#[derive(Debug, thiserror::Error)]
#[error("{device}: HOST KEY CHANGED for {token}: the server offers {key}, but {path}:{line} has a {old_type} key for it; refused. If the device was really replaced, delete line {line} of {path} (ssh-keygen -R '{token}' -f {path})", path = .path.display())]
pub struct ChangedHostKey {
    /// Device name.
    pub device: String,
    /// The known_hosts name.
    pub token: String,
    /// `ssh-ed25519 SHA256:...` offered now.
    pub key: String,
    /// The file.
    pub path: PathBuf,
    /// The line of the old key.
    pub line: usize,
    /// The old key's type.
    pub old_type: String,
}

/// Why a poll (or one command of it) failed.
#[derive(Debug, thiserror::Error)]
pub enum SshError {
    /// The host name did not resolve.
    #[error("{device}: cannot resolve `{host}` (DNS): {message}")]
    Resolve {
        /// Device name.
        device: String,
        /// The host name.
        host: String,
        /// The resolver's answer.
        message: String,
    },
    /// No TCP connection.
    #[error("{device}: TCP connection to {address} failed: {message}")]
    Tcp {
        /// Device name.
        device: String,
        /// Where.
        address: String,
        /// `Connection refused`, `timed out after 10s`, ...
        message: String,
    },
    /// The SSH handshake failed or timed out.
    #[error("{device}: SSH handshake with {address} failed: {message}")]
    Handshake {
        /// Device name.
        device: String,
        /// Where.
        address: String,
        /// What libssh2 said.
        message: String,
    },
    /// The host key is not in known_hosts (policy `strict`).
    #[error(transparent)]
    HostKeyUnknown(Box<UnknownHostKey>),
    /// The host key differs from the one recorded: always refused.
    #[error(transparent)]
    HostKeyChanged(Box<ChangedHostKey>),
    /// The host key is marked `@revoked`.
    #[error("{device}: the host key of {token} ({key}) is revoked at {path}:{line}; refused", path = .path.display())]
    HostKeyRevoked {
        /// Device name.
        device: String,
        /// The known_hosts name.
        token: String,
        /// The key.
        key: String,
        /// The file.
        path: PathBuf,
        /// The `@revoked` line.
        line: usize,
    },
    /// known_hosts could not be read or written.
    #[error("{device}: known_hosts {path}: {message}", path = .path.display())]
    KnownHosts {
        /// Device name.
        device: String,
        /// The file.
        path: PathBuf,
        /// The I/O error.
        message: String,
    },
    /// A secret (password, passphrase, enable secret) could not be read.
    #[error("{device}: {what} ({source_name}): {message}")]
    Secret {
        /// Device name.
        device: String,
        /// `password`, `passphrase`, `secret`.
        what: &'static str,
        /// `$VAR` or the file.
        source_name: String,
        /// Why.
        message: String,
    },
    /// The server refused every credential.
    #[error("{device}: authentication failed for user `{user}`: {detail} (the server accepts: {offered})")]
    Auth {
        /// Device name.
        device: String,
        /// The user.
        user: String,
        /// What was tried and how it failed.
        detail: String,
        /// The methods the server lists.
        offered: String,
    },
    /// The session, PTY or shell was refused.
    #[error("{device}: {what} failed: {message}")]
    Channel {
        /// Device name.
        device: String,
        /// `opening a session channel`, `requesting a PTY`, `starting a shell`.
        what: &'static str,
        /// What libssh2 said.
        message: String,
    },
    /// No prompt after login (or after a command that changes it).
    #[error("{device}: prompt not found within {waited} {when}; last bytes received: {last}", waited = HumanDuration(*.waited), last = show_bytes(.last))]
    PromptNotFound {
        /// Device name.
        device: String,
        /// `after login`, `after \`enable\``.
        when: String,
        /// How long it waited.
        waited: Duration,
        /// The last bytes received.
        last: Vec<u8>,
    },
    /// Enable mode was not reached.
    #[error("{device}: `{command}` did not reach enable mode (prompt now `{prompt}`); the device said: {said:?}")]
    Enable {
        /// Device name.
        device: String,
        /// The enable command.
        command: String,
        /// The prompt after it.
        prompt: String,
        /// What the device answered.
        said: String,
    },
    /// A command did not give the prompt back in time.
    #[error("{device}: `{command}` timed out after {timeout}: the prompt `{prompt}` did not come back; last bytes received: {last}", timeout = HumanDuration(*.timeout), last = show_bytes(.last))]
    CommandTimeout {
        /// Device name.
        device: String,
        /// The command.
        command: String,
        /// The prompt waited for.
        prompt: String,
        /// The timeout.
        timeout: Duration,
        /// The last bytes received.
        last: Vec<u8>,
    },
    /// The device ended the session.
    #[error("{device}: the device closed the session {when}; last bytes received: {last}", last = show_bytes(.last))]
    Closed {
        /// Device name.
        device: String,
        /// `while running \`show version\``.
        when: String,
        /// The last bytes received.
        last: Vec<u8>,
    },
    /// Reading or writing the session failed.
    #[error("{device}: {what}: {message}")]
    Io {
        /// Device name.
        device: String,
        /// What was being done.
        what: String,
        /// The error.
        message: String,
    },
    /// The agent is stopping.
    #[error("{device}: the agent is stopping")]
    Stopped {
        /// Device name.
        device: String,
    },
}

impl SshError {
    /// The `reason` label of `logops_agent_collector_errors_total`.
    pub fn reason(&self) -> &'static str {
        match self {
            SshError::Resolve { .. } => "dns",
            SshError::Tcp { .. } => "tcp",
            SshError::Handshake { .. } => "handshake",
            SshError::HostKeyUnknown(_)
            | SshError::HostKeyChanged(_)
            | SshError::HostKeyRevoked { .. }
            | SshError::KnownHosts { .. } => "host_key",
            SshError::Secret { .. } => "secret",
            SshError::Auth { .. } => "auth",
            SshError::Channel { .. } => "channel",
            SshError::PromptNotFound { .. } => "prompt",
            SshError::Enable { .. } => "enable",
            SshError::CommandTimeout { .. } => "timeout",
            SshError::Closed { .. } => "closed",
            SshError::Io { .. } => "io",
            SshError::Stopped { .. } => "stopped",
        }
    }

    /// Whether it is a timeout (counted in `logops_agent_collector_timeouts_total`).
    pub fn is_timeout(&self) -> bool {
        match self {
            SshError::CommandTimeout { .. } | SshError::PromptNotFound { .. } => true,
            SshError::Tcp { message, .. } | SshError::Handshake { message, .. } => {
                message.contains("timed out")
            }
            _ => false,
        }
    }
}

/// Duration in words for messages.
pub fn words(d: Duration) -> String {
    HumanDuration(d).to_string()
}
