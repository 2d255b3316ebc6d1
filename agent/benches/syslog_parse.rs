//! Cost of turning syslog messages into event lines: 1,000,000 RFC 5424 messages shaped
//! like syslog-ng's `loggen` (the stream `syslog-bench` sends), and as many RFC 3164 ones,
//! through the receiver's parser into chunks, as the TCP and UDP paths do (framing, the
//! buffer and the kernel are left out). Prints ns per message and messages/s.
//!
//! `cargo bench -p logops-agent --bench syslog_parse` (`SYSLOG_BENCH_MESSAGES=n` for
//! another count, `SYSLOG_BENCH_FORMAT=rfc5424` or `rfc3164` for one format).

use std::time::Instant;

use logops_agent::chunk::Chunk;
use logops_agent::config::SyslogTimezone;
use logops_agent::sources::syslog::batch::CHUNK_EVENTS;
use logops_agent::sources::syslog::parse::{Origin, Parser};
use logops_common::event::Labels;
use logops_common::timestamp::Timestamp;

/// `n` messages like loggen's, `size` bytes each (its payload padded).
fn messages(n: usize, rfc5424: bool) -> Vec<Vec<u8>> {
    (0..n)
        .map(|i| {
            let mut m = if rfc5424 {
                format!(
                    "<38>1 2026-12-06T01:51:{:02}.{:06}+00:00 localhost prg00000 1234 - - seq: {i:010}, thread: 0000, runid: 1733450000, stamp: 2026-12-06T01:51:04 ",
                    // A sender's stamps: 100,000 in each second.
                    i / 100_000 % 60,
                    i % 100_000 * 10
                )
            } else {
                format!(
                    "<38>Dec  6 01:51:{:02} localhost prg00000[1234]: seq: {i:010}, thread: 0000, runid: 1733450000, stamp: 2026-12-06T01:51:04 ",
                    i / 100_000 % 60
                )
            }
            .into_bytes();
            m.resize(200, b'P');
            m
        })
        .collect()
}

fn run(name: &str, msgs: &[Vec<u8>]) {
    let mut parser = Parser::new(SyslogTimezone::Fixed(0), "bench-host", Labels::new());
    let mut chunk = Chunk::with_capacity(1 << 20);
    let origin = Origin {
        transport: "tcp",
        peer: "127.0.0.1:51234",
        received: Timestamp::now(),
    };
    let mut bytes = 0usize;
    let started = Instant::now();
    for m in msgs {
        parser.push(&mut chunk, m, false, &origin);
        if chunk.events() >= CHUNK_EVENTS {
            bytes += chunk.len();
            chunk.clear();
        }
    }
    bytes += chunk.len();
    let secs = started.elapsed().as_secs_f64();
    println!(
        "syslog_parse {name}: {} messages in {secs:.3} s: {:.0} ns/message, {:.0} messages/s, {:.0} bytes of NDJSON per message",
        msgs.len(),
        secs * 1e9 / msgs.len() as f64,
        msgs.len() as f64 / secs,
        bytes as f64 / msgs.len() as f64
    );
}

fn main() {
    let n = std::env::var("SYSLOG_BENCH_MESSAGES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let only = std::env::var("SYSLOG_BENCH_FORMAT").ok();
    // Criterion-style flags (`--bench`) are ignored.
    for (name, rfc5424) in [("rfc5424", true), ("rfc3164", false)] {
        if only.as_deref().is_some_and(|o| o != name) {
            continue;
        }
        let msgs = messages(n, rfc5424);
        run(name, &msgs);
        run(name, &msgs);
    }
}
