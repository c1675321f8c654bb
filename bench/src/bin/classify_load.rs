//! Classification latency as requests see it, inside a serving gateway:
//! unique ~128-word-piece prompts sent to a router, once on an idle
//! gateway and once while other clients load it with plain requests, then
//! the same prompts again (cache hits). Reads each request's wait from
//! `x-switchyard-classify-ms` and prints percentiles (hdrhistogram).
//!
//! cargo build --release -p engine -p bench --bins
//! SWITCHYARD_MODEL_DIR=.cache/models ./target/release/classify_load [prompts] [load-clients] [mixed|code|prose]

use bench::http::Connection;
use hdrhistogram::Histogram;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tools::mock::{MockConfig, MockServer};

const KEY: &str = "sk-sy-classify-load-0001";

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let prompts: usize = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(200);
    let clients: usize = args.get(2).and_then(|a| a.parse().ok()).unwrap_or(8);
    // mixed (default), code or prose.
    let kind = args.get(3).cloned().unwrap_or_else(|| "mixed".into());
    if !["mixed", "code", "prose"].contains(&kind.as_str()) {
        return Err(format!("kind must be mixed, code or prose, not {kind:?}").into());
    }
    let models = std::env::var("SWITCHYARD_MODEL_DIR").unwrap_or_else(|_| ".cache/models".into());
    let gateway = std::env::current_exe()?.with_file_name("switchyard");
    if !gateway.is_file() {
        return Err(format!(
            "{} missing: cargo build --release -p engine --bins",
            gateway.display()
        )
        .into());
    }
    let mock = MockServer::start(MockConfig::default())?;
    let dir = std::env::temp_dir().join(format!("sy-classify-load-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let policy = dir.join("policy.yaml");
    std::fs::write(&policy, policy_yaml(&mock.base_url()))?;
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let addr = format!("127.0.0.1:{port}");
    let mut child = Command::new(&gateway)
        .args(["serve", "--policy"])
        .arg(&policy)
        .args(["--listen", &addr, "--threads", "2", "--grace-seconds", "0"])
        .env("SWITCHYARD_MODEL_DIR", &models)
        // Pingora logs every unusable pooled upstream connection at ERROR.
        .env("RUST_LOG", "warn,pingora_core::connectors=off")
        .stdout(Stdio::null())
        .spawn()?;
    let result = run(&addr, prompts, clients, &kind);
    let _ = child.kill();
    let _ = child.wait();
    let _ = std::fs::remove_dir_all(&dir);
    result
}

fn run(
    addr: &str,
    prompts: usize,
    clients: usize,
    kind: &str,
) -> Result<(), Box<dyn std::error::Error>> {
    bench::http::wait_ready(addr, "/healthz", Duration::from_secs(30))?;
    let texts: Vec<String> = (0..prompts * 2).map(|i| prompt(i, kind)).collect();
    let pieces = word_pieces(&texts)?;
    let windows: Vec<String> = texts
        .iter()
        .map(|t| classifier::prompt_window(None, t))
        .collect();
    let window_pieces = word_pieces(&windows)?;
    println!(
        "prompts: {} distinct, {pieces:.0} word pieces on average; their windows {window_pieces:.0} (the encoder reads at most 48)",
        texts.len()
    );
    let (idle_texts, load_texts) = texts.split_at(prompts);
    let mut conn = Connection::open(addr)?;
    // Warm the encoder (first pass allocates).
    ask(&mut conn, "warm up: write a function that adds two numbers")?;
    let idle = measure(&mut conn, idle_texts, false)?;

    let stop = Arc::new(AtomicBool::new(false));
    let served = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let load: Vec<_> = (0..clients)
        .map(|_| {
            let (stop, served, addr) = (stop.clone(), served.clone(), addr.to_string());
            std::thread::spawn(move || -> std::io::Result<()> {
                let mut c = Connection::open(&addr)?;
                let body = br#"{"model":"fast","messages":[{"role":"user","content":"ping"}]}"#;
                let auth = format!("Bearer {KEY}");
                // Bounded: stops with the foreground loop, or after 120 s.
                while !stop.load(Relaxed) && started.elapsed() < Duration::from_secs(120) {
                    c.post("/v1/chat/completions", &[("authorization", &auth)], body)?;
                    served.fetch_add(1, Relaxed);
                }
                Ok(())
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    let before = served.load(Relaxed);
    let t = Instant::now();
    let loaded = measure(&mut conn, load_texts, false)?;
    let background_rps = (served.load(Relaxed) - before) as f64 / t.elapsed().as_secs_f64();
    let cached = measure(&mut conn, load_texts, true)?;
    stop.store(true, Relaxed);
    for h in load {
        let _ = h.join();
    }

    println!("\n| classification wait (ms), ~128-word-piece prompts | n | p50 | p90 | p99 | max |");
    println!("|---|---:|---:|---:|---:|---:|");
    for (name, h) in [
        ("uncached, idle gateway", &idle),
        (
            &*format!("uncached, gateway serving {background_rps:.0} req/s from {clients} clients")
                as &str,
            &loaded,
        ),
        ("cache hit, same load", &cached),
    ] {
        let q = |p: f64| h.value_at_quantile(p) as f64 / 1000.0;
        println!(
            "| {name} | {} | {:.3} | {:.3} | {:.3} | {:.3} |",
            h.len(),
            q(0.5),
            q(0.9),
            q(0.99),
            h.max() as f64 / 1000.0
        );
    }
    let json = serde_json::json!({
        "idle_us": quantiles(&idle), "loaded_us": quantiles(&loaded), "cached_us": quantiles(&cached),
        "background_rps": background_rps.round(), "clients": clients, "prompts": prompts,
    });
    println!("\n{json}");
    Ok(())
}

/// Mean word pieces per prompt, as the classifier's tokenizer counts them.
fn word_pieces(texts: &[String]) -> Result<f64, Box<dyn std::error::Error>> {
    let models = std::env::var("SWITCHYARD_MODEL_DIR").unwrap_or_else(|_| ".cache/models".into());
    let e = |e: tokenizers::Error| e.to_string();
    let mut tokenizer =
        tokenizers::Tokenizer::from_file(format!("{models}/minilm/tokenizer.json")).map_err(e)?;
    tokenizer.with_truncation(None).map_err(e)?;
    tokenizer.with_padding(None);
    let mut total = 0usize;
    for t in texts {
        total += tokenizer.encode_fast(t.as_str(), true).map_err(e)?.len();
    }
    Ok(total as f64 / texts.len().max(1) as f64)
}

fn quantiles(h: &Histogram<u64>) -> serde_json::Value {
    serde_json::json!({
        "p50": h.value_at_quantile(0.5), "p90": h.value_at_quantile(0.9),
        "p99": h.value_at_quantile(0.99), "max": h.max(), "n": h.len(),
    })
}

/// The classification wait of each prompt, in microseconds.
fn measure(
    conn: &mut Connection,
    texts: &[String],
    expect_cached: bool,
) -> Result<Histogram<u64>, Box<dyn std::error::Error>> {
    let mut h = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3)?;
    for t in texts {
        let r = ask(conn, t)?;
        let how = r.header("x-switchyard-route-classifier").unwrap_or("-");
        let want = if expect_cached { "cached" } else { "computed" };
        if how != want {
            return Err(format!(
                "expected a {want} classification, got {how} (status {})",
                r.status
            )
            .into());
        }
        let ms: f64 = r
            .header("x-switchyard-classify-ms")
            .and_then(|v| v.parse().ok())
            .ok_or("no x-switchyard-classify-ms header")?;
        h.record(((ms * 1000.0) as u64).max(1))?;
    }
    Ok(h)
}

fn ask(conn: &mut Connection, text: &str) -> std::io::Result<bench::http::Reply> {
    let body =
        serde_json::json!({"model": "auto", "messages": [{"role": "user", "content": text}]});
    let auth = format!("Bearer {KEY}");
    conn.post(
        "/v1/chat/completions",
        &[("authorization", &auth)],
        body.to_string().as_bytes(),
    )
}

/// A distinct prompt of about 128 word pieces: every other one is code,
/// which packs more word pieces into the window than prose does.
fn prompt(i: usize, kind: &str) -> String {
    let code = match kind {
        "code" => true,
        "prose" => false,
        _ => i % 2 == 1,
    };
    if code {
        return format!("Fix the bug in this function (case {i}):\n{CODE}");
    }
    const OPENERS: [&str; 4] = [
        "Write a Python function that",
        "Summarize the following report about",
        "Solve this word problem about",
        "Translate into Spanish the note about",
    ];
    const FILL: &str = "the quarterly numbers for the northern warehouse, where shipments of spare parts arrived late twice and the team had to reorder stock from a second supplier, which raised costs by about four percent compared with the same period last year while customer complaints about delivery times also went up slightly before the new routing software was installed in the spring and the managers agreed to review the contract terms with both suppliers before the end of the summer, and the finance team asked for a detailed weekly report on inventory levels, delivery delays and the cost of expedited freight until the backlog finally clears";
    format!("{} case {i}: {FILL}.", OPENERS[i % OPENERS.len()])
}

const CODE: &str = "def merge_totals(orders, refunds):\n    totals = {}\n    for order in orders:\n        key = (order['customer_id'], order['month'])\n        totals[key] = totals.get(key, 0) + order['amount']\n    for refund in refunds:\n        key = (refund['customer_id'], refund['month'])\n        totals[key] = totals.get(key, 0) - refund['amount']\n    return sorted(totals.items(), key=lambda kv: kv[1])\n";

fn policy_yaml(base_url: &str) -> String {
    format!(
        "version: 1\nproviders:\n  mock:\n    kind: openai\n    base_url: {base_url}\n    keys: [{{key: mock-key}}]\nmodels:\n  fast: {{targets: [{{provider: mock, model: m-fast}}]}}\n  coder: {{targets: [{{provider: mock, model: m-code}}]}}\n  general: {{targets: [{{provider: mock, model: m-general}}]}}\nclassifier:\n  timeout_ms: 1000\n  cache_entries: 100000\nrouters:\n  auto:\n    rules:\n      - {{when: {{label: code}}, to: coder}}\n    default: general\nclient_keys:\n  - {{name: load, key: {KEY}}}\n"
    )
}
