//! The TLS listener's rustls configuration (RFC 5425): the server certificate and key of
//! `syslog.tls`, and with `client_ca` a required client certificate signed by that CA.

use std::sync::Arc;

use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig};
use tokio_rustls::TlsAcceptor;

use crate::config::SyslogTlsConfig;
use crate::tls::{certs, private_key, TlsConfigError};

/// The acceptor for `cfg`; errors name the configuration key and the file.
pub fn acceptor(cfg: &SyslogTlsConfig) -> Result<TlsAcceptor, TlsConfigError> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let chain = certs("syslog.tls.cert", &cfg.cert)?;
    let key = private_key("syslog.tls.key", &cfg.key)?;
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|source| TlsConfigError::Rustls {
            what: "TLS versions",
            source,
        })?;
    let builder = match &cfg.client_ca {
        Some(ca) => {
            let mut roots = RootCertStore::empty();
            for c in certs("syslog.tls.client_ca", ca)? {
                roots.add(c).map_err(|source| TlsConfigError::Rustls {
                    what: "syslog.tls.client_ca",
                    source,
                })?;
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .map_err(|e| TlsConfigError::Pem {
                    key: "syslog.tls.client_ca",
                    path: ca.display().to_string(),
                    what: e.to_string(),
                })?;
            builder.with_client_cert_verifier(verifier)
        }
        None => builder.with_no_client_auth(),
    };
    let config = builder
        .with_single_cert(chain, key)
        .map_err(|source| TlsConfigError::Rustls {
            what: "syslog.tls.cert/key",
            source,
        })?;
    Ok(TlsAcceptor::from(Arc::new(config)))
}
