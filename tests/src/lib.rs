//! End-to-end test harness for LogOps.
//!
//! Tests run the **real** binaries (`target/<profile>/logops-ingest`, built by
//! `cargo build --workspace --bins`) on free loopback ports with real files in temporary
//! directories, and talk to them over real HTTP(S):
//!
//! - [`IngestHarness`] starts, kills (`kill -9`), stops (SIGTERM) and restarts an ingest with
//!   a generated configuration ([`IngestOptions`], [`TenantSpec`]); keys are generated and
//!   only their SHA-256 goes into the configuration.
//! - [`Client`] posts batches (zstd, gzip or identity, optionally HMAC-signed) and queries.
//! - [`events`] builds valid wire-format lines with unique, checkable bodies.
//! - [`pki`] makes a throw-away CA, server and client certificates.
//! - [`pool`] makes pre-compressed batch bodies for the benchmarks.
//! - [`storm`] runs agent threads posting continuously and checks exactly-once storage.
//! - [`process`] reads `/proc` figures (peak RSS, CPU seconds) and sends signals.
//! - [`netns`] makes private network namespaces joined by a veth pair (deleted on drop);
//!   [`nfq_delay`] holds a namespace's packets in an NFQUEUE to add delay (no netem here).
//! - [`nobulk`] runs an SNMP agent without GETBULK (pysnmp), for the GETNEXT fallback.
//! - [`snmpd`] runs Debian's net-snmp `snmpd` (v2c community, v3 users) on loopback ports and
//!   asks it with net-snmp's own `snmpget` / `snmpbulkwalk`.
//! - [`sshd`] runs private OpenSSH servers (a ForceCommand fake router, a plain shell host),
//!   fake-switches, and Netmiko as the reference; [`ntc`] finds the ntc-templates.
//!
//! Everything is independent per harness (own port, directory, log), so tests can run in
//! parallel.

pub mod agent;
pub mod client;
pub mod events;
pub mod harness;
pub mod netns;
pub mod nfq_delay;
pub mod nobulk;
#[path = "../../textfsm/tests/support/ntc.rs"]
pub mod ntc;
pub mod ping;
pub mod pki;
pub mod pool;
pub mod process;
pub mod snmpd;
pub mod sshd;
pub mod storm;
pub mod syslog;

use std::collections::BTreeMap;
use std::io::Write;

pub use client::{compress, unix_now, BatchRequest, Client, ClientTls, Reply};
pub use harness::{
    free_port, random_hex, run_binary, run_binary_env, wait_for, IngestHarness, IngestOptions,
    IngestTls, Tenant, TenantSpec,
};
pub use logops_common::batch::Encoding;

/// One sample of a Prometheus / OpenMetrics text exposition.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// Metric name (with suffixes such as `_total`, `_bucket`).
    pub name: String,
    /// Labels.
    pub labels: BTreeMap<String, String>,
    /// Value.
    pub value: f64,
    /// Timestamp, when present (milliseconds for Prometheus text).
    pub timestamp: Option<i64>,
}

/// Parses Prometheus text (or OpenMetrics text): `name{k="v",...} value [timestamp]` lines;
/// `#` lines are skipped. Errors name the line.
pub fn parse_prometheus(text: &str) -> Result<Vec<Sample>, String> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim_end();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let bad = |why: &str| format!("line {}: {why}: {line:?}", i + 1);
        let name_end = line.find(['{', ' ']).ok_or_else(|| bad("no value"))?;
        let name = &line[..name_end];
        if !logops_common::event::is_metric_name(name) {
            return Err(bad("bad metric name"));
        }
        let mut labels = BTreeMap::new();
        let mut rest = &line[name_end..];
        if let Some(r) = rest.strip_prefix('{') {
            let mut chars = r.char_indices().peekable();
            let mut end = None;
            loop {
                // label name
                let start = match chars.peek() {
                    Some(&(j, '}')) => {
                        end = Some(j + 1);
                        break;
                    }
                    Some(&(j, _)) => j,
                    None => break,
                };
                let mut eq = None;
                for (j, c) in chars.by_ref() {
                    if c == '=' {
                        eq = Some(j);
                        break;
                    }
                }
                let eq = eq.ok_or_else(|| bad("label without ="))?;
                let key = r[start..eq].trim().to_owned();
                if !logops_common::event::is_label_name(&key) {
                    return Err(bad("bad label name"));
                }
                if chars.next().map(|(_, c)| c) != Some('"') {
                    return Err(bad("label value not quoted"));
                }
                let mut value = String::new();
                let mut closed = false;
                while let Some((_, c)) = chars.next() {
                    match c {
                        '\\' => match chars.next().map(|(_, c)| c) {
                            Some('n') => value.push('\n'),
                            Some(c) => value.push(c),
                            None => return Err(bad("dangling escape")),
                        },
                        '"' => {
                            closed = true;
                            break;
                        }
                        c => value.push(c),
                    }
                }
                if !closed {
                    return Err(bad("unterminated label value"));
                }
                labels.insert(key, value);
                match chars.next() {
                    Some((_, ',')) => continue,
                    Some((j, '}')) => {
                        end = Some(j + 1);
                        break;
                    }
                    _ => return Err(bad("expected , or } after a label")),
                }
            }
            let end = end.ok_or_else(|| bad("unterminated label set"))?;
            rest = &r[end..];
        }
        let mut parts = rest.split_whitespace();
        let value = parts.next().ok_or_else(|| bad("no value"))?;
        let value: f64 = match value {
            "+Inf" => f64::INFINITY,
            "-Inf" => f64::NEG_INFINITY,
            "NaN" => f64::NAN,
            v => v.parse().map_err(|_| bad("value is not a number"))?,
        };
        let timestamp = match parts.next() {
            None => None,
            Some(t) => Some(
                t.parse::<f64>()
                    .map_err(|_| bad("timestamp is not a number"))? as i64,
            ),
        };
        if parts.next().is_some() {
            return Err(bad("trailing text"));
        }
        out.push(Sample {
            name: name.to_owned(),
            labels,
            value,
            timestamp,
        });
    }
    Ok(out)
}

/// Sum of the values of samples named `name` whose labels include all of `labels`.
pub fn metric_sum(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let matching: Vec<&Sample> = samples
        .iter()
        .filter(|s| {
            s.name == name
                && labels
                    .iter()
                    .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
        })
        .collect();
    (!matching.is_empty()).then(|| matching.iter().map(|s| s.value).sum())
}

/// A zstd frame that decompresses to `size` zero bytes, compressed as a stream (never
/// holding `size` bytes in memory). With `content_size` the frame header states the size;
/// without, it is a streaming frame that does not.
pub fn zstd_zero_bomb(size: u64, content_size: bool) -> Vec<u8> {
    let chunk = vec![0u8; 1 << 20];
    let mut enc = zstd::stream::write::Encoder::new(Vec::new(), 1).expect("zstd encoder");
    enc.include_contentsize(content_size)
        .expect("zstd parameter");
    if content_size {
        enc.set_pledged_src_size(Some(size))
            .expect("zstd pledged size");
    }
    let mut left = size;
    while left > 0 {
        let n = left.min(chunk.len() as u64) as usize;
        enc.write_all(&chunk[..n]).expect("zstd into a Vec");
        left -= n as u64;
    }
    enc.finish().expect("zstd into a Vec")
}

/// A gzip body that decompresses to `members × member_size` zero bytes: one gzip member of
/// `member_size` zeros (best compression, ~1000:1) repeated `members` times (gzip allows
/// concatenated members; decoders read them all).
pub fn gzip_zero_bomb(member_size: usize, members: usize) -> Vec<u8> {
    let chunk = vec![0u8; 1 << 20];
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    let mut left = member_size;
    while left > 0 {
        let n = left.min(chunk.len());
        enc.write_all(&chunk[..n]).expect("gzip into a Vec");
        left -= n;
    }
    let member = enc.finish().expect("gzip into a Vec");
    member.repeat(members)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prometheus_text_parses() {
        let text = "# TYPE a counter\na_total{x=\"1\",y=\"q\\\"z\"} 3\nb 4.5 1700000000000\nc{} +Inf\n# EOF\n";
        let s = parse_prometheus(text).unwrap();
        assert_eq!(s.len(), 3);
        assert_eq!(s[0].labels["y"], "q\"z");
        assert_eq!(s[1].timestamp, Some(1_700_000_000_000));
        assert!(s[2].value.is_infinite());
        assert_eq!(metric_sum(&s, "a_total", &[("x", "1")]), Some(3.0));
        assert!(parse_prometheus("a{x=1} 2").is_err());
        assert!(parse_prometheus("a 2 3 4").is_err());
    }

    #[test]
    fn event_builders_make_valid_lines() {
        let ts = events::now();
        for l in events::batch_lines("agent-3", 17, 3) {
            events::parse_stored(&l).unwrap();
        }
        assert_eq!(
            events::body_of(&events::batch_lines("agent-3", 17, 43)[42]).unwrap(),
            "agent-3 seq 17 line 42"
        );
        let l = events::realistic_line("a", 1, 2, ts, 200);
        assert!((195..260).contains(&l.len()), "{}", l.len());
        assert!(events::body_of(&l).unwrap().starts_with("a seq 1 line 2 "));
        events::parse_stored(
            &events::MetricEvent::gauge(ts, "h", "m_x", 1.5)
                .label("a", "b")
                .line(),
        )
        .unwrap();
        events::parse_stored(&events::record_line(
            ts,
            "h",
            "ssh",
            serde_json::json!({"k": 1}),
        ))
        .unwrap();
    }

    #[test]
    fn bombs_are_small() {
        let z = zstd_zero_bomb(64 << 20, false);
        assert!(z.len() < 10_000);
        let g = gzip_zero_bomb(1 << 20, 4);
        assert!(g.len() < 20_000);
        let mut d = flate2::read::MultiGzDecoder::new(&g[..]);
        let mut out = Vec::new();
        std::io::Read::read_to_end(&mut d, &mut out).unwrap();
        assert_eq!(out.len(), 4 << 20);
    }

    #[test]
    fn ansi_is_stripped() {
        assert_eq!(
            harness::strip_ansi("\u{1b}[2mreason\u{1b}[0m=x"),
            "reason=x"
        );
    }
}
