//! `POST /v1/batch`: authenticate, bound, decompress, validate, rate-limit, deduplicate and
//! store a batch; answer 200 only once it is durable.

use std::net::SocketAddr;
use std::str::FromStr;
use std::time::Instant;

use axum::body::{Body, Bytes};
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use http_body_util::{BodyExt, LengthLimitError, Limited};
use serde_json::json;
use tracing::Instrument;

use super::{ApiError, App, AppState};
use crate::auth::{Caller, Scope};
use crate::batch::{decompress, decompressed_bound, to_frames, validate, BatchFrames, BodyError};
use crate::limits::retry_after_secs;
use crate::metrics::{FrameLabels, LimitLabels, OutcomeLabels, TenantLabels};
use logops_common::batch::{check_agent_id, Encoding, AGENT_HEADER, BATCH_HEADER};
use logops_common::sign::{SIGNATURE_HEADER, TIMESTAMP_HEADER};
use logops_common::BatchId;
use logops_store::{SubmitError, WriteBatch, WriteOutcome};

const ROUTE: &str = "/v1/batch";

/// Bodies larger than this are decompressed and validated on the blocking pool, so that
/// one big batch does not stall the async workers.
const INLINE_BODY_LIMIT: usize = 1 << 20;

/// When each stage of a request ended, for the timing log (debug level, target
/// `logops_ingest::timing`): where acknowledgement latency comes from.
#[derive(Debug, Default)]
struct Stages {
    /// The body has arrived.
    read: Option<Instant>,
    /// Decompressed and validated.
    checked: Option<Instant>,
    /// Queued for the store.
    submitted: Option<Instant>,
    /// Events in the batch.
    events: u64,
}

/// The handler.
pub async fn post_batch(
    State(app): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    mut body: Body,
) -> Response {
    let started = Instant::now();
    let batch_header = header(&headers, BATCH_HEADER).unwrap_or("-").to_owned();
    let span = tracing::debug_span!("batch", batch = %batch_header, peer = %peer);
    let mut tenant = None;
    let mut stages = Stages::default();
    let result = handle(&app, peer, &headers, &mut body, &mut tenant, &mut stages)
        .instrument(span.clone())
        .await;
    let response = match result {
        Ok(r) => r,
        Err(e) => {
            if e.status != StatusCode::REQUEST_TIMEOUT {
                let limits = &app.config.limits;
                let budget = limits.max_body.bytes().saturating_mul(DISCARD_FACTOR);
                discard_rest(&mut body, budget, limits.request_timeout.get())
                    .instrument(span)
                    .await;
            }
            if e.status.is_server_error() || e.status == StatusCode::TOO_MANY_REQUESTS {
                tracing::info!(batch = %batch_header, tenant = tenant.as_deref().unwrap_or("-"), status = e.status.as_u16(), "batch deferred: {}", e.message);
            } else {
                tracing::warn!(batch = %batch_header, tenant = tenant.as_deref().unwrap_or("-"), status = e.status.as_u16(), "batch refused: {}", e.message);
            }
            e.into_response()
        }
    };
    app.observe(ROUTE, response.status(), tenant.as_deref(), started);
    if tracing::enabled!(target: "logops_ingest::timing", tracing::Level::DEBUG) {
        let us = |from: Instant, to: Option<Instant>| {
            to.map_or(0, |t| t.saturating_duration_since(from).as_micros() as u64)
        };
        let done = Some(Instant::now());
        let read = stages.read.unwrap_or(started);
        let checked = stages.checked.unwrap_or(read);
        let submitted = stages.submitted.unwrap_or(checked);
        tracing::debug!(
            target: "logops_ingest::timing",
            batch = %batch_header,
            status = response.status().as_u16(),
            events = stages.events,
            read_us = us(started, stages.read),
            check_us = us(read, stages.checked),
            submit_us = us(checked, stages.submitted),
            store_us = us(submitted, stages.submitted.and(done)),
            total_us = us(started, done),
            "request"
        );
    }
    response
}

/// How much of a refused body is read and thrown away, in multiples of `limits.max_body`.
const DISCARD_FACTOR: u64 = 4;

/// Reads and throws away what is left of a refused request's body, up to `budget` bytes and
/// for at most `within`. An HTTP client sends the whole body before it reads the answer, and
/// a connection closed with unread bytes is reset by the kernel, so without this a client
/// that sent a slightly oversized batch (or a batch with a bad key) would see a broken pipe
/// instead of our 413 (or 401) and retry the same batch forever. Bodies larger than the
/// budget still get the answer, but the client may not read it.
async fn discard_rest(body: &mut Body, budget: u64, within: std::time::Duration) {
    use axum::body::HttpBody as _;
    if body.is_end_stream() {
        return;
    }
    let mut left = budget;
    let drained = tokio::time::timeout(within, async {
        while let Some(frame) = body.frame().await {
            let Ok(frame) = frame else { return false };
            if let Some(data) = frame.data_ref() {
                left = left.saturating_sub(data.len() as u64);
                if left == 0 {
                    return false;
                }
            }
        }
        true
    })
    .await;
    if drained != Ok(true) {
        tracing::debug!(
            budget,
            "a refused body was not read to its end; the connection closes"
        );
    }
}

fn header<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

fn count_rejected(app: &App, tenant: &str, outcome: &'static str, events: u64, bytes: u64) {
    let labels = OutcomeLabels {
        tenant: tenant.to_owned(),
        outcome,
    };
    if events > 0 {
        app.metrics.events.get_or_create(&labels).inc_by(events);
    }
    app.metrics.bytes.get_or_create(&labels).inc_by(bytes);
}

async fn handle(
    app: &App,
    peer: SocketAddr,
    headers: &HeaderMap,
    body: &mut Body,
    tenant_out: &mut Option<String>,
    stages: &mut Stages,
) -> Result<Response, ApiError> {
    let caller: Caller = app.authenticate(peer, headers, Scope::Write)?;
    let tenant = caller.tenant.clone();
    *tenant_out = Some(tenant.to_string());

    // Envelope headers.
    let agent = header(headers, AGENT_HEADER).ok_or_else(|| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "missing_header",
            "missing X-LogOps-Agent header",
        )
        .with("header", "X-LogOps-Agent")
    })?;
    check_agent_id(agent).map_err(|m| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "bad_header",
            format!("X-LogOps-Agent: {m}"),
        )
        .with("header", "X-LogOps-Agent")
    })?;
    let id: BatchId = header(headers, BATCH_HEADER)
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                "missing_header",
                "missing X-LogOps-Batch header",
            )
            .with("header", "X-LogOps-Batch")
        })?
        .parse()
        .map_err(|m| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                "bad_header",
                format!("X-LogOps-Batch: {m}"),
            )
            .with("header", "X-LogOps-Batch")
        })?;
    if id.agent != agent {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "bad_header",
            format!("X-LogOps-Batch `{id}` does not belong to X-LogOps-Agent `{agent}`"),
        )
        .with("header", "X-LogOps-Batch"));
    }
    let encoding = Encoding::from_str(header(headers, "content-encoding").unwrap_or("identity"))
        .map_err(|m| {
            ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_encoding",
                m,
            )
        })?;

    // The body as sent, bounded.
    let max_body = app.config.limits.max_body.as_usize();
    let too_large = || {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "body_too_large",
            format!(
                "the body is larger than {} (limits.max_body); split the batch",
                app.config.limits.max_body
            ),
        )
        .with("limit", max_body)
    };
    if let Some(len) = header(headers, "content-length").and_then(|v| v.parse::<u64>().ok()) {
        if len > max_body as u64 {
            count_rejected(app, &tenant, "body_too_large", 0, len);
            return Err(too_large());
        }
    }
    let timeout = app.config.limits.request_timeout.get();
    let raw: Bytes =
        match tokio::time::timeout(timeout, Limited::new(&mut *body, max_body).collect()).await {
            Err(_) => {
                return Err(ApiError::new(
                    StatusCode::REQUEST_TIMEOUT,
                    "timeout",
                    format!(
                        "the body did not arrive within {}",
                        app.config.limits.request_timeout
                    ),
                ))
            }
            Ok(Err(e)) if e.downcast_ref::<LengthLimitError>().is_some() => {
                count_rejected(app, &tenant, "body_too_large", 0, max_body as u64);
                return Err(too_large());
            }
            Ok(Err(e)) => {
                return Err(ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "body_read",
                    format!("reading the body failed: {e}"),
                ))
            }
            Ok(Ok(c)) => c.to_bytes(),
        };
    let sent_bytes = raw.len() as u64;
    stages.read = Some(Instant::now());

    // Signature over the body as sent.
    let now = jiff::Timestamp::now().as_second();
    app.keys
        .verify_signature(
            &caller,
            header(headers, TIMESTAMP_HEADER),
            header(headers, SIGNATURE_HEADER),
            &raw,
            now,
            app.config.signing.window.get().as_secs(),
        )
        .map_err(|e| {
            count_rejected(app, &tenant, "unauthorized", 0, sent_bytes);
            app.auth_failure(peer, Some(&tenant), &e)
        })?;

    // A resend of a stored batch: answer before spending any work on it.
    if app.store.contains(&tenant, &id) {
        app.metrics
            .duplicates
            .get_or_create(&TenantLabels {
                tenant: tenant.to_string(),
            })
            .inc();
        return Ok(duplicate(&id));
    }

    // Bound the decompressed bytes held across all requests: reserve what this body can
    // decompress to (exact for identity and for zstd frames that state their size).
    let max_decompressed = app.config.limits.max_decompressed.as_usize();
    let reserve = decompressed_bound(&raw, encoding, max_decompressed).map_err(|e| {
        count_rejected(app, &tenant, "decompressed_too_large", 0, sent_bytes);
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "decompressed_too_large",
            e.to_string(),
        )
        .with("limit", max_decompressed)
    })?;
    let kib = u32::try_from(reserve.div_ceil(1024).max(1)).unwrap_or(u32::MAX);
    let _permit = app.in_flight.try_acquire_many(kib).map_err(|_| {
        count_rejected(app, &tenant, "busy", 0, sent_bytes);
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "busy",
            "too many bytes in flight (limits.max_in_flight); retry",
        )
        .retry_after(1)
    })?;

    // Decompress (never past the reservation), validate, and make the store's frames (the
    // body's own where they hold exactly the validated lines).
    let level = app.config.store.compression_level;
    let work = move || -> Result<(BatchFrames, u64, u64), BodyError> {
        let data = decompress(&raw, encoding, reserve)?;
        let lines = validate(&data)?;
        let frames = to_frames(&raw, encoding, &data, &lines, level)?;
        Ok((frames, lines.len() as u64, data.len() as u64))
    };
    let checked = if sent_bytes as usize > INLINE_BODY_LIMIT {
        tokio::task::spawn_blocking(work).await.map_err(|e| {
            ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                format!("validation task failed: {e}"),
            )
        })?
    } else {
        work()
    };
    let (built, events, decompressed) = checked.map_err(|e| {
        let (status, code) = match &e {
            BodyError::TooLarge { .. } | BodyError::Unaddressable => {
                (StatusCode::PAYLOAD_TOO_LARGE, "decompressed_too_large")
            }
            BodyError::Invalid(_) | BodyError::NotUtf8 { .. } => {
                (StatusCode::BAD_REQUEST, "invalid_event")
            }
            BodyError::Corrupt { .. } => (StatusCode::BAD_REQUEST, "corrupt_body"),
            BodyError::Empty => (StatusCode::BAD_REQUEST, "empty_batch"),
            BodyError::Compress(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
        };
        count_rejected(app, &tenant, code, 0, sent_bytes);
        let mut err = ApiError::new(status, code, e.to_string());
        match e {
            BodyError::Invalid(le) => {
                err = err.with("line", le.line).with("detail", le.message);
                if let Some(f) = le.field {
                    err = err.with("field", f);
                }
            }
            BodyError::NotUtf8 { line, column } => {
                err = err.with("line", line).with("column", column)
            }
            BodyError::TooLarge { limit } => err = err.with("limit", limit),
            _ => {}
        }
        err
    })?;
    stages.checked = Some(Instant::now());
    stages.events = events;

    // Rate limits, charged only for batches that will be written.
    if let Err(limited) = app.limiters[caller.tenant_index].try_take(events, decompressed) {
        app.metrics
            .rate_limited
            .get_or_create(&LimitLabels {
                tenant: tenant.to_string(),
                limit: limited.limit.as_str(),
            })
            .inc();
        count_rejected(app, &tenant, "rate_limited", events, sent_bytes);
        let secs = retry_after_secs(limited.retry_after);
        return Err(ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limited",
            format!(
                "tenant `{tenant}` is over its {} per second limit; retry in {secs} s",
                limited.limit.as_str()
            ),
        )
        .with("limit", limited.limit.as_str())
        .retry_after(secs));
    }

    // Store durably (group commit) and answer.
    let kept_lines = built.kept_lines;
    let batch = WriteBatch {
        tenant: tenant.clone(),
        id: id.clone(),
        frames: built.frames,
    };
    let receiver = app.store.submit(batch).map_err(|e| {
        count_rejected(app, &tenant, "store_busy", events, sent_bytes);
        match e {
            SubmitError::QueueFull => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "store_busy",
                "the store's write queue is full; retry",
            )
            .retry_after(1),
            SubmitError::Closed => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "shutting_down",
                "the ingest is shutting down; retry",
            )
            .retry_after(5),
        }
    })?;
    stages.submitted = Some(Instant::now());
    let outcome = receiver
        .await
        .map_err(|_| {
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "store_unavailable",
                "the store stopped before the batch was written; retry",
            )
            .retry_after(5)
        })?
        .map_err(|e| {
            tracing::error!(batch = %id, tenant = %tenant, "store write failed: {e}");
            count_rejected(app, &tenant, "store_error", events, sent_bytes);
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "store_error",
                format!("the store could not write the batch: {e}"),
            )
            .retry_after(5)
        })?;
    match outcome {
        WriteOutcome::Duplicate => {
            app.metrics
                .duplicates
                .get_or_create(&TenantLabels {
                    tenant: tenant.to_string(),
                })
                .inc();
            Ok(duplicate(&id))
        }
        WriteOutcome::Stored => {
            let labels = OutcomeLabels {
                tenant: tenant.to_string(),
                outcome: "accepted",
            };
            app.metrics.events.get_or_create(&labels).inc_by(events);
            app.metrics.bytes.get_or_create(&labels).inc_by(sent_bytes);
            for (frame, n) in [("kept", kept_lines), ("compressed", events - kept_lines)] {
                app.metrics
                    .frame_events
                    .get_or_create(&FrameLabels {
                        tenant: tenant.to_string(),
                        frame,
                    })
                    .inc_by(n);
            }
            tracing::debug!(batch = %id, tenant = %tenant, events, "batch stored");
            Ok((StatusCode::OK, Json(json!({ "stored": true, "duplicate": false, "batch": id.to_string(), "events": events }))).into_response())
        }
    }
}

fn duplicate(id: &BatchId) -> Response {
    tracing::debug!(batch = %id, "duplicate batch acknowledged");
    (
        StatusCode::OK,
        Json(json!({ "stored": true, "duplicate": true, "batch": id.to_string() })),
    )
        .into_response()
}
