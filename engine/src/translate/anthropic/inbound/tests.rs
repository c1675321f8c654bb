use super::*;
use crate::translate::sse::SseParser;
use crate::translate::StreamTranslator;

fn corpus(name: &str) -> Option<Vec<u8>> {
    std::fs::read(format!(
        "{}/../../shared/conformance/anthropic/{name}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .ok()
}

/// String content is one text block; `caller` is a response echo; false
/// defaults say nothing.
fn normalise(mut v: Value) -> Value {
    if let Some(o) = v.as_object_mut() {
        if o.get("stream") == Some(&json!(false)) {
            o.remove("stream");
        }
    }
    for m in v
        .get_mut("messages")
        .and_then(Value::as_array_mut)
        .into_iter()
        .flatten()
    {
        if let Some(Value::String(s)) = m.get("content").cloned() {
            m["content"] = json!([{"type": "text", "text": s}]);
        }
        for b in m
            .get_mut("content")
            .and_then(Value::as_array_mut)
            .into_iter()
            .flatten()
        {
            if let Some(o) = b.as_object_mut() {
                o.remove("caller");
                if o.get("is_error") == Some(&json!(false)) {
                    o.remove("is_error");
                }
            }
        }
    }
    v
}

#[test]
fn recorded_requests_survive_the_round_trip_through_the_hub() {
    for file in [
        "stream_tool_use.request.json",
        "stream_text_after_tool_result.request.json",
        "request_thinking_roundtrip.json",
        "request_image_url.json",
        "request_tool_choice_any.docs.json",
        "request_output_config_json_schema.json",
    ] {
        let Some(bytes) = corpus(file) else { continue };
        let original: Map<String, Value> = serde_json::from_slice(&bytes).unwrap();
        let hub = to_openai_request(&original).unwrap();
        let model = original["model"].as_str().unwrap();
        let (back, dropped) = super::super::request::from_openai(&hub, model).unwrap();
        assert!(dropped.is_empty(), "{file}: {dropped:?}");
        let mut want = normalise(Value::Object(original.clone()));
        let mut got = normalise(back);
        // Thinking budgets go through `reasoning_effort`: compare the switch.
        for v in [&mut want, &mut got] {
            if let Some(t) = v.get_mut("thinking") {
                *t = json!(t["type"]);
            }
            if let Some(o) = v.as_object_mut() {
                o.remove("max_tokens");
            }
        }
        assert_eq!(got, want, "{file}");
    }
}

#[test]
fn recorded_responses_come_back_as_they_were() {
    for file in [
        "response_text_tool_use.json",
        "response_thinking_tool_use.json",
        "response_cache_read.json",
        "response_cache_creation.json",
    ] {
        let Some(bytes) = corpus(file) else { continue };
        let original: Value = serde_json::from_slice(&bytes).unwrap();
        let openai = super::super::response::to_openai(&bytes, 1).unwrap();
        let back = to_anthropic_message(&openai);
        let blocks = |v: &Value| -> Vec<Value> {
            v["content"]
                .as_array()
                .unwrap()
                .iter()
                .map(|b| {
                    let mut b = b.clone();
                    b.as_object_mut().unwrap().remove("caller");
                    b
                })
                .collect()
        };
        assert_eq!(blocks(&back), blocks(&original), "{file}");
        assert_eq!(back["stop_reason"], original["stop_reason"], "{file}");
        for k in [
            "input_tokens",
            "cache_creation_input_tokens",
            "cache_read_input_tokens",
            "output_tokens",
        ] {
            assert_eq!(back["usage"][k], original["usage"][k], "{file}: {k}");
        }
    }
}

/// Rebuild (text, tool inputs, thinking, stop reason) from Anthropic events.
fn rebuild(stream: &[u8]) -> (String, Vec<(String, Value)>, String, String) {
    let mut p = SseParser::default();
    let mut ev = Vec::new();
    p.feed(stream, &mut ev).unwrap();
    p.finish(&mut ev);
    let (mut text, mut thinking, mut stop) = (String::new(), String::new(), String::new());
    let mut tools: Vec<(String, String)> = Vec::new();
    for e in ev {
        let Ok(v) = serde_json::from_str::<Value>(&e.data) else {
            continue;
        };
        match v["type"].as_str() {
            Some("content_block_start") if v["content_block"]["type"] == "tool_use" => {
                tools.push((
                    v["content_block"]["name"].as_str().unwrap().to_string(),
                    String::new(),
                ))
            }
            Some("content_block_delta") => match v["delta"]["type"].as_str() {
                Some("text_delta") => text.push_str(v["delta"]["text"].as_str().unwrap()),
                Some("thinking_delta") => {
                    thinking.push_str(v["delta"]["thinking"].as_str().unwrap())
                }
                Some("input_json_delta") => tools
                    .last_mut()
                    .unwrap()
                    .1
                    .push_str(v["delta"]["partial_json"].as_str().unwrap()),
                _ => {}
            },
            Some("message_delta") => {
                stop = v["delta"]["stop_reason"].as_str().unwrap_or("").to_string()
            }
            _ => {}
        }
    }
    let tools = tools
        .into_iter()
        .map(|(n, a)| (n, serde_json::from_str(&a).unwrap_or(Value::Null)))
        .collect();
    (text, tools, thinking, stop)
}

#[test]
fn recorded_streams_survive_both_stream_translators() {
    for file in [
        "stream_tool_use.sse",
        "stream_text_then_tool_use.sse",
        "stream_thinking.sse",
        "stream_text_after_tool_result.sse",
    ] {
        let Some(bytes) = corpus(file) else { continue };
        let mut to_openai = super::super::stream::AnthropicToOpenAi::new(true, 1);
        let mut to_anthropic = OpenAiToAnthropic::new();
        let mut out = Vec::new();
        for piece in bytes.chunks(17) {
            let mid = to_openai.push(piece);
            out.extend(to_anthropic.push(&mid));
        }
        let mid = to_openai.finish();
        out.extend(to_anthropic.push(&mid));
        out.extend(to_anthropic.finish());
        assert!(!to_anthropic.failed(), "{file}");
        assert_eq!(rebuild(&out), rebuild(&bytes), "{file}");
        let text = String::from_utf8(out).unwrap();
        assert!(
            text.starts_with("event: message_start")
                && text.ends_with("event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n"),
            "{file}"
        );
    }
}

#[test]
fn errors_take_anthropic_shapes() {
    let body = error_body(503, br#"{"error":{"message":"every target's circuit breaker is open","type":"upstream_error"}}"#);
    let v: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(
        v,
        json!({"type": "error", "error": {"type": "overloaded_error", "message": "every target's circuit breaker is open"}})
    );
    assert_eq!(error_type(401), "authentication_error");
    assert_eq!(error_type(429), "rate_limit_error");
    let mut t = OpenAiToAnthropic::new();
    let out = String::from_utf8(t.push(b"data: {\"id\":\"x\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"hi\"}}]}\n\ndata: {\"error\":{\"message\":\"Overloaded\",\"type\":\"overloaded_error\"}}\n\n")).unwrap();
    assert!(
        out.contains("event: error")
            && out.contains("overloaded_error")
            && !out.contains("message_stop"),
        "{out}"
    );
    assert!(t.failed());
}

#[test]
fn requests_the_hub_cannot_carry_are_refused() {
    let req = |v: Value| v.as_object().unwrap().clone();
    assert!(
        to_openai_request(&req(json!({"model": "m", "messages": []})))
            .unwrap_err()
            .to_string()
            .contains("max_tokens")
    );
    let e = to_openai_request(&req(
        json!({"model": "m", "max_tokens": 5, "messages": [{"role": "system", "content": "x"}]}),
    ))
    .unwrap_err();
    assert!(e.to_string().contains("unexpected role"), "{e}");
    let e = to_openai_request(&req(json!({"model": "m", "max_tokens": 5, "messages": [], "tools": [{"type": "web_search_20250305", "name": "web_search"}]}))).unwrap_err();
    assert!(e.to_string().contains("server tools"), "{e}");
}
