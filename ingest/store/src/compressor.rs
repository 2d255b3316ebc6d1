//! The compressor thread: turns closed `.ndjson` segments into `.ndjson.zst`.
//!
//! Steps per segment: compress into `<seq>.ndjson.zst.tmp`, fsync it, rename it to
//! `<seq>.ndjson.zst`, fsync the directory, switch the catalog to the compressed file, then
//! delete the `.ndjson`. A crash at any step leaves either a `.tmp` (removed at open) or both
//! files (the `.ndjson` is removed at open).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, Sender};
use std::sync::Arc;

use tracing::{debug, error, info, warn};

use crate::compress::{compress_segment, FramePlan};
use crate::error::StoreError;
use crate::fsutil::{remove_gradually, remove_if_exists, sync_dir};
use crate::retention::RetentionMsg;
use crate::segment::zst_name;
use crate::shared::{lock, Shared};
use crate::stats::Counters;

/// Work for the compressor.
pub(crate) enum CompressMsg {
    /// Compress this closed segment, along the writer's plan if it has one.
    Segment(u64, Option<FramePlan>),
    /// Stop (pending segments are compressed at the next open).
    Stop,
}

/// Runs the compressor until `Stop` or `stop` is set.
pub(crate) fn run(
    shared: Arc<Shared>,
    work: Receiver<CompressMsg>,
    retention: Sender<RetentionMsg>,
    stop: Arc<AtomicBool>,
) {
    while let Ok(CompressMsg::Segment(seq, plan)) = work.recv() {
        if stop.load(Ordering::Relaxed) {
            break;
        }
        match compress_one(&shared, seq, plan.as_ref()) {
            Ok(true) => {
                // Compression freed space; retention may have less to delete (or, for a
                // segment that is already too old, more).
                let _ = retention.send(RetentionMsg::Run);
            }
            Ok(false) => {}
            Err(e) => {
                Counters::add(&shared.counters.compression_failures, 1);
                error!(error = %e, seq, "cannot compress a closed segment; it stays uncompressed until the next open");
            }
        }
    }
    debug!("the store's compressor stopped");
}

/// Compresses segment `seq` if it is still closed and uncompressed; says whether it did.
fn compress_one(shared: &Shared, seq: u64, plan: Option<&FramePlan>) -> Result<bool, StoreError> {
    let Some(src) = lock(&shared.catalog)
        .get(seq)
        .filter(|m| m.closed && !m.compressed)
        .cloned()
    else {
        return Ok(false);
    };
    let Some(dir) = src.path.parent().map(|d| d.to_path_buf()) else {
        return Ok(false);
    };
    let dst = dir.join(zst_name(seq));
    let tmp = dir.join(format!("{}.tmp", zst_name(seq)));
    let compressed = compress_segment(
        &src.path,
        src.committed_len,
        &tmp,
        shared.opts.compression_level,
        (src.created_ms, src.last_write_ms),
        plan,
    );
    let (index, size) = match compressed {
        Ok(done) => done,
        Err(e) => {
            if let Err(rm) = remove_if_exists(&tmp) {
                warn!(error = %rm, "cannot remove a failed compression's temporary file");
            }
            return Err(e);
        }
    };
    std::fs::rename(&tmp, &dst).map_err(StoreError::io_fn("rename into", &dst))?;
    sync_dir(&dir)?;

    let still_there = {
        let mut catalog = lock(&shared.catalog);
        match catalog.get_mut(seq) {
            Some(m) => {
                m.path = dst.clone();
                m.compressed = true;
                m.bytes_on_disk = size;
                m.ts = index.ts;
                m.frames = Some(index.frames.into());
                // Scans listing the segment from now on hold a new token; `src` holds the
                // old one with every scan that may still read the `.ndjson`.
                m.readers = Arc::default();
                true
            }
            None => false,
        }
    };
    if !still_there {
        // Retention deleted the segment meanwhile.
        remove_if_exists(&dst)?;
        return Ok(false);
    }
    // Scans that listed the `.ndjson` and open it from now on find the `.zst` instead.
    remove_source(&src.path, &src.readers)?;
    info!(
        path = %dst.display(),
        uncompressed = src.committed_len,
        compressed = size,
        "segment compressed"
    );
    Ok(true)
}

/// Removes a compressed segment's `.ndjson`: gradually if no scan can be reading it (see
/// [`remove_gradually`]), at once otherwise (an open file stays readable after an unlink;
/// a truncated one would not).
fn remove_source(path: &std::path::Path, readers: &Arc<()>) -> Result<bool, StoreError> {
    if Arc::strong_count(readers) == 1 {
        remove_gradually(path)
    } else {
        remove_if_exists(path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_source_being_read_is_unlinked_at_once_and_stays_readable() {
        use std::os::unix::fs::FileExt;
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("1.ndjson");
        let data = vec![b'x'; 9 << 20];
        std::fs::write(&path, &data).unwrap();
        let readers = Arc::new(());
        let scan = readers.clone();
        let open = std::fs::File::open(&path).unwrap();
        assert!(remove_source(&path, &readers).unwrap());
        assert!(!path.exists());
        let mut end = [0u8; 1];
        open.read_exact_at(&mut end, data.len() as u64 - 1).unwrap();
        drop(scan);

        std::fs::write(&path, &data).unwrap();
        assert!(remove_source(&path, &readers).unwrap());
        assert!(!path.exists());
    }
}
