//! Gemini `streamGenerateContent?alt=sse` → OpenAI chunk stream. Each Gemini
//! chunk is a whole `GenerateContentResponse` holding new parts; function
//! calls arrive whole (one delta with all arguments). Every chunk carries a
//! provisional usage snapshot: only the last one counts, never a sum. The
//! stream has no terminator; a clean end after a `finishReason` is success.

use super::response::{finish_reason, read_parts, usage};
use crate::translate::driver::{data, error_event, ChunkHead, EventHandler, Flow, SseDriven};
use crate::translate::sse::SseEvent;
use serde_json::{json, Value};

pub struct GeminiToOpenAi {
    head: ChunkHead,
    started: bool,
    next_call: usize,
    tool_index: u64,
    usage: Option<Value>,
    finished: bool,
}

impl GeminiToOpenAi {
    pub fn new(include_usage: bool, created: u64) -> SseDriven<Self> {
        SseDriven::new(GeminiToOpenAi {
            head: ChunkHead::new(include_usage, created),
            started: false,
            next_call: 0,
            tool_index: 0,
            usage: None,
            finished: false,
        })
    }

    fn chunk(&self, delta: Value, finish: Option<&str>, out: &mut Vec<u8>) {
        self.head.chunk(&delta, finish, out);
    }

    fn event(&mut self, e: SseEvent, out: &mut Vec<u8>, flow: &mut Flow) {
        let Ok(v) = serde_json::from_str::<Value>(&e.data) else {
            return;
        };
        if let Some(err) = v.get("error") {
            data(&super::response::openai_error(err), out);
            flow.fail();
            return;
        }
        if !self.started {
            self.started = true;
            self.head.id = v
                .get("responseId")
                .and_then(Value::as_str)
                .unwrap_or("gemini")
                .to_string();
            self.head.model = v
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
        let id = self.head.id.clone();
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

impl EventHandler for GeminiToOpenAi {
    fn event(&mut self, e: SseEvent, out: &mut Vec<u8>, flow: &mut Flow) {
        GeminiToOpenAi::event(self, e, out, flow)
    }

    /// Gemini has no terminator: a clean end after a finish reason is success.
    fn end(&mut self, out: &mut Vec<u8>, flow: &mut Flow) {
        flow.finish();
        if !self.finished {
            flow.fail();
            error_event(
                "the provider ended the stream before a finish reason",
                "upstream_stream_interrupted",
                out,
            );
            return;
        }
        let usage = self.usage.clone().unwrap_or_else(|| usage(&Value::Null));
        self.head.usage_chunk(usage, out);
        out.extend_from_slice(b"data: [DONE]\n\n");
    }

    fn usage(&self) -> Option<Value> {
        self.usage.clone()
    }
}

#[cfg(test)]
#[path = "stream/tests.rs"]
mod tests;
