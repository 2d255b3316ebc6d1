//! Running a template over text: Python textfsm's `ParseText`, option by option.
//!
//! Each value keeps the three pieces of state Python's `TextFSMValue` and its options keep
//! (the current value, Filldown's saved value, List's accumulated items), and every
//! operation touches them in the same order, so corner cases (a `Required` option before or
//! after `List`, an all-empty record that is not recorded and therefore not cleared, a
//! group that did not take part in the match) come out as they do in Python.

use crate::error::ParseError;
use crate::pyre::PyRegex;
use crate::record::{Table, Value};
use crate::template::{LineOp, RecordOp, Target, Template, ValueOption};

/// A value's current content, as Python holds it: `None`, a string, or (only while a record
/// is being saved, and after a record that was not kept) a list.
#[derive(Debug, Clone, PartialEq)]
enum Cur {
    None,
    Str(String),
    List(Vec<String>),
}

impl Cur {
    /// Python truthiness.
    fn is_truthy(&self) -> bool {
        match self {
            Cur::None => false,
            Cur::Str(s) => !s.is_empty(),
            Cur::List(l) => !l.is_empty(),
        }
    }
}

struct Slot {
    cur: Cur,
    /// Filldown's saved value.
    saved: Cur,
    /// List's items.
    items: Vec<String>,
}

/// One run of a template over one text.
struct Run<'t> {
    template: &'t Template,
    slots: Vec<Slot>,
    rows: Vec<Vec<Value>>,
}

impl Template {
    /// Parses `text` into a table: one row per record, one column per `Value`.
    pub fn parse_text(&self, text: &str) -> Result<Table, ParseError> {
        let mut run = Run {
            template: self,
            slots: self
                .values
                .iter()
                .map(|_| Slot {
                    cur: Cur::None,
                    saved: Cur::None,
                    items: Vec::new(),
                })
                .collect(),
            rows: Vec::new(),
        };
        let mut state = self.start;
        let mut ended = None;
        for (n, line) in split_lines(text).enumerate() {
            if let Some(t) = run.check_line(&mut state, line, n + 1)? {
                ended = Some(t);
                break;
            }
        }
        // The implicit record at the end of input, unless the machine went to `End` or the
        // template declares an `EOF` state.
        if ended != Some(Target::End) && !self.has_eof_state {
            run.append_record();
        }
        Ok(Table {
            header: self.values.iter().map(|v| v.name.clone()).collect(),
            rows: run.rows,
        })
    }
}

impl Run<'_> {
    /// Runs the current state's rules on one line; `Some(End|Eof)` stops the machine.
    fn check_line(
        &mut self,
        state: &mut usize,
        line: &str,
        number: usize,
    ) -> Result<Option<Target>, ParseError> {
        let template = self.template;
        for rule in &template.states[*state].rules {
            // Most rules do not match most lines: a match test allocates nothing, captures
            // do, so they are only taken from the rules that match.
            let caps = match rule.regex.is_match(line).and_then(|m| {
                if m {
                    rule.regex.captures(line)
                } else {
                    Ok(None)
                }
            }) {
                Ok(Some(c)) => c,
                Ok(None) => continue,
                Err(e) => {
                    return Err(ParseError {
                        template: template.name.clone(),
                        rule_line: rule.line,
                        message: Some(format!("regex failed: {e}")),
                        input_line: number,
                        input: line.to_string(),
                    })
                }
            };
            for &(group, value) in &rule.assigns {
                self.assign(value, caps.get(group).map(|m| m.as_str()));
            }
            match rule.record_op {
                RecordOp::Record => self.append_record(),
                RecordOp::Clear => self.clear(),
                RecordOp::Clearall => self.clear_all(),
                RecordOp::NoRecord => {}
            }
            match rule.line_op {
                LineOp::Error => {
                    return Err(ParseError {
                        template: template.name.clone(),
                        rule_line: rule.line,
                        message: rule.message.clone(),
                        input_line: number,
                        input: line.to_string(),
                    })
                }
                LineOp::Continue => continue,
                LineOp::Next => {}
            }
            return Ok(match rule.target {
                Target::Stay => None,
                Target::State(s) => {
                    *state = s;
                    None
                }
                t @ (Target::End | Target::Eof) => Some(t),
            });
        }
        Ok(None)
    }

    /// `TextFSMValue.AssignVar`: set, then each option's `OnAssignVar` in order.
    fn assign(&mut self, index: usize, matched: Option<&str>) {
        let def = &self.template.values[index];
        let slot = &mut self.slots[index];
        slot.cur = matched.map_or(Cur::None, |s| Cur::Str(s.to_string()));
        for option in &def.options {
            match option {
                ValueOption::Filldown => slot.saved = slot.cur.clone(),
                ValueOption::Fillup => {
                    if let Cur::Str(s) = &slot.cur {
                        if !s.is_empty() {
                            for row in self.rows.iter_mut().rev() {
                                if row[index].is_truthy() {
                                    break;
                                }
                                row[index] = Value::String(s.clone());
                            }
                        }
                    }
                }
                ValueOption::List => {
                    let item = match (&def.list_regex, matched) {
                        (Some(re), Some(text)) => nested_groups(re, text),
                        _ => None,
                    };
                    slot.items.push(item.unwrap_or_else(|| match matched {
                        Some(s) => s.to_string(),
                        // Python appends None; its table turns it into 'None'.
                        None => "None".to_string(),
                    }));
                }
                ValueOption::Required | ValueOption::Key => {}
            }
        }
    }

    /// `_AppendRecord`: save hooks in order, skip all-empty records, then clear.
    fn append_record(&mut self) {
        if self.slots.is_empty() {
            return;
        }
        let mut row: Vec<Cur> = Vec::with_capacity(self.slots.len());
        for (def, slot) in self.template.values.iter().zip(&mut self.slots) {
            for option in &def.options {
                match option {
                    ValueOption::Required if !slot.cur.is_truthy() => {
                        self.clear();
                        return;
                    }
                    ValueOption::List => slot.cur = Cur::List(slot.items.clone()),
                    _ => {}
                }
            }
            row.push(slot.cur.clone());
        }
        let empty = |c: &Cur| match c {
            Cur::None => true,
            Cur::List(l) => l.is_empty(),
            Cur::Str(_) => false,
        };
        if row.iter().all(empty) {
            return;
        }
        self.rows.push(
            row.into_iter()
                .map(|c| match c {
                    Cur::None => Value::String(String::new()),
                    Cur::Str(s) => Value::String(s),
                    Cur::List(l) => Value::List(l),
                })
                .collect(),
        );
        self.clear();
    }

    /// `_ClearRecord`: everything but Filldown values (and Filldown lists) is emptied.
    fn clear(&mut self) {
        for (def, slot) in self.template.values.iter().zip(&mut self.slots) {
            slot.cur = Cur::None;
            if def.has(ValueOption::Filldown) {
                slot.cur = slot.saved.clone();
            } else if def.has(ValueOption::List) {
                slot.items.clear();
            }
        }
    }

    /// `_ClearAllRecord`.
    fn clear_all(&mut self) {
        for slot in &mut self.slots {
            slot.cur = Cur::None;
            slot.saved = Cur::None;
            slot.items.clear();
        }
    }
}

/// A `List` value whose regex has named groups: Python appends the dict of the groups,
/// which its table turns into the dict's `repr`, e.g. `{'name': 'Bob', 'age': '32'}`.
fn nested_groups(re: &PyRegex, text: &str) -> Option<String> {
    let caps = re.captures(text).ok()??;
    let mut parts = Vec::new();
    for (i, name) in re.capture_names().enumerate() {
        if let Some(name) = name {
            let value = caps
                .get(i)
                .map_or("None".to_string(), |m| py_repr(m.as_str()));
            parts.push(format!("{}: {value}", py_repr(name)));
        }
    }
    (!parts.is_empty()).then(|| format!("{{{}}}", parts.join(", ")))
}

/// Python's `repr` of a string.
fn py_repr(s: &str) -> String {
    let quote = if s.contains('\'') && !s.contains('"') {
        '"'
    } else {
        '\''
    };
    let mut out = String::with_capacity(s.len() + 2);
    out.push(quote);
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c == quote => {
                out.push('\\');
                out.push(c);
            }
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                out.push_str(&format!("\\x{:02x}", c as u32))
            }
            c => out.push(c),
        }
    }
    out.push(quote);
    out
}

/// Python's `str.splitlines()`: the line ends are `\n`, `\r\n`, `\r`, `\v`, `\f`, `\x1c`,
/// `\x1d`, `\x1e`, `\x85`, `\u2028` and `\u2029`; a final line end adds no empty line.
pub(crate) fn split_lines(text: &str) -> impl Iterator<Item = &str> {
    let is_break = |c: char| {
        matches!(
            c,
            '\n' | '\r'
                | '\u{b}'
                | '\u{c}'
                | '\u{1c}'
                | '\u{1d}'
                | '\u{1e}'
                | '\u{85}'
                | '\u{2028}'
                | '\u{2029}'
        )
    };
    let mut rest = text;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        match rest.find(is_break) {
            None => {
                let line = rest;
                rest = "";
                Some(line)
            }
            Some(p) => {
                let line = &rest[..p];
                let c = rest[p..].chars().next().unwrap_or('\n');
                let skip = if rest[p..].starts_with("\r\n") {
                    2
                } else {
                    c.len_utf8()
                };
                rest = &rest[p + skip..];
                Some(line)
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(template: &str, text: &str) -> Vec<Vec<Value>> {
        let t = Template::compile("t", template).unwrap_or_else(|e| panic!("{e}"));
        t.parse_text(text).unwrap_or_else(|e| panic!("{e}")).rows
    }

    fn s(v: &str) -> Value {
        Value::String(v.to_string())
    }

    fn l(v: &[&str]) -> Value {
        Value::List(v.iter().map(|s| s.to_string()).collect())
    }

    #[test]
    fn splitlines_like_python() {
        let v: Vec<&str> = split_lines("a\r\nb\rc\n\nd\u{b}e\u{2028}f\n").collect();
        assert_eq!(v, ["a", "b", "c", "", "d", "e", "f"]);
        assert_eq!(split_lines("").count(), 0);
        assert_eq!(split_lines("\n").collect::<Vec<_>>(), [""]);
    }

    #[test]
    fn filldown_required_and_implicit_eof_record() {
        let t = "Value Filldown HOST (\\S+)\nValue Required IF (\\S+)\nValue IP (\\S*)\n\nStart\n  ^host ${HOST}\n  ^if ${IF} ${IP} -> Record\n";
        let rows = parse(t, "host r1\nif a 1\nif b 2\nhost r2\nif c 3\n");
        assert_eq!(
            rows,
            [
                vec![s("r1"), s("a"), s("1")],
                vec![s("r1"), s("b"), s("2")],
                vec![s("r2"), s("c"), s("3")]
            ]
        );
        // The last `host r2` leaves only a Filldown value: Required IF drops that record.
        let rows = parse(t, "host r1\nif a 1\nhost r2\n");
        assert_eq!(rows.len(), 1);
    }

    #[test]
    fn list_fillup_continue_and_states() {
        let t = "Value NAME (\\S+)\nValue List MEMBERS (\\S+)\nValue Fillup TOTAL (\\d+)\n\nStart\n  ^group ${NAME} -> Members\n  ^total ${TOTAL}\n\nMembers\n  ^  ${MEMBERS} -> Continue\n  ^  \\S+ ${MEMBERS}\n  ^end -> Record Start\n";
        let rows = parse(
            t,
            "group g1\n  a b\n  c d\nend\ngroup g2\n  e f\nend\ntotal 7\n",
        );
        assert_eq!(
            rows,
            [
                vec![s("g1"), l(&["a", "b", "c", "d"]), s("7")],
                vec![s("g2"), l(&["e", "f"]), s("7")],
                // The implicit record at EOF: TOTAL (set after the last Record) makes it
                // non-empty, as in Python textfsm.
                vec![s(""), l(&[]), s("7")],
            ]
        );
    }

    #[test]
    fn error_action_names_template_rule_and_input_line() {
        let t = "Value A (\\S+)\n\nStart\n  ^ok ${A}\n  ^. -> Error \"unexpected line\"\n";
        let tpl = Template::compile("x.textfsm", t).unwrap();
        let e = tpl.parse_text("ok 1\nbad\n").unwrap_err();
        assert_eq!((e.rule_line, e.input_line), (5, 2));
        assert_eq!(e.message.as_deref(), Some("unexpected line"));
        assert_eq!(
            e.to_string(),
            "x.textfsm:5: unexpected line on input line 2 \"bad\""
        );
    }

    #[test]
    fn end_suppresses_and_eof_state_suppresses_the_implicit_record() {
        let base = "Value A (\\S+)\n\nStart\n  ^a ${A}\n  ^stop -> End\n";
        assert_eq!(parse(base, "a 1\nstop\na 2\n"), Vec::<Vec<Value>>::new());
        assert_eq!(parse(base, "a 1\n"), [vec![s("1")]]);
        let eof = format!("{base}\nEOF\n");
        assert_eq!(parse(&eof, "a 1\n"), Vec::<Vec<Value>>::new());
    }

    #[test]
    fn clear_clearall_and_all_empty_records() {
        let t = "Value Filldown A (\\S+)\nValue B (\\S+)\n\nStart\n  ^a ${A}\n  ^b ${B} -> Record\n  ^c -> Clear\n  ^x -> Clearall\n  ^r -> Record\n";
        // Clear keeps Filldown A; Clearall drops it; an all-empty record is not recorded.
        let rows = parse(t, "a 1\nb 2\nc\nr\nx\nr\nb 3\n");
        assert_eq!(
            rows,
            [
                vec![s("1"), s("2")],
                vec![s("1"), s("")],
                vec![s(""), s("3")]
            ]
        );
    }

    #[test]
    fn nested_groups_in_a_list_value_give_python_dict_reprs() {
        let t = "Value List P ((?P<name>\\w+)\\s+(?P<age>\\d+))\n\nStart\n  ^${P}\n";
        assert_eq!(
            parse(t, "bob 32\nann 41\n"),
            [vec![l(&[
                "{'name': 'bob', 'age': '32'}",
                "{'name': 'ann', 'age': '41'}"
            ])]]
        );
    }
}
