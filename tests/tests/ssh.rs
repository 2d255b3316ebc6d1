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
        self.stderr.lines().find_map(|l| l.strip_prefix("prompt: "))
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
            .filter(|e| {
                matches!(e.payload, Payload::Record) && label(e, "command") == Some(command)
            })
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
        &[
            "test",
            "ssh",
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
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// The agent and Netmiko against the same device: same prompt, same output text, and the
/// agent's records are Python's `parse_output` of Netmiko's text.
fn same_as_netmiko(t: &Tested, n: &logops_e2e::sshd::NetmikoRun, platform: &str, cmds: &[&str]) {
    assert_eq!(t.prompt(), Some(n.prompt.as_str()), "{}", t.stderr);
    for (cmd, want) in cmds.iter().zip(&n.outputs) {
        let got = t
            .raw(cmd)
            .unwrap_or_else(|| panic!("no raw output of `{cmd}`: {}", t.stderr));
        assert_eq!(
            &got, want,
            "`{cmd}`: the agent's output differs from Netmiko's"
        );
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
            assert_eq!(
                label(e, "template").map(|t| t.ends_with(".textfsm")),
                Some(true)
            );
        }
    }
    assert_eq!(t.metric("ssh_up", &[]), Some(1.0));
    let n = netmiko(
        "cisco_ios",
        sshd.port(),
        USER,
        sshd.password(),
        Some(ENABLE_SECRET),
        &SHOWS,
    )
    .unwrap();
    same_as_netmiko(&t, &n, "cisco_ios", &SHOWS);
}

/// A router device with a password, enable secret and known_hosts from `sshd`.
fn router_device(s: &Scratch, sshd: &Sshd, name: &str, extra: &str) -> String {
    let kh = s.write(
        &format!("known_hosts-{name}"),
        &format!("{}\n", sshd.known_hosts_line()),
    );
    device(
        name,
        &sshd.address(),
        "cisco_ios",
        USER,
        &format!(
            "password_env = \"RTR_PASS\"\nsecret_env = \"RTR_ENABLE\"\nknown_hosts = {:?}\n{extra}",
            kh.display().to_string()
        ),
    )
}

#[test]
fn fake_switches_with_an_odd_hostname_equal_netmiko() {
    // Parentheses, a plus and dots: the prompt is matched exactly, never as a regex.
    let host = "core(sw1)+a.dc";
    let sw = FakeSwitch::start(host).unwrap();
    let s = Scratch::new();
    let kh = s.write("known_hosts", &keyscan(sw.port()).unwrap());
    let dev = device(
        "sw1",
        &format!("127.0.0.1:{}", sw.port()),
        "cisco_ios",
        SWITCH_USER,
        &format!(
            "password_env = \"SW_PASS\"\nsecret_env = \"SW_ENABLE\"\nknown_hosts = {:?}\nkeep_raw = true\n{}",
            kh.display().to_string(),
            commands(&SHOWS)
        ),
    );
    let path = s.config("", &[dev]);
    let t = test_ssh(
        &path,
        "sw1",
        &[("SW_PASS", SWITCH_PASSWORD), ("SW_ENABLE", ENABLE_SECRET)],
    );
    assert!(t.ok, "{}\n{}", t.stderr, sw.log());
    assert_eq!(t.prompt(), Some(format!("{host}#").as_str()));
    assert!(
        t.records("show ip interface brief").len() > 4,
        "{:?}",
        t.raw("show ip interface brief")
    );
    assert!(!t.records("show interfaces").is_empty());
    let n = netmiko(
        "cisco_ios",
        sw.port(),
        SWITCH_USER,
        SWITCH_PASSWORD,
        Some(ENABLE_SECRET),
        &SHOWS,
    )
    .unwrap();
    same_as_netmiko(&t, &n, "cisco_ios", &SHOWS);
}

#[test]
fn a_plain_openssh_host_as_linux_equals_netmiko() {
    let sshd = Sshd::start(SshdOptions::shell()).unwrap();
    let s = Scratch::new();
    let kh = s.write("known_hosts", &format!("{}\n", sshd.known_hosts_line()));
    let cmds = [
        "uname -s",
        "id -un",
        "printf 'a\\tb\\n\\nc\\n'",
        "seq 1 300",
    ];
    let dev = device(
        "lnx",
        &sshd.address(),
        "linux",
        USER,
        &format!(
            "password_env = \"LNX_PASS\"\nknown_hosts = {:?}\n{}",
            kh.display().to_string(),
            commands(&cmds)
        ),
    );
    let path = s.config("", &[dev]);
    let t = test_ssh(&path, "lnx", &[("LNX_PASS", sshd.password())]);
    assert!(t.ok, "{}\n{}", t.stderr, sshd.log());
    let prompt = t.prompt().unwrap();
    assert!(
        prompt.starts_with(&format!("{USER}@")) && prompt.ends_with('$'),
        "{prompt}"
    );
    // No template for these: the raw output is kept as a log event.
    assert_eq!(t.raw("uname -s").as_deref(), Some("Linux"));
    assert_eq!(t.raw("id -un").as_deref(), Some(USER));
    assert_eq!(
        t.raw("printf 'a\\tb\\n\\nc\\n'").as_deref(),
        Some("a\tb\n\nc")
    );
    let seq: Vec<String> = (1..=300).map(|i| i.to_string()).collect();
    assert_eq!(t.raw("seq 1 300"), Some(seq.join("\n")));
    let n = netmiko("linux", sshd.port(), USER, sshd.password(), None, &cmds).unwrap();
    assert_eq!(t.prompt(), Some(n.prompt.as_str()));
    for (cmd, want) in cmds.iter().zip(&n.outputs) {
        // bash 5.2 ends bracketed paste with `ESC[?2004l` + a carriage return before the
        // output; Netmiko turns that carriage return into an empty first line, a terminal
        // (and the agent) does not. The one difference; the text is otherwise the same.
        let want = want.strip_prefix('\n').unwrap_or(want);
        assert_eq!(t.raw(cmd).as_deref(), Some(want), "`{cmd}`");
    }
}

#[test]
fn a_wrong_password_is_an_authentication_error() {
    let sshd = Sshd::start(SshdOptions::router(&[])).unwrap();
    let s = Scratch::new();
    let dev = router_device(&s, &sshd, "rtr1", &commands(&["show version"]));
    let path = s.config("", &[dev]);
    let t = test_ssh(
        &path,
        "rtr1",
        &[
            ("RTR_PASS", "not-the-password"),
            ("RTR_ENABLE", ENABLE_SECRET),
        ],
    );
    assert!(!t.ok);
    assert!(
        t.stderr.contains(&format!(
            "error: rtr1: authentication failed for user `{USER}`: tried password: "
        )),
        "{}",
        t.stderr
    );
    assert!(
        t.stderr
            .contains("(the server accepts: publickey,password)"),
        "{}",
        t.stderr
    );
    assert_eq!(t.metric("ssh_up", &[]), Some(0.0));
    assert!(t.records("show version").is_empty());
}

#[test]
fn a_changed_host_key_is_refused_with_the_file_and_line_of_the_old_key() {
    let sshd = Sshd::start(SshdOptions::router(&[])).unwrap();
    let s = Scratch::new();
    // Line 3 holds another ed25519 key for this host (as if the device was replaced).
    let other = keygen(&s.path("other_host_key"), "").unwrap();
    let mut f = other.split_whitespace();
    let (kind, key) = (f.next().unwrap(), f.next().unwrap());
    let kh = s.write(
        "known_hosts",
        &format!(
            "# devices\nsw9.example.net {kind} {key}\n[127.0.0.1]:{} {kind} {key}\n",
            sshd.port()
        ),
    );
    let base = format!(
        "password_env = \"RTR_PASS\"\nknown_hosts = {:?}\n{}",
        kh.display().to_string(),
        commands(&["show version"])
    );
    let devs = [
        device("strict", &sshd.address(), "cisco_ios", USER, &base),
        device(
            "accept-new",
            &sshd.address(),
            "cisco_ios",
            USER,
            &format!("{base}\nhost_key_policy = \"accept-new\""),
        ),
        device(
            "insecure",
            &sshd.address(),
            "cisco_ios",
            USER,
            &format!("{base}\nhost_key_policy = \"insecure\""),
        ),
    ];
    let path = s.config("", &devs);
    let env = [("RTR_PASS", sshd.password())];
    for name in ["strict", "accept-new"] {
        let t = test_ssh(&path, name, &env);
        assert!(!t.ok, "{name}");
        let want = format!(
            "error: {name}: HOST KEY CHANGED for [127.0.0.1]:{}: the server offers ssh-ed25519 SHA256:",
            sshd.port()
        );
        assert!(t.stderr.contains(&want), "{name}: {}", t.stderr);
        let at = format!(
            "but {}:3 has a ssh-ed25519 key for it; refused",
            kh.display()
        );
        assert!(t.stderr.contains(&at), "{name}: {}", t.stderr);
        assert!(t
            .events
            .iter()
            .all(|e| !matches!(e.payload, Payload::Record)));
    }
    // The file is untouched by accept-new.
    assert_eq!(std::fs::read_to_string(&kh).unwrap().lines().count(), 3);
    let t = test_ssh(&path, "insecure", &env);
    assert!(t.ok, "{}", t.stderr);
    assert_eq!(t.records("show version").len(), 1);
}

#[test]
fn accept_new_records_a_first_seen_key_and_strict_then_accepts_it() {
    let sshd = Sshd::start(SshdOptions::router(&[])).unwrap();
    let s = Scratch::new();
    let kh = s.path("known_hosts");
    let base = format!(
        "password_env = \"RTR_PASS\"\nknown_hosts = {:?}\n{}",
        kh.display().to_string(),
        commands(&["show version"])
    );
    let devs = [
        device("strict", &sshd.address(), "cisco_ios", USER, &base),
        device(
            "new",
            &sshd.address(),
            "cisco_ios",
            USER,
            &format!("{base}\nhost_key_policy = \"accept-new\""),
        ),
    ];
    let path = s.config("", &devs);
    let env = [("RTR_PASS", sshd.password())];
    // Strict, unknown host: refused with the way to add it.
    let t = test_ssh(&path, "strict", &env);
    assert!(!t.ok);
    assert!(
        t.stderr.contains(&format!(
            "error: strict: the host key of [127.0.0.1]:{p} is not in {k} (the server offers ssh-ed25519 SHA256:",
            p = sshd.port(),
            k = kh.display()
        )),
        "{}",
        t.stderr
    );
    assert!(
        t.stderr.contains(&format!(
            "ssh-keyscan -p {} 127.0.0.1 >> {}",
            sshd.port(),
            kh.display()
        )),
        "{}",
        t.stderr
    );
    assert!(!kh.exists());
    // accept-new records it (creating the file), once.
    let t = test_ssh(&path, "new", &env);
    assert!(t.ok, "{}", t.stderr);
    assert!(
        t.stderr
            .contains(&format!("recorded in {}:1", kh.display())),
        "{}",
        t.stderr
    );
    assert_eq!(
        std::fs::read_to_string(&kh).unwrap(),
        format!("{}\n", sshd.known_hosts_line())
    );
    assert!(test_ssh(&path, "new", &env).ok);
    assert_eq!(std::fs::read_to_string(&kh).unwrap().lines().count(), 1);
    // Now strict accepts it.
    let t = test_ssh(&path, "strict", &env);
    assert!(t.ok, "{}", t.stderr);
}

#[test]
fn key_authentication_with_a_passphrase() {
    let sshd = Sshd::start(SshdOptions::router(&[])).unwrap();
    let s = Scratch::new();
    let key = s.path("id_ed25519");
    sshd.authorize(&keygen(&key, "correct horse").unwrap())
        .unwrap();
    let kh = s.write("known_hosts", &format!("{}\n", sshd.known_hosts_line()));
    let extra = format!(
        "key_file = {:?}\npassphrase_env = \"KEY_PASS\"\nsecret_file = {:?}\nknown_hosts = {:?}\n{}",
        key.display().to_string(),
        s.write("enable", &format!("{ENABLE_SECRET}\n")).display().to_string(),
        kh.display().to_string(),
        commands(&["show ip interface brief"])
    );
    let path = s.config(
        "",
        &[device("keyed", &sshd.address(), "cisco_ios", USER, &extra)],
    );
    let t = test_ssh(&path, "keyed", &[("KEY_PASS", "correct horse")]);
    assert!(t.ok, "{}\n{}", t.stderr, sshd.log());
    assert_eq!(t.prompt(), Some("router1#"));
    assert_eq!(t.records("show ip interface brief").len(), 4);
    assert!(
        sshd.log().contains("Accepted publickey for logops-ssh-e2e"),
        "{}",
        sshd.log()
    );
    let t = test_ssh(&path, "keyed", &[("KEY_PASS", "wrong horse")]);
    assert!(!t.ok);
    assert!(
        t.stderr.contains(&format!(
            "tried key {}: cannot be read or decrypted",
            key.display()
        )),
        "{}",
        t.stderr
    );
    assert!(t.stderr.contains("wrong passphrase?"), "{}", t.stderr);
}

#[test]
fn keyboard_interactive_logins_work() {
    let mut opts = SshdOptions::router(&[]);
    opts.keyboard_interactive_only = true;
    let sshd = Sshd::start(opts).unwrap();
    let s = Scratch::new();
    let dev = router_device(&s, &sshd, "kbd", &commands(&["show version"]));
    let path = s.config("", &[dev]);
    let t = test_ssh(
        &path,
        "kbd",
        &[("RTR_PASS", sshd.password()), ("RTR_ENABLE", ENABLE_SECRET)],
    );
    assert!(t.ok, "{}\n{}", t.stderr, sshd.log());
    assert_eq!(t.records("show version").len(), 1);
    assert!(
        sshd.log()
            .contains("Accepted keyboard-interactive/pam for logops-ssh-e2e"),
        "{}",
        sshd.log()
    );
}

#[test]
fn a_command_that_never_returns_the_prompt_times_out_and_the_next_command_still_runs() {
    let sshd = Sshd::start(SshdOptions::router(&[])).unwrap();
    let s = Scratch::new();
    let cmds = ["show version", "show hang", "show ip interface brief"];
    let dev = router_device(
        &s,
        &sshd,
        "rtr1",
        &format!("command_timeout = \"2s\"\n{}", commands(&cmds)),
    );
    let path = s.config("", &[dev]);
    let env = [("RTR_PASS", sshd.password()), ("RTR_ENABLE", ENABLE_SECRET)];
    let t = test_ssh(&path, "rtr1", &env);
    assert!(!t.ok);
    assert!(
        t.stderr.contains(
            "error: rtr1: `show hang` timed out after 2s: the prompt `router1#` did not come back; last bytes received: \""
        ),
        "{}",
        t.stderr
    );
    assert!(
        t.stderr.contains("router1#show hang\\r\\n\"\n"),
        "{}",
        t.stderr
    );
    assert_eq!(t.records("show version").len(), 1);
    assert_eq!(
        t.records("show ip interface brief").len(),
        4,
        "{}",
        t.stderr
    );
    // Ctrl-C is ignored by this router: the session was replaced by a second one.
    assert!(t.stderr.contains(": 2 session(s)"), "{}", t.stderr);
    assert_eq!(t.metric("ssh_up", &[]), Some(0.0));
    assert!(t.seconds < 20.0, "{} s", t.seconds);
}

#[test]
fn a_device_that_pages_despite_the_paging_command_is_answered() {
    let host = "edge(rtr)-1.dc";
    let paging = Sshd::start(SshdOptions::router(&[
        "--page-always",
        "7",
        "--hostname",
        host,
    ]))
    .unwrap();
    let plain = Sshd::start(SshdOptions::router(&["--hostname", host])).unwrap();
    let s = Scratch::new();
    let extra = format!("keep_raw = true\n{}", commands(&SHOWS));
    let devs = [
        router_device(&s, &paging, "paging", &extra),
        router_device(&s, &plain, "plain", &extra),
    ];
    let path = s.config("", &devs);
    let paged = test_ssh(
        &path,
        "paging",
        &[
            ("RTR_PASS", paging.password()),
            ("RTR_ENABLE", ENABLE_SECRET),
        ],
    );
    assert!(paged.ok, "{}", paged.stderr);
    let reference = test_ssh(
        &path,
        "plain",
        &[
            ("RTR_PASS", plain.password()),
            ("RTR_ENABLE", ENABLE_SECRET),
        ],
    );
    assert!(reference.ok, "{}", reference.stderr);
    assert_eq!(paged.prompt(), Some(format!("{host}#").as_str()));
    for cmd in SHOWS {
        let got = paged.raw(cmd).unwrap();
        assert!(!got.contains("More"), "{got}");
        assert_eq!(Some(got), reference.raw(cmd), "`{cmd}`");
        assert_eq!(paged.records(cmd), reference.records(cmd));
    }
    assert_eq!(paged.records("show interfaces").len(), 4);
}

#[test]
fn connection_failures_say_what_failed() {
    let s = Scratch::new();
    // Nothing listens on this port.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let closed_port = closed.local_addr().unwrap().port();
    drop(closed);
    // An OpenSSH host taken for a router: bash's `$` prompt never ends in `>` or `#`.
    let shell = Sshd::start(SshdOptions::shell()).unwrap();
    let kh = s.write("known_hosts", &format!("{}\n", shell.known_hosts_line()));
    let base = format!(
        "password_env = \"P\"\nconnect_timeout = \"4s\"\nknown_hosts = {:?}\n{}",
        kh.display().to_string(),
        commands(&["show version"])
    );
    let devs = [
        device("dns", "no-such-host.invalid:22", "cisco_ios", USER, &base),
        device(
            "tcp",
            &format!("127.0.0.1:{closed_port}"),
            "cisco_ios",
            USER,
            &base,
        ),
        device("prompt", &shell.address(), "cisco_ios", USER, &base),
    ];
    let path = s.config("", &devs);
    let env = [("P", shell.password())];
    let t = test_ssh(&path, "dns", &env);
    assert!(!t.ok);
    assert!(
        t.stderr
            .contains("error: dns: cannot resolve `no-such-host.invalid` (DNS): "),
        "{}",
        t.stderr
    );
    let t = test_ssh(&path, "tcp", &env);
    assert!(
        t.stderr.contains(&format!(
            "error: tcp: TCP connection to 127.0.0.1:{closed_port} failed: 127.0.0.1:{closed_port}: Connection refused"
        )),
        "{}",
        t.stderr
    );
    let t = test_ssh(&path, "prompt", &env);
    assert!(!t.ok);
    assert!(
        t.stderr.contains(
            "error: prompt: prompt not found within 4s after login; last bytes received: \""
        ),
        "{}",
        t.stderr
    );
    assert!(
        t.stderr.contains(&format!("{USER}@")),
        "the last bytes show bash's prompt: {}",
        t.stderr
    );
    // Without the password variable.
    let t = test_ssh(&path, "prompt", &[]);
    assert!(
        t.stderr
            .contains("error: prompt: password ($P): environment variable P is not set"),
        "{}",
        t.stderr
    );
}

#[test]
fn the_running_agent_ships_records_metrics_and_raw_output_to_the_ingest() {
    let router = Sshd::start(SshdOptions::router(&[])).unwrap();
    let linux = Sshd::start(SshdOptions::shell()).unwrap();
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let closed_port = closed.local_addr().unwrap().port();
    drop(closed);
    let ingest = IngestHarness::start(IngestOptions::new().tenant(TenantSpec::new("acme")));
    let s = Scratch::new();
    let kh = s.write(
        "known_hosts",
        &format!(
            "{}\n{}\n",
            router.known_hosts_line(),
            linux.known_hosts_line()
        ),
    );
    let kh = format!("{:?}", kh.display().to_string());
    let ssh = format!(
        "[ssh]\ntemplates_dir = {:?}\nmax_sessions = 2\nknown_hosts = {kh}\ninterval = \"2s\"\nconnect_timeout = \"3s\"\n\n{}\n{}\n{}",
        ntc::templates_dir().display().to_string(),
        device(
            "rtr1",
            &router.address(),
            "cisco_ios",
            USER,
            "password_env = \"RTR_PASS\"\nsecret_env = \"RTR_ENABLE\"\nlabels = { site = \"dc1\" }\ncommands = [\n  \"show version\",\n  { command = \"show interfaces\", metrics = [\n    { field = \"input_errors\", name = \"iface_input_errors_total\", type = \"counter\", labels = [\"interface\"] },\n    { field = \"description\", name = \"iface_description\", type = \"gauge\" },\n  ] },\n]"
        ),
        device(
            "lnx",
            &linux.address(),
            "linux",
            USER,
            "password_env = \"LNX_PASS\"\ncommands = [\"uname -s\"]"
        ),
        device(
            "gone",
            &format!("127.0.0.1:{closed_port}"),
            "cisco_ios",
            USER,
            "password_env = \"RTR_PASS\"\ncommands = [\"show version\"]"
        ),
    );
    let opts = AgentOptions::new("ssh-agent")
        .extra(&ssh)
        .env("RTR_PASS", router.password())
        .env("RTR_ENABLE", ENABLE_SECRET)
        .env("LNX_PASS", linux.password());
    let agent = AgentHarness::start(ShipTarget::of(&ingest, "acme"), opts);
    let key = ingest.tenant("acme").key.clone();
    let m = |name: &str, labels: &[(&str, &str)]| agent.metric(name, labels).unwrap_or(0.0);
    let deadline = Instant::now() + Duration::from_secs(60);
    let (mut records, mut metrics, mut logs) = (Vec::new(), Vec::new(), Vec::new());
    while Instant::now() < deadline {
        records = ingest
            .client()
            .query_all(&key, "/v1/records", &[("source", "ssh")]);
        metrics = ingest
            .client()
            .query_all(&key, "/v1/metrics", &[("source", "ssh")]);
        logs = ingest
            .client()
            .query_all(&key, "/v1/logs", &[("source", "ssh")]);
        if m(
            "logops_agent_collector_rounds_total",
            &[("collector", "ssh")],
        ) >= 6.0
            && !records.is_empty()
            && !logs.is_empty()
        {
            break;
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    let parse = |l: &String| logops_common::parse_line(l, 1).unwrap().into_owned();
    let records: Vec<Event> = records.iter().map(parse).collect();
    let metrics: Vec<Event> = metrics.iter().map(parse).collect();
    let logs: Vec<Event> = logs.iter().map(parse).collect();
    assert!(
        !records.is_empty(),
        "no records stored; agent log:\n{}",
        agent.log_tail(40)
    );
    for e in records.iter().chain(&metrics).chain(&logs) {
        assert_eq!((e.host.as_ref(), e.source.as_ref()), ("ssh-agent", "ssh"));
    }
    let gi1 = records
        .iter()
        .find(|e| {
            label(e, "command") == Some("show interfaces")
                && e.attrs.as_ref().unwrap().to_map()["interface"] == "GigabitEthernet1/0/1"
        })
        .expect("a record of GigabitEthernet1/0/1");
    assert_eq!(label(gi1, "device"), Some("rtr1"));
    assert_eq!(label(gi1, "site"), Some("dc1"));
    assert_eq!(
        label(gi1, "template"),
        Some("cisco_ios_show_interfaces.textfsm")
    );
    assert_eq!(gi1.attrs.as_ref().unwrap().to_map()["input_errors"], "3");
    let counter = metrics
        .iter()
        .find(|e| {
            matches!(&e.payload, Payload::Metric { name, .. } if name == "iface_input_errors_total")
                && label(e, "interface") == Some("GigabitEthernet1/0/1")
        })
        .expect("iface_input_errors_total of GigabitEthernet1/0/1");
    assert!(matches!(
        counter.payload,
        Payload::Metric { value: MetricValue::Counter(v), .. } if v == 3.0
    ));
    assert_eq!(label(counter, "command"), Some("show interfaces"));
    // `description` is not a number: no such metric, an error counted instead.
    assert!(!metrics.iter().any(
        |e| matches!(&e.payload, Payload::Metric { name, .. } if name == "iface_description")
    ));
    let up = |device: &str| {
        metrics.iter().find_map(|e| match &e.payload {
            Payload::Metric {
                name,
                value: MetricValue::Gauge(v),
            } if name == "ssh_up" && label(e, "device") == Some(device) => Some(*v),
            _ => None,
        })
    };
    assert_eq!(up("rtr1"), Some(1.0));
    assert_eq!(up("lnx"), Some(1.0));
    assert_eq!(up("gone"), Some(0.0));
    // No template for `uname -s` on linux: its output is kept as a log event.
    assert!(logs.iter().any(|e| label(e, "device") == Some("lnx")
        && matches!(&e.payload, Payload::Log { body, .. } if body == "Linux")));
    assert!(
        m(
            "logops_agent_collector_rounds_total",
            &[("collector", "ssh")]
        ) >= 6.0
    );
    assert!(
        m(
            "logops_agent_collector_errors_total",
            &[("collector", "ssh"), ("reason", "tcp")]
        ) >= 1.0
    );
    assert!(
        m(
            "logops_agent_collector_errors_total",
            &[("collector", "ssh"), ("reason", "metric")]
        ) >= 1.0
    );
    let log = agent.log();
    assert_eq!(
        log.matches("gone: TCP connection to").count(),
        1,
        "a repeated failure is logged once:\n{log}"
    );
    assert!(
        log.contains("metric iface_description: field `description` is \"\", not a number"),
        "{log}"
    );
}

#[test]
fn check_config_names_file_line_column_and_key_of_ssh_mistakes() {
    let s = Scratch::new();
    let path = s.write(
        "agent.toml",
        &format!(
            "{SHIP}\n[ssh]\nmax_sessions = 0\n\n[[ssh.device]]\nname = \"r1\"\naddress = \"10.0.0.1\"\ndevice_type = \"cisco_iso\"\nusername = \"netops\"\npassword = \"hunter2\"\ncommands = [\"show version\", {{ command = \"show interfaces\", metrics = [{{ field = \"INPUT_ERRORS\", name = \"bad name\", type = \"counter\", labels = [\"device\"] }}] }}]\n\n[[ssh.device]]\nname = \"j1\"\naddress = \"10.0.0.2:830\"\ndevice_type = \"juniper_junos\"\nusername = \"op\"\nkey_file = \"id_ed25519\"\nsecret_env = \"X\"\ncommands = [\"show version\"]\ncommand_timout = \"5s\"\n"
        ),
    );
    let out = run_binary(
        &agent_binary().unwrap(),
        &["check-config", "--config", path.to_str().unwrap()],
    );
    let text = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    let p = path.display();
    for want in [
        format!("{p}:6:16: ssh.max_sessions: must be 1 to 4096"),
        format!("{p}:11:15: ssh.device[0].device_type: unknown device_type `cisco_iso`; did you mean `cisco_ios`?"),
        format!("{p}:13:12: ssh.device[0].password: secrets never live in the configuration: use password_env or password_file"),
        format!("{p}:14:81: ssh.device[0].commands[1].metrics[0].field: `INPUT_ERRORS`: record fields are the template's Value names in lower case (`input_errors`)"),
        format!("{p}:14:104: ssh.device[0].commands[1].metrics[0].name: `bad name` is not a metric name"),
        format!("{p}:14:144: ssh.device[0].commands[1].metrics[0].labels[0]: `device` is set by the SSH source itself"),
        format!("{p}:16:1: ssh.device[1]: device_type `juniper_junos` has no enable mode: drop secret_env/secret_file"),
        format!("{p}:21:12: ssh.device[1].key_file: `id_ed25519` must be an absolute path"),
        format!("{p}:24:1: ssh.device[1].command_timout: unknown key `command_timout`; did you mean `command_timeout`?"),
    ] {
        assert!(text.contains(&want), "expected {want:?} in\n{text}");
    }
}
