//! The end-to-end load harness: starts a fast mock upstream, the gateway
//! (release binary; once without and once with the classifier) and, when
//! `LOADBENCH_LITELLM` names it, LiteLLM's proxy as the peer. Measures
//! every scenario directly against the mock, through the gateway and
//! through the peer, interleaved round by round; prints a markdown table
//! and writes `bench/results/loadbench.json` and `latency.svg`.
//!
//! Run it with `bash bench/run.sh [--quick] [--readme]`; `--readme`
//! rewrites the README's table, `--replot` redraws the SVG from the JSON.
//! `--only TEXT` runs just the cells whose "scenario / load" contains TEXT
//! and writes nothing (for profiling one cell: `perf record -p <gateway>`).

use bench::fastmock::{self, Behaviour};
use bench::load::{self, Mode, Outcome, RequestMaker, Run};
use bench::procs::{cpu_seconds, machine, rss_kb, wait_idle, Gateway};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

const KEY: &str = "sk-sy-loadbench-key-0001";
const TENANT_KEY: &str = "sk-sy-loadbench-tenant-02";

struct Scenario {
    name: &'static str,
    /// What the client sends through the gateway ...
    gateway: RequestMaker,
    /// ... and the equivalent request straight to the mock.
    direct: RequestMaker,
    /// ... and through the peer gateway, when it runs.
    peer: Option<RequestMaker>,
    shapes: Vec<(&'static str, Mode)>,
    /// Not the gateway: the byte relay listening here, the floor row
    /// (kept out of the gateway's CPU figures).
    floor: Option<SocketAddr>,
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let results = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("results");
    // --replot: redraw the SVG from the last run's JSON.
    if std::env::args().any(|a| a == "--replot") {
        let json: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(results.join("loadbench.json"))?)?;
        let rows = json["rows"].as_array().cloned().unwrap_or_default();
        plot(&rows, &results.join("latency.svg"))?;
        println!("wrote {}", results.join("latency.svg").display());
        return Ok(());
    }
    let quick = std::env::args().any(|a| a == "--quick");
    let args: Vec<String> = std::env::args().collect();
    let only = args
        .iter()
        .position(|a| a == "--only")
        .map(|i| args.get(i + 1).cloned().unwrap_or_default());
    let round = if quick {
        Duration::from_millis(300)
    } else {
        Duration::from_secs(1)
    };
    let plan = Plan {
        round,
        rounds: 2,
        only,
    };
    let models = std::env::var("SWITCHYARD_MODEL_DIR").unwrap_or_else(|_| ".cache/models".into());
    let with_classifier = std::path::Path::new(&models)
        .join("minilm/model.onnx")
        .is_file();
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
    // The floor: a byte relay with the gateway's runtime shape.
    let relay = bench::relay::start(2, mock)?;
    let mut rows = Vec::new();
    let mut resources = serde_json::Map::new();
    let peer = match std::env::var_os("LOADBENCH_LITELLM") {
        Some(bin) => Some(Peer::start(std::path::Path::new(&bin), mock)?),
        None => {
            eprintln!("peer column skipped: set LOADBENCH_LITELLM to a `litellm` executable (bench/run.sh does)");
            None
        }
    };
    let peer_side = peer.as_ref().map(|p| (p.addr, p.child.id()));

    // The gateway without the classifier: every scenario but routing.
    let gw = Gateway::start("plain", &policy_yaml(mock, failing, ""), &models, 2)?;
    let rss_rest = rss_kb(gw.pid(), "VmRSS");
    let (cpu, requests) = measure(
        &gw,
        &plain_scenarios(gw.addr, mock, relay, peer_side.map(|p| p.0)),
        mock,
        peer_side,
        &plan,
        &mut rows,
    );
    resources.insert(
        "without_classifier".into(),
        resource_figures(&gw, cpu, requests, rss_rest),
    );
    drop(gw);

    if with_classifier {
        let gw = Gateway::start("routed", &policy_yaml(mock, failing, ROUTER), &models, 2)?;
        let rss_rest = rss_kb(gw.pid(), "VmRSS");
        let (cpu, requests) = measure(
            &gw,
            &routed_scenarios(gw.addr, mock),
            mock,
            None,
            &plan,
            &mut rows,
        );
        resources.insert(
            "with_classifier".into(),
            resource_figures(&gw, cpu, requests, rss_rest),
        );
    } else {
        eprintln!(
            "classifier scenarios skipped: no model files in {models} (run scripts/models.sh)"
        );
    }
    if let Some(p) = &peer {
        resources.insert(
            "litellm".into(),
            serde_json::json!({
                "version": p.version,
                "rss_peak_mb": rss_kb(p.child.id(), "VmHWM") as f64 / 1024.0,
            }),
        );
    }
    drop(peer);
    print_table(&rows, &resources);
    if plan.only.is_some() {
        return Ok(());
    }
    let json = serde_json::json!({
        "machine": machine(),
        "round_seconds": round.as_secs_f64(), "rounds": plan.rounds,
        "rows": rows,
        "resources": resources,
    });
    let out = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("results");
    std::fs::create_dir_all(&out)?;
    std::fs::write(
        out.join("loadbench.json"),
        serde_json::to_string_pretty(&json)? + "\n",
    )?;
    println!("wrote {}", out.join("loadbench.json").display());
    let svg = out.join("latency.svg");
    match plot(&rows, &svg) {
        Ok(()) => println!("wrote {}", svg.display()),
        Err(e) => eprintln!("no plot: {e}"),
    }
    if std::env::args().any(|a| a == "--readme") {
        let readme = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../README.md");
        update_readme(&readme, &report_markdown(&json, round))?;
        println!("updated {}", readme.display());
    }
    Ok(())
}

const PEER_KEY: &str = "sk-litellm-bench";

/// The reference row: what two extra loopback hops cost, without any
/// gateway work.
const FLOOR: &str = "floor: byte relay, no HTTP (not Switchyard)";

/// LiteLLM's proxy (from PyPI) in front of the same mock, with the same
/// model names.
struct Peer {
    child: Child,
    addr: SocketAddr,
    version: String,
    dir: std::path::PathBuf,
}

impl Peer {
    fn start(bin: &std::path::Path, mock: SocketAddr) -> Result<Peer, Box<dyn std::error::Error>> {
        let dir = std::env::temp_dir().join(format!("sy-loadbench-{}-litellm", std::process::id()));
        std::fs::create_dir_all(&dir)?;
        let config = dir.join("litellm.yaml");
        std::fs::write(
            &config,
            format!(
                "model_list:\n  - model_name: fast\n    litellm_params: {{model: openai/gpt-4o-mini, api_base: 'http://{mock}/v1', api_key: k}}\n  - model_name: claude\n    litellm_params: {{model: anthropic/claude-sonnet-4-5, api_base: 'http://{mock}', api_key: k}}\ngeneral_settings:\n  master_key: {PEER_KEY}\n"
            ),
        )?;
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse()?;
        let version = Command::new(bin)
            .arg("--version")
            .output()
            .map(|o| {
                String::from_utf8_lossy(&o.stdout)
                    .trim()
                    .replace("LiteLLM: Current Version = ", "")
            })
            .unwrap_or_default();
        let child = Command::new(bin)
            .arg("--config")
            .arg(&config)
            .args([
                "--host",
                "127.0.0.1",
                "--port",
                &port.to_string(),
                "--num_workers",
                "1",
            ])
            // No network here: the bundled price map, no telemetry.
            .env("LITELLM_LOCAL_MODEL_COST_MAP", "True")
            .env("LITELLM_LOG", "ERROR")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?;
        let peer = Peer {
            child,
            addr,
            version,
            dir,
        };
        wait_ready_path(addr, "/health/liveliness", Duration::from_secs(90))?;
        Ok(peer)
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

const ROUTER: &str = "classifier:\n  timeout_ms: 50\n  cache_entries: 1000000\nrouters:\n  auto:\n    rules:\n      - {name: code, when: {label: code}, to: fast}\n      - {name: maths, when: {label: math}, to: fast}\n    default: fast\n";

fn chat(model: &str, stream: bool, content: &str) -> String {
    serde_json::json!({"model": model, "stream": stream, "messages": [{"role": "user", "content": content}]})
        .to_string()
}

/// Every load shape a scenario may run, by name.
fn shape(name: &'static str) -> (&'static str, Mode) {
    let open = |rate: f64, connections: usize| Mode::Open { rate, connections };
    let mode = match name {
        "closed, 64 conns" => Mode::Closed { connections: 64 },
        "open, 100 req/s" => open(100.0, 8),
        "open, 500 req/s" => open(500.0, 16),
        "open, 1000 req/s" => open(1000.0, 16),
        "open, 2000 req/s" => open(2000.0, 32),
        "open, 10000 req/s" => open(10000.0, 64),
        _ => Mode::Closed { connections: 1 },
    };
    (name, mode)
}

/// The whole sweep (passthrough and the floor under it).
const ALL_SHAPES: [&str; 6] = [
    "closed, 1 conn",
    "closed, 64 conns",
    "open, 500 req/s",
    "open, 1000 req/s",
    "open, 2000 req/s",
    "open, 10000 req/s",
];
/// The other scenarios: both closed loops, the target rate and the top one.
const CORE_SHAPES: [&str; 4] = [
    "closed, 1 conn",
    "closed, 64 conns",
    "open, 1000 req/s",
    "open, 10000 req/s",
];
/// Streams: 100 chunks each, so fewer of them.
const STREAM_SHAPES: [&str; 3] = ["closed, 1 conn", "open, 500 req/s", "open, 1000 req/s"];

fn shapes(names: &[&'static str]) -> Vec<(&'static str, Mode)> {
    names.iter().map(|n| shape(n)).collect()
}

fn to_gateway(gw: SocketAddr, key: &str, body: &str) -> RequestMaker {
    let auth = format!("Bearer {key}");
    load::fixed(load::post(
        &gw.to_string(),
        "/v1/chat/completions",
        &[("authorization", &auth)],
        body.as_bytes(),
    ))
}

fn to_mock(mock: SocketAddr, body: &str) -> RequestMaker {
    load::fixed(load::post(
        &mock.to_string(),
        "/v1/chat/completions",
        &[("authorization", "Bearer k")],
        body.as_bytes(),
    ))
}

fn plain_scenarios(
    gw: SocketAddr,
    mock: SocketAddr,
    relay: SocketAddr,
    peer: Option<SocketAddr>,
) -> Vec<Scenario> {
    let via_peer = |body: &str| peer.map(|p| to_gateway(p, PEER_KEY, body));
    let q = "What is the answer?";
    let anthropic_body = r#"{"model":"claude-sonnet-4-5","max_tokens":64,"messages":[{"role":"user","content":"What is the answer?"}]}"#;
    vec![
        Scenario {
            name: FLOOR,
            gateway: to_mock(relay, &chat("gpt-4o-mini", false, q)),
            direct: to_mock(mock, &chat("gpt-4o-mini", false, q)),
            peer: None,
            shapes: shapes(&ALL_SHAPES),
            floor: Some(relay),
        },
        Scenario {
            name: "OpenAI passthrough",
            gateway: to_gateway(gw, KEY, &chat("fast", false, q)),
            direct: to_mock(mock, &chat("gpt-4o-mini", false, q)),
            peer: via_peer(&chat("fast", false, q)),
            shapes: shapes(&ALL_SHAPES),
            floor: None,
        },
        Scenario {
            name: "OpenAI → Anthropic translation",
            gateway: to_gateway(gw, KEY, &chat("claude", false, q)),
            direct: load::fixed(load::post(
                &mock.to_string(),
                "/v1/messages",
                &[("x-api-key", "k"), ("anthropic-version", "2023-06-01")],
                anthropic_body.as_bytes(),
            )),
            peer: via_peer(&chat("claude", false, q)),
            shapes: shapes(&CORE_SHAPES),
            floor: None,
        },
        Scenario {
            name: "auth + limits + budget + ledger",
            gateway: to_gateway(gw, TENANT_KEY, &chat("fast", false, q)),
            direct: to_mock(mock, &chat("gpt-4o-mini", false, q)),
            peer: None,
            shapes: shapes(&CORE_SHAPES),
            floor: None,
        },
        Scenario {
            name: "one failing target, failover",
            gateway: to_gateway(gw, KEY, &chat("flaky", false, q)),
            direct: to_mock(mock, &chat("gpt-4o-mini", false, q)),
            peer: None,
            shapes: shapes(&CORE_SHAPES),
            floor: None,
        },
        Scenario {
            name: "100-chunk stream",
            gateway: to_gateway(gw, KEY, &chat("fast", true, q)),
            direct: to_mock(mock, &chat("gpt-4o-mini", true, q)),
            peer: via_peer(&chat("fast", true, q)),
            shapes: shapes(&STREAM_SHAPES),
            floor: None,
        },
    ]
}

fn routed_scenarios(gw: SocketAddr, mock: SocketAddr) -> Vec<Scenario> {
    let q = "Write a Python function that returns the answer.";
    let host = gw.to_string();
    let auth = format!("Bearer {KEY}");
    // Every request a new prompt: each one is classified.
    // Numbered across runs and rounds, so no prompt is ever seen twice.
    let counter = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let cold: RequestMaker = std::sync::Arc::new(move |_| {
        let n = counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let body = chat(
            "auto",
            false,
            &format!("Write a Python function number {n} that returns the answer."),
        );
        load::post(
            &host,
            "/v1/chat/completions",
            &[("authorization", &auth)],
            body.as_bytes(),
        )
    });
    vec![
        Scenario {
            name: "classifier routing, cached",
            gateway: to_gateway(gw, KEY, &chat("auto", false, q)),
            direct: to_mock(mock, &chat("gpt-4o-mini", false, q)),
            peer: None,
            shapes: shapes(&CORE_SHAPES),
            floor: None,
        },
        Scenario {
            name: "classifier routing, every prompt new",
            gateway: cold,
            direct: to_mock(mock, &chat("gpt-4o-mini", false, q)),
            peer: None,
            // One encoder thread: ~250 new prompts/s is its ceiling here.
            shapes: shapes(&["closed, 1 conn", "open, 100 req/s"]),
            floor: None,
        },
    ]
}

/// How long each side runs, and which cells.
struct Plan {
    round: Duration,
    rounds: usize,
    /// Only the cells whose "scenario / load" contains this.
    only: Option<String>,
}

/// Runs `scenarios`, appending rows; returns the gateway's CPU seconds and
/// request count over them.
fn measure(
    gw: &Gateway,
    scenarios: &[Scenario],
    mock: SocketAddr,
    peer: Option<(SocketAddr, u32)>,
    plan: &Plan,
    rows: &mut Vec<serde_json::Value>,
) -> (f64, u64) {
    let mut cpu = 0.0;
    let mut requests = 0;
    for s in scenarios {
        for (shape, mode) in &s.shapes {
            if let Some(only) = &plan.only {
                if !format!("{} / {shape}", s.name).contains(only.as_str()) {
                    continue;
                }
            }
            let at = s.floor.unwrap_or(gw.addr);
            let mut sides = vec![(mock, &s.direct, None), (at, &s.gateway, None)];
            let with_peer = match (peer, &s.peer) {
                (Some((addr, pid)), Some(req)) if PEER_SHAPES.contains(shape) => {
                    sides.push((addr, req, Some(pid)));
                    true
                }
                _ => false,
            };
            let before = cpu_seconds(gw.pid());
            let out = interleaved(&sides, *mode, plan.round, plan.rounds);
            if s.floor.is_none() {
                cpu += cpu_seconds(gw.pid()) - before;
                requests += out[1].ok + out[1].errors;
            }
            rows.push(row(
                s.name,
                shape,
                &out[1],
                &out[0],
                with_peer.then(|| &out[2]),
            ));
        }
    }
    (cpu, requests)
}

/// The shapes the peer runs (it cannot keep up with the higher rates).
const PEER_SHAPES: [&str; 4] = [
    "closed, 1 conn",
    "closed, 64 conns",
    "open, 500 req/s",
    "open, 1000 req/s",
];

fn print_table(rows: &[serde_json::Value], resources: &serde_json::Map<String, serde_json::Value>) {
    println!(
        "\n{}\n{}",
        markdown_table(rows, true),
        resource_lines(resources)
    );
}

/// The results as a markdown table; `absolute` adds the direct and
/// gateway p50 columns.
fn markdown_table(rows: &[serde_json::Value], absolute: bool) -> String {
    let (head, rule) = if absolute {
        (" direct p50 | gateway p50 |", "---:|---:|")
    } else {
        ("", "")
    };
    let mut out = format!(
        "| scenario | load | gateway req/s | direct req/s |{head} added p50 | added p90 | added p99 | added first byte p50 | errors | LiteLLM req/s | LiteLLM added p50 | LiteLLM added p99 |\n|---|---|---:|---:|{rule}---:|---:|---:|---:|---:|---:|---:|---:|\n"
    );
    for r in rows {
        let rps = |side: &str| {
            r[side]["rps"]
                .as_f64()
                .map_or("-".into(), |v| format!("{v:.0}"))
        };
        // A side that could not keep an open-loop rate has no overhead to
        // speak of: its latency is that of a growing queue.
        let added = |side: &str, key: &str, q: &str| {
            if r[side]["saturated"].as_bool() == Some(true) {
                "saturated".to_string()
            } else {
                r.get(key).map_or("-".into(), |a| us(&a[q]))
            }
        };
        let mut cells = vec![
            r["scenario"].as_str().unwrap_or("").to_string(),
            r["load"].as_str().unwrap_or("").to_string(),
            rps("gateway"),
            rps("direct"),
        ];
        if absolute {
            cells.push(us(&r["direct"]["p50_us"]));
            cells.push(us(&r["gateway"]["p50_us"]));
        }
        for q in ["p50", "p90", "p99", "first_byte_p50"] {
            cells.push(added("gateway", "added_us", q));
        }
        cells.push(r["gateway"]["errors"].to_string());
        cells.push(rps("peer"));
        cells.push(added("peer", "peer_added_us", "p50"));
        cells.push(added("peer", "peer_added_us", "p99"));
        out.push_str(&format!("| {} |\n", cells.join(" | ")));
    }
    out
}

/// CPU and memory, one line per process measured.
fn resource_lines(resources: &serde_json::Map<String, serde_json::Value>) -> String {
    let mut out = String::new();
    for (name, r) in resources {
        if name == "litellm" {
            out.push_str(&format!(
                "- LiteLLM {} (peer, one worker): peak RSS {:.0} MB.\n",
                r["version"].as_str().unwrap_or("?"),
                r["rss_peak_mb"].as_f64().unwrap_or(0.0)
            ));
        } else {
            out.push_str(&format!(
                "- Switchyard {}: {:.3} CPU-seconds per 1 000 requests; RSS {:.0} MB at rest, {:.0} MB peak under load.\n",
                name.replace('_', " "),
                r["cpu_seconds_per_1000"].as_f64().unwrap_or(0.0),
                r["rss_rest_mb"].as_f64().unwrap_or(0.0),
                r["rss_peak_mb"].as_f64().unwrap_or(0.0)
            ));
        }
    }
    out
}

/// Direct, gateway (and peer) runs alternating, `rounds` each, merged per
/// side, in the order given.
fn interleaved(
    sides: &[(SocketAddr, &RequestMaker, Option<u32>)],
    mode: Mode,
    round: Duration,
    rounds: usize,
) -> Vec<Outcome> {
    let run = Run {
        mode,
        duration: round,
        max_requests: 2_000_000,
        threads: 1,
    };
    let mut acc: Vec<Outcome> = sides.iter().map(|_| Outcome::default()).collect();
    for _ in 0..rounds {
        for (i, (addr, req, settle)) in sides.iter().enumerate() {
            acc[i].absorb(load::drive(*addr, req, &run));
            if let Some(pid) = settle {
                wait_idle(*pid);
            }
        }
    }
    acc
}

fn row(
    scenario: &str,
    shape: &str,
    g: &Outcome,
    d: &Outcome,
    peer: Option<&Outcome>,
) -> serde_json::Value {
    let q = |o: &Outcome, p: f64| o.latency.value_at_quantile(p) as f64 / 1000.0;
    let fb = |o: &Outcome, p: f64| o.first_byte.value_at_quantile(p) as f64 / 1000.0;
    let side = |o: &Outcome| {
        let curve: Vec<[f64; 2]> = bench::plot::PERCENTILES
            .iter()
            .map(|p| [*p, q(o, *p) / 1000.0])
            .collect();
        serde_json::json!({
            "rps": o.throughput().round(), "ok": o.ok, "errors": o.errors,
            "unsent": o.unsent, "saturated": o.saturated(),
            "p50_us": q(o, 0.5), "p90_us": q(o, 0.9), "p99_us": q(o, 0.99),
            "first_byte_p50_us": fb(o, 0.5),
            "curve_ms": curve,
        })
    };
    let added = |o: &Outcome| {
        serde_json::json!({
            "p50": q(o, 0.5) - q(d, 0.5), "p90": q(o, 0.9) - q(d, 0.9), "p99": q(o, 0.99) - q(d, 0.99),
            "first_byte_p50": fb(o, 0.5) - fb(d, 0.5),
        })
    };
    let mut r = serde_json::json!({
        "scenario": scenario, "load": shape,
        "gateway": side(g), "direct": side(d),
        "added_us": added(g),
    });
    if let Some(p) = peer {
        r["peer"] = side(p);
        r["peer_added_us"] = added(p);
    }
    r
}

fn us(v: &serde_json::Value) -> String {
    let x = v.as_f64().unwrap_or(0.0);
    if x.abs() >= 1000.0 {
        format!("{:.2} ms", x / 1000.0)
    } else {
        format!("{x:.0} µs")
    }
}

fn policy_yaml(mock: SocketAddr, failing: SocketAddr, extra: &str) -> String {
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
  gpt-4o-mini: {{input: 0.15, output: 0.6}}
  claude-sonnet-4-5: {{input: 3, output: 15}}
teams:
  bench: {{limits: {{rpm: 100000000}}, budgets: {{daily: 1000000}}}}
users:
  runner: {{team: bench, limits: {{rpm: 100000000}}}}
client_keys:
  - {{name: plain, key: {KEY}}}
  - {{name: tenant, key: {TENANT_KEY}, user: runner, team: bench, limits: {{rpm: 100000000, tpm: 1000000000, concurrency: 1000}}, budgets: {{daily: 1000000}}}}
{extra}"#
    )
}

fn wait_ready_path(addr: SocketAddr, path: &str, wait: Duration) -> Result<(), String> {
    bench::http::wait_ready(&addr.to_string(), path, wait)
}

/// CPU per 1 000 requests and memory of one gateway's scenarios.
fn resource_figures(gw: &Gateway, cpu: f64, requests: u64, rss_rest_kb: u64) -> serde_json::Value {
    serde_json::json!({
        "cpu_seconds_per_1000": cpu / (requests.max(1) as f64 / 1000.0),
        "rss_rest_mb": rss_rest_kb as f64 / 1024.0,
        "rss_peak_mb": rss_kb(gw.pid(), "VmHWM") as f64 / 1024.0,
    })
}

/// The latency distributions of a few telling rows.
fn plot(rows: &[serde_json::Value], path: &std::path::Path) -> Result<(), String> {
    let picks = [
        ("OpenAI passthrough", "closed, 1 conn"),
        ("OpenAI passthrough", "open, 1000 req/s"),
        ("OpenAI passthrough", "closed, 64 conns"),
    ];
    let curve = |v: &serde_json::Value| -> Vec<(f64, f64)> {
        v["curve_ms"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|p| Some((p[0].as_f64()?, p[1].as_f64()?)))
                    .collect()
            })
            .unwrap_or_default()
    };
    let mut series = Vec::new();
    for (color, (scenario, load)) in picks.iter().enumerate() {
        let Some(r) = rows
            .iter()
            .find(|r| r["scenario"] == *scenario && r["load"] == *load)
        else {
            continue;
        };
        for (side, name, dashed) in [
            ("direct", "direct to mock", true),
            ("gateway", "Switchyard", false),
        ] {
            series.push(bench::plot::Series {
                label: format!("{name}, {load}"),
                points: curve(&r[side]),
                color,
                dashed,
            });
        }
        if r.get("peer").is_some() && *load == "closed, 1 conn" {
            series.push(bench::plot::Series {
                label: format!("LiteLLM, {load}"),
                points: curve(&r["peer"]),
                color: 5,
                dashed: false,
            });
        }
    }
    bench::plot::latency_svg(path, "OpenAI passthrough: latency by percentile (coordinated-omission corrected for fixed rates)", &series)
}

const README_START: &str = "<!-- loadbench:start -->";
const README_END: &str = "<!-- loadbench:end -->";

/// The README's performance table, from one run.
fn report_markdown(json: &serde_json::Value, round: Duration) -> String {
    let m = &json["machine"];
    let mut out = format!(
        "Generated by `bash bench/run.sh --readme` on {} ({} cores, {}), {} rounds of {:.1} s per side, interleaved. Load generator, mock and gateway share the machine; the gateway runs 2 worker threads, the generator and the mock one each.\n\n",
        jiff_now(),
        m["cores"],
        m["cpu"].as_str().unwrap_or("?"),
        json["rounds"],
        round.as_secs_f64()
    );
    let rows = json["rows"].as_array().cloned().unwrap_or_default();
    out.push_str(&markdown_table(&rows, false));
    out.push('\n');
    if let Some(resources) = json["resources"].as_object() {
        out.push_str(&resource_lines(resources));
    }
    out.push_str("\n![Latency by percentile](bench/results/latency.svg)\n");
    out
}

fn jiff_now() -> String {
    jiff::Timestamp::now().strftime("%Y-%m-%d").to_string()
}

/// Replace what sits between the loadbench markers in the README.
fn update_readme(path: &std::path::Path, section: &str) -> Result<(), Box<dyn std::error::Error>> {
    let text = std::fs::read_to_string(path)?;
    let (Some(a), Some(b)) = (text.find(README_START), text.find(README_END)) else {
        return Err(format!(
            "{} has no {README_START} … {README_END} markers",
            path.display()
        )
        .into());
    };
    let new = format!("{}{README_START}\n{section}{}", &text[..a], &text[b..]);
    std::fs::write(path, new)?;
    Ok(())
}
