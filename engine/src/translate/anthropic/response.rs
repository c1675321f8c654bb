//! Anthropic Messages response → OpenAI chat.completion, plus the pieces
//! streams share (finish reasons, usage, errors).

use crate::error::GatewayError;
use serde_json::{json, Value};

/// Anthropic `stop_reason` → OpenAI `finish_reason`.
pub fn finish_reason(stop: &str) -> &'static str {
    match stop {
        "max_tokens" | "model_context_window_exceeded" => "length",
        "tool_use" => "tool_calls",
        "refusal" => "content_filter",
        // end_turn, stop_sequence, pause_turn (lossy: server tools), unknown
        _ => "stop",
    }
}

fn n(v: &Value, key: &str) -> u64 {
    v.get(key).and_then(Value::as_u64).unwrap_or(0)
}

/// Anthropic usage → OpenAI usage. `input_tokens` excludes cache reads and
/// writes, OpenAI's `prompt_tokens` includes them; output already counts
/// thinking.
pub fn usage(u: &Value) -> Value {
    let (cache_write, cache_read) = (
        n(u, "cache_creation_input_tokens"),
        n(u, "cache_read_input_tokens"),
    );
    let prompt = n(u, "input_tokens") + cache_write + cache_read;
    let completion = n(u, "output_tokens");
    let reasoning = u
        .pointer("/output_tokens_details/thinking_tokens")
        .and_then(Value::as_u64)
        .unwrap_or(0);
    json!({
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "prompt_tokens_details": {"cached_tokens": cache_read, "cache_write_tokens": cache_write},
        "completion_tokens_details": {"reasoning_tokens": reasoning},
    })
}

/// An Anthropic error object (`{"type","message"}`) in OpenAI's shape.
pub fn openai_error(e: &Value) -> Value {
    let kind = e.get("type").and_then(Value::as_str).unwrap_or("api_error");
    let message = e
        .get("message")
        .and_then(Value::as_str)
        .unwrap_or("the provider reported an error");
    json!({"error": {"message": message, "type": kind, "param": null, "code": kind, "provider": "anthropic"}})
}

pub fn to_openai(body: &[u8], created: u64) -> Result<Value, GatewayError> {
    let r: Value =
        serde_json::from_slice(body).map_err(|e| protocol(format!("response is not JSON: {e}")))?;
    let blocks = r
        .get("content")
        .and_then(Value::as_array)
        .ok_or_else(|| protocol("response has no `content`".into()))?;
    let mut text = String::new();
    let mut reasoning = String::new();
    let mut thinking_blocks = Vec::new();
    let mut tool_calls = Vec::new();
    for b in blocks {
        match b.get("type").and_then(Value::as_str) {
            Some("text") => text.push_str(b.get("text").and_then(Value::as_str).unwrap_or("")),
            Some("tool_use") => tool_calls.push(json!({
                "id": b["id"],
                "type": "function",
                "function": {"name": b["name"], "arguments": b.get("input").unwrap_or(&json!({})).to_string()},
            })),
            Some("thinking") => {
                reasoning.push_str(b.get("thinking").and_then(Value::as_str).unwrap_or(""));
                thinking_blocks.push(b.clone());
            }
            Some("redacted_thinking") => thinking_blocks.push(b.clone()),
            _ => {}
        }
    }
    let mut message = json!({
        "role": "assistant",
        "content": if text.is_empty() && !tool_calls.is_empty() { Value::Null } else { json!(text) },
        "refusal": null,
    });
    if !tool_calls.is_empty() {
        message["tool_calls"] = Value::Array(tool_calls);
    }
    if !thinking_blocks.is_empty() {
        message["reasoning_content"] = json!(reasoning);
        message["thinking_blocks"] = Value::Array(thinking_blocks);
    }
    let stop = r
        .get("stop_reason")
        .and_then(Value::as_str)
        .unwrap_or("end_turn");
    Ok(json!({
        "id": r.get("id").cloned().unwrap_or(json!("msg_unknown")),
        "object": "chat.completion",
        "created": created,
        "model": r.get("model").cloned().unwrap_or(Value::Null),
        "choices": [{"index": 0, "message": message, "logprobs": null, "finish_reason": finish_reason(stop)}],
        "usage": usage(r.get("usage").unwrap_or(&Value::Null)),
    }))
}

fn protocol(reason: String) -> GatewayError {
    GatewayError::UpstreamProtocol {
        provider: "anthropic".into(),
        reason,
    }
}

#[cfg(test)]
#[path = "response/tests.rs"]
mod tests;
