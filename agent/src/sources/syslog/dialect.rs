//! What syslog_loose does not read: the PRI checked on its own (so a message whose header
//! does not parse keeps its facility and severity), and the Cisco forms that make it lose
//! even the PRI.
//!
//! Cisco IOS, IOS-XE, NX-OS and ASA put a sequence number, a marker and a stamp of their
//! own between the PRI and the text, and end the header with a colon:
//!
//! ```text
//! <189>52: *Mar  1 00:00:12.345: %SYS-5-CONFIG_I: Configured from console by console
//! <189>000052: Mar  1 00:00:12.345 UTC: %LINK-3-UPDOWN: Interface Gi0/1, changed state to up
//! <189>1234: edge-rtr1: .Mar  1 2024 12:00:00.123 CET: %SEC_LOGIN-5-LOGIN_SUCCESS: ...
//! <189>: 2024 Mar  1 00:00:12 UTC: %ETHPORT-5-IF_UP: Interface Ethernet1/1 is up
//! <166>%ASA-6-302013: Built outbound TCP connection 123 for outside:...
//! ```
//!
//! `*` marks a clock that was never set (the stamp counts from boot, usually "Mar 1 1993"),
//! `.` one that was set but has lost NTP synchronisation.

/// Why a message's PRI (`<0>` .. `<191>`) is not usable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PriError {
    /// The message does not start with `<`.
    #[error("no PRI: the message does not start with `<`")]
    Missing,
    /// `<` is not followed by 1 to 3 digits and `>`.
    #[error("malformed PRI: expected `<` 1-3 digits `>`")]
    Malformed,
    /// The number is above 191 (facility 23, severity 7).
    #[error("PRI {0} is out of range (0-191)")]
    OutOfRange(u16),
}

/// Splits `<PRI>` off the start of `text`: the PRI (facility × 8 + severity) and the rest.
pub fn split_pri(text: &str) -> Result<(u8, &str), PriError> {
    let b = text.as_bytes();
    if b.first() != Some(&b'<') {
        return Err(PriError::Missing);
    }
    let digits = b[1..]
        .iter()
        .take(4)
        .take_while(|c| c.is_ascii_digit())
        .count();
    if !(1..=3).contains(&digits) || b.get(1 + digits) != Some(&b'>') {
        return Err(PriError::Malformed);
    }
    let n: u16 = text[1..1 + digits]
        .parse()
        .map_err(|_| PriError::Malformed)?;
    if n > 191 {
        return Err(PriError::OutOfRange(n));
    }
    Ok((n as u8, &text[2 + digits..]))
}

/// The syslog facility names (RFC 5424 table 1, with Linux's names).
pub const FACILITIES: [&str; 24] = [
    "kern", "user", "mail", "daemon", "auth", "syslog", "lpr", "news", "uucp", "cron", "authpriv",
    "ftp", "ntp", "audit", "alert", "clock", "local0", "local1", "local2", "local3", "local4",
    "local5", "local6", "local7",
];

/// A device's clock state, from the marker before its stamp.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClockMark {
    /// No marker: the clock is authoritative.
    Synced,
    /// `*`: the clock was never set; the stamp is not a wall-clock time.
    NotSet,
    /// `.`: the clock was set but lost NTP synchronisation.
    NtpLost,
}

/// A Cisco stamp: `Mar  1 00:00:12.345 UTC`, with or without year, fraction and zone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CiscoStamp<'a> {
    /// The year, when the device sends it (`service timestamps ... year`).
    pub year: Option<i32>,
    /// 1-12.
    pub month: u32,
    /// 1-31.
    pub day: u32,
    /// 0-23.
    pub hour: u32,
    /// 0-59.
    pub minute: u32,
    /// 0-60.
    pub second: u32,
    /// The fraction, in nanoseconds.
    pub nanos: u32,
    /// The zone name (`UTC`, `CET`), when shown (`show-timezone`).
    pub zone: Option<&'a str>,
    /// The stamp as sent (for `attrs.device_time`).
    pub text: &'a str,
}

/// A Cisco header, read from the text after the PRI.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cisco<'a> {
    /// The sequence number (`service sequence-numbers`).
    pub sequence: Option<u64>,
    /// The origin id (`logging origin-id hostname`).
    pub origin: Option<&'a str>,
    /// The clock's state.
    pub mark: ClockMark,
    /// The device's stamp.
    pub stamp: Option<CiscoStamp<'a>>,
    /// `FACILITY-SEVERITY-MNEMONIC` when the text starts with `%...:`.
    pub mnemonic: Option<&'a str>,
    /// The text after the header (with the `%...:` part).
    pub body: &'a str,
}

/// Reads the Cisco header of `rest` (the text after the PRI); `None` when it is not one of
/// the Cisco forms (the message then goes to syslog_loose).
pub fn cisco(rest: &str) -> Option<Cisco<'_>> {
    let mut s = rest.trim_start_matches(' ');
    let mut sequence = None;
    let mut numbered = false;
    // `52: ` or NX-OS's bare `: `.
    let digits = s.bytes().take_while(u8::is_ascii_digit).count();
    if s[digits..].starts_with(": ")
        || (digits > 0 && s[digits..].starts_with(':') && s.len() == digits + 1)
    {
        sequence = s[..digits].parse().ok();
        numbered = true;
        s = s[digits + 1..].trim_start_matches(' ');
    }
    if let Some(c) = marked_stamp(s).filter(|c| numbered || c.is_unmistakable()) {
        return Some(Cisco {
            sequence,
            origin: None,
            ..c
        });
    }
    if numbered {
        // `52: edge-rtr1: *Mar  1 ...`: an origin id before the stamp.
        if let Some((origin, after)) = s.split_once(": ") {
            if !origin.is_empty() && !origin.contains([' ', '%']) {
                if let Some(c) = marked_stamp(after.trim_start_matches(' ')) {
                    return Some(Cisco {
                        sequence,
                        origin: Some(origin),
                        ..c
                    });
                }
            }
        }
    }
    // No stamp (`no service timestamps`, ASA without `logging timestamp`).
    let mnemonic = mnemonic(s);
    if numbered || mnemonic.is_some() {
        return Some(Cisco {
            sequence,
            origin: None,
            mark: ClockMark::Synced,
            stamp: None,
            mnemonic,
            body: s,
        });
    }
    None
}

impl Cisco<'_> {
    /// Whether a header without a sequence number is surely Cisco's: `Dec  5 22:00:00 CRON:
    /// ...` is an RFC 3164 message whose tag looks like a zone, but a marker, a fraction, a
    /// year, a colon right after the time or a `%FAC-SEV-MNEMONIC:` are Cisco's alone.
    fn is_unmistakable(&self) -> bool {
        let Some(s) = &self.stamp else { return false };
        self.mark != ClockMark::Synced
            || s.zone.is_none()
            || s.year.is_some()
            || s.text.contains('.')
            || self.mnemonic.is_some()
    }
}

/// `[*|.]STAMP: body`
fn marked_stamp(s: &str) -> Option<Cisco<'_>> {
    let (mark, s) = match s.as_bytes().first() {
        Some(b'*') => (ClockMark::NotSet, &s[1..]),
        Some(b'.') => (ClockMark::NtpLost, &s[1..]),
        _ => (ClockMark::Synced, s),
    };
    let (stamp, after) = stamp(s)?;
    let body = after.trim_start_matches(' ');
    Some(Cisco {
        sequence: None,
        origin: None,
        mark,
        stamp: Some(stamp),
        mnemonic: mnemonic(body),
        body,
    })
}

/// A small cursor over ASCII text.
struct Cursor<'a> {
    s: &'a str,
    at: usize,
}

impl<'a> Cursor<'a> {
    fn peek(&self) -> Option<u8> {
        self.s.as_bytes().get(self.at).copied()
    }
    fn eat(&mut self, b: u8) -> bool {
        if self.peek() == Some(b) {
            self.at += 1;
            true
        } else {
            false
        }
    }
    fn spaces(&mut self) -> usize {
        let n = self.s.as_bytes()[self.at..]
            .iter()
            .take_while(|&&c| c == b' ')
            .count();
        self.at += n;
        n
    }
    /// Up to `max` digits (at least `min`), as a number and their count.
    fn digits(&mut self, min: usize, max: usize) -> Option<(u32, usize)> {
        let n = self.s.as_bytes()[self.at..]
            .iter()
            .take(max)
            .take_while(|c| c.is_ascii_digit())
            .count();
        if n < min {
            return None;
        }
        let v = self.s[self.at..self.at + n].parse().ok()?;
        self.at += n;
        Some((v, n))
    }
    fn month(&mut self) -> Option<u32> {
        let m = month(self.s.get(self.at..self.at + 3)?)?;
        self.at += 3;
        Some(m)
    }
}

fn month(s: &str) -> Option<u32> {
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    MONTHS
        .iter()
        .position(|m| m.eq_ignore_ascii_case(s))
        .map(|i| i as u32 + 1)
}

/// `Mon dd [yyyy] hh:mm:ss[.fff] [ZONE]:` or `yyyy Mon dd hh:mm:ss[.fff] [ZONE]:`; returns the
/// stamp and the text after the colon.
fn stamp(s: &str) -> Option<(CiscoStamp<'_>, &str)> {
    let mut c = Cursor { s, at: 0 };
    let mut year = None;
    let month = match c.month() {
        Some(m) => m,
        None => {
            let (y, _) = c.digits(4, 4)?;
            year = Some(y as i32);
            if c.spaces() == 0 {
                return None;
            }
            c.month()?
        }
    };
    if c.spaces() == 0 {
        return None;
    }
    let (day, _) = c.digits(1, 2)?;
    if c.spaces() == 0 {
        return None;
    }
    let (mut hour, n) = c.digits(1, 4)?;
    if n == 4 && year.is_none() {
        year = Some(hour as i32);
        if c.spaces() == 0 {
            return None;
        }
        hour = c.digits(1, 2)?.0;
    } else if n > 2 {
        return None;
    }
    if !c.eat(b':') {
        return None;
    }
    let (minute, _) = c.digits(2, 2)?;
    if !c.eat(b':') {
        return None;
    }
    let (second, _) = c.digits(2, 2)?;
    let mut nanos = 0;
    if c.eat(b'.') {
        let (f, n) = c.digits(1, 9)?;
        nanos = f * 10u32.pow(9 - n as u32);
    }
    let end_of_time = c.at;
    let mut zone = None;
    if c.spaces() > 0 {
        let z0 = c.at;
        let n = s.as_bytes()[z0..]
            .iter()
            .take(16)
            .take_while(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'_'))
            .count();
        // Zone names are short and upper case (`UTC`, `CEST`, `PST`, `UTC+2`).
        if !(2..=8).contains(&n)
            || !s.as_bytes()[z0..z0 + n]
                .iter()
                .all(|b| !b.is_ascii_lowercase())
            || !s.as_bytes()[z0].is_ascii_alphabetic()
        {
            return None;
        }
        c.at += n;
        zone = Some(&s[z0..c.at]);
    }
    if !c.eat(b':') {
        return None;
    }
    if !(1..=12).contains(&month)
        || !(1..=31).contains(&day)
        || hour > 23
        || minute > 59
        || second > 60
    {
        return None;
    }
    let text_end = if zone.is_some() {
        c.at - 1
    } else {
        end_of_time
    };
    Some((
        CiscoStamp {
            year,
            month,
            day,
            hour,
            minute,
            second,
            nanos,
            zone,
            text: &s[..text_end],
        },
        &s[c.at..],
    ))
}

/// `FAC-SEV-MNEMONIC` of a text starting `%FAC-SEV-MNEMONIC:` (IOS-XR facilities may hold a
/// dash: `%PKT_INFRA-LINK-3-UPDOWN`).
pub fn mnemonic(body: &str) -> Option<&str> {
    let rest = body.strip_prefix('%')?;
    let end = rest.bytes().take(96).position(|b| b == b':')?;
    let m = &rest[..end];
    if !m
        .bytes()
        .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
    {
        return None;
    }
    let mut parts = m.rsplitn(3, '-');
    let (name, sev, fac) = (parts.next()?, parts.next()?, parts.next()?);
    if name.is_empty()
        || fac.is_empty()
        || sev.len() != 1
        || !matches!(sev.as_bytes()[0], b'0'..=b'7')
    {
        return None;
    }
    Some(m)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pri_is_read_and_checked() {
        assert_eq!(split_pri("<13>hi"), Ok((13, "hi")));
        assert_eq!(split_pri("<0>"), Ok((0, "")));
        assert_eq!(split_pri("<191>x"), Ok((191, "x")));
        assert_eq!(split_pri("<192>x"), Err(PriError::OutOfRange(192)));
        assert_eq!(split_pri("hello"), Err(PriError::Missing));
        assert_eq!(split_pri(""), Err(PriError::Missing));
        assert_eq!(split_pri("<>x"), Err(PriError::Malformed));
        assert_eq!(split_pri("<13 x"), Err(PriError::Malformed));
        assert_eq!(split_pri("<1234>x"), Err(PriError::Malformed));
        assert_eq!(split_pri("<a>x"), Err(PriError::Malformed));
    }

    #[test]
    fn ios_unsynced_clock_with_sequence_number() {
        let c =
            cisco("52: *Mar  1 00:00:12.345: %SYS-5-CONFIG_I: Configured from console by console")
                .unwrap();
        assert_eq!(c.sequence, Some(52));
        assert_eq!(c.mark, ClockMark::NotSet);
        let s = c.stamp.unwrap();
        assert_eq!(
            (s.year, s.month, s.day, s.hour, s.minute, s.second, s.nanos),
            (None, 3, 1, 0, 0, 12, 345_000_000)
        );
        assert_eq!(s.zone, None);
        assert_eq!(s.text, "Mar  1 00:00:12.345");
        assert_eq!(c.mnemonic, Some("SYS-5-CONFIG_I"));
        assert_eq!(
            c.body,
            "%SYS-5-CONFIG_I: Configured from console by console"
        );
    }

    #[test]
    fn ios_padded_sequence_and_zone() {
        let c = cisco("000052: Mar  1 00:00:12.345 UTC: %LINK-3-UPDOWN: Interface GigabitEthernet0/1, changed state to up").unwrap();
        assert_eq!(c.sequence, Some(52));
        assert_eq!(c.mark, ClockMark::Synced);
        let s = c.stamp.unwrap();
        assert_eq!(s.zone, Some("UTC"));
        assert_eq!(s.text, "Mar  1 00:00:12.345 UTC");
        assert_eq!(c.mnemonic, Some("LINK-3-UPDOWN"));
        assert_eq!(
            c.body,
            "%LINK-3-UPDOWN: Interface GigabitEthernet0/1, changed state to up"
        );
    }

    #[test]
    fn ios_single_digit_day_without_padding() {
        let c = cisco("52: *Mar 1 00:00:12.345: %SYS-5-CONFIG_I: x").unwrap();
        assert_eq!(c.stamp.unwrap().day, 1);
    }

    #[test]
    fn origin_id_year_and_ntp_lost_marker() {
        let c = cisco("1234: edge-rtr1: .Mar  1 2024 12:00:00.123 CET: %SEC_LOGIN-5-LOGIN_SUCCESS: Login Success [user: admin] [Source: 10.0.0.5]").unwrap();
        assert_eq!(c.sequence, Some(1234));
        assert_eq!(c.origin, Some("edge-rtr1"));
        assert_eq!(c.mark, ClockMark::NtpLost);
        let s = c.stamp.unwrap();
        assert_eq!(
            (s.year, s.hour, s.nanos, s.zone),
            (Some(2024), 12, 123_000_000, Some("CET"))
        );
        assert_eq!(c.mnemonic, Some("SEC_LOGIN-5-LOGIN_SUCCESS"));
    }

    #[test]
    fn nxos_year_first() {
        let c = cisco(": 2024 Mar  1 00:00:12 UTC: %ETHPORT-5-IF_UP: Interface Ethernet1/1 is up in mode access").unwrap();
        assert_eq!(c.sequence, None);
        let s = c.stamp.unwrap();
        assert_eq!(
            (s.year, s.month, s.second, s.zone),
            (Some(2024), 3, 12, Some("UTC"))
        );
        assert_eq!(c.mnemonic, Some("ETHPORT-5-IF_UP"));
    }

    #[test]
    fn no_stamp_forms() {
        let c = cisco("54: %SYS-5-CONFIG_I: Configured from console by vty0 (10.0.0.5)").unwrap();
        assert_eq!(
            (c.sequence, c.stamp, c.mnemonic),
            (Some(54), None, Some("SYS-5-CONFIG_I"))
        );
        let c = cisco("%ASA-6-302013: Built outbound TCP connection 123 for outside:10.0.0.1/443 (10.0.0.1/443) to inside:192.168.1.10/51234 (192.168.1.10/51234)").unwrap();
        assert_eq!((c.sequence, c.mnemonic), (None, Some("ASA-6-302013")));
        assert!(c.body.starts_with("%ASA-6-302013: Built"));
        let c = cisco("Mar 01 2024 12:00:00: %ASA-4-106023: Deny tcp src outside:1.2.3.4/1 dst inside:5.6.7.8/2").unwrap();
        assert_eq!(c.stamp.unwrap().year, Some(2024));
        assert_eq!(c.mnemonic, Some("ASA-4-106023"));
        let c = cisco("%PKT_INFRA-LINK-3-UPDOWN : x");
        assert!(c.is_none(), "a space before the colon is not a mnemonic");
        assert_eq!(
            mnemonic("%PKT_INFRA-LINK-3-UPDOWN: x"),
            Some("PKT_INFRA-LINK-3-UPDOWN")
        );
    }

    #[test]
    fn ordinary_messages_are_not_cisco() {
        for m in [
            "Mar  1 00:00:12 host app[12]: hello",
            "1 2024-03-01T00:00:12Z host app - - - hi",
            "hello world",
            "Mar  1 00:00:12 host %SYS-5-X: not at the start",
            "12 apples",
            "Dec  5 22:00:00 CRON: a tag that looks like a zone",
            "Dec  5 22:00:00 myhost: x",
            "",
        ] {
            assert_eq!(cisco(m), None, "{m}");
        }
        assert_eq!(mnemonic("%SYS-9-X: bad severity"), None);
        assert_eq!(mnemonic("%sys-5-x: lower case"), None);
    }
}
