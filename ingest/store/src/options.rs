//! `StoreOptions`: where the store lives and its limits.

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// Called with the latency of each `fdatasync` of the write path (segment files and the
/// commit log), e.g. to feed a histogram. Runs on the writer thread: keep it cheap.
pub type FsyncObserver = Arc<dyn Fn(Duration) + Send + Sync>;

const MIB: u64 = 1 << 20;
const GIB: u64 = 1 << 30;

/// How the store is configured. [`StoreOptions::new`] gives the defaults.
#[derive(Clone)]
pub struct StoreOptions {
    /// The store directory (created if missing).
    pub dir: PathBuf,
    /// An active segment is closed once it holds at least this many bytes (checked after
    /// each group commit; a batch is never split). Default 64 MiB.
    pub segment_max_bytes: u64,
    /// An active segment is closed once it is this old. Default 1 h.
    pub segment_max_age: Duration,
    /// Closed segments whose last write is older than this are deleted. Default 7 days.
    pub retention_max_age: Duration,
    /// While the store takes more bytes than this, its oldest closed segment is deleted.
    /// Default 10 GiB.
    pub retention_max_bytes: u64,
    /// How often retention runs (it also runs after each rotation). Default 60 s.
    pub retention_interval: Duration,
    /// How long a stored batch id is remembered at least. Default 24 h.
    pub dedupe_window: Duration,
    /// How many batches may wait for the writer; more is `SubmitError::QueueFull`.
    /// Default 1024.
    pub queue_capacity: usize,
    /// The most frame bytes (compressed) one group commit takes (at least one batch).
    /// Default 16 MiB (shorter fsyncs, steadier latency).
    pub max_group_bytes: usize,
    /// The zstd level of the frames the store makes (lines that did not come in a frame
    /// the store can keep, repacked small frames). Default 1 (measured faster than 3 and no
    /// larger on NDJSON).
    pub compression_level: i32,
    /// Observes each `fdatasync` of the write path. Default none.
    pub fsync_observer: Option<FsyncObserver>,
    /// The commit log is compacted into `commits.snapshot` once it is larger than this.
    /// Default 64 MiB.
    pub commit_log_max_bytes: u64,
}

impl StoreOptions {
    /// The defaults, for a store in `dir`.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        StoreOptions {
            dir: dir.into(),
            segment_max_bytes: 64 * MIB,
            segment_max_age: Duration::from_secs(3600),
            retention_max_age: Duration::from_secs(7 * 24 * 3600),
            retention_max_bytes: 10 * GIB,
            retention_interval: Duration::from_secs(60),
            dedupe_window: Duration::from_secs(24 * 3600),
            queue_capacity: 1024,
            max_group_bytes: 16 * MIB as usize,
            compression_level: 1,
            fsync_observer: None,
            commit_log_max_bytes: 64 * MIB,
        }
    }
}

impl fmt::Debug for StoreOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StoreOptions")
            .field("dir", &self.dir)
            .field("segment_max_bytes", &self.segment_max_bytes)
            .field("segment_max_age", &self.segment_max_age)
            .field("retention_max_age", &self.retention_max_age)
            .field("retention_max_bytes", &self.retention_max_bytes)
            .field("retention_interval", &self.retention_interval)
            .field("dedupe_window", &self.dedupe_window)
            .field("queue_capacity", &self.queue_capacity)
            .field("max_group_bytes", &self.max_group_bytes)
            .field("compression_level", &self.compression_level)
            .field("fsync_observer", &self.fsync_observer.is_some())
            .field("commit_log_max_bytes", &self.commit_log_max_bytes)
            .finish()
    }
}
