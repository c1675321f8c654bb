//! Cohere v2 chat (`POST /v2/chat`) as an outbound provider. Close to
//! OpenAI's shapes (tools, tool calls, image parts); the differences are
//! parameter names, uppercase tool choice, `tool_plan`, finish reasons,
//! usage (`tokens`, not `billed_units`) and typed stream events.

use crate::error::GatewayError;
use crate::translate::driver::{error_event, ChunkHead, EventHandler, Flow, SseDriven};
use crate::translate::params::{unsupported, ParamTable, Rule};
use crate::translate::sse::SseEvent;
use serde_json::{json, Map, Value};

const KIND: &str = "cohere";

pub const PARAMS: ParamTable = ParamTable {
    kind: KIND,
    rules: &[
        ("model", Rule::Map),
        ("messages", Rule::Map),
        ("max_tokens", Rule::Map),
        ("max_completion_tokens", Rule::Map),
        ("temperature", Rule::Map),
        ("top_p", Rule::Map),
        ("top_k", Rule::Map),
        ("stop", Rule::Map),
        ("seed", Rule::Map),
        ("presence_penalty", Rule::Map),
        ("frequency_penalty", Rule::Map),
        ("stream", Rule::Map),
        ("stream_options", Rule::Map),
        ("tools", Rule::Map),
        ("tool_choice", Rule::Map),
        ("response_format", Rule::Map),
        ("n", Rule::Map),
        ("parallel_tool_calls", Rule::Drop),
        ("user", Rule::Drop),
        ("metadata", Rule::Drop),
        ("store", Rule::Drop),
        ("service_tier", Rule::Drop),
        ("logit_bias", Rule::Drop),
        ("prompt_cache_key", Rule::Drop),
        ("safety_identifier", Rule::Drop),
        ("verbosity", Rule::Drop),
        (
            "reasoning_effort",
            Rule::Reject("not mapped to Cohere's thinking settings"),
        ),
        ("thinking", Rule::Reject("Anthropic's `thinking` object")),
        ("logprobs", Rule::Reject("not mapped to Cohere's logprobs")),
        (
            "top_logprobs",
            Rule::Reject("not mapped to Cohere's logprobs"),
        ),
        ("audio", Rule::Reject("Cohere has no audio output")),
        ("modalities", Rule::Reject("Cohere answers with text only")),
        (
            "prediction",
            Rule::Reject("Cohere has no predicted outputs"),
        ),
        (
            "web_search_options",
            Rule::Reject("not available on Cohere"),
        ),
        ("functions", Rule::Reject("deprecated: use `tools`")),
        (
            "function_call",
            Rule::Reject("deprecated: use `tool_choice`"),
        ),
    ],
};

fn bad(msg: String) -> GatewayError {
    GatewayError::BadRequest(msg)
}

/// OpenAI Chat request → Cohere v2 chat request.
pub fn request(
    req: &Map<String, Value>,
    model: &str,
) -> Result<(Value, Vec<String>), GatewayError> {
    let dropped = PARAMS.check(req)?;
    let mut out = Map::new();
    out.insert("model".into(), json!(model));
    let mut messages = Vec::new();
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
            .ok_or_else(|| bad(format!("messages[{i}]: `role` is required")))?;
        let mut msg = Map::new();
        msg.insert(
            "role".into(),
            json!(if role == "developer" { "system" } else { role }),
        );
        match role {
            "system" | "developer" | "user" | "assistant" | "tool" => {}
            other => return Err(bad(format!("messages[{i}]: unknown role `{other}`"))),
        }
        if let Some(c) = m.get("content").filter(|c| !c.is_null()) {
            for (j, p) in c.as_array().into_iter().flatten().enumerate() {
                if !matches!(
                    p.get("type").and_then(Value::as_str),
                    Some("text") | Some("image_url")
                ) {
                    return Err(unsupported(
                        "messages",
                        KIND,
                        &format!(
                            "messages[{i}].content[{j}]: only text and image_url parts are mapped"
                        ),
                    ));
                }
            }
            msg.insert("content".into(), c.clone());
        }
        for key in ["tool_calls", "tool_call_id"] {
            if let Some(v) = m.get(key).filter(|v| !v.is_null()) {
                msg.insert(key.into(), v.clone());
            }
        }
        messages.push(Value::Object(msg));
    }
    out.insert("messages".into(), Value::Array(messages));
    if let Some(n) = req
        .get("max_completion_tokens")
        .or_else(|| req.get("max_tokens"))
        .filter(|v| !v.is_null())
    {
        let n = n
            .as_u64()
            .filter(|n| *n > 0)
            .ok_or_else(|| bad("max_tokens must be a positive integer".into()))?;
        out.insert("max_tokens".into(), json!(n));
    }
    if let Some(t) = req.get("temperature").and_then(Value::as_f64) {
        if t < 0.0 {
            return Err(unsupported("temperature", KIND, "must not be negative"));
        }
    }
    for (from, to) in [
        ("temperature", "temperature"),
        ("top_p", "p"),
        ("top_k", "k"),
        ("seed", "seed"),
        ("presence_penalty", "presence_penalty"),
        ("frequency_penalty", "frequency_penalty"),
    ] {
        if let Some(v) = req.get(from).filter(|v| !v.is_null()) {
            out.insert(to.into(), v.clone());
        }
    }
    match req.get("stop") {
        Some(Value::String(s)) => {
            out.insert("stop_sequences".into(), json!([s]));
        }
        Some(Value::Array(a)) if !a.is_empty() => {
            out.insert("stop_sequences".into(), Value::Array(a.clone()));
        }
        _ => {}
    }
    if let Some(n) = req.get("n").and_then(Value::as_u64).filter(|n| *n != 1) {
        return Err(unsupported(
            "n",
            KIND,
            &format!("{n} choices: Cohere returns one"),
        ));
    }
    if req.get("stream").and_then(Value::as_bool) == Some(true) {
        out.insert("stream".into(), json!(true));
    }
    match req
        .get("response_format")
        .and_then(|r| r.get("type"))
        .and_then(Value::as_str)
    {
        None | Some("text") => {}
        Some("json_object") => {
            out.insert("response_format".into(), json!({"type": "json_object"}));
        }
        Some("json_schema") => {
            let schema = req
                .get("response_format")
                .and_then(|r| r.pointer("/json_schema/schema"))
                .ok_or_else(|| bad("response_format.json_schema.schema is required".into()))?;
            out.insert(
                "response_format".into(),
                json!({"type": "json_object", "json_schema": schema}),
            );
        }
        Some(other) => {
            return Err(bad(format!(
                "response_format.type `{other}`: expected text, json_object or json_schema"
            )))
        }
    }
    let mut tools = req
        .get("tools")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    match req.get("tool_choice") {
        None | Some(Value::Null) => {}
        Some(Value::String(c)) => match c.as_str() {
            "auto" => {}
            "required" => {
                out.insert("tool_choice".into(), json!("REQUIRED"));
            }
            "none" => {
                out.insert("tool_choice".into(), json!("NONE"));
            }
            other => {
                return Err(bad(format!(
                    "tool_choice `{other}`: expected auto, required, none or a function"
                )))
            }
        },
        Some(obj) => {
            // Cohere cannot name one tool: require a call and offer only it.
            let name = obj
                .pointer("/function/name")
                .and_then(Value::as_str)
                .ok_or_else(|| {
                    bad(
                        "tool_choice: expected {\"type\":\"function\",\"function\":{\"name\":…}}"
                            .into(),
                    )
                })?;
            tools.retain(|t| t.pointer("/function/name").and_then(Value::as_str) == Some(name));
            if tools.is_empty() {
                return Err(bad(format!(
                    "tool_choice names `{name}`, which is not in `tools`"
                )));
            }
            out.insert("tool_choice".into(), json!("REQUIRED"));
        }
    }
    if !tools.is_empty() {
        out.insert("tools".into(), Value::Array(tools));
    }
    Ok((Value::Object(out), dropped))
}

pub fn finish_reason(reason: &str) -> &'static str {
    match reason {
        "TOOL_CALL" => "tool_calls",
        "MAX_TOKENS" => "length",
        "ERROR_TOXIC" => "content_filter",
        // COMPLETE, STOP_SEQUENCE, ERROR, TIMEOUT
        _ => "stop",
    }
}

/// Cohere usage → OpenAI usage: `tokens` counts what was processed;
/// `billed_units` leaves out template tokens.
pub fn usage(u: &Value) -> Value {
    let n = |p: &str| u.pointer(p).and_then(Value::as_u64).unwrap_or(0);
    let (prompt, completion) = (n("/tokens/input_tokens"), n("/tokens/output_tokens"));
    json!({
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "prompt_tokens_details": {"cached_tokens": n("/cached_tokens")},
    })
}

pub fn openai_error(body: &[u8]) -> Value {
    let v: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    let message = v
        .get("message")
        .and_then(Value::as_str)
        .map(str::to_string)
        .unwrap_or_else(|| String::from_utf8_lossy(body).into_owned());
    json!({"error": {"message": message, "type": "cohere_error", "param": null, "code": null, "provider": "cohere"}})
}

pub fn response(body: &[u8], created: u64, model: &str) -> Result<Value, GatewayError> {
    let r: Value = serde_json::from_slice(body).map_err(|e| GatewayError::UpstreamProtocol {
        provider: KIND.into(),
        reason: format!("response is not JSON: {e}"),
    })?;
    let m = &r["message"];
    let text: String = m
        .get("content")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|c| c.get("text").and_then(Value::as_str))
        .collect();
    let calls = m
        .get("tool_calls")
        .and_then(Value::as_array)
        .filter(|c| !c.is_empty());
    let mut message = json!({"role": "assistant", "content": if text.is_empty() && calls.is_some() { Value::Null } else { json!(text) }, "refusal": null});
    if let Some(c) = calls {
        message["tool_calls"] = Value::Array(c.clone());
    }
    if let Some(plan) = m
        .get("tool_plan")
        .and_then(Value::as_str)
        .filter(|p| !p.is_empty())
    {
        message["reasoning_content"] = json!(plan);
    }
    Ok(json!({
        "id": r.get("id").cloned().unwrap_or(json!("cohere")),
        "object": "chat.completion",
        "created": created,
        "model": model,
        "choices": [{"index": 0, "message": message, "logprobs": null, "finish_reason": finish_reason(r["finish_reason"].as_str().unwrap_or("COMPLETE"))}],
        "usage": usage(r.get("usage").unwrap_or(&Value::Null)),
    }))
}

/// Cohere v2 stream events → OpenAI chunks.
pub struct CohereToOpenAi {
    head: ChunkHead,
    usage: Option<Value>,
}

impl CohereToOpenAi {
    pub fn new(include_usage: bool, created: u64, model: &str) -> SseDriven<Self> {
        SseDriven::new(CohereToOpenAi {
            head: ChunkHead {
                model: model.to_string(),
                ..ChunkHead::new(include_usage, created)
            },
            usage: None,
        })
    }

    fn chunk(&self, delta: Value, finish: Option<&str>, out: &mut Vec<u8>) {
        self.head.chunk(&delta, finish, out);
    }
}

impl EventHandler for CohereToOpenAi {
    fn event(&mut self, e: SseEvent, out: &mut Vec<u8>, flow: &mut Flow) {
        let Ok(v) = serde_json::from_str::<Value>(&e.data) else {
            return;
        };
        let kind = v
            .get("type")
            .and_then(Value::as_str)
            .unwrap_or(e.event.as_str())
            .to_string();
        let index = v.get("index").and_then(Value::as_u64).unwrap_or(0);
        let m = v.pointer("/delta/message").cloned().unwrap_or(Value::Null);
        match kind.as_str() {
            "message-start" => {
                self.head.id = v
                    .get("id")
                    .and_then(Value::as_str)
                    .unwrap_or("cohere")
                    .to_string();
                self.chunk(json!({"role": "assistant", "content": ""}), None, out);
            }
            "content-delta" => {
                if let Some(t) = m
                    .pointer("/content/text")
                    .and_then(Value::as_str)
                    .filter(|t| !t.is_empty())
                {
                    self.chunk(json!({"content": t}), None, out);
                }
            }
            "tool-plan-delta" => {
                if let Some(t) = m
                    .get("tool_plan")
                    .and_then(Value::as_str)
                    .filter(|t| !t.is_empty())
                {
                    self.chunk(json!({"reasoning_content": t}), None, out);
                }
            }
            "tool-call-start" => {
                let c = &m["tool_calls"];
                let header = json!({"index": index, "id": c["id"], "type": "function", "function": {"name": c["function"]["name"], "arguments": c["function"]["arguments"].as_str().unwrap_or("")}});
                self.chunk(json!({"tool_calls": [header]}), None, out);
            }
            "tool-call-delta" => {
                if let Some(a) = m
                    .pointer("/tool_calls/function/arguments")
                    .and_then(Value::as_str)
                {
                    self.chunk(
                        json!({"tool_calls": [{"index": index, "function": {"arguments": a}}]}),
                        None,
                        out,
                    );
                }
            }
            "message-end" => {
                let d = &v["delta"];
                if let Some(u) = d.get("usage") {
                    self.usage = Some(usage(u));
                }
                let reason = d
                    .get("finish_reason")
                    .and_then(Value::as_str)
                    .unwrap_or("COMPLETE");
                if reason == "ERROR" {
                    error_event(
                        "the provider reported an error at the end of the stream",
                        "upstream_error",
                        out,
                    );
                    flow.fail();
                    return;
                }
                self.chunk(json!({}), Some(finish_reason(reason)), out);
                self.head.usage_chunk(json!(self.usage), out);
                out.extend_from_slice(b"data: [DONE]\n\n");
                flow.finish();
            }
            _ => {}
        }
    }

    fn end(&mut self, out: &mut Vec<u8>, flow: &mut Flow) {
        flow.fail();
        error_event(
            "the provider ended the stream before message-end",
            "upstream_stream_interrupted",
            out,
        );
    }

    fn usage(&self) -> Option<Value> {
        self.usage.clone()
    }
}

#[cfg(test)]
#[path = "cohere/tests.rs"]
mod tests;
