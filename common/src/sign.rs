//! Optional HMAC-SHA256 request signing.
//!
//! The agent sends `X-LogOps-Timestamp: <unix seconds>` and
//! `X-LogOps-Signature: v1=<hex HMAC-SHA256(secret, "<timestamp>." + body)>` where body is
//! the request body exactly as sent (compressed). The ingest recomputes it, compares in
//! constant time and rejects timestamps outside its replay window.

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

/// `X-LogOps-Timestamp`: Unix seconds when the request was signed.
pub const TIMESTAMP_HEADER: &str = "x-logops-timestamp";
/// `X-LogOps-Signature`: `v1=<64 hex digits>`.
pub const SIGNATURE_HEADER: &str = "x-logops-signature";

type HmacSha256 = Hmac<Sha256>;

fn mac(secret: &[u8], timestamp: i64, body: &[u8]) -> HmacSha256 {
    let mut mac = HmacSha256::new_from_slice(secret).expect("HMAC accepts keys of any length");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    mac
}

/// The `X-LogOps-Signature` value for a body signed at `timestamp` (Unix seconds).
pub fn signature(secret: &[u8], timestamp: i64, body: &[u8]) -> String {
    format!(
        "v1={}",
        hex::encode(mac(secret, timestamp, body).finalize().into_bytes())
    )
}

/// Why a signature was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    /// A header is missing.
    #[error("missing {0} header")]
    Missing(&'static str),
    /// The timestamp header is not an integer.
    #[error("X-LogOps-Timestamp is not Unix seconds")]
    BadTimestamp,
    /// The timestamp is outside the replay window.
    #[error("timestamp is {skew} s away from the server's clock (window ±{window} s)")]
    OutsideWindow {
        /// Request time minus server time, in seconds.
        skew: i64,
        /// The allowed window.
        window: u64,
    },
    /// The signature header is not `v1=<64 hex digits>`.
    #[error("X-LogOps-Signature is not v1=<64 hex digits>")]
    Malformed,
    /// The signature does not match the body.
    #[error("signature does not match the body")]
    Mismatch,
}

/// Verifies a signature (constant-time comparison) and the replay window.
pub fn verify(
    secret: &[u8],
    timestamp: Option<&str>,
    signature: Option<&str>,
    body: &[u8],
    now: i64,
    window_secs: u64,
) -> Result<(), SignatureError> {
    let ts = timestamp.ok_or(SignatureError::Missing("X-LogOps-Timestamp"))?;
    let sig = signature.ok_or(SignatureError::Missing("X-LogOps-Signature"))?;
    let ts: i64 = ts
        .trim()
        .parse()
        .map_err(|_| SignatureError::BadTimestamp)?;
    let skew = ts.saturating_sub(now);
    if skew.unsigned_abs() > window_secs {
        return Err(SignatureError::OutsideWindow {
            skew,
            window: window_secs,
        });
    }
    let hexsig = sig
        .trim()
        .strip_prefix("v1=")
        .ok_or(SignatureError::Malformed)?;
    let bytes = hex::decode(hexsig).map_err(|_| SignatureError::Malformed)?;
    if bytes.len() != 32 {
        return Err(SignatureError::Malformed);
    }
    mac(secret, ts, body)
        .verify_slice(&bytes)
        .map_err(|_| SignatureError::Mismatch)
}

/// SHA-256 of an API key as 64 lowercase hex digits: what the ingest's config stores.
pub fn api_key_sha256(key: &str) -> String {
    hex::encode(Sha256::digest(key.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signature_verifies_and_any_change_breaks_it() {
        let s = signature(b"secret", 1000, b"body");
        assert_eq!(
            verify(b"secret", Some("1000"), Some(&s), b"body", 1010, 300),
            Ok(())
        );
        assert_eq!(
            verify(b"secret", Some("1000"), Some(&s), b"bodx", 1010, 300),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify(b"other", Some("1000"), Some(&s), b"body", 1010, 300),
            Err(SignatureError::Mismatch)
        );
        // The timestamp is signed too: moving it breaks the signature.
        assert_eq!(
            verify(b"secret", Some("1001"), Some(&s), b"body", 1010, 300),
            Err(SignatureError::Mismatch)
        );
    }

    #[test]
    fn old_and_future_timestamps_are_replays() {
        let s = signature(b"k", 1000, b"b");
        assert!(matches!(
            verify(b"k", Some("1000"), Some(&s), b"b", 1301, 300),
            Err(SignatureError::OutsideWindow { skew: -301, .. })
        ));
        assert!(matches!(
            verify(b"k", Some("1000"), Some(&s), b"b", 699, 300),
            Err(SignatureError::OutsideWindow { skew: 301, .. })
        ));
    }

    #[test]
    fn malformed_headers_are_named() {
        assert_eq!(
            verify(b"k", None, Some("v1=00"), b"", 0, 300),
            Err(SignatureError::Missing("X-LogOps-Timestamp"))
        );
        assert_eq!(
            verify(b"k", Some("0"), Some("sha256=00"), b"", 0, 300),
            Err(SignatureError::Malformed)
        );
        assert_eq!(
            verify(b"k", Some("soon"), Some("v1=00"), b"", 0, 300),
            Err(SignatureError::BadTimestamp)
        );
    }

    #[test]
    fn key_hash_is_sha256_hex() {
        assert_eq!(
            api_key_sha256("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
