//! Scans: visiting one stream's committed lines in store order or in its exact reverse.
//!
//! A scan copies the list of segments (and their committed lengths) when it starts, so lines
//! committed meanwhile are not visited, and never reads past a committed length. Each
//! segment file is opened once; a file deleted while open stays readable (Linux semantics),
//! one sealed, repacked or deleted before it was opened is looked up again or skipped.
//! Segments are read frame by frame: frames whose time range misses the scan's are skipped
//! unread.

use std::fs::File;
use std::io;
use std::ops::ControlFlow;

use logops_common::Kind;

use crate::error::StoreError;
use crate::format::read_frame;
use crate::position::Position;
use crate::segment::SegmentMeta;
use crate::shared::{lock, Shared};
use crate::stats::Counters;

/// In which order a scan visits lines.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Order {
    /// Oldest segment first, lines in file order.
    Asc,
    /// The exact reverse of `Asc`.
    Desc,
}

/// What to scan: one tenant's lines of one kind, between two positions, in an order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScanRange {
    /// The tenant.
    pub tenant: String,
    /// The kind.
    pub kind: Kind,
    /// The order.
    pub order: Order,
    /// The first line to visit (inclusive). `None`: the oldest line for `Asc`, the newest
    /// line committed when the scan starts for `Desc`.
    pub from: Option<Position>,
    /// The last line to visit (inclusive). `None`: to the end in the scan's order.
    pub to: Option<Position>,
    /// Segments and frames whose newest event is older than this (ns) are skipped.
    pub since: Option<i64>,
    /// Segments and frames whose oldest event is not older than this (ns) are skipped.
    pub until: Option<i64>,
}

/// The visitor of a scan; `Break` stops the scan.
type Visit<'a> = dyn FnMut(Position, &[u8]) -> ControlFlow<()> + 'a;

/// The line starts (inclusive range of offsets) a scan visits in one segment.
#[derive(Debug, Clone, Copy)]
struct Bounds {
    lo: u64,
    hi: u64,
}

impl Bounds {
    fn of(seq: u64, q: &ScanRange) -> Bounds {
        let at = |p: Option<Position>, default: u64| {
            p.filter(|p| p.segment == seq).map_or(default, |p| p.offset)
        };
        match q.order {
            Order::Asc => Bounds {
                lo: at(q.from, 0),
                hi: at(q.to, u64::MAX),
            },
            Order::Desc => Bounds {
                lo: at(q.to, 0),
                hi: at(q.from, u64::MAX),
            },
        }
    }
}

/// Runs a scan (see `Store::scan`).
pub(crate) fn scan(
    shared: &Shared,
    q: &ScanRange,
    visit: &mut Visit<'_>,
) -> Result<(), StoreError> {
    let seg = |p: Option<Position>, default: u64| p.map_or(default, |p| p.segment);
    let (first, last) = match q.order {
        Order::Asc => (seg(q.from, 0), seg(q.to, u64::MAX)),
        Order::Desc => (seg(q.to, 0), seg(q.from, u64::MAX)),
    };
    if first > last {
        return Ok(());
    }
    let mut segments: Vec<SegmentMeta> = lock(&shared.catalog)
        .stream(&q.tenant, q.kind)
        .map(|s| s.range(first..=last).map(|(_, m)| m.clone()).collect())
        .unwrap_or_default();
    if q.order == Order::Desc {
        segments.reverse();
    }
    for meta in segments {
        if meta.committed_len == 0 {
            continue;
        }
        if !meta.ts.overlaps(q.since, q.until) {
            Counters::add(&shared.counters.scan_segments_pruned, 1);
            continue;
        }
        let bounds = Bounds::of(meta.seq, q);
        if bounds.lo > bounds.hi {
            continue;
        }
        if scan_segment(shared, meta, q, bounds, visit)?.is_break() {
            break;
        }
    }
    Ok(())
}

fn scan_segment(
    shared: &Shared,
    mut meta: SegmentMeta,
    q: &ScanRange,
    b: Bounds,
    visit: &mut Visit<'_>,
) -> Result<ControlFlow<()>, StoreError> {
    // Two attempts: the file listed may have been sealed (renamed) or repacked before it
    // was opened.
    for _ in 0..2 {
        match File::open(&meta.path) {
            Ok(file) => return scan_frames(shared, &file, &meta, q, b, visit),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                match lock(&shared.catalog).get(meta.seq) {
                    Some(now) if now.path != meta.path => meta = now.clone(),
                    // Deleted by retention: resume with the next segment.
                    _ => return Ok(ControlFlow::Continue(())),
                }
            }
            Err(e) => return Err(StoreError::io("open the segment", &meta.path, e)),
        }
    }
    Ok(ControlFlow::Continue(()))
}

/// The (start, end without `\n`) of each line in a frame.
fn line_spans(data: &[u8]) -> Vec<(usize, usize)> {
    let mut spans = Vec::with_capacity(data.len() / 128);
    let mut start = 0;
    for i in memchr::memchr_iter(b'\n', data) {
        spans.push((start, i));
        start = i + 1;
    }
    if start < data.len() {
        spans.push((start, data.len()));
    }
    spans
}

fn scan_frames(
    shared: &Shared,
    file: &File,
    meta: &SegmentMeta,
    q: &ScanRange,
    b: Bounds,
    visit: &mut Visit<'_>,
) -> Result<ControlFlow<()>, StoreError> {
    let mut selected = meta.frames.select(meta.committed_len, b.lo, b.hi);
    if q.order == Order::Desc {
        selected.reverse();
    }
    for frame in selected {
        if !frame.ts.overlaps(q.since, q.until) {
            Counters::add(&shared.counters.scan_frames_pruned, 1);
            continue;
        }
        let data = read_frame(file, &meta.path, &frame)?;
        let mut spans = line_spans(&data);
        if q.order == Order::Desc {
            spans.reverse();
        }
        for (start, end) in spans {
            let offset = frame.u_off + start as u64;
            let pos = Position {
                segment: meta.seq,
                offset,
            };
            match q.order {
                Order::Asc if offset < b.lo => continue,
                Order::Asc if offset > b.hi => return Ok(ControlFlow::Continue(())),
                Order::Desc if offset > b.hi => continue,
                Order::Desc if offset < b.lo => return Ok(ControlFlow::Continue(())),
                _ => {
                    if visit(pos, &data[start..end]).is_break() {
                        return Ok(ControlFlow::Break(()));
                    }
                }
            }
        }
    }
    Ok(ControlFlow::Continue(()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_spans_cover_every_line() {
        assert_eq!(line_spans(b"a\nbc\n"), vec![(0, 1), (2, 4)]);
        assert_eq!(line_spans(b""), vec![]);
    }
}
