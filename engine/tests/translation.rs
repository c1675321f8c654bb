//! OpenAI-format clients in front of an Anthropic-format provider (the mock
//! speaking Anthropic's wire format), end to end over real sockets.

mod common;

use common::*;
use serde_json::{json, Value};
use tools::mock::{MockConfig, MockServer};

const UPSTREAM: &str = "sk-ant-upstream-secret";

fn policy(anthropic: &MockServer, openai_first: Option<&MockServer>) -> String {
    let (extra_provider, targets) = match openai_first {
        Some(o) => (
            format!("  oai:\n    kind: openai\n    base_url: {}\n    keys: [{{key: sk-oai}}]\n", o.base_url()),
            "      - {provider: oai, model: gpt-4o-mini}\n      - {provider: ant, model: claude-sonnet-4-5}\n",
        ),
        None => (String::new(), "      - {provider: ant, model: claude-sonnet-4-5}\n"),
    };
    format!(
        "version: 1\nlistener: {{forward_headers: [x-mock-*]}}\nproviders:\n  ant:\n    kind: anthropic\n    base_url: http://{}\n    keys: [{{key: {UPSTREAM}}}]\n{extra_provider}models:\n  claude:\n    targets:\n{targets}client_keys:\n  - name: t\n    key: {CLIENT_KEY}\n",
        anthropic.addr
    )
}

fn setup() -> (MockServer, Gateway) {
    let m = MockServer::start(MockConfig::default()).unwrap();
    let gw = Gateway::start(policy(&m, None).as_bytes(), "p.yaml");
    (m, gw)
}

const TOOL: &str = r#"{"type":"function","function":{"name":"lookup","description":"Look it up","parameters":{"type":"object","properties":{"q":{"type":"string"}}}}}"#;

#[test]
fn a_chat_completion_is_served_by_anthropic_in_openai_shape() {
    let (m, gw) = setup();
    let r = gw.chat(r#"{"model":"claude","messages":[{"role":"system","content":"be brief"},{"role":"user","content":"hello claude"}],"seed":3}"#, &[]);
    assert_eq!(r.status, 200, "{}", r.text());
    let b = r.json();
    assert_eq!(b["object"], "chat.completion");
    assert_eq!(
        b["choices"][0]["message"]["content"],
        "Mock reply: hello claude"
    );
    assert_eq!(b["choices"][0]["finish_reason"], "stop");
    assert_eq!(b["usage"]["prompt_tokens"], 2 + 4 + 2);
    assert_eq!(b["usage"]["completion_tokens"], 4);
    assert_eq!(b["usage"]["total_tokens"], 12);
    assert_eq!(r.header("x-switchyard-dropped-params"), Some("seed"));
    assert_eq!(
        r.header("anthropic-ratelimit-requests-remaining"),
        None,
        "the provider's limits on the gateway's key stay in the gateway"
    );
    let seen = &m.requests()[0];
    assert_eq!(seen.path, "/v1/messages");
    assert_eq!(seen.header("x-api-key"), Some(UPSTREAM));
    assert_eq!(seen.header("anthropic-version"), Some("2023-06-01"));
    assert_eq!(
        seen.header("authorization"),
        None,
        "the client's key never reaches the provider"
    );
    assert_eq!(
        seen.body["system"],
        json!([{"type": "text", "text": "be brief"}])
    );
    assert_eq!(seen.body["model"], "claude-sonnet-4-5");
    assert_eq!(seen.body["max_tokens"], 4096);
    assert!(seen.body.get("seed").is_none());
}

#[test]
fn a_stream_is_translated_chunk_by_chunk_with_final_usage() {
    let (_m, gw) = setup();
    let r = gw.chat(
        r#"{"model":"claude","stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"user","content":"one two three"}]}"#,
        &[("x-mock-tokens-per-chunk", "2")],
    );
    assert_eq!(r.status, 200);
    assert!(r
        .header("content-type")
        .unwrap()
        .starts_with("text/event-stream"));
    let text = r.text();
    assert!(text.trim_end().ends_with("data: [DONE]"), "{text}");
    let events = sse_payloads(&text);
    assert_eq!(events[0]["choices"][0]["delta"]["role"], "assistant");
    let content: String = events
        .iter()
        .filter_map(|e| {
            e.pointer("/choices/0/delta/content")
                .and_then(Value::as_str)
        })
        .collect();
    assert_eq!(content, "Mock reply: one two three");
    let usage = &events.last().unwrap()["usage"];
    assert_eq!(
        (
            usage["prompt_tokens"].as_u64(),
            usage["completion_tokens"].as_u64()
        ),
        (Some(7), Some(5))
    );
    assert!(events
        .iter()
        .all(|e| e["object"] == "chat.completion.chunk"));
}

#[test]
fn tool_calls_round_trip_streamed_and_not() {
    let (m, gw) = setup();
    let body = format!(
        r#"{{"model":"claude","tool_choice":"required","tools":[{TOOL}],"messages":[{{"role":"user","content":"find x"}}]}}"#
    );
    let r = gw.chat(&body, &[]);
    let b = r.json();
    assert_eq!(b["choices"][0]["finish_reason"], "tool_calls");
    let call = &b["choices"][0]["message"]["tool_calls"][0];
    assert_eq!(call["function"]["name"], "lookup");
    assert_eq!(
        serde_json::from_str::<Value>(call["function"]["arguments"].as_str().unwrap()).unwrap(),
        json!({"q": "mock"})
    );
    assert_eq!(m.requests()[0].body["tool_choice"], json!({"type": "any"}));
    assert_eq!(
        m.requests()[0].body["tools"][0]["input_schema"]["properties"]["q"]["type"],
        "string"
    );

    // The result goes back as a tool message and becomes a tool_result.
    let id = call["id"].as_str().unwrap();
    let follow = format!(
        r#"{{"model":"claude","stream":true,"tools":[{TOOL}],"messages":[{{"role":"user","content":"find x"}},{{"role":"assistant","content":null,"tool_calls":[{call}]}},{{"role":"tool","tool_call_id":"{id}","content":"found"}}],"tool_choice":{{"type":"function","function":{{"name":"lookup"}}}}}}"#
    );
    let r = gw.chat(&follow, &[]);
    let events = sse_payloads(&r.text());
    let args: String = events
        .iter()
        .filter_map(|e| {
            e.pointer("/choices/0/delta/tool_calls/0/function/arguments")
                .and_then(Value::as_str)
        })
        .collect();
    assert_eq!(
        serde_json::from_str::<Value>(&args).unwrap(),
        json!({"q": "mock"})
    );
    assert_eq!(
        events
            .iter()
            .find_map(|e| e.pointer("/choices/0/delta/tool_calls/0/index"))
            .unwrap(),
        0
    );
    let sent = &m.requests()[1].body;
    assert_eq!(
        sent["messages"][2]["content"][0],
        json!({"type": "tool_result", "tool_use_id": id, "content": "found"})
    );
    assert_eq!(
        sent["tool_choice"],
        json!({"type": "tool", "name": "lookup"})
    );
}

#[test]
fn provider_errors_are_normalised_and_keep_the_message() {
    let (_m, gw) = setup();
    let r = gw.chat(
        r#"{"model":"claude","messages":[{"role":"user","content":"x"}]}"#,
        &[("x-mock-status", "400")],
    );
    assert_eq!(r.status, 400);
    let e = r.json();
    assert_eq!(e["error"]["type"], "invalid_request_error");
    assert_eq!(e["error"]["provider"], "anthropic");
    assert!(e["error"]["message"]
        .as_str()
        .unwrap()
        .contains("Injected invalid request"));
    let r = gw.chat(
        r#"{"model":"claude","messages":[{"role":"user","content":"x"}]}"#,
        &[("x-mock-status", "529")],
    );
    assert_eq!(
        r.status, 503,
        "529 is not an HTTP status OpenAI clients retry"
    );
    assert_eq!(r.json()["error"]["type"], "overloaded_error");
}

#[test]
fn an_in_stream_provider_error_ends_the_stream_without_done() {
    let (_m, gw) = setup();
    let r = gw.chat(
        r#"{"model":"claude","stream":true,"messages":[{"role":"user","content":"a b c d e f"}]}"#,
        &[
            ("x-mock-drop-after-chunks", "4"),
            ("x-mock-code", "stream-error"),
            ("x-mock-chunk-delay-ms", "2"),
        ],
    );
    assert_eq!(r.status, 200);
    let text = r.text();
    assert!(!text.contains("[DONE]"), "{text}");
    let last = sse_payloads(&text).pop().unwrap();
    assert_eq!(last["error"]["type"], "overloaded_error");
    assert_eq!(last["error"]["message"], "Overloaded");
}

#[test]
fn parameters_anthropic_cannot_take_are_refused_before_any_call() {
    let (m, gw) = setup();
    let r = gw.chat(
        r#"{"model":"claude","temperature":1.7,"messages":[{"role":"user","content":"x"}]}"#,
        &[],
    );
    assert_eq!(r.status, 400, "{}", r.text());
    let e = r.json();
    assert_eq!(e["error"]["code"], "unsupported_parameter");
    assert_eq!(e["error"]["param"], "temperature");
    let r = gw.chat(
        r#"{"model":"claude","messages":[{"role":"tool","tool_call_id":"nope","content":"x"}]}"#,
        &[],
    );
    assert_eq!(r.status, 400);
    assert!(r.json()["error"]["message"]
        .as_str()
        .unwrap()
        .contains("directly preceding"));
    assert!(m.requests().is_empty());
}

#[test]
fn failover_crosses_wire_formats() {
    let openai = MockServer::start(MockConfig {
        schedule: vec![tools::mock::schedule::Step::forever(tools::mock::Faults {
            status: Some(503),
            ..Default::default()
        })],
        ..MockConfig::default()
    })
    .unwrap();
    let anthropic = MockServer::start(MockConfig::default()).unwrap();
    let gw = Gateway::start(policy(&anthropic, Some(&openai)).as_bytes(), "p.yaml");
    let r = gw.chat(
        r#"{"model":"claude","messages":[{"role":"user","content":"hi"}]}"#,
        &[],
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        r.json()["choices"][0]["message"]["content"],
        "Mock reply: hi"
    );
    assert_eq!(openai.requests()[0].body["model"], "gpt-4o-mini");
    assert_eq!(
        anthropic.requests()[0].body["model"],
        "claude-sonnet-4-5",
        "re-translated for the second target"
    );
}

fn gemini_setup() -> (MockServer, Gateway) {
    let m = MockServer::start(MockConfig::default()).unwrap();
    let policy = format!(
        "version: 1\nlistener: {{forward_headers: [x-mock-*]}}\nproviders:\n  gem:\n    kind: gemini\n    base_url: http://{}\n    keys: [{{key: sk-gem-secret}}]\nmodels:\n  flash:\n    targets: [{{provider: gem, model: gemini-2.5-flash}}]\nclient_keys:\n  - name: t\n    key: {CLIENT_KEY}\n",
        m.addr
    );
    let gw = Gateway::start(policy.as_bytes(), "p.yaml");
    (m, gw)
}

#[test]
fn gemini_serves_chat_completions_and_streams() {
    let (m, gw) = gemini_setup();
    let r = gw.chat(r#"{"model":"flash","max_tokens":50,"messages":[{"role":"system","content":"be brief"},{"role":"user","content":"hello gemini"}]}"#, &[]);
    assert_eq!(r.status, 200, "{}", r.text());
    let b = r.json();
    assert_eq!(
        b["choices"][0]["message"]["content"],
        "Mock reply: hello gemini"
    );
    assert_eq!(b["choices"][0]["finish_reason"], "stop");
    assert_eq!(
        (
            b["usage"]["prompt_tokens"].as_u64(),
            b["usage"]["completion_tokens"].as_u64()
        ),
        (Some(2 + 4 + 2), Some(4))
    );
    let seen = &m.requests()[0];
    assert_eq!(seen.path, "/v1beta/models/gemini-2.5-flash:generateContent");
    assert_eq!(seen.header("x-goog-api-key"), Some("sk-gem-secret"));
    assert_eq!(seen.header("authorization"), None);
    assert_eq!(
        seen.body["systemInstruction"],
        json!({"parts": [{"text": "be brief"}]})
    );
    assert_eq!(seen.body["generationConfig"]["maxOutputTokens"], 50);

    let r = gw.chat(r#"{"model":"flash","stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"user","content":"a b c"}]}"#, &[("x-mock-tokens-per-chunk", "2")]);
    let text = r.text();
    assert!(text.trim_end().ends_with("data: [DONE]"), "{text}");
    let events = sse_payloads(&text);
    let content: String = events
        .iter()
        .filter_map(|e| {
            e.pointer("/choices/0/delta/content")
                .and_then(Value::as_str)
        })
        .collect();
    assert_eq!(content, "Mock reply: a b c");
    assert_eq!(
        events.last().unwrap()["usage"]["completion_tokens"],
        5,
        "the last snapshot, not a sum"
    );
    assert_eq!(
        m.requests()[1].path,
        "/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse"
    );
}

#[test]
fn gemini_tool_calls_get_ids_and_results_go_back_by_name() {
    let (m, gw) = gemini_setup();
    let body = format!(
        r#"{{"model":"flash","tool_choice":"required","tools":[{TOOL}],"messages":[{{"role":"user","content":"find x"}}]}}"#
    );
    let b = gw.chat(&body, &[]).json();
    assert_eq!(
        b["choices"][0]["finish_reason"], "tool_calls",
        "Gemini says STOP"
    );
    let call = b["choices"][0]["message"]["tool_calls"][0].clone();
    let id = call["id"].as_str().unwrap().to_string();
    assert!(id.starts_with("call_"));
    let follow = format!(
        r#"{{"model":"flash","tools":[{TOOL}],"messages":[{{"role":"user","content":"find x"}},{{"role":"assistant","content":null,"tool_calls":[{call}]}},{{"role":"tool","tool_call_id":"{id}","content":"found it"}}]}}"#
    );
    assert_eq!(gw.chat(&follow, &[]).status, 200);
    let sent = &m.requests()[1].body;
    assert_eq!(sent["contents"][1]["role"], "model");
    assert_eq!(
        sent["contents"][2]["parts"][0]["functionResponse"],
        json!({"id": id, "name": "lookup", "response": {"result": "found it"}})
    );
}

#[test]
fn gemini_errors_are_normalised_in_and_out_of_streams() {
    let (_m, gw) = gemini_setup();
    let r = gw.chat(
        r#"{"model":"flash","messages":[{"role":"user","content":"x"}]}"#,
        &[("x-mock-status", "400")],
    );
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["error"]["code"], "INVALID_ARGUMENT");
    assert_eq!(r.json()["error"]["provider"], "gemini");
    let r = gw.chat(
        r#"{"model":"flash","stream":true,"messages":[{"role":"user","content":"a b c d e f"}]}"#,
        &[
            ("x-mock-drop-after-chunks", "2"),
            ("x-mock-code", "stream-error"),
            ("x-mock-chunk-delay-ms", "2"),
        ],
    );
    let text = r.text();
    assert!(!text.contains("[DONE]"), "{text}");
    assert_eq!(
        sse_payloads(&text).pop().unwrap()["error"]["code"],
        "UNAVAILABLE"
    );
    // A 429 with RetryInfo cools the only key down for the hinted second.
    let r = gw.chat(
        r#"{"model":"flash","messages":[{"role":"user","content":"x"}]}"#,
        &[("x-mock-status", "429")],
    );
    assert_eq!(r.status, 429);
    assert_eq!(r.json()["error"]["code"], "RESOURCE_EXHAUSTED");
    let r = gw.chat(
        r#"{"model":"flash","messages":[{"role":"user","content":"x"}]}"#,
        &[],
    );
    assert_eq!(r.json()["error"]["code"], "upstream_keys_cooling_down");
    assert_eq!(r.header("retry-after"), Some("1"));
}

#[test]
fn openai_compatible_quirks_apply_to_requests_and_answers() {
    let m = MockServer::start(MockConfig::default()).unwrap();
    let policy = format!(
        "version: 1\nlistener: {{forward_headers: [x-mock-*]}}\nproviders:\n  local:\n    kind: openai_compatible\n    base_url: {}\n    compat: {{preset: mistral}}\n    keys: [{{key: sk-local}}]\nmodels:\n  local:\n    targets: [{{provider: local, model: mistral-small}}]\nclient_keys:\n  - name: t\n    key: {CLIENT_KEY}\n",
        m.base_url()
    );
    let gw = Gateway::start(policy.as_bytes(), "p.yaml");
    let r = gw.chat(r#"{"model":"local","seed":5,"max_completion_tokens":40,"parallel_tool_calls":false,"messages":[{"role":"user","content":"hi"}]}"#, &[]);
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        r.json()["choices"][0]["message"]["content"],
        "Mock reply: hi"
    );
    assert_eq!(
        r.header("x-switchyard-dropped-params"),
        Some("parallel_tool_calls")
    );
    let sent = &m.requests()[0].body;
    assert_eq!(
        (sent["random_seed"].as_u64(), sent["max_tokens"].as_u64()),
        (Some(5), Some(40))
    );
    assert!(
        sent.get("seed").is_none()
            && sent.get("max_completion_tokens").is_none()
            && sent.get("parallel_tool_calls").is_none()
    );
    let r = gw.chat(
        r#"{"model":"local","stream":true,"messages":[{"role":"user","content":"a b"}]}"#,
        &[],
    );
    assert!(r.text().trim_end().ends_with("data: [DONE]"));
}

/// An Anthropic-format client (`/v1/messages`) in front of each provider kind.
fn anthropic_client_setup() -> (MockServer, Gateway) {
    let m = MockServer::start(MockConfig::default()).unwrap();
    let policy = format!(
        "version: 1\nlistener: {{forward_headers: [x-mock-*]}}\nproviders:\n  ant:\n    kind: anthropic\n    base_url: http://{a}\n    keys: [{{key: {UPSTREAM}}}]\n  oai:\n    kind: openai\n    base_url: http://{a}/v1\n    keys: [{{key: sk-oai}}]\n  gem:\n    kind: gemini\n    base_url: http://{a}\n    keys: [{{key: sk-gem}}]\n  co:\n    kind: cohere\n    base_url: http://{a}\n    keys: [{{key: sk-co}}]\nmodels:\n  claude:\n    targets: [{{provider: ant, model: claude-sonnet-4-5}}]\n  gpt:\n    targets: [{{provider: oai, model: gpt-4o-mini}}]\n  flash:\n    targets: [{{provider: gem, model: gemini-2.5-flash}}]\n  command:\n    targets: [{{provider: co, model: command-r}}]\nclient_keys:\n  - name: t\n    key: {CLIENT_KEY}\n",
        a = m.addr
    );
    let gw = Gateway::start(policy.as_bytes(), "p.yaml");
    (m, gw)
}

fn messages(gw: &Gateway, body: &str) -> Response {
    gw.request(
        "POST",
        "/v1/messages",
        &[
            ("x-api-key", CLIENT_KEY),
            ("anthropic-version", "2023-06-01"),
            ("content-type", "application/json"),
        ],
        body.as_bytes(),
    )
}

#[test]
fn anthropic_clients_reach_every_provider_in_their_own_format() {
    let (m, gw) = anthropic_client_setup();
    for model in ["claude", "gpt", "flash", "command"] {
        let r = messages(
            &gw,
            &format!(
                r#"{{"model":"{model}","max_tokens":100,"system":"be brief","messages":[{{"role":"user","content":"hello there"}}]}}"#
            ),
        );
        assert_eq!(r.status, 200, "{model}: {}", r.text());
        let b = r.json();
        assert_eq!(b["type"], "message", "{model}");
        assert_eq!(
            b["content"],
            json!([{"type": "text", "text": "Mock reply: hello there"}]),
            "{model}"
        );
        assert_eq!(b["stop_reason"], "end_turn", "{model}");
        assert_eq!(b["usage"]["output_tokens"], 4, "{model}");
        assert!(b["usage"]["input_tokens"].as_u64().unwrap() > 0, "{model}");
    }
    // Same format: the provider saw the client's request as it was.
    let sent = &m.requests()[0];
    assert_eq!(sent.path, "/v1/messages");
    assert_eq!(
        sent.body["system"], "be brief",
        "passed through, not rebuilt"
    );
    assert_eq!(sent.body["model"], "claude-sonnet-4-5");
    // Other formats: rebuilt for the target.
    assert_eq!(
        m.requests()[1].body["messages"][0],
        json!({"role": "system", "content": "be brief"})
    );
    assert_eq!(
        m.requests()[2].body["systemInstruction"]["parts"][0]["text"],
        "be brief"
    );
}

#[test]
fn anthropic_client_streams_and_tool_use_through_other_providers() {
    let (_m, gw) = anthropic_client_setup();
    let tool = r#"{"name":"lookup","description":"Look it up","input_schema":{"type":"object","properties":{"q":{"type":"string"}}}}"#;
    for model in ["claude", "gpt", "flash", "command"] {
        let r = messages(
            &gw,
            &format!(
                r#"{{"model":"{model}","max_tokens":100,"stream":true,"messages":[{{"role":"user","content":"one two"}}]}}"#
            ),
        );
        let text = r.text();
        assert!(text.starts_with("event: message_start"), "{model}: {text}");
        assert!(
            text.trim_end()
                .ends_with(r#"data: {"type":"message_stop"}"#),
            "{model}: {text}"
        );
        let events: Vec<Value> = text
            .lines()
            .filter_map(|l| l.strip_prefix("data: "))
            .map(|d| serde_json::from_str(d).unwrap())
            .collect();
        let said: String = events
            .iter()
            .filter(|e| e["delta"]["type"] == "text_delta")
            .map(|e| e["delta"]["text"].as_str().unwrap())
            .collect();
        assert_eq!(said, "Mock reply: one two", "{model}");
        let delta = events
            .iter()
            .find(|e| e["type"] == "message_delta")
            .unwrap();
        assert_eq!(delta["usage"]["output_tokens"], 4, "{model}");

        let r = messages(
            &gw,
            &format!(
                r#"{{"model":"{model}","max_tokens":100,"tools":[{tool}],"tool_choice":{{"type":"any"}},"messages":[{{"role":"user","content":"find x"}}]}}"#
            ),
        );
        let b = r.json();
        assert_eq!(b["stop_reason"], "tool_use", "{model}: {b}");
        let tool_use = b["content"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["type"] == "tool_use")
            .unwrap()
            .clone();
        assert_eq!(
            (tool_use["name"].as_str(), &tool_use["input"]),
            (Some("lookup"), &json!({"q": "mock"})),
            "{model}"
        );
        // The result goes back as a tool_result and is answered.
        let follow = format!(
            r#"{{"model":"{model}","max_tokens":100,"tools":[{tool}],"messages":[{{"role":"user","content":"find x"}},{{"role":"assistant","content":[{tool_use}]}},{{"role":"user","content":[{{"type":"tool_result","tool_use_id":"{}","content":"found"}}]}}]}}"#,
            tool_use["id"].as_str().unwrap()
        );
        let r = messages(&gw, &follow);
        assert_eq!(r.status, 200, "{model}: {}", r.text());
        assert_eq!(r.json()["type"], "message");
    }
}

#[test]
fn anthropic_clients_get_errors_in_anthropic_shape() {
    let (_m, gw) = anthropic_client_setup();
    let bad = gw.request(
        "POST",
        "/v1/messages",
        &[("x-api-key", "sk-sy-wrong-key-0000000")],
        br#"{"model":"gpt","max_tokens":5,"messages":[]}"#,
    );
    assert_eq!(bad.status, 401);
    assert_eq!(
        bad.json(),
        json!({"type": "error", "error": {"type": "authentication_error", "message": "invalid API key"}})
    );
    let r = messages(
        &gw,
        r#"{"model":"nope","max_tokens":5,"messages":[{"role":"user","content":"x"}]}"#,
    );
    assert_eq!(r.status, 404);
    assert_eq!(r.json()["error"]["type"], "not_found_error");
    let r = gw.request(
        "POST",
        "/v1/messages",
        &[("x-api-key", CLIENT_KEY), ("x-mock-status", "429")],
        br#"{"model":"gpt","max_tokens":5,"messages":[{"role":"user","content":"x"}]}"#,
    );
    assert_eq!(r.status, 429);
    assert_eq!(r.json()["type"], "error");
    assert_eq!(r.json()["error"]["type"], "rate_limit_error");
    let r = gw.request(
        "POST",
        "/v1/messages",
        &[("x-api-key", CLIENT_KEY), ("x-mock-status", "529")],
        br#"{"model":"claude","max_tokens":5,"messages":[{"role":"user","content":"x"}]}"#,
    );
    assert_eq!(
        (r.status, r.json()["error"]["type"].as_str()),
        (529, Some("overloaded_error")),
        "same format: Anthropic's own error"
    );
    let r = messages(
        &gw,
        r#"{"model":"gpt","messages":[{"role":"user","content":"x"}]}"#,
    );
    assert_eq!(r.status, 400);
    assert!(
        r.json()["error"]["message"]
            .as_str()
            .unwrap()
            .contains("max_tokens"),
        "{}",
        r.text()
    );
}

#[test]
fn cohere_serves_openai_clients_with_tools_and_streams() {
    let m = MockServer::start(MockConfig::default()).unwrap();
    let policy = format!(
        "version: 1\nlistener: {{forward_headers: [x-mock-*]}}\nproviders:\n  co:\n    kind: cohere\n    base_url: http://{}\n    keys: [{{key: sk-co-secret}}]\nmodels:\n  command:\n    targets: [{{provider: co, model: command-r}}]\nclient_keys:\n  - name: t\n    key: {CLIENT_KEY}\n",
        m.addr
    );
    let gw = Gateway::start(policy.as_bytes(), "p.yaml");
    let r = gw.chat(
        r#"{"model":"command","messages":[{"role":"user","content":"hello cohere"}]}"#,
        &[],
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let b = r.json();
    assert_eq!(
        b["choices"][0]["message"]["content"],
        "Mock reply: hello cohere"
    );
    assert_eq!(b["model"], "command-r");
    assert_eq!(b["usage"]["completion_tokens"], 4);
    let seen = &m.requests()[0];
    assert_eq!(
        (seen.path.as_str(), seen.header("authorization")),
        ("/v2/chat", Some("Bearer sk-co-secret"))
    );
    let body = format!(
        r#"{{"model":"command","stream":true,"stream_options":{{"include_usage":true}},"tool_choice":"required","tools":[{TOOL}],"messages":[{{"role":"user","content":"x"}}]}}"#
    );
    let events = sse_payloads(&gw.chat(&body, &[]).text());
    let args: String = events
        .iter()
        .filter_map(|e| {
            e.pointer("/choices/0/delta/tool_calls/0/function/arguments")
                .and_then(Value::as_str)
        })
        .collect();
    assert_eq!(
        serde_json::from_str::<Value>(&args).unwrap(),
        json!({"q": "mock"})
    );
    assert_eq!(events.last().unwrap()["usage"]["completion_tokens"], 3);
    assert_eq!(m.requests()[1].body["tool_choice"], "REQUIRED");
}

#[test]
fn a_stream_that_opens_with_an_error_fails_over_before_the_client_sees_it() {
    let overloaded = MockServer::start(MockConfig {
        schedule: vec![tools::mock::schedule::Step::forever(tools::mock::Faults {
            drop_after_chunks: Some(0),
            error_code: Some("stream-error".into()),
            ..Default::default()
        })],
        ..MockConfig::default()
    })
    .unwrap();
    let healthy = MockServer::start(MockConfig::default()).unwrap();
    let policy = format!(
        "version: 1\nlistener: {{forward_headers: [x-mock-*]}}\nproviders:\n  ant:\n    kind: anthropic\n    base_url: http://{}\n    keys: [{{key: k1}}]\n  backup:\n    kind: anthropic\n    base_url: http://{}\n    keys: [{{key: k2}}]\nmodels:\n  claude:\n    targets:\n      - {{provider: ant, model: claude-a}}\n      - {{provider: backup, model: claude-b}}\nclient_keys:\n  - name: t\n    key: {CLIENT_KEY}\n",
        overloaded.addr, healthy.addr
    );
    let gw = Gateway::start(policy.as_bytes(), "p.yaml");
    let r = gw.chat(
        r#"{"model":"claude","stream":true,"messages":[{"role":"user","content":"hi"}]}"#,
        &[],
    );
    let text = r.text();
    assert!(
        text.trim_end().ends_with("data: [DONE]") && !text.contains("error"),
        "{text}"
    );
    assert_eq!(
        (overloaded.requests().len(), healthy.requests().len()),
        (1, 1)
    );
}
