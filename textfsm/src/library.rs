//! A templates directory (ntc-templates' `templates/`): its index and its templates,
//! compiled on first use and shared between threads.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use crate::error::LibraryError;
use crate::index::{Index, IndexEntry};
use crate::record::{Record, Table, Value};
use crate::template::Template;

/// The result of parsing one command's output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Parsed {
    /// The template file(s) used, as named in the index.
    pub templates: Vec<String>,
    /// The records, with `parse_output`'s lower-cased keys.
    pub records: Vec<Record>,
}

/// A templates directory with an `index` file. Cheap to share (`Arc`) between threads:
/// templates are compiled once, when first needed.
#[derive(Debug)]
pub struct TemplateLibrary {
    dir: PathBuf,
    index: Index,
    cache: Mutex<HashMap<String, Arc<Template>>>,
}

impl TemplateLibrary {
    /// Opens `dir` and reads `dir/index`. Templates are read when first used; see
    /// [`TemplateLibrary::check_all`] to compile them all up front.
    pub fn open(dir: impl AsRef<Path>) -> Result<Self, LibraryError> {
        Self::open_rows(dir.as_ref(), None)
    }

    /// Opens `dir` with only the index rows of these platforms (see [`Index::parse_for`]):
    /// far less memory than the whole index when a program parses for a few platforms.
    pub fn open_for(dir: impl AsRef<Path>, platforms: &[&str]) -> Result<Self, LibraryError> {
        Self::open_rows(dir.as_ref(), Some(platforms))
    }

    fn open_rows(dir: &Path, platforms: Option<&[&str]>) -> Result<Self, LibraryError> {
        let dir = dir.to_path_buf();
        let path = dir.join("index");
        let text = std::fs::read_to_string(&path).map_err(|source| LibraryError::Io {
            path: path.clone(),
            source,
        })?;
        let index = match platforms {
            None => Index::parse(&path, &text)?,
            Some(p) => Index::parse_for(&path, &text, "Platform", p)?,
        };
        Ok(TemplateLibrary {
            dir,
            index,
            cache: Mutex::new(HashMap::new()),
        })
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The index.
    pub fn index(&self) -> &Index {
        &self.index
    }

    /// The index row for `platform` (ntc-templates' name, Netmiko's `device_type`) and
    /// `command` (abbreviations allowed where the index has `[[...]]`).
    pub fn find(&self, platform: &str, command: &str) -> Option<&IndexEntry> {
        self.index
            .find(&[("Platform", platform), ("Command", command)])
    }

    /// The compiled template `name` (a file in the directory).
    pub fn template(&self, name: &str) -> Result<Arc<Template>, LibraryError> {
        if let Some(t) = self.lock().get(name) {
            return Ok(Arc::clone(t));
        }
        let path = self.dir.join(name);
        let text = std::fs::read_to_string(&path).map_err(|source| LibraryError::Io {
            path: path.clone(),
            source,
        })?;
        let template = Arc::new(Template::compile(&path.display().to_string(), &text)?);
        self.lock().insert(name.to_string(), Arc::clone(&template));
        Ok(template)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<Template>>> {
        // The map is only ever inserted into: a panic elsewhere cannot leave it half-done.
        self.cache.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Parses `text`, the output of `command` on `platform`, with the template(s) the index
    /// names. With several templates (`a:b` in the index) their tables are merged as
    /// Python's `CliTable` does: rows joined on the first template's `Key` values (or by
    /// position without keys), new columns appended.
    pub fn parse(&self, platform: &str, command: &str, text: &str) -> Result<Parsed, LibraryError> {
        let entry = self
            .find(platform, command)
            .ok_or_else(|| LibraryError::NoTemplate {
                index: self.index.path().to_path_buf(),
                platform: platform.to_string(),
                command: command.to_string(),
            })?;
        let mut keys: Vec<String> = Vec::new();
        let mut merged: Option<Table> = None;
        for name in &entry.templates {
            let template = self.template(name)?;
            if keys.is_empty() {
                keys = template.keys().into_iter().map(String::from).collect();
            }
            let table = template.parse_text(text)?;
            merged = Some(match merged {
                None => table,
                Some(base) => extend(base, table, &keys).map_err(|key| LibraryError::Merge {
                    templates: entry.templates.join(":"),
                    key,
                })?,
            });
        }
        Ok(Parsed {
            templates: entry.templates.clone(),
            records: merged.map(Table::into_records).unwrap_or_default(),
        })
    }

    /// Compiles every template the index names; returns the errors (empty when all compile).
    pub fn check_all(&self) -> Vec<LibraryError> {
        let mut names: Vec<&str> = self
            .index
            .entries()
            .iter()
            .flat_map(|e| e.templates.iter().map(String::as_str))
            .collect();
        names.sort_unstable();
        names.dedup();
        names
            .into_iter()
            .filter_map(|n| self.template(n).err())
            .collect()
    }
}

/// `TextTable.extend`: adds `other`'s new columns to `base`, joining rows on `keys` (the
/// first row of `other` whose keys are equal), or row by row when there are no keys.
/// `Err(key)` when a key is not a column of `base`.
fn extend(mut base: Table, other: Table, keys: &[String]) -> Result<Table, String> {
    let key_cols: Vec<(usize, usize)> = keys
        .iter()
        .map(|k| {
            let b = base
                .header
                .iter()
                .position(|h| h == k)
                .ok_or_else(|| k.clone())?;
            Ok((b, other.header.iter().position(|h| h == k)))
        })
        .collect::<Result<Vec<_>, String>>()?
        .into_iter()
        .map(|(b, o)| (b, o.unwrap_or(usize::MAX)))
        .collect();
    let new_cols: Vec<usize> = (0..other.header.len())
        .filter(|&i| !base.header.contains(&other.header[i]))
        .collect();
    if new_cols.is_empty() {
        return Ok(base);
    }
    for &i in &new_cols {
        base.header.push(other.header[i].clone());
    }
    let empty = Value::String(String::new());
    for (r, row) in base.rows.iter_mut().enumerate() {
        let source = if key_cols.is_empty() {
            other.rows.get(r)
        } else {
            other.rows.iter().find(|o| {
                key_cols
                    .iter()
                    .all(|&(b, oc)| o.get(oc).is_some_and(|v| *v == row[b]))
            })
        };
        for &i in &new_cols {
            row.push(source.map_or_else(|| empty.clone(), |o| o[i].clone()));
        }
    }
    Ok(base)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(header: &[&str], rows: &[&[&str]]) -> Table {
        Table {
            header: header.iter().map(|s| s.to_string()).collect(),
            rows: rows
                .iter()
                .map(|r| r.iter().map(|s| Value::String(s.to_string())).collect())
                .collect(),
        }
    }

    #[test]
    fn extend_joins_on_keys_or_position() {
        let a = table(&["MOD", "X"], &[&["1", "a"], &["2", "b"], &["3", "c"]]);
        let b = table(&["MOD", "Y"], &[&["2", "B"], &["1", "A"]]);
        let keyed = extend(a.clone(), b.clone(), &["MOD".into()]).unwrap();
        assert_eq!(
            keyed,
            table(
                &["MOD", "X", "Y"],
                &[&["1", "a", "A"], &["2", "b", "B"], &["3", "c", ""]]
            )
        );
        let by_row = extend(a.clone(), b, &[]).unwrap();
        assert_eq!(
            by_row,
            table(
                &["MOD", "X", "Y"],
                &[&["1", "a", "B"], &["2", "b", "A"], &["3", "c", ""]]
            )
        );
        let c = table(&["Z"], &[&["z"]]);
        assert_eq!(extend(a, c, &["NOPE".into()]), Err("NOPE".into()));
    }
}
