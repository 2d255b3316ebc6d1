//! Targets: an address, or a host name looked up again every round with the system's
//! resolver (`getaddrinfo`: /etc/hosts, DNS, ... as nsswitch.conf says).

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Semaphore;
use tokio::task::JoinSet;

/// Lookups running at once (each takes a blocking thread).
const CONCURRENT_LOOKUPS: usize = 16;

/// A lookup slower than this is a failure of this round.
pub const LOOKUP_TIMEOUT: Duration = Duration::from_secs(5);

/// One configured target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// An IPv4 or IPv6 address.
    Addr(IpAddr),
    /// A host name.
    Name(String),
}

impl Target {
    /// Parses a configured target (checked with [`check_target`] before).
    pub fn parse(s: &str) -> Target {
        let bare = s.strip_prefix('[').and_then(|x| x.strip_suffix(']'));
        match bare.unwrap_or(s).parse::<IpAddr>() {
            Ok(a) => Target::Addr(a),
            Err(_) => Target::Name(s.to_owned()),
        }
    }
}

/// Whether a configured target is an IP address or a syntactically valid host name
/// (RFC 1123 labels of letters, digits and hyphens; a trailing dot is allowed).
pub fn check_target(s: &str) -> Result<(), String> {
    if let Target::Addr(_) = Target::parse(s) {
        return Ok(());
    }
    let name = s.strip_suffix('.').unwrap_or(s);
    let label_ok = |l: &str| {
        !l.is_empty()
            && l.len() <= 63
            && !l.starts_with('-')
            && !l.ends_with('-')
            && l.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    };
    if name.is_empty() || name.len() > 253 || !name.split('.').all(label_ok) {
        return Err(format!(
            "`{s}` is neither an IP address nor a valid host name"
        ));
    }
    Ok(())
}

/// Why a name gave no address this round.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ResolveError {
    /// The resolver answered with an error (no such name, no address, ...).
    #[error("cannot resolve `{name}`: {error}")]
    Failed {
        /// The name.
        name: String,
        /// The resolver's error.
        error: String,
    },
    /// No answer within [`LOOKUP_TIMEOUT`].
    #[error("cannot resolve `{name}`: no answer within {}s", LOOKUP_TIMEOUT.as_secs())]
    Timeout {
        /// The name.
        name: String,
    },
}

/// Looks up every name, [`CONCURRENT_LOOKUPS`] at a time: for each, its first address in the
/// resolver's order (RFC 6724 preference), or why there is none. Results are in the order of
/// `names`.
pub async fn resolve_all(names: Vec<String>) -> Vec<Result<IpAddr, ResolveError>> {
    let permits = Arc::new(Semaphore::new(CONCURRENT_LOOKUPS));
    let mut set = JoinSet::new();
    for (i, name) in names.iter().cloned().enumerate() {
        let permits = permits.clone();
        set.spawn(async move {
            let _permit = permits.acquire_owned().await;
            (i, resolve(&name).await)
        });
    }
    let mut out: Vec<Option<Result<IpAddr, ResolveError>>> = vec![None; names.len()];
    while let Some(joined) = set.join_next().await {
        if let Ok((i, r)) = joined {
            out[i] = Some(r);
        }
    }
    out.into_iter()
        .zip(names)
        .map(|(r, name)| {
            r.unwrap_or_else(|| {
                Err(ResolveError::Failed {
                    name,
                    error: "the lookup task failed".into(),
                })
            })
        })
        .collect()
}

/// Looks up one name.
pub async fn resolve(name: &str) -> Result<IpAddr, ResolveError> {
    let lookup = tokio::net::lookup_host((name, 0));
    match tokio::time::timeout(LOOKUP_TIMEOUT, lookup).await {
        Err(_) => Err(ResolveError::Timeout { name: name.into() }),
        Ok(Err(e)) => Err(ResolveError::Failed {
            name: name.into(),
            error: e.to_string(),
        }),
        Ok(Ok(mut addrs)) => match addrs.next() {
            Some(a) => Ok(a.ip()),
            None => Err(ResolveError::Failed {
                name: name.into(),
                error: "no address".into(),
            }),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_parse_and_check() {
        assert_eq!(
            Target::parse("10.0.0.1"),
            Target::Addr("10.0.0.1".parse().unwrap())
        );
        assert_eq!(
            Target::parse("[2001:db8::1]"),
            Target::Addr("2001:db8::1".parse().unwrap())
        );
        assert_eq!(
            Target::parse("core-sw1.example.net"),
            Target::Name("core-sw1.example.net".into())
        );
        for ok in [
            "10.0.0.1",
            "2001:db8::1",
            "core-sw1.example.net",
            "localhost",
            "a.b.",
        ] {
            assert_eq!(check_target(ok), Ok(()), "{ok}");
        }
        for bad in [
            "",
            "a..b",
            "-a.b",
            "a b",
            "10.0.0.1:80",
            "x".repeat(64).as_str(),
        ] {
            assert!(check_target(bad).is_err(), "{bad}");
        }
    }

    #[tokio::test]
    async fn names_resolve_in_order_and_failures_are_values() {
        let got = resolve_all(vec![
            "localhost".into(),
            "no-such-host.invalid".into(),
            "localhost".into(),
        ])
        .await;
        assert!(got[0].as_ref().unwrap().is_loopback(), "{got:?}");
        assert!(
            matches!(&got[1], Err(ResolveError::Failed { name, .. } | ResolveError::Timeout { name }) if name == "no-such-host.invalid"),
            "{got:?}"
        );
        assert_eq!(got[0], got[2]);
    }
}
