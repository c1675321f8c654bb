//! A bounded soak: slow clients, oversized requests, clients that stop
//! reading, and a provider that answers garbage `retry-after`s, 403s and
//! long streams, all at once, in two rounds. Normal traffic beside it must
//! be served every time, and the gateway's memory must not grow from the
//! first round to the second; what it holds (connections, bodies,
//! requests in flight) goes back to zero once the clients are gone.

mod common;

use common::*;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tools::mock::{MockConfig, MockServer};

const ROUND: Duration = Duration::from_secs(8);

fn policy(base_url: &str) -> String {
    format!(
        r#"version: 1
listener:
  max_body_bytes: 1048576
  forward_headers: [x-mock-*]
  header_timeout_ms: 1000
  body_timeout_ms: 2000
  write_timeout_ms: 1000
  idle_timeout_ms: 2000
  max_in_flight: 256
providers:
  mock: {{kind: openai, base_url: {base_url}, keys: [{{key: {UPSTREAM_KEY}}}]}}
  flaky: {{kind: openai, base_url: {base_url}, keys: [{{key: sk-flaky-1}}, {{key: sk-flaky-2}}]}}
models:
  fast: {{targets: [{{provider: mock, model: gpt-4o-mini}}]}}
  flaky: {{targets: [{{provider: flaky, model: gpt-4o-mini}}]}}
client_keys:
  - {{name: soak, key: {CLIENT_KEY}}}
"#
    )
}

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
}

fn raw(port: u16, bytes: &[u8], read_limit: usize) {
    let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) else {
        return;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
    let _ = s.write_all(bytes);
    let mut buf = vec![0u8; 16 * 1024];
    let mut got = 0;
    while got < read_limit {
        match s.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => got += n,
        }
    }
}

fn chat_bytes(model: &str, headers: &str, stream: bool) -> Vec<u8> {
    let body = format!(
        r#"{{"model":"{model}","stream":{stream},"messages":[{{"role":"user","content":"soak"}}]}}"#
    );
    format!(
        "POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\nconnection: close\r\nauthorization: Bearer {CLIENT_KEY}\r\ncontent-type: application/json\r\n{headers}content-length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// Run every hostile client, and normal traffic, for one round.
fn round(port: u16) -> (u64, u64) {
    let stop = Arc::new(AtomicBool::new(false));
    let (served, failed) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let mut threads = Vec::new();
    let spawn = |threads: &mut Vec<_>, f: Box<dyn Fn() + Send>| {
        let stop = stop.clone();
        threads.push(std::thread::spawn(move || {
            while !stop.load(Relaxed) {
                f();
            }
        }));
    };
    // Slow heads, a byte every 100 ms.
    for _ in 0..8 {
        spawn(
            &mut threads,
            Box::new(move || {
                let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) else {
                    return;
                };
                let _ = s.write_all(b"POST /v1/chat/completions HTTP/1.1\r\n");
                for _ in 0..30 {
                    if s.write_all(b"x").is_err() {
                        break;
                    }
                    std::thread::sleep(Duration::from_millis(100));
                }
            }),
        );
    }
    // Oversized bodies, declared and undeclared (chunked), and a body that
    // trickles.
    spawn(
        &mut threads,
        Box::new(move || {
            let declared = format!("POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {CLIENT_KEY}\r\ncontent-length: 40000000\r\n\r\n");
            raw(port, declared.as_bytes(), 4096);
            let mut chunked = format!("POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {CLIENT_KEY}\r\ntransfer-encoding: chunked\r\n\r\n").into_bytes();
            for _ in 0..3 {
                chunked.extend_from_slice(format!("{:x}\r\n", 512 * 1024).as_bytes());
                chunked.extend_from_slice(&vec![b'['; 512 * 1024]);
                chunked.extend_from_slice(b"\r\n");
            }
            raw(port, &chunked, 4096);
        }),
    );
    spawn(
        &mut threads,
        Box::new(move || {
            let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) else {
                return;
            };
            let head = format!("POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {CLIENT_KEY}\r\ncontent-length: 100000\r\n\r\n");
            let _ = s.write_all(head.as_bytes());
            for _ in 0..40 {
                if s.write_all(b" ").is_err() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        }),
    );
    // A provider misbehaving: garbage retry-after on 429s, 403s.
    for headers in [
        "x-mock-status: 429\r\nx-mock-retry-after: 1e400\r\n",
        "x-mock-status: 429\r\nx-mock-retry-after: -inf\r\n",
        "x-mock-status: 403\r\n",
    ] {
        spawn(
            &mut threads,
            Box::new(move || raw(port, &chat_bytes("flaky", headers, false), 64 * 1024)),
        );
    }
    // Long paced streams a client reads a little of, then abandons. (The
    // mock builds each stream whole: a long unpaced one would measure the
    // mock's CPU, not the gateway.)
    for _ in 0..2 {
        spawn(
            &mut threads,
            Box::new(move || {
                let headers = "x-mock-reply-tokens: 3000\r\nx-mock-tokens-per-chunk: 1\r\nx-mock-chunk-delay-ms: 2\r\n";
                raw(port, &chat_bytes("fast", headers, true), 8 * 1024);
            }),
        );
    }
    // Normal traffic, which must always be served.
    let (s2, f2) = (served.clone(), failed.clone());
    spawn(
        &mut threads,
        Box::new(move || {
            let body = r#"{"model":"fast","messages":[{"role":"user","content":"normal"}]}"#;
            let r = chat_on(port, body, &[]);
            match r {
                Ok(r) if r.status == 200 => s2.fetch_add(1, Relaxed),
                other => {
                    eprintln!("normal request failed: {other:?}");
                    f2.fetch_add(1, Relaxed)
                }
            };
            std::thread::sleep(Duration::from_millis(20));
        }),
    );
    std::thread::sleep(ROUND);
    stop.store(true, Relaxed);
    for t in threads {
        let _ = t.join();
    }
    (served.load(Relaxed), failed.load(Relaxed))
}

#[test]
fn hostile_clients_and_a_hostile_provider_leave_normal_traffic_served_and_memory_flat() {
    let mock = MockServer::start(MockConfig::default()).unwrap();
    let gw = Gateway::start(policy(&mock.base_url()).as_bytes(), "p.yaml");
    let pid = gw.child.id();
    let (served1, failed1) = round(gw.port);
    let rss1 = rss_kib(pid);
    let (served2, failed2) = round(gw.port);
    let rss2 = rss_kib(pid);
    eprintln!(
        "soak: round 1 served {served1} normal requests ({failed1} failed), RSS {rss1} KiB; round 2 served {served2} ({failed2} failed), RSS {rss2} KiB"
    );
    assert_eq!(failed1 + failed2, 0, "normal traffic was refused");
    assert!(served1 > 0 && served2 > 0);
    assert!(
        rss2 < rss1 + 32 * 1024,
        "memory grew from {rss1} KiB to {rss2} KiB between two identical rounds"
    );
    // Once every client is gone, nothing is held.
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let m = gw.request("GET", "/metrics", &[], b"").text();
        let value = |name: &str| {
            m.lines()
                .find_map(|l| l.strip_prefix(name).and_then(|v| v.strip_prefix(' ')))
                .and_then(|v| v.trim().parse::<f64>().ok())
                .unwrap_or(-1.0)
        };
        // The scrape itself is one connection and one request.
        let (conns, bodies, in_flight) = (
            value("switchyard_client_connections"),
            value("switchyard_buffered_body_bytes"),
            value("switchyard_in_flight_requests"),
        );
        if conns <= 1.0 && bodies == 0.0 && in_flight <= 1.0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "still held after the soak: {conns} connections, {bodies} body bytes, {in_flight} in flight"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}
