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

use super::identity::{fingerprint_hex, parse_fingerprint, FileKey};

/// The position of one file, stored with the events read up to it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct FileCheckpoint {
    /// Where the file was when the checkpoint was written (lossy if not UTF-8).
    pub path: String,
    /// Byte offset just after the last line in the buffer.
    pub offset: u64,
    /// Hex hash of the first 256 bytes, once the file had them.
    pub fingerprint: Option<String>,
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
    /// The stored fingerprint, if any.
    pub fn fingerprint(&self) -> Option<u64> {
        self.fingerprint.as_deref().and_then(parse_fingerprint)
    }

    /// The JSON value.
    pub fn encode(
        path: &str,
        key: FileKey,
        offset: u64,
        fingerprint: Option<u64>,
        mid_line: bool,
    ) -> Vec<u8> {
        #[derive(Serialize)]
        struct Borrowed<'a> {
            path: &'a str,
            offset: u64,
            fingerprint: Option<String>,
            dev: u64,
            ino: u64,
            #[serde(skip_serializing_if = "std::ops::Not::not")]
            mid_line: bool,
        }
        serde_json::to_vec(&Borrowed {
            path,
            offset,
            fingerprint: fingerprint.map(fingerprint_hex),
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

        let v = FileCheckpoint::encode("/var/log/a.log", key, 120, Some(0xab), false);
        assert_eq!(
            std::str::from_utf8(&v).unwrap(),
            r#"{"path":"/var/log/a.log","offset":120,"fingerprint":"00000000000000ab","dev":2049,"ino":77}"#
        );
        let cp = FileCheckpoint::decode(&v).unwrap();
        assert_eq!(cp.offset, 120);
        assert_eq!(cp.fingerprint(), Some(0xab));
        assert!(!cp.mid_line);
        let v = FileCheckpoint::encode("/a", key, 5, None, true);
        let cp = FileCheckpoint::decode(&v).unwrap();
        assert_eq!((cp.fingerprint(), cp.mid_line), (None, true));
    }
}
