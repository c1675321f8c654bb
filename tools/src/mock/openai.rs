//! OpenAI Chat Completions shapes, as recorded in the conformance corpus
//! (`openai/stream_include_usage.sse`, `openai/response_tool_calls.json`):
//! pure functions from a request to response bytes.

use serde_json::{json, Value};

/// What the mock will answer to one request.
#[derive(Debug, Clone, PartialEq)]
pub struct Reply {
    pub id: String,
    pub created: u64,
    pub model: String,
    /// Content pieces, one per token; pieces after the first carry their
    /// leading space, so concatenating them gives the text.
    pub tokens: Vec<String>,
    pub finish_reason: &'static str,
    pub prompt_tokens: u64,
    pub stream: bool,
    pub include_usage: bool,
    /// Tools the request forced (`tool_choice` required or named).
    pub tools: Vec<String>,
}

impl Reply {
    pub fn text(&self) -> String {
        self.tokens.concat()
    }
}

/// An error in OpenAI's shape, with its HTTP status.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiError {
    pub status: u16,
    pub body: Value,
}

pub fn error(
    status: u16,
    message: &str,
    kind: &str,
    param: Option<&str>,
    code: Option<&str>,
) -> ApiError {
    ApiError {
        status,
        body: json!({"error": {"message": message, "type": kind, "param": param, "code": code}}),
    }
}

/// OpenAI's answer to a wrong key, which quotes the key's first and last
/// characters (`error_401_invalid_api_key.json`): what a gateway must
/// never relay to its clients.
pub fn incorrect_key(presented: &str) -> ApiError {
    let chars: Vec<char> = presented.chars().collect();
    let masked = if chars.len() > 12 {
        let head: String = chars[..8].iter().collect();
        let tail: String = chars[chars.len() - 4..].iter().collect();
        format!("{head}{}{tail}", "*".repeat(chars.len() - 12))
    } else {
        "*".repeat(chars.len())
    };
    error(
        401,
        &format!("Incorrect API key provided: {masked}. You can find your API key at https://platform.openai.com/account/api-keys."),
        "invalid_request_error",
        None,
        Some("invalid_api_key"),
    )
}

/// The error body the real API sends for an injected status.
pub fn injected_error(status: u16) -> ApiError {
    match status {
        401 => error(
            401,
            "Incorrect API key provided (mock).",
            "invalid_request_error",
            None,
            Some("invalid_api_key"),
        ),
        404 => error(
            404,
            "The model does not exist or you do not have access to it (mock).",
            "invalid_request_error",
            None,
            Some("model_not_found"),
        ),
        429 => error(
            429,
            "Rate limit reached for requests (mock).",
            "requests",
            None,
            Some("rate_limit_exceeded"),
        ),
        400..=499 => error(
            status,
            "Injected client error (mock).",
            "invalid_request_error",
            None,
            None,
        ),
        _ => error(
            status,
            "The server had an error while processing your request (mock).",
            "server_error",
            None,
            None,
        ),
    }
}

const FILLER: [&str; 8] = [
    "lorem",
    "ipsum",
    "dolor",
    "sit",
    "amet",
    "consectetur",
    "adipiscing",
    "elit",
];

pub fn plan(
    body: &[u8],
    reply_tokens: Option<usize>,
    id: String,
    created: u64,
) -> Result<Reply, ApiError> {
    let req: Value = serde_json::from_slice(body).map_err(|_| {
        error(400, "We could not parse the JSON body of your request. (HINT: This likely means you aren't using your HTTP library correctly. The OpenAI API expects a JSON payload, but what was sent was not valid JSON.)", "invalid_request_error", None, None)
    })?;
    let model = req
        .get("model")
        .and_then(Value::as_str)
        .filter(|m| !m.is_empty())
        .ok_or_else(|| {
            error(
                400,
                "you must provide a model parameter",
                "invalid_request_error",
                None,
                None,
            )
        })?;
    let messages = req
        .get("messages")
        .and_then(Value::as_array)
        .filter(|m| !m.is_empty())
        .ok_or_else(|| {
            error(
                400,
                "Missing required parameter: 'messages'.",
                "invalid_request_error",
                Some("messages"),
                Some("missing_required_parameter"),
            )
        })?;
    let max_tokens = req
        .get("max_completion_tokens")
        .or_else(|| req.get("max_tokens"))
        .and_then(Value::as_u64);
    let prompt_tokens = messages
        .iter()
        .map(|m| 4 + words(&text_of(m)).count() as u64)
        .sum();
    let mut tokens: Vec<String> = match reply_tokens {
        Some(n) => (0..n)
            .map(|i| FILLER[i % FILLER.len()].to_string())
            .collect(),
        None => {
            let last_user = messages
                .iter()
                .rev()
                .find(|m| m.get("role").and_then(Value::as_str) == Some("user"))
                .map(text_of)
                .unwrap_or_default();
            let json_mode = matches!(
                req.pointer("/response_format/type").and_then(Value::as_str),
                Some("json_object") | Some("json_schema")
            );
            super::reply::tokens(words(&last_user).map(str::to_string).collect(), json_mode)
        }
    };
    let mut finish_reason = "stop";
    if let Some(max) = max_tokens {
        if tokens.len() as u64 > max {
            tokens.truncate(max as usize);
            finish_reason = "length";
        }
    }
    for t in tokens.iter_mut().skip(1) {
        t.insert(0, ' ');
    }
    let offered: Vec<&str> = req
        .get("tools")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|t| t.pointer("/function/name").and_then(Value::as_str))
        .collect();
    let tools = match req.get("tool_choice") {
        Some(Value::String(c)) if c == "required" => super::reply::forced(None, &offered),
        Some(Value::Object(_)) => super::reply::forced(
            req.pointer("/tool_choice/function/name")
                .and_then(Value::as_str),
            &offered,
        ),
        _ => Vec::new(),
    };
    if !tools.is_empty() {
        finish_reason = "tool_calls";
    }
    let stream = req.get("stream").and_then(Value::as_bool).unwrap_or(false);
    let include_usage = req
        .pointer("/stream_options/include_usage")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    Ok(Reply {
        id,
        created,
        model: model.to_string(),
        tokens,
        finish_reason,
        prompt_tokens,
        stream,
        include_usage,
        tools,
    })
}

fn words(s: &str) -> impl Iterator<Item = &str> {
    s.split_whitespace()
}

/// A message's words as text (`[image]` for each image part).
fn text_of(message: &Value) -> String {
    super::reply::content_words(message.get("content").unwrap_or(&Value::Null)).join(" ")
}

fn usage(r: &Reply) -> Value {
    let completion = r.tokens.len() as u64;
    json!({
        "prompt_tokens": r.prompt_tokens,
        "completion_tokens": completion,
        "total_tokens": r.prompt_tokens + completion,
        "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
        "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0, "accepted_prediction_tokens": 0, "rejected_prediction_tokens": 0}
    })
}

fn call_id(r: &Reply, i: usize) -> String {
    format!("call_{}_{i}", r.id.trim_start_matches("chatcmpl-"))
}

fn message(r: &Reply) -> Value {
    let mut m =
        json!({"role": "assistant", "content": r.text(), "refusal": null, "annotations": []});
    if !r.tools.is_empty() {
        m["tool_calls"] = r
            .tools
            .iter()
            .enumerate()
            .map(|(i, tool)| json!({"id": call_id(r, i), "type": "function", "function": {"name": tool, "arguments": "{\"q\": \"mock\"}"}}))
            .collect();
    }
    m
}

pub fn completion_body(r: &Reply) -> Vec<u8> {
    let body = json!({
        "id": r.id,
        "object": "chat.completion",
        "created": r.created,
        "model": r.model,
        "choices": [{
            "index": 0,
            "message": message(r),
            "logprobs": null,
            "finish_reason": r.finish_reason
        }],
        "usage": usage(r),
        "service_tier": "default",
        "system_fingerprint": null
    });
    body.to_string().into_bytes()
}

/// The SSE events of a streamed reply, each a complete `data: …\n\n` frame:
/// role chunk, content chunks, finish chunk, usage chunk (when asked), `[DONE]`.
pub fn sse_events(r: &Reply, tokens_per_chunk: usize) -> Vec<Vec<u8>> {
    // With include_usage, every chunk carries `"usage": null` and a last
    // chunk with no choices carries the totals.
    let envelope = |choices: Value, usage: Value| {
        let mut c = json!({
            "id": r.id,
            "object": "chat.completion.chunk",
            "created": r.created,
            "model": r.model,
            "service_tier": "default",
            "system_fingerprint": null,
            "choices": choices,
        });
        if r.include_usage {
            c["usage"] = usage;
        }
        frame(&c)
    };
    let chunk = |delta: Value, finish: Value| {
        envelope(
            json!([{"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish}]),
            Value::Null,
        )
    };
    let mut out = vec![chunk(
        json!({"role": "assistant", "content": "", "refusal": null}),
        Value::Null,
    )];
    for piece in r.tokens.chunks(tokens_per_chunk.max(1)) {
        out.push(chunk(json!({"content": piece.concat()}), Value::Null));
    }
    for (i, tool) in r.tools.iter().enumerate() {
        // Header first, then argument fragments, as the real API streams them.
        out.push(chunk(json!({"tool_calls": [{"index": i, "id": call_id(r, i), "type": "function", "function": {"name": tool, "arguments": ""}}]}), Value::Null));
        for fragment in ["{\"q\": ", "\"mock\"}"] {
            out.push(chunk(
                json!({"tool_calls": [{"index": i, "function": {"arguments": fragment}}]}),
                Value::Null,
            ));
        }
    }
    out.push(chunk(json!({}), json!(r.finish_reason)));
    if r.include_usage {
        out.push(envelope(json!([]), usage(r)));
    }
    out.push(b"data: [DONE]\n\n".to_vec());
    out
}

fn frame(v: &Value) -> Vec<u8> {
    let mut f = b"data: ".to_vec();
    f.extend_from_slice(v.to_string().as_bytes());
    f.extend_from_slice(b"\n\n");
    f
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reply(body: Value) -> Result<Reply, ApiError> {
        plan(
            body.to_string().as_bytes(),
            None,
            "chatcmpl-mock1".into(),
            1,
        )
    }

    #[test]
    fn echoes_last_user_message_with_usage() {
        let r = reply(json!({"model": "m", "messages": [
            {"role": "system", "content": "be brief"},
            {"role": "user", "content": [{"type": "text", "text": "hello there"}]}
        ]}))
        .unwrap();
        assert_eq!(r.text(), "Mock reply: hello there");
        assert_eq!(r.prompt_tokens, 4 + 2 + 4 + 2);
        let body: Value = serde_json::from_slice(&completion_body(&r)).unwrap();
        assert_eq!(
            body["choices"][0]["message"]["content"],
            "Mock reply: hello there"
        );
        assert_eq!(body["usage"]["completion_tokens"], 4);
        assert_eq!(body["usage"]["total_tokens"], 16);
    }

    #[test]
    fn max_tokens_truncates_with_length() {
        let r = reply(json!({"model": "m", "max_tokens": 2, "messages": [{"role": "user", "content": "a b c"}]})).unwrap();
        assert_eq!(
            (r.text().as_str(), r.finish_reason),
            ("Mock reply:", "length")
        );
    }

    #[test]
    fn stream_frames_match_the_recorded_shape() {
        let r = reply(
            json!({"model": "m", "stream": true, "stream_options": {"include_usage": true},
            "messages": [{"role": "user", "content": "one two three"}]}),
        )
        .unwrap();
        let events = sse_events(&r, 2);
        // role, 3 content chunks (5 tokens / 2), finish, usage, DONE
        assert_eq!(events.len(), 7);
        let parse = |e: &Vec<u8>| -> Value {
            let s = std::str::from_utf8(e).unwrap();
            serde_json::from_str(s.strip_prefix("data: ").unwrap().trim_end()).unwrap()
        };
        assert_eq!(
            parse(&events[0])["choices"][0]["delta"]["role"],
            "assistant"
        );
        assert!(parse(&events[1])["usage"].is_null());
        let text: String = events[1..4]
            .iter()
            .map(|e| {
                parse(e)["choices"][0]["delta"]["content"]
                    .as_str()
                    .unwrap()
                    .to_string()
            })
            .collect();
        assert_eq!(text, "Mock reply: one two three");
        assert_eq!(parse(&events[4])["choices"][0]["finish_reason"], "stop");
        let usage = parse(&events[5]);
        assert_eq!(usage["choices"], json!([]));
        assert_eq!(usage["usage"]["completion_tokens"], 5);
        assert_eq!(events[6], b"data: [DONE]\n\n");
    }

    #[test]
    fn bad_requests_get_openai_errors() {
        let e = plan(b"{not json", None, "x".into(), 1).unwrap_err();
        assert_eq!(e.status, 400);
        assert!(e.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("could not parse the JSON"));
        let e = reply(json!({"messages": [{"role": "user", "content": "x"}]})).unwrap_err();
        assert_eq!(
            e.body["error"]["message"],
            "you must provide a model parameter"
        );
        let e = reply(json!({"model": "m"})).unwrap_err();
        assert_eq!(e.body["error"]["code"], "missing_required_parameter");
    }
}
