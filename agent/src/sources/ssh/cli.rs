//! [`Cli`]: a device's command line over an interactive shell, the way Netmiko drives it.
//!
//! After login it waits for the banner to end in a prompt, finds the prompt like Netmiko's
//! `find_prompt` (send a newline, take the last line), leaves configuration mode if the
//! session starts there, enters enable mode with the secret, sends the platform's setup
//! commands (terminal width, paging off) and finds the prompt again. A command's output
//! ends when the last line on the screen is exactly that prompt, so hostnames with
//! parentheses or other odd characters need no escaping; `--More--` prompts are answered
//! with a space if a device pages anyway. The echoed command is removed as Netmiko's
//! `strip_command` does (the first line, when it starts with the command).
//!
//! The session is non-blocking: every read waits on the socket with poll(2) until a
//! deadline, sends keepalives while it waits, and gives up when the agent stops.

use std::collections::VecDeque;
use std::io::{Read, Write};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use regex::Regex;
use ssh2::{BlockDirections, Channel, Session};

use super::error::{SshError, TAIL_BYTES};
use super::platform::Platform;
use super::screen::Screen;
use super::session::{self, Secrets};
use crate::config::SshDeviceSettings;
use crate::pipeline::Shutdown;

/// How long output must pause before a line that looks like a prompt is taken for one
/// while the prompt is not known yet (banners, `find_prompt`).
const QUIET: Duration = Duration::from_millis(150);
/// Longest single wait on the socket, so keepalives and shutdown are noticed.
const SLICE: Duration = Duration::from_millis(200);
/// How long a timed-out command gets to give the prompt back after Ctrl-C.
const RECOVER: Duration = Duration::from_secs(3);

/// A logged-in device CLI.
pub struct Cli {
    session: Session,
    channel: Channel,
    fd: std::os::fd::RawFd,
    platform: &'static Platform,
    more: Vec<Regex>,
    screen: Screen,
    tail: VecDeque<u8>,
    prompt: String,
    device: String,
    connect_timeout: Duration,
    stop: Option<Shutdown>,
    /// Where the session is connected.
    pub peer: SocketAddr,
    /// `ssh-ed25519 SHA256:...` of the server.
    pub host_key: String,
    /// The known_hosts line `accept-new` wrote, if it did.
    pub recorded_at: Option<usize>,
}

impl Cli {
    /// Connects, logs in and prepares the CLI (prompt, enable, paging).
    pub fn open(
        s: &SshDeviceSettings,
        secrets: &Secrets,
        stop: Option<Shutdown>,
    ) -> Result<Cli, SshError> {
        let opened = session::open(s, secrets)?;
        let mut cli = Cli {
            session: opened.session,
            channel: opened.channel,
            fd: opened.fd,
            platform: s.platform,
            more: s
                .platform
                .more
                .iter()
                .filter_map(|m| Regex::new(m).ok())
                .collect(),
            screen: Screen::new(),
            tail: VecDeque::with_capacity(TAIL_BYTES),
            prompt: String::new(),
            device: s.name.clone(),
            connect_timeout: s.connect_timeout,
            stop,
            peer: opened.peer,
            host_key: opened.host_key,
            recorded_at: opened.recorded_at,
        };
        cli.prepare(secrets.secret.as_deref())?;
        Ok(cli)
    }

    /// The prompt commands end with.
    pub fn prompt(&self) -> &str {
        &self.prompt
    }

    fn last_bytes(&self) -> Vec<u8> {
        self.tail.iter().copied().collect()
    }

    fn io_error(&self, what: &str, e: impl std::fmt::Display) -> SshError {
        SshError::Io {
            device: self.device.clone(),
            what: what.to_owned(),
            message: e.to_string(),
        }
    }

    /// Waits until the socket can make progress, `until` passes or the agent stops.
    fn wait_socket(&mut self, until: Instant) -> Result<(), SshError> {
        if self.stop.as_ref().is_some_and(Shutdown::is_triggered) {
            return Err(SshError::Stopped {
                device: self.device.clone(),
            });
        }
        let now = Instant::now();
        if now >= until {
            return Ok(());
        }
        if let Ok(secs) = self.session.keepalive_send() {
            let _ = secs;
        }
        let events = match self.session.block_directions() {
            BlockDirections::Outbound => libc::POLLOUT,
            BlockDirections::Both => libc::POLLIN | libc::POLLOUT,
            _ => libc::POLLIN,
        };
        let mut pfd = libc::pollfd {
            fd: self.fd,
            events,
            revents: 0,
        };
        let wait = (until - now).min(SLICE).as_millis().max(1) as libc::c_int;
        // SAFETY: one valid pollfd for the duration of the call.
        let rc = unsafe { libc::poll(&mut pfd, 1, wait) };
        if rc < 0 {
            let e = std::io::Error::last_os_error();
            if e.kind() != std::io::ErrorKind::Interrupted {
                return Err(self.io_error("waiting on the socket", e));
            }
        }
        Ok(())
    }

    /// Reads what is available (waiting until `until` at most); returns the byte count,
    /// 0 when nothing came in time.
    fn pump(&mut self, until: Instant, when: &str) -> Result<usize, SshError> {
        let mut buf = [0u8; 16 * 1024];
        loop {
            match self.channel.read(&mut buf) {
                Ok(0) => {
                    return Err(SshError::Closed {
                        device: self.device.clone(),
                        when: when.to_owned(),
                        last: self.last_bytes(),
                    })
                }
                Ok(n) => {
                    let data = &buf[..n];
                    self.screen.feed(data);
                    for &b in data {
                        if self.tail.len() == TAIL_BYTES {
                            self.tail.pop_front();
                        }
                        self.tail.push_back(b);
                    }
                    return Ok(n);
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    if self.channel.eof() {
                        return Err(SshError::Closed {
                            device: self.device.clone(),
                            when: when.to_owned(),
                            last: self.last_bytes(),
                        });
                    }
                    if Instant::now() >= until {
                        return Ok(0);
                    }
                    self.wait_socket(until)?;
                }
                Err(e) => return Err(self.io_error(when, e)),
            }
        }
    }

    /// Discards whatever the device has sent so far.
    fn drain(&mut self) -> Result<(), SshError> {
        while self.pump(Instant::now(), "reading")? > 0 {}
        self.screen.clear();
        Ok(())
    }

    /// Writes all of `data`.
    fn send(&mut self, data: &str) -> Result<(), SshError> {
        let deadline = Instant::now() + self.connect_timeout;
        let mut rest = data.as_bytes();
        while !rest.is_empty() {
            match self.channel.write(rest) {
                Ok(n) => rest = &rest[n..],
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    if Instant::now() >= deadline {
                        return Err(self.io_error("sending", "timed out"));
                    }
                    self.wait_socket(deadline)?;
                }
                Err(e) => return Err(self.io_error("sending", e)),
            }
        }
        loop {
            match self.channel.flush() {
                Ok(()) => return Ok(()),
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    if Instant::now() >= deadline {
                        return Err(self.io_error("sending", "timed out"));
                    }
                    self.wait_socket(deadline)?;
                }
                Err(e) => return Err(self.io_error("sending", e)),
            }
        }
    }

    /// The last non-blank line on the screen, trimmed.
    fn last_line(&self) -> String {
        let current = self.screen.current_line();
        if !current.trim().is_empty() {
            return current.trim().to_owned();
        }
        self.screen
            .lines()
            .iter()
            .rev()
            .find(|l| !l.trim().is_empty())
            .map(|l| l.trim().to_owned())
            .unwrap_or_default()
    }

    /// Reads until the last line looks like a prompt (ends with a terminator) and output has
    /// paused for [`QUIET`], or `stop_at` matches it; `None` when `deadline` passed.
    fn settle(
        &mut self,
        deadline: Instant,
        stop_at: Option<&Regex>,
    ) -> Result<Option<String>, SshError> {
        let mut last_data = Instant::now();
        loop {
            let now = Instant::now();
            let line = self.last_line();
            if stop_at.is_some_and(|r| r.is_match(&line)) {
                return Ok(Some(line));
            }
            if self.platform.is_prompt(&line) && now.duration_since(last_data) >= QUIET {
                return Ok(Some(line));
            }
            if now >= deadline {
                return Ok(None);
            }
            let until = deadline.min(now + QUIET);
            if self.pump(until, "waiting for the prompt")? > 0 {
                last_data = Instant::now();
            }
        }
    }

    /// Netmiko's `find_prompt`: send a newline, take the last line (sending newlines again
    /// while nothing comes back).
    fn find_prompt(&mut self, within: Duration, when: &str) -> Result<String, SshError> {
        let deadline = Instant::now() + within;
        self.drain()?;
        let mut wait = Duration::from_millis(500);
        loop {
            self.send(self.platform.newline)?;
            let round = deadline.min(Instant::now() + wait);
            if let Some(p) = self.settle(round, None)? {
                self.screen.clear();
                return Ok(p);
            }
            if Instant::now() >= deadline {
                return Err(SshError::PromptNotFound {
                    device: self.device.clone(),
                    when: when.to_owned(),
                    waited: within,
                    last: self.last_bytes(),
                });
            }
            wait = (wait * 2).min(Duration::from_secs(3));
        }
    }

    fn prepare(&mut self, secret: Option<&str>) -> Result<(), SshError> {
        // The banner and the first prompt.
        let deadline = Instant::now() + self.connect_timeout;
        if self.settle(deadline, None)?.is_none() {
            return Err(SshError::PromptNotFound {
                device: self.device.clone(),
                when: "after login".into(),
                waited: self.connect_timeout,
                last: self.last_bytes(),
            });
        }
        self.prompt = self.find_prompt(self.connect_timeout, "after login")?;
        if self.platform.in_config_mode(&self.prompt) && !self.platform.config_exit.is_empty() {
            let exit = self.platform.config_exit;
            self.send(&format!("{exit}{}", self.platform.newline))?;
            self.prompt = self.find_prompt(self.connect_timeout, &format!("after `{exit}`"))?;
        }
        if let (Some(secret), Some(enable)) = (secret, &self.platform.enable) {
            if !self.platform.is_enabled(&self.prompt) {
                self.enable(enable.command, enable.password_prompt, secret)?;
            }
        }
        for cmd in self.platform.setup {
            let out = self.command(cmd, self.connect_timeout)?;
            if out.contains("% ") || out.to_lowercase().contains("invalid") {
                tracing::debug!(device = %self.device, "ssh: `{cmd}` answered {out:?}");
            }
        }
        self.prompt = self.find_prompt(self.connect_timeout, "after the setup commands")?;
        Ok(())
    }

    fn enable(
        &mut self,
        command: &str,
        password_prompt: &str,
        secret: &str,
    ) -> Result<(), SshError> {
        let asks = Regex::new(password_prompt).expect("platform regexes are tested");
        self.drain()?;
        self.send(&format!("{command}{}", self.platform.newline))?;
        let deadline = Instant::now() + self.connect_timeout;
        let mut said = String::new();
        if let Some(line) = self.settle(deadline, Some(&asks))? {
            if asks.is_match(&line) {
                self.screen.clear();
                self.send(&format!("{secret}{}", self.platform.newline))?;
                let _ = self.settle(Instant::now() + self.connect_timeout, None)?;
            }
        }
        said.push_str(&self.screen.lines().join("\n"));
        let when = format!("after `{command}`");
        self.prompt = self.find_prompt(self.connect_timeout, &when)?;
        if !self.platform.is_enabled(&self.prompt) {
            return Err(SshError::Enable {
                device: self.device.clone(),
                command: command.to_owned(),
                prompt: self.prompt.clone(),
                said: said.trim().to_owned(),
            });
        }
        Ok(())
    }

    /// Runs one command and returns its output: echo and prompt removed, `--More--`
    /// answered, lines joined with `\n`.
    pub fn command(&mut self, command: &str, timeout: Duration) -> Result<String, SshError> {
        self.drain()?;
        self.send(&format!("{}{}", command.trim_end(), self.platform.newline))?;
        let deadline = Instant::now() + timeout;
        let when = format!("while running `{command}`");
        loop {
            let current = self.screen.current_line();
            let shown = current.trim_end();
            if shown == self.prompt {
                break;
            }
            if !shown.is_empty() && self.more.iter().any(|m| m.is_match(shown.trim())) {
                self.screen.clear_current_line();
                self.send(" ")?;
                continue;
            }
            if Instant::now() >= deadline {
                return Err(SshError::CommandTimeout {
                    device: self.device.clone(),
                    command: command.to_owned(),
                    prompt: self.prompt.clone(),
                    timeout,
                    last: self.last_bytes(),
                });
            }
            self.pump(deadline, &when)?;
        }
        let mut lines = self.screen.take_lines();
        let cmd = command.trim();
        if lines.first().is_some_and(|l| l.starts_with(cmd)) {
            lines.remove(0);
        }
        Ok(lines.join("\n"))
    }

    /// After a timed-out command: Ctrl-C, then the prompt must come back within a few
    /// seconds; an error means the session is unusable (open a new one).
    pub fn recover(&mut self) -> Result<(), SshError> {
        self.send("\x03")?;
        let found = self.find_prompt(RECOVER, "after Ctrl-C")?;
        if found == self.prompt {
            Ok(())
        } else {
            Err(SshError::PromptNotFound {
                device: self.device.clone(),
                when: format!("after Ctrl-C (the last line is `{found}`)"),
                waited: RECOVER,
                last: self.last_bytes(),
            })
        }
    }

    /// Ends the session politely (errors are irrelevant: the socket closes either way).
    pub fn close(mut self) {
        self.session.set_blocking(true);
        self.session.set_timeout(500);
        let _ = self.channel.close();
        let _ = self.session.disconnect(None, "logops: done", None);
    }
}
