//! `logops-ingest`: the thin HTTP(S) endpoint that authenticates LogOps agents, validates,
//! rate-limits and deduplicates their batches, and stores them durably.
//!
//! The binary is `src/main.rs`; this library holds everything so tests can run the server
//! in-process ([`server::start`]).

pub mod auth;
pub mod batch;
pub mod client;
pub mod config;
pub mod http;
pub mod limits;
pub mod metrics;
pub mod server;
pub mod tls;
