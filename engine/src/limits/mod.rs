//! Phase 2: rate limits per key, user, team and (scope, model pattern):
//! requests per minute, tokens per minute and requests in flight. Every
//! entry is checked; if one refuses, what the others granted is given
//! back, so a refused request costs nothing.
//!
//! Tokens are taken up front from an estimate (prompt bytes / 4 plus
//! `max_tokens`) and corrected once the provider's usage is known.

pub mod token_bucket;

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

struct Entry<'a> {
    kind: ScopeKind,
    name: &'a str,
    pattern: Option<&'a str>,
    rpm: u64,
    tpm: u64,
    concurrency: u32,
    counters: Arc<Counters>,
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
}

impl LimitPermit {
    /// Replace the token estimate by the tokens actually used.
    pub fn settle(&mut self, actual: u64, now: u64) {
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
/// refused it.
pub fn admit(
    scopes: &[Limited<'_>],
    model: &str,
    tokens: u64,
    now: u64,
) -> Result<LimitPermit, GatewayError> {
    let mut permit = LimitPermit {
        held: Vec::new(),
        tokens,
    };
    for e in entries(scopes, model) {
        // Pushed first, so that a refusal below gives back what this
        // entry already took along with the entries before it.
        permit.held.push(Held {
            counters: e.counters.clone(),
            rpm: 0,
            tpm: 0,
            concurrency: false,
        });
        let refused = |kind: LimitKind, limit: u64, retry_after| {
            GatewayError::RateLimited(Box::new(LimitHit {
                scope: e.kind.as_str(),
                name: e.name.to_string(),
                model: e.pattern.map(str::to_string),
                kind,
                limit,
                requested: tokens,
                retry_after,
            }))
        };
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
