use super::*;
use crate::translate::StreamTranslator;

fn corpus(name: &str) -> Option<Vec<u8>> {
    std::fs::read(format!(
        "{}/../../shared/conformance/cohere/{name}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .ok()
}

#[test]
fn golden_minimal_request() {
    let Some(bytes) = corpus("request_chat_v2.json") else {
        return;
    };
    let recorded: Value = serde_json::from_slice(&bytes).unwrap();
    let openai = json!({"model": "alias", "stream": false, "messages": [{"role": "user", "content": "hello"}]});
    let (mut out, dropped) = request(
        openai.as_object().unwrap(),
        recorded["model"].as_str().unwrap(),
    )
    .unwrap();
    assert!(dropped.is_empty());
    out["stream"] = json!(false);
    assert_eq!(out, recorded);
}

#[test]
fn parameters_and_tool_choice_take_coheres_names() {
    let tools = json!([{"type": "function", "function": {"name": "a", "parameters": {}}}, {"type": "function", "function": {"name": "b", "parameters": {}}}]);
    let (out, dropped) = request(
        json!({"model": "m", "messages": [{"role": "developer", "content": "be brief"}, {"role": "user", "content": "x"}], "top_p": 0.5, "top_k": 4, "stop": "END", "max_completion_tokens": 9, "user": "u", "tools": tools, "tool_choice": {"type": "function", "function": {"name": "b"}}})
            .as_object()
            .unwrap(),
        "command-r",
    )
    .unwrap();
    assert_eq!(
        (
            out["p"].as_f64(),
            out["k"].as_u64(),
            out["max_tokens"].as_u64()
        ),
        (Some(0.5), Some(4), Some(9))
    );
    assert_eq!(out["stop_sequences"], json!(["END"]));
    assert_eq!(out["messages"][0]["role"], "system");
    assert_eq!(out["tool_choice"], "REQUIRED");
    assert_eq!(
        out["tools"].as_array().unwrap().len(),
        1,
        "only the named tool is offered"
    );
    assert_eq!(dropped, ["user"]);
    for (extra, param) in [
        (json!({"n": 3}), "n"),
        (json!({"reasoning_effort": "low"}), "reasoning_effort"),
        (json!({"logprobs": true}), "logprobs"),
    ] {
        let mut r = extra.as_object().unwrap().clone();
        r.insert("messages".into(), json!([{"role": "user", "content": "x"}]));
        match request(&r, "m") {
            Err(GatewayError::UnsupportedParameter { param: p, .. }) => assert_eq!(p, param),
            other => panic!("{param}: {:?}", other.map(|o| o.0)),
        }
    }
}

#[test]
fn responses_map_text_tools_plan_finish_and_usage() {
    if let Some(b) = corpus("response_chat_v2.json") {
        let o = response(&b, 1, "command-r7b-12-2024").unwrap();
        assert_eq!(
            o["choices"][0]["message"]["content"],
            "Hello! How can I assist you today?"
        );
        assert_eq!(o["choices"][0]["finish_reason"], "stop");
        assert_eq!(
            (
                o["usage"]["prompt_tokens"].as_u64(),
                o["usage"]["completion_tokens"].as_u64()
            ),
            (Some(496), Some(11)),
            "tokens, not billed_units"
        );
        assert_eq!(o["model"], "command-r7b-12-2024");
    }
    if let Some(b) = corpus("response_tool_call.json") {
        let c: Value = serde_json::from_slice(&b).unwrap();
        let o = response(&b, 1, "m").unwrap();
        let m = &o["choices"][0]["message"];
        assert_eq!(o["choices"][0]["finish_reason"], "tool_calls");
        assert_eq!(m["tool_calls"], c["message"]["tool_calls"]);
        assert_eq!(m["reasoning_content"], c["message"]["tool_plan"]);
        assert!(m["content"].is_null());
        assert_eq!(o["usage"]["prompt_tokens_details"]["cached_tokens"], 992);
    }
    if let Some(b) = corpus("response_cached_tokens.json") {
        assert_eq!(
            response(&b, 1, "m").unwrap()["usage"]["prompt_tokens_details"]["cached_tokens"],
            2928
        );
    }
    for (c, o) in [
        ("COMPLETE", "stop"),
        ("STOP_SEQUENCE", "stop"),
        ("MAX_TOKENS", "length"),
        ("TOOL_CALL", "tool_calls"),
        ("ERROR_TOXIC", "content_filter"),
    ] {
        assert_eq!(finish_reason(c), o);
    }
}

/// The recordings hold event payloads only; replay them as Cohere frames them.
fn framed(jsonl: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    for line in String::from_utf8_lossy(jsonl)
        .lines()
        .filter(|l| !l.trim().is_empty())
    {
        let v: Value = serde_json::from_str(line).unwrap();
        out.extend_from_slice(
            format!("event: {}\ndata: {line}\n\n", v["type"].as_str().unwrap()).as_bytes(),
        );
    }
    out
}

fn run(bytes: &[u8], piece: usize) -> (Vec<Value>, bool, String) {
    let mut t = CohereToOpenAi::new(true, 1, "command-r");
    let mut out = Vec::new();
    for c in bytes.chunks(piece) {
        out.extend(t.push(c));
    }
    out.extend(t.finish());
    let text = String::from_utf8(out).unwrap();
    let events = text
        .split("\n\n")
        .filter_map(|f| f.strip_prefix("data: "))
        .filter(|d| *d != "[DONE]")
        .map(|d| serde_json::from_str(d).unwrap())
        .collect();
    (events, t.failed(), text)
}

#[test]
fn recorded_streams_translate_in_any_chunking() {
    for file in ["stream_text.jsonl", "stream_tool_call.jsonl"] {
        let Some(jsonl) = corpus(file) else { continue };
        let bytes = framed(&jsonl);
        let (events, failed, text) = run(&bytes, bytes.len());
        assert!(
            !failed && text.trim_end().ends_with("data: [DONE]"),
            "{file}: {text}"
        );
        for piece in [1, 7, 64] {
            assert_eq!(
                run(&bytes, piece).0,
                events,
                "{file} in {piece}-byte pieces"
            );
        }
        let source: Vec<Value> = String::from_utf8_lossy(&jsonl)
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        let end = source.iter().find(|e| e["type"] == "message-end").unwrap();
        let u = &events.last().unwrap()["usage"];
        assert_eq!(
            u["prompt_tokens"], end["delta"]["usage"]["tokens"]["input_tokens"],
            "{file}"
        );
        assert_eq!(
            u["prompt_tokens_details"]["cached_tokens"], end["delta"]["usage"]["cached_tokens"],
            "{file}"
        );
        let want: String = source
            .iter()
            .filter(|e| e["type"] == "content-delta")
            .map(|e| e["delta"]["message"]["content"]["text"].as_str().unwrap())
            .collect();
        let got: String = events
            .iter()
            .filter_map(|e| {
                e.pointer("/choices/0/delta/content")
                    .and_then(Value::as_str)
            })
            .filter(|s| !s.is_empty())
            .collect();
        assert_eq!(got, want, "{file}");
    }
    let Some(jsonl) = corpus("stream_tool_call.jsonl") else {
        return;
    };
    let (events, ..) = run(&framed(&jsonl), 5);
    let mut args = vec![String::new(); 2];
    for e in &events {
        if let Some(c) = e.pointer("/choices/0/delta/tool_calls/0") {
            args[c["index"].as_u64().unwrap() as usize]
                .push_str(c["function"]["arguments"].as_str().unwrap_or(""));
        }
    }
    assert_eq!(
        serde_json::from_str::<Value>(&args[0]).unwrap(),
        json!({"location": "San Francisco"})
    );
    assert_eq!(
        serde_json::from_str::<Value>(&args[1]).unwrap(),
        json!({"city": "San Francisco"})
    );
    assert_eq!(
        events.iter().find_map(|e| e
            .pointer("/choices/0/finish_reason")
            .and_then(Value::as_str)),
        Some("tool_calls")
    );
    let plan: String = events
        .iter()
        .filter_map(|e| {
            e.pointer("/choices/0/delta/reasoning_content")
                .and_then(Value::as_str)
        })
        .collect();
    assert!(plan.starts_with("I will use the weather tool"), "{plan}");
}
