//! `logops-agent textfsm`: the real binary parses command output from stdin with the
//! installed ntc-templates, and prints what Python's `ntc_templates.parse.parse_output`
//! (the reference, run from the venv `tests/install-peers.sh` makes) prints for the same
//! input; bad input fails with a message naming what is wrong.

#[path = "../../textfsm/tests/support/ntc.rs"]
mod ntc;

use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};

/// Runs `logops-agent textfsm` with `args`, `input` on stdin.
fn agent(args: &[&str], input: &[u8]) -> Output {
    run(
        Command::new(env!("CARGO_BIN_EXE_logops-agent"))
            .arg("textfsm")
            .args(args),
        input,
    )
}

fn run(cmd: &mut Command, input: &[u8]) -> Output {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(input)
        .expect("write stdin");
    child.wait_with_output().expect("wait")
}

/// Python's `parse_output` on the same input, as JSON (keys in the template's order).
fn reference(templates: &Path, platform: &str, command: &str, input: &[u8]) -> String {
    let script = "import json, sys\nfrom ntc_templates.parse import parse_output\n\
        print(json.dumps(parse_output(platform=sys.argv[2], command=sys.argv[3], \
        data=sys.stdin.read(), template_dir=sys.argv[1])))";
    let out = run(
        Command::new(ntc::python())
            .args(["-c", script])
            .arg(templates)
            .args([platform, command]),
        input,
    );
    assert!(
        out.status.success(),
        "python: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8")
}

/// The keys of every record, in order.
fn key_order(json: &str) -> Vec<Vec<String>> {
    // serde_json's map is sorted: find the keys' order in the text itself.
    let records: Vec<serde_json::Map<String, serde_json::Value>> =
        serde_json::from_str(json).expect("a JSON array of objects");
    let mut at = 0;
    records
        .iter()
        .map(|r| {
            let mut keys: Vec<(usize, String)> = r
                .keys()
                .map(|k| {
                    let needle = format!("\"{k}\":");
                    let pos = json[at..].find(&needle).map_or(usize::MAX, |p| p + at);
                    (pos, k.clone())
                })
                .collect();
            keys.sort();
            at = keys.last().map_or(at, |(p, _)| (*p).min(json.len()));
            keys.into_iter().map(|(_, k)| k).collect()
        })
        .collect()
}

#[test]
fn prints_what_python_parse_output_prints() {
    let templates = ntc::templates_dir();
    let corpus = ntc::corpus_dir();
    let cases = [
        // List values, abbreviated command.
        (
            "cisco_ios",
            "sh ver",
            "cisco_ios/show_version/cisco_ios_show_version.raw",
        ),
        // Many records, Filldown.
        (
            "cisco_ios",
            "show ip int br",
            "cisco_ios/show_ip_interface_brief/cisco_ios_show_ip_interface_brief.raw",
        ),
        (
            "arista_eos",
            "show interfaces status",
            "arista_eos/show_interfaces_status/arista_eos_show_interfaces_status.raw",
        ),
        (
            "juniper_junos",
            "show interfaces",
            "juniper_junos/show_interfaces/juniper_junos_show_interfaces.raw",
        ),
        (
            "linux",
            "ip address show",
            "linux/ip_address_show/linux_ip_address_show.raw",
        ),
    ];
    for (platform, command, raw) in cases {
        let input = std::fs::read(corpus.join(raw)).unwrap_or_else(|e| panic!("{raw}: {e}"));
        let out = agent(
            &[
                "--templates",
                templates.to_str().expect("utf-8 path"),
                "--platform",
                platform,
                "--command",
                command,
            ],
            &input,
        );
        let stdout = String::from_utf8(out.stdout).expect("utf-8");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{raw}: {stderr}");
        let want = reference(&templates, platform, command, &input);
        let got_v: serde_json::Value = serde_json::from_str(&stdout).expect("JSON on stdout");
        let want_v: serde_json::Value = serde_json::from_str(&want).expect("python JSON");
        assert_eq!(got_v, want_v, "{raw}: records differ from parse_output");
        assert!(
            got_v.as_array().is_some_and(|a| !a.is_empty()),
            "{raw}: no records"
        );
        assert_eq!(key_order(&stdout), key_order(&want), "{raw}: key order");
        let n = got_v.as_array().map_or(0, Vec::len);
        assert!(
            stderr.contains(&format!("{n} record(s) from {platform}_")),
            "{raw}: {stderr}"
        );
    }
}

#[test]
fn unknown_command_names_index_platform_and_command() {
    let templates = ntc::templates_dir();
    let out = agent(
        &[
            "--templates",
            templates.to_str().expect("utf-8"),
            "--platform",
            "cisco_ios",
            "--command",
            "show frobnication",
        ],
        b"anything\n",
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("index for platform \"cisco_ios\" and command \"show frobnication\""),
        "{stderr}"
    );
}

#[test]
fn template_errors_name_file_and_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        dir.path().join("index"),
        "Template, Hostname, Platform, Command\n\n\
         bad_option.textfsm, .*, lab, sh[[ow]] opt\n\
         bad_regex.textfsm, .*, lab, sh[[ow]] re\n\
         strict.textfsm, .*, lab, sh[[ow]] strict\n",
    )
    .expect("index");
    std::fs::write(
        dir.path().join("bad_option.textfsm"),
        "Value A (\\S+)\nValue Filldwn B (\\S+)\n\nStart\n  ^${A} ${B} -> Record\n",
    )
    .expect("template");
    std::fs::write(
        dir.path().join("bad_regex.textfsm"),
        "Value A (\\S+)\n\nStart\n  ^${A}\n  ^(unclosed -> Record\n",
    )
    .expect("template");
    std::fs::write(
        dir.path().join("strict.textfsm"),
        "Value A (\\d+)\n\nStart\n  ^ok ${A} -> Record\n  ^. -> Error \"unexpected line\"\n",
    )
    .expect("template");
    let templates = dir.path().to_str().expect("utf-8");
    let stderr_of = |command: &str, input: &[u8]| {
        let out = agent(
            &[
                "--templates",
                templates,
                "--platform",
                "lab",
                "--command",
                command,
            ],
            input,
        );
        assert_eq!(out.status.code(), Some(1), "{command}");
        assert!(out.stdout.is_empty(), "{command}");
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let e = stderr_of("sh opt", b"x y\n");
    assert!(
        e.contains("bad_option.textfsm:2: unknown Value option \"Filldwn\""),
        "{e}"
    );
    let e = stderr_of("show re", b"x\n");
    assert!(
        e.contains("bad_regex.textfsm:5: invalid regex \"^(unclosed\""),
        "{e}"
    );
    let e = stderr_of("sho strict", b"ok 1\nok 2\nsurprise\n");
    assert!(
        e.contains("strict.textfsm:5: unexpected line on input line 3 \"surprise\""),
        "{e}"
    );
    // The same template on input it expects: records, exit 0.
    let out = agent(
        &[
            "--templates",
            templates,
            "--platform",
            "lab",
            "--command",
            "sh strict",
        ],
        b"ok 1\nok 2\n",
    );
    assert!(out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(v, serde_json::json!([{"a": "1"}, {"a": "2"}]));
}
