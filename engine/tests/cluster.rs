//! Cluster mode end to end: three gateway processes sharing limits through
//! a real Redis (started by the test), in front of the mock provider.

mod common;

use common::services::RedisServer;
use common::*;
use std::time::{Duration, Instant};
use tools::mock::{Faults, MockConfig, MockServer};

const RPM_KEY: &str = "sk-sy-cluster-rpm-00000001";
const CONC_KEY: &str = "sk-sy-cluster-conc-0000001";
const LOAD_KEY: &str = "sk-sy-cluster-load-0000001";
const BULK_KEY: &str = "sk-sy-cluster-bulk-0000001";
const BUDGET_KEY: &str = "sk-sy-cluster-budget-000001";
const BODY: &str = r#"{"model":"fast","messages":[{"role":"user","content":"hi"}]}"#;

fn policy(mock: &str, redis: &str, extra: &str) -> String {
    format!(
        r#"version: 1
listener:
  forward_headers: [x-mock-*]
providers:
  mock:
    kind: openai
    base_url: {mock}
    keys: [{{key: {UPSTREAM_KEY}}}]
models:
  fast:
    targets: [{{provider: mock, model: gpt-4o-mini}}]
prices:
  mock/gpt-4o-mini: {{input: 1000, output: 2000}}
usage: {{flush_interval_ms: 50}}
client_keys:
  - {{name: budget, key: {BUDGET_KEY}, budgets: {{daily: 1.0}}}}
  - {{name: rpm, key: {RPM_KEY}, limits: {{rpm: 60}}}}
  - {{name: conc, key: {CONC_KEY}, limits: {{concurrency: 5}}}}
  - {{name: load, key: {LOAD_KEY}, limits: {{rpm: 1000000, concurrency: 1000}}, budgets: {{daily: 1000.0}}}}
  - {{name: bulk, key: {BULK_KEY}, limits: {{rpm: 1000000, tpm: 100000000}}}}
cluster:
  redis: {{url: "{redis}", timeout_ms: 1000}}
  lease_ttl_ms: 3000
  heartbeat_ms: 200
{extra}"#
    )
}

fn replicas(policy_text: &str, n: usize) -> Vec<Gateway> {
    (0..n)
        .map(|_| Gateway::start_logged(policy_text.as_bytes(), "p.yaml"))
        .collect()
}

fn chat_with(port: u16, key: &str, extra: &[(&str, &str)]) -> Response {
    chat_as_on(port, key, BODY, extra).expect("request")
}

fn cluster_health(gw: &Gateway) -> serde_json::Value {
    gw.request("GET", "/admin/health", &[], b"").json()["cluster"].clone()
}

/// Wait until every replica reports `state` (and at least `replicas` live).
fn wait_state(gws: &[Gateway], state: &str, replicas: u64, within: Duration) {
    let deadline = Instant::now() + within;
    loop {
        let all: Vec<_> = gws.iter().map(cluster_health).collect();
        if all
            .iter()
            .all(|h| h["state"] == state && h["replicas"].as_u64() >= Some(replicas))
        {
            return;
        }
        assert!(Instant::now() < deadline, "not all {state}: {all:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// `n` requests with `key` from `threads` threads, spread over the
/// replicas; the statuses.
fn burst(gws: &[Gateway], key: &'static str, threads: usize, per_thread: usize) -> Vec<u16> {
    let ports: Vec<u16> = gws.iter().map(|g| g.port).collect();
    let handles: Vec<_> = (0..threads)
        .map(|t| {
            let ports = ports.clone();
            std::thread::spawn(move || {
                (0..per_thread)
                    .map(|i| chat_with(ports[(t + i) % ports.len()], key, &[]).status)
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    handles
        .into_iter()
        .flat_map(|h| h.join().unwrap())
        .collect()
}

#[test]
fn exact_mode_admits_exactly_the_rpm_across_three_replicas() {
    let redis = RedisServer::start();
    let mock = MockServer::start(MockConfig::default()).unwrap();
    let gws = replicas(&policy(&mock.base_url(), &redis.url(), ""), 3);
    wait_state(&gws, "shared", 3, Duration::from_secs(10));
    let started = Instant::now();
    let statuses = burst(&gws, RPM_KEY, 30, 10);
    let elapsed = started.elapsed();
    let ok = statuses.iter().filter(|s| **s == 200).count();
    assert_eq!(statuses.len(), 300);
    assert!(
        statuses.iter().all(|s| *s == 200 || *s == 429),
        "{statuses:?}"
    );
    // 60 rpm is a full bucket of 60 and one more each second after.
    let refill = elapsed.as_secs() as usize;
    assert!(
        (60..=60 + refill).contains(&ok),
        "admitted {ok} in {elapsed:?} (bound 60 + {refill})"
    );
    assert_eq!(
        mock.requests().len(),
        ok,
        "every admitted request reached the mock"
    );
    for g in &gws {
        assert_eq!(g.metric("switchyard_cluster_local_admissions_total"), 0.0);
        assert_eq!(g.metric("switchyard_cluster_state{state=\"shared\"}"), 1.0);
    }
    // Each replica admitted some: the limit is one, not three.
    let per_replica: Vec<f64> = gws
        .iter()
        .map(|g| g.metric("switchyard_requests_total{route=\"chat\",model=\"fast\",provider=\"mock\",status=\"200\"}"))
        .collect();
    assert!(per_replica.iter().all(|n| *n > 0.0), "{per_replica:?}");
}

/// `EVALSHA` calls Redis has served so far.
fn evalsha_calls(redis: &RedisServer) -> u64 {
    let stats = redis.command(&["INFO", "commandstats"]).unwrap_or_default();
    stats
        .lines()
        .find_map(|l| l.strip_prefix("cmdstat_evalsha:calls="))
        .and_then(|v| v.split(',').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

#[test]
fn pooled_mode_stays_within_its_bound_with_few_redis_calls() {
    let redis = RedisServer::start();
    let mock = MockServer::start(MockConfig::default()).unwrap();
    let text = policy(&mock.base_url(), &redis.url(), "").replace(
        "  lease_ttl_ms: 3000",
        "  limits: pooled\n  lease_ttl_ms: 3000",
    );
    let gws = replicas(&text, 3);
    wait_state(&gws, "shared", 3, Duration::from_secs(10));
    let started = Instant::now();
    let statuses = burst(&gws, RPM_KEY, 30, 10);
    let elapsed = started.elapsed();
    let ok = statuses.iter().filter(|s| **s == 200).count();
    assert!(
        statuses.iter().all(|s| *s == 200 || *s == 429),
        "{statuses:?}"
    );
    // L + N·A with A = max(1, L / (10·N)): 60 + 3·2, plus the refill. At
    // least L - N·A: what the pools still hold is borrowed but unspent.
    let refill = elapsed.as_secs() as usize;
    assert!(
        (54..=66 + refill).contains(&ok),
        "admitted {ok} in {elapsed:?} (bound 66 + {refill})"
    );
    assert_eq!(mock.requests().len(), ok);
    for g in &gws {
        assert_eq!(g.metric("switchyard_cluster_local_admissions_total"), 0.0);
    }

    // A high limit costs Redis almost nothing per request: the pools admit
    // locally and borrow rarely.
    let before = evalsha_calls(&redis);
    let statuses = burst(&gws, BULK_KEY, 10, 30);
    let calls = evalsha_calls(&redis) - before;
    assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");
    eprintln!(
        "pooled: {ok} of 300 admitted at rpm 60; {calls} Redis calls for 300 requests at rpm 1M"
    );
    assert!(calls < 60, "{calls} Redis calls for 300 requests");
}

#[test]
fn a_budget_holds_across_the_fleet_and_settles_to_what_the_mock_served() {
    let redis = RedisServer::start();
    let mock = MockServer::start(MockConfig::default()).unwrap();
    let gws = replicas(&policy(&mock.base_url(), &redis.url(), ""), 3);
    wait_state(&gws, "shared", 3, Duration::from_secs(10));
    // Each request reserves its bytes at the input price plus max_tokens
    // at the output price: about 0.15 of the 1.0 a day.
    let body = r#"{"model":"fast","max_tokens":20,"messages":[{"role":"user","content":"spend some money"}]}"#;
    let ports: Vec<u16> = gws.iter().map(|g| g.port).collect();
    let handles: Vec<_> = (0..24)
        .map(|t| {
            let ports = ports.clone();
            std::thread::spawn(move || {
                let auth = format!("Bearer {BUDGET_KEY}");
                (0..4)
                    .map(|i| {
                        let r = try_request(
                            ports[(t + i) % 3],
                            "POST",
                            "/v1/chat/completions",
                            &[("authorization", &auth)],
                            body.as_bytes(),
                        )
                        .unwrap();
                        let code = r.json()["error"]["code"].as_str().unwrap_or("").to_string();
                        (r.status, code)
                    })
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let out: Vec<(u16, String)> = handles
        .into_iter()
        .flat_map(|h| h.join().unwrap())
        .collect();
    let ok = out.iter().filter(|(s, _)| *s == 200).count();
    let refused = out
        .iter()
        .filter(|(_, c)| c == "gateway_budget_exceeded")
        .count();
    assert_eq!(ok + refused, out.len(), "{out:?}");
    assert!(ok > 0 && refused > 0, "{ok} served, {refused} refused");
    // The fleet's ledger: every replica's rows.
    let deadline = Instant::now() + Duration::from_secs(10);
    let rows = loop {
        let rows: Vec<_> = gws
            .iter()
            .flat_map(|g| read_ledger(&g.dir.0.join("usage.db")))
            .filter(|r| r["key"] == "budget")
            .collect();
        if rows.len() >= out.len() || Instant::now() > deadline {
            break rows;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(rows.len(), out.len());
    let spent: i64 = rows.iter().map(|r| r["cost"].as_i64().unwrap()).sum();
    assert!(
        spent <= 1_000_000_000,
        "the fleet spent {spent} nano over a cap of 1e9"
    );
    let served = mock.served();
    let at_prices: u64 = rows
        .iter()
        .filter(|r| r["status"] == 200)
        .map(|r| {
            let s = &served[r["request_id"].as_str().unwrap()];
            s.prompt_tokens * 1_000_000 + s.completion_tokens * 2_000_000
        })
        .sum();
    assert_eq!(spent as u64, at_prices);
    // Redis holds the same committed spend, once settlements land.
    let day_key = redis
        .command(&["KEYS", "sy:{k:budget}:b:d:*"])
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with("sy:"))
        .map(str::to_string)
        .expect("the day's counter");
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let v = redis.command(&["GET", &day_key]).unwrap_or_default();
        let committed: i64 = v.lines().nth(1).and_then(|n| n.parse().ok()).unwrap_or(-1);
        if committed == spent {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "Redis has {committed}, the ledgers {spent}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    eprintln!("budget: {ok} served, {refused} refused; fleet spend {spent} of 1e9 nano");
}

#[test]
fn a_cool_down_seen_by_one_replica_reaches_the_others_within_100_ms() {
    let redis = RedisServer::start();
    let mock = MockServer::start(MockConfig {
        key_faults: vec![(
            "sk-hot".into(),
            Faults {
                status: Some(429),
                retry_after: Some("30".into()),
                ..Faults::default()
            },
        )],
        ..MockConfig::default()
    })
    .unwrap();
    let text = policy(&mock.base_url(), &redis.url(), "").replace(
        &format!("keys: [{{key: {UPSTREAM_KEY}}}]"),
        "keys: [{key: sk-hot, name: hot}, {key: sk-cold, name: cold}]",
    );
    let gws = replicas(&text, 3);
    wait_state(&gws, "shared", 3, Duration::from_secs(10));
    let hot_requests = |prefix: &str| {
        mock.requests()
            .iter()
            .filter(|r| r.header("authorization") == Some("Bearer sk-hot"))
            .filter(|r| {
                r.header("x-request-id")
                    .is_some_and(|id| id.starts_with(prefix))
            })
            .count()
    };
    // Replica A meets the 429 (its retry on the other key serves).
    let mut n = 0;
    while hot_requests("a-") == 0 {
        n += 1;
        assert!(n < 10, "replica A never tried the hot key");
        let rid = format!("a-{n}");
        let r = chat_with(gws[0].port, CONC_KEY, &[("x-request-id", &rid)]);
        assert_eq!(r.status, 200);
    }
    std::thread::sleep(Duration::from_millis(100));
    // B and C never send to it: each would have tried it within a few
    // requests (keys are balanced).
    for (i, g) in gws[1..].iter().enumerate() {
        for n in 0..10 {
            let rid = format!("{}-{n}", ["b", "c"][i]);
            let r = chat_with(g.port, CONC_KEY, &[("x-request-id", &rid)]);
            assert_eq!(r.status, 200);
        }
    }
    assert_eq!(hot_requests("b-"), 0, "replica B used the cooling key");
    assert_eq!(hot_requests("c-"), 0, "replica C used the cooling key");
    // And with the same expiry: about 30 s left, on each replica.
    for g in &gws[1..] {
        let cooling = g.metric(r#"switchyard_upstream_key_cooling{provider="mock",key="hot"}"#);
        assert_eq!(cooling, 1.0);
    }
    // A replica that starts later catches up from Redis.
    let late = Gateway::start_logged(text.as_bytes(), "p.yaml");
    wait_state(
        std::slice::from_ref(&late),
        "shared",
        4,
        Duration::from_secs(10),
    );
    let deadline = Instant::now() + Duration::from_secs(5);
    while late.metric(r#"switchyard_upstream_key_cooling{provider="mock",key="hot"}"#) != 1.0 {
        assert!(
            Instant::now() < deadline,
            "the late replica never heard of the cool-down"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn concurrency_is_shared_and_a_killed_replica_frees_its_slots_within_the_lease_ttl() {
    let redis = RedisServer::start();
    let mock = MockServer::start(MockConfig {
        latency_ms: 300,
        ..MockConfig::default()
    })
    .unwrap();
    let mut gws = replicas(&policy(&mock.base_url(), &redis.url(), ""), 3);
    wait_state(&gws, "shared", 3, Duration::from_secs(10));
    let statuses = burst(&gws, CONC_KEY, 24, 3);
    let ok = statuses.iter().filter(|s| **s == 200).count();
    assert!(ok >= 5, "{statuses:?}");
    assert!(statuses.contains(&429), "{statuses:?}");
    assert!(mock.peak_in_flight() <= 5, "peak {}", mock.peak_in_flight());
    // Every slot was given back (releases are written in the background).
    let set = "sy:{k:conc}:l:conc";
    let deadline = Instant::now() + Duration::from_secs(2);
    while redis.integer(&["ZCARD", set]) > 0 {
        assert!(
            Instant::now() < deadline,
            "leases left: {:?}",
            redis.command(&["ZRANGE", set, "0", "-1"])
        );
        std::thread::sleep(Duration::from_millis(20));
    }

    // Replica C takes all five slots with slow requests, then dies.
    let c_port = gws[2].port;
    let holders: Vec<_> = (0..5)
        .map(|_| {
            std::thread::spawn(move || {
                let auth = format!("Bearer {CONC_KEY}");
                let _ = try_request(
                    c_port,
                    "POST",
                    "/v1/chat/completions",
                    &[("authorization", &auth), ("x-mock-latency-ms", "20000")],
                    BODY.as_bytes(),
                );
            })
        })
        .collect();
    let deadline = Instant::now() + Duration::from_secs(10);
    while redis.integer(&["ZCARD", set]) < 5 {
        assert!(Instant::now() < deadline, "replica C never held five slots");
        std::thread::sleep(Duration::from_millis(20));
    }
    let mut c = gws.remove(2);
    c.child.kill().unwrap(); // SIGKILL
    c.child.wait().unwrap();
    let killed = Instant::now();
    assert_eq!(chat_with(gws[0].port, CONC_KEY, &[]).status, 429);
    // The leases expire within their TTL (3 s) of their last renewal.
    loop {
        let r = chat_with(gws[0].port, CONC_KEY, &[]);
        if r.status == 200 {
            break;
        }
        assert!(
            killed.elapsed() < Duration::from_millis(3000 + 1500),
            "slots still held {:?} after the kill",
            killed.elapsed()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    for h in holders {
        h.join().unwrap();
    }
}

#[test]
fn losing_redis_under_load_costs_no_request_and_shared_state_resumes() {
    let mut redis = RedisServer::start();
    let mock = MockServer::start(MockConfig::default()).unwrap();
    let text =
        policy(&mock.base_url(), &redis.url(), "").replace("timeout_ms: 1000", "timeout_ms: 50");
    let gws = replicas(&text, 3);
    wait_state(&gws, "shared", 3, Duration::from_secs(10));
    let ports: Vec<u16> = gws.iter().map(|g| g.port).collect();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let load: Vec<_> = (0..6)
        .map(|t| {
            let ports = ports.clone();
            let stop = stop.clone();
            std::thread::spawn(move || {
                let mut out = Vec::new();
                let started = Instant::now();
                // Bounded in time and count.
                while !stop.load(std::sync::atomic::Ordering::Relaxed)
                    && started.elapsed() < Duration::from_secs(30)
                    && out.len() < 20_000
                {
                    out.push(chat_with(ports[(t + out.len()) % ports.len()], LOAD_KEY, &[]).status);
                }
                out
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(500));
    redis.kill();
    wait_state(&gws, "degraded", 3, Duration::from_secs(5));
    std::thread::sleep(Duration::from_millis(500));
    redis.restart();
    wait_state(&gws, "shared", 3, Duration::from_secs(5));
    std::thread::sleep(Duration::from_millis(500));
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let statuses: Vec<u16> = load.into_iter().flat_map(|h| h.join().unwrap()).collect();
    assert!(statuses.len() > 100, "{}", statuses.len());
    let failed: Vec<_> = statuses.iter().filter(|s| **s != 200).collect();
    assert!(
        failed.is_empty(),
        "{} of {} failed: {failed:?}",
        failed.len(),
        statuses.len()
    );
    for g in &gws {
        assert!(g.metric("switchyard_cluster_local_admissions_total") > 0.0);
        let log = g.log();
        // Once per outage, not per request (a slow answer after the
        // restart may make a short second one).
        let outages = log.matches("cluster: Redis unavailable").count();
        assert!(
            (1..=3).contains(&outages),
            "{outages} outages logged: {log}"
        );
        assert!(log.contains("cluster: shared state in Redis"));
    }
    // Shared again: admissions land in the restarted Redis.
    let before = gws[0].metric("switchyard_cluster_local_admissions_total");
    assert_eq!(chat_with(gws[0].port, LOAD_KEY, &[]).status, 200);
    assert_eq!(
        gws[0].metric("switchyard_cluster_local_admissions_total"),
        before
    );
    assert!(redis
        .command(&["GET", "sy:{k:load}:l:rpm"])
        .is_some_and(|r| r.starts_with('$') && !r.starts_with("$-1")));
    // Nothing spent during the outage is lost, nothing counts twice: once
    // every settlement has landed, Redis holds what the fleet's ledgers
    // hold.
    let day_key = redis
        .command(&["KEYS", "sy:{k:load}:b:d:*"])
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with("sy:"))
        .map(str::to_string)
        .expect("the day's counter");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let spent: i64 = gws
            .iter()
            .flat_map(|g| read_ledger(&g.dir.0.join("usage.db")))
            .filter(|r| r["key"] == "load")
            .map(|r| r["cost"].as_i64().unwrap())
            .sum();
        let v = redis.command(&["GET", &day_key]).unwrap_or_default();
        let committed: i64 = v.lines().nth(1).and_then(|n| n.parse().ok()).unwrap_or(-1);
        if committed == spent && spent > 0 {
            eprintln!(
                "outage: {} requests; ledgers {spent}, Redis {committed} nano",
                statuses.len()
            );
            break;
        }
        if Instant::now() > deadline {
            let state: Vec<_> = gws
                .iter()
                .map(|g| {
                    (
                        g.metric("switchyard_cluster_pending_spend_nanos"),
                        g.metric("switchyard_cluster_redis_errors_total"),
                        g.metric("switchyard_cluster_local_admissions_total"),
                    )
                })
                .collect();
            panic!(
                "Redis has {committed}, the ledgers {spent}; replicas (pending, errors, local): {state:?}; keys {:?}",
                redis.command(&["KEYS", "*"])
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn rediss_is_verified_against_the_trusted_roots() {
    let (ca, cert, key) = test_chain();
    let redis = RedisServer::start_tls(&ca, &cert, &key);
    let mock = MockServer::start(MockConfig::default()).unwrap();
    let text = policy(
        &mock.base_url(),
        &format!("rediss://localhost:{}", redis.port),
        "",
    );
    let dir = TempDir::new();
    let ca_file = dir.0.join("ca.pem");
    std::fs::write(&ca_file, &ca).unwrap();
    // Trusting the CA (rustls-native-certs reads SSL_CERT_FILE): shared.
    let trusting = Gateway::start_logged_env(
        text.as_bytes(),
        "p.yaml",
        &[("SSL_CERT_FILE", ca_file.to_str().unwrap())],
    );
    wait_state(
        std::slice::from_ref(&trusting),
        "shared",
        1,
        Duration::from_secs(10),
    );
    assert_eq!(chat_with(trusting.port, RPM_KEY, &[]).status, 200);
    // Not trusting it: the handshake fails, the replica stays degraded and
    // still serves.
    let empty = dir.0.join("none.pem");
    std::fs::write(&empty, "").unwrap();
    let doubting = Gateway::start_logged_env(
        text.as_bytes(),
        "p.yaml",
        &[("SSL_CERT_FILE", empty.to_str().unwrap())],
    );
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(cluster_health(&doubting)["state"], "degraded");
    assert_eq!(chat_with(doubting.port, RPM_KEY, &[]).status, 200);
}
