//! The caller's scopes (key, user, team) as the limit and budget phases
//! take them, and the worst-case cost a budget reserves for a plan.

use crate::auth::Caller;
use crate::budgets::Budgeted;
use crate::error::GatewayError;
use crate::failover::Plan;
use crate::limits::Limited;
use crate::meter::cost;
use crate::state::ActivePolicy;
use crate::tenants::{Scope, ScopeKind};
use policy::{ArchivedBudgets, ArchivedCompiledPolicy, ArchivedLimits};

pub struct Scopes<'a> {
    list: Vec<(
        ScopeKind,
        &'a str,
        &'a ArchivedLimits,
        &'a ArchivedBudgets,
        &'a Scope,
    )>,
}

pub fn scopes<'a>(active: &'a ActivePolicy, caller: &Caller<'a>) -> Scopes<'a> {
    let policy = active.snapshot.policy();
    let t = &policy.tenancy;
    let mut list = Vec::with_capacity(3);
    if let Some(rt) = active.callers.get(caller.index) {
        let k = caller.key;
        list.push((
            ScopeKind::Key,
            k.name.as_str(),
            &k.limits,
            &k.budgets,
            &*rt.key,
        ));
        let user = k.user.as_ref().and_then(|u| t.user(u.to_native()));
        if let (Some(u), Some(s)) = (user, rt.user.as_deref()) {
            list.push((ScopeKind::User, u.name.as_str(), &u.limits, &u.budgets, s));
        }
        let team = k.team.as_ref().and_then(|u| t.team(u.to_native()));
        if let (Some(u), Some(s)) = (team, rt.team.as_deref()) {
            list.push((ScopeKind::Team, u.name.as_str(), &u.limits, &u.budgets, s));
        }
    }
    Scopes { list }
}

impl<'a> Scopes<'a> {
    /// The scopes that have limits (usually none: then nothing is touched).
    pub fn limited(&self) -> Vec<Limited<'a>> {
        self.list
            .iter()
            .filter(|s| !s.2.is_empty())
            .map(|&(kind, name, limits, _, scope)| Limited {
                kind,
                name,
                limits,
                scope,
            })
            .collect()
    }

    pub fn budgeted(&self) -> Vec<Budgeted<'a>> {
        self.list
            .iter()
            .filter(|s| !s.3.is_empty())
            .map(|&(kind, name, _, budgets, scope)| Budgeted {
                kind,
                name,
                budgets,
                scope,
            })
            .collect()
    }
}

/// The most any target of the plan could charge for this request. A
/// budget cannot bound what has no price: a target without one refuses
/// the request (`policyc` already refuses such aliases; this catches
/// direct `<provider>/<model>` calls).
pub fn reservation(
    policy: &ArchivedCompiledPolicy,
    plan: &Plan<'_>,
    body_bytes: u64,
    max_tokens: Option<u64>,
) -> Result<u64, GatewayError> {
    let mut worst = 0;
    for (provider, model) in plan.targets() {
        let price = policy
            .tenancy
            .price(provider, model)
            .ok_or_else(|| GatewayError::Unpriced(format!("{provider}/{model}")))?;
        worst = worst.max(cost::reservation_nanos(price, body_bytes, max_tokens));
    }
    Ok(worst)
}
