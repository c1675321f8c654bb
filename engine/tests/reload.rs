//! Hot reload and snapshot loading, end to end.

mod common;

use common::*;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tools::mock::{MockConfig, MockServer};

const FRESH: &str = "  fresh:\n    targets:\n      - provider: mock\n        model: gpt-4.1\n";

/// Replace the file the way deploy tools do: write aside, rename over.
fn replace_atomically(path: &std::path::Path, text: &[u8]) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

fn wait_for_hash_change(gw: &Gateway, old: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(15);
    while Instant::now() < deadline {
        let h = gw.policy_hash();
        if h != old {
            return h;
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    panic!("policy hash did not change from {old}");
}

fn metric(gw: &Gateway, line_prefix: &str) -> u64 {
    let m = gw.request("GET", "/metrics", &[], b"").text();
    m.lines()
        .find_map(|l| l.strip_prefix(line_prefix))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

fn body(model: &str) -> String {
    format!(r#"{{"model":"{model}","messages":[{{"role":"user","content":"hi"}}]}}"#)
}

#[test]
fn reload_swaps_aliases_under_load_without_a_failed_request() {
    // Latency keeps requests in flight while the swap happens.
    let mock = MockServer::start(MockConfig {
        latency_ms: 15,
        ..MockConfig::default()
    })
    .unwrap();
    let gw = Gateway::start(
        policy_yaml(&mock.base_url(), 1 << 20, "").as_bytes(),
        "policy.yaml",
    );
    let first = gw.policy_hash();
    assert_eq!(gw.chat(&body("fresh"), &[]).status, 404);

    let stop = Arc::new(AtomicBool::new(false));
    let port = gw.port;
    let workers: Vec<_> = (0..4)
        .map(|_| {
            let stop = stop.clone();
            std::thread::spawn(move || {
                let auth = format!("Bearer {CLIENT_KEY}");
                let mut statuses = Vec::new();
                let deadline = Instant::now() + Duration::from_secs(30);
                // Bounded in count and in time.
                while !stop.load(Ordering::Relaxed)
                    && statuses.len() < 2000
                    && Instant::now() < deadline
                {
                    let r = try_request(
                        port,
                        "POST",
                        "/v1/chat/completions",
                        &[("authorization", &auth)],
                        body("fast").as_bytes(),
                    );
                    statuses.push(r.map(|r| r.status).unwrap_or(0));
                }
                statuses
            })
        })
        .collect();

    std::thread::sleep(Duration::from_millis(300));
    let with_fresh = policy_yaml(&mock.base_url(), 1 << 20, FRESH);
    replace_atomically(&gw.policy, with_fresh.as_bytes());
    let second = wait_for_hash_change(&gw, &first);
    assert_eq!(gw.chat(&body("fresh"), &[]).status, 200);

    // An invalid policy is rejected; the active one keeps serving.
    std::thread::sleep(Duration::from_millis(200));
    replace_atomically(&gw.policy, b"version: 1\nproviders: {oops\n");
    let deadline = Instant::now() + Duration::from_secs(15);
    while metric(&gw, "switchyard_policy_reloads_total{result=\"error\"}") == 0 {
        assert!(
            Instant::now() < deadline,
            "the invalid policy was never seen"
        );
        std::thread::sleep(Duration::from_millis(25));
    }
    assert_eq!(gw.policy_hash(), second);

    // Overwritten in place (not renamed), back to the first version.
    std::thread::sleep(Duration::from_millis(200));
    std::fs::write(&gw.policy, policy_yaml(&mock.base_url(), 1 << 20, "")).unwrap();
    assert_eq!(wait_for_hash_change(&gw, &second), first);
    std::thread::sleep(Duration::from_millis(200));

    stop.store(true, Ordering::Relaxed);
    let statuses: Vec<u16> = workers
        .into_iter()
        .flat_map(|w| w.join().unwrap())
        .collect();
    assert!(statuses.len() >= 20, "too little load: {}", statuses.len());
    let failed = statuses.iter().filter(|s| **s != 200).count();
    assert_eq!(
        failed,
        0,
        "{failed} of {} requests failed across reloads",
        statuses.len()
    );
    assert_eq!(gw.chat(&body("fresh"), &[]).status, 404);
    assert!(metric(&gw, "switchyard_policy_reloads_total{result=\"ok\"}") >= 2);
}

#[test]
fn sighup_reloads_a_file_the_watcher_cannot_see() {
    let mock = MockServer::start(MockConfig::default()).unwrap();
    // The served path is a symlink; its target lives in a directory that is
    // not watched, so only SIGHUP can pick up the change.
    let elsewhere = TempDir::new();
    let target = elsewhere.0.join("real.yaml");
    std::fs::write(&target, policy_yaml(&mock.base_url(), 1 << 20, "")).unwrap();
    let dir = TempDir::new();
    let link = dir.0.join("policy.yaml");
    std::os::unix::fs::symlink(&target, &link).unwrap();
    let port = free_port();
    let child = Gateway::spawn(&link, port, std::process::Stdio::null());
    let gw = Gateway {
        child,
        port,
        dir,
        policy: link,
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    while try_request(port, "GET", "/healthz", &[], b"")
        .map(|r| r.status)
        .unwrap_or(0)
        != 200
    {
        assert!(Instant::now() < deadline);
        std::thread::sleep(Duration::from_millis(50));
    }
    let before = gw.policy_hash();
    std::fs::write(&target, policy_yaml(&mock.base_url(), 1 << 20, FRESH)).unwrap();
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(
        gw.policy_hash(),
        before,
        "the watcher was not supposed to see this"
    );
    let kill = std::process::Command::new("kill")
        .args(["-HUP", &gw.child.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    wait_for_hash_change(&gw, &before);
    assert_eq!(gw.chat(&body("fresh"), &[]).status, 200);
}

fn compiled_snapshot(yaml: &str) -> Vec<u8> {
    let c = policy::compile_yaml(yaml, "test.yaml", &std::collections::HashMap::new()).unwrap();
    policy::snapshot::encode(&c.policy, 1).unwrap()
}

#[test]
fn corrupted_snapshot_is_refused_at_start_with_a_clear_error() {
    let mut snap = compiled_snapshot(&policy_yaml("http://127.0.0.1:9/v1", 4096, ""));
    let n = snap.len();
    snap[n - 10] ^= 0xff;
    let dir = TempDir::new();
    let path = dir.0.join("bad.snap");
    std::fs::write(&path, &snap).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_switchyard"))
        .args(["serve", "--policy"])
        .arg(&path)
        .args(["--listen", &format!("127.0.0.1:{}", free_port())])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("invalid snapshot") && err.contains("content hash mismatch"),
        "{err}"
    );
    assert!(!err.contains("panicked"), "{err}");

    std::fs::write(&path, &snap[..n / 2]).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_switchyard"))
        .args(["serve", "--policy"])
        .arg(&path)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("truncated"));
}

#[test]
fn snapshot_is_served_and_a_corrupted_replacement_keeps_the_old_one() {
    let mock = MockServer::start(MockConfig::default()).unwrap();
    let good = compiled_snapshot(&policy_yaml(&mock.base_url(), 4096, ""));
    let gw = Gateway::start(&good, "policy.snap");
    let hash = gw.policy_hash();
    assert_eq!(gw.chat(&body("fast"), &[]).status, 200);

    let mut bad = compiled_snapshot(&policy_yaml(&mock.base_url(), 4096, FRESH));
    let n = bad.len();
    bad[n / 2] ^= 0x55;
    replace_atomically(&gw.policy, &bad);
    let deadline = Instant::now() + Duration::from_secs(15);
    while metric(&gw, "switchyard_policy_reloads_total{result=\"error\"}") == 0 {
        assert!(
            Instant::now() < deadline,
            "the corrupted snapshot was never seen"
        );
        std::thread::sleep(Duration::from_millis(25));
    }
    assert_eq!(gw.policy_hash(), hash);
    assert_eq!(gw.chat(&body("fast"), &[]).status, 200);

    replace_atomically(
        &gw.policy,
        &compiled_snapshot(&policy_yaml(&mock.base_url(), 4096, FRESH)),
    );
    wait_for_hash_change(&gw, &hash);
    assert_eq!(gw.chat(&body("fresh"), &[]).status, 200);
}
