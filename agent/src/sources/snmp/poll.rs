//! [`Poller`]: one poll of a device (its GETs, its walks, then the label columns its rows
//! need from tables that were not walked) turned into events.

use std::sync::Arc;
use std::time::Instant;

use logops_common::{Event, Timestamp};

use super::convert::{Converter, PollData, SYS_UPTIME};
use super::error::{SnmpError, UsmFailure};
use super::names::{self, Known};
use super::oid::Oid;
use super::session::{Counters, Diagnosis, Session};
use super::walk::{self, WalkMode};
use crate::config::DeviceSettings;

/// What a poll gave.
pub struct Polled {
    /// Its events (also when it failed: what was complete, with `snmp_up` 0).
    pub events: Vec<Event<'static>>,
    /// Why it failed.
    pub error: Option<SnmpError>,
    /// Requests, attempts and timeouts it took.
    pub counters: Counters,
    /// How long it took.
    pub seconds: f64,
}

/// Polls one device again and again.
pub struct Poller {
    gets: Vec<Oid>,
    walks: Vec<Oid>,
    mode: WalkMode,
    converter: Converter,
    /// The last poll's failure reason, so a diagnosis runs once per new failure.
    last_failure: Option<&'static str>,
    /// The last poll's USM failure, repeated while timeouts go on after a wrong priv password.
    last_usm: Option<UsmFailure>,
}

impl Poller {
    /// A poller for a device whose settings passed the configuration check (names that do
    /// not resolve are left out and logged). `sysUpTime.0` is always fetched: it tells
    /// reboots apart from counter wraps.
    pub fn new(
        settings: &DeviceSettings,
        host: Arc<str>,
        agent_labels: &std::collections::BTreeMap<String, String>,
    ) -> Poller {
        let resolve = |list: &[String], scalar: bool| -> Vec<Oid> {
            list.iter()
                .filter_map(|n| match names::resolve(n, scalar) {
                    Ok(o) => Some(o),
                    Err(e) => {
                        tracing::error!(device = %settings.name, "snmp: {e}; left out");
                        None
                    }
                })
                .collect()
        };
        let mut gets = resolve(&settings.get, true);
        let uptime = Oid::new(SYS_UPTIME.to_vec());
        if !gets.contains(&uptime) {
            gets.insert(0, uptime);
        }
        Poller {
            gets,
            walks: resolve(&settings.walk, false),
            mode: WalkMode {
                bulk: settings.bulk,
                max_repetitions: settings.max_repetitions,
            },
            converter: Converter::new(host, agent_labels, &settings.name, &settings.labels),
            last_failure: None,
            last_usm: None,
        }
    }

    /// Whether walks currently use GETBULK.
    pub fn bulk(&self) -> bool {
        self.mode.bulk
    }

    /// Label cells that rows of `walked` need from tables that were not walked.
    fn missing_labels(&self, data: &PollData) -> Vec<Oid> {
        let covered = |column: &Oid| self.walks.iter().any(|r| column.starts_with(r.arcs()));
        let mut want = Vec::new();
        for (_, varbinds) in &data.walks {
            for vb in varbinds {
                let Known::Cell { table, index, .. } = names::classify(&vb.oid) else {
                    continue;
                };
                for l in table.labels {
                    let column = Oid::new(l.entry).child(&[l.sub]);
                    if covered(&column) {
                        continue;
                    }
                    let index: Oid = match format!("0.0.{index}").parse::<Oid>() {
                        Ok(o) => Oid::new(&o.arcs()[2..]),
                        Err(_) => continue,
                    };
                    want.push(column.child(index.arcs()));
                }
            }
        }
        want.sort();
        want.dedup();
        want
    }

    async fn run(&mut self, s: &mut Session, data: &mut PollData) -> Result<(), SnmpError> {
        s.resolve().await?;
        data.gets = walk::get(s, &self.gets).await?;
        for root in &self.walks {
            let v = walk::walk(s, root, &mut self.mode).await?;
            data.walks.push((root.clone(), v));
        }
        let missing = self.missing_labels(data);
        if !missing.is_empty() {
            data.labels = walk::get(s, &missing).await?;
        }
        Ok(())
    }

    /// Polls once. With `always_explain`, a timeout is diagnosed even when the previous
    /// poll timed out too (otherwise only the first of a series is: it costs requests).
    pub async fn poll(&mut self, s: &mut Session, always_explain: bool) -> Polled {
        let ts = Timestamp::now();
        let started = Instant::now();
        let mut data = PollData::default();
        let mut error = self.run(s, &mut data).await.err();
        let diagnose =
            always_explain || !matches!(self.last_failure, Some("timeout" | "wrong_priv"));
        if let Some(SnmpError::Timeout {
            hint, device, what, ..
        }) = &mut error
        {
            if diagnose {
                match s.explain_timeout().await {
                    Diagnosis::Hint(h) => *hint = Some(h),
                    Diagnosis::Usm(failure) => {
                        error = Some(SnmpError::Usm {
                            device: std::mem::take(device),
                            what: std::mem::take(what),
                            failure,
                        })
                    }
                }
            } else if let Some(failure) = self.last_usm.clone() {
                // Still the same: keep reporting it as such without probing again.
                error = Some(SnmpError::Usm {
                    device: std::mem::take(device),
                    what: std::mem::take(what),
                    failure,
                });
            }
        }
        data.complete = error.is_none();
        let seconds = started.elapsed().as_secs_f64();
        let events = self.converter.events(ts, &data, error.is_none(), seconds);
        self.last_failure = error.as_ref().map(SnmpError::reason);
        self.last_usm = match &error {
            Some(SnmpError::Usm { failure, .. }) => Some(failure.clone()),
            _ => None,
        };
        Polled {
            events,
            error,
            counters: s.take_counters(),
            seconds,
        }
    }
}
