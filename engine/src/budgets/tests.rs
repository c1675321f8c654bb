use super::*;
use crate::tenants::{ScopeKind, TenantRegistry};
use policy::{compile_yaml, snapshot, Snapshot};
use std::collections::HashMap;

fn snap() -> Snapshot {
    let yaml = "version: 1\nproviders:\n  p: {kind: openai, base_url: http://127.0.0.1:1/v1, keys: [{key: k}]}\n\
        teams:\n  t: {budgets: {monthly: 1.0}}\n\
        client_keys:\n\
        - {name: k, key: sk-sy-k-0000000000000000, team: t, budgets: {daily: 0.5, per_model: {'big*': {daily: 0.1}}}}\n";
    let c = compile_yaml(yaml, "t.yaml", &HashMap::new()).unwrap();
    Snapshot::from_bytes(&snapshot::encode(&c.policy, 1).unwrap()).unwrap()
}

const CENT: u64 = 10_000_000;

#[test]
fn reservations_hold_every_cap_and_settle_to_the_actual_cost() {
    let s = snap();
    let p = s.policy();
    let r = TenantRegistry::default();
    let (k, t) = (r.scope(ScopeKind::Key, "k"), r.scope(ScopeKind::Team, "t"));
    let scopes = [
        Budgeted {
            kind: ScopeKind::Key,
            name: "k",
            budgets: &p.client_keys[0].budgets,
            scope: &k,
        },
        Budgeted {
            kind: ScopeKind::Team,
            name: "t",
            budgets: &p.tenancy.teams[0].budgets,
            scope: &t,
        },
    ];
    let periods = period::PeriodClock::new("UTC").at(jiff::Timestamp::now().as_millisecond());
    let mut a = reserve_here(&caps(&scopes, "small", &periods), 30 * CENT).unwrap();
    // 30 + 30 > 50: the key's daily cap refuses, and the team keeps only the first.
    let e = reserve_here(&caps(&scopes, "small", &periods), 30 * CENT)
        .err()
        .unwrap();
    match &e {
        GatewayError::BudgetExceeded(hit) => {
            assert_eq!((hit.scope, hit.period), ("key", "daily"));
            assert_eq!(hit.committed, 30 * CENT);
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(e.status().as_u16(), 429);
    assert_eq!(t.counters.monthly.committed(periods.month_tag()), 30 * CENT);
    a.settle(5 * CENT);
    assert_eq!(k.counters.daily.committed(periods.day_tag()), 5 * CENT);
    assert_eq!(t.counters.monthly.committed(periods.month_tag()), 5 * CENT);
    // Per-model cap by pattern.
    let e = reserve_here(&caps(&scopes, "big-model", &periods), 11 * CENT)
        .err()
        .unwrap();
    assert!(e.to_string().contains("on models `big*`"), "{e}");
    // A dropped, unsettled hold gives everything back.
    drop(reserve_here(&caps(&scopes, "small", &periods), 40 * CENT).unwrap());
    assert_eq!(k.counters.daily.committed(periods.day_tag()), 5 * CENT);
}
