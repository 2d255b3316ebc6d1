//! Counters and the `StoreStats` report.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};

use logops_common::Kind;

use crate::catalog::Catalog;

/// Monotonic counters since the store was opened.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) lines_committed: AtomicU64,
    pub(crate) groups_committed: AtomicU64,
    pub(crate) batches_stored: AtomicU64,
    pub(crate) duplicates: AtomicU64,
    pub(crate) segment_fsyncs: AtomicU64,
    pub(crate) retention_deleted_segments: AtomicU64,
    pub(crate) seal_failures: AtomicU64,
    pub(crate) scan_segments_pruned: AtomicU64,
    pub(crate) scan_frames_pruned: AtomicU64,
}

impl Counters {
    /// Adds `n` to a counter.
    pub(crate) fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }
}

/// The size of one stream (one tenant's events of one kind).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamStats {
    /// The tenant.
    pub tenant: String,
    /// The kind.
    pub kind: Kind,
    /// Bytes on disk.
    pub bytes: u64,
    /// Segments (active, closed and sealed).
    pub segments: u64,
}

/// A report on the store, for metrics and health checks. Counters count since open.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StoreStats {
    /// Bytes all segments take on disk.
    pub bytes_on_disk: u64,
    /// Segments in the store.
    pub segments: u64,
    /// Of which sealed (closed, with their index).
    pub sealed_segments: u64,
    /// Per (tenant, kind), sorted.
    pub streams: Vec<StreamStats>,
    /// Lines committed since open.
    pub lines_committed: u64,
    /// Group commits since open (each one fdatasync of the commit log).
    pub groups_committed: u64,
    /// Batches stored since open.
    pub batches_stored: u64,
    /// Batches answered as duplicates since open.
    pub duplicates: u64,
    /// Segment fdatasyncs since open.
    pub segment_fsyncs: u64,
    /// Segments deleted by retention since open.
    pub retention_deleted_segments: u64,
    /// Closed segments that could not be sealed since open (they are sealed at the next
    /// open).
    pub seal_failures: u64,
    /// Segments scans skipped without reading them because of their time range.
    pub scan_segments_pruned: u64,
    /// Frames scans skipped because of their time range.
    pub scan_frames_pruned: u64,
    /// Ranges of batch ids remembered for dedupe (its memory is proportional to this).
    pub dedupe_ranges: u64,
    /// Batches waiting for the writer.
    pub queue_len: usize,
    /// The last write error, if any happened since open.
    pub last_write_error: Option<String>,
}

impl StoreStats {
    /// Fills in the counters and the catalog's sizes; the caller adds the rest.
    pub(crate) fn collect(counters: &Counters, catalog: &Catalog) -> Self {
        let mut streams: BTreeMap<(String, Kind), (u64, u64)> = BTreeMap::new();
        let mut stats = StoreStats::default();
        for m in catalog.iter() {
            stats.bytes_on_disk += m.bytes_on_disk;
            stats.segments += 1;
            stats.sealed_segments += u64::from(m.sealed);
            let s = streams.entry((m.tenant.to_string(), m.kind)).or_default();
            s.0 += m.bytes_on_disk;
            s.1 += 1;
        }
        stats.streams = streams
            .into_iter()
            .map(|((tenant, kind), (bytes, segments))| StreamStats {
                tenant,
                kind,
                bytes,
                segments,
            })
            .collect();
        stats.lines_committed = Counters::get(&counters.lines_committed);
        stats.groups_committed = Counters::get(&counters.groups_committed);
        stats.batches_stored = Counters::get(&counters.batches_stored);
        stats.duplicates = Counters::get(&counters.duplicates);
        stats.segment_fsyncs = Counters::get(&counters.segment_fsyncs);
        stats.retention_deleted_segments = Counters::get(&counters.retention_deleted_segments);
        stats.seal_failures = Counters::get(&counters.seal_failures);
        stats.scan_segments_pruned = Counters::get(&counters.scan_segments_pruned);
        stats.scan_frames_pruned = Counters::get(&counters.scan_frames_pruned);
        stats
    }
}
