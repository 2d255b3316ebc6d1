//! Walks and GETs over a [`Session`]: a GETBULK loop that stops at the end of the subtree and
//! on endOfMibView, falling back to GETNEXT for agents that reject GETBULK; GETs in chunks.

use super::codec::{Answer, Request, Value, Varbind};
use super::error::{status_name, SnmpError};
use super::names;
use super::oid::Oid;
use super::session::{describe_request, Session};

/// Most varbinds one walk may return: a guard against agents that never end a subtree.
pub const MAX_WALK_VARBINDS: usize = 1_000_000;
/// Most OIDs in one GET.
pub const GET_CHUNK: usize = 32;

/// error-status tooBig.
const TOO_BIG: u32 = 1;
/// error-status noSuchName (v1-style end of MIB for GETNEXT).
const NO_SUCH_NAME: u32 = 2;

/// How a device is walked; changes when it turns out to reject GETBULK.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WalkMode {
    /// GETBULK (true) or GETNEXT.
    pub bulk: bool,
    /// GETBULK max-repetitions (halved on tooBig).
    pub max_repetitions: u32,
}

/// What one GETBULK/GETNEXT answer means for the walk.
#[derive(Debug, PartialEq)]
pub enum Step {
    /// Rows inside the subtree; the walk goes on after the last one.
    More(Vec<Varbind>),
    /// The last rows of the subtree; the walk is over.
    Done(Vec<Varbind>),
}

/// Sorts an answer's varbinds into the subtree's and the end: stops at the first varbind
/// outside `root` or at endOfMibView; an OID not after the previous one is an error (an agent
/// that would loop forever).
pub fn step(root: &Oid, last: &Oid, varbinds: Vec<Varbind>) -> Result<Step, String> {
    if varbinds.is_empty() {
        return Ok(Step::Done(Vec::new()));
    }
    let mut rows = Vec::with_capacity(varbinds.len());
    let mut prev = last;
    for vb in &varbinds {
        if vb.value == Value::EndOfMibView || !vb.oid.starts_with(root.arcs()) {
            return Ok(Step::Done(rows));
        }
        if vb.oid <= *prev {
            return Err(format!(
                "the device walked backwards: {} came after {}",
                vb.oid, prev
            ));
        }
        rows.push(vb.clone());
        prev = &rows.last().expect("just pushed").oid;
    }
    Ok(Step::More(rows))
}

fn status_error(s: &Session, req: &Request<'_>, a: &Answer) -> SnmpError {
    let at = match (a.error_index as usize).checked_sub(1) {
        Some(i) if i < req.oids().len() => format!(" at {}", names::describe(&req.oids()[i])),
        _ => String::new(),
    };
    SnmpError::Status {
        device: s.device().to_owned(),
        what: describe_request(req),
        status: status_name(a.error_status),
        code: a.error_status,
        at,
    }
}

/// Walks the subtree under `root`.
pub async fn walk(
    s: &mut Session,
    root: &Oid,
    mode: &mut WalkMode,
) -> Result<Vec<Varbind>, SnmpError> {
    let mut out: Vec<Varbind> = Vec::new();
    let mut last = root.clone();
    loop {
        let cursor = [last.clone()];
        let req = if mode.bulk {
            Request::GetBulk {
                oids: &cursor,
                max_repetitions: mode.max_repetitions,
            }
        } else {
            Request::GetNext(&cursor)
        };
        let answered_before = s.counters().answers > 0;
        let a = match s.request(&req).await {
            Ok(a) => a,
            // A device that answered other requests but not GETBULK may drop them.
            Err(e) if e.is_timeout() && mode.bulk && answered_before => {
                tracing::info!(device = s.device(), root = %names::describe(root), "snmp: GETBULK got no answer from a device that answers otherwise; walking it with GETNEXT");
                mode.bulk = false;
                continue;
            }
            // An SNMPv3 engine without GETBULK says so in a report.
            Err(e) if e.is_unsupported_request() && mode.bulk => {
                tracing::info!(device = s.device(), root = %names::describe(root), "snmp: the device has no GETBULK (it reported snmpUnknownPDUHandlers); walking it with GETNEXT");
                mode.bulk = false;
                continue;
            }
            Err(e) => return Err(e),
        };
        if a.error_status != 0 {
            if mode.bulk && a.error_status == TOO_BIG && mode.max_repetitions > 1 {
                mode.max_repetitions /= 2;
                continue;
            }
            if mode.bulk {
                tracing::info!(
                    device = s.device(),
                    status = status_name(a.error_status),
                    "snmp: the device rejects GETBULK; walking it with GETNEXT"
                );
                mode.bulk = false;
                continue;
            }
            if a.error_status == NO_SUCH_NAME {
                return Ok(out);
            }
            return Err(status_error(s, &req, &a));
        }
        let what = || format!("walk {}", names::describe(root));
        match step(root, &last, a.varbinds) {
            Ok(Step::More(rows)) => {
                out.extend(rows);
                last = out.last().map_or(last, |v| v.oid.clone());
            }
            Ok(Step::Done(rows)) => {
                out.extend(rows);
                return Ok(out);
            }
            Err(detail) => {
                return Err(SnmpError::Protocol {
                    device: s.device().to_owned(),
                    what: what(),
                    detail,
                })
            }
        }
        if out.len() > MAX_WALK_VARBINDS {
            return Err(SnmpError::Protocol {
                device: s.device().to_owned(),
                what: what(),
                detail: format!("more than {MAX_WALK_VARBINDS} varbinds: stopped"),
            });
        }
    }
}

/// GETs `oids` in chunks; every varbind comes back, exceptions (noSuchObject, ...) included.
pub async fn get(s: &mut Session, oids: &[Oid]) -> Result<Vec<Varbind>, SnmpError> {
    let mut out = Vec::with_capacity(oids.len());
    let mut chunk = GET_CHUNK;
    let mut rest = oids;
    while !rest.is_empty() {
        let (now, later) = rest.split_at(chunk.min(rest.len()));
        let req = Request::Get(now);
        let a = s.request(&req).await?;
        if a.error_status == TOO_BIG && chunk > 1 {
            chunk /= 2;
            continue;
        }
        if a.error_status != 0 {
            return Err(status_error(s, &req, &a));
        }
        out.extend(a.varbinds);
        rest = later;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vb(oid: &str, value: Value) -> Varbind {
        Varbind {
            oid: oid.parse().unwrap(),
            value,
        }
    }

    #[test]
    fn a_walk_stops_at_the_end_of_its_subtree_and_at_end_of_mib_view() {
        let root: Oid = "1.3.6.1.2.1.2.2".parse().unwrap();
        let r = step(
            &root,
            &root,
            vec![
                vb("1.3.6.1.2.1.2.2.1.1.1", Value::Integer(1)),
                vb("1.3.6.1.2.1.2.2.1.1.2", Value::Integer(2)),
            ],
        )
        .unwrap();
        assert!(matches!(r, Step::More(ref v) if v.len() == 2));
        let r = step(
            &root,
            &root,
            vec![
                vb("1.3.6.1.2.1.2.2.1.22.4", Value::Null),
                vb("1.3.6.1.2.1.2.3.0", Value::Integer(1)),
                vb("1.3.6.1.2.1.2.3.1", Value::Integer(1)),
            ],
        )
        .unwrap();
        assert!(matches!(r, Step::Done(ref v) if v.len() == 1));
        let r = step(
            &root,
            &root,
            vec![
                vb("1.3.6.1.2.1.2.2.1.1.1", Value::Integer(1)),
                vb("1.3.6.1.2.1.2.2.1.1.1", Value::EndOfMibView),
            ],
        )
        .unwrap();
        assert_eq!(
            r,
            Step::Done(vec![vb("1.3.6.1.2.1.2.2.1.1.1", Value::Integer(1))])
        );
        assert_eq!(step(&root, &root, vec![]).unwrap(), Step::Done(vec![]));
    }

    #[test]
    fn a_walk_that_goes_backwards_is_an_error() {
        let root: Oid = "1.3.6.1.2.1.2.2".parse().unwrap();
        let last: Oid = "1.3.6.1.2.1.2.2.1.5.1".parse().unwrap();
        let e = step(
            &root,
            &last,
            vec![vb("1.3.6.1.2.1.2.2.1.5.1", Value::Integer(1))],
        )
        .unwrap_err();
        assert!(e.contains("walked backwards"), "{e}");
        let e = step(
            &root,
            &root,
            vec![
                vb("1.3.6.1.2.1.2.2.1.5.2", Value::Integer(1)),
                vb("1.3.6.1.2.1.2.2.1.5.1", Value::Integer(1)),
            ],
        )
        .unwrap_err();
        assert!(e.contains("walked backwards"), "{e}");
    }
}
