//! File identity: device + inode, plus a hash of the first bytes.
//!
//! Device + inode tell files apart while they exist, but an inode number is reused once its
//! file is gone, and a file truncated in place (copytruncate) keeps both. So a tailed file
//! also carries its [`Head`]: a hash of its first bytes, up to [`FINGERPRINT_BYTES`], as
//! many as the agent has read. A file at a known dev+ino whose first bytes no longer hash
//! the same is other content (inode reuse, rewritten, or truncated and written again, even
//! past the old read position); a copy has the same head but another inode, so it is a file
//! of its own. The full 256-byte head is the file's *fingerprint*.

use std::fs::{File, Metadata};
use std::io;
use std::os::unix::fs::{FileExt, MetadataExt};

/// How many leading bytes the head (at most) covers.
pub(crate) const FINGERPRINT_BYTES: usize = 256;

/// Device and inode of a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct FileKey {
    /// `st_dev`.
    pub dev: u64,
    /// `st_ino`.
    pub ino: u64,
}

impl FileKey {
    /// The key of a file's metadata.
    pub fn of(meta: &Metadata) -> FileKey {
        FileKey {
            dev: meta.dev(),
            ino: meta.ino(),
        }
    }
}

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;

/// Continues a 64-bit FNV-1a hash over `bytes` (FNV-1a is incremental: hashing `a` then
/// `b` equals hashing `a ++ b`).
fn fnv1a_more(mut h: u64, bytes: &[u8]) -> u64 {
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// 64-bit FNV-1a: small, fast on short inputs and stable across Rust versions and machines
/// (std's `DefaultHasher` is not), which stored identities need.
pub(crate) fn fnv1a(parts: &[&[u8]]) -> u64 {
    parts.iter().fold(FNV_OFFSET, |h, p| fnv1a_more(h, p))
}

/// Reads up to `n` bytes at offset 0 (fewer if the file is shorter now).
fn read_head(file: &File, n: usize, buf: &mut [u8; FINGERPRINT_BYTES]) -> io::Result<usize> {
    let mut got = 0;
    while got < n {
        match file.read_at(&mut buf[got..n], got as u64) {
            Ok(0) => break,
            Ok(k) => got += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(got)
}

/// What is known of a file's first bytes: the FNV-1a hash of its first `len` bytes
/// (`len` ≤ [`FINGERPRINT_BYTES`]; 0 = nothing known yet).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Head {
    /// How many leading bytes the hash covers.
    pub len: u32,
    /// Their hash.
    pub hash: u64,
}

impl Head {
    /// Nothing known.
    pub const NONE: Head = Head {
        len: 0,
        hash: FNV_OFFSET,
    };

    /// The head of these bytes (at most the first [`FINGERPRINT_BYTES`]).
    pub fn of_bytes(b: &[u8]) -> Head {
        let b = &b[..b.len().min(FINGERPRINT_BYTES)];
        Head {
            len: b.len() as u32,
            hash: fnv1a(&[b]),
        }
    }

    /// The head of an open file of `size` bytes, as far as it goes.
    pub fn read(file: &File, size: u64) -> io::Result<Head> {
        let mut buf = [0u8; FINGERPRINT_BYTES];
        let n = read_head(file, (size as usize).min(FINGERPRINT_BYTES), &mut buf)?;
        Ok(Head::of_bytes(&buf[..n]))
    }

    /// Whether the head covers all [`FINGERPRINT_BYTES`] (it is the fingerprint).
    pub fn is_full(&self) -> bool {
        self.len as usize >= FINGERPRINT_BYTES
    }

    /// Whether the file's first `len` bytes still hash the same (false if it is shorter).
    pub fn matches(&self, file: &File) -> io::Result<bool> {
        if self.len == 0 {
            return Ok(true);
        }
        let mut buf = [0u8; FINGERPRINT_BYTES];
        let n = read_head(file, self.len as usize, &mut buf)?;
        Ok(n == self.len as usize && fnv1a(&[&buf[..n]]) == self.hash)
    }

    /// Takes in bytes read from the file at offset `base` that lie past what the head covers
    /// (the head grows with what was actually read, so a later change of those bytes is
    /// seen). True if it grew.
    pub fn extend(&mut self, data: &[u8], base: u64) -> bool {
        let len = u64::from(self.len);
        if self.is_full() || base > len || base + data.len() as u64 <= len {
            return false;
        }
        let from = (len - base) as usize;
        let to = data.len().min(FINGERPRINT_BYTES - base as usize);
        self.hash = fnv1a_more(self.hash, &data[from..to]);
        self.len = (base as usize + to) as u32;
        true
    }
}

/// A hash as stored in checkpoints.
pub(crate) fn fingerprint_hex(fp: u64) -> String {
    format!("{fp:016x}")
}

/// A stored hash; `None` if it does not parse.
pub(crate) fn parse_fingerprint(s: &str) -> Option<u64> {
    u64::from_str_radix(s, 16).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnv1a_is_the_standard_one_and_incremental() {
        assert_eq!(fnv1a(&[b"a"]), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv1a(&[b"ab", b"c"]), fnv1a(&[b"abc"]));
    }

    #[test]
    fn a_head_grows_with_what_is_read_and_sees_changes_of_it() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        std::fs::write(&p, b"t0000\nt0001\n").unwrap();
        let f = File::open(&p).unwrap();
        let mut head = Head::read(&f, 12).unwrap();
        assert_eq!(head, Head::of_bytes(b"t0000\nt0001\n"));
        assert!(head.matches(&f).unwrap() && !head.is_full());
        // Grown by what was read: the same as hashing everything at once.
        std::fs::write(&p, b"t0000\nt0001\nt0002\n").unwrap();
        assert!(head.extend(b"t0001\nt0002\n", 6));
        assert_eq!(head, Head::of_bytes(b"t0000\nt0001\nt0002\n"));
        assert!(!head.extend(b"t0002\n", 12), "nothing new");
        // Truncated and written again past the old length: the first bytes differ.
        std::fs::write(&p, b"t0003\nt0004\nt0005\nt0006\n").unwrap();
        assert!(!head.matches(&f).unwrap());
        // Shorter than the head: does not match either.
        std::fs::write(&p, b"t0000\n").unwrap();
        assert!(!head.matches(&f).unwrap());
        // The head stops at 256 bytes: what lies after it does not change it.
        let mut long = vec![b'x'; 300];
        std::fs::write(&p, &long).unwrap();
        let mut h = Head::of_bytes(&long[..100]);
        assert!(h.extend(&long[50..], 50));
        assert!(h.is_full() && h == Head::read(&f, 300).unwrap());
        long[299] = b'y';
        std::fs::write(&p, &long).unwrap();
        assert!(h.matches(&f).unwrap());
        long[0] = b'y';
        std::fs::write(&p, &long).unwrap();
        assert!(!h.matches(&f).unwrap());
        assert!(Head::NONE.matches(&f).unwrap());
        assert_eq!(parse_fingerprint(&fingerprint_hex(h.hash)), Some(h.hash));
    }
}
