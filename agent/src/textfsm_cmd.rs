//! `logops-agent textfsm`: parse command output read from stdin with the ntc-templates
//! template the index picks, and print the records as a JSON array — try a template
//! without a device.

use std::io::{Read, Write};
use std::path::Path;

use anyhow::Context;
use logops_textfsm::TemplateLibrary;

/// Reads stdin, parses it as the output of `command` on `platform` with the templates in
/// `templates`, and prints the records (a JSON array) on stdout; which template was used,
/// and how many records it gave, goes to stderr.
pub fn run(templates: &Path, platform: &str, command: &str) -> anyhow::Result<()> {
    let lib = TemplateLibrary::open(templates)?;
    let mut raw = Vec::new();
    std::io::stdin()
        .read_to_end(&mut raw)
        .context("reading the command output from stdin")?;
    let text = match String::from_utf8(raw) {
        Ok(t) => t,
        Err(e) => {
            let at = e.utf8_error().valid_up_to();
            eprintln!(
                "logops-agent: stdin is not UTF-8 (first bad byte at offset {at}); invalid bytes read as U+FFFD"
            );
            String::from_utf8_lossy(e.as_bytes()).into_owned()
        }
    };
    let parsed = lib.parse(platform, command, &text)?;
    let mut out = std::io::stdout().lock();
    serde_json::to_writer_pretty(&mut out, &parsed.records)?;
    writeln!(out)?;
    out.flush()?;
    eprintln!(
        "logops-agent: {} record(s) from {}",
        parsed.records.len(),
        parsed.templates.join(" + ")
    );
    Ok(())
}
