use super::*;

const ISSUE_EXAMPLE: &str = r#"
[agent]
id = "web-01"                    # default: the hostname
data_dir = "/var/lib/logops"
labels = { env = "prod", service = "web" }

[ship]
url = "http://127.0.0.1:8080/v1/batch"
api_key_file = "/etc/logops/api_key"   # or api_key_env = "LOGOPS_API_KEY"

[buffer]
max_size = "1GiB"
when_full = "block"              # or "drop_oldest"

[[files]]
paths = ["/var/log/*.log"]
exclude = ["*.gz"]
start_at = "end"                 # for files seen the first time; or "beginning"
labels = { service = "system" }

[host]
interval = "10s"
"#;

fn parse(text: &str) -> Result<Config, ConfigErrors> {
    Config::parse(text, Path::new("/etc/logops/agent.toml"))
}

#[test]
fn the_issue_example_works_as_written() {
    let c = parse(ISSUE_EXAMPLE).unwrap();
    assert_eq!(c.agent_id(), "web-01");
    assert_eq!(c.buffer.max_size, ByteSize::gib(1));
    assert_eq!(c.files[0].exclude, vec!["*.gz"]);
    assert_eq!(c.host.unwrap().interval.get().as_secs(), 10);
}

#[test]
fn the_shipped_example_parses() {
    parse(include_str!("../../../config.example.toml")).unwrap();
}

#[test]
fn every_error_is_reported_with_line_column_and_key() {
    let text = r#"[agent]
idd = "web-01"

[ship]
url = "http://127.0.0.1:8080/v1/batch"
api_key_file = "/etc/logops/api_key"
batch_max_age = "soon"

[buffer]
when_full = "panic"

[[files]]
paths = ["/var/log/*.log"]
start_at = "middle"
"#;
    let errs = parse(text).unwrap_err();
    let all = errs.to_string();
    assert_eq!(errs.0.len(), 4, "{all}");
    let e = &errs.0[0];
    assert_eq!(
        (e.line, e.column, e.key.as_deref()),
        (Some(2), Some(1), Some("agent.idd")),
        "{all}"
    );
    assert!(e.message.contains("did you mean `id`"), "{all}");
    assert!(
        all.contains("/etc/logops/agent.toml:7:17: ship.batch_max_age: `soon` is not a duration"),
        "{all}"
    );
    assert!(all.contains(":10:13: buffer.when_full"), "{all}");
    assert!(all.contains(":14:12: files[0].start_at"), "{all}");
}

#[test]
fn semantic_errors_are_located() {
    let text = r#"[ship]
url = "ftp://x"
api_key = "inline-secret"

[[files]]
paths = ["var/log/*.log"]
multiline = { start_pattern = "([" }
"#;
    let all = parse(text).unwrap_err().to_string();
    assert!(
        all.contains(":2:7: ship.url: `ftp://x` is not an http"),
        "{all}"
    );
    assert!(
        all.contains("ship.api_key: API keys never live in the configuration"),
        "{all}"
    );
    assert!(
        all.contains(":6:10: files[0].paths[0]: `var/log/*.log` must be an absolute path"),
        "{all}"
    );
    assert!(
        all.contains("files[0].multiline.start_pattern: not a regular expression"),
        "{all}"
    );
    assert!(!all.contains("inline-secret"), "{all}");
}

#[test]
fn a_missing_section_and_syntax_errors_are_named() {
    let errs = parse("[agent]\nid = \"x\"\n").unwrap_err();
    let all = errs.to_string();
    assert!(all.contains("missing field `ship`"), "{all}");
    assert_eq!(errs.0[0].key.as_deref(), Some("ship"), "{all}");
    let errs = parse("[ship]\napi_key_env = \"K\"\n").unwrap_err();
    assert_eq!(errs.0[0].key.as_deref(), Some("ship.url"), "{errs}");
    let all = parse("[ship\nurl = 1\n").unwrap_err().to_string();
    assert!(all.contains("agent.toml:1:"), "{all}");
}

#[test]
fn unknown_keys_far_from_any_get_the_list() {
    let all = parse("[ship]\nurl = \"http://h/v1/batch\"\napi_key_env = \"K\"\nzzzzzz = 1\n")
        .unwrap_err()
        .to_string();
    assert!(
        all.contains("unknown key `zzzzzz`; expected one of"),
        "{all}"
    );
}

#[test]
fn a_key_missing_in_a_files_group_is_named_with_its_index() {
    let text = "[ship]\nurl = \"http://h/v1/batch\"\napi_key_env = \"K\"\n\n[[files]]\npaths = [\"/a\"]\n\n[[files]]\nexclude = [\"*.gz\"]\n";
    let errs = parse(text).unwrap_err();
    assert_eq!(errs.0.len(), 1, "{errs}");
    let e = &errs.0[0];
    assert_eq!(
        (e.line, e.column, e.key.as_deref()),
        (Some(8), Some(1), Some("files[1].paths")),
        "{errs}"
    );
}

#[test]
fn the_issue_ping_example_works_as_written() {
    let text = r#"[ship]
url = "http://127.0.0.1:8080/v1/batch"
api_key_env = "K"

[[ping]]
targets = ["10.0.0.1", "core-sw1.example.net", "2001:db8::1"]
interval = "60s"
count = 5                # packets per round
packet_interval = "200ms"
timeout = "2s"
labels = { site = "dc1" }
"#;
    let c = parse(text).unwrap();
    let p = &c.ping[0];
    assert_eq!(p.targets.len(), 3);
    assert_eq!(
        (
            p.interval.get().as_secs(),
            p.count,
            p.packet_interval.get().as_millis()
        ),
        (60, 5, 200)
    );
    assert_eq!(p.timeout.get().as_secs(), 2);
    assert_eq!(p.labels["site"], "dc1");
    // Defaults: the same values.
    let d = parse(
        "[ship]\nurl = \"http://127.0.0.1:8080/v1/batch\"\napi_key_env = \"K\"\n[[ping]]\ntargets = [\"::1\"]\n",
    )
    .unwrap();
    let q = &d.ping[0];
    assert_eq!(
        (q.interval, q.count, q.packet_interval, q.timeout),
        (p.interval, p.count, p.packet_interval, p.timeout)
    );
}

#[test]
fn type_and_semantic_errors_are_reported_together() {
    let text = r#"[ship]
url = "http://h/v1/batch"
api_key_env = "K"
compression = "lz4"
batch_max_bytes = "lots"

[buffer]
max_size = "1MiB"

[[files]]
paths = ["relative/*.log"]
"#;
    let errs = parse(text).unwrap_err();
    let all = errs.to_string();
    assert!(
        all.contains(":4:15: ship.compression: unknown variant `lz4`"),
        "{all}"
    );
    assert!(all.contains(":5:19: ship.batch_max_bytes:"), "{all}");
    assert!(
        all.contains(":11:10: files[0].paths[0]: `relative/*.log` must be an absolute path"),
        "{all}"
    );
    // batch_max_bytes was taken out (its default, 2MiB, stood in): comparing the buffer's
    // size with it would be about a value the file does not have.
    assert!(!all.contains("is smaller than"), "{all}");
    assert_eq!(errs.0.len(), 3, "{all}");
}

#[test]
fn ping_mistakes_are_located() {
    let text = r#"[ship]
url = "http://127.0.0.1:8080/v1/batch"
api_key_env = "K"

[[ping]]
targets = ["10.0.0.1", "bad name"]
interval = "5s"
count = 0
packet_interval = "2s"
timeout = "10s"
labels = { target = "x", "a-b" = "y" }

[[ping]]
targets = []
"#;
    let errs = parse(text).unwrap_err();
    let all = errs.to_string();
    for want in [
        ":6:24: ping[0].targets[1]: `bad name` is neither an IP address nor a valid host name",
        ":8:9: ping[0].count: must be at least 1",
        ":7:12: ping[0].interval: a round takes",
        "ping[0].labels.target: `target` is set by the ping source itself",
        "ping[0].labels.a-b: label names match",
        ":14:11: ping[1].targets: list at least one address or host name",
    ] {
        assert!(all.contains(want), "{want} missing in:\n{all}");
    }
    let typo = "[ship]\nurl = \"http://h/v1/batch\"\napi_key_env = \"K\"\n[[ping]]\ntargets = [\"::1\"]\ntimeot = \"1s\"\n";
    let all = parse(typo).unwrap_err().to_string();
    assert!(
        all.contains(":6:1: ping[0].timeot: unknown key `timeot`; did you mean `timeout`?"),
        "{all}"
    );
}

const SNMP_SHIP: &str = "[ship]\nurl = \"http://127.0.0.1:8080/v1/batch\"\napi_key_env = \"K\"\n";

#[test]
fn the_issue_snmp_example_works_as_written() {
    let text = format!(
        r#"{SNMP_SHIP}
[snmp.profile.core-v3]
version = "v3"
user = "monitor"
security_level = "authPriv"      # noAuthNoPriv | authNoPriv | authPriv
auth_protocol = "sha"            # md5 | sha | sha224 | sha256 | sha384 | sha512 (what snmp2 supports; document it)
auth_password_env = "SNMP_AUTH"
priv_protocol = "aes"            # des | aes | aes192 | aes256 (likewise)
priv_password_env = "SNMP_PRIV"

[[snmp.device]]
name = "core-sw1"
address = "10.0.0.1:161"
profile = "core-v3"              # or inline: version = "v2c", community_env = "SNMP_COMMUNITY"
interval = "60s"
timeout = "3s"
retries = 2
get = ["sysUpTime.0", "1.3.6.1.2.1.1.5.0"]
walk = ["ifTable", "ifXTable", "hrStorageTable"]

[[snmp.device]]
name = "edge-sw2"
address = "edge-sw2.example.net"
version = "v2c"
community_env = "SNMP_COMMUNITY"
walk = ["ifXTable"]
labels = {{ site = "dc1" }}
"#
    );
    let c = parse(&text).unwrap();
    let devices = c.snmp.unwrap().devices();
    assert_eq!(devices.len(), 2);
    let d = &devices[0];
    assert_eq!(
        (d.name.as_str(), d.address.as_str()),
        ("core-sw1", "10.0.0.1:161")
    );
    assert_eq!(
        d.credentials,
        Credentials::V3(UsmSettings {
            user: "monitor".into(),
            level: SecurityLevel::AuthPriv,
            auth: Some((AuthProtocol::Sha, "SNMP_AUTH".into())),
            privacy: Some((PrivProtocol::Aes, "SNMP_PRIV".into())),
            context: String::new(),
        })
    );
    assert_eq!(d.timeout, std::time::Duration::from_secs(3));
    assert_eq!(d.retries, 2);
    assert_eq!(d.walk, ["ifTable", "ifXTable", "hrStorageTable"]);
    let e = &devices[1];
    assert_eq!(
        e.credentials,
        Credentials::V2c {
            community_env: "SNMP_COMMUNITY".into()
        }
    );
    assert_eq!(e.interval, std::time::Duration::from_secs(60), "default");
    assert_eq!(e.labels["site"], "dc1");
    assert!(e.bulk);
}

#[test]
fn profiles_give_poll_defaults_that_devices_override() {
    let text = format!(
        r#"{SNMP_SHIP}
[snmp.profile.lab]
version = "v2c"
community_env = "C"
interval = "30s"
timeout = "1s"
walk = ["ifTable"]
labels = {{ role = "access", site = "a" }}

[[snmp.device]]
name = "a"
address = "127.0.0.1:1161"
profile = "lab"
walk = ["hrStorageTable"]
labels = {{ site = "b" }}
"#
    );
    let d = parse(&text).unwrap().snmp.unwrap().devices().remove(0);
    assert_eq!(d.interval, std::time::Duration::from_secs(30));
    assert_eq!(d.walk, ["hrStorageTable"]);
    assert_eq!(d.labels["role"], "access");
    assert_eq!(d.labels["site"], "b");
}

#[test]
fn snmp_errors_name_file_line_column_and_key() {
    let text = format!(
        r#"{SNMP_SHIP}
[snmp.profile.core-v3]
version = "v3"
user = "monitor"
security_level = "authPriv"
auth_protocol = "sha"
auth_password_env = "SNMP_AUTH"
priv_protocol = "aes"

[snmp.profile.bad-level]
version = "v3"
user = "monitor"
security_level = "authpriv"

[[snmp.device]]
name = "core-sw1"
address = "10.0.0.1:161"
profile = "core-v4"
walk = ["ifTable"]

[[snmp.device]]
name = "sw2"
address = "10.0.0.2"
version = "v2c"
community = "public"
walk = ["ifTabel"]
"#
    );
    let errs = parse(&text).unwrap_err();
    let all = errs.to_string();
    // A bad enum value is located at the value.
    assert!(
        all.contains("/etc/logops/agent.toml:16:18: snmp.profile.bad-level.security_level: unknown variant `authpriv`, expected one of `noAuthNoPriv`, `authNoPriv`, `authPriv`"),
        "{all}"
    );
    // Only serde's errors are reported while any remain; fix that one and look again.
    let text = text.replace("\"authpriv\"", "\"authPriv\"");
    let errs = parse(&text).unwrap_err();
    let all = errs.to_string();
    assert!(
        all.contains(
            "agent.toml:5:1: snmp.profile.core-v3: security_level = \"authPriv\" needs `priv_password_env`"
        ),
        "{all}"
    );
    assert!(
        all.contains("agent.toml:13:1: snmp.profile.bad-level: security_level = \"authPriv\" needs `auth_protocol`"),
        "{all}"
    );
    assert!(
        all.contains("agent.toml:21:11: snmp.device[0].profile: unknown profile `core-v4`; did you mean `core-v3`?"),
        "{all}"
    );
    assert!(
        all.contains("agent.toml:28:13: snmp.device[1].community: secrets never live in the configuration: use community_env"),
        "{all}"
    );
    assert!(
        all.contains("agent.toml:29:9: snmp.device[1].walk[0]: `ifTabel` is neither a numeric OID nor a built-in name; did you mean `ifTable`?"),
        "{all}"
    );
    assert!(
        !all.contains("\"public\""),
        "the secret is not repeated: {all}"
    );
}

#[test]
fn snmp_device_settings_are_checked() {
    let text = format!(
        r#"{SNMP_SHIP}
[[snmp.device]]
name = "a"
address = "10.0.0.1:0"
version = "v3"
user = "u"
security_level = "noAuthNoPriv"
auth_protocol = "md5"
interval = "10s"
timeout = "5s"
retries = 2
community_env = "C"

[[snmp.device]]
name = "a"
address = "sw2:161"
version = "v2c"
community_env = "C"
"#
    );
    let all = parse(&text).unwrap_err().to_string();
    for want in [
        "snmp.device[0].address: `10.0.0.1:0` is not host:port",
        "snmp.device[0].auth_protocol: `auth_protocol` is not used at security_level = \"noAuthNoPriv\"",
        "snmp.device[0].community_env: `community_env` is not used with version = \"v3\"",
        "snmp.device[0].timeout: timeout × (retries + 1) = 15s is longer than the interval (10s)",
        "snmp.device[1].name: `a` is also the name of snmp.device[0]",
        "snmp.device[1]: nothing to poll",
    ] {
        assert!(all.contains(want), "missing {want:?} in\n{all}");
    }
}

/// The commented `[[exec]]`, `[journald]` and `[kubernetes]` blocks of the shipped example,
/// uncommented, are valid and mean what they say.
#[test]
fn the_commented_stdout_sections_of_the_example_parse() {
    let example = include_str!("../../../config.example.toml");
    let mut text = String::from(ISSUE_EXAMPLE);
    for header in ["# [[exec]]", "# [journald]", "# [kubernetes]"] {
        let start = example.find(header).expect(header);
        for line in example[start..].lines() {
            let Some(l) = line.strip_prefix("# ") else {
                break;
            };
            text.push_str(l);
            text.push('\n');
        }
    }
    // `directory` and `files` exclude each other: keep the directory.
    let text = text.replace("files = [\"/srv/j/*.journal\"]", "");
    let c = parse(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    assert_eq!(c.exec[0].command, ["/usr/bin/myapp", "--verbose"]);
    assert_eq!(c.exec[0].restart, RestartPolicy::Always);
    assert_eq!(c.exec[0].stop_timeout.get().as_secs(), 5);
    let j = c.journald.unwrap();
    assert_eq!(j.units, ["nginx.service", "sshd.service"]);
    assert_eq!(j.start_at, StartAt::End);
    let k = c.kubernetes.unwrap();
    assert_eq!(k.paths, ["/var/log/pods/*/*/*.log"]);
    assert_eq!(k.format, ContainerFormat::Auto);
    let g = k.files_group();
    assert_eq!(g.container.unwrap().max_message_bytes, 1 << 20);
}

#[test]
fn stdout_sections_are_checked() {
    let text = format!(
        r#"{ISSUE_EXAMPLE}
[[exec]]
command = []

[[exec]]
command = ["/bin/app"]
working_dir = "relative"

[[exec]]
command = ["/usr/local/bin/app"]

[journald]
directory = "/j"
files = ["/k"]

[kubernetes]
labels = {{ pod = "x" }}
"#
    );
    let e = parse(&text).unwrap_err().to_string();
    for want in [
        "exec[0].command",
        "exec[1].working_dir: `relative` must be an absolute path",
        "exec[2].name: `app` is also the name of exec[1]",
        "journald: set directory or files, not both",
        "kubernetes.labels.pod: `pod` is set from each file's path",
    ] {
        assert!(e.contains(want), "missing {want:?} in:\n{e}");
    }
}

#[test]
fn the_issue_syslog_example_works_as_written() {
    let text = format!(
        r#"{SNMP_SHIP}
[syslog]
udp = "0.0.0.0:514"
tcp = "0.0.0.0:601"
tls = {{ listen = "0.0.0.0:6514", cert = "/etc/logops/tls.crt", key = "/etc/logops/tls.key" }}
max_message_size = "64KiB"
timezone = "local"           # for RFC 3164 stamps without a zone
"#
    );
    let c = parse(&text).unwrap();
    let s = c.syslog.unwrap();
    assert_eq!(s.udp, Some("0.0.0.0:514".parse().unwrap()));
    assert_eq!(s.tcp, Some("0.0.0.0:601".parse().unwrap()));
    let tls = s.tls.unwrap();
    assert_eq!(tls.listen, "0.0.0.0:6514".parse().unwrap());
    assert_eq!(tls.client_ca, None);
    assert_eq!(s.max_message_size, ByteSize::kib(64));
    assert_eq!(s.timezone, SyslogTimezone::Local);
    assert_eq!(s.max_connections, 1024);
    assert_eq!(s.idle_timeout.get().as_secs(), 3600);
}

#[test]
fn every_syslog_mistake_is_named_by_its_key() {
    let text = format!(
        r#"{SNMP_SHIP}
[syslog]
udp = "0.0.0.0"
tcp = "127.0.0.1:6514"
unix = "dev/log"
tls = {{ listen = "127.0.0.1:6514", cert = "tls.crt", key = "/k", client_ca = "/ca", verify = true }}
max_message_size = "100B"
timezone = "CEST"
max_connections = 0
idle_timeout = "10ms"
udp_recv_buffer = "1KiB"
labels = {{ "bad-name" = "x" }}
"#
    );
    let errs = parse(&text).unwrap_err();
    let keys: Vec<&str> = errs.0.iter().filter_map(|e| e.key.as_deref()).collect();
    for k in ["syslog.udp", "syslog.tls.verify", "syslog.timezone"] {
        assert!(keys.contains(&k), "{k} missing in {errs}");
    }
    let all = errs.to_string();
    assert!(all.contains("\"+02:00\""), "{all}");
    assert!(
        all.contains("`0.0.0.0` is not an IP address with a port"),
        "{all}"
    );
    // The semantic checks run on what deserialized.
    let text = format!(
        r#"{SNMP_SHIP}
[syslog]
tcp = "127.0.0.1:6514"
unix = "dev/log"
tls = {{ listen = "127.0.0.1:6514", cert = "tls.crt", key = "/k" }}
max_message_size = "100B"
max_connections = 0
idle_timeout = "10ms"
udp_recv_buffer = "1KiB"
labels = {{ "bad-name" = "x" }}
"#
    );
    let errs = parse(&text).unwrap_err();
    let keys: Vec<&str> = errs.0.iter().filter_map(|e| e.key.as_deref()).collect();
    for k in [
        "syslog.tls.listen",
        "syslog.unix",
        "syslog.tls.cert",
        "syslog.max_message_size",
        "syslog.max_connections",
        "syslog.idle_timeout",
        "syslog.udp_recv_buffer",
        "syslog.labels.bad-name",
    ] {
        assert!(keys.contains(&k), "{k} missing in {errs}");
    }
    let errs = parse(&format!("{SNMP_SHIP}\n[syslog]\nmax_connections = 5\n")).unwrap_err();
    assert!(
        errs.to_string()
            .contains("syslog: set at least one of udp, tcp, tls or unix"),
        "{errs}"
    );
}
