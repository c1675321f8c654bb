//! Anthropic Messages as the *client's* format: requests become the OpenAI
//! hub format (then whatever the target speaks); OpenAI-shaped answers,
//! streams and errors come back as Anthropic's.

use crate::error::GatewayError;
use crate::translate::driver::{EventHandler, Flow, SseDriven};
use crate::translate::openai::ChatRequest;
use crate::translate::sse::SseEvent;
use serde_json::{json, Map, Value};

fn bad(msg: String) -> GatewayError {
    GatewayError::BadRequest(msg)
}

/// What the Messages API itself requires of every request.
pub fn validate(req: &ChatRequest<'_>) -> Result<(), GatewayError> {
    match req.max_tokens {
        Some(n) if n > 0 => Ok(()),
        _ => Err(bad("max_tokens: Field required (a positive integer)".into())),
    }
}

/// Anthropic request → OpenAI Chat request (the hub).
pub fn to_openai_request(req: &Map<String, Value>) -> Result<Map<String, Value>, GatewayError> {
    let mut out = Map::new();
    out.insert(
        "model".into(),
        req.get("model").cloned().unwrap_or(Value::Null),
    );
    let mut messages = Vec::new();
    match req.get("system") {
        Some(Value::String(s)) if !s.is_empty() => {
            messages.push(json!({"role": "system", "content": s}))
        }
        Some(Value::Array(blocks)) => {
            let text: Vec<Value> = blocks
                .iter()
                .filter(|b| b["type"] == "text")
                .map(|b| json!({"type": "text", "text": b["text"]}))
                .collect();
            if !text.is_empty() {
                messages.push(json!({"role": "system", "content": text}));
            }
        }
        _ => {}
    }
    for (i, m) in req
        .get("messages")
        .and_then(Value::as_array)
        .ok_or_else(|| bad("`messages` must be an array".into()))?
        .iter()
        .enumerate()
    {
        let role = m
            .get("role")
            .and_then(Value::as_str)
            .ok_or_else(|| bad(format!("messages.{i}.role is required")))?;
        let blocks: Vec<Value> = match m.get("content") {
            Some(Value::String(s)) => vec![json!({"type": "text", "text": s})],
            Some(Value::Array(b)) => b.clone(),
            _ => {
                return Err(bad(format!(
                    "messages.{i}.content must be a string or an array of blocks"
                )))
            }
        };
        match role {
            "user" => user_blocks(&blocks, i, &mut messages)?,
            "assistant" => messages.push(assistant_blocks(&blocks, i)?),
            other => {
                return Err(bad(format!(
                    "messages.{i}.role: unexpected role `{other}` (use `user` or `assistant`)"
                )))
            }
        }
    }
    out.insert("messages".into(), Value::Array(messages));
    let max = req
        .get("max_tokens")
        .and_then(Value::as_u64)
        .ok_or_else(|| bad("max_tokens: Field required".into()))?;
    out.insert("max_tokens".into(), json!(max));
    for key in ["temperature", "top_p"] {
        if let Some(v) = req.get(key).filter(|v| !v.is_null()) {
            out.insert(key.into(), v.clone());
        }
    }
    if let Some(stop) = req
        .get("stop_sequences")
        .and_then(Value::as_array)
        .filter(|s| !s.is_empty())
    {
        out.insert("stop".into(), Value::Array(stop.clone()));
    }
    if req.get("stream").and_then(Value::as_bool) == Some(true) {
        out.insert("stream".into(), json!(true));
        // Anthropic streams end with usage; ask the hub for it.
        out.insert("stream_options".into(), json!({"include_usage": true}));
    }
    if let Some(user) = req
        .get("metadata")
        .and_then(|m| m.get("user_id"))
        .and_then(Value::as_str)
    {
        out.insert("user".into(), json!(user));
    }
    if let Some(budget) = req
        .get("thinking")
        .filter(|t| t["type"] == "enabled")
        .and_then(|t| t["budget_tokens"].as_u64())
    {
        let effort = match budget {
            0..=2048 => "low",
            2049..=8192 => "medium",
            _ => "high",
        };
        out.insert("reasoning_effort".into(), json!(effort));
    }
    if let Some(schema) = req
        .get("output_config")
        .and_then(|c| c.get("format"))
        .filter(|f| f["type"] == "json_schema")
        .and_then(|f| f.get("schema"))
    {
        out.insert(
            "response_format".into(),
            json!({"type": "json_schema", "json_schema": {"name": "output", "schema": schema}}),
        );
    }
    if let Some(tools) = req
        .get("tools")
        .and_then(Value::as_array)
        .filter(|t| !t.is_empty())
    {
        let mut list = Vec::new();
        for (i, t) in tools.iter().enumerate() {
            if t.get("type").is_some_and(|ty| ty != "custom") && t.get("input_schema").is_none() {
                return Err(GatewayError::UnsupportedParameter {
                    param: "tools".into(),
                    kind: "openai",
                    reason: format!(
                        "tools.{i}: Anthropic server tools cannot be sent to this provider"
                    ),
                });
            }
            list.push(json!({"type": "function", "function": {"name": t["name"], "description": t.get("description").cloned().unwrap_or(json!("")), "parameters": t.get("input_schema").cloned().unwrap_or(json!({"type": "object"}))}}));
        }
        out.insert("tools".into(), Value::Array(list));
    }
    if let Some(choice) = req.get("tool_choice").filter(|c| !c.is_null()) {
        let mapped = match choice.get("type").and_then(Value::as_str) {
            Some("auto") => json!("auto"),
            Some("any") => json!("required"),
            Some("none") => json!("none"),
            Some("tool") => json!({"type": "function", "function": {"name": choice["name"]}}),
            _ => {
                return Err(bad(
                    "tool_choice.type: expected auto, any, tool or none".into()
                ))
            }
        };
        out.insert("tool_choice".into(), mapped);
        if choice
            .get("disable_parallel_tool_use")
            .and_then(Value::as_bool)
            == Some(true)
        {
            out.insert("parallel_tool_calls".into(), json!(false));
        }
    }
    Ok(out)
}

/// User blocks: tool results become `tool` messages (first, in order),
/// everything else one user message.
fn user_blocks(blocks: &[Value], i: usize, messages: &mut Vec<Value>) -> Result<(), GatewayError> {
    let mut parts = Vec::new();
    for (j, b) in blocks.iter().enumerate() {
        match b.get("type").and_then(Value::as_str) {
            Some("text") => parts.push(json!({"type": "text", "text": b["text"]})),
            Some("image") | Some("document") => {
                let src = &b["source"];
                let url = match src.get("type").and_then(Value::as_str) {
                    Some("base64") => format!(
                        "data:{};base64,{}",
                        src["media_type"]
                            .as_str()
                            .unwrap_or("application/octet-stream"),
                        src["data"].as_str().unwrap_or("")
                    ),
                    Some("url") => src["url"].as_str().unwrap_or("").to_string(),
                    _ => {
                        return Err(bad(format!(
                            "messages.{i}.content.{j}.source: expected base64 or url"
                        )))
                    }
                };
                if b["type"] == "image" {
                    parts.push(json!({"type": "image_url", "image_url": {"url": url}}));
                } else {
                    parts.push(json!({"type": "file", "file": {"file_data": url}}));
                }
            }
            Some("tool_result") => {
                let content = match &b["content"] {
                    Value::String(s) => json!(s),
                    Value::Array(items) => json!(items
                        .iter()
                        .filter_map(|x| x.get("text").and_then(Value::as_str))
                        .collect::<Vec<_>>()
                        .join("\n")),
                    _ => json!(""),
                };
                messages.push(
                    json!({"role": "tool", "tool_call_id": b["tool_use_id"], "content": content}),
                );
            }
            other => {
                return Err(bad(format!(
                    "messages.{i}.content.{j}: blocks of type {:?} cannot be sent to this provider",
                    other.unwrap_or("?")
                )))
            }
        }
    }
    if !parts.is_empty() {
        messages.push(json!({"role": "user", "content": parts}));
    }
    Ok(())
}

fn assistant_blocks(blocks: &[Value], i: usize) -> Result<Value, GatewayError> {
    let mut text = String::new();
    let mut calls = Vec::new();
    let mut thinking = Vec::new();
    for (j, b) in blocks.iter().enumerate() {
        match b.get("type").and_then(Value::as_str) {
            Some("text") => text.push_str(b["text"].as_str().unwrap_or("")),
            Some("tool_use") => calls.push(json!({"id": b["id"], "type": "function", "function": {"name": b["name"], "arguments": b.get("input").unwrap_or(&json!({})).to_string()}})),
            Some("thinking") | Some("redacted_thinking") => thinking.push(b.clone()),
            other => return Err(bad(format!("messages.{i}.content.{j}: assistant blocks of type {:?} cannot be sent to this provider", other.unwrap_or("?")))),
        }
    }
    let mut m = json!({"role": "assistant", "content": if text.is_empty() { Value::Null } else { json!(text) }});
    if !calls.is_empty() {
        m["tool_calls"] = Value::Array(calls);
    }
    if !thinking.is_empty() {
        m["thinking_blocks"] = Value::Array(thinking);
    }
    Ok(m)
}

fn stop_reason(finish: &str) -> &'static str {
    match finish {
        "length" => "max_tokens",
        "tool_calls" | "function_call" => "tool_use",
        "content_filter" => "refusal",
        _ => "end_turn",
    }
}

fn n(v: &Value, p: &str) -> u64 {
    v.pointer(p).and_then(Value::as_u64).unwrap_or(0)
}

/// OpenAI usage → Anthropic usage (input excludes cache reads and writes).
pub fn usage(u: &Value) -> Value {
    let cached = n(u, "/prompt_tokens_details/cached_tokens");
    let written = n(u, "/prompt_tokens_details/cache_write_tokens");
    json!({
        "input_tokens": n(u, "/prompt_tokens").saturating_sub(cached + written),
        "cache_creation_input_tokens": written,
        "cache_read_input_tokens": cached,
        "output_tokens": n(u, "/completion_tokens"),
    })
}

/// OpenAI chat.completion → Anthropic message.
pub fn to_anthropic_message(v: &Value) -> Value {
    let choice = &v["choices"][0];
    let m = &choice["message"];
    let mut content = Vec::new();
    // Only thinking with a signature can go back to Anthropic clients.
    for b in m
        .get("thinking_blocks")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        content.push(b.clone());
    }
    if let Some(t) = m
        .get("content")
        .and_then(Value::as_str)
        .filter(|t| !t.is_empty())
    {
        content.push(json!({"type": "text", "text": t}));
    }
    for c in m
        .get("tool_calls")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let input: Value = c
            .pointer("/function/arguments")
            .and_then(Value::as_str)
            .and_then(|a| serde_json::from_str(a).ok())
            .unwrap_or_else(|| json!({}));
        content.push(json!({"type": "tool_use", "id": c["id"], "name": c["function"]["name"], "input": input}));
    }
    json!({
        "id": v.get("id").cloned().unwrap_or(json!("msg_gateway")),
        "type": "message",
        "role": "assistant",
        "model": v.get("model").cloned().unwrap_or(Value::Null),
        "content": content,
        "stop_reason": stop_reason(choice["finish_reason"].as_str().unwrap_or("stop")),
        "stop_sequence": null,
        "usage": usage(v.get("usage").unwrap_or(&Value::Null)),
    })
}

/// The Anthropic error type for an HTTP status.
pub fn error_type(status: u16) -> &'static str {
    match status {
        400 | 422 => "invalid_request_error",
        401 => "authentication_error",
        403 => "permission_error",
        404 => "not_found_error",
        413 => "request_too_large",
        429 => "rate_limit_error",
        503 | 529 => "overloaded_error",
        _ => "api_error",
    }
}

/// An OpenAI-shaped error body → Anthropic's, keeping the message.
pub fn error_body(status: u16, openai_body: &[u8]) -> Vec<u8> {
    let v: Value = serde_json::from_slice(openai_body).unwrap_or(Value::Null);
    let message = v
        .pointer("/error/message")
        .and_then(Value::as_str)
        .map(str::to_string)
        .unwrap_or_else(|| String::from_utf8_lossy(openai_body).into_owned());
    json!({"type": "error", "error": {"type": error_type(status), "message": message}})
        .to_string()
        .into_bytes()
}

fn event(name: &str, data: Value, out: &mut Vec<u8>) {
    out.extend_from_slice(format!("event: {name}\ndata: {data}\n\n").as_bytes());
}

#[derive(PartialEq)]
enum Block {
    None,
    Text,
    Thinking,
    Tool(u64),
}

/// OpenAI chunk stream → Anthropic event stream.
pub struct OpenAiToAnthropic {
    started: bool,
    index: i64,
    open: Block,
    stop: &'static str,
    usage: Option<Value>,
}

impl OpenAiToAnthropic {
    pub fn new() -> SseDriven<Self> {
        SseDriven::new(OpenAiToAnthropic {
            started: false,
            index: -1,
            open: Block::None,
            stop: "end_turn",
            usage: None,
        })
    }

    fn start_message(&mut self, v: &Value, out: &mut Vec<u8>) {
        if self.started {
            return;
        }
        self.started = true;
        let message = json!({
            "id": v.get("id").cloned().unwrap_or(json!("msg_gateway")), "type": "message", "role": "assistant",
            "model": v.get("model").cloned().unwrap_or(Value::Null), "content": [], "stop_reason": null, "stop_sequence": null,
            "usage": {"input_tokens": 0, "output_tokens": 0},
        });
        event(
            "message_start",
            json!({"type": "message_start", "message": message}),
            out,
        );
    }

    fn close(&mut self, out: &mut Vec<u8>) {
        if self.open != Block::None {
            event(
                "content_block_stop",
                json!({"type": "content_block_stop", "index": self.index}),
                out,
            );
            self.open = Block::None;
        }
    }

    fn open(&mut self, block: Block, start: Value, out: &mut Vec<u8>) {
        self.close(out);
        self.index += 1;
        self.open = block;
        event(
            "content_block_start",
            json!({"type": "content_block_start", "index": self.index, "content_block": start}),
            out,
        );
    }

    fn delta(&self, delta: Value, out: &mut Vec<u8>) {
        event(
            "content_block_delta",
            json!({"type": "content_block_delta", "index": self.index, "delta": delta}),
            out,
        );
    }

    fn finish_message(&mut self, out: &mut Vec<u8>, flow: &mut Flow) {
        self.close(out);
        let u = usage(self.usage.as_ref().unwrap_or(&Value::Null));
        event(
            "message_delta",
            json!({"type": "message_delta", "delta": {"stop_reason": self.stop, "stop_sequence": null}, "usage": u}),
            out,
        );
        event("message_stop", json!({"type": "message_stop"}), out);
        flow.finish();
    }
}

impl EventHandler for OpenAiToAnthropic {
    fn event(&mut self, e: SseEvent, out: &mut Vec<u8>, flow: &mut Flow) {
        if e.data.trim() == "[DONE]" {
            self.start_message(&Value::Null, out);
            self.finish_message(out, flow);
            return;
        }
        let Ok(v) = serde_json::from_str::<Value>(&e.data) else {
            return;
        };
        if let Some(err) = v.get("error") {
            let kind = err
                .get("type")
                .and_then(Value::as_str)
                .filter(|t| t.ends_with("_error"))
                .unwrap_or("api_error");
            event(
                "error",
                json!({"type": "error", "error": {"type": kind, "message": err.get("message").cloned().unwrap_or(json!("the provider failed"))}}),
                out,
            );
            flow.fail();
            return;
        }
        self.start_message(&v, out);
        if let Some(u) = v.get("usage").filter(|u| !u.is_null()) {
            self.usage = Some(u.clone());
        }
        let Some(choice) = v.pointer("/choices/0") else {
            return;
        };
        let d = &choice["delta"];
        if let Some(r) = d
            .get("reasoning_content")
            .and_then(Value::as_str)
            .filter(|r| !r.is_empty())
        {
            if self.open != Block::Thinking {
                self.open(
                    Block::Thinking,
                    json!({"type": "thinking", "thinking": "", "signature": ""}),
                    out,
                );
            }
            self.delta(json!({"type": "thinking_delta", "thinking": r}), out);
        }
        for b in d
            .get("thinking_blocks")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            if let Some(sig) = b.get("signature").and_then(Value::as_str) {
                if self.open != Block::Thinking {
                    self.open(
                        Block::Thinking,
                        json!({"type": "thinking", "thinking": b["thinking"], "signature": ""}),
                        out,
                    );
                }
                self.delta(json!({"type": "signature_delta", "signature": sig}), out);
                self.close(out);
            }
        }
        if let Some(t) = d
            .get("content")
            .and_then(Value::as_str)
            .filter(|t| !t.is_empty())
        {
            if self.open != Block::Text {
                self.open(Block::Text, json!({"type": "text", "text": ""}), out);
            }
            self.delta(json!({"type": "text_delta", "text": t}), out);
        }
        for c in d
            .get("tool_calls")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let i = c.get("index").and_then(Value::as_u64).unwrap_or(0);
            if c.get("id").is_some_and(|id| !id.is_null()) || self.open != Block::Tool(i) {
                let start = json!({"type": "tool_use", "id": c.get("id").cloned().unwrap_or(json!(format!("toolu_gateway_{i}"))), "name": c.pointer("/function/name").cloned().unwrap_or(json!("")), "input": {}});
                self.open(Block::Tool(i), start, out);
            }
            if let Some(a) = c
                .pointer("/function/arguments")
                .and_then(Value::as_str)
                .filter(|a| !a.is_empty())
            {
                self.delta(json!({"type": "input_json_delta", "partial_json": a}), out);
            }
        }
        if let Some(f) = choice.get("finish_reason").and_then(Value::as_str) {
            self.stop = stop_reason(f);
            self.close(out);
        }
    }

    fn end(&mut self, out: &mut Vec<u8>, flow: &mut Flow) {
        // An OpenAI-style stream that ended without [DONE] but finished.
        if self.started {
            self.finish_message(out, flow);
        } else {
            flow.fail();
            event(
                "error",
                json!({"type": "error", "error": {"type": "api_error", "message": "the provider ended the stream early"}}),
                out,
            );
        }
    }

    fn usage(&self) -> Option<Value> {
        self.usage.clone()
    }
}

#[cfg(test)]
#[path = "inbound/tests.rs"]
mod tests;
