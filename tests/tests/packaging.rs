//! The packages, installed and run the way operators do: `packaging/build.sh` makes the
//! .deb and .rpm of both programs from the binaries under test, and they are installed into a
//! Debian bookworm root (debootstrap, with systemd and procps; `tests/install-peers.sh` makes
//! it at `/opt/logops-tests/debian-bookworm`, `LOGOPS_DEBIAN_ROOT` overrides) with dpkg and
//! rpm, whose maintainer scripts run chrooted there. The installed programs then run chrooted
//! (in a private mount namespace with its own /proc), the ingest as its system user, and
//! the agent ships a log line to it with the key the ingest package made. Also: the
//! Kubernetes manifests against the Kubernetes API schemas (kubernetes-validate, strict) with
//! their embedded configurations through `check-config`, and the Prometheus alert rules
//! through `promtool check rules` and `promtool test rules`.
//!
//! Needs root (chroot, mount namespaces) and the peers of `tests/install-peers.sh`.

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use logops_e2e::agent::agent_binary;
use logops_e2e::process::{ingest_binary, send_signal, wait_for_exit};
use logops_e2e::{free_port, Client};

/// The repository root.
fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ is in the repository")
        .to_path_buf()
}

fn debian_root() -> PathBuf {
    std::env::var_os("LOGOPS_DEBIAN_ROOT")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/opt/logops-tests/debian-bookworm"))
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Runs a command to its end; panics with its output when it fails.
fn run(cmd: &mut Command) -> String {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    let t = text(&out);
    assert!(out.status.success(), "{cmd:?}: {}\n{t}", out.status);
    t
}

/// `cmd` chrooted into `root` as `user`, in a private mount namespace with its own /proc
/// (gone with the process). `unshare`, `sh` and `chroot` exec, so the PID is the program's.
fn chrooted(root: &Path, user: &str, args: &[&str]) -> Command {
    let mut cmd = Command::new("unshare");
    cmd.args(["--mount", "--propagation", "private", "--", "sh", "-c"])
        .arg(r#"mount -t proc proc "$0/proc" && u=$1 && shift && exec chroot --userspec="$u" "$0" "$@""#)
        .arg(root)
        .arg(user)
        .args(args);
    cmd
}

/// A program running chrooted; SIGKILLed when dropped (and if the test thread dies).
struct Chrooted {
    child: Option<Child>,
    log: PathBuf,
}

impl Chrooted {
    fn start(root: &Path, user: &str, args: &[&str], log: PathBuf) -> Chrooted {
        let file = fs::File::create(&log).unwrap();
        let mut cmd = chrooted(root, user, args);
        cmd.stdin(Stdio::null())
            .stdout(file.try_clone().unwrap())
            .stderr(file);
        // SAFETY: prctl is async-signal-safe; nothing else runs between fork and exec.
        unsafe {
            cmd.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong);
                Ok(())
            });
        }
        Chrooted {
            child: Some(cmd.spawn().unwrap()),
            log,
        }
    }

    fn log(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// SIGTERM, and its exit status within 30 s.
    fn stop(&mut self) -> std::process::ExitStatus {
        let mut c = self.child.take().expect("running");
        send_signal(c.id(), libc::SIGTERM).unwrap();
        match wait_for_exit(&mut c, Duration::from_secs(30)) {
            Ok(Some(s)) => s,
            _ => {
                let _ = c.kill();
                panic!("did not stop within 30 s:\n{}", self.log());
            }
        }
    }
}

impl Drop for Chrooted {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Serializes users of the shared root (another `cargo test` run, say).
struct RootLock(#[allow(dead_code)] fs::File);

impl RootLock {
    fn take(root: &Path) -> RootLock {
        let f = fs::File::create(root.with_extension("lock")).unwrap();
        f.lock().unwrap();
        RootLock(f)
    }
}

/// Removes whatever an earlier, interrupted run left installed in the root.
fn clean(root: &Path) {
    let _ = Command::new("chroot")
        .arg(root)
        .args(["dpkg", "--purge", "logops-agent", "logops-ingest"])
        .output();
    let _ = Command::new("rpm")
        .arg("--root")
        .arg(root)
        .args(["-e", "--nodeps", "logops-agent", "logops-ingest"])
        .output();
    for p in [
        "etc/logops",
        "var/lib/logops",
        "var/lib/logops-ingest",
        "tmp/pkg",
    ] {
        let _ = fs::remove_dir_all(root.join(p));
    }
}

fn mode(p: &Path) -> u32 {
    fs::metadata(p)
        .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
        .permissions()
        .mode()
        & 0o7777
}

/// `/etc/group`'s id of `name` inside the root.
fn root_gid(root: &Path, name: &str) -> u32 {
    fs::read_to_string(root.join("etc/group"))
        .unwrap()
        .lines()
        .find_map(|l| {
            let f: Vec<_> = l.split(':').collect();
            (f[0] == name).then(|| f[2].parse().unwrap())
        })
        .unwrap_or_else(|| panic!("no group {name}"))
}

/// Replaces the line starting with `key =` in a TOML file, as an operator's edit.
fn edit(path: &Path, key: &str, line: &str) {
    let t = fs::read_to_string(path).unwrap();
    let mut found = false;
    let out: Vec<String> = t
        .lines()
        .map(|l| {
            if l.starts_with(&format!("{key} =")) {
                found = true;
                line.to_owned()
            } else {
                l.to_owned()
            }
        })
        .collect();
    assert!(found, "no `{key} =` in {}", path.display());
    fs::write(path, out.join("\n") + "\n").unwrap();
}

/// Builds the packages from the binaries under test: (debs, rpms).
fn build_packages(out: &Path) -> (Vec<PathBuf>, Vec<PathBuf>) {
    let bins = agent_binary().unwrap();
    let bin_dir = bins.parent().unwrap();
    assert_eq!(ingest_binary().unwrap().parent().unwrap(), bin_dir);
    let listed = run(Command::new(repo().join("packaging/build.sh"))
        .arg("--bin-dir")
        .arg(bin_dir)
        .arg("--out")
        .arg(out));
    let paths: Vec<PathBuf> = listed
        .lines()
        .filter(|l| l.starts_with('/'))
        .map(PathBuf::from)
        .collect();
    let debs: Vec<_> = paths
        .iter()
        .filter(|p| p.extension().is_some_and(|e| e == "deb"))
        .cloned()
        .collect();
    let rpms: Vec<_> = paths
        .iter()
        .filter(|p| p.extension().is_some_and(|e| e == "rpm"))
        .cloned()
        .collect();
    assert_eq!((debs.len(), rpms.len()), (2, 2), "{listed}");
    (debs, rpms)
}

/// The configurations the packages installed pass `check-config`, each read as the user
/// its service runs as.
fn check_installed_configs(root: &Path) {
    run(&mut chrooted(
        root,
        "root",
        &[
            "logops-agent",
            "check-config",
            "--config",
            "/etc/logops/agent.toml",
        ],
    ));
    run(&mut chrooted(
        root,
        "logops-ingest:logops-ingest",
        &[
            "logops-ingest",
            "check-config",
            "--config",
            "/etc/logops/ingest.toml",
        ],
    ));
}

#[test]
fn the_packages_install_run_and_purge_in_a_debian_root() {
    let root = debian_root();
    assert!(
        root.join("usr/bin/systemd-analyze").is_file(),
        "{} is not a Debian root with systemd: run tests/install-peers.sh as root",
        root.display()
    );
    let _lock = RootLock::take(&root);
    clean(&root);
    let dist = tempfile::tempdir().unwrap();
    let (debs, rpms) = build_packages(dist.path());

    // The metadata: dependencies on what the binaries link, conffiles, maintainer scripts.
    let agent_deb = debs
        .iter()
        .find(|p| p.to_string_lossy().contains("logops-agent"))
        .unwrap();
    let info = run(Command::new("dpkg-deb").arg("--info").arg(agent_deb));
    assert!(info.contains("Depends: libc6 (>= 2."), "{info}");
    assert!(info.contains("procps"), "ExecReload runs /bin/kill: {info}");
    assert!(info.contains("conffiles"), "{info}");
    let listing = run(Command::new("dpkg-deb").arg("--contents").arg(agent_deb));
    for f in [
        "./usr/bin/logops-agent",
        "./lib/systemd/system/logops-agent.service",
        "./etc/logops/agent.toml",
        "./usr/share/doc/logops-agent/config.example.toml",
    ] {
        assert!(listing.contains(f), "{f} missing:\n{listing}");
    }

    // dpkg, as an operator runs it: both packages at once.
    let pkg_dir = root.join("tmp/pkg");
    fs::create_dir_all(&pkg_dir).unwrap();
    for d in &debs {
        fs::copy(d, pkg_dir.join(d.file_name().unwrap())).unwrap();
    }
    let mut args = vec!["dpkg".to_owned(), "-i".to_owned()];
    args.extend(
        debs.iter()
            .map(|d| format!("/tmp/pkg/{}", d.file_name().unwrap().to_string_lossy())),
    );
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let said = run(&mut chrooted(&root, "root", &args));
    assert!(
        said.contains("made /etc/logops/ingest.toml (tenant \"default\"); its API key is in /etc/logops/api_key"),
        "{said}"
    );
    let etc = root.join("etc/logops");
    assert_eq!(mode(&etc.join("api_key")), 0o600);
    assert_eq!(mode(&etc.join("ingest.toml")), 0o640);
    let ingest_gid = root_gid(&root, "logops-ingest");
    assert_eq!(
        fs::metadata(etc.join("ingest.toml")).unwrap().gid(),
        ingest_gid
    );
    let state = fs::metadata(root.join("var/lib/logops-ingest")).unwrap();
    assert_eq!((state.gid(), state.mode() & 0o777), (ingest_gid, 0o750));
    assert_eq!(mode(&root.join("var/lib/logops")), 0o750);
    for unit in ["logops-agent", "logops-ingest"] {
        // A link to the root's /lib/...: its own existence, not its target's on this host.
        let link = root.join(format!(
            "etc/systemd/system/multi-user.target.wants/{unit}.service"
        ));
        assert!(fs::symlink_metadata(&link).is_ok(), "{unit} is enabled");
    }
    // systemd's own check of the installed units (no warnings either).
    let verify = run(&mut chrooted(
        &root,
        "root",
        &[
            "systemd-analyze",
            "verify",
            "logops-agent.service",
            "logops-ingest.service",
        ],
    ));
    assert!(verify.trim().is_empty(), "{verify}");
    check_installed_configs(&root);

    // Run both as their units do (the ingest as its user), on free ports: an operator's edit.
    let (port, metrics_port) = (free_port(), free_port());
    edit(
        &etc.join("ingest.toml"),
        "listen",
        &format!("listen = \"127.0.0.1:{port}\""),
    );
    edit(
        &etc.join("agent.toml"),
        "url",
        &format!("url = \"http://127.0.0.1:{port}/v1/batch\""),
    );
    let mut agent_toml = fs::read_to_string(etc.join("agent.toml")).unwrap();
    agent_toml.push_str(&format!(
        "\n[self_metrics]\nlisten = \"127.0.0.1:{metrics_port}\"\n"
    ));
    fs::write(etc.join("agent.toml"), agent_toml).unwrap();
    let logs = tempfile::tempdir().unwrap();
    let mut ingest = Chrooted::start(
        &root,
        "logops-ingest:logops-ingest",
        &["logops-ingest", "--config", "/etc/logops/ingest.toml"],
        logs.path().join("ingest.log"),
    );
    let client = Client::new(
        &format!("http://127.0.0.1:{port}"),
        None,
        Duration::from_secs(10),
    )
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while client.try_get(None, "/readyz", &[]).map(|r| r.status).ok() != Some(200) {
        assert!(
            Instant::now() < deadline,
            "ingest not ready:\n{}",
            ingest.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let app_log = root.join("var/log/logops-package-test.log");
    fs::write(&app_log, "written before the agent started\n").unwrap();
    let mut agent = Chrooted::start(
        &root,
        "root",
        &["logops-agent", "run", "--config", "/etc/logops/agent.toml"],
        logs.path().join("agent.log"),
    );
    let key = fs::read_to_string(etc.join("api_key"))
        .unwrap()
        .trim()
        .to_owned();
    let line = format!(
        "hello from the installed agent {}",
        logops_e2e::random_hex(8)
    );
    let deadline = Instant::now() + Duration::from_secs(60);
    let found = loop {
        // start_at = "end": written after the agent started (and again, until it is seen).
        let mut f = fs::OpenOptions::new().append(true).open(&app_log).unwrap();
        std::io::Write::write_all(&mut f, format!("{line}\n").as_bytes()).unwrap();
        let stored = client.query_all(&key, "/v1/logs", &[("q", &line)]);
        if !stored.is_empty() {
            break stored;
        }
        assert!(
            Instant::now() < deadline,
            "nothing stored; agent:\n{}\ningest:\n{}",
            agent.log(),
            ingest.log()
        );
        std::thread::sleep(Duration::from_millis(500));
    };
    assert!(found[0].contains("\"source\":\"file\""), "{}", found[0]);
    let host_metrics = client.query_all(&key, "/v1/metrics", &[("source", "host")]);
    assert!(
        !host_metrics.is_empty(),
        "host metrics from the chroot's /proc"
    );
    assert!(
        client
            .query_all(&key, "/v1/logs", &[("q", "before the agent started")])
            .is_empty(),
        "start_at = \"end\""
    );
    assert!(agent.stop().success(), "{}", agent.log());
    assert!(ingest.stop().success(), "{}", ingest.log());

    // Installing again keeps the configuration and the key the first installation made.
    let (toml_before, key_before) = (
        fs::read(etc.join("ingest.toml")).unwrap(),
        fs::read(etc.join("api_key")).unwrap(),
    );
    run(&mut chrooted(&root, "root", &args));
    assert_eq!(fs::read(etc.join("ingest.toml")).unwrap(), toml_before);
    assert_eq!(fs::read(etc.join("api_key")).unwrap(), key_before);

    // Purging removes the programs, the configuration and the agent's buffer, not the
    // ingest's store.
    let said = run(&mut chrooted(
        &root,
        "root",
        &["dpkg", "--purge", "logops-agent", "logops-ingest"],
    ));
    assert!(said.contains("/var/lib/logops-ingest is kept"), "{said}");
    for gone in [
        "usr/bin/logops-agent",
        "usr/bin/logops-ingest",
        "etc/logops",
        "var/lib/logops",
        "etc/systemd/system/multi-user.target.wants/logops-agent.service",
    ] {
        assert!(
            fs::symlink_metadata(root.join(gone)).is_err(),
            "{gone} is left after purge"
        );
    }
    assert!(root.join("var/lib/logops-ingest/store").is_dir());
    fs::remove_dir_all(root.join("var/lib/logops-ingest")).unwrap();
    let _ = fs::remove_file(&app_log);

    // rpm, into the same root (its scriptlets run chrooted there too).
    run(Command::new("rpm").arg("--root").arg(&root).arg("--initdb"));
    // rpm runs on the host with --root (its scriptlets chrooted).
    let mut rpm_host = Command::new("rpm");
    rpm_host.arg("--root").arg(&root).args(["-i", "--nodeps"]);
    rpm_host.args(&rpms);
    let said = run(&mut rpm_host);
    assert!(said.contains("made /etc/logops/ingest.toml"), "{said}");
    check_installed_configs(&root);
    let listed = run(Command::new("rpm")
        .arg("--root")
        .arg(&root)
        .args(["-ql", "logops-agent"]));
    assert!(listed.contains("/etc/logops/agent.toml"), "{listed}");
    run(Command::new("rpm")
        .arg("--root")
        .arg(&root)
        .args(["-e", "logops-agent", "logops-ingest"]));
    assert!(!root.join("usr/bin/logops-agent").exists());
    assert!(!root.join("usr/bin/logops-ingest").exists());
    clean(&root);
}

/// The manifests' embedded configuration files.
fn config_maps(manifest: &Path) -> Vec<(String, String)> {
    let text = fs::read_to_string(manifest).unwrap();
    let mut out = Vec::new();
    for doc in text.split("\n---\n") {
        let Some(at) = doc.find("\ndata:\n") else {
            continue;
        };
        // `  name.toml: |` then lines indented by 4.
        let mut lines = doc[at + 7..].lines();
        let Some(head) = lines.next() else { continue };
        let name = head.trim().trim_end_matches(": |").to_owned();
        let body: Vec<&str> = lines
            .take_while(|l| l.is_empty() || l.starts_with("    "))
            .map(|l| l.strip_prefix("    ").unwrap_or(""))
            .collect();
        out.push((name, body.join("\n") + "\n"));
    }
    out
}

#[test]
fn the_kubernetes_manifests_and_their_configurations_are_valid() {
    let validate = PathBuf::from(
        std::env::var("LOGOPS_K8S_VALIDATE")
            .unwrap_or_else(|_| "/opt/logops-tests/k8s-venv/bin/kubernetes-validate".into()),
    );
    assert!(
        validate.is_file(),
        "{} is missing: run tests/install-peers.sh as root",
        validate.display()
    );
    let dir = repo().join("packaging/kubernetes");
    let manifests = [
        dir.join("logops-agent.yaml"),
        dir.join("logops-ingest.yaml"),
    ];
    let said = run(Command::new(&validate)
        .args(["--strict", "--kubernetes-version", "1.30.0"])
        .args(&manifests));
    assert!(!said.contains("ERROR") && !said.contains("WARN"), "{said}");
    let tmp = tempfile::tempdir().unwrap();
    let mut checked = 0;
    for m in &manifests {
        for (name, body) in config_maps(m) {
            let path = tmp.path().join(&name);
            fs::write(&path, body).unwrap();
            let binary = match name.as_str() {
                "agent.toml" => agent_binary().unwrap(),
                "ingest.toml" => ingest_binary().unwrap(),
                other => panic!("unexpected configuration {other}"),
            };
            run(Command::new(binary)
                .args(["check-config", "--config"])
                .arg(&path));
            checked += 1;
        }
    }
    assert_eq!(checked, 2);
}

#[test]
fn the_alert_rules_pass_promtool_and_their_tests() {
    let dir = repo().join("packaging/prometheus");
    let said = run(Command::new("promtool").current_dir(&dir).args([
        "check",
        "rules",
        "logops-alerts.yml",
    ]));
    assert!(said.contains("SUCCESS"), "{said}");
    let said = run(Command::new("promtool").current_dir(&dir).args([
        "test",
        "rules",
        "logops-alerts.test.yml",
    ]));
    assert!(said.contains("SUCCESS"), "{said}");
}
