//! The compressed segment format (`<seq>.ndjson.zst`).
//!
//! A sequence of independent zstd frames, each holding whole lines, about [`FRAME_TARGET`]
//! uncompressed bytes each, then one zstd *skippable frame* (magic `0x184D2A5E`) holding the
//! index. Decoders skip skippable frames, so `zstd -d` yields the original NDJSON.
//!
//! Index frame: `u32 0x184D2A5E | u32 size | data`, data (little endian) =
//! `b"LOIX" | u32 version (1) | u32 n frames | n × (u64 compressed offset, u64 compressed
//! length, u64 uncompressed offset, u64 uncompressed length, u64 lines, i64 min ts,
//! i64 max ts) | u64 lines | i64 min ts | i64 max ts | u64 uncompressed length |
//! u64 created ms | u64 last write ms | u32 CRC-32 of everything from "LOIX" up to here |
//! u32 size (again) | b"LOIX"`. The last 8 bytes of the file thus locate the index.

use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Read, Write};
use std::os::unix::fs::FileExt;
use std::path::Path;

use crate::codec::{Dec, DecodeError, Put};
use crate::error::StoreError;
use crate::segment::{line_ts, LineStats};

/// Uncompressed bytes per zstd frame (frames end at line ends, so they are a bit larger).
pub(crate) const FRAME_TARGET: usize = 1 << 20;
/// The skippable frame magic used for the index (in the 0x184D2A50..=0x184D2A5F range).
pub(crate) const SKIPPABLE_MAGIC: u32 = 0x184D_2A5E;
const INDEX_MAGIC: &[u8; 4] = b"LOIX";
const INDEX_VERSION: u32 = 1;
const FRAME_ENTRY_LEN: usize = 56;

/// Where one zstd frame is and what it holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct FrameInfo {
    /// Its offset in the `.zst` file.
    pub(crate) c_off: u64,
    /// Its compressed length.
    pub(crate) c_len: u64,
    /// The offset of its first byte in the uncompressed segment.
    pub(crate) u_off: u64,
    /// Its uncompressed length.
    pub(crate) u_len: u64,
    /// Its lines and their timestamp range.
    pub(crate) ts: LineStats,
}

/// Where a segment's frames end and what their lines are, as the writer saw the lines go
/// by: compressing with a plan reads no line twice (without one, the compressor finds line
/// ends and parses each line's `ts`, which cost a third of its CPU).
///
/// Frames end at ends of chunks the writer lays out (at most [`CHUNK_TARGET`] bytes plus a
/// line); a frame is extended by the next chunk while it is shorter than [`FRAME_TARGET`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct FramePlan {
    /// (end offset in the uncompressed segment, its lines) per frame, in order.
    frames: Vec<(u64, LineStats)>,
}

/// The writer cuts a stream's lines of one group into chunks of about this many bytes.
pub(crate) const CHUNK_TARGET: usize = 256 << 10;

impl FramePlan {
    /// Adds a chunk of lines that ends at `end` (which only grows).
    pub(crate) fn push(&mut self, end: u64, stats: &LineStats) {
        let start = match self.frames.len() {
            0 => 0,
            1 => 0,
            n => self.frames[n - 2].0,
        };
        match self.frames.last_mut() {
            Some((last_end, last)) if (*last_end - start) < FRAME_TARGET as u64 => {
                *last_end = end;
                last.merge(stats);
            }
            _ => self.frames.push((end, *stats)),
        }
    }

    /// Where the planned lines end (0 for none).
    pub(crate) fn end(&self) -> u64 {
        self.frames.last().map_or(0, |f| f.0)
    }
}

/// The index of a compressed segment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SegmentIndex {
    /// The frames, in file order.
    pub(crate) frames: Vec<FrameInfo>,
    /// All lines and their timestamp range.
    pub(crate) ts: LineStats,
    /// The uncompressed length.
    pub(crate) u_len: u64,
    /// The segment's first commit (Unix ms).
    pub(crate) created_ms: u64,
    /// The segment's last commit (Unix ms).
    pub(crate) last_write_ms: u64,
}

fn encode_index(index: &SegmentIndex) -> Vec<u8> {
    let mut data = Vec::with_capacity(80 + index.frames.len() * FRAME_ENTRY_LEN);
    data.extend_from_slice(INDEX_MAGIC);
    data.put_u32(INDEX_VERSION);
    data.put_u32(index.frames.len() as u32);
    for f in &index.frames {
        data.put_u64(f.c_off);
        data.put_u64(f.c_len);
        data.put_u64(f.u_off);
        data.put_u64(f.u_len);
        data.put_u64(f.ts.lines);
        data.put_i64(f.ts.min_ts);
        data.put_i64(f.ts.max_ts);
    }
    data.put_u64(index.ts.lines);
    data.put_i64(index.ts.min_ts);
    data.put_i64(index.ts.max_ts);
    data.put_u64(index.u_len);
    data.put_u64(index.created_ms);
    data.put_u64(index.last_write_ms);
    data.put_u32(crc32fast::hash(&data));
    let size = data.len() as u32 + 8;
    data.put_u32(size);
    data.extend_from_slice(INDEX_MAGIC);

    let mut frame = Vec::with_capacity(8 + data.len());
    frame.put_u32(SKIPPABLE_MAGIC);
    frame.put_u32(size);
    frame.extend_from_slice(&data);
    frame
}

fn decode_index(data: &[u8]) -> Result<SegmentIndex, DecodeError> {
    // `data` is the skippable frame's content, trailer included.
    let body_len = data
        .len()
        .checked_sub(12)
        .ok_or_else(|| Dec::new(data).error("the index is too short"))?;
    let crc = u32::from_le_bytes([
        data[body_len],
        data[body_len + 1],
        data[body_len + 2],
        data[body_len + 3],
    ]);
    let body = &data[..body_len];
    let mut d = Dec::new(body);
    if d.bytes(4)? != INDEX_MAGIC {
        return Err(d.error("bad index magic"));
    }
    if crc32fast::hash(body) != crc {
        return Err(d.error("bad index CRC"));
    }
    let version = d.u32()?;
    if version != INDEX_VERSION {
        return Err(d.error(format!("unknown index version {version}")));
    }
    let n = d.count(FRAME_ENTRY_LEN)?;
    let mut frames = Vec::with_capacity(n);
    for _ in 0..n {
        frames.push(FrameInfo {
            c_off: d.u64()?,
            c_len: d.u64()?,
            u_off: d.u64()?,
            u_len: d.u64()?,
            ts: LineStats {
                lines: d.u64()?,
                min_ts: d.i64()?,
                max_ts: d.i64()?,
            },
        });
    }
    let index = SegmentIndex {
        frames,
        ts: LineStats {
            lines: d.u64()?,
            min_ts: d.i64()?,
            max_ts: d.i64()?,
        },
        u_len: d.u64()?,
        created_ms: d.u64()?,
        last_write_ms: d.u64()?,
    };
    if d.remaining() != 0 {
        return Err(d.error("trailing bytes in the index"));
    }
    Ok(index)
}

/// Compresses the first `len` bytes of the uncompressed segment `src` into `dst` (written
/// and fdatasync'd, not renamed), along `plan` if it covers exactly `len` bytes (else the
/// lines are found and parsed). Returns the index and the size of `dst`.
pub(crate) fn compress_segment(
    src: &Path,
    len: u64,
    dst: &Path,
    level: i32,
    times: (u64, u64),
    plan: Option<&FramePlan>,
) -> Result<(SegmentIndex, u64), StoreError> {
    let (created_ms, last_write_ms) = times;
    let input = File::open(src).map_err(StoreError::io_fn("open the segment", src))?;
    let mut reader = BufReader::with_capacity(1 << 20, input.take(len));
    let output = File::create(dst).map_err(StoreError::io_fn("create", dst))?;
    let mut writer = BufWriter::with_capacity(1 << 20, &output);
    let mut zstd = zstd::bulk::Compressor::new(level)
        .and_then(|mut c| {
            c.set_parameter(zstd::zstd_safe::CParameter::ChecksumFlag(true))?;
            Ok(c)
        })
        .map_err(StoreError::io_fn("set up zstd for", src))?;

    let mut index = SegmentIndex {
        frames: Vec::new(),
        ts: LineStats::default(),
        u_len: 0,
        created_ms,
        last_write_ms,
    };
    let mut c_off = 0u64;
    let mut buf = Vec::with_capacity(FRAME_TARGET + (64 << 10));
    let mut stats = LineStats::default();
    let mut flush = |buf: &mut Vec<u8>, stats: &mut LineStats| -> Result<(), StoreError> {
        let compressed = zstd
            .compress(buf)
            .map_err(StoreError::io_fn("compress", src))?;
        writer
            .write_all(&compressed)
            .map_err(StoreError::io_fn("write", dst))?;
        index.frames.push(FrameInfo {
            c_off,
            c_len: compressed.len() as u64,
            u_off: index.u_len,
            u_len: buf.len() as u64,
            ts: *stats,
        });
        c_off += compressed.len() as u64;
        index.u_len += buf.len() as u64;
        index.ts.merge(stats);
        buf.clear();
        *stats = LineStats::default();
        Ok(())
    };
    if let Some(plan) = plan.filter(|p| p.end() == len) {
        let mut start = 0u64;
        for (end, frame_stats) in &plan.frames {
            buf.resize((end - start) as usize, 0);
            reader
                .read_exact(&mut buf)
                .map_err(StoreError::io_fn("read the segment", src))?;
            if buf.last() != Some(&b'\n') {
                return Err(StoreError::Corrupt {
                    path: src.to_path_buf(),
                    what: format!("the frame planned to end at {end} does not end a line"),
                });
            }
            stats = *frame_stats;
            flush(&mut buf, &mut stats)?;
            start = *end;
        }
    }
    loop {
        let start = buf.len();
        let n = reader
            .read_until(b'\n', &mut buf)
            .map_err(StoreError::io_fn("read the segment", src))?;
        if n == 0 {
            break;
        }
        if buf.last() != Some(&b'\n') {
            return Err(StoreError::Corrupt {
                path: src.to_path_buf(),
                what: format!("its committed part ({len} bytes) ends in the middle of a line"),
            });
        }
        stats.add(line_ts(&buf[start..buf.len() - 1]));
        if buf.len() >= FRAME_TARGET {
            flush(&mut buf, &mut stats)?;
        }
    }
    if !buf.is_empty() {
        flush(&mut buf, &mut stats)?;
    }
    if index.u_len != len {
        return Err(StoreError::Corrupt {
            path: src.to_path_buf(),
            what: format!("{} bytes were read, {len} are committed", index.u_len),
        });
    }
    let footer = encode_index(&index);
    writer
        .write_all(&footer)
        .and_then(|()| writer.flush())
        .map_err(StoreError::io_fn("write", dst))?;
    drop(writer);
    output.sync_all().map_err(StoreError::io_fn("fsync", dst))?;
    Ok((index, c_off + footer.len() as u64))
}

/// Reads the index of a compressed segment; also returns the file's size.
pub(crate) fn read_index(path: &Path) -> Result<(SegmentIndex, u64), StoreError> {
    let file = File::open(path).map_err(StoreError::io_fn("open", path))?;
    let size = file
        .metadata()
        .map_err(StoreError::io_fn("stat", path))?
        .len();
    let corrupt = |what: String| StoreError::Corrupt {
        path: path.to_path_buf(),
        what,
    };
    if size < 16 {
        return Err(corrupt(format!("{size} bytes is too short for an index")));
    }
    let mut trailer = [0u8; 8];
    file.read_exact_at(&mut trailer, size - 8)
        .map_err(StoreError::io_fn("read", path))?;
    if &trailer[4..] != INDEX_MAGIC {
        return Err(corrupt("it does not end with an index frame".into()));
    }
    let frame_size = u64::from(u32::from_le_bytes([
        trailer[0], trailer[1], trailer[2], trailer[3],
    ]));
    let start = size
        .checked_sub(frame_size + 8)
        .ok_or_else(|| corrupt(format!("an index of {frame_size} bytes does not fit")))?;
    let mut frame = vec![0u8; frame_size as usize + 8];
    file.read_exact_at(&mut frame, start)
        .map_err(StoreError::io_fn("read", path))?;
    let magic = u32::from_le_bytes([frame[0], frame[1], frame[2], frame[3]]);
    let declared = u64::from(u32::from_le_bytes([frame[4], frame[5], frame[6], frame[7]]));
    if magic != SKIPPABLE_MAGIC || declared != frame_size {
        return Err(corrupt(
            "the index is not a well-formed skippable frame".into(),
        ));
    }
    let index = decode_index(&frame[8..]).map_err(|e| corrupt(format!("index: {e}")))?;
    Ok((index, size))
}

/// Reads and decompresses one frame of a compressed segment.
pub(crate) fn read_frame(
    file: &File,
    path: &Path,
    frame: &FrameInfo,
) -> Result<Vec<u8>, StoreError> {
    let mut compressed = vec![0u8; frame.c_len as usize];
    file.read_exact_at(&mut compressed, frame.c_off)
        .map_err(StoreError::io_fn("read", path))?;
    let data = zstd::bulk::decompress(&compressed, frame.u_len as usize)
        .map_err(StoreError::io_fn("decompress a frame of", path))?;
    if data.len() as u64 != frame.u_len {
        return Err(StoreError::Corrupt {
            path: path.to_path_buf(),
            what: format!(
                "the frame at {} holds {} bytes, its index says {}",
                frame.c_off,
                data.len(),
                frame.u_len
            ),
        });
    }
    Ok(data)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(n: usize) -> Vec<u8> {
        let mut out = Vec::new();
        for i in 0..n {
            out.extend_from_slice(
                format!(
                    "{{\"ts\":\"2026-11-22T10:00:{:02}.{:09}Z\",\"kind\":\"log\",\"body\":\"line {i} {}\"}}\n",
                    i % 60,
                    i,
                    "x".repeat(i % 200)
                )
                .as_bytes(),
            );
        }
        out
    }

    #[test]
    fn a_plain_zstd_decoder_restores_the_original_bytes_and_the_index_reads_back() {
        let tmp = tempfile::tempdir().unwrap();
        let src = tmp.path().join("1.ndjson");
        let dst = tmp.path().join("1.ndjson.zst.tmp");
        let data = lines(30_000);
        assert!(data.len() > 2 * FRAME_TARGET);
        std::fs::write(&src, &data).unwrap();

        let (index, size) =
            compress_segment(&src, data.len() as u64, &dst, 3, (11, 22), None).unwrap();
        assert_eq!(size, std::fs::metadata(&dst).unwrap().len());
        assert!(index.frames.len() >= 3, "{} frames", index.frames.len());
        assert_eq!(index.ts.lines, 30_000);
        assert_eq!(index.u_len, data.len() as u64);

        let plain = zstd::stream::decode_all(std::fs::File::open(&dst).unwrap()).unwrap();
        assert!(plain == data, "zstd -d output differs from the original");

        let (read, read_size) = read_index(&dst).unwrap();
        assert_eq!((read, read_size), (index.clone(), size));
        let file = File::open(&dst).unwrap();
        let mut joined = Vec::new();
        for f in &index.frames {
            let chunk = read_frame(&file, &dst, f).unwrap();
            assert_eq!(chunk.last(), Some(&b'\n'), "frames hold whole lines");
            joined.extend(chunk);
        }
        assert!(joined == data);
        assert_eq!((index.created_ms, index.last_write_ms), (11, 22));
    }

    /// With a plan, frames end where it says and carry its stats; the bytes are the same.
    #[test]
    fn a_plan_sets_the_frames_and_a_stale_plan_is_ignored() {
        let tmp = tempfile::tempdir().unwrap();
        let src = tmp.path().join("1.ndjson");
        let data = lines(30_000);
        std::fs::write(&src, &data).unwrap();
        // Chunks of ~100 lines, each with a made-up ts range the plan must carry through.
        let ends: Vec<u64> = data
            .iter()
            .enumerate()
            .filter(|&(_, &b)| b == b'\n')
            .map(|(i, _)| i as u64 + 1)
            .collect();
        let mut plan = FramePlan::default();
        for (n, chunk) in ends.chunks(100).enumerate() {
            let mut s = LineStats::default();
            for _ in chunk {
                s.add(Some(n as i64));
            }
            plan.push(*chunk.last().unwrap(), &s);
        }
        assert_eq!(plan.end(), data.len() as u64);
        let mut small = FramePlan::default();
        small.push(10, &LineStats::default());
        small.push(20, &LineStats::default());
        assert_eq!(small.frames.len(), 1, "a short frame is extended");
        let dst = tmp.path().join("planned.zst");
        let (index, _) =
            compress_segment(&src, data.len() as u64, &dst, 1, (0, 0), Some(&plan)).unwrap();
        assert_eq!(index.frames.len(), plan.frames.len());
        let mut u_off = 0;
        for (f, (end, s)) in index.frames.iter().zip(&plan.frames) {
            assert_eq!((f.u_off, f.u_off + f.u_len, f.ts), (u_off, *end, *s));
            assert!(
                f.u_len >= FRAME_TARGET as u64 || *end == data.len() as u64,
                "{f:?}"
            );
            u_off = *end;
        }
        assert_eq!((index.ts.lines, index.ts.min_ts), (30_000, 0));
        let plain = zstd::stream::decode_all(std::fs::File::open(&dst).unwrap()).unwrap();
        assert!(plain == data);

        // A plan that does not cover the committed length is not used.
        let mut short = FramePlan::default();
        short.push(ends[10], &LineStats::default());
        let (index, _) =
            compress_segment(&src, data.len() as u64, &dst, 1, (0, 0), Some(&short)).unwrap();
        assert_eq!(index.ts.lines, 30_000);
        assert!(index.frames[0].u_len >= FRAME_TARGET as u64);
        // A plan whose frame does not end a line is refused.
        let mut torn = FramePlan::default();
        torn.frames.push((ends[0] + 1, LineStats::default()));
        torn.frames.push((data.len() as u64, LineStats::default()));
        assert!(compress_segment(&src, data.len() as u64, &dst, 1, (0, 0), Some(&torn)).is_err());
    }

    #[test]
    fn a_damaged_index_is_reported() {
        let tmp = tempfile::tempdir().unwrap();
        let src = tmp.path().join("1.ndjson");
        let dst = tmp.path().join("1.ndjson.zst");
        let data = lines(10);
        std::fs::write(&src, &data).unwrap();
        compress_segment(&src, data.len() as u64, &dst, 3, (0, 0), None).unwrap();
        let mut bytes = std::fs::read(&dst).unwrap();
        let at = bytes.len() - 20;
        bytes[at] ^= 0xff;
        std::fs::write(&dst, &bytes).unwrap();
        let err = read_index(&dst).unwrap_err().to_string();
        assert!(err.contains("1.ndjson.zst") && err.contains("CRC"), "{err}");
    }
}
