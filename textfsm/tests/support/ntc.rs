//! Where the tests find the ntc-templates templates and the reference Python textfsm:
//! the venv `tests/install-peers.sh` makes. Shared by `textfsm/tests`, `textfsm/benches`
//! and `agent/tests/textfsm_cli.rs` (through `#[path]`).
#![allow(dead_code)]

use std::path::PathBuf;
use std::process::Command;

/// The venv `tests/install-peers.sh` installs `ntc-templates` and `textfsm` into.
pub const NTC_VENV: &str = "/opt/logops-tests/ntc-venv";

/// The `ntc-templates` release the corpus (`textfsm/tests/corpus`) is checked against.
pub const NTC_TEMPLATES_VERSION: &str = "9.2.0";

/// The venv's Python, or `$LOGOPS_NTC_PYTHON`.
pub fn python() -> PathBuf {
    std::env::var_os("LOGOPS_NTC_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(NTC_VENV).join("bin/python"))
}

/// The installed ntc-templates' `templates/` directory; panics with what to do when the
/// package is missing or not the pinned version.
pub fn templates_dir() -> PathBuf {
    let py = python();
    let script = "import importlib.metadata as m, os, ntc_templates; \
        print(m.version('ntc-templates')); \
        print(os.path.join(os.path.dirname(ntc_templates.__file__), 'templates'))";
    let out = Command::new(&py)
        .args(["-c", script])
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "{}: {e}: run tests/install-peers.sh (as root)",
                py.display()
            )
        });
    assert!(
        out.status.success(),
        "{} cannot import ntc_templates ({}): run tests/install-peers.sh (as root)",
        py.display(),
        String::from_utf8_lossy(&out.stderr).trim()
    );
    let text = String::from_utf8(out.stdout).expect("utf-8 path");
    let mut lines = text.lines();
    let version = lines.next().unwrap_or_default();
    assert_eq!(
        version, NTC_TEMPLATES_VERSION,
        "ntc-templates {version} in {}, the corpus is checked against {NTC_TEMPLATES_VERSION}: run tests/install-peers.sh",
        py.display()
    );
    let dir = PathBuf::from(lines.next().unwrap_or_default());
    assert!(
        dir.join("index").is_file(),
        "{}: no index file",
        dir.display()
    );
    dir
}

/// `textfsm/tests/corpus` (from this crate or a sibling one).
pub fn corpus_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../textfsm/tests/corpus")
}
