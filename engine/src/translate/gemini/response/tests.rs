use super::*;

fn corpus(name: &str) -> Option<Vec<u8>> {
    std::fs::read(format!(
        "{}/../../shared/conformance/gemini/{name}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .ok()
}

fn recorded(name: &str) -> Option<(Value, Value)> {
    let b = corpus(name)?;
    Some((
        serde_json::from_slice(&b).unwrap(),
        to_openai(&b, 1).unwrap(),
    ))
}

#[test]
fn a_function_call_reported_as_stop_is_tool_calls() {
    let Some((g, o)) = recorded("response_function_call.json") else {
        return;
    };
    let choice = &o["choices"][0];
    assert_eq!(g["candidates"][0]["finishReason"], "STOP");
    assert_eq!(choice["finish_reason"], "tool_calls");
    let call = &g["candidates"][0]["content"]["parts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p.get("functionCall").is_some())
        .unwrap()["functionCall"];
    let t = &choice["message"]["tool_calls"][0];
    assert_eq!(t["function"]["name"], call["name"]);
    assert_eq!(
        serde_json::from_str::<Value>(t["function"]["arguments"].as_str().unwrap()).unwrap(),
        call["args"]
    );
    assert!(
        t["id"].as_str().unwrap().starts_with("call_"),
        "made-up id where Gemini has none"
    );
    assert_eq!(o["id"], g["responseId"]);
    assert_eq!(o["model"], g["modelVersion"]);
}

#[test]
fn usage_adds_thoughts_to_completion_and_keeps_cached() {
    for file in [
        "response_thoughts_usage.json",
        "response_cached_content_tokens.json",
        "response_max_tokens.json",
        "response_function_call.json",
    ] {
        let Some((g, o)) = recorded(file) else {
            continue;
        };
        let u = &g["usageMetadata"];
        let get = |k: &str| u[k].as_u64().unwrap_or(0);
        assert_eq!(
            o["usage"]["prompt_tokens"],
            get("promptTokenCount"),
            "{file}"
        );
        assert_eq!(
            o["usage"]["completion_tokens"],
            get("candidatesTokenCount") + get("thoughtsTokenCount"),
            "{file}"
        );
        assert_eq!(
            o["usage"]["total_tokens"],
            get("totalTokenCount"),
            "{file}: adds up like Gemini's own total"
        );
        assert_eq!(
            o["usage"]["completion_tokens_details"]["reasoning_tokens"],
            get("thoughtsTokenCount"),
            "{file}"
        );
        assert_eq!(
            o["usage"]["prompt_tokens_details"]["cached_tokens"],
            get("cachedContentTokenCount"),
            "{file}"
        );
    }
}

#[test]
fn finish_reasons_follow_the_mapping_table() {
    let Some((_, o)) = recorded("response_max_tokens.json") else {
        return;
    };
    assert_eq!(o["choices"][0]["finish_reason"], "length");
    let Some((_, o)) = recorded("response_safety_blocked.json") else {
        return;
    };
    assert_eq!(o["choices"][0]["finish_reason"], "content_filter");
    assert_eq!(
        o["choices"][0]["message"]["content"], "",
        "a blocked answer has no text"
    );
    let Some((g, o)) = recorded("response_json_schema.json") else {
        return;
    };
    let text = g["candidates"][0]["content"]["parts"][0]["text"]
        .as_str()
        .unwrap();
    assert_eq!(o["choices"][0]["message"]["content"], text);
    assert!(serde_json::from_str::<Value>(text).is_ok());
    for (g, has_call, o) in [
        ("STOP", false, "stop"),
        ("STOP", true, "tool_calls"),
        ("SAFETY", false, "content_filter"),
        ("RECITATION", false, "content_filter"),
        ("MALFORMED_FUNCTION_CALL", false, "stop"),
    ] {
        assert_eq!(finish_reason(g, has_call), o);
    }
    let blocked = to_openai(
        br#"{"promptFeedback":{"blockReason":"SAFETY"},"usageMetadata":{"promptTokenCount":3}}"#,
        1,
    )
    .unwrap();
    assert_eq!(blocked["choices"][0]["finish_reason"], "content_filter");
}

#[test]
fn errors_keep_the_message_and_status() {
    for (file, status) in [
        ("error_429_resource_exhausted.json", 429),
        ("error_400_invalid_argument.vertex.json", 400),
        ("error_429_retryinfo.sdk_fixture.json", 429),
    ] {
        let Some(b) = corpus(file) else { continue };
        let g: Value = serde_json::from_slice(&b).unwrap();
        let (s, out) = crate::translate::error_response(
            policy::ProviderKind::Gemini,
            status,
            &b,
            crate::translate::ClientFormat::OpenAi,
        );
        let o: Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(s, status, "{file}");
        assert_eq!(o["error"]["message"], g["error"]["message"], "{file}");
        assert_eq!(o["error"]["code"], g["error"]["status"], "{file}");
        assert_eq!(o["error"]["provider"], "gemini", "{file}");
    }
}
