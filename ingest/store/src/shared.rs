//! The state the store's threads share.

use std::sync::atomic::{AtomicBool, AtomicUsize};
use std::sync::{Mutex, MutexGuard, PoisonError};

use crate::catalog::Catalog;
use crate::dedupe::DedupeSet;
use crate::options::StoreOptions;
use crate::stats::Counters;

/// What the writer, compressor, retention threads and the API share.
pub(crate) struct Shared {
    /// The options the store was opened with.
    pub(crate) opts: StoreOptions,
    /// Every segment.
    pub(crate) catalog: Mutex<Catalog>,
    /// Stored batch ids.
    pub(crate) dedupe: Mutex<DedupeSet>,
    /// Counters for `stats`.
    pub(crate) counters: Counters,
    /// Batches queued for the writer.
    pub(crate) queue_len: AtomicUsize,
    /// False after a failed group commit, until one succeeds.
    pub(crate) writable: AtomicBool,
    /// The last write error.
    pub(crate) last_write_error: Mutex<Option<String>>,
}

/// Locks a mutex, carrying on if a thread panicked while holding it (the data it guards is
/// kept consistent by each critical section, which does not panic half-way on purpose).
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}
