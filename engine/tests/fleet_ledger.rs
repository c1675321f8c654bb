//! The fleet's ledger in PostgreSQL: three gateway processes ship their
//! usage to a real PostgreSQL (started by the test); losing PostgreSQL
//! under load loses nothing and counts nothing twice.

mod common;

use common::services::PgServer;
use common::*;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tools::mock::{MockConfig, MockServer};

const ADMIN_KEY: &str = "sk-sy-fleet-admin-0000001";

fn policy(mock: &str, pg: &str) -> String {
    format!(
        r#"version: 1
providers:
  mock: {{kind: openai, base_url: {mock}, keys: [{{key: {UPSTREAM_KEY}}}]}}
models:
  fast: {{targets: [{{provider: mock, model: gpt-4o-mini}}]}}
prices:
  mock/gpt-4o-mini: {{input: 1000, output: 2000}}
usage: {{flush_interval_ms: 50, postgres: "{pg}"}}
admin_keys:
  - {{name: ops, key: {ADMIN_KEY}}}
client_keys:
  - {{name: e2e, key: {CLIENT_KEY}}}
"#
    )
}

fn fleet_rows(pg: &PgServer) -> i64 {
    pg.query("SELECT COUNT(*) FROM switchyard_usage")
        .parse()
        .unwrap_or(-1)
}

#[test]
fn postgres_down_for_ten_seconds_under_load_loses_nothing_and_counts_nothing_twice() {
    let mut pg = PgServer::start();
    let mock = MockServer::start(MockConfig::default()).unwrap();
    let text = policy(&mock.base_url(), &pg.url());
    let gws: Vec<Gateway> = (0..3)
        .map(|_| Gateway::start_logged(text.as_bytes(), "p.yaml"))
        .collect();
    let ports: Vec<u16> = gws.iter().map(|g| g.port).collect();
    let stop = Arc::new(AtomicBool::new(false));
    let body = r#"{"model":"fast","messages":[{"role":"user","content":"ship me"}]}"#;
    let load: Vec<_> = (0..3)
        .map(|t| {
            let ports = ports.clone();
            let stop = stop.clone();
            std::thread::spawn(move || {
                let mut n = 0u64;
                let started = Instant::now();
                // Bounded in time and count.
                while !stop.load(Ordering::Relaxed)
                    && started.elapsed() < Duration::from_secs(40)
                    && n < 20_000
                {
                    let r = chat_on(ports[(t + n as usize) % 3], body, &[]).expect("request");
                    assert_eq!(r.status, 200);
                    n += 1;
                    std::thread::sleep(Duration::from_millis(5));
                }
                n
            })
        })
        .collect();
    std::thread::sleep(Duration::from_secs(1));
    pg.stop();
    std::thread::sleep(Duration::from_secs(10));
    // Meanwhile the replicas spool and say so.
    assert!(gws[0].metric("switchyard_usage_spooled") > 0.0);
    assert_eq!(gws[0].metric("switchyard_usage_postgres_connected"), 0.0);
    pg.resume();
    std::thread::sleep(Duration::from_secs(1));
    stop.store(true, Ordering::Relaxed);
    let sent: u64 = load.into_iter().map(|h| h.join().unwrap()).sum();
    // Every request once: the fleet's ledger catches up with what was sent.
    let deadline = Instant::now() + Duration::from_secs(30);
    while fleet_rows(&pg) != sent as i64 {
        assert!(
            Instant::now() < deadline,
            "PostgreSQL has {} rows for {sent} requests",
            fleet_rows(&pg)
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let distinct: i64 = pg
        .query("SELECT COUNT(DISTINCT request_id) FROM switchyard_usage")
        .parse()
        .unwrap();
    assert_eq!(distinct, sent as i64, "a request counted twice");
    // The same rows as the replicas' own ledgers, spend and all.
    let local: i64 = gws
        .iter()
        .flat_map(|g| read_ledger(&g.dir.0.join("usage.db")))
        .map(|r| r["cost"].as_i64().unwrap())
        .sum();
    let fleet: i64 = pg
        .query("SELECT SUM(cost_nanos) FROM switchyard_usage")
        .parse()
        .unwrap();
    assert_eq!(fleet, local);
    let nodes: i64 = pg
        .query("SELECT COUNT(DISTINCT node) FROM switchyard_usage")
        .parse()
        .unwrap();
    assert_eq!(nodes, 3);
    assert_eq!(
        pg.query("SELECT max(version) FROM switchyard_migrations"),
        "1"
    );
    eprintln!("fleet ledger: {sent} requests, {fleet} nano, PostgreSQL down 10 s");

    // Reports: fleet-wide from /admin/usage and `switchyard usage --postgres`.
    let auth = format!("Bearer {ADMIN_KEY}");
    let r = gws[1].request(
        "GET",
        "/admin/usage?by=key&format=json",
        &[("authorization", &auth)],
        b"",
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["total"]["requests"].as_u64(), Some(sent));
    assert_eq!(r.json()["total"]["cost_nanos"].as_i64(), Some(fleet));
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_switchyard"))
        .args([
            "usage",
            "--postgres",
            &pg.url(),
            "--by",
            "user",
            "--format",
            "json",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["total"]["requests"].as_u64(), Some(sent));
}

#[test]
fn shipping_over_tls_verifies_the_server() {
    let (ca, cert, key) = test_chain();
    let pg = PgServer::start_tls(&cert, &key);
    let mock = MockServer::start(MockConfig::default()).unwrap();
    let url = format!("{}?sslmode=require", pg.url());
    let text = policy(&mock.base_url(), &url);
    let dir = TempDir::new();
    let ca_file = dir.0.join("ca.pem");
    std::fs::write(&ca_file, &ca).unwrap();
    let empty = dir.0.join("none.pem");
    std::fs::write(&empty, "").unwrap();
    let body = r#"{"model":"fast","messages":[{"role":"user","content":"tls"}]}"#;
    // Trusting the CA: shipped over TLS.
    let trusting = Gateway::start_logged_env(
        text.as_bytes(),
        "p.yaml",
        &[("SSL_CERT_FILE", ca_file.to_str().unwrap())],
    );
    for _ in 0..5 {
        assert_eq!(trusting.chat(body, &[]).status, 200);
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while fleet_rows(&pg) != 5 {
        assert!(
            Instant::now() < deadline,
            "{} rows shipped",
            fleet_rows(&pg)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(
        pg.query("SELECT COUNT(*) FROM pg_stat_ssl WHERE ssl"),
        "2",
        "the shipper's connection and psql's are both TLS"
    );
    // Not trusting it: nothing crosses, the records stay spooled.
    let doubting = Gateway::start_logged_env(
        text.as_bytes(),
        "p.yaml",
        &[("SSL_CERT_FILE", empty.to_str().unwrap())],
    );
    for _ in 0..3 {
        assert_eq!(doubting.chat(body, &[]).status, 200);
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    while doubting.metric("switchyard_usage_ship_errors_total") < 1.0 {
        assert!(Instant::now() < deadline, "no failed attempt");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(doubting.metric("switchyard_usage_spooled"), 3.0);
    assert_eq!(fleet_rows(&pg), 5);
}
