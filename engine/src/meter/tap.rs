//! Usage from the provider's own bytes, as they pass.
//!
//! A whole answer carries its usage. A stream carries it in its events
//! (OpenAI: a last chunk, which the gateway always asks for; Anthropic:
//! `message_start` and `message_delta`; Gemini: running totals in every
//! chunk; Cohere: `message-end`). When a stream ends early — the client
//! left or the provider broke — the tokens already streamed still count:
//! the provider's partial totals where it sent them, else one token per
//! content event received (OpenAI-style servers stream one token per
//! event), and the prompt estimated at one token per four request bytes.

use super::usage::{self, Reported, Usage};
use crate::translate::sse::{SseEvent, SseParser};
use policy::ProviderKind;
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::Value;
use std::borrow::Cow;

/// Largest whole answer kept to read its usage.
const MAX_JSON: usize = 16 << 20;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum UsageSource {
    /// The provider's complete report.
    Provider,
    /// The provider's report so far, completed by counting.
    Partial,
    /// Counted and estimated: the provider reported nothing.
    Counted,
    /// No answer was produced (an error): nothing used.
    #[default]
    None,
}

impl UsageSource {
    pub fn as_str(self) -> &'static str {
        match self {
            UsageSource::Provider => "provider",
            UsageSource::Partial => "partial",
            UsageSource::Counted => "counted",
            UsageSource::None => "none",
        }
    }
}

pub struct UsageTap {
    kind: ProviderKind,
    sse: Option<SseParser>,
    events: Vec<SseEvent>,
    json: Vec<u8>,
    bytes: u64,
    reported: Reported,
    content_events: u64,
    prompt_estimate: u64,
}

impl UsageTap {
    /// `is_sse`: the answer is an event stream (else one JSON body).
    pub fn new(kind: ProviderKind, is_sse: bool, prompt_estimate: u64) -> UsageTap {
        UsageTap {
            kind,
            sse: is_sse.then(SseParser::default),
            events: Vec::new(),
            json: Vec::new(),
            bytes: 0,
            reported: Reported::default(),
            content_events: 0,
            prompt_estimate,
        }
    }

    pub fn observe(&mut self, bytes: &[u8]) {
        self.bytes += bytes.len() as u64;
        match &mut self.sse {
            Some(parser) => {
                // A malformed stream is the relay's to report; usage
                // counting just stops learning from it.
                let _ = parser.feed(bytes, &mut self.events);
                self.drain();
            }
            None => {
                if self.json.len() + bytes.len() <= MAX_JSON {
                    self.json.extend_from_slice(bytes);
                }
            }
        }
    }

    fn drain(&mut self) {
        for e in std::mem::take(&mut self.events) {
            self.event(&e);
        }
    }

    fn event(&mut self, e: &SseEvent) {
        match self.kind {
            ProviderKind::OpenAi | ProviderKind::OpenAiCompatible => self.openai_event(&e.data),
            ProviderKind::Anthropic => {
                let Ok(v) = serde_json::from_str::<Value>(&e.data) else {
                    return;
                };
                match v.get("type").and_then(Value::as_str) {
                    Some("message_start") => {
                        if let Some(u) = v.pointer("/message/usage") {
                            self.reported.merge(usage::anthropic(u));
                        }
                    }
                    Some("message_delta") => {
                        if let Some(u) = v.get("usage") {
                            self.reported.merge(usage::anthropic(u));
                        }
                    }
                    Some("content_block_delta") => self.content_events += 1,
                    _ => {}
                }
            }
            ProviderKind::Gemini => {
                let Ok(v) = serde_json::from_str::<Value>(&e.data) else {
                    return;
                };
                if let Some(u) = v.get("usageMetadata") {
                    self.reported.merge(usage::gemini(u));
                }
                if v.pointer("/candidates/0/content/parts")
                    .is_some_and(|p| p.as_array().is_some_and(|a| !a.is_empty()))
                {
                    self.content_events += 1;
                }
            }
            ProviderKind::Cohere => {
                let Ok(v) = serde_json::from_str::<Value>(&e.data) else {
                    return;
                };
                match v.get("type").and_then(Value::as_str) {
                    Some("message-end") => {
                        if let Some(u) = v.pointer("/delta/usage") {
                            self.reported.merge(usage::cohere(u));
                        }
                    }
                    Some("content-delta" | "tool-call-delta" | "tool-plan-delta") => {
                        self.content_events += 1
                    }
                    _ => {}
                }
            }
        }
    }

    /// The hot case (OpenAI streams), read with borrowed, typed fields.
    fn openai_event(&mut self, data: &str) {
        #[derive(Deserialize)]
        struct Chunk<'a> {
            #[serde(borrow, default)]
            choices: Vec<Choice<'a>>,
            #[serde(borrow, default)]
            usage: Option<&'a RawValue>,
        }
        #[derive(Deserialize)]
        struct Choice<'a> {
            #[serde(borrow, default)]
            delta: Option<Delta<'a>>,
        }
        #[derive(Deserialize)]
        struct Delta<'a> {
            #[serde(borrow, default)]
            content: Option<Cow<'a, str>>,
            #[serde(borrow, default)]
            reasoning_content: Option<Cow<'a, str>>,
            #[serde(borrow, default)]
            tool_calls: Option<&'a RawValue>,
        }
        if data.trim() == "[DONE]" {
            return;
        }
        let Ok(chunk) = serde_json::from_str::<Chunk<'_>>(data) else {
            return;
        };
        let content = chunk
            .choices
            .iter()
            .filter_map(|c| c.delta.as_ref())
            .any(|d| {
                d.content.as_deref().is_some_and(|c| !c.is_empty())
                    || d.reasoning_content
                        .as_deref()
                        .is_some_and(|c| !c.is_empty())
                    || d.tool_calls.is_some_and(|t| {
                        t.get().contains("\"arguments\":\"")
                            && !t.get().contains("\"arguments\":\"\"")
                    })
            });
        if content {
            self.content_events += 1;
        }
        if let Some(u) = chunk.usage.filter(|u| u.get() != "null") {
            if let Ok(v) = serde_json::from_str::<Value>(u.get()) {
                self.reported.merge(usage::openai(&v));
            }
        }
    }

    /// Usage once the answer ended; `complete`: it ended normally.
    pub fn finish(&mut self, complete: bool) -> (Usage, UsageSource) {
        if let Some(parser) = &mut self.sse {
            parser.finish(&mut self.events);
            self.drain();
        } else if let Ok(v) = serde_json::from_slice::<Value>(&self.json) {
            self.reported.merge(usage::from_answer(self.kind, &v));
        }
        let r = self.reported;
        let streamed = if self.sse.is_some() {
            self.content_events
        } else {
            // A truncated JSON answer: about four bytes a token.
            self.bytes.div_ceil(4)
        };
        let full = complete && r.input.is_some() && r.output.is_some();
        let output = match r.output {
            Some(o) if full => o,
            Some(o) => o.max(streamed),
            None => streamed,
        };
        let usage = Usage {
            input: r.input.unwrap_or(self.prompt_estimate),
            cached_input: r.cached_input.unwrap_or(0),
            cache_write: r.cache_write.unwrap_or(0),
            output,
            reasoning: r.reasoning.unwrap_or(0),
        };
        let source = if full {
            UsageSource::Provider
        } else if r.is_empty() {
            UsageSource::Counted
        } else {
            UsageSource::Partial
        };
        (usage, source)
    }
}

#[cfg(test)]
mod tests;
