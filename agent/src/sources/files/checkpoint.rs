//! What the files source stores through the emitter.
//!
//! - `file:<group id>:<dev>:<ino>` → JSON [`FileCheckpoint`]: the byte offset just after the
//!   last line that is in the buffer, with the path and fingerprint the file had.
//! - `filegroup:<group id>` → JSON [`GroupMarker`]: written once, when the group first
//!   started; while it exists, `start_at` is not applied again.
//!
//! The group id is a stable hash of the group's `paths` list
//! ([`group_id`](super::identity::group_id)).

use serde::{Deserialize, Serialize};

use super::identity::{fingerprint_hex, parse_fingerprint, FileKey, Head, FINGERPRINT_BYTES};

/// The position of one file, stored with the events read up to it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct FileCheckpoint {
    /// Where the file was when the checkpoint was written (lossy if not UTF-8).
    pub path: String,
    /// Byte offset just after the last line in the buffer.
    pub offset: u64,
    /// Hex hash of the file's first `head_bytes` bytes ([`Head`]); absent when none were
    /// known.
    pub fingerprint: Option<String>,
    /// How many leading bytes `fingerprint` covers, when fewer than 256 (absent: 256, as in
    /// checkpoints written before shorter heads were kept).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub head_bytes: Option<u32>,
    /// `st_dev` (also in the key; here for people reading it).
    pub dev: u64,
    /// `st_ino` (also in the key).
    pub ino: u64,
    /// `offset` is inside a line longer than `max_line_bytes`: what follows it is the next
    /// piece of that line (flagged `split`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub mid_line: bool,
}

impl FileCheckpoint {
    /// The stored head ([`Head::NONE`] if none).
    pub fn head(&self) -> Head {
        match self.fingerprint.as_deref().and_then(parse_fingerprint) {
            Some(hash) => Head {
                len: self
                    .head_bytes
                    .unwrap_or(FINGERPRINT_BYTES as u32)
                    .min(FINGERPRINT_BYTES as u32),
                hash,
            },
            None => Head::NONE,
        }
    }

    /// The JSON value.
    pub fn encode(path: &str, key: FileKey, offset: u64, head: Head, mid_line: bool) -> Vec<u8> {
        #[derive(Serialize)]
        struct Borrowed<'a> {
            path: &'a str,
            offset: u64,
            fingerprint: Option<String>,
            #[serde(skip_serializing_if = "Option::is_none")]
            head_bytes: Option<u32>,
            dev: u64,
            ino: u64,
            #[serde(skip_serializing_if = "std::ops::Not::not")]
            mid_line: bool,
        }
        serde_json::to_vec(&Borrowed {
            path,
            offset,
            fingerprint: (head.len > 0).then(|| fingerprint_hex(head.hash)),
            head_bytes: (head.len > 0 && !head.is_full()).then_some(head.len),
            dev: key.dev,
            ino: key.ino,
            mid_line,
        })
        .expect("a checkpoint always serializes")
    }

    /// Parses a stored value.
    pub fn decode(value: &[u8]) -> Option<FileCheckpoint> {
        serde_json::from_slice(value).ok()
    }
}

/// Written when a group first starts.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct GroupMarker {
    /// The group's patterns.
    pub paths: Vec<String>,
    /// `start_at` as it was applied.
    pub start_at: String,
    /// When (RFC 3339).
    pub started: String,
}

/// `file:<group id>:` — every file checkpoint of a group starts with it.
pub(crate) fn file_prefix(group_id: &str) -> String {
    format!("file:{group_id}:")
}

/// `file:<group id>:<dev>:<ino>`
pub(crate) fn file_key(group_id: &str, key: FileKey) -> String {
    format!("file:{group_id}:{}:{}", key.dev, key.ino)
}

/// The dev+ino of a checkpoint key of `group_id`.
pub(crate) fn parse_file_key(group_id: &str, k: &str) -> Option<FileKey> {
    let rest = k.strip_prefix(&file_prefix(group_id))?;
    let (dev, ino) = rest.split_once(':')?;
    Some(FileKey {
        dev: dev.parse().ok()?,
        ino: ino.parse().ok()?,
    })
}

/// `filegroup:<group id>`
pub(crate) fn group_marker_key(group_id: &str) -> String {
    format!("filegroup:{group_id}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_and_values_round_trip() {
        let key = FileKey { dev: 2049, ino: 77 };
        let k = file_key("00ff", key);
        assert_eq!(k, "file:00ff:2049:77");
        assert_eq!(parse_file_key("00ff", &k), Some(key));
        assert_eq!(parse_file_key("00fe", &k), None);
        assert_eq!(group_marker_key("00ff"), "filegroup:00ff");

        let full = Head {
            len: 256,
            hash: 0xab,
        };
        let v = FileCheckpoint::encode("/var/log/a.log", key, 120, full, false);
        assert_eq!(
            std::str::from_utf8(&v).unwrap(),
            r#"{"path":"/var/log/a.log","offset":120,"fingerprint":"00000000000000ab","dev":2049,"ino":77}"#
        );
        let cp = FileCheckpoint::decode(&v).unwrap();
        assert_eq!(cp.offset, 120);
        assert_eq!(cp.head(), full);
        assert!(!cp.mid_line);
        let v = FileCheckpoint::encode("/a", key, 5, Head::NONE, true);
        let cp = FileCheckpoint::decode(&v).unwrap();
        assert_eq!((cp.head(), cp.mid_line), (Head::NONE, true));
        // A head shorter than 256 bytes says how long it is.
        let short = Head::of_bytes(b"t0000\n");
        let v = FileCheckpoint::encode("/a", key, 6, short, false);
        assert!(std::str::from_utf8(&v)
            .unwrap()
            .contains(r#""head_bytes":6"#));
        assert_eq!(FileCheckpoint::decode(&v).unwrap().head(), short);
    }
}
