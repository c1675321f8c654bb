//! Gemini `GenerateContentResponse` → OpenAI chat.completion, plus the
//! pieces streams share (finish reasons, usage, parts, errors).

use super::encode_call_id;
use crate::error::GatewayError;
use serde_json::{json, Value};

/// Gemini `finishReason` → OpenAI `finish_reason`. Gemini reports STOP for
/// a function call; the caller passes whether the candidate made one.
pub fn finish_reason(reason: &str, has_call: bool) -> &'static str {
    match reason {
        "STOP" if has_call => "tool_calls",
        "MAX_TOKENS" => "length",
        "SAFETY" | "BLOCKLIST" | "PROHIBITED_CONTENT" | "SPII" | "IMAGE_SAFETY" | "RECITATION" => {
            "content_filter"
        }
        // STOP, MALFORMED_FUNCTION_CALL, OTHER, FINISH_REASON_UNSPECIFIED
        _ => "stop",
    }
}

fn n(v: &Value, key: &str) -> u64 {
    v.get(key).and_then(Value::as_u64).unwrap_or(0)
}

/// Gemini usage → OpenAI usage. Thoughts are not part of
/// `candidatesTokenCount`; OpenAI's completion tokens include reasoning.
pub fn usage(u: &Value) -> Value {
    let prompt = n(u, "promptTokenCount");
    let thoughts = n(u, "thoughtsTokenCount");
    let completion = n(u, "candidatesTokenCount") + thoughts;
    json!({
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "prompt_tokens_details": {"cached_tokens": n(u, "cachedContentTokenCount")},
        "completion_tokens_details": {"reasoning_tokens": thoughts},
    })
}

/// A Gemini error object in OpenAI's shape.
pub fn openai_error(e: &Value) -> Value {
    let status = e.get("status").and_then(Value::as_str).unwrap_or("UNKNOWN");
    let message = e
        .get("message")
        .and_then(Value::as_str)
        .unwrap_or("the provider reported an error");
    json!({"error": {"message": message, "type": status.to_ascii_lowercase(), "param": null, "code": status, "provider": "gemini"}})
}

/// What one candidate's parts say, in OpenAI terms.
#[derive(Default)]
pub struct Parts {
    pub text: String,
    pub reasoning: String,
    /// (id, name, arguments JSON)
    pub calls: Vec<(String, String, String)>,
}

/// Read a candidate's parts; function calls without an id get a stable one
/// (`call_<response id>_<n>`, n counted across the response or stream).
pub fn read_parts(candidate: &Value, response_id: &str, next_call: &mut usize) -> Parts {
    let mut out = Parts::default();
    for p in candidate
        .pointer("/content/parts")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        if let Some(call) = p.get("functionCall") {
            let id = call
                .get("id")
                .and_then(Value::as_str)
                .map(str::to_string)
                .unwrap_or_else(|| format!("call_{response_id}_{next_call}"));
            *next_call += 1;
            let signature = p.get("thoughtSignature").and_then(Value::as_str);
            let args = call.get("args").cloned().unwrap_or_else(|| json!({}));
            let name = call
                .get("name")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string();
            out.calls
                .push((encode_call_id(&id, signature), name, args.to_string()));
        } else if let Some(t) = p.get("text").and_then(Value::as_str) {
            if p.get("thought").and_then(Value::as_bool) == Some(true) {
                out.reasoning.push_str(t);
            } else {
                out.text.push_str(t);
            }
        }
    }
    out
}

pub fn to_openai(body: &[u8], created: u64) -> Result<Value, GatewayError> {
    let r: Value =
        serde_json::from_slice(body).map_err(|e| protocol(format!("response is not JSON: {e}")))?;
    let id = r
        .get("responseId")
        .and_then(Value::as_str)
        .unwrap_or("gemini")
        .to_string();
    let mut next_call = 0;
    let mut choices = Vec::new();
    for (i, c) in r
        .get("candidates")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .enumerate()
    {
        let parts = read_parts(c, &id, &mut next_call);
        let has_call = !parts.calls.is_empty();
        let mut message = json!({
            "role": "assistant",
            "content": if parts.text.is_empty() && has_call { Value::Null } else { json!(parts.text) },
            "refusal": null,
        });
        if has_call {
            message["tool_calls"] = parts
                .calls
                .iter()
                .map(|(id, name, args)| json!({"id": id, "type": "function", "function": {"name": name, "arguments": args}}))
                .collect();
        }
        if !parts.reasoning.is_empty() {
            message["reasoning_content"] = json!(parts.reasoning);
        }
        let reason = c
            .get("finishReason")
            .and_then(Value::as_str)
            .unwrap_or("STOP");
        let index = c.get("index").and_then(Value::as_u64).unwrap_or(i as u64);
        choices.push(json!({"index": index, "message": message, "logprobs": null, "finish_reason": finish_reason(reason, has_call)}));
    }
    if choices.is_empty() {
        // The prompt itself was blocked (promptFeedback.blockReason).
        choices.push(json!({"index": 0, "message": {"role": "assistant", "content": null, "refusal": null}, "logprobs": null, "finish_reason": "content_filter"}));
    }
    Ok(json!({
        "id": id,
        "object": "chat.completion",
        "created": created,
        "model": r.get("modelVersion").cloned().unwrap_or(Value::Null),
        "choices": choices,
        "usage": usage(r.get("usageMetadata").unwrap_or(&Value::Null)),
    }))
}

fn protocol(reason: String) -> GatewayError {
    GatewayError::UpstreamProtocol {
        provider: "gemini".into(),
        reason,
    }
}

#[cfg(test)]
#[path = "response/tests.rs"]
mod tests;
