//! [`SnmpError`]: what went wrong polling a device, always naming the device and what was
//! asked (`GET sysUpTime.0 (1.3.6.1.2.1.1.3.0)`, `walk ifTable (1.3.6.1.2.1.2.2)`).

use std::time::Duration;

/// Why an SNMPv3 engine refused a request (what its report PDU says), in words.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UsmFailure {
    /// usmStatsUnknownUserNames.
    UnknownUser {
        /// The user.
        user: String,
    },
    /// usmStatsWrongDigests: the HMAC did not match.
    WrongAuth {
        /// The user.
        user: String,
    },
    /// The device cannot decrypt what we send (usmStatsDecryptionErrors, or inferred).
    WrongPriv {
        /// The user.
        user: String,
        /// How it was found out.
        evidence: String,
    },
    /// usmStatsUnsupportedSecLevels.
    UnsupportedLevel {
        /// The user.
        user: String,
        /// The level asked for.
        level: String,
    },
    /// usmStatsNotInTimeWindows, still after re-synchronising.
    NotInTimeWindow,
    /// usmStatsUnknownEngineIDs, still after re-discovery.
    UnknownEngineId,
    /// snmpUnknownPDUHandlers (SNMP-MPD-MIB): the engine has no application for the
    /// request's type (an agent without GETBULK reports this).
    UnknownPduHandler,
    /// Anything else snmp2 refused.
    Other(String),
}

impl std::fmt::Display for UsmFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            UsmFailure::UnknownUser { user } => write!(
                f,
                "unknown user `{user}`: the device has no such user (it reported usmStatsUnknownUserNames)"
            ),
            UsmFailure::WrongAuth { user } => write!(
                f,
                "wrong auth password (or auth protocol) for user `{user}`: the device reported usmStatsWrongDigests"
            ),
            UsmFailure::WrongPriv { user, evidence } => write!(
                f,
                "wrong priv password (or priv protocol) for user `{user}`: {evidence}"
            ),
            UsmFailure::UnsupportedLevel { user, level } => write!(
                f,
                "unsupported security level or protocol: the device does not accept {level} for user `{user}` (it reported usmStatsUnsupportedSecLevels)"
            ),
            UsmFailure::NotInTimeWindow => write!(
                f,
                "not in time window: the device keeps rejecting our engine time, even after re-synchronising (usmStatsNotInTimeWindows)"
            ),
            UsmFailure::UnknownEngineId => write!(
                f,
                "unknown engine id: the device keeps rejecting its own engine id, even after re-discovery (usmStatsUnknownEngineIDs)"
            ),
            UsmFailure::UnknownPduHandler => write!(
                f,
                "the device does not handle this type of request (it reported snmpUnknownPDUHandlers)"
            ),
            UsmFailure::Other(m) => f.write_str(m),
        }
    }
}

/// A failed request or poll.
#[derive(Debug, thiserror::Error)]
pub enum SnmpError {
    /// No answer.
    #[error("{device}: {what}: timeout: no answer after {attempts} attempt(s) of {timeout:?} each{}", hint_text(.hint))]
    Timeout {
        /// The device.
        device: String,
        /// What was asked.
        what: String,
        /// Attempts sent.
        attempts: u32,
        /// Timeout of each.
        timeout: Duration,
        /// What the diagnosis found out, when it ran.
        hint: Option<String>,
    },
    /// SNMPv3 security refused.
    #[error("{device}: {what}: SNMPv3: {failure}")]
    Usm {
        /// The device.
        device: String,
        /// What was asked.
        what: String,
        /// Why.
        failure: UsmFailure,
    },
    /// The device answered with an error-status.
    #[error("{device}: {what}: the device answered {status} (error-status {code}){at}")]
    Status {
        /// The device.
        device: String,
        /// What was asked.
        what: String,
        /// The status name (`tooBig`, `authorizationError`, ...).
        status: &'static str,
        /// Its number.
        code: u32,
        /// ` at OID ...` when the error-index names one.
        at: String,
    },
    /// The address does not resolve.
    #[error("{device}: cannot resolve `{address}`: {detail}")]
    Resolve {
        /// The device.
        device: String,
        /// The configured address.
        address: String,
        /// Why.
        detail: String,
    },
    /// An answer that does not make sense (undecodable, wrong id, an agent walking backwards).
    #[error("{device}: {what}: {detail}")]
    Protocol {
        /// The device.
        device: String,
        /// What was asked.
        what: String,
        /// What is wrong.
        detail: String,
    },
    /// The socket failed.
    #[error("{device}: {what}: socket error: {detail}")]
    Io {
        /// The device.
        device: String,
        /// What was asked.
        what: String,
        /// The error.
        detail: String,
    },
    /// A secret's environment variable is missing or unusable.
    #[error("{device}: {detail}")]
    Secret {
        /// The device.
        device: String,
        /// Which variable and why.
        detail: String,
    },
}

fn hint_text(hint: &Option<String>) -> String {
    hint.as_deref()
        .map(|h| format!(" — {h}"))
        .unwrap_or_default()
}

impl SnmpError {
    /// A short reason for self-metrics: `timeout`, `unknown_user`, `wrong_auth`, ...
    pub fn reason(&self) -> &'static str {
        match self {
            SnmpError::Timeout { .. } => "timeout",
            SnmpError::Usm { failure, .. } => match failure {
                UsmFailure::UnknownUser { .. } => "unknown_user",
                UsmFailure::WrongAuth { .. } => "wrong_auth",
                UsmFailure::WrongPriv { .. } => "wrong_priv",
                UsmFailure::UnsupportedLevel { .. } => "unsupported_security_level",
                UsmFailure::NotInTimeWindow => "not_in_time_window",
                UsmFailure::UnknownEngineId => "unknown_engine_id",
                UsmFailure::UnknownPduHandler => "unknown_pdu_handler",
                UsmFailure::Other(_) => "usm",
            },
            SnmpError::Status { .. } => "error_status",
            SnmpError::Resolve { .. } => "resolve",
            SnmpError::Protocol { .. } => "protocol",
            SnmpError::Io { .. } => "socket",
            SnmpError::Secret { .. } => "secret",
        }
    }

    /// Whether the device refused the request's type (an SNMPv3 report of
    /// snmpUnknownPDUHandlers): asking otherwise may work.
    pub fn is_unsupported_request(&self) -> bool {
        matches!(
            self,
            SnmpError::Usm {
                failure: UsmFailure::UnknownPduHandler,
                ..
            }
        )
    }

    /// Whether this is a timeout (a diagnosis may explain it).
    pub fn is_timeout(&self) -> bool {
        matches!(self, SnmpError::Timeout { .. })
    }
}

/// The name of an SNMP error-status (RFC 3416).
pub fn status_name(code: u32) -> &'static str {
    match code {
        0 => "noError",
        1 => "tooBig",
        2 => "noSuchName",
        3 => "badValue",
        4 => "readOnly",
        5 => "genErr",
        6 => "noAccess",
        7 => "wrongType",
        8 => "wrongLength",
        9 => "wrongEncoding",
        10 => "wrongValue",
        11 => "noCreation",
        12 => "inconsistentValue",
        13 => "resourceUnavailable",
        14 => "commitFailed",
        15 => "undoFailed",
        16 => "authorizationError",
        17 => "notWritable",
        18 => "inconsistentName",
        _ => "an unknown error-status",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_name_the_device_and_what_was_asked() {
        let e = SnmpError::Timeout {
            device: "core-sw1".into(),
            what: "GET sysUpTime.0 (1.3.6.1.2.1.1.3.0)".into(),
            attempts: 3,
            timeout: Duration::from_secs(1),
            hint: Some("the device does not answer at all".into()),
        };
        assert_eq!(
            e.to_string(),
            "core-sw1: GET sysUpTime.0 (1.3.6.1.2.1.1.3.0): timeout: no answer after 3 attempt(s) of 1s each — the device does not answer at all"
        );
        assert_eq!(e.reason(), "timeout");
        let e = SnmpError::Usm {
            device: "r1".into(),
            what: "walk ifTable (1.3.6.1.2.1.2.2)".into(),
            failure: UsmFailure::WrongAuth {
                user: "monitor".into(),
            },
        };
        assert!(e
            .to_string()
            .starts_with("r1: walk ifTable (1.3.6.1.2.1.2.2): SNMPv3: wrong auth password"));
        assert_eq!(e.reason(), "wrong_auth");
        assert_eq!(status_name(16), "authorizationError");
    }
}
