//! The edge under hostile clients, over real sockets: slow heads and
//! bodies, too many connections, too many requests, clients that stop
//! reading, and the admin surface kept off the client listener.

mod common;

use common::*;
use std::io::{BufReader, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};
use tools::mock::{MockConfig, MockServer};

const SLOT_KEY: &str = "sk-sy-edge-one-slot-00001";

/// The common test policy with `listener_extra` under `listener:` and a
/// key limited to one request in flight.
fn policy(mock: &MockServer, listener_extra: &str) -> String {
    policy_yaml(&mock.base_url(), 1 << 20, "")
        .replace("listener:\n", &format!("listener:\n{listener_extra}"))
        .replace(
            "client_keys:\n",
            &format!("client_keys:\n  - name: one-slot\n    key: {SLOT_KEY}\n    limits: {{concurrency: 1}}\n"),
        )
}

fn start(listener_extra: &str) -> (MockServer, Gateway) {
    let mock = MockServer::start(MockConfig::default()).unwrap();
    let gw = Gateway::start(policy(&mock, listener_extra).as_bytes(), "p.yaml");
    (mock, gw)
}

const HELLO: &str = r#"{"model":"fast","messages":[{"role":"user","content":"hi"}]}"#;

/// Whether the server closed `s` (a read sees the end, or a write fails)
/// while we trickle `drip` every 200 ms, for at most `limit`.
fn closed_while_trickling(s: &mut TcpStream, drip: &[u8], limit: Duration) -> Option<Duration> {
    let started = Instant::now();
    s.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let mut buf = [0u8; 4096];
    while started.elapsed() < limit {
        if s.write_all(drip).is_err() {
            return Some(started.elapsed());
        }
        match s.read(&mut buf) {
            Ok(0) => return Some(started.elapsed()),
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {}
            Err(_) => return Some(started.elapsed()),
        }
    }
    None
}

#[test]
fn a_head_sent_a_byte_at_a_time_is_cut_off_at_the_header_deadline() {
    let (_m, gw) = start("  header_timeout_ms: 800\n");
    let mut s = TcpStream::connect(("127.0.0.1", gw.port)).unwrap();
    s.write_all(b"POST /v1/chat/completions HTTP/1.1\r\n")
        .unwrap();
    // Every read gets a byte well within any per-read timeout; only a
    // deadline for the whole head ends this.
    let closed = closed_while_trickling(&mut s, b"x", Duration::from_secs(10));
    assert!(closed.is_some(), "a slow head held its connection for 10 s");
    assert!(gw.metric(r#"switchyard_client_timeouts_total{phase="header"}"#) >= 1.0);
    assert_eq!(gw.chat(HELLO, &[]).status, 200, "the gateway still serves");
}

#[test]
fn a_silent_connection_is_closed_and_a_kept_alive_one_after_the_idle_timeout() {
    let (_m, gw) = start("  header_timeout_ms: 500\n  idle_timeout_ms: 1000\n");
    let mut silent = TcpStream::connect(("127.0.0.1", gw.port)).unwrap();
    silent
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut buf = [0u8; 64];
    assert_eq!(
        silent.read(&mut buf).unwrap_or(0),
        0,
        "closed without a word"
    );
    // One request on a kept-alive connection, then silence.
    let mut s = TcpStream::connect(("127.0.0.1", gw.port)).unwrap();
    s.write_all(b"GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n")
        .unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut r = BufReader::new(s.try_clone().unwrap());
    assert_eq!(read_response(&mut r).unwrap().status, 200);
    let mut rest = Vec::new();
    let _ = r.read_to_end(&mut rest);
    assert!(rest.is_empty(), "nothing more, then the close");
    assert!(gw.metric(r#"switchyard_client_timeouts_total{phase="idle"}"#) >= 1.0);
}

#[test]
fn a_trickled_body_gets_408_at_the_body_deadline() {
    let (_m, gw) = start("  body_timeout_ms: 1000\n");
    let mut s = TcpStream::connect(("127.0.0.1", gw.port)).unwrap();
    let head = format!(
        "POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {CLIENT_KEY}\r\ncontent-type: application/json\r\ncontent-length: 1000\r\n\r\n{{"
    );
    s.write_all(head.as_bytes()).unwrap();
    s.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let started = Instant::now();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while started.elapsed() < Duration::from_secs(10) {
        let _ = s.write_all(b" ");
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(_) => {}
        }
    }
    let text = String::from_utf8_lossy(&got);
    assert!(text.starts_with("HTTP/1.1 408"), "{text}");
    assert!(text.contains("request_timeout"), "{text}");
    assert!(gw.metric(r#"switchyard_client_timeouts_total{phase="body"}"#) >= 1.0);
}

#[test]
fn connections_past_the_per_address_cap_are_closed_and_counted() {
    let (_m, gw) = start("  max_connections_per_ip: 3\n");
    let held: Vec<TcpStream> = (0..3)
        .map(|_| TcpStream::connect(("127.0.0.1", gw.port)).unwrap())
        .collect();
    // Give the workers a moment to accept the three.
    std::thread::sleep(Duration::from_millis(200));
    let mut extra = TcpStream::connect(("127.0.0.1", gw.port)).unwrap();
    extra
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let _ = extra.write_all(b"GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n");
    let mut buf = [0u8; 64];
    assert_eq!(
        extra.read(&mut buf).unwrap_or(0),
        0,
        "the fourth was served"
    );
    drop(held);
    // Once the held ones are gone, the address is welcome again.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match try_request(gw.port, "GET", "/healthz", &[], b"") {
            Ok(r) if r.status == 200 => break,
            _ if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(50)),
            other => panic!("not served again: {other:?}"),
        }
    }
    assert!(gw.metric(r#"switchyard_edge_refusals_total{reason="max_connections_per_ip"}"#) >= 1.0);
}

#[test]
fn past_the_in_flight_cap_requests_get_503_with_retry_after() {
    let (_m, gw) = start("  max_in_flight: 2\n");
    let port = gw.port;
    let slow: Vec<_> = (0..2)
        .map(|_| {
            std::thread::spawn(move || {
                chat_on(port, HELLO, &[("x-mock-latency-ms", "1500")])
                    .unwrap()
                    .status
            })
        })
        .collect();
    // Both are in flight (the scrape counts itself too).
    let deadline = Instant::now() + Duration::from_secs(10);
    while gw.metric("switchyard_in_flight_requests") < 3.0 {
        assert!(Instant::now() < deadline, "the slow requests never got in");
        std::thread::sleep(Duration::from_millis(20));
    }
    let r = gw.chat(HELLO, &[]);
    assert_eq!(r.status, 503, "{}", r.text());
    assert_eq!(r.json()["error"]["code"], "gateway_overloaded");
    assert_eq!(r.header("retry-after"), Some("1"));
    // Liveness and metrics still answer at the cap.
    assert_eq!(gw.request("GET", "/healthz", &[], b"").status, 200);
    assert_eq!(gw.request("GET", "/metrics", &[], b"").status, 200);
    for t in slow {
        assert_eq!(t.join().unwrap(), 200);
    }
    assert_eq!(gw.chat(HELLO, &[]).status, 200);
    assert!(gw.metric(r#"switchyard_edge_refusals_total{reason="max_in_flight"}"#) >= 1.0);
}

#[test]
fn a_client_that_stops_reading_gives_back_its_slot_at_the_write_timeout() {
    let (_m, gw) = start("  write_timeout_ms: 1000\n");
    // A long stream into a small receive buffer that is never read.
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let addr: std::net::SocketAddr = format!("127.0.0.1:{}", gw.port).parse().unwrap();
    socket.connect(&addr.into()).unwrap();
    let mut stalled: TcpStream = socket.into();
    let body = r#"{"model":"fast","stream":true,"messages":[{"role":"user","content":"hi"}]}"#;
    let head = format!(
        "POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {SLOT_KEY}\r\ncontent-type: application/json\r\nx-mock-reply-tokens: 100000\r\nx-mock-tokens-per-chunk: 1\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    );
    stalled.write_all(head.as_bytes()).unwrap();
    // Its answer has begun (so it holds the slot); from here on it reads
    // nothing.
    let mut first = [0u8; 12];
    stalled.read_exact(&mut first).unwrap();
    assert_eq!(&first, b"HTTP/1.1 200");
    let auth = format!("Bearer {SLOT_KEY}");
    let headers = [
        ("authorization", auth.as_str()),
        ("content-type", "application/json"),
    ];
    let ask = || {
        let r = gw.request("POST", "/v1/chat/completions", &headers, HELLO.as_bytes());
        assert!(matches!(r.status, 200 | 429), "{}: {}", r.status, r.text());
        r.status
    };
    // The stalled stream takes the key's one slot (once its request is in)…
    let deadline = Instant::now() + Duration::from_secs(10);
    while ask() != 429 {
        assert!(
            Instant::now() < deadline,
            "the stalled stream never held the slot"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    // …and holds it only until the write timeout releases it.
    let deadline = Instant::now() + Duration::from_secs(20);
    while ask() != 200 {
        assert!(
            Instant::now() < deadline,
            "the slot was never released by the stalled client"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(gw.metric(r#"switchyard_client_timeouts_total{phase="write"}"#) >= 1.0);
    drop(stalled);
}

#[test]
fn the_admin_surface_lives_on_its_own_listener() {
    let admin_port = free_port();
    let (_m, gw) = start(&format!("  admin_address: 127.0.0.1:{admin_port}\n"));
    assert_eq!(gw.chat(HELLO, &[]).status, 200);
    // The client listener: liveness only; no metrics, no admin.
    let health = gw.request("GET", "/healthz", &[], b"");
    assert_eq!(health.json(), serde_json::json!({"status": "ok"}));
    for path in ["/metrics", "/admin/usage", "/admin/health"] {
        assert_eq!(gw.request("GET", path, &[], b"").status, 404, "{path}");
    }
    // The admin listener: the detail, and no client API.
    let metrics = try_request(admin_port, "GET", "/metrics", &[], b"").unwrap();
    assert_eq!(metrics.status, 200);
    assert!(metrics
        .text()
        .contains("switchyard_requests_total{route=\"chat\",model=\"fast\""));
    let detail = try_request(admin_port, "GET", "/healthz", &[], b"").unwrap();
    assert!(
        detail.json()["providers"]["mock"].is_object(),
        "{}",
        detail.text()
    );
    let chat = try_request(
        admin_port,
        "POST",
        "/v1/chat/completions",
        &[("authorization", &format!("Bearer {CLIENT_KEY}"))],
        HELLO.as_bytes(),
    )
    .unwrap();
    assert_eq!(chat.status, 404);
}

#[test]
fn without_an_admin_listener_healthz_is_still_only_liveness() {
    let (_m, gw) = start("");
    let health = gw.request("GET", "/healthz", &[], b"");
    assert_eq!(health.json(), serde_json::json!({"status": "ok"}));
    assert_eq!(gw.request("GET", "/metrics", &[], b"").status, 200);
    let detail = gw.request("GET", "/admin/health", &[], b"");
    assert!(detail.json()["policy_hash"].is_string());
}
