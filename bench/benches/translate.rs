//! Translation hot paths: a request into each provider's format, a whole
//! answer back into the client's, and SSE re-framing of a 100-event stream
//! (Anthropic → OpenAI, OpenAI → OpenAI, OpenAI → an Anthropic client).
//!
//! The payloads are built here, in the shapes of the conformance corpus
//! (`../shared/conformance/`), so the bench runs anywhere: a chat request
//! with an 8-turn history (~2.5 KB) and a tool, a text + tool_use answer.

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use engine::translate::{self, openai, ClientFormat, ClientRequest};
use policy::{snapshot, Snapshot};
use std::collections::HashMap;
use std::hint::black_box;

const EVENTS: usize = 100;

fn providers() -> Snapshot {
    let yaml = "version: 1\nproviders:\n  oa: {kind: openai, base_url: 'http://x/v1', keys: [{key: k}]}\n  an: {kind: anthropic, base_url: 'http://x', keys: [{key: k}]}\n  ge: {kind: gemini, base_url: 'http://x', keys: [{key: k}]}\n";
    let c = policy::compile_yaml(yaml, "bench.yaml", &HashMap::new()).expect("compiles");
    Snapshot::from_bytes(&snapshot::encode(&c.policy, 0).expect("encodes")).expect("valid")
}

fn openai_request() -> Bytes {
    let mut messages = vec![
        serde_json::json!({"role": "system", "content": "You are a careful assistant for a logistics company. Answer briefly."}),
    ];
    for i in 0..4 {
        messages.push(serde_json::json!({"role": "user", "content": format!("Question {i}: where is shipment {i} and when will it arrive at the Rotterdam warehouse? Please include the carrier and the tracking reference.")}));
        messages.push(serde_json::json!({"role": "assistant", "content": format!("Shipment {i} left Hamburg yesterday with carrier North Sea Freight, tracking NSF-{i:06}; it is due in Rotterdam on Thursday morning.")}));
    }
    messages.push(
        serde_json::json!({"role": "user", "content": "And the weather in Rotterdam on Thursday?"}),
    );
    let body = serde_json::json!({
        "model": "fast", "max_tokens": 512, "temperature": 0.2, "messages": messages,
        "tools": [{"type": "function", "function": {"name": "get_weather", "description": "Weather for a city", "parameters": {"type": "object", "properties": {"location": {"type": "string"}, "units": {"type": "string", "enum": ["c", "f"]}}, "required": ["location"]}}}],
    });
    Bytes::from(serde_json::to_vec(&body).expect("json"))
}

fn anthropic_answer() -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        "id": "msg_01UBZt9MX63Tk3v1gKvgxk3A", "type": "message", "role": "assistant", "model": "claude-haiku-4-5",
        "content": [
            {"type": "text", "text": "I'll get the weather for Rotterdam on Thursday."},
            {"type": "tool_use", "id": "toolu_01LRanfq6DmHn1yDTB4d1SAh", "name": "get_weather", "input": {"location": "Rotterdam", "units": "c"}}
        ],
        "stop_reason": "tool_use", "stop_sequence": null,
        "usage": {"input_tokens": 701, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0, "output_tokens": 93}
    })).expect("json")
}

fn openai_answer() -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        "id": "chatcmpl-1", "object": "chat.completion", "created": 1_700_000_000, "model": "gpt-4o-mini",
        "choices": [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": "Thursday in Rotterdam: 14 °C, light rain in the morning, clearing by noon."}}],
        "usage": {"prompt_tokens": 701, "completion_tokens": 23, "total_tokens": 724}
    })).expect("json")
}

/// One SSE event per element, as a provider sends them.
fn anthropic_stream() -> Vec<Vec<u8>> {
    let mut ev = vec![
        r#"event: message_start
data: {"type":"message_start","message":{"id":"msg_1","type":"message","role":"assistant","model":"claude-haiku-4-5","content":[],"stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":472,"output_tokens":2}}}"#.to_string(),
        r#"event: content_block_start
data: {"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}"#.to_string(),
    ];
    for i in 0..EVENTS {
        ev.push(format!("event: content_block_delta\ndata: {{\"type\":\"content_block_delta\",\"index\":0,\"delta\":{{\"type\":\"text_delta\",\"text\":\" word{i}\"}}}}"));
    }
    ev.push(
        r#"event: content_block_stop
data: {"type":"content_block_stop","index":0}"#
            .into(),
    );
    ev.push(r#"event: message_delta
data: {"type":"message_delta","delta":{"stop_reason":"end_turn","stop_sequence":null},"usage":{"output_tokens":100}}"#.into());
    ev.push("event: message_stop\ndata: {\"type\":\"message_stop\"}".into());
    ev.into_iter()
        .map(|e| format!("{e}\n\n").into_bytes())
        .collect()
}

fn openai_stream() -> Vec<Vec<u8>> {
    let mut ev: Vec<String> = (0..EVENTS)
        .map(|i| format!("data: {{\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\",\"created\":1700000000,\"model\":\"gpt-4o-mini\",\"choices\":[{{\"index\":0,\"delta\":{{\"content\":\" word{i}\"}},\"finish_reason\":null}}]}}"))
        .collect();
    ev.push("data: {\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\",\"created\":1700000000,\"model\":\"gpt-4o-mini\",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}],\"usage\":{\"prompt_tokens\":701,\"completion_tokens\":100,\"total_tokens\":801}}".into());
    ev.push("data: [DONE]".into());
    ev.into_iter()
        .map(|e| format!("{e}\n\n").into_bytes())
        .collect()
}

fn bench(c: &mut Criterion) {
    let snap = providers();
    let p = snap.policy();
    let provider = |name: &str| {
        p.providers
            .iter()
            .find(|x| x.name.as_str() == name)
            .expect("provider")
    };
    let (oa, an, ge) = (provider("oa"), provider("an"), provider("ge"));

    let body = openai_request();
    let mut g = c.benchmark_group("translate/request");
    g.throughput(Throughput::Bytes(body.len() as u64));
    for (name, target, model) in [
        ("openai_same_model", oa, "fast"),
        ("openai_model_rewrite", oa, "gpt-4o-mini"),
        ("openai_to_anthropic", an, "claude-haiku-4-5"),
        ("openai_to_gemini", ge, "gemini-2.5-flash"),
    ] {
        g.bench_function(name, |b| {
            b.iter(|| {
                let chat = openai::parse_chat(black_box(&body)).expect("parses");
                let req = ClientRequest::new(ClientFormat::OpenAi, &body, &chat);
                translate::outbound(target, "k", model, &req).expect("translates")
            })
        });
    }
    g.finish();

    let mut g = c.benchmark_group("translate/response");
    let answer = anthropic_answer();
    g.bench_function("anthropic_to_openai", |b| {
        b.iter(|| {
            translate::response_json(an, "claude", black_box(&answer), 0, ClientFormat::OpenAi)
                .expect("translates")
        })
    });
    let answer = openai_answer();
    g.bench_function("openai_to_anthropic_client", |b| {
        b.iter(|| {
            translate::response_json(oa, "fast", black_box(&answer), 0, ClientFormat::Anthropic)
                .expect("translates")
        })
    });
    g.finish();

    let mut g = c.benchmark_group("sse_reframe");
    g.throughput(Throughput::Elements(EVENTS as u64));
    let anthropic = anthropic_stream();
    let openai = openai_stream();
    for (name, target, events, client) in [
        (
            "anthropic_to_openai_100",
            an,
            &anthropic,
            ClientFormat::OpenAi,
        ),
        ("openai_to_openai_100", oa, &openai, ClientFormat::OpenAi),
        (
            "openai_to_anthropic_client_100",
            oa,
            &openai,
            ClientFormat::Anthropic,
        ),
    ] {
        g.bench_function(name, |b| {
            b.iter(|| {
                let mut t = translate::stream_translator(target, "m", false, 0, client)
                    .expect("a translator");
                let mut out = 0;
                for e in events.iter() {
                    out += t.push(black_box(e)).len();
                }
                out + t.finish().len()
            })
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
