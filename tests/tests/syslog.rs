//! The syslog receiver with real senders on loopback: util-linux `logger` (RFC 3164 and
//! RFC 5424 over UDP, TCP with LF framing and with octet counting, and the Unix socket), a
//! private `rsyslogd` forwarding with octet counting, socat as a TLS sender with and without
//! client certificates. Every test runs the real `logops-agent` shipping to a real
//! `logops-ingest` and reads back what was stored.

use std::io::{Read, Write};
use std::net::{TcpStream, UdpSocket};
use std::path::Path;
use std::time::{Duration, Instant};

use logops_e2e::agent::{AgentHarness, AgentOptions, ShipTarget};
use logops_e2e::pki::TestPki;
use logops_e2e::syslog::{
    logger, socat_tls_send, stored_syslog, wait_syslog, with_body, RsyslogForwarder, SyslogPorts,
};
use logops_e2e::{random_hex, IngestHarness, IngestOptions, TenantSpec};
use serde_json::Value;

const WAIT: Duration = Duration::from_secs(60);

fn ingest() -> (IngestHarness, String) {
    let ingest = IngestHarness::start(IngestOptions::new().tenant(TenantSpec::new("acme")));
    let key = ingest.tenant("acme").key.clone();
    (ingest, key)
}

fn agent(ingest: &IngestHarness, id: &str, syslog: &str) -> AgentHarness {
    AgentHarness::start(
        ShipTarget::of(ingest, "acme"),
        AgentOptions::new(id).extra(syslog),
    )
}

fn metric(agent: &AgentHarness, name: &str, labels: &[(&str, &str)]) -> f64 {
    agent.metric(name, labels).unwrap_or(0.0)
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .unwrap()
        .trim()
        .to_owned()
}

fn one<'a>(events: &'a [Value], needle: &str) -> &'a Value {
    let found = with_body(events, needle);
    assert_eq!(
        found.len(),
        1,
        "exactly one event with {needle:?}: {found:?}"
    );
    found[0]
}

#[test]
fn logger_rfc3164_and_rfc5424_over_udp_tcp_and_the_unix_socket() {
    let (ingest, key) = ingest();
    let ports = SyslogPorts::free();
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("log.sock");
    let agent = agent(
        &ingest,
        "syslog-agent",
        &ports.section(&format!(
            "unix = \"{}\"\ntimezone = \"UTC\"",
            sock.display()
        )),
    );
    let run = random_hex(4);
    let (udp, tcp) = (ports.udp.to_string(), ports.tcp.to_string());
    let net = |port: &str, extra: &[&str], tag: &str, msg: &str| {
        let mut args = vec![
            "--server",
            "127.0.0.1",
            "--port",
            port,
            "-t",
            tag,
            "--id=4242",
        ];
        args.extend_from_slice(extra);
        args.push(msg);
        logger(&args);
    };
    let m = |what: &str| format!("{what} {run}");
    net(
        &udp,
        &["--udp", "--rfc3164", "-p", "local0.warning"],
        "app-u3",
        &m("udp-3164"),
    );
    net(
        &udp,
        &[
            "--udp",
            "--rfc5424",
            "-p",
            "user.err",
            "--msgid",
            "M1",
            "--sd-id",
            "tb@32473",
            "--sd-param",
            "k=\"v 1\"",
        ],
        "app-u5",
        &m("udp-5424"),
    );
    net(
        &tcp,
        &["--tcp", "--rfc3164", "-p", "daemon.info"],
        "app-t3",
        &m("tcp-lf-3164"),
    );
    net(
        &tcp,
        &["--tcp", "--rfc5424", "-p", "daemon.debug"],
        "app-t5",
        &m("tcp-lf-5424"),
    );
    net(
        &tcp,
        &["--tcp", "--octet-count", "--rfc3164", "-p", "auth.crit"],
        "app-o3",
        &m("tcp-oc-3164"),
    );
    net(
        &tcp,
        &[
            "--tcp",
            "--octet-count",
            "--rfc5424",
            "-p",
            "local7.emerg",
            "--msgid",
            "M2",
        ],
        "app-o5",
        &m("tcp-oc-5424"),
    );
    logger(&[
        "-u",
        sock.to_str().unwrap(),
        "-p",
        "mail.notice",
        "-t",
        "app-x",
        &m("unix-local"),
    ]);

    let events = wait_syslog(&ingest, &key, "7 logger messages", WAIT, |e| {
        with_body(e, &run).len() >= 7
    });
    let host = hostname();
    let cases = [
        ("udp-3164", "udp", "rfc3164", "warning", "local0", "app-u3"),
        ("udp-5424", "udp", "rfc5424", "error", "user", "app-u5"),
        ("tcp-lf-3164", "tcp", "rfc3164", "info", "daemon", "app-t3"),
        ("tcp-lf-5424", "tcp", "rfc5424", "debug", "daemon", "app-t5"),
        (
            "tcp-oc-3164",
            "tcp",
            "rfc3164",
            "critical",
            "auth",
            "app-o3",
        ),
        (
            "tcp-oc-5424",
            "tcp",
            "rfc5424",
            "emergency",
            "local7",
            "app-o5",
        ),
        ("unix-local", "unix", "rfc3164", "notice", "mail", "app-x"),
    ];
    for (what, transport, format, severity, facility, app) in cases {
        let e = one(&events, &m(what));
        let a = &e["attrs"];
        assert_eq!(e["body"], m(what), "{e}");
        assert_eq!(e["host"], "syslog-agent", "{e}");
        assert_eq!(e["severity"], severity, "{e}");
        assert_eq!(a["transport"], transport, "{e}");
        assert_eq!(a["format"], format, "{e}");
        assert_eq!(a["facility"], facility, "{e}");
        assert_eq!(a["app"], app, "{e}");
        assert!(a.get("parse_error").is_none(), "{e}");
        if transport != "unix" {
            // logger over the network names this machine; via /dev/log-style sockets it
            // sends no hostname.
            assert_eq!(a["device"], host.as_str(), "{e}");
            assert!(a["peer"].as_str().unwrap().starts_with("127.0.0.1:"), "{e}");
            assert_eq!(a["procid"], "4242", "{e}");
        }
        // The sender's clock and ours are the same here: the stamp is now, to the second
        // (RFC 3164 has whole seconds, in UTC as configured).
        let ts = logops_common::timestamp::Timestamp::parse(e["ts"].as_str().unwrap()).unwrap();
        let age = logops_common::timestamp::Timestamp::now().as_nanos() - ts.as_nanos();
        assert!(
            (0..120_000_000_000).contains(&age),
            "stamp {} is not now: {e}",
            e["ts"]
        );
    }
    let e = one(&events, &m("udp-5424"));
    assert_eq!(e["attrs"]["msgid"], "M1");
    assert_eq!(e["attrs"]["sd"]["tb@32473"]["k"], "v 1");
    assert!(e["attrs"]["sd"]["timeQuality"].is_object(), "{e}");
    assert_eq!(one(&events, &m("tcp-oc-5424"))["attrs"]["msgid"], "M2");
    for t in ["udp", "tcp", "unix"] {
        assert!(
            metric(
                &agent,
                "logops_agent_syslog_messages_parsed_total",
                &[("transport", t)]
            ) >= 2.0
                || t == "unix"
        );
    }
    assert_eq!(
        metric(&agent, "logops_agent_syslog_parse_errors_total", &[]),
        0.0
    );
    assert_eq!(
        metric(
            &agent,
            "logops_agent_syslog_connections_total",
            &[("transport", "tcp")]
        ),
        4.0
    );
}

#[test]
fn rsyslog_forwards_octet_counted_tcp_and_udp() {
    let (ingest, key) = ingest();
    let ports = SyslogPorts::free();
    let agent = agent(&ingest, "rsyslog-agent", &ports.section(""));
    let mut rsyslog = RsyslogForwarder::start(ports.tcp, ports.udp).unwrap();
    let run = random_hex(4);
    const N: usize = 100;
    let sock = rsyslog.socket();
    for i in 0..N {
        logger(&[
            "-u",
            sock.to_str().unwrap(),
            "-t",
            "fwd-app",
            "-p",
            "local3.warning",
            &format!("fwd {run} {i:04}"),
        ]);
    }
    // Four copies of each: RFC 5424 and RFC 3164, each over TCP (octet-counted) and UDP.
    let events = wait_syslog(
        &ingest,
        &key,
        "4 copies of every forwarded message",
        WAIT,
        |e| with_body(e, &run).len() >= 4 * N,
    );
    rsyslog.stop();
    let mine = with_body(&events, &run);
    assert_eq!(mine.len(), 4 * N, "no duplicates");
    for i in 0..N {
        let body = format!("fwd {run} {i:04}");
        let copies: Vec<&&Value> = mine.iter().filter(|e| e["body"] == body.as_str()).collect();
        let mut forms: Vec<(String, String)> = copies
            .iter()
            .map(|e| {
                assert_eq!(e["severity"], "warning", "{e}");
                assert_eq!(e["attrs"]["facility"], "local3", "{e}");
                assert_eq!(e["attrs"]["app"], "fwd-app", "{e}");
                assert!(e["attrs"].get("parse_error").is_none(), "{e}");
                (
                    e["attrs"]["transport"].as_str().unwrap().to_owned(),
                    e["attrs"]["format"].as_str().unwrap().to_owned(),
                )
            })
            .collect();
        forms.sort();
        let want: Vec<(String, String)> = [
            ("tcp", "rfc3164"),
            ("tcp", "rfc5424"),
            ("udp", "rfc3164"),
            ("udp", "rfc5424"),
        ]
        .iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect();
        assert_eq!(forms, want, "{body}");
    }
    assert_eq!(
        metric(&agent, "logops_agent_syslog_messages_dropped_total", &[]),
        0.0
    );
}

#[test]
fn tls_senders_with_and_without_a_client_certificate() {
    let (ingest, key) = ingest();
    let ports = SyslogPorts::free();
    let pki = TestPki::generate().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let w = |name: &str, text: &str| {
        let p = dir.path().join(name);
        std::fs::write(&p, text).unwrap();
        p
    };
    let (ca, cert, key_file) = (
        w("ca.pem", &pki.ca_pem),
        w("server.crt", &pki.server.cert_pem),
        w("server.key", &pki.server.key_pem),
    );
    let (ccert, ckey) = (
        w("client.crt", &pki.client.cert_pem),
        w("client.key", &pki.client.key_pem),
    );
    let (scert, skey) = (
        w("stranger.crt", &pki.stranger.cert_pem),
        w("stranger.key", &pki.stranger.key_pem),
    );
    let tls = format!(
        "tls = {{ listen = \"127.0.0.1:{}\", cert = \"{}\", key = \"{}\", client_ca = \"{}\" }}",
        ports.tls,
        cert.display(),
        key_file.display(),
        ca.display()
    );
    let agent = agent(&ingest, "tls-agent", &ports.section(&tls));
    let run = random_hex(4);
    // RFC 5425: octet-counted frames.
    let frame = |m: &str| {
        let msg = format!("<134>1 2026-12-05T10:00:00.5Z tls-host tls-app 7 - - {m} {run}");
        format!("{} {msg}", msg.len())
    };
    let good = format!("{}{}", frame("with-cert-1"), frame("with-cert-2"));
    let out = socat_tls_send(ports.tls, &ca, Some((&ccert, &ckey)), good.as_bytes());
    assert!(
        out.status.success(),
        "socat with the client certificate: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let _ = socat_tls_send(ports.tls, &ca, None, frame("no-cert").as_bytes());
    let _ = socat_tls_send(
        ports.tls,
        &ca,
        Some((&scert, &skey)),
        frame("stranger-cert").as_bytes(),
    );
    let events = wait_syslog(
        &ingest,
        &key,
        "the two messages sent with a certificate",
        WAIT,
        |e| with_body(e, "with-cert").len() >= 2,
    );
    let e = one(&events, "with-cert-1");
    assert_eq!(e["attrs"]["transport"], "tls");
    assert_eq!(e["attrs"]["device"], "tls-host");
    assert_eq!(e["severity"], "info");
    assert_eq!(e["ts"], "2026-12-05T10:00:00.500000000Z");
    let deadline = Instant::now() + Duration::from_secs(20);
    while metric(
        &agent,
        "logops_agent_syslog_connections_refused_total",
        &[("reason", "tls_handshake")],
    ) < 2.0
    {
        assert!(
            Instant::now() < deadline,
            "two refused handshakes expected; log:\n{}",
            agent.log_tail(30)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // Time for anything refused to have arrived, were it accepted.
    std::thread::sleep(Duration::from_secs(2));
    let events = stored_syslog(&ingest, &key);
    assert!(with_body(&events, "no-cert").is_empty());
    assert!(with_body(&events, "stranger-cert").is_empty());
    let log = agent.log();
    assert!(log.contains("TLS handshake failed"), "{log}");
}

/// Messages that are not syslog, each kept raw with `parse_error` (and the PRI's severity
/// when it was readable), sent as datagrams and as LF-framed TCP.
const MALFORMED: &[&[u8]] = &[
    b"no PRI at all MARK",
    b"<999>out of range MARK",
    b"<13 unterminated MARK",
    b"<>empty PRI MARK",
    b"<abc>letters MARK",
    b"<11>1 not-a-stamp host app - - - MARK",
    b"<11>1 MARK",
    b"Dec  5 10:00:00 host app: no PRI MARK",
    b"\xff\xfe binary \x01\x02 MARK",
];

/// Real Cisco shapes: the PRI and severity, sequence number, mnemonic and clock mark.
const CISCO: &[(&str, &str, &str)] = &[
    ("<189>52: *Mar  1 00:00:12.345: %SYS-5-CONFIG_I: Configured from console by console CISCO", "notice", "SYS-5-CONFIG_I"),
    ("<187>000053: Mar  1 00:00:13.345 UTC: %LINK-3-UPDOWN: Interface GigabitEthernet0/1, changed state to down CISCO", "error", "LINK-3-UPDOWN"),
    ("<189>54: edge-rtr1: *Mar 1 00:01:38.763: %LINEPROTO-5-UPDOWN: Line protocol on Interface GigabitEthernet0/1, changed state to up CISCO", "notice", "LINEPROTO-5-UPDOWN"),
    ("<190>55: %SEC_LOGIN-5-LOGIN_SUCCESS: Login Success [user: admin] [Source: 10.0.0.5] [localport: 22] CISCO", "info", "SEC_LOGIN-5-LOGIN_SUCCESS"),
    ("<166>%ASA-6-302013: Built outbound TCP connection 123 for outside:10.0.0.1/443 (10.0.0.1/443) to inside:192.168.1.10/51234 (192.168.1.10/51234) CISCO", "info", "ASA-6-302013"),
    ("<189>: 2024 Mar  1 00:00:12 UTC: %ETHPORT-5-IF_UP: Interface Ethernet1/1 is up in mode access CISCO", "notice", "ETHPORT-5-IF_UP"),
];

#[test]
fn malformed_messages_are_kept_raw_and_cisco_forms_keep_their_priority() {
    let (ingest, key) = ingest();
    let ports = SyslogPorts::free();
    let agent = agent(&ingest, "corpus-agent", &ports.section(""));
    let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
    let mut tcp = TcpStream::connect(("127.0.0.1", ports.tcp)).unwrap();
    for m in MALFORMED {
        udp.send_to(m, ("127.0.0.1", ports.udp)).unwrap();
        tcp.write_all(m).unwrap();
        tcp.write_all(b"\n").unwrap();
    }
    for (m, _, _) in CISCO {
        udp.send_to(m.as_bytes(), ("127.0.0.1", ports.udp)).unwrap();
    }
    drop(tcp);
    let n = MALFORMED.len();
    let events = wait_syslog(
        &ingest,
        &key,
        "the malformed corpus twice and the Cisco corpus",
        WAIT,
        |e| with_body(e, "MARK").len() >= 2 * n && with_body(e, "CISCO").len() >= CISCO.len(),
    );
    let marked = with_body(&events, "MARK");
    assert_eq!(marked.len(), 2 * n);
    for m in MALFORMED {
        let body = String::from_utf8_lossy(m);
        let copies: Vec<&&Value> = marked
            .iter()
            .filter(|e| e["body"] == body.as_ref())
            .collect();
        assert_eq!(
            copies.len(),
            2,
            "{body:?} over UDP and TCP, kept whole: {marked:?}"
        );
        for e in copies {
            assert!(e["attrs"]["parse_error"].is_string(), "{e}");
            if body.starts_with("<11>") {
                assert_eq!(
                    e["severity"], "error",
                    "a readable PRI keeps its severity: {e}"
                );
            }
            if m.contains(&0xff) {
                assert_eq!(e["attrs"]["invalid_utf8"], true, "{e}");
            }
        }
    }
    for (m, severity, mnemonic) in CISCO {
        let e = one(&events, &m[m.find('%').unwrap()..]);
        assert_eq!(e["severity"], *severity, "{e}");
        assert_eq!(e["attrs"]["mnemonic"], *mnemonic, "{e}");
        assert_eq!(e["attrs"]["format"], "cisco", "{e}");
        assert!(e["attrs"].get("parse_error").is_none(), "{e}");
    }
    let e = one(&events, "%SYS-5-CONFIG_I");
    assert_eq!(e["attrs"]["sequence"], 52);
    assert_eq!(e["attrs"]["clock"], "not_set");
    assert_eq!(
        one(&events, "%LINEPROTO-5-UPDOWN")["attrs"]["device"],
        "edge-rtr1"
    );
    assert_eq!(one(&events, "%LINK-3-UPDOWN")["attrs"]["sequence"], 53);
    let errors = metric(&agent, "logops_agent_syslog_parse_errors_total", &[]);
    assert_eq!(errors, 2.0 * n as f64);
    assert_eq!(
        metric(
            &agent,
            "logops_agent_syslog_messages_invalid_utf8_total",
            &[]
        ),
        2.0
    );
}

#[test]
fn messages_of_64_kib_pass_and_longer_ones_are_truncated_and_flagged() {
    let (ingest, key) = ingest();
    let ports = SyslogPorts::free();
    let agent = agent(
        &ingest,
        "big-agent",
        &ports.section("max_message_size = \"64KiB\""),
    );
    let tcp = ports.tcp.to_string();
    let text = |tag: &str, len: usize| {
        let mut t = format!("{tag} ");
        while t.len() < len {
            t.push_str(&random_hex(512));
        }
        t.truncate(len);
        t
    };
    // logger --rfc5424 --octet-count: the header is ~80 bytes; the whole frame is 64 KiB.
    let fits = text("FITS", 65_536 - 120);
    logger(&[
        "--server",
        "127.0.0.1",
        "--port",
        &tcp,
        "--tcp",
        "--octet-count",
        "--rfc5424",
        "--size",
        "200000",
        "-t",
        "big",
        &fits,
    ]);
    let over = text("OVER", 100_000);
    logger(&[
        "--server",
        "127.0.0.1",
        "--port",
        &tcp,
        "--tcp",
        "--octet-count",
        "--rfc5424",
        "--size",
        "200000",
        "-t",
        "big",
        &over,
    ]);
    let over_lf = text("OVERLF", 100_000);
    logger(&[
        "--server",
        "127.0.0.1",
        "--port",
        &tcp,
        "--tcp",
        "--rfc3164",
        "--size",
        "200000",
        "-t",
        "big",
        &over_lf,
    ]);
    // A big datagram (UDP's own limit is 65,507 bytes), and small ones after the big ones:
    // the framing is back in step.
    let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
    let dgram = format!("<13>1 - h big - - - {}", text("DGRAM", 60_000));
    udp.send_to(dgram.as_bytes(), ("127.0.0.1", ports.udp))
        .unwrap();
    let mut s = TcpStream::connect(("127.0.0.1", ports.tcp)).unwrap();
    let big = format!("<13>1 - h big - - - {}", text("SAMECONN", 80_000));
    s.write_all(format!("{} {big}", big.len()).as_bytes())
        .unwrap();
    s.write_all(b"<13>1 - h big - - - AFTER-OC\n").unwrap();
    s.write_all(format!("<13>1 - h big - - - {}\n", text("SAMELF", 80_000)).as_bytes())
        .unwrap();
    s.write_all(b"<13>1 - h big - - - AFTER-LF\n").unwrap();
    drop(s);
    let events = wait_syslog(&ingest, &key, "the big messages", WAIT, |e| {
        [
            "FITS", "OVER ", "OVERLF", "DGRAM", "SAMECONN", "AFTER-OC", "SAMELF", "AFTER-LF",
        ]
        .iter()
        .all(|m| with_body(e, m).len() == 1)
    });
    let e = one(&events, "FITS");
    assert_eq!(e["body"], fits.as_str());
    assert!(e["attrs"].get("truncated").is_none(), "{}", e["attrs"]);
    for m in ["OVER ", "OVERLF", "SAMECONN", "SAMELF"] {
        let e = one(&events, m);
        assert_eq!(e["attrs"]["truncated"], true, "{m}");
        let body = e["body"].as_str().unwrap();
        assert!(
            body.len() < 65_536 && body.len() > 65_000,
            "{m}: {} bytes",
            body.len()
        );
    }
    assert!(one(&events, "DGRAM").get("truncated").is_none());
    assert_eq!(one(&events, "AFTER-OC")["body"], "AFTER-OC");
    assert_eq!(one(&events, "AFTER-LF")["body"], "AFTER-LF");
    assert_eq!(
        metric(
            &agent,
            "logops_agent_syslog_messages_truncated_total",
            &[("transport", "tcp")]
        ),
        4.0
    );
}

#[test]
fn a_byte_a_second_is_still_parsed_and_idle_connections_are_closed() {
    let (ingest, key) = ingest();
    let ports = SyslogPorts::free();
    let agent = agent(
        &ingest,
        "slow-agent",
        &ports.section("idle_timeout = \"3s\""),
    );
    let idle = TcpStream::connect(("127.0.0.1", ports.tcp)).unwrap();
    let opened = Instant::now();
    let slow = std::thread::spawn(move || {
        let mut s = TcpStream::connect(("127.0.0.1", ports.tcp)).unwrap();
        for b in b"<14>slowly\n" {
            s.write_all(&[*b]).unwrap();
            std::thread::sleep(Duration::from_secs(1));
        }
        s
    });
    // The idle connection is closed by the agent: our read sees the end.
    let mut idle = idle;
    idle.set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let mut buf = [0u8; 16];
    assert_eq!(idle.read(&mut buf).unwrap(), 0, "closed without data");
    let closed_after = opened.elapsed();
    assert!(
        closed_after >= Duration::from_millis(2900) && closed_after < Duration::from_secs(15),
        "{closed_after:?}"
    );
    let _slow = slow.join().unwrap();
    let events = wait_syslog(&ingest, &key, "the slow message", WAIT, |e| {
        !with_body(e, "slowly").is_empty()
    });
    let e = one(&events, "slowly");
    assert_eq!(e["severity"], "info");
    assert!(e["attrs"].get("parse_error").is_none());
    assert!(
        metric(
            &agent,
            "logops_agent_syslog_connections_idle_closed_total",
            &[]
        ) >= 1.0
    );
}

#[test]
fn a_full_buffer_stops_tcp_senders_and_counts_udp_drops_and_nothing_is_lost() {
    let (mut ingest, key) = ingest();
    let ports = SyslogPorts::free();
    let opts = AgentOptions::new("bp-agent")
        .extra(&ports.section(""))
        .buffer("max_size", "1MiB")
        .ship("batch_max_bytes", "128KiB");
    let agent = AgentHarness::start(ShipTarget::of(&ingest, "acme"), opts);
    // The ingest is down: the buffer fills.
    assert!(ingest.sigterm_and_wait().success());
    const N: usize = 60_000;
    let run = random_hex(4);
    let mut data = Vec::with_capacity(N * 300);
    for i in 0..N {
        // Random text: the buffer compresses chunks, so it fills at about the rate we send.
        let msg = format!("<13>1 - bp app - - - {run} {i:06} {}", random_hex(100));
        data.extend_from_slice(format!("{} {msg}", msg.len()).as_bytes());
    }
    let total = data.len();
    let mut s = TcpStream::connect(("127.0.0.1", ports.tcp)).unwrap();
    s.set_nonblocking(true).unwrap();
    let mut sent = 0;
    let mut last_progress = Instant::now();
    // Write until the agent stops reading: no progress for 3 s.
    while sent < total && last_progress.elapsed() < Duration::from_secs(3) {
        match s.write(&data[sent..]) {
            Ok(n) => {
                sent += n;
                last_progress = Instant::now();
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_millis(10))
            }
            Err(e) => panic!("write: {e}"),
        }
    }
    assert!(
        sent < total,
        "the sender was never stopped: {sent} of {total} bytes taken; {:?}; log:\n{}",
        agent
            .metrics()
            .unwrap()
            .iter()
            .filter(|s| s.name.contains("buffer") || s.name.contains("syslog"))
            .collect::<Vec<_>>(),
        agent.log_tail(30)
    );
    // Datagrams meanwhile are dropped and counted (those that fit in what room is left
    // are kept).
    let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
    // More than the room a blocked TCP chunk (up to 512 KiB) can leave.
    const D: usize = 6_000;
    for i in 0..D {
        let m = format!(
            "<13>1 - bp app - - - dgram {run} {i:04} {}",
            random_hex(100)
        );
        udp.send_to(m.as_bytes(), ("127.0.0.1", ports.udp)).unwrap();
        if i % 100 == 99 {
            std::thread::sleep(Duration::from_millis(5));
        }
    }
    let udp_metric = |reason: Option<&str>| match reason {
        Some(r) => metric(
            &agent,
            "logops_agent_syslog_messages_dropped_total",
            &[("transport", "udp"), ("reason", r)],
        ),
        None => metric(
            &agent,
            "logops_agent_syslog_messages_received_total",
            &[("transport", "udp")],
        ),
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    while udp_metric(None) + udp_metric(Some("kernel")) < D as f64 {
        assert!(
            Instant::now() < deadline,
            "datagrams not all counted: {}",
            agent.log_tail(20)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let dropped_full = udp_metric(Some("buffer_full"));
    assert!(
        dropped_full > 0.0,
        "no datagram was dropped for a full buffer"
    );
    let udp_kept = udp_metric(None) - dropped_full;
    assert!(agent
        .log()
        .contains("the buffer is full: datagrams are dropped"));
    // The ingest comes back: the buffer drains, the sender goes on, nothing is lost.
    ingest.start_again();
    s.set_nonblocking(false).unwrap();
    s.write_all(&data[sent..]).unwrap();
    drop(s);
    let events = wait_syslog(
        &ingest,
        &key,
        "every message once",
        Duration::from_secs(180),
        |e| with_body(e, &run).len() >= N + udp_kept as usize,
    );
    let stored = with_body(&events, &run);
    assert_eq!(stored.len(), N + udp_kept as usize);
    let mut seen = vec![0u32; N];
    for e in stored.iter().filter(|e| e["attrs"]["transport"] == "tcp") {
        let i: usize = e["body"]
            .as_str()
            .unwrap()
            .split(' ')
            .nth(1)
            .unwrap()
            .parse()
            .unwrap();
        seen[i] += 1;
    }
    assert!(seen.iter().all(|&c| c == 1), "every message exactly once");
    assert_eq!(
        metric(
            &agent,
            "logops_agent_syslog_messages_dropped_total",
            &[("transport", "tcp")]
        ),
        0.0
    );
}

#[test]
fn kernel_udp_drops_are_counted() {
    let (ingest, _key) = ingest();
    let ports = SyslogPorts::free();
    let agent = agent(
        &ingest,
        "drops-agent",
        &ports.section("udp_recv_buffer = \"4KiB\""),
    );
    let pid = agent.pid().unwrap();
    // Stopped, the agent cannot read: the 4 KiB socket buffer overflows.
    logops_e2e::process::send_signal(pid, libc::SIGSTOP).unwrap();
    let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
    const SENT: usize = 500;
    for i in 0..SENT {
        udp.send_to(
            format!("<13>1 - h app - - - flood {i:04} {}", "x".repeat(200)).as_bytes(),
            ("127.0.0.1", ports.udp),
        )
        .unwrap();
    }
    logops_e2e::process::send_signal(pid, libc::SIGCONT).unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let received = metric(
            &agent,
            "logops_agent_syslog_messages_received_total",
            &[("transport", "udp")],
        );
        let dropped = metric(
            &agent,
            "logops_agent_syslog_messages_dropped_total",
            &[("transport", "udp"), ("reason", "kernel")],
        );
        if received + dropped >= SENT as f64 {
            assert_eq!(received + dropped, SENT as f64);
            assert!(
                dropped > 0.0 && received > 0.0,
                "received {received}, dropped {dropped}"
            );
            break;
        }
        assert!(
            Instant::now() < deadline,
            "received {received} + kernel drops {dropped} != {SENT}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn check_config_names_syslog_mistakes() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("agent.toml");
    std::fs::write(
        &path,
        "[ship]\nurl = \"http://127.0.0.1:9/v1/batch\"\napi_key_env = \"K\"\n\n[syslog]\nudp = \"0.0.0.0\"\ntimezone = \"CEST\"\nmax_conections = 5\n",
    )
    .unwrap();
    let out = logops_e2e::run_binary(
        &logops_e2e::agent::agent_binary().unwrap(),
        &["check-config", "--config", path.to_str().unwrap()],
    );
    let text =
        String::from_utf8_lossy(&out.stderr).into_owned() + &String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success());
    for want in [
        ":6:",
        "syslog.udp",
        ":7:",
        "syslog.timezone",
        "\"+02:00\"",
        ":8:",
        "max_conections",
        "max_connections",
    ] {
        assert!(text.contains(want), "{want:?} missing in:\n{text}");
    }
    assert!(Path::new(&path).exists());
}

#[test]
fn max_connections_closes_the_extra_ones_and_sighup_rebinds_every_listener() {
    let (ingest, key) = ingest();
    let ports = SyslogPorts::free();
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("log.sock");
    let agent = agent(
        &ingest,
        "limits-agent",
        &ports.section(&format!(
            "max_connections = 2\nunix = \"{}\"",
            sock.display()
        )),
    );
    let a = TcpStream::connect(("127.0.0.1", ports.tcp)).unwrap();
    let b = TcpStream::connect(("127.0.0.1", ports.tcp)).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while metric(
        &agent,
        "logops_agent_syslog_connections_open",
        &[("transport", "tcp")],
    ) < 2.0
    {
        assert!(Instant::now() < deadline, "two connections open");
        std::thread::sleep(Duration::from_millis(50));
    }
    // The third is closed at once: its read sees the end.
    let mut c = TcpStream::connect(("127.0.0.1", ports.tcp)).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut buf = [0u8; 8];
    assert_eq!(c.read(&mut buf).unwrap_or(0), 0);
    assert_eq!(
        metric(
            &agent,
            "logops_agent_syslog_connections_refused_total",
            &[("reason", "max_connections")]
        ),
        1.0
    );
    drop((a, b));
    // A reload stops every listener and binds them again.
    agent.sighup();
    agent.wait_for_log("configuration reloaded", Duration::from_secs(30));
    let run = random_hex(4);
    let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut sent = 0;
    let events = loop {
        // Until the new listeners are up (the UDP one may take a moment).
        udp.send_to(
            format!("<13>after-reload-udp {run} {sent}").as_bytes(),
            ("127.0.0.1", ports.udp),
        )
        .unwrap();
        sent += 1;
        let events = stored_syslog(&ingest, &key);
        if !with_body(&events, &format!("after-reload-udp {run}")).is_empty() {
            break events;
        }
        assert!(
            Instant::now() < deadline,
            "nothing arrived over UDP after the reload:\n{}",
            agent.log_tail(30)
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    assert!(!events.is_empty());
    let mut t = TcpStream::connect(("127.0.0.1", ports.tcp)).unwrap();
    t.write_all(format!("<13>after-reload-tcp {run}\n").as_bytes())
        .unwrap();
    drop(t);
    logger(&[
        "-u",
        sock.to_str().unwrap(),
        "-t",
        "x",
        &format!("after-reload-unix {run}"),
    ]);
    wait_syslog(
        &ingest,
        &key,
        "TCP and Unix messages after the reload",
        WAIT,
        |e| {
            with_body(e, &format!("after-reload-tcp {run}")).len() == 1
                && with_body(e, &format!("after-reload-unix {run}")).len() == 1
        },
    );
}

#[test]
fn a_reload_whose_listener_cannot_bind_goes_back_to_the_running_configuration() {
    let (ingest, key) = ingest();
    let ports = SyslogPorts::free();
    let mut agent = agent(&ingest, "rebind-agent", &ports.section(""));
    // Another program holds the TCP port the new configuration names.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let taken_port = taken.local_addr().unwrap().port();
    let text = agent.config_text().replace(
        &format!("tcp = \"127.0.0.1:{}\"", ports.tcp),
        &format!("tcp = \"127.0.0.1:{taken_port}\""),
    );
    assert!(text.contains(&taken_port.to_string()));
    agent.write_config_text(&text);
    agent.sighup();
    agent.wait_for_log(
        "going back to the previous configuration",
        Duration::from_secs(30),
    );
    assert!(agent.is_running(), "a reload never stops the agent");
    // The previous configuration runs again: its listeners take messages.
    let run = random_hex(4);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Ok(mut t) = TcpStream::connect(("127.0.0.1", ports.tcp)) {
            t.write_all(format!("<13>after-failed-reload {run}\n").as_bytes())
                .unwrap();
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the previous TCP listener is not back:\n{}",
            agent.log_tail(30)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    wait_syslog(
        &ingest,
        &key,
        "the message after the failed reload",
        WAIT,
        |e| with_body(e, &format!("after-failed-reload {run}")).len() == 1,
    );
    let log = agent.log_since_start();
    assert!(
        log.contains(&format!("127.0.0.1:{taken_port}")),
        "the error names the address:\n{log}"
    );
    drop(taken);
}
