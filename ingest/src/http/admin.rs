//! Operational endpoints: `/metrics`, `/healthz`, `/readyz`.

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};

use super::AppState;

/// `GET /metrics`: Prometheus text exposition of the ingest's own metrics.
pub async fn metrics(State(app): State<AppState>) -> Response {
    let text = app.metrics.render(&app.store.stats());
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        text,
    )
        .into_response()
}

/// `GET /healthz`: the process is up.
pub async fn healthz() -> &'static str {
    "ok\n"
}

/// `GET /readyz`: the store is writable (its last write succeeded) and accepting batches.
pub async fn readyz(State(app): State<AppState>) -> Response {
    let stats = app.store.stats();
    if !app.store.is_writable() {
        let why = stats
            .last_write_error
            .unwrap_or_else(|| "the store is not writable".into());
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("not ready: {why}\n"),
        )
            .into_response();
    }
    if stats.queue_len >= app.config.store.queue_capacity {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            "not ready: the store's write queue is full\n",
        )
            .into_response();
    }
    (StatusCode::OK, "ready\n").into_response()
}
