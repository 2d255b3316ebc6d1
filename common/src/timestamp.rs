//! Event timestamps: RFC 3339 on the wire, nanoseconds since the Unix epoch inside.

use std::fmt;
use std::str::FromStr;

use serde::{de, Deserialize, Deserializer, Serialize, Serializer};

/// A point in time with nanosecond precision.
///
/// Parsed from any RFC 3339 timestamp (`2026-11-22T10:00:00Z`, `...+02:00`, up to nine
/// fractional digits); always written in UTC with nine fractional digits, so that written
/// timestamps sort as text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(jiff::Timestamp);

impl Timestamp {
    /// The current time.
    pub fn now() -> Self {
        Timestamp(jiff::Timestamp::now())
    }

    /// From nanoseconds since the Unix epoch (clamped to the representable range).
    pub fn from_nanos(nanos: i128) -> Self {
        let clamped = nanos.clamp(
            jiff::Timestamp::MIN.as_nanosecond(),
            jiff::Timestamp::MAX.as_nanosecond(),
        );
        Timestamp(jiff::Timestamp::from_nanosecond(clamped).expect("clamped into range"))
    }

    /// From seconds since the Unix epoch and the nanoseconds within that second (`None`
    /// out of range or for `nanos` ≥ 10⁹). Cheaper than [`Timestamp::from_nanos`]: no
    /// 128-bit division.
    pub fn from_secs_nanos(secs: i64, nanos: u32) -> Option<Self> {
        if nanos >= 1_000_000_000 {
            return None;
        }
        jiff::Timestamp::new(secs, nanos as i32).ok().map(Timestamp)
    }

    /// Nanoseconds since the Unix epoch.
    pub fn as_nanos(self) -> i128 {
        self.0.as_nanosecond()
    }

    /// Nanoseconds since the Unix epoch, saturated into an `i64` (years 1678 to 2262).
    pub fn as_nanos_i64(self) -> i64 {
        self.as_nanos().clamp(i64::MIN as i128, i64::MAX as i128) as i64
    }

    /// Milliseconds since the Unix epoch.
    pub fn as_millis(self) -> i64 {
        self.0.as_millisecond()
    }

    /// Parses an RFC 3339 timestamp, with a message that says what is accepted.
    pub fn parse(s: &str) -> Result<Self, String> {
        if let Some(t) = parse_utc_fast(s.as_bytes()) {
            return Ok(t);
        }
        // jiff also accepts a few ISO 8601 forms; RFC 3339 requires `T`/` ` and an offset,
        // which jiff checks. Reject anything longer than nanosecond precision explicitly.
        s.parse::<jiff::Timestamp>().map(Timestamp).map_err(|e| {
            format!("`{s}` is not an RFC 3339 timestamp with a zone (e.g. 2026-11-22T10:00:00.123456789Z): {e}")
        })
    }
}

/// The common shape, `YYYY-MM-DDTHH:MM:SS[.f{1,9}]Z` (what agents write), parsed without
/// jiff's general parser: validating a batch parses one timestamp per event, and jiff's
/// parser was 7 % of the ingest's CPU. `None` for anything else, which then goes to jiff; so
/// this only ever accepts what jiff accepts, with the same result (years 1000 to 8999 only,
/// far inside jiff's range; seconds up to 59; real calendar days).
fn parse_utc_fast(b: &[u8]) -> Option<Timestamp> {
    fn digits(b: &[u8]) -> Option<u32> {
        b.iter().try_fold(0u32, |n, &c| {
            c.is_ascii_digit().then(|| n * 10 + u32::from(c - b'0'))
        })
    }
    if b.len() < 20 || b[b.len() - 1] != b'Z' {
        return None;
    }
    if (b[4], b[7], b[10], b[13], b[16]) != (b'-', b'-', b'T', b':', b':') {
        return None;
    }
    let year = digits(&b[0..4])?;
    let (month, day) = (digits(&b[5..7])?, digits(&b[8..10])?);
    let (hour, minute, second) = (
        digits(&b[11..13])?,
        digits(&b[14..16])?,
        digits(&b[17..19])?,
    );
    let nanos = match &b[19..b.len() - 1] {
        [] => 0,
        [b'.', frac @ ..] if (1..=9).contains(&frac.len()) => {
            digits(frac)? * 10u32.pow(9 - frac.len() as u32)
        }
        _ => return None,
    };
    let leap = year % 4 == 0 && (year % 100 != 0 || year % 400 == 0);
    let month_days = match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap => 29,
        2 => 28,
        _ => return None,
    };
    if !(1000..9000).contains(&year) || day == 0 || day > month_days {
        return None;
    }
    if hour > 23 || minute > 59 || second > 59 {
        return None;
    }
    // Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's days_from_civil).
    let (y, m) = (i64::from(year) - i64::from(month <= 2), i64::from(month));
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (m + if m > 2 { -3 } else { 9 }) + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let secs = days * 86_400 + i64::from(hour * 3600 + minute * 60 + second);
    jiff::Timestamp::new(secs, nanos as i32).ok().map(Timestamp)
}

impl From<jiff::Timestamp> for Timestamp {
    fn from(t: jiff::Timestamp) -> Self {
        Timestamp(t)
    }
}

impl From<Timestamp> for jiff::Timestamp {
    fn from(t: Timestamp) -> Self {
        t.0
    }
}

impl Timestamp {
    /// Appends the timestamp as it is written on the wire: RFC 3339 in UTC with nine
    /// fractional digits (`2026-11-22T10:00:00.123456789Z`), as [`fmt::Display`] does.
    pub fn write_rfc3339(&self, out: &mut Vec<u8>) {
        match self.rfc3339_fast() {
            Some(text) => out.extend_from_slice(&text),
            None => {
                use std::io::Write;
                let _ = write!(out, "{:.9}", self.0);
            }
        }
    }

    /// The text for years 1000 to 9999 (what agents write), without `fmt` or jiff's
    /// printer: an agent writes one timestamp per event. `None` elsewhere (jiff writes
    /// those, with the same result here: the tests compare the two).
    fn rfc3339_fast(&self) -> Option<[u8; 30]> {
        let secs = self.0.as_second();
        let nanos = self.0.subsec_nanosecond();
        // 1000-01-01 and 10000-01-01 in Unix seconds.
        if !(-30_610_224_000..253_402_300_800).contains(&secs) || nanos < 0 {
            return None;
        }
        let mut t = *b"0000-00-00T00:00:00.000000000Z";
        // Events come in bursts within the same second: its date and time of day are
        // worked out once per second and thread.
        let head = LAST_SECOND.with(|last| {
            let (at, head) = last.get();
            if at == secs {
                return head;
            }
            let head = date_time_of(secs);
            last.set((secs, head));
            head
        });
        t[..19].copy_from_slice(&head);
        let mut n = nanos as u32;
        for i in (20..29).rev() {
            t[i] = b'0' + (n % 10) as u8;
            n /= 10;
        }
        Some(t)
    }
}

thread_local! {
    /// The last second [`Timestamp::rfc3339_fast`] wrote, and its `YYYY-MM-DDTHH:MM:SS`.
    static LAST_SECOND: std::cell::Cell<(i64, [u8; 19])> =
        const { std::cell::Cell::new((i64::MIN, [0; 19])) };
}

/// `YYYY-MM-DDTHH:MM:SS` of `secs` since the epoch (years 1000 to 9999).
fn date_time_of(secs: i64) -> [u8; 19] {
    let days = secs.div_euclid(86_400);
    let sod = secs.rem_euclid(86_400) as u32;
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = (yoe + era * 400 + i64::from(month <= 2)) as u32;
    let mut t = *b"0000-00-00T00:00:00";
    let mut put = |at: usize, width: usize, mut v: u32| {
        for i in (at..at + width).rev() {
            t[i] = b'0' + (v % 10) as u8;
            v /= 10;
        }
    };
    put(0, 4, year);
    put(5, 2, month);
    put(8, 2, day);
    put(11, 2, sod / 3600);
    put(14, 2, sod / 60 % 60);
    put(17, 2, sod % 60);
    t
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.rfc3339_fast() {
            Some(text) => f.write_str(std::str::from_utf8(&text).map_err(|_| fmt::Error)?),
            None => write!(f, "{:.9}", self.0),
        }
    }
}

impl FromStr for Timestamp {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Timestamp::parse(s)
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl de::Visitor<'_> for V {
            type Value = Timestamp;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an RFC 3339 timestamp string")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Timestamp, E> {
                Timestamp::parse(v).map_err(E::custom)
            }
        }
        d.deserialize_str(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn written_in_utc_with_nine_digits() {
        let t = Timestamp::parse("2026-11-22T12:00:00.5+02:00").unwrap();
        assert_eq!(t.to_string(), "2026-11-22T10:00:00.500000000Z");
        let t = Timestamp::parse("2026-11-22T10:00:00Z").unwrap();
        assert_eq!(t.to_string(), "2026-11-22T10:00:00.000000000Z");
    }

    #[test]
    fn nanos_round_trip() {
        let t = Timestamp::parse("2026-11-22T10:00:00.123456789Z").unwrap();
        assert_eq!(Timestamp::from_nanos(t.as_nanos()), t);
        assert_eq!(t.as_nanos() % 1_000_000_000, 123_456_789);
    }

    /// The fast path agrees with jiff on everything it accepts, and leaves the rest to it.
    #[test]
    fn the_fast_path_agrees_with_jiff() {
        let mut x = 0x9E37_79B9_7F4A_7C15u64;
        let mut next = |n: u64| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x % n
        };
        let mut fast = 0;
        for i in 0..200_000 {
            let frac = match i % 4 {
                0 => String::new(),
                1 => format!(".{:09}", next(1_000_000_000)),
                _ => format!(".{}", next(1_000_000)),
            };
            let s = format!(
                "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}{frac}Z",
                [1000, 1969, 1970, 2000, 2024, 2026, 2100, 8999][next(8) as usize] + next(3),
                next(14),
                next(33),
                next(26),
                next(62),
                next(62),
            );
            let by_jiff = s.parse::<jiff::Timestamp>().ok();
            let quick = parse_utc_fast(s.as_bytes());
            if let Some(q) = quick {
                fast += 1;
                assert_eq!(Some(q.0), by_jiff, "{s}");
            }
            assert_eq!(Timestamp::parse(&s).ok().map(|t| t.0), by_jiff, "{s}");
        }
        assert!(fast > 50_000, "the fast path took only {fast}");
        for s in [
            "2024-02-29T23:59:59.999999999Z",
            "2000-02-29T00:00:00Z",
            "1970-01-01T00:00:00Z",
            "1969-12-31T23:59:59.5Z",
        ] {
            let q = parse_utc_fast(s.as_bytes()).expect(s);
            assert_eq!(q.0, s.parse::<jiff::Timestamp>().unwrap(), "{s}");
        }
        for s in [
            "2023-02-29T00:00:00Z",
            "2100-02-29T00:00:00Z",
            "2026-11-22T24:00:00Z",
            "2026-11-22T10:00:60Z",
            "2026-11-22T10:00:00.Z",
            "2026-11-22T10:00:00.1234567890Z",
            "2026-11-22t10:00:00Z",
            "2026-11-22T10:00:00z",
            "2026-11-22T10:00:00+00:00",
            "+2026-11-22T10:00:00Z",
            "2026-1-22T10:00:00.00Z",
            "9999-12-31T23:59:59Z",
        ] {
            assert!(parse_utc_fast(s.as_bytes()).is_none(), "{s}");
        }
    }

    /// Written text is jiff's `{:.9}` everywhere: the fast path's range and outside it.
    #[test]
    fn writing_agrees_with_jiff() {
        let mut x = 0x2545_F491_4F6C_DD1Du64;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let (min, max) = (
            jiff::Timestamp::MIN.as_nanosecond(),
            jiff::Timestamp::MAX.as_nanosecond(),
        );
        let mut edges = vec![
            0i128,
            -1,
            1,
            -30_610_224_000 * 1_000_000_000,
            -30_610_224_000 * 1_000_000_000 - 1,
            253_402_300_800 * 1_000_000_000 - 1,
            253_402_300_800 * 1_000_000_000,
            951_782_400 * 1_000_000_000, // 2000-02-29
            min,
            max,
        ];
        for _ in 0..200_000 {
            // Mostly within years 1000..10000, some anywhere in jiff's range.
            let r = i128::from(next());
            let n = if r % 8 == 0 {
                min + r.rem_euclid(max - min)
            } else {
                r.rem_euclid(284_012_524_800 * 1_000_000_000) - 30_610_224_000 * 1_000_000_000
            };
            edges.push(n);
            // Another instant in the same second (written from the per-second cache), and
            // one in the next second.
            let second = n - n.rem_euclid(1_000_000_000);
            edges.push((second + i128::from(next() % 1_000_000_000)).min(max));
            edges.push((second + 1_000_000_000).min(max));
        }
        for n in edges {
            let t = Timestamp::from_nanos(n);
            let expected = format!("{:.9}", t.0);
            assert_eq!(t.to_string(), expected, "{n}");
            let mut out = Vec::new();
            t.write_rfc3339(&mut out);
            assert_eq!(String::from_utf8(out).unwrap(), expected, "{n}");
        }
    }

    #[test]
    fn from_seconds_and_nanoseconds_equals_from_nanoseconds() {
        for (secs, nanos) in [
            (0i64, 0u32),
            (1_765_000_000, 999_999_999),
            (-1, 5),
            (-86_400, 0),
        ] {
            assert_eq!(
                Timestamp::from_secs_nanos(secs, nanos),
                Some(Timestamp::from_nanos(
                    i128::from(secs) * 1_000_000_000 + i128::from(nanos)
                ))
            );
        }
        assert_eq!(Timestamp::from_secs_nanos(0, 1_000_000_000), None);
        assert_eq!(Timestamp::from_secs_nanos(i64::MAX, 0), None);
    }

    #[test]
    fn rejects_what_is_not_rfc3339() {
        for s in ["yesterday", "2026-11-22", "2026-11-22T10:00:00", ""] {
            assert!(Timestamp::parse(s).is_err(), "{s}");
        }
    }
}
