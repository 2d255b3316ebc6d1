//! Definitions shared by `logops-agent` and `logops-ingest`: wire format v1 (events, batch
//! ids, headers, request signing) and the human units their configuration files use.

pub mod batch;
pub mod check;
pub mod event;
pub mod sign;
pub mod timestamp;
pub mod units;
pub mod write;

pub use batch::BatchId;
pub use check::check_line;
pub use event::{parse_line, Event, Kind, LineError, MetricType, MetricValue, Payload, Severity};
pub use timestamp::Timestamp;
