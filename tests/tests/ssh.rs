//! The SSH collector against real SSH servers started by each test on free 127.0.0.1 ports
//! (tests/src/sshd.rs): a private OpenSSH whose ForceCommand is a fake Cisco router
//! (`router1>`/`router1#`, enable, paging, a command that hangs), fake-switches (Twisted
//! conch) as a Cisco switch, and a plain OpenSSH host as `linux`. Netmiko, run against the
//! same servers, is the reference for the output text; Python's ntc-templates
//! `parse_output` of Netmiko's text is the reference for the records.
//!
//! The agent runs for real: `logops-agent test ssh DEVICE --json` logs in once and prints
//! the events; `logops-agent run` ships them to a real ingest.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use logops_common::event::{MetricValue, Payload};
use logops_common::Event;
use logops_e2e::agent::{agent_binary, AgentHarness, AgentOptions, ShipTarget};
use logops_e2e::sshd::{
    keygen, keyscan, netmiko, FakeSwitch, Sshd, SshdOptions, ENABLE_SECRET, SWITCH_PASSWORD,
    SWITCH_USER, USER,
};
use logops_e2e::{ntc, run_binary, run_binary_env, IngestHarness, IngestOptions, TenantSpec};

const SHIP: &str =
    "[ship]\nurl = \"http://127.0.0.1:9/v1/batch\"\napi_key_env = \"LOGOPS_UNUSED_KEY\"\n";

/// The three commands every Cisco-like test runs.
const SHOWS: [&str; 3] = ["show version", "show ip interface brief", "show interfaces"];

/// A scratch directory with `agent.toml` (and whatever a test adds: keys, known_hosts).
struct Scratch {
    dir: tempfile::TempDir,
}

impl Scratch {
    fn new() -> Scratch {
        Scratch {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn write(&self, name: &str, text: &str) -> PathBuf {
        let p = self.path(name);
        std::fs::write(&p, text).unwrap();
        p
    }

    /// `agent.toml`: `[ssh]` with the templates and `ssh_extra`, then the devices.
    fn config(&self, ssh_extra: &str, devices: &[String]) -> PathBuf {
        let text = format!(
            "{SHIP}\n[ssh]\ntemplates_dir = {:?}\n{ssh_extra}\n\n{}",
            ntc::templates_dir().display().to_string(),
            devices.join("\n")
        );
        self.write("agent.toml", &text)
    }
}

/// A `[[ssh.device]]` table.
fn device(name: &str, address: &str, device_type: &str, user: &str, extra: &str) -> String {
    format!(
        "[[ssh.device]]\nname = \"{name}\"\naddress = \"{address}\"\ndevice_type = \"{device_type}\"\nusername = \"{user}\"\n{extra}\n"
    )
}

fn commands(list: &[&str]) -> String {
    let quoted: Vec<String> = list.iter().map(|c| format!("{c:?}")).collect();
    format!("commands = [{}]", quoted.join(", "))
}

/// What `logops-agent test ssh --json` printed.
struct Tested {
    ok: bool,
    stderr: String,
    events: Vec<Event<'static>>,
    seconds: f64,
}

impl Tested {
    /// The `prompt: ...` summary line.
    fn prompt(&self) -> Option<&str> {
        self.stderr
            .lines()
            .find_map(|l| l.strip_prefix("prompt: "))
    }

    /// The raw output of `command` (a log event; needs keep_raw).
    fn raw(&self, command: &str) -> Option<String> {
        self.events.iter().find_map(|e| match &e.payload {
            Payload::Log { body, .. } if label(e, "command") == Some(command) => {
                Some(body.to_string())
            }
            _ => None,
        })
    }

    /// The records of `command`, as JSON objects.
    fn records(&self, command: &str) -> Vec<serde_json::Value> {
        self.events
            .iter()
            .filter(|e| matches!(e.payload, Payload::Record) && label(e, "command") == Some(command))
            .map(|e| serde_json::from_str(e.attrs.as_ref().unwrap().as_json()).unwrap())
            .collect()
    }

    /// A metric's value.
    fn metric(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        self.events.iter().find_map(|e| match &e.payload {
            Payload::Metric { name: n, value }
                if n == name && labels.iter().all(|(k, v)| label(e, k) == Some(*v)) =>
            {
                match value {
                    MetricValue::Gauge(v) | MetricValue::Counter(v) => Some(*v),
                    MetricValue::Histogram(_) => None,
                }
            }
            _ => None,
        })
    }
}

fn label<'a>(e: &'a Event<'_>, key: &str) -> Option<&'a str> {
    e.labels.get(key).map(|v| v.as_ref())
}

fn test_ssh(config: &Path, device: &str, env: &[(&str, &str)]) -> Tested {
    let started = Instant::now();
    let out = run_binary_env(
        &agent_binary().unwrap(),
        &["test", "ssh", device, "--config", config.to_str().unwrap(), "--json"],
        env,
    );
    let seconds = started.elapsed().as_secs_f64();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let events = stdout
        .lines()
        .map(|line| {
            let e = logops_common::parse_line(line, 1)
                .unwrap_or_else(|e| panic!("not a wire-format event: {line}: {e}"));
            assert_eq!(e.source, "ssh");
            assert_eq!(label(&e, "device"), Some(device));
            e.into_owned()
        })
        .collect();
    Tested {
        ok: out.status.success(),
        stderr,
        events,
        seconds,
    }
}

/// Python's `ntc_templates.parse.parse_output` of `text`: the reference records.
fn reference_records(platform: &str, command: &str, text: &str) -> Vec<serde_json::Value> {
    use std::io::Write;
    let script = "import json, sys\nfrom ntc_templates.parse import parse_output\n\
        print(json.dumps(parse_output(platform=sys.argv[2], command=sys.argv[3], \
        data=sys.stdin.read(), template_dir=sys.argv[1])))";
    let mut child = Command::new(ntc::python())
        .args(["-c", script])
        .arg(ntc::templates_dir())
        .args([platform, command])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

/// The agent and Netmiko against the same device: same prompt, same output text, and the
/// agent's records are Python's `parse_output` of Netmiko's text.
fn same_as_netmiko(t: &Tested, n: &logops_e2e::sshd::NetmikoRun, platform: &str, cmds: &[&str]) {
    assert_eq!(t.prompt(), Some(n.prompt.as_str()), "{}", t.stderr);
    for (cmd, want) in cmds.iter().zip(&n.outputs) {
        let got = t.raw(cmd).unwrap_or_else(|| panic!("no raw output of `{cmd}`: {}", t.stderr));
        assert_eq!(&got, want, "`{cmd}`: the agent's output differs from Netmiko's");
        let records = t.records(cmd);
        assert_eq!(
            records,
            reference_records(platform, cmd, want),
            "`{cmd}`: records differ from parse_output of Netmiko's text"
        );
    }
}

#[test]
fn fake_router_outputs_and_records_equal_netmiko() {
    let sshd = Sshd::start(SshdOptions::router(&[])).unwrap();
    let s = Scratch::new();
    let kh = s.write("known_hosts", &format!("{}\n", sshd.known_hosts_line()));
    let dev = device(
        "rtr1",
        &sshd.address(),
        "cisco_ios",
        USER,
        &format!(
            "password_env = \"RTR_PASS\"\nsecret_env = \"RTR_ENABLE\"\nknown_hosts = {:?}\nkeep_raw = true\n{}",
            kh.display().to_string(),
            commands(&SHOWS)
        ),
    );
    let path = s.config("", &[dev]);
    let env = [("RTR_PASS", sshd.password()), ("RTR_ENABLE", ENABLE_SECRET)];
    let t = test_ssh(&path, "rtr1", &env);
    assert!(t.ok, "{}\n{}", t.stderr, sshd.log());
    assert_eq!(t.prompt(), Some("router1#"));
    // The fake router pages at 24 lines until `terminal length 0`: all 43 lines of
    // `show interfaces` without a `--More--` show it was sent.
    let interfaces = t.raw("show interfaces").unwrap();
    assert_eq!(interfaces.lines().count(), 43, "{interfaces}");
    assert!(!interfaces.contains("More"));
    assert_eq!(t.records("show version").len(), 1);
    assert_eq!(t.records("show ip interface brief").len(), 4);
    assert_eq!(t.records("show interfaces").len(), 4);
    let r = &t.records("show ip interface brief")[0];
    assert_eq!(r["interface"], "Vlan1");
    assert_eq!(r["ip_address"], "192.0.2.11");
    for e in &t.events {
        if matches!(e.payload, Payload::Record) {
            assert_eq!(label(e, "template").map(|t| t.ends_with(".textfsm")), Some(true));
        }
    }
    assert_eq!(t.metric("ssh_up", &[]), Some(1.0));
    let n = netmiko("cisco_ios", sshd.port(), USER, sshd.password(), Some(ENABLE_SECRET), &SHOWS)
        .unwrap();
    same_as_netmiko(&t, &n, "cisco_ios", &SHOWS);
}
