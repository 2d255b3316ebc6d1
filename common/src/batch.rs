//! The batch envelope: `POST /v1/batch` with NDJSON events and these headers.

use std::fmt;
use std::str::FromStr;

/// The path agents post batches to.
pub const BATCH_PATH: &str = "/v1/batch";
/// `Authorization: Bearer <api key>`.
pub const AUTHORIZATION: &str = "authorization";
/// `X-LogOps-Agent: <agent id>`.
pub const AGENT_HEADER: &str = "x-logops-agent";
/// `X-LogOps-Batch: <agent id>:<sequence>`.
pub const BATCH_HEADER: &str = "x-logops-batch";
/// `X-LogOps-Tenant: <tenant>`: optional; when present it must be the key's tenant (else 403).
pub const TENANT_HEADER: &str = "x-logops-tenant";
/// `X-LogOps-Next`: the cursor of the next page of a query answer.
pub const NEXT_HEADER: &str = "x-logops-next";
/// The NDJSON media type.
pub const NDJSON: &str = "application/x-ndjson";

/// The longest agent id accepted.
pub const MAX_AGENT_ID_LEN: usize = 128;

/// A batch id: the agent's id and a per-agent sequence number that only grows.
///
/// Written `<agent id>:<sequence>`, e.g. `web-01:42`. A retry resends the same bytes under
/// the same id; the ingest remembers ids it stored and answers a resend as a duplicate.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct BatchId {
    /// The agent id (1 to 128 printable ASCII characters without spaces).
    pub agent: String,
    /// The sequence number.
    pub seq: u64,
}

impl BatchId {
    /// A batch id for `agent` and `seq`.
    pub fn new(agent: impl Into<String>, seq: u64) -> Self {
        BatchId {
            agent: agent.into(),
            seq,
        }
    }
}

impl fmt::Display for BatchId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.agent, self.seq)
    }
}

/// Checks an agent id: 1 to 128 visible ASCII characters (no spaces or controls).
pub fn check_agent_id(id: &str) -> Result<(), String> {
    if id.is_empty() {
        return Err("the agent id is empty".into());
    }
    if id.len() > MAX_AGENT_ID_LEN {
        return Err(format!(
            "the agent id is {} bytes long; at most {MAX_AGENT_ID_LEN} are allowed",
            id.len()
        ));
    }
    if let Some(c) = id.chars().find(|c| !c.is_ascii_graphic()) {
        return Err(format!(
            "the agent id contains {c:?}; only visible ASCII characters are allowed"
        ));
    }
    Ok(())
}

impl FromStr for BatchId {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let (agent, seq) = s
            .rsplit_once(':')
            .ok_or_else(|| format!("`{s}` is not `<agent id>:<sequence number>`"))?;
        check_agent_id(agent)?;
        let seq = seq
            .parse()
            .map_err(|_| format!("`{seq}` in `{s}` is not a sequence number (0 to 2^64-1)"))?;
        Ok(BatchId::new(agent, seq))
    }
}

/// How a batch body is compressed (`Content-Encoding`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    /// zstd (the agent's default).
    Zstd,
    /// gzip.
    Gzip,
    /// Not compressed.
    Identity,
}

impl Encoding {
    /// The `Content-Encoding` header value.
    pub fn as_str(self) -> &'static str {
        match self {
            Encoding::Zstd => "zstd",
            Encoding::Gzip => "gzip",
            Encoding::Identity => "identity",
        }
    }
}

impl FromStr for Encoding {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.trim().to_ascii_lowercase().as_str() {
            "zstd" => Ok(Encoding::Zstd),
            "gzip" | "x-gzip" => Ok(Encoding::Gzip),
            "identity" | "" => Ok(Encoding::Identity),
            other => Err(format!(
                "unsupported Content-Encoding `{other}`; use zstd, gzip or identity"
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batch_ids_round_trip_and_allow_colons_in_agent_ids() {
        let id: BatchId = "web-01:42".parse().unwrap();
        assert_eq!(id, BatchId::new("web-01", 42));
        assert_eq!(id.to_string(), "web-01:42");
        let id: BatchId = "[::1]:7:9".parse().unwrap();
        assert_eq!((id.agent.as_str(), id.seq), ("[::1]:7", 9));
    }

    #[test]
    fn bad_batch_ids_say_why() {
        assert!("web-01"
            .parse::<BatchId>()
            .unwrap_err()
            .contains("<agent id>"));
        assert!("web-01:x"
            .parse::<BatchId>()
            .unwrap_err()
            .contains("sequence"));
        assert!(":5".parse::<BatchId>().unwrap_err().contains("empty"));
        assert!("a b:5".parse::<BatchId>().unwrap_err().contains("' '"));
    }
}
