//! Tenants, limits, budgets and metering, end to end over real sockets
//! against the mock provider; the ledger is read back from SQLite.

mod common;

use common::*;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};
use tools::mock::{MockConfig, MockServer};

const OK_KEY: &str = "sk-sy-tenancy-ok-00000001";
const RPM_KEY: &str = "sk-sy-tenancy-rpm-0000002";
const BUDGET_KEY: &str = "sk-sy-tenancy-budget-0003";
const ADMIN_KEY: &str = "sk-sy-tenancy-admin-00009";

fn policy(base_url: &str, flush_ms: u64) -> String {
    format!(
        r#"version: 1
listener: {{forward_headers: [x-mock-*]}}
providers:
  mock: {{kind: openai, base_url: {base_url}, allow_direct: true, keys: [{{key: {UPSTREAM_KEY}}}]}}
  claude: {{kind: anthropic, base_url: {anthropic}, keys: [{{key: {UPSTREAM_KEY}}}]}}
models:
  fast: {{targets: [{{provider: mock, model: gpt-4o-mini}}]}}
  other: {{targets: [{{provider: mock, model: gpt-4.1}}]}}
  sonnet: {{targets: [{{provider: claude, model: claude-sonnet-4-5}}]}}
prices:
  mock/gpt-4o-mini: {{input: 1000, output: 2000}}
  mock/gpt-4.1: {{input: 2, output: 8}}
  claude/claude-sonnet-4-5: {{input: 3, output: 15}}
usage: {{flush_interval_ms: {flush_ms}}}
teams:
  research: {{}}
users:
  ada: {{team: research}}
admin_keys:
  - {{name: ops, key: {ADMIN_KEY}}}
client_keys:
  - {{name: ok, key: {OK_KEY}, user: ada, models: [fast, sonnet]}}
  - {{name: rpm, key: {RPM_KEY}, limits: {{rpm: 50}}}}
  - {{name: budget, key: {BUDGET_KEY}, budgets: {{daily: 1.0}}}}
  - {{name: off, key: sk-sy-tenancy-off-0000004, status: suspended}}
  - {{name: old, key: sk-sy-tenancy-old-0000005, expires_at: "2020-01-01T00:00:00Z"}}
  - {{name: lan, key: sk-sy-tenancy-lan-0000006, source_ips: [10.9.9.0/24]}}
"#,
        anthropic = base_url.trim_end_matches("/v1"),
    )
}

fn chat_as(gw: &Gateway, key: &str, body: &str, extra: &[(&str, &str)]) -> Response {
    let auth = format!("Bearer {key}");
    let mut h = vec![
        ("authorization", auth.as_str()),
        ("content-type", "application/json"),
    ];
    h.extend_from_slice(extra);
    gw.request("POST", "/v1/chat/completions", &h, body.as_bytes())
}

/// Ledger rows once the writer has caught up with `expected` records.
fn ledger_rows(gw: &Gateway, expected: usize) -> Vec<serde_json::Value> {
    let path = gw.dir.0.join("usage.db");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let rows = read_ledger(&path);
        if rows.len() >= expected || Instant::now() > deadline {
            return rows;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn every_auth_failure_has_its_status_and_shape_and_no_secret_leaks() {
    let mock = MockServer::start(MockConfig::default()).unwrap();
    let gw = Gateway::start_logged(policy(&mock.base_url(), 50).as_bytes(), "p.yaml");
    let body = r#"{"model":"fast","messages":[{"role":"user","content":"hi"}]}"#;
    let cases = [
        ("sk-sy-tenancy-off-0000004", 403, "key_suspended"),
        ("sk-sy-tenancy-old-0000005", 401, "key_expired"),
        ("sk-sy-tenancy-lan-0000006", 403, "ip_not_allowed"),
        ("sk-sy-tenancy-bad-0000007", 401, "invalid_api_key"),
    ];
    let mut bodies = String::new();
    for (key, status, code) in cases {
        let r = chat_as(&gw, key, body, &[]);
        assert_eq!(
            (r.status, r.json()["error"]["code"].as_str()),
            (status, Some(code)),
            "{key}"
        );
        assert_eq!(r.header("x-switchyard-error-source"), Some("gateway"));
        bodies.push_str(&r.text());
    }
    let r = chat_as(&gw, OK_KEY, r#"{"model":"other","messages":[]}"#, &[]);
    assert_eq!(
        (r.status, r.json()["error"]["code"].as_str()),
        (403, Some("model_not_allowed"))
    );
    let r = gw.request("POST", "/v1/chat/completions", &[], body.as_bytes());
    assert_eq!(r.status, 401);
    // Anthropic clients get Anthropic's error shape.
    let r = gw.request(
        "POST",
        "/v1/messages",
        &[
            ("x-api-key", "sk-sy-tenancy-off-0000004"),
            ("content-type", "application/json"),
        ],
        br#"{"model":"sonnet","max_tokens":5,"messages":[{"role":"user","content":"hi"}]}"#,
    );
    assert_eq!(r.status, 403);
    assert_eq!(r.json()["type"], "error");
    assert_eq!(r.json()["error"]["type"], "permission_error");
    // The admin endpoint wants an admin key.
    let r = gw.request(
        "GET",
        "/admin/usage",
        &[("authorization", &format!("Bearer {OK_KEY}"))],
        b"",
    );
    assert_eq!(r.status, 403);
    // A served request, then look everywhere a secret could leak.
    assert_eq!(chat_as(&gw, OK_KEY, body, &[]).status, 200);
    let metrics = gw.request("GET", "/metrics", &[], b"").text();
    std::thread::sleep(Duration::from_millis(200));
    let everything = format!("{bodies}{metrics}{}", gw.log());
    for secret in [
        OK_KEY,
        "sk-sy-tenancy-off-0000004",
        "sk-sy-tenancy-bad-0000007",
        UPSTREAM_KEY,
    ] {
        assert!(!everything.contains(secret), "{secret} leaked");
    }
    let rows = ledger_rows(&gw, 1);
    let ok = rows
        .iter()
        .find(|r| r["status"] == 200)
        .expect("the served request is in the ledger");
    assert_eq!(
        (ok["key"].as_str(), ok["user"].as_str(), ok["team"].as_str()),
        (Some("ok"), Some("ada"), Some("research"))
    );
}

#[test]
fn a_budgeted_key_cannot_reach_a_model_without_a_price() {
    let mock = MockServer::start(MockConfig::default()).unwrap();
    let gw = Gateway::start(policy(&mock.base_url(), 50).as_bytes(), "p.yaml");
    let r = chat_as(
        &gw,
        BUDGET_KEY,
        r#"{"model":"mock/gpt-unpriced","messages":[{"role":"user","content":"hi"}]}"#,
        &[],
    );
    assert_eq!(r.status, 403, "{}", r.text());
    assert_eq!(r.json()["error"]["code"], "gateway_model_unpriced");
    assert!(
        mock.requests().is_empty(),
        "an unbounded call reached the provider"
    );
    // A priced direct model is served, and an unbudgeted key may use any.
    let priced = r#"{"model":"mock/gpt-4o-mini","max_tokens":5,"messages":[{"role":"user","content":"hi"}]}"#;
    assert_eq!(chat_as(&gw, BUDGET_KEY, priced, &[]).status, 200);
    let r = chat_as(
        &gw,
        RPM_KEY,
        r#"{"model":"mock/gpt-unpriced","messages":[{"role":"user","content":"hi"}]}"#,
        &[],
    );
    assert_eq!(r.status, 200, "{}", r.text());
}

#[test]
fn sixty_four_clients_get_exactly_the_rpm_and_never_pass_the_budget() {
    let mock = MockServer::start(MockConfig::default()).unwrap();
    let gw = Gateway::start(policy(&mock.base_url(), 50).as_bytes(), "p.yaml");
    let port = gw.port;
    let run = |key: &'static str, body: &'static str| -> Vec<(u16, String)> {
        let handles: Vec<_> = (0..64)
            .map(|_| {
                std::thread::spawn(move || {
                    let auth = format!("Bearer {key}");
                    (0..3)
                        .map(|_| {
                            let r = try_request(
                                port,
                                "POST",
                                "/v1/chat/completions",
                                &[("authorization", &auth)],
                                body.as_bytes(),
                            )
                            .unwrap();
                            let code = if r.status == 200 {
                                String::new()
                            } else {
                                r.json()["error"]["code"].as_str().unwrap_or("").to_string()
                            };
                            (r.status, code)
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect()
    };
    // 192 requests inside one minute against 50 rpm: exactly 50 admitted.
    let out = run(
        RPM_KEY,
        r#"{"model":"fast","messages":[{"role":"user","content":"hi"}]}"#,
    );
    let ok = out.iter().filter(|(s, _)| *s == 200).count();
    assert_eq!(ok, 50);
    assert!(out
        .iter()
        .filter(|(s, _)| *s != 200)
        .all(|(s, c)| *s == 429 && c == "gateway_rate_limit_requests"));
    let r = chat_as(&gw, RPM_KEY, r#"{"model":"fast","messages":[]}"#, &[]);
    assert_eq!(r.status, 429);
    assert!(r.header("retry-after").is_some());
    assert_eq!(r.header("x-ratelimit-limit-requests"), Some("50"));
    assert_eq!(r.header("x-switchyard-limit"), Some("key:rpm:requests"));
    assert!(r.json()["error"]["message"]
        .as_str()
        .unwrap()
        .contains("Switchyard rate limit for key `rpm`"));

    // Budget 1.0 at 1000/2000 per M tokens; each request reserves its
    // bytes at the input price plus max_tokens at the output price.
    let out = run(
        BUDGET_KEY,
        r#"{"model":"fast","max_tokens":20,"messages":[{"role":"user","content":"spend some money"}]}"#,
    );
    let ok = out.iter().filter(|(s, _)| *s == 200).count();
    let refused = out
        .iter()
        .filter(|(_, c)| c == "gateway_budget_exceeded")
        .count();
    assert_eq!(ok + refused, out.len(), "{out:?}");
    assert!(refused > 0 && ok > 0);
    let rows = ledger_rows(&gw, 50 + 142 + 1 + out.len());
    let spent: i64 = rows
        .iter()
        .filter(|r| r["key"] == "budget")
        .map(|r| r["cost"].as_i64().unwrap())
        .sum();
    assert!(
        spent <= 1_000_000_000,
        "spent {spent} nano over a budget of 1e9"
    );
    assert_eq!(
        rows.iter()
            .filter(|r| r["key"] == "budget" && r["status"] == 200)
            .count(),
        ok
    );
    // Settled to actual usage: the spend is what the mock served.
    let served = mock.served();
    let tokens: u64 = rows
        .iter()
        .filter(|r| r["key"] == "budget" && r["status"] == 200)
        .map(|r| {
            let s = &served[r["request_id"].as_str().unwrap()];
            // 1000 per million tokens = 1e6 nano-units a token.
            s.prompt_tokens * 1_000_000 + s.completion_tokens * 2_000_000
        })
        .sum();
    assert_eq!(spent as u64, tokens);
}

/// Send a streamed request, read `keep` bytes of the answer, hang up.
fn abandon_stream(port: u16, body: &str, keep: usize) -> String {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    let req = format!(
        "POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {OK_KEY}\r\ncontent-type: application/json\r\nx-mock-chunk-delay-ms: 30\r\nx-request-id: abandoned-1\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes()).unwrap();
    let mut got = vec![0u8; keep];
    s.read_exact(&mut got).unwrap();
    String::from_utf8_lossy(&got).into_owned()
}

#[test]
fn the_ledger_counts_what_the_provider_served_even_for_cut_streams() {
    let mock = MockServer::start(MockConfig::default()).unwrap();
    let gw = Gateway::start(policy(&mock.base_url(), 50).as_bytes(), "p.yaml");
    let msgs = r#""messages":[{"role":"user","content":"count these words for me please"}]"#;
    // Whole answer, and a stream whose client did not ask for usage: the
    // gateway asks on its own and hides the chunk.
    let r = chat_as(
        &gw,
        OK_KEY,
        &format!(r#"{{"model":"fast",{msgs}}}"#),
        &[("x-request-id", "plain-1"), ("x-task-id", "agent-7")],
    );
    assert_eq!(r.status, 200);
    let r = chat_as(
        &gw,
        OK_KEY,
        &format!(r#"{{"model":"fast","stream":true,{msgs}}}"#),
        &[("x-request-id", "stream-1"), ("x-mock-reply-tokens", "40")],
    );
    assert_eq!(r.status, 200);
    let events = sse_payloads(&r.text());
    assert!(
        events
            .iter()
            .all(|e| e.get("usage").is_none_or(|u| u.is_null())),
        "usage was not asked for"
    );
    let asked = mock
        .requests()
        .into_iter()
        .find(|q| q.header("x-request-id") == Some("stream-1"))
        .unwrap();
    assert_eq!(asked.body["stream_options"]["include_usage"], true);
    // The provider breaks the stream after 6 events (role + 5 content).
    let r = chat_as(
        &gw,
        OK_KEY,
        &format!(r#"{{"model":"fast","stream":true,{msgs}}}"#),
        &[
            ("x-request-id", "broken-1"),
            ("x-mock-reply-tokens", "40"),
            ("x-mock-drop-after-chunks", "6"),
            ("x-mock-chunk-delay-ms", "5"),
        ],
    );
    assert!(
        r.text().contains("upstream_stream_interrupted"),
        "{}",
        r.text()
    );
    // The client hangs up after the first few events.
    let head = abandon_stream(
        gw.port,
        &format!(r#"{{"model":"fast","stream":true,{msgs}}}"#),
        400,
    );
    assert!(head.contains("200"));
    std::thread::sleep(Duration::from_millis(300));
    // Anthropic upstream, streamed and whole.
    let r = chat_as(
        &gw,
        OK_KEY,
        &format!(r#"{{"model":"sonnet","stream":true,{msgs}}}"#),
        &[("x-request-id", "claude-1")],
    );
    assert_eq!(r.status, 200);
    let rows = ledger_rows(&gw, 5);
    let served = mock.served();
    for id in ["plain-1", "stream-1", "broken-1", "abandoned-1", "claude-1"] {
        let row = rows
            .iter()
            .find(|r| r["request_id"] == id)
            .unwrap_or_else(|| panic!("{id} not in the ledger: {rows:?}"));
        let s = &served[id];
        assert_eq!(
            row["output"].as_u64().unwrap(),
            s.completion_tokens,
            "{id}: {row} vs {s:?}"
        );
        assert!(s.completion_tokens > 0, "{id}");
        if id != "broken-1" && id != "abandoned-1" {
            assert_eq!(row["input"].as_u64().unwrap(), s.prompt_tokens, "{id}");
            assert_eq!(row["source"], "provider", "{id}");
        } else {
            // OpenAI sends no usage before the end: the prompt is estimated.
            assert!(row["input"].as_u64().unwrap() > 0);
            assert_eq!(row["source"], "counted", "{id}");
        }
    }
    let abandoned = rows
        .iter()
        .find(|r| r["request_id"] == "abandoned-1")
        .unwrap();
    assert_eq!(abandoned["status"], 499);
    assert!(
        served["abandoned-1"].completion_tokens < 40,
        "the provider was stopped early"
    );
    assert_eq!(
        rows.iter().find(|r| r["request_id"] == "plain-1").unwrap()["task"],
        "agent-7"
    );
}

#[test]
fn a_killed_gateway_loses_at_most_the_flush_interval_and_budgets_resume() {
    let mock = MockServer::start(MockConfig::default()).unwrap();
    let flush_ms = 100;
    let mut gw = Gateway::start(policy(&mock.base_url(), flush_ms).as_bytes(), "p.yaml");
    let port = gw.port;
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let workers: Vec<_> = (0..8)
        .map(|w| {
            let stop = stop.clone();
            std::thread::spawn(move || {
                let mut done = Vec::new();
                let auth = format!("Bearer {BUDGET_KEY}");
                for i in 0..2000 {
                    if stop.load(std::sync::atomic::Ordering::Relaxed) {
                        break;
                    }
                    let id = format!("load-{w}-{i}");
                    let body = br#"{"model":"fast","max_tokens":5,"messages":[{"role":"user","content":"x"}]}"#;
                    let headers = [("authorization", auth.as_str()), ("x-request-id", id.as_str())];
                    // Refused requests are recorded too: every answer counts.
                    if try_request(port, "POST", "/v1/chat/completions", &headers, body).is_ok() {
                        done.push((id, Instant::now()));
                    }
                }
                done
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(1500));
    let killed_at = Instant::now();
    gw.child.kill().unwrap(); // SIGKILL
    gw.child.wait().unwrap();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let done: Vec<(String, Instant)> = workers
        .into_iter()
        .flat_map(|h| h.join().unwrap())
        .collect();
    assert!(done.len() > 200, "load ran: {}", done.len());
    let rows = read_ledger(&gw.dir.0.join("usage.db"));
    let kept: std::collections::HashSet<&str> = rows
        .iter()
        .filter_map(|r| r["request_id"].as_str())
        .collect();
    let lost: Vec<&(String, Instant)> = done
        .iter()
        .filter(|(id, _)| !kept.contains(id.as_str()))
        .collect();
    // Only requests finished within the last flush interval (plus the
    // commit itself and scheduling slack) may be missing.
    let window = Duration::from_millis(flush_ms + 400);
    for (id, at) in &lost {
        assert!(
            killed_at.duration_since(*at) <= window,
            "{id} finished {:?} before the kill and was lost",
            killed_at.duration_since(*at)
        );
    }
    eprintln!(
        "completed {}, in ledger {}, lost {}",
        done.len(),
        kept.len(),
        lost.len()
    );
    // Restart on the same ledger: the day's spend is back.
    let spent: i64 = rows
        .iter()
        .filter(|r| r["key"] == "budget")
        .map(|r| r["cost"].as_i64().unwrap())
        .sum();
    assert!(spent > 0);
    let child = Gateway::spawn(&gw.policy, port, std::process::Stdio::null());
    gw.child = child;
    let deadline = Instant::now() + Duration::from_secs(20);
    while try_request(port, "GET", "/healthz", &[], b"").is_err() {
        assert!(Instant::now() < deadline, "restart");
        std::thread::sleep(Duration::from_millis(50));
    }
    // Reserve just over what is left: refused only if the spend resumed.
    let left = 1_000_000_000 - spent;
    let tokens = (left / 2000 + 1).max(1);
    let r = chat_as(
        &gw,
        BUDGET_KEY,
        &format!(r#"{{"model":"fast","max_tokens":{tokens},"messages":[]}}"#),
        &[],
    );
    assert_eq!(
        (r.status, r.json()["error"]["code"].as_str()),
        (429, Some("gateway_budget_exceeded")),
        "{}",
        r.text()
    );
}

#[test]
fn usage_reads_back_from_the_cli_and_the_admin_endpoint() {
    let mock = MockServer::start(MockConfig::default()).unwrap();
    let gw = Gateway::start(policy(&mock.base_url(), 20).as_bytes(), "p.yaml");
    let body = r#"{"model":"fast","messages":[{"role":"user","content":"hello there"}]}"#;
    for task in ["t1", "t1", "t2"] {
        assert_eq!(
            chat_as(&gw, OK_KEY, body, &[("x-task-id", task)]).status,
            200
        );
    }
    assert_eq!(ledger_rows(&gw, 3).len(), 3);
    let served: u64 = mock.served().values().map(|s| s.prompt_tokens).sum();
    let admin = format!("Bearer {ADMIN_KEY}");
    let r = gw.request(
        "GET",
        "/admin/usage?since=1h&by=task",
        &[("authorization", &admin)],
        b"",
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let v = r.json();
    assert_eq!(v["by"], "task");
    assert_eq!(v["total"]["requests"], 3);
    assert_eq!(v["total"]["input_tokens"].as_u64().unwrap(), served);
    let t1 = v["rows"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["group"] == "t1")
        .unwrap();
    assert_eq!(t1["requests"], 2);
    let r = gw.request(
        "GET",
        "/admin/usage?by=nonsense",
        &[("authorization", &admin)],
        b"",
    );
    assert_eq!(r.status, 400);
    assert!(r.json()["error"]["message"]
        .as_str()
        .unwrap()
        .contains("cannot group by"));
    // The CLI reads the same file.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_switchyard"))
        .args(["usage", "--since", "1h", "--by", "user", "--ledger"])
        .arg(gw.dir.0.join("usage.db"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(table.contains("ada") && table.contains("total"), "{table}");
    let line = table.lines().find(|l| l.starts_with("ada")).unwrap();
    assert!(line.split_whitespace().nth(1) == Some("3"), "{line}");
}
