//! `logops-agent test ssh DEVICE`: log in once and show what the collector sees — the
//! prompt, each command's raw output and parsed records — or exactly what failed.

use std::process::ExitCode;

use logops_agent::config::Config;
use logops_agent::sources::ssh;

/// Runs the test; exit 0 when the session and every command worked, 1 otherwise.
pub fn run(config: &Config, device: &str, json: bool) -> ExitCode {
    let outcome = match ssh::test_device(config, device) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("logops-agent: {e:#}");
            return ExitCode::FAILURE;
        }
    };
    let s = &outcome.settings;
    let p = &outcome.polled;
    // With --json the events go to stdout and this summary to stderr.
    let mut summary = vec![format!(
        "# device {} ({}) at {}: {} session(s), {:.2} s",
        s.name, s.platform.device_type, s.address, p.sessions, p.seconds
    )];
    if let Some(c) = &p.connected {
        summary.push(format!("connected: {c}"));
    }
    summary.push(match &outcome.templates {
        Ok(Some(dir)) => format!("templates: {}", dir.display()),
        Ok(None) => {
            "templates: none ([ssh] templates_dir is not set): outputs are not parsed".into()
        }
        Err(e) => format!("templates: cannot be used: {e}"),
    });
    if let Some(prompt) = &p.prompt {
        summary.push(format!("prompt: {prompt}"));
    }
    if json {
        for line in &summary {
            eprintln!("{line}");
        }
        for e in &outcome.events {
            println!("{}", e.to_json());
        }
    } else {
        for line in &summary {
            println!("{line}");
        }
        for c in &p.commands {
            println!();
            match (&c.output, &c.error) {
                (Some(out), _) => {
                    println!("=== {} ({:.2} s)", c.spec.command, c.seconds);
                    println!("{out}");
                    match &c.parse_error {
                        Some(e) => println!("--- not parsed: {e}"),
                        None if c.templates.is_empty() => println!("--- not parsed"),
                        None => {
                            println!(
                                "--- {} record(s) from {}",
                                c.records.len(),
                                c.templates.join(" + ")
                            );
                            println!(
                                "{}",
                                serde_json::to_string_pretty(&c.records).unwrap_or_default()
                            );
                        }
                    }
                }
                (None, Some(e)) => println!("=== {}: FAILED: {e}", c.spec.command),
                (None, None) => {}
            }
        }
        let metrics: Vec<String> = outcome
            .events
            .iter()
            .filter(|e| matches!(e.payload, logops_common::event::Payload::Metric { .. }))
            .map(|e| crate::readable(e))
            .collect();
        if !metrics.is_empty() {
            println!();
            println!("=== metrics");
            for m in metrics {
                println!("{m}");
            }
        }
    }
    let errors = p.errors();
    for (_, message) in &errors {
        eprintln!("error: {message}");
    }
    if errors.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
