use super::*;
use serde_json::{json, Value};

/// 2026-12-05T22:00:00Z, a Saturday.
const NOW: i128 = 1_796_594_400_000_000_000;

fn parse_with(tz: SyslogTimezone, raw: &[u8], truncated: bool) -> (Value, Outcome) {
    let mut p = Parser::new(tz, "agent-1", Labels::new());
    let mut chunk = Chunk::new();
    let o = p.push(
        &mut chunk,
        raw,
        truncated,
        &Origin {
            transport: "udp",
            peer: "127.0.0.1:5140",
            received: Timestamp::from_nanos(NOW),
        },
    );
    assert_eq!(chunk.events(), 1);
    let line = std::str::from_utf8(chunk.data()).unwrap().trim_end();
    // Whatever came in, the event is valid on the wire, and its line is exactly what
    // Event::write_line writes for it.
    let event = logops_common::parse_line(line, 1).unwrap_or_else(|e| panic!("{line}: {e}"));
    let mut again = Vec::new();
    event.write_line(&mut again);
    assert_eq!(std::str::from_utf8(&again).unwrap().trim_end(), line);
    (serde_json::from_str(line).unwrap(), o)
}

fn parse(raw: &str) -> Value {
    parse_with(SyslogTimezone::Fixed(0), raw.as_bytes(), false).0
}

fn received() -> String {
    Timestamp::from_nanos(NOW).to_string()
}

#[test]
fn rfc5424_with_structured_data() {
    let e = parse(r#"<165>1 2026-12-05T21:59:58.123456+01:00 mymachine.example.com evntslog 4123 ID47 [exampleSDID@32473 iut="3" eventSource="Application" eventID="1011"][examplePriority@32473 class="high"] BOMAn application event log entry"#.replace("BOM", "\u{feff}").as_str());
    assert_eq!(e["ts"], "2026-12-05T20:59:58.123456000Z");
    assert_eq!(e["host"], "agent-1");
    assert_eq!(e["source"], "syslog");
    assert_eq!(e["severity"], "notice");
    assert_eq!(e["body"], "An application event log entry");
    let a = &e["attrs"];
    assert_eq!(a["facility"], "local4");
    assert_eq!(a["device"], "mymachine.example.com");
    assert_eq!(a["app"], "evntslog");
    assert_eq!(a["procid"], "4123");
    assert_eq!(a["msgid"], "ID47");
    assert_eq!(a["format"], "rfc5424");
    assert_eq!(a["transport"], "udp");
    assert_eq!(a["peer"], "127.0.0.1:5140");
    assert_eq!(
        a["sd"],
        json!({"exampleSDID@32473": {"iut": "3", "eventSource": "Application", "eventID": "1011"},
               "examplePriority@32473": {"class": "high"}})
    );
    assert!(a.get("parse_error").is_none());
}

#[test]
fn rfc5424_nil_values_and_escaped_sd() {
    let e = parse(r#"<13>1 - - - - - [x@1 q="a \"b\" \] c"] hi"#);
    assert_eq!(e["ts"], received(), "no stamp: the receive time");
    assert_eq!(e["severity"], "notice");
    assert_eq!(e["attrs"]["sd"]["x@1"]["q"], r#"a "b" ] c"#);
    assert_eq!(e["body"], "hi");
    // What logger --rfc5424 sends.
    let e = parse(
        r#"<13>1 2026-12-05T21:48:59.123456+00:00 vm tb-logger 4242 - [timeQuality tzKnown="1" isSynced="0"] udp rfc5424"#,
    );
    assert_eq!(e["attrs"]["app"], "tb-logger");
    assert_eq!(e["attrs"]["sd"]["timeQuality"]["isSynced"], "0");
    assert_eq!(e["body"], "udp rfc5424");
}

#[test]
fn every_severity_maps() {
    let want = [
        "emergency",
        "alert",
        "critical",
        "error",
        "warning",
        "notice",
        "info",
        "debug",
    ];
    for (sev, name) in want.iter().enumerate() {
        let e = parse(&format!("<{}>1 2026-12-05T21:00:00Z h a - - - m", 8 + sev));
        assert_eq!(e["severity"], *name);
        assert_eq!(e["attrs"]["facility"], "user");
    }
}

#[test]
fn rfc3164_year_and_zone_are_inferred() {
    let e = parse("<13>Dec  5 21:48:59 vm tb-logger[77]: tcp rfc3164");
    assert_eq!(e["ts"], "2026-12-05T21:48:59.000000000Z");
    assert_eq!(e["attrs"]["device"], "vm");
    assert_eq!(e["attrs"]["app"], "tb-logger");
    assert_eq!(e["attrs"]["procid"], "77");
    assert_eq!(e["attrs"]["format"], "rfc3164");
    assert_eq!(e["body"], "tcp rfc3164");
    // In +02:00 the same wall-clock time is two hours earlier in UTC.
    let (e, _) = parse_with(
        SyslogTimezone::Fixed(7200),
        b"<13>Dec  5 21:48:59 vm app: x",
        false,
    );
    assert_eq!(e["ts"], "2026-12-05T19:48:59.000000000Z");
    // A December stamp read in January is last year's; a January one read on New Year's
    // Eve is next year's; anything else is this year's.
    let today = NaiveDate::from_ymd_opt(2027, 1, 2).unwrap();
    assert_eq!(infer_year(12, 31, today), 2026);
    assert_eq!(infer_year(1, 2, today), 2027);
    let today = NaiveDate::from_ymd_opt(2026, 12, 31).unwrap();
    assert_eq!(infer_year(1, 1, today), 2027);
    assert_eq!(infer_year(6, 1, today), 2026);
    assert_eq!(
        infer_year(12, 6, NaiveDate::from_ymd_opt(2026, 12, 5).unwrap()),
        2026
    );
}

#[test]
fn rfc3164_from_a_local_socket_has_a_tag_and_no_hostname() {
    let e = parse("<22>Dec  5 21:48:59 app-x: local message");
    assert_eq!(e["attrs"]["app"], "app-x");
    assert!(e["attrs"].get("device").is_none(), "{e}");
    assert_eq!(e["body"], "local message");
    let e = parse("<22>Dec  5 21:48:59 app-x[42]: local message");
    assert_eq!(
        (e["attrs"]["app"].as_str(), e["attrs"]["procid"].as_str()),
        (Some("app-x"), Some("42"))
    );
}

#[test]
fn rfc3164_without_a_stamp_gets_the_receive_time() {
    let e = parse("<14>just a message");
    assert_eq!(e["ts"], received());
    assert_eq!(e["severity"], "info");
    assert_eq!(e["body"], "just a message");
    assert_eq!(e["attrs"]["no_timestamp"], true);
    assert!(e["attrs"].get("parse_error").is_none());
}

#[test]
fn cisco_unsynced_clock_keeps_the_priority_and_uses_the_receive_time() {
    let e =
        parse("<189>52: *Mar  1 00:00:12.345: %SYS-5-CONFIG_I: Configured from console by console");
    assert_eq!(e["severity"], "notice");
    assert_eq!(e["ts"], received());
    let a = &e["attrs"];
    assert_eq!(a["facility"], "local7");
    assert_eq!(a["format"], "cisco");
    assert_eq!(a["sequence"], 52);
    assert_eq!(a["clock"], "not_set");
    assert_eq!(a["device_time"], "Mar  1 00:00:12.345");
    assert_eq!(a["mnemonic"], "SYS-5-CONFIG_I");
    assert_eq!(
        e["body"],
        "%SYS-5-CONFIG_I: Configured from console by console"
    );
}

#[test]
fn cisco_synced_stamps_with_zone_year_and_origin() {
    let e = parse("<187>000052: Dec  5 21:30:00.123 UTC: %LINK-3-UPDOWN: Interface GigabitEthernet0/1, changed state to down");
    assert_eq!(e["ts"], "2026-12-05T21:30:00.123000000Z");
    assert_eq!(e["severity"], "error");
    assert_eq!(e["attrs"]["sequence"], 52);
    // A zone name we cannot place: the configured zone, and the name kept.
    let (e, _) = parse_with(SyslogTimezone::Fixed(3600), b"<189>1234: edge-rtr1: .Dec  5 2026 12:00:00.5 CET: %SEC_LOGIN-5-LOGIN_SUCCESS: Login Success [user: admin]", false);
    assert_eq!(e["ts"], "2026-12-05T11:00:00.500000000Z");
    assert_eq!(e["attrs"]["device"], "edge-rtr1");
    assert_eq!(e["attrs"]["zone"], "CET");
    assert_eq!(e["attrs"]["clock"], "ntp_lost");
    let e = parse("<166>%ASA-6-302013: Built outbound TCP connection 123 for outside:10.0.0.1/443 (10.0.0.1/443) to inside:192.168.1.10/51234 (192.168.1.10/51234)");
    assert_eq!(e["severity"], "info");
    assert_eq!(e["attrs"]["mnemonic"], "ASA-6-302013");
    assert_eq!(e["ts"], received());
}

#[test]
fn malformed_messages_are_kept_raw_with_the_reason() {
    let cases: [(&[u8], &str); 8] = [
        (b"no pri at all", "no PRI"),
        (b"<999>x", "out of range"),
        (b"<13 x", "malformed PRI"),
        (b"<>x", "malformed PRI"),
        (b"", "empty message"),
        (b"\n\r\0", "empty message"),
        (b"<13>1 not-a-time host app - - - x", "RFC 5424 header"),
        (b"Dec  5 21:00:00 host app: no PRI", "no PRI"),
    ];
    for (raw, why) in cases {
        let (e, o) = parse_with(SyslogTimezone::Fixed(0), raw, false);
        assert!(o.parse_error, "{raw:?}");
        let err = e["attrs"]["parse_error"].as_str().unwrap();
        assert!(err.contains(why), "{raw:?}: {err}");
        assert_eq!(e["ts"], received());
        let want = String::from_utf8_lossy(raw);
        assert_eq!(e["body"], want.trim_end_matches(['\n', '\r', '\0']));
    }
    // A readable PRI keeps its severity even when the header does not parse.
    let e = parse("<11>1 garbage");
    assert_eq!(e["severity"], "error");
    assert!(e["attrs"]["parse_error"].is_string());
}

#[test]
fn invalid_utf8_is_kept_lossily_and_flagged() {
    let (e, o) = parse_with(
        SyslogTimezone::Fixed(0),
        b"<13>Dec  5 21:00:00 h app: caf\xe9 \xff",
        false,
    );
    assert!(o.invalid_utf8 && !o.parse_error);
    assert_eq!(e["body"], "caf\u{fffd} \u{fffd}");
    assert_eq!(e["attrs"]["invalid_utf8"], true);
}

#[test]
fn truncated_messages_are_flagged() {
    let (e, _) = parse_with(SyslogTimezone::Fixed(0), b"<13>1 - h a - - - partial", true);
    assert_eq!(e["attrs"]["truncated"], true);
    assert_eq!(e["body"], "partial");
}

#[test]
fn labels_and_host_are_the_agents() {
    let mut labels = Labels::new();
    labels.insert("env".into(), "prod".into());
    let mut p = Parser::new(SyslogTimezone::Local, "web-01", labels);
    let mut chunk = Chunk::new();
    let origin = Origin {
        transport: "tcp",
        peer: "",
        received: Timestamp::from_nanos(NOW),
    };
    p.push(
        &mut chunk,
        b"<13>1 - other-host a - - - x \"q\" \\ \t",
        false,
        &origin,
    );
    let line = std::str::from_utf8(chunk.data()).unwrap().trim_end();
    let mut again = Vec::new();
    logops_common::parse_line(line, 1)
        .unwrap()
        .write_line(&mut again);
    assert_eq!(std::str::from_utf8(&again).unwrap().trim_end(), line);
    let e: Value = serde_json::from_slice(chunk.data().strip_suffix(b"\n").unwrap()).unwrap();
    assert_eq!(e["host"], "web-01");
    assert_eq!(e["labels"]["env"], "prod");
    assert_eq!(e["attrs"]["device"], "other-host");
    assert!(e["attrs"].get("peer").is_none());
}

#[test]
fn line_ends_nuls_and_outer_spaces_are_trimmed_and_nothing_else() {
    for (raw, trimmed) in [
        ("<13>hi\r\n", "<13>hi"),
        ("  <13>hi \0\n\r ", "<13>hi"),
        ("<13>é\t\n", "<13>é\t"),
        ("\n\r\0  ", ""),
        ("", ""),
        ("\u{a0}x\u{a0}", "\u{a0}x\u{a0}"),
    ] {
        assert_eq!(text_trimmed(raw), trimmed, "{raw:?}");
    }
}

#[test]
fn negative_and_large_procids_are_written_as_their_digits() {
    for (pid, text) in [("-17", "-17"), ("2147483647", "2147483647"), ("0", "0")] {
        let raw = format!("<13>1 2026-12-05T22:00:00Z host app {pid} - - hi");
        let (e, _) = parse_with(SyslogTimezone::Fixed(0), raw.as_bytes(), false);
        assert_eq!(e["attrs"]["procid"], text, "{raw}");
    }
}
