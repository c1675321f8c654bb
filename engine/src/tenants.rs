//! Live counters of callers: one [`Scope`] per key, user and team, kept by
//! name across policy reloads (a reload must not reset a minute's requests
//! or a day's spend). Everything inside is atomics.

use crate::budgets::spend::SpendCounter;
use crate::limits::token_bucket::TokenBucket;
use dashmap::DashMap;
use std::sync::atomic::AtomicU32;
use std::sync::Arc;

/// The counters one limit or budget entry needs.
#[derive(Debug, Default)]
pub struct Counters {
    pub requests: TokenBucket,
    pub tokens: TokenBucket,
    pub in_flight: AtomicU32,
    pub daily: SpendCounter,
    pub monthly: SpendCounter,
}

/// A key, user or team: its own counters and those of its per-model
/// entries (by pattern, so their number is bounded by the policy).
#[derive(Debug, Default)]
pub struct Scope {
    pub counters: Arc<Counters>,
    per_model: DashMap<String, Arc<Counters>>,
}

impl Scope {
    pub fn model(&self, pattern: &str) -> Arc<Counters> {
        if let Some(c) = self.per_model.get(pattern) {
            return c.clone();
        }
        self.per_model
            .entry(pattern.to_string())
            .or_default()
            .clone()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ScopeKind {
    Key,
    User,
    Team,
}

impl ScopeKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ScopeKind::Key => "key",
            ScopeKind::User => "user",
            ScopeKind::Team => "team",
        }
    }
}

#[derive(Default)]
pub struct TenantRegistry {
    scopes: DashMap<(ScopeKind, String), Arc<Scope>>,
}

impl TenantRegistry {
    pub fn scope(&self, kind: ScopeKind, name: &str) -> Arc<Scope> {
        if let Some(s) = self.scopes.get(&(kind, name.to_string())) {
            return s.clone();
        }
        self.scopes
            .entry((kind, name.to_string()))
            .or_default()
            .clone()
    }
}

/// The scopes of one client key, resolved when a policy is built.
pub struct CallerScopes {
    pub key: Arc<Scope>,
    pub user: Option<Arc<Scope>>,
    pub team: Option<Arc<Scope>>,
}

impl CallerScopes {
    pub fn build(
        registry: &TenantRegistry,
        tenancy: &policy::ArchivedTenancy,
        key: &policy::ArchivedClientKey,
    ) -> CallerScopes {
        let named = |kind, p: Option<&policy::ArchivedPrincipal>| {
            p.map(|p| registry.scope(kind, p.name.as_str()))
        };
        CallerScopes {
            key: registry.scope(ScopeKind::Key, key.name.as_str()),
            user: named(
                ScopeKind::User,
                key.user.as_ref().and_then(|u| tenancy.user(u.to_native())),
            ),
            team: named(
                ScopeKind::Team,
                key.team.as_ref().and_then(|t| tenancy.team(t.to_native())),
            ),
        }
    }
}
