//! Gemini `generateContent` shapes, as recorded in the conformance corpus
//! (`gemini/stream_text.sse` with CRLF framing, `gemini/response_function_call.json`,
//! `gemini/error_429_retryinfo.sdk_fixture.json`): pure functions.

use super::openai::ApiError;
use serde_json::{json, Value};

pub fn error(code: u16, status: &str, message: &str) -> ApiError {
    let mut body = json!({"error": {"code": code, "message": message, "status": status}});
    if code == 429 {
        body["error"]["details"] =
            json!([{"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "1s"}]);
    }
    ApiError { status: code, body }
}

/// Google's answer to a wrong key: a 400 whose `ErrorInfo` names the reason.
pub fn invalid_key() -> ApiError {
    let mut e = error(
        400,
        "INVALID_ARGUMENT",
        "API key not valid. Please pass a valid API key.",
    );
    e.body["error"]["details"] = json!([{
        "@type": "type.googleapis.com/google.rpc.ErrorInfo",
        "reason": "API_KEY_INVALID",
        "domain": "googleapis.com"
    }]);
    e
}

pub fn injected_error(status: u16) -> ApiError {
    match status {
        400 => error(400, "INVALID_ARGUMENT", "Injected invalid argument (mock)."),
        401 => error(
            401,
            "UNAUTHENTICATED",
            "Request had invalid authentication credentials (mock).",
        ),
        403 => error(403, "PERMISSION_DENIED", "Permission denied (mock)."),
        404 => error(404, "NOT_FOUND", "models/x is not found (mock)."),
        429 => error(
            429,
            "RESOURCE_EXHAUSTED",
            "You exceeded your current quota (mock).",
        ),
        503 => error(
            503,
            "UNAVAILABLE",
            "The model is overloaded. Please try again later.",
        ),
        _ => error(status, "INTERNAL", "An internal error has occurred (mock)."),
    }
}

pub struct Reply {
    pub id: String,
    pub model: String,
    pub tokens: Vec<String>,
    pub calls: Vec<String>,
    pub finish: &'static str,
    pub prompt_tokens: u64,
}

fn texts(parts: &Value) -> Vec<String> {
    super::reply::content_words(parts)
}

/// `path` is `…/models/<model>:<method>`.
pub fn plan(
    path: &str,
    body: &[u8],
    reply_tokens: Option<usize>,
    id: String,
) -> Result<Reply, ApiError> {
    let model = path
        .rsplit("/models/")
        .next()
        .and_then(|m| m.split(':').next())
        .unwrap_or("gemini")
        .to_string();
    let req: Value = serde_json::from_slice(body)
        .map_err(|_| error(400, "INVALID_ARGUMENT", "Invalid JSON payload received."))?;
    let contents = req
        .get("contents")
        .and_then(Value::as_array)
        .filter(|c| !c.is_empty())
        .ok_or_else(|| {
            error(
                400,
                "INVALID_ARGUMENT",
                "* GenerateContentRequest.contents: contents is not specified",
            )
        })?;
    if contents.iter().any(|c| {
        !matches!(
            c.get("role").and_then(Value::as_str),
            Some("user") | Some("model") | None
        )
    }) {
        return Err(error(
            400,
            "INVALID_ARGUMENT",
            "Please use a valid role: user, model.",
        ));
    }
    let mut prompt_tokens = req
        .pointer("/systemInstruction/parts")
        .map(|p| texts(p).len() as u64)
        .unwrap_or(0);
    for c in contents {
        prompt_tokens += 4 + texts(&c["parts"]).len() as u64;
    }
    let offered: Vec<&str> = req
        .pointer("/tools/0/functionDeclarations")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|d| d.get("name").and_then(Value::as_str))
        .collect();
    let calls = match req
        .pointer("/toolConfig/functionCallingConfig/mode")
        .and_then(Value::as_str)
    {
        Some("ANY") => {
            let allowed: Vec<&str> = req
                .pointer("/toolConfig/functionCallingConfig/allowedFunctionNames")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .collect();
            super::reply::forced(
                None,
                if allowed.is_empty() {
                    &offered
                } else {
                    &allowed
                },
            )
        }
        _ => Vec::new(),
    };
    let mut tokens: Vec<String> = match reply_tokens {
        Some(n) => (0..n).map(|i| format!("w{i}")).collect(),
        None => {
            let last_user = contents
                .iter()
                .rev()
                .find(|c| c["role"] == "user")
                .map(|c| texts(&c["parts"]))
                .unwrap_or_default();
            {
                let json_mode = req
                    .pointer("/generationConfig/responseMimeType")
                    .and_then(Value::as_str)
                    == Some("application/json");
                super::reply::tokens(last_user, json_mode)
            }
        }
    };
    let mut finish = "STOP";
    if let Some(max) = req
        .pointer("/generationConfig/maxOutputTokens")
        .and_then(Value::as_u64)
    {
        if tokens.len() as u64 > max {
            tokens.truncate(max as usize);
            finish = "MAX_TOKENS";
        }
    }
    for t in tokens.iter_mut().skip(1) {
        t.insert(0, ' ');
    }
    Ok(Reply {
        id,
        model,
        tokens,
        calls,
        finish,
        prompt_tokens,
    })
}

fn usage(r: &Reply, candidates: u64) -> Value {
    json!({"promptTokenCount": r.prompt_tokens, "candidatesTokenCount": candidates, "totalTokenCount": r.prompt_tokens + candidates})
}

fn parts(r: &Reply, text: String, with_call: bool) -> Vec<Value> {
    let mut p = Vec::new();
    if !text.is_empty() {
        p.push(json!({"text": text}));
    }
    if with_call {
        for name in &r.calls {
            // Gemini 2.x: no id on function calls.
            p.push(json!({"functionCall": {"name": name, "args": {"q": "mock"}}}));
        }
    }
    p
}

pub fn response_body(r: &Reply) -> Vec<u8> {
    json!({
        "candidates": [{"content": {"parts": parts(r, r.tokens.concat(), true), "role": "model"}, "finishReason": r.finish, "index": 0}],
        "usageMetadata": usage(r, r.tokens.len() as u64),
        "modelVersion": r.model,
        "responseId": r.id,
    })
    .to_string()
    .into_bytes()
}

/// Stream chunks, CRLF-framed like the real API; every chunk carries a
/// usage snapshot, the last one the finish reason.
pub fn sse_events(r: &Reply, tokens_per_chunk: usize) -> Vec<Vec<u8>> {
    let pieces: Vec<String> = r
        .tokens
        .chunks(tokens_per_chunk.max(1))
        .map(|c| c.concat())
        .collect();
    let n = pieces.len().max(1);
    let mut sent = 0u64;
    let mut out = Vec::new();
    for i in 0..n {
        let text = pieces.get(i).cloned().unwrap_or_default();
        sent += r.tokens.len().min(tokens_per_chunk.max(1) * (i + 1)) as u64 - sent;
        let last = i + 1 == n;
        let mut cand =
            json!({"content": {"parts": parts(r, text, last), "role": "model"}, "index": 0});
        if last {
            cand["finishReason"] = json!(r.finish);
        }
        let chunk = json!({"candidates": [cand], "usageMetadata": usage(r, sent), "modelVersion": r.model, "responseId": r.id});
        out.push(format!("data: {chunk}\r\n\r\n").into_bytes());
    }
    out
}

/// What Gemini sends when it fails inside a stream.
pub fn stream_error_event() -> Vec<u8> {
    format!("data: {}\r\n\r\n", json!({"error": {"code": 503, "message": "The model is overloaded. Please try again later.", "status": "UNAVAILABLE"}})).into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replies_and_streams_like_the_api() {
        let body = br#"{"contents":[{"role":"user","parts":[{"text":"hi there"}]}],"toolConfig":{"functionCallingConfig":{"mode":"ANY"}},"tools":[{"functionDeclarations":[{"name":"f"}]}]}"#;
        let r = plan(
            "/v1beta/models/gemini-2.5-flash:generateContent",
            body,
            None,
            "r1".into(),
        )
        .unwrap();
        assert_eq!(
            (
                r.model.as_str(),
                r.calls.first().map(String::as_str),
                r.prompt_tokens
            ),
            ("gemini-2.5-flash", Some("f"), 6)
        );
        let v: Value = serde_json::from_slice(&response_body(&r)).unwrap();
        assert_eq!(
            v["candidates"][0]["content"]["parts"][1]["functionCall"]["name"],
            "f"
        );
        let events = sse_events(&r, 2);
        assert!(events.iter().all(|e| e.ends_with(b"\r\n\r\n")));
        let last: Value =
            serde_json::from_slice(&events.last().unwrap()[6..events.last().unwrap().len() - 4])
                .unwrap();
        assert_eq!(last["candidates"][0]["finishReason"], "STOP");
        assert_eq!(last["usageMetadata"]["candidatesTokenCount"], 4);
        assert!(plan("/m/x:generateContent", b"{}", None, "r".into()).is_err());
    }
}
