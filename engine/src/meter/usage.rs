//! Token counts by kind, normalised across providers. Totals with subsets:
//! `input` counts every prompt token, cache reads and writes included;
//! `output` counts every generated token, reasoning included.

use policy::ProviderKind;
use serde_json::Value;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    pub input: u64,
    pub cached_input: u64,
    pub cache_write: u64,
    pub output: u64,
    pub reasoning: u64,
}

impl Usage {
    pub fn total(&self) -> u64 {
        self.input.saturating_add(self.output)
    }
}

/// A provider's report, field by field; later reports overwrite earlier
/// ones (streams send running totals).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Reported {
    pub input: Option<u64>,
    pub cached_input: Option<u64>,
    pub cache_write: Option<u64>,
    pub output: Option<u64>,
    pub reasoning: Option<u64>,
}

impl Reported {
    pub fn merge(&mut self, later: Reported) {
        let pick = |a: &mut Option<u64>, b: Option<u64>| {
            if b.is_some() {
                *a = b;
            }
        };
        pick(&mut self.input, later.input);
        pick(&mut self.cached_input, later.cached_input);
        pick(&mut self.cache_write, later.cache_write);
        pick(&mut self.output, later.output);
        pick(&mut self.reasoning, later.reasoning);
    }

    pub fn is_empty(&self) -> bool {
        *self == Reported::default()
    }
}

fn n(v: &Value, pointer: &str) -> Option<u64> {
    v.pointer(pointer).and_then(Value::as_u64)
}

/// OpenAI `usage`: `prompt_tokens` already includes cached tokens.
pub fn openai(u: &Value) -> Reported {
    Reported {
        input: n(u, "/prompt_tokens"),
        cached_input: n(u, "/prompt_tokens_details/cached_tokens"),
        cache_write: None,
        output: n(u, "/completion_tokens"),
        reasoning: n(u, "/completion_tokens_details/reasoning_tokens"),
    }
}

/// Anthropic `usage`: `input_tokens` leaves out cache reads and writes.
pub fn anthropic(u: &Value) -> Reported {
    let base = n(u, "/input_tokens");
    let read = n(u, "/cache_read_input_tokens");
    let write = n(u, "/cache_creation_input_tokens");
    Reported {
        input: base.map(|b| {
            b.saturating_add(read.unwrap_or(0))
                .saturating_add(write.unwrap_or(0))
        }),
        cached_input: read,
        cache_write: write,
        output: n(u, "/output_tokens"),
        reasoning: None,
    }
}

/// Gemini `usageMetadata`: candidates leave out thoughts.
pub fn gemini(u: &Value) -> Reported {
    let thoughts = n(u, "/thoughtsTokenCount");
    Reported {
        input: n(u, "/promptTokenCount"),
        cached_input: n(u, "/cachedContentTokenCount"),
        cache_write: None,
        output: n(u, "/candidatesTokenCount").map(|c| c.saturating_add(thoughts.unwrap_or(0))),
        reasoning: thoughts,
    }
}

/// Cohere `usage`: `billed_units` is what is charged.
pub fn cohere(u: &Value) -> Reported {
    Reported {
        input: n(u, "/billed_units/input_tokens"),
        cached_input: n(u, "/cached_tokens"),
        cache_write: None,
        output: n(u, "/billed_units/output_tokens"),
        reasoning: None,
    }
}

/// The usage report in a whole (non-streamed) answer.
pub fn from_answer(kind: ProviderKind, v: &Value) -> Reported {
    match kind {
        ProviderKind::OpenAi | ProviderKind::OpenAiCompatible => {
            v.get("usage").filter(|u| u.is_object()).map(openai)
        }
        ProviderKind::Anthropic => v.get("usage").map(anthropic),
        ProviderKind::Gemini => {
            // Without alt=sse, Gemini may answer with an array of chunks.
            let last = v.as_array().and_then(|a| a.last()).unwrap_or(v);
            last.get("usageMetadata").map(gemini)
        }
        ProviderKind::Cohere => v.get("usage").map(cohere),
    }
    .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn provider_counts_near_the_limit_saturate_instead_of_wrapping() {
        let max = u64::MAX;
        let u = serde_json::json!({"input_tokens": max, "cache_read_input_tokens": max,
            "cache_creation_input_tokens": 5, "output_tokens": max});
        assert_eq!(anthropic(&u).input, Some(max));
        let g = serde_json::json!({"candidatesTokenCount": max, "thoughtsTokenCount": 7});
        assert_eq!(gemini(&g).output, Some(max));
        let total = Usage {
            input: max,
            output: 1,
            ..Usage::default()
        };
        assert_eq!(total.total(), max);
    }
}
