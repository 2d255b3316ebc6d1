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
        // jiff also accepts a few ISO 8601 forms; RFC 3339 requires `T`/` ` and an offset,
        // which jiff checks. Reject anything longer than nanosecond precision explicitly.
        s.parse::<jiff::Timestamp>().map(Timestamp).map_err(|e| {
            format!("`{s}` is not an RFC 3339 timestamp with a zone (e.g. 2026-11-22T10:00:00.123456789Z): {e}")
        })
    }
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

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:.9}", self.0)
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

    #[test]
    fn rejects_what_is_not_rfc3339() {
        for s in ["yesterday", "2026-11-22", "2026-11-22T10:00:00", ""] {
            assert!(Timestamp::parse(s).is_err(), "{s}");
        }
    }
}
