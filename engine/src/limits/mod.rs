//! Phase 2: rate limits per key, user, team and (scope, model pattern):
//! requests per minute, tokens per minute and requests in flight. Every
//! entry is checked; if one refuses, what the others granted is given
//! back, so a refused request costs nothing.
//!
//! Tokens are taken up front from an estimate (prompt bytes / 4 plus
//! `max_tokens`) and corrected once the provider's usage is known.
//!
//! In cluster mode the same entries are decided in Redis
//! ([`crate::cluster::limits`]); while Redis is unavailable they are
//! decided here, each limit divided by the live replicas.

pub mod token_bucket;

use crate::cluster::limits::{Admission, SharedPermit};
use crate::cluster::{Cluster, ClusterState};
use crate::error::{GatewayError, LimitHit, LimitKind};
use crate::tenants::{Counters, Scope, ScopeKind};
use policy::{pattern_matches, ArchivedLimits};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;
use token_bucket::Refusal;

/// One scope's limits, as the request path sees them.
pub struct Limited<'a> {
    pub kind: ScopeKind,
    pub name: &'a str,
    pub limits: &'a ArchivedLimits,
    pub scope: &'a Scope,
}

/// One limit that applies to a request: a scope's own, or one of its
/// per-model entries.
pub(crate) struct Entry<'a> {
    pub kind: ScopeKind,
    pub name: &'a str,
    pub pattern: Option<&'a str>,
    pub rpm: u64,
    pub tpm: u64,
    pub concurrency: u32,
    counters: Arc<Counters>,
}

impl Entry<'_> {
    fn refused(
        &self,
        kind: LimitKind,
        limit: u64,
        requested: u64,
        retry_after: Option<Duration>,
    ) -> GatewayError {
        GatewayError::RateLimited(Box::new(LimitHit {
            scope: self.kind.as_str(),
            name: self.name.to_string(),
            model: self.pattern.map(str::to_string),
            kind,
            limit,
            requested,
            retry_after,
        }))
    }
}

struct Held {
    counters: Arc<Counters>,
    /// Rates of the buckets this request took from (0: none).
    rpm: u64,
    tpm: u64,
    concurrency: bool,
}

/// What an admitted request holds: its in-flight slots and its token
/// estimate, settled with [`LimitPermit::settle`] and released on drop.
pub struct LimitPermit {
    held: Vec<Held>,
    tokens: u64,
    /// Admitted in Redis: settled there, its leases released there.
    shared: Option<SharedPermit>,
}

impl LimitPermit {
    /// Replace the token estimate by the tokens actually used.
    pub fn settle(&mut self, actual: u64, now: u64) {
        if let Some(shared) = &mut self.shared {
            shared.settle(actual);
        }
        for h in self.held.iter().filter(|h| h.tpm > 0) {
            if actual > self.tokens {
                h.counters.tokens.charge(now, actual - self.tokens, h.tpm);
            } else {
                h.counters.tokens.refund(self.tokens - actual, h.tpm);
            }
        }
        self.tokens = actual;
    }
}

impl Drop for LimitPermit {
    fn drop(&mut self) {
        for h in self.held.iter().filter(|h| h.concurrency) {
            h.counters.in_flight.fetch_sub(1, Ordering::AcqRel);
        }
    }
}

fn entries<'a>(scopes: &[Limited<'a>], model: &str) -> Vec<Entry<'a>> {
    let mut out = Vec::new();
    for s in scopes {
        let l = s.limits;
        if l.rpm > 0 || l.tpm > 0 || l.concurrency > 0 {
            out.push(Entry {
                kind: s.kind,
                name: s.name,
                pattern: None,
                rpm: l.rpm.to_native(),
                tpm: l.tpm.to_native(),
                concurrency: l.concurrency.to_native(),
                counters: s.scope.counters.clone(),
            });
        }
        for m in l.per_model.iter() {
            if pattern_matches(m.pattern.as_str(), model) {
                out.push(Entry {
                    kind: s.kind,
                    name: s.name,
                    pattern: Some(m.pattern.as_str()),
                    rpm: m.rpm.to_native(),
                    tpm: m.tpm.to_native(),
                    concurrency: m.concurrency.to_native(),
                    counters: s.scope.model(m.pattern.as_str()),
                });
            }
        }
    }
    out
}

/// Admit a request for `model` estimated at `tokens`, or say which limit
/// refused it: here, or in Redis when the replica is part of a cluster.
pub async fn admit(
    cluster: Option<&Arc<Cluster>>,
    scopes: &[Limited<'_>],
    model: &str,
    tokens: u64,
    now: u64,
) -> Result<LimitPermit, GatewayError> {
    let entries = entries(scopes, model);
    let Some(cluster) = cluster.filter(|_| !entries.is_empty()) else {
        return admit_here(entries, tokens, now, 1);
    };
    if cluster.state() == ClusterState::Shared {
        // Concurrency caps are leases, decided per request in either mode.
        let decided = if cluster.config.exact || entries.iter().any(|e| e.concurrency > 0) {
            crate::cluster::limits::admit(cluster, &entries, tokens).await
        } else {
            crate::cluster::pooled::admit(cluster, &entries, tokens).await
        };
        match decided {
            Ok(Admission::Admitted(shared)) => {
                return Ok(LimitPermit {
                    held: Vec::new(),
                    tokens,
                    shared: Some(shared),
                })
            }
            Ok(Admission::Refused { entry, kind, wait }) => {
                let e = &entries[entry];
                let limit = match kind {
                    LimitKind::Concurrency => e.concurrency.into(),
                    LimitKind::Requests => e.rpm,
                    LimitKind::Tokens => e.tpm,
                };
                return Err(e.refused(kind, limit, tokens, wait));
            }
            // Redis did not answer in time: the request is decided here.
            Err(()) => {}
        }
    }
    if cluster.config.refuse_when_down {
        return Err(GatewayError::ClusterUnavailable);
    }
    cluster
        .stats
        .local_admissions
        .fetch_add(1, Ordering::Relaxed);
    admit_here(entries, tokens, now, cluster.live_replicas())
}

/// Admit against this replica's own counters, each limit divided by
/// `share` (1 on a single node; the live replicas of a cluster whose Redis
/// is unavailable, so that together they stay within the limit).
fn admit_here(
    entries: Vec<Entry<'_>>,
    tokens: u64,
    now: u64,
    share: u32,
) -> Result<LimitPermit, GatewayError> {
    let mut permit = LimitPermit {
        held: Vec::new(),
        tokens,
        shared: None,
    };
    for mut e in entries {
        if share > 1 {
            e.rpm = (e.rpm / u64::from(share)).max(1).min(e.rpm);
            e.tpm = (e.tpm / u64::from(share)).max(1).min(e.tpm);
            e.concurrency = (e.concurrency / share).max(1).min(e.concurrency);
        }
        // Pushed first, so that a refusal below gives back what this
        // entry already took along with the entries before it.
        permit.held.push(Held {
            counters: e.counters.clone(),
            rpm: 0,
            tpm: 0,
            concurrency: false,
        });
        let refused = |kind, limit, retry_after| e.refused(kind, limit, tokens, retry_after);
        let wait = |r: Refusal| match r {
            Refusal::Wait(d) => Some(d),
            Refusal::TooLarge => None,
        };
        if e.concurrency > 0 {
            let took = e
                .counters
                .in_flight
                .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                    (n < e.concurrency).then_some(n + 1)
                })
                .is_ok();
            if !took {
                let err = refused(
                    LimitKind::Concurrency,
                    e.concurrency.into(),
                    Some(Duration::from_secs(1)),
                );
                return Err(rollback(permit, err));
            }
            if let Some(h) = permit.held.last_mut() {
                h.concurrency = true;
            }
        }
        if e.rpm > 0 {
            match e.counters.requests.try_take(now, 1, e.rpm) {
                Ok(_) => {
                    if let Some(h) = permit.held.last_mut() {
                        h.rpm = e.rpm;
                    }
                }
                Err(r) => {
                    let err = refused(LimitKind::Requests, e.rpm, wait(r));
                    return Err(rollback(permit, err));
                }
            }
        }
        if e.tpm > 0 {
            if let Err(r) = e.counters.tokens.try_take(now, tokens, e.tpm) {
                let err = refused(LimitKind::Tokens, e.tpm, wait(r));
                return Err(rollback(permit, err));
            }
            if let Some(h) = permit.held.last_mut() {
                h.tpm = e.tpm;
            }
        }
    }
    Ok(permit)
}

/// Give back what a refused request took; dropping the permit frees its
/// in-flight slots.
fn rollback(permit: LimitPermit, e: GatewayError) -> GatewayError {
    for h in &permit.held {
        if h.rpm > 0 {
            h.counters.requests.refund(1, h.rpm);
        }
        if h.tpm > 0 {
            h.counters.tokens.refund(permit.tokens, h.tpm);
        }
    }
    e
}

#[cfg(test)]
mod tests;
