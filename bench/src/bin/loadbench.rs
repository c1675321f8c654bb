//! The end-to-end load harness: starts a fast mock upstream and the
//! gateway (release binary), then measures every scenario against the
//! gateway and directly against the mock, interleaved round by round, and
//! prints a markdown table plus JSON (`bench/results/loadbench.json`).
//!
//! cargo build --release -p engine -p bench --bins && ./target/release/loadbench [--quick]

use bench::fastmock::{self, Behaviour};
use bench::load::{self, Mode, Outcome, Run};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const KEY: &str = "sk-sy-loadbench-key-0001";
const TENANT_KEY: &str = "sk-sy-loadbench-tenant-02";

struct Scenario {
    name: &'static str,
    /// What the client sends through the gateway ...
    gateway: Vec<u8>,
    /// ... and the equivalent request straight to the mock.
    direct: Vec<u8>,
    direct_addr: SocketAddr,
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let quick = std::env::args().any(|a| a == "--quick");
    let round = if quick {
        Duration::from_millis(700)
    } else {
        Duration::from_secs(2)
    };
    let rounds = 2;
    let mock = fastmock::start(
        1,
        Behaviour {
            stream_chunks: 100,
            fail: false,
        },
    )?;
    let failing = fastmock::start(
        1,
        Behaviour {
            stream_chunks: 0,
            fail: true,
        },
    )?;
    let dir = std::env::temp_dir().join(format!("sy-loadbench-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let policy = dir.join("policy.yaml");
    std::fs::write(&policy, policy_yaml(mock, failing))?;
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let gw_addr: SocketAddr = format!("127.0.0.1:{port}").parse()?;
    let gateway = std::env::current_exe()?.with_file_name("switchyard");
    let mut child = Command::new(&gateway)
        .args(["serve", "--policy"])
        .arg(&policy)
        .args([
            "--listen",
            &gw_addr.to_string(),
            "--threads",
            "2",
            "--grace-seconds",
            "0",
            "--ledger",
        ])
        .arg(dir.join("usage.db"))
        .env("RUST_LOG", "error,pingora_core::connectors=off")
        .stdout(Stdio::null())
        .spawn()?;
    let result = run(&mut child, gw_addr, mock, round, rounds);
    let _ = child.kill();
    let _ = child.wait();
    let _ = std::fs::remove_dir_all(&dir);
    result
}

fn run(
    child: &mut Child,
    gw: SocketAddr,
    mock: SocketAddr,
    round: Duration,
    rounds: usize,
) -> Result<(), Box<dyn std::error::Error>> {
    wait_ready(gw)?;
    let pid = child.id();
    let rss_rest = rss_kb(pid, "VmRSS");
    let chat = |model: &str, stream: bool| {
        serde_json::json!({"model": model, "stream": stream, "messages": [{"role": "user", "content": "What is the answer?"}]})
            .to_string()
    };
    let auth = format!("Bearer {KEY}");
    let tenant_auth = format!("Bearer {TENANT_KEY}");
    let host = gw.to_string();
    let to_gw = |key: &str, body: &str| {
        load::post(
            &host,
            "/v1/chat/completions",
            &[("authorization", key)],
            body.as_bytes(),
        )
    };
    let direct_openai = |body: &str| {
        load::post(
            &mock.to_string(),
            "/v1/chat/completions",
            &[("authorization", "Bearer k")],
            body.as_bytes(),
        )
    };
    let anthropic_body = r#"{"model":"claude-sonnet-4-5","max_tokens":64,"messages":[{"role":"user","content":"What is the answer?"}]}"#;
    let scenarios = vec![
        Scenario {
            name: "OpenAI passthrough",
            gateway: to_gw(&auth, &chat("fast", false)),
            direct: direct_openai(&chat("gpt-4o-mini", false)),
            direct_addr: mock,
        },
        Scenario {
            name: "OpenAI → Anthropic translation",
            gateway: to_gw(&auth, &chat("claude", false)),
            direct: load::post(
                &mock.to_string(),
                "/v1/messages",
                &[("x-api-key", "k"), ("anthropic-version", "2023-06-01")],
                anthropic_body.as_bytes(),
            ),
            direct_addr: mock,
        },
        Scenario {
            name: "auth + limits + budget + ledger",
            gateway: to_gw(&tenant_auth, &chat("fast", false)),
            direct: direct_openai(&chat("gpt-4o-mini", false)),
            direct_addr: mock,
        },
        Scenario {
            name: "one failing target, failover",
            gateway: to_gw(&auth, &chat("flaky", false)),
            direct: direct_openai(&chat("gpt-4o-mini", false)),
            direct_addr: mock,
        },
    ];
    let shapes: Vec<(&str, Mode)> = vec![
        ("closed, 1 conn", Mode::Closed { connections: 1 }),
        ("closed, 64 conns", Mode::Closed { connections: 64 }),
        (
            "open, 500 req/s",
            Mode::Open {
                rate: 500.0,
                connections: 16,
            },
        ),
        (
            "open, 1000 req/s",
            Mode::Open {
                rate: 1000.0,
                connections: 16,
            },
        ),
        (
            "open, 2000 req/s",
            Mode::Open {
                rate: 2000.0,
                connections: 32,
            },
        ),
        (
            "open, 10000 req/s",
            Mode::Open {
                rate: 10000.0,
                connections: 64,
            },
        ),
    ];
    let mut rows = Vec::new();
    let mut cpu_total = 0.0;
    let mut gw_requests = 0u64;
    for s in &scenarios {
        for (shape, mode) in &shapes {
            let cpu_before = cpu_seconds(pid);
            let (g, d) = interleaved(
                gw,
                &s.gateway,
                s.direct_addr,
                &s.direct,
                *mode,
                round,
                rounds,
            );
            cpu_total += cpu_seconds(pid) - cpu_before;
            gw_requests += g.ok + g.errors;
            rows.push(row(s.name, shape, &g, &d));
        }
    }
    // Streaming: 100 content chunks; first byte (TTFT) and whole stream.
    let stream_gw = to_gw(&auth, &chat("fast", true));
    let stream_direct = direct_openai(&chat("gpt-4o-mini", true));
    for (shape, mode) in [
        ("closed, 1 conn", Mode::Closed { connections: 1 }),
        (
            "open, 500 req/s",
            Mode::Open {
                rate: 500.0,
                connections: 16,
            },
        ),
    ] {
        let (g, d) = interleaved(gw, &stream_gw, mock, &stream_direct, mode, round, rounds);
        rows.push(row("100-chunk stream", shape, &g, &d));
    }
    let rss_load = rss_kb(pid, "VmHWM");

    println!("\n| scenario | load | gateway req/s | direct req/s | added p50 | added p90 | added p99 | added TTFB p50 | errors |");
    println!("|---|---|---:|---:|---:|---:|---:|---:|---:|");
    for r in &rows {
        println!(
            "| {} | {} | {:.0} | {:.0} | {} | {} | {} | {} | {} |",
            r["scenario"].as_str().unwrap_or(""),
            r["load"].as_str().unwrap_or(""),
            r["gateway"]["rps"].as_f64().unwrap_or(0.0),
            r["direct"]["rps"].as_f64().unwrap_or(0.0),
            us(&r["added_us"]["p50"]),
            us(&r["added_us"]["p90"]),
            us(&r["added_us"]["p99"]),
            us(&r["added_us"]["first_byte_p50"]),
            r["gateway"]["errors"],
        );
    }
    let cpu_per_1000 = cpu_total / (gw_requests.max(1) as f64 / 1000.0);
    println!(
        "\ngateway CPU: {cpu_per_1000:.3} CPU-seconds per 1000 requests; RSS at rest {:.1} MB, peak under load {:.1} MB",
        rss_rest as f64 / 1024.0,
        rss_load as f64 / 1024.0
    );
    let json = serde_json::json!({
        "machine": machine(),
        "round_seconds": round.as_secs_f64(), "rounds": rounds,
        "rows": rows,
        "gateway_cpu_seconds_per_1000": cpu_per_1000,
        "rss_rest_mb": rss_rest as f64 / 1024.0,
        "rss_peak_mb": rss_load as f64 / 1024.0,
    });
    let out = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("results");
    std::fs::create_dir_all(&out)?;
    std::fs::write(
        out.join("loadbench.json"),
        serde_json::to_string_pretty(&json)? + "\n",
    )?;
    println!("wrote {}", out.join("loadbench.json").display());
    Ok(())
}

/// Gateway and direct runs alternating, `rounds` each, merged per side.
fn interleaved(
    gw: SocketAddr,
    gw_req: &[u8],
    direct: SocketAddr,
    direct_req: &[u8],
    mode: Mode,
    round: Duration,
    rounds: usize,
) -> (Outcome, Outcome) {
    let run = Run {
        mode,
        duration: round,
        max_requests: 2_000_000,
        threads: 1,
    };
    let mut g: Option<Outcome> = None;
    let mut d: Option<Outcome> = None;
    for _ in 0..rounds {
        for (side, addr, req) in [(&mut d, direct, direct_req), (&mut g, gw, gw_req)] {
            let o = load::drive(addr, req, &run);
            match side {
                Some(acc) => acc.absorb(o),
                None => *side = Some(o),
            }
        }
    }
    (g.unwrap_or_default(), d.unwrap_or_default())
}

fn row(scenario: &str, shape: &str, g: &Outcome, d: &Outcome) -> serde_json::Value {
    let q = |o: &Outcome, p: f64| o.latency.value_at_quantile(p) as f64 / 1000.0;
    let fb = |o: &Outcome, p: f64| o.first_byte.value_at_quantile(p) as f64 / 1000.0;
    let side = |o: &Outcome| {
        serde_json::json!({
            "rps": o.throughput().round(), "ok": o.ok, "errors": o.errors,
            "p50_us": q(o, 0.5), "p90_us": q(o, 0.9), "p99_us": q(o, 0.99),
            "first_byte_p50_us": fb(o, 0.5),
        })
    };
    serde_json::json!({
        "scenario": scenario, "load": shape,
        "gateway": side(g), "direct": side(d),
        "added_us": {
            "p50": q(g, 0.5) - q(d, 0.5), "p90": q(g, 0.9) - q(d, 0.9), "p99": q(g, 0.99) - q(d, 0.99),
            "first_byte_p50": fb(g, 0.5) - fb(d, 0.5),
        },
    })
}

fn us(v: &serde_json::Value) -> String {
    let x = v.as_f64().unwrap_or(0.0);
    if x.abs() >= 1000.0 {
        format!("{:.2} ms", x / 1000.0)
    } else {
        format!("{x:.0} µs")
    }
}

fn policy_yaml(mock: SocketAddr, failing: SocketAddr) -> String {
    format!(
        r#"version: 1
providers:
  mock: {{kind: openai, base_url: "http://{mock}/v1", keys: [{{key: k}}]}}
  anthropic: {{kind: anthropic, base_url: "http://{mock}", keys: [{{key: k}}]}}
  broken: {{kind: openai, base_url: "http://{failing}/v1", keys: [{{key: k}}]}}
models:
  fast: {{targets: [{{provider: mock, model: gpt-4o-mini}}]}}
  claude: {{targets: [{{provider: anthropic, model: claude-sonnet-4-5}}]}}
  flaky:
    targets:
      - {{provider: broken, model: gpt-4o-mini}}
      - {{provider: mock, model: gpt-4o-mini}}
prices:
  mock/gpt-4o-mini: {{input: 0.15, output: 0.6}}
teams:
  bench: {{limits: {{rpm: 100000000}}, budgets: {{daily: 1000000}}}}
users:
  runner: {{team: bench, limits: {{rpm: 100000000}}}}
client_keys:
  - {{name: plain, key: {KEY}}}
  - {{name: tenant, key: {TENANT_KEY}, user: runner, team: bench, limits: {{rpm: 100000000, tpm: 1000000000, concurrency: 1000}}, budgets: {{daily: 1000000}}}}
"#
    )
}

fn wait_ready(addr: SocketAddr) -> Result<(), Box<dyn std::error::Error>> {
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if let Ok(mut s) = std::net::TcpStream::connect(addr) {
            use std::io::{Read, Write};
            let _ = s.write_all(b"GET /healthz HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n");
            let mut out = String::new();
            let _ = s.read_to_string(&mut out);
            if out.starts_with("HTTP/1.1 200") {
                return Ok(());
            }
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Err("the gateway did not become ready".into())
}

/// utime + stime of a process, in seconds.
fn cpu_seconds(pid: u32) -> f64 {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return 0.0;
    };
    // Fields after the command name (which may hold spaces).
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    (ticks(11) + ticks(12)) / 100.0
}

fn rss_kb(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

fn machine() -> serde_json::Value {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_string())
        })
        .unwrap_or_default();
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(0);
    serde_json::json!({"cpu": cpu, "cores": cores})
}
