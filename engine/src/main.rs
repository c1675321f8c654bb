//! `switchyard`: the gateway binary.

use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser)]
#[command(name = "switchyard", version, about = "Switchyard AI gateway")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the policy (a YAML file or a compiled snapshot); reloads it on
    /// change and on SIGHUP.
    Serve {
        #[arg(long)]
        policy: PathBuf,
        /// Overrides `listener.address`.
        #[arg(long)]
        listen: Option<String>,
        /// Worker threads (default: the policy's, else one per core).
        #[arg(long)]
        threads: Option<usize>,
        /// Seconds SIGTERM waits for in-flight requests.
        #[arg(long, default_value_t = 10)]
        grace_seconds: u64,
        /// The usage ledger (SQLite file); overrides the policy's `usage.ledger`.
        #[arg(long)]
        ledger: Option<PathBuf>,
    },
    /// Summarise the usage ledger: spend and tokens by key, user, team,
    /// model or task over a time range.
    Usage(engine::usage_cli::UsageArgs),
    /// Classify prompts (lines or JSONL with `text`) and show the label,
    /// score, matching policy route and router decision, and latency.
    Classify(engine::classify_cli::ClassifyArgs),
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,pingora_core=warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let result = match Cli::parse().command {
        Command::Serve {
            policy,
            listen,
            threads,
            grace_seconds,
            ledger,
        } => engine::server::run(engine::server::ServeOptions {
            policy,
            listen,
            threads,
            grace_seconds,
            ledger,
        })
        .map_err(|e| e.to_string()),
        Command::Usage(args) => engine::usage_cli::run(args),
        Command::Classify(args) => engine::classify_cli::run(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("switchyard: {e}");
            ExitCode::FAILURE
        }
    }
}
