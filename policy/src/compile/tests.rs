use super::*;
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
