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
    },
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,pingora_core=warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let Command::Serve {
        policy,
        listen,
        threads,
        grace_seconds,
    } = Cli::parse().command;
    let opts = engine::server::ServeOptions {
        policy,
        listen,
        threads,
        grace_seconds,
    };
    match engine::server::run(opts) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("switchyard: {e}");
            ExitCode::FAILURE
        }
    }
}
