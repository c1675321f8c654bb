//! OpenAI Chat Completions request → Gemini `generateContent` request.

use super::decode_call_id;
use crate::error::GatewayError;
use crate::translate::params::{unsupported, ParamTable, Rule};
use serde_json::{json, Map, Value};
use std::collections::HashMap;

const KIND: &str = "gemini";

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
        ("response_format", Rule::Map),
        ("reasoning_effort", Rule::Map),
        ("n", Rule::Map),
        ("seed", Rule::Map),
        ("presence_penalty", Rule::Map),
        ("frequency_penalty", Rule::Map),
        ("modalities", Rule::Map),
        ("logprobs", Rule::Map),
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
            "thinking",
            Rule::Reject("Anthropic's `thinking` object; use `reasoning_effort`"),
        ),
        (
            "top_logprobs",
            Rule::Reject("not mapped to Gemini's logprobs"),
        ),
        ("audio", Rule::Reject("audio output is not mapped")),
        (
            "prediction",
            Rule::Reject("Gemini has no predicted outputs"),
        ),
        (
            "web_search_options",
            Rule::Reject("use Gemini's google_search tool instead"),
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

/// The request path's method (`generateContent` or the SSE stream). The
/// model is one escaped path segment: a client's `m:countTokens#` or
/// `../` can name neither another method nor another resource.
pub fn path(prefix: &str, model: &str, stream: bool) -> String {
    let model = crate::translate::path_segment(model);
    if stream {
        format!("{prefix}/v1beta/models/{model}:streamGenerateContent?alt=sse")
    } else {
        format!("{prefix}/v1beta/models/{model}:generateContent")
    }
}

pub fn from_openai(req: &Map<String, Value>) -> Result<(Value, Vec<String>), GatewayError> {
    let dropped = PARAMS.check(req)?;
    let mut out = Map::new();
    let (system, contents) = contents(req.get("messages"))?;
    if !system.is_empty() {
        out.insert("systemInstruction".into(), json!({"parts": system}));
    }
    out.insert("contents".into(), Value::Array(contents));
    let mut config = Map::new();
    if let Some(n) = req
        .get("max_completion_tokens")
        .or_else(|| req.get("max_tokens"))
        .filter(|v| !v.is_null())
    {
        config.insert(
            "maxOutputTokens".into(),
            json!(n
                .as_u64()
                .filter(|n| *n > 0)
                .ok_or_else(|| bad("max_tokens must be a positive integer".into()))?),
        );
    }
    for (from, to) in [
        ("temperature", "temperature"),
        ("top_p", "topP"),
        ("top_k", "topK"),
        ("seed", "seed"),
        ("presence_penalty", "presencePenalty"),
        ("frequency_penalty", "frequencyPenalty"),
    ] {
        if let Some(v) = req.get(from).filter(|v| !v.is_null()) {
            config.insert(to.into(), v.clone());
        }
    }
    if let Some(t) = req.get("temperature").and_then(Value::as_f64) {
        if !(0.0..=2.0).contains(&t) {
            return Err(unsupported("temperature", KIND, "expected 0 to 2"));
        }
    }
    match req.get("stop") {
        Some(Value::String(s)) => {
            config.insert("stopSequences".into(), json!([s]));
        }
        Some(Value::Array(a)) if !a.is_empty() => {
            config.insert("stopSequences".into(), Value::Array(a.clone()));
        }
        _ => {}
    }
    if let Some(n) = req.get("n").and_then(Value::as_u64).filter(|n| *n != 1) {
        config.insert("candidateCount".into(), json!(n));
    }
    if req.get("logprobs").and_then(Value::as_bool) == Some(true) {
        return Err(unsupported(
            "logprobs",
            KIND,
            "not mapped to Gemini's logprobs",
        ));
    }
    if let Some(m) = req.get("modalities").and_then(Value::as_array) {
        if m.iter().any(|x| x != "text") {
            return Err(unsupported(
                "modalities",
                KIND,
                "only text output is mapped",
            ));
        }
        config.insert("responseModalities".into(), json!(["TEXT"]));
    }
    match req
        .get("response_format")
        .and_then(|rf| rf.get("type"))
        .and_then(Value::as_str)
    {
        None | Some("text") => {}
        Some("json_object") => {
            config.insert("responseMimeType".into(), json!("application/json"));
        }
        Some("json_schema") => {
            let schema = req
                .get("response_format")
                .and_then(|rf| rf.pointer("/json_schema/schema"))
                .ok_or_else(|| bad("response_format.json_schema.schema is required".into()))?;
            config.insert("responseMimeType".into(), json!("application/json"));
            config.insert("responseJsonSchema".into(), schema.clone());
        }
        Some(other) => {
            return Err(bad(format!(
                "response_format.type `{other}`: expected text, json_object or json_schema"
            )))
        }
    }
    if let Some(effort) = req.get("reasoning_effort").and_then(Value::as_str) {
        let budget = match effort {
            "none" => 0,
            "minimal" | "low" => 1024,
            "medium" => 8192,
            "high" => 24576,
            other => {
                return Err(bad(format!(
                    "reasoning_effort `{other}`: expected none, minimal, low, medium or high"
                )))
            }
        };
        config.insert(
            "thinkingConfig".into(),
            json!({"thinkingBudget": budget, "includeThoughts": budget > 0}),
        );
    }
    out.insert("generationConfig".into(), Value::Object(config));
    tools(req, &mut out)?;
    Ok((Value::Object(out), dropped))
}

fn contents(messages: Option<&Value>) -> Result<(Vec<Value>, Vec<Value>), GatewayError> {
    let list = messages
        .and_then(Value::as_array)
        .ok_or_else(|| bad("`messages` must be an array".into()))?;
    let mut system = Vec::new();
    let mut turns: Vec<(&'static str, Vec<Value>)> = Vec::new();
    // functionResponse needs the function's name; OpenAI tool messages only
    // carry the call id.
    let mut names: HashMap<String, String> = HashMap::new();
    for (i, m) in list.iter().enumerate() {
        let at = |what: &str| bad(format!("messages[{i}]: {what}"));
        let role = m
            .get("role")
            .and_then(Value::as_str)
            .ok_or_else(|| at("`role` is required"))?;
        let (role, parts) = match role {
            "system" | "developer" => {
                system.extend(parts(m.get("content"), i, false)?);
                continue;
            }
            "user" => ("user", parts(m.get("content"), i, true)?),
            "assistant" => {
                let mut p = parts(m.get("content"), i, false)?;
                for (j, c) in m
                    .get("tool_calls")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .enumerate()
                {
                    let full_id = c
                        .get("id")
                        .and_then(Value::as_str)
                        .ok_or_else(|| at(&format!("tool_calls[{j}].id is required")))?;
                    let name = c
                        .pointer("/function/name")
                        .and_then(Value::as_str)
                        .ok_or_else(|| at(&format!("tool_calls[{j}].function.name is required")))?;
                    let args = c
                        .pointer("/function/arguments")
                        .and_then(Value::as_str)
                        .unwrap_or("");
                    let args: Value = if args.trim().is_empty() {
                        json!({})
                    } else {
                        serde_json::from_str(args).map_err(|e| {
                            at(&format!(
                                "tool_calls[{j}].function.arguments is not valid JSON: {e}"
                            ))
                        })?
                    };
                    names.insert(full_id.to_string(), name.to_string());
                    let (id, signature) = decode_call_id(full_id);
                    let mut part = json!({"functionCall": {"id": id, "name": name, "args": args}});
                    if let Some(sig) = signature {
                        part["thoughtSignature"] = json!(sig);
                    }
                    p.push(part);
                }
                ("model", p)
            }
            "tool" => {
                let full_id = m
                    .get("tool_call_id")
                    .and_then(Value::as_str)
                    .ok_or_else(|| at("a tool message needs `tool_call_id`"))?;
                let name = names.get(full_id).ok_or_else(|| at(&format!("the tool result for `{full_id}` answers no earlier tool call (Gemini needs the function's name)")))?;
                let text = text_of(m.get("content"));
                // The response must be an object: JSON objects go as they are,
                // anything else is wrapped.
                let response = match serde_json::from_str::<Value>(&text) {
                    Ok(v @ Value::Object(_)) => v,
                    _ => json!({"result": text}),
                };
                let (id, _) = decode_call_id(full_id);
                (
                    "user",
                    vec![
                        json!({"functionResponse": {"id": id, "name": name, "response": response}}),
                    ],
                )
            }
            other => return Err(at(&format!("unknown role `{other}`"))),
        };
        if parts.is_empty() {
            continue;
        }
        match turns.last_mut() {
            Some((last, existing)) if *last == role => existing.extend(parts),
            _ => turns.push((role, parts)),
        }
    }
    Ok((
        system,
        turns
            .into_iter()
            .map(|(role, parts)| json!({"role": role, "parts": parts}))
            .collect(),
    ))
}

fn text_of(content: Option<&Value>) -> String {
    match content {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(parts)) => parts
            .iter()
            .filter_map(|p| p.get("text").and_then(Value::as_str))
            .collect::<Vec<_>>()
            .join("\n"),
        _ => String::new(),
    }
}

fn parts(content: Option<&Value>, i: usize, allow_media: bool) -> Result<Vec<Value>, GatewayError> {
    match content {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::String(s)) if s.is_empty() => Ok(Vec::new()),
        Some(Value::String(s)) => Ok(vec![json!({"text": s})]),
        Some(Value::Array(list)) => {
            let mut out = Vec::new();
            for (j, p) in list.iter().enumerate() {
                let at = format!("messages[{i}].content[{j}]");
                match p.get("type").and_then(Value::as_str).unwrap_or("") {
                    "text" => {
                        if let Some(t) = p
                            .get("text")
                            .and_then(Value::as_str)
                            .filter(|t| !t.is_empty())
                        {
                            out.push(json!({"text": t}));
                        }
                    }
                    "refusal" => {}
                    "image_url" if allow_media => {
                        let url = p
                            .pointer("/image_url/url")
                            .and_then(Value::as_str)
                            .ok_or_else(|| bad(format!("{at}: image_url.url is required")))?;
                        out.push(media(url, &at)?);
                    }
                    "file" if allow_media => {
                        let data = p
                            .pointer("/file/file_data")
                            .and_then(Value::as_str)
                            .ok_or_else(|| {
                                unsupported(
                                    "messages",
                                    KIND,
                                    &format!("{at}: only inline files (file.file_data) are mapped"),
                                )
                            })?;
                        out.push(media(data, &at)?);
                    }
                    other => {
                        return Err(unsupported(
                            "messages",
                            KIND,
                            &format!("{at}: content parts of type `{other}` cannot be sent here"),
                        ))
                    }
                }
            }
            Ok(out)
        }
        Some(_) => Err(bad(format!(
            "messages[{i}].content must be a string or an array of parts"
        ))),
    }
}

/// `data:` URLs become `inlineData`; other URLs `fileData` (Google fetches
/// only some URLs; the gateway does not download on the client's behalf).
fn media(url: &str, at: &str) -> Result<Value, GatewayError> {
    if let Some(rest) = url.strip_prefix("data:") {
        let (meta, data) = rest
            .split_once(',')
            .ok_or_else(|| bad(format!("{at}: malformed data: URL")))?;
        let mime = meta
            .strip_suffix(";base64")
            .ok_or_else(|| bad(format!("{at}: data: URLs must be base64")))?;
        return Ok(json!({"inlineData": {"mimeType": mime, "data": data}}));
    }
    let lower = url.to_ascii_lowercase();
    let mime = [
        (".png", "image/png"),
        (".gif", "image/gif"),
        (".webp", "image/webp"),
        (".pdf", "application/pdf"),
    ]
    .iter()
    .find(|(ext, _)| lower.split('?').next().unwrap_or("").ends_with(ext))
    .map(|(_, m)| *m)
    .unwrap_or("image/jpeg");
    Ok(json!({"fileData": {"mimeType": mime, "fileUri": url}}))
}

fn tools(req: &Map<String, Value>, out: &mut Map<String, Value>) -> Result<(), GatewayError> {
    if let Some(list) = req
        .get("tools")
        .and_then(Value::as_array)
        .filter(|l| !l.is_empty())
    {
        let mut decls = Vec::new();
        for (i, t) in list.iter().enumerate() {
            if t.get("type").and_then(Value::as_str) != Some("function") {
                return Err(unsupported(
                    "tools",
                    KIND,
                    &format!("tools[{i}]: only `function` tools are mapped"),
                ));
            }
            let f = &t["function"];
            let name = f
                .get("name")
                .and_then(Value::as_str)
                .ok_or_else(|| bad(format!("tools[{i}].function.name is required")))?;
            let mut d = json!({"name": name, "description": f.get("description").cloned().unwrap_or(json!(""))});
            if let Some(p) = f.get("parameters") {
                // Full JSON Schema; `parameters` would take only Gemini's
                // OpenAPI subset.
                d["parametersJsonSchema"] = p.clone();
            }
            decls.push(d);
        }
        out.insert("tools".into(), json!([{"functionDeclarations": decls}]));
    }
    let config = match req.get("tool_choice") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(match s.as_str() {
            "auto" => json!({"mode": "AUTO"}),
            "required" => json!({"mode": "ANY"}),
            "none" => json!({"mode": "NONE"}),
            other => {
                return Err(bad(format!(
                    "tool_choice `{other}`: expected auto, required, none or a function"
                )))
            }
        }),
        Some(obj) => {
            let name = obj
                .pointer("/function/name")
                .and_then(Value::as_str)
                .ok_or_else(|| {
                    bad(
                        "tool_choice: expected {\"type\":\"function\",\"function\":{\"name\":…}}"
                            .into(),
                    )
                })?;
            Some(json!({"mode": "ANY", "allowedFunctionNames": [name]}))
        }
    };
    if let Some(c) = config {
        out.insert("toolConfig".into(), json!({"functionCallingConfig": c}));
    }
    Ok(())
}

#[cfg(test)]
#[path = "request/tests.rs"]
mod tests;
