//! OpenAI-compatible servers' quirks (policy `compat`), applied to requests
//! and answers. Without quirks, bytes pass through untouched.

use super::driver::{data, error_event, EventHandler, Flow, SseDriven};
use super::openai::ChatRequest;
use super::sse::SseEvent;
use crate::error::GatewayError;
use bytes::Bytes;
use policy::ArchivedCompat;
use serde_json::value::RawValue;
use serde_json::{Map, Value};

/// The request for this server, and the parameters dropped on its account.
pub fn request(
    body: &Bytes,
    req: &ChatRequest<'_>,
    model: &str,
    compat: &ArchivedCompat,
) -> Result<(Bytes, Vec<String>), GatewayError> {
    // Streams always ask for the usage chunk, so that every stream is
    // metered exactly; the answer hides it from a client that did not ask.
    let usage_options = if needs_usage_chunk(req, compat) {
        Some(stream_options_with_usage(req.stream_options)?)
    } else {
        None
    };
    if !compat.changes_requests() && usage_options.is_none() {
        return Ok((super::openai::to_upstream(body, req, model)?, Vec::new()));
    }
    let mut dropped = Vec::new();
    let body = super::openai::rewrite(body, model, |fields| {
        if let Some(opts) = usage_options.as_deref() {
            fields.insert("stream_options".into(), opts);
        }
        for name in compat.drop_params.iter() {
            if fields.remove(name.as_str()).is_some() {
                dropped.push(name.to_string());
            }
        }
        let wanted = compat.max_tokens_field.as_str();
        if !wanted.is_empty() {
            let other = if wanted == "max_tokens" {
                "max_completion_tokens"
            } else {
                "max_tokens"
            };
            if let Some(v) = fields.remove(other) {
                fields.entry(wanted.to_string()).or_insert(v);
            }
        }
        for pair in compat.rename_params.iter() {
            if let Some(v) = fields.remove(pair.0.as_str()) {
                fields.insert(pair.1.to_string(), v);
            }
        }
    })?;
    Ok((body, dropped))
}

/// Whether the gateway adds `stream_options.include_usage` for metering.
pub fn needs_usage_chunk(req: &ChatRequest<'_>, compat: &ArchivedCompat) -> bool {
    req.stream
        && !req.include_usage
        && !compat
            .drop_params
            .iter()
            .any(|p| p.as_str() == "stream_options")
}

/// The client's `stream_options` (other fields kept) with usage on.
fn stream_options_with_usage(sent: Option<&RawValue>) -> Result<Box<RawValue>, GatewayError> {
    let mut opts: Map<String, Value> = match sent {
        Some(raw) => serde_json::from_str::<Option<Map<String, Value>>>(raw.get())
            .map_err(|e| GatewayError::BadRequest(format!("could not parse the JSON body: {e}")))?
            .unwrap_or_default(),
        None => Map::new(),
    };
    opts.insert("include_usage".into(), Value::Bool(true));
    serde_json::value::to_raw_value(&opts).map_err(|e| GatewayError::Internal(e.to_string()))
}

/// The answer rules, owned (streams outlive the policy borrow).
#[derive(Clone, Default)]
pub struct AnswerRules {
    reasoning_field: String,
    strip_fields: Vec<String>,
    /// Drop the usage-only chunk the gateway asked for on its own account.
    hide_usage: bool,
}

impl AnswerRules {
    pub fn new(c: &ArchivedCompat) -> Self {
        AnswerRules {
            reasoning_field: c.reasoning_field.to_string(),
            strip_fields: c.strip_fields.iter().map(|s| s.to_string()).collect(),
            hide_usage: false,
        }
    }

    pub fn hiding_usage(mut self, hide: bool) -> Self {
        self.hide_usage = hide;
        self
    }

    /// Nothing to change in events but (maybe) the hidden usage chunk.
    fn edits_events(&self) -> bool {
        !self.reasoning_field.is_empty() || !self.strip_fields.is_empty()
    }

    /// Apply to a response object or a stream chunk, in place.
    pub fn apply(&self, v: &mut Value) {
        let Some(top) = v.as_object_mut() else { return };
        self.strip(top);
        for choice in top
            .get_mut("choices")
            .and_then(Value::as_array_mut)
            .into_iter()
            .flatten()
        {
            let Some(c) = choice.as_object_mut() else {
                continue;
            };
            self.strip(c);
            for key in ["message", "delta"] {
                if let Some(m) = c.get_mut(key).and_then(Value::as_object_mut) {
                    self.rename_reasoning(m);
                }
            }
        }
    }

    fn strip(&self, o: &mut Map<String, Value>) {
        for f in &self.strip_fields {
            o.remove(f);
        }
    }

    fn rename_reasoning(&self, m: &mut Map<String, Value>) {
        if self.reasoning_field.is_empty() || m.contains_key("reasoning_content") {
            return;
        }
        if let Some(r) = m.remove(&self.reasoning_field) {
            if !r.is_null() {
                m.insert("reasoning_content".into(), r);
            }
        }
    }
}

pub fn answer(body: &[u8], rules: &AnswerRules) -> Result<Vec<u8>, GatewayError> {
    let mut v: Value =
        serde_json::from_slice(body).map_err(|e| GatewayError::UpstreamProtocol {
            provider: "openai_compatible".into(),
            reason: format!("answer is not JSON: {e}"),
        })?;
    rules.apply(&mut v);
    serde_json::to_vec(&v).map_err(|e| GatewayError::Internal(e.to_string()))
}

/// An OpenAI-style stream with the answer rules applied to every chunk.
pub struct CompatStream {
    rules: AnswerRules,
    usage: Option<Value>,
    finished: bool,
}

impl CompatStream {
    pub fn new(rules: AnswerRules) -> SseDriven<Self> {
        SseDriven::new(CompatStream {
            rules,
            usage: None,
            finished: false,
        })
    }
}

impl CompatStream {
    /// Events relayed as they are: only looked at, never re-encoded.
    fn pass(&mut self, e: SseEvent, out: &mut Vec<u8>, flow: &mut Flow) {
        let d = e.data.as_str();
        if d.trim_start().starts_with("{\"error\"") {
            flow.fail();
        }
        if d.contains("\"finish_reason\":\"") {
            self.finished = true;
        }
        if d.contains("\"usage\":{") {
            if let Ok(v) = serde_json::from_str::<Value>(d) {
                self.usage = v.get("usage").cloned();
            }
            if self.rules.hide_usage && d.contains("\"choices\":[]") {
                return;
            }
        }
        out.extend_from_slice(&super::sse::frame(None, d));
    }
}

impl EventHandler for CompatStream {
    fn event(&mut self, e: SseEvent, out: &mut Vec<u8>, flow: &mut Flow) {
        if e.data.trim() == "[DONE]" {
            out.extend_from_slice(b"data: [DONE]\n\n");
            flow.finish();
            return;
        }
        if !self.rules.edits_events() {
            return self.pass(e, out, flow);
        }
        let Ok(mut v) = serde_json::from_str::<Value>(&e.data) else {
            return;
        };
        if v.get("error").is_some() {
            flow.fail();
        }
        if v.pointer("/choices/0/finish_reason")
            .is_some_and(|f| !f.is_null())
        {
            self.finished = true;
        }
        if let Some(u) = v.get("usage").filter(|u| !u.is_null()) {
            self.usage = Some(u.clone());
            let no_choices = v
                .get("choices")
                .and_then(Value::as_array)
                .is_some_and(|c| c.is_empty());
            if self.rules.hide_usage && no_choices {
                return;
            }
        }
        self.rules.apply(&mut v);
        data(&v, out);
    }

    fn end(&mut self, out: &mut Vec<u8>, flow: &mut Flow) {
        flow.finish();
        if self.finished {
            // Some servers omit the terminator; a finished stream still is one.
            out.extend_from_slice(b"data: [DONE]\n\n");
        } else {
            flow.fail();
            error_event(
                "the provider ended the stream early",
                "upstream_stream_interrupted",
                out,
            );
        }
    }

    fn usage(&self) -> Option<Value> {
        self.usage.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::translate::StreamTranslator;
    use policy::{compile_yaml, snapshot, Snapshot};
    use serde_json::json;

    fn provider(compat: &str) -> Snapshot {
        let src = format!("version: 1\nproviders:\n  p:\n    kind: openai_compatible\n    base_url: http://x/v1\n    compat: {compat}\n");
        let c = compile_yaml(&src, "t.yaml", &std::collections::HashMap::new()).unwrap();
        Snapshot::from_bytes(&snapshot::encode(&c.policy, 0).unwrap()).unwrap()
    }

    fn corpus(name: &str) -> Option<Vec<u8>> {
        std::fs::read(format!(
            "{}/../../shared/conformance/openai_compatible/{name}",
            env!("CARGO_MANIFEST_DIR")
        ))
        .ok()
    }

    #[test]
    fn vllm_answers_lose_their_extras_and_name_reasoning_like_openai() {
        let s = provider("{preset: vllm}");
        let rules = AnswerRules::new(&s.policy().providers[0].compat);
        for file in [
            "vllm_style_response_tool_calls.json",
            "vllm_style_response_after_tool.json",
        ] {
            let Some(body) = corpus(file) else { continue };
            let original: Value = serde_json::from_slice(&body).unwrap();
            let out: Value = serde_json::from_slice(&answer(&body, &rules).unwrap()).unwrap();
            let choice = &out["choices"][0];
            assert!(
                choice.get("stop_reason").is_none() && choice.get("token_ids").is_none(),
                "{file}"
            );
            assert!(
                out.get("kv_transfer_params").is_none() && out.get("prompt_token_ids").is_none(),
                "{file}"
            );
            assert_eq!(
                choice["message"]["reasoning_content"],
                original["choices"][0]["message"]["reasoning"],
                "{file}"
            );
            assert!(choice["message"].get("reasoning").is_none());
            assert_eq!(
                choice["finish_reason"], original["choices"][0]["finish_reason"],
                "{file}: the real finish reason, not vLLM's stop_reason"
            );
            assert_eq!(
                choice["message"]["tool_calls"], original["choices"][0]["message"]["tool_calls"],
                "{file}"
            );
            assert_eq!(out["usage"], original["usage"], "{file}");
        }
    }

    #[test]
    fn ollama_reasoning_and_max_tokens() {
        let s = provider("{preset: ollama}");
        let compat = &s.policy().providers[0].compat;
        let Some(body) = corpus("ollama_response.json") else {
            return;
        };
        let out: Value =
            serde_json::from_slice(&answer(&body, &AnswerRules::new(compat)).unwrap()).unwrap();
        assert!(out["choices"][0]["message"]["reasoning_content"]
            .as_str()
            .unwrap()
            .starts_with("Okay"));
        let raw =
            Bytes::from_static(br#"{"model":"alias","max_completion_tokens":50,"messages":[]}"#);
        let req =
            crate::translate::openai::parse_chat(br#"{"model":"alias","messages":[]}"#).unwrap();
        let (sent, dropped) = request(&raw, &req, "qwen3:0.6b", compat).unwrap();
        let sent: Value = serde_json::from_slice(&sent).unwrap();
        assert_eq!(
            sent,
            json!({"model": "qwen3:0.6b", "max_tokens": 50, "messages": []})
        );
        assert!(dropped.is_empty());
    }

    #[test]
    fn mistral_renames_and_drops_and_overrides_win() {
        let s = provider("{preset: mistral, drop_params: [logit_bias]}");
        let compat = &s.policy().providers[0].compat;
        let raw = Bytes::from_static(
            br#"{"model":"m","seed":7,"parallel_tool_calls":true,"logit_bias":{},"messages":[]}"#,
        );
        let req = crate::translate::openai::parse_chat(br#"{"model":"m","messages":[]}"#).unwrap();
        let (sent, dropped) = request(&raw, &req, "mistral-large", compat).unwrap();
        let sent: Value = serde_json::from_slice(&sent).unwrap();
        assert_eq!(sent["random_seed"], 7);
        assert!(sent.get("seed").is_none() && sent.get("logit_bias").is_none());
        assert_eq!(
            sent["parallel_tool_calls"], true,
            "the explicit drop list replaced the preset's"
        );
        assert_eq!(dropped, ["logit_bias"]);
    }

    #[test]
    fn streams_get_the_same_rules_chunk_by_chunk() {
        let s = provider("{preset: vllm}");
        let mut t = CompatStream::new(AnswerRules::new(&s.policy().providers[0].compat));
        let mut out = t.push(b"data: {\"choices\":[{\"index\":0,\"delta\":{\"reasoning\":\"hm\"},\"stop_reason\":null,\"token_ids\":null}]}\n\n");
        out.extend(t.push(b"data: {\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\",\"stop_reason\":151}],\"usage\":{\"total_tokens\":3}}\n\ndata: [DONE]\n\n"));
        out.extend(t.finish());
        let text = String::from_utf8(out).unwrap();
        assert!(
            text.contains("\"reasoning_content\":\"hm\"")
                && !text.contains("stop_reason")
                && !text.contains("token_ids"),
            "{text}"
        );
        assert!(text.ends_with("data: [DONE]\n\n") && !t.failed());
        assert_eq!(t.usage().unwrap()["total_tokens"], 3);
    }

    #[test]
    fn compat_is_validated() {
        for (compat, needle) in [
            ("{preset: nope}", "unknown preset"),
            ("{max_tokens_field: tokens}", "max_completion_tokens"),
            ("{strip_fields: [choices]}", "standard field"),
        ] {
            let src = format!("version: 1\nproviders:\n  p:\n    kind: openai_compatible\n    base_url: http://x/v1\n    compat: {compat}\n");
            let e = compile_yaml(&src, "t.yaml", &std::collections::HashMap::new())
                .unwrap_err()
                .to_string();
            assert!(e.contains(needle), "{compat}: {e}");
        }
        let e = compile_yaml("version: 1\nproviders:\n  p:\n    kind: anthropic\n    base_url: http://x\n    compat: {preset: vllm}\n", "t.yaml", &std::collections::HashMap::new()).unwrap_err().to_string();
        assert!(e.contains("applies to `openai`"), "{e}");
    }
}
