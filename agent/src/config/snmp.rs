//! `[snmp]`: the SNMP collector's profiles (`[snmp.profile.NAME]`) and devices
//! (`[[snmp.device]]`).
//!
//! A device takes its credentials either from a profile (`profile = "core-v3"`) or inline
//! (`version = "v2c"`, `community_env = "..."`), never both. Poll settings (`interval`,
//! `timeout`, `retries`, `get`, `walk`, ...) may be set in a profile as defaults for its
//! devices; a device's own value wins. Secrets come from environment variables only.

use std::collections::BTreeMap;
use std::time::Duration;

use logops_common::units::HumanDuration;
use serde::Deserialize;

use crate::sources::snmp::names;

/// SNMP version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SnmpVersion {
    /// SNMPv2c (community).
    V2c,
    /// SNMPv3 (user-based security).
    V3,
}

/// SNMPv3 security level.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum SecurityLevel {
    /// No authentication, no privacy.
    #[serde(rename = "noAuthNoPriv")]
    NoAuthNoPriv,
    /// Authentication (HMAC), no privacy.
    #[serde(rename = "authNoPriv")]
    AuthNoPriv,
    /// Authentication and privacy (encryption).
    #[serde(rename = "authPriv")]
    AuthPriv,
}

impl std::fmt::Display for SecurityLevel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            SecurityLevel::NoAuthNoPriv => "noAuthNoPriv",
            SecurityLevel::AuthNoPriv => "authNoPriv",
            SecurityLevel::AuthPriv => "authPriv",
        })
    }
}

/// SNMPv3 authentication protocols (all that snmp2 implements).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AuthProtocol {
    /// HMAC-MD5-96 (RFC 3414).
    Md5,
    /// HMAC-SHA-96 (RFC 3414).
    Sha,
    /// HMAC-SHA-224 (RFC 7860).
    Sha224,
    /// HMAC-SHA-256 (RFC 7860).
    Sha256,
    /// HMAC-SHA-384 (RFC 7860).
    Sha384,
    /// HMAC-SHA-512 (RFC 7860).
    Sha512,
}

/// SNMPv3 privacy protocols (all that snmp2 implements).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PrivProtocol {
    /// CBC-DES (RFC 3414).
    Des,
    /// CFB128-AES-128 (RFC 3826).
    Aes,
    /// CFB128-AES-192, key extended the Blumenthal way (net-snmp's `AES192`).
    Aes192,
    /// CFB128-AES-256, key extended the Blumenthal way (net-snmp's `AES256`).
    Aes256,
    /// CFB128-AES-192, key extended the Reeder way (Cisco's; net-snmp's `AES192C`).
    Aes192c,
    /// CFB128-AES-256, key extended the Reeder way (Cisco's; net-snmp's `AES256C`).
    Aes256c,
}

/// Defines the profile and device tables with the settings they share.
macro_rules! with_settings {
    ($(#[$meta:meta])* pub struct $name:ident { $($(#[$fmeta:meta])* pub $field:ident : $ty:ty,)* }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Default, Deserialize)]
        #[serde(deny_unknown_fields)]
        pub struct $name {
            $($(#[$fmeta])* pub $field: $ty,)*
            /// `v2c` or `v3`.
            pub version: Option<SnmpVersion>,
            /// v2c: environment variable holding the community.
            pub community_env: Option<String>,
            /// Refused: communities never live inline (here only to give a clear error).
            pub community: Option<String>,
            /// v3: the user (security name).
            pub user: Option<String>,
            /// v3: `noAuthNoPriv`, `authNoPriv` or `authPriv`.
            pub security_level: Option<SecurityLevel>,
            /// v3: `md5`, `sha`, `sha224`, `sha256`, `sha384`, `sha512`.
            pub auth_protocol: Option<AuthProtocol>,
            /// v3: environment variable holding the authentication password.
            pub auth_password_env: Option<String>,
            /// Refused: passwords never live inline.
            pub auth_password: Option<String>,
            /// v3: `des`, `aes`, `aes192`, `aes256`, `aes192c`, `aes256c`.
            pub priv_protocol: Option<PrivProtocol>,
            /// v3: environment variable holding the privacy password.
            pub priv_password_env: Option<String>,
            /// Refused: passwords never live inline.
            pub priv_password: Option<String>,
            /// v3: the context name (default empty).
            pub context: Option<String>,
            /// How often the device is polled (default 60s).
            pub interval: Option<HumanDuration>,
            /// How long to wait for each answer (default 3s).
            pub timeout: Option<HumanDuration>,
            /// How often a request is sent again after a timeout (default 2).
            pub retries: Option<u32>,
            /// Objects fetched with GET (names like `sysUpTime.0` or numeric OIDs).
            pub get: Option<Vec<String>>,
            /// Subtrees walked (tables like `ifTable`, columns, groups or numeric OIDs).
            pub walk: Option<Vec<String>>,
            /// GETBULK max-repetitions (default 25).
            pub max_repetitions: Option<u32>,
            /// Walk with GETBULK (default true); false walks with GETNEXT.
            pub bulk: Option<bool>,
            /// Labels added to the device's events.
            pub labels: Option<BTreeMap<String, String>>,
        }
    };
}

with_settings! {
    /// `[snmp.profile.NAME]`: credentials, and poll defaults for the devices that use it.
    pub struct SnmpProfile {}
}

with_settings! {
    /// `[[snmp.device]]`: one device to poll.
    pub struct SnmpDevice {
        /// Its name: the `device` label of its events and how `test snmp` finds it.
        pub name: String,
        /// `host:port` (port 161 when left out; `[v6]:port` for IPv6); names are resolved
        /// at every poll.
        pub address: String,
        /// The profile with its credentials (and poll defaults).
        pub profile: Option<String>,
    }
}

/// `[snmp]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SnmpConfig {
    /// Devices polled at the same time, at most (each has one request in flight).
    #[serde(default = "default_max_concurrent")]
    pub max_concurrent: usize,
    /// Shared UDP sockets per address family.
    #[serde(default = "default_sockets")]
    pub sockets: usize,
    /// Named profiles.
    #[serde(default)]
    pub profile: BTreeMap<String, SnmpProfile>,
    /// The devices.
    #[serde(default)]
    pub device: Vec<SnmpDevice>,
}

fn default_max_concurrent() -> usize {
    256
}
fn default_sockets() -> usize {
    4
}

/// Default poll interval.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(60);
/// Default timeout of one request.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(3);
/// Default retries after a timeout.
pub const DEFAULT_RETRIES: u32 = 2;
/// Default GETBULK max-repetitions.
pub const DEFAULT_MAX_REPETITIONS: u32 = 25;

/// A device's credentials, with the names of the variables holding its secrets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Credentials {
    /// v2c.
    V2c {
        /// Variable holding the community.
        community_env: String,
    },
    /// v3.
    V3(UsmSettings),
}

/// SNMPv3 user-based security settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsmSettings {
    /// The user.
    pub user: String,
    /// The security level.
    pub level: SecurityLevel,
    /// Authentication protocol and the variable holding its password (not at noAuthNoPriv).
    pub auth: Option<(AuthProtocol, String)>,
    /// Privacy protocol and the variable holding its password (authPriv only).
    pub privacy: Option<(PrivProtocol, String)>,
    /// Context name.
    pub context: String,
}

/// Everything needed to poll one device, its profile merged in.
#[derive(Debug, Clone)]
pub struct DeviceSettings {
    /// `device` label.
    pub name: String,
    /// `host:port`.
    pub address: String,
    /// Credentials.
    pub credentials: Credentials,
    /// Poll interval.
    pub interval: Duration,
    /// Timeout of one request.
    pub timeout: Duration,
    /// Retries after a timeout.
    pub retries: u32,
    /// What to GET.
    pub get: Vec<String>,
    /// What to walk.
    pub walk: Vec<String>,
    /// GETBULK max-repetitions.
    pub max_repetitions: u32,
    /// GETBULK (true) or GETNEXT walks.
    pub bulk: bool,
    /// Labels (the profile's, then the device's).
    pub labels: BTreeMap<String, String>,
}

/// The keys that carry credentials.
const CREDENTIAL_KEYS: [&str; 12] = [
    "version",
    "community_env",
    "community",
    "user",
    "security_level",
    "auth_protocol",
    "auth_password_env",
    "auth_password",
    "priv_protocol",
    "priv_password_env",
    "priv_password",
    "context",
];

/// The credential part of a profile or device, borrowed.
struct CredentialFields<'a> {
    version: Option<SnmpVersion>,
    community_env: &'a Option<String>,
    community: &'a Option<String>,
    user: &'a Option<String>,
    security_level: Option<SecurityLevel>,
    auth_protocol: Option<AuthProtocol>,
    auth_password_env: &'a Option<String>,
    auth_password: &'a Option<String>,
    priv_protocol: Option<PrivProtocol>,
    priv_password_env: &'a Option<String>,
    priv_password: &'a Option<String>,
    context: &'a Option<String>,
}

macro_rules! credential_fields {
    ($s:expr) => {
        CredentialFields {
            version: $s.version,
            community_env: &$s.community_env,
            community: &$s.community,
            user: &$s.user,
            security_level: $s.security_level,
            auth_protocol: $s.auth_protocol,
            auth_password_env: &$s.auth_password_env,
            auth_password: &$s.auth_password,
            priv_protocol: $s.priv_protocol,
            priv_password_env: &$s.priv_password_env,
            priv_password: &$s.priv_password,
            context: &$s.context,
        }
    };
}

impl CredentialFields<'_> {
    fn present(&self) -> Vec<&'static str> {
        let set = [
            self.version.is_some(),
            self.community_env.is_some(),
            self.community.is_some(),
            self.user.is_some(),
            self.security_level.is_some(),
            self.auth_protocol.is_some(),
            self.auth_password_env.is_some(),
            self.auth_password.is_some(),
            self.priv_protocol.is_some(),
            self.priv_password_env.is_some(),
            self.priv_password.is_some(),
            self.context.is_some(),
        ];
        CREDENTIAL_KEYS
            .iter()
            .zip(set)
            .filter(|(_, s)| *s)
            .map(|(k, _)| *k)
            .collect()
    }

    /// The credentials, or every problem as (key under `at`, message).
    fn resolve(&self, at: &str) -> Result<Credentials, Vec<(String, String)>> {
        let mut errs = Vec::new();
        let key = |k: &str| format!("{at}.{k}");
        for (value, name) in [
            (self.community, "community"),
            (self.auth_password, "auth_password"),
            (self.priv_password, "priv_password"),
        ] {
            if value.is_some() {
                errs.push((
                    key(name),
                    format!("secrets never live in the configuration: use {name}_env"),
                ));
            }
        }
        let env_ok = |v: &Option<String>, k: &str, errs: &mut Vec<(String, String)>| {
            if let Some(name) = v {
                if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
                {
                    errs.push((
                        key(k),
                        format!("`{name}` is not an environment variable name"),
                    ));
                }
            }
        };
        env_ok(self.community_env, "community_env", &mut errs);
        env_ok(self.auth_password_env, "auth_password_env", &mut errs);
        env_ok(self.priv_password_env, "priv_password_env", &mut errs);
        let not_for = |present: bool, k: &str, why: &str, errs: &mut Vec<(String, String)>| {
            if present {
                errs.push((key(k), format!("`{k}` is not used {why}")));
            }
        };
        let result = match self.version {
            None => {
                errs.push((
                    at.to_owned(),
                    "set `version` (\"v2c\" or \"v3\") and its credentials, or `profile`".into(),
                ));
                None
            }
            Some(SnmpVersion::V2c) => {
                for (present, k) in [
                    (self.user.is_some(), "user"),
                    (self.security_level.is_some(), "security_level"),
                    (self.auth_protocol.is_some(), "auth_protocol"),
                    (self.auth_password_env.is_some(), "auth_password_env"),
                    (self.priv_protocol.is_some(), "priv_protocol"),
                    (self.priv_password_env.is_some(), "priv_password_env"),
                    (self.context.is_some(), "context"),
                ] {
                    not_for(
                        present,
                        k,
                        "with version = \"v2c\" (it is for v3)",
                        &mut errs,
                    );
                }
                match self.community_env {
                    Some(c) => Some(Credentials::V2c {
                        community_env: c.clone(),
                    }),
                    None => {
                        if self.community.is_none() {
                            errs.push((
                                at.to_owned(),
                                "version = \"v2c\" needs `community_env`, the environment variable holding the community".into(),
                            ));
                        }
                        None
                    }
                }
            }
            Some(SnmpVersion::V3) => {
                not_for(
                    self.community_env.is_some(),
                    "community_env",
                    "with version = \"v3\" (it is for v2c)",
                    &mut errs,
                );
                let user = match self.user {
                    Some(u) if !u.is_empty() => Some(u.clone()),
                    Some(_) => {
                        errs.push((key("user"), "must not be empty".into()));
                        None
                    }
                    None => {
                        errs.push((at.to_owned(), "version = \"v3\" needs `user`".into()));
                        None
                    }
                };
                let level = self.security_level;
                if level.is_none() {
                    errs.push((
                        at.to_owned(),
                        "version = \"v3\" needs `security_level` (noAuthNoPriv, authNoPriv or authPriv)".into(),
                    ));
                }
                let wants_auth = matches!(
                    level,
                    Some(SecurityLevel::AuthNoPriv | SecurityLevel::AuthPriv)
                );
                let wants_priv = level == Some(SecurityLevel::AuthPriv);
                let pair = |wanted: bool,
                            proto_key: &str,
                            env_key: &str,
                            proto_set: bool,
                            env: &Option<String>,
                            errs: &mut Vec<(String, String)>|
                 -> bool {
                    let lvl = level.map_or_else(String::new, |l| l.to_string());
                    if wanted {
                        for (set, k) in [(proto_set, proto_key), (env.is_some(), env_key)] {
                            if !set {
                                errs.push((
                                    at.to_owned(),
                                    format!("security_level = \"{lvl}\" needs `{k}`"),
                                ));
                            }
                        }
                        proto_set && env.is_some()
                    } else {
                        if level.is_some() {
                            not_for(
                                proto_set,
                                proto_key,
                                &format!("at security_level = \"{lvl}\""),
                                errs,
                            );
                            not_for(
                                env.is_some(),
                                env_key,
                                &format!("at security_level = \"{lvl}\""),
                                errs,
                            );
                        }
                        false
                    }
                };
                let auth_ok = pair(
                    wants_auth,
                    "auth_protocol",
                    "auth_password_env",
                    self.auth_protocol.is_some(),
                    self.auth_password_env,
                    &mut errs,
                );
                let priv_ok = pair(
                    wants_priv,
                    "priv_protocol",
                    "priv_password_env",
                    self.priv_protocol.is_some(),
                    self.priv_password_env,
                    &mut errs,
                );
                match (user, level) {
                    (Some(user), Some(level))
                        if (!wants_auth || auth_ok) && (!wants_priv || priv_ok) =>
                    {
                        Some(Credentials::V3(UsmSettings {
                            user,
                            level,
                            auth: wants_auth.then(|| {
                                (
                                    self.auth_protocol.expect("checked"),
                                    self.auth_password_env.clone().expect("checked"),
                                )
                            }),
                            privacy: wants_priv.then(|| {
                                (
                                    self.priv_protocol.expect("checked"),
                                    self.priv_password_env.clone().expect("checked"),
                                )
                            }),
                            context: self.context.clone().unwrap_or_default(),
                        }))
                    }
                    _ => None,
                }
            }
        };
        match result {
            Some(c) if errs.is_empty() => Ok(c),
            _ => Err(errs),
        }
    }
}

/// Checks a device address: `host:port`, `host`, `[v6 address]:port` or a v6 address.
pub(super) fn parse_address(address: &str) -> Result<(), String> {
    let bad = || format!("`{address}` is not host:port, host, [v6 address]:port or a v6 address");
    if address.is_empty() {
        return Err(bad());
    }
    if let Ok(sa) = address.parse::<std::net::SocketAddr>() {
        return if sa.port() == 0 { Err(bad()) } else { Ok(()) };
    }
    if address.parse::<std::net::IpAddr>().is_ok() {
        return Ok(());
    }
    let (host, port) = match address.rsplit_once(':') {
        Some((h, p)) => (h, Some(p)),
        None => (address, None),
    };
    if let Some(p) = port {
        if p.parse::<u16>().map_or(true, |p| p == 0) {
            return Err(bad());
        }
    }
    let host_ok = !host.is_empty()
        && host.len() <= 253
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.' || b == b'_');
    if host_ok {
        Ok(())
    } else {
        Err(bad())
    }
}

impl SnmpConfig {
    /// Every device with its profile merged in. Only meaningful for a configuration that
    /// passed [`check`]; devices that do not resolve are left out.
    pub fn devices(&self) -> Vec<DeviceSettings> {
        (0..self.device.len())
            .filter_map(|i| self.device_settings(i).ok())
            .collect()
    }

    /// The device called `name`, merged with its profile.
    pub fn find(&self, name: &str) -> Option<Result<DeviceSettings, Vec<(String, String)>>> {
        let i = self.device.iter().position(|d| d.name == name)?;
        Some(self.device_settings(i))
    }

    /// Device `i` merged with its profile, or the problems (key path, message).
    fn device_settings(&self, i: usize) -> Result<DeviceSettings, Vec<(String, String)>> {
        let d = &self.device[i];
        let at = format!("snmp.device[{i}]");
        let mut errs = Vec::new();
        let none = SnmpProfile::default();
        let (profile, credentials) = match &d.profile {
            Some(p) => match self.profile.get(p) {
                Some(profile) => {
                    for k in credential_fields!(d).present() {
                        errs.push((
                            format!("{at}.{k}"),
                            format!("the credentials come from profile `{p}`: set `{k}` there, or drop `profile`"),
                        ));
                    }
                    (
                        profile,
                        credential_fields!(profile)
                            .resolve(&format!("snmp.profile.{p}"))
                            // The profile's own problems are reported for the profile.
                            .map_err(|_| Vec::new()),
                    )
                }
                None => {
                    let known: Vec<&str> = self.profile.keys().map(String::as_str).collect();
                    let hint = known
                        .iter()
                        .map(|k| (strsim::jaro_winkler(p, k), *k))
                        .filter(|(s, _)| *s >= 0.8)
                        .max_by(|a, b| a.0.total_cmp(&b.0))
                        .map_or_else(
                            || {
                                if known.is_empty() {
                                    " (no [snmp.profile.NAME] is defined)".to_owned()
                                } else {
                                    format!("; defined: {}", known.join(", "))
                                }
                            },
                            |(_, k)| format!("; did you mean `{k}`?"),
                        );
                    errs.push((
                        format!("{at}.profile"),
                        format!("unknown profile `{p}`{hint}"),
                    ));
                    (&none, Err(Vec::new()))
                }
            },
            None => (&none, credential_fields!(d).resolve(&at)),
        };
        let credentials = match credentials {
            Ok(c) => Some(c),
            Err(e) => {
                errs.extend(e);
                None
            }
        };
        if d.name.is_empty() {
            errs.push((format!("{at}.name"), "must not be empty".into()));
        }
        if let Err(m) = parse_address(&d.address) {
            errs.push((format!("{at}.address"), m));
        }
        let pick = |own: &Option<HumanDuration>, prof: &Option<HumanDuration>, def: Duration| {
            own.or(*prof).map_or(def, |h| h.get())
        };
        let interval = pick(&d.interval, &profile.interval, DEFAULT_INTERVAL);
        let timeout = pick(&d.timeout, &profile.timeout, DEFAULT_TIMEOUT);
        let retries = d.retries.or(profile.retries).unwrap_or(DEFAULT_RETRIES);
        let max_repetitions = d
            .max_repetitions
            .or(profile.max_repetitions)
            .unwrap_or(DEFAULT_MAX_REPETITIONS);
        // Where a value came from: the device, else its profile, else a default (the device).
        let from = |own: bool, in_profile: bool| {
            if !own && in_profile {
                format!("snmp.profile.{}", d.profile.as_deref().unwrap_or_default())
            } else {
                at.clone()
            }
        };
        if interval < Duration::from_secs(1) {
            errs.push((
                format!(
                    "{}.interval",
                    from(d.interval.is_some(), profile.interval.is_some())
                ),
                "must be at least 1s".into(),
            ));
        }
        if timeout < Duration::from_millis(10) {
            errs.push((
                format!(
                    "{}.timeout",
                    from(d.timeout.is_some(), profile.timeout.is_some())
                ),
                "must be at least 10ms".into(),
            ));
        }
        if retries > 10 {
            errs.push((
                format!(
                    "{}.retries",
                    from(d.retries.is_some(), profile.retries.is_some())
                ),
                "at most 10".into(),
            ));
        }
        if !(1..=200).contains(&max_repetitions) {
            errs.push((
                format!(
                    "{}.max_repetitions",
                    from(
                        d.max_repetitions.is_some(),
                        profile.max_repetitions.is_some()
                    )
                ),
                "must be 1 to 200".into(),
            ));
        }
        if interval >= Duration::from_secs(1) && timeout.saturating_mul(retries + 1) > interval {
            errs.push((
                format!(
                    "{}.timeout",
                    from(d.timeout.is_some(), profile.timeout.is_some())
                ),
                format!(
                    "timeout × (retries + 1) = {:?} is longer than the interval ({:?})",
                    timeout.saturating_mul(retries + 1),
                    interval
                ),
            ));
        }
        let get = d
            .get
            .clone()
            .or_else(|| profile.get.clone())
            .unwrap_or_default();
        let walk = d
            .walk
            .clone()
            .or_else(|| profile.walk.clone())
            .unwrap_or_default();
        for (list, what, own, scalar) in [
            (&get, "get", d.get.is_some(), true),
            (&walk, "walk", d.walk.is_some(), false),
        ] {
            for (j, name) in list.iter().enumerate() {
                if let Err(e) = names::resolve(name, scalar) {
                    errs.push((format!("{}.{what}[{j}]", from(own, true)), e.to_string()));
                }
            }
        }
        if get.is_empty() && walk.is_empty() {
            errs.push((
                at.clone(),
                "nothing to poll: set `get` and/or `walk` (here or in its profile)".into(),
            ));
        }
        let mut labels = profile.labels.clone().unwrap_or_default();
        labels.extend(d.labels.clone().unwrap_or_default());
        for k in labels.keys() {
            let ok = k.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
                && k.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
            if !ok {
                errs.push((
                    format!("{at}.labels"),
                    format!("`{k}` is not a label name ([a-zA-Z_][a-zA-Z0-9_]*)"),
                ));
            }
        }
        match credentials {
            Some(credentials) if errs.is_empty() => Ok(DeviceSettings {
                name: d.name.clone(),
                address: d.address.clone(),
                credentials,
                interval,
                timeout,
                retries,
                get,
                walk,
                max_repetitions,
                bulk: d.bulk.or(profile.bulk).unwrap_or(true),
                labels,
            }),
            _ => Err(errs),
        }
    }
}

/// Checks `[snmp]`: (key path, message) for each problem.
pub(crate) fn check(snmp: &SnmpConfig, errs: &mut Vec<(String, String)>) {
    if snmp.max_concurrent == 0 {
        errs.push(("snmp.max_concurrent".into(), "must be at least 1".into()));
    }
    if !(1..=64).contains(&snmp.sockets) {
        errs.push(("snmp.sockets".into(), "must be 1 to 64".into()));
    }
    for (name, p) in &snmp.profile {
        let at = format!("snmp.profile.{name}");
        if name.is_empty()
            || !name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            errs.push((
                at.clone(),
                format!("profile name `{name}`: use letters, digits, - and _"),
            ));
            continue;
        }
        if let Err(e) = credential_fields!(p).resolve(&at) {
            errs.extend(e);
        }
    }
    let mut seen = std::collections::HashMap::new();
    for (i, d) in snmp.device.iter().enumerate() {
        if let Some(first) = seen.insert(d.name.as_str(), i) {
            errs.push((
                format!("snmp.device[{i}].name"),
                format!("`{}` is also the name of snmp.device[{first}]", d.name),
            ));
        }
        if let Err(e) = snmp.device_settings(i) {
            for p in e {
                if !errs.contains(&p) {
                    errs.push(p);
                }
            }
        }
    }
}
