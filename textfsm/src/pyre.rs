//! Python `re` syntax, as TextFSM templates are written, translated for `fancy-regex`.
//!
//! The two dialects agree on most of what templates use (`(?P<name>...)`, lookaround,
//! backreferences, `\d\w\s\b`, lazy quantifiers, inline flags), and disagree on details that
//! would otherwise change what a pattern means or make it fail to compile:
//!
//! | Python | meaning in Python | emitted |
//! |---|---|---|
//! | `\<`, `\>`, `\-`, `\ ` ... | the literal character | the literal (`\<` is a word boundary in `regex`) |
//! | `\Z` | end of text | `\z` |
//! | `[[]`, `[a&&b]`, `[~~]`, `[--]` | literal characters in a class | escaped (nested classes and set operators in `regex`) |
//! | `[\b]` | backspace | `\x08` |
//! | `a{`, `{foo}` | literal braces (not a quantifier) | `\{`, `\}` |
//! | `{,3}` | `{0,3}` | `{0,3}` |
//! | `\x41`, `\u0041`, `\0`, `\101` | hex, unicode and octal escapes | `\x{...}` |
//! | `(?#...)` | a comment | nothing |
//!
//! Matches are anchored at the start like Python's `re.match` (see [`compile_match`]).

use std::fmt;
use std::sync::OnceLock;

/// Why a pattern was refused (Python's own `re` would refuse it too, or it uses a feature
/// this engine does not translate).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PatternError {
    /// What is wrong, with the character offset in the Python pattern where known.
    pub message: String,
}

impl fmt::Display for PatternError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for PatternError {}

fn err<T>(message: impl Into<String>) -> Result<T, PatternError> {
    Err(PatternError {
        message: message.into(),
    })
}

/// How long a single match may backtrack before it is given up as an error (fancy-regex's
/// default is 1,000,000 steps; ten times that still ends in well under a second).
const BACKTRACK_LIMIT: usize = 10_000_000;

/// How `\d`, `\w`, `\s` and their negations are emitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Classes {
    /// Python's Unicode classes (`\s` also takes `\x1c`-`\x1f`, as `str.isspace` does).
    Unicode,
    /// Their ASCII members only: the same matches on ASCII text, and several times cheaper
    /// to compile (a Unicode `\w` is hundreds of ranges).
    Ascii,
}

const ASCII_DIGIT: &str = "0-9";
const ASCII_WORD: &str = "0-9A-Za-z_";
const ASCII_SPACE: &str = r"\t\n\x0B\x0C\r\x1C-\x1F ";

/// `\d`, `\D`, `\w`, `\W`, `\s` or `\S` (the letter `c`) in `classes` form; inside a class
/// (`in_class`) positive ones are bare ranges to splice in.
fn class_escape(c: char, classes: Classes, in_class: bool) -> String {
    let (body, negated) = match (c, classes) {
        ('d' | 'D', Classes::Unicode) => (r"\d", c == 'D'),
        ('w' | 'W', Classes::Unicode) => (r"\w", c == 'W'),
        ('s' | 'S', Classes::Unicode) => (r"\s\x1C-\x1F", c == 'S'),
        ('d' | 'D', Classes::Ascii) => (ASCII_DIGIT, c == 'D'),
        ('w' | 'W', Classes::Ascii) => (ASCII_WORD, c == 'W'),
        (_, Classes::Ascii) => (ASCII_SPACE, c == 'S'),
        (_, Classes::Unicode) => unreachable!("only d, w and s classes"),
    };
    match (negated, in_class) {
        (false, true) => body.to_string(),
        (false, false) => format!("[{body}]"),
        (true, _) => format!("[^{body}]"),
    }
}

/// A compiled Python pattern, matched at the start of the text like `re.match`. Holds an
/// ASCII-class build, used for ASCII text (almost all device output), and builds the
/// Unicode one the first time a non-ASCII text comes: both match the same on ASCII text.
#[derive(Debug)]
pub struct PyRegex {
    ascii: fancy_regex::Regex,
    unicode_source: String,
    unicode: OnceLock<Result<fancy_regex::Regex, PatternError>>,
}

fn build(translated: &str) -> Result<fancy_regex::Regex, PatternError> {
    fancy_regex::RegexBuilder::new(&format!(r"\A(?:{translated})"))
        .backtrack_limit(BACKTRACK_LIMIT)
        .build()
        .map_err(|e| PatternError {
            message: e.to_string(),
        })
}

impl PyRegex {
    /// Compiles `python` (its ASCII build; a pattern Python refuses is refused here).
    pub fn new(python: &str) -> Result<Self, PatternError> {
        let unicode_source = translate(python, Classes::Unicode)?;
        let ascii_source = translate(python, Classes::Ascii)?;
        let ascii = build(&ascii_source)?;
        let unicode = OnceLock::new();
        if ascii_source == unicode_source {
            let _ = unicode.set(Ok(ascii.clone()));
        }
        Ok(PyRegex {
            ascii,
            unicode_source,
            unicode,
        })
    }

    /// Compiles `python` with Unicode classes only, used for every text (slower to
    /// compile; see [`crate::Template::compile_unicode`]).
    pub fn new_unicode(python: &str) -> Result<Self, PatternError> {
        let unicode_source = translate(python, Classes::Unicode)?;
        let built = build(&unicode_source)?;
        let unicode = OnceLock::new();
        let _ = unicode.set(Ok(built.clone()));
        Ok(PyRegex {
            ascii: built,
            unicode_source,
            unicode,
        })
    }

    fn for_text(&self, text: &str) -> Result<&fancy_regex::Regex, PatternError> {
        if text.is_ascii() {
            return Ok(&self.ascii);
        }
        self.unicode
            .get_or_init(|| build(&self.unicode_source))
            .as_ref()
            .map_err(Clone::clone)
    }

    /// Whether the pattern matches at the start of `text`.
    pub fn is_match(&self, text: &str) -> Result<bool, PatternError> {
        self.for_text(text)?
            .is_match(text)
            .map_err(|e| PatternError {
                message: e.to_string(),
            })
    }

    /// The groups of the match at the start of `text`.
    pub fn captures<'t>(
        &self,
        text: &'t str,
    ) -> Result<Option<fancy_regex::Captures<'t, str>>, PatternError> {
        self.for_text(text)?
            .captures(text)
            .map_err(|e| PatternError {
                message: e.to_string(),
            })
    }

    /// Group names by index (`None` for unnamed groups and group 0).
    pub fn capture_names(&self) -> fancy_regex::CaptureNames<'_> {
        self.ascii.capture_names()
    }

    /// Number of groups, group 0 included.
    pub fn captures_len(&self) -> usize {
        self.ascii.captures_len()
    }
}

/// Translates Python `re` syntax into `fancy-regex` syntax with the same meaning.
pub fn translate(python: &str, classes: Classes) -> Result<String, PatternError> {
    let chars: Vec<char> = python.chars().collect();
    let mut out = String::with_capacity(python.len() + 8);
    // Open groups: where each starts in `out`, and whether it is a lookaround.
    let mut groups: Vec<(usize, bool)> = Vec::new();
    // A lookaround group that just closed (its start in `out`): a quantifier on it is
    // accepted by Python and refused by fancy-regex, see `quantified_lookaround`.
    let mut closed_lookaround: Option<usize> = None;
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if let Some(start) = closed_lookaround.take() {
            if let Some(next) = quantified_lookaround(&chars, i, start, &mut out) {
                i = next;
                continue;
            }
        }
        match c {
            '(' if chars.get(i + 1) != Some(&'?') || chars.get(i + 2) != Some(&'#') => {
                let ahead: String = chars[i + 1..chars.len().min(i + 4)].iter().collect();
                let look = ["?=", "?!", "?<=", "?<!"]
                    .iter()
                    .any(|p| ahead.starts_with(p));
                groups.push((out.len(), look));
                out.push('(');
                i += 1;
            }
            ')' => {
                if let Some((start, true)) = groups.pop() {
                    closed_lookaround = Some(start);
                }
                out.push(')');
                i += 1;
            }
            '\\' => {
                let (piece, next) = escape(&chars, i, false, classes)?;
                out.push_str(&piece);
                i = next;
            }
            '[' => {
                let (piece, next) = class(&chars, i, classes)?;
                out.push_str(&piece);
                i = next;
            }
            '(' if chars.get(i + 1) == Some(&'?') && chars.get(i + 2) == Some(&'#') => {
                // A comment group: skip to its closing parenthesis.
                match chars[i..].iter().position(|&c| c == ')') {
                    Some(p) => i += p + 1,
                    None => return err(format!("missing ), unterminated comment at position {i}")),
                }
            }
            '{' => match quantifier(&chars, i) {
                Some((piece, next)) => {
                    out.push_str(&piece);
                    i = next;
                }
                None => {
                    out.push_str(r"\{");
                    i += 1;
                }
            },
            '}' => {
                out.push_str(r"\}");
                i += 1;
            }
            ']' => {
                out.push_str(r"\]");
                i += 1;
            }
            _ => {
                out.push(c);
                i += 1;
            }
        }
    }
    Ok(out)
}

/// A quantifier at `i` right after a lookaround group (which starts at `start` in `out`).
/// An assertion matches the empty string, so repeating it at least once is the assertion
/// itself and repeating it "zero or more" times always succeeds: the first drops the
/// quantifier, the second the whole group. Returns where the pattern continues.
fn quantified_lookaround(
    chars: &[char],
    i: usize,
    start: usize,
    out: &mut String,
) -> Option<usize> {
    let (min, mut next) = match chars[i] {
        '+' => (1, i + 1),
        '*' | '?' => (0, i + 1),
        '{' => {
            let (piece, next) = quantifier(chars, i)?;
            let min = piece[1..].split([',', '}']).next()?.parse::<u64>().ok()?;
            (min, next)
        }
        _ => return None,
    };
    // A lazy or possessive suffix changes nothing for an empty match.
    if matches!(chars.get(next), Some('?' | '+')) {
        next += 1;
    }
    if min == 0 {
        out.truncate(start);
    }
    Some(next)
}

/// `{m}`, `{m,}`, `{,n}` or `{m,n}` at `i`: a quantifier, else Python reads a literal `{`.
fn quantifier(chars: &[char], i: usize) -> Option<(String, usize)> {
    let close = i + chars[i..].iter().position(|&c| c == '}')?;
    let body: String = chars[i + 1..close].iter().collect();
    let (min, max) = match body.split_once(',') {
        Some((a, b)) => (a, Some(b)),
        None => (body.as_str(), None),
    };
    let digits = |s: &str| s.chars().all(|c| c.is_ascii_digit());
    if !digits(min) || !max.is_none_or(digits) || (min.is_empty() && max.is_none()) {
        return None;
    }
    let min = if min.is_empty() { "0" } else { min };
    let piece = match max {
        None => format!("{{{min}}}"),
        Some(max) => format!("{{{min},{max}}}"),
    };
    Some((piece, close + 1))
}

/// Characters that must stay escaped (or be escaped) to be literal in `regex` syntax.
fn is_meta(c: char) -> bool {
    matches!(
        c,
        '\\' | '.'
            | '+'
            | '*'
            | '?'
            | '('
            | ')'
            | '|'
            | '['
            | ']'
            | '{'
            | '}'
            | '^'
            | '$'
            | '#'
            | '&'
            | '-'
            | '~'
    )
}

/// A literal character, escaped where `regex` would read it as syntax.
fn literal(c: char) -> String {
    if is_meta(c) {
        format!("\\{c}")
    } else if c.is_whitespace() || c.is_control() {
        format!("\\x{{{:X}}}", c as u32)
    } else {
        c.to_string()
    }
}

fn hex_escape(
    chars: &[char],
    start: usize,
    len: usize,
    what: char,
) -> Result<(u32, usize), PatternError> {
    let digits: String = chars.iter().skip(start).take(len).collect();
    if digits.chars().count() != len || !digits.chars().all(|c| c.is_ascii_hexdigit()) {
        return err(format!(
            "incomplete escape \\{what}{digits} at position {}",
            start - 2
        ));
    }
    let code = u32::from_str_radix(&digits, 16).map_err(|e| PatternError {
        message: e.to_string(),
    })?;
    Ok((code, start + len))
}

fn char_escape(code: u32, at: usize) -> Result<String, PatternError> {
    match char::from_u32(code) {
        Some(c) => Ok(literal(c)),
        None => err(format!("bad escape (not a character) at position {at}")),
    }
}

/// The escape sequence starting with the backslash at `i`; returns what to emit and where
/// the pattern continues. `in_class` changes `\b` (backspace in a class) and refuses
/// anchors and backreferences, as Python does.
fn escape(
    chars: &[char],
    i: usize,
    in_class: bool,
    classes: Classes,
) -> Result<(String, usize), PatternError> {
    let Some(&c) = chars.get(i + 1) else {
        return err(format!("bad escape (end of pattern) at position {i}"));
    };
    let next = i + 2;
    let piece = match c {
        'd' | 'D' | 'w' | 'W' | 's' | 'S' => class_escape(c, classes, in_class),
        'b' if in_class => r"\x08".to_string(),
        'b' | 'B' | 'A' if !in_class => format!("\\{c}"),
        'Z' if !in_class => r"\z".to_string(),
        'n' => r"\n".to_string(),
        't' => r"\t".to_string(),
        'r' => r"\r".to_string(),
        'f' => r"\x0C".to_string(),
        'v' => r"\x0B".to_string(),
        'a' => r"\x07".to_string(),
        'x' => {
            let (code, end) = hex_escape(chars, next, 2, 'x')?;
            return Ok((char_escape(code, i)?, end));
        }
        'u' => {
            let (code, end) = hex_escape(chars, next, 4, 'u')?;
            return Ok((char_escape(code, i)?, end));
        }
        'U' => {
            let (code, end) = hex_escape(chars, next, 8, 'U')?;
            return Ok((char_escape(code, i)?, end));
        }
        '0'..='7' if c == '0' || is_octal3(chars, i + 1) || in_class => {
            // Octal: `\0`, `\0oo` or three octal digits (in a class any digits are octal).
            let mut end = next;
            while end < i + 4 && chars.get(end).is_some_and(|d| ('0'..='7').contains(d)) {
                end += 1;
            }
            let digits: String = chars[i + 1..end].iter().collect();
            let code = u32::from_str_radix(&digits, 8).unwrap_or(0);
            if code > 0o377 {
                return err(format!(
                    "octal escape value \\{digits} outside of range 0-0o377 at position {i}"
                ));
            }
            return Ok((char_escape(code, i)?, end));
        }
        '1'..='9' if !in_class => {
            // A backreference: one or two digits.
            let mut end = next;
            if chars.get(end).is_some_and(|d| d.is_ascii_digit()) {
                end += 1;
            }
            let digits: String = chars[i + 1..end].iter().collect();
            return Ok((format!("\\{digits}"), end));
        }
        c if c.is_ascii_alphanumeric() => {
            return err(format!("bad escape \\{c} at position {i}"));
        }
        c => literal(c),
    };
    Ok((piece, next))
}

fn is_octal3(chars: &[char], at: usize) -> bool {
    (0..3).all(|k| chars.get(at + k).is_some_and(|d| ('0'..='7').contains(d)))
}

/// One member of a character class: a single character (which can start or end a range)
/// or something else (`\d`, `\w`, ...).
enum Member {
    Char(char, String),
    Other(String),
}

/// The character class starting with the `[` at `i`, re-emitted with every literal escaped.
fn class(chars: &[char], i: usize, classes: Classes) -> Result<(String, usize), PatternError> {
    let mut out = String::from("[");
    let mut j = i + 1;
    if chars.get(j) == Some(&'^') {
        out.push('^');
        j += 1;
    }
    let first = j;
    let mut members: Vec<Member> = Vec::new();
    loop {
        let Some(&c) = chars.get(j) else {
            return err(format!("unterminated character set at position {i}"));
        };
        if c == ']' && j > first {
            j += 1;
            break;
        }
        // A range `a-z`: the previous member is a character and `-` is not the last one.
        if c == '-' && chars.get(j + 1).is_some_and(|&n| n != ']') && !members.is_empty() {
            if let Some(Member::Char(lo, lo_text)) = members.last() {
                let (lo, lo_text) = (*lo, lo_text.clone());
                let (hi, hi_text, next) = class_member(chars, j + 1, classes)?;
                let Some(hi) = hi else {
                    return err(format!(
                        "bad character range {lo}-{hi_text} at position {j}"
                    ));
                };
                if hi < lo {
                    return err(format!("bad character range {lo}-{hi} at position {j}"));
                }
                members.pop();
                members.push(Member::Other(format!("{lo_text}-{hi_text}")));
                j = next;
                continue;
            }
            return err(format!("bad character range at position {j}"));
        }
        let (ch, text, next) = class_member(chars, j, classes)?;
        members.push(match ch {
            Some(ch) => Member::Char(ch, text),
            None => Member::Other(text),
        });
        j = next;
    }
    if members.is_empty() {
        return err(format!("unterminated character set at position {i}"));
    }
    for m in &members {
        match m {
            Member::Char(_, text) | Member::Other(text) => out.push_str(text),
        }
    }
    out.push(']');
    Ok((out, j))
}

/// One class member at `j`: its character (if it is a single one), how to emit it, and where
/// the class continues.
fn class_member(
    chars: &[char],
    j: usize,
    classes: Classes,
) -> Result<(Option<char>, String, usize), PatternError> {
    let c = chars[j];
    if c != '\\' {
        return Ok((Some(c), literal(c), j + 1));
    }
    let (text, next) = escape(chars, j, true, classes)?;
    let single = match chars.get(j + 1) {
        Some('d' | 'D' | 'w' | 'W' | 's' | 'S') => None,
        Some('b') => Some('\u{8}'),
        Some('n') => Some('\n'),
        Some('t') => Some('\t'),
        Some('r') => Some('\r'),
        Some('f') => Some('\u{c}'),
        Some('v') => Some('\u{b}'),
        Some('a') => Some('\u{7}'),
        Some('x' | 'u' | 'U' | '0'..='7') => {
            // Decode what was emitted: `\x{HEX}` or the literal itself.
            decode_literal(&text)
        }
        Some(&other) => Some(other),
        None => None,
    };
    Ok((single, text, next))
}

fn decode_literal(text: &str) -> Option<char> {
    if let Some(hex) = text.strip_prefix("\\x{").and_then(|t| t.strip_suffix('}')) {
        return u32::from_str_radix(hex, 16).ok().and_then(char::from_u32);
    }
    let mut it = text.chars();
    match (it.next(), it.next(), it.next()) {
        (Some('\\'), Some(c), None) => Some(c),
        (Some(c), None, None) => Some(c),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(pattern: &str, text: &str) -> Option<String> {
        let re = PyRegex::new(pattern).unwrap_or_else(|e| panic!("{pattern}: {e}"));
        re.captures(text).unwrap().map(|c| c[0].to_string())
    }

    #[test]
    fn python_literal_escapes_stay_literal() {
        assert_eq!(m(r"\<\S+\>", "<abc> x"), Some("<abc>".into()));
        assert_eq!(m(r"a\-b\ c\:\/", "a-b c:/"), Some("a-b c:/".into()));
        assert_eq!(m(r"x\Z", "x"), Some("x".into()));
        assert_eq!(m(r"x\Z", "xy"), None);
    }

    #[test]
    fn match_is_anchored_at_the_start_only() {
        assert_eq!(m(r"b", "ab"), None);
        assert_eq!(m(r"a", "ab"), Some("a".into()));
        assert_eq!(m(r"(?i)A|B", "b"), Some("b".into()));
        assert_eq!(m(r"a|b", "ba"), Some("b".into()));
    }

    #[test]
    fn classes_keep_python_literals() {
        assert_eq!(m(r"[[]+", "[[x"), Some("[[".into()));
        assert_eq!(m(r"[a&&b]+", "a&&b"), Some("a&&b".into()));
        assert_eq!(m(r"[~-]+", "~-~"), Some("~-~".into()));
        assert_eq!(m(r"[]a]+", "]a]"), Some("]a]".into()));
        assert_eq!(m(r"[\w.-]+", "a.b-c d"), Some("a.b-c".into()));
        assert_eq!(m(r"[^\s,]+", "ab,c"), Some("ab".into()));
        assert_eq!(m(r"[\x41-\x43]+", "ABCD"), Some("ABC".into()));
        assert_eq!(m(r"[\b]", "\u{8}"), Some("\u{8}".into()));
        assert!(translate(r"[z-a]", Classes::Ascii).is_err());
        assert!(translate(r"[abc", Classes::Ascii).is_err());
    }

    #[test]
    fn braces_that_are_not_quantifiers_are_literal() {
        assert_eq!(m(r"a{2}", "aaa"), Some("aa".into()));
        assert_eq!(m(r"a{,2}", "aaa"), Some("aa".into()));
        assert_eq!(m(r"a{1,}", "aaa"), Some("aaa".into()));
        assert_eq!(m(r"{x}", "{x}"), Some("{x}".into()));
        assert_eq!(m(r"a{", "a{"), Some("a{".into()));
        assert_eq!(m(r"a}", "a}"), Some("a}".into()));
    }

    #[test]
    fn lookaround_backreferences_and_comments() {
        assert_eq!(m(r"\d+(?=ms)", "12ms"), Some("12".into()));
        assert_eq!(m(r"\w+(?<!x)\b", "abx ab"), None);
        assert_eq!(m(r"(?P<a>\w)(?P=a)", "xx"), Some("xx".into()));
        assert_eq!(m(r"(\w)\1", "yy"), Some("yy".into()));
        assert_eq!(m(r"a(?#comment)b", "ab"), Some("ab".into()));
        // Quantified assertions (cisco_ios_show_access-list uses `(?<=[^()\s])+`).
        assert_eq!(m(r"\w+(?<=[^()\s])+x", "abx"), Some("abx".into()));
        assert_eq!(m(r"\w+ (?<=[^()\s])+x", "ab x"), None);
        assert_eq!(m(r"a(?=b)*", "ac"), Some("a".into()));
        assert_eq!(m(r"a(?!b){0,3}?c", "ac"), Some("ac".into()));
        assert_eq!(m(r"(a(?=b))+", "abab"), Some("a".into()));
    }

    #[test]
    fn ascii_text_uses_ascii_classes_and_other_text_unicode_ones() {
        let re = PyRegex::new(r"(\w+)\s+([\d.]+)[\S]*").unwrap();
        assert!(re.unicode.get().is_none());
        let cap = |t: &str| {
            re.captures(t)
                .unwrap()
                .map(|c| (c[1].to_string(), c[2].to_string()))
        };
        assert_eq!(cap("eth0  12.5x"), Some(("eth0".into(), "12.5".into())));
        assert!(
            re.unicode.get().is_none(),
            "ASCII text needs no Unicode build"
        );
        assert_eq!(cap("café\u{a0}1"), Some(("café".into(), "1".into())));
        assert!(re.unicode.get().is_some());
        assert_eq!(m(r"[^\W\d]+", "ab1"), Some("ab".into()));
        assert_eq!(m(r"[^\W\d]+", "éa1"), Some("éa".into()));
        // Python's \s takes \x1c-\x1f (str.isspace); \S does not.
        assert_eq!(m(r"a\sb", "a\u{1f}b"), Some("a\u{1f}b".into()));
        assert_eq!(m(r"\S+", "a\u{1f}b"), Some("a".into()));
        // A pattern without class escapes shares one build.
        let plain = PyRegex::new(r"^show (?=version)").unwrap();
        assert!(plain.unicode.get().is_some());
    }

    #[test]
    fn escapes_python_refuses_are_refused() {
        assert!(translate(r"\q", Classes::Ascii).is_err());
        assert!(translate(r"\x4", Classes::Ascii).is_err());
        assert!(translate("\\", Classes::Ascii).is_err());
        assert_eq!(m(r"\x41\u0042\101\0", "ABA\0"), Some("ABA\0".into()));
    }
}
