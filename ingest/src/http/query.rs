//! Tenant-scoped queries: `/v1/logs`, `/v1/metrics`, `/v1/records` (NDJSON pages with a
//! continuation cursor) and `/v1/metrics/latest` (Prometheus text).
//!
//! A page is found in one pass over the store that keeps at most [`PAGE_BUFFER`] bytes; a
//! larger page (limits go up to 1,000,000 rows) is streamed by a second pass over exactly
//! the same stretch of the store, so memory stays bounded whatever the limit.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::ops::ControlFlow;
use std::time::Instant;

use axum::body::Body;
use axum::extract::{ConnectInfo, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use tokio::sync::{mpsc, oneshot};
use tokio_stream::wrappers::ReceiverStream;

use super::{ApiError, AppState};
use crate::auth::Scope;
use logops_common::batch::{NDJSON, NEXT_HEADER};
use logops_common::event::{Event, MetricValue, Payload};
use logops_common::units::HumanDuration;
use logops_common::{parse_line, Kind, Severity, Timestamp};
use logops_store::{Order, Position, ScanRange, Store};

/// Rows per page when `limit` is not given.
pub const DEFAULT_LIMIT: usize = 1_000;
/// The largest `limit`.
pub const MAX_LIMIT: usize = 1_000_000;
/// Bytes of a page kept in memory; past this the page is streamed by a second pass.
const PAGE_BUFFER: usize = 4 << 20;
/// Chunk size of a streamed page.
const CHUNK: usize = 256 << 10;
/// `X-LogOps-Resume`: where an ascending page ended, to poll for newer rows (`--follow`).
pub const RESUME_HEADER: &str = "x-logops-resume";
/// `X-LogOps-Rows`: rows in this page.
pub const ROWS_HEADER: &str = "x-logops-rows";

/// Which rows a query wants.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    /// Inclusive lower bound on `ts` (ns).
    pub since: Option<i64>,
    /// Exclusive upper bound on `ts` (ns).
    pub until: Option<i64>,
    /// Exact host.
    pub host: Option<String>,
    /// Exact source.
    pub source: Option<String>,
    /// Minimum severity (logs).
    pub severity: Option<Severity>,
    /// Substring of the body (logs).
    pub q: Option<String>,
    /// Exact metric name.
    pub name: Option<String>,
}

impl Filter {
    /// Whether an event passes every condition.
    pub fn matches(&self, ev: &Event<'_>) -> bool {
        let ts = ev.ts.as_nanos_i64();
        if self.since.is_some_and(|s| ts < s) || self.until.is_some_and(|u| ts >= u) {
            return false;
        }
        if self.host.as_deref().is_some_and(|h| h != ev.host)
            || self.source.as_deref().is_some_and(|s| s != ev.source)
        {
            return false;
        }
        match &ev.payload {
            Payload::Log { severity, body } => {
                if let Some(min) = self.severity {
                    if !severity.is_some_and(|s| s >= min) {
                        return false;
                    }
                }
                self.q.as_deref().is_none_or(|q| body.contains(q))
            }
            Payload::Metric { name, .. } => self.name.as_deref().is_none_or(|n| n == name),
            Payload::Record => true,
        }
    }
}

/// The parameters each route accepts.
const LOG_PARAMS: &[&str] = &[
    "since", "until", "host", "source", "severity", "q", "limit", "order", "cursor",
];
const METRIC_PARAMS: &[&str] = &[
    "name", "since", "until", "host", "source", "limit", "order", "cursor",
];
const RECORD_PARAMS: &[&str] = &[
    "source", "since", "until", "host", "limit", "order", "cursor",
];
const LATEST_PARAMS: &[&str] = &["name", "host", "source", "lookback"];

/// A parsed page request.
struct PageRequest {
    filter: Filter,
    limit: usize,
    order: Order,
    cursor: Option<Position>,
}

fn parse_time(name: &str, v: &str) -> Result<i64, ApiError> {
    if let Ok(t) = Timestamp::parse(v) {
        return Ok(t.as_nanos_i64());
    }
    if let Ok(ago) = v.parse::<HumanDuration>() {
        let now = Timestamp::now().as_nanos_i64();
        return Ok(now.saturating_sub(i64::try_from(ago.get().as_nanos()).unwrap_or(i64::MAX)));
    }
    Err(ApiError::bad_param(
        name,
        format!("`{v}` is neither an RFC 3339 timestamp (2026-11-22T10:00:00Z) nor a duration ago (15m, 24h)"),
    ))
}

fn parse_params(
    params: &HashMap<String, String>,
    allowed: &[&str],
) -> Result<PageRequest, ApiError> {
    for key in params.keys() {
        if !allowed.contains(&key.as_str()) && key != "tenant" {
            return Err(ApiError::bad_param(
                key,
                format!("unknown parameter; this route takes {}", allowed.join(", ")),
            ));
        }
    }
    let get = |k: &str| params.get(k).map(String::as_str).filter(|v| !v.is_empty());
    let mut filter = Filter {
        since: get("since").map(|v| parse_time("since", v)).transpose()?,
        until: get("until").map(|v| parse_time("until", v)).transpose()?,
        host: get("host").map(str::to_owned),
        source: get("source").map(str::to_owned),
        q: get("q").map(str::to_owned),
        name: get("name").map(str::to_owned),
        severity: None,
    };
    if let Some(s) = get("severity") {
        filter.severity = Some(s.parse().map_err(|e| ApiError::bad_param("severity", e))?);
    }
    let limit = match get("limit") {
        None => DEFAULT_LIMIT,
        Some(v) => match v.parse::<usize>() {
            Ok(n) if (1..=MAX_LIMIT).contains(&n) => n,
            _ => {
                return Err(ApiError::bad_param(
                    "limit",
                    format!("`{v}` is not a number from 1 to {MAX_LIMIT}"),
                ))
            }
        },
    };
    let order = match get("order") {
        None | Some("asc") => Order::Asc,
        Some("desc") => Order::Desc,
        Some(v) => {
            return Err(ApiError::bad_param(
                "order",
                format!("`{v}`: use asc or desc"),
            ))
        }
    };
    let cursor = get("cursor")
        .map(|v| {
            v.parse::<Position>()
                .map_err(|e| ApiError::bad_param("cursor", e))
        })
        .transpose()?;
    Ok(PageRequest {
        filter,
        limit,
        order,
        cursor,
    })
}

/// `GET /v1/logs`
pub async fn logs(
    state: State<AppState>,
    peer: ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    params: Query<HashMap<String, String>>,
) -> Response {
    page(
        state,
        peer,
        headers,
        params,
        Kind::Log,
        "/v1/logs",
        LOG_PARAMS,
    )
    .await
}

/// `GET /v1/metrics`
pub async fn metrics(
    state: State<AppState>,
    peer: ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    params: Query<HashMap<String, String>>,
) -> Response {
    page(
        state,
        peer,
        headers,
        params,
        Kind::Metric,
        "/v1/metrics",
        METRIC_PARAMS,
    )
    .await
}

/// `GET /v1/records`
pub async fn records(
    state: State<AppState>,
    peer: ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    params: Query<HashMap<String, String>>,
) -> Response {
    page(
        state,
        peer,
        headers,
        params,
        Kind::Record,
        "/v1/records",
        RECORD_PARAMS,
    )
    .await
}

fn tenant_param_check(params: &HashMap<String, String>, tenant: &str) -> Result<(), ApiError> {
    match params.get("tenant") {
        Some(t) if t != tenant => Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            format!("this key is not allowed for tenant `{t}`"),
        )),
        _ => Ok(()),
    }
}

async fn page(
    State(app): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Query(params): Query<HashMap<String, String>>,
    kind: Kind,
    route: &'static str,
    allowed: &[&str],
) -> Response {
    let started = Instant::now();
    let mut tenant = None;
    let result = async {
        let caller = app.authenticate(peer, &headers, Scope::Read)?;
        tenant = Some(caller.tenant.to_string());
        tenant_param_check(&params, &caller.tenant)?;
        let req = parse_params(&params, allowed)?;
        let range = ScanRange {
            tenant: caller.tenant.to_string(),
            kind,
            order: req.order,
            from: req.cursor,
            to: None,
            since: req.filter.since,
            until: req.filter.until,
        };
        run_page(app.store.clone(), range, req.filter, req.limit).await
    }
    .await;
    let response = result.unwrap_or_else(IntoResponse::into_response);
    app.observe(route, response.status(), tenant.as_deref(), started);
    response
}

/// How the first pass ended.
struct PageHead {
    rows: usize,
    next: Option<Position>,
    resume: Option<Position>,
}

/// Runs the page on the blocking pool; answers as soon as the page's end is known and
/// streams the rest.
async fn run_page(
    store: Store,
    range: ScanRange,
    filter: Filter,
    limit: usize,
) -> Result<Response, ApiError> {
    let (head_tx, head_rx) = oneshot::channel::<Result<PageHead, String>>();
    let (body_tx, body_rx) = mpsc::channel::<Result<Vec<u8>, std::io::Error>>(4);
    tokio::task::spawn_blocking(move || {
        let result = scan_page(&store, range, &filter, limit, head_tx, &body_tx);
        if let Err(e) = result {
            tracing::error!("query failed while streaming: {e}");
            let _ = body_tx.blocking_send(Err(std::io::Error::other(e)));
        }
    });
    let head = head_rx
        .await
        .map_err(|_| {
            ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "the query task stopped",
            )
        })?
        .map_err(|e| {
            ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "store_error",
                format!("reading the store failed: {e}"),
            )
        })?;
    let mut resp = Response::new(Body::from_stream(ReceiverStream::new(body_rx)));
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(NDJSON));
    h.insert(ROWS_HEADER, HeaderValue::from(head.rows));
    if let Some(next) = head.next {
        h.insert(
            NEXT_HEADER,
            HeaderValue::from_str(&next.to_string()).expect("positions are ASCII"),
        );
    }
    if let Some(resume) = head.resume {
        h.insert(
            RESUME_HEADER,
            HeaderValue::from_str(&resume.to_string()).expect("positions are ASCII"),
        );
    }
    Ok(resp)
}

/// Parses a stored line and applies the filter; stored lines were validated on the way in.
fn line_matches(filter: &Filter, line: &[u8]) -> bool {
    std::str::from_utf8(line)
        .ok()
        .and_then(|text| parse_line(text, 0).ok())
        .is_some_and(|ev| filter.matches(&ev))
}

fn scan_page(
    store: &Store,
    range: ScanRange,
    filter: &Filter,
    limit: usize,
    head_tx: oneshot::Sender<Result<PageHead, String>>,
    body_tx: &mpsc::Sender<Result<Vec<u8>, std::io::Error>>,
) -> Result<(), String> {
    let mut rows = 0usize;
    let mut buf = Vec::new();
    let mut overflow_from: Option<Position> = None;
    let mut last: Option<(Position, usize)> = None;
    let mut next = None;
    let pass1 = store.scan(&range, &mut |pos, line| {
        if !line_matches(filter, line) {
            return ControlFlow::Continue(());
        }
        if rows == limit {
            next = Some(pos);
            return ControlFlow::Break(());
        }
        rows += 1;
        last = Some((pos, line.len()));
        if overflow_from.is_none() && buf.len() + line.len() < PAGE_BUFFER {
            buf.extend_from_slice(line);
            buf.push(b'\n');
        } else if overflow_from.is_none() {
            overflow_from = Some(pos);
        }
        ControlFlow::Continue(())
    });
    if let Err(e) = pass1 {
        let _ = head_tx.send(Err(e.to_string()));
        return Ok(());
    }
    let resume = match range.order {
        Order::Asc => last
            .map(|(p, len)| Position {
                segment: p.segment,
                offset: p.offset + len as u64 + 1,
            })
            .or(range.from),
        Order::Desc => None,
    };
    if head_tx.send(Ok(PageHead { rows, next, resume })).is_err() {
        return Ok(()); // the client went away
    }
    if !buf.is_empty() && body_tx.blocking_send(Ok(buf)).is_err() {
        return Ok(());
    }
    let (Some(from), Some((to, _))) = (overflow_from, last) else {
        return Ok(());
    };
    // Second pass over exactly the rest of the page.
    let rest = ScanRange {
        from: Some(from),
        to: Some(to),
        ..range
    };
    let mut chunk = Vec::with_capacity(CHUNK + 4096);
    let mut gone = false;
    store
        .scan(&rest, &mut |_, line| {
            if line_matches(filter, line) {
                chunk.extend_from_slice(line);
                chunk.push(b'\n');
                if chunk.len() >= CHUNK {
                    let full = std::mem::replace(&mut chunk, Vec::with_capacity(CHUNK + 4096));
                    if body_tx.blocking_send(Ok(full)).is_err() {
                        gone = true;
                        return ControlFlow::Break(());
                    }
                }
            }
            ControlFlow::Continue(())
        })
        .map_err(|e| e.to_string())?;
    if !gone && !chunk.is_empty() {
        let _ = body_tx.blocking_send(Ok(chunk));
    }
    Ok(())
}

/// `GET /v1/metrics/latest`: the latest sample of every series seen within the lookback
/// (`?lookback=`, default `query.latest_lookback`), as Prometheus text with timestamps.
pub async fn latest(
    State(app): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Query(params): Query<HashMap<String, String>>,
) -> Response {
    let started = Instant::now();
    let mut tenant = None;
    let result = async {
        let caller = app.authenticate(peer, &headers, Scope::Read)?;
        tenant = Some(caller.tenant.to_string());
        tenant_param_check(&params, &caller.tenant)?;
        let req = parse_params(&params, LATEST_PARAMS)?;
        let lookback = match params.get("lookback") {
            Some(v) => v
                .parse::<HumanDuration>()
                .map_err(|e| ApiError::bad_param("lookback", e))?,
            None => app.config.query.latest_lookback,
        };
        let since = Timestamp::now().as_nanos_i64()
            - i64::try_from(lookback.get().as_nanos()).unwrap_or(i64::MAX);
        let filter = Filter {
            since: Some(since),
            ..req.filter
        };
        let range = ScanRange {
            tenant: caller.tenant.to_string(),
            kind: Kind::Metric,
            order: Order::Desc,
            from: None,
            to: None,
            since: Some(since),
            until: None,
        };
        let store = app.store.clone();
        let text = tokio::task::spawn_blocking(move || latest_text(&store, &range, &filter))
            .await
            .map_err(|e| {
                ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string())
            })?
            .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "store_error", e))?;
        Ok::<_, ApiError>(
            (
                [(
                    header::CONTENT_TYPE,
                    "text/plain; version=0.0.4; charset=utf-8",
                )],
                text,
            )
                .into_response(),
        )
    }
    .await;
    let response = result.unwrap_or_else(IntoResponse::into_response);
    app.observe(
        "/v1/metrics/latest",
        response.status(),
        tenant.as_deref(),
        started,
    );
    response
}

/// One series' latest sample.
struct Sample {
    ts: i64,
    value: MetricValue,
}

fn latest_text(store: &Store, range: &ScanRange, filter: &Filter) -> Result<String, String> {
    // name -> (series labels rendered `{...}` -> latest sample)
    let mut series: BTreeMap<String, BTreeMap<String, Sample>> = BTreeMap::new();
    store
        .scan(range, &mut |_, line| {
            let Some(ev) = std::str::from_utf8(line)
                .ok()
                .and_then(|t| parse_line(t, 0).ok())
            else {
                return ControlFlow::Continue(());
            };
            if !filter.matches(&ev) {
                return ControlFlow::Continue(());
            }
            let ts = ev.ts.as_nanos_i64();
            let Payload::Metric { name, value } = ev.payload else {
                return ControlFlow::Continue(());
            };
            let mut labels: BTreeMap<&str, &str> = ev
                .labels
                .iter()
                .map(|(k, v)| (k.as_ref(), v.as_ref()))
                .collect();
            labels.entry("host").or_insert(&ev.host);
            let key = render_labels(labels.iter().map(|(k, v)| (*k, *v)));
            let slot = series.entry(name.into_owned()).or_default();
            match slot.get(&key) {
                Some(s) if s.ts >= ts => {}
                _ => {
                    slot.insert(key, Sample { ts, value });
                }
            }
            ControlFlow::Continue(())
        })
        .map_err(|e| e.to_string())?;

    let mut out = String::new();
    for (name, samples) in &series {
        let Some(first) = samples.values().next() else {
            continue;
        };
        let mtype = first.value.metric_type();
        let _ = writeln!(out, "# TYPE {name} {}", mtype.as_str());
        for (labels, s) in samples {
            if s.value.metric_type() != mtype {
                let _ = writeln!(
                    out,
                    "# series {name}{labels} omitted: it is a {} here but a {} elsewhere",
                    s.value.metric_type().as_str(),
                    mtype.as_str()
                );
                continue;
            }
            let ms = s.ts.div_euclid(1_000_000);
            match &s.value {
                MetricValue::Gauge(v) | MetricValue::Counter(v) => {
                    let _ = writeln!(out, "{name}{labels} {} {ms}", fmt_f64(*v));
                }
                MetricValue::Histogram(h) => {
                    for b in &h.buckets {
                        let l = with_label(labels, "le", &fmt_f64(b.le));
                        let _ = writeln!(out, "{name}_bucket{l} {} {ms}", b.count);
                    }
                    let l = with_label(labels, "le", "+Inf");
                    let _ = writeln!(out, "{name}_bucket{l} {} {ms}", h.count);
                    let _ = writeln!(out, "{name}_sum{labels} {} {ms}", fmt_f64(h.sum));
                    let _ = writeln!(out, "{name}_count{labels} {} {ms}", h.count);
                }
            }
        }
    }
    Ok(out)
}

fn fmt_f64(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v.is_infinite() {
        if v > 0.0 {
            "+Inf".into()
        } else {
            "-Inf".into()
        }
    } else {
        v.to_string()
    }
}

/// `{a="1",b="2"}` with Prometheus escaping; empty when there are no labels.
fn render_labels<'a>(labels: impl Iterator<Item = (&'a str, &'a str)>) -> String {
    let mut out = String::new();
    for (k, v) in labels {
        out.push(if out.is_empty() { '{' } else { ',' });
        out.push_str(k);
        out.push_str("=\"");
        for c in v.chars() {
            match c {
                '\\' => out.push_str("\\\\"),
                '"' => out.push_str("\\\""),
                '\n' => out.push_str("\\n"),
                c => out.push(c),
            }
        }
        out.push('"');
    }
    if !out.is_empty() {
        out.push('}');
    }
    out
}

/// Adds one label to a rendered label set.
fn with_label(rendered: &str, k: &str, v: &str) -> String {
    let extra = render_labels(std::iter::once((k, v)));
    match rendered.strip_suffix('}') {
        Some(open) => format!("{open},{}", &extra[1..]),
        None => extra,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_escaped_and_extended() {
        let l = render_labels([("a", "x\"y"), ("b", "c\\d\n")].into_iter());
        assert_eq!(l, r#"{a="x\"y",b="c\\d\n"}"#);
        assert_eq!(
            with_label(&l, "le", "0.5"),
            r#"{a="x\"y",b="c\\d\n",le="0.5"}"#
        );
        assert_eq!(with_label("", "le", "+Inf"), r#"{le="+Inf"}"#);
    }

    #[test]
    fn filters_apply_to_each_field() {
        let line = r#"{"ts":"2026-11-22T10:00:00Z","kind":"log","host":"web-01","source":"file","severity":"warning","body":"disk almost full"}"#;
        let ev = parse_line(line, 1).unwrap();
        let t = ev.ts.as_nanos_i64();
        let f = |f: Filter| f.matches(&ev);
        assert!(f(Filter::default()));
        assert!(f(Filter {
            severity: Some(Severity::Warning),
            ..Default::default()
        }));
        assert!(!f(Filter {
            severity: Some(Severity::Error),
            ..Default::default()
        }));
        assert!(f(Filter {
            q: Some("almost".into()),
            ..Default::default()
        }));
        assert!(!f(Filter {
            q: Some("empty".into()),
            ..Default::default()
        }));
        assert!(!f(Filter {
            host: Some("web-02".into()),
            ..Default::default()
        }));
        assert!(f(Filter {
            since: Some(t),
            until: Some(t + 1),
            ..Default::default()
        }));
        assert!(!f(Filter {
            until: Some(t),
            ..Default::default()
        }));
    }

    #[test]
    fn unknown_parameters_are_named() {
        let mut p = HashMap::new();
        p.insert("sinse".to_string(), "1h".to_string());
        let e = parse_params(&p, LOG_PARAMS).err().unwrap();
        assert!(e.message.contains("sinse"), "{}", e.message);
        let mut p = HashMap::new();
        p.insert("limit".to_string(), "2000000".to_string());
        assert!(parse_params(&p, LOG_PARAMS).is_err());
    }
}
