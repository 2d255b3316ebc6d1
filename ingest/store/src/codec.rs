//! Little-endian binary encoding shared by the commit log, the snapshot and the index frame
//! of compressed segments. Strings are written as a `u32` byte length followed by UTF-8.

/// Appends little-endian values to a byte buffer.
pub(crate) trait Put {
    /// Appends one byte.
    fn put_u8(&mut self, v: u8);
    /// Appends a little-endian `u32`.
    fn put_u32(&mut self, v: u32);
    /// Appends a little-endian `u64`.
    fn put_u64(&mut self, v: u64);
    /// Appends a little-endian `i64`.
    fn put_i64(&mut self, v: i64);
    /// Appends a length-prefixed string.
    fn put_str(&mut self, s: &str);
}

impl Put for Vec<u8> {
    fn put_u8(&mut self, v: u8) {
        self.push(v);
    }
    fn put_u32(&mut self, v: u32) {
        self.extend_from_slice(&v.to_le_bytes());
    }
    fn put_u64(&mut self, v: u64) {
        self.extend_from_slice(&v.to_le_bytes());
    }
    fn put_i64(&mut self, v: i64) {
        self.extend_from_slice(&v.to_le_bytes());
    }
    fn put_str(&mut self, s: &str) {
        // Tenants (64 bytes) and agent ids (128 bytes) are validated long before this.
        self.put_u32(s.len() as u32);
        self.extend_from_slice(s.as_bytes());
    }
}

/// Why a buffer could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{what} at byte {at}")]
pub(crate) struct DecodeError {
    /// What was wrong.
    pub(crate) what: String,
    /// The offset in the decoded buffer.
    pub(crate) at: usize,
}

/// Reads little-endian values from a byte slice, failing cleanly when it is too short.
pub(crate) struct Dec<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Dec<'a> {
    /// A decoder at the start of `buf`.
    pub(crate) fn new(buf: &'a [u8]) -> Self {
        Dec { buf, pos: 0 }
    }

    /// An error at the current position.
    pub(crate) fn error(&self, what: impl Into<String>) -> DecodeError {
        DecodeError {
            what: what.into(),
            at: self.pos,
        }
    }

    /// The next `n` bytes.
    pub(crate) fn bytes(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        if self.buf.len() - self.pos < n {
            return Err(self.error(format!(
                "truncated: {n} bytes needed, {} left",
                self.buf.len() - self.pos
            )));
        }
        let out = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(out)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], DecodeError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.bytes(N)?);
        Ok(out)
    }

    /// One byte.
    pub(crate) fn u8(&mut self) -> Result<u8, DecodeError> {
        Ok(self.array::<1>()?[0])
    }

    /// A little-endian `u32`.
    pub(crate) fn u32(&mut self) -> Result<u32, DecodeError> {
        Ok(u32::from_le_bytes(self.array()?))
    }

    /// A little-endian `u64`.
    pub(crate) fn u64(&mut self) -> Result<u64, DecodeError> {
        Ok(u64::from_le_bytes(self.array()?))
    }

    /// A little-endian `i64`.
    pub(crate) fn i64(&mut self) -> Result<i64, DecodeError> {
        Ok(i64::from_le_bytes(self.array()?))
    }

    /// A length-prefixed UTF-8 string.
    pub(crate) fn str(&mut self) -> Result<&'a str, DecodeError> {
        let len = self.u32()? as usize;
        let at = self.pos;
        let bytes = self.bytes(len)?;
        std::str::from_utf8(bytes).map_err(|_| DecodeError {
            what: "a string is not UTF-8".into(),
            at,
        })
    }

    /// A count of items that each take at least `min_item_len` bytes, checked against what is
    /// left so that garbage cannot make the caller reserve absurd amounts of memory.
    pub(crate) fn count(&mut self, min_item_len: usize) -> Result<usize, DecodeError> {
        let n = self.u32()? as usize;
        if n.saturating_mul(min_item_len) > self.remaining() {
            return Err(self.error(format!("a count of {n} items does not fit the buffer")));
        }
        Ok(n)
    }

    /// How many bytes are left.
    pub(crate) fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_round_trip_and_truncation_is_an_error() {
        let mut buf = Vec::new();
        buf.put_u8(7);
        buf.put_u32(0xdead_beef);
        buf.put_u64(u64::MAX - 1);
        buf.put_i64(-42);
        buf.put_str("tenant-a");
        let mut d = Dec::new(&buf);
        assert_eq!(d.u8().unwrap(), 7);
        assert_eq!(d.u32().unwrap(), 0xdead_beef);
        assert_eq!(d.u64().unwrap(), u64::MAX - 1);
        assert_eq!(d.i64().unwrap(), -42);
        assert_eq!(d.str().unwrap(), "tenant-a");
        assert_eq!(d.remaining(), 0);
        let err = d.u32().unwrap_err();
        assert!(err.to_string().contains("truncated"), "{err}");

        let mut d = Dec::new(&buf[..buf.len() - 1]);
        d.bytes(1 + 4 + 8 + 8).unwrap();
        assert!(d.str().is_err());
    }

    #[test]
    fn absurd_counts_are_rejected() {
        let mut buf = Vec::new();
        buf.put_u32(u32::MAX);
        assert!(Dec::new(&buf).count(8).is_err());
    }
}
