//! Start-up: budgets and rate limits resume from the ledger, so a restart
//! does not reset a day's spend or a minute's requests.
//!
//! Spend is summed exactly from the current day and month. The last
//! minute's requests and tokens are charged to the rate limits as if they
//! had just happened: stricter than the truth for up to a minute, never
//! looser.

use super::sqlite::{spend_since, SpendRow};
use super::LedgerError;
use crate::limits::token_bucket::mono_ns;
use crate::state::ActivePolicy;
use crate::tenants::{Counters, ScopeKind};
use policy::{pattern_matches, ArchivedLimits};
use rusqlite::Connection;

#[derive(Debug, Default, PartialEq, Eq)]
pub struct Restored {
    pub month_requests: u64,
    pub month_cost_nanos: u64,
    pub minute_requests: u64,
}

pub fn restore(
    active: &ActivePolicy,
    conn: &Connection,
    now_ms: i64,
) -> Result<Restored, LedgerError> {
    let periods = active.periods.at(now_ms);
    let mut out = Restored::default();
    let month = spend_since(conn, periods.month_start_ms.min(periods.day_start_ms))?;
    for r in &month {
        out.month_requests = out.month_requests.saturating_add(r.requests);
        out.month_cost_nanos = out.month_cost_nanos.saturating_add(r.cost_nanos);
        for_scopes(active, r, |counters, _| {
            counters.monthly.seed(periods.month_tag(), r.cost_nanos);
        });
    }
    for r in &spend_since(conn, periods.day_start_ms)? {
        for_scopes(active, r, |counters, _| {
            counters.daily.seed(periods.day_tag(), r.cost_nanos);
        });
    }
    let now = mono_ns();
    for r in &spend_since(conn, now_ms - 60_000)? {
        out.minute_requests = out.minute_requests.saturating_add(r.requests);
        for_scopes(active, r, |counters, rates| {
            if let Some((rpm, tpm)) = rates {
                if rpm > 0 {
                    counters.requests.charge(now, r.requests, rpm);
                }
                if tpm > 0 {
                    counters.tokens.charge(now, r.tokens, tpm);
                }
            }
        });
    }
    Ok(out)
}

/// Call `f` for every counter a ledger row feeds: its key, user and team,
/// and their per-model entries whose pattern matches the row's model,
/// with the rate limits (rpm, tpm) that apply to that counter.
fn for_scopes(
    active: &ActivePolicy,
    row: &SpendRow,
    mut f: impl FnMut(&Counters, Option<(u64, u64)>),
) {
    let policy = active.snapshot.policy();
    let t = &policy.tenancy;
    let key = policy
        .client_keys
        .iter()
        .find(|k| k.name.as_str() == row.key)
        .map(|k| (&k.limits, &k.budgets));
    let user = principal(&t.users, &row.user);
    let team = principal(&t.teams, &row.team);
    for (kind, name, cfg) in [
        (ScopeKind::Key, row.key.as_str(), key),
        (ScopeKind::User, row.user.as_str(), user),
        (ScopeKind::Team, row.team.as_str(), team),
    ] {
        if name.is_empty() {
            continue;
        }
        let scope = active.tenants.scope(kind, name);
        let rates = |l: &ArchivedLimits| (l.rpm.to_native(), l.tpm.to_native());
        f(&scope.counters, cfg.map(|c| rates(c.0)));
        let Some((limits, budgets)) = cfg else {
            continue;
        };
        let mut patterns: Vec<&str> = limits
            .per_model
            .iter()
            .map(|m| m.pattern.as_str())
            .chain(budgets.per_model.iter().map(|m| m.pattern.as_str()))
            .filter(|p| pattern_matches(p, &row.alias))
            .collect();
        patterns.sort_unstable();
        patterns.dedup();
        for p in patterns {
            let r = limits
                .per_model
                .iter()
                .find(|m| m.pattern.as_str() == p)
                .map(|m| (m.rpm.to_native(), m.tpm.to_native()));
            f(&scope.model(p), r);
        }
    }
}

fn principal<'p>(
    list: &'p [policy::ArchivedPrincipal],
    name: &str,
) -> Option<(&'p ArchivedLimits, &'p policy::ArchivedBudgets)> {
    list.iter()
        .find(|u| u.name.as_str() == name)
        .map(|u| (&u.limits, &u.budgets))
}
