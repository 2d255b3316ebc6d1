//! Turning a request body into a validated batch: bounded decompression, then every line
//! parsed as a wire-format v1 event.

use std::io::Read;

use logops_common::batch::Encoding;
use logops_common::{check_line, LineError};
use logops_store::LineInfo;

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
            if let Some(size) = zstd_stated_size(body) {
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
        Encoding::Zstd => zstd_stated_size(body)
            .unwrap_or(limit as u64)
            .min(u64::MAX >> 1) as usize,
        Encoding::Gzip => limit,
    };
    if bound > limit {
        return Err(BodyError::TooLarge { limit });
    }
    Ok(bound)
}

/// Sum of the content sizes the frames of a zstd body state, if every frame states one.
fn zstd_stated_size(mut body: &[u8]) -> Option<u64> {
    let mut total = 0u64;
    while !body.is_empty() {
        let size = zstd::zstd_safe::get_frame_content_size(body).ok()??;
        let len = zstd::zstd_safe::find_frame_compressed_size(body).ok()?;
        total = total.saturating_add(size);
        body = body.get(len..)?;
    }
    Some(total)
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
}
