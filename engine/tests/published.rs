//! Policy for a fleet: `policyc publish` seals a snapshot into a real Redis
//! (started by the test); three replicas started with `--policy-from-redis`
//! converge on each new version within 2 s, and refuse a tampered one.

mod common;

use common::services::RedisServer;
use common::*;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use tools::mock::{MockConfig, MockServer};

/// `policyc`, built beside `switchyard` (`cargo build --workspace --bins`).
fn policyc() -> PathBuf {
    let p = Path::new(env!("CARGO_BIN_EXE_switchyard")).with_file_name("policyc");
    assert!(
        p.exists(),
        "{} missing: cargo build --workspace --bins",
        p.display()
    );
    p
}

fn publish(file: &Path, redis: &str, key_file: &Path) -> std::process::Output {
    Command::new(policyc())
        .arg("publish")
        .arg(file)
        .args(["--redis", redis, "--key-file"])
        .arg(key_file)
        .output()
        .unwrap()
}

/// A replica taking its policy from Redis.
fn replica(redis: &str, key_file: &Path) -> Gateway {
    let dir = TempDir::new();
    let port = free_port();
    let log = std::fs::File::create(dir.0.join("gateway.log")).unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_switchyard"))
        .args(["serve", "--policy-from-redis", redis, "--policy-key-file"])
        .arg(key_file)
        .args([
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--threads",
            "1",
            "--grace-seconds",
            "0",
            "--ledger",
        ])
        .arg(dir.0.join("usage.db"))
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap();
    let gw = Gateway {
        child,
        port,
        policy: dir.0.join("none"),
        dir,
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    while !try_request(port, "GET", "/healthz", &[], b"").is_ok_and(|r| r.status == 200) {
        assert!(
            Instant::now() < deadline,
            "replica did not start: {}",
            gw.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    gw
}

fn policy(mock: &str, alias: &str) -> String {
    format!(
        "version: 1\nproviders:\n  mock: {{kind: openai, base_url: {mock}, keys: [{{key: {UPSTREAM_KEY}}}]}}\nmodels:\n  {alias}: {{targets: [{{provider: mock, model: gpt-4o-mini}}]}}\nclient_keys:\n  - {{name: e2e, key: {CLIENT_KEY}}}\n"
    )
}

fn converge(gws: &[Gateway], hash: &str, within: Duration) -> Duration {
    let started = Instant::now();
    loop {
        let hashes: Vec<String> = gws.iter().map(Gateway::policy_hash).collect();
        if hashes.iter().all(|h| h == hash) {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < within,
            "not converged on {hash}: {hashes:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Whether the replica answers a chat to `model`.
fn serves(g: &Gateway, model: &str) -> bool {
    let body = format!(r#"{{"model":"{model}","messages":[{{"role":"user","content":"hi"}}]}}"#);
    g.chat(&body, &[]).status == 200
}

fn hash_of(out: &std::process::Output) -> String {
    let text = String::from_utf8_lossy(&out.stdout);
    let at = text.find("content hash ").expect("hash in the output") + 13;
    text[at..at + 64].to_string()
}

#[test]
fn replicas_converge_on_a_published_policy_and_refuse_a_tampered_one() {
    let redis = RedisServer::start();
    let mock = MockServer::start(MockConfig::default()).unwrap();
    let dir = TempDir::new();
    let key_file = dir.0.join("policy.key");
    let key = Command::new(policyc()).arg("keygen").output().unwrap();
    assert!(key.status.success());
    std::fs::write(&key_file, &key.stdout).unwrap();
    let v1 = dir.0.join("v1.yaml");
    std::fs::write(&v1, policy(&mock.base_url(), "fast")).unwrap();
    let out = publish(&v1, &redis.url(), &key_file);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let h1 = hash_of(&out);
    // What is stored is sealed: no upstream secret in Redis.
    let stored = redis
        .command(&["HGET", "sy:{cluster}:policy", "sealed"])
        .unwrap();
    assert!(!stored.contains(UPSTREAM_KEY));

    let gws: Vec<Gateway> = (0..3).map(|_| replica(&redis.url(), &key_file)).collect();
    converge(&gws, &h1, Duration::from_secs(5));
    assert_eq!(
        gws[0]
            .chat(
                r#"{"model":"fast","messages":[{"role":"user","content":"hi"}]}"#,
                &[]
            )
            .status,
        200
    );

    // A new version: every replica serves it within 2 s.
    let v2 = dir.0.join("v2.yaml");
    std::fs::write(&v2, policy(&mock.base_url(), "quick")).unwrap();
    let out = publish(&v2, &redis.url(), &key_file);
    assert!(out.status.success());
    let h2 = hash_of(&out);
    let took = converge(&gws, &h2, Duration::from_secs(2));
    eprintln!("published: 3 replicas converged in {took:?}");
    for g in &gws {
        assert!(serves(g, "quick"));
        assert_eq!(
            g.metric(&format!("switchyard_policy_info{{hash=\"{h2}\"}}")),
            1.0
        );
    }

    // Tampered: one byte of the sealed snapshot flipped, under a new hash.
    let sealed = {
        let r = redis
            .command(&["HGET", "sy:{cluster}:policy", "sealed"])
            .unwrap();
        let body = r.split_once("\r\n").unwrap().1.to_string();
        body[..body.len() - 2].to_string()
    };
    let mut bytes = sealed.into_bytes();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x01;
    let tampered = String::from_utf8_lossy(&bytes).into_owned();
    redis.command(&[
        "HSET",
        "sy:{cluster}:policy",
        "hash",
        &"f".repeat(64),
        "sealed",
        &tampered,
    ]);
    std::thread::sleep(Duration::from_millis(1500));
    for g in &gws {
        assert_eq!(g.policy_hash(), h2, "the old policy keeps serving");
        assert!(serves(g, "quick"));
        assert!(g.metric(r#"switchyard_policy_reloads_total{result="error"}"#) >= 1.0);
        assert_eq!(
            g.log().matches("policy reload rejected").count(),
            1,
            "refused once, not every poll"
        );
    }

    // Sealed with another key: refused too; then the right one is taken.
    let other_key = dir.0.join("other.key");
    std::fs::write(
        &other_key,
        Command::new(policyc())
            .arg("keygen")
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    let v3 = dir.0.join("v3.yaml");
    std::fs::write(&v3, policy(&mock.base_url(), "third")).unwrap();
    assert!(publish(&v3, &redis.url(), &other_key).status.success());
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(gws[0].policy_hash(), h2);
    let out = publish(&v3, &redis.url(), &key_file);
    let h3 = hash_of(&out);
    converge(&gws, &h3, Duration::from_secs(2));
}

#[test]
fn publish_exit_codes_tell_an_invalid_policy_from_a_failed_publish() {
    let dir = TempDir::new();
    let key_file = dir.0.join("k");
    std::fs::write(&key_file, "00".repeat(32)).unwrap();
    let bad = dir.0.join("bad.yaml");
    std::fs::write(&bad, "version: 1\nproviders: {}\n").unwrap();
    let out = publish(&bad, "redis://127.0.0.1:9", &key_file);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let good = dir.0.join("good.yaml");
    std::fs::write(&good, policy("http://127.0.0.1:9/v1", "m")).unwrap();
    // Nothing listens on port 9: the policy is fine, publishing fails.
    let out = publish(&good, "redis://:hunter2@127.0.0.1:9", &key_file);
    assert_eq!(out.status.code(), Some(2));
    assert!(!String::from_utf8_lossy(&out.stderr).contains("hunter2"));
    let short = dir.0.join("short.key");
    std::fs::write(&short, "abcd").unwrap();
    assert_eq!(
        publish(&good, "redis://127.0.0.1:9", &short).status.code(),
        Some(2)
    );
}
