//! Per-request fault injection, read from `x-mock-*` request headers:
//!
//! | header | effect |
//! |---|---|
//! | `x-mock-status: 503` | answer with that status and an OpenAI-style error body |
//! | `x-mock-retry-after: 2` | add `retry-after` to an injected error |
//! | `x-mock-latency-ms: 200` | wait before sending headers |
//! | `x-mock-chunk-delay-ms: 50` | wait between stream chunks |
//! | `x-mock-drop: before-headers` | close the connection without answering |
//! | `x-mock-drop-after-chunks: 3` | reset the stream after that many chunks |
//! | `x-mock-reply-tokens: 100` | emit that many filler tokens |
//! | `x-mock-tokens-per-chunk: 4` | tokens per content chunk |
//! | `x-mock-code: insufficient_quota` | the error code of an injected status |

use super::MockConfig;
use http::HeaderMap;

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Faults {
    pub status: Option<u16>,
    pub retry_after: Option<String>,
    pub latency_ms: u64,
    pub chunk_delay_ms: u64,
    pub drop_before_headers: bool,
    pub drop_after_chunks: Option<usize>,
    pub reply_tokens: Option<usize>,
    pub tokens_per_chunk: usize,
    /// With `status`: the error `code` to report (e.g. `insufficient_quota`).
    pub error_code: Option<String>,
}

impl Faults {
    /// Whether any `x-mock-*` header is present.
    pub fn in_headers(headers: &HeaderMap) -> bool {
        headers.keys().any(|k| k.as_str().starts_with("x-mock-"))
    }

    pub fn from_request(headers: &HeaderMap, cfg: &MockConfig) -> Faults {
        let get = |name: &str| {
            headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::trim)
        };
        let num = |name: &str| get(name).and_then(|v| v.parse::<u64>().ok());
        Faults {
            status: get("x-mock-status").and_then(|v| v.parse().ok()),
            retry_after: get("x-mock-retry-after").map(str::to_string),
            latency_ms: num("x-mock-latency-ms").unwrap_or(cfg.latency_ms),
            chunk_delay_ms: num("x-mock-chunk-delay-ms").unwrap_or(cfg.chunk_delay_ms),
            drop_before_headers: get("x-mock-drop") == Some("before-headers"),
            drop_after_chunks: num("x-mock-drop-after-chunks").map(|n| n as usize),
            reply_tokens: num("x-mock-reply-tokens")
                .map(|n| n as usize)
                .or(cfg.reply_tokens),
            tokens_per_chunk: num("x-mock-tokens-per-chunk")
                .map(|n| n as usize)
                .unwrap_or(cfg.tokens_per_chunk)
                .max(1),
            error_code: get("x-mock-code").map(str::to_string),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_override_config() {
        let mut h = HeaderMap::new();
        h.insert("x-mock-status", "429".parse().unwrap());
        h.insert("x-mock-drop-after-chunks", "3".parse().unwrap());
        h.insert("x-mock-tokens-per-chunk", "0".parse().unwrap());
        let cfg = MockConfig {
            latency_ms: 7,
            ..MockConfig::default()
        };
        let f = Faults::from_request(&h, &cfg);
        assert_eq!(f.status, Some(429));
        assert_eq!(f.drop_after_chunks, Some(3));
        assert_eq!(f.latency_ms, 7);
        assert_eq!(f.tokens_per_chunk, 1, "clamped to at least one");
        assert!(!f.drop_before_headers);
    }
}
