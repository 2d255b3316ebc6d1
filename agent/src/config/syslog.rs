//! `[syslog]`: the syslog receiver's listeners (UDP, TCP, TLS, a Unix datagram socket), its
//! limits and the time zone of RFC 3164 stamps that carry none.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use logops_common::units::{ByteSize, HumanDuration};
use serde::Deserialize;

/// `[syslog]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SyslogConfig {
    /// UDP listen address (`"0.0.0.0:514"`).
    #[serde(default, deserialize_with = "optional_listen_addr")]
    pub udp: Option<SocketAddr>,
    /// TCP listen address (`"0.0.0.0:601"`): LF framing or RFC 6587 octet counting.
    #[serde(default, deserialize_with = "optional_listen_addr")]
    pub tcp: Option<SocketAddr>,
    /// TLS listener (RFC 5425).
    pub tls: Option<SyslogTlsConfig>,
    /// Path of a Unix datagram socket to create (like `/dev/log`).
    pub unix: Option<PathBuf>,
    /// Longer messages are truncated and flagged `truncated`.
    #[serde(default = "default_max_message_size")]
    pub max_message_size: ByteSize,
    /// Zone of RFC 3164 (and Cisco) stamps that carry none: `local`, `UTC` or `+02:00`.
    #[serde(default)]
    pub timezone: SyslogTimezone,
    /// Open TCP and TLS connections, together, at most; more are closed at once.
    #[serde(default = "default_max_connections")]
    pub max_connections: usize,
    /// A TCP or TLS connection that sends nothing for this long is closed.
    #[serde(default = "default_idle_timeout")]
    pub idle_timeout: HumanDuration,
    /// The UDP (and Unix) socket's kernel receive buffer.
    #[serde(default = "default_udp_recv_buffer")]
    pub udp_recv_buffer: ByteSize,
    /// Labels added to every syslog event.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
}

/// `[syslog] tls = { listen, cert, key, client_ca }`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SyslogTlsConfig {
    /// Listen address (`"0.0.0.0:6514"`).
    #[serde(deserialize_with = "listen_addr")]
    pub listen: SocketAddr,
    /// Server certificate chain (PEM).
    pub cert: PathBuf,
    /// Its private key (PEM).
    pub key: PathBuf,
    /// When set, senders must present a certificate signed by one of these CAs (PEM).
    pub client_ca: Option<PathBuf>,
}

/// `host:port` with an IP address, with a message that shows the form.
fn parse_listen_addr(s: &str) -> Result<SocketAddr, String> {
    s.parse().map_err(|_| {
        format!(
            "`{s}` is not an IP address with a port: write e.g. \"0.0.0.0:514\" or \"[::]:514\""
        )
    })
}

fn listen_addr<'de, D: serde::Deserializer<'de>>(d: D) -> Result<SocketAddr, D::Error> {
    let s = String::deserialize(d)?;
    parse_listen_addr(&s).map_err(serde::de::Error::custom)
}

fn optional_listen_addr<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<Option<SocketAddr>, D::Error> {
    listen_addr(d).map(Some)
}

fn default_max_message_size() -> ByteSize {
    ByteSize::kib(64)
}
fn default_max_connections() -> usize {
    1024
}
fn default_idle_timeout() -> HumanDuration {
    HumanDuration::secs(3600)
}
fn default_udp_recv_buffer() -> ByteSize {
    ByteSize::mib(4)
}

/// The zone given to stamps without one.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub enum SyslogTimezone {
    /// The agent's local zone (`TZ`, `/etc/localtime`), with its daylight saving rules.
    #[default]
    Local,
    /// A fixed offset from UTC, in seconds east (`UTC` is 0).
    Fixed(i32),
}

impl TryFrom<String> for SyslogTimezone {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        s.parse()
    }
}

impl std::str::FromStr for SyslogTimezone {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let bad =
            || format!("`{s}` is not a zone: use \"local\", \"UTC\" or an offset like \"+02:00\"");
        match s {
            "local" | "Local" | "LOCAL" => return Ok(SyslogTimezone::Local),
            "UTC" | "utc" | "Z" | "GMT" => return Ok(SyslogTimezone::Fixed(0)),
            _ => {}
        }
        let sign = match s.as_bytes().first() {
            Some(b'+') => 1,
            Some(b'-') => -1,
            _ => return Err(bad()),
        };
        let digits: String = s[1..].chars().filter(|c| *c != ':').collect();
        if digits.len() != 4 || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad());
        }
        let (h, m): (i32, i32) = (
            digits[..2].parse().map_err(|_| bad())?,
            digits[2..].parse().map_err(|_| bad())?,
        );
        if h > 23 || m > 59 {
            return Err(bad());
        }
        Ok(SyslogTimezone::Fixed(sign * (h * 3600 + m * 60)))
    }
}

impl SyslogConfig {
    /// Whether at least one listener is configured.
    pub fn listens(&self) -> bool {
        self.udp.is_some() || self.tcp.is_some() || self.tls.is_some() || self.unix.is_some()
    }
}

/// Checks of `[syslog]`: (key path, message) for each problem.
pub(crate) fn check(s: &SyslogConfig, errs: &mut Vec<(String, String)>) {
    let mut err = |k: &str, m: String| errs.push((k.to_owned(), m));
    if !s.listens() {
        err(
            "syslog",
            "set at least one of udp, tcp, tls or unix (an address to listen on)".into(),
        );
    }
    if let (Some(tcp), Some(tls)) = (s.tcp, s.tls.as_ref()) {
        if tcp == tls.listen {
            err(
                "syslog.tls.listen",
                format!("{tcp} is also syslog.tcp: TCP and TLS need their own ports"),
            );
        }
    }
    if let Some(path) = &s.unix {
        if !path.is_absolute() {
            err(
                "syslog.unix",
                format!("`{}` must be an absolute path", path.display()),
            );
        }
    }
    let size = s.max_message_size.bytes();
    if !(480..=16 << 20).contains(&size) {
        err(
            "syslog.max_message_size",
            "must be from 480B (RFC 3164's minimum) to 16MiB".into(),
        );
    }
    if s.max_connections == 0 {
        err("syslog.max_connections", "must be at least 1".into());
    }
    if s.idle_timeout.get() < Duration::from_secs(1) {
        err("syslog.idle_timeout", "must be at least 1s".into());
    }
    let rb = s.udp_recv_buffer.bytes();
    if !(4096..=1 << 30).contains(&rb) {
        err("syslog.udp_recv_buffer", "must be from 4KiB to 1GiB".into());
    }
    if let Some(t) = &s.tls {
        for (k, p) in [
            ("cert", Some(&t.cert)),
            ("key", Some(&t.key)),
            ("client_ca", t.client_ca.as_ref()),
        ] {
            if let Some(p) = p {
                if !p.is_absolute() {
                    err(
                        &format!("syslog.tls.{k}"),
                        format!("`{}` must be an absolute path", p.display()),
                    );
                }
            }
        }
    }
    for k in s.labels.keys() {
        if !logops_common::event::is_label_name(k) {
            err(
                &format!("syslog.labels.{k}"),
                "label names match [a-zA-Z_][a-zA-Z0-9_]*".into(),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zones_parse() {
        assert_eq!("local".parse(), Ok(SyslogTimezone::Local));
        assert_eq!("UTC".parse(), Ok(SyslogTimezone::Fixed(0)));
        assert_eq!("+02:00".parse(), Ok(SyslogTimezone::Fixed(7200)));
        assert_eq!(
            "-0530".parse(),
            Ok(SyslogTimezone::Fixed(-(5 * 3600 + 30 * 60)))
        );
        assert!("CEST".parse::<SyslogTimezone>().is_err());
        assert!("+25:00".parse::<SyslogTimezone>().is_err());
        assert!("+2".parse::<SyslogTimezone>().is_err());
    }
}
