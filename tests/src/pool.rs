//! Pre-compressed batch bodies for the benchmarks (`ingest-load`, `ingest-stages`).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use crate::events::{now, realistic_line, ts_plus_nanos};

/// Pre-compressed zstd bodies, each of `events` distinct lines.
pub fn make_pool(n: usize, events: usize, line_bytes: usize) -> Vec<Body> {
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
    let next = AtomicUsize::new(0);
    let out = Mutex::new(Vec::with_capacity(n));
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= n {
                    break;
                }
                let ts = now();
                let mut text = Vec::with_capacity(events * (line_bytes + 1));
                for l in 0..events {
                    text.extend_from_slice(
                        realistic_line(
                            "pool",
                            i as u64,
                            l,
                            ts_plus_nanos(ts, l as i64),
                            line_bytes,
                        )
                        .as_bytes(),
                    );
                    text.push(b'\n');
                }
                let raw = text.len();
                let body = zstd::bulk::compress(&text, 3).expect("zstd");
                out.lock().unwrap().push(Body {
                    data: Vec::leak(body),
                    raw,
                });
            });
        }
    });
    out.into_inner().unwrap()
}

/// One pre-compressed batch body. Leaked: the pool lives as long as the program, and a
/// `&'static [u8]` body is sent without copying.
pub struct Body {
    /// The zstd body (one frame, level 3, with its content size).
    pub data: &'static [u8],
    /// Its decompressed size.
    pub raw: usize,
}
