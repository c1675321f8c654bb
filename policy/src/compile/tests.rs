use super::*;
use crate::keys;
use crate::snapshot::{self, Snapshot};

const GOOD: &str = r#"version: 1
listener:
  address: 127.0.0.1:9000
providers:
  openai:
    kind: openai
    base_url: ${OPENAI_BASE_URL:-https://api.openai.com/v1}
    allow_direct: true
    keys:
      - key: ${OPENAI_API_KEY}
        tier: 1
      - key: sk-tier0
        name: first
  anthropic:
    kind: anthropic
    base_url: https://api.anthropic.com
    keys:
      - key: ${ANTHROPIC_API_KEY:-}
models:
  gpt-4o-mini:
    targets:
      - provider: openai
        model: gpt-4o-mini
  claude:
    targets:
      - provider: anthropic
        model: claude-sonnet-4-5
client_keys:
  - name: dev
    key: ${SWITCHYARD_KEY}
    models: ["gpt-*"]
"#;

fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn base_env() -> HashMap<String, String> {
    env(&[
        ("OPENAI_API_KEY", "sk-real"),
        ("SWITCHYARD_KEY", "sk-sy-0123456789abcdef"),
    ])
}

fn errors(src: &str, e: &HashMap<String, String>) -> Vec<Diagnostic> {
    match compile_yaml(src, "p.yaml", e) {
        Err(Error::Invalid(d)) => d,
        other => panic!("expected validation errors, got {other:?}"),
    }
}

#[test]
fn compiles_and_resolves_everything() {
    let c = compile_yaml(GOOD, "p.yaml", &base_env()).unwrap();
    let p = &c.policy;
    assert_eq!(p.listener.address, "127.0.0.1:9000");
    assert_eq!(p.listener.max_body_bytes, 32 * 1024 * 1024);
    let names: Vec<_> = p.providers.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, ["anthropic", "openai"]);
    let openai = &p.providers[1];
    assert_eq!(
        (openai.tls, openai.host.as_str(), openai.port),
        (true, "api.openai.com", 443)
    );
    assert_eq!(openai.path_prefix, "/v1");
    // Tier 0 first, whatever the file order.
    let secrets: Vec<_> = openai.keys.iter().map(|k| k.secret.as_str()).collect();
    assert_eq!(secrets, ["sk-tier0", "sk-real"]);
    assert_eq!(openai.keys[1].name, "openai#0");
    // The empty anthropic key is dropped with a warning, not an error.
    assert!(p.providers[0].keys.is_empty());
    assert!(c
        .warnings
        .iter()
        .any(|w| w.path == "providers.anthropic.keys[0].key"));
    assert_eq!(p.aliases[0].name, "claude");
    assert_eq!(p.aliases[1].targets[0].provider, 1);
    assert_eq!(
        p.client_keys[0].sha256,
        keys::sha256("sk-sy-0123456789abcdef")
    );
}

#[test]
fn base_url_from_env_with_port_and_plain_http() {
    let mut e = base_env();
    e.insert("OPENAI_BASE_URL".into(), "http://127.0.0.1:4010/v1/".into());
    let p = compile_yaml(GOOD, "p.yaml", &e).unwrap().policy;
    let o = &p.providers[1];
    assert_eq!(
        (o.tls, o.host.as_str(), o.port, o.path_prefix.as_str()),
        (false, "127.0.0.1", 4010, "/v1")
    );
}

#[test]
fn unset_variable_names_the_variable_and_the_line() {
    let d = errors(GOOD, &env(&[("SWITCHYARD_KEY", "sk-sy-0123456789abcdef")]));
    assert_eq!(d.len(), 1, "{d:?}");
    assert_eq!(d[0].path, "providers.openai.keys[0].key");
    assert_eq!(d[0].line, 10);
    assert!(
        d[0].message.contains("OPENAI_API_KEY is not set"),
        "{}",
        d[0]
    );
    assert!(d[0].to_string().starts_with("p.yaml:10:"), "{}", d[0]);
}

#[test]
fn typo_in_field_is_located_by_the_parser() {
    let src = GOOD.replace("allow_direct", "allow_drect");
    let d = errors(&src, &base_env());
    assert_eq!(d.len(), 1);
    assert_eq!(d[0].line, 8, "{}", d[0]);
    assert!(d[0].path.contains("providers"), "{}", d[0]);
    assert!(
        d[0].message.contains("unknown field `allow_drect`"),
        "{}",
        d[0]
    );
}

#[test]
fn wrong_kind_lists_the_expected_values() {
    let src = GOOD.replace("kind: anthropic", "kind: antropic");
    let d = errors(&src, &base_env());
    assert!(
        d[0].message.contains("unknown variant `antropic`"),
        "{}",
        d[0]
    );
    assert!(d[0].message.contains("anthropic"), "{}", d[0]);
    assert_eq!(d[0].line, 15);
}

#[test]
fn semantic_errors_are_all_reported_with_positions() {
    let src = GOOD
        .replace("provider: anthropic", "provider: nobody")
        .replace("address: 127.0.0.1:9000", "address: localhost")
        .replace("${SWITCHYARD_KEY}", "short");
    let d = errors(&src, &base_env());
    let by_path = |p: &str| {
        d.iter()
            .find(|x| x.path == p)
            .unwrap_or_else(|| panic!("{p}: {d:?}"))
    };
    let unknown = by_path("models.claude.targets[0].provider");
    assert_eq!(unknown.line, 26);
    assert!(unknown.message.contains("unknown provider \"nobody\""));
    assert!(unknown.message.contains("anthropic, openai"));
    assert_eq!(by_path("listener.address").line, 3);
    assert!(by_path("client_keys[0].key")
        .message
        .contains("at least 16"));
}

#[test]
fn bad_urls_and_versions_are_rejected() {
    for (bad, needle) in [
        ("ftp://x", "http:// or https://"),
        ("https://user:pw@x.com", "credentials"),
        ("https://x.com/v1?a=b", "query"),
        ("not a url", "not a URL"),
    ] {
        let src = GOOD.replace("https://api.anthropic.com", bad);
        let d = errors(&src, &base_env());
        assert!(
            d.iter()
                .any(|x| x.path == "providers.anthropic.base_url" && x.message.contains(needle)),
            "{bad}: {d:?}"
        );
    }
    let d = errors(&GOOD.replace("version: 1", "version: 2"), &base_env());
    assert!(d[0].message.contains("unsupported policy version 2"));
}

#[test]
fn client_key_needs_exactly_one_form_and_no_duplicates() {
    let hash = hex::encode(keys::sha256("sk-sy-0123456789abcdef"));
    let src = GOOD.replace(
        "client_keys:\n",
        &format!("client_keys:\n  - name: twin\n    key_sha256: {hash}\n  - name: neither\n"),
    );
    let d = errors(&src, &base_env());
    assert!(
        d.iter()
            .any(|x| x.path == "client_keys[1]" && x.message.contains("exactly one")),
        "{d:?}"
    );
    assert!(
        d.iter()
            .any(|x| x.path == "client_keys[2]" && x.message.contains("already used")),
        "{d:?}"
    );
}

#[test]
fn snapshot_round_trip_and_lookups() {
    let c = compile_yaml(GOOD, "p.yaml", &base_env()).unwrap();
    let bytes = snapshot::encode(&c.policy, 1_700_000_000).unwrap();
    let s = Snapshot::from_bytes(&bytes).unwrap();
    assert_eq!(s.header().compiled_at_unix, 1_700_000_000);
    assert_eq!(s.to_owned_policy().unwrap(), c.policy);
    let p = s.policy();
    let alias = p.alias("gpt-4o-mini").unwrap();
    assert_eq!(alias.targets[0].model.as_str(), "gpt-4o-mini");
    assert!(p.alias("gpt-4o").is_none());
    assert_eq!(p.provider("openai").unwrap().0, 1);
    let key = p
        .client_key(&keys::sha256("sk-sy-0123456789abcdef"))
        .unwrap();
    assert!(key.allows("gpt-4o-mini") && !key.allows("claude"));
    assert!(p.client_key(&keys::sha256("sk-sy-wrong")).is_none());
    // Same policy, other compile time: same content hash.
    let again = snapshot::encode(&c.policy, 5).unwrap();
    assert_eq!(
        Snapshot::from_bytes(&again).unwrap().header().content_hash,
        s.header().content_hash
    );
}

#[test]
fn corrupted_or_truncated_snapshots_are_refused() {
    let c = compile_yaml(GOOD, "p.yaml", &base_env()).unwrap();
    let bytes = snapshot::encode(&c.policy, 1).unwrap();
    let check = |b: &[u8], needle: &str| {
        let e = Snapshot::from_bytes(b).unwrap_err().to_string();
        assert!(e.contains(needle), "{needle}: {e}");
    };
    check(&bytes[..10], "truncated");
    check(&bytes[..bytes.len() - 1], "truncated");
    let mut flipped = bytes.clone();
    let last = flipped.len() - 3;
    flipped[last] ^= 0x40;
    check(&flipped, "content hash mismatch");
    let mut magic = bytes.clone();
    magic[0] = b'X';
    check(&magic, "bad magic");
    let mut version = bytes.clone();
    version[8] = 9;
    check(&version, "format version 9");
    check(b"", "truncated");
}

#[test]
fn forged_snapshot_with_valid_hash_but_bad_index_is_refused() {
    let mut c = compile_yaml(GOOD, "p.yaml", &base_env()).unwrap();
    c.policy.aliases[0].targets[0].provider = 7;
    let bytes = snapshot::encode(&c.policy, 1).unwrap();
    let e = Snapshot::from_bytes(&bytes).unwrap_err().to_string();
    assert!(e.contains("provider #7"), "{e}");
}

const RESILIENT: &str = r#"version: 1
providers:
  a:
    kind: openai
    base_url: http://127.0.0.1:1/v1
    cross_tier_failover: false
    breaker: {consecutive_failures: 3, error_ratio: 0.25}
    timeouts: {first_byte_ms: 500, total_ms: 2000}
    keys:
      - key: k1
        max_concurrency: 4
  b:
    kind: openai
    base_url: http://127.0.0.1:2/v1
    keys: [{key: k2}]
models:
  m:
    balance: least_latency
    retry: {max_attempts: 4, backoff_ms: 10, max_backoff_ms: 100}
    hedge: {after_ms: 300, percentile: 95}
    targets:
      - {provider: b, model: late, priority: 5}
      - {provider: a, model: x, priority: 1, weight: 3}
      - {provider: b, model: y, priority: 1}
retry_budget: {ratio: 0.1, min_per_second: 2}
"#;

#[test]
fn resilience_settings_compile_with_defaults_and_priorities() {
    let p = compile_yaml(RESILIENT, "r.yaml", &HashMap::new())
        .unwrap()
        .policy;
    let a = &p.providers[0];
    assert!(!a.cross_tier_failover);
    assert_eq!(a.keys[0].max_concurrency, 4);
    assert_eq!(p.providers[1].keys[0].max_concurrency, 0);
    assert_eq!(
        (
            a.breaker.consecutive_failures,
            a.breaker.error_ratio_milli,
            a.breaker.min_calls
        ),
        (3, 250, 20)
    );
    assert_eq!(
        (
            a.timeouts.connect_ms,
            a.timeouts.first_byte_ms,
            a.timeouts.idle_ms,
            a.timeouts.total_ms
        ),
        (5000, 500, 60000, 2000)
    );
    let m = &p.aliases[0];
    let order: Vec<_> = m
        .targets
        .iter()
        .map(|t| (t.model.as_str(), t.priority, t.weight))
        .collect();
    assert_eq!(order, [("x", 1, 3), ("y", 1, 1), ("late", 5, 1)]);
    assert_eq!(m.balance, Balance::LeastLatency);
    assert_eq!(
        (
            m.retry.max_attempts,
            m.retry.backoff_ms,
            m.retry.deadline_ms
        ),
        (4, 10, 600_000)
    );
    assert_eq!(
        m.hedge,
        Some(Hedge {
            after_ms: 300,
            percentile_milli: 950
        })
    );
    assert_eq!(
        p.retry_budget,
        RetryBudget {
            ratio_milli: 100,
            min_per_second: 2
        }
    );
    // A plain list is a failover chain: priorities follow list order.
    let q = compile_yaml(GOOD, "p.yaml", &base_env()).unwrap().policy;
    assert_eq!(q.aliases[0].targets[0].priority, 0);
    assert_eq!(q.retry_budget.ratio_milli, 200);
}

#[test]
fn resilience_settings_are_validated() {
    for (from, to, path, needle) in [
        (
            "hedge: {after_ms: 300, percentile: 95}",
            "hedge: {}",
            "models.m.hedge",
            "after_ms",
        ),
        (
            "hedge: {after_ms: 300, percentile: 95}",
            "hedge: {percentile: 100}",
            "models.m.hedge.percentile",
            "between 0 and 100",
        ),
        (
            "max_attempts: 4",
            "max_attempts: 0",
            "models.m.retry.max_attempts",
            "1 to 20",
        ),
        (
            "max_backoff_ms: 100",
            "max_backoff_ms: 5",
            "models.m.retry.max_backoff_ms",
            "shorter",
        ),
        (
            "error_ratio: 0.25",
            "error_ratio: 1.5",
            "providers.a.breaker.error_ratio",
            "(0, 1]",
        ),
        (
            "max_concurrency: 4",
            "max_concurrency: 0",
            "providers.a.keys[0].max_concurrency",
            "at least 1",
        ),
        (
            "first_byte_ms: 500",
            "first_byte_ms: 5000",
            "providers.a.timeouts.first_byte_ms",
            "total_ms",
        ),
        (
            "weight: 3",
            "weight: 0",
            "models.m.targets[1].weight",
            "at least 1",
        ),
        (
            "ratio: 0.1",
            "ratio: -1",
            "retry_budget.ratio",
            "between 0 and 10",
        ),
    ] {
        let src = RESILIENT.replace(from, to);
        assert_ne!(src, RESILIENT, "{from}");
        let d = errors(&src, &HashMap::new());
        assert!(
            d.iter()
                .any(|x| x.path == path && x.message.contains(needle) && x.line > 0),
            "{path}: {d:?}"
        );
    }
    let one_target = "version: 1\nproviders:\n  a: {kind: openai, base_url: http://x/v1}\nmodels:\n  m:\n    hedge: {after_ms: 5}\n    targets: [{provider: a, model: x}]\n";
    let d = errors(one_target, &HashMap::new());
    assert!(d[0].message.contains("at least two targets"), "{d:?}");
}

const TENANTS: &str = r#"version: 1
providers:
  openai: {kind: openai, base_url: http://127.0.0.1:1/v1, keys: [{key: k}]}
models:
  fast: {targets: [{provider: openai, model: gpt-4o-mini}]}
  big: {targets: [{provider: openai, model: gpt-4.1}]}
  free: {targets: [{provider: openai, model: gpt-free}]}
tenancy:
  timezone: Europe/Berlin
  trusted_proxies: ["10.0.0.0/8", "fd00::/8"]
teams:
  research: {limits: {rpm: 600}, budgets: {monthly: 250.5}}
users:
  alice: {team: research, budgets: {daily: 10}}
prices:
  openai/gpt-4o-mini: {input: 0.15, output: 0.6, cached_input: 0.075}
  gpt-4.1: {input: 2, output: 8}
usage: {ledger: /tmp/x.db, flush_interval_ms: 100}
admin_keys:
  - {name: ops, key: sk-sy-admin-0123456789}
client_keys:
  - name: ci
    key: sk-sy-0123456789abcdef
    user: alice
    status: suspended
    expires_at: 2030-01-01T00:00:00+01:00
    source_ips: ["192.168.1.0/24", "::1"]
    tier: pro
    metadata: {owner: alice@example.com}
    limits: {rpm: 60, tpm: 10000, concurrency: 4, per_model: {"gpt-*": {rpm: 10}}}
    budgets: {daily: 1.25, per_model: {big: {monthly: 3}}}
    models: [fast, big]
"#;

#[test]
fn tenants_limits_budgets_and_prices_compile_exactly() {
    let c = compile_yaml(TENANTS, "t.yaml", &base_env()).unwrap();
    let p = &c.policy;
    let k = &p.client_keys[0];
    let t = &p.tenancy;
    assert_eq!(t.timezone, "Europe/Berlin");
    assert_eq!(t.users[0].name, "alice");
    assert_eq!(t.users[0].team, Some(0));
    assert_eq!(
        (k.user, k.team),
        (Some(0), Some(0)),
        "the team comes from the user"
    );
    assert!(k.suspended);
    assert_eq!(k.expires_at, Some(1_893_452_400));
    assert_eq!(k.tier, "pro");
    assert_eq!(k.limits.rpm, 60);
    assert_eq!(k.limits.per_model[0].pattern, "gpt-*");
    assert_eq!(k.budgets.daily, Some(1_250_000_000));
    assert_eq!(t.teams[0].budgets.monthly, Some(250_500_000_000));
    let price = t
        .prices
        .iter()
        .find(|p| p.model == "openai/gpt-4o-mini")
        .unwrap();
    assert_eq!(
        (price.input, price.output, price.cached_input),
        (150_000, 600_000, 75_000)
    );
    assert_eq!(price.cache_write, 150_000, "defaults to the input price");
    assert_eq!(price.reasoning, 600_000, "defaults to the output price");
    assert_eq!(t.ledger.path, "/tmp/x.db");
    assert_eq!(t.admin_keys.len(), 1);
    // `free` has no price, but no budgeted key can reach it.
    assert!(c.warnings.iter().all(|w| !w.message.contains("gpt-free")));
    let bytes = snapshot::encode(p, 1).unwrap();
    let snap = Snapshot::from_bytes(&bytes).unwrap();
    let a = snap.policy();
    assert!(a.tenancy.price("openai", "gpt-4o-mini").is_some());
    assert!(a.tenancy.price("other", "gpt-4o-mini").is_none());
    assert!(a
        .tenancy
        .admin_key(&keys::sha256("sk-sy-admin-0123456789"))
        .is_some());
    assert!(a.tenancy.trusts_proxy("10.2.3.4".parse().unwrap()));
    assert!(a.tenancy.trusts_proxy("fd00::1".parse().unwrap()));
    assert!(!a.tenancy.trusts_proxy("11.0.0.1".parse().unwrap()));
}

#[test]
fn tenancy_mistakes_are_located() {
    let bad = TENANTS
        .replace("Europe/Berlin", "Mars/Olympus")
        .replace("user: alice", "user: alic")
        .replace("\"192.168.1.0/24\"", "\"192.168.1.1/24\"")
        .replace("2030-01-01T00:00:00+01:00", "next year")
        .replace("rpm: 60,", "rpm: 0,")
        .replace("input: 0.15,", "input: 0.0000001,");
    let d = errors(&bad, &base_env());
    let has = |path: &str, needle: &str| {
        d.iter()
            .any(|x| x.path == path && x.message.contains(needle) && x.line > 0)
    };
    assert!(has("tenancy.timezone", "Mars/Olympus"), "{d:?}");
    assert!(has("client_keys[0].user", "unknown user \"alic\""), "{d:?}");
    assert!(
        has("client_keys[0].source_ips[0]", "192.168.1.0/24"),
        "{d:?}"
    );
    assert!(has("client_keys[0].expires_at", "RFC 3339"), "{d:?}");
    assert!(has("client_keys[0].limits.rpm", "at least 1"), "{d:?}");
    assert!(
        has("prices.openai/gpt-4o-mini.input", "6 decimal places"),
        "{d:?}"
    );
}

#[test]
fn listener_bounds_default_sanely_and_bad_ones_are_errors() {
    let c = compile_yaml(GOOD, "p.yaml", &base_env()).unwrap();
    let l = &c.policy.listener.limits;
    assert_eq!(l.header_timeout_ms, 10_000);
    assert!(l.max_connections > 0 && l.max_connections_per_ip <= l.max_connections);
    assert!(c.policy.listener.admin_address.is_empty());
    let bad = GOOD.replace(
        "  address: 127.0.0.1:9000\n",
        "  address: 127.0.0.1:9000\n  admin_address: 127.0.0.1:9000\n  header_timeout_ms: 0\n  write_timeout_ms: 99999999\n  max_connections: 0\n  max_buffered_bytes: 10\n  forward_headers: [Authorization, 'x bad', x-goog-api-key]\n  tls: {cert_file: '', key_file: k.pem}\n",
    );
    let paths: Vec<String> = errors(&bad, &base_env())
        .into_iter()
        .map(|d| d.path)
        .collect();
    for p in [
        "listener.admin_address",
        "listener.header_timeout_ms",
        "listener.write_timeout_ms",
        "listener.max_connections",
        "listener.max_buffered_bytes",
        "listener.forward_headers[0]",
        "listener.forward_headers[1]",
        "listener.forward_headers[2]",
        "listener.tls.cert_file",
    ] {
        assert!(paths.iter().any(|x| x == p), "{p} not in {paths:?}");
    }
}

#[test]
fn forwarded_header_patterns_are_lower_case_and_wide_ones_warn() {
    let src = GOOD.replace(
        "  address: 127.0.0.1:9000\n",
        "  address: 127.0.0.1:9000\n  forward_headers: [X-Mock-*, x-*]\n",
    );
    let c = compile_yaml(&src, "p.yaml", &base_env()).unwrap();
    assert_eq!(c.policy.listener.forward_headers, ["x-mock-*", "x-*"]);
    assert!(c
        .warnings
        .iter()
        .any(|w| w.path == "listener.forward_headers[1]"));
    assert!(!c
        .warnings
        .iter()
        .any(|w| w.path == "listener.forward_headers[0]"));
}

#[test]
fn plain_http_to_a_remote_host_and_a_public_listener_without_admin_address_warn() {
    let mut e = base_env();
    e.insert("OPENAI_BASE_URL".into(), "http://10.1.2.3:4010/v1".into());
    let src = GOOD.replace("127.0.0.1:9000", "0.0.0.0:9000");
    let c = compile_yaml(&src, "p.yaml", &e).unwrap();
    let warned = |p: &str| c.warnings.iter().any(|w| w.path == p);
    assert!(warned("providers.openai.base_url"));
    assert!(warned("listener.address"));
    e.insert("OPENAI_BASE_URL".into(), "http://localhost:4010/v1".into());
    let c = compile_yaml(GOOD, "p.yaml", &e).unwrap();
    assert!(!c
        .warnings
        .iter()
        .any(|w| w.path == "providers.openai.base_url" || w.path == "listener.address"));
}

#[test]
fn an_unpriced_target_a_budgeted_key_can_reach_is_an_error() {
    // Through the alias's own name, and through a router that picks it.
    for (models, path) in [("[free]", "models.free"), ("[auto]", "models.free")] {
        let src = TENANTS.replace("    models: [fast, big]\n", &format!("    models: {models}\n"))
            + "routers:\n  auto:\n    rules: [{when: {input_tokens: '> 100'}, to: free}]\n    default: fast\n";
        let d = errors(&src, &base_env());
        assert!(
            d.iter()
                .any(|x| x.path == path && x.message.contains("openai/gpt-free")),
            "{models}: {d:?}"
        );
    }
}

#[test]
fn a_cluster_section_is_checked_and_its_password_never_echoed() {
    let mut env = base_env();
    env.insert(
        "REDIS_URL".into(),
        "redis://:hunter2@10.0.0.7:6379/1".into(),
    );
    let src = format!("{GOOD}cluster:\n  redis: {{url: '${{REDIS_URL}}'}}\n  limits: pooled\n");
    let c = compile_yaml(&src, "p.yaml", &env).unwrap();
    let cl = c.policy.cluster.as_ref().unwrap();
    assert_eq!(cl.mode, SharedLimits::Pooled);
    assert_eq!(
        (cl.timeout_ms, cl.lease_ttl_ms, cl.heartbeat_ms),
        (10, 10_000, 1_000)
    );
    assert_eq!(cl.on_redis_down, RedisDown::Share);
    // Plain redis:// to another host is a warning (secrets in clear).
    let w = c
        .warnings
        .iter()
        .find(|w| w.path == "cluster.redis.url")
        .unwrap();
    assert!(!w.message.contains("hunter2"));
    assert!(compile_yaml(GOOD, "p.yaml", &base_env())
        .unwrap()
        .policy
        .cluster
        .is_none());

    let bad = format!(
        "{GOOD}cluster:\n  redis: {{url: 'http://:hunter2@x', timeout_ms: 0}}\n  limits: sometimes\n  lease_ttl_ms: 1000\n  heartbeat_ms: 1000\n  on_redis_down: panic\n  node_id: 'has space'\n"
    );
    let found = errors(&bad, &base_env());
    for p in [
        "cluster.redis.url",
        "cluster.redis.timeout_ms",
        "cluster.limits",
        "cluster.lease_ttl_ms",
        "cluster.on_redis_down",
        "cluster.node_id",
    ] {
        assert!(found.iter().any(|d| d.path == p), "{p} not in {found:?}");
    }
    assert!(found.iter().all(|d| !d.message.contains("hunter2")));
}

#[test]
fn shipping_to_postgres_needs_a_url_and_a_local_spool() {
    let src = format!("{GOOD}usage: {{ledger: '', postgres: 'mysql://x'}}\n");
    let found = errors(&src, &base_env());
    let msgs: Vec<_> = found
        .iter()
        .filter(|d| d.path == "usage.postgres")
        .map(|d| d.message.as_str())
        .collect();
    assert_eq!(msgs.len(), 2, "{msgs:?}");
    let ok = format!("{GOOD}usage: {{postgres: 'postgres://u@db:5432/usage'}}\n");
    let c = compile_yaml(&ok, "p.yaml", &base_env()).unwrap();
    assert_eq!(
        c.policy.tenancy.ledger.postgres,
        "postgres://u@db:5432/usage"
    );
}
