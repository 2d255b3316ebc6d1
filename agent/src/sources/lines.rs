//! Lines of a byte stream (a child's pipe, the agent's stdin) as log events, cut by the files
//! source's reader: lines longer than the limit are split into pieces flagged `split`,
//! invalid UTF-8 is kept lossily and flagged `invalid_utf8`, `\r\n` counts as `\n`.
//!
//! A stream has no position to keep: what was read and not yet appended is lost on a crash
//! (the README says so), so events carry no checkpoint.

use std::borrow::Cow;

use logops_common::event::{Attrs, Event, Labels, Payload};
use logops_common::Timestamp;
use serde_json::value::RawValue;

use crate::chunk::Chunk;
use crate::sources::files::reader::{cut_line, split_pieces, Piece, Records, Span, READ_SIZE};

/// The lines of one stream.
pub struct StreamLines {
    max_line: usize,
    /// The unfinished last line, then the block being read.
    buf: Vec<u8>,
    /// Bytes of `buf` holding the unfinished line.
    carry: usize,
    /// Stream offset of `buf[0]`.
    base: u64,
    in_split: bool,
    /// `{"...":...,"offset":` — the attributes every line shares, then its offset.
    attrs_prefix: String,
    records: Records,
}

impl StreamLines {
    /// Lines at most `max_line` bytes long; `attrs` (a JSON object) goes into every
    /// event's attributes, followed by the line's byte `offset` in the stream.
    pub fn new(max_line: usize, attrs: &serde_json::Map<String, serde_json::Value>) -> Self {
        let mut prefix = serde_json::to_string(attrs).expect("a JSON map serializes");
        prefix.pop(); // the closing brace
        if prefix.len() > 1 {
            prefix.push(',');
        }
        prefix.push_str(r#""offset":"#);
        StreamLines {
            max_line: max_line.max(1),
            buf: vec![0; max_line.max(1) + READ_SIZE],
            carry: 0,
            base: 0,
            in_split: false,
            attrs_prefix: prefix,
            records: Records::default(),
        }
    }

    /// Where the next read goes (after the unfinished line).
    pub fn spare(&mut self) -> &mut [u8] {
        let c = self.carry;
        &mut self.buf[c..c + READ_SIZE]
    }

    fn push(&mut self, p: Piece, base: u64) {
        let (range, end, split, mid_line, lines) = match p {
            Piece::Line { range, end } => (range, end, false, false, 1),
            Piece::Split {
                range,
                end,
                mid_line,
                lines,
            } => (range, end, true, mid_line, lines),
        };
        let span = Span {
            offset: base + range.start as u64,
            end: base + end as u64,
            split,
            mid_line,
            lines,
            ..Span::default()
        };
        self.records.push(
            &self.attrs_prefix,
            &self.buf[range.clone()],
            Some(range.start),
            span,
        );
    }

    /// Cuts the `n` bytes just read into [`StreamLines::spare`] into lines; the events of
    /// the complete ones go into the returned chunk.
    pub fn feed(&mut self, n: usize, host: &str, source: &str, labels: &Labels<'_>) -> Chunk {
        self.records.clear();
        let len = self.carry + n;
        let mut pieces = Vec::new();
        let rest = split_pieces(
            &self.buf[..len],
            self.max_line,
            &mut self.in_split,
            &mut |p| pieces.push(p),
        );
        let base = self.base;
        for p in pieces {
            self.push(p, base);
        }
        let chunk = self.chunk(host, source, labels);
        // The unfinished line moves to the front.
        self.buf.copy_within(rest..len, 0);
        self.carry = len - rest;
        self.base += rest as u64;
        chunk
    }

    /// At the end of the stream: the unfinished last line, if any, as an event.
    pub fn finish(&mut self, host: &str, source: &str, labels: &Labels<'_>) -> Chunk {
        self.records.clear();
        let len = self.carry;
        if len > 0 {
            let e = if self.buf[len - 1] == b'\r' {
                len - 1
            } else {
                len
            };
            let mut pieces = Vec::new();
            cut_line(
                &self.buf[..len],
                0..e,
                len,
                self.max_line,
                &mut self.in_split,
                &mut |p| pieces.push(p),
            );
            let base = self.base;
            for p in pieces {
                self.push(p, base);
            }
        }
        let chunk = self.chunk(host, source, labels);
        self.base += len as u64;
        self.carry = 0;
        chunk
    }

    fn chunk(&self, host: &str, source: &str, labels: &Labels<'_>) -> Chunk {
        let mut chunk = Chunk::new();
        let ts = Timestamp::now();
        for rec in &self.records.list {
            let raw: &RawValue = serde_json::from_str(&self.records.attrs[rec.attrs.clone()])
                .expect("the reader writes valid JSON objects");
            let ev = Event {
                ts,
                host: Cow::Borrowed(host),
                source: Cow::Borrowed(source),
                labels: labels.clone(),
                attrs: Attrs::from_raw(raw).ok(),
                payload: Payload::Log {
                    severity: None,
                    body: Cow::Borrowed(self.records.body(rec, &self.buf)),
                },
            };
            chunk.push(&ev);
        }
        chunk
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn feed(l: &mut StreamLines, data: &[u8]) -> Vec<serde_json::Value> {
        l.spare()[..data.len()].copy_from_slice(data);
        lines_of(&l.feed(data.len(), "h", "exec", &Labels::new()))
    }

    fn lines_of(c: &Chunk) -> Vec<serde_json::Value> {
        std::str::from_utf8(c.data())
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    #[test]
    fn lines_carry_split_and_invalid_utf8() {
        let attrs = serde_json::json!({"command": "app", "stream": "stdout"});
        let mut l = StreamLines::new(8, attrs.as_object().unwrap());
        let ev = feed(&mut l, b"one\r\ntw");
        assert_eq!(ev.len(), 1);
        assert_eq!(ev[0]["body"], "one");
        assert_eq!(
            ev[0]["attrs"],
            serde_json::json!({"command": "app", "stream": "stdout", "offset": 0})
        );
        let ev = feed(&mut l, b"o\n\xffx\n0123456789abc");
        let bodies: Vec<&str> = ev.iter().map(|e| e["body"].as_str().unwrap()).collect();
        assert_eq!(bodies, ["two", "\u{FFFD}x", "01234567"]);
        assert_eq!(ev[0]["attrs"]["offset"], 5);
        assert_eq!(ev[1]["attrs"]["invalid_utf8"], true);
        assert_eq!(ev[2]["attrs"]["split"], true);
        let ev = lines_of(&l.finish("h", "exec", &Labels::new()));
        assert_eq!(ev[0]["body"], "89abc");
        assert_eq!(ev[0]["attrs"]["split"], true);
        assert_eq!(ev[0]["attrs"]["offset"], 20);
    }
}
