//! The acceptance test: ntc-templates' own test corpus (tests/corpus: raw outputs and the
//! records they must parse to, for cisco_ios, arista_eos, juniper_junos and linux), parsed
//! with the templates of the installed `ntc-templates` package, unmodified.
//!
//! Every case must give exactly its expected records (same count, order, keys and values),
//! except those in [`KNOWN_FAILURES`], each with its reason; a listed case that starts to
//! pass fails the test too, so the list stays true.

#[path = "support/ntc.rs"]
mod ntc;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use logops_textfsm::{TemplateLibrary, Value};
use yaml_rust2::{Yaml, YamlLoader};

/// Corpus cases (relative paths of their `.raw` files) that do not parse to their expected
/// records, with the reason. Empty: every case passes.
const KNOWN_FAILURES: &[(&str, &str)] = &[];

type Rec = BTreeMap<String, Value>;

struct Case {
    raw: PathBuf,
    platform: String,
    command: String,
}

/// `<platform>/<command_with_underscores>/<name>.raw`, as ntc-templates' own test reads them.
fn cases(root: &Path) -> Vec<Case> {
    let mut out = Vec::new();
    let dirs = |p: &Path| -> Vec<PathBuf> {
        let mut v: Vec<PathBuf> = std::fs::read_dir(p)
            .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
            .map(|e| e.expect("dir entry").path())
            .collect();
        v.sort();
        v
    };
    for platform in dirs(root).into_iter().filter(|p| p.is_dir()) {
        for command in dirs(&platform).into_iter().filter(|p| p.is_dir()) {
            for raw in dirs(&command) {
                if raw.extension().is_some_and(|e| e == "raw") {
                    out.push(Case {
                        platform: name(&platform),
                        command: name(&command).replace('_', " "),
                        raw,
                    });
                }
            }
        }
    }
    out
}

fn name(p: &Path) -> String {
    p.file_name().expect("name").to_string_lossy().into_owned()
}

/// `parsed_sample` of the case's `.yml`.
fn expected(raw: &Path) -> Result<Vec<Rec>, String> {
    let path = raw.with_extension("yml");
    let text = std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    let docs = YamlLoader::load_from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
    let sample = docs
        .first()
        .map(|d| &d["parsed_sample"])
        .and_then(Yaml::as_vec)
        .ok_or_else(|| format!("{}: no parsed_sample list", path.display()))?;
    let string = |y: &Yaml| y.as_str().map(String::from);
    sample
        .iter()
        .map(|rec| {
            let hash = rec.as_hash().ok_or("a record that is not a mapping")?;
            hash.iter()
                .map(|(k, v)| {
                    let key = string(k).ok_or("a non-string key")?;
                    let value = match v {
                        Yaml::Array(items) => Value::List(
                            items
                                .iter()
                                .map(|i| string(i).ok_or(format!("{key}: a non-string list item")))
                                .collect::<Result<_, _>>()?,
                        ),
                        other => {
                            Value::String(string(other).ok_or(format!("{key}: not a string"))?)
                        }
                    };
                    Ok((key, value))
                })
                .collect::<Result<Rec, String>>()
        })
        .collect::<Result<Vec<Rec>, String>>()
        .map_err(|e| format!("{}: {e}", path.display()))
}

/// Why `case` does not give its expected records, or `None` when it does.
fn check(lib: &TemplateLibrary, case: &Case) -> Option<String> {
    let text = match std::fs::read(&case.raw) {
        Ok(b) => String::from_utf8(b).expect("corpus files are UTF-8"),
        Err(e) => return Some(e.to_string()),
    };
    let want = match expected(&case.raw) {
        Ok(w) => w,
        Err(e) => return Some(e),
    };
    let got: Vec<Rec> = match lib.parse(&case.platform, &case.command, &text) {
        Ok(p) => p
            .records
            .into_iter()
            .map(|r| r.0.into_iter().collect())
            .collect(),
        Err(e) => return Some(format!("error: {e}")),
    };
    if got.len() != want.len() {
        return Some(format!("{} records, expected {}", got.len(), want.len()));
    }
    for (i, (g, w)) in got.iter().zip(&want).enumerate() {
        if g != w {
            let diff: Vec<String> = w
                .keys()
                .chain(g.keys())
                .collect::<std::collections::BTreeSet<_>>()
                .into_iter()
                .filter(|k| g.get(*k) != w.get(*k))
                .map(|k| format!("{k}: got {:?}, expected {:?}", g.get(k), w.get(k)))
                .collect();
            return Some(format!("record {i}: {}", diff.join("; ")));
        }
    }
    None
}

#[test]
fn every_corpus_case_parses_to_its_expected_records() {
    let lib = TemplateLibrary::open(ntc::templates_dir()).expect("ntc-templates index");
    let root = ntc::corpus_dir();
    let cases = cases(&root);
    assert!(
        cases.len() >= 500,
        "only {} cases under {}",
        cases.len(),
        root.display()
    );

    let mut problems = Vec::new();
    let mut failed = Vec::new();
    for case in &cases {
        let rel = case
            .raw
            .strip_prefix(&root)
            .expect("under root")
            .to_string_lossy()
            .into_owned();
        let known = KNOWN_FAILURES.iter().find(|(p, _)| *p == rel);
        match (check(&lib, case), known) {
            (None, None) => {}
            (Some(_), Some(_)) => failed.push(rel),
            (Some(why), None) => problems.push(format!("{rel}: {why}")),
            (None, Some((_, reason))) => problems.push(format!(
                "{rel}: passes now but is listed in KNOWN_FAILURES ({reason}): remove it"
            )),
        }
    }
    for (p, _) in KNOWN_FAILURES {
        assert!(
            cases.iter().any(|c| c.raw.ends_with(p)),
            "KNOWN_FAILURES names a missing case {p}"
        );
    }
    println!(
        "{} corpus cases: {} as expected, {} known failures, {} problems",
        cases.len(),
        cases.len() - failed.len() - problems.len(),
        failed.len(),
        problems.len()
    );
    assert!(
        problems.is_empty(),
        "{} problem(s):\n{}",
        problems.len(),
        problems.join("\n")
    );
}

/// The Unicode-class builds of the regexes (used for non-ASCII lines; the corpus is all
/// ASCII) give every single-template case its expected records too.
#[test]
fn unicode_builds_give_the_same_records() {
    let dir = ntc::templates_dir();
    let lib = TemplateLibrary::open(&dir).expect("ntc-templates index");
    let root = ntc::corpus_dir();
    let mut compiled: BTreeMap<String, logops_textfsm::Template> = BTreeMap::new();
    let mut checked = 0;
    let mut problems = Vec::new();
    for case in cases(&root) {
        if KNOWN_FAILURES.iter().any(|(p, _)| case.raw.ends_with(p)) {
            continue;
        }
        let entry = lib.find(&case.platform, &case.command).expect("index row");
        let [name] = entry.templates.as_slice() else {
            continue; // merged multi-template rows: covered by the test above
        };
        let template = compiled.entry(name.clone()).or_insert_with(|| {
            let text = std::fs::read_to_string(dir.join(name)).expect("template");
            logops_textfsm::Template::compile_unicode(name, &text).expect("compiles")
        });
        let text = std::fs::read_to_string(&case.raw).expect("raw");
        let got: Vec<Rec> = match template.parse_text(&text) {
            Ok(t) => t
                .into_records()
                .into_iter()
                .map(|r| r.0.into_iter().collect())
                .collect(),
            Err(e) => {
                problems.push(format!("{}: {e}", case.raw.display()));
                continue;
            }
        };
        if got != expected(&case.raw).expect("expected records") {
            problems.push(format!("{}: records differ", case.raw.display()));
        }
        checked += 1;
    }
    assert!(checked > 500, "only {checked} cases");
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// Every template the installed index names compiles (all platforms, not only the four of
/// the corpus), so no ntc-template fails on first use in the field.
#[test]
fn every_template_of_the_index_compiles() {
    let lib = TemplateLibrary::open(ntc::templates_dir()).expect("ntc-templates index");
    let errors = lib.check_all();
    let count = lib
        .index()
        .entries()
        .iter()
        .map(|e| e.templates.len())
        .sum::<usize>();
    assert!(count > 900, "only {count} templates in the index");
    let list: Vec<String> = errors.iter().map(|e| e.to_string()).collect();
    assert!(
        list.is_empty(),
        "{} template(s) do not compile:\n{}",
        list.len(),
        list.join("\n")
    );
}
