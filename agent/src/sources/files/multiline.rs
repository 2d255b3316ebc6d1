//! Joining continuation lines (stack traces, ...) into one event.
//!
//! A line matching `start_pattern` starts a new event; any other line is appended to the
//! current one, joined with `\n`. An event is complete at the next start line, at
//! `max_lines` lines, or when no line arrived for `timeout`. While an event is pending, the
//! file's checkpoint stays at the offset where it starts: after a restart its lines are read
//! again and joined again. A joined event never grows past `max_line_bytes`: a continuation
//! that would not fit starts a new event, flagged `split`.

use std::time::{Duration, Instant};

use crate::config::MultilineConfig;

/// A group's multiline rule.
pub(crate) struct Multiline {
    start: regex::bytes::Regex,
    /// Emit a pending event after this long without a new line.
    pub timeout: Duration,
    max_lines: u32,
}

impl Multiline {
    /// The rule of a `[files.multiline]` section (`None`, logged, if the pattern is invalid:
    /// the configuration check refuses those).
    pub fn new(cfg: &MultilineConfig) -> Option<Multiline> {
        match regex::bytes::Regex::new(&cfg.start_pattern) {
            Ok(start) => Some(Multiline {
                start,
                timeout: cfg.timeout.get(),
                max_lines: u32::try_from(cfg.max_lines.max(1)).unwrap_or(u32::MAX),
            }),
            Err(e) => {
                tracing::error!(pattern = %cfg.start_pattern, error = %e,
                    "files: invalid multiline start_pattern; lines are not joined");
                None
            }
        }
    }
}

/// A completed event.
pub(crate) struct Joined<'a> {
    /// The lines joined with `\n`.
    pub text: &'a [u8],
    /// File offset of its first line.
    pub start: u64,
    /// File offset just after its last line.
    pub end: u64,
    /// How many lines it joins.
    pub lines: u32,
    /// It continues an event cut at `max_line_bytes`.
    pub split: bool,
}

/// The event being joined for one file.
#[derive(Debug, Default)]
pub(crate) struct Pending {
    text: Vec<u8>,
    start: u64,
    end: u64,
    lines: u32,
    split: bool,
    last_at: Option<Instant>,
}

impl Pending {
    /// Whether an event is pending.
    pub fn is_pending(&self) -> bool {
        self.lines > 0
    }

    /// Forgets the pending event (its lines will be read again).
    pub fn clear(&mut self) {
        self.text.clear();
        self.lines = 0;
        self.split = false;
        self.last_at = None;
    }

    /// When the pending event times out.
    pub fn deadline(&self, ml: &Multiline) -> Option<Instant> {
        self.last_at.map(|t| t + ml.timeout)
    }

    /// Adds a complete line (without its newline) spanning `start..end` in the file; `out`
    /// receives every event this completes.
    #[allow(clippy::too_many_arguments)]
    pub fn feed(
        &mut self,
        ml: &Multiline,
        line: &[u8],
        start: u64,
        end: u64,
        max_bytes: usize,
        now: Instant,
        out: &mut impl FnMut(Joined<'_>),
    ) {
        if self.is_pending() {
            let starts = ml.start.is_match(line);
            let too_big = self.text.len() + 1 + line.len() > max_bytes;
            if starts || too_big {
                self.flush(out);
                self.split = !starts;
            }
        }
        if self.is_pending() {
            self.text.push(b'\n');
        } else {
            self.start = start;
            self.text.clear();
        }
        self.text.extend_from_slice(line);
        self.lines += 1;
        self.end = end;
        self.last_at = Some(now);
        if self.lines >= ml.max_lines {
            self.flush(out);
        }
    }

    /// Completes the pending event, if any.
    pub fn flush(&mut self, out: &mut impl FnMut(Joined<'_>)) {
        if !self.is_pending() {
            return;
        }
        out(Joined {
            text: &self.text,
            start: self.start,
            end: self.end,
            lines: self.lines,
            split: self.split,
        });
        self.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use logops_common::units::HumanDuration;

    fn rule(max_lines: usize) -> Multiline {
        Multiline::new(&MultilineConfig {
            start_pattern: r"^\d".into(),
            timeout: HumanDuration::secs(1),
            max_lines,
        })
        .unwrap()
    }

    fn run(
        ml: &Multiline,
        lines: &[&str],
        max_bytes: usize,
    ) -> (Vec<(String, u64, u64, bool)>, Pending) {
        let mut p = Pending::default();
        let mut out = Vec::new();
        let mut off = 0u64;
        let now = Instant::now();
        for l in lines {
            let end = off + l.len() as u64 + 1;
            p.feed(
                ml,
                l.as_bytes(),
                off,
                end,
                max_bytes,
                now,
                &mut |j: Joined<'_>| {
                    out.push((
                        String::from_utf8(j.text.to_vec()).unwrap(),
                        j.start,
                        j.end,
                        j.split,
                    ))
                },
            );
            off = end;
        }
        (out, p)
    }

    #[test]
    fn joins_until_the_next_start_line() {
        let (out, p) = run(&rule(10), &["1 a", " b", " c", "2 d", " e"], 1000);
        assert_eq!(out, [("1 a\n b\n c".to_string(), 0, 10, false)]);
        assert!(p.is_pending());
        assert_eq!((p.start, p.end), (10, 17));
    }

    #[test]
    fn max_lines_and_max_bytes_complete_an_event() {
        let (out, p) = run(&rule(2), &["1 a", " b", " c"], 1000);
        assert_eq!(out, [("1 a\n b".to_string(), 0, 7, false)]);
        assert!(p.is_pending());
        let (out, _) = run(&rule(10), &["1 aaaa", " bbbb", " cccc"], 12);
        assert_eq!(out, [("1 aaaa\n bbbb".to_string(), 0, 13, false),]);
        let (out, mut p) = run(&rule(10), &["1 aaaa", " bbbb", " cccc", " dddd"], 12);
        assert_eq!(out.len(), 1);
        let mut rest = Vec::new();
        p.flush(&mut |j: Joined<'_>| rest.push((j.text.to_vec(), j.split)));
        assert_eq!(rest, [(b" cccc\n dddd".to_vec(), true)]);
    }
}
