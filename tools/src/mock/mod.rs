//! A fast, honest stand-in for providers: OpenAI-style `POST …/chat/completions`
//! Anthropic `POST …/v1/messages` and Gemini `…/models/<m>:generateContent` /
//! `:streamGenerateContent?alt=sse` and Cohere `POST …/v2/chat` (JSON and SSE
//! each), `GET …/models`, and has
//! inspection endpoints under `/_mock/`. Replies are deterministic: the
//! assistant echoes the last user message (or emits `reply_tokens` filler
//! tokens), one whitespace-separated word per token, so tests can assert on
//! content and usage exactly. Faults come, first match wins, from `x-mock-*`
//! headers (see [`faults`]), from faults bound to the request's upstream
//! key, from the scripted [`schedule`], or from the config's defaults.

pub mod anthropic;
pub mod cohere;
pub mod faults;
pub mod gemini;
pub mod openai;
mod record;
pub mod reply;
pub mod schedule;
mod served;
mod server;

pub use faults::Faults;
pub use record::{RecordedRequest, Recorder};
pub use served::ServedUsage;
pub use server::{serve, MockServer};

/// Defaults for every request; `x-mock-*` headers override them per request.
#[derive(Debug, Clone)]
pub struct MockConfig {
    /// Delay before the response headers.
    pub latency_ms: u64,
    /// Delay between SSE chunks.
    pub chunk_delay_ms: u64,
    /// Tokens (words) per SSE content chunk.
    pub tokens_per_chunk: usize,
    /// Emit this many filler tokens instead of echoing the prompt.
    pub reply_tokens: Option<usize>,
    /// When set, requests must carry `Authorization: Bearer <this>`.
    pub expect_key: Option<String>,
    /// How many recent requests `/_mock/requests` keeps.
    pub record: usize,
    /// Scripted faults, in order (see [`schedule`]).
    pub schedule: Vec<schedule::Step>,
    /// Faults for requests made with a particular upstream key.
    pub key_faults: Vec<(String, Faults)>,
}

impl Default for MockConfig {
    fn default() -> Self {
        MockConfig {
            latency_ms: 0,
            chunk_delay_ms: 0,
            tokens_per_chunk: 1,
            reply_tokens: None,
            expect_key: None,
            record: 1000,
            schedule: Vec::new(),
            key_faults: Vec::new(),
        }
    }
}
