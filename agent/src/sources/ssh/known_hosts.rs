//! OpenSSH `known_hosts` files: plain and hashed (`|1|salt|hash`) host names, `[host]:port`
//! for ports other than 22, comma-separated patterns with `*`, `?` and `!` negation,
//! `@revoked` keys (`@cert-authority` lines are skipped: certificates are not used). Every
//! entry keeps its line number, so a changed key is reported with the file and line of the
//! old one.

use std::io::Write;
use std::path::Path;
use std::sync::Mutex;

use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::Digest;

/// One usable line of a known_hosts file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// 1-based line number.
    pub line: usize,
    /// The host field (patterns, or one hashed name).
    pub hosts: String,
    /// The key type (`ssh-ed25519`).
    pub key_type: String,
    /// The key blob (decoded base64).
    pub key: Vec<u8>,
    /// A `@revoked` line.
    pub revoked: bool,
}

/// What a known_hosts file says about a host's key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// The key is known for this host.
    Known,
    /// The host has no key in the file.
    Unknown,
    /// The host is known with another key: the entry of the old key (same type, or the
    /// first of its other types).
    Changed(Entry),
    /// The key is marked `@revoked` at this entry.
    Revoked(Entry),
}

/// The name a host has in known_hosts: `host`, or `[host]:port` when the port is not 22.
pub fn host_token(host: &str, port: u16) -> String {
    let host = host.to_ascii_lowercase();
    if port == 22 {
        host
    } else {
        format!("[{host}]:{port}")
    }
}

/// The key type written at the start of an SSH public key blob.
pub fn blob_key_type(blob: &[u8]) -> Option<&str> {
    let len = u32::from_be_bytes(blob.get(..4)?.try_into().ok()?) as usize;
    std::str::from_utf8(blob.get(4..4 + len)?).ok()
}

/// OpenSSH's fingerprint: `SHA256:` and the unpadded base64 of the blob's SHA-256.
pub fn fingerprint(blob: &[u8]) -> String {
    let digest = sha2::Sha256::digest(blob);
    format!(
        "SHA256:{}",
        base64::engine::general_purpose::STANDARD_NO_PAD.encode(digest)
    )
}

/// A key as a known_hosts line ends: `ssh-ed25519 AAAA...`.
pub fn key_text(blob: &[u8]) -> String {
    format!(
        "{} {}",
        blob_key_type(blob).unwrap_or("unknown"),
        base64::engine::general_purpose::STANDARD.encode(blob)
    )
}

/// Whether `name` matches a glob with `*` and `?`.
fn glob_match(pattern: &[u8], name: &[u8]) -> bool {
    match (pattern.first(), name.first()) {
        (None, None) => true,
        (Some(b'*'), _) => {
            glob_match(&pattern[1..], name) || (!name.is_empty() && glob_match(pattern, &name[1..]))
        }
        (Some(b'?'), Some(_)) => glob_match(&pattern[1..], &name[1..]),
        (Some(p), Some(n)) if p.eq_ignore_ascii_case(n) => glob_match(&pattern[1..], &name[1..]),
        _ => false,
    }
}

/// `|1|base64(salt)|base64(HMAC-SHA1(salt, name))`.
fn hashed_match(field: &str, name: &str) -> bool {
    let Some(rest) = field.strip_prefix("|1|") else {
        return false;
    };
    let Some((salt, hash)) = rest.split_once('|') else {
        return false;
    };
    let b64 = base64::engine::general_purpose::STANDARD;
    let (Ok(salt), Ok(hash)) = (b64.decode(salt), b64.decode(hash)) else {
        return false;
    };
    let Ok(mut mac) = Hmac::<sha1::Sha1>::new_from_slice(&salt) else {
        return false;
    };
    mac.update(name.as_bytes());
    mac.verify_slice(&hash).is_ok()
}

impl Entry {
    /// Whether this entry is about `token` (see [`host_token`]).
    pub fn matches(&self, token: &str) -> bool {
        if self.hosts.starts_with("|1|") {
            return hashed_match(&self.hosts, token);
        }
        let mut matched = false;
        for pattern in self.hosts.split(',') {
            let (negated, pattern) = match pattern.strip_prefix('!') {
                Some(p) => (true, p),
                None => (false, pattern),
            };
            if glob_match(pattern.as_bytes(), token.as_bytes()) {
                if negated {
                    return false;
                }
                matched = true;
            }
        }
        matched
    }
}

/// Parses a known_hosts file's text; lines that are not entries (comments, blanks,
/// `@cert-authority`, undecodable keys) are skipped.
pub fn parse(text: &str) -> Vec<Entry> {
    let mut out = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let mut fields = line.split_whitespace();
        let mut first = fields.next().unwrap_or_default();
        let mut revoked = false;
        if first.starts_with('@') {
            match first {
                "@revoked" => revoked = true,
                _ => continue,
            }
            first = match fields.next() {
                Some(f) => f,
                None => continue,
            };
        }
        let (Some(key_type), Some(key)) = (fields.next(), fields.next()) else {
            continue;
        };
        let Ok(key) = base64::engine::general_purpose::STANDARD.decode(key) else {
            continue;
        };
        out.push(Entry {
            line: i + 1,
            hosts: first.to_owned(),
            key_type: key_type.to_owned(),
            key,
            revoked,
        });
    }
    out
}

/// What the entries say about `token` presenting `key`.
pub fn verdict(entries: &[Entry], token: &str, key: &[u8]) -> Verdict {
    let mine: Vec<&Entry> = entries.iter().filter(|e| e.matches(token)).collect();
    if let Some(r) = entries.iter().find(|e| e.revoked && e.key == key) {
        return Verdict::Revoked(r.clone());
    }
    if mine.iter().any(|e| !e.revoked && e.key == key) {
        return Verdict::Known;
    }
    let key_type = blob_key_type(key).unwrap_or_default();
    let known: Vec<&&Entry> = mine.iter().filter(|e| !e.revoked).collect();
    match known
        .iter()
        .find(|e| e.key_type == key_type)
        .or(known.first())
    {
        Some(old) => Verdict::Changed((**old).clone()),
        None => Verdict::Unknown,
    }
}

/// The key types `token` is known with, in file order (to prefer them in the handshake, as
/// OpenSSH does).
pub fn known_types(entries: &[Entry], token: &str) -> Vec<String> {
    let mut types: Vec<String> = Vec::new();
    for e in entries.iter().filter(|e| !e.revoked && e.matches(token)) {
        if !types.contains(&e.key_type) {
            types.push(e.key_type.clone());
        }
    }
    types
}

/// Serializes appends to known_hosts files from the worker threads.
static WRITE_LOCK: Mutex<()> = Mutex::new(());

/// Reads `path`; a missing file has no entries.
pub fn load(path: &Path) -> std::io::Result<Vec<Entry>> {
    match std::fs::read_to_string(path) {
        Ok(t) => Ok(parse(&t)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(e),
    }
}

/// `accept-new`: records `key` for `token` at the end of `path` (created if missing),
/// unless another thread recorded a key for it meanwhile; returns the verdict of the file
/// as it then is (`Known` after recording).
pub fn record(path: &Path, token: &str, key: &[u8]) -> std::io::Result<(Verdict, usize)> {
    let _guard = WRITE_LOCK.lock().unwrap_or_else(|p| p.into_inner());
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(e),
    };
    let entries = parse(&text);
    let v = verdict(&entries, token, key);
    if v != Verdict::Unknown {
        return Ok((v, 0));
    }
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)?;
    let mut line = String::new();
    if !text.is_empty() && !text.ends_with('\n') {
        line.push('\n');
    }
    line.push_str(&format!("{token} {}\n", key_text(key)));
    f.write_all(line.as_bytes())?;
    f.sync_data()?;
    let at = text.lines().count() + 1;
    Ok((Verdict::Known, at))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn blob(kind: &str, body: &[u8]) -> Vec<u8> {
        let mut b = (kind.len() as u32).to_be_bytes().to_vec();
        b.extend_from_slice(kind.as_bytes());
        b.extend_from_slice(body);
        b
    }

    fn b64(b: &[u8]) -> String {
        base64::engine::general_purpose::STANDARD.encode(b)
    }

    #[test]
    fn plain_patterns_ports_and_negation() {
        let k1 = blob("ssh-ed25519", b"one");
        let k2 = blob("ssh-ed25519", b"two");
        let text = format!(
            "# comment\n\nsw1,10.0.0.1 ssh-ed25519 {}\n[sw2]:2222 ssh-ed25519 {}\n*.lab,!bad.lab ssh-ed25519 {}\n",
            b64(&k1),
            b64(&k2),
            b64(&k1)
        );
        let e = parse(&text);
        assert_eq!(e.len(), 3);
        assert_eq!(e[0].line, 3);
        assert_eq!(verdict(&e, "sw1", &k1), Verdict::Known);
        assert_eq!(verdict(&e, "10.0.0.1", &k1), Verdict::Known);
        assert_eq!(verdict(&e, &host_token("SW2", 2222), &k2), Verdict::Known);
        assert_eq!(verdict(&e, "sw2", &k2), Verdict::Unknown);
        assert_eq!(verdict(&e, "x.lab", &k1), Verdict::Known);
        assert_eq!(verdict(&e, "bad.lab", &k1), Verdict::Unknown);
        match verdict(&e, "sw1", &k2) {
            Verdict::Changed(old) => assert_eq!(old.line, 3),
            v => panic!("{v:?}"),
        }
        // Another type than the known one is a change too.
        let rsa = blob("ssh-rsa", b"r");
        assert!(matches!(verdict(&e, "sw1", &rsa), Verdict::Changed(_)));
        assert_eq!(known_types(&e, "sw1"), ["ssh-ed25519"]);
    }

    #[test]
    fn hashed_names_match_like_openssh() {
        // `ssh-keygen -H` of "[127.0.0.1]:2222" with this salt.
        let salt = b"0123456789abcdefghij";
        let mut mac = Hmac::<sha1::Sha1>::new_from_slice(salt).unwrap();
        mac.update(b"[127.0.0.1]:2222");
        let hash = mac.finalize().into_bytes();
        let k = blob("ssh-ed25519", b"k");
        let text = format!("|1|{}|{} ssh-ed25519 {}\n", b64(salt), b64(&hash), b64(&k));
        let e = parse(&text);
        assert_eq!(verdict(&e, "[127.0.0.1]:2222", &k), Verdict::Known);
        assert_eq!(verdict(&e, "127.0.0.1", &k), Verdict::Unknown);
    }

    #[test]
    fn revoked_keys_and_records() {
        let k = blob("ssh-ed25519", b"k");
        let text = format!("@revoked * ssh-ed25519 {}\n", b64(&k));
        assert!(matches!(
            verdict(&parse(&text), "h", &k),
            Verdict::Revoked(_)
        ));
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("known_hosts");
        std::fs::write(&path, "# no newline at the end").unwrap();
        let (v, line) = record(&path, "[h]:2200", &k).unwrap();
        assert_eq!((v, line), (Verdict::Known, 2));
        let e = load(&path).unwrap();
        assert_eq!(verdict(&e, "[h]:2200", &k), Verdict::Known);
        // Recorded once only.
        let (v, line) = record(&path, "[h]:2200", &k).unwrap();
        assert_eq!((v, line), (Verdict::Known, 0));
        assert_eq!(load(&path).unwrap().len(), 1);
        assert!(fingerprint(&k).starts_with("SHA256:"));
    }
}
