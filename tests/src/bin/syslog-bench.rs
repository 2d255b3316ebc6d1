//! `syslog-bench`: the agent's syslog receiver beside rsyslog (Debian, imtcp/imudp → one
//! file), both fed the same stream by syslog-ng's `loggen` in the same run, one after the
//! other. Release binaries: `cargo build --release -p logops-agent -p logops-e2e`; loggen
//! and rsyslog come from `tests/install-peers.sh`. Figures are printed; nothing is asserted.
//!
//! The agent ships to an address where nothing listens, so what is measured is receiving,
//! framing, parsing and appending to the durable buffer (sled, zstd chunks): a message counts
//! when it is in the buffer (`logops_agent_events_total{source="syslog"}`). rsyslog's count
//! is the lines of its output file. For each: messages/s (from the first message sent to the
//! last one stored, wall clock: depends on the machine's load), CPU-seconds per million
//! messages (`utime + stime` of the process, robust to load), peak RSS (`VmHWM`) and loss.
//!
//! Scenarios (RFC 5424 messages of `--size` bytes, `loggen --syslog-proto`, octet-counted on
//! TCP):
//! 1. `tcp-max`: `--messages` over 2 TCP connections, as fast as loggen sends;
//! 2. `tcp-100k`: the same paced at 100,000 msg/s in total (loss must be 0);
//! 3. `udp`: `--udp-messages` over UDP at `--udp-rate` msg/s.
//!
//! ```text
//! syslog-bench [--messages 1000000] [--size 200] [--udp-messages 300000] [--udp-rate 50000]
//!              [--only tcp-max|tcp-100k|udp] [--skip-rsyslog] [--agent PATH]
//! ```

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use logops_e2e::agent::{release_agent_binary, AgentHarness, AgentOptions, ShipTarget};
use logops_e2e::process::{cpu_seconds, terminate, vm_hwm_bytes};
use logops_e2e::syslog::{find_program, free_tcp_udp_port};

const USAGE: &str = "usage: syslog-bench [--messages N] [--size BYTES] [--udp-messages N] [--udp-rate N] [--only tcp-max|tcp-100k|udp] [--skip-rsyslog] [--agent PATH]";
/// Where `tests/install-peers.sh` unpacks syslog-ng (for loggen).
const SYSLOG_NG: &str = "/opt/logops-tests/syslog-ng/usr";

struct Args {
    messages: u64,
    size: u64,
    udp_messages: u64,
    udp_rate: u64,
    only: Option<String>,
    skip_rsyslog: bool,
    agent: Option<PathBuf>,
}

fn parse_args() -> anyhow::Result<Args> {
    let mut a = Args {
        messages: 1_000_000,
        size: 200,
        udp_messages: 300_000,
        udp_rate: 50_000,
        only: None,
        skip_rsyslog: false,
        agent: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        match flag.as_str() {
            "-h" | "--help" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            "--skip-rsyslog" => {
                a.skip_rsyslog = true;
                continue;
            }
            _ => {}
        }
        let v = it
            .next()
            .with_context(|| format!("{flag} needs a value\n{USAGE}"))?;
        let num = |v: &str| -> anyhow::Result<u64> {
            v.replace('_', "")
                .parse()
                .with_context(|| format!("{flag} {v}: not a number"))
        };
        match flag.as_str() {
            "--messages" => a.messages = num(&v)?.max(2),
            "--size" => a.size = num(&v)?.max(100),
            "--udp-messages" => a.udp_messages = num(&v)?.max(1),
            "--udp-rate" => a.udp_rate = num(&v)?.max(1),
            "--only" => a.only = Some(v),
            "--agent" => a.agent = Some(PathBuf::from(v)),
            _ => bail!("unknown flag {flag}\n{USAGE}"),
        }
    }
    Ok(a)
}

/// One loggen run: transport, connections, messages per connection, rate per connection.
#[derive(Clone, Copy)]
struct Stream {
    name: &'static str,
    udp: bool,
    connections: u64,
    per_connection: u64,
    rate_per_connection: Option<u64>,
    size: u64,
}

impl Stream {
    fn total(&self) -> u64 {
        self.connections * self.per_connection
    }
}

/// What one receiver did with one stream.
struct Figures {
    receiver: &'static str,
    sent: u64,
    stored: u64,
    seconds: f64,
    cpu: f64,
    hwm: u64,
}

impl Figures {
    fn print(&self, s: &Stream) {
        let per_m = self.cpu / (self.stored.max(1) as f64 / 1e6);
        println!(
            "{:<9} {:<8} sent {:>9} stored {:>9} loss {:>6.2}%  {:>9.0} msg/s  {:>5.2} CPU-s/M msgs  peak RSS {:>5.1} MiB",
            s.name,
            self.receiver,
            self.sent,
            self.stored,
            100.0 * (self.sent.saturating_sub(self.stored)) as f64 / self.sent.max(1) as f64,
            self.stored as f64 / self.seconds.max(1e-9),
            per_m,
            self.hwm as f64 / (1u64 << 20) as f64
        );
    }
}

/// Runs loggen against 127.0.0.1:port and returns how many messages it says it sent.
fn loggen(s: &Stream, port: u16) -> anyhow::Result<u64> {
    let bin = Path::new(SYSLOG_NG).join("bin/loggen");
    anyhow::ensure!(
        bin.is_file(),
        "{} is missing: run tests/install-peers.sh",
        bin.display()
    );
    let mut cmd = Command::new(&bin);
    cmd.env("LD_LIBRARY_PATH", format!("{SYSLOG_NG}/lib/syslog-ng"))
        .env("SYSLOGNG_PREFIX", SYSLOG_NG)
        .args(["--inet", "--syslog-proto", "--quiet"])
        .arg(if s.udp { "--dgram" } else { "--stream" })
        .arg(format!("--size={}", s.size))
        .arg(format!("--number={}", s.per_connection))
        .arg(format!("--active-connections={}", s.connections))
        .arg("--interval=600")
        .arg(format!(
            "--rate={}",
            s.rate_per_connection.unwrap_or(100_000_000)
        ))
        .arg("127.0.0.1")
        .arg(port.to_string());
    let out = cmd.output().context("running loggen")?;
    let text =
        String::from_utf8_lossy(&out.stderr).into_owned() + &String::from_utf8_lossy(&out.stdout);
    anyhow::ensure!(out.status.success(), "loggen failed: {text}");
    // "average rate = 70921.67 msg/sec, count=1000000, time=14.100, ..."
    let count = text
        .split("count=")
        .nth(1)
        .and_then(|r| r.split(|c: char| !c.is_ascii_digit()).next())
        .and_then(|n| n.parse().ok())
        .with_context(|| format!("no count in loggen's output: {text}"))?;
    Ok(count)
}

/// Polls `stored` until it reaches `want` or stops moving for 3 s (after the sender ended);
/// returns the count and when it last moved. A poll that fails (`None`: a loaded machine
/// answering late) is skipped.
fn settle(want: u64, mut stored: impl FnMut() -> Option<u64>) -> (u64, Instant) {
    let mut last = (stored().unwrap_or(0), Instant::now());
    loop {
        std::thread::sleep(Duration::from_millis(100));
        let Some(n) = stored() else { continue };
        if n != last.0 {
            last = (n, Instant::now());
        }
        if n >= want || last.1.elapsed() > Duration::from_secs(3) {
            return last;
        }
    }
}

fn run_agent(bin: &Path, s: &Stream) -> anyhow::Result<Figures> {
    let port = free_tcp_udp_port();
    // Nothing listens on port 9: the agent keeps everything (measured: into the buffer).
    let target = ShipTarget {
        url: "http://127.0.0.1:9/v1/batch".into(),
        api_key: "unused".into(),
        ca_pem: None,
        client: None,
    };
    let section = format!(
        "[syslog]\n{} = \"127.0.0.1:{port}\"\nmax_message_size = \"64KiB\"\n",
        if s.udp { "udp" } else { "tcp" }
    );
    let opts = AgentOptions::new("bench-agent")
        .binary(bin.to_path_buf())
        .buffer("max_size", "8GiB")
        .ship("backoff_max", "60s")
        .extra(&section);
    let agent = AgentHarness::try_start(target, opts)?;
    let pid = agent.pid().context("agent pid")?;
    let stored = || {
        agent
            .metric("logops_agent_events_total", &[("source", "syslog")])
            .map(|v| v as u64)
    };
    let cpu0 = cpu_seconds(pid).unwrap_or(0.0);
    let t0 = Instant::now();
    let sent = loggen(s, port)?;
    let (n, at) = settle(sent, stored);
    let cpu = cpu_seconds(pid).unwrap_or(0.0) - cpu0;
    Ok(Figures {
        receiver: "agent",
        sent,
        stored: n,
        seconds: (at - t0).as_secs_f64(),
        cpu,
        hwm: vm_hwm_bytes(pid).unwrap_or(0),
    })
}

/// rsyslogd with imtcp + imudp writing one line per message (the test bed's receiver).
struct Rsyslog {
    child: Option<Child>,
    dir: tempfile::TempDir,
}

impl Rsyslog {
    fn start(port: u16) -> anyhow::Result<Rsyslog> {
        let dir = tempfile::Builder::new()
            .prefix("logops-bench-rsyslog-")
            .tempdir()?;
        let d = dir.path().display().to_string();
        std::fs::create_dir_all(dir.path().join("spool"))?;
        let conf = format!(
            r#"global(workDirectory="{d}/spool" maxMessageSize="64k")
module(load="imudp")
module(load="imtcp" MaxSessions="2000")
input(type="imudp" address="127.0.0.1" port="{port}" ruleset="b" rcvbufSize="4m")
input(type="imtcp" address="127.0.0.1" port="{port}" ruleset="b")
template(name="fields" type="string"
  string="%inputname% proto=%protocol-version% pri=%pri% host=%hostname% app=%app-name% procid=%procid% msgid=%msgid% sd=%structured-data% ts=%timereported:::date-rfc3339% msg=%msg:::drop-last-lf%\n")
ruleset(name="b" queue.type="LinkedList" queue.size="200000") {{
  action(type="omfile" file="{d}/received.log" template="fields" asyncWriting="on" flushOnTXEnd="off" ioBufferSize="256k" flushInterval="1")
}}
"#
        );
        let conf_path = dir.path().join("rsyslog.conf");
        std::fs::write(&conf_path, conf)?;
        let child = Command::new(find_program("rsyslogd")?)
            .arg("-n")
            .arg("-f")
            .arg(&conf_path)
            .arg("-i")
            .arg(dir.path().join("pid"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("spawning rsyslogd")?;
        let r = Rsyslog {
            child: Some(child),
            dir,
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            anyhow::ensure!(Instant::now() < deadline, "rsyslogd did not listen");
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(r)
    }

    fn pid(&self) -> u32 {
        self.child.as_ref().map(Child::id).unwrap_or(0)
    }

    fn lines(&self) -> u64 {
        std::fs::read(self.dir.path().join("received.log"))
            .map(|b| b.iter().filter(|&&c| c == b'\n').count() as u64)
            .unwrap_or(0)
    }

    fn size(&self) -> u64 {
        std::fs::metadata(self.dir.path().join("received.log"))
            .map(|m| m.len())
            .unwrap_or(0)
    }
}

impl Drop for Rsyslog {
    fn drop(&mut self) {
        if let Some(c) = self.child.take() {
            terminate(c, Duration::from_secs(10));
        }
    }
}

fn run_rsyslog(s: &Stream) -> anyhow::Result<Figures> {
    let port = free_tcp_udp_port();
    let r = Rsyslog::start(port)?;
    let pid = r.pid();
    let cpu0 = cpu_seconds(pid).unwrap_or(0.0);
    let t0 = Instant::now();
    let sent = loggen(s, port)?;
    // Wait on the file's size (cheap), then count its lines once.
    let (_, at) = settle(u64::MAX, || Some(r.size()));
    let stored = r.lines();
    let cpu = cpu_seconds(pid).unwrap_or(0.0) - cpu0;
    Ok(Figures {
        receiver: "rsyslog",
        sent,
        stored,
        seconds: (at - t0).as_secs_f64(),
        cpu,
        hwm: vm_hwm_bytes(pid).unwrap_or(0),
    })
}

fn main() -> anyhow::Result<()> {
    let a = parse_args()?;
    let agent = match &a.agent {
        Some(p) => p.clone(),
        None => release_agent_binary()?,
    };
    let streams = [
        Stream {
            name: "tcp-max",
            udp: false,
            connections: 2,
            per_connection: a.messages / 2,
            rate_per_connection: None,
            size: a.size,
        },
        Stream {
            name: "tcp-100k",
            udp: false,
            connections: 2,
            per_connection: a.messages / 2,
            rate_per_connection: Some(50_000),
            size: a.size,
        },
        Stream {
            name: "udp",
            udp: true,
            connections: 1,
            per_connection: a.udp_messages,
            rate_per_connection: Some(a.udp_rate),
            size: a.size,
        },
    ];
    println!(
        "syslog-bench: {} B RFC 5424 messages from loggen (octet-counted on TCP); agent {}; load average {}",
        a.size,
        agent.display(),
        std::fs::read_to_string("/proc/loadavg").unwrap_or_default().trim()
    );
    for s in streams
        .iter()
        .filter(|s| a.only.as_deref().is_none_or(|o| o == s.name))
    {
        let f = run_agent(&agent, s)?;
        f.print(s);
        if s.total() != f.sent {
            println!("          (loggen sent {} of {} asked)", f.sent, s.total());
        }
        if !a.skip_rsyslog {
            run_rsyslog(s)?.print(s);
        }
    }
    Ok(())
}
