//! The retention thread: deletes closed segments that are too old, then the oldest closed
//! segments while the store is over its byte budget. Active segments are never deleted (age
//! rotation closes them). It also forgets expired dedupe ranges in memory.

use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::Arc;

use tracing::{debug, info, warn};

use crate::catalog::Catalog;
use crate::fsutil::{remove_if_exists, unix_ms};
use crate::options::StoreOptions;
use crate::segment::{open_name, zst_name, SegmentMeta};
use crate::shared::{lock, Shared};
use crate::stats::Counters;

/// Messages to the retention thread.
pub(crate) enum RetentionMsg {
    /// Run now (after a rotation or a sealing).
    Run,
    /// Stop.
    Stop,
}

/// Removes from `catalog` the segments retention deletes, and returns them.
pub(crate) fn select(catalog: &mut Catalog, now_ms: u64, opts: &StoreOptions) -> Vec<SegmentMeta> {
    let cutoff = now_ms.saturating_sub(opts.retention_max_age.as_millis() as u64);
    let expired: Vec<u64> = catalog
        .iter()
        .filter(|m| m.closed && m.last_write_ms < cutoff)
        .map(|m| m.seq)
        .collect();
    let mut victims: Vec<SegmentMeta> = expired
        .into_iter()
        .filter_map(|seq| catalog.remove(seq))
        .collect();
    let mut total = catalog.bytes_on_disk();
    while total > opts.retention_max_bytes {
        let Some(m) = catalog.oldest_closed().and_then(|seq| catalog.remove(seq)) else {
            break;
        };
        total -= m.bytes_on_disk;
        victims.push(m);
    }
    victims
}

/// Applies retention once; returns how many segments it deleted.
pub(crate) fn enforce(shared: &Shared) -> usize {
    let now = unix_ms();
    let victims = {
        let mut catalog = lock(&shared.catalog);
        let victims = select(&mut catalog, now, &shared.opts);
        // Counted as they leave the catalog (queries stop seeing them here), so that the
        // count never lags behind what a reader of the catalog or the directory sees.
        Counters::add(
            &shared.counters.retention_deleted_segments,
            victims.len() as u64,
        );
        victims
    };
    for m in &victims {
        // Both names: the sealer may be turning this very segment into a `.zst` (it
        // deletes its result when it finds the segment gone from the catalog).
        let Some(dir) = m.path.parent() else { continue };
        for path in [dir.join(open_name(m.seq)), dir.join(zst_name(m.seq))] {
            if let Err(e) = remove_if_exists(&path) {
                warn!(error = %e, "retention cannot delete a segment file");
            }
        }
        info!(
            path = %m.path.display(),
            bytes = m.bytes_on_disk,
            last_write_ms = m.last_write_ms,
            "retention deleted a segment"
        );
    }

    let window = shared.opts.dedupe_window.as_millis() as u64;
    let forgotten = lock(&shared.dedupe).expire(now.saturating_sub(window));
    if forgotten > 0 {
        debug!(forgotten, "expired dedupe ranges");
    }
    victims.len()
}

/// Runs retention every `retention_interval` and on request, until `Stop`.
pub(crate) fn run(shared: Arc<Shared>, wake: Receiver<RetentionMsg>) {
    let interval = shared.opts.retention_interval;
    while let Ok(RetentionMsg::Run) | Err(RecvTimeoutError::Timeout) = wake.recv_timeout(interval) {
        // Coalesce a burst of requests into one pass.
        let mut stop = false;
        loop {
            match wake.try_recv() {
                Ok(RetentionMsg::Run) => {}
                Ok(RetentionMsg::Stop) => {
                    stop = true;
                    break;
                }
                Err(_) => break,
            }
        }
        enforce(&shared);
        if stop {
            break;
        }
    }
    debug!("the store's retention stopped");
}
