//! Shared helpers for end-to-end tests: a gateway child process on a free
//! loopback port, and a minimal HTTP/1.1 client that lets tests send
//! exactly the bytes they mean to.
#![allow(dead_code)]

pub mod services;

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

pub const CLIENT_KEY: &str = "sk-sy-e2e-client-key-0001";
pub const UPSTREAM_KEY: &str = "sk-upstream-e2e-secret";

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new() -> Self {
        static N: AtomicUsize = AtomicUsize::new(0);
        let p = std::env::temp_dir().join(format!(
            "switchyard-e2e-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A policy in front of the mock at `base_url`, with `models` as extra YAML
/// under `models:`.
pub fn policy_yaml(base_url: &str, max_body: u64, models: &str) -> String {
    format!(
        r#"version: 1
listener:
  max_body_bytes: {max_body}
  forward_headers: [x-mock-*]
providers:
  mock:
    kind: openai
    base_url: {base_url}
    allow_direct: true
    keys:
      - key: {UPSTREAM_KEY}
  nowhere:
    kind: openai
    base_url: http://127.0.0.1:9
    timeouts: {{connect_ms: 500, first_byte_ms: 2000}}
    keys:
      - key: sk-nowhere
models:
  fast:
    targets:
      - provider: mock
        model: gpt-4o-mini
  down:
    targets:
      - provider: nowhere
        model: gpt-4o-mini
{models}client_keys:
  - name: e2e
    key: {CLIENT_KEY}
  - name: limited
    key: sk-sy-e2e-limited-key-0002
    models: ["fast"]
"#
    )
}

pub struct Gateway {
    pub child: Child,
    pub port: u16,
    pub dir: TempDir,
    pub policy: PathBuf,
}

impl Gateway {
    /// Start `switchyard serve` on `policy_text` (written to `file_name`).
    pub fn start(policy_text: &[u8], file_name: &str) -> Gateway {
        let dir = TempDir::new();
        let policy = dir.0.join(file_name);
        std::fs::write(&policy, policy_text).unwrap();
        let port = free_port();
        let child = Self::spawn(&policy, port, Stdio::null());
        let gw = Gateway {
            child,
            port,
            dir,
            policy,
        };
        gw.wait_ready();
        gw
    }

    /// Like [`Gateway::start`], with the gateway's log (at `info`) in
    /// `<dir>/gateway.log`.
    pub fn start_logged(policy_text: &[u8], file_name: &str) -> Gateway {
        Self::start_logged_env(policy_text, file_name, &[])
    }

    /// [`Gateway::start_logged`] with extra environment variables.
    pub fn start_logged_env(policy_text: &[u8], file_name: &str, env: &[(&str, &str)]) -> Gateway {
        let dir = TempDir::new();
        let policy = dir.0.join(file_name);
        std::fs::write(&policy, policy_text).unwrap();
        let port = free_port();
        let log = std::fs::File::create(dir.0.join("gateway.log")).unwrap();
        let child = Self::command(&policy, port)
            .envs(env.iter().copied())
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn switchyard");
        let gw = Gateway {
            child,
            port,
            dir,
            policy,
        };
        gw.wait_ready();
        gw
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.0.join("gateway.log")).unwrap_or_default()
    }

    /// The value of one metric line (exact labels), or 0.
    pub fn metric(&self, series: &str) -> f64 {
        let text = self.request("GET", "/metrics", &[], b"").text();
        text.lines()
            .find_map(|l| l.strip_prefix(series).and_then(|v| v.strip_prefix(' ')))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0.0)
    }

    pub fn spawn(policy: &std::path::Path, port: u16, stderr: Stdio) -> Child {
        Self::command(policy, port)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .expect("spawn switchyard")
    }

    /// `switchyard serve` with its usage ledger beside the policy.
    pub fn command(policy: &std::path::Path, port: u16) -> Command {
        let ledger = policy
            .parent()
            .unwrap_or(std::path::Path::new("."))
            .join("usage.db");
        let mut c = Command::new(env!("CARGO_BIN_EXE_switchyard"));
        c.args(["serve", "--policy"])
            .arg(policy)
            .args([
                "--listen",
                &format!("127.0.0.1:{port}"),
                "--threads",
                "2",
                "--grace-seconds",
                "0",
                "--ledger",
            ])
            .arg(ledger);
        c
    }

    fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Ok(r) = try_request(self.port, "GET", "/healthz", &[], b"") {
                if r.status == 200 {
                    return;
                }
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("switchyard did not become ready on port {}", self.port);
    }

    pub fn request(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Response {
        try_request(self.port, method, path, headers, body).expect("request")
    }

    pub fn chat(&self, body: &str, extra: &[(&str, &str)]) -> Response {
        chat_on(self.port, body, extra).expect("request")
    }

    pub fn policy_hash(&self) -> String {
        let r = self.request("GET", "/admin/health", &[], b"");
        r.json()["policy_hash"].as_str().unwrap().to_string()
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// A chat completion with the client key, to the gateway on `port` (for
/// threads that cannot borrow the [`Gateway`]).
pub fn chat_on(port: u16, body: &str, extra: &[(&str, &str)]) -> std::io::Result<Response> {
    chat_as_on(port, CLIENT_KEY, body, extra)
}

/// [`chat_on`] with another client key.
pub fn chat_as_on(
    port: u16,
    key: &str,
    body: &str,
    extra: &[(&str, &str)],
) -> std::io::Result<Response> {
    let auth = format!("Bearer {key}");
    let mut headers = vec![
        ("authorization", auth.as_str()),
        ("content-type", "application/json"),
    ];
    headers.extend_from_slice(extra);
    try_request(
        port,
        "POST",
        "/v1/chat/completions",
        &headers,
        body.as_bytes(),
    )
}

/// One request on a fresh connection (`Connection: close`), response read
/// to the end; chunked bodies are decoded.
pub fn try_request(
    port: u16,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> std::io::Result<Response> {
    let mut s = TcpStream::connect(("127.0.0.1", port))?;
    s.set_read_timeout(Some(Duration::from_secs(30)))?;
    let mut req =
        format!("{method} {path} HTTP/1.1\r\nhost: 127.0.0.1:{port}\r\nconnection: close\r\n");
    let has_length = headers.iter().any(|(k, _)| {
        k.eq_ignore_ascii_case("content-length") || k.eq_ignore_ascii_case("transfer-encoding")
    });
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    if !has_length {
        req.push_str(&format!("content-length: {}\r\n", body.len()));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes())?;
    // The server may answer (413) and close before taking the whole body.
    let _ = s.write_all(body);
    read_response(&mut BufReader::new(s))
}

pub fn read_response(r: &mut impl BufRead) -> std::io::Result<Response> {
    let mut line = String::new();
    r.read_line(&mut line)?;
    let status: u16 = line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("bad status line {line:?}")))?;
    let mut headers = Vec::new();
    loop {
        line.clear();
        r.read_line(&mut line)?;
        let l = line.trim_end();
        if l.is_empty() {
            break;
        }
        if let Some((k, v)) = l.split_once(':') {
            headers.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
        }
    }
    let get = |n: &str| {
        headers
            .iter()
            .find(|(k, _)| k == n)
            .map(|(_, v): &(String, String)| v.clone())
    };
    let mut body = Vec::new();
    if get("transfer-encoding").is_some_and(|v| v.contains("chunked")) {
        loop {
            line.clear();
            r.read_line(&mut line)?;
            let size = usize::from_str_radix(line.trim(), 16)
                .map_err(|e| std::io::Error::other(format!("chunk size {line:?}: {e}")))?;
            if size == 0 {
                // Trailer section: lines up to an empty one.
                loop {
                    line.clear();
                    r.read_line(&mut line)?;
                    if line.trim_end().is_empty() {
                        break;
                    }
                }
                break;
            }
            let mut chunk = vec![0; size];
            r.read_exact(&mut chunk)?;
            body.extend_from_slice(&chunk);
            line.clear();
            r.read_line(&mut line)?;
        }
    } else if let Some(len) = get("content-length").and_then(|v| v.parse::<usize>().ok()) {
        body.resize(len, 0);
        r.read_exact(&mut body)?;
    } else {
        r.read_to_end(&mut body)?;
    }
    Ok(Response {
        status,
        headers,
        body,
    })
}

/// The JSON payloads of an SSE body's `data:` lines (`[DONE]` excluded).
pub fn sse_payloads(body: &str) -> Vec<serde_json::Value> {
    body.lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .filter(|d| *d != "[DONE]")
        .map(|d| serde_json::from_str(d).unwrap_or_else(|e| panic!("bad SSE data {d:?}: {e}")))
        .collect()
}

/// The rows of a gateway's SQLite usage ledger, as JSON objects.
pub fn read_ledger(path: &std::path::Path) -> Vec<serde_json::Value> {
    let Ok(conn) = rusqlite::Connection::open(path) else {
        return Vec::new();
    };
    let Ok(mut q) = conn.prepare(
        "SELECT request_id, key, user, team, task, alias, status, error, input_tokens, output_tokens, usage_source, cost_nanos FROM usage ORDER BY id",
    ) else {
        return Vec::new();
    };
    q.query_map([], |r| {
        Ok(serde_json::json!({
            "request_id": r.get::<_, String>(0)?, "key": r.get::<_, String>(1)?,
            "user": r.get::<_, String>(2)?, "team": r.get::<_, String>(3)?,
            "task": r.get::<_, String>(4)?, "alias": r.get::<_, String>(5)?,
            "status": r.get::<_, i64>(6)?, "error": r.get::<_, String>(7)?,
            "input": r.get::<_, i64>(8)?, "output": r.get::<_, i64>(9)?,
            "source": r.get::<_, String>(10)?, "cost": r.get::<_, i64>(11)?,
        }))
    })
    .map(|rows| rows.filter_map(Result::ok).collect())
    .unwrap_or_default()
}

/// A CA, and a certificate it signed for `localhost` and 127.0.0.1 with
/// its key, as PEM.
pub fn test_chain() -> (String, String, String) {
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = rcgen::CertificateParams::new(vec!["localhost".into(), "127.0.0.1".into()])
        .unwrap()
        .signed_by(&key, &ca, &ca_key)
        .unwrap();
    (ca.pem(), cert.pem(), key.serialize_pem())
}
