//! Gemini `streamGenerateContent?alt=sse` → OpenAI chunk stream. Each Gemini
//! chunk is a whole `GenerateContentResponse` holding new parts; function
//! calls arrive whole (one delta with all arguments). Every chunk carries a
//! provisional usage snapshot: only the last one counts, never a sum. The
//! stream has no terminator; a clean end after a `finishReason` is success.

use super::response::{finish_reason, read_parts, usage};
use crate::translate::sse::{SseEvent, SseParser};
use crate::translate::StreamTranslator;
use serde_json::{json, Value};

pub struct GeminiToOpenAi {
    parser: SseParser,
    include_usage: bool,
    created: u64,
    id: String,
    model: String,
    started: bool,
    next_call: usize,
    tool_index: u64,
    usage: Option<Value>,
    finished: bool,
    failed: bool,
    done: bool,
}

impl GeminiToOpenAi {
    pub fn new(include_usage: bool, created: u64) -> Self {
        GeminiToOpenAi {
            parser: SseParser::default(),
            include_usage,
            created,
            id: String::new(),
            model: String::new(),
            started: false,
            next_call: 0,
            tool_index: 0,
            usage: None,
            finished: false,
            failed: false,
            done: false,
        }
    }

    fn chunk(&self, delta: Value, finish: Option<&str>, out: &mut Vec<u8>) {
        let mut c = json!({
            "id": self.id, "object": "chat.completion.chunk", "created": self.created, "model": self.model,
            "choices": [{"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish}],
        });
        if self.include_usage {
            c["usage"] = Value::Null;
        }
        data(&c, out);
    }

    fn event(&mut self, e: SseEvent, out: &mut Vec<u8>) {
        let Ok(v) = serde_json::from_str::<Value>(&e.data) else {
            return;
        };
        if let Some(err) = v.get("error") {
            data(&super::response::openai_error(err), out);
            self.failed = true;
            self.done = true;
            return;
        }
        if !self.started {
            self.started = true;
            self.id = v
                .get("responseId")
                .and_then(Value::as_str)
                .unwrap_or("gemini")
                .to_string();
            self.model = v
                .get("modelVersion")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string();
            self.chunk(json!({"role": "assistant", "content": ""}), None, out);
        }
        if let Some(u) = v.get("usageMetadata") {
            self.usage = Some(usage(u));
        }
        let Some(c) = v.pointer("/candidates/0") else {
            return;
        };
        let id = self.id.clone();
        let parts = read_parts(c, &id, &mut self.next_call);
        if !parts.reasoning.is_empty() {
            self.chunk(json!({"reasoning_content": parts.reasoning}), None, out);
        }
        if !parts.text.is_empty() {
            self.chunk(json!({"content": parts.text}), None, out);
        }
        for (call_id, name, args) in &parts.calls {
            let call = json!({"index": self.tool_index, "id": call_id, "type": "function", "function": {"name": name, "arguments": args}});
            self.tool_index += 1;
            self.chunk(json!({"tool_calls": [call]}), None, out);
        }
        if let Some(reason) = c.get("finishReason").and_then(Value::as_str) {
            self.finished = true;
            self.chunk(
                json!({}),
                Some(finish_reason(reason, self.tool_index > 0)),
                out,
            );
        }
    }
}

fn data(v: &Value, out: &mut Vec<u8>) {
    out.extend_from_slice(b"data: ");
    out.extend_from_slice(v.to_string().as_bytes());
    out.extend_from_slice(b"\n\n");
}

impl StreamTranslator for GeminiToOpenAi {
    fn push(&mut self, bytes: &[u8]) -> Vec<u8> {
        let mut events = Vec::new();
        let mut out = Vec::new();
        if let Err(e) = self.parser.feed(bytes, &mut events) {
            self.failed = true;
            self.done = true;
            data(
                &json!({"error": {"message": e, "type": "upstream_error", "param": null, "code": "upstream_invalid_response"}}),
                &mut out,
            );
            return out;
        }
        for e in events {
            if self.done {
                break;
            }
            self.event(e, &mut out);
        }
        out
    }

    fn finish(&mut self) -> Vec<u8> {
        let mut events = Vec::new();
        self.parser.finish(&mut events);
        let mut out = Vec::new();
        for e in events {
            if !self.done {
                self.event(e, &mut out);
            }
        }
        if self.done {
            return out;
        }
        self.done = true;
        if !self.finished {
            self.failed = true;
            data(
                &json!({"error": {"message": "the provider ended the stream before a finish reason", "type": "upstream_error", "param": null, "code": "upstream_stream_interrupted"}}),
                &mut out,
            );
            return out;
        }
        if self.include_usage {
            let c = json!({
                "id": self.id, "object": "chat.completion.chunk", "created": self.created, "model": self.model,
                "choices": [], "usage": self.usage.clone().unwrap_or_else(|| usage(&Value::Null)),
            });
            data(&c, &mut out);
        }
        out.extend_from_slice(b"data: [DONE]\n\n");
        out
    }

    fn failed(&self) -> bool {
        self.failed
    }

    fn usage(&self) -> Option<Value> {
        self.usage.clone()
    }
}

#[cfg(test)]
#[path = "stream/tests.rs"]
mod tests;
