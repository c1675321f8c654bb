//! Cluster mode against a single node, in one run: a single gateway (two
//! workers) and fleets of two replicas (one worker each, the same cores)
//! sharing limits through a real Redis on this machine, `exact` and
//! `pooled`, in front of the same fast mock. Rounds are interleaved so the
//! machine's noise falls on every side alike. Per side: requests/s at 64
//! connections, added p50/p99 at 1 000 req/s (over the mock straight),
//! Redis commands per request and Redis CPU (it competes for the same two
//! cores). Prints a markdown table and writes
//! `bench/results/clusterbench.json`.
//!
//! `bash bench/run.sh --cluster [--quick]`.

use bench::fastmock::{self, Behaviour};
use bench::load::{self, Mode, Outcome, Run};
use bench::procs::{cpu_seconds, machine, wait_idle, Gateway};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

const KEY: &str = "sk-sy-clusterbench-key-01";

/// Limits that never refuse, so that every request takes the shared path.
fn policy(mock: SocketAddr, cluster: &str) -> String {
    format!(
        r#"version: 1
providers:
  mock: {{kind: openai, base_url: "http://{mock}/v1", keys: [{{key: k}}]}}
models:
  fast: {{targets: [{{provider: mock, model: gpt-4o-mini}}]}}
client_keys:
  - {{name: bench, key: {KEY}, limits: {{rpm: 1000000000, tpm: 100000000000}}}}
{cluster}"#
    )
}

fn cluster(redis: u16, mode: &str) -> String {
    format!("cluster:\n  redis: {{url: \"redis://127.0.0.1:{redis}\"}}\n  limits: {mode}\n")
}

struct Redis {
    child: Child,
    port: u16,
}

impl Redis {
    fn start() -> Result<Redis, Box<dyn std::error::Error>> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let child = Command::new("redis-server")
            .args([
                "--port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .stdout(Stdio::null())
            .spawn()
            .map_err(|e| format!("redis-server (scripts/setup.sh installs it): {e}"))?;
        let r = Redis { child, port };
        for _ in 0..200 {
            if r.command("PING").is_some_and(|p| p.starts_with("+PONG")) {
                return Ok(r);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Err("redis-server did not answer".into())
    }

    fn command(&self, cmd: &str) -> Option<String> {
        let mut s = TcpStream::connect(("127.0.0.1", self.port)).ok()?;
        s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
        s.write_all(format!("{cmd}\r\n").as_bytes()).ok()?;
        let mut buf = vec![0u8; 1 << 16];
        let n = s.read(&mut buf).ok()?;
        Some(String::from_utf8_lossy(&buf[..n]).into_owned())
    }

    /// Commands served so far (scripts count once, with what they call).
    fn calls(&self) -> u64 {
        let stats = self.command("INFO commandstats").unwrap_or_default();
        stats
            .lines()
            .filter(|l| l.starts_with("cmdstat_") && !l.starts_with("cmdstat_info"))
            .filter_map(|l| {
                l.split("calls=")
                    .nth(1)?
                    .split(',')
                    .next()?
                    .parse::<u64>()
                    .ok()
            })
            .sum()
    }

    fn evalsha(&self) -> u64 {
        let stats = self.command("INFO commandstats").unwrap_or_default();
        stats
            .lines()
            .find_map(|l| l.strip_prefix("cmdstat_evalsha:calls="))
            .and_then(|v| v.split(',').next()?.parse().ok())
            .unwrap_or(0)
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One side: its gateways, and what the runs add up to.
struct Side {
    name: &'static str,
    gateways: Vec<Gateway>,
    throughput: Outcome,
    latency: Outcome,
    redis_calls: u64,
    redis_scripts: u64,
    redis_cpu: f64,
    gateway_cpu: f64,
    requests: u64,
}

fn run(mode: Mode, round: Duration) -> Run {
    Run {
        mode,
        duration: round,
        max_requests: u64::MAX,
        threads: 2,
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let quick = std::env::args().any(|a| a == "--quick");
    let round = if quick {
        Duration::from_millis(700)
    } else {
        Duration::from_secs(3)
    };
    let rounds = 3;
    let mock = fastmock::start(
        1,
        Behaviour {
            stream_chunks: 1,
            fail: false,
        },
    )?;
    let redis = Redis::start()?;
    let body =
        serde_json::json!({"model": "fast", "messages": [{"role": "user", "content": "hello"}]})
            .to_string();
    let to_gateway = |addr: SocketAddr| {
        load::fixed(load::post(
            &addr.to_string(),
            "/v1/chat/completions",
            &[("authorization", &format!("Bearer {KEY}"))],
            body.as_bytes(),
        ))
    };
    let direct = load::fixed(load::post(
        &mock.to_string(),
        "/v1/chat/completions",
        &[("authorization", "Bearer k")],
        body.as_bytes(),
    ));
    let models = "";
    let mut sides = vec![
        Side::new(
            "single node",
            vec![Gateway::start("single", &policy(mock, ""), models, 2)?],
        ),
        Side::new(
            "cluster, exact (2 replicas)",
            (0..2)
                .map(|i| {
                    Gateway::start(
                        &format!("exact{i}"),
                        &policy(mock, &cluster(redis.port, "exact")),
                        models,
                        1,
                    )
                })
                .collect::<Result<_, _>>()?,
        ),
        Side::new(
            "cluster, pooled (2 replicas)",
            (0..2)
                .map(|i| {
                    Gateway::start(
                        &format!("pooled{i}"),
                        &policy(mock, &cluster(redis.port, "pooled")),
                        models,
                        1,
                    )
                })
                .collect::<Result<_, _>>()?,
        ),
    ];
    // Replicas find each other (heartbeats) before anything is measured.
    std::thread::sleep(Duration::from_secs(2));
    let mut direct_latency = Outcome::default();
    let closed = Mode::Closed { connections: 64 };
    let open = Mode::Open {
        rate: 1000.0,
        connections: 16,
    };
    for r in 0..rounds {
        eprintln!("round {}/{rounds}", r + 1);
        direct_latency.absorb(load::drive(mock, &direct, &run(open, round)));
        for side in sides.iter_mut() {
            let addrs: Vec<SocketAddr> = side.gateways.iter().map(|g| g.addr).collect();
            let (calls, scripts, rcpu) = (
                redis.calls(),
                redis.evalsha(),
                cpu_seconds(redis.child.id()),
            );
            let gcpu: f64 = side.gateways.iter().map(|g| cpu_seconds(g.pid())).sum();
            let t = load::drive_split(&addrs, to_gateway, &run(closed, round));
            let l = load::drive_split(&addrs, to_gateway, &run(open, round));
            side.requests += t.ok + t.errors + l.ok + l.errors;
            side.throughput.absorb(t);
            side.latency.absorb(l);
            side.redis_calls += redis.calls().saturating_sub(calls + 2);
            side.redis_scripts += redis.evalsha().saturating_sub(scripts);
            side.redis_cpu += cpu_seconds(redis.child.id()) - rcpu;
            side.gateway_cpu += side
                .gateways
                .iter()
                .map(|g| cpu_seconds(g.pid()))
                .sum::<f64>()
                - gcpu;
            for g in &side.gateways {
                wait_idle(g.pid());
            }
        }
    }
    let q = |o: &Outcome, p: f64| o.latency.value_at_quantile(p) as f64 / 1000.0;
    let single_rps = sides[0].throughput.throughput();
    let mut out = String::from(
        "| side | req/s, 64 conns | vs single node | added p50 @ 1000 req/s | added p99 @ 1000 req/s | errors | Redis calls / request | commands run in Redis / request | Redis CPU, ms / 1000 req | gateway CPU, ms / 1000 req |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n",
    );
    let mut json = Vec::new();
    for s in &sides {
        let rps = s.throughput.throughput();
        let per_k = |x: f64| x * 1000.0 / (s.requests.max(1) as f64 / 1000.0);
        let row = serde_json::json!({
            "side": s.name,
            "rps_closed_64": rps.round(),
            "vs_single": rps / single_rps.max(1e-9),
            "added_p50_us": q(&s.latency, 0.5) - q(&direct_latency, 0.5),
            "added_p99_us": q(&s.latency, 0.99) - q(&direct_latency, 0.99),
            "p50_us": q(&s.latency, 0.5), "p99_us": q(&s.latency, 0.99),
            "errors": s.throughput.errors + s.latency.errors,
            "saturated_at_1000": s.latency.saturated(),
            "redis_commands_per_request": s.redis_calls as f64 / s.requests.max(1) as f64,
            "redis_scripts_per_request": s.redis_scripts as f64 / s.requests.max(1) as f64,
            "redis_cpu_ms_per_1000": per_k(s.redis_cpu),
            "gateway_cpu_ms_per_1000": per_k(s.gateway_cpu),
            "requests": s.requests,
        });
        out.push_str(&format!(
            "| {} | {:.0} | {:.0}% | {:.0} µs | {:.0} µs | {} | {:.2} | {:.2} | {:.1} | {:.1} |\n",
            s.name,
            rps,
            row["vs_single"].as_f64().unwrap_or(0.0) * 100.0,
            row["added_p50_us"].as_f64().unwrap_or(0.0),
            row["added_p99_us"].as_f64().unwrap_or(0.0),
            row["errors"],
            row["redis_scripts_per_request"].as_f64().unwrap_or(0.0),
            row["redis_commands_per_request"].as_f64().unwrap_or(0.0),
            row["redis_cpu_ms_per_1000"].as_f64().unwrap_or(0.0),
            row["gateway_cpu_ms_per_1000"].as_f64().unwrap_or(0.0),
        ));
        json.push(row);
    }
    println!(
        "direct to the mock at 1000 req/s: p50 {:.0} µs, p99 {:.0} µs\n\n{out}",
        q(&direct_latency, 0.5),
        q(&direct_latency, 0.99)
    );
    let results = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("results");
    std::fs::create_dir_all(&results)?;
    let doc = serde_json::json!({
        "machine": machine(), "round_seconds": round.as_secs_f64(), "rounds": rounds,
        "direct_p50_us": q(&direct_latency, 0.5), "direct_p99_us": q(&direct_latency, 0.99),
        "rows": json,
    });
    std::fs::write(
        results.join("clusterbench.json"),
        serde_json::to_string_pretty(&doc)? + "\n",
    )?;
    println!("wrote {}", results.join("clusterbench.json").display());
    Ok(())
}

impl Side {
    fn new(name: &'static str, gateways: Vec<Gateway>) -> Side {
        Side {
            name,
            gateways,
            throughput: Outcome::default(),
            latency: Outcome::default(),
            redis_calls: 0,
            redis_scripts: 0,
            redis_cpu: 0.0,
            gateway_cpu: 0.0,
            requests: 0,
        }
    }
}
