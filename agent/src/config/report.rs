//! Reporting every configuration error at once.
//!
//! serde stops at the first error. To report all of them, the file is parsed once into a
//! spanned TOML table; deserialization is then repeated, each time removing the key the
//! previous error was about, until it succeeds or nothing more can be removed. The semantic
//! checks (absolute paths, no inline keys, ...) then run on what is left, so type and
//! semantic errors are reported together. Each error is located (line, column) from its span
//! and named by its key path (`files[1].start_at`). A missing required key ends the search
//! (there is nothing to take out), so the semantic checks wait until it is added.

use std::fmt;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use toml::de::{DeTable, DeValue};
use toml::Spanned;

use super::Config;

/// One problem in a configuration file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// The file.
    pub path: PathBuf,
    /// 1-based line, when known.
    pub line: Option<usize>,
    /// 1-based column, when known.
    pub column: Option<usize>,
    /// Key path (`ship.url`, `files[0].paths[1]`), when known.
    pub key: Option<String>,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.path.display())?;
        if let Some(l) = self.line {
            write!(f, ":{l}")?;
            if let Some(c) = self.column {
                write!(f, ":{c}")?;
            }
        }
        if let Some(k) = &self.key {
            write!(f, ": {k}")?;
        }
        write!(f, ": {}", self.message)
    }
}

/// Every problem found in a configuration file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl ConfigErrors {
    /// A single error without a position.
    pub fn single(path: &Path, message: String) -> Self {
        ConfigErrors(vec![ConfigError {
            path: path.to_owned(),
            line: None,
            column: None,
            key: None,
            message,
        }])
    }
}

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

/// Line and column (1-based) of a byte offset.
fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let col = before
        .rfind('\n')
        .map_or(before.len(), |p| before.len() - p - 1)
        + 1;
    (line, col)
}

/// A located key: its path, and the span of the key (or value) in the text.
struct Found {
    path: String,
    span: std::ops::Range<usize>,
}

/// The deepest key whose key or value span contains `at`. Table values span only their
/// `[header]`, so every key is searched, not only those of containing tables.
fn locate(table: &DeTable<'_>, at: &std::ops::Range<usize>, prefix: &str) -> Option<Found> {
    let inside =
        |s: &std::ops::Range<usize>| s.start <= at.start && at.end <= s.end && s.start < s.end;
    for (k, v) in table.iter() {
        let path = if prefix.is_empty() {
            k.get_ref().to_string()
        } else {
            format!("{prefix}.{}", k.get_ref())
        };
        if let Some(deeper) = locate_value(v.get_ref(), at, &path) {
            return Some(deeper);
        }
        if inside(&k.span()) || inside(&v.span()) {
            return Some(Found {
                path,
                span: k.span(),
            });
        }
    }
    None
}

fn locate_value(v: &DeValue<'_>, at: &std::ops::Range<usize>, path: &str) -> Option<Found> {
    match v {
        DeValue::Table(t) => locate(t, at, path),
        DeValue::Array(items) => items.iter().enumerate().find_map(|(i, item)| {
            let p = format!("{path}[{i}]");
            let s = item.span();
            // Nothing deeper: the element itself (a `[[files]]` table lacking a key is
            // named `files[1]`, so its missing key becomes `files[1].paths`).
            locate_value(item.get_ref(), at, &p).or_else(|| {
                (s.start <= at.start && at.end <= s.end).then_some(Found { path: p, span: s })
            })
        }),
        _ => None,
    }
}

/// Removes the value at `path` (as produced by [`locate`]); false if it is not there.
fn remove(table: &mut DeTable<'_>, path: &str) -> bool {
    let (head, rest) = match path.find(['.', '[']) {
        Some(i) => (&path[..i], &path[i..]),
        None => (path, ""),
    };
    if rest.is_empty() {
        let key = table.keys().find(|k| k.get_ref() == head).cloned();
        return key.is_some_and(|k| table.remove(&k).is_some());
    }
    let Some(value) = table
        .iter_mut()
        .find(|(k, _)| k.get_ref() == head)
        .map(|(_, v)| v)
    else {
        return false;
    };
    remove_in(value.get_mut(), rest)
}

fn remove_in(value: &mut DeValue<'_>, rest: &str) -> bool {
    if let Some(after_dot) = rest.strip_prefix('.') {
        return match value {
            DeValue::Table(t) => remove(t, after_dot),
            _ => false,
        };
    }
    let Some(inner) = rest.strip_prefix('[') else {
        return false;
    };
    let Some(close) = inner.find(']') else {
        return false;
    };
    let Ok(index) = inner[..close].parse::<usize>() else {
        return false;
    };
    let rest = &inner[close + 1..];
    let DeValue::Array(items) = value else {
        return false;
    };
    if index >= items.len() {
        return false;
    }
    if rest.is_empty() {
        // DeArray cannot remove an element: the caller removes the whole array instead.
        return false;
    }
    remove_in(items.as_mut()[index].get_mut(), rest)
}

/// serde's "unknown field `x`, expected one of `a`, `b`" → a message with a hint.
fn did_you_mean(message: &str) -> String {
    let Some(rest) = message.strip_prefix("unknown field `") else {
        return message.to_owned();
    };
    let Some((unknown, expected)) = rest.split_once('`') else {
        return message.to_owned();
    };
    let candidates: Vec<&str> = expected.split('`').skip(1).step_by(2).collect();
    let best = candidates
        .iter()
        .map(|c| (strsim::jaro_winkler(unknown, c), *c))
        .filter(|(score, _)| *score >= 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0));
    match best {
        Some((_, c)) => format!("unknown key `{unknown}`; did you mean `{c}`?"),
        None if candidates.is_empty() => format!("unknown key `{unknown}`"),
        None => format!(
            "unknown key `{unknown}`; expected one of {}",
            candidates.join(", ")
        ),
    }
}

/// Parses `text`, collecting every error.
pub(super) fn parse_all(text: &str, path: &Path) -> Result<Config, ConfigErrors> {
    let error_at = |span: Option<std::ops::Range<usize>>, key: Option<String>, message: String| {
        let (line, column) = match span {
            Some(s) => {
                let (l, c) = line_col(text, s.start);
                (Some(l), Some(c))
            }
            None => (None, None),
        };
        ConfigError {
            path: path.to_owned(),
            line,
            column,
            key,
            message,
        }
    };
    let mut doc: Spanned<DeTable<'_>> = match DeTable::parse(text) {
        Ok(d) => d,
        Err(e) => {
            return Err(ConfigErrors(vec![error_at(
                e.span(),
                None,
                e.message().trim().to_owned(),
            )]))
        }
    };
    let mut errors: Vec<ConfigError> = Vec::new();
    let mut reported: Vec<String> = Vec::new();
    // Key paths taken out of the document because of an error.
    let mut removed: Vec<String> = Vec::new();
    for _ in 0..200 {
        match Config::deserialize(toml::de::Deserializer::from(doc.clone())) {
            Ok(config) => {
                // The semantic checks run on what is left once the values with type errors
                // are taken out (their defaults stand in), so both kinds are reported in one
                // run; a check that may be about a value taken out is left for the next.
                for (key, message) in super::check(&config) {
                    if removed.iter().any(|r| may_concern(r, &key, &message)) {
                        continue;
                    }
                    let span = find_path(doc.get_ref(), &key);
                    errors.push(error_at(span, Some(key), message));
                }
                if errors.is_empty() {
                    return Ok(config);
                }
                break;
            }
            Err(e) => {
                let message = did_you_mean(e.message().trim());
                let span = e.span();
                let found = span.as_ref().and_then(|s| locate(doc.get_ref(), s, ""));
                if message.starts_with("missing field `") {
                    // About a table as a whole: say which key it lacks; nothing to remove.
                    // toml gives a missing top-level key an empty span: that is the document itself.
                    let table = found
                        .as_ref()
                        .filter(|_| span.as_ref().is_some_and(|s| !s.is_empty()))
                        .map(|f| f.path.as_str());
                    let key = missing_key_path(&message, table);
                    errors.push(error_at(span, Some(key), message));
                    break;
                }
                match found {
                    Some(f) => {
                        let already = reported.contains(&f.path);
                        if !already {
                            errors.push(error_at(
                                span.clone().or(Some(f.span.clone())),
                                Some(f.path.clone()),
                                message,
                            ));
                            reported.push(f.path.clone());
                        }
                        // A bad array element takes its whole array out of the next round.
                        let whole_array = f
                            .path
                            .strip_suffix(']')
                            .and_then(|p| p.rfind('[').map(|i| &f.path[..i]));
                        if remove(doc.get_mut(), &f.path) {
                            removed.push(f.path.clone());
                        } else if let Some(p) = whole_array.filter(|p| remove(doc.get_mut(), p)) {
                            removed.push(p.to_owned());
                        } else {
                            break;
                        }
                    }
                    None => {
                        errors.push(error_at(span, None, message));
                        break;
                    }
                }
            }
        }
    }
    errors.sort_by_key(|e| (e.line.unwrap_or(usize::MAX), e.column.unwrap_or(0)));
    Err(ConfigErrors(errors))
}

/// Whether a semantic problem (`key`: `message`) may stem from the value at `removed`
/// having been taken out (replaced by its default): the problem is about that value or
/// something inside it, or names it (`files[0].paths` names `paths`; a table-level problem
/// such as `ship: client_cert and client_key go together` names the keys it is about).
fn may_concern(removed: &str, key: &str, message: &str) -> bool {
    let under = |inner: &str, outer: &str| {
        inner == outer
            || inner
                .strip_prefix(outer)
                .is_some_and(|rest| rest.starts_with(['.', '[']))
    };
    if under(key, removed) {
        return true;
    }
    let leaf = removed
        .rsplit('.')
        .next()
        .and_then(|l| l.split('[').next())
        .unwrap_or(removed);
    !leaf.is_empty() && message.contains(leaf)
}

/// For "missing field `url`" errors: the key path of the missing key.
fn missing_key_path(message: &str, table: Option<&str>) -> String {
    let field = message
        .strip_prefix("missing field `")
        .and_then(|r| r.split('`').next())
        .unwrap_or_default();
    match table {
        Some(t) => format!("{t}.{field}"),
        None => field.to_owned(),
    }
}

/// The span of the value at a dotted key path (`ship.url`, `files[0].paths[1]`).
fn find_path(table: &DeTable<'_>, path: &str) -> Option<std::ops::Range<usize>> {
    let mut parts = path.split('.');
    let first = parts.next()?;
    let (name, indexes) = split_indexes(first);
    let (_, mut value) = table.iter().find(|(k, _)| k.get_ref() == name)?;
    for i in indexes {
        value = match value.get_ref() {
            DeValue::Array(items) => items.get(i)?,
            _ => return Some(value.span()),
        };
    }
    for part in parts {
        let (name, indexes) = split_indexes(part);
        let DeValue::Table(t) = value.get_ref() else {
            return Some(value.span());
        };
        value = t
            .iter()
            .find(|(k, _)| k.get_ref() == name)
            .map(|(_, v)| v)?;
        for i in indexes {
            value = match value.get_ref() {
                DeValue::Array(items) => items.get(i)?,
                _ => return Some(value.span()),
            };
        }
    }
    Some(value.span())
}

fn split_indexes(part: &str) -> (&str, Vec<usize>) {
    match part.find('[') {
        None => (part, Vec::new()),
        Some(i) => (
            &part[..i],
            part[i..]
                .split(['[', ']'])
                .filter(|s| !s.is_empty())
                .filter_map(|s| s.parse().ok())
                .collect(),
        ),
    }
}
