//! Scans: visiting one stream's committed lines in store order or in its exact reverse.
//!
//! A scan copies the list of segments (and their committed lengths) when it starts, so lines
//! committed meanwhile are not visited, and never reads past a committed length. Each
//! segment file is opened once; a file deleted while open stays readable (Linux semantics),
//! one compressed or deleted before it was opened is looked up again or skipped.

use std::fs::File;
use std::io::{self, BufRead, BufReader, Read, Seek, SeekFrom};
use std::ops::ControlFlow;
use std::os::unix::fs::FileExt;
use std::path::Path;

use logops_common::Kind;

use crate::compress::read_frame;
use crate::error::StoreError;
use crate::position::Position;
use crate::segment::SegmentMeta;
use crate::shared::{lock, Shared};
use crate::stats::Counters;

/// Bytes read at a time.
const READ_BUF: usize = 256 << 10;

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
    // Two attempts: the `.ndjson` listed may have been compressed before it was opened.
    for _ in 0..2 {
        match File::open(&meta.path) {
            Ok(file) => {
                let path = meta.path.as_path();
                return if meta.compressed {
                    scan_zst(shared, &file, &meta, q, b, visit)
                } else {
                    match q.order {
                        Order::Asc => {
                            ndjson_asc(&file, path, meta.seq, meta.committed_len, b, visit)
                        }
                        Order::Desc => {
                            ndjson_desc(&file, path, meta.seq, meta.committed_len, b, visit)
                        }
                    }
                };
            }
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

/// The offset of the first `\n` at or after `from` and before `end`.
fn find_newline(file: &File, path: &Path, from: u64, end: u64) -> Result<Option<u64>, StoreError> {
    let mut buf = vec![0u8; 64 << 10];
    let mut pos = from;
    while pos < end {
        let n = buf.len().min((end - pos) as usize);
        file.read_exact_at(&mut buf[..n], pos)
            .map_err(StoreError::io_fn("read the segment", path))?;
        if let Some(i) = buf[..n].iter().position(|&c| c == b'\n') {
            return Ok(Some(pos + i as u64));
        }
        pos += n as u64;
    }
    Ok(None)
}

fn ndjson_asc(
    file: &File,
    path: &Path,
    seq: u64,
    len: u64,
    b: Bounds,
    visit: &mut Visit<'_>,
) -> Result<ControlFlow<()>, StoreError> {
    let read_err = StoreError::io_fn;
    let mut pos = b.lo;
    if pos >= len {
        return Ok(ControlFlow::Continue(()));
    }
    if pos > 0 {
        // A position that is not a line start resumes at the next line.
        let mut prev = [0u8];
        file.read_exact_at(&mut prev, pos - 1)
            .map_err(read_err("read the segment", path))?;
        if prev[0] != b'\n' {
            match find_newline(file, path, pos, len)? {
                Some(nl) => pos = nl + 1,
                None => return Ok(ControlFlow::Continue(())),
            }
        }
    }
    let mut handle = file;
    handle
        .seek(SeekFrom::Start(pos))
        .map_err(read_err("seek in the segment", path))?;
    let mut reader = BufReader::with_capacity(READ_BUF, handle.take(len.saturating_sub(pos)));
    let mut line = Vec::new();
    while pos <= b.hi {
        line.clear();
        let n = reader
            .read_until(b'\n', &mut line)
            .map_err(read_err("read the segment", path))?;
        if n == 0 {
            break;
        }
        let body = line.strip_suffix(b"\n").unwrap_or(&line);
        let at = Position {
            segment: seq,
            offset: pos,
        };
        if visit(at, body).is_break() {
            return Ok(ControlFlow::Break(()));
        }
        pos += n as u64;
    }
    Ok(ControlFlow::Continue(()))
}

fn ndjson_desc(
    file: &File,
    path: &Path,
    seq: u64,
    len: u64,
    b: Bounds,
    visit: &mut Visit<'_>,
) -> Result<ControlFlow<()>, StoreError> {
    // Start after the end of the line holding `hi`, then walk back block by block.
    let mut pos = if b.hi >= len {
        len
    } else {
        find_newline(file, path, b.hi, len)?.map_or(len, |nl| nl + 1)
    };
    // `tail` holds the bytes [pos, pos + tail.len()), always ending at a line end.
    let mut tail: Vec<u8> = Vec::new();
    loop {
        while !tail.is_empty() {
            let body_end = tail.len() - usize::from(tail.last() == Some(&b'\n'));
            let start = match tail[..body_end].iter().rposition(|&c| c == b'\n') {
                Some(i) => i + 1,
                None if pos == 0 => 0,
                None => break,
            };
            let offset = pos + start as u64;
            if offset < b.lo {
                return Ok(ControlFlow::Continue(()));
            }
            let at = Position {
                segment: seq,
                offset,
            };
            if visit(at, &tail[start..body_end]).is_break() {
                return Ok(ControlFlow::Break(()));
            }
            tail.truncate(start);
        }
        if pos == 0 {
            return Ok(ControlFlow::Continue(()));
        }
        let n = READ_BUF.min(pos as usize);
        pos -= n as u64;
        let mut block = vec![0u8; n + tail.len()];
        file.read_exact_at(&mut block[..n], pos)
            .map_err(StoreError::io_fn("read the segment", path))?;
        block[n..].copy_from_slice(&tail);
        tail = block;
    }
}

/// The (start, end without `\n`) of each line in a frame.
fn line_spans(data: &[u8]) -> Vec<(usize, usize)> {
    let mut spans = Vec::with_capacity(data.len() / 128);
    let mut start = 0;
    for (i, &c) in data.iter().enumerate() {
        if c == b'\n' {
            spans.push((start, i));
            start = i + 1;
        }
    }
    if start < data.len() {
        spans.push((start, data.len()));
    }
    spans
}

fn scan_zst(
    shared: &Shared,
    file: &File,
    meta: &SegmentMeta,
    q: &ScanRange,
    b: Bounds,
    visit: &mut Visit<'_>,
) -> Result<ControlFlow<()>, StoreError> {
    let frames = meta.frames.as_deref().unwrap_or(&[]);
    let mut selected: Vec<_> = frames
        .iter()
        .filter(|f| f.u_off + f.u_len > b.lo && f.u_off <= b.hi)
        .collect();
    if q.order == Order::Desc {
        selected.reverse();
    }
    for frame in selected {
        if !frame.ts.overlaps(q.since, q.until) {
            Counters::add(&shared.counters.scan_frames_pruned, 1);
            continue;
        }
        let data = read_frame(file, &meta.path, frame)?;
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
