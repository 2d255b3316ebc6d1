//! Frames: the unit in which a batch's lines reach the store and stay in it.
//!
//! A [`Frame`] is one zstd frame of whole NDJSON lines of one kind. Segments are sequences
//! of frames (see `format.rs`), so a frame is written as it is: the ingest hands the store
//! the frames agents compressed whenever they hold exactly the lines it validated, and
//! compresses the rest itself with a [`FrameBuilder`].

use bytes::Bytes;
use logops_common::Kind;

use crate::segment::LineStats;

/// Uncompressed bytes per frame a [`FrameBuilder`] makes (frames end at line ends, so they
/// may be a line longer), and per frame a segment is repacked into.
pub const FRAME_TARGET: usize = 1 << 20;

/// One zstd frame holding whole lines of one kind.
///
/// The contract (the store checks what it can without decompressing, see
/// [`Frame::check`]): `data` is exactly one zstd frame whose header states its content size
/// `u_len`; the content is `lines` lines, each ending with `\n`, none of them blank, with
/// timestamps in `ts`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// The kind of every line in it: it selects the segment the frame goes to.
    pub kind: Kind,
    /// The compressed frame.
    pub data: Bytes,
    /// The length of its content.
    pub u_len: u64,
    /// Its lines and their timestamp range (nanoseconds since the Unix epoch).
    pub ts: LineStats,
}

impl Frame {
    /// Checks the parts of the contract that the frame's header shows: one zstd frame,
    /// stating the content size `u_len`, with at least one line.
    pub(crate) fn check(&self) -> Result<(), String> {
        let data = &self.data[..];
        match zstd::zstd_safe::find_frame_compressed_size(data) {
            Ok(n) if n == data.len() => {}
            Ok(n) => {
                return Err(format!(
                    "the {}-byte frame data holds a {n}-byte zstd frame and more",
                    data.len()
                ))
            }
            Err(_) => return Err("the frame data is not a zstd frame".into()),
        }
        match zstd::zstd_safe::get_frame_content_size(data) {
            Ok(Some(n)) if n == self.u_len && n > 0 => {}
            Ok(Some(n)) => {
                return Err(format!(
                    "the frame states {n} bytes of content, its description {}",
                    self.u_len
                ))
            }
            _ => return Err("the frame does not state its content size".into()),
        }
        if self.ts.lines == 0 || self.ts.lines > self.u_len / 2 {
            return Err(format!(
                "{} lines cannot fill {} bytes",
                self.ts.lines, self.u_len
            ));
        }
        Ok(())
    }
}

/// A kind's lines not yet compressed.
#[derive(Debug, Default)]
struct Run {
    buf: Vec<u8>,
    ts: LineStats,
}

/// Turns lines into [`Frame`]s of at most about [`FRAME_TARGET`] bytes, one kind per frame,
/// keeping each kind's order among lines and ready-made frames. Keeps its zstd context
/// from batch to batch (make one per thread).
pub struct FrameBuilder {
    level: i32,
    zstd: zstd::bulk::Compressor<'static>,
    runs: [Run; 3],
    out: Vec<Frame>,
}

impl std::fmt::Debug for FrameBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FrameBuilder")
            .field("level", &self.level)
            .field("frames", &self.out.len())
            .finish()
    }
}

fn slot(kind: Kind) -> usize {
    match kind {
        Kind::Log => 0,
        Kind::Metric => 1,
        Kind::Record => 2,
    }
}

const KINDS: [Kind; 3] = [Kind::Log, Kind::Metric, Kind::Record];

/// A zstd compressor at `level` whose frames state their content size and carry a checksum.
pub(crate) fn compressor(level: i32) -> std::io::Result<zstd::bulk::Compressor<'static>> {
    let mut c = zstd::bulk::Compressor::new(level)?;
    c.set_parameter(zstd::zstd_safe::CParameter::ChecksumFlag(true))?;
    Ok(c)
}

impl FrameBuilder {
    /// A builder compressing at zstd `level` (the store's is `StoreOptions::compression_level`).
    pub fn new(level: i32) -> std::io::Result<Self> {
        Ok(FrameBuilder {
            level,
            zstd: compressor(level)?,
            runs: Default::default(),
            out: Vec::new(),
        })
    }

    /// The zstd level it compresses at.
    pub fn level(&self) -> i32 {
        self.level
    }

    /// Adds a line (without its `\n`, not blank, no `\n` inside) of `kind` with timestamp
    /// `ts` (ns).
    pub fn push_line(&mut self, kind: Kind, line: &[u8], ts: i64) -> std::io::Result<()> {
        let run = &mut self.runs[slot(kind)];
        run.buf.reserve(line.len() + 1);
        run.buf.extend_from_slice(line);
        run.buf.push(b'\n');
        run.ts.add(Some(ts));
        if run.buf.len() >= FRAME_TARGET {
            self.flush(kind)?;
        }
        Ok(())
    }

    /// Adds a ready-made frame after the lines of its kind pushed so far.
    pub fn push_frame(&mut self, frame: Frame) -> std::io::Result<()> {
        self.flush(frame.kind)?;
        self.out.push(frame);
        Ok(())
    }

    fn flush(&mut self, kind: Kind) -> std::io::Result<()> {
        let run = &mut self.runs[slot(kind)];
        if run.buf.is_empty() {
            return Ok(());
        }
        let data = self.zstd.compress(&run.buf)?;
        self.out.push(Frame {
            kind,
            data: Bytes::from(data),
            u_len: run.buf.len() as u64,
            ts: std::mem::take(&mut run.ts),
        });
        run.buf.clear();
        // A run of a big batch should not keep its memory in a builder kept per thread.
        if run.buf.capacity() > 2 * FRAME_TARGET {
            run.buf = Vec::new();
        }
        Ok(())
    }

    /// Compresses what is left and returns every frame in order; the builder is empty
    /// again. On an error nothing is kept.
    pub fn finish(&mut self) -> std::io::Result<Vec<Frame>> {
        let flushed = KINDS.iter().try_for_each(|&kind| self.flush(kind));
        if let Err(e) = flushed {
            self.out.clear();
            for run in &mut self.runs {
                run.buf.clear();
                run.ts = LineStats::default();
            }
            return Err(e);
        }
        Ok(std::mem::take(&mut self.out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_become_frames_per_kind_in_order_and_frames_keep_their_place() {
        let mut b = FrameBuilder::new(1).unwrap();
        b.push_line(Kind::Log, b"l1", 10).unwrap();
        b.push_line(Kind::Metric, b"m1", 5).unwrap();
        b.push_line(Kind::Log, b"l2", 30).unwrap();
        let ready = {
            let content = b"l3\nl4\n";
            let data = zstd::bulk::compress(content, 3).unwrap();
            let mut ts = LineStats::default();
            ts.add(Some(1));
            ts.add(Some(2));
            Frame {
                kind: Kind::Log,
                data: data.into(),
                u_len: content.len() as u64,
                ts,
            }
        };
        b.push_frame(ready.clone()).unwrap();
        b.push_line(Kind::Log, b"l5", 20).unwrap();
        let frames = b.finish().unwrap();
        let plain: Vec<(Kind, String)> = frames
            .iter()
            .map(|f| {
                f.check().unwrap();
                let d = zstd::bulk::decompress(&f.data, f.u_len as usize).unwrap();
                (f.kind, String::from_utf8(d).unwrap())
            })
            .collect();
        assert_eq!(
            plain,
            [
                (Kind::Log, "l1\nl2\n".to_string()),
                (Kind::Log, "l3\nl4\n".to_string()),
                (Kind::Log, "l5\n".to_string()),
                (Kind::Metric, "m1\n".to_string()),
            ]
        );
        assert_eq!(frames[1], ready);
        assert_eq!(
            (frames[0].ts.lines, frames[0].ts.min_ts, frames[0].ts.max_ts),
            (2, 10, 30)
        );
        assert!(b.finish().unwrap().is_empty(), "finish empties the builder");

        // Big runs are cut into frames of about FRAME_TARGET.
        let line = vec![b'x'; 1000];
        for i in 0..3000 {
            b.push_line(Kind::Record, &line, i).unwrap();
        }
        let frames = b.finish().unwrap();
        assert_eq!(frames.len(), 3);
        assert!(
            frames[0].u_len >= FRAME_TARGET as u64 && frames[0].u_len < FRAME_TARGET as u64 + 1001
        );
        assert_eq!(frames.iter().map(|f| f.ts.lines).sum::<u64>(), 3000);
    }

    #[test]
    fn the_check_catches_what_the_header_shows() {
        let content = b"a line\n";
        let one = zstd::bulk::compress(content, 1).unwrap();
        let frame = |data: Vec<u8>, u_len: u64, lines: u64| Frame {
            kind: Kind::Log,
            data: data.into(),
            u_len,
            ts: LineStats {
                lines,
                min_ts: 0,
                max_ts: 0,
            },
        };
        assert!(frame(one.clone(), 7, 1).check().is_ok());
        let err = |f: Frame| f.check().unwrap_err();
        assert!(err(frame(one.clone(), 8, 1)).contains("states 7"));
        assert!(err(frame(one.clone(), 7, 0)).contains("lines"));
        assert!(err(frame(b"not zstd".to_vec(), 7, 1)).contains("not a zstd frame"));
        let two = [one.clone(), one.clone()].concat();
        assert!(err(frame(two, 14, 2)).contains("and more"));
        let mut streamed = zstd::stream::write::Encoder::new(Vec::new(), 1).unwrap();
        streamed.include_contentsize(false).unwrap();
        std::io::Write::write_all(&mut streamed, content).unwrap();
        assert!(err(frame(streamed.finish().unwrap(), 7, 1)).contains("content size"));
    }
}
