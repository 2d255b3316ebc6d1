//! The store's error types.

use std::io;
use std::path::PathBuf;
use std::sync::Arc;

/// Why `Store::submit` refused a batch without queueing it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SubmitError {
    /// The writer's queue is full (`StoreOptions::queue_capacity`); retry later (HTTP 503).
    #[error("the store's write queue is full; retry later")]
    QueueFull,
    /// The store is shut down.
    #[error("the store is shut down")]
    Closed,
}

/// An error of the store. Cheap to clone: every batch of a failed group gets a copy.
#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    /// A file-system operation failed.
    #[error("cannot {op} {}: {source}", path.display())]
    Io {
        /// What was being done, e.g. `write to segment`.
        op: &'static str,
        /// The file or directory concerned.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: Arc<io::Error>,
    },
    /// Another process (or another `Store` in this process) has the directory open.
    #[error(
        "the store directory {} is already in use by another process (its lock file {} is held)",
        dir.display(),
        dir.join(crate::dirlock::LOCK_FILE).display()
    )]
    Locked {
        /// The store directory.
        dir: PathBuf,
    },
    /// A file of the store does not have the expected format.
    #[error("{} is corrupt: {what}", path.display())]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        what: String,
    },
    /// A file in the store directory is in a format this version does not read.
    #[error(
        "{} is {what}, written by a development version of logops-ingest whose segment format this version does not read; move it out of the store directory",
        path.display()
    )]
    OldFormat {
        /// The file.
        path: PathBuf,
        /// What it is.
        what: &'static str,
    },
    /// A batch handed to `submit` breaks the `WriteBatch` contract.
    #[error("batch {id} of tenant `{tenant}` is invalid: {reason}")]
    InvalidBatch {
        /// The batch's tenant.
        tenant: String,
        /// The batch id, `<agent>:<seq>`.
        id: String,
        /// What is wrong.
        reason: String,
    },
    /// A background thread could not be started.
    #[error("cannot start the store's {name} thread: {source}")]
    Spawn {
        /// The thread's name.
        name: &'static str,
        /// The operating system's error.
        #[source]
        source: Arc<io::Error>,
    },
    /// The batch was not queued.
    #[error(transparent)]
    Submit(#[from] SubmitError),
    /// The store shut down before answering.
    #[error("the store shut down before the batch was committed")]
    Closed,
}

impl StoreError {
    /// An I/O error while doing `op` on `path`.
    pub(crate) fn io(op: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Self {
        StoreError::Io {
            op,
            path: path.into(),
            source: Arc::new(source),
        }
    }

    /// A closure for `map_err` that wraps an I/O error of `op` on `path`.
    pub(crate) fn io_fn<'a>(
        op: &'static str,
        path: &'a std::path::Path,
    ) -> impl FnOnce(io::Error) -> StoreError + 'a {
        move |e| StoreError::io(op, path, e)
    }

    /// The I/O error kind, if this is an I/O error.
    pub fn io_kind(&self) -> Option<io::ErrorKind> {
        match self {
            StoreError::Io { source, .. } => Some(source.kind()),
            _ => None,
        }
    }
}
