//! Failover, key pools, breakers, budgets, timeouts and hedging, end to end:
//! the gateway as a child process, mock providers in-process with scripted
//! faults. Timing bounds are loose on purpose (noisy 2-core machines).

mod common;

use common::*;
use std::time::{Duration, Instant};
use tools::mock::schedule::Step;
use tools::mock::{Faults, MockConfig, MockServer};

fn mock(cfg: MockConfig) -> MockServer {
    MockServer::start(cfg).unwrap()
}

fn fault(status: u16) -> Faults {
    Faults {
        status: Some(status),
        ..Faults::default()
    }
}

fn failing_forever(status: u16) -> MockConfig {
    MockConfig {
        schedule: vec![Step::forever(fault(status))],
        ..MockConfig::default()
    }
}

/// Alias `m` over provider `a` (model a-model) then provider `b` (b-model).
fn two_targets(
    a: &MockServer,
    b: &MockServer,
    alias_extra: &str,
    a_extra: &str,
    top_extra: &str,
) -> String {
    format!(
        r#"version: 1
providers:
  a:
    kind: openai
    base_url: {a}
    keys: [{{key: sk-a, name: key-a}}]
{a_extra}
  b:
    kind: openai
    base_url: {b}
    keys: [{{key: sk-b, name: key-b}}]
models:
  m:
{alias_extra}
    targets:
      - {{provider: a, model: a-model}}
      - {{provider: b, model: b-model}}
client_keys:
  - name: t
    key: {CLIENT_KEY}
{top_extra}"#,
        a = a.base_url(),
        b = b.base_url()
    )
}

fn ask(gw: &Gateway) -> Response {
    gw.chat(
        r#"{"model":"m","messages":[{"role":"user","content":"hi"}]}"#,
        &[],
    )
}

fn keys_seen(m: &MockServer, key: &str) -> usize {
    let auth = format!("Bearer {key}");
    m.requests()
        .iter()
        .filter(|r| r.header("authorization") == Some(auth.as_str()))
        .count()
}

fn one_provider(base_url: &str, provider_extra: &str, keys: &str) -> String {
    format!(
        "version: 1\nlistener: {{forward_headers: [x-mock-*]}}\nproviders:\n  p:\n    kind: openai\n    base_url: {base_url}\n{provider_extra}    keys: {keys}\nmodels:\n  m:\n    targets: [{{provider: p, model: x}}]\nclient_keys:\n  - name: t\n    key: {CLIENT_KEY}\n"
    )
}

#[test]
fn a_rate_limited_key_cools_down_while_the_next_key_serves() {
    let m = mock(MockConfig {
        key_faults: vec![(
            "sk-1".into(),
            Faults {
                status: Some(429),
                retry_after: Some("3".into()),
                ..Faults::default()
            },
        )],
        ..MockConfig::default()
    });
    let gw = Gateway::start(
        one_provider(
            &m.base_url(),
            "",
            "[{key: sk-1, name: one}, {key: sk-2, name: two}]",
        )
        .as_bytes(),
        "p.yaml",
    );
    for i in 0..6 {
        assert_eq!(ask(&gw).status, 200, "request {i}");
    }
    assert_eq!(keys_seen(&m, "sk-1"), 1, "cooling after its 429");
    assert_eq!(keys_seen(&m, "sk-2"), 6);
    assert_eq!(
        gw.metric(r#"switchyard_upstream_key_cooling{provider="p",key="one"}"#),
        1.0
    );
    assert_eq!(
        gw.metric(r#"switchyard_upstream_key_cooldowns_total{provider="p",key="one"}"#),
        1.0
    );
    assert_eq!(gw.metric("switchyard_retries_total"), 1.0);
}

#[test]
fn an_exhausted_tier_fails_over_to_the_next_only_when_allowed() {
    let m = mock(MockConfig {
        key_faults: vec![(
            "sk-t0".into(),
            Faults {
                status: Some(429),
                retry_after: Some("30".into()),
                ..Faults::default()
            },
        )],
        ..MockConfig::default()
    });
    let keys = "[{key: sk-t0, name: t0}, {key: sk-t1, name: t1, tier: 1}]";
    let gw = Gateway::start(one_provider(&m.base_url(), "", keys).as_bytes(), "p.yaml");
    for _ in 0..3 {
        assert_eq!(ask(&gw).status, 200);
    }
    assert_eq!((keys_seen(&m, "sk-t0"), keys_seen(&m, "sk-t1")), (1, 3));
    drop(gw);

    let m = mock(MockConfig {
        key_faults: vec![(
            "sk-t0".into(),
            Faults {
                status: Some(429),
                retry_after: Some("30".into()),
                ..Faults::default()
            },
        )],
        ..MockConfig::default()
    });
    let gw = Gateway::start(
        one_provider(&m.base_url(), "    cross_tier_failover: false\n", keys).as_bytes(),
        "p.yaml",
    );
    let first = ask(&gw);
    assert_eq!(first.status, 429);
    assert_eq!(
        first.json()["error"]["code"],
        "rate_limit_exceeded",
        "the provider's own answer"
    );
    let second = ask(&gw);
    assert_eq!(second.status, 429);
    assert_eq!(second.json()["error"]["code"], "upstream_keys_cooling_down");
    let wait: u64 = second.header("retry-after").unwrap().parse().unwrap();
    assert!((25..=30).contains(&wait), "{wait}");
    assert_eq!(keys_seen(&m, "sk-t1"), 0);
}

#[test]
fn a_refused_key_leaves_rotation_and_is_reported_without_its_secret() {
    let m = mock(MockConfig {
        key_faults: vec![("sk-revoked-secret".into(), fault(401))],
        ..MockConfig::default()
    });
    let keys = "[{key: sk-revoked-secret, name: revoked}, {key: sk-good, name: good}]";
    let gw = Gateway::start_logged(one_provider(&m.base_url(), "", keys).as_bytes(), "p.yaml");
    for _ in 0..8 {
        assert_eq!(ask(&gw).status, 200);
    }
    assert_eq!(keys_seen(&m, "sk-revoked-secret"), 1);
    assert_eq!(
        gw.metric(r#"switchyard_upstream_key_refused{provider="p",key="revoked"}"#),
        1.0
    );
    assert_eq!(
        gw.metric(r#"switchyard_upstream_key_refusals_total{provider="p",key="revoked"}"#),
        1.0
    );
    let log = gw.log();
    assert!(log.contains("refused") && log.contains("revoked"), "{log}");
    assert!(
        !log.contains("sk-revoked-secret") && !log.contains("sk-good"),
        "a secret reached the log"
    );
    let metrics = gw.request("GET", "/metrics", &[], b"").text();
    assert!(!metrics.contains("sk-revoked-secret"));
}

#[test]
fn a_403_about_the_request_goes_back_to_the_client_and_benches_no_key() {
    let m = mock(MockConfig {
        schedule: vec![Step::requests(1, fault(403))],
        ..MockConfig::default()
    });
    let gw = Gateway::start(
        one_provider(&m.base_url(), "", "[{key: sk-only, name: only}]").as_bytes(),
        "p.yaml",
    );
    let refused = ask(&gw);
    assert_eq!(refused.status, 403, "{}", refused.text());
    assert_eq!(
        refused.header("x-switchyard-error-source"),
        Some("provider")
    );
    // The one key still serves everyone else.
    for _ in 0..3 {
        assert_eq!(ask(&gw).status, 200);
    }
    assert_eq!(keys_seen(&m, "sk-only"), 4);
    assert_eq!(
        gw.metric(r#"switchyard_upstream_key_refused{provider="p",key="only"}"#),
        0.0
    );
}

#[test]
fn a_provider_refusing_the_gateway_key_is_the_gateways_error_and_quotes_no_key() {
    let secret = "sk-proj-gateway-secret-abcd";
    let m = mock(MockConfig {
        key_faults: vec![(secret.into(), fault(401))],
        ..MockConfig::default()
    });
    let keys = format!("[{{key: {secret}, name: main}}]");
    let gw = Gateway::start(one_provider(&m.base_url(), "", &keys).as_bytes(), "p.yaml");
    let r = ask(&gw);
    assert_eq!(r.status, 502, "{}", r.text());
    assert_eq!(r.json()["error"]["code"], "gateway_upstream_auth_failed");
    let text = r.text();
    assert!(
        !text.contains("abcd") && !text.contains("sk-proj") && !text.contains("Incorrect API key"),
        "the provider's words about the gateway's key reached a client: {text}"
    );
    assert_ne!(r.header("x-switchyard-error-source"), Some("provider"));
    // Every later request is refused by the gateway without a new attempt.
    let again = ask(&gw);
    assert_eq!(again.status, 503, "{}", again.text());
    assert_eq!(keys_seen(&m, secret), 1);
}

#[test]
fn a_provider_outage_fails_over_to_the_next_target() {
    let (a, b) = (mock(failing_forever(503)), mock(MockConfig::default()));
    let gw = Gateway::start(two_targets(&a, &b, "", "", "").as_bytes(), "p.yaml");
    let r = ask(&gw);
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["model"], "b-model");
    assert_eq!((a.requests().len(), b.requests().len()), (1, 1));
    assert_eq!(
        a.requests()[0].body["model"],
        "a-model",
        "re-translated per target"
    );
    assert_eq!(b.requests()[0].body["model"], "b-model");
    let timeout = mock(MockConfig {
        latency_ms: 3000,
        ..MockConfig::default()
    });
    let b2 = mock(MockConfig::default());
    let gw = Gateway::start(
        two_targets(
            &timeout,
            &b2,
            "",
            "    timeouts: {first_byte_ms: 300}\n",
            "",
        )
        .as_bytes(),
        "p.yaml",
    );
    let started = Instant::now();
    let r = ask(&gw);
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["model"], "b-model");
    assert!(
        started.elapsed() < Duration::from_millis(2500),
        "{:?}",
        started.elapsed()
    );
}

#[test]
fn the_breaker_opens_then_probes_and_closes() {
    // `a` fails for its first 2 s, then recovers.
    let a = mock(MockConfig {
        schedule: vec![Step::for_ms(2000, fault(503))],
        ..MockConfig::default()
    });
    let b = mock(MockConfig::default());
    let breaker = "    breaker: {consecutive_failures: 2, open_ms: 400, max_open_ms: 800}\n";
    let gw = Gateway::start(two_targets(&a, &b, "", breaker, "").as_bytes(), "p.yaml");
    let started = Instant::now();
    for _ in 0..10 {
        assert_eq!(ask(&gw).status, 200);
    }
    assert_eq!(
        a.requests().len(),
        2,
        "open after 2 failures: later requests skip `a`"
    );
    assert_eq!(
        gw.metric(r#"switchyard_target_breaker_state{provider="a",model="a-model"}"#),
        1.0
    );
    std::thread::sleep(Duration::from_millis(550));
    assert_eq!(ask(&gw).status, 200);
    assert_eq!(
        a.requests().len(),
        3,
        "one half-open probe (it fails: `a` is still down)"
    );
    // Wait out `a`'s outage and the doubled open period.
    while started.elapsed() < Duration::from_millis(2900) {
        std::thread::sleep(Duration::from_millis(50));
    }
    let r = ask(&gw);
    assert_eq!(
        r.json()["model"],
        "a-model",
        "the probe succeeded and `a` serves again"
    );
    assert_eq!(
        gw.metric(r#"switchyard_target_breaker_state{provider="a",model="a-model"}"#),
        0.0
    );
    assert_eq!(ask(&gw).json()["model"], "a-model");
}

#[test]
fn non_retryable_answers_are_returned_at_once() {
    let (a, b) = (mock(failing_forever(400)), mock(MockConfig::default()));
    let gw = Gateway::start(two_targets(&a, &b, "", "", "").as_bytes(), "p.yaml");
    assert_eq!(ask(&gw).status, 400);
    assert!(b.requests().is_empty());

    let quota = Faults {
        status: Some(429),
        error_code: Some("insufficient_quota".into()),
        ..Faults::default()
    };
    let (a, b) = (
        mock(MockConfig {
            schedule: vec![Step::forever(quota)],
            ..MockConfig::default()
        }),
        mock(MockConfig::default()),
    );
    let gw = Gateway::start(two_targets(&a, &b, "", "", "").as_bytes(), "p.yaml");
    let r = ask(&gw);
    assert_eq!(r.status, 429);
    assert_eq!(r.json()["error"]["code"], "insufficient_quota");
    assert!(b.requests().is_empty());
    assert_eq!(
        gw.metric(r#"switchyard_upstream_key_cooling{provider="a",key="key-a"}"#),
        0.0,
        "a quota error does not cool the key"
    );
}

#[test]
fn the_retry_budget_caps_retries() {
    let (a, b) = (mock(failing_forever(503)), mock(MockConfig::default()));
    let gw = Gateway::start(
        two_targets(
            &a,
            &b,
            "",
            "",
            "retry_budget: {ratio: 0, min_per_second: 0}\n",
        )
        .as_bytes(),
        "p.yaml",
    );
    for _ in 0..3 {
        let r = ask(&gw);
        assert_eq!(r.status, 503, "no budget: the provider's answer stands");
    }
    assert!(b.requests().is_empty());
    assert_eq!(gw.metric("switchyard_retry_budget_exhausted_total"), 3.0);
}

#[test]
fn streams_are_retried_only_before_their_first_byte() {
    let body =
        r#"{"model":"m","stream":true,"messages":[{"role":"user","content":"a b c d e f"}]}"#;
    let before_first = Faults {
        drop_after_chunks: Some(0),
        ..Faults::default()
    };
    let (a, b) = (
        mock(MockConfig {
            schedule: vec![Step::forever(before_first)],
            ..MockConfig::default()
        }),
        mock(MockConfig::default()),
    );
    let gw = Gateway::start(two_targets(&a, &b, "", "", "").as_bytes(), "p.yaml");
    let r = gw.chat(body, &[]);
    assert_eq!(r.status, 200);
    let text = r.text();
    assert!(
        text.contains("b-model") && text.trim_end().ends_with("data: [DONE]"),
        "{text}"
    );
    assert_eq!(a.requests().len(), 1);

    let midway = Faults {
        drop_after_chunks: Some(3),
        chunk_delay_ms: 5,
        ..Faults::default()
    };
    let (a, b) = (
        mock(MockConfig {
            schedule: vec![Step::forever(midway)],
            ..MockConfig::default()
        }),
        mock(MockConfig::default()),
    );
    let gw = Gateway::start(two_targets(&a, &b, "", "", "").as_bytes(), "p.yaml");
    let r = gw.chat(body, &[]);
    let events = sse_payloads(&r.text());
    assert_eq!(
        events.last().unwrap()["error"]["code"],
        "upstream_stream_interrupted"
    );
    assert!(b.requests().is_empty(), "bytes were sent: never retried");
}

#[test]
fn idle_and_total_timeouts_cut_a_stream() {
    let body =
        r#"{"model":"m","stream":true,"messages":[{"role":"user","content":"a b c d e f g h"}]}"#;
    let slow = mock(MockConfig {
        chunk_delay_ms: 1500,
        ..MockConfig::default()
    });
    let b = mock(MockConfig::default());
    let gw = Gateway::start(
        two_targets(&slow, &b, "", "    timeouts: {idle_ms: 300}\n", "").as_bytes(),
        "p.yaml",
    );
    let started = Instant::now();
    let r = gw.chat(body, &[]);
    let events = sse_payloads(&r.text());
    let last = events.last().unwrap();
    assert_eq!(last["error"]["code"], "upstream_stream_interrupted");
    assert!(
        last["error"]["message"]
            .as_str()
            .unwrap()
            .contains("no data from the provider"),
        "{last}"
    );
    assert!(
        started.elapsed() < Duration::from_millis(1400),
        "{:?}",
        started.elapsed()
    );

    let steady = mock(MockConfig {
        chunk_delay_ms: 100,
        reply_tokens: Some(40),
        ..MockConfig::default()
    });
    let gw = Gateway::start(
        two_targets(
            &steady,
            &b,
            "",
            "    timeouts: {first_byte_ms: 500, total_ms: 800}\n",
            "",
        )
        .as_bytes(),
        "p.yaml",
    );
    let r = gw.chat(body, &[]);
    let events = sse_payloads(&r.text());
    let last = events.last().unwrap();
    assert!(
        last["error"]["message"]
            .as_str()
            .unwrap()
            .contains("total time limit"),
        "{last}"
    );
    assert!(events.len() > 3 && events.len() < 20, "{}", events.len());
}

#[test]
fn hedging_answers_from_the_faster_target_and_cancels_the_slower() {
    let slow = mock(MockConfig {
        latency_ms: 1500,
        ..MockConfig::default()
    });
    let fast = mock(MockConfig::default());
    let gw = Gateway::start(
        two_targets(&slow, &fast, "    hedge: {after_ms: 200}\n", "", "").as_bytes(),
        "p.yaml",
    );
    let started = Instant::now();
    let r = ask(&gw);
    let took = started.elapsed();
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["model"], "b-model");
    assert!(
        took >= Duration::from_millis(180) && took < Duration::from_millis(1200),
        "{took:?}"
    );
    assert_eq!((slow.requests().len(), fast.requests().len()), (1, 1));
    assert_eq!(gw.metric("switchyard_hedges_total"), 1.0);
    assert_eq!(gw.metric("switchyard_hedge_wins_total"), 1.0);
    assert_eq!(
        gw.metric(r#"switchyard_upstream_attempts_total{provider="a",outcome="hedge_cancelled"}"#),
        1.0
    );
    // The cancelled attempt released everything it held.
    assert_eq!(
        gw.metric(r#"switchyard_upstream_key_in_flight{provider="a",key="key-a"}"#),
        0.0
    );
}

#[test]
fn least_latency_and_weighted_balancing() {
    let slow = mock(MockConfig {
        latency_ms: 40,
        ..MockConfig::default()
    });
    let fast = mock(MockConfig::default());
    let same_priority = |balance: &str| {
        format!(
            "version: 1\nlistener: {{forward_headers: [x-mock-*]}}\nproviders:\n  a: {{kind: openai, base_url: {}, keys: [{{key: ka}}]}}\n  b: {{kind: openai, base_url: {}, keys: [{{key: kb}}]}}\nmodels:\n  m:\n    balance: {balance}\n    targets:\n      - {{provider: a, model: a-model, priority: 0, weight: 3}}\n      - {{provider: b, model: b-model, priority: 0, weight: 1}}\nclient_keys:\n  - name: t\n    key: {CLIENT_KEY}\n",
            slow.base_url(),
            fast.base_url()
        )
    };
    let gw = Gateway::start(same_priority("least_latency").as_bytes(), "p.yaml");
    for _ in 0..40 {
        assert_eq!(ask(&gw).status, 200);
    }
    let (to_slow, to_fast) = (slow.requests().len(), fast.requests().len());
    assert!(to_fast >= 30, "slow {to_slow}, fast {to_fast}");
    drop(gw);
    slow.clear_requests();
    fast.clear_requests();

    let gw = Gateway::start(same_priority("weighted").as_bytes(), "p.yaml");
    for _ in 0..120 {
        assert_eq!(ask(&gw).status, 200);
    }
    let share = slow.requests().len() as f64 / 120.0;
    assert!((0.6..0.9).contains(&share), "weight 3:1 gave {share}");
}

#[test]
fn a_key_at_its_concurrency_cap_is_skipped() {
    let m = mock(MockConfig {
        latency_ms: 400,
        ..MockConfig::default()
    });
    let keys = "[{key: sk-1, max_concurrency: 1}, {key: sk-2, max_concurrency: 1}]";
    let gw = Gateway::start(one_provider(&m.base_url(), "", keys).as_bytes(), "p.yaml");
    let port = gw.port;
    let clients: Vec<_> = (0..2)
        .map(|_| {
            std::thread::spawn(move || {
                let auth = format!("Bearer {CLIENT_KEY}");
                try_request(
                    port,
                    "POST",
                    "/v1/chat/completions",
                    &[("authorization", &auth)],
                    br#"{"model":"m","messages":[{"role":"user","content":"x"}]}"#,
                )
                .unwrap()
                .status
            })
        })
        .collect();
    let statuses: Vec<u16> = clients.into_iter().map(|c| c.join().unwrap()).collect();
    assert_eq!(statuses, [200, 200]);
    assert_eq!((keys_seen(&m, "sk-1"), keys_seen(&m, "sk-2")), (1, 1));
    // Both busy: a third concurrent request has no key.
    let clients: Vec<_> = (0..3)
        .map(|_| {
            std::thread::spawn(move || {
                let auth = format!("Bearer {CLIENT_KEY}");
                try_request(
                    port,
                    "POST",
                    "/v1/chat/completions",
                    &[("authorization", &auth)],
                    br#"{"model":"m","messages":[{"role":"user","content":"x"}]}"#,
                )
                .unwrap()
            })
        })
        .collect();
    let answers: Vec<Response> = clients.into_iter().map(|c| c.join().unwrap()).collect();
    let busy: Vec<_> = answers.iter().filter(|r| r.status == 503).collect();
    assert_eq!(
        busy.len(),
        1,
        "{:?}",
        answers.iter().map(|r| r.status).collect::<Vec<_>>()
    );
    assert_eq!(busy[0].json()["error"]["code"], "upstream_unavailable");
}

#[test]
fn chaos_a_flapping_target_never_reaches_the_client_and_retries_stay_in_budget() {
    // `a` flaps: 250 ms failing, 250 ms healthy, for ~5 s; `b` is healthy.
    let mut schedule = Vec::new();
    for _ in 0..10 {
        schedule.push(Step::for_ms(250, fault(503)));
        schedule.push(Step::for_ms(250, Faults::default()));
    }
    let a = mock(MockConfig {
        schedule,
        ..MockConfig::default()
    });
    let b = mock(MockConfig::default());
    let breaker = "    breaker: {consecutive_failures: 3, open_ms: 200, max_open_ms: 1000}\n";
    let gw = Gateway::start(
        two_targets(
            &a,
            &b,
            "",
            breaker,
            "retry_budget: {ratio: 0.2, min_per_second: 10}\n",
        )
        .as_bytes(),
        "p.yaml",
    );
    let port = gw.port;
    let started = Instant::now();
    let clients: Vec<_> = (0..6)
        .map(|_| {
            std::thread::spawn(move || {
                let auth = format!("Bearer {CLIENT_KEY}");
                let deadline = Instant::now() + Duration::from_secs(20);
                let mut statuses = Vec::new();
                while statuses.len() < 100 && Instant::now() < deadline {
                    let r = try_request(
                        port,
                        "POST",
                        "/v1/chat/completions",
                        &[("authorization", &auth)],
                        br#"{"model":"m","messages":[{"role":"user","content":"x"}]}"#,
                    );
                    statuses.push(r.map(|r| r.status).unwrap_or(0));
                    std::thread::sleep(Duration::from_millis(30));
                }
                statuses
            })
        })
        .collect();
    let statuses: Vec<u16> = clients
        .into_iter()
        .flat_map(|c| c.join().unwrap())
        .collect();
    let elapsed = started.elapsed().as_secs_f64();
    let requests = statuses.len();
    assert!(requests >= 300, "{requests}");
    let failed = statuses.iter().filter(|s| **s != 200).count();
    assert_eq!(
        failed, 0,
        "{failed} of {requests} failed while `b` was healthy"
    );
    let attempts = a.requests().len() + b.requests().len();
    let extra = attempts - requests;
    let allowed = 0.2 * requests as f64 + 10.0 * elapsed + 1.0;
    assert!(
        (extra as f64) <= allowed,
        "{extra} extra attempts for {requests} requests in {elapsed:.1}s (allowed {allowed:.0})"
    );
    assert!(
        a.requests().len() * 10 > requests,
        "`a` recovered between its failures and served"
    );
    eprintln!(
        "chaos: {requests} requests, {attempts} attempts ({extra} retries), {:.1}s, a={} b={}",
        elapsed,
        a.requests().len(),
        b.requests().len()
    );
}
