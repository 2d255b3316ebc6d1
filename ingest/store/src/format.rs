//! The segment file format: zstd frames of whole lines, group headers and the index.
//!
//! Every segment file is a sequence of independent zstd frames, each holding whole lines of
//! the segment's stream, interleaved with zstd *skippable frames* that decoders skip: plain
//! `zstd -d` yields the segment's NDJSON.
//!
//! * **Open segment** `<seq>.open.ndjson.zst`: one *unit* per group commit that wrote to it,
//!   a group header then the frames it lists. Group header: `u32 0x184D2A5D | u32 size |
//!   b"LOGG" | u32 n | n × (u64 compressed length, u64 uncompressed length, u64 lines,
//!   i64 min ts, i64 max ts) | u32 CRC-32 of everything from "LOGG" up to here`. Recovery
//!   walks the headers up to the committed length and so knows every frame without
//!   decompressing any.
//! * **Closed segment** `<seq>.ndjson.zst`: the same (or, repacked, frames alone) followed by
//!   the index, a skippable frame (magic `0x184D2A5E`): `b"LOIX" | u32 version (1) | u32 n
//!   frames | n × (u64 compressed offset, u64 compressed length, u64 uncompressed offset,
//!   u64 uncompressed length, u64 lines, i64 min ts, i64 max ts) | u64 lines | i64 min ts |
//!   i64 max ts | u64 uncompressed length | u64 created ms | u64 last write ms | u32 CRC-32
//!   of everything from "LOIX" up to here | u32 size (again) | b"LOIX"`. The last 8 bytes of
//!   the file thus locate the index.
//!
//! Positions (`Position::offset`) are offsets in the uncompressed NDJSON, so they stay
//! valid when a segment is sealed or repacked.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::os::unix::fs::FileExt;
use std::path::Path;

use crate::codec::{Dec, DecodeError, Put};
use crate::error::StoreError;
use crate::frame::{compressor, Frame, FRAME_TARGET};
use crate::segment::LineStats;

/// The skippable frame magic of group headers.
pub(crate) const GROUP_MAGIC: u32 = 0x184D_2A5D;
/// The skippable frame magic of the index (in the 0x184D2A50..=0x184D2A5F range).
pub(crate) const INDEX_MAGIC_NUMBER: u32 = 0x184D_2A5E;
const GROUP_TAG: &[u8; 4] = b"LOGG";
const INDEX_TAG: &[u8; 4] = b"LOIX";
const INDEX_VERSION: u32 = 1;
const FRAME_ENTRY_LEN: usize = 56;
const GROUP_ENTRY_LEN: usize = 40;
/// Frames of at least this many uncompressed bytes are kept as they are when a segment is
/// repacked; smaller ones are merged.
pub(crate) const KEEP_FRAME: u64 = 64 << 10;

/// Where one zstd frame is and what it holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct FrameInfo {
    /// Its offset in the segment file.
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

impl FrameInfo {
    /// One past its last uncompressed byte.
    pub(crate) fn u_end(&self) -> u64 {
        self.u_off + self.u_len
    }
}

/// One group's unit of a stream: the bytes to append to the open segment (header and
/// frames) and the frames' places in it, relative to the unit's start.
#[derive(Debug, Default)]
pub(crate) struct Unit {
    /// Group header then frames.
    pub(crate) bytes: Vec<u8>,
    /// Each frame, offsets relative to the unit (compressed) and to its first frame
    /// (uncompressed).
    pub(crate) frames: Vec<FrameInfo>,
    /// The uncompressed bytes of its frames.
    pub(crate) u_len: u64,
    /// Its lines.
    pub(crate) ts: LineStats,
}

impl Unit {
    /// The unit of `frames`, in order.
    pub(crate) fn of(frames: &[&Frame]) -> Unit {
        let mut header = Vec::with_capacity(12 + frames.len() * GROUP_ENTRY_LEN);
        header.extend_from_slice(GROUP_TAG);
        header.put_u32(frames.len() as u32);
        for f in frames {
            header.put_u64(f.data.len() as u64);
            header.put_u64(f.u_len);
            header.put_u64(f.ts.lines);
            header.put_i64(f.ts.min_ts);
            header.put_i64(f.ts.max_ts);
        }
        header.put_u32(crc32fast::hash(&header));
        let c_total: usize = frames.iter().map(|f| f.data.len()).sum();
        let mut unit = Unit {
            bytes: Vec::with_capacity(8 + header.len() + c_total),
            frames: Vec::with_capacity(frames.len()),
            u_len: 0,
            ts: LineStats::default(),
        };
        unit.bytes.put_u32(GROUP_MAGIC);
        unit.bytes.put_u32(header.len() as u32);
        unit.bytes.extend_from_slice(&header);
        for f in frames {
            unit.frames.push(FrameInfo {
                c_off: unit.bytes.len() as u64,
                c_len: f.data.len() as u64,
                u_off: unit.u_len,
                u_len: f.u_len,
                ts: f.ts,
            });
            unit.bytes.extend_from_slice(&f.data);
            unit.u_len += f.u_len;
            unit.ts.merge(&f.ts);
        }
        unit
    }
}

/// Decodes a group header's content into (compressed length, uncompressed length, lines).
fn decode_group(content: &[u8]) -> Result<Vec<(u64, u64, LineStats)>, DecodeError> {
    let body_len = content
        .len()
        .checked_sub(4)
        .ok_or_else(|| Dec::new(content).error("the group header is too short"))?;
    let (body, crc) = content.split_at(body_len);
    let mut d = Dec::new(body);
    if d.bytes(4)? != GROUP_TAG {
        return Err(d.error("bad group header tag"));
    }
    if crc32fast::hash(body).to_le_bytes() != crc {
        return Err(d.error("bad group header CRC"));
    }
    let n = d.count(GROUP_ENTRY_LEN)?;
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        out.push((
            d.u64()?,
            d.u64()?,
            LineStats {
                lines: d.u64()?,
                min_ts: d.i64()?,
                max_ts: d.i64()?,
            },
        ));
    }
    if d.remaining() != 0 {
        return Err(d.error("trailing bytes in a group header"));
    }
    Ok(out)
}

/// What walking the group headers of an open segment found.
#[derive(Debug, Default)]
pub(crate) struct Walked {
    /// Every frame of the complete units.
    pub(crate) frames: Vec<FrameInfo>,
    /// The uncompressed length of those frames.
    pub(crate) u_len: u64,
    /// Their lines.
    pub(crate) ts: LineStats,
    /// Where the last complete unit ends in the file.
    pub(crate) end: u64,
    /// Why the walk stopped before `limit`, if it did.
    pub(crate) stopped: Option<String>,
}

/// Walks the units of an open segment from its start up to `limit` bytes.
pub(crate) fn walk_units(file: &File, path: &Path, limit: u64) -> Result<Walked, StoreError> {
    let mut w = Walked::default();
    let read = |buf: &mut [u8], at: u64| {
        file.read_exact_at(buf, at)
            .map_err(StoreError::io_fn("read the segment", path))
    };
    while w.end < limit {
        let at = w.end;
        if limit - at < 8 {
            w.stopped = Some(format!("an incomplete group header at byte {at}"));
            break;
        }
        let mut head = [0u8; 8];
        read(&mut head, at)?;
        let magic = u32::from_le_bytes([head[0], head[1], head[2], head[3]]);
        let size = u64::from(u32::from_le_bytes([head[4], head[5], head[6], head[7]]));
        if magic != GROUP_MAGIC || size > limit - at - 8 {
            w.stopped = Some(format!("no complete group header at byte {at}"));
            break;
        }
        let mut content = vec![0u8; size as usize];
        read(&mut content, at + 8)?;
        let entries = match decode_group(&content) {
            Ok(e) => e,
            Err(e) => {
                w.stopped = Some(format!("the group header at byte {at}: {e}"));
                break;
            }
        };
        let mut c_off = at + 8 + size;
        let mut frames = Vec::with_capacity(entries.len());
        let (mut u_off, mut ts) = (w.u_len, LineStats::default());
        for (c_len, u_len, lines) in entries {
            frames.push(FrameInfo {
                c_off,
                c_len,
                u_off,
                u_len,
                ts: lines,
            });
            c_off = c_off.saturating_add(c_len);
            u_off = u_off.saturating_add(u_len);
            ts.merge(&lines);
        }
        if c_off > limit {
            w.stopped = Some(format!(
                "the group at byte {at} ends at byte {c_off}, past {limit}"
            ));
            break;
        }
        w.frames.extend(frames);
        w.u_len = u_off;
        w.ts.merge(&ts);
        w.end = c_off;
    }
    Ok(w)
}

/// The index of a closed segment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SegmentIndex {
    /// The frames, in order.
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

impl SegmentIndex {
    /// The index of `frames`.
    pub(crate) fn of(frames: Vec<FrameInfo>, times: (u64, u64)) -> SegmentIndex {
        let mut ts = LineStats::default();
        for f in &frames {
            ts.merge(&f.ts);
        }
        SegmentIndex {
            u_len: frames.last().map_or(0, FrameInfo::u_end),
            frames,
            ts,
            created_ms: times.0,
            last_write_ms: times.1,
        }
    }
}

/// The index as a skippable frame.
pub(crate) fn encode_index(index: &SegmentIndex) -> Vec<u8> {
    let mut data = Vec::with_capacity(80 + index.frames.len() * FRAME_ENTRY_LEN);
    data.extend_from_slice(INDEX_TAG);
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
    data.extend_from_slice(INDEX_TAG);

    let mut frame = Vec::with_capacity(8 + data.len());
    frame.put_u32(INDEX_MAGIC_NUMBER);
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
    if d.bytes(4)? != INDEX_TAG {
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

/// Reads the index of a closed segment; also returns the file's size.
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
    if &trailer[4..] != INDEX_TAG {
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
    if magic != INDEX_MAGIC_NUMBER || declared != frame_size {
        return Err(corrupt(
            "the index is not a well-formed skippable frame".into(),
        ));
    }
    let index = decode_index(&frame[8..]).map_err(|e| corrupt(format!("index: {e}")))?;
    if index.frames.iter().any(|f| f.c_off + f.c_len > start) {
        return Err(corrupt("the index lists a frame past its start".into()));
    }
    Ok((index, size))
}

/// Reads one frame's compressed bytes.
fn read_compressed(file: &File, path: &Path, frame: &FrameInfo) -> Result<Vec<u8>, StoreError> {
    let mut compressed = vec![0u8; frame.c_len as usize];
    file.read_exact_at(&mut compressed, frame.c_off)
        .map_err(StoreError::io_fn("read", path))?;
    Ok(compressed)
}

/// Reads and decompresses one frame of a segment.
pub(crate) fn read_frame(
    file: &File,
    path: &Path,
    frame: &FrameInfo,
) -> Result<Vec<u8>, StoreError> {
    let compressed = read_compressed(file, path, frame)?;
    let data = zstd::bulk::decompress(&compressed, frame.u_len as usize)
        .map_err(StoreError::io_fn("decompress a frame of", path))?;
    if data.len() as u64 != frame.u_len || data.last() != Some(&b'\n') {
        return Err(StoreError::Corrupt {
            path: path.to_path_buf(),
            what: format!(
                "the frame at {} holds {} bytes not ending a line, its index says {}",
                frame.c_off,
                data.len(),
                frame.u_len
            ),
        });
    }
    Ok(data)
}

/// Seals a closed open segment in place: appends the index of `frames` after its
/// `committed` bytes and fdatasyncs it (the caller renames it). Returns the index and the
/// file's new size.
pub(crate) fn seal(
    path: &Path,
    committed: u64,
    frames: Vec<FrameInfo>,
    times: (u64, u64),
) -> Result<(SegmentIndex, u64), StoreError> {
    let file = std::fs::OpenOptions::new()
        .write(true)
        .open(path)
        .map_err(StoreError::io_fn("open", path))?;
    let index = SegmentIndex::of(frames, times);
    let footer = encode_index(&index);
    file.set_len(committed)
        .and_then(|()| file.write_all_at(&footer, committed))
        .map_err(StoreError::io_fn("write the index of", path))?;
    file.sync_data()
        .map_err(StoreError::io_fn("fdatasync", path))?;
    Ok((index, committed + footer.len() as u64))
}

/// The output of [`repack`]: frames written one after the other.
struct Packer<'a> {
    writer: BufWriter<&'a File>,
    path: &'a Path,
    frames: Vec<FrameInfo>,
    c_off: u64,
    u_off: u64,
}

impl Packer<'_> {
    fn emit(&mut self, compressed: &[u8], u_len: u64, ts: LineStats) -> Result<(), StoreError> {
        self.writer
            .write_all(compressed)
            .map_err(StoreError::io_fn("write", self.path))?;
        self.frames.push(FrameInfo {
            c_off: self.c_off,
            c_len: compressed.len() as u64,
            u_off: self.u_off,
            u_len,
            ts,
        });
        self.c_off += compressed.len() as u64;
        self.u_off += u_len;
        Ok(())
    }
}

/// Writes the frames of `src` into a new closed segment `dst` (written and fsync'd, not
/// renamed): runs of frames smaller than [`KEEP_FRAME`] are merged into frames of about
/// [`FRAME_TARGET`] bytes compressed at `level`, bigger ones are copied as they are.
/// Returns the index and the size of `dst`.
pub(crate) fn repack(
    src: &Path,
    frames: &[FrameInfo],
    dst: &Path,
    level: i32,
    times: (u64, u64),
) -> Result<(SegmentIndex, u64), StoreError> {
    let input = File::open(src).map_err(StoreError::io_fn("open the segment", src))?;
    let output = File::create(dst).map_err(StoreError::io_fn("create", dst))?;
    let mut zstd = compressor(level).map_err(StoreError::io_fn("set up zstd for", src))?;
    let mut out = Packer {
        writer: BufWriter::with_capacity(1 << 20, &output),
        path: dst,
        frames: Vec::with_capacity(frames.len()),
        c_off: 0,
        u_off: 0,
    };
    let mut run = Vec::with_capacity(FRAME_TARGET + KEEP_FRAME as usize);
    let mut run_ts = LineStats::default();
    let mut flush = |run: &mut Vec<u8>, ts: &mut LineStats, out: &mut Packer| {
        if run.is_empty() {
            return Ok(());
        }
        let compressed = zstd
            .compress(run)
            .map_err(StoreError::io_fn("compress", src))?;
        out.emit(&compressed, run.len() as u64, std::mem::take(ts))?;
        run.clear();
        Ok::<(), StoreError>(())
    };
    for f in frames {
        if f.u_len >= KEEP_FRAME {
            flush(&mut run, &mut run_ts, &mut out)?;
            out.emit(&read_compressed(&input, src, f)?, f.u_len, f.ts)?;
        } else {
            run.extend_from_slice(&read_frame(&input, src, f)?);
            run_ts.merge(&f.ts);
            if run.len() >= FRAME_TARGET {
                flush(&mut run, &mut run_ts, &mut out)?;
            }
        }
    }
    flush(&mut run, &mut run_ts, &mut out)?;
    let size = out.c_off;
    let index = SegmentIndex::of(out.frames, times);
    let footer = encode_index(&index);
    let mut writer = out.writer;
    writer
        .write_all(&footer)
        .and_then(|()| writer.flush())
        .map_err(StoreError::io_fn("write", dst))?;
    drop(writer);
    output.sync_all().map_err(StoreError::io_fn("fsync", dst))?;
    Ok((index, size + footer.len() as u64))
}

#[cfg(test)]
mod tests {
    use super::*;
    use logops_common::Kind;

    use crate::frame::FrameBuilder;

    fn lines(from: usize, n: usize) -> Vec<u8> {
        let mut out = Vec::new();
        for i in from..from + n {
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

    /// Frames of `n` lines each holding `per_frame` lines, as agents would send them.
    fn frames(n: usize, per_frame: usize) -> (Vec<Frame>, Vec<u8>) {
        let mut all = Vec::new();
        let mut out = Vec::new();
        for k in 0..n {
            let content = lines(k * per_frame, per_frame);
            let mut ts = LineStats::default();
            for j in 0..per_frame {
                ts.add(Some((k * per_frame + j) as i64));
            }
            out.push(Frame {
                kind: Kind::Log,
                data: zstd::bulk::compress(&content, 3).unwrap().into(),
                u_len: content.len() as u64,
                ts,
            });
            all.extend(content);
        }
        (out, all)
    }

    /// Writes units of `frames` (`per_unit` frames each) into a file; returns its frames.
    fn write_units(path: &Path, frames: &[Frame], per_unit: usize) -> Vec<FrameInfo> {
        let mut bytes = Vec::new();
        let mut infos = Vec::new();
        let mut u_off = 0;
        for chunk in frames.chunks(per_unit) {
            let unit = Unit::of(&chunk.iter().collect::<Vec<_>>());
            for f in &unit.frames {
                let mut f = *f;
                f.c_off += bytes.len() as u64;
                f.u_off += u_off;
                infos.push(f);
            }
            u_off += unit.u_len;
            bytes.extend(unit.bytes);
        }
        std::fs::write(path, bytes).unwrap();
        infos
    }

    #[test]
    fn units_are_walked_back_and_read_by_a_plain_zstd_decoder() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("1.open.ndjson.zst");
        let (frames, content) = frames(7, 50);
        let infos = write_units(&path, &frames, 3);
        let len = std::fs::metadata(&path).unwrap().len();
        let file = File::open(&path).unwrap();

        let w = walk_units(&file, &path, len).unwrap();
        assert_eq!((w.end, w.stopped.as_deref()), (len, None));
        assert_eq!(w.frames, infos);
        assert_eq!((w.u_len, w.ts.lines), (content.len() as u64, 350));
        let plain = zstd::stream::decode_all(File::open(&path).unwrap()).unwrap();
        assert!(plain == content, "zstd -d skips the group headers");
        let joined: Vec<u8> = w
            .frames
            .iter()
            .flat_map(|f| read_frame(&file, &path, f).unwrap())
            .collect();
        assert!(joined == content);

        // A limit inside the last unit: the walk stops after the unit before.
        let w = walk_units(&file, &path, len - 1).unwrap();
        assert_eq!(w.frames.len(), 6);
        assert!(w.stopped.unwrap().contains("past"), "torn unit");
        // A damaged header: the walk keeps what came before it.
        let mut bytes = std::fs::read(&path).unwrap();
        let second = infos[2].c_off + infos[2].c_len;
        bytes[second as usize + 12] ^= 1;
        std::fs::write(&path, &bytes).unwrap();
        let file = File::open(&path).unwrap();
        let w = walk_units(&file, &path, len).unwrap();
        assert_eq!((w.frames.len(), w.end), (3, second));
        assert!(w.stopped.unwrap().contains("CRC"));
    }

    #[test]
    fn sealing_appends_an_index_and_repacking_merges_small_frames() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("1.open.ndjson.zst");
        let (small, content) = frames(40, 30);
        let infos = write_units(&path, &small, 4);
        let committed = std::fs::metadata(&path).unwrap().len();
        // Junk after the committed length (a torn unit) is not part of the sealed file.
        std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .and_then(|mut f| f.write_all(b"torn"))
            .unwrap();

        let dst = tmp.path().join("2.ndjson.zst.tmp");
        let (index, size) = repack(&path, &infos, &dst, 1, (11, 22)).unwrap();
        assert_eq!(size, std::fs::metadata(&dst).unwrap().len());
        assert_eq!(index.frames.len(), 1, "40 small frames merged into one");
        assert_eq!((index.ts.lines, index.u_len), (1200, content.len() as u64));
        let (read, read_size) = read_index(&dst).unwrap();
        assert_eq!((read, read_size), (index.clone(), size));
        assert!(zstd::stream::decode_all(File::open(&dst).unwrap()).unwrap() == content);

        let (index, size) = seal(&path, committed, infos.clone(), (11, 22)).unwrap();
        assert_eq!(size, std::fs::metadata(&path).unwrap().len());
        assert_eq!(
            index.frames, infos,
            "sealing keeps the frames where they are"
        );
        assert_eq!((index.created_ms, index.last_write_ms), (11, 22));
        assert_eq!(read_index(&path).unwrap(), (index, size));
        assert!(zstd::stream::decode_all(File::open(&path).unwrap()).unwrap() == content);

        // Big frames are copied as they are, small ones between them merged.
        let (big, _) = frames(2, 600);
        assert!(big.iter().all(|f| f.u_len >= KEEP_FRAME));
        let mixed: Vec<Frame> = [&small[..3], &big[..1], &small[3..6], &big[1..]].concat();
        let mixed_path = tmp.path().join("3.open.ndjson.zst");
        let infos = write_units(&mixed_path, &mixed, 2);
        let dst = tmp.path().join("3.ndjson.zst");
        let (index, _) = repack(&mixed_path, &infos, &dst, 1, (0, 0)).unwrap();
        let sizes: Vec<u64> = index.frames.iter().map(|f| f.u_len).collect();
        let expect: Vec<u64> = [
            small[..3].iter().map(|f| f.u_len).sum(),
            big[0].u_len,
            small[3..6].iter().map(|f| f.u_len).sum(),
            big[1].u_len,
        ]
        .to_vec();
        assert_eq!(sizes, expect);
        let packed = std::fs::read(&dst).unwrap();
        let kept = &packed[index.frames[1].c_off as usize..][..index.frames[1].c_len as usize];
        assert!(
            kept == &big[0].data[..],
            "a big frame is copied byte for byte"
        );
    }

    #[test]
    fn a_damaged_index_is_reported() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("1.ndjson.zst");
        let mut b = FrameBuilder::new(1).unwrap();
        b.push_line(Kind::Log, b"{}", 0).unwrap();
        let frames = b.finish().unwrap();
        let infos = write_units(&path, &frames, 1);
        let len = std::fs::metadata(&path).unwrap().len();
        seal(&path, len, infos, (0, 0)).unwrap();
        let mut bytes = std::fs::read(&path).unwrap();
        let at = bytes.len() - 20;
        bytes[at] ^= 0xff;
        std::fs::write(&path, &bytes).unwrap();
        let err = read_index(&path).unwrap_err().to_string();
        assert!(err.contains("1.ndjson.zst") && err.contains("CRC"), "{err}");
    }
}
