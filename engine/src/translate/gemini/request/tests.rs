use super::*;
use crate::translate::gemini::encode_call_id;

fn corpus(name: &str) -> Option<Value> {
    let text = std::fs::read_to_string(format!(
        "{}/../../shared/conformance/gemini/{name}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .ok()?;
    Some(serde_json::from_str(&text).expect("corpus JSON"))
}

fn translate(openai: Value) -> Value {
    from_openai(openai.as_object().unwrap()).unwrap().0
}

/// Same meaning, other spelling: proto3 JSON takes snake or camel case, and
/// a function's schema as `parameters` (OpenAPI subset) or
/// `parametersJsonSchema`; `systemInstruction.role` is ignored by the API.
fn normalise(mut v: Value) -> Value {
    if let Some(si) = v
        .get_mut("systemInstruction")
        .and_then(Value::as_object_mut)
    {
        si.remove("role");
    }
    for tool in v
        .get_mut("tools")
        .and_then(Value::as_array_mut)
        .into_iter()
        .flatten()
    {
        for d in tool
            .get_mut("functionDeclarations")
            .and_then(Value::as_array_mut)
            .into_iter()
            .flatten()
        {
            let o = d.as_object_mut().unwrap();
            for key in ["parameters_json_schema", "parametersJsonSchema"] {
                if let Some(schema) = o.remove(key) {
                    o.insert("parameters".into(), schema);
                }
            }
        }
    }
    v
}

fn openai_tools(recorded: &Value) -> Value {
    recorded["tools"][0]["functionDeclarations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            let schema = d.get("parameters").or_else(|| d.get("parameters_json_schema")).cloned().unwrap();
            json!({"type": "function", "function": {"name": d["name"], "description": d["description"], "parameters": schema}})
        })
        .collect()
}

fn call(id: &str, name: &str, args: Value) -> Value {
    json!({"id": id, "type": "function", "function": {"name": name, "arguments": args.to_string()}})
}

#[test]
fn golden_system_instruction() {
    let Some(recorded) = corpus("request_system_instruction.json") else {
        return;
    };
    let out = translate(
        json!({"model": "m", "modalities": ["text"], "messages": [{"role": "system", "content": "You are a chatbot."}, {"role": "user", "content": "Hello!"}]}),
    );
    assert_eq!(normalise(out), normalise(recorded));
}

#[test]
fn golden_function_responses_over_several_turns() {
    let Some(recorded) = corpus("request_function_response_multiturn.json") else {
        return;
    };
    let c = &recorded["contents"];
    let out = translate(
        json!({"model": "m", "tools": openai_tools(&recorded), "messages": [
        {"role": "system", "content": "You are a helpful chatbot."},
        {"role": "user", "content": c[0]["parts"][0]["text"]},
        {"role": "assistant", "content": null, "tool_calls": [call(c[1]["parts"][0]["functionCall"]["id"].as_str().unwrap(), "get_capital", json!({"country": "France"}))]},
        {"role": "tool", "tool_call_id": c[1]["parts"][0]["functionCall"]["id"], "content": "{\"return_value\": \"Paris\"}"},
        {"role": "assistant", "content": null, "tool_calls": [call(c[3]["parts"][0]["functionCall"]["id"].as_str().unwrap(), "get_temperature", json!({"city": "Paris"}))]},
        {"role": "tool", "tool_call_id": c[3]["parts"][0]["functionCall"]["id"], "content": "{\"return_value\": \"30°C\"}"}]}),
    );
    assert_eq!(normalise(out), normalise(recorded));
}

#[test]
fn golden_thought_signature_rides_in_the_call_id() {
    let Some(recorded) = corpus("request_thought_signature_roundtrip.json") else {
        return;
    };
    let part = &recorded["contents"][1]["parts"][0];
    let id = encode_call_id(
        part["functionCall"]["id"].as_str().unwrap(),
        part["thoughtSignature"].as_str(),
    );
    let out = translate(
        json!({"model": "m", "modalities": ["text"], "tools": openai_tools(&recorded), "messages": [
        {"role": "user", "content": recorded["contents"][0]["parts"][0]["text"]},
        {"role": "assistant", "content": null, "tool_calls": [call(&id, "get_country", json!({}))]},
        {"role": "tool", "tool_call_id": id, "content": "{\"return_value\": \"Mexico\"}"}]}),
    );
    assert_eq!(normalise(out), normalise(recorded));
}

#[test]
fn golden_tools_and_required_choice() {
    let Some(recorded) = corpus("stream_function_call.request.json") else {
        return;
    };
    let out = translate(
        json!({"model": "m", "tools": openai_tools(&recorded), "messages": [
        {"role": "system", "content": "You are a helpful chatbot."},
        {"role": "user", "content": recorded["contents"][0]["parts"][0]["text"]}]}),
    );
    assert_eq!(normalise(out), normalise(recorded));
    let Some(forced) = corpus("request_tools_function_calling_config.json") else {
        return;
    };
    let out = translate(
        json!({"model": "m", "tool_choice": "required", "tools": openai_tools(&forced), "messages": [{"role": "user", "content": "x"}]}),
    );
    assert_eq!(
        out["toolConfig"]["functionCallingConfig"]["mode"],
        forced["toolConfig"]["functionCallingConfig"]["mode"]
    );
    let named = translate(
        json!({"model": "m", "tool_choice": {"type": "function", "function": {"name": "final_result"}}, "tools": openai_tools(&forced), "messages": [{"role": "user", "content": "x"}]}),
    );
    assert_eq!(
        named["toolConfig"]["functionCallingConfig"],
        json!({"mode": "ANY", "allowedFunctionNames": ["final_result"]})
    );
}

#[test]
fn golden_json_schema_and_max_output_tokens() {
    let Some(recorded) = corpus("request_response_json_schema.json") else {
        return;
    };
    let schema = recorded["generationConfig"]["responseJsonSchema"].clone();
    let out = translate(
        json!({"model": "m", "messages": [{"role": "user", "content": "x"}], "response_format": {"type": "json_schema", "json_schema": {"name": "n", "schema": schema}}}),
    );
    assert_eq!(
        out["generationConfig"]["responseMimeType"],
        recorded["generationConfig"]["responseMimeType"]
    );
    assert_eq!(
        out["generationConfig"]["responseJsonSchema"],
        recorded["generationConfig"]["responseJsonSchema"]
    );
    let Some(limits) = corpus("request_max_output_tokens.json") else {
        return;
    };
    let want = limits["generationConfig"]["maxOutputTokens"]
        .as_u64()
        .or_else(|| limits["generationConfig"]["max_output_tokens"].as_u64())
        .unwrap();
    let out = translate(
        json!({"model": "m", "max_completion_tokens": want, "messages": [{"role": "user", "content": "x"}]}),
    );
    assert_eq!(out["generationConfig"]["maxOutputTokens"], want);
}

#[test]
fn images_go_inline_and_strings_are_wrapped() {
    let out = translate(json!({"model": "m", "messages": [
        {"role": "user", "content": [{"type": "text", "text": "what"}, {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}, {"type": "image_url", "image_url": {"url": "https://x.test/a.webp?s=1"}}]},
        {"role": "assistant", "tool_calls": [call("c1", "f", json!({}))]},
        {"role": "tool", "tool_call_id": "c1", "content": "plain text"}]}));
    let parts = &out["contents"][0]["parts"];
    assert_eq!(
        parts[1],
        json!({"inlineData": {"mimeType": "image/png", "data": "AAAA"}})
    );
    assert_eq!(
        parts[2],
        json!({"fileData": {"mimeType": "image/webp", "fileUri": "https://x.test/a.webp?s=1"}})
    );
    assert_eq!(out["contents"][1]["role"], "model");
    assert_eq!(
        out["contents"][2]["parts"][0]["functionResponse"]["response"],
        json!({"result": "plain text"})
    );
}

#[test]
fn parameters_are_mapped_dropped_or_rejected() {
    let (out, dropped) = from_openai(json!({"model": "m", "messages": [{"role": "user", "content": "x"}], "temperature": 1.5, "seed": 7, "n": 2, "stop": ["a"], "presence_penalty": 0.1, "user": "u", "reasoning_effort": "low"}).as_object().unwrap()).unwrap();
    let g = &out["generationConfig"];
    assert_eq!(
        (
            g["temperature"].as_f64(),
            g["seed"].as_u64(),
            g["candidateCount"].as_u64()
        ),
        (Some(1.5), Some(7), Some(2))
    );
    assert_eq!(g["stopSequences"], json!(["a"]));
    assert_eq!(
        g["thinkingConfig"],
        json!({"thinkingBudget": 1024, "includeThoughts": true})
    );
    assert_eq!(dropped, ["user"]);
    for (req, param) in [
        (json!({"temperature": 2.5}), "temperature"),
        (json!({"logprobs": true}), "logprobs"),
        (json!({"thinking": {}}), "thinking"),
        (json!({"whatever": 1}), "whatever"),
    ] {
        let mut r = req.as_object().unwrap().clone();
        r.insert("messages".into(), json!([{"role": "user", "content": "x"}]));
        match from_openai(&r) {
            Err(GatewayError::UnsupportedParameter { param: p, .. }) => assert_eq!(p, param),
            other => panic!("{param}: {:?}", other.map(|o| o.0)),
        }
    }
    let e = from_openai(
        json!({"messages": [{"role": "tool", "tool_call_id": "zz", "content": "x"}]})
            .as_object()
            .unwrap(),
    )
    .unwrap_err();
    assert!(
        e.to_string().contains("answers no earlier tool call"),
        "{e}"
    );
}
