//! TLS with rustls: certificate and key files, optional client CA for mTLS.

use std::path::Path;
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig};

use crate::config::TlsConfig;

/// Why TLS could not be set up; names the file.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A PEM file could not be read or holds nothing usable.
    #[error("tls.{field} {path}: {message}")]
    File {
        /// `cert`, `key` or `client_ca`.
        field: &'static str,
        /// The file.
        path: String,
        /// What was wrong.
        message: String,
    },
    /// rustls refused the combination.
    #[error("tls: {0}")]
    Rustls(String),
}

fn file_err(field: &'static str, path: &Path, message: impl ToString) -> TlsError {
    TlsError::File {
        field,
        path: path.display().to_string(),
        message: message.to_string(),
    }
}

fn load_certs(field: &'static str, path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| file_err(field, path, e))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| file_err(field, path, e))?;
    if certs.is_empty() {
        return Err(file_err(field, path, "no PEM certificate found"));
    }
    Ok(certs)
}

/// Builds the rustls server configuration (HTTP/1.1 and HTTP/2 by ALPN).
pub fn server_config(tls: &TlsConfig) -> Result<Arc<ServerConfig>, TlsError> {
    let certs = load_certs("cert", &tls.cert)?;
    let key = PrivateKeyDer::from_pem_file(&tls.key).map_err(|e| file_err("key", &tls.key, e))?;
    let builder = ServerConfig::builder();
    let builder = match &tls.client_ca {
        None => builder.with_no_client_auth(),
        Some(ca) => {
            let mut roots = RootCertStore::empty();
            for cert in load_certs("client_ca", ca)? {
                roots.add(cert).map_err(|e| file_err("client_ca", ca, e))?;
            }
            let verifier = WebPkiClientVerifier::builder(Arc::new(roots))
                .build()
                .map_err(|e| file_err("client_ca", ca, e))?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let mut config = builder
        .with_single_cert(certs, key)
        .map_err(|e| TlsError::Rustls(format!("certificate and key do not fit together: {e}")))?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}
