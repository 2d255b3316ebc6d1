//! The ingest's configuration file (TOML). See `ingest/ingest.example.toml` for every option.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use logops_common::units::{ByteSize, HumanDuration};
use serde::Deserialize;

/// Where the configuration is wrong, and how.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The TOML does not parse or does not fit (toml's message carries line, column and key).
    #[error("{path}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// toml's message, with the position and the offending snippet.
        message: String,
    },
    /// The values parse but do not make sense together.
    #[error("{path}: {key}: {message}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// The key path, e.g. `tenant[1].api_key_sha256[0]`.
        key: String,
        /// What is wrong.
        message: String,
    },
}

/// The whole configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Address to listen on (`127.0.0.1:8080`).
    #[serde(default = "default_listen")]
    pub listen: SocketAddr,
    /// Where the store, dedupe state and lock file live.
    #[serde(default = "default_data_dir")]
    pub data_dir: PathBuf,
    /// `text` (default) or `json` logs on stderr.
    #[serde(default)]
    pub log_format: LogFormat,
    /// Serve plain HTTP on a non-loopback address (only behind a TLS-terminating proxy).
    #[serde(default)]
    pub allow_plain_http: bool,
    /// TLS: certificate, key, optional client CA for mTLS.
    pub tls: Option<TlsConfig>,
    /// Tenants and their keys.
    #[serde(default, rename = "tenant")]
    pub tenants: Vec<TenantConfig>,
    /// Request limits.
    #[serde(default)]
    pub limits: LimitsConfig,
    /// HMAC signing options.
    #[serde(default)]
    pub signing: SigningConfig,
    /// Retention of the embedded store.
    #[serde(default)]
    pub retention: RetentionConfig,
    /// Embedded store tuning.
    #[serde(default)]
    pub store: StoreConfig,
    /// Query options.
    #[serde(default)]
    pub query: QueryConfig,
}

fn default_listen() -> SocketAddr {
    "127.0.0.1:8080".parse().expect("valid address")
}

fn default_data_dir() -> PathBuf {
    PathBuf::from("/var/lib/logops-ingest")
}

/// Log output format.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

/// TLS settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// PEM certificate chain.
    pub cert: PathBuf,
    /// PEM private key.
    pub key: PathBuf,
    /// PEM CA bundle; when set, clients must present a certificate it signed (mTLS).
    pub client_ca: Option<PathBuf>,
}

/// One tenant.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TenantConfig {
    /// Tenant name, `[a-z0-9_-]{1,64}` (it names directories).
    pub name: String,
    /// SHA-256 (hex) of keys that may write and read (`logops-ingest keygen` prints one).
    #[serde(default)]
    pub api_key_sha256: Vec<String>,
    /// SHA-256 (hex) of keys that may only read (queries).
    #[serde(default)]
    pub read_key_sha256: Vec<String>,
    /// Token bucket rate in events per second.
    #[serde(default = "default_events_per_second")]
    pub max_events_per_second: u64,
    /// Token bucket rate in (decompressed) bytes per second.
    #[serde(default = "default_bytes_per_second")]
    pub max_bytes_per_second: ByteSize,
    /// How many seconds of rate a burst may use at once.
    #[serde(default = "default_burst")]
    pub burst: HumanDuration,
    /// File holding the HMAC secret; when set (or `hmac_secret_env`), writes must be signed.
    pub hmac_secret_file: Option<PathBuf>,
    /// Environment variable holding the HMAC secret.
    pub hmac_secret_env: Option<String>,
}

fn default_events_per_second() -> u64 {
    200_000
}
fn default_bytes_per_second() -> ByteSize {
    ByteSize::mib(64)
}
fn default_burst() -> HumanDuration {
    HumanDuration::secs(2)
}

/// Request limits.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsConfig {
    /// Largest request body as sent (compressed): larger gets 413.
    pub max_body: ByteSize,
    /// Largest body after decompression: decompression stops there with 413.
    pub max_decompressed: ByteSize,
    /// Decompressed bytes being validated or written at once across all requests; past
    /// it new batches get 503 + Retry-After (bounds memory under load).
    pub max_in_flight: ByteSize,
    /// Time to read a request body before giving up.
    pub request_timeout: HumanDuration,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        LimitsConfig {
            max_body: ByteSize::mib(8),
            max_decompressed: ByteSize::mib(64),
            max_in_flight: ByteSize::mib(256),
            request_timeout: HumanDuration::secs(30),
        }
    }
}

/// HMAC signing options.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SigningConfig {
    /// Accepted distance between the request's timestamp and the server's clock.
    pub window: HumanDuration,
}

impl Default for SigningConfig {
    fn default() -> Self {
        SigningConfig {
            window: HumanDuration::secs(300),
        }
    }
}

/// Retention of the embedded store.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RetentionConfig {
    /// Closed segments older than this are deleted.
    pub max_age: HumanDuration,
    /// Oldest closed segments are deleted while the store is larger than this.
    pub max_bytes: ByteSize,
    /// How often retention runs.
    pub interval: HumanDuration,
}

impl Default for RetentionConfig {
    fn default() -> Self {
        RetentionConfig {
            max_age: HumanDuration::secs(7 * 86_400),
            max_bytes: ByteSize::gib(10),
            interval: HumanDuration::secs(60),
        }
    }
}

/// Embedded store tuning.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StoreConfig {
    /// A segment is closed (and indexed) past this much content, uncompressed.
    pub segment_max_bytes: ByteSize,
    /// ... or this age.
    pub segment_max_age: HumanDuration,
    /// How long stored batch ids are remembered for deduplication.
    pub dedupe_window: HumanDuration,
    /// Batches waiting for the writer; when full, new batches get 503 + Retry-After.
    pub queue_capacity: usize,
    /// zstd level of the lines the ingest compresses itself and of repacked segments.
    pub compression_level: i32,
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            segment_max_bytes: ByteSize::mib(64),
            segment_max_age: HumanDuration::secs(3600),
            dedupe_window: HumanDuration::secs(86_400),
            queue_capacity: 1024,
            compression_level: 1,
        }
    }
}

/// Query options.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct QueryConfig {
    /// How far back `/v1/metrics/latest` looks for the latest sample of a series.
    pub latest_lookback: HumanDuration,
}

impl Default for QueryConfig {
    fn default() -> Self {
        QueryConfig {
            latest_lookback: HumanDuration::secs(900),
        }
    }
}

impl Config {
    /// Reads, parses and checks a configuration file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        Config::parse(&text, path)
    }

    /// Parses and checks configuration text (`path` is used in messages).
    pub fn parse(text: &str, path: &Path) -> Result<Config, ConfigError> {
        let config: Config = toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: path.to_owned(),
            message: e.to_string().trim_end().to_owned(),
        })?;
        config.check(path)?;
        Ok(config)
    }

    fn check(&self, path: &Path) -> Result<(), ConfigError> {
        let invalid = |key: String, message: String| ConfigError::Invalid {
            path: path.to_owned(),
            key,
            message,
        };
        let mut names = HashSet::new();
        let mut keys = HashSet::new();
        for (i, t) in self.tenants.iter().enumerate() {
            if !is_tenant_name(&t.name) {
                return Err(invalid(
                    format!("tenant[{i}].name"),
                    format!(
                        "`{}` is not a tenant name: use 1 to 64 of a-z, 0-9, _ and -",
                        t.name
                    ),
                ));
            }
            if !names.insert(t.name.as_str()) {
                return Err(invalid(
                    format!("tenant[{i}].name"),
                    format!("tenant `{}` is defined twice", t.name),
                ));
            }
            for (field, list) in [
                ("api_key_sha256", &t.api_key_sha256),
                ("read_key_sha256", &t.read_key_sha256),
            ] {
                for (j, h) in list.iter().enumerate() {
                    if h.len() != 64 || !h.bytes().all(|b| b.is_ascii_hexdigit()) {
                        return Err(invalid(
                            format!("tenant[{i}].{field}[{j}]"),
                            "expected the SHA-256 of the key as 64 hex digits (`logops-ingest keygen --tenant NAME` prints one)".into(),
                        ));
                    }
                    if !keys.insert(h.to_ascii_lowercase()) {
                        return Err(invalid(
                            format!("tenant[{i}].{field}[{j}]"),
                            "this key hash is listed twice; a key belongs to exactly one tenant and scope".into(),
                        ));
                    }
                }
            }
            if t.max_events_per_second == 0 {
                return Err(invalid(
                    format!("tenant[{i}].max_events_per_second"),
                    "must be at least 1".into(),
                ));
            }
            if t.max_bytes_per_second.bytes() == 0 {
                return Err(invalid(
                    format!("tenant[{i}].max_bytes_per_second"),
                    "must be at least 1 byte".into(),
                ));
            }
            if t.burst.get().is_zero() {
                return Err(invalid(
                    format!("tenant[{i}].burst"),
                    "must be more than zero".into(),
                ));
            }
            if t.hmac_secret_file.is_some() && t.hmac_secret_env.is_some() {
                return Err(invalid(
                    format!("tenant[{i}]"),
                    "set hmac_secret_file or hmac_secret_env, not both".into(),
                ));
            }
        }
        if self.limits.max_body.bytes() == 0 {
            return Err(invalid(
                "limits.max_body".into(),
                "must be more than zero".into(),
            ));
        }
        if self.limits.max_decompressed < self.limits.max_body {
            return Err(invalid(
                "limits.max_decompressed".into(),
                format!(
                    "{} is smaller than limits.max_body ({})",
                    self.limits.max_decompressed, self.limits.max_body
                ),
            ));
        }
        if self.limits.max_in_flight < self.limits.max_decompressed {
            return Err(invalid(
                "limits.max_in_flight".into(),
                format!(
                    "{} is smaller than limits.max_decompressed ({}): one batch could never fit",
                    self.limits.max_in_flight, self.limits.max_decompressed
                ),
            ));
        }
        if self.store.queue_capacity == 0 {
            return Err(invalid(
                "store.queue_capacity".into(),
                "must be at least 1".into(),
            ));
        }
        if !(1..=22).contains(&self.store.compression_level) {
            return Err(invalid(
                "store.compression_level".into(),
                "zstd levels are 1 to 22".into(),
            ));
        }
        if self.tls.is_none() && !self.listen.ip().is_loopback() && !self.allow_plain_http {
            return Err(invalid(
                "listen".into(),
                format!(
                    "{} is not a loopback address and no [tls] is configured; add [tls] cert/key, \
                     or set allow_plain_http = true if a TLS-terminating proxy is in front",
                    self.listen
                ),
            ));
        }
        Ok(())
    }
}

/// `[a-z0-9_-]{1,64}`: tenant names become directory names.
pub fn is_tenant_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
}

#[cfg(test)]
mod tests {
    use super::*;

    const ISSUE_EXAMPLE: &str = r#"
listen = "127.0.0.1:8080"
data_dir = "/var/lib/logops-ingest"

[[tenant]]
name = "acme"
api_key_sha256 = ["2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae"]
max_events_per_second = 200000
max_bytes_per_second = "64MiB"

[limits]
max_body = "8MiB"              # compressed
max_decompressed = "64MiB"

[retention]
max_age = "7d"
max_bytes = "10GiB"
"#;

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::parse(text, Path::new("ingest.toml"))
    }

    #[test]
    fn the_issue_example_works_as_written() {
        let c = parse(ISSUE_EXAMPLE).unwrap();
        assert_eq!(c.tenants[0].max_bytes_per_second, ByteSize::mib(64));
        assert_eq!(c.limits.max_body, ByteSize::mib(8));
        assert_eq!(c.retention.max_age.get().as_secs(), 7 * 86400);
        assert_eq!(c.retention.max_bytes, ByteSize::gib(10));
    }

    #[test]
    fn the_shipped_example_parses() {
        let text = include_str!("../ingest.example.toml");
        parse(text).unwrap();
    }

    #[test]
    fn errors_name_the_file_and_key() {
        let e = parse("listen = \"127.0.0.1:8080\"\nlistne = 1\n")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("ingest.toml") && e.contains("listne") && e.contains("line 2"),
            "{e}"
        );

        let e = parse("[[tenant]]\nname = \"acme\"\napi_key_sha256 = [\"abc\"]\n")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("tenant[0].api_key_sha256[0]") && e.contains("64 hex"),
            "{e}"
        );

        let e = parse("[[tenant]]\nname = \"Acme Corp\"\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("tenant[0].name"), "{e}");

        let e = parse("[limits]\nmax_body = \"8 parsecs\"\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("parsecs") && e.contains("line 2"), "{e}");

        let e = parse("listen = \"0.0.0.0:8080\"\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("listen") && e.contains("[tls]"), "{e}");
        parse("listen = \"0.0.0.0:8080\"\nallow_plain_http = true\n").unwrap();
    }
}
