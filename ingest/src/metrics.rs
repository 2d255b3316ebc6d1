//! The ingest's own metrics, served as Prometheus text on `GET /metrics`.

use std::sync::atomic::AtomicU64;

use prometheus_client::encoding::{text::encode, EncodeLabelSet};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

use logops_store::StoreStats;

/// Labels of a finished request.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    /// The route pattern, e.g. `/v1/batch`.
    pub route: &'static str,
    /// HTTP status code.
    pub status: u16,
    /// Tenant, or empty when unknown.
    pub tenant: String,
}

/// Labels of accepted/rejected events and bytes.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabels {
    /// Tenant, or empty when unknown.
    pub tenant: String,
    /// `accepted`, or the reason for the rejection.
    pub outcome: &'static str,
}

/// Labels with a tenant only.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TenantLabels {
    /// Tenant.
    pub tenant: String,
}

/// Labels of stored events by how their frame came to be.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct FrameLabels {
    /// Tenant.
    pub tenant: String,
    /// `kept` (the zstd frame the agent sent, stored as it is) or `compressed` (by the
    /// ingest).
    pub frame: &'static str,
}

/// Labels of a rate-limit refusal.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct LimitLabels {
    /// Tenant.
    pub tenant: String,
    /// `events` or `bytes`.
    pub limit: &'static str,
}

/// Labels of an auth failure.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct AuthLabels {
    /// Short reason (`unknown_key`, `signature_mismatch`, ...).
    pub reason: &'static str,
}

/// Labels of a route.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabels {
    /// The route pattern.
    pub route: &'static str,
}

/// Every metric the ingest exports.
pub struct Metrics {
    registry: Registry,
    /// Requests by route, status and tenant.
    pub requests: Family<RequestLabels, Counter>,
    /// Request latency by route.
    pub request_seconds: Family<RouteLabels, Histogram>,
    /// Events by tenant and outcome.
    pub events: Family<OutcomeLabels, Counter>,
    /// Request body bytes (as sent) by tenant and outcome.
    pub bytes: Family<OutcomeLabels, Counter>,
    /// Stored events by tenant and by whether their frame was kept as sent.
    pub frame_events: Family<FrameLabels, Counter>,
    /// Batches answered as duplicates.
    pub duplicates: Family<TenantLabels, Counter>,
    /// Requests refused by a rate limit.
    pub rate_limited: Family<LimitLabels, Counter>,
    /// Auth failures by reason.
    pub auth_failures: Family<AuthLabels, Counter>,
    /// fdatasync latency (segments and commit log).
    pub fsync_seconds: Histogram,
    /// Bytes of the embedded store on disk.
    pub store_bytes: Gauge<u64, AtomicU64>,
    /// Segments of the embedded store.
    pub store_segments: Gauge<u64, AtomicU64>,
    /// Batches waiting for the store's writer.
    pub store_queue: Gauge<u64, AtomicU64>,
    /// Segments deleted by retention.
    pub retention_deleted: Gauge<u64, AtomicU64>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Creates and registers every metric.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("logops_ingest");
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register(
            "requests",
            "HTTP requests by route, status and tenant",
            requests.clone(),
        );
        let request_seconds = Family::<RouteLabels, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(0.0005, 2.0, 16))
        });
        registry.register(
            "request_duration_seconds",
            "Request latency by route",
            request_seconds.clone(),
        );
        let events = Family::<OutcomeLabels, Counter>::default();
        registry.register(
            "events",
            "Events by tenant and outcome (accepted or the rejection reason)",
            events.clone(),
        );
        let bytes = Family::<OutcomeLabels, Counter>::default();
        registry.register(
            "request_bytes",
            "Request body bytes as sent, by tenant and outcome",
            bytes.clone(),
        );
        let frame_events = Family::<FrameLabels, Counter>::default();
        registry.register(
            "frame_events",
            "Stored events by tenant and frame: kept (the agent's zstd frame, stored as sent) or compressed (by the ingest)",
            frame_events.clone(),
        );
        let duplicates = Family::<TenantLabels, Counter>::default();
        registry.register(
            "duplicate_batches",
            "Resent batches acknowledged without writing them again",
            duplicates.clone(),
        );
        let rate_limited = Family::<LimitLabels, Counter>::default();
        registry.register(
            "rate_limited",
            "Batches refused with 429 by tenant and limit",
            rate_limited.clone(),
        );
        let auth_failures = Family::<AuthLabels, Counter>::default();
        registry.register(
            "auth_failures",
            "Refused requests by reason",
            auth_failures.clone(),
        );
        let fsync_seconds = Histogram::new(exponential_buckets(0.0001, 2.0, 16));
        registry.register(
            "fsync_duration_seconds",
            "fdatasync latency of store segments and the commit log",
            fsync_seconds.clone(),
        );
        let store_bytes = Gauge::<u64, AtomicU64>::default();
        registry.register(
            "store_bytes",
            "Bytes of the embedded store on disk",
            store_bytes.clone(),
        );
        let store_segments = Gauge::<u64, AtomicU64>::default();
        registry.register(
            "store_segments",
            "Segments of the embedded store",
            store_segments.clone(),
        );
        let store_queue = Gauge::<u64, AtomicU64>::default();
        registry.register(
            "store_queue_batches",
            "Batches waiting for the store writer",
            store_queue.clone(),
        );
        let retention_deleted = Gauge::<u64, AtomicU64>::default();
        registry.register(
            "retention_deleted_segments",
            "Segments deleted by retention since start",
            retention_deleted.clone(),
        );
        Metrics {
            registry,
            requests,
            request_seconds,
            events,
            bytes,
            frame_events,
            duplicates,
            rate_limited,
            auth_failures,
            fsync_seconds,
            store_bytes,
            store_segments,
            store_queue,
            retention_deleted,
        }
    }

    /// Renders the Prometheus text exposition, refreshing the store gauges first.
    pub fn render(&self, store: &StoreStats) -> String {
        self.store_bytes.set(store.bytes_on_disk);
        self.store_segments.set(store.segments);
        self.store_queue.set(store.queue_len as u64);
        self.retention_deleted.set(store.retention_deleted_segments);
        let mut out = String::with_capacity(16 * 1024);
        encode(&mut out, &self.registry).expect("writing to a String cannot fail");
        out
    }
}
