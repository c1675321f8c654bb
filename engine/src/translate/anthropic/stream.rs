//! Anthropic Messages stream → OpenAI chat.completion.chunk stream, event
//! by event, never buffering the response.
//!
//! - `message_start` → the role chunk (and the input side of usage).
//! - text deltas → `content`; thinking deltas → `reasoning_content`; the
//!   signature (sent once, just before the block ends) → a `thinking_blocks`
//!   delta holding the whole block, so clients can send it back.
//! - `tool_use` blocks → tool call headers then argument fragments, with
//!   tool indexes renumbered from 0 (Anthropic's index counts every block).
//! - `message_delta` → the finish chunk; its usage is cumulative, so it
//!   replaces, never adds to, what came before.
//! - `message_stop` → the usage chunk (when asked for) and `[DONE]`.
//! - `ping` and unknown events are ignored; `error` becomes an OpenAI error
//!   event and ends the stream without `[DONE]`.

use super::response::{finish_reason, openai_error, usage};
use crate::translate::driver::{data, error_event, ChunkHead, EventHandler, Flow, SseDriven};
use crate::translate::sse::SseEvent;
use serde_json::{json, Map, Value};
use std::collections::HashMap;

pub struct AnthropicToOpenAi {
    head: ChunkHead,
    tools: HashMap<u64, u64>,
    thinking: HashMap<u64, String>,
    usage: Map<String, Value>,
    finished: bool,
}

impl AnthropicToOpenAi {
    pub fn new(include_usage: bool, created: u64) -> SseDriven<Self> {
        SseDriven::new(AnthropicToOpenAi {
            head: ChunkHead::new(include_usage, created),
            tools: HashMap::new(),
            thinking: HashMap::new(),
            usage: Map::new(),
            finished: false,
        })
    }

    fn chunk(&self, delta: Value, finish: Option<&str>, out: &mut Vec<u8>) {
        self.head.chunk(&delta, finish, out);
    }

    fn event(&mut self, e: SseEvent, out: &mut Vec<u8>, flow: &mut Flow) {
        let Ok(v) = serde_json::from_str::<Value>(&e.data) else {
            // Unparseable payloads are skipped like unknown events; the
            // stream's own end decides success.
            return;
        };
        let kind = v
            .get("type")
            .and_then(Value::as_str)
            .unwrap_or(e.event.as_str());
        let index = v.get("index").and_then(Value::as_u64).unwrap_or(0);
        match kind {
            "message_start" => {
                let m = &v["message"];
                self.head.id = m
                    .get("id")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string();
                self.head.model = m
                    .get("model")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string();
                if let Some(u) = m.get("usage").and_then(Value::as_object) {
                    self.usage.extend(u.clone());
                }
                self.chunk(json!({"role": "assistant", "content": ""}), None, out);
            }
            "content_block_start" => {
                let b = &v["content_block"];
                match b.get("type").and_then(Value::as_str) {
                    Some("tool_use") => {
                        let n = self.tools.len() as u64;
                        self.tools.insert(index, n);
                        let header = json!({"index": n, "id": b["id"], "type": "function", "function": {"name": b["name"], "arguments": ""}});
                        self.chunk(json!({"tool_calls": [header]}), None, out);
                    }
                    Some("thinking") => {
                        self.thinking.insert(index, String::new());
                    }
                    Some("redacted_thinking") => {
                        self.chunk(json!({"thinking_blocks": [b]}), None, out)
                    }
                    Some("text") => {
                        if let Some(t) = b
                            .get("text")
                            .and_then(Value::as_str)
                            .filter(|t| !t.is_empty())
                        {
                            self.chunk(json!({"content": t}), None, out);
                        }
                    }
                    _ => {}
                }
            }
            "content_block_delta" => {
                let d = &v["delta"];
                match d.get("type").and_then(Value::as_str) {
                    Some("text_delta") => self.chunk(json!({"content": d["text"]}), None, out),
                    Some("input_json_delta") => {
                        if let Some(&n) = self.tools.get(&index) {
                            let fragment =
                                d.get("partial_json").and_then(Value::as_str).unwrap_or("");
                            self.chunk(json!({"tool_calls": [{"index": n, "function": {"arguments": fragment}}]}), None, out);
                        }
                    }
                    Some("thinking_delta") => {
                        let t = d.get("thinking").and_then(Value::as_str).unwrap_or("");
                        if let Some(acc) = self.thinking.get_mut(&index) {
                            acc.push_str(t);
                        }
                        if !t.is_empty() {
                            self.chunk(json!({"reasoning_content": t}), None, out);
                        }
                    }
                    Some("signature_delta") => {
                        let thinking = self.thinking.get(&index).cloned().unwrap_or_default();
                        let block = json!({"type": "thinking", "thinking": thinking, "signature": d["signature"]});
                        self.chunk(json!({"thinking_blocks": [block]}), None, out);
                    }
                    _ => {}
                }
            }
            "message_delta" => {
                if let Some(u) = v.get("usage").and_then(Value::as_object) {
                    // Cumulative: newer fields replace older ones.
                    for (k, val) in u {
                        if !val.is_null() {
                            self.usage.insert(k.clone(), val.clone());
                        }
                    }
                }
                if let Some(stop) = v.pointer("/delta/stop_reason").and_then(Value::as_str) {
                    self.finished = true;
                    self.chunk(json!({}), Some(finish_reason(stop)), out);
                }
            }
            "message_stop" => {
                self.head
                    .usage_chunk(usage(&Value::Object(self.usage.clone())), out);
                out.extend_from_slice(b"data: [DONE]\n\n");
                flow.finish();
            }
            "error" => {
                data(&openai_error(&v["error"]), out);
                flow.fail();
            }
            _ => {}
        }
    }
}

impl EventHandler for AnthropicToOpenAi {
    fn event(&mut self, e: SseEvent, out: &mut Vec<u8>, flow: &mut Flow) {
        AnthropicToOpenAi::event(self, e, out, flow)
    }

    fn end(&mut self, out: &mut Vec<u8>, flow: &mut Flow) {
        // The provider closed the stream without `message_stop`.
        flow.fail();
        let why = if self.finished {
            "the provider ended the stream without message_stop"
        } else {
            "the provider ended the stream early"
        };
        error_event(why, "upstream_stream_interrupted", out);
    }

    fn usage(&self) -> Option<Value> {
        (!self.usage.is_empty()).then(|| usage(&Value::Object(self.usage.clone())))
    }
}

#[cfg(test)]
#[path = "stream/tests.rs"]
mod tests;
