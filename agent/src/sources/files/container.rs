//! The decoder stage of `[kubernetes]` groups: container log lines in the CRI format
//! (`<RFC 3339 ts> <stdout|stderr> <P|F> <message>`) or Docker's json-file format
//! (`{"log":"...\n","stream":"stdout","time":"..."}`), detected per line.
//!
//! A runtime cuts long lines into partial ones (CRI tag `P`; a Docker `log` without a final
//! `\n`) followed by the last piece (`F`; a `log` ending in `\n`). Pieces are joined per
//! stream, up to `max_message_bytes` (past that the joined text is emitted and the rest
//! starts a new event flagged `split`), and the message gets the timestamp of its first
//! piece.
//!
//! # Checkpoints
//!
//! Like a pending multiline event, a partial line whose last piece has not arrived is never
//! covered by the file's checkpoint: after a restart its pieces are read and joined again.
//! The two streams interleave in one file, so a complete stdout line can follow a pending
//! stderr piece: its event is emitted, but the checkpoint must stay at the start of the
//! stderr piece. The checkpoint then carries a [`Skip`]: "lines up to `until` that are not
//! part of the pending `stream` are already in the buffer", and a restart drops those
//! lines instead of sending them twice.

use std::borrow::Cow;

use logops_common::Timestamp;
use serde::{Deserialize, Serialize};

use crate::config::ContainerFormat;

/// A container output stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Stream {
    /// Standard output.
    Stdout,
    /// Standard error.
    Stderr,
}

impl Stream {
    /// The name used in the `stream` attribute.
    pub fn as_str(self) -> &'static str {
        match self {
            Stream::Stdout => "stdout",
            Stream::Stderr => "stderr",
        }
    }

    fn parse(s: &[u8]) -> Option<Stream> {
        match s {
            b"stdout" => Some(Stream::Stdout),
            b"stderr" => Some(Stream::Stderr),
            _ => None,
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// Stored with a checkpoint that stays behind a pending partial line while events of the
/// other stream after it are already in the buffer (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Skip {
    /// The stream whose partial line the checkpoint waits for: its lines are read again.
    pub stream: Stream,
    /// Other lines ending at or before this offset are already in the buffer.
    pub until: u64,
}

/// One line decoded.
struct Line<'a> {
    ts: Timestamp,
    stream: Stream,
    partial: bool,
    msg: Msg<'a>,
}

/// Where a message's bytes are.
enum Msg<'a> {
    /// `line[range]` (CRI: no copy).
    InLine(std::ops::Range<usize>),
    /// Unescaped (Docker JSON).
    Owned(Cow<'a, str>),
}

/// Why a line is not a container log line.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum DecodeError {
    /// Not `<ts> <stream> <tag> <message>`.
    Cri(&'static str),
    /// Not a Docker json-file object.
    Docker(String),
}

impl std::fmt::Display for DecodeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DecodeError::Cri(m) => write!(f, "not a CRI log line: {m}"),
            DecodeError::Docker(m) => write!(f, "not a Docker json-file line: {m}"),
        }
    }
}

fn decode_cri(line: &[u8]) -> Result<Line<'_>, DecodeError> {
    let mut fields = line.splitn(4, |&b| b == b' ');
    let ts = fields.next().unwrap_or_default();
    let stream = fields.next().ok_or(DecodeError::Cri("no stream"))?;
    let tag = fields.next().ok_or(DecodeError::Cri("no P/F tag"))?;
    let ts = std::str::from_utf8(ts)
        .ok()
        .and_then(|s| Timestamp::parse(s).ok())
        .ok_or(DecodeError::Cri(
            "the first field is not an RFC 3339 timestamp",
        ))?;
    let stream =
        Stream::parse(stream).ok_or(DecodeError::Cri("the stream is not stdout or stderr"))?;
    // A tag may carry more flags after `:` (the CRI spec reserves them); P is the one.
    let partial = match tag.split(|&b| b == b':').next() {
        Some(b"P") => true,
        Some(b"F") => false,
        _ => return Err(DecodeError::Cri("the tag is not P or F")),
    };
    let start = (ts_len(line) + stream.as_str().len() + tag.len() + 3).min(line.len());
    Ok(Line {
        ts,
        stream,
        partial,
        msg: Msg::InLine(start..line.len()),
    })
}

fn ts_len(line: &[u8]) -> usize {
    memchr::memchr(b' ', line).unwrap_or(line.len())
}

fn decode_docker(line: &[u8]) -> Result<Line<'_>, DecodeError> {
    #[derive(Deserialize)]
    struct Docker<'a> {
        #[serde(borrow)]
        log: Cow<'a, str>,
        #[serde(borrow)]
        stream: Cow<'a, str>,
        #[serde(borrow)]
        time: Cow<'a, str>,
    }
    let d: Docker<'_> =
        serde_json::from_slice(line).map_err(|e| DecodeError::Docker(e.to_string()))?;
    let stream = Stream::parse(d.stream.as_bytes())
        .ok_or_else(|| DecodeError::Docker(format!("stream `{}`", d.stream)))?;
    let ts = Timestamp::parse(&d.time).map_err(DecodeError::Docker)?;
    let partial = !d.log.ends_with('\n');
    let msg = match d.log {
        Cow::Borrowed(s) => Cow::Borrowed(trim_newline(s)),
        Cow::Owned(s) => Cow::Owned(trim_newline(&s).to_owned()),
    };
    Ok(Line {
        ts,
        stream,
        partial,
        msg: Msg::Owned(msg),
    })
}

fn trim_newline(s: &str) -> &str {
    let s = s.strip_suffix('\n').unwrap_or(s);
    s.strip_suffix('\r').unwrap_or(s)
}

/// An event the decoder completed.
pub(crate) struct Decoded<'a> {
    /// The message.
    pub body: Body<'a>,
    /// The runtime's timestamp of its first piece (`None`: the line did not decode).
    pub ts: Option<Timestamp>,
    /// Its stream (`None`: the line did not decode).
    pub stream: Option<Stream>,
    /// File offset of its first line.
    pub start: u64,
    /// File offset just after its last line.
    pub end: u64,
    /// Lines it joins.
    pub lines: u32,
    /// It continues a message cut at `max_message_bytes`.
    pub split: bool,
    /// A partial line whose last piece never came (the file ended).
    pub incomplete: bool,
    /// Why the line did not decode (it is kept whole as the body).
    pub error: Option<DecodeError>,
    /// The checkpoint cannot pass this offset: a partial line of the other stream starts
    /// there.
    pub hold: Option<(u64, Stream)>,
}

/// Where a decoded event's text is.
pub(crate) enum Body<'a> {
    /// `line[range]` of the line given to [`Decoder::feed`].
    InLine(std::ops::Range<usize>),
    /// Elsewhere.
    Text(&'a [u8]),
}

/// The pieces of one stream's partial line.
#[derive(Debug, Default)]
struct Partial {
    text: Vec<u8>,
    ts: Option<Timestamp>,
    start: u64,
    end: u64,
    lines: u32,
    split: bool,
}

/// One file's decoder: the partial lines being joined, per stream.
#[derive(Debug)]
pub(crate) struct Decoder {
    format: ContainerFormat,
    max_bytes: usize,
    partial: [Partial; 2],
    skip: Option<Skip>,
}

impl Decoder {
    /// A decoder for `format`, joining at most `max_bytes` of message.
    pub fn new(format: ContainerFormat, max_bytes: usize) -> Decoder {
        Decoder {
            format,
            max_bytes: max_bytes.max(1),
            partial: Default::default(),
            skip: None,
        }
    }

    /// Forgets the partial lines (they will be read again from the checkpoint, which
    /// carried `skip`).
    pub fn reset(&mut self, skip: Option<Skip>) {
        for p in &mut self.partial {
            p.text.clear();
            p.lines = 0;
            p.split = false;
        }
        self.skip = skip;
    }

    /// Whether a partial line is pending.
    #[cfg(test)]
    pub fn is_pending(&self) -> bool {
        self.partial.iter().any(|p| p.lines > 0)
    }

    /// Where the checkpoint has to stay: the start of the oldest pending partial line.
    fn hold(&self) -> Option<(u64, Stream)> {
        [Stream::Stdout, Stream::Stderr]
            .into_iter()
            .filter(|s| self.partial[s.index()].lines > 0)
            .map(|s| (self.partial[s.index()].start, s))
            .min()
    }

    fn decode<'l>(&self, line: &'l [u8]) -> Result<Line<'l>, DecodeError> {
        match self.format {
            ContainerFormat::Cri => decode_cri(line),
            ContainerFormat::Docker => decode_docker(line),
            ContainerFormat::Auto if line.first() == Some(&b'{') => decode_docker(line),
            ContainerFormat::Auto => decode_cri(line),
        }
    }

    /// Decodes one complete line (without its newline) spanning `start..end` of the file;
    /// `out` receives every event this completes.
    pub fn feed(&mut self, line: &[u8], start: u64, end: u64, out: &mut impl FnMut(Decoded<'_>)) {
        let decoded = self.decode(line);
        if let Some(skip) = self.skip {
            if end <= skip.until {
                let ours = matches!(&decoded, Ok(l) if l.stream == skip.stream);
                if !ours {
                    // Already in the buffer before the restart.
                    return;
                }
            } else {
                self.skip = None;
            }
        }
        let l = match decoded {
            Ok(l) => l,
            Err(e) => {
                let hold = self.hold();
                out(Decoded {
                    body: Body::InLine(0..line.len()),
                    ts: None,
                    stream: None,
                    start,
                    end,
                    lines: 1,
                    split: false,
                    incomplete: false,
                    error: Some(e),
                    hold,
                });
                return;
            }
        };
        let msg: &[u8] = match &l.msg {
            Msg::InLine(r) => &line[r.clone()],
            Msg::Owned(s) => s.as_bytes(),
        };
        let i = l.stream.index();
        if self.partial[i].lines == 0 && !l.partial {
            // A whole line: no copy.
            let hold = self.hold();
            let body = match &l.msg {
                Msg::InLine(r) => Body::InLine(r.clone()),
                Msg::Owned(s) => Body::Text(s.as_bytes()),
            };
            out(Decoded {
                body,
                ts: Some(l.ts),
                stream: Some(l.stream),
                start,
                end,
                lines: 1,
                split: false,
                incomplete: false,
                error: None,
                hold,
            });
            return;
        }
        if self.partial[i].lines > 0 && self.partial[i].text.len() + msg.len() > self.max_bytes {
            self.flush_stream(l.stream, false, out);
            self.partial[i].split = true;
        }
        let p = &mut self.partial[i];
        if p.lines == 0 {
            p.text.clear();
            p.ts = Some(l.ts);
            p.start = start;
        }
        p.text.extend_from_slice(msg);
        p.lines += 1;
        p.end = end;
        if !l.partial {
            self.flush_stream(l.stream, false, out);
        }
    }

    fn flush_stream(&mut self, s: Stream, incomplete: bool, out: &mut impl FnMut(Decoded<'_>)) {
        let i = s.index();
        if self.partial[i].lines == 0 {
            return;
        }
        let lines = std::mem::take(&mut self.partial[i].lines);
        let split = std::mem::take(&mut self.partial[i].split);
        // The other stream's partial line, if any, holds the checkpoint.
        let hold = self.hold();
        let p = &self.partial[i];
        out(Decoded {
            body: Body::Text(&p.text),
            ts: p.ts,
            stream: Some(s),
            start: p.start,
            end: p.end,
            lines,
            split,
            incomplete,
            error: None,
            hold,
        });
    }

    /// Emits the partial lines as they are (the file is finished, or a line too long to
    /// decode comes next), oldest first, flagged `incomplete`.
    pub fn flush(&mut self, out: &mut impl FnMut(Decoded<'_>)) {
        while let Some((_, s)) = self.hold() {
            self.flush_stream(s, true, out);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, PartialEq)]
    struct Ev {
        body: String,
        stream: Option<Stream>,
        start: u64,
        end: u64,
        hold: Option<(u64, Stream)>,
        split: bool,
        error: bool,
    }

    fn run(d: &mut Decoder, lines: &[&str], from: u64) -> (Vec<Ev>, u64) {
        let mut out = Vec::new();
        let mut off = from;
        for l in lines {
            let end = off + l.len() as u64 + 1;
            d.feed(l.as_bytes(), off, end, &mut |e: Decoded<'_>| {
                let body = match e.body {
                    Body::InLine(r) => l.as_bytes()[r].to_vec(),
                    Body::Text(t) => t.to_vec(),
                };
                out.push(Ev {
                    body: String::from_utf8(body).unwrap(),
                    stream: e.stream,
                    start: e.start,
                    end: e.end,
                    hold: e.hold,
                    split: e.split,
                    error: e.error.is_some(),
                })
            });
            off = end;
        }
        (out, off)
    }

    const T: &str = "2024-01-02T03:04:05.123456789Z";

    #[test]
    fn cri_whole_and_partial_lines() {
        let mut d = Decoder::new(ContainerFormat::Cri, 1000);
        let lines = [
            format!("{T} stdout F hello world"),
            format!("{T} stdout P part one "),
            format!("{T} stdout P part two "),
            format!("{T} stdout F end"),
            format!("{T} stderr F"),
        ];
        let refs: Vec<&str> = lines.iter().map(String::as_str).collect();
        let (out, _) = run(&mut d, &refs, 0);
        let bodies: Vec<&str> = out.iter().map(|e| e.body.as_str()).collect();
        assert_eq!(bodies, ["hello world", "part one part two end", ""]);
        assert_eq!(out[1].start, lines[0].len() as u64 + 1);
        assert_eq!(out[2].stream, Some(Stream::Stderr));
        assert!(!d.is_pending());
    }

    #[test]
    fn docker_lines_and_partials() {
        let mut d = Decoder::new(ContainerFormat::Auto, 1000);
        let lines = [
            r#"{"log":"one\n","stream":"stdout","time":"2024-01-02T03:04:05.1Z"}"#,
            r#"{"log":"a \"quoted\" ","stream":"stderr","time":"2024-01-02T03:04:05.2Z"}"#,
            r#"{"log":"tail\n","stream":"stderr","time":"2024-01-02T03:04:05.3Z"}"#,
        ];
        let (out, _) = run(&mut d, &lines, 0);
        let bodies: Vec<&str> = out.iter().map(|e| e.body.as_str()).collect();
        assert_eq!(bodies, ["one", "a \"quoted\" tail"]);
    }

    #[test]
    fn garbage_is_kept_with_an_error() {
        let mut d = Decoder::new(ContainerFormat::Auto, 1000);
        let (out, _) = run(&mut d, &["not a log line", "{broken json"], 0);
        assert!(out.iter().all(|e| e.error));
        assert_eq!(out[0].body, "not a log line");
    }

    #[test]
    fn interleaved_streams_hold_the_checkpoint_and_skip_on_resume() {
        let mut d = Decoder::new(ContainerFormat::Cri, 1000);
        let lines = [
            format!("{T} stderr P err-a "), // pending from 0
            format!("{T} stdout F out-1"),  // emitted, held at 0
            format!("{T} stdout F out-2"),  // emitted, held at 0
            format!("{T} stderr F err-b"),  // completes stderr
        ];
        let refs: Vec<&str> = lines.iter().map(String::as_str).collect();
        let (out, _) = run(&mut d, &refs[..3], 0);
        assert_eq!(out.len(), 2);
        assert_eq!(out[1].hold, Some((0, Stream::Stderr)));
        // Crash here: the checkpoint is 0 with "skip non-stderr lines up to out-2's end".
        let until = out[1].end;
        let mut d = Decoder::new(ContainerFormat::Cri, 1000);
        d.reset(Some(Skip {
            stream: Stream::Stderr,
            until,
        }));
        let (out, _) = run(&mut d, &refs, 0);
        let bodies: Vec<&str> = out.iter().map(|e| e.body.as_str()).collect();
        assert_eq!(bodies, ["err-a err-b"], "stdout lines are not sent twice");
    }

    #[test]
    fn joined_messages_are_bounded() {
        let mut d = Decoder::new(ContainerFormat::Cri, 8);
        let lines = [
            format!("{T} stdout P aaaaa"),
            format!("{T} stdout P bbbbb"),
            format!("{T} stdout F cc"),
        ];
        let refs: Vec<&str> = lines.iter().map(String::as_str).collect();
        let (out, _) = run(&mut d, &refs, 0);
        let got: Vec<(&str, bool)> = out.iter().map(|e| (e.body.as_str(), e.split)).collect();
        assert_eq!(got, [("aaaaa", false), ("bbbbbcc", true)]);
    }

    #[test]
    fn flush_emits_incomplete_partials_oldest_first() {
        let mut d = Decoder::new(ContainerFormat::Cri, 100);
        let lines = [format!("{T} stdout P x"), format!("{T} stderr P y")];
        let refs: Vec<&str> = lines.iter().map(String::as_str).collect();
        let (out, _) = run(&mut d, &refs, 0);
        assert!(out.is_empty());
        let mut got = Vec::new();
        d.flush(&mut |e: Decoded<'_>| {
            got.push((e.stream, e.incomplete, e.hold.map(|h| h.0)));
        });
        assert_eq!(
            got,
            [
                (Some(Stream::Stdout), true, Some(lines[0].len() as u64 + 1)),
                (Some(Stream::Stderr), true, None)
            ]
        );
    }
}
