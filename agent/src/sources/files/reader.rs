//! Reading one file: blocks into a shared buffer, lines found with `memchr`, each line
//! turned into a [`Record`] that points into the buffer (no copy, no allocation) and carries
//! the checkpoint that is true once it is in the buffer.
//!
//! Positions, for one file:
//! - `committed`: the offset in the last checkpoint written, just after the last line in the
//!   buffer;
//! - `read_pos`: how far the file has been read; between the two lie lines being emitted, a
//!   pending multiline event and the unfinished last line (`carry`), which are in memory
//!   only and read again after a restart.

use std::fs::File;
use std::io;
use std::ops::Range;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::time::Instant;

use logops_common::event::Labels;
use logops_common::Timestamp;
use prometheus_client::metrics::gauge::Gauge;

use super::checkpoint::{file_key, FileCheckpoint};
use super::container::{self, Decoded, Decoder, Skip, Stream};
use super::identity::{FileKey, Head};
use super::multiline::{Joined, Multiline, Pending};

/// Bytes read from a file at once.
pub(crate) const READ_SIZE: usize = 256 * 1024;

/// Where a record's body is.
#[derive(Debug, Clone)]
pub(crate) enum Body {
    /// In the read buffer (valid UTF-8, checked when the record was made).
    Buf(Range<usize>),
    /// In [`Records::owned`] (joined lines, lossily decoded lines).
    Owned(Range<usize>),
}

/// One event to emit.
#[derive(Debug, Clone)]
pub(crate) struct Record {
    /// The body.
    pub body: Body,
    /// Its attributes' JSON in [`Records::attrs`].
    pub attrs: Range<usize>,
    /// The file's checkpoint once this record is in the buffer.
    pub end: u64,
    /// `end` is inside a split line.
    pub mid_line: bool,
    /// Stored with `end`: lines already in the buffer past it (container logs).
    pub skip: Option<Skip>,
    /// Lines it completes (metrics).
    pub lines: u32,
    /// File bytes it covers (metrics).
    pub bytes: u64,
    /// When it happened, when the line says (container logs); else now.
    pub ts: Option<Timestamp>,
}

/// Records made from one block (or one flush), with the text they own.
#[derive(Debug, Default)]
pub(crate) struct Records {
    /// The records, in file order.
    pub list: Vec<Record>,
    /// Attribute objects, back to back.
    pub attrs: String,
    /// Bodies that are not in the read buffer.
    pub owned: String,
}

/// Where a record lies in its file and how it is flagged.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Span {
    /// File offset of its first byte (the `offset` attribute).
    pub offset: u64,
    /// The offset just after it (its checkpoint, unless `hold` is before it).
    pub end: u64,
    /// Flag `split`.
    pub split: bool,
    /// `end` is inside a line.
    pub mid_line: bool,
    /// Lines it completes.
    pub lines: u32,
    /// The time the line gives (container logs).
    pub ts: Option<Timestamp>,
    /// The `stream` attribute (container logs).
    pub stream: Option<&'static str>,
    /// Flag `incomplete`: a partial line whose end never came.
    pub incomplete: bool,
    /// Flag `parse_error`: the line did not decode (kept whole).
    pub parse_error: bool,
    /// The checkpoint cannot pass this offset: a partial line of this stream starts there.
    pub hold: Option<(u64, Stream)>,
}

/// Appends the decimal digits of `n` (what `write!` does, without the formatting machinery).
fn push_u64(s: &mut String, mut n: u64) {
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    s.push_str(std::str::from_utf8(&digits[i..]).expect("ASCII digits"));
}

impl Records {
    /// Empties the lists, keeping their memory.
    pub fn clear(&mut self) {
        self.list.clear();
        self.attrs.clear();
        self.owned.clear();
    }

    /// Adds a record for `bytes` (which are `buf[at..]` of the read buffer when `at` is
    /// given, else copied). `attrs_prefix` is `{"path":"...","offset":`.
    pub fn push(&mut self, attrs_prefix: &str, bytes: &[u8], at: Option<usize>, span: Span) {
        let (body, invalid) = match (std::str::from_utf8(bytes), at) {
            (Ok(_), Some(a)) => (Body::Buf(a..a + bytes.len()), false),
            (Ok(s), None) => {
                let a = self.owned.len();
                self.owned.push_str(s);
                (Body::Owned(a..self.owned.len()), false)
            }
            (Err(_), _) => {
                // What String::from_utf8_lossy makes, written into the reused string.
                let a = self.owned.len();
                for chunk in bytes.utf8_chunks() {
                    self.owned.push_str(chunk.valid());
                    if !chunk.invalid().is_empty() {
                        self.owned.push(char::REPLACEMENT_CHARACTER);
                    }
                }
                (Body::Owned(a..self.owned.len()), true)
            }
        };
        let a = self.attrs.len();
        self.attrs.push_str(attrs_prefix);
        push_u64(&mut self.attrs, span.offset);
        if let Some(stream) = span.stream {
            self.attrs.push_str(r#","stream":""#);
            self.attrs.push_str(stream);
            self.attrs.push('"');
        }
        if span.split {
            self.attrs.push_str(r#","split":true"#);
        }
        if span.incomplete {
            self.attrs.push_str(r#","incomplete":true"#);
        }
        if span.parse_error {
            self.attrs.push_str(r#","parse_error":true"#);
        }
        if invalid {
            self.attrs.push_str(r#","invalid_utf8":true"#);
        }
        self.attrs.push('}');
        let (end, skip) = match span.hold {
            Some((at, stream)) if at < span.end => (
                at,
                Some(Skip {
                    stream,
                    until: span.end,
                }),
            ),
            _ => (span.end, None),
        };
        self.list.push(Record {
            body,
            attrs: a..self.attrs.len(),
            end,
            mid_line: span.mid_line,
            skip,
            lines: span.lines,
            bytes: span.end.saturating_sub(span.offset),
            ts: span.ts,
        });
    }

    /// A record's body; `buf` is the read buffer the records were made from.
    pub fn body<'a>(&'a self, rec: &Record, buf: &'a [u8]) -> &'a str {
        match &rec.body {
            Body::Owned(r) => &self.owned[r.clone()],
            // Checked in `push`; checking again is cheaper than `unsafe`.
            Body::Buf(r) => std::str::from_utf8(&buf[r.clone()]).unwrap_or_default(),
        }
    }
}

/// How lines are cut and joined.
pub(crate) struct Split<'a> {
    /// `max_line_bytes`.
    pub max_line: usize,
    /// The multiline rule, if any.
    pub multiline: Option<&'a Multiline>,
    /// Now (the time of the lines' arrival, for multiline timeouts).
    pub now: Instant,
}

/// Where to cut a line at most `limit` into `data`: backs off (at most 3 bytes) so that a
/// UTF-8 character is not cut in two.
fn cut_at(data: &[u8], from: usize, limit: usize) -> usize {
    let mut c = limit;
    let mut k = 0;
    while k < 3 && c > from + 1 && c < data.len() && data[c] & 0xC0 == 0x80 {
        c -= 1;
        k += 1;
    }
    if c < data.len() && data[c] & 0xC0 == 0x80 {
        limit // not UTF-8 there anyway
    } else {
        c
    }
}

/// A piece of text found by [`split_pieces`], by index into its block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Piece {
    /// A whole line (without `\n` or `\r\n`) within the limit; the next line starts at
    /// `end`.
    Line {
        /// The text.
        range: Range<usize>,
        /// Just after its newline.
        end: usize,
    },
    /// A piece of a line longer than the limit (flagged `split`).
    Split {
        /// The text.
        range: Range<usize>,
        /// Where what follows it starts.
        end: usize,
        /// `end` is inside the line (more pieces follow).
        mid_line: bool,
        /// 1 when it ends the line, else 0.
        lines: u32,
    },
}

/// Cuts the complete line `data[r]` (newline excluded), whose newline ends at `end`: one
/// [`Piece::Line`], or pieces at most `max_line` long (also when it continues a split line,
/// `in_split`).
pub(crate) fn cut_line(
    data: &[u8],
    r: Range<usize>,
    end: usize,
    max_line: usize,
    in_split: &mut bool,
    f: &mut impl FnMut(Piece),
) {
    let (mut s, e) = (r.start, r.end);
    if e - s <= max_line && !*in_split {
        f(Piece::Line { range: s..e, end });
        return;
    }
    while e - s > max_line {
        let cut = cut_at(data, s, s + max_line);
        f(Piece::Split {
            range: s..cut,
            end: cut,
            mid_line: true,
            lines: 0,
        });
        s = cut;
    }
    f(Piece::Split {
        range: s..e,
        end,
        mid_line: false,
        lines: 1,
    });
    *in_split = false;
}

/// Splits a block into lines (`\n` or `\r\n`), cutting lines longer than `max_line` into
/// pieces, also an unfinished last line already longer than that (so that memory stays
/// bounded). Returns where the unfinished rest starts: the caller keeps it (the carry) and
/// puts it before the next block.
pub(crate) fn split_pieces(
    data: &[u8],
    max_line: usize,
    in_split: &mut bool,
    f: &mut impl FnMut(Piece),
) -> usize {
    let mut s = 0usize;
    for nl in memchr::memchr_iter(b'\n', data) {
        let mut e = nl;
        if e > s && data[e - 1] == b'\r' {
            e -= 1;
        }
        cut_line(data, s..e, nl + 1, max_line, in_split, f);
        s = nl + 1;
    }
    while data.len() - s > max_line {
        let cut = cut_at(data, s, s + max_line);
        f(Piece::Split {
            range: s..cut,
            end: cut,
            mid_line: true,
            lines: 0,
        });
        *in_split = true;
        s = cut;
    }
    s
}

/// What a file's lines go through before they are records: the multiline rule or the
/// container decoder (at most one), and the pieces they hold.
#[derive(Debug, Default)]
pub(crate) struct Joiner {
    /// The multiline event being joined.
    pub pending: Pending,
    /// The container log decoder, for `[kubernetes]` files.
    pub decoder: Option<Decoder>,
}

impl Joiner {
    /// Routes one piece of `data` (at file offset `base`; the read buffer when `in_buf`).
    #[allow(clippy::too_many_arguments)]
    fn route(
        &mut self,
        prefix: &str,
        p: Piece,
        data: &[u8],
        base: u64,
        in_buf: bool,
        cx: &Split<'_>,
        out: &mut Records,
    ) {
        let at = |i: usize| in_buf.then_some(i);
        match p {
            Piece::Split {
                range,
                end,
                mid_line,
                lines,
            } => {
                self.flush(prefix, out);
                let span = Span {
                    offset: base + range.start as u64,
                    end: base + end as u64,
                    split: true,
                    mid_line,
                    lines,
                    ..Span::default()
                };
                out.push(prefix, &data[range.clone()], at(range.start), span);
            }
            Piece::Line { range, end } => {
                let (offset, end) = (base + range.start as u64, base + end as u64);
                let line = &data[range.clone()];
                if let Some(d) = self.decoder.as_mut() {
                    d.feed(line, offset, end, &mut |e: Decoded<'_>| {
                        let (bytes, pos) = match &e.body {
                            container::Body::InLine(r) => {
                                (&line[r.clone()], at(range.start + r.start))
                            }
                            container::Body::Text(t) => (*t, None),
                        };
                        out.push(prefix, bytes, pos, decoded_span(&e));
                    });
                } else if let Some(ml) = cx.multiline {
                    self.pending.feed(
                        ml,
                        line,
                        offset,
                        end,
                        cx.max_line,
                        cx.now,
                        &mut |j: Joined<'_>| out.push(prefix, j.text, None, joined_span(&j)),
                    );
                } else {
                    let span = Span {
                        offset,
                        end,
                        lines: 1,
                        ..Span::default()
                    };
                    out.push(prefix, line, at(range.start), span);
                }
            }
        }
    }

    /// Completes what is pending: the multiline event, the partial container lines.
    pub fn flush(&mut self, prefix: &str, out: &mut Records) {
        self.pending
            .flush(&mut |j: Joined<'_>| out.push(prefix, j.text, None, joined_span(&j)));
        if let Some(d) = self.decoder.as_mut() {
            d.flush(&mut |e: Decoded<'_>| {
                let container::Body::Text(t) = e.body else {
                    unreachable!("flushed partial lines are joined text")
                };
                out.push(prefix, t, None, decoded_span(&e));
            });
        }
    }

    /// Forgets what is pending (read again from the checkpoint, which carried `skip`).
    pub fn clear(&mut self, skip: Option<Skip>) {
        self.pending.clear();
        if let Some(d) = self.decoder.as_mut() {
            d.reset(skip);
        }
    }
}

fn decoded_span(e: &Decoded<'_>) -> Span {
    Span {
        offset: e.start,
        end: e.end,
        split: e.split,
        mid_line: false,
        lines: e.lines,
        ts: e.ts,
        stream: e.stream.map(Stream::as_str),
        incomplete: e.incomplete,
        parse_error: e.error.is_some(),
        hold: e.hold,
    }
}

/// One tailed file.
pub(crate) struct Tail {
    /// The open file: read through this descriptor until closed, whatever its name becomes.
    pub file: File,
    /// Its identity.
    pub key: FileKey,
    /// Its current (or last known) path.
    pub path: PathBuf,
    /// `file:<dev>:<ino>`.
    pub cp_key: String,
    path_str: String,
    /// The last path under which the group's patterns matched it.
    matched: String,
    attrs_prefix: String,
    /// Next byte to read.
    pub read_pos: u64,
    /// The offset in the last checkpoint written.
    pub committed: u64,
    /// The last checkpoint written was inside a split line.
    pub committed_mid: bool,
    /// The skip of the last checkpoint written (container logs).
    pub committed_skip: Option<Skip>,
    /// Labels of this file's events besides its group's (container logs: from its path).
    pub labels: Labels<'static>,
    /// The unfinished last line (at most `max_line_bytes`).
    pub carry: Vec<u8>,
    /// What is read next continues a split line.
    pub in_split: bool,
    /// What is known of the file's first bytes: grows with what is read (up to 256 bytes);
    /// a change of them means other content (see [`Head`]).
    pub head: Head,
    /// What its lines go through: the multiline event being joined, the container
    /// decoder.
    pub joiner: Joiner,
    /// Set when the file left its path (renamed or deleted): the last time it grew.
    pub rotated: Option<Instant>,
    /// The checkpoint must be written even if no line is (path, fingerprint, reset).
    pub dirty: bool,
    /// Size at the last look.
    pub size: u64,
    /// After a failed read or emit: try again at.
    pub retry_at: Option<Instant>,
    /// `bytes_behind` of this path.
    pub behind: Option<Gauge>,
}

impl Tail {
    /// A file read from `offset`.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        file: File,
        key: FileKey,
        path: PathBuf,
        offset: u64,
        mid_line: bool,
        head: Head,
        size: u64,
    ) -> Tail {
        let mut t = Tail {
            file,
            key,
            path: PathBuf::new(),
            cp_key: file_key(key),
            path_str: String::new(),
            matched: String::new(),
            attrs_prefix: String::new(),
            read_pos: offset,
            committed: offset,
            committed_mid: mid_line,
            committed_skip: None,
            labels: Labels::new(),
            carry: Vec::new(),
            in_split: mid_line,
            head,
            joiner: Joiner::default(),
            rotated: None,
            dirty: true,
            size,
            retry_at: None,
            behind: None,
        };
        t.set_matched_path(path);
        t
    }

    /// Records a new path that the group's patterns match.
    pub fn set_matched_path(&mut self, path: PathBuf) {
        self.set_path(path);
        if self.matched != self.path_str {
            self.matched = self.path_str.clone();
            self.dirty = true;
        }
    }

    /// Records the path under which the group last matched it (from a checkpoint).
    pub fn set_matched(&mut self, matched: &str) {
        if self.matched != matched {
            self.matched = matched.to_owned();
            self.dirty = true;
        }
    }

    /// Records a new path, e.g. where it was rotated to (the checkpoint is rewritten with
    /// it).
    pub fn set_path(&mut self, path: PathBuf) {
        if path == self.path {
            return;
        }
        self.path_str = path.to_string_lossy().into_owned();
        self.attrs_prefix = format!(
            r#"{{"path":{},"offset":"#,
            serde_json::to_string(&self.path_str).expect("a string serializes")
        );
        self.path = path;
        self.dirty = true;
    }

    /// The path as text.
    pub fn path_str(&self) -> &str {
        &self.path_str
    }

    /// Decodes its lines as container logs; `skip` comes from its checkpoint.
    pub fn decode_containers(&mut self, decoder: Decoder, skip: Option<Skip>) {
        self.joiner.decoder = Some(decoder);
        self.committed_skip = skip;
        self.joiner.clear(skip);
    }

    /// The checkpoint value for `offset`.
    pub fn checkpoint(&self, offset: u64, mid_line: bool, skip: Option<Skip>) -> Vec<u8> {
        FileCheckpoint::encode(
            &self.path_str,
            &self.matched,
            self.key,
            offset,
            self.head,
            mid_line,
            skip,
        )
    }

    /// The value of the last checkpoint written.
    pub fn committed_checkpoint(&self) -> Vec<u8> {
        self.checkpoint(self.committed, self.committed_mid, self.committed_skip)
    }

    /// Drops what was read past the checkpoint (it is read again).
    pub fn rewind(&mut self) {
        self.read_pos = self.committed;
        self.carry.clear();
        self.joiner.clear(self.committed_skip);
        self.in_split = self.committed_mid;
    }

    /// Starts over at offset 0 (truncated or replaced content).
    pub fn reset(&mut self) {
        self.read_pos = 0;
        self.carry.clear();
        self.joiner.clear(None);
        self.in_split = false;
        self.head = Head::NONE;
    }

    /// Reads the next block after the carry into `buf` (`READ_SIZE` plus the longest carry
    /// long); `None` at the end of the file. Returns the block and its file offset.
    pub fn read_block<'b>(&mut self, buf: &'b mut [u8]) -> io::Result<Option<(&'b [u8], u64)>> {
        let c = self.carry.len();
        buf[..c].copy_from_slice(&self.carry);
        let room = (buf.len() - c).min(READ_SIZE);
        let n = loop {
            match self.file.read_at(&mut buf[c..c + room], self.read_pos) {
                Ok(n) => break n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        };
        if n == 0 {
            return Ok(None);
        }
        let base = self.read_pos - c as u64;
        if self.head.extend(&buf[c..c + n], self.read_pos) {
            self.dirty = true;
        }
        self.read_pos += n as u64;
        self.size = self.size.max(self.read_pos);
        self.carry.clear();
        Ok(Some((&buf[..c + n], base)))
    }

    /// Turns a block (starting at file offset `base`, in the read buffer) into records; the
    /// unfinished last line becomes the carry.
    pub fn split_block(&mut self, data: &[u8], base: u64, cx: &Split<'_>, out: &mut Records) {
        let Tail {
            joiner,
            attrs_prefix,
            in_split,
            carry,
            ..
        } = self;
        let rest = split_pieces(data, cx.max_line, in_split, &mut |p| {
            joiner.route(attrs_prefix, p, data, base, true, cx, out)
        });
        carry.extend_from_slice(&data[rest..]);
    }

    /// Completes the pending multiline event and partial container lines, if any.
    pub fn flush_pending(&mut self, out: &mut Records) {
        self.joiner.flush(&self.attrs_prefix, out);
    }

    /// The file is finished (closed after rotation, or truncated): its unfinished last line
    /// and pending event become records too.
    pub fn finish(&mut self, cx: &Split<'_>, out: &mut Records) {
        if !self.carry.is_empty() {
            let carry = std::mem::take(&mut self.carry);
            let base = self.read_pos - carry.len() as u64;
            let mut e = carry.len();
            if carry[e - 1] == b'\r' {
                e -= 1;
            }
            let Tail {
                joiner,
                attrs_prefix,
                in_split,
                ..
            } = self;
            cut_line(&carry, 0..e, carry.len(), cx.max_line, in_split, &mut |p| {
                joiner.route(attrs_prefix, p, &carry, base, false, cx, out)
            });
            self.carry = carry;
            self.carry.clear();
        }
        self.flush_pending(out);
    }
}

fn joined_span(j: &Joined<'_>) -> Span {
    Span {
        offset: j.start,
        end: j.end,
        split: j.split,
        lines: j.lines,
        ..Span::default()
    }
}

/// For `start_at = "end"`: the start of the file's unfinished last line, so that it is read
/// whole once finished (its end when the file ends with a newline).
pub(crate) fn start_of_last_line(file: &File, size: u64) -> io::Result<u64> {
    const LOOK: u64 = 64 * 1024;
    let from = size.saturating_sub(LOOK);
    let mut tail = vec![0u8; (size - from) as usize];
    let mut got = 0;
    while got < tail.len() {
        match file.read_at(&mut tail[got..], from + got as u64) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(match memchr::memrchr(b'\n', &tail[..got]) {
        Some(i) => from + i as u64 + 1,
        None if from == 0 => 0,
        None => size, // a last line longer than we look back: start at the end
    })
}

/// The path a descriptor's file has now (Linux: `/proc/self/fd`), unless it was deleted.
pub(crate) fn current_path(file: &File) -> Option<PathBuf> {
    use std::os::fd::AsRawFd;
    let link = std::fs::read_link(format!("/proc/self/fd/{}", file.as_raw_fd())).ok()?;
    let s = link.to_string_lossy();
    (link.is_absolute() && !s.ends_with(" (deleted)")).then_some(link)
}

/// Whether `p` names the file with key `key` now.
pub(crate) fn is_at(p: &Path, key: FileKey) -> bool {
    std::fs::metadata(p).is_ok_and(|m| FileKey::of(&m) == key)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn records(t: &mut Tail, data: &[u8], max_line: usize) -> Vec<(String, String, u64, bool)> {
        let mut out = Records::default();
        let cx = Split {
            max_line,
            multiline: None,
            now: Instant::now(),
        };
        let mut buf = std::mem::take(&mut t.carry);
        buf.extend_from_slice(data);
        let base = t.read_pos - (buf.len() - data.len()) as u64;
        t.read_pos += data.len() as u64;
        t.split_block(&buf, base, &cx, &mut out);
        out.list
            .iter()
            .map(|r| {
                (
                    out.body(r, &buf).to_owned(),
                    out.attrs[r.attrs.clone()].to_owned(),
                    r.end,
                    r.mid_line,
                )
            })
            .collect()
    }

    fn tail() -> (tempfile::TempDir, Tail) {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.log");
        std::fs::write(&p, b"").unwrap();
        let f = File::open(&p).unwrap();
        let key = FileKey::of(&f.metadata().unwrap());
        let t = Tail::new(f, key, PathBuf::from("/x/a.log"), 0, false, Head::NONE, 0);
        (dir, t)
    }

    #[test]
    fn lines_carry_and_crlf() {
        let (_d, mut t) = tail();
        let r = records(&mut t, b"one\r\ntwo\nthr", 256);
        assert_eq!(
            r,
            [
                (
                    "one".into(),
                    r#"{"path":"/x/a.log","offset":0}"#.into(),
                    5,
                    false
                ),
                (
                    "two".into(),
                    r#"{"path":"/x/a.log","offset":5}"#.into(),
                    9,
                    false
                ),
            ]
        );
        assert_eq!(t.carry, b"thr");
        let r = records(&mut t, b"ee\n", 256);
        assert_eq!(r[0].0, "three");
        assert_eq!(r[0].1, r#"{"path":"/x/a.log","offset":9}"#);
        assert_eq!(r[0].2, 15);
        assert!(t.carry.is_empty());
    }

    #[test]
    fn long_lines_are_split_without_cutting_characters() {
        let (_d, mut t) = tail();
        // 4 + 3×"é" (2 bytes): a cut at 5 would fall inside the first é.
        let r = records(&mut t, "abcdéééxyz\nok\n".as_bytes(), 5);
        let bodies: Vec<&str> = r.iter().map(|x| x.0.as_str()).collect();
        assert_eq!(bodies, ["abcd", "éé", "éxyz", "ok"]);
        assert!(r[..3].iter().all(|x| x.1.ends_with(r#","split":true}"#)));
        assert!(!r[3].1.contains("split"));
        assert_eq!(r[0].2, 4);
        assert!(r[0].3 && r[1].3 && !r[2].3);
        // An unfinished long line is emitted in pieces as it grows; memory stays bounded.
        let r = records(&mut t, b"0123456789", 4);
        assert_eq!(r.len(), 2);
        assert_eq!(t.carry, b"89");
        let r = records(&mut t, b"\n", 4);
        assert_eq!(r[0].0, "89");
        assert!(r[0].1.contains("split"));
    }

    #[test]
    fn invalid_utf8_is_kept_lossily_and_flagged() {
        let (_d, mut t) = tail();
        let r = records(&mut t, b"ok\n\xff\xfebad\n", 256);
        assert_eq!(r[1].0, "\u{FFFD}\u{FFFD}bad");
        assert_eq!(
            r[1].1,
            r#"{"path":"/x/a.log","offset":3,"invalid_utf8":true}"#
        );
        assert_eq!(
            r[1].0,
            String::from_utf8_lossy(b"\xff\xfebad"),
            "same as from_utf8_lossy"
        );
    }
}
