//! Throughput on the whole ntc-templates corpus (tests/corpus), beside Python textfsm 2.1
//! on the same inputs and templates (from the venv `tests/install-peers.sh` makes).
//!
//! ```sh
//! cargo bench -p logops-textfsm --bench corpus            # LOGOPS_BENCH_SECS=10 for longer runs
//! ```
//!
//! Both sides compile the templates the corpus uses once (reported apart), then parse every
//! case's output with its index row's template(s), round after round, for at least
//! `LOGOPS_BENCH_SECS` (default 5) CPU-seconds. Figures are per CPU-second of the process
//! (getrusage / `time.process_time`), so a busy second core does not skew them. Also
//! reported: `TemplateLibrary::parse` (index lookup and multi-template merge included).

#[path = "../tests/support/ntc.rs"]
mod ntc;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use logops_textfsm::{Template, TemplateLibrary};

/// CPU-seconds (user + system) this process has used.
fn cpu_seconds() -> f64 {
    // SAFETY: getrusage only writes the struct we pass.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: a valid pointer to a rusage struct.
    let rc = unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    assert_eq!(rc, 0, "getrusage");
    let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

struct Case {
    raw: PathBuf,
    platform: String,
    command: String,
    text: String,
    templates: Vec<String>,
}

fn cases(lib: &TemplateLibrary, root: &Path) -> Vec<Case> {
    let mut out = Vec::new();
    let sorted = |p: &Path| {
        let mut v: Vec<PathBuf> = std::fs::read_dir(p)
            .expect("read_dir")
            .map(|e| e.expect("entry").path())
            .collect();
        v.sort();
        v
    };
    for platform in sorted(root).into_iter().filter(|p| p.is_dir()) {
        for cmd in sorted(&platform).into_iter().filter(|p| p.is_dir()) {
            for raw in sorted(&cmd)
                .into_iter()
                .filter(|p| p.extension().is_some_and(|e| e == "raw"))
            {
                let name = |p: &Path| p.file_name().expect("name").to_string_lossy().into_owned();
                let (platform, command) = (name(&platform), name(&cmd).replace('_', " "));
                let entry = lib
                    .find(&platform, &command)
                    .expect("a template for every case");
                out.push(Case {
                    text: std::fs::read_to_string(&raw).expect("utf-8 raw"),
                    templates: entry.templates.clone(),
                    raw,
                    platform,
                    command,
                });
            }
        }
    }
    out
}

const PYTHON: &str = r#"
import json, os, sys, time, textfsm
tdir, manifest, min_secs = sys.argv[1], sys.argv[2], float(sys.argv[3])
cases = json.load(open(manifest))
texts = [open(c["raw"], encoding="utf-8").read() for c in cases]
t0 = time.process_time()
fsms = {}
for c in cases:
    for t in c["templates"]:
        if t not in fsms:
            with open(os.path.join(tdir, t), encoding="utf-8") as f:
                fsms[t] = textfsm.TextFSM(f)
compile_secs = time.process_time() - t0
rounds = records = 0
t0 = time.process_time()
while True:
    for c, text in zip(cases, texts):
        for t in c["templates"]:
            fsm = fsms[t]
            fsm.Reset()
            records += len(fsm.ParseText(text))
    rounds += 1
    if time.process_time() - t0 >= min_secs:
        break
print(json.dumps({"compile_secs": compile_secs, "templates": len(fsms), "rounds": rounds,
                  "records": records, "secs": time.process_time() - t0}))
"#;

fn main() {
    let min_secs: f64 = std::env::var("LOGOPS_BENCH_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(5.0);
    let dir = ntc::templates_dir();
    let lib = TemplateLibrary::open(&dir).expect("index");
    let cases = cases(&lib, &ntc::corpus_dir());
    let bytes: usize = cases.iter().map(|c| c.text.len()).sum();
    let mib = bytes as f64 / (1024.0 * 1024.0);

    // Compile every template the corpus uses, once.
    let t0 = cpu_seconds();
    let mut names: Vec<&str> = cases
        .iter()
        .flat_map(|c| c.templates.iter().map(String::as_str))
        .collect();
    names.sort_unstable();
    names.dedup();
    let compiled: Vec<(String, Arc<Template>)> = names
        .iter()
        .map(|n| (n.to_string(), lib.template(n).expect("template compiles")))
        .collect();
    let compile_secs = cpu_seconds() - t0;
    let by_case: Vec<Vec<Arc<Template>>> = cases
        .iter()
        .map(|c| {
            c.templates
                .iter()
                .map(|t| Arc::clone(&compiled.iter().find(|(n, _)| n == t).expect("compiled").1))
                .collect()
        })
        .collect();

    // Engine: every case's template(s) over its output.
    let (mut rounds, mut records) = (0u64, 0u64);
    let t0 = cpu_seconds();
    loop {
        for (case, templates) in cases.iter().zip(&by_case) {
            for t in templates {
                records += t.parse_text(&case.text).expect("parses").rows.len() as u64;
            }
        }
        rounds += 1;
        if cpu_seconds() - t0 >= min_secs {
            break;
        }
    }
    let secs = cpu_seconds() - t0;

    // Library: index lookup, parse, merge, records with lower-cased keys.
    let (mut lib_rounds, mut lib_records) = (0u64, 0u64);
    let t0 = cpu_seconds();
    loop {
        for case in &cases {
            lib_records += lib
                .parse(&case.platform, &case.command, &case.text)
                .expect("parses")
                .records
                .len() as u64;
        }
        lib_rounds += 1;
        if cpu_seconds() - t0 >= min_secs {
            break;
        }
    }
    let lib_secs = cpu_seconds() - t0;

    println!(
        "corpus: {} cases, {:.2} MiB, {} templates, {} records per round",
        cases.len(),
        mib,
        compiled.len(),
        records / rounds
    );
    let line = |what: &str, rounds: u64, records: u64, secs: f64| {
        println!(
            "{what:<28} {:>10.0} records/s {:>8.2} MiB/s {:>8.1} ms/round  ({rounds} rounds in {secs:.2} CPU-s)",
            records as f64 / secs,
            mib * rounds as f64 / secs,
            secs * 1000.0 / rounds as f64,
        );
    };
    println!(
        "compile, logops-textfsm      {:.3} CPU-s for {} templates",
        compile_secs,
        compiled.len()
    );
    line("logops-textfsm (engine)", rounds, records, secs);
    line(
        "logops-textfsm (library)",
        lib_rounds,
        lib_records,
        lib_secs,
    );

    // Python textfsm on the same cases and templates.
    let manifest = tempfile::NamedTempFile::new().expect("tempfile");
    let json: Vec<serde_json::Value> = cases
        .iter()
        .map(|c| serde_json::json!({"raw": c.raw, "templates": c.templates}))
        .collect();
    std::fs::write(manifest.path(), serde_json::to_vec(&json).expect("json")).expect("manifest");
    let out = Command::new(ntc::python())
        .args(["-c", PYTHON])
        .arg(&dir)
        .arg(manifest.path())
        .arg(min_secs.to_string())
        .output()
        .expect("python");
    assert!(
        out.status.success(),
        "python: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let py: serde_json::Value = serde_json::from_slice(&out.stdout).expect("python JSON");
    let f = |k: &str| py[k].as_f64().expect("number");
    println!(
        "compile, Python textfsm 2.1  {:.3} CPU-s for {} templates",
        f("compile_secs"),
        f("templates")
    );
    line(
        "Python textfsm 2.1",
        f("rounds") as u64,
        f("records") as u64,
        f("secs"),
    );
    assert_eq!(
        f("records") as u64 / f("rounds") as u64,
        records / rounds,
        "both engines give the same number of records per round"
    );
    println!(
        "speed-up (engine, records/s): {:.1}x",
        (records as f64 / secs) / (f("records") / f("secs"))
    );
}
