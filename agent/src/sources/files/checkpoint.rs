//! What the files source stores through the emitter.
//!
//! - `file:<dev>:<ino>` → JSON [`FileCheckpoint`]: the byte offset just after the last line
//!   that is in the buffer, with the path and head (first bytes' hash) the file had. Keyed
//!   by the file alone, not by the `[[files]]` group that reads it, so editing, reordering
//!   or splitting the groups never reads a file again nor skips any of it.
//! - `filepattern:<glob pattern>` → JSON [`PatternMarker`]: written when a pattern is first
//!   started; a file without a checkpoint that only patterns without a marker match is new
//!   to the configuration and starts where `start_at` says, otherwise it appeared later and
//!   is read from its beginning.
//!
//! Before, checkpoints were kept per group: `file:<group id>:<dev>:<ino>` and
//! `filegroup:<group id>` (with the group's `paths`), the group id being a hash of its
//! `paths`, so adding a pattern to a group read its files again. [`migrate`] rewrites them.

use std::collections::{HashMap, HashSet};

use serde::{Deserialize, Serialize};

use crate::pipeline::CheckpointUpdate;

use super::container::Skip;
use super::identity::{fingerprint_hex, parse_fingerprint, FileKey, Head, FINGERPRINT_BYTES};

/// The position of one file, stored with the events read up to it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct FileCheckpoint {
    /// Where the file was when the checkpoint was written (lossy if not UTF-8).
    pub path: String,
    /// The name under which a group's pattern matched it, when the file has moved on since
    /// (rotated out of the patterns): after a restart, the group that matches this name
    /// finishes the file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub matched: Option<String>,
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
    /// Container logs: `offset` stays at a partial line of this stream while lines of the
    /// other stream up to `until` are already in the buffer (see `container`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub skip: Option<Skip>,
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

    /// The name a group matched the file under (see `matched`).
    pub fn matched_path(&self) -> &str {
        self.matched.as_deref().unwrap_or(&self.path)
    }

    /// The JSON value; `matched` is left out when it is `path`.
    pub fn encode(
        path: &str,
        matched: &str,
        key: FileKey,
        offset: u64,
        head: Head,
        mid_line: bool,
        skip: Option<Skip>,
    ) -> Vec<u8> {
        #[derive(Serialize)]
        struct Borrowed<'a> {
            path: &'a str,
            #[serde(skip_serializing_if = "Option::is_none")]
            matched: Option<&'a str>,
            offset: u64,
            fingerprint: Option<String>,
            #[serde(skip_serializing_if = "Option::is_none")]
            head_bytes: Option<u32>,
            dev: u64,
            ino: u64,
            #[serde(skip_serializing_if = "std::ops::Not::not")]
            mid_line: bool,
            #[serde(skip_serializing_if = "Option::is_none")]
            skip: Option<Skip>,
        }
        serde_json::to_vec(&Borrowed {
            path,
            matched: (matched != path).then_some(matched),
            offset,
            fingerprint: (head.len > 0).then(|| fingerprint_hex(head.hash)),
            head_bytes: (head.len > 0 && !head.is_full()).then_some(head.len),
            dev: key.dev,
            ino: key.ino,
            mid_line,
            skip,
        })
        .expect("a checkpoint always serializes")
    }

    /// Parses a stored value.
    pub fn decode(value: &[u8]) -> Option<FileCheckpoint> {
        serde_json::from_slice(value).ok()
    }
}

/// Written when a pattern is first started.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct PatternMarker {
    /// `start_at` of its group then.
    pub start_at: String,
    /// When (RFC 3339).
    pub started: String,
}

/// What groups stored before checkpoints were kept per file (`filegroup:<group id>`).
#[derive(Debug, Clone, Deserialize)]
struct LegacyGroupMarker {
    paths: Vec<String>,
    start_at: String,
    started: String,
}

/// Every file checkpoint starts with it.
pub(crate) const FILE_PREFIX: &str = "file:";
/// Every pattern marker starts with it.
pub(crate) const PATTERN_PREFIX: &str = "filepattern:";
/// Every group marker of the per-group layout starts with it.
pub(crate) const LEGACY_GROUP_PREFIX: &str = "filegroup:";

/// `file:<dev>:<ino>`
pub(crate) fn file_key(key: FileKey) -> String {
    format!("{FILE_PREFIX}{}:{}", key.dev, key.ino)
}

fn parse_dev_ino(dev: &str, ino: &str) -> Option<FileKey> {
    Some(FileKey {
        dev: dev.parse().ok()?,
        ino: ino.parse().ok()?,
    })
}

/// The dev+ino of a `file:<dev>:<ino>` key.
pub(crate) fn parse_file_key(k: &str) -> Option<FileKey> {
    let (dev, ino) = k.strip_prefix(FILE_PREFIX)?.split_once(':')?;
    parse_dev_ino(dev, ino)
}

/// The dev+ino of a per-group key `file:<group id>:<dev>:<ino>`.
fn parse_legacy_file_key(k: &str) -> Option<FileKey> {
    let mut parts = k.strip_prefix(FILE_PREFIX)?.split(':');
    let (group, dev, ino) = (parts.next()?, parts.next()?, parts.next()?);
    (parts.next().is_none() && group.len() == 16 && u64::from_str_radix(group, 16).is_ok())
        .then(|| parse_dev_ino(dev, ino))
        .flatten()
}

/// `filepattern:<pattern>`
pub(crate) fn pattern_marker_key(pattern: &str) -> String {
    format!("{PATTERN_PREFIX}{pattern}")
}

/// The stored state of the files source, after [`migrate`].
#[derive(Debug, Default)]
pub(crate) struct Stored {
    /// Checkpoints by file.
    pub files: HashMap<FileKey, FileCheckpoint>,
    /// Patterns with a marker.
    pub started: HashSet<String>,
    /// Writes that bring the store to this state: per-group keys rewritten, unreadable
    /// values removed (one atomic write).
    pub updates: Vec<CheckpointUpdate>,
}

/// Reads what the files source stored — `files` under [`FILE_PREFIX`], `patterns` under
/// [`PATTERN_PREFIX`], `groups` under [`LEGACY_GROUP_PREFIX`] — and rewrites the per-group
/// layout of earlier versions: `file:<group id>:<dev>:<ino>` becomes `file:<dev>:<ino>`
/// (when two groups read the same file, the furthest position wins: what lies before it is
/// in the buffer already; a checkpoint in the new layout wins over any old one, being
/// newer), and `filegroup:<group id>` becomes a marker for each of the group's patterns.
pub(crate) fn migrate(
    files: Vec<(String, Vec<u8>)>,
    patterns: Vec<(String, Vec<u8>)>,
    groups: Vec<(String, Vec<u8>)>,
) -> Stored {
    let mut out = Stored::default();
    let mut legacy: HashMap<FileKey, FileCheckpoint> = HashMap::new();
    for (k, v) in files {
        if let (Some(key), Some(cp)) = (parse_file_key(&k), FileCheckpoint::decode(&v)) {
            out.files.insert(key, cp);
            continue;
        }
        if let (Some(key), Some(cp)) = (parse_legacy_file_key(&k), FileCheckpoint::decode(&v)) {
            if legacy
                .get(&key)
                .is_none_or(|other| other.offset < cp.offset)
            {
                legacy.insert(key, cp);
            }
        } else {
            tracing::warn!(key = %k, "files: unreadable checkpoint forgotten");
        }
        out.updates.push((k, None));
    }
    let mut legacy: Vec<(FileKey, FileCheckpoint)> = legacy.into_iter().collect();
    legacy.sort_by_key(|(k, _)| *k);
    for (key, cp) in legacy {
        if out.files.contains_key(&key) {
            continue;
        }
        let value = serde_json::to_vec(&cp).expect("a checkpoint always serializes");
        out.updates.push((file_key(key), Some(value)));
        out.files.insert(key, cp);
    }
    for (k, _) in patterns {
        if let Some(p) = k.strip_prefix(PATTERN_PREFIX) {
            out.started.insert(p.to_owned());
        }
    }
    for (k, v) in groups {
        match serde_json::from_slice::<LegacyGroupMarker>(&v) {
            Ok(m) => {
                for p in m.paths {
                    if out.started.insert(p.clone()) {
                        let marker = PatternMarker {
                            start_at: m.start_at.clone(),
                            started: m.started.clone(),
                        };
                        out.updates.push((
                            pattern_marker_key(&p),
                            Some(serde_json::to_vec(&marker).expect("serializes")),
                        ));
                    }
                }
            }
            Err(_) => tracing::warn!(key = %k, "files: unreadable group marker forgotten"),
        }
        out.updates.push((k, None));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_and_values_round_trip() {
        let key = FileKey { dev: 2049, ino: 77 };
        let k = file_key(key);
        assert_eq!(k, "file:2049:77");
        assert_eq!(parse_file_key(&k), Some(key));
        assert_eq!(parse_file_key("file:00000000000000ff:2049:77"), None);
        assert_eq!(
            parse_legacy_file_key("file:00000000000000ff:2049:77"),
            Some(key)
        );
        assert_eq!(parse_legacy_file_key(&k), None);
        assert_eq!(
            pattern_marker_key("/var/log/*.log"),
            "filepattern:/var/log/*.log"
        );

        let full = Head {
            len: 256,
            hash: 0xab,
        };
        let v = FileCheckpoint::encode(
            "/var/log/a.log",
            "/var/log/a.log",
            key,
            120,
            full,
            false,
            None,
        );
        assert_eq!(
            std::str::from_utf8(&v).unwrap(),
            r#"{"path":"/var/log/a.log","offset":120,"fingerprint":"00000000000000ab","dev":2049,"ino":77}"#
        );
        let cp = FileCheckpoint::decode(&v).unwrap();
        assert_eq!(cp.offset, 120);
        assert_eq!(cp.head(), full);
        assert!(!cp.mid_line);
        let v = FileCheckpoint::encode("/a.1", "/a", key, 5, Head::NONE, true, None);
        let cp = FileCheckpoint::decode(&v).unwrap();
        assert_eq!((cp.head(), cp.mid_line), (Head::NONE, true));
        assert_eq!((cp.path.as_str(), cp.matched_path()), ("/a.1", "/a"));
        // A head shorter than 256 bytes says how long it is.
        let short = Head::of_bytes(b"t0000\n");
        let v = FileCheckpoint::encode("/a", "/a", key, 6, short, false, None);
        assert!(std::str::from_utf8(&v)
            .unwrap()
            .contains(r#""head_bytes":6"#));
        assert_eq!(FileCheckpoint::decode(&v).unwrap().head(), short);
    }

    fn cp(path: &str, offset: u64) -> Vec<u8> {
        FileCheckpoint::encode(
            path,
            path,
            FileKey { dev: 1, ino: 2 },
            offset,
            Head::NONE,
            false,
            None,
        )
    }

    #[test]
    fn the_per_group_layout_is_rewritten_per_file() {
        let g1 = "file:0000000000000001";
        let g2 = "file:0000000000000002";
        let stored = migrate(
            vec![
                // The same file read by two groups: the furthest position wins.
                (format!("{g1}:1:2"), cp("/l/a.log", 100)),
                (format!("{g2}:1:2"), cp("/l/a.log", 300)),
                (format!("{g1}:1:3"), cp("/l/b.log", 50)),
                // Already in the new layout: kept, and wins over the old key.
                ("file:1:4".into(), cp("/l/c.log", 70)),
                (format!("{g1}:1:4"), cp("/l/c.log", 90)),
                (format!("{g1}:x:y"), b"{}".to_vec()),
            ],
            vec![("filepattern:/m/*.log".into(), b"{}".to_vec())],
            vec![(
                "filegroup:0000000000000001".into(),
                br#"{"paths":["/l/*.log","/m/*.log"],"start_at":"end","started":"2026-01-01T00:00:00Z"}"#
                    .to_vec(),
            )],
        );
        let offset = |ino| stored.files[&FileKey { dev: 1, ino }].offset;
        assert_eq!((offset(2), offset(3), offset(4)), (300, 50, 70));
        let mut started: Vec<&str> = stored.started.iter().map(String::as_str).collect();
        started.sort_unstable();
        assert_eq!(started, ["/l/*.log", "/m/*.log"]);
        let updates: HashMap<&str, Option<&Vec<u8>>> = stored
            .updates
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_ref()))
            .collect();
        // Every old key removed; the new ones written; the new-layout key left as it is.
        for old in [
            format!("{g1}:1:2"),
            format!("{g2}:1:2"),
            format!("{g1}:1:3"),
            format!("{g1}:1:4"),
            format!("{g1}:x:y"),
            "filegroup:0000000000000001".into(),
        ] {
            assert_eq!(updates.get(old.as_str()), Some(&None), "{old}");
        }
        let written = |k: &str| FileCheckpoint::decode(updates[k].unwrap()).unwrap().offset;
        assert_eq!((written("file:1:2"), written("file:1:3")), (300, 50));
        assert!(!updates.contains_key("file:1:4"));
        assert!(updates["filepattern:/l/*.log"].is_some());
        assert!(
            !updates.contains_key("filepattern:/m/*.log"),
            "already there"
        );
        assert_eq!(updates.len(), 9);
        // Nothing to do the second time.
        let again = migrate(
            vec![("file:1:2".into(), cp("/l/a.log", 300))],
            vec![("filepattern:/l/*.log".into(), b"{}".to_vec())],
            vec![],
        );
        assert!(again.updates.is_empty());
    }
}
