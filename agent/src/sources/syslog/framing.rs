//! Splitting a TCP or TLS byte stream into syslog messages (RFC 6587).
//!
//! Each frame is read the way it starts: digits and a space are an octet count (`59 <13>...`,
//! RFC 6587 §3.4.1, RFC 5425), anything else runs to the next LF (§3.4.2; a CR before it is
//! dropped). Senders can switch between the two on one connection. A message longer than
//! `max` is cut at `max` bytes (flagged) and the rest of it is skipped, so the buffer never
//! holds more than `max` plus one read. Empty lines are not messages.

/// Longest octet count read (8 digits: up to 99,999,999 bytes).
const MAX_COUNT_DIGITS: usize = 8;

/// One message cut from the stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Frame<'a> {
    /// The message (at most `max` bytes).
    pub bytes: &'a [u8],
    /// Whether the message was longer and was cut.
    pub truncated: bool,
}

/// What is being skipped of a message that was too long.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Skip {
    /// Nothing.
    None,
    /// This many more bytes of an octet-counted frame.
    Octets(usize),
    /// Up to and including the next LF.
    Line,
}

/// The framing state of one connection: bytes received and not yet cut into messages.
#[derive(Debug)]
pub struct Framer {
    max: usize,
    buf: Vec<u8>,
    start: usize,
    skip: Skip,
}

impl Framer {
    /// A framer cutting messages at `max` bytes.
    pub fn new(max: usize) -> Self {
        Framer {
            max,
            buf: Vec::with_capacity(64 * 1024),
            start: 0,
            skip: Skip::None,
        }
    }

    /// The buffer to read into (append only): consumed bytes are dropped first and room for
    /// `want` more is reserved.
    pub fn read_buffer(&mut self, want: usize) -> &mut Vec<u8> {
        if self.start > 0 {
            self.buf.drain(..self.start);
            self.start = 0;
        }
        self.buf.reserve(want);
        &mut self.buf
    }

    /// Bytes received and not yet part of a message.
    pub fn pending(&self) -> usize {
        self.buf.len() - self.start
    }

    /// The next complete message, or `None` until more bytes arrive.
    pub fn next_frame(&mut self) -> Option<Frame<'_>> {
        let span = self.next_span()?;
        Some(self.frame(span))
    }

    /// At the end of the stream: the next complete message, then what is left as one last
    /// message (flagged `truncated` when an octet-counted frame was cut short by the close);
    /// call until `None`.
    pub fn finish(&mut self) -> Option<Frame<'_>> {
        let span = self.next_span().or_else(|| self.rest_span())?;
        Some(self.frame(span))
    }

    fn frame(&self, s: Span) -> Frame<'_> {
        Frame {
            bytes: &self.buf[s.from..s.to],
            truncated: s.truncated,
        }
    }

    fn next_span(&mut self) -> Option<Span> {
        loop {
            let data = &self.buf[self.start..];
            match self.skip {
                Skip::Octets(n) => {
                    let k = n.min(data.len());
                    self.start += k;
                    if k < n {
                        self.skip = Skip::Octets(n - k);
                        return None;
                    }
                    self.skip = Skip::None;
                    continue;
                }
                Skip::Line => match memchr::memchr(b'\n', data) {
                    Some(i) => {
                        self.start += i + 1;
                        self.skip = Skip::None;
                        continue;
                    }
                    None => {
                        self.start = self.buf.len();
                        return None;
                    }
                },
                Skip::None => {}
            }
            // Stray separators between frames.
            let blank = data
                .iter()
                .take_while(|&&b| matches!(b, b'\n' | b'\r' | b'\0'))
                .count();
            if blank > 0 {
                self.start += blank;
                continue;
            }
            if data.is_empty() {
                return None;
            }
            return match octet_count(data) {
                Count::Yes(len, header) => {
                    let take = len.min(self.max);
                    if data.len() < header + take {
                        return None;
                    }
                    let from = self.start + header;
                    self.start = from + take;
                    if len > take {
                        self.skip = Skip::Octets(len - take);
                    }
                    Some(Span {
                        from,
                        to: from + take,
                        truncated: len > take,
                    })
                }
                Count::NeedMore => None,
                Count::No => self.line(),
            };
        }
    }

    /// An LF-terminated frame at `start`.
    fn line(&mut self) -> Option<Span> {
        let data = &self.buf[self.start..];
        let from = self.start;
        match memchr::memchr(b'\n', &data[..data.len().min(self.max + 2)]) {
            Some(i) => {
                self.start += i + 1;
                let mut end = from + i;
                if end > from && self.buf[end - 1] == b'\r' {
                    end -= 1;
                }
                Some(Span {
                    from,
                    to: end.min(from + self.max),
                    truncated: end - from > self.max,
                })
            }
            None if data.len() > self.max => {
                // Too long: keep the first `max` bytes, drop the rest up to its LF.
                self.start += self.max;
                self.skip = Skip::Line;
                Some(Span {
                    from,
                    to: from + self.max,
                    truncated: true,
                })
            }
            None => None,
        }
    }

    /// Whatever is left when the stream ends (after every complete frame).
    fn rest_span(&mut self) -> Option<Span> {
        let from = self.start;
        let end = self.buf.len();
        self.start = end;
        if std::mem::replace(&mut self.skip, Skip::None) != Skip::None || from == end {
            return None;
        }
        Some(match octet_count(&self.buf[from..]) {
            // The close cut an octet-counted frame short.
            Count::Yes(_, header) => Span {
                from: from + header,
                to: end.min(from + header + self.max),
                truncated: true,
            },
            _ => Span {
                from,
                to: end.min(from + self.max),
                truncated: end - from > self.max,
            },
        })
    }
}

/// Where a frame is in the buffer.
#[derive(Debug, Clone, Copy)]
struct Span {
    from: usize,
    to: usize,
    truncated: bool,
}

/// Whether a frame is octet-counted.
enum Count {
    /// Yes: the message length and the header's length (digits and space).
    Yes(usize, usize),
    /// Only digits so far: wait.
    NeedMore,
    /// No: LF framing.
    No,
}

fn octet_count(data: &[u8]) -> Count {
    let digits = data
        .iter()
        .take(MAX_COUNT_DIGITS + 1)
        .take_while(|b| b.is_ascii_digit())
        .count();
    if digits == 0 || digits > MAX_COUNT_DIGITS || data[0] == b'0' {
        return Count::No;
    }
    match data.get(digits) {
        None => Count::NeedMore,
        Some(b' ') => {
            let len = data[..digits]
                .iter()
                .fold(0usize, |n, d| n * 10 + usize::from(d - b'0'));
            Count::Yes(len, digits + 1)
        }
        Some(_) => Count::No,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `input` in pieces of `step` bytes, then ends the stream; every message.
    fn frames(max: usize, input: &[u8], step: usize) -> Vec<(String, bool)> {
        let mut f = Framer::new(max);
        let mut out = Vec::new();
        for piece in input.chunks(step.max(1)) {
            f.read_buffer(piece.len()).extend_from_slice(piece);
            while let Some(fr) = f.next_frame() {
                out.push((String::from_utf8_lossy(fr.bytes).into_owned(), fr.truncated));
            }
        }
        while let Some(fr) = f.finish() {
            out.push((String::from_utf8_lossy(fr.bytes).into_owned(), fr.truncated));
        }
        out
    }

    fn plain(v: &[&str]) -> Vec<(String, bool)> {
        v.iter().map(|s| (s.to_string(), false)).collect()
    }

    #[test]
    fn lf_crlf_and_octet_counted_frames_mixed_on_one_connection() {
        let input = b"<13>one\n<13>two\r\n9 <13>three\n\n13 <13>four\nfour<13>five\n";
        let want = plain(&[
            "<13>one",
            "<13>two",
            "<13>three",
            "<13>four\nfour",
            "<13>five",
        ]);
        for step in [1, 2, 3, 7, 1000] {
            assert_eq!(frames(1024, input, step), want, "step {step}");
        }
    }

    #[test]
    fn octet_counted_frames_without_separators() {
        let input = b"5 <1>ab5 <1>cd5 <1>ef";
        assert_eq!(frames(100, input, 1), plain(&["<1>ab", "<1>cd", "<1>ef"]));
    }

    #[test]
    fn a_line_that_only_looks_like_a_count_is_a_line() {
        assert_eq!(
            frames(100, b"123456789 x\n12x y\n", 4),
            plain(&["123456789 x", "12x y"])
        );
        assert_eq!(frames(100, b"0 x\n", 1), plain(&["0 x"]));
    }

    #[test]
    fn too_long_octet_frames_are_cut_and_the_rest_skipped() {
        let input = b"10 0123456789<13>next\n";
        for step in [1, 3, 100] {
            let got = frames(8, input, step);
            assert_eq!(
                got,
                vec![("01234567".into(), true), ("<13>next".into(), false)]
            );
        }
    }

    #[test]
    fn too_long_lines_are_cut_and_the_rest_skipped() {
        for step in [1, 5, 100] {
            let got = frames(4, b"abcdefgh\nxy\nabcd\nabcde\n", step);
            assert_eq!(
                got,
                vec![
                    ("abcd".into(), true),
                    ("xy".into(), false),
                    ("abcd".into(), false),
                    ("abcd".into(), true)
                ],
                "step {step}"
            );
        }
    }

    #[test]
    fn the_end_of_the_stream_keeps_what_arrived() {
        assert_eq!(
            frames(100, b"<13>no newline", 3),
            plain(&["<13>no newline"])
        );
        assert_eq!(
            frames(100, b"20 <13>cut", 3),
            vec![("<13>cut".into(), true)]
        );
        assert_eq!(frames(100, b"<13>a\n\n\r\n", 3), plain(&["<13>a"]));
        assert_eq!(frames(4, b"abcdefgh", 3), vec![("abcd".into(), true)]);
    }

    #[test]
    fn the_buffer_stays_bounded_while_skipping() {
        let mut f = Framer::new(8);
        f.read_buffer(16).extend_from_slice(b"1000000 ");
        f.read_buffer(16).extend_from_slice(&[b'x'; 16]);
        assert!(f.next_frame().unwrap().truncated);
        for _ in 0..100 {
            f.read_buffer(1000).extend_from_slice(&[b'y'; 1000]);
            assert!(f.next_frame().is_none());
            assert_eq!(f.pending(), 0);
        }
    }
}
