//! Who is calling: API keys (Bearer) mapped to tenants and scopes, and HMAC signatures.
//!
//! The configuration holds only SHA-256 hashes of keys. A presented key is hashed and looked
//! up; the key itself is never logged or stored.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use logops_common::sign::{self, SignatureError};
use sha2::{Digest, Sha256};

use crate::config::TenantConfig;

/// What a key may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// Post batches and query.
    Write,
    /// Query only.
    Read,
}

/// An authenticated caller.
#[derive(Debug, Clone)]
pub struct Caller {
    /// The tenant the key belongs to.
    pub tenant: Arc<str>,
    /// What the key may do.
    pub scope: Scope,
    /// Index of the tenant in [`KeyTable::tenants`].
    pub tenant_index: usize,
}

/// Why a request was refused (401 or 403). The text goes into the audit log and the answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// No `Authorization: Bearer` header.
    #[error("missing Authorization: Bearer <api key> header")]
    MissingKey,
    /// The header is not `Bearer <key>`.
    #[error("Authorization header is not `Bearer <api key>`")]
    MalformedHeader,
    /// No tenant has this key.
    #[error("unknown API key")]
    UnknownKey,
    /// The key is valid but not for what was asked (403).
    #[error("{0}")]
    Forbidden(String),
    /// The HMAC signature is missing, stale or wrong.
    #[error("bad signature: {0}")]
    Signature(#[from] SignatureError),
}

impl AuthError {
    /// The HTTP status for this refusal.
    pub fn status(&self) -> u16 {
        match self {
            AuthError::Forbidden(_) => 403,
            _ => 401,
        }
    }

    /// A short machine-readable reason (metrics label, audit log).
    pub fn reason(&self) -> &'static str {
        match self {
            AuthError::MissingKey => "missing_key",
            AuthError::MalformedHeader => "malformed_header",
            AuthError::UnknownKey => "unknown_key",
            AuthError::Forbidden(_) => "forbidden",
            AuthError::Signature(SignatureError::OutsideWindow { .. }) => "signature_replay_window",
            AuthError::Signature(SignatureError::Mismatch) => "signature_mismatch",
            AuthError::Signature(_) => "signature_malformed",
        }
    }
}

/// One tenant's auth material.
#[derive(Debug)]
pub struct TenantAuth {
    /// The tenant name.
    pub name: Arc<str>,
    /// HMAC secret; when set, writes must be signed.
    pub hmac_secret: Option<Vec<u8>>,
}

/// Keys of all tenants.
#[derive(Debug)]
pub struct KeyTable {
    by_hash: HashMap<[u8; 32], (usize, Scope)>,
    /// Tenants in configuration order.
    pub tenants: Vec<TenantAuth>,
}

/// A tenant's HMAC secret could not be loaded.
#[derive(Debug, thiserror::Error)]
#[error("tenant `{tenant}`: {message}")]
pub struct SecretError {
    tenant: String,
    message: String,
}

impl KeyTable {
    /// Builds the table from the (already checked) tenant configuration, reading HMAC secrets
    /// from their files or environment variables.
    pub fn new(tenants: &[TenantConfig]) -> Result<KeyTable, SecretError> {
        let mut by_hash = HashMap::new();
        let mut out = Vec::with_capacity(tenants.len());
        for (i, t) in tenants.iter().enumerate() {
            for (list, scope) in [
                (&t.api_key_sha256, Scope::Write),
                (&t.read_key_sha256, Scope::Read),
            ] {
                for h in list {
                    let mut hash = [0u8; 32];
                    hex::decode_to_slice(h, &mut hash).map_err(|e| SecretError {
                        tenant: t.name.clone(),
                        message: format!("key hash `{h}`: {e}"),
                    })?;
                    by_hash.insert(hash, (i, scope));
                }
            }
            let hmac_secret = load_secret(t).map_err(|message| SecretError {
                tenant: t.name.clone(),
                message,
            })?;
            out.push(TenantAuth {
                name: Arc::from(t.name.as_str()),
                hmac_secret,
            });
        }
        Ok(KeyTable {
            by_hash,
            tenants: out,
        })
    }

    /// Authenticates an `Authorization` header value.
    pub fn authenticate(&self, header: Option<&str>) -> Result<Caller, AuthError> {
        let header = header.ok_or(AuthError::MissingKey)?;
        let key = header
            .strip_prefix("Bearer ")
            .or_else(|| header.strip_prefix("bearer "))
            .map(str::trim)
            .filter(|k| !k.is_empty())
            .ok_or(AuthError::MalformedHeader)?;
        let hash: [u8; 32] = Sha256::digest(key.as_bytes()).into();
        let &(tenant_index, scope) = self.by_hash.get(&hash).ok_or(AuthError::UnknownKey)?;
        Ok(Caller {
            tenant: self.tenants[tenant_index].name.clone(),
            scope,
            tenant_index,
        })
    }

    /// Checks that `caller` may act for `requested` tenant (when the request names one) with
    /// `needed` scope.
    pub fn authorize(
        &self,
        caller: &Caller,
        requested: Option<&str>,
        needed: Scope,
    ) -> Result<(), AuthError> {
        if let Some(t) = requested {
            if t != &*caller.tenant {
                return Err(AuthError::Forbidden(format!(
                    "this key is not allowed for tenant `{t}`"
                )));
            }
        }
        if needed == Scope::Write && caller.scope == Scope::Read {
            return Err(AuthError::Forbidden("this key may only read".into()));
        }
        Ok(())
    }

    /// Verifies the HMAC signature of a write when the caller's tenant requires one.
    pub fn verify_signature(
        &self,
        caller: &Caller,
        timestamp: Option<&str>,
        signature: Option<&str>,
        body: &[u8],
        now: i64,
        window_secs: u64,
    ) -> Result<(), AuthError> {
        match &self.tenants[caller.tenant_index].hmac_secret {
            None => Ok(()),
            Some(secret) => Ok(sign::verify(
                secret,
                timestamp,
                signature,
                body,
                now,
                window_secs,
            )?),
        }
    }
}

fn load_secret(t: &TenantConfig) -> Result<Option<Vec<u8>>, String> {
    let secret = if let Some(path) = &t.hmac_secret_file {
        Some(read_secret_file(path)?)
    } else if let Some(var) = &t.hmac_secret_env {
        Some(
            std::env::var(var)
                .map_err(|_| format!("hmac_secret_env: environment variable {var} is not set"))?,
        )
    } else {
        None
    };
    match secret {
        Some(s) if s.trim().is_empty() => Err("the HMAC secret is empty".into()),
        Some(s) => Ok(Some(s.trim().as_bytes().to_vec())),
        None => Ok(None),
    }
}

fn read_secret_file(path: &Path) -> Result<String, String> {
    std::fs::read_to_string(path).map_err(|e| format!("hmac_secret_file {}: {e}", path.display()))
}

/// A new random API key: `lo_` + 40 base32 characters (200 bits).
pub fn generate_key() -> String {
    const ALPHABET: &[u8; 32] = b"abcdefghijklmnopqrstuvwxyz234567";
    let mut bytes = [0u8; 40];
    getrandom::fill(&mut bytes).expect("the OS random source works");
    let mut key = String::from("lo_");
    key.extend(bytes.iter().map(|b| ALPHABET[(b & 31) as usize] as char));
    key
}

#[cfg(test)]
mod tests {
    use super::*;
    use logops_common::sign::api_key_sha256;

    fn table() -> KeyTable {
        let cfg: crate::config::Config = toml::from_str(&format!(
            "[[tenant]]\nname = \"a\"\napi_key_sha256 = [\"{}\"]\nread_key_sha256 = [\"{}\"]\n\
             [[tenant]]\nname = \"b\"\napi_key_sha256 = [\"{}\"]\n",
            api_key_sha256("key-a"),
            api_key_sha256("read-a"),
            api_key_sha256("key-b")
        ))
        .unwrap();
        KeyTable::new(&cfg.tenants).unwrap()
    }

    #[test]
    fn keys_map_to_tenants_and_scopes() {
        let t = table();
        let c = t.authenticate(Some("Bearer key-a")).unwrap();
        assert_eq!((&*c.tenant, c.scope), ("a", Scope::Write));
        let c = t.authenticate(Some("Bearer read-a")).unwrap();
        assert_eq!(c.scope, Scope::Read);
        assert_eq!(
            t.authorize(&c, None, Scope::Write).unwrap_err().status(),
            403
        );
        let c = t.authenticate(Some("Bearer key-b")).unwrap();
        assert_eq!(
            t.authorize(&c, Some("a"), Scope::Write)
                .unwrap_err()
                .status(),
            403
        );
        t.authorize(&c, Some("b"), Scope::Write).unwrap();
    }

    #[test]
    fn missing_and_wrong_keys_are_401() {
        let t = table();
        assert_eq!(t.authenticate(None).unwrap_err(), AuthError::MissingKey);
        assert_eq!(
            t.authenticate(Some("Basic x")).unwrap_err(),
            AuthError::MalformedHeader
        );
        assert_eq!(
            t.authenticate(Some("Bearer nope")).unwrap_err(),
            AuthError::UnknownKey
        );
    }

    #[test]
    fn generated_keys_are_random_and_long() {
        let (a, b) = (generate_key(), generate_key());
        assert_ne!(a, b);
        assert_eq!(a.len(), 43);
    }
}
