use super::*;

fn conformance(name: &str) -> Option<Value> {
    let path = format!(
        "{}/../../shared/conformance/anthropic/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    let text = std::fs::read_to_string(path).ok()?;
    Some(serde_json::from_str(&text).expect("corpus JSON"))
}

fn translate(openai: Value, model: &str) -> Value {
    from_openai(openai.as_object().unwrap(), model).unwrap().0
}

/// Representation choices that mean the same to the API: string content is
/// one text block, `caller` is a response field SDKs echo, `stream: false`
/// and `is_error: false` are defaults.
fn normalise(mut v: Value) -> Value {
    if let Some(msgs) = v.get_mut("messages").and_then(Value::as_array_mut) {
        for m in msgs {
            if let Some(Value::String(s)) = m.get("content").cloned() {
                m["content"] = json!([{"type": "text", "text": s}]);
            }
            if let Some(blocks) = m.get_mut("content").and_then(Value::as_array_mut) {
                for b in blocks {
                    if let Some(o) = b.as_object_mut() {
                        o.remove("caller");
                        if o.get("is_error") == Some(&json!(false)) {
                            o.remove("is_error");
                        }
                    }
                }
            }
        }
    }
    if let Some(o) = v.as_object_mut() {
        if o.get("stream") == Some(&json!(false)) {
            o.remove("stream");
        }
    }
    v
}

fn weather_tool() -> Value {
    let recorded = conformance("stream_tool_use.request.json").unwrap_or(json!({"tools": [{"name": "get_weather", "description": "d", "input_schema": {"type": "object"}}]}));
    let t = &recorded["tools"][0];
    json!({"type": "function", "function": {"name": t["name"], "description": t["description"], "parameters": t["input_schema"]}})
}

fn assert_golden(file: &str, openai: Value) {
    let Some(recorded) = conformance(file) else {
        return;
    };
    let model = recorded["model"].as_str().unwrap().to_string();
    assert_eq!(
        normalise(translate(openai, &model)),
        normalise(recorded),
        "{file}"
    );
}

#[test]
fn golden_streamed_tool_call_request() {
    assert_golden(
        "stream_tool_use.request.json",
        json!({"model": "alias", "max_tokens": 1024, "stream": true, "stream_options": {"include_usage": true},
               "messages": [{"role": "user", "content": "What is the weather in SF?"}],
               "tools": [weather_tool()]}),
    );
}

#[test]
fn golden_tool_result_turn() {
    let Some(recorded) = conformance("stream_text_after_tool_result.request.json") else {
        return;
    };
    let result = recorded["messages"][2]["content"][0]["content"].clone();
    assert_golden(
        "stream_text_after_tool_result.request.json",
        json!({"model": "alias", "max_tokens": 1024, "stream": true,
               "messages": [
                   {"role": "user", "content": "What is the weather in SF?"},
                   {"role": "assistant", "content": null, "tool_calls": [{"id": "toolu_018acGYLtfR52q9yDbWaEdQZ", "type": "function",
                       "function": {"name": "get_weather", "arguments": "{\"location\": \"San Francisco, CA\", \"units\": \"f\"}"}}]},
                   {"role": "tool", "tool_call_id": "toolu_018acGYLtfR52q9yDbWaEdQZ", "content": result}],
               "tools": [weather_tool()]}),
    );
}

#[test]
fn golden_thinking_round_trip_keeps_the_signature() {
    let Some(recorded) = conformance("request_thinking_roundtrip.json") else {
        return;
    };
    let assistant = &recorded["messages"][1]["content"];
    assert_golden(
        "request_thinking_roundtrip.json",
        json!({"model": "alias", "max_tokens": 4096, "stream": false, "tool_choice": "auto",
               "thinking": {"type": "enabled", "budget_tokens": 3000},
               "messages": [
                   {"role": "user", "content": [{"type": "text", "text": "What is the largest city in the user country?"}]},
                   {"role": "assistant", "content": assistant[1]["text"], "thinking_blocks": [assistant[0]],
                    "tool_calls": [{"id": "toolu_01YGzqpRE16Vricda3Aqcejo", "type": "function", "function": {"name": "get_user_country", "arguments": "{}"}}]},
                   {"role": "tool", "tool_call_id": "toolu_01YGzqpRE16Vricda3Aqcejo", "content": "Mexico"}],
               "tools": [{"type": "function", "function": {"name": "get_user_country", "description": "",
                          "parameters": {"additionalProperties": false, "properties": {}, "type": "object"}}}]}),
    );
}

#[test]
fn golden_image_url_and_base64() {
    let Some(recorded) = conformance("request_image_url.json") else {
        return;
    };
    let url = recorded["messages"][0]["content"][1]["source"]["url"].clone();
    assert_golden(
        "request_image_url.json",
        json!({"model": "alias", "max_tokens": 4096,
               "messages": [{"role": "user", "content": [{"type": "text", "text": "What is this vegetable?"}, {"type": "image_url", "image_url": {"url": url}}]}]}),
    );
    let out = translate(
        json!({"model": "m", "messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}}]}]}),
        "m",
    );
    assert_eq!(
        out["messages"][0]["content"][0],
        json!({"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="}})
    );
}

#[test]
fn golden_tool_choice_required_is_any() {
    let Some(recorded) = conformance("request_tool_choice_any.docs.json") else {
        return;
    };
    let t = &recorded["tools"][0];
    assert_golden(
        "request_tool_choice_any.docs.json",
        json!({"model": "alias", "max_tokens": 1024, "stream": true, "tool_choice": "required",
               "messages": [{"role": "user", "content": "What is the weather like in San Francisco?"}],
               "tools": [{"type": "function", "function": {"name": t["name"], "description": t["description"], "parameters": t["input_schema"]}}]}),
    );
}

#[test]
fn golden_json_schema_output() {
    let Some(recorded) = conformance("request_output_config_json_schema.json") else {
        return;
    };
    let schema = recorded["output_config"]["format"]["schema"].clone();
    let user = recorded["messages"][0]["content"].clone();
    assert_golden(
        "request_output_config_json_schema.json",
        json!({"model": "alias", "max_tokens": recorded["max_tokens"], "messages": [{"role": "user", "content": user}],
               "response_format": {"type": "json_schema", "json_schema": {"name": "OrderDetails", "schema": schema, "strict": true}}}),
    );
}

#[test]
fn system_messages_are_hoisted_and_turns_merged() {
    let out = translate(
        json!({"model": "m", "messages": [
            {"role": "system", "content": "be brief"},
            {"role": "developer", "content": [{"type": "text", "text": "and kind"}]},
            {"role": "user", "content": "a"},
            {"role": "user", "content": "b"},
            {"role": "assistant", "content": null, "tool_calls": [
                {"id": "t1", "type": "function", "function": {"name": "f", "arguments": "{\"x\":1}"}},
                {"id": "t2", "type": "function", "function": {"name": "g", "arguments": ""}}]},
            {"role": "tool", "tool_call_id": "t1", "content": "one"},
            {"role": "tool", "tool_call_id": "t2", "content": [{"type": "text", "text": "two"}]},
            {"role": "user", "content": "thanks"}]}),
        "m",
    );
    assert_eq!(
        out["system"],
        json!([{"type": "text", "text": "be brief"}, {"type": "text", "text": "and kind"}])
    );
    let m = out["messages"].as_array().unwrap();
    assert_eq!(m.len(), 3, "{out}");
    assert_eq!(
        m[0]["content"].as_array().unwrap().len(),
        2,
        "consecutive user turns merged"
    );
    assert_eq!(m[1]["content"][0]["input"], json!({"x": 1}));
    assert_eq!(
        m[1]["content"][1]["input"],
        json!({}),
        "empty arguments are an empty object"
    );
    let last = m[2]["content"].as_array().unwrap();
    assert_eq!(
        last.iter()
            .map(|b| b["type"].as_str().unwrap())
            .collect::<Vec<_>>(),
        ["tool_result", "tool_result", "text"]
    );
    assert_eq!(last[1]["content"], json!([{"type": "text", "text": "two"}]));
    assert_eq!(out["max_tokens"], DEFAULT_MAX_TOKENS);
}

#[test]
fn parameters_are_mapped_dropped_or_rejected() {
    let (out, dropped) = from_openai(
        json!({"model": "m", "messages": [{"role": "user", "content": "x"}], "stop": "END", "user": "u1", "seed": 4,
               "presence_penalty": 0.5, "temperature": 0.3, "tools": [weather_tool()], "parallel_tool_calls": false,
               "reasoning_effort": "medium", "max_completion_tokens": 10000, "n": 1})
        .as_object()
        .unwrap(),
        "m",
    )
    .unwrap();
    assert_eq!(out["stop_sequences"], json!(["END"]));
    assert_eq!(out["metadata"], json!({"user_id": "u1"}));
    assert_eq!(
        out["tool_choice"],
        json!({"type": "auto", "disable_parallel_tool_use": true})
    );
    assert_eq!(
        out["thinking"],
        json!({"type": "enabled", "budget_tokens": 4096})
    );
    assert_eq!(out["max_tokens"], 10000);
    assert_eq!(dropped, ["presence_penalty", "seed"]);
    let (out, _) = from_openai(json!({"model": "m", "messages": [{"role": "user", "content": "x"}], "reasoning_effort": "high"}).as_object().unwrap(), "m").unwrap();
    assert_eq!(
        out["max_tokens"],
        DEFAULT_MAX_TOKENS + 16384,
        "no client limit: room for the thinking budget"
    );

    for (req, param) in [
        (json!({"temperature": 1.5}), "temperature"),
        (json!({"n": 2}), "n"),
        (json!({"logprobs": true}), "logprobs"),
        (json!({"top_logprobs": 3}), "top_logprobs"),
        (json!({"audio": {}}), "audio"),
        (
            json!({"response_format": {"type": "json_object"}}),
            "response_format",
        ),
        (json!({"frobnicate": true}), "frobnicate"),
        (
            json!({"reasoning_effort": "high", "max_tokens": 1500}),
            "reasoning_effort",
        ),
    ] {
        let mut r = req.as_object().unwrap().clone();
        r.insert("model".into(), json!("m"));
        r.insert("messages".into(), json!([{"role": "user", "content": "x"}]));
        match from_openai(&r, "m") {
            Err(GatewayError::UnsupportedParameter { param: p, .. }) => assert_eq!(p, param),
            other => panic!("{param}: {:?}", other.map(|o| o.0)),
        }
    }
}

#[test]
fn a_tool_result_must_answer_the_preceding_turn() {
    let e = from_openai(
        json!({"model": "m", "messages": [
            {"role": "user", "content": "x"},
            {"role": "tool", "tool_call_id": "toolu_01GHndag5wQmbzNihYmV2UBj", "content": "late"}]})
        .as_object()
        .unwrap(),
        "m",
    )
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("toolu_01GHndag5wQmbzNihYmV2UBj") && e.contains("directly preceding"),
        "{e}"
    );
    let e = from_openai(
        json!({"model": "m", "messages": [{"role": "assistant", "tool_calls": [{"id": "a", "type": "function", "function": {"name": "f", "arguments": "{not json"}}]}]}).as_object().unwrap(),
        "m",
    )
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("messages[0].tool_calls[0].function.arguments"),
        "{e}"
    );
}
