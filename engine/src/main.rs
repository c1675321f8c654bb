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
        #[arg(long, required_unless_present = "policy_from_redis")]
        policy: Option<PathBuf>,
        /// Take the policy `policyc publish` put in this Redis (and follow
        /// new versions) instead of a file.
        #[arg(long, conflicts_with = "policy")]
        policy_from_redis: Option<String>,
        /// The key that opens published snapshots, from a file...
        #[arg(long, conflicts_with = "policy_key_env")]
        policy_key_file: Option<PathBuf>,
        /// ...or from this environment variable.
        #[arg(long, default_value = "SWITCHYARD_POLICY_KEY")]
        policy_key_env: String,
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

/// Where `serve` takes its policy from.
fn source(
    file: Option<PathBuf>,
    redis: Option<String>,
    key_file: Option<PathBuf>,
    key_env: &str,
) -> Result<engine::reload::PolicySource, String> {
    use engine::reload::PolicySource;
    match (file, redis) {
        (Some(path), _) => Ok(PolicySource::File(path)),
        (None, Some(url)) => {
            let key = match key_file {
                Some(p) => policy::sealed::SealKey::from_file(&p),
                None => policy::sealed::SealKey::from_env(key_env),
            }
            .map_err(|e| e.to_string())?;
            let published = engine::published::Published::new(&url, key)?;
            Ok(PolicySource::Published(Box::new(std::sync::Mutex::new(
                published,
            ))))
        }
        (None, None) => Err("either --policy or --policy-from-redis".into()),
    }
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
            policy_from_redis,
            policy_key_file,
            policy_key_env,
            listen,
            threads,
            grace_seconds,
            ledger,
        } => {
            source(policy, policy_from_redis, policy_key_file, &policy_key_env).and_then(|policy| {
                engine::server::run(engine::server::ServeOptions {
                    policy,
                    listen,
                    threads,
                    grace_seconds,
                    ledger,
                })
                .map_err(|e| e.to_string())
            })
        }
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
