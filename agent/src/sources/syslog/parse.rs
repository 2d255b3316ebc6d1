//! One received syslog message → one log event, appended to a [`Chunk`].
//!
//! - The PRI is read first ([`dialect::split_pri`]); `<PRI>1 ` goes to syslog_loose as
//!   RFC 5424, Cisco headers ([`dialect::cisco`]) are read here, everything else goes to
//!   syslog_loose as RFC 3164 with the configured zone and an inferred year.
//! - `severity` comes from the PRI (0 emergency … 7 debug); `ts` from the message's stamp,
//!   or the receive time when it has none that can be used (RFC 3164 without a stamp, `-` in
//!   RFC 5424, a Cisco clock that was never set).
//! - `attrs`: `facility`, `device` (the sender's HOSTNAME: the same name the SNMP source
//!   gives the device it polls), `app`, `procid`, `msgid`, `sd` (structured data:
//!   `{"SD-ID":{"name":"value"}}`), `format`, `transport`, `peer`; Cisco's `sequence`,
//!   `mnemonic`, `clock`, `device_time`, `zone`; the flags `truncated`, `invalid_utf8`.
//! - A message that does not parse is kept whole in `body` with `parse_error` saying why
//!   (and its PRI's severity and facility when the PRI was readable): never dropped.

use std::borrow::Cow;

use chrono::{DateTime, Datelike, FixedOffset, Local, NaiveDate, NaiveDateTime, TimeZone, Utc};
use logops_common::event::{Labels, Severity};
use logops_common::timestamp::Timestamp;
use logops_common::write::{write_str, write_u64, LineHead};
use logops_common::Kind;
use syslog_loose::{Message, ProcId, Variant};

use super::dialect::{self, ClockMark, FACILITIES};
use crate::chunk::Chunk;
use crate::config::SyslogTimezone;

/// The `source` of syslog events.
pub const SOURCE: &str = "syslog";

/// Where a message came from.
#[derive(Debug, Clone, Copy)]
pub struct Origin<'a> {
    /// `udp`, `tcp`, `tls` or `unix`.
    pub transport: &'static str,
    /// The sender's address (`192.0.2.7:51234`, a socket path, or empty).
    pub peer: &'a str,
    /// When it was received.
    pub received: Timestamp,
}

/// What became of one message (for the self-metrics).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Outcome {
    /// It did not parse (kept raw with `parse_error`).
    pub parse_error: bool,
    /// It held bytes that are not UTF-8 (kept lossily).
    pub invalid_utf8: bool,
}

/// Turns messages into events. One per connection or socket (it keeps a scratch buffer).
#[derive(Debug)]
pub struct Parser {
    tz: SyslogTimezone,
    /// `kind`, `host`, `source` and `labels` of every line, written once (each message
    /// brings its own timestamp).
    head: LineHead,
    attrs: Vec<u8>,
}

impl Parser {
    /// A parser giving events `host` (the agent id) and `labels`, reading zone-less stamps
    /// in `tz`.
    pub fn new(tz: SyslogTimezone, host: &str, labels: Labels<'static>) -> Self {
        Parser {
            tz,
            head: LineHead::new(Timestamp::from_nanos(0), Kind::Log, host, SOURCE, &labels),
            attrs: Vec::with_capacity(512),
        }
    }

    /// Parses one message (`raw`, already cut at the size limit: `truncated`) and appends
    /// its event to `chunk`.
    pub fn push(
        &mut self,
        chunk: &mut Chunk,
        raw: &[u8],
        truncated: bool,
        origin: &Origin<'_>,
    ) -> Outcome {
        let (text, invalid_utf8) = match std::str::from_utf8(raw) {
            Ok(s) => (Cow::Borrowed(s), false),
            Err(_) => (String::from_utf8_lossy(raw), true),
        };
        let text = text_trimmed(&text);
        let mut a = Obj::new(&mut self.attrs);
        let mut ts = None;
        let mut severity = None;
        let mut parse_error = None;
        let body: &str;
        match dialect::split_pri(text) {
            Err(e) => {
                parse_error = Some(if text.is_empty() {
                    "empty message".to_owned()
                } else {
                    e.to_string()
                });
                a.plain("format", "raw");
                body = text;
            }
            Ok((pri, rest)) => {
                severity = Severity::from_syslog(pri & 7);
                a.plain("facility", FACILITIES[usize::from(pri >> 3)]);
                let decoded = if rest.starts_with("1 ") {
                    rfc5424(text, &mut a, &mut ts)
                } else if let Some(c) = dialect::cisco(rest) {
                    Ok(cisco(&c, self.tz, origin.received, &mut a, &mut ts))
                } else {
                    Ok(rfc3164(
                        text,
                        rest,
                        self.tz,
                        origin.received,
                        &mut a,
                        &mut ts,
                    ))
                };
                match decoded {
                    Ok(b) => body = b,
                    Err(e) => {
                        parse_error = Some(e);
                        body = text;
                    }
                }
            }
        }
        a.plain("transport", origin.transport);
        if !origin.peer.is_empty() {
            a.str("peer", origin.peer);
        }
        if truncated {
            a.bool("truncated");
        }
        if invalid_utf8 {
            a.bool("invalid_utf8");
        }
        if let Some(e) = &parse_error {
            a.str("parse_error", e);
        }
        a.end();
        let ts = ts.unwrap_or(origin.received);
        chunk.push_log_at(&self.head, ts, &self.attrs, severity, body);
        Outcome {
            parse_error: parse_error.is_some(),
            invalid_utf8,
        }
    }
}

/// The message without trailing line ends, NULs and spaces, nor leading spaces.
fn text_trimmed(s: &str) -> &str {
    // On bytes: all four are ASCII, so the cuts fall on character boundaries.
    let b = s.as_bytes();
    let end = b
        .iter()
        .rposition(|&c| !matches!(c, b'\n' | b'\r' | b'\0' | b' '))
        .map_or(0, |i| i + 1);
    let start = b[..end].iter().position(|&c| c != b' ').unwrap_or(end);
    &s[start..end]
}

/// RFC 5424 through syslog_loose; the MSG, or why the header does not parse.
fn rfc5424<'t>(
    text: &'t str,
    a: &mut Obj<'_>,
    ts: &mut Option<Timestamp>,
) -> Result<&'t str, String> {
    let m = syslog_loose::parse_message_with_year_exact_tz::<_, FixedOffset>(
        text,
        |_| 1970,
        None,
        Variant::RFC5424,
    )
    .map_err(|_| {
        "RFC 5424 header does not parse (expected <PRI>1 TIMESTAMP HOSTNAME APP-NAME PROCID MSGID STRUCTURED-DATA MSG)"
            .to_owned()
    })?;
    a.plain("format", "rfc5424");
    *ts = m.timestamp.as_ref().and_then(timestamp_of);
    fields(&m, a);
    Ok(m.msg.strip_prefix('\u{feff}').unwrap_or(m.msg))
}

/// RFC 3164 through syslog_loose. Without a usable stamp the text after the PRI is the body
/// (RFC 3164 §4.3.3: the receive time stands in).
fn rfc3164<'t>(
    text: &'t str,
    rest: &'t str,
    tz: SyslogTimezone,
    received: Timestamp,
    a: &mut Obj<'_>,
    ts: &mut Option<Timestamp>,
) -> &'t str {
    a.plain("format", "rfc3164");
    let today = today(tz, received);
    let year =
        move |(month, day, _, _, _): syslog_loose::IncompleteDate| infer_year(month, day, today);
    let parsed = match tz {
        SyslogTimezone::Local => syslog_loose::parse_message_with_year_exact_tz::<_, Local>(
            text,
            year,
            None,
            Variant::RFC3164,
        ),
        SyslogTimezone::Fixed(secs) => syslog_loose::parse_message_with_year_exact_tz(
            text,
            year,
            FixedOffset::east_opt(secs),
            Variant::RFC3164,
        ),
    };
    match parsed {
        Ok(mut m) if m.timestamp.is_some() => {
            // `<13>Dec  5 22:00:00 app: text` (syslog(3) through /dev/log sends no
            // HOSTNAME): the one field before the colon is the tag, not a host.
            if m.appname.is_none() && m.hostname.is_some_and(|h| followed_by_colon(text, h)) {
                m.appname = m.hostname.take();
            }
            *ts = m.timestamp.as_ref().and_then(timestamp_of);
            fields(&m, a);
            m.msg
        }
        _ => {
            a.bool("no_timestamp");
            rest.trim_start_matches(' ')
        }
    }
}

/// Whether `field`, a slice of `text`, is directly followed by `:` there.
fn followed_by_colon(text: &str, field: &str) -> bool {
    let start = (field.as_ptr() as usize).wrapping_sub(text.as_ptr() as usize);
    text.get(start + field.len()..)
        .is_some_and(|rest| rest.starts_with(':'))
}

/// A Cisco header (see [`dialect`]).
fn cisco<'t>(
    c: &dialect::Cisco<'t>,
    tz: SyslogTimezone,
    received: Timestamp,
    a: &mut Obj<'_>,
    ts: &mut Option<Timestamp>,
) -> &'t str {
    a.plain("format", "cisco");
    if let Some(o) = c.origin {
        a.str("device", o);
    }
    if let Some(n) = c.sequence {
        a.num("sequence", n);
    }
    if let Some(m) = c.mnemonic {
        a.str("mnemonic", m);
    }
    match c.mark {
        ClockMark::Synced => {}
        ClockMark::NotSet => a.plain("clock", "not_set"),
        ClockMark::NtpLost => a.plain("clock", "ntp_lost"),
    }
    if let Some(s) = &c.stamp {
        a.str("device_time", s.text);
        let offset = match s.zone {
            None => None,
            Some("UTC" | "GMT" | "UT" | "Z") => Some(0),
            Some(z) => {
                // A zone name we cannot place: read the stamp in the configured zone.
                a.str("zone", z);
                None
            }
        };
        // A clock that was never set counts from boot: its stamp is no time of day.
        if c.mark != ClockMark::NotSet {
            let year = s
                .year
                .unwrap_or_else(|| infer_year(s.month, s.day, today(tz, received)));
            let naive = NaiveDate::from_ymd_opt(year, s.month, s.day)
                .and_then(|d| d.and_hms_nano_opt(s.hour, s.minute, s.second.min(59), s.nanos));
            *ts = naive.and_then(|n| match offset {
                Some(secs) => instant(&n, SyslogTimezone::Fixed(secs)),
                None => instant(&n, tz),
            });
        }
    }
    c.body
}

/// The header fields syslog_loose found.
fn fields(m: &Message<&str>, a: &mut Obj<'_>) {
    if let Some(h) = m.hostname {
        a.str("device", h);
    }
    if let Some(app) = m.appname {
        a.str("app", app);
    }
    match &m.procid {
        Some(ProcId::PID(p)) => {
            // Digits need no escaping: written without `fmt` or an allocation.
            a.key("procid");
            a.out.push(b'"');
            if *p < 0 {
                a.out.push(b'-');
            }
            write_u64(a.out, u64::from(p.unsigned_abs()));
            a.out.push(b'"');
        }
        Some(ProcId::Name(n)) => a.str("procid", n),
        None => {}
    }
    if let Some(id) = m.msgid {
        a.str("msgid", id);
    }
    if !m.structured_data.is_empty() {
        a.key("sd");
        a.open();
        for (i, e) in m.structured_data.iter().enumerate() {
            // A repeated SD-ID (allowed by syslog_loose, not by RFC 5424) keeps the first.
            if m.structured_data[..i].iter().any(|p| p.id == e.id) {
                continue;
            }
            a.any_key(e.id);
            a.open();
            for (k, v) in e.params() {
                a.any_key(k);
                write_str(a.out, &v);
            }
            a.end();
        }
        a.end();
    }
}

fn timestamp_of(t: &DateTime<FixedOffset>) -> Option<Timestamp> {
    let (secs, nanos) = (t.timestamp(), t.timestamp_subsec_nanos());
    // chrono gives a leap second as nanoseconds past 10⁹: they count into the next second.
    Timestamp::from_secs_nanos(
        secs + i64::from(nanos / 1_000_000_000),
        nanos % 1_000_000_000,
    )
}

/// A wall-clock time in `tz` as nanoseconds since the epoch (`None` in a DST gap).
fn instant(n: &NaiveDateTime, tz: SyslogTimezone) -> Option<Timestamp> {
    let t: DateTime<FixedOffset> = match tz {
        SyslogTimezone::Local => Local.from_local_datetime(n).earliest()?.fixed_offset(),
        SyslogTimezone::Fixed(secs) => FixedOffset::east_opt(secs)?
            .from_local_datetime(n)
            .earliest()?,
    };
    timestamp_of(&t)
}

/// The date in `tz` at `t`.
fn today(tz: SyslogTimezone, t: Timestamp) -> NaiveDate {
    let n = t.as_nanos();
    let utc = DateTime::<Utc>::from_timestamp(
        (n.div_euclid(1_000_000_000)) as i64,
        n.rem_euclid(1_000_000_000) as u32,
    )
    .unwrap_or_default();
    match tz {
        SyslogTimezone::Local => utc.with_timezone(&Local).date_naive(),
        SyslogTimezone::Fixed(secs) => FixedOffset::east_opt(secs)
            .map_or(utc.date_naive(), |o| utc.with_timezone(&o).date_naive()),
    }
}

/// The year of a stamp without one: this year's, unless that is more than a month ahead
/// (December's messages read in January are last year's) or more than eleven months behind
/// (a sender a little ahead on New Year's Eve is next year's).
pub fn infer_year(month: u32, day: u32, today: NaiveDate) -> i32 {
    let y = today.year();
    let Some(d) = NaiveDate::from_ymd_opt(y, month, day) else {
        return y;
    };
    let ahead = (d - today).num_days();
    if ahead > 31 {
        y - 1
    } else if ahead < -334 {
        y + 1
    } else {
        y
    }
}

/// A JSON object written straight into a byte buffer.
struct Obj<'b> {
    out: &'b mut Vec<u8>,
    first: bool,
}

impl<'b> Obj<'b> {
    fn new(out: &'b mut Vec<u8>) -> Self {
        out.clear();
        out.push(b'{');
        Obj { out, first: true }
    }

    /// A key of ours: plain ASCII, written as it is.
    fn key(&mut self, k: &'static str) {
        debug_assert!(k.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_'));
        if !self.first {
            self.out.push(b',');
        }
        self.first = false;
        self.out.push(b'"');
        self.out.extend_from_slice(k.as_bytes());
        self.out.extend_from_slice(b"\":");
    }

    /// A key from the message (an SD-ID, a parameter name): escaped.
    fn any_key(&mut self, k: &str) {
        if !self.first {
            self.out.push(b',');
        }
        self.first = false;
        write_str(self.out, k);
        self.out.push(b':');
    }

    /// A value from the message: escaped.
    fn str(&mut self, k: &'static str, v: &str) {
        self.key(k);
        write_str(self.out, v);
    }

    /// A value of ours (a name): plain ASCII, written as it is.
    fn plain(&mut self, k: &'static str, v: &'static str) {
        debug_assert!(v.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_'));
        self.key(k);
        self.out.push(b'"');
        self.out.extend_from_slice(v.as_bytes());
        self.out.push(b'"');
    }

    fn num(&mut self, k: &'static str, v: u64) {
        self.key(k);
        write_u64(self.out, v);
    }

    fn bool(&mut self, k: &'static str) {
        self.key(k);
        self.out.extend_from_slice(b"true");
    }

    /// Opens a nested object (after [`Obj::key`]).
    fn open(&mut self) {
        self.out.push(b'{');
        self.first = true;
    }

    /// Closes the innermost object.
    fn end(&mut self) {
        self.out.push(b'}');
        self.first = false;
    }
}

#[cfg(test)]
mod tests;
