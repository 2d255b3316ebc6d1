//! Errors: a bad template or index names its file and line; a failed parse names the
//! template, the rule's line and the input line.

use std::path::PathBuf;

/// A template that cannot be compiled, with the file and 1-based line at fault.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{file}:{line}: {kind}")]
pub struct TemplateError {
    /// The template's name or path, as it was given.
    pub file: String,
    /// 1-based line in the template (0 when the problem is the template as a whole).
    pub line: usize,
    /// What is wrong.
    pub kind: TemplateErrorKind,
}

/// What is wrong with a template.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TemplateErrorKind {
    /// The template has no `Value` line before its first state.
    #[error("no Value definitions found")]
    NoValues,
    /// A `Value` line with fewer than three space-separated tokens.
    #[error("Value line needs at least 3 tokens: `Value [Options] NAME (regex)`")]
    ValueTokens,
    /// A `Value` option that TextFSM does not know.
    #[error("unknown Value option {0:?} (valid: Filldown, Fillup, Key, List, Required)")]
    UnknownOption(String),
    /// The same option twice on one `Value`.
    #[error("duplicate Value option {0:?}")]
    DuplicateOption(String),
    /// A `Value` name longer than 48 characters.
    #[error("Value name {0:?} is too long (48 characters at most)")]
    NameTooLong(String),
    /// The same `Value` name declared twice.
    #[error("duplicate declaration of Value {0:?}")]
    DuplicateValue(String),
    /// A `Value` regex not enclosed in one `( )` pair.
    #[error("Value regex {0:?} must be contained within a '()' pair")]
    ValueParens(String),
    /// A regex (of a `Value` or of a rule after substitution) that does not compile.
    #[error("invalid regex {pattern:?}: {reason}")]
    Regex {
        /// The pattern as compiled (after `${VALUE}` substitution for rules).
        pattern: String,
        /// The regex engine's message.
        reason: String,
    },
    /// A non-`Value` line in the Value block.
    #[error("expected a blank line after the last Value entry")]
    ExpectedBlankLine,
    /// A state name that is not `\w+`, too long, or an action keyword.
    #[error("invalid state name {0:?}")]
    InvalidStateName(String),
    /// The same state declared twice.
    #[error("duplicate state {0:?}")]
    DuplicateState(String),
    /// A rule line not indented by one space, two spaces or a tab before its `^`.
    #[error("a rule must start with ' ^', '  ^' or a tab and '^'")]
    RuleIndent,
    /// `$NAME`/`${NAME}` naming no Value, or a `$` not followed by a name or another `$`.
    #[error(
        "invalid substitution in {0:?} (unknown Value, or a lone '$': write '$$' for end of line)"
    )]
    Substitution(String),
    /// An action after `->` that is not `[LineOp[.RecordOp]] [NewState]`.
    #[error("badly formatted rule action {0:?}")]
    BadAction(String),
    /// `Continue` combined with a state change.
    #[error("action 'Continue' cannot change state (to {0:?})")]
    ContinueWithState(String),
    /// A new state that is not alphanumeric.
    #[error("state names are alphanumeric only: {0:?}")]
    StateNotAlphanumeric(String),
    /// A rule jumps to a state that is not defined.
    #[error("state {target:?} referenced in state {from:?} is not defined")]
    UndefinedState {
        /// The missing state.
        target: String,
        /// The state holding the rule.
        from: String,
    },
    /// The template has no `Start` state.
    #[error("missing state 'Start'")]
    NoStart,
    /// `End` or `EOF` declared with rules.
    #[error("state {0:?} must be empty")]
    NonEmptyReserved(String),
}

/// The template's `Error` action fired: the input is not what the template expects.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{template}:{rule_line}: {} on input line {input_line} {input:?}", .message.as_deref().unwrap_or("Error action"))]
pub struct ParseError {
    /// The template's name.
    pub template: String,
    /// 1-based line of the rule whose `Error` action fired (0 for a regex run-time failure).
    pub rule_line: usize,
    /// The rule's message (`-> Error "message"`), without its quotes.
    pub message: Option<String>,
    /// 1-based number of the input line.
    pub input_line: usize,
    /// The input line.
    pub input: String,
}

/// An index file that cannot be used.
#[derive(Debug, Clone, thiserror::Error)]
pub enum IndexError {
    /// The file has no header line.
    #[error("{file}: no header line (e.g. `Template, Hostname, Platform, Command`)")]
    NoHeader {
        /// The index file.
        file: PathBuf,
    },
    /// A column named twice in the header.
    #[error("{file}:{line}: duplicate column {column:?}")]
    DuplicateColumn {
        /// The index file.
        file: PathBuf,
        /// 1-based line.
        line: usize,
        /// The column.
        column: String,
    },
    /// The header has no `Template` column.
    #[error("{file}:{line}: the header has no 'Template' column")]
    NoTemplateColumn {
        /// The index file.
        file: PathBuf,
        /// 1-based line of the header.
        line: usize,
    },
    /// A cell's regex does not compile.
    #[error("{file}:{line}: column {column}: invalid regex {pattern:?}: {reason}")]
    Regex {
        /// The index file.
        file: PathBuf,
        /// 1-based line.
        line: usize,
        /// The column.
        column: String,
        /// The pattern after `[[...]]` completion is expanded.
        pattern: String,
        /// The regex engine's message.
        reason: String,
    },
}

/// Errors of [`crate::TemplateLibrary`].
#[derive(Debug, thiserror::Error)]
pub enum LibraryError {
    /// The index or a template could not be read.
    #[error("reading {path}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The index is invalid.
    #[error(transparent)]
    Index(#[from] IndexError),
    /// A template is invalid.
    #[error(transparent)]
    Template(#[from] TemplateError),
    /// No index row matches the platform and command.
    #[error("no template in {index} for platform {platform:?} and command {command:?}")]
    NoTemplate {
        /// The index file.
        index: PathBuf,
        /// The platform (device type) asked for.
        platform: String,
        /// The command asked for.
        command: String,
    },
    /// A template's `Error` action fired.
    #[error(transparent)]
    Parse(#[from] ParseError),
    /// Merging the tables of a multi-template index row failed (a Key column of the first
    /// table is missing from the merged table), as in Python's `CliTable`.
    #[error("{templates}: key column {key:?} missing when merging the templates' tables")]
    Merge {
        /// The index row's templates, `:`-separated.
        templates: String,
        /// The missing key column.
        key: String,
    },
}
