//! [`Session`]: one device's requests over the shared [`Transport`], one in flight at a time,
//! with its credentials and, for SNMPv3, its engine state: discovery, time synchronisation
//! (kept ticking locally between polls, so intervals beyond the 150 s window work),
//! re-discovery after the device restarts or is replaced, and USM reports turned into
//! [`UsmFailure`]s.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use snmp2::v3::{Auth, AuthErrorKind, Cipher, KeyExtension, Security};

use super::codec::{self, Answer, CodecError, Kind, Request};
use super::error::{SnmpError, UsmFailure};
use super::names;
use super::oid::Oid;
use super::transport::{Exchange, ExchangeError, Transport};
use crate::config::{
    AuthProtocol, Credentials, DeviceSettings, PrivProtocol, SecurityLevel, UsmSettings,
};

/// The default SNMP port.
pub const DEFAULT_PORT: u16 = 161;

/// usmStats counters (SNMP-USER-BASED-SM-MIB), as reports carry them.
const USM_STATS: [u32; 9] = [1, 3, 6, 1, 6, 3, 15, 1, 1];
/// snmpUnknownPDUHandlers.0 (SNMP-MPD-MIB): reported by a v3 engine that has no application
/// for the request's PDU type, e.g. an agent without GETBULK.
const UNKNOWN_PDU_HANDLERS: [u32; 11] = [1, 3, 6, 1, 6, 3, 11, 2, 1, 3, 0];

/// A device's secrets, read from the environment.
#[derive(Clone)]
pub struct Secrets {
    community: Vec<u8>,
    auth: Vec<u8>,
    privacy: Vec<u8>,
}

impl std::fmt::Debug for Secrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secrets(..)")
    }
}

impl Secrets {
    /// Reads the variables the credentials name. Passwords must have at least 8 characters
    /// (RFC 3414 11.2; net-snmp refuses shorter ones too).
    pub fn load(device: &str, c: &Credentials) -> Result<Secrets, SnmpError> {
        let read = |var: &str, what: &str, min: usize| -> Result<Vec<u8>, SnmpError> {
            let err = |detail: String| SnmpError::Secret {
                device: device.to_owned(),
                detail,
            };
            match std::env::var_os(var) {
                None => Err(err(format!(
                    "the environment variable `{var}` ({what}) is not set"
                ))),
                Some(v) if v.len() < min => Err(err(format!(
                    "the environment variable `{var}` ({what}) is shorter than {min} characters"
                ))),
                Some(v) => Ok(std::os::unix::ffi::OsStrExt::as_bytes(v.as_os_str()).to_vec()),
            }
        };
        Ok(match c {
            Credentials::V2c { community_env } => Secrets {
                community: read(community_env, "the community", 1)?,
                auth: Vec::new(),
                privacy: Vec::new(),
            },
            Credentials::V3(u) => Secrets {
                community: Vec::new(),
                auth: match &u.auth {
                    Some((_, var)) => read(var, "the auth password", 8)?,
                    None => Vec::new(),
                },
                privacy: match &u.privacy {
                    Some((_, var)) => read(var, "the priv password", 8)?,
                    None => Vec::new(),
                },
            },
        })
    }
}

/// Builds snmp2's security state for a user at `level` (no engine yet).
fn security(u: &UsmSettings, level: SecurityLevel, secrets: &Secrets) -> Security {
    let auth = match (level, &u.privacy) {
        (SecurityLevel::NoAuthNoPriv, _) => Auth::NoAuthNoPriv,
        (SecurityLevel::AuthNoPriv, _) | (SecurityLevel::AuthPriv, None) => Auth::AuthNoPriv,
        (SecurityLevel::AuthPriv, Some((p, _))) => Auth::AuthPriv {
            cipher: match p {
                PrivProtocol::Des => Cipher::Des,
                PrivProtocol::Aes => Cipher::Aes128,
                PrivProtocol::Aes192 | PrivProtocol::Aes192c => Cipher::Aes192,
                PrivProtocol::Aes256 | PrivProtocol::Aes256c => Cipher::Aes256,
            },
            privacy_password: secrets.privacy.clone(),
        },
    };
    let password: &[u8] = if level == SecurityLevel::NoAuthNoPriv {
        b""
    } else {
        &secrets.auth
    };
    let mut s = Security::new(u.user.as_bytes(), password)
        .with_auth(auth)
        .with_context_name(&u.context);
    if let Some((p, _)) = &u.auth {
        s = s.with_auth_protocol(match p {
            AuthProtocol::Md5 => snmp2::v3::AuthProtocol::Md5,
            AuthProtocol::Sha => snmp2::v3::AuthProtocol::Sha1,
            AuthProtocol::Sha224 => snmp2::v3::AuthProtocol::Sha224,
            AuthProtocol::Sha256 => snmp2::v3::AuthProtocol::Sha256,
            AuthProtocol::Sha384 => snmp2::v3::AuthProtocol::Sha384,
            AuthProtocol::Sha512 => snmp2::v3::AuthProtocol::Sha512,
        });
    }
    if let Some((p, _)) = &u.privacy {
        s = match p {
            PrivProtocol::Aes192 | PrivProtocol::Aes256 => {
                s.with_key_extension_method(KeyExtension::Blumenthal)
            }
            PrivProtocol::Aes192c | PrivProtocol::Aes256c => {
                s.with_key_extension_method(KeyExtension::Reeder)
            }
            PrivProtocol::Des | PrivProtocol::Aes => s,
        };
    }
    s
}

/// SNMPv3 state of a session.
struct Usm {
    settings: UsmSettings,
    secrets: Secrets,
    /// `None` only while being rebuilt.
    security: Option<Security>,
    discovered: bool,
    /// The device's engine time at a moment of ours, to keep its clock between answers.
    synced: Option<(i64, Instant)>,
}

impl Usm {
    fn sec(&self) -> &Security {
        self.security
            .as_ref()
            .expect("security is only taken while rebuilt")
    }

    fn sec_mut(&mut self) -> &mut Security {
        self.security
            .as_mut()
            .expect("security is only taken while rebuilt")
    }

    /// Sets the engine time we send to the device's, advanced by our clock since we learned
    /// it. Returns the time set.
    fn tick(&mut self) -> i64 {
        let Some((t0, at)) = self.synced else {
            return self.sec().engine_time();
        };
        let t = t0.saturating_add(i64::try_from(at.elapsed().as_secs()).unwrap_or(i64::MAX));
        if t != self.sec().engine_time() {
            let s = self.security.take().expect("present");
            let boots = s.engine_boots();
            self.security = Some(s.with_engine_boots_and_time(boots, t));
        }
        t
    }

    /// After an answer: if it moved the engine time away from what we sent, that is the
    /// device's time now.
    fn learned(&mut self, sent: i64) {
        let t = self.sec().engine_time();
        if t != sent || self.synced.is_none() {
            self.synced = Some((t, Instant::now()));
        }
    }

    fn forget_engine(&mut self) {
        let s = self.sec_mut();
        s.reset_engine_id();
        s.reset_engine_counters();
        self.discovered = false;
        self.synced = None;
    }
}

enum AuthState {
    Community(Vec<u8>),
    Usm(Box<Usm>),
}

/// Counters of a session; the poller reads and resets them.
#[derive(Debug, Default, Clone, Copy)]
pub struct Counters {
    /// Requests made (each possibly sent several times).
    pub requests: u64,
    /// Datagrams sent.
    pub attempts: u64,
    /// Attempts that timed out.
    pub timeouts: u64,
    /// Answers received.
    pub answers: u64,
}

/// One device's requests.
pub struct Session {
    device: Arc<str>,
    address: String,
    literal: Option<SocketAddr>,
    peer: Option<SocketAddr>,
    transport: Arc<Transport>,
    shard: usize,
    timeout: Duration,
    retries: u32,
    auth: AuthState,
    /// Counters since the last [`Session::take_counters`].
    counters: Counters,
}

/// `host:port`, `host`, `[v6]:port` or a bare IPv6 address → (host, port), port 161 when
/// left out.
pub fn split_address(address: &str) -> (String, u16) {
    crate::sources::split_host_port(address, DEFAULT_PORT)
}

/// What a request was, for messages: `GET sysUpTime.0 (1.3.6.1.2.1.1.3.0) and 3 more`.
pub fn describe_request(req: &Request<'_>) -> String {
    let oids = req.oids();
    match oids {
        [] => format!("{} (engine discovery)", req.verb()),
        [one] => format!("{} {}", req.verb(), names::describe(one)),
        [first, rest @ ..] => format!(
            "{} {} and {} more",
            req.verb(),
            names::describe(first),
            rest.len()
        ),
    }
}

impl Session {
    /// A session for a device whose secrets were read.
    pub fn new(
        settings: &DeviceSettings,
        secrets: Secrets,
        transport: Arc<Transport>,
        shard: usize,
    ) -> Session {
        let auth = match &settings.credentials {
            Credentials::V2c { .. } => AuthState::Community(secrets.community.clone()),
            Credentials::V3(u) => AuthState::Usm(Box::new(Usm {
                security: Some(security(u, u.level, &secrets)),
                settings: u.clone(),
                secrets,
                discovered: false,
                synced: None,
            })),
        };
        let literal = match settings.address.parse::<SocketAddr>() {
            Ok(sa) => Some(sa),
            Err(_) => settings
                .address
                .parse::<std::net::IpAddr>()
                .ok()
                .map(|ip| SocketAddr::new(ip, DEFAULT_PORT)),
        };
        Session {
            device: Arc::from(settings.name.as_str()),
            address: settings.address.clone(),
            literal,
            peer: literal,
            transport,
            shard,
            timeout: settings.timeout,
            retries: settings.retries,
            auth,
            counters: Counters::default(),
        }
    }

    /// The device's name.
    pub fn device(&self) -> &str {
        &self.device
    }

    /// The address the last resolution gave.
    pub fn peer(&self) -> Option<SocketAddr> {
        self.peer
    }

    /// Counters since the last call, reset.
    pub fn take_counters(&mut self) -> Counters {
        std::mem::take(&mut self.counters)
    }

    /// Counters since the last [`Session::take_counters`].
    pub fn counters(&self) -> Counters {
        self.counters
    }

    /// `v2c` or `v3 <level> user <user>`.
    pub fn describe_security(&self) -> String {
        match &self.auth {
            AuthState::Community(_) => "v2c".into(),
            AuthState::Usm(u) => format!("v3 {} user `{}`", u.settings.level, u.settings.user),
        }
    }

    /// Resolves the address (names at every call; literals once).
    pub async fn resolve(&mut self) -> Result<SocketAddr, SnmpError> {
        if let Some(sa) = self.literal {
            return Ok(sa);
        }
        let (host, port) = split_address(&self.address);
        let err = |detail: String| SnmpError::Resolve {
            device: self.device.to_string(),
            address: self.address.clone(),
            detail,
        };
        let found = tokio::net::lookup_host((host.as_str(), port))
            .await
            .map_err(|e| err(e.to_string()))?;
        let mut first = None;
        for a in found {
            // Keep the address we used if it is still among the answers.
            if Some(a) == self.peer {
                return Ok(a);
            }
            first.get_or_insert(a);
        }
        let a = first.ok_or_else(|| err("no addresses".into()))?;
        self.peer = Some(a);
        Ok(a)
    }

    fn peer_or_err(&self, what: &(dyn Fn() -> String + Sync)) -> Result<SocketAddr, SnmpError> {
        self.peer.ok_or_else(|| SnmpError::Resolve {
            device: self.device.to_string(),
            address: self.address.clone(),
            detail: format!("not resolved before {}", what()),
        })
    }

    fn exchange_error(
        &self,
        what: &(dyn Fn() -> String + Sync),
        e: ExchangeError<CodecError>,
    ) -> SnmpError {
        match e {
            ExchangeError::Timeout { attempts } => SnmpError::Timeout {
                device: self.device.to_string(),
                what: what(),
                attempts,
                timeout: self.timeout,
                hint: None,
            },
            ExchangeError::Io(e) => SnmpError::Io {
                device: self.device.to_string(),
                what: what(),
                detail: e.to_string(),
            },
            ExchangeError::Encode(e) => {
                self.protocol(what, format!("cannot encode the request: {e}"))
            }
        }
    }

    fn protocol(&self, what: &(dyn Fn() -> String + Sync), detail: String) -> SnmpError {
        SnmpError::Protocol {
            device: self.device.to_string(),
            what: what(),
            detail,
        }
    }

    fn usm(&self, what: &(dyn Fn() -> String + Sync), failure: UsmFailure) -> SnmpError {
        SnmpError::Usm {
            device: self.device.to_string(),
            what: what(),
            failure,
        }
    }

    /// Sends one datagram exchange and counts it.
    async fn send(
        &mut self,
        peer: SocketAddr,
        timeout: Duration,
        retries: u32,
        encode: impl FnMut(i32) -> Result<Vec<u8>, CodecError>,
    ) -> Result<Exchange, ExchangeError<CodecError>> {
        let shard = self.shard;
        counted(
            &self.transport,
            shard,
            &mut self.counters,
            peer,
            timeout,
            retries,
            encode,
        )
        .await
    }

    /// One request: the answer (a Response with no error-status check), or why not.
    pub async fn request(&mut self, req: &Request<'_>) -> Result<Answer, SnmpError> {
        self.counters.requests += 1;
        let what = || describe_request(req);
        let peer = self.peer_or_err(&what)?;
        let (timeout, retries) = (self.timeout, self.retries);
        match &self.auth {
            AuthState::Community(c) => {
                let c = c.clone();
                let ex = self
                    .send(peer, timeout, retries, |id| codec::encode_v2c(&c, id, req))
                    .await
                    .map_err(|e| self.exchange_error(&what, e))?;
                let a = codec::decode_v2c(&ex.reply, &c)
                    .map_err(|e| self.protocol(&what, format!("undecodable answer: {e}")))?;
                if a.kind != Kind::Response || a.request_id != ex.id {
                    return Err(
                        self.protocol(&what, "the answer is not a Response to this request".into())
                    );
                }
                Ok(a)
            }
            AuthState::Usm(_) => self.request_v3(peer, req, &what).await,
        }
    }

    fn usm_state(&mut self) -> &mut Usm {
        match &mut self.auth {
            AuthState::Usm(u) => u,
            AuthState::Community(_) => unreachable!("only called for v3 sessions"),
        }
    }

    /// Engine discovery: the device's engine id, boots and time.
    async fn discover(
        &mut self,
        peer: SocketAddr,
        what: &(dyn Fn() -> String + Sync),
    ) -> Result<(), SnmpError> {
        self.usm_state().forget_engine();
        let (timeout, retries) = (self.timeout, self.retries);
        let ex = self
            .send(peer, timeout, retries, codec::encode_discovery)
            .await
            .map_err(|e| {
                let mut e = self.exchange_error(what, e);
                if let SnmpError::Timeout { what, .. } = &mut e {
                    what.push_str(" (while discovering the device's SNMPv3 engine)");
                }
                e
            })?;
        let u = self.usm_state();
        let r = codec::decode_v3(&ex.reply, u.sec_mut());
        match r {
            Ok(_) | Err(CodecError::Snmp(snmp2::Error::AuthUpdated))
                if !u.sec().engine_id().is_empty() =>
            {
                u.discovered = true;
                u.synced = Some((u.sec().engine_time(), Instant::now()));
                let boots = u.sec().engine_boots();
                tracing::debug!(device = %self.device, boots, "snmp: v3 engine discovered");
                Ok(())
            }
            Ok(_) | Err(CodecError::Snmp(snmp2::Error::AuthUpdated)) => Err(self.protocol(
                what,
                "the engine discovery answer carries no engine id".into(),
            )),
            Err(e) => Err(self.protocol(what, format!("undecodable engine discovery answer: {e}"))),
        }
    }

    async fn request_v3(
        &mut self,
        peer: SocketAddr,
        req: &Request<'_>,
        what: &(dyn Fn() -> String + Sync),
    ) -> Result<Answer, SnmpError> {
        let (timeout, retries) = (self.timeout, self.retries);
        let mut rediscovered = false;
        let mut resynced = 0;
        loop {
            if !self.usm_state().discovered {
                self.discover(peer, what).await?;
            }
            let sent = self.usm_state().tick();
            let ex = {
                let Session {
                    transport,
                    auth,
                    counters,
                    shard,
                    ..
                } = &mut *self;
                let AuthState::Usm(u) = auth else {
                    unreachable!("a v3 session")
                };
                let sec = u.sec();
                counted(transport, *shard, counters, peer, timeout, retries, |id| {
                    codec::encode_v3(sec, id, req)
                })
                .await
            };
            let ex = ex.map_err(|e| self.exchange_error(what, e))?;
            let u = self.usm_state();
            let decoded = codec::decode_v3(&ex.reply, u.sec_mut());
            u.learned(sent);
            let user = u.settings.user.clone();
            let level = u.settings.level.to_string();
            let failure = match decoded {
                Ok(a) if a.kind == Kind::Response => {
                    if a.request_id != ex.id {
                        return Err(self.protocol(what, "the answer is not for this request".into()));
                    }
                    return Ok(a);
                }
                Ok(a) if a.kind == Kind::Report => report_failure(&a, &user, &level),
                Ok(_) => return Err(self.protocol(what, "the answer is neither a Response nor a Report".into())),
                Err(CodecError::Snmp(snmp2::Error::AuthUpdated)) => {
                    // Discovery or time synchronisation happened: send again.
                    resynced += 1;
                    if resynced > 3 {
                        UsmFailure::NotInTimeWindow
                    } else {
                        continue;
                    }
                }
                Err(CodecError::Snmp(snmp2::Error::AuthFailure(kind))) => match kind {
                    AuthErrorKind::NotAuthenticated => match codec::plain_report(&ex.reply) {
                        Some(report) => report_failure(&report, &user, &level),
                        None => UsmFailure::Other(
                            "the device answered without authentication".into(),
                        ),
                    },
                    AuthErrorKind::EngineTimeMismatch => UsmFailure::NotInTimeWindow,
                    AuthErrorKind::EngineIdMismatch | AuthErrorKind::EngineBootsMismatch => {
                        UsmFailure::UnknownEngineId
                    }
                    AuthErrorKind::SignatureMismatch => UsmFailure::Other(
                        "the answer's HMAC does not match: wrong auth password or protocol, or a tampered answer".into(),
                    ),
                    AuthErrorKind::KeyExtensionRequired => UsmFailure::Other(
                        "this auth/priv protocol pair needs a key extension method".into(),
                    ),
                    other => UsmFailure::Other(format!("the answer fails USM checks: {other}")),
                },
                Err(e) => return Err(self.protocol(what, format!("undecodable answer: {e}"))),
            };
            match failure {
                UsmFailure::NotInTimeWindow if resynced < 3 => {
                    // snmp2 took the device's time from the (authenticated) report or
                    // answer: try again with it.
                    resynced += 1;
                    let u = self.usm_state();
                    u.synced = Some((u.sec().engine_time(), Instant::now()));
                }
                UsmFailure::UnknownEngineId if !rediscovered => {
                    rediscovered = true;
                    self.usm_state().forget_engine();
                }
                f => return Err(self.usm(what, f)),
            }
        }
    }

    /// A one-attempt exchange for diagnosis: `Some(answer bytes)` or `None` on timeout.
    async fn probe(
        &mut self,
        encode: impl FnMut(i32) -> Result<Vec<u8>, CodecError>,
    ) -> Option<Vec<u8>> {
        let peer = self.peer?;
        let timeout = self.timeout;
        self.send(peer, timeout, 0, encode)
            .await
            .ok()
            .map(|ex| ex.reply)
    }

    /// After a timeout: finds out what is wrong. Costs one or two more requests.
    pub async fn explain_timeout(&mut self) -> Diagnosis {
        match self.diagnose().await {
            Ok(hint) => Diagnosis::Hint(hint),
            Err(f) => Diagnosis::Usm(f),
        }
    }

    async fn diagnose(&mut self) -> Result<String, UsmFailure> {
        let down = "the device does not answer at all: it is down, unreachable, filtered, or no SNMP agent listens on that address and port";
        match &self.auth {
            AuthState::Community(_) => {
                match self.probe(codec::encode_discovery).await {
                    Some(_) => Ok("the device answers SNMP (its v3 engine replied to a discovery probe) but not to this community: wrong community, or the community is not allowed from this address".into()),
                    None => Ok(down.into()),
                }
            }
            AuthState::Usm(u) => {
                if !u.discovered {
                    return Ok(down.into());
                }
                let level = u.settings.level;
                let user = u.settings.user.clone();
                if level != SecurityLevel::AuthPriv {
                    return Ok(format!("the device answered engine discovery but not this {level} request for user `{user}`: it may be overloaded, or drop requests from this address"));
                }
                // The same user at authNoPriv: if that is answered, user and auth password
                // are right and the device cannot decrypt our authPriv requests.
                let probe = security(&u.settings, SecurityLevel::AuthNoPriv, &u.secrets)
                    .with_engine_boots_and_time(u.sec().engine_boots(), u.sec().engine_time())
                    .with_engine_id(u.sec().engine_id());
                let Ok(mut probe) = probe else {
                    return Ok(down.into());
                };
                let uptime = [Oid::new(vec![1, 3, 6, 1, 2, 1, 1, 3, 0])];
                let sec = probe.clone();
                let Some(reply) = self
                    .probe(|id| codec::encode_v3(&sec, id, &Request::Get(&uptime)))
                    .await
                else {
                    return Ok("the device answered engine discovery but no request since: it may be overloaded, or drop requests from this address".into());
                };
                match codec::decode_v3(&reply, &mut probe) {
                    Ok(a) if a.kind == Kind::Response => Err(UsmFailure::WrongPriv {
                        user,
                        evidence: "encrypted requests time out, but the device answers this user's authenticated requests without privacy: it cannot decrypt ours (net-snmp drops them silently and counts usmStatsDecryptionErrors)".into(),
                    }),
                    Ok(a) => Err(report_failure(&a, &user, "authNoPriv")),
                    Err(_) => match codec::plain_report(&reply) {
                        Some(r) => Err(report_failure(&r, &user, "authNoPriv")),
                        None => Ok("the device answered engine discovery, but neither encrypted requests nor a probe without privacy".into()),
                    },
                }
            }
        }
    }
}

/// What a diagnosis after a timeout found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Diagnosis {
    /// Still a timeout; this says what kind.
    Hint(String),
    /// In fact a USM failure (a wrong priv password makes requests time out).
    Usm(UsmFailure),
}

/// One exchange over the transport, counted.
async fn counted(
    transport: &Transport,
    shard: usize,
    counters: &mut Counters,
    peer: SocketAddr,
    timeout: Duration,
    retries: u32,
    encode: impl FnMut(i32) -> Result<Vec<u8>, CodecError>,
) -> Result<Exchange, ExchangeError<CodecError>> {
    let r = transport
        .exchange(peer, shard, timeout, retries, encode)
        .await;
    match &r {
        Ok(ex) => {
            counters.attempts += u64::from(ex.attempts);
            counters.timeouts += u64::from(ex.timeouts);
            counters.answers += 1;
        }
        Err(ExchangeError::Timeout { attempts }) => {
            counters.attempts += u64::from(*attempts);
            counters.timeouts += u64::from(*attempts);
        }
        Err(_) => {}
    }
    r
}

/// The failure a v3 report stands for.
fn report_failure(a: &Answer, user: &str, level: &str) -> UsmFailure {
    if a.varbinds
        .iter()
        .any(|v| v.oid.arcs() == UNKNOWN_PDU_HANDLERS)
    {
        return UsmFailure::UnknownPduHandler;
    }
    let counter = a
        .varbinds
        .iter()
        .find(|v| v.oid.starts_with(&USM_STATS) && v.oid.len() == USM_STATS.len() + 2)
        .map(|v| v.oid.arcs()[USM_STATS.len()]);
    match counter {
        Some(1) => UsmFailure::UnsupportedLevel {
            user: user.to_owned(),
            level: level.to_owned(),
        },
        Some(2) => UsmFailure::NotInTimeWindow,
        Some(3) => UsmFailure::UnknownUser {
            user: user.to_owned(),
        },
        Some(4) => UsmFailure::UnknownEngineId,
        Some(5) => UsmFailure::WrongAuth {
            user: user.to_owned(),
        },
        Some(6) => UsmFailure::WrongPriv {
            user: user.to_owned(),
            evidence: "the device reported usmStatsDecryptionErrors".into(),
        },
        _ => UsmFailure::Other(format!(
            "the device sent a report: {}",
            a.varbinds
                .iter()
                .map(|v| names::describe(&v.oid))
                .collect::<Vec<_>>()
                .join(", ")
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::super::codec::{Value, Varbind};
    use super::*;

    #[test]
    fn addresses_split_with_the_default_port() {
        assert_eq!(split_address("10.0.0.1:1161"), ("10.0.0.1".into(), 1161));
        assert_eq!(split_address("10.0.0.1"), ("10.0.0.1".into(), 161));
        assert_eq!(
            split_address("sw1.example.net"),
            ("sw1.example.net".into(), 161)
        );
        assert_eq!(
            split_address("sw1.example.net:16100"),
            ("sw1.example.net".into(), 16100)
        );
        assert_eq!(
            split_address("[2001:db8::1]:162"),
            ("2001:db8::1".into(), 162)
        );
        assert_eq!(split_address("2001:db8::1"), ("2001:db8::1".into(), 161));
    }

    #[test]
    fn reports_name_their_failure() {
        let report = |n: u32| Answer {
            kind: Kind::Report,
            request_id: 1,
            error_status: 0,
            error_index: 0,
            varbinds: vec![Varbind {
                oid: Oid::new(vec![1, 3, 6, 1, 6, 3, 15, 1, 1, n, 0]),
                value: Value::Counter32(1),
            }],
        };
        let text = |n| report_failure(&report(n), "monitor", "authPriv").to_string();
        assert!(text(3).starts_with("unknown user `monitor`"), "{}", text(3));
        assert!(text(5).starts_with("wrong auth password"), "{}", text(5));
        assert!(text(6).starts_with("wrong priv password"), "{}", text(6));
        assert!(text(2).starts_with("not in time window"), "{}", text(2));
        assert!(text(1).contains("does not accept authPriv"), "{}", text(1));
        assert!(text(9).contains("sent a report"), "{}", text(9));
        let no_bulk = Answer {
            varbinds: vec![Varbind {
                oid: Oid::new(UNKNOWN_PDU_HANDLERS.to_vec()),
                value: Value::Counter32(1),
            }],
            ..report(0)
        };
        assert_eq!(
            report_failure(&no_bulk, "monitor", "authPriv"),
            UsmFailure::UnknownPduHandler
        );
    }

    #[test]
    fn missing_or_short_secrets_are_named() {
        let c = Credentials::V3(UsmSettings {
            user: "u".into(),
            level: SecurityLevel::AuthNoPriv,
            auth: Some((AuthProtocol::Sha, "LOGOPS_TEST_SURELY_UNSET_VAR".into())),
            privacy: None,
            context: String::new(),
        });
        let e = Secrets::load("r1", &c).unwrap_err().to_string();
        assert_eq!(
            e,
            "r1: the environment variable `LOGOPS_TEST_SURELY_UNSET_VAR` (the auth password) is not set"
        );
    }
}
