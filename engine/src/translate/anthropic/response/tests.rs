use super::*;

fn corpus(name: &str) -> Option<Vec<u8>> {
    std::fs::read(format!(
        "{}/../../shared/conformance/anthropic/{name}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .ok()
}

fn recorded(name: &str) -> Option<(Value, Value)> {
    let bytes = corpus(name)?;
    let original: Value = serde_json::from_slice(&bytes).unwrap();
    Some((original, to_openai(&bytes, 7).unwrap()))
}

#[test]
fn text_and_tool_use() {
    let Some((a, o)) = recorded("response_text_tool_use.json") else {
        return;
    };
    let choice = &o["choices"][0];
    assert_eq!(o["object"], "chat.completion");
    assert_eq!(o["id"], a["id"]);
    assert_eq!(o["model"], a["model"]);
    assert_eq!(choice["finish_reason"], "tool_calls");
    let texts: String = a["content"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|b| b["type"] == "text")
        .map(|b| b["text"].as_str().unwrap())
        .collect();
    assert_eq!(choice["message"]["content"], json!(texts));
    let uses: Vec<&Value> = a["content"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|b| b["type"] == "tool_use")
        .collect();
    let calls = choice["message"]["tool_calls"].as_array().unwrap();
    assert_eq!(calls.len(), uses.len());
    for (c, u) in calls.iter().zip(uses) {
        assert_eq!(c["id"], u["id"]);
        assert_eq!(c["type"], "function");
        assert_eq!(c["function"]["name"], u["name"]);
        let args: Value =
            serde_json::from_str(c["function"]["arguments"].as_str().unwrap()).unwrap();
        assert_eq!(
            args, u["input"],
            "arguments are the input, as a JSON string"
        );
    }
}

#[test]
fn thinking_comes_back_with_its_signature() {
    let Some((a, o)) = recorded("response_thinking_tool_use.json") else {
        return;
    };
    let m = &o["choices"][0]["message"];
    assert_eq!(
        m["thinking_blocks"][0], a["content"][0],
        "the whole block, signature included"
    );
    assert_eq!(m["reasoning_content"], a["content"][0]["thinking"]);
    assert_eq!(m["content"], a["content"][1]["text"]);
    assert_eq!(m["tool_calls"][0]["function"]["arguments"], "{}");
    assert_eq!(o["usage"]["completion_tokens"], 155);
}

#[test]
fn usage_counts_cache_reads_and_writes_in_the_prompt() {
    for file in [
        "response_cache_read.json",
        "response_cache_creation.json",
        "response_text_tool_use.json",
    ] {
        let Some((a, o)) = recorded(file) else {
            continue;
        };
        let u = &a["usage"];
        let get = |k: &str| u[k].as_u64().unwrap_or(0);
        let prompt = get("input_tokens")
            + get("cache_creation_input_tokens")
            + get("cache_read_input_tokens");
        assert_eq!(o["usage"]["prompt_tokens"], prompt, "{file}");
        assert_eq!(
            o["usage"]["completion_tokens"],
            get("output_tokens"),
            "{file}"
        );
        assert_eq!(
            o["usage"]["total_tokens"],
            prompt + get("output_tokens"),
            "{file}"
        );
        assert_eq!(
            o["usage"]["prompt_tokens_details"]["cached_tokens"],
            get("cache_read_input_tokens"),
            "{file}"
        );
        assert_eq!(
            o["usage"]["prompt_tokens_details"]["cache_write_tokens"],
            get("cache_creation_input_tokens"),
            "{file}"
        );
    }
    let Some((_, o)) = recorded("response_cache_read.json") else {
        return;
    };
    // The corpus example: 2 fresh input tokens, 1590 read from cache.
    assert!(o["usage"]["prompt_tokens"].as_u64().unwrap() >= 1592);
}

#[test]
fn structured_output_and_image_answers_are_plain_text() {
    for file in [
        "response_output_config_json_schema.json",
        "response_image_url.json",
    ] {
        let Some((a, o)) = recorded(file) else {
            continue;
        };
        assert_eq!(
            o["choices"][0]["message"]["content"], a["content"][0]["text"],
            "{file}"
        );
        assert_eq!(o["choices"][0]["finish_reason"], "stop", "{file}");
    }
    let Some((_, o)) = recorded("response_output_config_json_schema.json") else {
        return;
    };
    let parsed: Result<Value, _> =
        serde_json::from_str(o["choices"][0]["message"]["content"].as_str().unwrap());
    assert!(
        parsed.is_ok(),
        "the schema-shaped answer is a JSON string, as OpenAI clients expect"
    );
}

#[test]
fn finish_reasons_follow_the_mapping_table() {
    for (a, o) in [
        ("end_turn", "stop"),
        ("stop_sequence", "stop"),
        ("max_tokens", "length"),
        ("tool_use", "tool_calls"),
        ("refusal", "content_filter"),
        ("pause_turn", "stop"),
    ] {
        assert_eq!(finish_reason(a), o);
    }
}

#[test]
fn recorded_errors_become_openai_errors_with_the_providers_message() {
    for (file, status, kind) in [
        (
            "error_400_invalid_request.json",
            400,
            "invalid_request_error",
        ),
        (
            "error_401_authentication.RECONSTRUCTED.json",
            401,
            "authentication_error",
        ),
        ("error_404_not_found.json", 404, "not_found_error"),
        ("error_429_rate_limit.json", 429, "rate_limit_error"),
        ("error_529_overloaded.json", 529, "overloaded_error"),
    ] {
        let Some(body) = corpus(file) else { continue };
        let a: Value = serde_json::from_slice(&body).unwrap();
        let (out_status, out) = crate::translate::error_response(
            policy::ProviderKind::Anthropic,
            status,
            &body,
            crate::translate::ClientFormat::OpenAi,
        );
        let o: Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(
            out_status,
            if status == 529 { 503 } else { status },
            "{file}"
        );
        assert_eq!(o["error"]["type"], kind, "{file}");
        assert_eq!(o["error"]["message"], a["error"]["message"], "{file}");
        assert_eq!(
            o["error"]["provider"], "anthropic",
            "{file}: says whose error it is"
        );
    }
}
