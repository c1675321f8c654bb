//! A table of malformed and hostile requests, each sent on its own
//! connection to one gateway: every one gets its documented answer (a 4xx
//! in the client's API shape, or, for bytes that are not HTTP at all, a
//! 400 or a closed connection), and the gateway keeps serving, with no
//! string a client made up in its metrics.

mod common;

use common::*;
use std::io::{BufReader, Write};
use std::net::TcpStream;
use std::time::Duration;
use tools::mock::{MockConfig, MockServer};

/// What a case must get back.
#[derive(Debug, Clone, Copy)]
enum Expect {
    /// This status and, when given, this error code (OpenAI shape) or
    /// Anthropic error type (Anthropic shape).
    Status(u16, Option<&'static str>),
    /// Not HTTP the gateway can answer: a 4xx or a closed connection, and
    /// never a 2xx or a 5xx.
    RejectedOrClosed,
}

use Expect::*;

const MAX_BODY: u64 = 8 << 20;

/// A request with a JSON body on `path` with the client key.
fn post(path: &str, extra_headers: &str, body: &[u8]) -> Vec<u8> {
    let auth = if path == "/v1/messages" {
        format!("x-api-key: {CLIENT_KEY}\r\nanthropic-version: 2023-06-01\r\n")
    } else {
        format!("authorization: Bearer {CLIENT_KEY}\r\n")
    };
    let mut r = format!(
        "POST {path} HTTP/1.1\r\nhost: x\r\nconnection: close\r\ncontent-type: application/json\r\n{auth}{extra_headers}content-length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    r.extend_from_slice(body);
    r
}

fn chat(body: &str) -> Vec<u8> {
    post("/v1/chat/completions", "", body.as_bytes())
}

fn chat_with(headers: &str, body: &str) -> Vec<u8> {
    post("/v1/chat/completions", headers, body.as_bytes())
}

fn messages(body: &str) -> Vec<u8> {
    post("/v1/messages", "", body.as_bytes())
}

fn raw(text: &str) -> Vec<u8> {
    text.as_bytes().to_vec()
}

fn with_model(model: &str) -> String {
    serde_json::json!({"model": model, "messages": [{"role": "user", "content": "hi"}]}).to_string()
}

fn cases() -> Vec<(&'static str, Vec<u8>, Expect)> {
    let ok_msgs = r#""messages":[{"role":"user","content":"hi"}]"#;
    let deep = format!(
        r#"{{"model":"fast","messages":[{{"role":"user","content":{}1{}}}]}}"#,
        "[".repeat(5000),
        "]".repeat(5000)
    );
    let zeros = format!(
        r#"{{"model":"fast","messages":[{{"role":"user","content":"hi"}}],"x":[{}0]}}"#,
        "0,".repeat(1_100_000)
    );
    let long_key = format!("sk-{}", "k".repeat(10_000));
    vec![
        // The body as JSON.
        ("not JSON", chat("{"), Status(400, Some("invalid_request"))),
        ("an array", chat("[]"), Status(400, Some("invalid_request"))),
        ("a string", chat(r#""hi""#), Status(400, Some("invalid_request"))),
        ("empty body", chat(""), Status(400, Some("invalid_request"))),
        ("a UTF-8 BOM", post("/v1/chat/completions", "", b"\xEF\xBB\xBF{}"), Status(400, Some("invalid_request"))),
        ("invalid UTF-8", post("/v1/chat/completions", "", b"{\"model\":\"f\xFF\"}"), Status(400, Some("invalid_request"))),
        ("no model", chat(&format!("{{{ok_msgs}}}")), Status(400, Some("invalid_request"))),
        ("empty model", chat(&format!(r#"{{"model":"",{ok_msgs}}}"#)), Status(400, Some("invalid_request"))),
        ("model is a number", chat(&format!(r#"{{"model":5,{ok_msgs}}}"#)), Status(400, Some("invalid_request"))),
        ("model is null", chat(&format!(r#"{{"model":null,{ok_msgs}}}"#)), Status(400, Some("invalid_request"))),
        ("model is an object", chat(&format!(r#"{{"model":{{"a":1}},{ok_msgs}}}"#)), Status(400, Some("invalid_request"))),
        ("duplicate model", chat(&format!(r#"{{"model":"fast","model":"x",{ok_msgs}}}"#)), Status(400, Some("invalid_request"))),
        ("no messages", chat(r#"{"model":"fast"}"#), Status(400, Some("invalid_request"))),
        ("messages is an object", chat(r#"{"model":"fast","messages":{}}"#), Status(400, Some("invalid_request"))),
        ("messages is a string", chat(r#"{"model":"fast","messages":"hi"}"#), Status(400, Some("invalid_request"))),
        ("stream is a string", chat(&format!(r#"{{"model":"fast","stream":"yes",{ok_msgs}}}"#)), Status(400, Some("invalid_request"))),
        ("stream_options is a string", chat(&format!(r#"{{"model":"fast","stream":true,"stream_options":"x",{ok_msgs}}}"#)), Status(400, Some("invalid_request"))),
        ("nesting 5000 deep", chat(&deep), Status(400, Some("invalid_request"))),
        ("1.1 M JSON values", chat(&zeros), Status(413, Some("request_too_large"))),
        // Model names: bounded and plain before anything records them.
        ("model of 257 characters", chat(&with_model(&"m".repeat(257))), Status(400, Some("invalid_model_name"))),
        ("model of 100 kB", chat(&with_model(&"m".repeat(100_000))), Status(400, Some("invalid_model_name"))),
        ("model with a newline", chat(&with_model("fast\nINFO forged line")), Status(400, Some("invalid_model_name"))),
        ("model with a space", chat(&with_model("fast x")), Status(400, Some("invalid_model_name"))),
        ("model with a quote", chat(&with_model("fast\"}")), Status(400, Some("invalid_model_name"))),
        ("model in Unicode", chat(&with_model("мodel")), Status(400, Some("invalid_model_name"))),
        ("model with NUL", chat(&with_model("fast\u{0}")), Status(400, Some("invalid_model_name"))),
        ("direct model with ..", chat(&with_model("mock/../files")), Status(400, Some("invalid_model_name"))),
        ("direct model with #", chat(&with_model("mock/m:countTokens#")), Status(400, Some("invalid_model_name"))),
        ("direct model with ?", chat(&with_model("mock/m?alt=x")), Status(400, Some("invalid_model_name"))),
        ("direct model with %", chat(&with_model("mock/%2e%2e")), Status(400, Some("invalid_model_name"))),
        ("direct model with a slash", chat(&with_model("mock/a/b")), Status(400, Some("invalid_model_name"))),
        ("unknown model", chat(&with_model("nope")), Status(404, Some("model_not_found"))),
        ("unknown provider", chat(&with_model("nobody/m")), Status(404, Some("model_not_found"))),
        // Headers.
        ("x-task-id of 200 characters", chat_with(&format!("x-task-id: {}\r\n", "t".repeat(200)), &with_model("fast")), Status(400, Some("invalid_header"))),
        ("x-task-id with a tab", chat_with("x-task-id: a\tb\r\n", &with_model("fast")), Status(400, Some("invalid_header"))),
        ("x-task-id with high bytes", post("/v1/chat/completions", "x-task-id: caf\u{e9}\r\n", with_model("fast").as_bytes()), Status(400, Some("invalid_header"))),
        ("no key", raw("POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-length: 2\r\n\r\n{}"), Status(401, Some("missing_api_key"))),
        ("empty bearer", raw("POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\nauthorization: Bearer \r\ncontent-length: 2\r\n\r\n{}"), Status(401, Some("missing_api_key"))),
        ("basic auth", raw("POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\nauthorization: Basic dXNlcjpwYXNz\r\ncontent-length: 2\r\n\r\n{}"), Status(401, Some("missing_api_key"))),
        ("wrong key", raw("POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\nauthorization: Bearer sk-sy-wrong-000000000000\r\ncontent-length: 2\r\n\r\n{}"), Status(401, Some("invalid_api_key"))),
        ("a 10 kB key", raw(&format!("POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\nx-api-key: {long_key}\r\ncontent-length: 2\r\n\r\n{{}}")), Status(401, Some("invalid_api_key"))),
        // Sizes.
        ("declared body over the limit", raw(&format!("POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {CLIENT_KEY}\r\ncontent-length: {}\r\n\r\n", MAX_BODY + 1)), Status(413, Some("request_too_large"))),
        ("expect 100-continue over the limit", raw(&format!("POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {CLIENT_KEY}\r\nexpect: 100-continue\r\ncontent-length: {}\r\n\r\n", MAX_BODY * 4)), Status(413, Some("request_too_large"))),
        ("chunked body over the limit", {
            let mut r = raw(&format!("POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {CLIENT_KEY}\r\ntransfer-encoding: chunked\r\n\r\n"));
            for _ in 0..9 {
                r.extend_from_slice(format!("{:x}\r\n", 1 << 20).as_bytes());
                r.extend_from_slice(&vec![b' '; 1 << 20]);
                r.extend_from_slice(b"\r\n");
            }
            r.extend_from_slice(b"0\r\n\r\n");
            r
        }, Status(413, Some("request_too_large"))),
        // Routes and methods.
        ("unknown path", raw("GET /v2/everything HTTP/1.1\r\nhost: x\r\n\r\n"), Status(404, Some("unknown_url"))),
        ("a 10 kB path", raw(&format!("GET /{} HTTP/1.1\r\nhost: x\r\n\r\n", "p".repeat(10_000))), Status(404, Some("unknown_url"))),
        ("a 10 kB method", raw(&format!("{} /v1/models HTTP/1.1\r\nhost: x\r\n\r\n", "M".repeat(10_000))), Status(405, Some("method_not_allowed"))),
        ("dot segments", raw("GET /v1/../admin/usage HTTP/1.1\r\nhost: x\r\n\r\n"), Status(404, Some("unknown_url"))),
        ("PUT on chat", raw("PUT /v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-length: 0\r\n\r\n"), Status(405, Some("method_not_allowed"))),
        ("GET on chat", raw("GET /v1/chat/completions HTTP/1.1\r\nhost: x\r\n\r\n"), Status(405, Some("method_not_allowed"))),
        ("DELETE on models", raw("DELETE /v1/models HTTP/1.1\r\nhost: x\r\n\r\n"), Status(405, Some("method_not_allowed"))),
        ("admin with a client key", raw(&format!("GET /admin/usage HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {CLIENT_KEY}\r\n\r\n")), Status(403, Some("admin_key_required"))),
        // The Anthropic API answers in its own shape.
        ("messages: not JSON", messages("{"), Status(400, Some("invalid_request_error"))),
        ("messages: no max_tokens", messages(&format!(r#"{{"model":"fast",{ok_msgs}}}"#)), Status(400, Some("invalid_request_error"))),
        ("messages: model with a newline", messages(&format!(r#"{{"model":"a\nb","max_tokens":5,{ok_msgs}}}"#)), Status(400, Some("invalid_request_error"))),
        ("messages: unknown model", messages(&format!(r#"{{"model":"nope","max_tokens":5,{ok_msgs}}}"#)), Status(404, Some("not_found_error"))),
        // Bytes that are not (acceptable) HTTP, smuggling attempts.
        ("garbage request line", raw("HELLO\r\n\r\n"), RejectedOrClosed),
        ("binary junk", vec![0x16, 0x03, 0x01, 0x00, 0xff, 0x00, 0x00, b'\r', b'\n', b'\r', b'\n'], RejectedOrClosed),
        ("header without a colon", raw("GET /healthz HTTP/1.1\r\nhost x\r\n\r\n"), RejectedOrClosed),
        ("folded header", raw("GET /healthz HTTP/1.1\r\nhost: x\r\nx-a: b\r\n c\r\n\r\n"), RejectedOrClosed),
        ("negative content-length", raw("POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-length: -5\r\n\r\n"), RejectedOrClosed),
        ("two content-lengths", raw(&format!("POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {CLIENT_KEY}\r\ncontent-length: 2\r\ncontent-length: 40\r\n\r\n{{}}")), RejectedOrClosed),
        ("content-length and chunked", raw(&format!("POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {CLIENT_KEY}\r\ncontent-length: 4\r\ntransfer-encoding: chunked\r\n\r\n0\r\n\r\nGET /admin/usage HTTP/1.1\r\nhost: x\r\n\r\n")), RejectedOrClosed),
        ("bad chunk size", raw(&format!("POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {CLIENT_KEY}\r\ntransfer-encoding: chunked\r\n\r\nzz\r\n{{}}\r\n0\r\n\r\n")), RejectedOrClosed),
        ("a 2 MB header", raw(&format!("GET /healthz HTTP/1.1\r\nhost: x\r\nx-big: {}\r\n\r\n", "a".repeat(2 << 20))), RejectedOrClosed),
        ("HTTP/0.9", raw("GET /healthz\r\n\r\n"), RejectedOrClosed),
    ]
}

/// Send `bytes` on a new connection; the status line's code, or `None`
/// when the connection closed without one.
fn send(port: u16, bytes: &[u8]) -> Option<(u16, String)> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(20))).ok()?;
    // The gateway may answer and close before taking all of it.
    let _ = s.write_all(bytes);
    let mut r = BufReader::new(s);
    let resp = read_response(&mut r).ok()?;
    Some((
        resp.status,
        String::from_utf8_lossy(&resp.body).into_owned(),
    ))
}

#[test]
fn every_hostile_request_gets_its_answer_and_the_gateway_keeps_serving() {
    let mock = MockServer::start(MockConfig::default()).unwrap();
    let gw = Gateway::start_logged(
        policy_yaml(&mock.base_url(), MAX_BODY, "").as_bytes(),
        "p.yaml",
    );
    let table = cases();
    assert!(table.len() >= 50, "{} cases", table.len());
    let mut wrong = Vec::new();
    for (name, bytes, expect) in &table {
        let got = send(gw.port, bytes);
        let ok = match (expect, &got) {
            (Status(status, code), Some((s, body))) => {
                s == status
                    && code.is_none_or(|c| {
                        let v: serde_json::Value = serde_json::from_str(body).unwrap_or_default();
                        v["error"]["code"] == c || v["error"]["type"] == c
                    })
            }
            (RejectedOrClosed, Some((s, _))) => (400..500).contains(s),
            (RejectedOrClosed, None) => true,
            (Status(..), None) => false,
        };
        if !ok {
            wrong.push(format!("{name}: expected {expect:?}, got {got:?}"));
        }
        // After every case, the gateway still serves a normal request.
        let r = gw.chat(&with_model("fast"), &[]);
        assert_eq!(r.status, 200, "after {name}: {}", r.text());
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    // Only names from the policy label the metrics, and the log has one
    // line per request: no forged lines.
    let metrics = gw.request("GET", "/metrics", &[], b"").text();
    for line in metrics
        .lines()
        .filter(|l| l.starts_with("switchyard_requests_total"))
    {
        assert!(
            ["model=\"fast\"", "model=\"-\"", "model=\"<direct>\""]
                .iter()
                .any(|m| line.contains(m)),
            "a client-made label: {line}"
        );
    }
    std::thread::sleep(Duration::from_millis(200));
    let log = gw.log();
    assert!(!log.contains("\nINFO forged line"), "log injection: {log}");
    // Nothing a client sent makes a log line long.
    let longest = log.lines().map(str::len).max().unwrap_or(0);
    assert!(longest < 2048, "a log line of {longest} bytes");
}
