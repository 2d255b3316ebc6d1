//! The sealer thread: turns closed `<seq>.open.ndjson.zst` segments into `<seq>.ndjson.zst`
//! with an index.
//!
//! A segment is already a sequence of zstd frames, so sealing usually only appends the
//! index: write it after the committed bytes, fdatasync, rename the file to its sealed name,
//! fsync the directory, switch the catalog. A segment made of small frames (a quiet stream,
//! small batches) is *repacked* instead: its small frames merged into frames of about
//! 1 MiB in a `<seq>.ndjson.zst.tmp`, fsync'd, renamed, the directory fsync'd, then the open
//! file deleted. A crash at any step leaves the open file (cut back to its committed length
//! at open, and sealed again), a `.tmp` (removed at open) or both files (the open one is
//! removed at open).

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, Sender};
use std::sync::Arc;

use tracing::{debug, error, info, warn};

use crate::error::StoreError;
use crate::format::{repack, seal, FrameInfo, SegmentIndex, KEEP_FRAME};
use crate::fsutil::{remove_gradually, remove_if_exists, sync_dir};
use crate::retention::RetentionMsg;
use crate::segment::{zst_name, FrameTable};
use crate::shared::{lock, Shared};
use crate::stats::Counters;

/// Work for the sealer.
pub(crate) enum SealMsg {
    /// Seal this closed segment.
    Segment(u64),
    /// Stop (pending segments are sealed at the next open).
    Stop,
}

/// Runs the sealer until `Stop` or `stop` is set.
pub(crate) fn run(
    shared: Arc<Shared>,
    work: Receiver<SealMsg>,
    retention: Sender<RetentionMsg>,
    stop: Arc<AtomicBool>,
) {
    while let Ok(SealMsg::Segment(seq)) = work.recv() {
        if stop.load(Ordering::Relaxed) {
            break;
        }
        match seal_one(&shared, seq) {
            // Retention deleted the segment while it was being sealed.
            Err(_) if lock(&shared.catalog).get(seq).is_none() => {}
            Ok(true) => {
                // A repack may have freed space; retention may have less to delete (or, for
                // a segment that is already too old, more).
                let _ = retention.send(RetentionMsg::Run);
            }
            Ok(false) => {}
            Err(e) => {
                Counters::add(&shared.counters.seal_failures, 1);
                error!(error = %e, seq, "cannot seal a closed segment; it stays open until the next start");
            }
        }
    }
    debug!("the store's sealer stopped");
}

/// Whether a segment's frames are worth merging: when they hold less than [`KEEP_FRAME`]
/// bytes on average, the zstd ratio and the index size suffer.
pub(crate) fn needs_repack(frames: &[FrameInfo]) -> bool {
    let total: u64 = frames.iter().map(|f| f.u_len).sum();
    frames.len() > 1 && total / (frames.len() as u64) < KEEP_FRAME
}

/// Seals segment `seq` if it is still closed and unsealed; says whether it did.
fn seal_one(shared: &Shared, seq: u64) -> Result<bool, StoreError> {
    let Some(src) = lock(&shared.catalog)
        .get(seq)
        .filter(|m| m.closed && !m.sealed)
        .cloned()
    else {
        return Ok(false);
    };
    let Some(dir) = src.path.parent().map(|d| d.to_path_buf()) else {
        return Ok(false);
    };
    let dst = dir.join(zst_name(seq));
    let frames = src.frames.upto(src.committed_len);
    let times = (src.created_ms, src.last_write_ms);
    let repacked = needs_repack(&frames);
    let (index, size) = if repacked {
        let tmp = dir.join(format!("{}.tmp", zst_name(seq)));
        match repack(
            &src.path,
            &frames,
            &tmp,
            shared.opts.compression_level,
            times,
        ) {
            Ok(done) => {
                std::fs::rename(&tmp, &dst).map_err(StoreError::io_fn("rename into", &dst))?;
                done
            }
            Err(e) => {
                if let Err(rm) = remove_if_exists(&tmp) {
                    warn!(error = %rm, "cannot remove a failed repack's temporary file");
                }
                return Err(e);
            }
        }
    } else {
        let sealed = seal(&src.path, src.bytes_on_disk, frames, times)?;
        std::fs::rename(&src.path, &dst).map_err(StoreError::io_fn("rename into", &dst))?;
        sealed
    };
    sync_dir(&dir)?;

    let frame_count = index.frames.len();
    if !switch(shared, seq, &dst, index, size, repacked) {
        // Retention deleted the segment meanwhile.
        remove_if_exists(&dst)?;
        return Ok(false);
    }
    if repacked {
        // Scans that listed the open file and open it from now on find the sealed one.
        remove_source(&src.path, &src.readers)?;
    }
    info!(
        path = %dst.display(),
        uncompressed = src.committed_len,
        bytes = size,
        frames = frame_count,
        repacked,
        "segment sealed"
    );
    Ok(true)
}

/// Points the catalog at the sealed file; false if the segment is gone from it.
fn switch(
    shared: &Shared,
    seq: u64,
    dst: &Path,
    index: SegmentIndex,
    size: u64,
    repacked: bool,
) -> bool {
    let mut catalog = lock(&shared.catalog);
    let Some(m) = catalog.get_mut(seq) else {
        return false;
    };
    m.path = dst.to_path_buf();
    m.sealed = true;
    m.bytes_on_disk = size;
    m.ts = index.ts;
    if repacked {
        m.frames = Arc::new(FrameTable::new(index.frames));
        // Scans listing the segment from now on hold a new token; the old one is held by
        // every scan that may still read the open file.
        m.readers = Arc::default();
    }
    true
}

/// Removes a repacked segment's open file: gradually if no scan can be reading it (see
/// [`remove_gradually`]), at once otherwise (an open file stays readable after an unlink;
/// a truncated one would not).
fn remove_source(path: &Path, readers: &Arc<()>) -> Result<bool, StoreError> {
    if Arc::strong_count(readers) == 1 {
        remove_gradually(path)
    } else {
        remove_if_exists(path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::segment::LineStats;

    #[test]
    fn a_source_being_read_is_unlinked_at_once_and_stays_readable() {
        use std::os::unix::fs::FileExt;
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("1.open.ndjson.zst");
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

    #[test]
    fn small_frames_on_average_are_repacked() {
        let frames = |sizes: &[u64]| -> Vec<FrameInfo> {
            let mut u_off = 0;
            sizes
                .iter()
                .map(|&u_len| {
                    let f = FrameInfo {
                        c_off: u_off,
                        c_len: u_len / 8,
                        u_off,
                        u_len,
                        ts: LineStats::default(),
                    };
                    u_off += u_len;
                    f
                })
                .collect()
        };
        assert!(
            !needs_repack(&frames(&[100])),
            "one frame is as good as it gets"
        );
        assert!(needs_repack(&frames(&[100, 100, 100])));
        assert!(!needs_repack(&frames(&[200 << 10, 200 << 10, 1000])));
        assert!(needs_repack(&frames(&[200 << 10, 100, 100, 100, 100])));
    }
}
