//! Batch body compression (the wire's `Content-Encoding`).

use std::io::{Read, Write};

use logops_common::batch::Encoding;

use crate::config::Compression;

/// The `Content-Encoding` of a compression setting.
pub fn encoding(c: Compression) -> Encoding {
    match c {
        Compression::Zstd => Encoding::Zstd,
        Compression::Gzip => Encoding::Gzip,
        Compression::None => Encoding::Identity,
    }
}

/// Compresses an NDJSON body.
pub fn encode(data: &[u8], encoding: Encoding, zstd_level: i32) -> std::io::Result<Vec<u8>> {
    match encoding {
        Encoding::Zstd => zstd::bulk::compress(data, zstd_level),
        Encoding::Gzip => {
            let mut e = flate2::write::GzEncoder::new(
                Vec::with_capacity(data.len() / 4),
                flate2::Compression::default(),
            );
            e.write_all(data)?;
            e.finish()
        }
        Encoding::Identity => Ok(data.to_vec()),
    }
}

/// Decompresses a body made by [`encode`].
pub fn decode(body: &[u8], encoding: Encoding) -> std::io::Result<Vec<u8>> {
    match encoding {
        Encoding::Zstd => zstd::stream::decode_all(body),
        Encoding::Gzip => {
            let mut out = Vec::new();
            flate2::read::MultiGzDecoder::new(body).read_to_end(&mut out)?;
            Ok(out)
        }
        Encoding::Identity => Ok(body.to_vec()),
    }
}

/// One byte naming an encoding, for storing batches.
pub fn encoding_tag(e: Encoding) -> u8 {
    match e {
        Encoding::Identity => 0,
        Encoding::Zstd => 1,
        Encoding::Gzip => 2,
    }
}

/// The encoding a stored tag names.
pub fn encoding_from_tag(t: u8) -> Option<Encoding> {
    match t {
        0 => Some(Encoding::Identity),
        1 => Some(Encoding::Zstd),
        2 => Some(Encoding::Gzip),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_encoding_round_trips() {
        let data = b"{\"a\":1}\n".repeat(100);
        for e in [Encoding::Zstd, Encoding::Gzip, Encoding::Identity] {
            let body = encode(&data, e, 3).unwrap();
            assert_eq!(decode(&body, e).unwrap(), data);
            assert_eq!(encoding_from_tag(encoding_tag(e)), Some(e));
        }
    }
}
