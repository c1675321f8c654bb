//! `mock-provider`: an OpenAI-style provider for local runs, tests and benchmarks.

use clap::Parser;
use tools::mock::{self, schedule, MockConfig};

#[derive(Parser)]
#[command(
    name = "mock-provider",
    version,
    about = "Deterministic OpenAI-style mock provider"
)]
struct Cli {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:4010")]
    listen: String,
    /// Delay before response headers (ms).
    #[arg(long, default_value_t = 0)]
    latency_ms: u64,
    /// Delay between stream chunks (ms).
    #[arg(long, default_value_t = 0)]
    chunk_delay_ms: u64,
    /// Tokens per stream content chunk.
    #[arg(long, default_value_t = 1)]
    tokens_per_chunk: usize,
    /// Emit this many filler tokens instead of echoing the prompt.
    #[arg(long)]
    reply_tokens: Option<usize>,
    /// Require this exact upstream key (otherwise any Bearer key is accepted).
    #[arg(long)]
    expect_key: Option<String>,
    /// How many recent requests /_mock/requests keeps (0 turns recording off).
    #[arg(long, default_value_t = 1000)]
    record: usize,
    /// Scripted faults, e.g. "3x(status=429,retry-after=1);10s(status=503);*(ok)".
    #[arg(long)]
    schedule: Option<String>,
    /// Faults for one upstream key, e.g. "sk-bad=*(status=401)"; repeatable.
    #[arg(long = "key-fault")]
    key_faults: Vec<String>,
    /// Runtime worker threads.
    #[arg(long, default_value_t = 1)]
    threads: usize,
}

fn main() -> std::io::Result<()> {
    let cli = Cli::parse();
    let bad = |e: String| std::io::Error::new(std::io::ErrorKind::InvalidInput, e);
    let schedule = match &cli.schedule {
        Some(text) => schedule::parse(text).map_err(bad)?,
        None => Vec::new(),
    };
    let mut key_faults = Vec::new();
    for spec in &cli.key_faults {
        let (key, steps) = spec
            .split_once('=')
            .ok_or_else(|| bad(format!("{spec:?}: expected KEY=<step>")))?;
        let step = schedule::parse(steps)
            .map_err(bad)?
            .into_iter()
            .next()
            .ok_or_else(|| bad(format!("{spec:?}: no fault")))?;
        key_faults.push((key.to_string(), step.faults));
    }
    let cfg = MockConfig {
        latency_ms: cli.latency_ms,
        chunk_delay_ms: cli.chunk_delay_ms,
        tokens_per_chunk: cli.tokens_per_chunk,
        reply_tokens: cli.reply_tokens,
        expect_key: cli.expect_key,
        record: cli.record,
        schedule,
        key_faults,
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(cli.threads.max(1))
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(&cli.listen).await?;
        eprintln!(
            "mock-provider listening on http://{}/v1",
            listener.local_addr()?
        );
        mock::serve(listener, cfg).await
    })
}
