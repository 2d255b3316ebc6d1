//! The SNMP collector against Debian's net-snmp `snmpd`, started by each test on free
//! loopback UDP ports with its own configuration (v2c community, v3 users at every level with
//! MD5/SHA/SHA-2 and DES/AES/AES-192/AES-256) and stopped by its PID.
//!
//! The agent runs for real: `logops-agent test snmp DEVICE --json` polls once and prints the
//! events; `logops-agent run` ships them to a real ingest. Reference values come from
//! net-snmp's `snmpbulkwalk`/`snmpget` and from the kernel (`/proc/net/dev`).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use logops_common::event::{Labels, MetricValue, Payload};
use logops_common::Event;
use logops_e2e::agent::{agent_binary, AgentHarness, AgentOptions, ShipTarget};
use logops_e2e::nobulk::{self, NoBulkAgent};
use logops_e2e::snmpd::{
    find_user, Snmpd, AUTH_PASSWORD, COMMUNITY, PRIV_PASSWORD, SYS_NAME, USERS,
};
use logops_e2e::{run_binary, run_binary_env, IngestHarness, IngestOptions, TenantSpec};

const SHIP: &str =
    "[ship]\nurl = \"http://127.0.0.1:9/v1/batch\"\napi_key_env = \"LOGOPS_UNUSED_KEY\"\n";

fn env() -> Vec<(&'static str, &'static str)> {
    vec![
        ("SNMP_COMMUNITY", COMMUNITY),
        ("SNMP_AUTH", AUTH_PASSWORD),
        ("SNMP_PRIV", PRIV_PASSWORD),
    ]
}

/// A configuration file with `[ship]` and `devices` (raw TOML).
fn config(devices: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("agent.toml");
    std::fs::write(&path, format!("{SHIP}\n{devices}")).unwrap();
    (dir, path)
}

fn v2c_device(name: &str, address: &str, extra: &str) -> String {
    format!(
        "[[snmp.device]]\nname = \"{name}\"\naddress = \"{address}\"\nversion = \"v2c\"\ncommunity_env = \"SNMP_COMMUNITY\"\n{extra}\n"
    )
}

fn v3_device(
    name: &str,
    address: &str,
    user: &str,
    level: &str,
    auth: Option<&str>,
    privacy: Option<&str>,
    extra: &str,
) -> String {
    let mut s = format!(
        "[[snmp.device]]\nname = \"{name}\"\naddress = \"{address}\"\nversion = \"v3\"\nuser = \"{user}\"\nsecurity_level = \"{level}\"\n"
    );
    if let Some(a) = auth {
        s.push_str(&format!(
            "auth_protocol = \"{a}\"\nauth_password_env = \"SNMP_AUTH\"\n"
        ));
    }
    if let Some(p) = privacy {
        s.push_str(&format!(
            "priv_protocol = \"{p}\"\npriv_password_env = \"SNMP_PRIV\"\n"
        ));
    }
    s.push_str(extra);
    s.push('\n');
    s
}

/// A metric's name, labels, value and whether it is a counter.
type MetricRow<'a> = (&'a str, &'a Labels<'static>, f64, bool);

/// A wrong-credential case: device, its configuration, environment overrides, the expected
/// explanation.
type Case<'a> = (&'a str, String, Vec<(&'a str, &'a str)>, &'a str);

/// What `logops-agent test snmp` printed.
struct Tested {
    ok: bool,
    header: String,
    events: Vec<Event<'static>>,
    stderr: String,
    seconds: f64,
}

impl Tested {
    fn counter(&self, what: &str) -> u64 {
        // "# device ... : 9 request(s), 9 datagram(s) sent, 0 timed out, 9 answer(s), ..."
        let at = self
            .header
            .find(what)
            .unwrap_or_else(|| panic!("no `{what}` in {}", self.header));
        self.header[..at]
            .trim_end()
            .rsplit([' ', ','])
            .next()
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("no count before `{what}` in {}", self.header))
    }

    /// (name, labels, value, is a counter) of every metric.
    fn metrics(&self) -> Vec<MetricRow<'_>> {
        self.events
            .iter()
            .filter_map(|e| match &e.payload {
                Payload::Metric { name, value } => match value {
                    MetricValue::Counter(v) => Some((name.as_ref(), &e.labels, *v, true)),
                    MetricValue::Gauge(v) => Some((name.as_ref(), &e.labels, *v, false)),
                    MetricValue::Histogram(_) => None,
                },
                _ => None,
            })
            .collect()
    }

    fn metric(&self, name: &str, labels: &[(&str, &str)]) -> Option<(f64, bool)> {
        self.metrics()
            .into_iter()
            .find(|(n, l, _, _)| {
                *n == name
                    && labels
                        .iter()
                        .all(|(k, v)| l.get(*k).map(|x| x.as_ref()) == Some(*v))
            })
            .map(|(_, _, v, c)| (v, c))
    }

    fn records(&self) -> Vec<&Event<'static>> {
        self.events
            .iter()
            .filter(|e| matches!(e.payload, Payload::Record))
            .collect()
    }

    fn scalar_record(&self) -> serde_json::Map<String, serde_json::Value> {
        self.records()
            .into_iter()
            .find(|r| !r.labels.contains_key("table") && !r.labels.contains_key("walk"))
            .and_then(|r| r.attrs.as_ref().map(|a| a.to_map()))
            .unwrap_or_default()
    }
}

fn test_snmp(config: &Path, device: &str, env: &[(&str, &str)]) -> Tested {
    let started = Instant::now();
    let out = run_binary_env(
        &agent_binary().unwrap(),
        &[
            "test",
            "snmp",
            device,
            "--config",
            config.to_str().unwrap(),
            "--json",
        ],
        env,
    );
    let seconds = started.elapsed().as_secs_f64();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let mut header = String::new();
    let mut events = Vec::new();
    for line in stdout.lines() {
        if line.starts_with('#') {
            header = line.to_owned();
        } else {
            let e = logops_common::parse_line(line, 1)
                .unwrap_or_else(|e| panic!("not a wire-format event: {line}: {e}"));
            assert_eq!(e.source, "snmp");
            assert_eq!(e.labels.get("device").map(|d| d.as_ref()), Some(device));
            events.push(e.into_owned());
        }
    }
    Tested {
        ok: out.status.success(),
        header,
        events,
        stderr,
        seconds,
    }
}

/// `lo`'s receive bytes, receive packets, transmit bytes, transmit packets.
fn lo_counters() -> [u64; 4] {
    let text = std::fs::read_to_string("/proc/net/dev").unwrap();
    let line = text
        .lines()
        .find(|l| l.trim_start().starts_with("lo:"))
        .expect("a loopback interface");
    let f: Vec<u64> = line
        .split_once(':')
        .unwrap()
        .1
        .split_whitespace()
        .map(|x| x.parse().unwrap())
        .collect();
    [f[0], f[1], f[8], f[9]]
}

/// Column names of the compared tables, as the MIBs name them (the test's own list).
fn columns() -> HashMap<&'static str, (&'static str, Vec<&'static str>)> {
    let if_table = vec![
        "ifIndex",
        "ifDescr",
        "ifType",
        "ifMtu",
        "ifSpeed",
        "ifPhysAddress",
        "ifAdminStatus",
        "ifOperStatus",
        "ifLastChange",
        "ifInOctets",
        "ifInUcastPkts",
        "ifInNUcastPkts",
        "ifInDiscards",
        "ifInErrors",
        "ifInUnknownProtos",
        "ifOutOctets",
        "ifOutUcastPkts",
        "ifOutNUcastPkts",
        "ifOutDiscards",
        "ifOutErrors",
        "ifOutQLen",
        "ifSpecific",
    ];
    let if_x_table = vec![
        "ifName",
        "ifInMulticastPkts",
        "ifInBroadcastPkts",
        "ifOutMulticastPkts",
        "ifOutBroadcastPkts",
        "ifHCInOctets",
        "ifHCInUcastPkts",
        "ifHCInMulticastPkts",
        "ifHCInBroadcastPkts",
        "ifHCOutOctets",
        "ifHCOutUcastPkts",
        "ifHCOutMulticastPkts",
        "ifHCOutBroadcastPkts",
        "ifLinkUpDownTrapEnable",
        "ifHighSpeed",
        "ifPromiscuousMode",
        "ifConnectorPresent",
        "ifAlias",
        "ifCounterDiscontinuityTime",
    ];
    let hr_storage = vec![
        "hrStorageIndex",
        "hrStorageType",
        "hrStorageDescr",
        "hrStorageAllocationUnits",
        "hrStorageSize",
        "hrStorageUsed",
        "hrStorageAllocationFailures",
    ];
    [
        ("1.3.6.1.2.1.2.2.1", ("ifIndex", if_table)),
        ("1.3.6.1.2.1.31.1.1.1", ("ifIndex", if_x_table)),
        ("1.3.6.1.2.1.25.2.3.1", ("hrStorageIndex", hr_storage)),
    ]
    .into_iter()
    .collect()
}

/// Columns whose values move between two reads.
fn moving(column: &str) -> bool {
    column.contains("Octets")
        || column.contains("Pkts")
        || column == "hrStorageUsed"
        || column == "hrStorageSize"
}

/// net-snmp's `-Onqet` hex string `"2A 8F BD EB C0 04 "` → `2a:8f:bd:eb:c0:04`.
fn net_snmp_string(v: &str) -> String {
    let inner = v.trim_matches('"');
    let hex_like = inner.ends_with(' ')
        && inner
            .split_whitespace()
            .all(|b| b.len() == 2 && b.bytes().all(|c| c.is_ascii_hexdigit()));
    if hex_like {
        inner
            .split_whitespace()
            .map(str::to_lowercase)
            .collect::<Vec<_>>()
            .join(":")
    } else {
        inner.to_owned()
    }
}

#[test]
fn v2c_gets_and_walks_equal_net_snmp_and_the_kernel() {
    // net-snmp reads the interface counters when it starts and caches them for a few
    // seconds: the kernel's values before its start bound them from below.
    let before = lo_counters();
    let snmpd = Snmpd::start(1).unwrap();
    let (_dir, path) = config(&(v2c_device(
        "host-a",
        &snmpd.address(),
        "get = [\"sysUpTime.0\", \"sysDescr.0\", \"1.3.6.1.2.1.1.5.0\", \"sysObjectID\", \"sysLocation.0\"]\nwalk = [\"ifTable\", \"ifXTable\", \"hrStorageTable\"]",
    ) + &v2c_device(
        "host-a-getnext",
        &snmpd.address(),
        "bulk = false\nwalk = [\"ifTable\", \"hrStorageTable\"]",
    )));
    let t = test_snmp(&path, "host-a", &env());
    let after = lo_counters();
    assert!(t.ok, "{}\n{}", t.header, t.stderr);
    assert!(t.header.contains("walks with GETBULK"), "{}", t.header);

    // Scalars equal snmpget's.
    let get = snmpd
        .snmpget(&[
            "1.3.6.1.2.1.1.3.0",
            "1.3.6.1.2.1.1.1.0",
            "1.3.6.1.2.1.1.5.0",
            "1.3.6.1.2.1.1.2.0",
            "1.3.6.1.2.1.1.6.0",
        ])
        .unwrap();
    let rec = t.scalar_record();
    assert_eq!(rec["sysDescr"], net_snmp_string(&get["1.3.6.1.2.1.1.1.0"]));
    assert_eq!(rec["sysName"], SYS_NAME);
    assert_eq!(rec["sysLocation"], "loopback");
    assert_eq!(
        rec["sysObjectID"],
        get["1.3.6.1.2.1.1.2.0"].trim_start_matches('.')
    );
    let (uptime, counter) = t.metric("snmp_sysUpTime", &[]).unwrap();
    let theirs: f64 = get["1.3.6.1.2.1.1.3.0"].parse().unwrap();
    assert!(
        !counter && uptime <= theirs && theirs - uptime < 6000.0,
        "{uptime} vs {theirs}"
    );

    // Every cell of every row equals snmpbulkwalk's: numbers as metrics, label columns as
    // labels, other strings in the row's record.
    let cols = columns();
    let mut compared = 0;
    let mut table_metrics = 0;
    for (table, entry) in [
        ("1.3.6.1.2.1.2.2", "1.3.6.1.2.1.2.2.1"),
        ("1.3.6.1.2.1.31.1.1", "1.3.6.1.2.1.31.1.1.1"),
        ("1.3.6.1.2.1.25.2.3", "1.3.6.1.2.1.25.2.3.1"),
    ] {
        let (index_label, names) = &cols[entry];
        let walked = snmpd.snmpbulkwalk(table).unwrap();
        assert!(!walked.is_empty(), "{table}");
        let mut rows = std::collections::BTreeSet::new();
        for (oid, value) in &walked {
            let rest = oid.strip_prefix(&format!("{entry}.")).unwrap();
            let (col, index) = rest.split_once('.').unwrap();
            let name = names[col.parse::<usize>().unwrap() - 1];
            rows.insert(index.to_owned());
            let row_label = [(*index_label, index)];
            match name {
                "ifIndex" | "hrStorageIndex" | "ifSpecific" => continue,
                "ifName" | "ifAlias" | "hrStorageDescr" => {
                    let want = net_snmp_string(value);
                    for (n, labels, _, _) in t.metrics() {
                        if labels.get(*index_label).map(|v| v.as_ref()) == Some(index) {
                            assert_eq!(
                                labels.get(name).map(|v| v.to_string()).unwrap_or_default(),
                                want,
                                "{n} {name} of {index}"
                            );
                        }
                    }
                }
                "hrStorageType" => {
                    let kind = value.rsplit('.').next().unwrap();
                    let labels = t
                        .metrics()
                        .into_iter()
                        .find(|(n, l, _, _)| {
                            *n == "snmp_hrStorageSize"
                                && l.get(*index_label).map(|x| x.as_ref()) == Some(index)
                        })
                        .unwrap()
                        .1
                        .clone();
                    let expected = [
                        "hrStorageOther",
                        "hrStorageRam",
                        "hrStorageVirtualMemory",
                        "hrStorageFixedDisk",
                        "hrStorageRemovableDisk",
                        "hrStorageFloppyDisk",
                        "hrStorageCompactDisc",
                        "hrStorageRamDisk",
                        "hrStorageFlashMemory",
                        "hrStorageNetworkDisk",
                    ][kind.parse::<usize>().unwrap() - 1];
                    assert_eq!(labels["hrStorageType"], expected);
                }
                _ if value.starts_with('"') => {
                    let rec = t
                        .records()
                        .into_iter()
                        .find(|r| {
                            r.labels.get(*index_label).map(|v| v.as_ref()) == Some(index)
                                && r.labels.get("table").map(|x| x.as_ref()) == Some("ifTable")
                        })
                        .unwrap_or_else(|| panic!("no record for row {index} of {table}"));
                    assert_eq!(
                        rec.attrs.as_ref().unwrap().to_map()[name],
                        net_snmp_string(value),
                        "{name}.{index}"
                    );
                }
                _ => {
                    let theirs: f64 = value.parse().unwrap_or_else(|_| panic!("{oid} = {value}"));
                    let (ours, is_counter) = t
                        .metric(&format!("snmp_{name}"), &row_label)
                        .unwrap_or_else(|| panic!("no snmp_{name}{{{index_label}={index}}}"));
                    assert_eq!(
                        is_counter,
                        name.contains("Octets")
                            || name.contains("Pkts")
                            || name.contains("Discards")
                            || name.contains("Errors")
                            || name.contains("Unknown")
                            || name == "hrStorageAllocationFailures",
                        "{name}"
                    );
                    if moving(name) {
                        // Ours was read first. Counter32 may wrap in between.
                        let ahead = if name.starts_with("ifHC") || !is_counter {
                            theirs - ours
                        } else {
                            (theirs - ours).rem_euclid(4_294_967_296.0)
                        };
                        let slack = if name.contains("Octets") {
                            200e6
                        } else if is_counter {
                            1e6
                        } else {
                            theirs.abs() * 0.1 + 4096.0
                        };
                        assert!(
                            ahead.abs() <= slack && (!is_counter || ahead >= 0.0),
                            "{name}.{index}: ours {ours}, net-snmp {theirs}"
                        );
                    } else {
                        assert_eq!(ours, theirs, "{name}.{index}");
                    }
                    compared += 1;
                }
            }
        }
        // No rows of our own.
        let ours: std::collections::BTreeSet<String> = t
            .metrics()
            .into_iter()
            .filter(|(n, l, _, _)| {
                let table_of = if n.starts_with("snmp_hrStorage") {
                    "1.3.6.1.2.1.25.2.3"
                } else if cols["1.3.6.1.2.1.31.1.1.1"]
                    .1
                    .iter()
                    .any(|c| format!("snmp_{c}") == *n)
                {
                    "1.3.6.1.2.1.31.1.1"
                } else {
                    "1.3.6.1.2.1.2.2"
                };
                table_of == table && l.contains_key(*index_label)
            })
            .map(|(_, l, _, _)| l[*index_label].to_string())
            .collect();
        assert_eq!(ours, rows, "rows of {table}");
        table_metrics += t
            .metrics()
            .into_iter()
            .filter(|(_, l, _, _)| l.contains_key(*index_label))
            .count();
    }
    assert!(compared > 100, "only {compared} values compared");
    // Nothing else: every series once, every name from the walked tables or the GETs (a walk
    // that ran past its subtree would add more).
    let mut allowed: std::collections::HashSet<String> = cols
        .values()
        .flat_map(|(_, names)| names.iter().map(|c| format!("snmp_{c}")))
        .collect();
    allowed.extend(["snmp_sysUpTime", "snmp_up", "snmp_poll_duration_seconds"].map(String::from));
    let mut series = std::collections::HashSet::new();
    for (n, l, _, _) in t.metrics() {
        assert!(allowed.contains(n), "unexpected metric {n}{l:?}");
        assert!(series.insert(format!("{n}{l:?}")), "{n}{l:?} twice");
    }
    assert!(table_metrics > 0);

    // The loopback byte counters agree with the kernel's. (Not the packet counters: a fresh
    // net-snmp reports 0 for ifHC*UcastPkts until it reloads its interface cache; the
    // comparison with snmpbulkwalk above covers them.)
    let lo = [("snmp_ifHCInOctets", 0), ("snmp_ifHCOutOctets", 2)];
    for (name, i) in lo {
        let (v, is_counter) = t.metric(name, &[("ifName", "lo")]).unwrap();
        assert!(is_counter);
        assert!(
            before[i] as f64 <= v && v <= after[i] as f64,
            "{name}{{lo}} = {v}, /proc/net/dev before {} after {}",
            before[i],
            after[i]
        );
    }
    // ifInOctets is the same counter, modulo 2^32.
    let (v32, _) = t.metric("snmp_ifInOctets", &[("ifName", "lo")]).unwrap();
    assert!(v32 < 4_294_967_296.0);
    let since = (v32 - (before[0] % (1 << 32)) as f64).rem_euclid(4_294_967_296.0);
    assert!(
        since <= (after[0] - before[0]) as f64,
        "ifInOctets{{lo}} = {v32}"
    );

    // GETNEXT walks give the same rows and columns.
    let next = test_snmp(&path, "host-a-getnext", &env());
    assert!(next.ok, "{}", next.stderr);
    assert!(
        next.header.contains("walks with GETNEXT"),
        "{}",
        next.header
    );
    let keys = |t: &Tested| -> std::collections::BTreeSet<String> {
        t.metrics()
            .into_iter()
            .filter(|(n, _, _, _)| {
                n.starts_with("snmp_if") && !n.starts_with("snmp_ifHC")
                    || n.starts_with("snmp_hrStorage")
            })
            .filter(|(n, _, _, _)| {
                !cols["1.3.6.1.2.1.31.1.1.1"]
                    .1
                    .iter()
                    .any(|c| format!("snmp_{c}") == *n)
            })
            .map(|(n, l, _, _)| {
                let mut l = l.clone();
                l.remove("device");
                format!("{n}{l:?}")
            })
            .collect()
    };
    let (a, b) = (keys(&next), keys(&t));
    assert_eq!(a.len(), b.len());
    assert!(
        a == b,
        "differ: {:?}",
        a.symmetric_difference(&b).take(5).collect::<Vec<_>>()
    );
    assert!(
        next.counter("request(s)") > t.counter("request(s)"),
        "GETNEXT takes more requests"
    );
}

#[test]
fn hr_processor_load_equals_net_snmp() {
    let snmpd = Snmpd::start(1).unwrap();
    // net-snmp serves hrProcessorLoad (the busy share of each CPU over the last minute, in
    // percent) only once it has a minute of samples.
    const LOAD: &str = "1.3.6.1.2.1.25.3.3.1.2";
    let deadline = Instant::now() + Duration::from_secs(120);
    let cpus = loop {
        let walked = snmpd.snmpbulkwalk(LOAD).unwrap_or_default();
        let loads: Vec<_> = walked
            .into_iter()
            .filter(|(oid, _)| oid.starts_with(&format!("{LOAD}.")))
            .collect();
        if !loads.is_empty() {
            break loads.len();
        }
        assert!(
            Instant::now() < deadline,
            "snmpd never served hrProcessorLoad; its log:\n{}",
            snmpd.log()
        );
        std::thread::sleep(Duration::from_secs(2));
    };
    let (_dir, path) = config(&v2c_device(
        "cpu",
        &snmpd.address(),
        "walk = [\"hrProcessorTable\"]",
    ));
    // The value moves every few seconds: the agent's must lie between net-snmp's just
    // before and just after.
    let before = snmpd.snmpbulkwalk(LOAD).unwrap();
    let t = test_snmp(&path, "cpu", &env());
    let after = snmpd.snmpbulkwalk(LOAD).unwrap();
    assert!(t.ok, "{}", t.stderr);
    let loads: Vec<_> = t
        .metrics()
        .into_iter()
        .filter(|(n, _, _, _)| *n == "snmp_hrProcessorLoad")
        .collect();
    assert_eq!(loads.len(), cpus, "{loads:?}");
    assert!(
        t.metrics()
            .iter()
            .all(|(n, _, _, _)| *n != "snmp_hrProcessorFrwID"),
        "hrProcessorFrwID is not a metric"
    );
    for (_, labels, value, counter) in loads {
        assert!(!counter, "hrProcessorLoad is a gauge");
        let index = labels
            .get("hrDeviceIndex")
            .expect("labelled by hrDeviceIndex");
        let oid = format!("{LOAD}.{index}");
        let (a, b): (f64, f64) = (before[&oid].parse().unwrap(), after[&oid].parse().unwrap());
        assert!(
            (a.min(b)..=a.max(b)).contains(&value),
            "hrProcessorLoad.{index} = {value}, net-snmp said {a} before and {b} after"
        );
    }
}

/// The walked subtrees of the no-GETBULK agent: the `system` group (named objects) and
/// usmUserTable (no built-in name: metrics and a record named by OID).
const NOBULK_WALKS: [&str; 2] = ["1.3.6.1.2.1.1", "1.3.6.1.6.3.15.1.2.2"];

#[test]
fn an_agent_without_getbulk_is_walked_with_getnext_and_gives_what_snmpwalk_gives() {
    let agent = NoBulkAgent::start().unwrap();
    // The premise: this agent really refuses GETBULK, over v2c and v3.
    for v3 in [false, true] {
        let e = agent.snmpbulkwalk(v3, NOBULK_WALKS[0]).unwrap_err();
        assert!(!format!("{e:#}").is_empty());
    }
    let walks = format!(
        "timeout = \"1s\"\nretries = 1\nwalk = [{}]",
        NOBULK_WALKS.map(|w| format!("\"{w}\"")).join(", ")
    );
    let devices = v2c_device("nobulk-v2c", &agent.address(), &walks)
        + &v3_device(
            "nobulk-v3",
            &agent.address(),
            nobulk::USER,
            "authPriv",
            Some("sha"),
            Some("aes"),
            &walks,
        );
    let (_dir, path) = config(&devices);
    let env = [
        ("SNMP_COMMUNITY", nobulk::COMMUNITY),
        ("SNMP_AUTH", nobulk::AUTH_PASSWORD),
        ("SNMP_PRIV", nobulk::PRIV_PASSWORD),
    ];
    for (device, v3) in [("nobulk-v2c", false), ("nobulk-v3", true)] {
        let t = test_snmp(&path, device, &env);
        assert!(t.ok, "{device}: {}\n{}", t.stderr, agent.log());
        assert!(
            t.header.contains("walks with GETNEXT"),
            "{device}: {}",
            t.header
        );
        // Over v3 the agent says it has no GETBULK (a report), so no request times out;
        // over v2c it stays silent and the collector gives up on GETBULK after its retries.
        if v3 {
            assert_eq!(t.counter("timed out"), 0, "{device}: {}", t.header);
        } else {
            assert!(t.counter("timed out") >= 1, "{device}: {}", t.header);
        }
        let scalars = t.scalar_record();
        let table_record = t
            .records()
            .into_iter()
            .find(|r| r.labels.get("walk").map(|w| w.as_ref()) == Some(NOBULK_WALKS[1]))
            .and_then(|r| r.attrs.as_ref().map(|a| a.to_map()))
            .unwrap_or_default();
        let mut compared = 0;
        for root in NOBULK_WALKS {
            let reference = agent.snmpwalk(v3, root).unwrap();
            assert!(reference.len() >= 8, "{root}: {reference:?}");
            for (oid, value) in &reference {
                let numeric = value.parse::<f64>().ok();
                if root == NOBULK_WALKS[0] {
                    // system: sysDescr.0 ... by name; sysUpTime moves, the rest does not.
                    let name = match oid.as_str() {
                        "1.3.6.1.2.1.1.1.0" => "sysDescr",
                        "1.3.6.1.2.1.1.2.0" => "sysObjectID",
                        "1.3.6.1.2.1.1.3.0" => continue,
                        "1.3.6.1.2.1.1.4.0" => "sysContact",
                        "1.3.6.1.2.1.1.5.0" => "sysName",
                        "1.3.6.1.2.1.1.6.0" => "sysLocation",
                        "1.3.6.1.2.1.1.7.0" => "sysServices",
                        "1.3.6.1.2.1.1.8.0" => "sysORLastChange",
                        other => panic!("{device}: unexpected object {other} in system"),
                    };
                    match numeric {
                        Some(n) => assert_eq!(
                            t.metric(&format!("snmp_{name}"), &[]),
                            Some((n, false)),
                            "{device}: {name}"
                        ),
                        None => match scalars.get(name) {
                            // An empty string is left out of the record.
                            None => assert_eq!(value, "\"\"", "{device}: {name}"),
                            Some(got) => assert_eq!(
                                got.as_str().unwrap(),
                                net_snmp_string(value).trim_start_matches('.'),
                                "{device}: {name}"
                            ),
                        },
                    }
                } else {
                    let index = &oid[root.len() + 1..];
                    match numeric {
                        Some(n) => assert_eq!(
                            t.metric("snmp_1_3_6_1_6_3_15_1_2_2", &[("index", index)]),
                            Some((n, false)),
                            "{device}: {oid}"
                        ),
                        None => {
                            let got = table_record.get(oid).and_then(|v| v.as_str());
                            let want = net_snmp_string(value);
                            let want = want.trim_start_matches('.');
                            if want.is_empty() {
                                assert!(got.is_none_or(str::is_empty), "{device}: {oid}");
                            } else {
                                assert_eq!(got, Some(want), "{device}: {oid}");
                            }
                        }
                    }
                }
                compared += 1;
            }
        }
        assert!(compared >= 15, "{device}: compared {compared} objects");
    }
}

#[test]
fn every_v3_user_and_protocol_works() {
    let snmpd = Snmpd::start(1).unwrap();
    let mut devices = String::new();
    for u in USERS {
        devices.push_str(&v3_device(
            u.name,
            &snmpd.address(),
            u.name,
            u.level,
            u.auth,
            u.privacy,
            "get = [\"sysName.0\", \"sysUpTime.0\"]\nwalk = [\"hrStorageTable\"]",
        ));
    }
    let (_dir, path) = config(&devices);
    let rows = snmpd.snmpbulkwalk("1.3.6.1.2.1.25.2.3.1.3").unwrap().len();
    let results: Vec<(String, Tested)> = std::thread::scope(|s| {
        let handles: Vec<_> = USERS
            .iter()
            .map(|u| {
                let path = &path;
                s.spawn(move || (u.name.to_owned(), test_snmp(path, u.name, &env())))
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for (user, t) in results {
        assert!(t.ok, "{user}: {}\n{}", t.header, t.stderr);
        assert!(t.header.contains(&format!("user `{user}`")), "{}", t.header);
        assert_eq!(t.scalar_record()["sysName"], SYS_NAME, "{user}");
        assert_eq!(t.metric("snmp_up", &[]), Some((1.0, false)), "{user}");
        let got = t
            .metrics()
            .into_iter()
            .filter(|(n, _, _, _)| *n == "snmp_hrStorageSize")
            .count();
        assert_eq!(got, rows, "{user}: hrStorageTable rows");
    }
}

#[test]
fn each_wrong_credential_gets_its_own_explanation() {
    let snmpd = Snmpd::start(1).unwrap();
    let a = snmpd.address();
    let get = "get = [\"sysUpTime.0\"]\ntimeout = \"500ms\"\nretries = 1";
    let cases: Vec<Case<'_>> = vec![
        ("wrong-community", v2c_device("wrong-community", &a, get), vec![("SNMP_COMMUNITY", "private")], "timeout: no answer after 2 attempt(s) of 500ms each — the device answers SNMP (its v3 engine replied to a discovery probe) but not to this community"),
        ("wrong-auth", v3_device("wrong-auth", &a, "authPrivUser", "authPriv", Some("sha"), Some("aes"), get), vec![("SNMP_AUTH", "not-the-password")], "SNMPv3: wrong auth password (or auth protocol) for user `authPrivUser`: the device reported usmStatsWrongDigests"),
        ("wrong-auth-protocol", v3_device("wrong-auth-protocol", &a, "authPrivUser", "authPriv", Some("md5"), Some("aes"), get), vec![], "SNMPv3: wrong auth password (or auth protocol) for user `authPrivUser`"),
        ("wrong-priv", v3_device("wrong-priv", &a, "authPrivUser", "authPriv", Some("sha"), Some("aes"), get), vec![("SNMP_PRIV", "not-the-password")], "SNMPv3: wrong priv password (or priv protocol) for user `authPrivUser`: encrypted requests time out, but the device answers this user's authenticated requests without privacy"),
        ("wrong-priv-protocol", v3_device("wrong-priv-protocol", &a, "authPrivUser", "authPriv", Some("sha"), Some("des"), get), vec![], "SNMPv3: wrong priv password (or priv protocol) for user `authPrivUser`"),
        ("unknown-user", v3_device("unknown-user", &a, "ghostUser", "authNoPriv", Some("sha"), None, get), vec![], "SNMPv3: unknown user `ghostUser`: the device has no such user (it reported usmStatsUnknownUserNames)"),
        ("level-too-high", v3_device("level-too-high", &a, "authOnlyUser", "authPriv", Some("sha"), Some("aes"), get), vec![], "SNMPv3: unsupported security level or protocol: the device does not accept authPriv for user `authOnlyUser`"),
    ];
    let devices: String = cases.iter().map(|c| c.1.clone()).collect();
    let (_dir, path) = config(&devices);
    std::thread::scope(|s| {
        let handles: Vec<_> = cases
            .iter()
            .map(|(name, _, overrides, want)| {
                let path = &path;
                s.spawn(move || {
                    let mut e = env();
                    for (k, v) in overrides {
                        e.retain(|(x, _)| x != k);
                        e.push((k, v));
                    }
                    let t = test_snmp(path, name, &e);
                    assert!(!t.ok, "{name} succeeded: {}", t.header);
                    let prefix = format!("error: {name}: GET sysUpTime.0 (1.3.6.1.2.1.1.3.0): ");
                    assert!(t.stderr.contains(&prefix), "{name}: {}", t.stderr);
                    assert!(
                        t.stderr.contains(want),
                        "{name}: expected {want:?} in\n{}",
                        t.stderr
                    );
                    assert_eq!(t.metric("snmp_up", &[]), Some((0.0, false)), "{name}");
                })
            })
            .collect();
        for h in handles {
            h.join().unwrap();
        }
    });
}

#[test]
fn a_silent_port_times_out_with_retries_counted() {
    // A bound socket that never answers: nobody listens as an SNMP agent.
    let silent = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let addr = silent.local_addr().unwrap().to_string();
    let (_dir, path) = config(&v2c_device(
        "silent",
        &addr,
        "get = [\"sysUpTime.0\"]\ntimeout = \"200ms\"\nretries = 2",
    ));
    let t = test_snmp(&path, "silent", &env());
    assert!(!t.ok);
    assert!(
        t.stderr.contains("error: silent: GET sysUpTime.0 (1.3.6.1.2.1.1.3.0): timeout: no answer after 3 attempt(s) of 200ms each — the device does not answer at all"),
        "{}",
        t.stderr
    );
    // Three attempts, plus the diagnosis probe; every one timed out.
    assert_eq!(t.counter("datagram(s) sent"), 4, "{}", t.header);
    assert_eq!(t.counter("timed out"), 4, "{}", t.header);
    assert_eq!(t.counter("answer(s)"), 0, "{}", t.header);
    assert!(t.seconds >= 0.8, "{} s", t.seconds);
    // The datagrams really went out.
    silent
        .set_read_timeout(Some(Duration::from_secs(1)))
        .unwrap();
    let mut buf = [0u8; 1500];
    for i in 0..4 {
        silent
            .recv_from(&mut buf)
            .unwrap_or_else(|e| panic!("datagram {i}: {e}"));
    }
}

#[test]
fn a_slow_device_is_answered_through_retries() {
    let snmpd = Snmpd::start(1).unwrap();
    let (_dir, path) = config(&v3_device(
        "slow",
        &snmpd.address(),
        "authPrivUser",
        "authPriv",
        Some("sha"),
        Some("aes"),
        "get = [\"sysName.0\"]\ntimeout = \"400ms\"\nretries = 5",
    ));
    // Discovery first, so the pause hits a request, not the engine discovery.
    assert!(test_snmp(&path, "slow", &env()).ok);
    snmpd.pause();
    let t = std::thread::scope(|s| {
        let h = s.spawn(|| test_snmp(&path, "slow", &env()));
        std::thread::sleep(Duration::from_millis(1000));
        snmpd.resume();
        h.join().unwrap()
    });
    assert!(t.ok, "{}\n{}", t.header, t.stderr);
    assert!(t.counter("timed out") >= 1, "{}", t.header);
    assert_eq!(t.scalar_record()["sysName"], SYS_NAME);
}

#[test]
fn the_running_agent_ships_snmp_events_and_counts_rounds_timeouts_and_errors() {
    let snmpd = Snmpd::start(2).unwrap();
    let silent = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let ingest = IngestHarness::start(IngestOptions::new().tenant(TenantSpec::new("acme")));
    let u = find_user("sha256Aes256User");
    let sw_a = format!("[[snmp.device]]\nname = \"sw-a\"\naddress = \"127.0.0.1:{}\"\nprofile = \"v3\"\nlabels = {{ site = \"dc1\" }}\n", snmpd.ports()[0]);
    let snmp = format!(
        "[snmp]\nmax_concurrent = 2\n\n[snmp.profile.v3]\nversion = \"v3\"\nuser = \"{}\"\nsecurity_level = \"authPriv\"\nauth_protocol = \"{}\"\nauth_password_env = \"SNMP_AUTH\"\npriv_protocol = \"{}\"\npriv_password_env = \"SNMP_PRIV\"\ninterval = \"1s\"\ntimeout = \"200ms\"\nretries = 1\nwalk = [\"ifXTable\"]\n\n{}\n{}\n{}",
        u.name,
        u.auth.unwrap(),
        u.privacy.unwrap(),
        sw_a,
        v2c_device("sw-b", &format!("127.0.0.1:{}", snmpd.ports()[1]), "interval = \"1s\"\ntimeout = \"300ms\"\nretries = 1\nwalk = [\"hrStorageTable\"]"),
        v2c_device("gone", &silent.local_addr().unwrap().to_string(), "interval = \"1s\"\ntimeout = \"100ms\"\nretries = 1\nget = [\"sysUpTime.0\"]"),
    );
    let mut opts = AgentOptions::new("snmp-agent").extra(&snmp);
    for (k, v) in env() {
        opts = opts.env(k, v);
    }
    let agent = AgentHarness::start(ShipTarget::of(&ingest, "acme"), opts);
    let key = ingest.tenant("acme").key.clone();
    let deadline = Instant::now() + Duration::from_secs(60);
    let (mut a, mut b) = (Vec::new(), Vec::new());
    while Instant::now() < deadline {
        let lines = ingest
            .client()
            .query_all(&key, "/v1/metrics", &[("source", "snmp")]);
        a = lines
            .iter()
            .filter(|l| l.contains("\"device\":\"sw-a\"") && l.contains("snmp_ifHCInOctets"))
            .cloned()
            .collect();
        b = lines
            .iter()
            .filter(|l| l.contains("\"device\":\"sw-b\"") && l.contains("snmp_hrStorageSize"))
            .cloned()
            .collect();
        let rounds = agent
            .metric(
                "logops_agent_collector_rounds_total",
                &[("collector", "snmp")],
            )
            .unwrap_or(0.0);
        if !a.is_empty() && !b.is_empty() && rounds >= 6.0 {
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(
        !a.is_empty() && !b.is_empty(),
        "no SNMP metrics stored; agent log:\n{}",
        agent.log_tail(40)
    );
    for line in a.iter().chain(&b) {
        let e = logops_common::parse_line(line, 1).unwrap();
        assert_eq!((e.host.as_ref(), e.source.as_ref()), ("snmp-agent", "snmp"));
    }
    assert!(a
        .iter()
        .all(|l| l.contains("\"site\":\"dc1\"") && l.contains("\"type\":\"counter\"")));
    let m = |name: &str, labels: &[(&str, &str)]| agent.metric(name, labels).unwrap_or(0.0);
    assert!(
        m(
            "logops_agent_collector_rounds_total",
            &[("collector", "snmp")]
        ) >= 6.0
    );
    assert!(
        m(
            "logops_agent_collector_timeouts_total",
            &[("collector", "snmp")]
        ) >= 2.0
    );
    assert!(
        m(
            "logops_agent_collector_errors_total",
            &[("collector", "snmp"), ("reason", "timeout")]
        ) >= 1.0
    );
    let log = agent.log();
    assert!(
        log.contains("gone: GET sysUpTime.0 (1.3.6.1.2.1.1.3.0): timeout"),
        "{log}"
    );
    assert_eq!(
        log.matches("gone: GET sysUpTime.0").count(),
        1,
        "logged once, not every poll:\n{log}"
    );
    let ups = ingest
        .client()
        .query_all(&key, "/v1/metrics", &[("name", "snmp_up")]);
    assert!(ups
        .iter()
        .any(|l| l.contains("\"device\":\"gone\"") && l.contains("\"value\":0")));
    assert!(ups
        .iter()
        .any(|l| l.contains("\"device\":\"sw-a\"") && l.contains("\"value\":1")));
}

#[test]
fn check_config_names_file_line_column_and_key_of_snmp_mistakes() {
    let (_dir, path) = config(
        "[snmp.profile.core]\nversion = \"v3\"\nuser = \"monitor\"\nsecurity_level = \"authPriv\"\nauth_protocol = \"sha\"\nauth_password_env = \"SNMP_AUTH\"\npriv_protocol = \"aes\"\n\n[[snmp.device]]\nname = \"sw1\"\naddress = \"10.0.0.1\"\nprofile = \"cor\"\nwalk = [\"ifTable\"]\n",
    );
    let out = run_binary(
        &agent_binary().unwrap(),
        &["check-config", "--config", path.to_str().unwrap()],
    );
    let text = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    let p = path.display();
    assert!(
        text.contains(&format!(
            "{p}:5:1: snmp.profile.core: security_level = \"authPriv\" needs `priv_password_env`"
        )),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "{p}:16:11: snmp.device[0].profile: unknown profile `cor`; did you mean `core`?"
        )),
        "{text}"
    );
    let (_dir, path) = config(
        "[snmp.profile.core]\nversion = \"v3\"\nuser = \"m\"\nsecurity_level = \"authpriv\"\n",
    );
    let out = run_binary(
        &agent_binary().unwrap(),
        &["check-config", "--config", path.to_str().unwrap()],
    );
    let text = String::from_utf8_lossy(&out.stderr);
    assert!(
        text.contains(&format!(
            "{}:8:18: snmp.profile.core.security_level: unknown variant `authpriv`",
            path.display()
        )),
        "{text}"
    );
}
