//! The agent's local endpoint (`[self_metrics] listen`, loopback by default): `/metrics` in
//! Prometheus text, and `/buffer/*` so `logops-agent buffer ...` can ask a running agent.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;

use crate::buffer::Buffer;
use crate::metrics::AgentMetrics;
use crate::pipeline::{Emitter, Shutdown};

#[derive(Clone)]
struct AdminState {
    buffer: Buffer,
    metrics: Arc<AgentMetrics>,
    emitter: Emitter,
}

fn internal(e: impl std::fmt::Display) -> Response {
    (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response()
}

async fn metrics(State(s): State<AdminState>) -> Response {
    let stats = s.buffer.stats().ok();
    let text = s.metrics.render(stats.as_ref());
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        text,
    )
        .into_response()
}

async fn status(State(s): State<AdminState>) -> Response {
    match s.buffer.stats() {
        Ok(st) => Json(st).into_response(),
        Err(e) => internal(e),
    }
}

async fn check(State(s): State<AdminState>) -> Response {
    match tokio::task::spawn_blocking(move || s.buffer.check()).await {
        Ok(Ok(r)) => Json(r).into_response(),
        Ok(Err(e)) => internal(e),
        Err(e) => internal(e),
    }
}

async fn dead_letters(State(s): State<AdminState>) -> Response {
    match s.buffer.dead_letters() {
        Ok(d) => Json(d).into_response(),
        Err(e) => internal(e),
    }
}

#[derive(Deserialize)]
struct ReplayParams {
    seq: Option<u64>,
}

async fn replay(State(s): State<AdminState>, Query(p): Query<ReplayParams>) -> Response {
    match s.emitter.replay(p.seq) {
        Ok(n) => Json(serde_json::json!({ "replayed": n })).into_response(),
        Err(e) => internal(e),
    }
}

/// Serves until `shutdown`. A bind failure is logged, not fatal: the agent's job is shipping.
pub async fn serve(addr: SocketAddr, emitter: Emitter, mut shutdown: Shutdown) {
    let state = AdminState {
        buffer: emitter.buffer().clone(),
        metrics: emitter.metrics().clone(),
        emitter,
    };
    let app = Router::new()
        .route("/metrics", get(metrics))
        .route("/buffer/status", get(status))
        .route("/buffer/check", get(check))
        .route("/buffer/dead-letters", get(dead_letters))
        .route("/buffer/replay", post(replay))
        .with_state(state);
    let listener = match tokio::net::TcpListener::bind(addr).await {
        Ok(l) => l,
        Err(e) => {
            tracing::error!(%addr, "self_metrics: cannot listen: {e}; /metrics is off");
            return;
        }
    };
    tracing::info!(%addr, "self metrics on http://{addr}/metrics");
    let result = axum::serve(listener, app)
        .with_graceful_shutdown(async move { shutdown.wait().await })
        .await;
    if let Err(e) = result {
        tracing::error!("self_metrics server: {e}");
    }
}
