//! Turning a request body into a validated batch: bounded decompression, every line parsed
//! as a wire-format v1 event, then the lines as the store's frames (the body's own zstd
//! frames wherever they hold exactly validated lines of one kind).

use std::cell::RefCell;
use std::io::Read;
use std::ops::Range;

use axum::body::Bytes;
use logops_common::batch::Encoding;
use logops_common::{check_line, Kind, LineError};
use logops_store::{Frame, FrameBuilder, LineStats};

/// One event's line in a decompressed body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LineInfo {
    /// The event's kind.
    pub kind: Kind,
    /// The event's timestamp, nanoseconds since the Unix epoch.
    pub ts: i64,
    /// The first byte of the line.
    pub start: u32,
    /// One past the last byte of the line, trailing whitespace and `\n` excluded.
    pub end: u32,
}

/// Why a body was refused.
#[derive(Debug, thiserror::Error)]
pub enum BodyError {
    /// Decompressed size passed the limit (413). Decompression stopped there.
    #[error("the body decompresses to more than {limit} bytes (limits.max_decompressed)")]
    TooLarge {
        /// The limit in bytes.
        limit: usize,
    },
    /// The compressed data is corrupt (400).
    #[error("the body is not valid {encoding}: {message}")]
    Corrupt {
        /// The declared encoding.
        encoding: &'static str,
        /// The decoder's message.
        message: String,
    },
    /// The text is not UTF-8 (400).
    #[error("line {line}: not valid UTF-8 (byte {column} of the line)")]
    NotUtf8 {
        /// 1-based line.
        line: usize,
        /// 1-based byte in the line.
        column: usize,
    },
    /// A line is not a valid event (400).
    #[error(transparent)]
    Invalid(#[from] LineError),
    /// No events at all (400).
    #[error("the batch has no events")]
    Empty,
    /// More events than offsets can address (413).
    #[error("a line starts beyond 4 GiB into the body")]
    Unaddressable,
    /// Compressing lines for the store failed (500).
    #[error("compressing the batch for the store failed: {0}")]
    Compress(std::io::Error),
}

thread_local! {
    /// A zstd decompression context per thread, reused from batch to batch.
    static ZSTD_CONTEXT: std::cell::RefCell<Option<zstd::bulk::Decompressor<'static>>> =
        const { std::cell::RefCell::new(None) };
}

/// Decompresses `body`, reading at most `limit` bytes of output: a zstd or gzip bomb costs
/// at most `limit` bytes of memory and is refused as soon as it passes the limit.
pub fn decompress(body: &[u8], encoding: Encoding, limit: usize) -> Result<Vec<u8>, BodyError> {
    let corrupt = |e: std::io::Error| BodyError::Corrupt {
        encoding: encoding.as_str(),
        message: e.to_string(),
    };
    let mut out = Vec::new();
    let read = |r: &mut dyn Read, out: &mut Vec<u8>| -> Result<(), BodyError> {
        // Read one byte past the limit to tell "exactly at the limit" from "over it".
        let n = r.take(limit as u64 + 1).read_to_end(out).map_err(corrupt)?;
        if n > limit {
            return Err(BodyError::TooLarge { limit });
        }
        Ok(())
    };
    match encoding {
        Encoding::Identity => {
            if body.len() > limit {
                return Err(BodyError::TooLarge { limit });
            }
            out.extend_from_slice(body);
        }
        Encoding::Zstd => {
            // Every frame states its size (agents' bodies do): decompress in one call into
            // exactly that much memory, with a context kept per thread. The decoder fails if
            // a frame holds more or less than it states.
            if let Some(size) = zstd_frames(body).map(|f| stated_total(&f)) {
                if size > limit as u64 {
                    return Err(BodyError::TooLarge { limit });
                }
                out.reserve_exact(size as usize);
                ZSTD_CONTEXT.with_borrow_mut(|context| {
                    let dctx = match context {
                        Some(d) => d,
                        None => context.insert(zstd::bulk::Decompressor::new().map_err(corrupt)?),
                    };
                    dctx.decompress_to_buffer(body, &mut out).map_err(corrupt)
                })?;
                return Ok(out);
            }
            // The first frame's header may carry the content size: reserve it when it is in
            // bounds.
            if let Ok(Some(size)) = zstd::zstd_safe::get_frame_content_size(body) {
                if size > limit as u64 {
                    return Err(BodyError::TooLarge { limit });
                }
                out.reserve_exact(size as usize);
            }
            let mut d = zstd::stream::read::Decoder::new(body).map_err(corrupt)?;
            read(&mut d, &mut out)?;
        }
        Encoding::Gzip => {
            let mut d = flate2::read::MultiGzDecoder::new(body);
            read(&mut d, &mut out)?;
        }
    }
    Ok(out)
}

/// The most `body` can decompress to: exact for identity and for zstd bodies whose frames
/// all state their content size (agents send a batch as one frame per buffered chunk; the
/// decoder checks every stated size), `limit` otherwise. A stated size over `limit` is
/// refused at once, before any memory is reserved or anything is decompressed.
pub fn decompressed_bound(
    body: &[u8],
    encoding: Encoding,
    limit: usize,
) -> Result<usize, BodyError> {
    let bound = match encoding {
        Encoding::Identity => body.len(),
        Encoding::Zstd => zstd_frames(body)
            .map_or(limit as u64, |f| stated_total(&f))
            .min(u64::MAX >> 1) as usize,
        Encoding::Gzip => limit,
    };
    if bound > limit {
        return Err(BodyError::TooLarge { limit });
    }
    Ok(bound)
}

/// One zstd frame of a body: where it is and the content size its header states.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BodyFrame {
    /// Its bytes in the body.
    pub range: Range<usize>,
    /// The content size it states.
    pub size: u64,
}

/// The frames of a zstd body, if every one of them states its content size (from the frame
/// headers alone; the decoder checks each stated size against the content).
pub fn zstd_frames(body: &[u8]) -> Option<Vec<BodyFrame>> {
    let mut frames = Vec::new();
    let mut at = 0;
    while at < body.len() {
        let rest = &body[at..];
        let size = zstd::zstd_safe::get_frame_content_size(rest).ok()??;
        let len = zstd::zstd_safe::find_frame_compressed_size(rest).ok()?;
        if len == 0 || len > rest.len() {
            return None;
        }
        frames.push(BodyFrame {
            range: at..at + len,
            size,
        });
        at += len;
    }
    Some(frames)
}

fn stated_total(frames: &[BodyFrame]) -> u64 {
    frames
        .iter()
        .fold(0u64, |total, f| total.saturating_add(f.size))
}

/// Parses every line of a decompressed body. Blank lines are skipped; any invalid line
/// refuses the whole batch with its line number and field.
pub fn validate(data: &[u8]) -> Result<Vec<LineInfo>, BodyError> {
    let text = std::str::from_utf8(data).map_err(|e| {
        let at = e.valid_up_to();
        let line_start = data[..at]
            .iter()
            .rposition(|&b| b == b'\n')
            .map_or(0, |p| p + 1);
        BodyError::NotUtf8 {
            line: data[..at].iter().filter(|&&b| b == b'\n').count() + 1,
            column: at - line_start + 1,
        }
    })?;
    if data.len() > u32::MAX as usize {
        return Err(BodyError::Unaddressable);
    }
    let mut lines = Vec::with_capacity(data.len() / 200 + 1);
    let mut start = 0usize;
    let ends = memchr::memchr_iter(b'\n', data).chain(std::iter::once(data.len()));
    for (i, end) in ends.enumerate() {
        let (line_start, raw) = (start, &text[start..end]);
        start = end + 1;
        let trimmed = raw.trim_end_matches([' ', '\t', '\r']);
        if trimmed.trim_start().is_empty() {
            continue;
        }
        let (kind, ts) = check_line(trimmed, i + 1)?;
        lines.push(LineInfo {
            kind,
            ts: ts.as_nanos_i64(),
            start: line_start as u32,
            end: (line_start + trimmed.len()) as u32,
        });
    }
    if lines.is_empty() {
        return Err(BodyError::Empty);
    }
    Ok(lines)
}

/// A body frame smaller than this is compressed again with its neighbours rather than kept:
/// a segment of tiny frames compresses worse and has a bigger index.
pub const MIN_KEPT_FRAME: u64 = 4 << 10;

thread_local! {
    /// A frame builder (with its zstd context) per thread, reused from batch to batch.
    static FRAME_BUILDER: RefCell<Option<FrameBuilder>> = const { RefCell::new(None) };
}

/// Whether the body frame holding `data[span]` holds exactly `lines`: one kind, each line
/// followed by its `\n` and nothing else (no blank line, no trailing whitespace, no `\r`).
/// Such a frame is what the store would write for these lines, byte for byte once
/// decompressed.
fn holds_exactly(data: &[u8], span: Range<usize>, lines: &[LineInfo]) -> Option<Kind> {
    let (first, last) = (lines.first()?, lines.last()?);
    let contiguous = lines
        .windows(2)
        .all(|w| w[0].end as usize + 1 == w[1].start as usize);
    let one_kind = lines.iter().all(|l| l.kind == first.kind);
    (first.start as usize == span.start
        && last.end as usize + 1 == span.end
        && data.get(span.end - 1) == Some(&b'\n')
        && contiguous
        && one_kind)
        .then_some(first.kind)
}

/// A batch's lines as the store's frames.
#[derive(Debug, Clone)]
pub struct BatchFrames {
    /// The frames, one kind each, in body order per kind.
    pub frames: Vec<Frame>,
    /// The lines in frames kept as sent.
    pub kept_lines: u64,
}

/// The store's frames for a validated body (`data`, the decompression of `raw`, and its
/// `lines`): each zstd frame of `raw` that holds exactly validated lines of one kind and at
/// least [`MIN_KEPT_FRAME`] bytes is kept as sent; the other lines are compressed at zstd
/// `level`, per kind in body order.
pub fn to_frames(
    raw: &Bytes,
    encoding: Encoding,
    data: &[u8],
    lines: &[LineInfo],
    level: i32,
) -> Result<BatchFrames, BodyError> {
    FRAME_BUILDER.with_borrow_mut(|slot| {
        let builder = match slot {
            Some(b) if b.level() == level => b,
            _ => slot.insert(FrameBuilder::new(level).map_err(BodyError::Compress)?),
        };
        let body_frames = match encoding {
            Encoding::Zstd => zstd_frames(raw).unwrap_or_default(),
            _ => Vec::new(),
        };
        let mut kept_lines = 0;
        let mut built = || -> std::io::Result<()> {
            let (mut next, mut u_start) = (0usize, 0usize);
            for bf in &body_frames {
                let u_end = u_start + bf.size as usize;
                let first = next;
                while next < lines.len() && (lines[next].start as usize) < u_end {
                    next += 1;
                }
                let these = &lines[first..next];
                match holds_exactly(data, u_start..u_end, these) {
                    Some(kind) if bf.size >= MIN_KEPT_FRAME => {
                        let mut ts = LineStats::default();
                        for l in these {
                            ts.add(Some(l.ts));
                        }
                        kept_lines += these.len() as u64;
                        builder.push_frame(Frame {
                            kind,
                            data: raw.slice(bf.range.clone()),
                            u_len: bf.size,
                            ts,
                        })?;
                    }
                    _ => {
                        for l in these {
                            let line = &data[l.start as usize..l.end as usize];
                            builder.push_line(l.kind, line, l.ts)?;
                        }
                    }
                }
                u_start = u_end;
            }
            for l in &lines[next..] {
                builder.push_line(l.kind, &data[l.start as usize..l.end as usize], l.ts)?;
            }
            Ok(())
        };
        let pushed = built();
        let frames = builder.finish();
        let frames = pushed.and(frames).map_err(BodyError::Compress)?;
        Ok(BatchFrames { frames, kept_lines })
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use logops_common::Kind;

    const LOG: &str =
        r#"{"ts":"2026-11-22T10:00:00Z","kind":"log","host":"h","source":"s","body":"b"}"#;

    #[test]
    fn a_zstd_bomb_stops_at_the_limit() {
        let zeros = vec![0u8; 50 << 20];
        let bomb = zstd::bulk::compress(&zeros, 19).unwrap();
        assert!(bomb.len() < 10_000, "{}", bomb.len());
        let e = decompress(&bomb, Encoding::Zstd, 1 << 20).unwrap_err();
        assert!(matches!(e, BodyError::TooLarge { limit } if limit == 1 << 20));
        // A streaming frame without a content size in its header is stopped too.
        let mut enc = zstd::stream::write::Encoder::new(Vec::new(), 19).unwrap();
        enc.include_contentsize(false).unwrap();
        std::io::Write::write_all(&mut enc, &zeros).unwrap();
        let bomb = enc.finish().unwrap();
        assert!(matches!(
            decompress(&bomb, Encoding::Zstd, 1 << 20),
            Err(BodyError::TooLarge { .. })
        ));
    }

    #[test]
    fn a_gzip_bomb_stops_at_the_limit() {
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        std::io::Write::write_all(&mut enc, &vec![0u8; 20 << 20]).unwrap();
        let bomb = enc.finish().unwrap();
        assert!(matches!(
            decompress(&bomb, Encoding::Gzip, 1 << 20),
            Err(BodyError::TooLarge { .. })
        ));
    }

    #[test]
    fn exactly_at_the_limit_is_fine() {
        let data = vec![b'x'; 1000];
        let z = zstd::bulk::compress(&data, 3).unwrap();
        assert_eq!(decompress(&z, Encoding::Zstd, 1000).unwrap(), data);
        assert!(decompress(&z, Encoding::Zstd, 999).is_err());
    }

    #[test]
    fn the_bound_is_exact_when_known() {
        let data = vec![b'x'; 5000];
        let z = zstd::bulk::compress(&data, 3).unwrap();
        assert_eq!(
            decompressed_bound(&z, Encoding::Zstd, 1 << 20).unwrap(),
            5000
        );
        assert!(matches!(
            decompressed_bound(&z, Encoding::Zstd, 4999),
            Err(BodyError::TooLarge { limit: 4999 })
        ));
        let mut two = z.clone();
        two.extend_from_slice(&z);
        assert_eq!(
            decompressed_bound(&two, Encoding::Zstd, 1 << 20).unwrap(),
            10_000,
            "frames add up"
        );
        assert!(
            decompressed_bound(&two, Encoding::Zstd, 9_999).is_err(),
            "the total counts"
        );
        assert_eq!(
            decompress(&two, Encoding::Zstd, 10_000).unwrap().len(),
            10_000
        );
        let mut streamed = zstd::stream::write::Encoder::new(Vec::new(), 3).unwrap();
        streamed.include_contentsize(false).unwrap();
        std::io::Write::write_all(&mut streamed, &data).unwrap();
        let mut mixed = z.clone();
        mixed.extend_from_slice(&streamed.finish().unwrap());
        assert_eq!(
            decompressed_bound(&mixed, Encoding::Zstd, 1 << 20).unwrap(),
            1 << 20,
            "a frame without a size"
        );
        assert_eq!(
            decompressed_bound(b"abc", Encoding::Identity, 10).unwrap(),
            3
        );
        // A frame that lies about its size is refused by the decoder.
        assert!(decompress(&z, Encoding::Zstd, 4999).is_err());
    }

    /// A frame whose header states a size it does not hold, either way, is refused.
    #[test]
    fn a_frame_that_misstates_its_size_is_refused() {
        let data = vec![b'x'; 5000];
        let z = zstd::bulk::compress(&data, 3).unwrap();
        // Frame header: magic, descriptor (single segment, 2-byte content size = size - 256).
        let fhd = z[4];
        assert_eq!((fhd >> 6, (fhd >> 5) & 1, fhd & 3), (1, 1, 0), "{fhd:#x}");
        assert_eq!(u16::from_le_bytes([z[5], z[6]]), 5000 - 256);
        for stated in [4999u16, 5001] {
            let mut lying = z.clone();
            lying[5..7].copy_from_slice(&(stated - 256).to_le_bytes());
            assert_eq!(
                decompressed_bound(&lying, Encoding::Zstd, 1 << 20).unwrap(),
                stated as usize
            );
            let e = decompress(&lying, Encoding::Zstd, 1 << 20).unwrap_err();
            assert!(matches!(e, BodyError::Corrupt { .. }), "{stated}: {e:?}");
        }
        assert_eq!(decompress(&z, Encoding::Zstd, 5000).unwrap(), data);
    }

    #[test]
    fn corrupt_data_is_named() {
        let e = decompress(b"not zstd", Encoding::Zstd, 100).unwrap_err();
        assert!(e.to_string().contains("not valid zstd"), "{e}");
    }

    #[test]
    fn lines_are_located_and_blank_lines_skipped() {
        let body = format!("{LOG}\r\n\n{LOG}\n");
        let lines = validate(body.as_bytes()).unwrap();
        assert_eq!(lines.len(), 2);
        assert_eq!(
            &body.as_bytes()[lines[0].start as usize..lines[0].end as usize],
            LOG.as_bytes()
        );
        assert_eq!(
            &body.as_bytes()[lines[1].start as usize..lines[1].end as usize],
            LOG.as_bytes()
        );
        assert_eq!(lines[1].kind, Kind::Log);
    }

    #[test]
    fn the_bad_line_is_named() {
        let body = format!("{LOG}\n{LOG}\n{{\"ts\":1}}\n");
        let BodyError::Invalid(e) = validate(body.as_bytes()).unwrap_err() else {
            panic!()
        };
        assert_eq!((e.line, e.field.as_deref()), (3, Some("ts")));
    }

    #[test]
    fn invalid_utf8_is_located() {
        let mut body = format!("{LOG}\n").into_bytes();
        body.extend_from_slice(b"{\"ts\xff");
        let e = validate(&body).unwrap_err();
        assert!(
            matches!(e, BodyError::NotUtf8 { line: 2, column: 5 }),
            "{e:?}"
        );
    }

    #[test]
    fn empty_is_refused() {
        assert!(matches!(validate(b"\n \n"), Err(BodyError::Empty)));
    }

    /// `n` log lines (each with `\n`), numbered from `from`.
    fn logs(from: usize, n: usize) -> String {
        (from..from + n)
            .map(|i| {
                format!(
                    r#"{{"ts":"2026-11-22T10:00:00.{i:09}Z","kind":"log","host":"h","source":"s","body":"line {i} {}"}}"#,
                    "x".repeat(60)
                ) + "\n"
            })
            .collect()
    }

    fn metric(i: usize) -> String {
        format!(
            r#"{{"ts":"2026-11-22T10:00:00Z","kind":"metric","host":"h","source":"s","name":"m_{i}","type":"gauge","value":1}}"#
        ) + "\n"
    }

    /// The frames `to_frames` makes of a zstd body made of `parts`, one frame each.
    fn frames_of(parts: &[&str]) -> (Bytes, Vec<Frame>) {
        let raw: Bytes = parts
            .iter()
            .flat_map(|p| zstd::bulk::compress(p.as_bytes(), 3).unwrap())
            .collect::<Vec<u8>>()
            .into();
        let data = decompress(&raw, Encoding::Zstd, 1 << 24).unwrap();
        let lines = validate(&data).unwrap();
        let built = to_frames(&raw, Encoding::Zstd, &data, &lines, 1).unwrap();
        let in_kept: u64 = built
            .frames
            .iter()
            .filter(|f| raw.as_ptr_range().contains(&f.data.as_ptr()))
            .map(|f| f.ts.lines)
            .sum();
        assert_eq!(built.kept_lines, in_kept);
        (raw, built.frames)
    }

    fn content(f: &Frame) -> String {
        String::from_utf8(zstd::bulk::decompress(&f.data, f.u_len as usize).unwrap()).unwrap()
    }

    #[test]
    fn frames_holding_exactly_valid_lines_of_one_kind_are_kept_as_sent() {
        let (a, b) = (logs(0, 100), logs(100, 100));
        assert!(a.len() as u64 >= MIN_KEPT_FRAME);
        let (raw, frames) = frames_of(&[&a, &b]);
        assert_eq!(frames.len(), 2);
        let first_len = zstd::zstd_safe::find_frame_compressed_size(&raw).unwrap();
        assert_eq!(frames[0].data, raw.slice(..first_len), "kept byte for byte");
        assert_eq!(frames[1].data, raw.slice(first_len..));
        assert_eq!((frames[0].ts.lines, frames[0].u_len), (100, a.len() as u64));
        assert_eq!(frames[0].ts.min_ts, 1_795_341_600_000_000_000);
        assert_eq!(frames[0].ts.max_ts, 1_795_341_600_000_000_099);
        assert_eq!(content(&frames[1]), b);
    }

    #[test]
    fn other_lines_are_compressed_anew_per_kind_in_order() {
        let (a, c) = (logs(0, 100), logs(300, 100));
        // Mixed kinds, a CRLF line, a blank line, trailing blanks, and a line cut across
        // two frames: none of these frames can be kept.
        let mixed = format!("{}{}{}", logs(100, 2), metric(1), logs(102, 2));
        let crlf = logs(200, 100).replacen('\n', "\r\n", 1);
        let blank = format!("{}\n{}", logs(400, 1), logs(401, 100));
        let trailing = logs(500, 100).replacen('\n', " \t\n", 1);
        let whole = logs(600, 200);
        let (cut1, cut2) = whole.split_at(whole.len() / 2 + 7);
        let small = logs(800, 3);
        let (_, frames) =
            frames_of(&[&a, &mixed, &crlf, &c, &blank, &trailing, cut1, cut2, &small]);
        let kinds: Vec<(Kind, String)> = frames.iter().map(|f| (f.kind, content(f))).collect();
        let strip = |s: &str| {
            s.replace("\r\n", "\n")
                .replace(" \t\n", "\n")
                .replace("\n\n", "\n")
        };
        assert_eq!(
            kinds,
            [
                (Kind::Log, a.clone()),
                (Kind::Log, logs(100, 4) + &strip(&crlf)),
                (Kind::Log, c.clone()),
                (
                    Kind::Log,
                    strip(&blank) + &strip(&trailing) + &whole + &small
                ),
                (Kind::Metric, metric(1)),
            ]
        );
        // Kept and rebuilt frames alike decompress to exactly the stored lines.
        let all: String = kinds
            .iter()
            .filter(|(k, _)| *k == Kind::Log)
            .map(|(_, s)| s.as_str())
            .collect();
        assert_eq!(
            all.lines().count(),
            100 + 4 + 100 + 100 + 101 + 100 + 200 + 3
        );
    }

    #[test]
    fn bodies_that_are_not_zstd_frames_with_sizes_are_compressed_anew() {
        let text = logs(0, 100);
        let gz = {
            let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            std::io::Write::write_all(&mut enc, text.as_bytes()).unwrap();
            enc.finish().unwrap()
        };
        let mut streamed = zstd::stream::write::Encoder::new(Vec::new(), 3).unwrap();
        streamed.include_contentsize(false).unwrap();
        std::io::Write::write_all(&mut streamed, text.as_bytes()).unwrap();
        for (raw, encoding) in [
            (text.clone().into_bytes(), Encoding::Identity),
            (gz, Encoding::Gzip),
            (streamed.finish().unwrap(), Encoding::Zstd),
        ] {
            let raw = Bytes::from(raw);
            let data = decompress(&raw, encoding, 1 << 24).unwrap();
            let lines = validate(&data).unwrap();
            let built = to_frames(&raw, encoding, &data, &lines, 1).unwrap();
            assert_eq!(built.kept_lines, 0);
            let frames = built.frames;
            assert_eq!(frames.len(), 1, "{encoding:?}");
            assert_ne!(frames[0].data, raw);
            assert_eq!(content(&frames[0]), text, "{encoding:?}");
        }
    }
}
