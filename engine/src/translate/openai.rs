//! OpenAI Chat Completions in, OpenAI (or OpenAI-compatible) out.

use crate::error::GatewayError;
use bytes::Bytes;
use serde::Deserialize;
use serde_json::value::RawValue;
use std::borrow::Cow;
use std::collections::BTreeMap;

/// The fields the gateway reads; everything else passes through untouched.
#[derive(Debug)]
pub struct ChatRequest<'a> {
    pub model: Cow<'a, str>,
    pub stream: bool,
    /// `stream_options.include_usage`: send a final usage chunk.
    pub include_usage: bool,
    /// `stream_options` as sent, for edits that must keep its other fields.
    pub stream_options: Option<&'a RawValue>,
    /// `max_tokens` (or `max_completion_tokens`) when it is a whole number.
    pub max_tokens: Option<u64>,
    /// The conversation, raw; read only when a router classifies it.
    pub messages: Option<&'a RawValue>,
    /// Anthropic's top-level `system`, raw.
    pub system: Option<&'a RawValue>,
}

#[derive(Deserialize, Default)]
struct StreamOptions {
    #[serde(default)]
    include_usage: Option<bool>,
}

#[derive(Deserialize)]
struct Head<'a> {
    #[serde(borrow, default)]
    model: Option<Cow<'a, str>>,
    #[serde(default)]
    stream: Option<bool>,
    #[serde(borrow, default)]
    messages: Option<&'a RawValue>,
    #[serde(borrow, default)]
    stream_options: Option<&'a RawValue>,
    /// Raw, so that an odd value is the provider's to judge, not a parse error.
    #[serde(borrow, default)]
    max_tokens: Option<&'a RawValue>,
    #[serde(borrow, default)]
    max_completion_tokens: Option<&'a RawValue>,
    #[serde(borrow, default)]
    system: Option<&'a RawValue>,
}

pub fn parse_chat(body: &[u8]) -> Result<ChatRequest<'_>, GatewayError> {
    let first = body.iter().find(|b| !b.is_ascii_whitespace());
    if first != Some(&b'{') {
        return Err(GatewayError::BadRequest(
            "the body must be a JSON object (Content-Type: application/json)".into(),
        ));
    }
    let head: Head<'_> = serde_json::from_slice(body)
        .map_err(|e| GatewayError::BadRequest(format!("could not parse the JSON body: {e}")))?;
    let model = head
        .model
        .filter(|m| !m.is_empty())
        .ok_or_else(|| GatewayError::BadRequest("you must provide a model parameter".into()))?;
    match head
        .messages
        .map(|m| m.get().trim_start().as_bytes().first().copied())
    {
        Some(Some(b'[')) => {}
        Some(_) => {
            return Err(GatewayError::BadRequest(
                "`messages` must be an array".into(),
            ))
        }
        None => {
            return Err(GatewayError::BadRequest(
                "missing required parameter: `messages`".into(),
            ))
        }
    }
    Ok(ChatRequest {
        model,
        stream: head.stream.unwrap_or(false),
        include_usage: match head.stream_options {
            Some(raw) => serde_json::from_str::<Option<StreamOptions>>(raw.get())
                .map_err(|e| {
                    GatewayError::BadRequest(format!("could not parse the JSON body: {e}"))
                })?
                .and_then(|o| o.include_usage)
                .unwrap_or(false),
            None => false,
        },
        stream_options: head.stream_options,
        max_tokens: head
            .max_tokens
            .or(head.max_completion_tokens)
            .and_then(|v| v.get().parse().ok()),
        messages: head.messages,
        system: head.system,
    })
}

/// The upstream body: the client's bytes untouched when the model name is
/// unchanged, else the same object with `model` replaced.
pub fn to_upstream(
    body: &Bytes,
    req: &ChatRequest<'_>,
    target_model: &str,
) -> Result<Bytes, GatewayError> {
    if req.model == target_model {
        return Ok(body.clone());
    }
    rewrite(body, target_model, |_| ())
}

/// The same JSON object with `edit` applied to its top-level fields and
/// `model` set; values are kept as raw JSON, never re-parsed.
pub fn rewrite<'b>(
    body: &'b [u8],
    target_model: &str,
    edit: impl FnOnce(&mut BTreeMap<String, &'b RawValue>),
) -> Result<Bytes, GatewayError> {
    let mut fields: BTreeMap<String, &'b RawValue> = serde_json::from_slice(body)
        .map_err(|e| GatewayError::BadRequest(format!("could not parse the JSON body: {e}")))?;
    edit(&mut fields);
    let model =
        serde_json::to_string(target_model).map_err(|e| GatewayError::Internal(e.to_string()))?;
    let model = RawValue::from_string(model).map_err(|e| GatewayError::Internal(e.to_string()))?;
    // Shorten the borrow so the local `model` can join the map.
    let mut fields: BTreeMap<String, &RawValue> = fields.into_iter().collect();
    fields.insert("model".into(), &model);
    serde_json::to_vec(&fields)
        .map(Bytes::from)
        .map_err(|e| GatewayError::Internal(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_model_and_stream_and_rejects_bad_bodies() {
        let r = parse_chat(br#"{"model":"m","stream":true,"messages":[]}"#).unwrap();
        assert_eq!((r.model.as_ref(), r.stream), ("m", true));
        let r = parse_chat(br#" {"model":"m\u0031","messages":[{"role":"user","content":"x"}]}"#)
            .unwrap();
        assert_eq!((r.model.as_ref(), r.stream), ("m1", false));
        for (bad, needle) in [
            (&br#"[1]"#[..], "JSON object"),
            (br#"{"model":"m""#, "could not parse"),
            (br#"{"messages":[]}"#, "model parameter"),
            (br#"{"model":"","messages":[]}"#, "model parameter"),
            (br#"{"model":"m"}"#, "messages"),
            (br#"{"model":"m","messages":"hi"}"#, "must be an array"),
            (
                br#"{"model":"m","messages":[],"stream":"yes"}"#,
                "could not parse",
            ),
            (b"", "JSON object"),
        ] {
            let e = parse_chat(bad).unwrap_err().to_string();
            assert!(e.contains(needle), "{}: {e}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn model_rewrite_keeps_every_other_field() {
        let body = Bytes::from_static(br#"{"model":"alias","messages":[{"role":"user","content":"hi \"x\""}],"temperature":0.2,"tools":[{"type":"function"}]}"#);
        let req = parse_chat(&body).unwrap();
        let same = to_upstream(&body, &req, "alias").unwrap();
        assert_eq!(
            same.as_ptr(),
            body.as_ptr(),
            "unchanged model forwards the same bytes"
        );
        let out = to_upstream(&body, &req, "gpt-4o-mini").unwrap();
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        let orig: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["model"], "gpt-4o-mini");
        for k in ["messages", "temperature", "tools"] {
            assert_eq!(v[k], orig[k], "{k}");
        }
    }
}
