//! `logops-ingest`: run the service, make API keys, check a configuration, query the store.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand};
use logops_ingest::config::{is_tenant_name, Config, LogFormat};
use logops_ingest::{auth, client, server};

/// The thin ingest endpoint for LogOps agents.
#[derive(Debug, Parser)]
#[command(version, about, args_conflicts_with_subcommands = true)]
struct Cli {
    #[command(flatten)]
    run: RunArgs,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, clap::Args)]
struct RunArgs {
    /// Configuration file.
    #[arg(long, short = 'c', default_value = "/etc/logops/ingest.toml")]
    config: PathBuf,
    /// Listen address (overrides `listen`).
    #[arg(long)]
    listen: Option<SocketAddr>,
    /// Data directory (overrides `data_dir`).
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Log format (overrides `log_format`).
    #[arg(long, value_enum)]
    log_format: Option<LogFormat>,
    /// How long in-flight requests may take to finish on SIGTERM.
    #[arg(long, default_value = "30s")]
    shutdown_grace: logops_common::units::HumanDuration,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the service (the default).
    Run(RunArgs),
    /// Print a new random API key once, and the config line that stores only its SHA-256.
    Keygen {
        /// The tenant the key is for.
        #[arg(long)]
        tenant: String,
        /// A key that may only query.
        #[arg(long)]
        read_only: bool,
    },
    /// Check a configuration file and exit (0 = fine).
    CheckConfig {
        /// Configuration file.
        #[arg(long, short = 'c', default_value = "/etc/logops/ingest.toml")]
        config: PathBuf,
    },
    /// Read logs, metrics or records from a running ingest.
    Query(Box<client::QueryArgs>),
}

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    match format {
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .init(),
        LogFormat::Text => builder.init(),
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        None => run(cli.run),
        Some(Command::Run(args)) => run(args),
        Some(Command::Keygen { tenant, read_only }) => keygen(&tenant, read_only),
        Some(Command::CheckConfig { config }) => Config::load(&config)
            .map(|_| println!("{}: ok", config.display()))
            .map_err(anyhow::Error::from),
        Some(Command::Query(args)) => tokio::runtime::Runtime::new()
            .map_err(anyhow::Error::from)
            .and_then(|rt| rt.block_on(client::run(*args))),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("logops-ingest: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn keygen(tenant: &str, read_only: bool) -> anyhow::Result<()> {
    if !is_tenant_name(tenant) {
        anyhow::bail!("`{tenant}` is not a tenant name: use 1 to 64 of a-z, 0-9, _ and -");
    }
    let key = auth::generate_key();
    let hash = logops_common::sign::api_key_sha256(&key);
    let field = if read_only {
        "read_key_sha256"
    } else {
        "api_key_sha256"
    };
    println!(
        "API key (shown once; give it to the agent, e.g. in /etc/logops/api_key):\n\n    {key}\n"
    );
    println!("Add its hash to the ingest configuration:\n\n[[tenant]]\nname = \"{tenant}\"\n{field} = [\"{hash}\"]");
    Ok(())
}

fn run(args: RunArgs) -> anyhow::Result<()> {
    let mut config = Config::load(&args.config)?;
    if let Some(l) = args.listen {
        config.listen = l;
    }
    if let Some(d) = args.data_dir {
        config.data_dir = d;
    }
    init_logging(args.log_format.unwrap_or(config.log_format));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("ingest-http")
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(async move {
        let running = server::start(config).await?;
        let signal = wait_for_signal().await;
        tracing::info!(signal, "stop requested");
        running.shutdown(args.shutdown_grace.get()).await
    })?;
    // Blocking tasks (a query streaming to a slow client) do not hold the exit.
    runtime.shutdown_timeout(Duration::from_secs(1));
    Ok(())
}

async fn wait_for_signal() -> &'static str {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).expect("installing the SIGTERM handler");
    let mut int = signal(SignalKind::interrupt()).expect("installing the SIGINT handler");
    tokio::select! {
        _ = term.recv() => "SIGTERM",
        _ = int.recv() => "SIGINT",
    }
}
