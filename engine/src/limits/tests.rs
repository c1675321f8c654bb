use super::*;
use crate::tenants::{ScopeKind, TenantRegistry};
use policy::{compile_yaml, snapshot, Snapshot};
use std::collections::HashMap;

fn snap() -> Snapshot {
    let yaml = "version: 1\nproviders:\n  p: {kind: openai, base_url: http://127.0.0.1:1/v1, keys: [{key: k}]}\n\
        teams:\n  t: {limits: {rpm: 3}}\n\
        users:\n  u: {team: t, limits: {tpm: 1000}}\n\
        client_keys:\n\
        - {name: k, key: sk-sy-k-0000000000000000, user: u, limits: {concurrency: 2, per_model: {'gpt-*': {rpm: 1}}}}\n";
    let c = compile_yaml(yaml, "t.yaml", &HashMap::new()).unwrap();
    Snapshot::from_bytes(&snapshot::encode(&c.policy, 1).unwrap()).unwrap()
}

fn scopes<'a>(
    s: &'a Snapshot,
    reg: &'a [std::sync::Arc<crate::tenants::Scope>; 3],
) -> Vec<Limited<'a>> {
    let p = s.policy();
    vec![
        Limited {
            kind: ScopeKind::Key,
            name: "k",
            limits: &p.client_keys[0].limits,
            scope: &reg[0],
        },
        Limited {
            kind: ScopeKind::User,
            name: "u",
            limits: &p.tenancy.users[0].limits,
            scope: &reg[1],
        },
        Limited {
            kind: ScopeKind::Team,
            name: "t",
            limits: &p.tenancy.teams[0].limits,
            scope: &reg[2],
        },
    ]
}

fn hit(e: GatewayError) -> LimitHit {
    match e {
        GatewayError::RateLimited(h) => *h,
        other => panic!("expected a limit, got {other:?}"),
    }
}

#[test]
fn each_scope_refuses_with_its_name_and_refusals_cost_nothing() {
    let s = snap();
    let r = TenantRegistry::default();
    let reg = [
        r.scope(ScopeKind::Key, "k"),
        r.scope(ScopeKind::User, "u"),
        r.scope(ScopeKind::Team, "t"),
    ];
    let sc = scopes(&s, &reg);
    let now = token_bucket::mono_ns();
    // Concurrency 2 on the key.
    let a = admit_here(entries(&sc, "m"), 10, now, 1).unwrap();
    let b = admit_here(entries(&sc, "m"), 10, now, 1).unwrap();
    let h = hit(admit_here(entries(&sc, "m"), 10, now, 1).err().unwrap());
    assert_eq!((h.scope, h.kind), ("key", LimitKind::Concurrency));
    drop(a);
    // Team: 3 requests a minute; two taken, the refused one gave its back.
    let c = admit_here(entries(&sc, "m"), 10, now, 1).unwrap();
    drop((b, c));
    let h = hit(admit_here(entries(&sc, "m"), 10, now, 1).err().unwrap());
    assert_eq!(
        (h.scope, h.name.as_str(), h.kind),
        ("team", "t", LimitKind::Requests)
    );
    assert!(h.retry_after.unwrap().as_secs_f64() > 19.0);
    // The user's tokens were given back for every refusal: 30 of 1000 used.
    assert_eq!(reg[1].counters.tokens.level(now, 1000).remaining, 970);
    assert_eq!(reg[0].counters.in_flight.load(Ordering::Acquire), 0);
}

#[test]
fn tokens_settle_to_actual_usage_and_per_model_limits_apply_by_pattern() {
    let s = snap();
    let r = TenantRegistry::default();
    let reg = [
        r.scope(ScopeKind::Key, "k"),
        r.scope(ScopeKind::User, "u"),
        r.scope(ScopeKind::Team, "t2"),
    ];
    let sc = scopes(&s, &reg);
    let now = token_bucket::mono_ns();
    let mut p = admit_here(entries(&sc, "gpt-4o"), 600, now, 1).unwrap();
    let h = hit(admit_here(entries(&sc, "gpt-4.1"), 1, now, 1)
        .err()
        .unwrap());
    assert_eq!(h.model.as_deref(), Some("gpt-*"));
    assert_eq!(h.label(), "key:k:gpt-*:requests");
    p.settle(100, now);
    assert_eq!(reg[1].counters.tokens.level(now, 1000).remaining, 900);
    let h = hit(admit_here(entries(&sc, "other"), 901, now, 1)
        .err()
        .unwrap());
    assert_eq!((h.scope, h.kind), ("user", LimitKind::Tokens));
    let h = hit(admit_here(entries(&sc, "other"), 1001, now, 1)
        .err()
        .unwrap());
    assert!(
        h.retry_after.is_none(),
        "larger than the bucket: never fits"
    );
    p.settle(1000, now);
    assert_eq!(reg[1].counters.tokens.level(now, 1000).remaining, 0);
}
