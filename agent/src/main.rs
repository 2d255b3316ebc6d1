//! `logops-agent`: run the agent, check a configuration, inspect the buffer, try a TextFSM
//! template.

mod test_ssh;
mod textfsm_cmd;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use logops_agent::buffer::BufferError;
use logops_agent::config::Config;
use logops_agent::{app, buffer};

/// The LogOps host agent.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

const DEFAULT_CONFIG: &str = "/etc/logops/agent.toml";

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the agent.
    Run {
        /// Configuration file.
        #[arg(long, short = 'c', default_value = DEFAULT_CONFIG)]
        config: PathBuf,
        /// Also read log lines from standard input (`source = "stdin"`); at its end, send
        /// what was read and exit (0 when all of it was acknowledged).
        #[arg(long)]
        stdin: bool,
    },
    /// Check a configuration file: exit 0, or print every error and exit 1.
    CheckConfig {
        /// Configuration file.
        #[arg(long, short = 'c', default_value = DEFAULT_CONFIG)]
        config: PathBuf,
    },
    /// Try a collector against one target and print what it got.
    Test {
        #[command(subcommand)]
        what: TestWhat,
    },
    /// Inspect the durable buffer (directly, or through a running agent's local endpoint).
    Buffer {
        /// Configuration file.
        #[arg(long, short = 'c', default_value = DEFAULT_CONFIG, global = true)]
        config: PathBuf,
        #[command(subcommand)]
        action: BufferAction,
    },
    /// Parse command output from stdin with the TextFSM template an ntc-templates index
    /// picks, and print the records as a JSON array.
    Textfsm {
        /// Templates directory with its `index` file (ntc-templates' `templates/`).
        #[arg(long)]
        templates: PathBuf,
        /// Platform, as the index names it (Netmiko's device_type: cisco_ios, arista_eos, ...).
        #[arg(long)]
        platform: String,
        /// The command that produced the output (abbreviated as the index allows: "sh ver").
        #[arg(long)]
        command: String,
    },
}

#[derive(Debug, Subcommand)]
enum TestWhat {
    /// Poll one `[[snmp.device]]` once and print its events; explain failures in words.
    Snmp {
        /// The device's `name`.
        device: String,
        /// Configuration file.
        #[arg(long, short = 'c', default_value = DEFAULT_CONFIG)]
        config: PathBuf,
        /// Print the events as wire-format NDJSON instead of one readable line each.
        #[arg(long)]
        json: bool,
    },
    /// Log in to one `[[ssh.device]]` once: print the prompt, each command's raw output and
    /// its parsed records, or what failed.
    Ssh {
        /// The device's `name`.
        device: String,
        /// Configuration file.
        #[arg(long, short = 'c', default_value = DEFAULT_CONFIG)]
        config: PathBuf,
        /// Print the events as wire-format NDJSON instead.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
enum BufferAction {
    /// What is queued, in batches, dead-lettered, and the oldest age.
    Status,
    /// Decode everything and check it adds up.
    Check,
    /// The dead letters with the ingest's reasons.
    DeadLetters,
    /// Send dead letters again (all, or one by --seq).
    Replay {
        /// Only this batch.
        #[arg(long)]
        seq: Option<u64>,
    },
}

fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
}

fn load(path: &Path) -> Result<Config, ExitCode> {
    Config::load(path).map_err(|errors| {
        eprintln!("{errors}");
        eprintln!(
            "logops-agent: {} error(s) in {}",
            errors.0.len(),
            path.display()
        );
        ExitCode::from(1)
    })
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::CheckConfig { config } => match load(&config) {
            Ok(_) => {
                println!("{}: ok", config.display());
                Ok(())
            }
            Err(code) => return code,
        },
        Command::Run { config, stdin } => {
            let cfg = match load(&config) {
                Ok(c) => c,
                Err(code) => return code,
            };
            init_logging();
            run(&config, cfg, stdin)
        }
        Command::Test { what } => {
            let (TestWhat::Snmp {
                device,
                config,
                json,
            }
            | TestWhat::Ssh {
                device,
                config,
                json,
            }) = &what;
            let cfg = match load(config) {
                Ok(c) => c,
                Err(code) => return code,
            };
            init_logging();
            return match what {
                TestWhat::Snmp { .. } => test_snmp(&cfg, device, *json),
                TestWhat::Ssh { .. } => test_ssh::run(&cfg, device, *json),
            };
        }
        Command::Buffer { config, action } => {
            let cfg = match load(&config) {
                Ok(c) => c,
                Err(code) => return code,
            };
            buffer_command(&cfg, action)
        }
        Command::Textfsm {
            templates,
            platform,
            command,
        } => textfsm_cmd::run(&templates, &platform, &command),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("logops-agent: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// At most two glibc malloc arenas. glibc gives each thread that allocates an arena of its
/// own (up to 8 per core), and an idle agent has a dozen threads (sled's alone are eight):
/// measured idle, two arenas hold 0.15-0.3 MiB less than one per thread, and a burst of
/// 1M lines used the same CPU (0.45-0.69 against 0.45-0.62 CPU-s, 4 runs each) and no
/// more peak RSS.
fn limit_malloc_arenas() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets an allocator parameter; called before any thread starts.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 2);
    }
}

fn run(path: &Path, config: Config, stdin: bool) -> anyhow::Result<()> {
    limit_malloc_arenas();
    // One runtime thread: the agent's async work (shipping, the local endpoint, ping, SNMP)
    // is I/O bound, and whatever blocks (sled: emits, cuts, flushes; host sampling; file
    // reading has its own thread) runs on the blocking pool. Measured idle: 2-3 threads
    // fewer, about 0.3 MiB less anonymous memory and a fifth less CPU than 2 workers; a
    // 2,000-device SNMP poll (half v3 authPriv) used 10 % of a core either way.
    //
    // Blocking threads are kept for 5 minutes, not tokio's 10 s: periodic work (host samples
    // every 10 s, flushes) would otherwise start a thread nearly every time, and each start
    // costs a stack and the loader's copy of every library's thread-local data, which maps
    // pages of libcrypto and ld.so back in.
    let rt = tokio::runtime::Builder::new_current_thread()
        .max_blocking_threads(8)
        .thread_keep_alive(std::time::Duration::from_secs(300))
        .thread_name("agent")
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    rt.block_on(app::run(path, config, stdin))
}

/// `logops-agent test snmp`: exit 0 when the poll succeeded, 1 when it failed.
fn test_snmp(config: &Config, device: &str, json: bool) -> ExitCode {
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("logops-agent: starting the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let outcome = match rt.block_on(logops_agent::sources::snmp::test_device(config, device)) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("logops-agent: {e:#}");
            return ExitCode::FAILURE;
        }
    };
    let p = &outcome.polled;
    let c = &p.counters;
    println!(
        "# device {} at {} ({}), {}: {} request(s), {} datagram(s) sent, {} timed out, {} answer(s), {:.1} ms, walks with {}",
        outcome.settings.name,
        outcome.settings.address,
        outcome.peer.map_or_else(|| "unresolved".to_owned(), |a| a.to_string()),
        outcome.security,
        c.requests,
        c.attempts,
        c.timeouts,
        c.answers,
        p.seconds * 1000.0,
        if outcome.bulk { "GETBULK" } else { "GETNEXT" },
    );
    for e in &p.events {
        if json {
            println!("{}", e.to_json());
        } else {
            println!("{}", readable(e));
        }
    }
    match &p.error {
        None => ExitCode::SUCCESS,
        Some(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// `name{labels} type value`, or `record{labels} {attrs}`.
pub(crate) fn readable(e: &logops_common::Event<'_>) -> String {
    use logops_common::event::{MetricValue, Payload};
    let labels: Vec<String> = e.labels.iter().map(|(k, v)| format!("{k}={v:?}")).collect();
    let labels = labels.join(",");
    match &e.payload {
        Payload::Metric { name, value } => match value {
            MetricValue::Counter(v) => format!("{name}{{{labels}}} counter {v}"),
            MetricValue::Gauge(v) => format!("{name}{{{labels}}} gauge {v}"),
            MetricValue::Histogram(h) => format!("{name}{{{labels}}} histogram {h:?}"),
        },
        Payload::Record => format!(
            "record{{{labels}}} {}",
            e.attrs.as_ref().map_or("{}", |a| a.as_json())
        ),
        Payload::Log { body, .. } => format!("log{{{labels}}} {body}"),
    }
}

fn ms_ago(ms: Option<u64>) -> String {
    match ms {
        None => "-".into(),
        Some(ms) => {
            let now = jiff::Timestamp::now().as_millisecond().max(0) as u64;
            format!("{:.1}s", now.saturating_sub(ms) as f64 / 1000.0)
        }
    }
}

fn buffer_command(config: &Config, action: BufferAction) -> anyhow::Result<()> {
    match app::open_buffer(config) {
        Ok(b) => local(&b, action),
        Err(e)
            if matches!(
                e.downcast_ref::<BufferError>(),
                Some(BufferError::Locked { .. })
            ) =>
        {
            remote(config, action)
        }
        Err(e) => Err(e),
    }
}

fn print_status(s: &serde_json::Value) {
    let g = |k: &str| s.get(k).cloned().unwrap_or_default();
    println!(
        "queued events:   {} ({} chunks)",
        g("queued_events"),
        g("queued_chunks")
    );
    println!(
        "cut batches:     {} ({} events)",
        g("batches"),
        g("batch_events")
    );
    println!("dead letters:    {}", g("dead_letters"));
    println!(
        "buffer bytes:    {} (sled on disk: {})",
        g("bytes"),
        g("disk_bytes")
    );
    println!(
        "oldest:          {}",
        ms_ago(s.get("oldest_ms").and_then(|v| v.as_u64()))
    );
    println!("next batch seq:  {}", g("next_seq"));
}

fn print_dead(letters: &serde_json::Value) {
    let list = letters.as_array().cloned().unwrap_or_default();
    if list.is_empty() {
        println!("no dead letters");
    }
    for l in list {
        println!(
            "batch {}  {} events  HTTP {}  {} ago\n    {}",
            l["seq"],
            l["events"],
            l["status"],
            ms_ago(l["failed_ms"].as_u64()),
            l["reason"].as_str().unwrap_or_default()
        );
    }
}

fn local(b: &buffer::Buffer, action: BufferAction) -> anyhow::Result<()> {
    match action {
        BufferAction::Status => print_status(&serde_json::to_value(b.stats()?)?),
        BufferAction::DeadLetters => print_dead(&serde_json::to_value(b.dead_letters()?)?),
        BufferAction::Check => print_check(&serde_json::to_value(b.check()?)?)?,
        BufferAction::Replay { seq } => {
            let n = b.replay(seq)?;
            println!("{n} dead letter(s) queued to be sent again at the next start");
        }
    }
    Ok(())
}

fn print_check(r: &serde_json::Value) -> anyhow::Result<()> {
    println!(
        "chunks {}  batches {}  dead letters {}  checkpoints {}",
        r["chunks"], r["batches"], r["dead_letters"], r["checkpoints"]
    );
    let problems = r["problems"].as_array().cloned().unwrap_or_default();
    for p in &problems {
        println!("problem: {}", p.as_str().unwrap_or_default());
    }
    anyhow::ensure!(problems.is_empty(), "{} problem(s) found", problems.len());
    println!("consistent");
    Ok(())
}

fn remote(config: &Config, action: BufferAction) -> anyhow::Result<()> {
    anyhow::ensure!(config.self_metrics.enabled, "the buffer is in use by a running agent and [self_metrics] is disabled: stop the agent to inspect it");
    let base = format!("http://{}", config.self_metrics.listen);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let client = reqwest::Client::new();
        let get = |path: &str| {
            let url = format!("{base}{path}");
            let client = client.clone();
            async move {
                let r = client
                    .get(&url)
                    .send()
                    .await
                    .with_context(|| format!("asking the running agent at {url}"))?;
                anyhow::ensure!(r.status().is_success(), "{url}: HTTP {}", r.status());
                Ok::<serde_json::Value, anyhow::Error>(r.json().await?)
            }
        };
        match action {
            BufferAction::Status => print_status(&get("/buffer/status").await?),
            BufferAction::DeadLetters => print_dead(&get("/buffer/dead-letters").await?),
            BufferAction::Check => print_check(&get("/buffer/check").await?)?,
            BufferAction::Replay { seq } => {
                let url = match seq {
                    Some(s) => format!("{base}/buffer/replay?seq={s}"),
                    None => format!("{base}/buffer/replay"),
                };
                let r: serde_json::Value = client
                    .post(&url)
                    .send()
                    .await
                    .with_context(|| format!("asking the running agent at {url}"))?
                    .json()
                    .await?;
                println!("{} dead letter(s) queued to be sent again", r["replayed"]);
            }
        }
        Ok(())
    })
}
