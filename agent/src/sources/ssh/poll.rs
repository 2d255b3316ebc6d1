//! [`poll`]: one poll of a device — open a session, run its commands, close it — and
//! [`Parsed`] outputs turned into events: a `record` per parsed row, the configured metrics,
//! optionally the raw output as a log event, and `ssh_up` / `ssh_poll_duration_seconds`.
//!
//! A command that times out is interrupted (Ctrl-C); if the prompt does not come back the
//! session is replaced by a new one, so the next command still runs.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use logops_common::event::{Event, MetricValue, Payload, Severity};
use logops_common::Timestamp;
use logops_textfsm::{LibraryError, Record, TemplateLibrary, Value};

use super::cli::Cli;
use super::error::SshError;
use super::session::Secrets;
use crate::config::{CommandSpec, MetricKind, MetricSpec, SshDeviceSettings};
use crate::pipeline::Shutdown;
use crate::sources::merge_labels;

/// `source` of the events.
pub const SOURCE: &str = "ssh";

/// One command's result.
#[derive(Debug)]
pub struct CommandOutcome {
    /// The command as configured.
    pub spec: CommandSpec,
    /// Its output (echo and prompt removed), when it completed.
    pub output: Option<String>,
    /// Why it did not complete.
    pub error: Option<SshError>,
    /// The template(s) that parsed it.
    pub templates: Vec<String>,
    /// The parsed records.
    pub records: Vec<Record>,
    /// Why it was not parsed: no template in the index, or the template failed.
    pub parse_error: Option<LibraryError>,
    /// Metric values that could not be taken from the records.
    pub metric_errors: Vec<String>,
    /// How long it took.
    pub seconds: f64,
}

/// What one poll gave.
#[derive(Debug, Default)]
pub struct Polled {
    /// The prompt found after login (and enable).
    pub prompt: Option<String>,
    /// Where the session connected and the server's key, for `test ssh`.
    pub connected: Option<String>,
    /// Why the session could not be opened (then no command ran).
    pub error: Option<SshError>,
    /// The commands, in order.
    pub commands: Vec<CommandOutcome>,
    /// Sessions opened (more than one after a command timed out and the session was
    /// replaced).
    pub sessions: u32,
    /// How long the poll took.
    pub seconds: f64,
}

impl Polled {
    /// Whether everything worked: the session opened and every command completed.
    pub fn ok(&self) -> bool {
        self.error.is_none() && self.commands.iter().all(|c| c.error.is_none())
    }

    /// Every error of the poll: the session's, each command's, parse and metric errors,
    /// as (reason, message).
    pub fn errors(&self) -> Vec<(&'static str, String)> {
        let mut out = Vec::new();
        if let Some(e) = &self.error {
            out.push((e.reason(), e.to_string()));
        }
        for c in &self.commands {
            if let Some(e) = &c.error {
                out.push((e.reason(), e.to_string()));
            }
            match &c.parse_error {
                Some(LibraryError::NoTemplate { .. }) | None => {}
                Some(e) => out.push(("parse", format!("`{}`: {e}", c.spec.command))),
            }
            for m in &c.metric_errors {
                out.push(("metric", m.clone()));
            }
        }
        out
    }

    /// Timeouts in this poll (connect, prompt and command timeouts).
    pub fn timeouts(&self) -> u64 {
        let session = self.error.as_ref().is_some_and(SshError::is_timeout) as u64;
        session
            + self
                .commands
                .iter()
                .filter(|c| c.error.as_ref().is_some_and(SshError::is_timeout))
                .count() as u64
    }
}

/// Polls `s` once: connects, runs every command, closes. Nothing is parsed yet (see
/// [`parse`]).
pub fn poll(s: &SshDeviceSettings, stop: Option<&Shutdown>) -> Polled {
    let started = Instant::now();
    let mut polled = Polled::default();
    let secrets = match Secrets::load(s) {
        Ok(x) => x,
        Err(e) => {
            polled.error = Some(e);
            polled.seconds = started.elapsed().as_secs_f64();
            return polled;
        }
    };
    let mut cli: Option<Cli> = None;
    for spec in &s.commands {
        if stop.is_some_and(Shutdown::is_triggered) {
            break;
        }
        if cli.is_none() {
            polled.sessions += 1;
            match Cli::open(s, &secrets, stop.cloned()) {
                Ok(c) => {
                    if polled.prompt.is_none() {
                        polled.prompt = Some(c.prompt().to_owned());
                        polled.connected = Some(format!(
                            "{} ({}){}",
                            c.peer,
                            c.host_key,
                            c.recorded_at.map_or_else(String::new, |l| format!(
                                ", recorded in {}:{l}",
                                s.known_hosts.display()
                            ))
                        ));
                    }
                    cli = Some(c);
                }
                Err(e) => {
                    if polled.sessions == 1 {
                        polled.error = Some(e);
                        break;
                    }
                    // A replacement session failed: the remaining commands fail with it.
                    let msg = e.to_string();
                    polled.commands.push(outcome(spec, Err(e), 0.0));
                    for rest in &s.commands[polled.commands.len()..] {
                        polled.commands.push(outcome(
                            rest,
                            Err(SshError::Io {
                                device: s.name.clone(),
                                what: format!("not run: `{}`", rest.command),
                                message: msg.clone(),
                            }),
                            0.0,
                        ));
                    }
                    break;
                }
            }
        }
        let c = cli.as_mut().expect("opened above");
        let t = Instant::now();
        let result = c.command(&spec.command, s.command_timeout);
        let seconds = t.elapsed().as_secs_f64();
        let broken = match &result {
            Ok(_) => false,
            Err(SshError::CommandTimeout { .. }) => c.recover().is_err(),
            Err(SshError::Stopped { .. }) => {
                polled.commands.push(outcome(spec, result, seconds));
                break;
            }
            Err(_) => true,
        };
        if broken {
            if let Some(c) = cli.take() {
                c.close();
            }
        }
        polled.commands.push(outcome(spec, result, seconds));
    }
    if let Some(c) = cli.take() {
        c.close();
    }
    polled.seconds = started.elapsed().as_secs_f64();
    polled
}

/// Parses every completed output of a poll with the template the index names for
/// (`device_type`, command).
pub fn parse(polled: &mut Polled, templates: &TemplateLibrary, device_type: &str) {
    for c in &mut polled.commands {
        let Some(out) = &c.output else { continue };
        match templates.parse(device_type, &c.spec.command, out) {
            Ok(p) => {
                c.templates = p.templates;
                c.records = p.records;
            }
            Err(e) => c.parse_error = Some(e),
        }
    }
}

fn outcome(spec: &CommandSpec, result: Result<String, SshError>, seconds: f64) -> CommandOutcome {
    let (output, error) = match result {
        Ok(o) => (Some(o), None),
        Err(e) => (None, Some(e)),
    };
    CommandOutcome {
        spec: spec.clone(),
        output,
        error,
        templates: Vec::new(),
        records: Vec::new(),
        parse_error: None,
        metric_errors: Vec::new(),
        seconds,
    }
}

/// A record's field as text (a `List` value's items joined with `,`).
fn field_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::List(l) => l.join(","),
    }
}

/// Turns polls into events for one device.
pub struct EventMaker {
    host: Arc<str>,
    labels: BTreeMap<String, String>,
    device: String,
    keep_raw: bool,
}

impl EventMaker {
    /// Events about `s`, from the agent `host` with its `agent_labels`.
    pub fn new(
        s: &SshDeviceSettings,
        host: Arc<str>,
        agent_labels: &BTreeMap<String, String>,
    ) -> EventMaker {
        let mut labels = agent_labels.clone();
        labels.extend(s.labels.clone());
        labels.insert("device".into(), s.name.clone());
        EventMaker {
            host,
            labels,
            device: s.name.clone(),
            keep_raw: s.keep_raw,
        }
    }

    fn event(
        &self,
        ts: Timestamp,
        own: &[(&str, &str)],
        attrs: Option<logops_common::event::Attrs<'static>>,
        payload: Payload<'static>,
    ) -> Event<'static> {
        let own: BTreeMap<String, String> = own
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        Event {
            ts,
            host: Cow::Owned(self.host.to_string()),
            source: Cow::Borrowed(SOURCE),
            labels: merge_labels(&self.labels, &own),
            attrs,
            payload,
        }
    }

    fn metric(
        &self,
        ts: Timestamp,
        name: &str,
        own: &[(&str, &str)],
        value: MetricValue,
    ) -> Event<'static> {
        self.event(
            ts,
            own,
            None,
            Payload::Metric {
                name: Cow::Owned(name.to_owned()),
                value,
            },
        )
    }

    /// The metrics `spec` takes from one record; a missing field or a value that is not a
    /// number is an error (the metric is left out).
    fn record_metric(
        &self,
        ts: Timestamp,
        command: &str,
        spec: &MetricSpec,
        r: &Record,
    ) -> Result<Event<'static>, String> {
        let fields = || {
            r.iter()
                .map(|(k, _)| k.to_owned())
                .collect::<Vec<_>>()
                .join(", ")
        };
        let raw = r.get(&spec.field).ok_or_else(|| {
            format!(
                "{}: `{command}`: metric {}: the records have no field `{}` (fields: {})",
                self.device,
                spec.name,
                spec.field,
                fields()
            )
        })?;
        let text = field_text(raw);
        let value: f64 = text.trim().parse().map_err(|_| {
            format!(
                "{}: `{command}`: metric {}: field `{}` is {text:?}, not a number",
                self.device, spec.name, spec.field
            )
        })?;
        let mut own: Vec<(String, String)> = vec![("command".into(), command.to_owned())];
        for l in &spec.labels {
            let v = r.get(l).ok_or_else(|| {
                format!(
                    "{}: `{command}`: metric {}: the records have no field `{l}` for a label (fields: {})",
                    self.device,
                    spec.name,
                    fields()
                )
            })?;
            own.push((l.clone(), field_text(v)));
        }
        let value = match spec.kind {
            MetricKind::Gauge if value.is_finite() => MetricValue::Gauge(value),
            MetricKind::Counter if value.is_finite() && value >= 0.0 => MetricValue::Counter(value),
            _ => {
                return Err(format!(
                    "{}: `{command}`: metric {}: {value} is not a valid {:?} value",
                    self.device, spec.name, spec.kind
                ))
            }
        };
        let own: Vec<(&str, &str)> = own.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        Ok(self.metric(ts, &spec.name, &own, value))
    }

    /// The events of a poll; metric extraction errors are added to the outcomes.
    pub fn events(&self, ts: Timestamp, polled: &mut Polled) -> Vec<Event<'static>> {
        let mut events = Vec::new();
        for c in &mut polled.commands {
            let command = c.spec.command.clone();
            let Some(output) = &c.output else { continue };
            let template = c.templates.join(":");
            for r in &c.records {
                let map: serde_json::Map<String, serde_json::Value> = r
                    .iter()
                    .map(|(k, v)| (k.to_owned(), serde_json::to_value(v).unwrap_or_default()))
                    .collect();
                events.push(self.event(
                    ts,
                    &[("command", &command), ("template", &template)],
                    Some(logops_common::event::Attrs::from_map(&map)),
                    Payload::Record,
                ));
            }
            for spec in &c.spec.metrics {
                for r in &c.records {
                    match self.record_metric(ts, &command, spec, r) {
                        Ok(e) => events.push(e),
                        Err(m) => {
                            if !c.metric_errors.contains(&m) {
                                c.metric_errors.push(m);
                            }
                        }
                    }
                }
            }
            let unparsed = c.templates.is_empty();
            if c.spec.keep_raw.unwrap_or(self.keep_raw) || unparsed {
                let severity = if c
                    .parse_error
                    .as_ref()
                    .is_some_and(|e| !matches!(e, LibraryError::NoTemplate { .. }))
                {
                    Severity::Warning
                } else {
                    Severity::Info
                };
                events.push(self.event(
                    ts,
                    &[("command", &command)],
                    None,
                    Payload::Log {
                        severity: Some(severity),
                        body: Cow::Owned(output.clone()),
                    },
                ));
            }
        }
        let up = if polled.ok() { 1.0 } else { 0.0 };
        events.push(self.metric(ts, "ssh_up", &[], MetricValue::Gauge(up)));
        events.push(self.metric(
            ts,
            "ssh_poll_duration_seconds",
            &[],
            MetricValue::Gauge(polled.seconds),
        ));
        events
    }
}
