//! Anthropic Messages shapes, as recorded in the conformance corpus
//! (`anthropic/stream_tool_use.sse`, `anthropic/response_text_tool_use.json`,
//! `anthropic/error_*.json`): pure functions from a request to bytes.

use super::openai::ApiError;
use serde_json::{json, Value};

pub fn error(status: u16, kind: &str, message: &str) -> ApiError {
    ApiError {
        status,
        body: json!({"type": "error", "error": {"type": kind, "message": message}, "request_id": "req_mock"}),
    }
}

/// The error body the real API sends for an injected status.
pub fn injected_error(status: u16) -> ApiError {
    match status {
        400 => error(
            400,
            "invalid_request_error",
            "Injected invalid request (mock).",
        ),
        401 => error(401, "authentication_error", "invalid x-api-key"),
        403 => error(
            403,
            "permission_error",
            "Your API key does not have permission to use the specified resource.",
        ),
        404 => error(404, "not_found_error", "model: not found (mock)"),
        429 => error(
            429,
            "rate_limit_error",
            "This request would exceed your organization's rate limit (mock).",
        ),
        529 => error(529, "overloaded_error", "Overloaded"),
        _ => error(status, "api_error", "Internal server error (mock)."),
    }
}

/// What the mock will answer.
#[derive(Debug, Clone)]
pub struct Reply {
    pub id: String,
    pub model: String,
    pub tokens: Vec<String>,
    pub tools: Vec<String>,
    pub stop_reason: &'static str,
    pub input_tokens: u64,
    pub stream: bool,
}

fn words(v: &Value) -> Vec<String> {
    super::reply::content_words(v)
}

pub fn plan(
    body: &[u8],
    headers: &http::HeaderMap,
    reply_tokens: Option<usize>,
    id: String,
) -> Result<Reply, ApiError> {
    if headers.get("anthropic-version").is_none() {
        return Err(error(
            400,
            "invalid_request_error",
            "anthropic-version: header is required",
        ));
    }
    let req: Value = serde_json::from_slice(body).map_err(|_| {
        error(
            400,
            "invalid_request_error",
            "There was an issue with the format or content of your request.",
        )
    })?;
    let model = req
        .get("model")
        .and_then(Value::as_str)
        .ok_or_else(|| error(400, "invalid_request_error", "model: Field required"))?;
    let max_tokens = req
        .get("max_tokens")
        .and_then(Value::as_u64)
        .ok_or_else(|| error(400, "invalid_request_error", "max_tokens: Field required"))?;
    let messages = req
        .get("messages")
        .and_then(Value::as_array)
        .filter(|m| !m.is_empty())
        .ok_or_else(|| error(400, "invalid_request_error", "messages: Field required"))?;
    if messages.iter().any(|m| m["role"] == "system") {
        return Err(error(
            400,
            "invalid_request_error",
            "messages: Unexpected role \"system\". Use the top-level system parameter.",
        ));
    }
    let mut input_tokens = req
        .get("system")
        .map(|s| words(s).len() as u64)
        .unwrap_or(0);
    for m in messages {
        input_tokens += 4 + words(&m["content"]).len() as u64;
    }
    let offered: Vec<&str> = req
        .get("tools")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|t| t.get("name").and_then(Value::as_str))
        .collect();
    let forced_tools = match req.pointer("/tool_choice/type").and_then(Value::as_str) {
        Some("any") => super::reply::forced(None, &offered),
        Some("tool") => super::reply::forced(
            req.pointer("/tool_choice/name").and_then(Value::as_str),
            &offered,
        ),
        _ => Vec::new(),
    };
    let mut tokens: Vec<String> = match reply_tokens {
        Some(n) => (0..n).map(|i| format!("w{i}")).collect(),
        None => {
            let last_user = messages
                .iter()
                .rev()
                .find(|m| m["role"] == "user")
                .map(|m| words(&m["content"]))
                .unwrap_or_default();
            {
                let json_mode = req.pointer("/output_config/format").is_some();
                super::reply::tokens(last_user, json_mode)
            }
        }
    };
    let mut stop_reason = if !forced_tools.is_empty() {
        "tool_use"
    } else {
        "end_turn"
    };
    if tokens.len() as u64 > max_tokens {
        tokens.truncate(max_tokens as usize);
        stop_reason = "max_tokens";
    }
    for t in tokens.iter_mut().skip(1) {
        t.insert(0, ' ');
    }
    Ok(Reply {
        id,
        model: model.to_string(),
        tokens,
        tools: forced_tools,
        stop_reason,
        input_tokens,
        stream: req.get("stream").and_then(Value::as_bool).unwrap_or(false),
    })
}

fn usage(r: &Reply, output: u64) -> Value {
    json!({"input_tokens": r.input_tokens, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0, "output_tokens": output, "service_tier": "standard"})
}

fn content(r: &Reply) -> Vec<Value> {
    let mut c = vec![json!({"type": "text", "text": r.tokens.concat()})];
    for (i, tool) in r.tools.iter().enumerate() {
        c.push(json!({"type": "tool_use", "id": format!("toolu_{}_{i}", r.id), "name": tool, "input": {"q": "mock"}}));
    }
    c
}

pub fn message_body(r: &Reply) -> Vec<u8> {
    json!({
        "id": r.id, "type": "message", "role": "assistant", "model": r.model,
        "content": content(r), "stop_reason": r.stop_reason, "stop_sequence": null,
        "usage": usage(r, r.tokens.len() as u64),
    })
    .to_string()
    .into_bytes()
}

fn event(name: &str, data: Value) -> Vec<u8> {
    format!("event: {name}\ndata: {data}\n\n").into_bytes()
}

/// The events of a streamed reply, as Anthropic sends them.
pub fn sse_events(r: &Reply, tokens_per_chunk: usize) -> Vec<Vec<u8>> {
    let mut out = vec![event(
        "message_start",
        json!({"type": "message_start", "message": {"id": r.id, "type": "message", "role": "assistant", "model": r.model, "content": [], "stop_reason": null, "stop_sequence": null, "usage": usage(r, 1)}}),
    )];
    out.push(event("content_block_start", json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}})));
    out.push(event("ping", json!({"type": "ping"})));
    for piece in r.tokens.chunks(tokens_per_chunk.max(1)) {
        out.push(event("content_block_delta", json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": piece.concat()}})));
    }
    out.push(event(
        "content_block_stop",
        json!({"type": "content_block_stop", "index": 0}),
    ));
    for (n, tool) in r.tools.iter().enumerate() {
        let index = n + 1;
        out.push(event("content_block_start", json!({"type": "content_block_start", "index": index, "content_block": {"type": "tool_use", "id": format!("toolu_{}_{n}", r.id), "name": tool, "input": {}}})));
        for fragment in ["", "{\"q\": ", "\"mock\"}"] {
            out.push(event("content_block_delta", json!({"type": "content_block_delta", "index": index, "delta": {"type": "input_json_delta", "partial_json": fragment}})));
        }
        out.push(event(
            "content_block_stop",
            json!({"type": "content_block_stop", "index": index}),
        ));
    }
    out.push(event("message_delta", json!({"type": "message_delta", "delta": {"stop_reason": r.stop_reason, "stop_sequence": null}, "usage": {"output_tokens": r.tokens.len()}})));
    out.push(event("message_stop", json!({"type": "message_stop"})));
    out
}

/// The in-stream error Anthropic sends when it is overloaded after a 200.
pub fn overloaded_event() -> Vec<u8> {
    event(
        "error",
        json!({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers() -> http::HeaderMap {
        let mut h = http::HeaderMap::new();
        h.insert("anthropic-version", "2023-06-01".parse().unwrap());
        h
    }

    #[test]
    fn requires_version_and_max_tokens_like_the_api() {
        let ok =
            br#"{"model":"c","max_tokens":5,"messages":[{"role":"user","content":"hi there"}]}"#;
        assert_eq!(
            plan(ok, &http::HeaderMap::new(), None, "m".into())
                .unwrap_err()
                .status,
            400
        );
        let e = plan(
            br#"{"model":"c","messages":[{"role":"user","content":"x"}]}"#,
            &headers(),
            None,
            "m".into(),
        )
        .unwrap_err();
        assert_eq!(e.body["error"]["message"], "max_tokens: Field required");
        let r = plan(ok, &headers(), None, "m".into()).unwrap();
        assert_eq!(
            (r.tokens.concat().as_str(), r.stop_reason, r.input_tokens),
            ("Mock reply: hi there", "end_turn", 6)
        );
    }

    #[test]
    fn streams_parse_and_carry_cumulative_usage() {
        let r = plan(br#"{"model":"c","max_tokens":50,"stream":true,"tool_choice":{"type":"any"},"tools":[{"name":"f","input_schema":{}}],"messages":[{"role":"user","content":"a b"}]}"#, &headers(), None, "m1".into()).unwrap();
        let events = sse_events(&r, 2);
        let text = String::from_utf8(events.concat()).unwrap();
        assert!(text.starts_with("event: message_start"));
        assert!(text.contains("\"stop_reason\":\"tool_use\""));
        assert!(text.ends_with("event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n"));
    }
}
