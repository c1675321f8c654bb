use super::*;
use crate::translate::sse::SseParser;
use crate::translate::StreamTranslator;

fn corpus(name: &str) -> Option<Vec<u8>> {
    std::fs::read(format!(
        "{}/../../shared/conformance/gemini/{name}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .ok()
}

fn run(bytes: &[u8], piece: usize) -> (Vec<Value>, bool, String) {
    let mut t = GeminiToOpenAi::new(true, 1);
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

fn gemini_chunks(bytes: &[u8]) -> Vec<Value> {
    let mut p = SseParser::default();
    let mut ev = Vec::new();
    p.feed(bytes, &mut ev).unwrap();
    p.finish(&mut ev);
    ev.iter()
        .map(|e| serde_json::from_str(&e.data).unwrap())
        .collect()
}

#[test]
fn every_recorded_stream_translates_in_any_chunking() {
    for file in [
        "stream_text.sse",
        "stream_function_call.sse",
        "stream_text_after_function_response.sse",
        "stream_thought_parts.sse",
        "stream_usage_thoughts.sse",
        "stream_function_call_thought_signature.sse",
        "stream_text_after_thought_signature.sse",
    ] {
        let Some(bytes) = corpus(file) else { continue };
        let (whole, failed, text) = run(&bytes, bytes.len());
        assert!(!failed, "{file}: {text}");
        assert!(text.trim_end().ends_with("data: [DONE]"), "{file}");
        for piece in [1, 7, 64] {
            assert_eq!(run(&bytes, piece).0, whole, "{file} in {piece}-byte pieces");
        }
        let g = gemini_chunks(&bytes);
        // Text: everything that is not a thought, in order.
        let want: String = g
            .iter()
            .flat_map(|c| {
                c.pointer("/candidates/0/content/parts")
                    .and_then(Value::as_array)
                    .cloned()
                    .unwrap_or_default()
            })
            .filter(|p| p.get("thought").is_none())
            .filter_map(|p| p.get("text").and_then(Value::as_str).map(str::to_string))
            .collect();
        let got: String = whole
            .iter()
            .filter_map(|e| {
                e.pointer("/choices/0/delta/content")
                    .and_then(Value::as_str)
            })
            .filter(|s| !s.is_empty())
            .collect();
        assert_eq!(got, want, "{file}");
        // Usage: the last snapshot, never a sum.
        let last = g.iter().rev().find_map(|c| c.get("usageMetadata")).unwrap();
        let u = &whole.last().unwrap()["usage"];
        let get = |k: &str| last[k].as_u64().unwrap_or(0);
        assert_eq!(u["prompt_tokens"], get("promptTokenCount"), "{file}");
        assert_eq!(
            u["completion_tokens"],
            get("candidatesTokenCount") + get("thoughtsTokenCount"),
            "{file}"
        );
    }
}

#[test]
fn function_calls_arrive_whole_with_their_signature() {
    let Some(bytes) = corpus("stream_function_call.sse") else {
        return;
    };
    let (events, ..) = run(&bytes, 5);
    let calls: Vec<&Value> = events
        .iter()
        .filter_map(|e| e.pointer("/choices/0/delta/tool_calls/0"))
        .collect();
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0]["index"], 0);
    assert_eq!(calls[0]["function"]["name"], "get_capital");
    assert_eq!(
        serde_json::from_str::<Value>(calls[0]["function"]["arguments"].as_str().unwrap()).unwrap(),
        json!({"country": "France"})
    );
    let finish = events.iter().find_map(|e| {
        e.pointer("/choices/0/finish_reason")
            .and_then(Value::as_str)
    });
    assert_eq!(finish, Some("tool_calls"));

    let Some(bytes) = corpus("stream_function_call_thought_signature.sse") else {
        return;
    };
    let (events, ..) = run(&bytes, 9);
    let g = gemini_chunks(&bytes);
    let sig = g
        .iter()
        .flat_map(|c| {
            c.pointer("/candidates/0/content/parts")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default()
        })
        .find_map(|p| {
            p.get("thoughtSignature")
                .and_then(Value::as_str)
                .map(str::to_string)
        })
        .unwrap();
    let id = events
        .iter()
        .find_map(|e| {
            e.pointer("/choices/0/delta/tool_calls/0/id")
                .and_then(Value::as_str)
        })
        .unwrap();
    assert_eq!(
        crate::translate::gemini::decode_call_id(id).1,
        Some(sig.as_str())
    );
}

#[test]
fn thought_parts_stream_as_reasoning() {
    let Some(bytes) = corpus("stream_thought_parts.sse") else {
        return;
    };
    let (events, ..) = run(&bytes, 13);
    let reasoning: String = events
        .iter()
        .filter_map(|e| {
            e.pointer("/choices/0/delta/reasoning_content")
                .and_then(Value::as_str)
        })
        .collect();
    assert!(!reasoning.is_empty());
}

#[test]
fn an_end_without_a_finish_reason_is_an_error() {
    let mut t = GeminiToOpenAi::new(false, 1);
    t.push(b"data: {\"candidates\":[{\"content\":{\"parts\":[{\"text\":\"hi\"}],\"role\":\"model\"}}],\"responseId\":\"r\"}\r\n\r\n");
    let end = String::from_utf8(t.finish()).unwrap();
    assert!(
        t.failed() && end.contains("upstream_stream_interrupted") && !end.contains("[DONE]"),
        "{end}"
    );
    let mut t = GeminiToOpenAi::new(false, 1);
    let out = String::from_utf8(t.push(b"data: [{\"error\":{\"code\":429,\"message\":\"quota\",\"status\":\"RESOURCE_EXHAUSTED\"}}]\r\n\r\ndata: {\"error\":{\"code\":503,\"message\":\"busy\",\"status\":\"UNAVAILABLE\"}}\r\n\r\n")).unwrap();
    assert!(t.failed() && out.contains("busy"), "{out}");
}
