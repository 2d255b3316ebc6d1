//! Starting and stopping the service: open the store, bind, serve, drain on shutdown.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::task::JoinHandle;

use crate::auth::KeyTable;
use crate::config::Config;
use crate::http::{router, App, AppState};
use crate::limits::TenantLimiter;
use crate::metrics::Metrics;
use logops_store::{Store, StoreOptions};

/// A running server.
pub struct Running {
    /// The address it listens on (useful with port 0).
    pub addr: SocketAddr,
    /// Whether it serves TLS.
    pub tls: bool,
    handle: axum_server::Handle<SocketAddr>,
    task: JoinHandle<std::io::Result<()>>,
    app: AppState,
}

/// The store options the configuration asks for.
pub fn store_options(config: &Config, metrics: &Arc<Metrics>) -> StoreOptions {
    let mut opts = StoreOptions::new(config.data_dir.join("store"));
    opts.segment_max_bytes = config.store.segment_max_bytes.bytes();
    opts.segment_max_age = config.store.segment_max_age.get();
    opts.retention_max_age = config.retention.max_age.get();
    opts.retention_max_bytes = config.retention.max_bytes.bytes();
    opts.retention_interval = config.retention.interval.get();
    opts.dedupe_window = config.store.dedupe_window.get();
    opts.queue_capacity = config.store.queue_capacity;
    opts.compression_level = config.store.compression_level;
    let fsync = metrics.fsync_seconds.clone();
    opts.fsync_observer = Some(Arc::new(move |d: Duration| fsync.observe(d.as_secs_f64())));
    opts
}

/// Opens the store, binds the listener and starts serving.
pub async fn start(config: Config) -> anyhow::Result<Running> {
    let keys = KeyTable::new(&config.tenants).context("loading tenant secrets")?;
    if config.tenants.is_empty() {
        tracing::warn!("no [[tenant]] is configured: every request will be refused (logops-ingest keygen --tenant NAME prints one)");
    }
    let tls = match &config.tls {
        Some(t) => Some(crate::tls::server_config(t)?),
        None => None,
    };
    let metrics = Arc::new(Metrics::new());
    std::fs::create_dir_all(&config.data_dir)
        .with_context(|| format!("creating data_dir {}", config.data_dir.display()))?;
    let opts = store_options(&config, &metrics);
    let store = tokio::task::spawn_blocking(move || Store::open(opts))
        .await
        .context("opening the store")??;

    let limiters = config
        .tenants
        .iter()
        .map(|t| {
            TenantLimiter::new(
                t.max_events_per_second,
                t.max_bytes_per_second.bytes(),
                t.burst.get(),
            )
        })
        .collect();
    let in_flight_kib =
        (config.limits.max_in_flight.bytes() / 1024).min(u64::from(u32::MAX >> 3)) as usize;
    let app = Arc::new(App {
        keys,
        limiters,
        store,
        metrics,
        in_flight: tokio::sync::Semaphore::new(in_flight_kib),
        config,
    });

    let listener = std::net::TcpListener::bind(app.config.listen)
        .with_context(|| format!("binding {}", app.config.listen))?;
    listener.set_nonblocking(true)?;
    let addr = listener.local_addr()?;
    let handle = axum_server::Handle::new();
    let service = router(app.clone()).into_make_service_with_connect_info::<SocketAddr>();
    let task = match tls.clone() {
        None => {
            let server = axum_server::from_tcp(listener)?.handle(handle.clone());
            tokio::spawn(server.serve(service))
        }
        Some(cfg) => {
            let rustls = axum_server::tls_rustls::RustlsConfig::from_config(cfg);
            let server =
                axum_server::tls_rustls::from_tcp_rustls(listener, rustls)?.handle(handle.clone());
            tokio::spawn(server.serve(service))
        }
    };
    tracing::info!(%addr, tls = tls.is_some(), data_dir = %app.config.data_dir.display(), tenants = app.config.tenants.len(), "logops-ingest listening");
    Ok(Running {
        addr,
        tls: tls.is_some(),
        handle,
        task,
        app,
    })
}

impl Running {
    /// The application state (for tests and the bench).
    pub fn app(&self) -> &AppState {
        &self.app
    }

    /// Stops accepting connections, lets in-flight requests finish (up to `grace`), then
    /// commits and fsyncs everything queued in the store and closes it.
    pub async fn shutdown(self, grace: Duration) -> anyhow::Result<()> {
        tracing::info!("shutting down: no new connections, finishing in-flight requests");
        self.handle.graceful_shutdown(Some(grace));
        let served = self.task.await.context("server task")?;
        let store = self.app.store.clone();
        tokio::task::spawn_blocking(move || store.shutdown())
            .await
            .context("store shutdown")?;
        tracing::info!("store closed; bye");
        served.context("serving")
    }
}
