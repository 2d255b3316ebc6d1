//! `Position`: where a line is in the store, and its cursor form.

use std::fmt;
use std::str::FromStr;

/// A line's place in the store: the segment's store-wide sequence number and the byte offset
/// of the line's start in the uncompressed segment. Totally ordered in store order.
///
/// Its string form (`Display`/`FromStr`) is an opaque cursor such as `18-4096`. A position
/// in a segment deleted by retention simply resumes at the next existing segment.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Position {
    /// The segment's sequence number.
    pub segment: u64,
    /// The byte offset of the line's start in the uncompressed segment.
    pub offset: u64,
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.segment, self.offset)
    }
}

/// A string that is not a cursor.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not a cursor; a cursor looks like `18-4096` (as returned by a previous query)")]
pub struct ParsePositionError(String);

impl FromStr for Position {
    type Err = ParsePositionError;
    fn from_str(s: &str) -> Result<Self, ParsePositionError> {
        let bad = || ParsePositionError(s.to_string());
        let (segment, offset) = s.split_once('-').ok_or_else(bad)?;
        let digits = |p: &str| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit());
        if !digits(segment) || !digits(offset) {
            return Err(bad());
        }
        Ok(Position {
            segment: segment.parse().map_err(|_| bad())?,
            offset: offset.parse().map_err(|_| bad())?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_round_trip_through_their_string_form() {
        for p in [
            Position {
                segment: 18,
                offset: 4096,
            },
            Position {
                segment: 0,
                offset: 0,
            },
            Position {
                segment: u64::MAX,
                offset: u64::MAX,
            },
        ] {
            assert_eq!(p.to_string().parse::<Position>().unwrap(), p);
        }
        assert_eq!(
            Position {
                segment: 18,
                offset: 4096
            }
            .to_string(),
            "18-4096"
        );
    }

    #[test]
    fn bad_cursors_say_what_a_cursor_looks_like() {
        for s in [
            "",
            "18",
            "18-",
            "-5",
            "a-1",
            "1-b",
            "1-2-3",
            "+1-2",
            "99999999999999999999-1",
        ] {
            let err = s.parse::<Position>().unwrap_err().to_string();
            assert!(err.contains("18-4096"), "{s}: {err}");
        }
    }

    #[test]
    fn positions_order_by_segment_then_offset() {
        let p = |segment, offset| Position { segment, offset };
        assert!(p(1, 900) < p(2, 0));
        assert!(p(2, 0) < p(2, 1));
    }
}
