//! symbol-order: writes `agent/symbol-order.txt`, the functions the agent runs when idle,
//! which the release build links first (agent/build.rs), so that the code an idle agent
//! keeps resident is one short stretch instead of 64 KiB windows scattered over its text.
//!
//! It starts a release ingest and the release agent in agent-bench's idle scenario (host
//! metrics every 10 s, one quiet file), the agent under valgrind's callgrind with
//! instrumentation off; after start-up (`--settle-secs`, 30) it turns instrumentation on
//! for `--profile-secs` (240: some idle work runs once a minute or less), dumps, and lists
//! every function of the agent's binary that ran, by mangled name. Run it again when agent-bench's idle RSS of the agent's own code
//! grows, or after a toolchain or dependency update (symbol hashes change; lld skips names
//! it does not find):
//!
//! ```text
//! cargo build --release --locked -p logops-agent -p logops-ingest   # as packaging/build.sh
//! cargo build --release --locked -p logops-e2e
//! target/release/symbol-order [--out agent/symbol-order.txt]
//! cargo build --release --locked -p logops-agent -p logops-ingest   # relinks with the list
//! ```
//!
//! Build the agent exactly as it ships: with `-p logops-e2e` in the same command, cargo
//! unifies the dependencies' features with the test crate's, the dependencies build
//! differently, and half the symbol names (their hashes) differ from the shipped binary's.
//!
//! Needs valgrind (`apt-get install valgrind`).

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use logops_e2e::agent::{release_agent_binary, AgentHarness, AgentOptions, ShipTarget};
use logops_e2e::process::{release_ingest_binary, symbol_order_coverage, terminate};
use logops_e2e::{IngestHarness, IngestOptions, TenantSpec};

#[derive(clap::Parser)]
#[command(about = "Writes the functions an idle agent runs, for the release link")]
struct Args {
    /// Where the list goes.
    #[arg(long, default_value = "agent/symbol-order.txt")]
    out: PathBuf,
    /// Seconds of start-up before profiling.
    #[arg(long = "settle-secs", default_value_t = 30)]
    settle_secs: u64,
    /// Seconds profiled (some idle work runs once a minute or less).
    #[arg(long = "profile-secs", default_value_t = 240)]
    profile_secs: u64,
    /// The agent binary (default: target/release/logops-agent).
    #[arg(long)]
    agent: Option<PathBuf>,
    /// The ingest binary (default: target/release/logops-ingest).
    #[arg(long)]
    ingest: Option<PathBuf>,
}

/// The functions of `object` that ran, by mangled name, from a callgrind output file (run
/// with `--demangle=no`). Names and objects may be compressed to `(id)` after their first
/// use; callgrind marks recursion depth with a `'N` suffix, which is not part of the name.
fn functions_that_ran(callgrind: &str, object: &Path) -> BTreeSet<String> {
    let object = object.to_string_lossy();
    let mut objects: HashMap<String, String> = HashMap::new();
    let mut functions: HashMap<String, String> = HashMap::new();
    let mut current_object = String::new();
    let mut ran = BTreeSet::new();
    // "(12) name", "(12)" or "name" -> the name, remembering ids.
    fn resolve(value: &str, names: &mut HashMap<String, String>) -> String {
        match value.strip_prefix('(').and_then(|v| v.split_once(')')) {
            Some((id, rest)) => {
                let rest = rest.trim_start();
                if !rest.is_empty() {
                    names.insert(id.to_owned(), rest.to_owned());
                }
                names.get(id).cloned().unwrap_or_default()
            }
            None => value.to_owned(),
        }
    }
    for line in callgrind.lines() {
        let Some((key, value)) = line.split_once('=') else {
            continue;
        };
        match key {
            "ob" => current_object = resolve(value, &mut objects),
            "cob" => {
                resolve(value, &mut objects);
            }
            "cfn" => {
                resolve(value, &mut functions);
            }
            "fn" => {
                let name = resolve(value, &mut functions);
                if current_object == object {
                    let name = match name.rsplit_once('\'') {
                        Some((base, depth)) if depth.bytes().all(|b| b.is_ascii_digit()) => base,
                        _ => name.as_str(),
                    };
                    ran.insert(name.to_owned());
                }
            }
            _ => {}
        }
    }
    ran
}

fn callgrind_control(args: &[&str]) -> anyhow::Result<()> {
    let st = Command::new("callgrind_control")
        .args(args)
        .stdout(Stdio::null())
        .status()
        .context("running callgrind_control (valgrind)")?;
    anyhow::ensure!(st.success(), "callgrind_control {args:?}: {st}");
    Ok(())
}

fn main() -> anyhow::Result<()> {
    let args = <Args as clap::Parser>::parse();
    let (settle, profile) = (
        Duration::from_secs(args.settle_secs),
        Duration::from_secs(args.profile_secs),
    );
    let agent_bin = match &args.agent {
        Some(p) => p.clone(),
        None => release_agent_binary()?,
    }
    .canonicalize()
    .context("the agent binary")?;
    let ingest_bin = match &args.ingest {
        Some(p) => p.clone(),
        None => release_ingest_binary()?,
    };
    let ingest = IngestHarness::try_start(
        IngestOptions::new()
            .tenant(TenantSpec::new("profile"))
            .binary(ingest_bin),
    )?;
    let dir = tempfile::Builder::new()
        .prefix("logops-symbol-order-")
        .tempdir()?;
    let file = dir.path().join("quiet.log");
    std::fs::write(&file, "one line\n")?;
    let opts = AgentOptions::idle("profiled-agent", &file).binary(agent_bin.clone());
    let agent = AgentHarness::prepare(ShipTarget::of(&ingest, "profile"), opts)?;
    let out_file = dir.path().join("callgrind.out");
    let log = std::fs::File::create(dir.path().join("agent.log"))?;
    let child = Command::new("valgrind")
        .arg("--tool=callgrind")
        .arg("--demangle=no")
        .arg("--instr-atstart=no")
        .arg(format!("--callgrind-out-file={}", out_file.display()))
        .arg(&agent_bin)
        .arg("run")
        .arg("--config")
        .arg(agent.config_path())
        .stdout(log.try_clone()?)
        .stderr(log)
        .spawn()
        .context("starting the agent under valgrind (apt-get install valgrind)")?;
    let pid = child.id().to_string();
    println!(
        "symbol-order: {} under callgrind (pid {pid}): {} s of start-up, then {} s profiled",
        agent_bin.display(),
        settle.as_secs(),
        profile.as_secs()
    );
    std::thread::sleep(settle);
    callgrind_control(&["--instr=on", &pid])?;
    std::thread::sleep(profile);
    callgrind_control(&["--dump", &pid])?;
    // The dump is written asynchronously, to callgrind.out.<n>.
    let t = Instant::now();
    let dump = loop {
        let found = std::fs::read_dir(dir.path())?
            .filter_map(Result::ok)
            .map(|e| e.path())
            .find(|p| {
                p.file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with("callgrind.out."))
                    && std::fs::metadata(p).is_ok_and(|m| m.len() > 0)
            });
        match found {
            Some(p) => break p,
            None if t.elapsed() > Duration::from_secs(30) => bail!("callgrind wrote no dump"),
            None => std::thread::sleep(Duration::from_millis(200)),
        }
    };
    std::thread::sleep(Duration::from_secs(1));
    terminate(child, Duration::from_secs(20));
    let text = std::fs::read_to_string(&dump)?;
    let ran = functions_that_ran(&text, &agent_bin);
    anyhow::ensure!(
        !ran.is_empty(),
        "no function of {} ran: wrong binary?",
        agent_bin.display()
    );

    let mut body = String::from(
        "# The agent's functions that ran while it was idle (host metrics every 10 s, one quiet\n\
         # file), linked first in the release binary (agent/build.rs). Made by\n\
         # target/release/symbol-order; see tests/src/bin/symbol-order.rs.\n",
    );
    for f in &ran {
        body.push_str(f);
        body.push('\n');
    }
    std::fs::write(&args.out, body).with_context(|| format!("writing {}", args.out.display()))?;
    let (found, listed) = symbol_order_coverage(&agent_bin, &args.out)?;
    println!(
        "symbol-order: {listed} functions ran, {found} of them are symbols of the binary; written to {}",
        args.out.display()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn functions_of_the_object_are_read_through_compressed_names() {
        let text = "\
ob=(1) /bin/agent
fn=(1) _ZN3foo3barE
cob=(2) /lib/libc.so.6
cfn=(2) memcpy
calls=1 0
0 5
fn=(3) _ZN3foo3bazE'2
ob=(2)
fn=(2)
fn=(4) strlen
ob=(1)
fn=(1)
fn=(5) _ZN3qux.llvm.123
";
        let ran: Vec<String> = functions_that_ran(text, Path::new("/bin/agent"))
            .into_iter()
            .collect();
        assert_eq!(ran, ["_ZN3foo3barE", "_ZN3foo3bazE", "_ZN3qux.llvm.123"]);
    }
}
