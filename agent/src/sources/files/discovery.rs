//! Which files a group covers: its glob patterns less its excludes, and the directories to
//! watch for new ones.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use glob::{MatchOptions, Pattern};

/// `*` never crosses a `/`; dot files match like others (log names often start with one).
const OPTS: MatchOptions = MatchOptions {
    case_sensitive: true,
    require_literal_separator: true,
    require_literal_leading_dot: false,
};

/// A group's patterns.
pub(crate) struct Patterns {
    include: Vec<(String, Pattern)>,
    exclude: Vec<Pattern>,
    /// The parent directory of each include pattern, when it has glob characters itself.
    dir_patterns: Vec<Pattern>,
    /// The parent directories without glob characters.
    literal_dirs: Vec<PathBuf>,
}

fn has_glob_chars(s: &str) -> bool {
    s.contains(['*', '?', '['])
}

impl Patterns {
    /// Compiles a group's patterns (the configuration check already refused invalid ones;
    /// any left are logged and skipped).
    pub fn new(paths: &[String], exclude: &[String]) -> Patterns {
        let compile = |p: &String| match Pattern::new(p) {
            Ok(c) => Some(c),
            Err(e) => {
                tracing::error!(pattern = %p, error = %e, "files: invalid glob pattern skipped");
                None
            }
        };
        let include: Vec<(String, Pattern)> = paths
            .iter()
            .filter_map(|p| compile(p).map(|c| (p.clone(), c)))
            .collect();
        let mut dir_patterns = Vec::new();
        let mut literal_dirs = Vec::new();
        for (raw, _) in &include {
            let Some(parent) = Path::new(raw).parent() else {
                continue;
            };
            let parent_str = parent.to_string_lossy();
            if has_glob_chars(&parent_str) {
                if let Ok(p) = Pattern::new(&parent_str) {
                    dir_patterns.push(p);
                }
            } else if !literal_dirs.iter().any(|d: &PathBuf| d == parent) {
                literal_dirs.push(parent.to_owned());
            }
        }
        Patterns {
            include,
            exclude: exclude.iter().filter_map(compile).collect(),
            dir_patterns,
            literal_dirs,
        }
    }

    /// Whether an exclude pattern matches the file name or the whole path.
    pub fn excluded(&self, path: &Path) -> bool {
        let name = path.file_name().and_then(|n| n.to_str());
        self.exclude.iter().any(|p| {
            p.matches_path_with(path, OPTS) || name.is_some_and(|n| p.matches_with(n, OPTS))
        })
    }

    /// Whether `path` is one of the group's files.
    pub fn matches(&self, path: &Path) -> bool {
        self.include
            .iter()
            .any(|(_, p)| p.matches_path_with(path, OPTS))
            && !self.excluded(path)
    }

    /// The include patterns (as written) that match `path`; none if it is excluded.
    pub fn matching<'a>(&'a self, path: &'a Path) -> impl Iterator<Item = &'a str> + 'a {
        let excluded = self.excluded(path);
        self.include
            .iter()
            .filter(move |(_, p)| !excluded && p.matches_path_with(path, OPTS))
            .map(|(raw, _)| raw.as_str())
    }

    /// Whether `path` is a directory whose files the group may cover (a new directory
    /// matching a pattern's parent, e.g. `/var/log/*` of `/var/log/*/app.log`).
    pub fn is_watch_dir(&self, path: &Path) -> bool {
        self.literal_dirs.iter().any(|d| d == path)
            || self
                .dir_patterns
                .iter()
                .any(|p| p.matches_path_with(path, OPTS))
    }

    /// The paths the patterns match now, excludes left out, sorted, without duplicates.
    /// Directories the agent may not read are skipped (at debug level: they are retried at
    /// every rescan).
    pub fn expand(&self) -> Vec<PathBuf> {
        let mut out = BTreeSet::new();
        for (raw, _) in &self.include {
            let paths = match glob::glob_with(raw, OPTS) {
                Ok(paths) => paths,
                Err(e) => {
                    tracing::error!(pattern = %raw, error = %e, "files: invalid glob pattern");
                    continue;
                }
            };
            for entry in paths {
                match entry {
                    Ok(p) if !self.excluded(&p) => {
                        out.insert(p);
                    }
                    Ok(_) => {}
                    Err(e) => {
                        tracing::debug!(path = %e.path().display(), error = %e.error(), "files: cannot list")
                    }
                }
            }
        }
        out.into_iter().collect()
    }

    /// The directories to watch (non-recursively): each pattern's parent directory, itself
    /// expanded when it has glob characters.
    pub fn watch_dirs(&self) -> Vec<PathBuf> {
        let mut out: BTreeSet<PathBuf> = self.literal_dirs.iter().cloned().collect();
        for p in &self.dir_patterns {
            if let Ok(dirs) = glob::glob_with(p.as_str(), OPTS) {
                out.extend(dirs.flatten().filter(|d| d.is_dir()));
            }
        }
        out.into_iter().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn excludes_match_the_name_or_the_whole_path() {
        let p = Patterns::new(
            &["/var/log/*.log".into(), "/srv/*/app.log".into()],
            &["*.gz.log".into(), "/var/log/secret*".into()],
        );
        assert!(p.matches(Path::new("/var/log/syslog.log")));
        assert!(!p.matches(Path::new("/var/log/old.gz.log")));
        assert!(!p.matches(Path::new("/var/log/secret.log")));
        assert!(
            !p.matches(Path::new("/var/log/sub/x.log")),
            "* stays in a directory"
        );
        assert!(p.matches(Path::new("/srv/a/app.log")));
        assert_eq!(
            p.matching(Path::new("/srv/a/app.log")).collect::<Vec<_>>(),
            ["/srv/*/app.log"]
        );
        assert_eq!(p.matching(Path::new("/var/log/secret.log")).count(), 0);
        assert!(!p.matches(Path::new("/var/log/x.txt")));
        assert!(p.is_watch_dir(Path::new("/var/log")));
        assert!(p.is_watch_dir(Path::new("/srv/b")));
        assert!(!p.is_watch_dir(Path::new("/srv")));
    }
}
