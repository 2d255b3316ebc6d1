//! The ntc-templates `index` file: which template(s) parse which command on which platform.
//!
//! Read as Python textfsm's `CliTable` reads it: the first non-comment line is the header
//! (`Template, Hostname, Platform, Command`); each later line not starting with `#` is a
//! row of comma-separated, trimmed cells, and rows with another number of cells (blank
//! lines among them) are skipped. Every cell but `Template` is a Python regex matched at
//! the start of the attribute (`re.match`); in `Command`, `abc[[xyz]]` first becomes
//! `abc(x(y(z)?)?)?`, so `sh[[ow]] ver[[sion]]` matches `sh ver`, `show version`, ...
//! The first matching row wins.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::error::IndexError;
use crate::pyre::PyRegex;

/// One index row.
#[derive(Debug)]
pub struct IndexEntry {
    /// 1-based line in the index file.
    pub line: usize,
    /// The template file names (`a.textfsm:b.textfsm` in the file), in order.
    pub templates: Vec<String>,
    /// (column, compiled cell) for every non-empty cell other than `Template`.
    cells: Vec<(usize, Arc<PyRegex>)>,
}

/// A parsed index file.
#[derive(Debug)]
pub struct Index {
    path: PathBuf,
    columns: Vec<String>,
    entries: Vec<IndexEntry>,
}

/// `[[xyz]]` → `(x(y(z)?)?)?`, for every `[[...]]` (shortest match, like `\[\[.+?\]\]`).
pub fn expand_completion(cell: &str) -> String {
    let mut out = String::with_capacity(cell.len() * 2);
    let mut rest = cell;
    while let Some(start) = rest.find("[[") {
        // `.+?` needs at least one character before `]]`.
        let Some(end) = rest[start + 3.min(rest.len() - start)..]
            .find("]]")
            .map(|e| e + start + 3)
            .filter(|&e| e <= rest.len() && start + 2 < e)
        else {
            break;
        };
        out.push_str(&rest[..start]);
        let word: Vec<char> = rest[start + 2..end].chars().collect();
        out.push('(');
        for (i, c) in word.iter().enumerate() {
            if i > 0 {
                out.push('(');
            }
            out.push(*c);
        }
        for _ in &word {
            out.push_str(")?");
        }
        rest = &rest[end + 2..];
    }
    out.push_str(rest);
    out
}

impl Index {
    /// Parses index `text`; `path` names the file in errors.
    pub fn parse(path: &Path, text: &str) -> Result<Self, IndexError> {
        Index::parse_rows_for(path, text, None)
    }

    /// Parses index `text` keeping only the rows whose `column` cell matches one of
    /// `values` (rows without that cell are kept); the other rows' cells are never compiled.
    /// A whole ntc-templates index costs megabytes of compiled regexes; a program that
    /// parses for a few platforms needs a fraction of it. [`Index::find`] then only finds
    /// kept rows.
    pub fn parse_for(
        path: &Path,
        text: &str,
        column: &str,
        values: &[&str],
    ) -> Result<Self, IndexError> {
        Index::parse_rows_for(path, text, Some((column, values)))
    }

    fn parse_rows_for(
        path: &Path,
        text: &str,
        keep: Option<(&str, &[&str])>,
    ) -> Result<Self, IndexError> {
        let mut lines = text.lines().enumerate().map(|(i, l)| (i + 1, l));
        let (header_line, header) = lines
            .by_ref()
            .map(|(n, l)| (n, l.split('#').next().unwrap_or("").trim()))
            .find(|(_, h)| !h.is_empty())
            .ok_or_else(|| IndexError::NoHeader {
                file: path.to_path_buf(),
            })?;
        let mut columns: Vec<String> = Vec::new();
        for c in header.split(',').map(str::trim) {
            if columns.iter().any(|x| x == c) {
                return Err(IndexError::DuplicateColumn {
                    file: path.to_path_buf(),
                    line: header_line,
                    column: c.to_string(),
                });
            }
            columns.push(c.to_string());
        }
        let template_col = columns
            .iter()
            .position(|c| c == "Template")
            .ok_or_else(|| IndexError::NoTemplateColumn {
                file: path.to_path_buf(),
                line: header_line,
            })?;
        let mut entries = Vec::new();
        // Cells repeat (`.*`, platform names): compile each distinct pattern once.
        let mut compiled_cells: HashMap<String, Arc<PyRegex>> = HashMap::new();
        for (n, line) in lines {
            if line.starts_with('#') {
                continue;
            }
            let cells: Vec<&str> = line.split(',').map(str::trim).collect();
            if cells.len() != columns.len() {
                continue;
            }
            if let Some((column, values)) = keep {
                let wanted = match columns.iter().position(|c| c == column) {
                    Some(col) if !cells[col].is_empty() => {
                        let re = PyRegex::new(cells[col]).map_err(|e| IndexError::Regex {
                            file: path.to_path_buf(),
                            line: n,
                            column: column.to_string(),
                            pattern: cells[col].to_string(),
                            reason: e.message,
                        })?;
                        values.iter().any(|v| matches!(re.is_match(v), Ok(true)))
                    }
                    _ => true,
                };
                if !wanted {
                    continue;
                }
            }
            let mut compiled = Vec::new();
            for (col, cell) in cells.iter().enumerate() {
                if col == template_col || cell.is_empty() {
                    continue;
                }
                let pattern = if columns[col] == "Command" {
                    expand_completion(cell)
                } else {
                    cell.to_string()
                };
                let re = match compiled_cells.get(&pattern) {
                    Some(re) => Arc::clone(re),
                    None => {
                        let re = PyRegex::new(&pattern).map_err(|e| IndexError::Regex {
                            file: path.to_path_buf(),
                            line: n,
                            column: columns[col].clone(),
                            pattern: pattern.clone(),
                            reason: e.message,
                        })?;
                        let re = Arc::new(re);
                        compiled_cells.insert(pattern, Arc::clone(&re));
                        re
                    }
                };
                compiled.push((col, re));
            }
            entries.push(IndexEntry {
                line: n,
                templates: cells[template_col].split(':').map(String::from).collect(),
                cells: compiled,
            });
        }
        Ok(Index {
            path: path.to_path_buf(),
            columns,
            entries,
        })
    }

    /// The index file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The rows, in file order.
    pub fn entries(&self) -> &[IndexEntry] {
        &self.entries
    }

    /// The first row whose every given attribute matches its column (attributes naming no
    /// column, and empty cells, match anything).
    pub fn find(&self, attributes: &[(&str, &str)]) -> Option<&IndexEntry> {
        let wanted: Vec<(usize, &str)> = attributes
            .iter()
            .filter_map(|(k, v)| Some((self.columns.iter().position(|c| c == k)?, *v)))
            .collect();
        self.entries.iter().find(|e| {
            wanted.iter().all(|(col, value)| {
                e.cells
                    .iter()
                    .find(|(c, _)| c == col)
                    .is_none_or(|(_, re)| matches!(re.is_match(value), Ok(true)))
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn completion_expands_like_clitable() {
        assert_eq!(
            expand_completion("sh[[ow]] ver[[sion]]"),
            "sh(o(w)?)? ver(s(i(o(n)?)?)?)?"
        );
        assert_eq!(expand_completion("show"), "show");
        assert_eq!(expand_completion("a[[]]b"), "a[[]]b");
        assert_eq!(expand_completion("a[[x]]]"), "a(x)?]");
    }

    const INDEX: &str = "# comment\n\nTemplate, Hostname, Platform, Command\n\n\
        a_show_ip_int_brief.textfsm, .*, cisco_ios, sh[[ow]] ip int[[erface]] br[[ief]]\n\
        a_show_ip_int.textfsm, .*, cisco_ios, sh[[ow]] ip int[[erface]]\n\
        # a_skipped.textfsm, .*, cisco_ios, show\n\
        b_one.textfsm:b_two.textfsm, .*, linux, ps\n\
        broken line without enough cells\n";

    #[test]
    fn rows_for_other_platforms_are_left_out() {
        let idx = Index::parse_for(Path::new("index"), INDEX, "Platform", &["linux"]).unwrap();
        assert_eq!(idx.entries().len(), 1);
        let e = idx
            .find(&[("Platform", "linux"), ("Command", "ps")])
            .unwrap();
        assert_eq!(e.templates, ["b_one.textfsm", "b_two.textfsm"]);
        assert!(idx
            .find(&[("Platform", "cisco_ios"), ("Command", "sh ip int br")])
            .is_none());
    }

    #[test]
    fn first_matching_row_wins() {
        let idx = Index::parse(Path::new("index"), INDEX).unwrap();
        let find = |p: &str, c: &str| {
            idx.find(&[("Platform", p), ("Command", c)])
                .map(|e| (e.line, e.templates.join(":")))
        };
        assert_eq!(
            find("cisco_ios", "sh ip int br"),
            Some((5, "a_show_ip_int_brief.textfsm".into()))
        );
        assert_eq!(
            find("cisco_ios", "show ip interface"),
            Some((6, "a_show_ip_int.textfsm".into()))
        );
        assert_eq!(
            find("cisco_ios", "sho ip int"),
            Some((6, "a_show_ip_int.textfsm".into()))
        );
        assert_eq!(find("cisco_ios", "show version"), None);
        assert_eq!(find("arista_eos", "show ip int"), None);
        assert_eq!(
            find("linux", "ps aux"),
            Some((8, "b_one.textfsm:b_two.textfsm".into()))
        );
    }

    #[test]
    fn bad_regex_names_file_line_and_column() {
        let e = Index::parse(
            Path::new("/t/index"),
            "Template, Command\nx.textfsm, sh(ow\n",
        )
        .unwrap_err();
        assert!(
            e.to_string()
                .starts_with("/t/index:2: column Command: invalid regex"),
            "{e}"
        );
        let e = Index::parse(Path::new("/t/index"), "Hostname, Command\n").unwrap_err();
        assert!(
            matches!(e, IndexError::NoTemplateColumn { line: 1, .. }),
            "{e}"
        );
    }
}
