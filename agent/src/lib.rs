//! `logops-agent`: one lightweight daemon per server. Sources turn the outside world into
//! events; the core buffers them durably (sled) with each source's position in the same
//! atomic write, and the shipper sends compressed batches to `logops-ingest`.

pub mod admin;
pub mod app;
pub mod buffer;
pub mod chunk;
pub mod codec;
pub mod config;
pub mod footprint;
pub mod metrics;
pub mod pipeline;
pub mod shipper;
pub mod sources;
pub mod tls;
