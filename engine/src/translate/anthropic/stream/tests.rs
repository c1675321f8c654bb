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

/// Translate `bytes` fed in pieces of `piece` bytes; the OpenAI events.
fn run(bytes: &[u8], piece: usize, include_usage: bool) -> (Vec<Value>, bool, String) {
    let mut t = AnthropicToOpenAi::new(include_usage, 1);
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

fn anthropic_events(bytes: &[u8]) -> Vec<Value> {
    let mut p = SseParser::default();
    let mut ev = Vec::new();
    p.feed(bytes, &mut ev).unwrap();
    p.finish(&mut ev);
    ev.iter()
        .filter_map(|e| serde_json::from_str(&e.data).ok())
        .collect()
}

fn tool_arguments(events: &[Value]) -> Vec<(u64, String, String, String)> {
    let mut calls: Vec<(u64, String, String, String)> = Vec::new();
    for e in events {
        for c in e
            .pointer("/choices/0/delta/tool_calls")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let i = c["index"].as_u64().unwrap();
            if let Some(id) = c["id"].as_str() {
                calls.push((
                    i,
                    id.to_string(),
                    c["function"]["name"].as_str().unwrap().to_string(),
                    String::new(),
                ));
            }
            let slot = calls
                .iter_mut()
                .find(|x| x.0 == i)
                .expect("a header before fragments");
            slot.3
                .push_str(c["function"]["arguments"].as_str().unwrap_or(""));
        }
    }
    calls
}

#[test]
fn every_recorded_stream_translates_in_any_chunking() {
    for file in [
        "stream_tool_use.sse",
        "stream_text_then_tool_use.sse",
        "stream_thinking.sse",
        "stream_text_after_tool_result.sse",
        "docs_stream_tool_use.sse",
    ] {
        let Some(bytes) = corpus(file) else { continue };
        let (whole, failed, text) = run(&bytes, bytes.len(), true);
        assert!(!failed, "{file}");
        assert!(text.trim_end().ends_with("data: [DONE]"), "{file}");
        for piece in [1, 7, 64] {
            assert_eq!(
                run(&bytes, piece, true).0,
                whole,
                "{file} in {piece}-byte pieces"
            );
        }
        assert_eq!(
            whole[0]["choices"][0]["delta"]["role"], "assistant",
            "{file}"
        );
        let finishes: Vec<_> = whole
            .iter()
            .filter_map(|e| {
                e.pointer("/choices/0/finish_reason")
                    .and_then(Value::as_str)
            })
            .collect();
        assert_eq!(finishes.len(), 1, "{file}");
        // Usage: input side from message_start, output from the last message_delta.
        let a = anthropic_events(&bytes);
        let start = &a.iter().find(|e| e["type"] == "message_start").unwrap()["message"]["usage"];
        let last_delta = a
            .iter()
            .rev()
            .find(|e| e["type"] == "message_delta")
            .unwrap();
        let u = &whole.last().unwrap()["usage"];
        let get = |v: &Value, k: &str| v[k].as_u64().unwrap_or(0);
        let input = last_delta["usage"]
            .get("input_tokens")
            .and_then(Value::as_u64)
            .unwrap_or(get(start, "input_tokens"));
        let cache_read = last_delta["usage"]
            .get("cache_read_input_tokens")
            .and_then(Value::as_u64)
            .unwrap_or(get(start, "cache_read_input_tokens"));
        let cache_write = last_delta["usage"]
            .get("cache_creation_input_tokens")
            .and_then(Value::as_u64)
            .unwrap_or(get(start, "cache_creation_input_tokens"));
        assert_eq!(
            u["prompt_tokens"],
            input + cache_read + cache_write,
            "{file}"
        );
        assert_eq!(
            u["completion_tokens"],
            get(&last_delta["usage"], "output_tokens"),
            "{file}: cumulative, never summed"
        );
        assert_eq!(whole.last().unwrap()["choices"], json!([]), "{file}");
    }
}

#[test]
fn tool_arguments_arrive_whole_and_indexes_start_at_zero() {
    let Some(bytes) = corpus("stream_tool_use.sse") else {
        return;
    };
    let (events, ..) = run(&bytes, 3, false);
    let calls = tool_arguments(&events);
    assert_eq!(calls.len(), 1);
    let (index, id, name, args) = &calls[0];
    assert_eq!(
        (*index, id.as_str(), name.as_str()),
        (0, "toolu_018acGYLtfR52q9yDbWaEdQZ", "get_weather")
    );
    let args: Value = serde_json::from_str(args).unwrap();
    assert_eq!(args, json!({"location": "San Francisco, CA", "units": "f"}));
    assert_eq!(
        events
            .iter()
            .filter_map(|e| e
                .pointer("/choices/0/finish_reason")
                .and_then(Value::as_str))
            .next(),
        Some("tool_calls")
    );
    assert!(
        events.iter().all(|e| e.get("usage").is_none()),
        "no usage fields unless asked"
    );

    // Text first, then the tool: Anthropic block 1 is OpenAI tool 0.
    let Some(bytes) = corpus("stream_text_then_tool_use.sse") else {
        return;
    };
    let (events, ..) = run(&bytes, 11, false);
    let calls = tool_arguments(&events);
    assert_eq!(calls[0].0, 0);
    serde_json::from_str::<Value>(&calls[0].3).expect("complete arguments");
    let text: String = events
        .iter()
        .filter_map(|e| {
            e.pointer("/choices/0/delta/content")
                .and_then(Value::as_str)
        })
        .collect();
    assert!(!text.is_empty());
}

#[test]
fn thinking_streams_as_reasoning_with_the_signature_at_the_end() {
    let Some(bytes) = corpus("stream_thinking.sse") else {
        return;
    };
    let (events, ..) = run(&bytes, 5, false);
    let a = anthropic_events(&bytes);
    let thinking: String = a
        .iter()
        .filter(|e| e["delta"]["type"] == "thinking_delta")
        .map(|e| e["delta"]["thinking"].as_str().unwrap())
        .collect();
    let signature = a
        .iter()
        .find(|e| e["delta"]["type"] == "signature_delta")
        .unwrap()["delta"]["signature"]
        .clone();
    let reasoning: String = events
        .iter()
        .filter_map(|e| {
            e.pointer("/choices/0/delta/reasoning_content")
                .and_then(Value::as_str)
        })
        .collect();
    assert_eq!(reasoning, thinking);
    let block = events
        .iter()
        .find_map(|e| e.pointer("/choices/0/delta/thinking_blocks/0"))
        .unwrap();
    assert_eq!(
        block,
        &json!({"type": "thinking", "thinking": thinking, "signature": signature})
    );
}

#[test]
fn a_tool_call_cut_by_max_tokens_finishes_with_length() {
    let Some(bytes) = corpus("stream_max_tokens_truncated_tool_use.sse") else {
        return;
    };
    let (events, failed, _) = run(&bytes, 9, false);
    assert!(!failed);
    let finish = events.iter().find_map(|e| {
        e.pointer("/choices/0/finish_reason")
            .and_then(Value::as_str)
    });
    assert_eq!(finish, Some("length"));
    let calls = tool_arguments(&events);
    assert!(
        serde_json::from_str::<Value>(&calls[0].3).is_err(),
        "partial arguments pass through unparsed"
    );
}

#[test]
fn an_error_event_after_200_ends_the_stream_without_done() {
    let Some(bytes) = corpus("stream_error_overloaded.sse") else {
        return;
    };
    let mut t = AnthropicToOpenAi::new(true, 1);
    let start = br#"event: message_start
data: {"type":"message_start","message":{"id":"msg_1","model":"claude","usage":{"input_tokens":5,"output_tokens":1}}}

"#;
    // The recording ends one newline after the error: the connection closed
    // there, so the event completes at the end of the stream.
    let mut out = t.push(start);
    out.extend(t.push(&bytes));
    out.extend(t.finish());
    let text = String::from_utf8(out).unwrap();
    assert!(t.failed());
    assert!(!text.contains("[DONE]"), "{text}");
    assert!(
        text.contains(r#""type":"overloaded_error""#) && text.contains("Overloaded"),
        "{text}"
    );
    assert_eq!(
        t.usage().unwrap()["prompt_tokens"],
        5,
        "partial usage stays visible for metering"
    );

    // Whatever follows an error is not honoured as success.
    let mut t = AnthropicToOpenAi::new(false, 1);
    let mut out = t.push(start);
    out.extend(t.push(&bytes));
    out.extend(t.push(b"\nevent: message_stop\ndata: {\"type\":\"message_stop\"}\n\n"));
    out.extend(t.finish());
    let text = String::from_utf8(out).unwrap();
    assert!(t.failed() && !text.contains("[DONE]"), "{text}");
}

#[test]
fn a_stream_that_just_stops_is_an_error_not_a_success() {
    let mut t = AnthropicToOpenAi::new(false, 1);
    t.push(b"event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"m\",\"model\":\"c\",\"usage\":{}}}\n\n");
    t.push(b"event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"hi\"}}\n\n");
    let end = String::from_utf8(t.finish()).unwrap();
    assert!(t.failed());
    assert!(
        end.contains("upstream_stream_interrupted") && !end.contains("[DONE]"),
        "{end}"
    );
}
