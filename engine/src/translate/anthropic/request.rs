//! OpenAI Chat Completions request → Anthropic Messages request.

use crate::error::GatewayError;
use crate::translate::params::{unsupported, ParamTable, Rule};
use serde_json::{json, Map, Value};

const KIND: &str = "anthropic";

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
        ("stream", Rule::Map),
        ("stream_options", Rule::Map),
        ("tools", Rule::Map),
        ("tool_choice", Rule::Map),
        ("parallel_tool_calls", Rule::Map),
        ("response_format", Rule::Map),
        ("reasoning_effort", Rule::Map),
        ("thinking", Rule::Map),
        ("user", Rule::Map),
        ("n", Rule::Map),
        ("logprobs", Rule::Map),
        ("modalities", Rule::Map),
        ("metadata", Rule::Drop),
        ("store", Rule::Drop),
        ("service_tier", Rule::Drop),
        ("presence_penalty", Rule::Drop),
        ("frequency_penalty", Rule::Drop),
        ("seed", Rule::Drop),
        ("logit_bias", Rule::Drop),
        ("prompt_cache_key", Rule::Drop),
        ("safety_identifier", Rule::Drop),
        ("verbosity", Rule::Drop),
        (
            "top_logprobs",
            Rule::Reject("Anthropic returns no log probabilities"),
        ),
        ("audio", Rule::Reject("Anthropic has no audio output")),
        (
            "prediction",
            Rule::Reject("Anthropic has no predicted outputs"),
        ),
        (
            "web_search_options",
            Rule::Reject("use an Anthropic server tool instead"),
        ),
        ("functions", Rule::Reject("deprecated: use `tools`")),
        (
            "function_call",
            Rule::Reject("deprecated: use `tool_choice`"),
        ),
    ],
};

/// Anthropic requires `max_tokens`; OpenAI clients often leave it out.
pub const DEFAULT_MAX_TOKENS: u64 = 4096;

/// Thinking budgets for OpenAI's `reasoning_effort`.
fn thinking_budget(effort: &str) -> Result<Option<u64>, GatewayError> {
    Ok(match effort {
        "none" => None,
        "minimal" | "low" => Some(1024),
        "medium" => Some(4096),
        "high" => Some(16384),
        other => {
            return Err(GatewayError::BadRequest(format!(
                "reasoning_effort `{other}`: expected none, minimal, low, medium or high"
            )))
        }
    })
}

/// The Anthropic request body and the OpenAI parameters that were dropped.
pub fn from_openai(
    req: &Map<String, Value>,
    model: &str,
) -> Result<(Value, Vec<String>), GatewayError> {
    let dropped = PARAMS.check(req)?;
    let mut out = Map::new();
    out.insert("model".into(), json!(model));
    let (system, messages) = messages(req.get("messages"))?;
    if !system.is_empty() {
        out.insert("system".into(), Value::Array(system));
    }
    out.insert("messages".into(), Value::Array(messages));

    let explicit = match req
        .get("max_completion_tokens")
        .or_else(|| req.get("max_tokens"))
    {
        Some(v) if !v.is_null() => Some(
            v.as_u64()
                .filter(|n| *n > 0)
                .ok_or_else(|| bad("max_tokens must be a positive integer"))?,
        ),
        _ => None,
    };
    let mut max_tokens = explicit.unwrap_or(DEFAULT_MAX_TOKENS);
    if let Some(t) = req.get("thinking").filter(|t| !t.is_null()) {
        out.insert("thinking".into(), t.clone());
    } else if let Some(effort) = req.get("reasoning_effort").and_then(Value::as_str) {
        if let Some(mut budget) = thinking_budget(effort)? {
            match explicit {
                // Anthropic counts thinking inside max_tokens, as OpenAI counts
                // reasoning inside max_completion_tokens: the budget must fit.
                Some(n) if n <= budget => {
                    budget = n / 2;
                    if budget < 1024 {
                        return Err(unsupported("reasoning_effort", KIND, "Anthropic needs max_tokens of at least 2048 to think (its budget is at least 1024 tokens)"));
                    }
                }
                Some(_) => {}
                None => max_tokens += budget,
            }
            out.insert(
                "thinking".into(),
                json!({"type": "enabled", "budget_tokens": budget}),
            );
        }
    }
    out.insert("max_tokens".into(), json!(max_tokens));

    if let Some(t) = req.get("temperature").filter(|v| !v.is_null()) {
        let t = t
            .as_f64()
            .ok_or_else(|| bad("temperature must be a number"))?;
        if !(0.0..=1.0).contains(&t) {
            return Err(unsupported(
                "temperature",
                KIND,
                &format!("{t} is outside Anthropic's range 0 to 1"),
            ));
        }
        out.insert("temperature".into(), json!(t));
    }
    for name in ["top_p", "top_k"] {
        if let Some(v) = req.get(name).filter(|v| !v.is_null()) {
            out.insert(name.into(), v.clone());
        }
    }
    match req.get("stop") {
        Some(Value::String(s)) => {
            out.insert("stop_sequences".into(), json!([s]));
        }
        Some(Value::Array(a)) if !a.is_empty() => {
            out.insert("stop_sequences".into(), Value::Array(a.clone()));
        }
        Some(Value::Null) | Some(Value::Array(_)) | None => {}
        Some(_) => return Err(bad("stop must be a string or an array of strings")),
    }
    if req.get("stream").and_then(Value::as_bool) == Some(true) {
        out.insert("stream".into(), json!(true));
    }
    if let Some(user) = req.get("user").and_then(Value::as_str) {
        out.insert("metadata".into(), json!({"user_id": user}));
    }
    if let Some(n) = req.get("n").and_then(Value::as_u64) {
        if n != 1 {
            return Err(unsupported(
                "n",
                KIND,
                "Anthropic returns one choice per request",
            ));
        }
    }
    if req.get("logprobs").and_then(Value::as_bool) == Some(true) {
        return Err(unsupported(
            "logprobs",
            KIND,
            "Anthropic returns no log probabilities",
        ));
    }
    if let Some(m) = req.get("modalities").and_then(Value::as_array) {
        if m.iter().any(|x| x != "text") {
            return Err(unsupported(
                "modalities",
                KIND,
                "Anthropic answers with text only",
            ));
        }
    }
    tools(req, &mut out)?;
    response_format(req.get("response_format"), &mut out)?;
    Ok((Value::Object(out), dropped))
}

fn bad(msg: &str) -> GatewayError {
    GatewayError::BadRequest(msg.to_string())
}

/// Hoist system messages; turn the rest into alternating turns of blocks.
fn messages(messages: Option<&Value>) -> Result<(Vec<Value>, Vec<Value>), GatewayError> {
    let list = messages
        .and_then(Value::as_array)
        .ok_or_else(|| bad("`messages` must be an array"))?;
    let mut system = Vec::new();
    let mut turns: Vec<(&'static str, Vec<Value>)> = Vec::new();
    for (i, m) in list.iter().enumerate() {
        let at = |what: &str| GatewayError::BadRequest(format!("messages[{i}]: {what}"));
        let role = m
            .get("role")
            .and_then(Value::as_str)
            .ok_or_else(|| at("`role` is required"))?;
        let content = m.get("content");
        let (role, blocks) = match role {
            "system" | "developer" => {
                system.extend(content_blocks(content, i, false)?);
                continue;
            }
            "user" => ("user", content_blocks(content, i, true)?),
            "assistant" => ("assistant", assistant_blocks(m, i)?),
            "tool" => {
                let id = m
                    .get("tool_call_id")
                    .and_then(Value::as_str)
                    .ok_or_else(|| at("a tool message needs `tool_call_id`"))?;
                let result = match content {
                    Some(Value::String(s)) => json!(s),
                    Some(Value::Array(_)) => Value::Array(content_blocks(content, i, false)?),
                    _ => json!(""),
                };
                (
                    "user",
                    vec![json!({"type": "tool_result", "tool_use_id": id, "content": result})],
                )
            }
            "function" => return Err(at("`function` messages are deprecated: use `tool`")),
            other => return Err(at(&format!("unknown role `{other}`"))),
        };
        if blocks.is_empty() {
            continue;
        }
        match turns.last_mut() {
            // Anthropic wants alternating turns: merge, tool results first.
            Some((last, existing)) if *last == role => {
                let (mut results, rest): (Vec<Value>, Vec<Value>) = existing
                    .drain(..)
                    .chain(blocks)
                    .partition(|b| b["type"] == "tool_result");
                results.extend(rest);
                *existing = results;
            }
            _ => turns.push((role, blocks)),
        }
    }
    check_tool_results(&turns)?;
    let messages = turns
        .into_iter()
        .map(|(role, content)| json!({"role": role, "content": content}))
        .collect();
    Ok((system, messages))
}

/// Every tool result must answer a tool call of the directly preceding
/// assistant turn; Anthropic rejects the request otherwise.
fn check_tool_results(turns: &[(&'static str, Vec<Value>)]) -> Result<(), GatewayError> {
    for (t, (_, blocks)) in turns.iter().enumerate() {
        for b in blocks.iter().filter(|b| b["type"] == "tool_result") {
            let id = b["tool_use_id"].as_str().unwrap_or("");
            let answered = t > 0
                && turns[t - 1].0 == "assistant"
                && turns[t - 1]
                    .1
                    .iter()
                    .any(|u| u["type"] == "tool_use" && u["id"] == id);
            if !answered {
                return Err(GatewayError::BadRequest(format!(
                    "the tool result for `{id}` does not answer a tool call of the directly preceding assistant message (Anthropic requires tool results to follow their calls)"
                )));
            }
        }
    }
    Ok(())
}

fn content_blocks(
    content: Option<&Value>,
    i: usize,
    allow_media: bool,
) -> Result<Vec<Value>, GatewayError> {
    match content {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::String(s)) if s.is_empty() => Ok(Vec::new()),
        Some(Value::String(s)) => Ok(vec![json!({"type": "text", "text": s})]),
        Some(Value::Array(parts)) => parts
            .iter()
            .enumerate()
            .map(|(j, p)| part(p, i, j, allow_media))
            .filter(|r| !matches!(r, Ok(Value::Null)))
            .collect(),
        Some(_) => Err(GatewayError::BadRequest(format!(
            "messages[{i}].content must be a string or an array of parts"
        ))),
    }
}

fn part(p: &Value, i: usize, j: usize, allow_media: bool) -> Result<Value, GatewayError> {
    let at = format!("messages[{i}].content[{j}]");
    let kind = p.get("type").and_then(Value::as_str).unwrap_or("");
    let mut block = match kind {
        "text" => {
            let text = p.get("text").and_then(Value::as_str).unwrap_or("");
            if text.is_empty() {
                return Ok(Value::Null);
            }
            json!({"type": "text", "text": text})
        }
        "image_url" if allow_media => {
            let url = p
                .pointer("/image_url/url")
                .and_then(Value::as_str)
                .ok_or_else(|| {
                    GatewayError::BadRequest(format!("{at}: image_url.url is required"))
                })?;
            json!({"type": "image", "source": media_source(url, &at)?})
        }
        "file" if allow_media => {
            let data = p.pointer("/file/file_data").and_then(Value::as_str).ok_or_else(|| {
                unsupported("messages", KIND, &format!("{at}: only inline files (file.file_data as a data: URL) can be sent to Anthropic"))
            })?;
            json!({"type": "document", "source": media_source(data, &at)?})
        }
        "refusal" => return Ok(Value::Null),
        other => {
            return Err(unsupported(
                "messages",
                KIND,
                &format!("{at}: content parts of type `{other}` cannot be sent here"),
            ))
        }
    };
    // Prompt caching marks pass through (an Anthropic extension clients use).
    if let Some(cc) = p.get("cache_control") {
        block["cache_control"] = cc.clone();
    }
    Ok(block)
}

/// `data:<mime>;base64,<data>` → base64 source; http(s) → url source.
fn media_source(url: &str, at: &str) -> Result<Value, GatewayError> {
    if let Some(rest) = url.strip_prefix("data:") {
        let (meta, data) = rest
            .split_once(',')
            .ok_or_else(|| GatewayError::BadRequest(format!("{at}: malformed data: URL")))?;
        let mime = meta
            .strip_suffix(";base64")
            .ok_or_else(|| GatewayError::BadRequest(format!("{at}: data: URLs must be base64")))?;
        return Ok(json!({"type": "base64", "media_type": mime, "data": data}));
    }
    if url.starts_with("https://") || url.starts_with("http://") {
        return Ok(json!({"type": "url", "url": url}));
    }
    Err(GatewayError::BadRequest(format!(
        "{at}: expected a data: URL or an http(s) URL"
    )))
}

fn assistant_blocks(m: &Value, i: usize) -> Result<Vec<Value>, GatewayError> {
    let mut blocks = Vec::new();
    // Thinking first, with signatures: Anthropic needs them back for
    // thinking + tool-use continuations.
    if let Some(thinking) = m.get("thinking_blocks").and_then(Value::as_array) {
        blocks.extend(thinking.iter().cloned());
    }
    blocks.extend(content_blocks(m.get("content"), i, false)?);
    if let Some(calls) = m.get("tool_calls").and_then(Value::as_array) {
        for (j, c) in calls.iter().enumerate() {
            let at = format!("messages[{i}].tool_calls[{j}]");
            let id = c
                .get("id")
                .and_then(Value::as_str)
                .ok_or_else(|| GatewayError::BadRequest(format!("{at}: `id` is required")))?;
            let name = c
                .pointer("/function/name")
                .and_then(Value::as_str)
                .ok_or_else(|| {
                    GatewayError::BadRequest(format!("{at}: function.name is required"))
                })?;
            let args = c
                .pointer("/function/arguments")
                .and_then(Value::as_str)
                .unwrap_or("");
            let input: Value = if args.trim().is_empty() {
                json!({})
            } else {
                serde_json::from_str(args).map_err(|e| {
                    GatewayError::BadRequest(format!(
                        "{at}.function.arguments is not valid JSON: {e}"
                    ))
                })?
            };
            blocks.push(json!({"type": "tool_use", "id": id, "name": name, "input": input}));
        }
    }
    Ok(blocks)
}

fn tools(req: &Map<String, Value>, out: &mut Map<String, Value>) -> Result<(), GatewayError> {
    if let Some(list) = req.get("tools").and_then(Value::as_array) {
        let mut tools = Vec::with_capacity(list.len());
        for (i, t) in list.iter().enumerate() {
            if t.get("type").and_then(Value::as_str) != Some("function") {
                return Err(unsupported(
                    "tools",
                    KIND,
                    &format!("tools[{i}]: only `function` tools can be sent to Anthropic"),
                ));
            }
            let f = &t["function"];
            let name = f
                .get("name")
                .and_then(Value::as_str)
                .ok_or_else(|| bad(&format!("tools[{i}].function.name is required")))?;
            let mut tool = json!({
                "name": name,
                "input_schema": f.get("parameters").cloned().unwrap_or_else(|| json!({"type": "object", "properties": {}})),
            });
            if let Some(d) = f.get("description") {
                tool["description"] = d.clone();
            }
            if let Some(cc) = t.get("cache_control") {
                tool["cache_control"] = cc.clone();
            }
            tools.push(tool);
        }
        if !tools.is_empty() {
            out.insert("tools".into(), Value::Array(tools));
        }
    }
    let mut choice = match req.get("tool_choice") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(match s.as_str() {
            "auto" => json!({"type": "auto"}),
            "required" => json!({"type": "any"}),
            "none" => json!({"type": "none"}),
            other => {
                return Err(bad(&format!(
                    "tool_choice `{other}`: expected auto, required, none or a function"
                )))
            }
        }),
        Some(obj) => {
            let name = obj
                .pointer("/function/name")
                .and_then(Value::as_str)
                .ok_or_else(|| {
                    bad("tool_choice: expected {\"type\":\"function\",\"function\":{\"name\":…}}")
                })?;
            Some(json!({"type": "tool", "name": name}))
        }
    };
    if req.get("parallel_tool_calls").and_then(Value::as_bool) == Some(false)
        && out.contains_key("tools")
    {
        let c = choice.get_or_insert_with(|| json!({"type": "auto"}));
        if c["type"] != "none" {
            c["disable_parallel_tool_use"] = json!(true);
        }
    }
    if let Some(c) = choice {
        out.insert("tool_choice".into(), c);
    }
    Ok(())
}

fn response_format(rf: Option<&Value>, out: &mut Map<String, Value>) -> Result<(), GatewayError> {
    let Some(rf) = rf.filter(|v| !v.is_null()) else {
        return Ok(());
    };
    match rf.get("type").and_then(Value::as_str) {
        Some("text") => Ok(()),
        Some("json_schema") => {
            let schema = rf
                .pointer("/json_schema/schema")
                .ok_or_else(|| bad("response_format.json_schema.schema is required"))?;
            out.insert(
                "output_config".into(),
                json!({"format": {"type": "json_schema", "schema": schema}}),
            );
            Ok(())
        }
        Some("json_object") => Err(unsupported(
            "response_format",
            KIND,
            "Anthropic has no JSON mode without a schema; use `json_schema`",
        )),
        _ => Err(bad(
            "response_format.type: expected text, json_object or json_schema",
        )),
    }
}

#[cfg(test)]
#[path = "request/tests.rs"]
mod tests;
