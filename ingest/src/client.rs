//! `logops-ingest query`: read logs, metrics and records from a running ingest from a shell,
//! page by page or following new rows like `tail -f`.

use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context};
use logops_common::batch::NEXT_HEADER;

use crate::http::query::RESUME_HEADER;

/// What to read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum What {
    /// `GET /v1/logs`
    Logs,
    /// `GET /v1/metrics`
    Metrics,
    /// `GET /v1/records`
    Records,
    /// `GET /v1/metrics/latest` (Prometheus text)
    Latest,
}

/// Arguments of `logops-ingest query`.
#[derive(Debug, clap::Args)]
pub struct QueryArgs {
    /// logs, metrics, records or latest.
    #[arg(value_enum)]
    pub what: What,
    /// The ingest's base URL.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    pub url: String,
    /// File holding the API key (else the LOGOPS_API_KEY environment variable).
    #[arg(long)]
    pub api_key_file: Option<PathBuf>,
    /// Extra CA certificate (PEM) to trust for https.
    #[arg(long)]
    pub ca_cert: Option<PathBuf>,
    /// RFC 3339 time or a duration ago (15m, 24h).
    #[arg(long)]
    pub since: Option<String>,
    /// RFC 3339 time or a duration ago (exclusive).
    #[arg(long)]
    pub until: Option<String>,
    /// Exact host.
    #[arg(long)]
    pub host: Option<String>,
    /// Exact source.
    #[arg(long)]
    pub source: Option<String>,
    /// Minimum severity (logs).
    #[arg(long)]
    pub severity: Option<String>,
    /// Text the body must contain (logs).
    #[arg(long)]
    pub q: Option<String>,
    /// Metric name (metrics, latest).
    #[arg(long)]
    pub name: Option<String>,
    /// Rows per page.
    #[arg(long)]
    pub limit: Option<usize>,
    /// asc (default) or desc.
    #[arg(long)]
    pub order: Option<String>,
    /// Continue from a cursor (X-LogOps-Next of an earlier page).
    #[arg(long)]
    pub cursor: Option<String>,
    /// Fetch every page, not only the first.
    #[arg(long)]
    pub all: bool,
    /// Keep polling for new rows (implies --all, ascending).
    #[arg(long, short = 'f')]
    pub follow: bool,
    /// Poll interval for --follow.
    #[arg(long, default_value = "1s")]
    pub interval: logops_common::units::HumanDuration,
}

fn api_key(args: &QueryArgs) -> anyhow::Result<String> {
    let key = match &args.api_key_file {
        Some(p) => std::fs::read_to_string(p)
            .with_context(|| format!("reading --api-key-file {}", p.display()))?,
        None => std::env::var("LOGOPS_API_KEY")
            .context("no API key: pass --api-key-file FILE or set LOGOPS_API_KEY")?,
    };
    let key = key.trim().to_owned();
    if key.is_empty() {
        bail!("the API key is empty");
    }
    Ok(key)
}

/// Runs the query, writing rows to stdout and the next cursor (if any) to stderr.
pub async fn run(args: QueryArgs) -> anyhow::Result<()> {
    let key = api_key(&args)?;
    let mut builder = reqwest::Client::builder().timeout(Duration::from_secs(300));
    if let Some(ca) = &args.ca_cert {
        let pem =
            std::fs::read(ca).with_context(|| format!("reading --ca-cert {}", ca.display()))?;
        builder = builder.add_root_certificate(
            reqwest::Certificate::from_pem(&pem).context("parsing --ca-cert")?,
        );
    }
    let client = builder.build()?;
    let path = match args.what {
        What::Logs => "/v1/logs",
        What::Metrics => "/v1/metrics",
        What::Records => "/v1/records",
        What::Latest => "/v1/metrics/latest",
    };
    let url = format!("{}{path}", args.url.trim_end_matches('/'));
    let mut params: Vec<(&str, String)> = Vec::new();
    let opts = [
        ("since", &args.since),
        ("until", &args.until),
        ("host", &args.host),
        ("source", &args.source),
        ("severity", &args.severity),
        ("q", &args.q),
        ("name", &args.name),
        ("order", &args.order),
    ];
    for (k, v) in opts {
        if let Some(v) = v {
            params.push((k, v.clone()));
        }
    }
    if let Some(l) = args.limit {
        params.push(("limit", l.to_string()));
    }
    if args.follow && args.order.as_deref() == Some("desc") {
        bail!("--follow reads new rows in ascending order; drop --order desc");
    }
    let mut cursor = args.cursor.clone();
    let mut stdout = std::io::stdout().lock();
    loop {
        let mut query = params.clone();
        if let Some(c) = &cursor {
            query.push(("cursor", c.clone()));
        }
        let resp = client
            .get(&url)
            .bearer_auth(&key)
            .query(&query)
            .send()
            .await
            .with_context(|| format!("GET {url}"))?;
        let status = resp.status();
        let header = |name: &str| {
            resp.headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        let (next, resume) = (header(NEXT_HEADER), header(RESUME_HEADER));
        if !status.is_success() {
            let text = resp.text().await.unwrap_or_default();
            bail!("{url}: HTTP {status}: {}", text.trim());
        }
        let mut resp = resp;
        while let Some(chunk) = resp.chunk().await? {
            stdout.write_all(&chunk)?;
        }
        stdout.flush()?;
        if args.what == What::Latest {
            return Ok(());
        }
        match next {
            Some(n) if args.all || args.follow => cursor = Some(n),
            Some(n) => {
                eprintln!("# more rows: --cursor {n}");
                return Ok(());
            }
            None if args.follow => {
                cursor = resume.or(cursor);
                tokio::time::sleep(args.interval.get()).await;
            }
            None => return Ok(()),
        }
    }
}
