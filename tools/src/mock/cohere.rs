//! Cohere v2 chat shapes, as recorded in the conformance corpus
//! (`cohere/response_chat_v2.json`, `cohere/stream_text.jsonl`,
//! `cohere/response_tool_call.json`): pure functions.

use super::openai::ApiError;
use serde_json::{json, Value};

pub fn error(status: u16, message: &str) -> ApiError {
    ApiError {
        status,
        body: json!({"id": "mock-error", "message": message}),
    }
}

pub struct Reply {
    pub id: String,
    pub tokens: Vec<String>,
    pub tools: Vec<String>,
    pub input_tokens: u64,
    pub stream: bool,
}

fn text_of(content: &Value) -> String {
    super::reply::content_words(content).join(" ")
}

pub fn plan(body: &[u8], id: String) -> Result<Reply, ApiError> {
    let req: Value = serde_json::from_slice(body)
        .map_err(|_| error(400, "invalid request: body is not JSON"))?;
    req.get("model")
        .and_then(Value::as_str)
        .ok_or_else(|| error(400, "invalid request: model must be specified"))?;
    let messages = req
        .get("messages")
        .and_then(Value::as_array)
        .filter(|m| !m.is_empty())
        .ok_or_else(|| error(400, "invalid request: messages must not be empty"))?;
    let input_tokens = messages
        .iter()
        .map(|m| 4 + text_of(&m["content"]).split_whitespace().count() as u64)
        .sum();
    let last_user = messages
        .iter()
        .rev()
        .find(|m| m["role"] == "user")
        .map(|m| text_of(&m["content"]))
        .unwrap_or_default();
    let json_mode =
        req.pointer("/response_format/type").and_then(Value::as_str) == Some("json_object");
    let mut tokens = super::reply::tokens(
        last_user.split_whitespace().map(str::to_string).collect(),
        json_mode,
    );
    super::reply::space(&mut tokens);
    let offered: Vec<&str> = req
        .get("tools")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|t| t.pointer("/function/name").and_then(Value::as_str))
        .collect();
    let tools = if req.get("tool_choice").and_then(Value::as_str) == Some("REQUIRED") {
        super::reply::forced(None, &offered)
    } else {
        Vec::new()
    };
    Ok(Reply {
        id,
        tokens,
        tools,
        input_tokens,
        stream: req.get("stream").and_then(Value::as_bool).unwrap_or(false),
    })
}

fn usage(r: &Reply) -> Value {
    let out = r.tokens.len() as u64;
    json!({"billed_units": {"input_tokens": r.input_tokens, "output_tokens": out}, "tokens": {"input_tokens": r.input_tokens + 10, "output_tokens": out}})
}

fn finish(r: &Reply) -> &'static str {
    if !r.tools.is_empty() {
        "TOOL_CALL"
    } else {
        "COMPLETE"
    }
}

pub fn response_body(r: &Reply) -> Vec<u8> {
    let mut message =
        json!({"role": "assistant", "content": [{"type": "text", "text": r.tokens.concat()}]});
    if !r.tools.is_empty() {
        message["tool_plan"] = json!("I will use the tool.");
        message["tool_calls"] = r
            .tools
            .iter()
            .enumerate()
            .map(|(i, tool)| json!({"id": format!("{tool}_mock{i}"), "type": "function", "function": {"name": tool, "arguments": "{\"q\":\"mock\"}"}}))
            .collect();
    }
    json!({"id": r.id, "finish_reason": finish(r), "message": message, "usage": usage(r)})
        .to_string()
        .into_bytes()
}

fn event(v: Value) -> Vec<u8> {
    format!("event: {}\ndata: {v}\n\n", v["type"].as_str().unwrap_or("")).into_bytes()
}

pub fn sse_events(r: &Reply, tokens_per_chunk: usize) -> Vec<Vec<u8>> {
    let mut out = vec![event(
        json!({"id": r.id, "type": "message-start", "delta": {"message": {"role": "assistant", "content": [], "tool_plan": "", "tool_calls": [], "citations": []}}}),
    )];
    out.push(event(json!({"type": "content-start", "index": 0, "delta": {"message": {"content": {"type": "text", "text": ""}}}})));
    for piece in r.tokens.chunks(tokens_per_chunk.max(1)) {
        out.push(event(json!({"type": "content-delta", "index": 0, "delta": {"message": {"content": {"text": piece.concat()}}}})));
    }
    out.push(event(json!({"type": "content-end", "index": 0})));
    for (i, tool) in r.tools.iter().enumerate() {
        out.push(event(json!({"type": "tool-call-start", "index": i, "delta": {"message": {"tool_calls": {"id": format!("{tool}_mock{i}"), "type": "function", "function": {"name": tool, "arguments": ""}}}}})));
        for fragment in ["{\"q\":", "\"mock\"}"] {
            out.push(event(json!({"type": "tool-call-delta", "index": i, "delta": {"message": {"tool_calls": {"function": {"arguments": fragment}}}}})));
        }
        out.push(event(json!({"type": "tool-call-end", "index": i})));
    }
    out.push(event(
        json!({"type": "message-end", "delta": {"finish_reason": finish(r), "usage": usage(r)}}),
    ));
    out
}
