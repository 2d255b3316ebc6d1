//! File identity: device + inode, plus a fingerprint of the first bytes.
//!
//! Device + inode tell files apart while they exist, but an inode number is reused once its
//! file is gone, so a checkpoint also records a fingerprint: a hash of the first
//! [`FINGERPRINT_BYTES`] bytes, once the file has that many. A file at a checkpointed dev+ino
//! whose fingerprint differs is a new file (inode reuse, or rewritten in place); a copy has
//! the same fingerprint but another inode, so it is a file of its own.

use std::fs::{File, Metadata};
use std::io;
use std::os::unix::fs::{FileExt, MetadataExt};

/// How many leading bytes the fingerprint covers.
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

/// 64-bit FNV-1a: small, fast on short inputs and stable across Rust versions and machines
/// (std's `DefaultHasher` is not), which stored identities need.
pub(crate) fn fnv1a(parts: &[&[u8]]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for part in parts {
        for &b in *part {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
    }
    h
}

/// The fingerprint of an open file of `size` bytes: `None` while it is shorter than
/// [`FINGERPRINT_BYTES`].
pub(crate) fn fingerprint(file: &File, size: u64) -> io::Result<Option<u64>> {
    if size < FINGERPRINT_BYTES as u64 {
        return Ok(None);
    }
    let mut head = [0u8; FINGERPRINT_BYTES];
    let mut got = 0;
    while got < head.len() {
        match file.read_at(&mut head[got..], got as u64) {
            Ok(0) => return Ok(None), // shrank meanwhile
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(Some(fnv1a(&[&head])))
}

/// A fingerprint as stored in checkpoints.
pub(crate) fn fingerprint_hex(fp: u64) -> String {
    format!("{fp:016x}")
}

/// A stored fingerprint; `None` if it does not parse.
pub(crate) fn parse_fingerprint(s: &str) -> Option<u64> {
    u64::from_str_radix(s, 16).ok()
}

/// The stable id of a `[[files]]` group: a hash of its `paths` list, so that reordering
/// groups or changing their other options keeps their checkpoints.
pub(crate) fn group_id(paths: &[String]) -> String {
    let mut parts: Vec<&[u8]> = Vec::with_capacity(paths.len() * 2);
    for p in paths {
        parts.push(p.as_bytes());
        parts.push(b"\0");
    }
    format!("{:016x}", fnv1a(&parts))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn group_ids_are_stable_and_depend_on_the_paths() {
        let a = group_id(&["/var/log/*.log".into()]);
        assert_eq!(a, group_id(&["/var/log/*.log".into()]));
        assert_eq!(a.len(), 16);
        assert_ne!(a, group_id(&["/var/log/*.txt".into()]));
        // The separator keeps ["ab", "c"] and ["a", "bc"] apart.
        assert_ne!(
            group_id(&["/ab".into(), "/c".into()]),
            group_id(&["/a".into(), "b/c".into()])
        );
        // FNV-1a test vector.
        assert_eq!(fnv1a(&[b"a"]), 0xaf63_dc4c_8601_ec8c);
    }

    #[test]
    fn fingerprint_needs_the_first_256_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        std::fs::write(&p, vec![b'x'; 255]).unwrap();
        let f = File::open(&p).unwrap();
        assert_eq!(fingerprint(&f, 255).unwrap(), None);
        std::fs::write(&p, vec![b'x'; 300]).unwrap();
        let fp = fingerprint(&f, 300).unwrap().unwrap();
        assert_eq!(parse_fingerprint(&fingerprint_hex(fp)), Some(fp));
        let mut other = vec![b'x'; 300];
        other[299] = b'y'; // past the fingerprinted head: same fingerprint
        std::fs::write(&p, &other).unwrap();
        assert_eq!(fingerprint(&f, 300).unwrap(), Some(fp));
        other[0] = b'y';
        std::fs::write(&p, &other).unwrap();
        assert_ne!(fingerprint(&f, 300).unwrap(), Some(fp));
    }
}
