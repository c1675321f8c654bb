//! End to end over real sockets: client → switchyard (child process) →
//! mock provider (in-process).

mod common;

use common::*;
use serde_json::json;
use tools::mock::{MockConfig, MockServer};

fn setup() -> (MockServer, Gateway) {
    let mock = MockServer::start(MockConfig::default()).unwrap();
    let gw = Gateway::start(
        policy_yaml(&mock.base_url(), 4096, "").as_bytes(),
        "policy.yaml",
    );
    (mock, gw)
}

const HELLO: &str = r#"{"model":"fast","messages":[{"role":"user","content":"hello gateway"}]}"#;

#[test]
fn non_streaming_round_trip_rewrites_model_and_swaps_keys() {
    let (mock, gw) = setup();
    let r = gw.chat(
        HELLO,
        &[("x-stainless-lang", "python"), ("cookie", "session=1")],
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let body = r.json();
    assert_eq!(
        body["choices"][0]["message"]["content"],
        "Mock reply: hello gateway"
    );
    assert_eq!(body["usage"]["completion_tokens"], 4);
    assert_eq!(body["usage"]["prompt_tokens"], 6);
    assert!(r.header("x-request-id").unwrap().starts_with("req_"));
    assert_eq!(r.header("x-upstream-request-id"), Some("req_mock1"));
    assert_eq!(
        r.header("x-ratelimit-limit-requests"),
        None,
        "the provider's limits on the gateway's key are not a tenant's business"
    );

    let seen = mock.requests();
    assert_eq!(seen.len(), 1);
    let up = &seen[0];
    assert_eq!(up.path, "/v1/chat/completions");
    assert_eq!(
        up.body["model"], "gpt-4o-mini",
        "alias rewritten to the target model"
    );
    assert_eq!(
        up.body["messages"],
        json!([{"role": "user", "content": "hello gateway"}])
    );
    assert_eq!(
        up.header("authorization"),
        Some(format!("Bearer {UPSTREAM_KEY}").as_str())
    );
    assert_eq!(up.header("x-stainless-lang"), Some("python"));
    assert_eq!(up.header("cookie"), None);
    assert_eq!(up.header("x-request-id"), r.header("x-request-id"));
    let all_headers = format!("{:?}", up.headers);
    assert!(
        !all_headers.contains(CLIENT_KEY),
        "client key leaked upstream"
    );
    // And the provider key never comes back.
    assert!(!format!("{r:?}").contains(UPSTREAM_KEY));
}

#[test]
fn streaming_passes_every_chunk_and_final_usage() {
    let (_mock, gw) = setup();
    let body = r#"{"model":"mock/gpt-4.1","stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"user","content":"one two three"}]}"#;
    let r = gw.chat(
        body,
        &[
            ("x-mock-tokens-per-chunk", "2"),
            ("x-mock-chunk-delay-ms", "5"),
        ],
    );
    assert_eq!(r.status, 200);
    assert!(r
        .header("content-type")
        .unwrap()
        .starts_with("text/event-stream"));
    assert_eq!(r.header("transfer-encoding"), Some("chunked"));
    let text = r.text();
    assert!(text.trim_end().ends_with("data: [DONE]"), "{text}");
    let events = sse_payloads(&text);
    // role, 3 content chunks, finish, usage
    assert_eq!(events.len(), 6, "{text}");
    let content: String = events
        .iter()
        .filter_map(|e| {
            e["choices"]
                .get(0)
                .and_then(|c| c["delta"]["content"].as_str())
        })
        .collect();
    assert_eq!(content, "Mock reply: one two three");
    assert_eq!(
        events[0]["model"], "gpt-4.1",
        "direct addressing strips the provider prefix"
    );
    assert_eq!(events[4]["choices"][0]["finish_reason"], "stop");
    assert_eq!(events[5]["usage"]["total_tokens"], 5 + 7);
}

#[test]
fn authentication_failures_are_401_in_openai_shape() {
    let (mock, gw) = setup();
    let missing = gw.request("POST", "/v1/chat/completions", &[], HELLO.as_bytes());
    assert_eq!(missing.status, 401);
    assert_eq!(missing.json()["error"]["code"], "missing_api_key");
    let bad = gw.request(
        "POST",
        "/v1/chat/completions",
        &[("authorization", "Bearer sk-sy-not-a-real-key-99")],
        HELLO.as_bytes(),
    );
    assert_eq!(bad.status, 401);
    assert_eq!(bad.header("x-switchyard-error-source"), Some("gateway"));
    let e = bad.json();
    assert_eq!(e["error"]["type"], "invalid_request_error");
    assert_eq!(e["error"]["code"], "invalid_api_key");
    assert!(e["error"]["param"].is_null());
    assert!(
        !bad.text().contains("sk-sy-not-a-real-key-99"),
        "the presented key is not echoed"
    );
    let models = gw.request("GET", "/v1/models", &[], b"");
    assert_eq!(models.status, 401);
    assert!(mock.requests().is_empty(), "nothing reached the provider");
}

#[test]
fn oversized_bodies_get_413_declared_or_streamed() {
    let (mock, gw) = setup();
    let big = format!(
        r#"{{"model":"fast","messages":[{{"role":"user","content":"{}"}}]}}"#,
        "x".repeat(5000)
    );
    let r = gw.chat(&big, &[]);
    assert_eq!(r.status, 413);
    let e = r.json();
    assert_eq!(e["error"]["code"], "request_too_large");
    assert!(e["error"]["message"]
        .as_str()
        .unwrap()
        .contains("limit is 4096 bytes"));
    // Chunked upload with no declared length: caught while reading.
    let mut chunked = format!("{:x}\r\n", big.len()).into_bytes();
    chunked.extend_from_slice(big.as_bytes());
    chunked.extend_from_slice(b"\r\n0\r\n\r\n");
    let auth = format!("Bearer {CLIENT_KEY}");
    let r = gw.request(
        "POST",
        "/v1/chat/completions",
        &[("authorization", &auth), ("transfer-encoding", "chunked")],
        &chunked,
    );
    assert_eq!(r.status, 413);
    assert!(mock.requests().is_empty());
    // The gateway is still fine afterwards.
    assert_eq!(gw.chat(HELLO, &[]).status, 200);
}

#[test]
fn bad_requests_and_unknown_models_are_answered_without_an_upstream_call() {
    let (mock, gw) = setup();
    let r = gw.chat("{not json", &[]);
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["error"]["type"], "invalid_request_error");
    let r = gw.chat(r#"{"model":"fast"}"#, &[]);
    assert_eq!(r.status, 400);
    assert!(r.json()["error"]["message"]
        .as_str()
        .unwrap()
        .contains("messages"));
    let r = gw.chat(r#"{"model":"gpt-9","messages":[]}"#, &[]);
    assert_eq!(r.status, 404);
    assert_eq!(r.json()["error"]["code"], "model_not_found");
    assert_eq!(r.json()["error"]["param"], "model");
    // A key limited to `fast` cannot see or use the others, and is told so.
    let limited = [("authorization", "Bearer sk-sy-e2e-limited-key-0002")];
    let r = gw.request(
        "POST",
        "/v1/chat/completions",
        &limited,
        br#"{"model":"down","messages":[]}"#,
    );
    assert_eq!(r.status, 403);
    assert_eq!(r.json()["error"]["code"], "model_not_allowed");
    let r = gw.request("GET", "/v1/models", &limited, b"");
    let ids: Vec<_> = r.json()["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(ids, ["fast"]);
    assert_eq!(gw.request("GET", "/v1/nothing", &[], b"").status, 404);
    assert_eq!(
        gw.request("DELETE", "/v1/chat/completions", &[], b"")
            .status,
        405
    );
    assert!(mock.requests().is_empty());
}

#[test]
fn provider_errors_pass_through_and_unreachable_providers_are_502() {
    let (mock, gw) = setup();
    let r = gw.chat(HELLO, &[("x-mock-status", "503")]);
    assert_eq!(r.status, 503);
    assert_eq!(r.header("x-switchyard-error-source"), Some("provider"));
    assert_eq!(r.json()["error"]["type"], "server_error");
    let r = gw.chat(
        r#"{"model":"down","messages":[{"role":"user","content":"x"}]}"#,
        &[],
    );
    assert_eq!(r.status, 502, "{}", r.text());
    assert_eq!(r.json()["error"]["type"], "upstream_error");
    assert!(!r.text().contains("sk-nowhere"));
    let r = gw.chat(HELLO, &[("x-mock-drop", "before-headers")]);
    assert_eq!(r.status, 502, "{}", r.text());
    // The provider's 429 reaches the client as the provider sent it…
    let r = gw.chat(
        HELLO,
        &[("x-mock-status", "429"), ("x-mock-retry-after", "3")],
    );
    assert_eq!(r.status, 429);
    assert_eq!(r.header("retry-after"), Some("3"));
    assert_eq!(r.json()["error"]["code"], "rate_limit_exceeded");
    // …and its only key now cools down: the gateway answers for it,
    // without calling the provider.
    let before = mock.requests().len();
    let r = gw.chat(HELLO, &[]);
    assert_eq!(r.status, 429, "{}", r.text());
    assert_eq!(r.json()["error"]["code"], "upstream_keys_cooling_down");
    let wait: u64 = r.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=3).contains(&wait), "{wait}");
    assert_eq!(mock.requests().len(), before);
}

#[test]
fn a_stream_that_dies_midway_ends_with_an_error_event() {
    let (_mock, gw) = setup();
    let body =
        r#"{"model":"fast","stream":true,"messages":[{"role":"user","content":"a b c d e f"}]}"#;
    let r = gw.chat(
        body,
        &[
            ("x-mock-drop-after-chunks", "3"),
            ("x-mock-chunk-delay-ms", "5"),
        ],
    );
    assert_eq!(r.status, 200);
    let events = sse_payloads(&r.text());
    // The mock resets after 3 chunks; how many of those left its buffers
    // before the reset is up to its HTTP stack.
    assert!(
        (2..=4).contains(&events.len()),
        "chunks then the error: {}",
        r.text()
    );
    assert_eq!(events[0]["choices"][0]["delta"]["role"], "assistant");
    let last = events.last().unwrap();
    assert_eq!(last["error"]["code"], "upstream_stream_interrupted");
    assert_eq!(last["error"]["type"], "upstream_error");
    assert!(!r.text().contains("[DONE]"));
}

#[test]
fn metrics_count_requests_attempts_and_latency() {
    let (_mock, gw) = setup();
    for _ in 0..3 {
        assert_eq!(gw.chat(HELLO, &[]).status, 200);
    }
    gw.chat(HELLO, &[("x-mock-status", "500")]);
    // A request is counted after its last byte is written, so the client
    // can read /metrics a moment before the last one lands: wait for it.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    let m = loop {
        let m = gw.request("GET", "/metrics", &[], b"").text();
        let counted = m.contains(r#"switchyard_request_duration_seconds_count{route="chat",model="fast",provider="mock"} 4"#);
        if counted || std::time::Instant::now() > deadline {
            break m;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    };
    assert!(
        m.contains(
            r#"switchyard_requests_total{route="chat",model="fast",provider="mock",status="200"} 3"#
        ),
        "{m}"
    );
    assert!(
        m.contains(
            r#"switchyard_requests_total{route="chat",model="fast",provider="mock",status="500"} 1"#
        ),
        "{m}"
    );
    assert!(
        m.contains(r#"switchyard_upstream_attempts_total{provider="mock",outcome="ok"} 3"#),
        "{m}"
    );
    assert!(
        m.contains(r#"switchyard_upstream_attempts_total{provider="mock",outcome="http_5xx"} 1"#),
        "{m}"
    );
    assert!(m.contains(r#"switchyard_request_duration_seconds_count{route="chat",model="fast",provider="mock"} 4"#), "{m}");
    assert!(m.contains(&format!(
        r#"switchyard_policy_info{{hash="{}"}} 1"#,
        gw.policy_hash()
    )));
    assert!(!m.contains(UPSTREAM_KEY) && !m.contains(CLIENT_KEY));
}

#[test]
fn keep_alive_connections_serve_many_requests() {
    use std::io::{BufReader, Write};
    let (mock, gw) = setup();
    let mut conn = std::net::TcpStream::connect(("127.0.0.1", gw.port)).unwrap();
    let mut reader = BufReader::new(conn.try_clone().unwrap());
    for i in 0..20 {
        let stream = i % 2 == 1;
        let body = format!(
            r#"{{"model":"fast","stream":{stream},"messages":[{{"role":"user","content":"n{i}"}}]}}"#
        );
        let req = format!(
            "POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {CLIENT_KEY}\r\ncontent-length: {}\r\n\r\n{body}",
            body.len()
        );
        conn.write_all(req.as_bytes()).unwrap();
        let r = read_response(&mut reader).unwrap();
        assert_eq!(r.status, 200, "request {i}");
        assert!(
            r.text().contains(&format!("n{i}")),
            "request {i}: {}",
            r.text()
        );
    }
    assert_eq!(mock.requests().len(), 20);
}
