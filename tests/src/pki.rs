//! Throw-away TLS material for tests: a CA, a server certificate for `127.0.0.1` and
//! `localhost`, a client certificate signed by the CA, and one signed by an unrelated CA.

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};

/// A certificate and its private key, PEM encoded.
#[derive(Debug, Clone)]
pub struct CertAndKey {
    /// The certificate (PEM).
    pub cert_pem: String,
    /// The PKCS#8 private key (PEM).
    pub key_pem: String,
}

impl CertAndKey {
    /// Certificate and key in one PEM bundle (what `reqwest::Identity::from_pem` reads).
    pub fn identity_pem(&self) -> String {
        format!("{}{}", self.cert_pem, self.key_pem)
    }
}

/// Test PKI: generated fresh for each call of [`TestPki::generate`].
#[derive(Debug, Clone)]
pub struct TestPki {
    /// The CA certificate (PEM): trusted by clients, and the `client_ca` for mTLS.
    pub ca_pem: String,
    /// Server certificate (SANs `127.0.0.1`, `localhost`) signed by the CA.
    pub server: CertAndKey,
    /// Client certificate (clientAuth) signed by the CA.
    pub client: CertAndKey,
    /// Client certificate signed by an unrelated CA: must be refused under mTLS.
    pub stranger: CertAndKey,
}

fn ca(name: &str) -> anyhow::Result<(String, Issuer<'static, KeyPair>)> {
    let mut params = CertificateParams::new(Vec::<String>::new())?;
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name.push(DnType::CommonName, name);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let key = KeyPair::generate()?;
    let cert = params.self_signed(&key)?;
    Ok((cert.pem(), Issuer::new(params, key)))
}

fn leaf(
    issuer: &Issuer<'static, KeyPair>,
    name: &str,
    sans: &[&str],
    usage: ExtendedKeyUsagePurpose,
) -> anyhow::Result<CertAndKey> {
    let mut params =
        CertificateParams::new(sans.iter().map(|s| s.to_string()).collect::<Vec<_>>())?;
    params.distinguished_name.push(DnType::CommonName, name);
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![usage];
    params.use_authority_key_identifier_extension = true;
    let key = KeyPair::generate()?;
    let cert = params.signed_by(&key, issuer)?;
    Ok(CertAndKey {
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
    })
}

impl TestPki {
    /// Generates a CA, a server certificate, a client certificate and a stranger's client
    /// certificate.
    pub fn generate() -> anyhow::Result<TestPki> {
        let (ca_pem, issuer) = ca("logops-e2e test CA")?;
        let (_, other) = ca("unrelated CA")?;
        Ok(TestPki {
            ca_pem,
            server: leaf(
                &issuer,
                "logops-ingest",
                &["127.0.0.1", "localhost"],
                ExtendedKeyUsagePurpose::ServerAuth,
            )?,
            client: leaf(
                &issuer,
                "agent-01",
                &["agent-01.example"],
                ExtendedKeyUsagePurpose::ClientAuth,
            )?,
            stranger: leaf(
                &other,
                "stranger",
                &["stranger.example"],
                ExtendedKeyUsagePurpose::ClientAuth,
            )?,
        })
    }
}
