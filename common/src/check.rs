//! Checking an event line without building the event: what the ingest does to every line.
//!
//! [`check_line`] first runs a narrow, allocation-free scanner over the line. It accepts the
//! common shapes (log, record, gauge and counter events; strings without `\u` escapes;
//! plain decimal metric values) and answers "not sure" for everything else, and then the
//! line goes through [`parse_line`], which gives the verdict and the error message. So the
//! scanner never decides a refusal, and it may only accept what `parse_line` accepts (a
//! differential test holds it to that). `parse_line` was ~45 % of the ingest's CPU.

use crate::event::{is_label_name, is_metric_name, parse_line, Kind, LineError};
use crate::timestamp::Timestamp;

/// Checks one NDJSON line (1-based `line` number for the error) like [`parse_line`] does and
/// returns the event's kind and timestamp.
pub fn check_line(text: &str, line: usize) -> Result<(Kind, Timestamp), LineError> {
    if let Some(ok) = accept(text.as_bytes()) {
        return Ok(ok);
    }
    parse_line(text, line).map(|ev| (ev.kind(), ev.ts))
}

/// Labels kept for the duplicate and metric-name checks; more means "not sure".
const MAX_LABELS: usize = 16;
/// Nesting kept inside `attrs`; deeper means "not sure".
const MAX_DEPTH: usize = 32;

/// The event's kind and timestamp if the line is certainly a valid event; `None` if it is
/// not or the scanner cannot tell.
fn accept(b: &[u8]) -> Option<(Kind, Timestamp)> {
    let mut s = Scanner { b, i: 0 };
    let mut seen = 0u16;
    let (mut ts, mut kind, mut severity_ok, mut mtype) = (None, None, true, None);
    let (mut name_ok, mut value) = (true, None::<f64>);
    let mut labels: [&[u8]; MAX_LABELS] = [&[]; MAX_LABELS];
    let mut n_labels = 0;
    s.expect(b'{')?;
    if s.peek()? == b'}' {
        return None;
    }
    loop {
        let (key, escaped) = s.string()?;
        if escaped {
            return None;
        }
        let bit = match key {
            b"ts" => 0,
            b"kind" => 1,
            b"host" => 2,
            b"source" => 3,
            b"labels" => 4,
            b"attrs" => 5,
            b"severity" => 6,
            b"body" => 7,
            b"name" => 8,
            b"type" => 9,
            b"value" => 10,
            _ => return None,
        };
        if seen & (1 << bit) != 0 {
            return None;
        }
        seen |= 1 << bit;
        s.expect(b':')?;
        match bit {
            0 => {
                let (raw, escaped) = s.string()?;
                if escaped {
                    return None;
                }
                ts = Some(Timestamp::parse(std::str::from_utf8(raw).ok()?).ok()?);
            }
            1 | 6 | 9 => {
                let (raw, escaped) = s.string()?;
                if escaped {
                    return None;
                }
                match bit {
                    1 => {
                        kind = Some(match raw {
                            b"log" => Kind::Log,
                            b"metric" => Kind::Metric,
                            b"record" => Kind::Record,
                            _ => return None,
                        })
                    }
                    6 => {
                        severity_ok = matches!(
                            raw,
                            b"trace"
                                | b"debug"
                                | b"info"
                                | b"notice"
                                | b"warning"
                                | b"error"
                                | b"critical"
                                | b"alert"
                                | b"emergency"
                        )
                    }
                    _ => mtype = Some(raw),
                }
            }
            2 | 3 | 7 => {
                let (raw, _) = s.string()?;
                if bit != 7 && raw.is_empty() {
                    return None;
                }
            }
            8 => {
                let (raw, escaped) = s.string()?;
                name_ok = !escaped && is_metric_name(std::str::from_utf8(raw).ok()?);
            }
            4 => {
                s.expect(b'{')?;
                if s.peek()? == b'}' {
                    s.i += 1;
                } else {
                    loop {
                        let (k, escaped) = s.string()?;
                        if escaped || k.is_empty() || n_labels == MAX_LABELS {
                            return None;
                        }
                        if labels[..n_labels].contains(&k) {
                            return None;
                        }
                        labels[n_labels] = k;
                        n_labels += 1;
                        s.expect(b':')?;
                        s.string()?;
                        match s.next()? {
                            b',' => continue,
                            b'}' => break,
                            _ => return None,
                        }
                    }
                }
            }
            5 => {
                if s.peek()? != b'{' {
                    return None;
                }
                s.value(0)?;
            }
            _ => value = Some(s.plain_number()?),
        }
        match s.next()? {
            b',' => continue,
            b'}' => break,
            _ => return None,
        }
    }
    s.ws();
    if s.i != b.len() {
        return None;
    }

    // The rules of `parse_line`, for the fields this scanner takes.
    const LOG_ONLY: u16 = 1 << 6 | 1 << 7;
    const METRIC_ONLY: u16 = 1 << 8 | 1 << 9 | 1 << 10;
    let (ts, kind) = (ts?, kind?);
    if seen & 0b1111 != 0b1111 {
        return None;
    }
    match kind {
        Kind::Log => {
            if seen & METRIC_ONLY != 0 || seen & (1 << 7) == 0 || !severity_ok {
                return None;
            }
        }
        Kind::Record => {
            if seen & (LOG_ONLY | METRIC_ONLY) != 0 || seen & (1 << 5) == 0 {
                return None;
            }
        }
        Kind::Metric => {
            if seen & LOG_ONLY != 0 || seen & METRIC_ONLY != METRIC_ONLY || !name_ok {
                return None;
            }
            let labels_ok = labels[..n_labels]
                .iter()
                .all(|k| std::str::from_utf8(k).is_ok_and(is_label_name));
            let value = value?;
            let type_ok = match mtype? {
                b"gauge" => true,
                b"counter" => value >= 0.0,
                _ => false,
            };
            if !labels_ok || !type_ok || !value.is_finite() {
                return None;
            }
        }
    }
    Some((kind, ts))
}

struct Scanner<'a> {
    b: &'a [u8],
    i: usize,
}

/// Bytes with the high bit set where a byte of `v` is zero (exact for the lowest one).
fn zero_bytes(v: u64) -> u64 {
    v.wrapping_sub(0x0101_0101_0101_0101) & !v & 0x8080_8080_8080_8080
}

impl<'a> Scanner<'a> {
    fn ws(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.b.get(self.i) {
            self.i += 1;
        }
    }

    /// The next byte that is not whitespace, not consumed.
    fn peek(&mut self) -> Option<u8> {
        self.ws();
        self.b.get(self.i).copied()
    }

    /// The next byte that is not whitespace, consumed.
    fn next(&mut self) -> Option<u8> {
        let c = self.peek()?;
        self.i += 1;
        Some(c)
    }

    fn expect(&mut self, c: u8) -> Option<()> {
        (self.next()? == c).then_some(())
    }

    /// A string: its raw content and whether it has escapes. `None` for a control
    /// character, a `\u` escape (left to serde_json's surrogate rules) or no end.
    fn string(&mut self) -> Option<(&'a [u8], bool)> {
        self.expect(b'"')?;
        let start = self.i;
        let mut escaped = false;
        loop {
            // Eight bytes at a time up to the next `"`, `\` or control character.
            while let Some(chunk) = self.b.get(self.i..self.i + 8) {
                let v = u64::from_le_bytes(chunk.try_into().ok()?);
                let hits = zero_bytes(v ^ 0x2222_2222_2222_2222)
                    | zero_bytes(v ^ 0x5c5c_5c5c_5c5c_5c5c)
                    | (v.wrapping_sub(0x2020_2020_2020_2020) & !v & 0x8080_8080_8080_8080);
                if hits != 0 {
                    self.i += (hits.trailing_zeros() / 8) as usize;
                    break;
                }
                self.i += 8;
            }
            let c = *self.b.get(self.i)?;
            self.i += 1;
            match c {
                b'"' => return Some((&self.b[start..self.i - 1], escaped)),
                b'\\' => {
                    escaped = true;
                    match self.b.get(self.i)? {
                        b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => self.i += 1,
                        _ => return None,
                    }
                }
                0..0x20 => return None,
                _ => {}
            }
        }
    }

    /// A JSON number's grammar: `-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?`.
    fn number(&mut self) -> Option<&'a [u8]> {
        self.ws();
        let start = self.i;
        let digits = |s: &mut Self| {
            let from = s.i;
            while s.b.get(s.i).is_some_and(u8::is_ascii_digit) {
                s.i += 1;
            }
            s.i > from
        };
        if self.b.get(self.i) == Some(&b'-') {
            self.i += 1;
        }
        match self.b.get(self.i)? {
            b'0' => self.i += 1,
            b'1'..=b'9' => {
                digits(self);
            }
            _ => return None,
        }
        if self.b.get(self.i) == Some(&b'.') {
            self.i += 1;
            if !digits(self) {
                return None;
            }
        }
        if let Some(b'e' | b'E') = self.b.get(self.i) {
            self.i += 1;
            if let Some(b'+' | b'-') = self.b.get(self.i) {
                self.i += 1;
            }
            if !digits(self) {
                return None;
            }
        }
        Some(&self.b[start..self.i])
    }

    /// A number without an exponent and with at most 17 digits: parsing it can neither
    /// overflow nor round differently in a way that matters (sign and finiteness).
    fn plain_number(&mut self) -> Option<f64> {
        let n = self.number()?;
        if n.iter().any(|&c| c == b'e' || c == b'E')
            || n.iter().filter(|c| c.is_ascii_digit()).count() > 17
        {
            return None;
        }
        std::str::from_utf8(n).ok()?.parse().ok()
    }

    /// Any JSON value, nested at most [`MAX_DEPTH`] deep.
    fn value(&mut self, depth: usize) -> Option<()> {
        if depth > MAX_DEPTH {
            return None;
        }
        match self.peek()? {
            b'"' => {
                self.string()?;
            }
            b'{' => {
                self.i += 1;
                if self.peek()? == b'}' {
                    self.i += 1;
                    return Some(());
                }
                loop {
                    self.string()?;
                    self.expect(b':')?;
                    self.value(depth + 1)?;
                    match self.next()? {
                        b',' => continue,
                        b'}' => break,
                        _ => return None,
                    }
                }
            }
            b'[' => {
                self.i += 1;
                if self.peek()? == b']' {
                    self.i += 1;
                    return Some(());
                }
                loop {
                    self.value(depth + 1)?;
                    match self.next()? {
                        b',' => continue,
                        b']' => break,
                        _ => return None,
                    }
                }
            }
            b't' => self.literal(b"true")?,
            b'f' => self.literal(b"false")?,
            b'n' => self.literal(b"null")?,
            _ => {
                self.number()?;
            }
        }
        Some(())
    }

    fn literal(&mut self, word: &[u8]) -> Option<()> {
        let end = self.i + word.len();
        (self.b.get(self.i..end)? == word).then(|| self.i = end)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LINES: &[&str] = &[
        r#"{"ts":"2026-11-22T10:00:00.123456789Z","kind":"log","host":"web-01","source":"file","labels":{"service":"nginx","env":"prod"},"attrs":{"path":"/var/log/nginx/access.log","offset":12345},"severity":"info","body":"GET / 200"}"#,
        r#"{"ts":"2026-11-22T10:00:00Z","kind":"metric","host":"web-01","source":"host","name":"host_cpu_usage_ratio","type":"gauge","value":0.23,"labels":{"cpu":"total"}}"#,
        r#"{"ts":"2026-11-22T10:00:00Z","kind":"metric","host":"h","source":"s","name":"c_total","type":"counter","value":17}"#,
        r#"{"ts":"2026-11-22T10:00:00Z","kind":"record","host":"web-01","source":"ssh","labels":{"device":"edge-rtr1","command":"show ip interface brief"},"attrs":{"interface":"Gi0/1","ip":"10.0.0.1","status":"up","n":[1,2.5,-3e2,{"x":null,"y":true,"z":false}]}}"#,
        r#"{"body":"a \"quoted\" word\\ and\ttab","host":"h","kind":"log","source":"s","ts":"2026-11-22T10:00:00Z"}"#,
        r#" { "ts" : "2026-11-22T12:00:00+02:00" , "kind" : "log" , "host" : "h" , "source" : "s" , "body" : "" , "labels" : { } , "attrs" : { } } "#,
        r#"{"ts":"2026-11-22T10:00:00Z","kind":"log","host":"h","source":"s","body":"é ü 日本 🙂"}"#,
    ];

    fn slow(line: &str) -> Option<(Kind, Timestamp)> {
        parse_line(line, 1).ok().map(|e| (e.kind(), e.ts))
    }

    #[test]
    fn common_lines_are_accepted_by_the_scanner_and_agree() {
        for line in LINES {
            let fast = accept(line.as_bytes());
            assert!(fast.is_some(), "not accepted: {line}");
            assert_eq!(fast, slow(line), "{line}");
        }
    }

    #[test]
    fn what_the_scanner_leaves_is_decided_by_parse_line() {
        for line in [
            r#"{"ts":"2026-11-22T10:00:00Z","kind":"log","host":"h","source":"s","body":"\u00e9"}"#,
            r#"{"ts":"2026-11-22T10:00:00Z","kind":"metric","host":"h","source":"s","name":"m","type":"gauge","value":1e3}"#,
        ] {
            assert_eq!(accept(line.as_bytes()), None, "{line}");
            assert!(check_line(line, 1).is_ok(), "{line}");
        }
        let e = check_line(
            r#"{"ts":"2026-11-22T10:00:00Z","kind":"log","host":"h","source":"s","body":"b","colour":1}"#,
            4,
        )
        .unwrap_err();
        assert_eq!(e.line, 4);
        assert!(
            e.message.contains("unknown field `colour`"),
            "{}",
            e.message
        );
    }

    /// Lines composed of every field with good and bad values, in any order, some fields
    /// missing or twice: the scanner accepts only what `parse_line` accepts.
    #[test]
    fn field_combinations_are_judged_like_parse_line() {
        let fields: &[(&str, &[&str])] = &[
            ("ts", &["\"2026-11-22T10:00:00Z\"", "\"2026-11-22\"", "1"]),
            ("kind", &["\"log\"", "\"metric\"", "\"record\"", "\"Log\""]),
            ("host", &["\"h\"", "\"\"", "1"]),
            ("source", &["\"s\"", "\"\"", "null"]),
            (
                "labels",
                &[
                    "{}",
                    "{\"a\":\"1\",\"b\":\"2\"}",
                    "{\"a\":\"1\",\"a\":\"2\"}",
                    "{\"bad-name\":\"x\"}",
                    "{\"\":\"x\"}",
                    "{\"a\":1}",
                    "[]",
                ],
            ),
            (
                "attrs",
                &["{}", "{\"k\":[1,{\"z\":null}],\"k\":2}", "[1]", "\"s\""],
            ),
            ("severity", &["\"info\"", "\"loud\"", "1"]),
            ("body", &["\"b\"", "\"\"", "1", "null"]),
            ("name", &["\"m_1\"", "\"bad-name\"", "\"1m\""]),
            (
                "type",
                &["\"gauge\"", "\"counter\"", "\"histogram\"", "\"x\""],
            ),
            ("value", &["1", "-1", "0.5", "-0", "1e3", "\"1\"", "null"]),
            ("count", &["3"]),
            ("buckets", &["[]"]),
            ("sum", &["1"]),
        ];
        let mut x = 0x9E37_79B9_7F4A_7C15u64;
        let mut rand = |n: usize| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x % n as u64) as usize
        };
        let (mut both, mut slow_only) = (0, 0);
        for _ in 0..200_000 {
            let mut parts = Vec::new();
            for (i, (name, values)) in fields.iter().enumerate() {
                let keep = if i < 4 { 95 } else { 30 };
                for _ in 0..if rand(50) == 0 { 2 } else { 1 } {
                    if rand(100) < keep {
                        // Mostly good values (the first), so that whole lines are valid often.
                        let v = if rand(3) == 0 {
                            values[rand(values.len())]
                        } else {
                            values[0]
                        };
                        parts.push(format!("\"{name}\":{v}"));
                    }
                }
            }
            for i in (1..parts.len()).rev() {
                parts.swap(i, rand(i + 1));
            }
            let line = format!("{{{}}}", parts.join(","));
            match (accept(line.as_bytes()), slow(&line)) {
                (Some(fast), slow) => {
                    assert_eq!(Some(fast), slow, "the scanner accepted: {line}");
                    both += 1;
                }
                (None, Some(_)) => slow_only += 1,
                (None, None) => {}
            }
        }
        assert!(
            both > 1_000,
            "{both} accepted, {slow_only} left to parse_line"
        );
    }

    /// The scanner never accepts a line `parse_line` refuses, and agrees on kind and time:
    /// checked on valid lines and on hundreds of thousands of mutations of them.
    #[test]
    fn the_scanner_accepts_only_what_parse_line_accepts() {
        let pieces: &[&[u8]] = &[
            b"\"",
            b"\\",
            b",",
            b":",
            b"{",
            b"}",
            b"[",
            b"]",
            b" ",
            b"\n",
            b"\x01",
            b"0",
            b"-",
            b".",
            b"e",
            b"1e999",
            b"\\u0041",
            b"\\x",
            b"null",
            b"true",
            b"\"ts\":",
            b"\"kind\":",
            b"\"log\"",
            b"\"metric\"",
            b"\"record\"",
            b"\"value\":",
            b"\"labels\":{}",
            b"\"attrs\":[]",
            b"\"name\":\"a-b\"",
            b"\"type\":\"histogram\"",
            b"-0",
            b"01",
            b"\"severity\":\"loud\"",
            b"\"body\":1",
            b"\"host\":\"\"",
            b"1.",
            b"NaN",
            b"\"count\":1",
            b"\"labels\":{\"a\":1}",
            b"\"labels\":{\"\":\"x\"}",
            b"\"labels\":{\"a\":\"1\",\"a\":\"2\"}",
            b"\"labels\":{\"bad-name\":\"x\"}",
            b"\"ts\":\"2026-02-30T00:00:00Z\"",
            b"\"value\":-1",
            b"\xc3\xa9",
        ];
        let mut x = 0x2545_F491_4F6C_DD1Du64;
        let mut rand = |n: usize| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x % n as u64) as usize
        };
        let (mut accepted, mut total) = (0, 0);
        for round in 0..300_000 {
            let mut line = LINES[round % LINES.len()].as_bytes().to_vec();
            for _ in 0..1 + rand(3) {
                let at = rand(line.len() + 1);
                match rand(3) {
                    0 => {
                        let len = rand(4).min(line.len() - at.min(line.len()));
                        line.drain(at..at + len);
                    }
                    1 => {
                        let p = pieces[rand(pieces.len())];
                        line.splice(at..at, p.iter().copied());
                    }
                    _ => {
                        if at < line.len() {
                            line[at] = pieces[rand(pieces.len())][0];
                        }
                    }
                }
            }
            let Ok(text) = std::str::from_utf8(&line) else {
                continue;
            };
            total += 1;
            if let Some(fast) = accept(text.as_bytes()) {
                accepted += 1;
                assert_eq!(Some(fast), slow(text), "the scanner accepted: {text}");
            }
        }
        assert!(accepted > 1_000, "{accepted} of {total} mutations accepted");
    }
}
