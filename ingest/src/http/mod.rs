//! The HTTP API: routes, the shared application state and the error answer.

mod admin;
mod batch;
pub mod query;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use serde_json::json;

use crate::auth::{AuthError, Caller, KeyTable, Scope};
use crate::config::Config;
use crate::limits::TenantLimiter;
use crate::metrics::{AuthLabels, Metrics, RequestLabels, RouteLabels};
use logops_common::batch::TENANT_HEADER;
use logops_store::Store;

/// Everything a request handler needs.
pub struct App {
    /// The configuration the server started with.
    pub config: Config,
    /// API keys and HMAC secrets.
    pub keys: KeyTable,
    /// One rate limiter per tenant, in configuration order.
    pub limiters: Vec<TenantLimiter>,
    /// The embedded store.
    pub store: Store,
    /// Self-metrics.
    pub metrics: Arc<Metrics>,
    /// Bounds decompressed bytes held by requests at once (permits are KiB).
    pub in_flight: tokio::sync::Semaphore,
}

/// Shared state handle.
pub type AppState = Arc<App>;

/// The router with every route.
pub fn router(app: AppState) -> Router {
    Router::new()
        .route(logops_common::batch::BATCH_PATH, post(batch::post_batch))
        .route("/v1/logs", get(query::logs))
        .route("/v1/metrics", get(query::metrics))
        .route("/v1/records", get(query::records))
        .route("/v1/metrics/latest", get(query::latest))
        .route("/metrics", get(admin::metrics))
        .route("/healthz", get(admin::healthz))
        .route("/readyz", get(admin::readyz))
        .with_state(app)
}

/// An error answer: a status, a short code, a message and optional details, as JSON.
#[derive(Debug)]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// Short machine-readable code (`invalid_event`, `rate_limited`, ...).
    pub code: &'static str,
    /// What was wrong, in words.
    pub message: String,
    /// Extra JSON fields (line, field, limit, ...).
    pub details: serde_json::Map<String, serde_json::Value>,
    /// `Retry-After` seconds.
    pub retry_after: Option<u64>,
}

impl ApiError {
    /// An error with no details.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
            details: serde_json::Map::new(),
            retry_after: None,
        }
    }

    /// A 400 naming a query parameter.
    pub fn bad_param(name: &str, message: impl std::fmt::Display) -> Self {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "bad_parameter",
            format!("parameter `{name}`: {message}"),
        )
        .with("parameter", name)
    }

    /// Adds a detail field.
    pub fn with(mut self, key: &str, value: impl Into<serde_json::Value>) -> Self {
        self.details.insert(key.to_owned(), value.into());
        self
    }

    /// Sets `Retry-After`.
    pub fn retry_after(mut self, secs: u64) -> Self {
        self.retry_after = Some(secs);
        self
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut body = json!({ "error": self.code, "message": self.message });
        if let Some(obj) = body.as_object_mut() {
            obj.extend(self.details);
        }
        let mut resp = (self.status, axum::Json(body)).into_response();
        if let Some(secs) = self.retry_after {
            resp.headers_mut()
                .insert("retry-after", HeaderValue::from(secs));
        }
        resp
    }
}

impl App {
    /// Authenticates and authorizes a request; every refusal is an audit log line (source
    /// address, tenant if known, reason; never the key) and a metric.
    pub fn authenticate(
        &self,
        peer: SocketAddr,
        headers: &HeaderMap,
        needed: Scope,
    ) -> Result<Caller, ApiError> {
        let header = headers
            .get(axum::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok());
        let requested = headers.get(TENANT_HEADER).and_then(|v| v.to_str().ok());
        let result = self
            .keys
            .authenticate(header)
            .and_then(|c| self.keys.authorize(&c, requested, needed).map(|()| c));
        result.map_err(|e| {
            let tenant = match &e {
                AuthError::Forbidden(_) => self.keys.authenticate(header).ok().map(|c| c.tenant),
                _ => None,
            };
            self.auth_failure(peer, tenant.as_deref(), &e)
        })
    }

    /// Logs and counts an auth failure and turns it into the answer.
    pub fn auth_failure(&self, peer: SocketAddr, tenant: Option<&str>, e: &AuthError) -> ApiError {
        tracing::warn!(target: "audit", peer = %peer, tenant = tenant.unwrap_or("-"), reason = e.reason(), "request refused: {e}");
        self.metrics
            .auth_failures
            .get_or_create(&AuthLabels { reason: e.reason() })
            .inc();
        let status = StatusCode::from_u16(e.status()).unwrap_or(StatusCode::UNAUTHORIZED);
        let mut err = ApiError::new(
            status,
            if status == StatusCode::FORBIDDEN {
                "forbidden"
            } else {
                "unauthorized"
            },
            e.to_string(),
        );
        err.details.insert("reason".into(), e.reason().into());
        err
    }

    /// Counts a finished request and its latency.
    pub fn observe(
        &self,
        route: &'static str,
        status: StatusCode,
        tenant: Option<&str>,
        started: Instant,
    ) {
        self.metrics
            .requests
            .get_or_create(&RequestLabels {
                route,
                status: status.as_u16(),
                tenant: tenant.unwrap_or_default().to_owned(),
            })
            .inc();
        self.metrics
            .request_seconds
            .get_or_create(&RouteLabels { route })
            .observe(started.elapsed().as_secs_f64());
    }
}
