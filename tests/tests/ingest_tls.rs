//! TLS and mutual TLS with certificates made by rcgen.

use std::time::Duration;

use logops_e2e::events::batch_lines;
use logops_e2e::pki::TestPki;
use logops_e2e::{
    BatchRequest, Client, ClientTls, Encoding, IngestHarness, IngestOptions, IngestTls, TenantSpec,
};

fn client(h: &IngestHarness, ca_pem: &str, identity: Option<String>) -> Client {
    Client::new(
        &h.url(),
        Some(&ClientTls {
            ca_pem: ca_pem.to_owned(),
            identity_pem: identity,
        }),
        Duration::from_secs(30),
    )
    .expect("client")
}

#[test]
fn https_with_a_trusted_ca() {
    let pki = TestPki::generate().unwrap();
    let h = IngestHarness::start(
        IngestOptions::new()
            .tenant(TenantSpec::new("acme"))
            .tls(IngestTls::from_pki(&pki, false)),
    );
    assert!(h.url().starts_with("https://"), "{}", h.url());
    let key = h.tenant("acme").key.clone();
    let lines = batch_lines("tls-agent", 1, 5);

    let c = client(&h, &pki.ca_pem, None);
    let r = c.post_batch(&key, "tls-agent", 1, &lines, Encoding::Zstd);
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(c.query_all(&key, "/v1/logs", &[]), lines);

    // A client that does not trust the CA refuses the server.
    let other = TestPki::generate().unwrap();
    let untrusting = client(&h, &other.ca_pem, None);
    let e = untrusting.send(&BatchRequest::new(
        &key,
        "tls-agent",
        2,
        &lines,
        Encoding::Zstd,
    ));
    assert!(e.is_err(), "a client trusting another CA connected: {e:?}");

    // Plain HTTP to the TLS port gets no answer.
    let plain = Client::new(
        &h.url().replace("https://", "http://"),
        None,
        Duration::from_secs(10),
    )
    .unwrap();
    match plain.try_get(None, "/healthz", &[]) {
        Err(_) => {}
        Ok(r) => assert_ne!(r.status, 200, "plain HTTP was served on the TLS port"),
    }
}

#[test]
fn mtls_requires_a_client_certificate_from_the_ca() {
    let pki = TestPki::generate().unwrap();
    let h = IngestHarness::start(
        IngestOptions::new()
            .tenant(TenantSpec::new("acme"))
            .tls(IngestTls::from_pki(&pki, true)),
    );
    let key = h.tenant("acme").key.clone();
    let lines = batch_lines("mtls-agent", 1, 3);
    let req = BatchRequest::new(&key, "mtls-agent", 1, &lines, Encoding::Zstd);

    // No client certificate: the handshake fails.
    let anonymous = client(&h, &pki.ca_pem, None);
    let e = anonymous.send(&req);
    assert!(e.is_err(), "no client certificate, yet: {e:?}");
    assert!(
        anonymous.try_get(None, "/healthz", &[]).is_err(),
        "healthz without a client certificate"
    );

    // A certificate from another CA: refused too.
    let stranger = client(&h, &pki.ca_pem, Some(pki.stranger.identity_pem()));
    let e = stranger.send(&req);
    assert!(
        e.is_err(),
        "a client certificate from an unrelated CA was accepted: {e:?}"
    );

    // A certificate signed by the CA: accepted.
    let agent = client(&h, &pki.ca_pem, Some(pki.client.identity_pem()));
    let r = agent
        .send(&req)
        .expect("mTLS with a certificate from the CA");
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(agent.query_all(&key, "/v1/logs", &[]), lines);
    // The API key is still required over mTLS.
    let r = agent
        .send(&BatchRequest::raw(
            None,
            "mtls-agent",
            2,
            req.body.clone(),
            Some("zstd"),
        ))
        .unwrap();
    assert_eq!(r.status, 401, "{}", r.body);
}
