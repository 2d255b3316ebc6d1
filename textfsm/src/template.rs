//! Reading a TextFSM template: the `Value` block, then states of rules with `->` actions.
//!
//! The grammar follows Python textfsm 2.1 line for line, so a template that Python accepts
//! compiles here with the same meaning, and one that Python refuses is refused with the
//! file and line at fault.

use std::collections::HashMap;
use std::sync::OnceLock;

use crate::error::{TemplateError, TemplateErrorKind as K};
use crate::pyre::PyRegex;

/// Longest `Value` and state name Python textfsm accepts.
const MAX_NAME_LEN: usize = 48;

/// A `Value` option.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ValueOption {
    /// The record is dropped when this value is empty.
    Required,
    /// Kept from one record to the next until set again or `Clearall`.
    Filldown,
    /// Copied backwards into earlier records where they are empty.
    Fillup,
    /// Part of the record's key (used to merge multi-template index rows).
    Key,
    /// Every match is appended; the record gets a list.
    List,
}

impl ValueOption {
    fn parse(name: &str) -> Option<Self> {
        Some(match name {
            "Required" => Self::Required,
            "Filldown" => Self::Filldown,
            "Fillup" => Self::Fillup,
            "Key" => Self::Key,
            "List" => Self::List,
            _ => return None,
        })
    }
}

/// A `Value` declaration.
#[derive(Debug)]
pub struct ValueDef {
    /// The name, as declared (records use it lower-cased, see [`crate::Record`]).
    pub name: String,
    /// Options in declaration order (the order matters for `Required` with `List`).
    pub options: Vec<ValueOption>,
    /// The regex, as declared.
    pub regex: String,
    /// For a `List` value whose regex has nested groups: the regex, to split each match
    /// into its named groups like Python textfsm does.
    pub(crate) list_regex: Option<PyRegex>,
}

impl ValueDef {
    /// Whether the value has `option`.
    pub fn has(&self, option: ValueOption) -> bool {
        self.options.contains(&option)
    }
}

/// What a rule does with the input line after it matched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LineOp {
    Next,
    Continue,
    Error,
}

/// What a rule does with the record being built.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RecordOp {
    NoRecord,
    Record,
    Clear,
    Clearall,
}

/// Where the machine goes after a rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Target {
    Stay,
    State(usize),
    End,
    Eof,
}

/// A rule: a regex and its action.
#[derive(Debug)]
pub(crate) struct Rule {
    pub(crate) regex: PyRegex,
    pub(crate) line: usize,
    pub(crate) line_op: LineOp,
    pub(crate) record_op: RecordOp,
    pub(crate) target: Target,
    /// `-> Error "message"`: the message without quotes.
    pub(crate) message: Option<String>,
    /// (capture group index, value index) for every named group that is a Value, in group
    /// order (the order Python assigns them in).
    pub(crate) assigns: Vec<(usize, usize)>,
}

/// A state and its rules.
#[derive(Debug)]
pub(crate) struct State {
    pub(crate) rules: Vec<Rule>,
}

/// A compiled TextFSM template. Immutable and `Sync`: parse with
/// [`Template::parse_text`] from any number of threads.
#[derive(Debug)]
pub struct Template {
    pub(crate) name: String,
    pub(crate) values: Vec<ValueDef>,
    pub(crate) states: Vec<State>,
    pub(crate) start: usize,
    /// An (empty) `EOF` state is declared: no implicit record at the end of input.
    pub(crate) has_eof_state: bool,
}

impl Template {
    /// Compiles template `text`; `name` (a file name or path) is used in error messages.
    pub fn compile(name: &str, text: &str) -> Result<Self, TemplateError> {
        Reader::new(name, text, false).read()
    }

    /// Like [`Template::compile`], but every regex is built with Python's Unicode classes
    /// up front and used for all text. [`Template::compile`] builds ASCII-class regexes
    /// (same matches on ASCII text, several times cheaper to build) and the Unicode ones
    /// only when a non-ASCII line comes; this one is for checking the Unicode builds.
    pub fn compile_unicode(name: &str, text: &str) -> Result<Self, TemplateError> {
        Reader::new(name, text, true).read()
    }

    /// The template's name, as given to [`Template::compile`].
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The `Value` declarations in order: the columns of every record.
    pub fn values(&self) -> &[ValueDef] {
        &self.values
    }

    /// Names of the values with the `Key` option.
    pub fn keys(&self) -> Vec<&str> {
        self.values
            .iter()
            .filter(|v| v.has(ValueOption::Key))
            .map(|v| v.name.as_str())
            .collect()
    }
}

/// Splits a template into lines as Python's text-mode file iteration does (`\r\n` and `\r`
/// are line ends too) and walks them with 1-based numbers.
struct Reader<'a> {
    /// Build Unicode-class regexes only (see [`Template::compile_unicode`]).
    unicode_only: bool,
    name: &'a str,
    lines: Vec<&'a str>,
    pos: usize,
}

fn is_comment(line: &str) -> bool {
    line.trim_start().starts_with('#')
}

impl<'a> Reader<'a> {
    fn new(name: &'a str, text: &'a str, unicode_only: bool) -> Self {
        let mut lines = Vec::new();
        let mut rest = text;
        while !rest.is_empty() {
            match rest.find(['\n', '\r']) {
                Some(p) => {
                    lines.push(&rest[..p]);
                    let skip = if rest[p..].starts_with("\r\n") { 2 } else { 1 };
                    rest = &rest[p + skip..];
                }
                None => {
                    lines.push(rest);
                    rest = "";
                }
            }
        }
        Reader {
            unicode_only,
            name,
            lines,
            pos: 0,
        }
    }

    fn error(&self, line: usize, kind: K) -> TemplateError {
        TemplateError {
            file: self.name.to_string(),
            line,
            kind,
        }
    }

    fn regex(&self, python: &str) -> Result<PyRegex, crate::pyre::PatternError> {
        if self.unicode_only {
            PyRegex::new_unicode(python)
        } else {
            PyRegex::new(python)
        }
    }

    /// The next line (right-trimmed) and its 1-based number.
    fn next_line(&mut self) -> Option<(usize, &'a str)> {
        let line = self.lines.get(self.pos)?;
        self.pos += 1;
        Some((self.pos, line.trim_end()))
    }

    fn read(mut self) -> Result<Template, TemplateError> {
        let values = self.read_values()?;
        // Value name -> the value's regex with its first `(` named: `(?P<NAME>...`.
        let substitutions: HashMap<&str, String> = values
            .iter()
            .map(|v| (v.name.as_str(), format!("(?P<{}>{}", v.name, &v.regex[1..])))
            .collect();
        let mut names: Vec<String> = Vec::new();
        let mut raw_states: Vec<(usize, Vec<RawRule>)> = Vec::new();
        while let Some((line, name)) = self.read_state_name()? {
            if names.iter().any(|n| n == name) {
                return Err(self.error(line, K::DuplicateState(name.to_string())));
            }
            names.push(name.to_string());
            let rules = self.read_rules(&substitutions, &values)?;
            raw_states.push((line, rules));
        }
        self.link(values, names, raw_states)
    }

    fn read_values(&mut self) -> Result<Vec<ValueDef>, TemplateError> {
        let mut values: Vec<ValueDef> = Vec::new();
        while let Some((n, line)) = self.next_line() {
            if line.is_empty() {
                break;
            }
            if is_comment(line) {
                continue;
            }
            if !line.starts_with("Value ") {
                let kind = if values.is_empty() {
                    K::NoValues
                } else {
                    K::ExpectedBlankLine
                };
                return Err(self.error(n, kind));
            }
            let value = self.read_value(n, line)?;
            if values.iter().any(|v| v.name == value.name) {
                return Err(self.error(n, K::DuplicateValue(value.name)));
            }
            values.push(value);
        }
        Ok(values)
    }

    /// `Value [Opt1,Opt2] NAME (regex)`, split on single spaces as Python does.
    fn read_value(&self, n: usize, line: &str) -> Result<ValueDef, TemplateError> {
        let tokens: Vec<&str> = line.split(' ').collect();
        if tokens.len() < 3 {
            return Err(self.error(n, K::ValueTokens));
        }
        let mut options = Vec::new();
        let (name, regex) = if tokens[2].starts_with('(') {
            (tokens[1], tokens[2..].join(" "))
        } else {
            for opt in tokens[1].split(',') {
                let Some(o) = ValueOption::parse(opt) else {
                    return Err(self.error(n, K::UnknownOption(opt.to_string())));
                };
                if options.contains(&o) {
                    return Err(self.error(n, K::DuplicateOption(opt.to_string())));
                }
                options.push(o);
            }
            (tokens[2], tokens[3..].join(" "))
        };
        if name.chars().count() > MAX_NAME_LEN {
            return Err(self.error(n, K::NameTooLong(name.to_string())));
        }
        if !regex.starts_with('(') || !regex.ends_with(')') || regex.ends_with("\\)") {
            return Err(self.error(n, K::ValueParens(regex)));
        }
        let compiled = self.regex(&regex).map_err(|e| {
            self.error(
                n,
                K::Regex {
                    pattern: regex.clone(),
                    reason: e.message,
                },
            )
        })?;
        // Python keeps the regex for List values with nested groups (more than one group).
        let list_regex = (options.contains(&ValueOption::List) && compiled.captures_len() > 2)
            .then_some(compiled);
        Ok(ValueDef {
            name: name.to_string(),
            options,
            regex,
            list_regex,
        })
    }

    /// The next state's name, skipping blank and comment lines; `None` at the end.
    fn read_state_name(&mut self) -> Result<Option<(usize, &'a str)>, TemplateError> {
        while let Some((n, line)) = self.next_line() {
            if line.is_empty() || is_comment(line) {
                continue;
            }
            let word = line.chars().all(|c| c.is_alphanumeric() || c == '_');
            let keyword = matches!(
                line,
                "Continue" | "Next" | "Error" | "Clear" | "Clearall" | "Record" | "NoRecord"
            );
            if !word || line.chars().count() > MAX_NAME_LEN || keyword {
                return Err(self.error(n, K::InvalidStateName(line.to_string())));
            }
            return Ok(Some((n, line)));
        }
        Ok(None)
    }

    /// Rules up to the next blank line.
    fn read_rules(
        &mut self,
        substitutions: &HashMap<&str, String>,
        values: &[ValueDef],
    ) -> Result<Vec<RawRule>, TemplateError> {
        let mut rules = Vec::new();
        while let Some((n, line)) = self.next_line() {
            if line.is_empty() {
                break;
            }
            if is_comment(line) {
                continue;
            }
            if !(line.starts_with(" ^") || line.starts_with("  ^") || line.starts_with("\t^")) {
                return Err(self.error(n, K::RuleIndent));
            }
            rules.push(self.read_rule(n, line.trim(), substitutions, values)?);
        }
        Ok(rules)
    }

    fn read_rule(
        &self,
        n: usize,
        line: &str,
        substitutions: &HashMap<&str, String>,
        values: &[ValueDef],
    ) -> Result<RawRule, TemplateError> {
        let (pattern, action) = split_action(line);
        let regex_text = substitute(pattern, substitutions)
            .ok_or_else(|| self.error(n, K::Substitution(pattern.to_string())))?;
        let regex = self.regex(&regex_text).map_err(|e| {
            self.error(
                n,
                K::Regex {
                    pattern: regex_text.clone(),
                    reason: e.message,
                },
            )
        })?;
        let assigns = regex
            .capture_names()
            .enumerate()
            .filter_map(|(group, name)| {
                let index = values.iter().position(|v| Some(v.name.as_str()) == name)?;
                Some((group, index))
            })
            .collect();
        let (line_op, record_op, new_state) = match action {
            None => (LineOp::Next, RecordOp::NoRecord, None),
            Some(action) => parse_action(action)
                .ok_or_else(|| self.error(n, K::BadAction(format!("->{action}"))))?,
        };
        if let Some(state) = &new_state {
            if line_op == LineOp::Continue {
                return Err(self.error(n, K::ContinueWithState(state.clone())));
            }
            if line_op != LineOp::Error
                && !state.starts_with(|c: char| c.is_alphanumeric() || c == '_')
            {
                return Err(self.error(n, K::StateNotAlphanumeric(state.clone())));
            }
        }
        Ok(RawRule {
            regex,
            line: n,
            line_op,
            record_op,
            new_state,
            assigns,
        })
    }

    /// Resolves state names to indexes and checks the machine as Python does.
    fn link(
        &self,
        values: Vec<ValueDef>,
        names: Vec<String>,
        raw: Vec<(usize, Vec<RawRule>)>,
    ) -> Result<Template, TemplateError> {
        let Some(start) = names.iter().position(|n| n == "Start") else {
            return Err(self.error(0, K::NoStart));
        };
        for (name, (line, rules)) in names.iter().zip(&raw) {
            if (name == "End" || name == "EOF") && !rules.is_empty() {
                return Err(self.error(*line, K::NonEmptyReserved(name.clone())));
            }
        }
        let has_eof_state = names.iter().any(|n| n == "EOF");
        let mut states = Vec::with_capacity(raw.len());
        for (from, (_, rules)) in names.iter().zip(raw) {
            let mut linked = Vec::with_capacity(rules.len());
            for r in rules {
                let (target, message) = match (&r.new_state, r.line_op) {
                    (None, _) => (Target::Stay, None),
                    (Some(msg), LineOp::Error) => {
                        let m = msg.strip_prefix('"').and_then(|m| m.strip_suffix('"'));
                        (Target::Stay, Some(m.unwrap_or(msg).to_string()))
                    }
                    (Some(s), _) if s == "End" => (Target::End, None),
                    (Some(s), _) if s == "EOF" => (Target::Eof, None),
                    (Some(s), _) => match names.iter().position(|n| n == s) {
                        Some(i) => (Target::State(i), None),
                        None => {
                            return Err(self.error(
                                r.line,
                                K::UndefinedState {
                                    target: s.clone(),
                                    from: from.clone(),
                                },
                            ))
                        }
                    },
                };
                linked.push(Rule {
                    regex: r.regex,
                    line: r.line,
                    line_op: r.line_op,
                    record_op: r.record_op,
                    target,
                    message,
                    assigns: r.assigns,
                });
            }
            states.push(State { rules: linked });
        }
        Ok(Template {
            name: self.name.to_string(),
            values,
            states,
            start,
            has_eof_state,
        })
    }
}

/// A rule before its target state is resolved.
struct RawRule {
    regex: PyRegex,
    line: usize,
    line_op: LineOp,
    record_op: RecordOp,
    new_state: Option<String>,
    assigns: Vec<(usize, usize)>,
}

/// Splits `regex -> action` at the last whitespace followed by `->` (Python's greedy
/// `(?P<match>.*)(\s->(?P<action>.*))`); the action is what follows `->`.
fn split_action(line: &str) -> (&str, Option<&str>) {
    let mut best = None;
    for (i, _) in line.match_indices("->") {
        let before = &line[..i];
        if let Some(ws) = before.chars().next_back().filter(|c| c.is_whitespace()) {
            best = Some((&before[..before.len() - ws.len_utf8()], &line[i + 2..]));
        }
    }
    match best {
        Some((pattern, action)) => (pattern, Some(action)),
        None => (line, None),
    }
}

/// The three action forms Python textfsm tries in turn, with the same patterns.
fn action_patterns() -> &'static [regex::Regex; 3] {
    static PATTERNS: OnceLock<[regex::Regex; 3]> = OnceLock::new();
    PATTERNS.get_or_init(|| {
        let line_op = "(?P<ln_op>Continue|Next|Error)";
        let record_op = "(?P<rec_op>Clear|Clearall|Record|NoRecord)";
        let new_state = r#"(?P<new_state>\w+|".*")"#;
        let compile = |p: String| regex::Regex::new(&p).expect("static action grammar");
        [
            compile(format!(
                r"^\s+({line_op}(\.{record_op})?)(\s+{new_state})?$"
            )),
            compile(format!(r"^\s+{record_op}(\s+{new_state})?$")),
            compile(format!(r"^(\s+{new_state})?$")),
        ]
    })
}

type Action = (LineOp, RecordOp, Option<String>);

fn parse_action(action: &str) -> Option<Action> {
    let caps = action_patterns().iter().find_map(|p| p.captures(action))?;
    let line_op = match caps.name("ln_op").map(|m| m.as_str()) {
        Some("Continue") => LineOp::Continue,
        Some("Error") => LineOp::Error,
        _ => LineOp::Next,
    };
    let record_op = match caps.name("rec_op").map(|m| m.as_str()) {
        Some("Record") => RecordOp::Record,
        Some("Clear") => RecordOp::Clear,
        Some("Clearall") => RecordOp::Clearall,
        _ => RecordOp::NoRecord,
    };
    let new_state = caps
        .name("new_state")
        .map(|m| m.as_str().to_string())
        .filter(|s| !s.is_empty());
    Some((line_op, record_op, new_state))
}

/// Python's `string.Template(pattern).substitute(values)`: `$$` is `$`, `$NAME` and
/// `${NAME}` are the value's regex; `None` for an unknown name or a lone `$`.
fn substitute(pattern: &str, values: &HashMap<&str, String>) -> Option<String> {
    let is_start = |c: char| c.is_ascii_alphabetic() || c == '_';
    let is_part = |c: char| c.is_ascii_alphanumeric() || c == '_';
    let mut out = String::with_capacity(pattern.len() * 2);
    let mut rest = pattern;
    while let Some(p) = rest.find('$') {
        out.push_str(&rest[..p]);
        let after = &rest[p + 1..];
        if let Some(r) = after.strip_prefix('$') {
            out.push('$');
            rest = r;
        } else if let Some(r) = after.strip_prefix('{') {
            let end = r.find('}')?;
            let name = &r[..end];
            if !name.starts_with(is_start) || !name.chars().all(is_part) {
                return None;
            }
            out.push_str(values.get(name)?);
            rest = &r[end + 1..];
        } else if after.starts_with(is_start) {
            let end = after.find(|c| !is_part(c)).unwrap_or(after.len());
            out.push_str(values.get(&after[..end])?);
            rest = &after[end..];
        } else {
            return None;
        }
    }
    out.push_str(rest);
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn compile_err(text: &str) -> TemplateError {
        Template::compile("t.textfsm", text).expect_err("should not compile")
    }

    #[test]
    fn actions_follow_python_grammar() {
        assert_eq!(split_action("^a -> Next"), ("^a", Some(" Next")));
        assert_eq!(split_action("^a->b -> Record"), ("^a->b", Some(" Record")));
        assert_eq!(split_action("^a  -> Next"), ("^a ", Some(" Next")));
        assert_eq!(split_action("^a->Next"), ("^a->Next", None));
        let a = |s: &str| parse_action(s);
        assert_eq!(
            a(" Next.Record"),
            Some((LineOp::Next, RecordOp::Record, None))
        );
        assert_eq!(
            a(" Clearall"),
            Some((LineOp::Next, RecordOp::Clearall, None))
        );
        assert_eq!(
            a(" Record Foo"),
            Some((LineOp::Next, RecordOp::Record, Some("Foo".into())))
        );
        assert_eq!(
            a(r#" Error "bad thing""#),
            Some((
                LineOp::Error,
                RecordOp::NoRecord,
                Some("\"bad thing\"".into())
            ))
        );
        assert_eq!(
            a(" NextState"),
            Some((LineOp::Next, RecordOp::NoRecord, Some("NextState".into())))
        );
        assert_eq!(a(" Next.Bogus"), None);
        assert_eq!(a("Record"), None);
    }

    #[test]
    fn substitution_is_python_string_template() {
        let mut v = HashMap::new();
        v.insert("A", "(?P<A>x)".to_string());
        v.insert("A_1", "(?P<A_1>y)".to_string());
        assert_eq!(substitute("^${A}$$", &v).as_deref(), Some("^(?P<A>x)$"));
        assert_eq!(
            substitute("^$A_1 $A", &v).as_deref(),
            Some("^(?P<A_1>y) (?P<A>x)")
        );
        assert_eq!(substitute("^${B}", &v), None);
        assert_eq!(substitute("^a$", &v), None);
        assert_eq!(substitute("^a$ b", &v), None);
    }

    #[test]
    fn errors_name_file_and_line() {
        let e = compile_err("Value A (x)\nValue Filldwn B (y)\n\nStart\n  ^${A} -> Record\n");
        assert_eq!(e.line, 2);
        assert_eq!(e.kind, K::UnknownOption("Filldwn".into()));
        assert!(
            e.to_string()
                .starts_with("t.textfsm:2: unknown Value option"),
            "{e}"
        );

        let e = compile_err("Value A (x)\n\nStart\n  ^${A} -> Record\n  ^b -> Next.Recrd\n");
        assert_eq!((e.line, e.kind), (5, K::BadAction("-> Next.Recrd".into())));

        let e = compile_err("Value A (x)\n\nStart\n  ^${A} -> Record\n  ^(unclosed -> Next\n");
        assert_eq!(e.line, 5);
        assert!(matches!(e.kind, K::Regex { .. }), "{e}");

        let e = compile_err("Value A ([)\n\nStart\n  ^${A}\n");
        assert_eq!(e.line, 1);
        assert!(matches!(e.kind, K::Regex { .. }), "{e}");

        let e = compile_err("Value A (x)\n\nStart\n  ^${A} -> Other\n");
        assert_eq!(e.line, 4);
        assert!(matches!(e.kind, K::UndefinedState { .. }), "{e}");

        let e = compile_err("Value A (x)\n\nStart\n   ^${A}\n");
        assert_eq!((e.line, e.kind), (4, K::RuleIndent));

        let e = compile_err("Value A (x)\n\nStart\n  ^${A} -> Continue Other\n\nOther\n");
        assert_eq!((e.line, e.kind), (4, K::ContinueWithState("Other".into())));

        let e = compile_err("Value A (x\n\nStart\n");
        assert_eq!(e.kind, K::ValueParens("(x".into()));
        let e = compile_err("Value A x\n\nStart\n");
        assert_eq!(e.kind, K::UnknownOption("A".into()));
        let e = compile_err("Value A (x)\nfoo\n\nStart\n");
        assert_eq!((e.line, e.kind), (2, K::ExpectedBlankLine));
        let e = compile_err("Value A (x)\n\nBegin\n  ^x\n");
        assert_eq!(e.kind, K::NoStart);
        let e = compile_err("Value A (x)\n\nStart\n  ^x\n\nEOF\n  ^y\n");
        assert_eq!((e.line, e.kind), (6, K::NonEmptyReserved("EOF".into())));
    }
}
