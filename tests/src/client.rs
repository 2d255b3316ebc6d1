//! A small blocking HTTP(S) client for the ingest: post batches (zstd, gzip or identity,
//! optionally HMAC-signed) and query.

use std::io::Write;
use std::time::Duration;

use logops_common::batch::{Encoding, AGENT_HEADER, BATCH_HEADER, NEXT_HEADER, TENANT_HEADER};
use logops_common::sign::{self, SIGNATURE_HEADER, TIMESTAMP_HEADER};
use reqwest::header::HeaderMap;

use crate::events::ndjson;

/// An answer: status, headers and body text.
#[derive(Debug, Clone)]
pub struct Reply {
    /// HTTP status code.
    pub status: u16,
    /// Response headers.
    pub headers: HeaderMap,
    /// The body (lossy UTF-8).
    pub body: String,
}

impl Reply {
    /// The body parsed as JSON; panics with the body if it is not JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| {
            panic!(
                "expected a JSON answer (status {}), got {e}: {:?}",
                self.status, self.body
            )
        })
    }

    /// A header as text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The non-empty lines of the body, split at `\n` only (a `\r` stored in a row stays
    /// visible).
    pub fn lines(&self) -> Vec<String> {
        self.body
            .split('\n')
            .filter(|l| !l.is_empty())
            .map(str::to_owned)
            .collect()
    }
}

/// Client-side TLS: the CA to trust and optionally a client identity (mTLS).
#[derive(Debug, Clone)]
pub struct ClientTls {
    /// PEM CA certificate(s) to trust (only these).
    pub ca_pem: String,
    /// PEM client certificate + key to present, if any.
    pub identity_pem: Option<String>,
}

/// Compresses `data` with `encoding`.
pub fn compress(data: &[u8], encoding: Encoding) -> Vec<u8> {
    match encoding {
        Encoding::Identity => data.to_vec(),
        Encoding::Zstd => zstd::bulk::compress(data, 3).expect("zstd compression of a buffer"),
        Encoding::Gzip => {
            let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            enc.write_all(data).expect("gzip into a Vec");
            enc.finish().expect("gzip into a Vec")
        }
    }
}

/// A zstd body of one frame per part (each stating its size), each part's lines ending in
/// its line end: how an agent sends a batch of several buffered chunks. The ingest keeps a
/// frame of `\n`-ended lines as it is, and compresses the lines of a `\r\n` one anew.
pub fn zstd_frames_body(parts: &[(&[String], &str)]) -> Vec<u8> {
    let mut body = Vec::new();
    for (lines, end) in parts {
        let mut text = Vec::new();
        for l in *lines {
            text.extend_from_slice(l.as_bytes());
            text.extend_from_slice(end.as_bytes());
        }
        body.extend(zstd::bulk::compress(&text, 1).expect("zstd compression of a buffer"));
    }
    body
}

/// A batch request, fully under the test's control.
#[derive(Debug, Clone)]
pub struct BatchRequest {
    /// `Authorization: Bearer <key>`; none when `None`.
    pub key: Option<String>,
    /// `X-LogOps-Agent`.
    pub agent: String,
    /// `X-LogOps-Batch`.
    pub batch_id: String,
    /// The body exactly as sent.
    pub body: Vec<u8>,
    /// `Content-Encoding` (none when `None`).
    pub content_encoding: Option<String>,
    /// `X-LogOps-Tenant`.
    pub tenant: Option<String>,
    /// `X-LogOps-Timestamp` and `X-LogOps-Signature`.
    pub signature: Option<(String, String)>,
    /// Send the body chunked (no `Content-Length`).
    pub chunked: bool,
}

impl BatchRequest {
    /// Batch `agent:seq` of `lines`, compressed with `encoding`.
    pub fn new(key: &str, agent: &str, seq: u64, lines: &[String], encoding: Encoding) -> Self {
        BatchRequest::raw(
            Some(key),
            agent,
            seq,
            compress(&ndjson(lines), encoding),
            Some(encoding.as_str()),
        )
    }

    /// Batch `agent:seq` with a body sent exactly as given.
    pub fn raw(
        key: Option<&str>,
        agent: &str,
        seq: u64,
        body: Vec<u8>,
        content_encoding: Option<&str>,
    ) -> Self {
        BatchRequest {
            key: key.map(str::to_owned),
            agent: agent.to_owned(),
            batch_id: format!("{agent}:{seq}"),
            body,
            content_encoding: content_encoding.map(str::to_owned),
            tenant: None,
            signature: None,
            chunked: false,
        }
    }

    /// Signs the body with `secret` at Unix time `timestamp` (seconds).
    pub fn signed(mut self, secret: &[u8], timestamp: i64) -> Self {
        let sig = sign::signature(secret, timestamp, &self.body);
        self.signature = Some((timestamp.to_string(), sig));
        self
    }

    /// Sets the signature headers verbatim.
    pub fn signature_headers(mut self, timestamp: &str, signature: &str) -> Self {
        self.signature = Some((timestamp.to_owned(), signature.to_owned()));
        self
    }

    /// Sets `X-LogOps-Tenant`.
    pub fn tenant(mut self, tenant: &str) -> Self {
        self.tenant = Some(tenant.to_owned());
        self
    }

    /// Sends the body chunked, without `Content-Length`.
    pub fn chunked(mut self) -> Self {
        self.chunked = true;
        self
    }
}

/// Unix time in seconds.
pub fn unix_now() -> i64 {
    jiff::Timestamp::now().as_second()
}

/// A blocking client bound to one ingest base URL.
#[derive(Debug, Clone)]
pub struct Client {
    http: reqwest::blocking::Client,
    base: String,
}

impl Client {
    /// A client for `base` (`http://127.0.0.1:PORT` or `https://...`), with an overall
    /// request `timeout`.
    pub fn new(base: &str, tls: Option<&ClientTls>, timeout: Duration) -> anyhow::Result<Self> {
        let mut b = reqwest::blocking::Client::builder()
            .timeout(timeout)
            .connect_timeout(Duration::from_secs(5))
            .no_proxy();
        if let Some(tls) = tls {
            b = b.tls_certs_only(reqwest::Certificate::from_pem_bundle(
                tls.ca_pem.as_bytes(),
            )?);
            if let Some(id) = &tls.identity_pem {
                b = b.identity(reqwest::Identity::from_pem(id.as_bytes())?);
            }
        }
        Ok(Client {
            http: b.build()?,
            base: base.trim_end_matches('/').to_owned(),
        })
    }

    /// The base URL.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// Sends a batch request; transport errors (refused connection, TLS failure) are `Err`.
    pub fn send(&self, req: &BatchRequest) -> Result<Reply, reqwest::Error> {
        let mut r = self
            .http
            .post(format!("{}{}", self.base, logops_common::batch::BATCH_PATH))
            .header(reqwest::header::CONTENT_TYPE, logops_common::batch::NDJSON)
            .header(AGENT_HEADER, &req.agent)
            .header(BATCH_HEADER, &req.batch_id);
        if let Some(k) = &req.key {
            r = r.bearer_auth(k);
        }
        if let Some(e) = &req.content_encoding {
            r = r.header(reqwest::header::CONTENT_ENCODING, e);
        }
        if let Some(t) = &req.tenant {
            r = r.header(TENANT_HEADER, t);
        }
        if let Some((ts, sig)) = &req.signature {
            r = r.header(TIMESTAMP_HEADER, ts).header(SIGNATURE_HEADER, sig);
        }
        r = if req.chunked {
            r.body(reqwest::blocking::Body::new(std::io::Cursor::new(
                req.body.clone(),
            )))
        } else {
            r.body(req.body.clone())
        };
        reply(r.send()?)
    }

    /// Posts batch `agent:seq` of `lines` with `key`; panics on a transport error.
    pub fn post_batch(
        &self,
        key: &str,
        agent: &str,
        seq: u64,
        lines: &[String],
        encoding: Encoding,
    ) -> Reply {
        let req = BatchRequest::new(key, agent, seq, lines, encoding);
        self.send(&req)
            .unwrap_or_else(|e| panic!("POST batch {agent}:{seq} to {}: {e:#}", self.base))
    }

    /// Like [`Client::post_batch`], HMAC-signed with `secret` at the current time.
    pub fn post_batch_signed(
        &self,
        key: &str,
        secret: &[u8],
        agent: &str,
        seq: u64,
        lines: &[String],
        encoding: Encoding,
    ) -> Reply {
        let req = BatchRequest::new(key, agent, seq, lines, encoding).signed(secret, unix_now());
        self.send(&req)
            .unwrap_or_else(|e| panic!("POST batch {agent}:{seq} to {}: {e:#}", self.base))
    }

    /// `GET path?params` with `key` (none when `None`); transport errors are `Err`.
    pub fn try_get(
        &self,
        key: Option<&str>,
        path: &str,
        params: &[(&str, &str)],
    ) -> Result<Reply, reqwest::Error> {
        let mut url = reqwest::Url::parse(&format!("{}{path}", self.base)).expect("a valid URL");
        if !params.is_empty() {
            let mut q = url.query_pairs_mut();
            for (k, v) in params {
                q.append_pair(k, v);
            }
        }
        let mut r = self.http.get(url);
        if let Some(k) = key {
            r = r.bearer_auth(k);
        }
        reply(r.send()?)
    }

    /// `GET path?params` with `key`: `(status, headers, body)` as a [`Reply`]. Panics on a
    /// transport error.
    pub fn query(&self, key: &str, path: &str, params: &[(&str, &str)]) -> Reply {
        self.try_get(Some(key), path, params)
            .unwrap_or_else(|e| panic!("GET {path} {params:?} from {}: {e:#}", self.base))
    }

    /// `GET path` without a key (`/metrics`, `/healthz`, `/readyz`). Panics on a transport
    /// error.
    pub fn get(&self, path: &str) -> Reply {
        self.try_get(None, path, &[])
            .unwrap_or_else(|e| panic!("GET {path} from {}: {e:#}", self.base))
    }

    /// Every row of a query, following `X-LogOps-Next` (passed back as `cursor=`) until a
    /// page has none. Panics on any non-200 page, and after 100,000 pages.
    pub fn query_all(&self, key: &str, path: &str, params: &[(&str, &str)]) -> Vec<String> {
        self.query_pages(key, path, params)
            .into_iter()
            .flatten()
            .collect()
    }

    /// Like [`Client::query_all`], page by page.
    pub fn query_pages(&self, key: &str, path: &str, params: &[(&str, &str)]) -> Vec<Vec<String>> {
        let mut pages = Vec::new();
        let mut cursor: Option<String> = None;
        for _ in 0..100_000 {
            let mut p: Vec<(&str, &str)> = params.to_vec();
            if let Some(c) = &cursor {
                p.push(("cursor", c));
            }
            let r = self.query(key, path, &p);
            assert_eq!(r.status, 200, "GET {path} {p:?}: {}", r.body);
            pages.push(r.lines());
            match r.header(NEXT_HEADER) {
                Some(next) => {
                    assert_ne!(
                        cursor.as_deref(),
                        Some(next),
                        "X-LogOps-Next did not move: {next}"
                    );
                    cursor = Some(next.to_owned());
                }
                None => return pages,
            }
        }
        panic!("GET {path} {params:?}: still more pages after 100,000");
    }
}

fn reply(resp: reqwest::blocking::Response) -> Result<Reply, reqwest::Error> {
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let bytes = resp.bytes()?;
    Ok(Reply {
        status,
        headers,
        body: String::from_utf8_lossy(&bytes).into_owned(),
    })
}
