//! `logops-textfsm`: a TextFSM engine that runs ntc-templates unmodified.
//!
//! - [`Template`]: one TextFSM template — `Value` lines with their options (`Filldown`,
//!   `Fillup`, `Key`, `Required`, `List`), states (`Start`, `EOF`, `End` and custom ones),
//!   rules with `->` actions (`Next`, `Continue`, `Error ["message"]`, `Record`,
//!   `NoRecord`, `Clear`, `Clearall`, a new state), `${VALUE}`/`$VALUE` substitution, `$$`,
//!   comments and the implicit record at the end of input — with Python textfsm 2.1's
//!   semantics. Regexes are Python `re` syntax, translated for `fancy-regex` (lookaround and
//!   backreferences included; see [`pyre`]).
//! - [`Index`]: the `index` file that maps (platform, command) to templates, with the
//!   `sh[[ow]]` abbreviation syntax.
//! - [`TemplateLibrary`]: a templates directory; [`TemplateLibrary::parse`] is
//!   `ntc_templates.parse.parse_output`: records with lower-cased keys, each value a string
//!   or, for `List` values, a list of strings.
//!
//! ```no_run
//! let lib = logops_textfsm::TemplateLibrary::open("/usr/share/logops/ntc-templates")?;
//! let parsed = lib.parse("cisco_ios", "sh ver", "Cisco IOS Software, ...")?;
//! println!("{}", serde_json::to_string(&parsed.records).unwrap());
//! # Ok::<(), logops_textfsm::LibraryError>(())
//! ```
//!
//! Errors name what is at fault: a template's file and line ([`TemplateError`]), the index
//! file, line and column ([`IndexError`]), or the rule and input line where a template's
//! `Error` action fired ([`ParseError`]). The crate knows nothing of SSH or the agent.

mod error;
mod fsm;
mod index;
mod library;
pub mod pyre;
mod record;
mod template;

pub use error::{IndexError, LibraryError, ParseError, TemplateError, TemplateErrorKind};
pub use index::{expand_completion, Index, IndexEntry};
pub use library::{Parsed, TemplateLibrary};
pub use record::{Record, Table, Value};
pub use template::{Template, ValueDef, ValueOption};
