//! `mock-provider`: an OpenAI-style provider for local runs, tests and benchmarks.

use clap::Parser;
use tools::mock::{self, MockConfig};

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
    /// Runtime worker threads.
    #[arg(long, default_value_t = 1)]
    threads: usize,
}

fn main() -> std::io::Result<()> {
    let cli = Cli::parse();
    let cfg = MockConfig {
        latency_ms: cli.latency_ms,
        chunk_delay_ms: cli.chunk_delay_ms,
        tokens_per_chunk: cli.tokens_per_chunk,
        reply_tokens: cli.reply_tokens,
        expect_key: cli.expect_key,
        record: cli.record,
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
