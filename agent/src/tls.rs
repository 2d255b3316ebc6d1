//! The shipper's TLS: one rustls client configuration (the platform's roots plus
//! `ship.ca_file`, the client certificate of `ship.client_cert`/`client_key`), used by the
//! HTTP client, and the diagnosis of a connection the ingest ended over TLS.
//!
//! Why a diagnosis: with TLS 1.3 the server checks the client certificate only after the
//! client has finished its handshake, so a refused (or missing) certificate arrives as an
//! alert while the request is being written or its answer read. The HTTP client then
//! reports `connection closed` or `broken pipe` (HTTP/2 drops the connection's error; the
//! server's close can reset the connection before the alert is read), and the operator
//! learns nothing. [`refusal_in_chain`] finds a TLS error where the chain still carries
//! one; otherwise [`probe`] opens one TLS connection with the same configuration, sends
//! nothing and reads what the server says: an alert is named.

use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::{AlertDescription, ClientConfig};
use tokio::io::AsyncReadExt;

use crate::config::ShipConfig;

/// Why the TLS configuration could not be built.
#[derive(Debug, thiserror::Error)]
pub enum TlsConfigError {
    /// A file could not be read.
    #[error("reading {key} {path}: {source}")]
    Read {
        /// The configuration key naming the file.
        key: &'static str,
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// A file holds no usable PEM item.
    #[error("{key} {path}: {what}")]
    Pem {
        /// The configuration key naming the file.
        key: &'static str,
        /// The file.
        path: String,
        /// What is wrong.
        what: String,
    },
    /// rustls refused the roots or the certificate and key.
    #[error("{what}: {source}")]
    Rustls {
        /// What was being set up.
        what: &'static str,
        /// rustls' error.
        source: rustls::Error,
    },
}

/// Reads a file named by the configuration key `key`.
pub(crate) fn read(key: &'static str, path: &std::path::Path) -> Result<Vec<u8>, TlsConfigError> {
    std::fs::read(path).map_err(|source| TlsConfigError::Read {
        key,
        path: path.display().to_string(),
        source,
    })
}

/// The PEM certificates of a file named by the configuration key `key` (at least one).
pub(crate) fn certs(
    key: &'static str,
    path: &std::path::Path,
) -> Result<Vec<CertificateDer<'static>>, TlsConfigError> {
    let pem_err = |what: String| TlsConfigError::Pem {
        key,
        path: path.display().to_string(),
        what,
    };
    let pem = read(key, path)?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| pem_err(format!("not PEM certificates: {e}")))?;
    if certs.is_empty() {
        return Err(pem_err("holds no PEM certificate".into()));
    }
    Ok(certs)
}

/// The PEM private key of a file named by the configuration key `key`.
pub(crate) fn private_key(
    key: &'static str,
    path: &std::path::Path,
) -> Result<PrivateKeyDer<'static>, TlsConfigError> {
    let pem = read(key, path)?;
    PrivateKeyDer::from_pem_slice(&pem).map_err(|e| TlsConfigError::Pem {
        key,
        path: path.display().to_string(),
        what: format!("no PEM private key: {e}"),
    })
}

/// The client configuration of `[ship]`: what the HTTP client uses, and [`probe`] too.
///
/// Like reqwest's own: aws-lc-rs, the platform's verifier (system roots) with
/// `ca_file`'s certificates added, ALPN h2 and http/1.1.
pub fn client_config(cfg: &ShipConfig) -> Result<Arc<ClientConfig>, TlsConfigError> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let extra = match &cfg.ca_file {
        Some(p) => certs("ship.ca_file", p)?,
        None => Vec::new(),
    };
    let verifier =
        rustls_platform_verifier::Verifier::new_with_extra_roots(extra, provider.clone()).map_err(
            |source| TlsConfigError::Rustls {
                what: "the certificate verifier (ship.ca_file)",
                source,
            },
        )?;
    let builder = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|source| TlsConfigError::Rustls {
            what: "TLS versions",
            source,
        })?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier));
    let mut config = match (&cfg.client_cert, &cfg.client_key) {
        (Some(cert), Some(key)) => {
            let chain = certs("ship.client_cert", cert)?;
            let private = private_key("ship.client_key", key)?;
            builder
                .with_client_auth_cert(chain, private)
                .map_err(|source| TlsConfigError::Rustls {
                    what: "ship.client_cert/client_key",
                    source,
                })?
        }
        _ => builder.with_no_client_auth(),
    };
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// The RFC 8446 name of an alert about the peer's certificate (the ones a server sends when
/// it refuses or misses the client's), `None` for other alerts.
fn certificate_alert(a: AlertDescription) -> Option<&'static str> {
    Some(match a {
        AlertDescription::CertificateRequired => "certificate_required",
        AlertDescription::BadCertificate => "bad_certificate",
        AlertDescription::UnsupportedCertificate => "unsupported_certificate",
        AlertDescription::CertificateRevoked => "certificate_revoked",
        AlertDescription::CertificateExpired => "certificate_expired",
        AlertDescription::CertificateUnknown => "certificate_unknown",
        AlertDescription::UnknownCA => "unknown_ca",
        AlertDescription::AccessDenied => "access_denied",
        AlertDescription::DecryptError => "decrypt_error",
        _ => return None,
    })
}

/// What a TLS error means for the operator, naming the configuration key to look at.
/// `has_client_cert`: whether `ship.client_cert` is set.
pub fn describe(e: &rustls::Error, has_client_cert: bool) -> String {
    match e {
        rustls::Error::AlertReceived(a) => match certificate_alert(*a) {
            Some(name) if has_client_cert => format!(
                "the ingest refused our client certificate (TLS alert {name}): check ship.client_cert / ship.client_key against the CA the ingest trusts for clients"
            ),
            Some(name) => format!(
                "the ingest refused the connection without a client certificate (TLS alert {name}): it requires one; set ship.client_cert and ship.client_key"
            ),
            None => format!("the ingest ended the TLS handshake (TLS alert {a:?})"),
        },
        rustls::Error::InvalidCertificate(c) => format!(
            "the ingest's TLS certificate is not trusted ({c:?}): check ship.ca_file and the URL's host name"
        ),
        other => format!("TLS: {other}"),
    }
}

/// The TLS error somewhere in an error's source chain (rustls' own, or inside an I/O
/// error), if any.
pub fn refusal_in_chain(e: &(dyn std::error::Error + 'static)) -> Option<rustls::Error> {
    let mut cur = Some(e);
    while let Some(c) = cur {
        if let Some(t) = c.downcast_ref::<rustls::Error>() {
            return Some(t.clone());
        }
        if let Some(t) = c
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
            .and_then(|inner| inner.downcast_ref::<rustls::Error>())
        {
            return Some(t.clone());
        }
        cur = c.source();
    }
    None
}

/// How long [`probe`] waits for the server to speak after the handshake.
const PROBE_LISTEN: Duration = Duration::from_secs(1);

/// Opens one TLS connection to `url` with `config`, sends nothing, and returns the TLS
/// error the server answers with (within `timeout` to connect and [`PROBE_LISTEN`] after
/// the handshake). `None`: no TLS refusal (or not https, or the server cannot be reached:
/// the send's own error says that).
pub async fn probe(
    config: Arc<ClientConfig>,
    url: &reqwest::Url,
    timeout: Duration,
) -> Option<rustls::Error> {
    if url.scheme() != "https" {
        return None;
    }
    let host = url
        .host_str()?
        .trim_start_matches('[')
        .trim_end_matches(']');
    let port = url.port_or_known_default()?;
    let name = ServerName::try_from(host.to_owned()).ok()?;
    let connector = tokio_rustls::TlsConnector::from(config);
    let attempt = async {
        let tcp = tokio::net::TcpStream::connect((host, port)).await.ok()?;
        let mut tls = match connector.connect(name, tcp).await {
            Ok(s) => s,
            Err(e) => return refusal_in_chain(&e),
        };
        // Nothing is written, so the server's close cannot turn into a reset that would
        // discard its alert.
        let mut byte = [0u8; 1];
        match tokio::time::timeout(PROBE_LISTEN, tls.read(&mut byte)).await {
            Ok(Err(e)) => refusal_in_chain(&e),
            _ => None,
        }
    };
    tokio::time::timeout(timeout + PROBE_LISTEN, attempt)
        .await
        .ok()
        .flatten()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn certificate_alerts_name_the_configuration_keys() {
        let e = rustls::Error::AlertReceived(AlertDescription::CertificateRequired);
        let without = describe(&e, false);
        assert!(
            without.contains("TLS alert certificate_required")
                && without.contains("set ship.client_cert"),
            "{without}"
        );
        let e = rustls::Error::AlertReceived(AlertDescription::UnknownCA);
        let with = describe(&e, true);
        assert!(
            with.contains("refused our client certificate (TLS alert unknown_ca)"),
            "{with}"
        );
        let e = rustls::Error::AlertReceived(AlertDescription::ProtocolVersion);
        assert!(describe(&e, true).contains("ended the TLS handshake"));
    }

    #[test]
    fn a_tls_error_is_found_inside_io_errors() {
        let inner = rustls::Error::AlertReceived(AlertDescription::CertificateRequired);
        let io = std::io::Error::new(std::io::ErrorKind::InvalidData, inner.clone());
        #[derive(Debug, thiserror::Error)]
        #[error("outer")]
        struct Outer(#[source] std::io::Error);
        assert_eq!(refusal_in_chain(&Outer(io)), Some(inner));
        let plain = std::io::Error::new(std::io::ErrorKind::BrokenPipe, "broken pipe");
        assert_eq!(refusal_in_chain(&Outer(plain)), None);
    }
}
