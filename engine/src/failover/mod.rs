//! Phase 6–7 with failover: try targets in the alias's order, keys in the
//! provider's pool order, until one answers.
//!
//! - A rate-limited key (429) cools down and the next key of the same
//!   target is tried; a key the provider calls invalid (401, or its
//!   documented invalid-key error) leaves rotation, and the client gets
//!   the gateway's own error, never the provider's body about its key.
//! - A provider failure (5xx, 529, connect error, timeout, a stream that
//!   breaks before its first byte) counts against the key's and target's
//!   breakers and moves on to the next target (or, on the last target, the
//!   next key).
//! - Anything else the provider says (400, 404, `insufficient_quota`…) goes
//!   back to the client at once.
//! - Every attempt after the first needs the gateway-wide retry budget;
//!   attempts on the same target are spaced with full-jitter backoff; the
//!   alias bounds attempts and total time.
//! - Hedging (opt-in): if the first attempt has no first byte after the
//!   hedge delay, the next target is tried too; the first to answer wins
//!   and the other is cancelled (its connection closed).
//!
//! Nothing here writes to the client: once an attempt is [`Committed`] the
//! caller relays it, and a failure after that is never retried.

pub mod attempt;

use crate::error::GatewayError;
use crate::metrics::Metrics;
use crate::resilience::breaker::Admission;
use crate::resilience::budget::BudgetConfig;
use crate::resilience::health::TargetHealth;
use crate::resilience::keypool::NoKey;
use crate::resilience::outcome::{self, Blame, Verdict};
use crate::resilience::{backoff, cooldown, now_ms};
use crate::routing::Route;
use crate::state::ActivePolicy;
use crate::{translate, upstream};
pub use attempt::Committed;
use attempt::{AttemptEnd, Buffered, Prepared, TargetPermit};
use http::{HeaderName, HeaderValue};
use policy::ArchivedProvider;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

/// Retry settings for `<provider>/<model>` requests, which have no alias.
const DIRECT_RETRY: RetryCfg = RetryCfg {
    max_attempts: 3,
    deadline: Duration::from_secs(600),
    backoff_ms: 50,
    max_backoff_ms: 1000,
};

/// Hedging on a percentile waits for this many observations first.
const HEDGE_MIN_SAMPLES: u64 = 20;

#[derive(Clone, Copy)]
struct RetryCfg {
    max_attempts: u32,
    deadline: Duration,
    backoff_ms: u64,
    max_backoff_ms: u64,
}

#[derive(Clone, Copy)]
struct HedgeCfg {
    after_ms: u64,
    percentile_milli: u32,
}

struct Candidate<'a> {
    provider_index: usize,
    provider: &'a ArchivedProvider,
    model: &'a str,
    health: Arc<TargetHealth>,
}

/// The targets to try, in order, and how hard to try.
pub struct Plan<'a> {
    candidates: Vec<Candidate<'a>>,
    retry: RetryCfg,
    hedge: Option<HedgeCfg>,
    /// A target skipped because its provider's translator is not built yet.
    unsupported: Option<String>,
}

impl<'a> Plan<'a> {
    /// (provider, model) of every target, in order.
    pub fn targets(&self) -> impl Iterator<Item = (&'a str, &'a str)> + '_ {
        self.candidates
            .iter()
            .map(|c| (c.provider.name.as_str(), c.model))
    }
}

pub fn plan<'a>(active: &'a ActivePolicy, route: &Route<'a>) -> Plan<'a> {
    let policy = active.snapshot.policy();
    let mut plan = Plan {
        candidates: Vec::new(),
        retry: DIRECT_RETRY,
        hedge: None,
        unsupported: None,
    };
    let push = |plan: &mut Plan<'a>,
                provider_index: usize,
                model: &'a str,
                health: Arc<TargetHealth>| {
        let Some(provider) = policy.providers.get(provider_index) else {
            return;
        };
        let kind = provider.kind.native();
        if !translate::has_translator(kind) {
            plan.unsupported.get_or_insert_with(|| {
                format!("provider `{}` is of kind `{}`, whose translator is not available in this build", provider.name, kind.as_str())
            });
            return;
        }
        plan.candidates.push(Candidate {
            provider_index,
            provider,
            model,
            health,
        });
    };
    match *route {
        Route::Alias(index) => {
            let (Some(alias), Some(set)) = (policy.aliases.get(index), active.aliases.get(index))
            else {
                return plan;
            };
            plan.retry = RetryCfg {
                max_attempts: alias.retry.max_attempts.to_native(),
                deadline: Duration::from_millis(alias.retry.deadline_ms.to_native()),
                backoff_ms: alias.retry.backoff_ms.to_native(),
                max_backoff_ms: alias.retry.max_backoff_ms.to_native(),
            };
            plan.hedge = alias.hedge.as_ref().map(|h| HedgeCfg {
                after_ms: h.after_ms.to_native(),
                percentile_milli: h.percentile_milli.to_native(),
            });
            for i in set.order(&alias.targets, alias.balance, &mut || fastrand::f64()) {
                let t = &alias.targets[i];
                push(
                    &mut plan,
                    t.provider.to_native() as usize,
                    t.model.as_str(),
                    set.health[i].clone(),
                );
            }
        }
        Route::Direct {
            provider_index,
            model,
            ..
        } => {
            if let Some(rt) = active.providers.get(provider_index as usize) {
                push(&mut plan, provider_index as usize, model, rt.direct.clone());
            }
        }
    }
    plan
}

/// What the caller sends to the client.
pub enum Delivery<'a> {
    /// A 2xx whose first byte has arrived; relay the rest until `deadline`.
    Stream {
        committed: Box<Committed<'a>>,
        deadline: Instant,
    },
    /// The provider's own non-2xx answer, passed through.
    Buffered {
        provider: String,
        response: Box<Buffered>,
    },
    Error(GatewayError),
}

/// The request, as every attempt needs it.
pub struct Env<'c, 'a> {
    pub active: &'a ActivePolicy,
    pub request: &'c translate::ClientRequest<'c>,
    pub request_id: &'c str,
    pub forwarded: &'c [(HeaderName, HeaderValue)],
    pub metrics: &'c Metrics,
}

enum Last {
    Answered(String, Box<Buffered>),
    Failed(GatewayError),
}

/// Bookkeeping across attempts.
struct Book {
    deadline: Instant,
    attempts: u32,
    tried: Vec<Vec<usize>>,
    tries_on: Vec<u32>,
    last: Option<Last>,
    cooling: Option<(String, u64)>,
    no_keys: Option<String>,
    open_circuits: bool,
    budget_exhausted: bool,
    /// The last candidate a hedge reached.
    hedged_to: usize,
}

enum Step<'a> {
    Deliver(Delivery<'a>),
    SameTarget,
    NextTarget,
}

/// Run the plan. Returns what to send and how many attempts were made.
pub async fn run<'c, 'a>(env: &Env<'c, 'a>, plan: &Plan<'a>) -> (Delivery<'a>, u32) {
    let n = plan.candidates.len();
    if n == 0 {
        let e = match &plan.unsupported {
            Some(why) => GatewayError::NotImplemented(format!(
                "{why}; route this model to a provider of another kind"
            )),
            None => GatewayError::UpstreamUnavailable {
                reason: "the model has no usable target".into(),
            },
        };
        return (Delivery::Error(e), 0);
    }
    let budget = budget_cfg(env.active);
    env.active.registry.budget.deposit(&budget);
    let mut book = Book {
        deadline: Instant::now() + plan.retry.deadline,
        attempts: 0,
        tried: vec![Vec::new(); n],
        tries_on: vec![0; n],
        last: None,
        cooling: None,
        no_keys: None,
        open_circuits: false,
        budget_exhausted: false,
        hedged_to: 0,
    };
    let mut hedge = plan.hedge.filter(|_| n > 1);
    let mut ci = 0;
    while ci < n && book.attempts < plan.retry.max_attempts && Instant::now() < book.deadline {
        let Some(prepared) = prepare(env, plan, &mut book, ci) else {
            ci += 1;
            continue;
        };
        if book.attempts > 0 {
            if !env.active.registry.budget.try_withdraw(&budget, now_ms()) {
                book.budget_exhausted = true;
                break;
            }
            env.active.registry.retries_total.fetch_add(1, Relaxed);
            if book.tries_on[ci] > 0 {
                let pause = backoff::full_jitter(
                    plan.retry.backoff_ms,
                    plan.retry.max_backoff_ms,
                    book.tries_on[ci] - 1,
                    fastrand::f64(),
                );
                tokio::time::sleep(
                    pause.min(book.deadline.saturating_duration_since(Instant::now())),
                )
                .await;
            }
        }
        book.attempts += 1;
        book.tries_on[ci] += 1;
        let ends = match hedge.take() {
            Some(h) => hedged(env, plan, &mut book, prepared, h).await,
            None => vec![launch(env, book.deadline, prepared).await],
        };
        let mut next = false;
        for end in ends {
            match settle(env, &mut book, end) {
                Step::Deliver(d) => return (d, book.attempts),
                Step::NextTarget => next = true,
                Step::SameTarget => {}
            }
        }
        ci = ci.max(book.hedged_to);
        if next && ci + 1 < n {
            ci += 1;
        }
    }
    let attempts = book.attempts;
    (give_up(book, plan), attempts)
}

fn budget_cfg(active: &ActivePolicy) -> BudgetConfig {
    let b = &active.snapshot.policy().retry_budget;
    BudgetConfig {
        ratio_milli: b.ratio_milli.to_native(),
        min_per_second: b.min_per_second.to_native(),
    }
}

/// Claim the target's breaker and a key, or note why not.
fn prepare<'a>(
    env: &Env<'_, 'a>,
    plan: &Plan<'a>,
    book: &mut Book,
    ci: usize,
) -> Option<Prepared<'a>> {
    let c = &plan.candidates[ci];
    let now = now_ms();
    let admission = c.health.breaker.admit(now);
    if admission == Admission::Rejected {
        book.open_circuits = true;
        return None;
    }
    match env.active.providers[c.provider_index]
        .pool
        .acquire(now, &book.tried[ci])
    {
        Ok(lease) => Some(Prepared {
            candidate: ci,
            provider_index: c.provider_index,
            mode: translate::ResponseMode::PassThrough,
            dropped: Vec::new(),
            provider: c.provider,
            model: c.model,
            lease,
            target: TargetPermit::new(c.health.clone(), admission),
        }),
        Err(why) => {
            if admission == Admission::Probe {
                c.health.breaker.release_probe();
            }
            match why {
                NoKey::CoolingDown { until_ms } => {
                    let earliest = book.cooling.as_ref().map_or(u64::MAX, |(_, u)| *u);
                    if until_ms < earliest {
                        book.cooling = Some((c.provider.name.to_string(), until_ms));
                    }
                }
                NoKey::Empty => book.no_keys = Some(c.provider.name.to_string()),
                NoKey::Unavailable => {}
            }
            None
        }
    }
}

/// Build the provider request for this attempt and run it.
async fn launch<'a>(env: &Env<'_, 'a>, deadline: Instant, mut p: Prepared<'a>) -> AttemptEnd<'a> {
    let rt = &env.active.providers[p.provider_index];
    let provider = p.provider;
    let Some(peer) = rt.peer.load_full() else {
        let reason = rt
            .resolve_error
            .load_full()
            .map(|r| r.to_string())
            .unwrap_or_else(|| "not resolved".into());
        return AttemptEnd::Failed(
            p,
            GatewayError::UpstreamConnect {
                provider: provider.name.to_string(),
                reason,
            },
        );
    };
    let Some(key) = provider.keys.get(p.lease.index) else {
        return AttemptEnd::Failed(p, GatewayError::Internal("key index out of range".into()));
    };
    // Each attempt is translated for its own target's provider.
    let outbound = match translate::outbound(provider, key.secret.as_str(), p.model, env.request) {
        Ok(o) => o,
        Err(e) => return AttemptEnd::Untranslatable(p, e),
    };
    p.mode = outbound.response;
    p.dropped = outbound.dropped;
    let timeouts = &provider.timeouts;
    let first_byte = Duration::from_millis(timeouts.first_byte_ms.to_native())
        .min(deadline.saturating_duration_since(Instant::now()));
    let request = upstream::Attempt {
        provider: provider.name.as_str(),
        peer,
        authority: &rt.authority,
        path: outbound.path,
        auth: outbound.headers,
        request_id: env.request_id,
        forwarded: env.forwarded,
        body: outbound.body,
    };
    attempt::execute(p, request, first_byte).await
}

/// The first attempt, with a hedge to the next target if it is slow.
async fn hedged<'a>(
    env: &Env<'_, 'a>,
    plan: &Plan<'a>,
    book: &mut Book,
    first: Prepared<'a>,
    h: HedgeCfg,
) -> Vec<AttemptEnd<'a>> {
    let Some(delay) = hedge_delay(h, &plan.candidates[first.candidate].health) else {
        return vec![launch(env, book.deadline, first).await];
    };
    let first_ci = first.candidate;
    let first_name = first.provider.name.as_str();
    let deadline = book.deadline;
    let f1 = launch(env, deadline, first);
    tokio::pin!(f1);
    tokio::select! {
        end = &mut f1 => return vec![end],
        _ = tokio::time::sleep(delay) => {}
    }
    let second = (first_ci + 1..plan.candidates.len()).find_map(|ci| prepare(env, plan, book, ci));
    let Some(second) = second else {
        return vec![f1.await];
    };
    let registry = &env.active.registry;
    if !registry
        .budget
        .try_withdraw(&budget_cfg(env.active), now_ms())
    {
        book.budget_exhausted = true;
        return vec![f1.await];
    }
    registry.hedges_total.fetch_add(1, Relaxed);
    book.attempts += 1;
    book.tries_on[second.candidate] += 1;
    book.hedged_to = second.candidate;
    let second_name = second.provider.name.as_str();
    let f2 = launch(env, deadline, second);
    tokio::pin!(f2);
    tokio::select! {
        e1 = &mut f1 => {
            if e1.is_committed() {
                env.metrics.record_attempt(second_name, "hedge_cancelled");
                vec![e1]
            } else {
                vec![e1, f2.await]
            }
        }
        e2 = &mut f2 => {
            if e2.is_committed() {
                registry.hedge_wins_total.fetch_add(1, Relaxed);
                env.metrics.record_attempt(first_name, "hedge_cancelled");
                vec![e2]
            } else {
                vec![e2, f1.await]
            }
        }
    }
}

fn hedge_delay(h: HedgeCfg, health: &TargetHealth) -> Option<Duration> {
    let fixed = (h.after_ms > 0).then(|| Duration::from_millis(h.after_ms));
    let observed = (h.percentile_milli > 0)
        .then(|| {
            health.ttfb.quantile(
                h.percentile_milli as f64 / 1000.0,
                now_ms(),
                HEDGE_MIN_SAMPLES,
            )
        })
        .flatten()
        .map(Duration::from_micros);
    match (fixed, observed) {
        (Some(f), Some(o)) => Some(f.max(o)),
        (f, o) => f.or(o),
    }
}

/// Record an attempt's outcome on keys, targets and metrics; decide what next.
fn settle<'a>(env: &Env<'_, 'a>, book: &mut Book, end: AttemptEnd<'a>) -> Step<'a> {
    let now = now_ms();
    match end {
        AttemptEnd::Committed(mut c) => {
            let p = &mut c.prepared;
            let cfg = env.active.providers[p.provider_index].pool.breaker;
            p.lease.succeeded(&cfg, now);
            p.target.succeeded(&cfg, now);
            let micros = c.time_to_first_byte.as_micros() as u64;
            p.target.health.latency.observe(micros, now);
            p.target.health.ttfb.record(micros, now);
            env.metrics.record_attempt(p.provider.name.as_str(), "ok");
            let total = Duration::from_millis(p.provider.timeouts.total_ms.to_native());
            let deadline =
                (c.started + total).min(book.deadline.max(c.started + c.time_to_first_byte));
            Step::Deliver(Delivery::Stream {
                committed: c,
                deadline,
            })
        }
        AttemptEnd::Answered(mut p, response) => {
            let status = response.header.status.as_u16();
            let name = p.provider.name.to_string();
            env.metrics
                .record_attempt(&name, upstream::outcome_label(&Ok(status)));
            book.tried[p.candidate].push(p.lease.index);
            let cfg = env.active.providers[p.provider_index].pool.breaker;
            match outcome::classify_status(status, &response.header.headers, &response.body) {
                Verdict::Deliver | Verdict::Final => {
                    p.lease.succeeded(&cfg, now);
                    p.target.succeeded(&cfg, now);
                    Step::Deliver(Delivery::Buffered {
                        provider: name,
                        response,
                    })
                }
                Verdict::Retry(Blame::KeyRateLimited) => {
                    let pause =
                        cooldown::hint(&response.header.headers, &response.body, SystemTime::now())
                            .unwrap_or(Duration::from_millis(
                                p.provider.default_cooldown_ms.to_native(),
                            ));
                    let pause_ms = pause.as_millis() as u64;
                    env.active.registry.cool_down(&p.lease.key, now, pause_ms);
                    tracing::info!(provider = %name, key = %p.lease.key.name, cooldown_ms = pause.as_millis() as u64, "upstream key rate limited; cooling down");
                    book.last = Some(Last::Answered(name, response));
                    Step::SameTarget
                }
                Verdict::Retry(Blame::KeyRejected) => {
                    env.active.registry.reject(&p.lease.key, now);
                    tracing::warn!(provider = %name, key = %p.lease.key.name, status, "upstream key refused by the provider; taken out of rotation");
                    book.last = Some(Last::Failed(GatewayError::UpstreamAuth(name)));
                    Step::SameTarget
                }
                Verdict::Retry(Blame::Provider) => {
                    p.lease.failed(&cfg, now);
                    p.target.failed(&cfg, now);
                    book.last = Some(Last::Answered(name, response));
                    Step::NextTarget
                }
            }
        }
        AttemptEnd::Untranslatable(p, error) => {
            // Not the provider's fault: no breaker, no cool-down.
            env.metrics
                .record_attempt(p.provider.name.as_str(), "untranslatable");
            book.tried[p.candidate].push(p.lease.index);
            book.last = Some(Last::Failed(error));
            Step::NextTarget
        }
        AttemptEnd::Failed(mut p, error) => {
            env.metrics.record_attempt(
                p.provider.name.as_str(),
                upstream::outcome_label(&Err(&error)),
            );
            book.tried[p.candidate].push(p.lease.index);
            let cfg = env.active.providers[p.provider_index].pool.breaker;
            p.lease.failed(&cfg, now);
            p.target.failed(&cfg, now);
            tracing::debug!(provider = %p.provider.name, error = %error, "upstream attempt failed");
            book.last = Some(Last::Failed(error));
            Step::NextTarget
        }
    }
}

fn give_up<'a>(book: Book, plan: &Plan<'a>) -> Delivery<'a> {
    match book.last {
        Some(Last::Answered(provider, response)) => {
            return Delivery::Buffered { provider, response }
        }
        Some(Last::Failed(e)) => return Delivery::Error(e),
        None => {}
    }
    let e = if let Some((provider, until)) = book.cooling {
        let secs = until.saturating_sub(now_ms()).div_ceil(1000).max(1);
        GatewayError::UpstreamRateLimited {
            provider,
            retry_after_secs: secs,
        }
    } else if book.open_circuits {
        GatewayError::UpstreamUnavailable {
            reason: "every target's circuit breaker is open".into(),
        }
    } else if let Some(provider) = book.no_keys {
        GatewayError::NoUpstreamKey(provider)
    } else if book.budget_exhausted {
        GatewayError::UpstreamUnavailable {
            reason: "the gateway's retry budget is exhausted".into(),
        }
    } else if let Some(why) = &plan.unsupported {
        GatewayError::NotImplemented(why.clone())
    } else {
        GatewayError::UpstreamUnavailable {
            reason: "every key is busy, refused or already tried".into(),
        }
    };
    Delivery::Error(e)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resilience::health::HealthRegistry;

    #[test]
    fn hedge_delay_uses_the_fixed_delay_the_observed_percentile_or_the_larger() {
        let reg = HealthRegistry::default();
        let t = reg.target("p", "m");
        let fixed = HedgeCfg {
            after_ms: 200,
            percentile_milli: 0,
        };
        let p95 = HedgeCfg {
            after_ms: 0,
            percentile_milli: 950,
        };
        let both = HedgeCfg {
            after_ms: 200,
            percentile_milli: 950,
        };
        assert_eq!(hedge_delay(fixed, &t), Some(Duration::from_millis(200)));
        assert_eq!(hedge_delay(p95, &t), None, "no observations yet: no hedge");
        assert_eq!(hedge_delay(both, &t), Some(Duration::from_millis(200)));
        for i in 0..100u64 {
            t.ttfb.record(10_000 + i * 5_000, now_ms());
        }
        // 95th of 10..505 ms ≈ 480 ms (log buckets: within 25 %).
        let observed = hedge_delay(p95, &t).unwrap();
        assert!(
            (Duration::from_millis(440)..=Duration::from_millis(620)).contains(&observed),
            "{observed:?}"
        );
        assert_eq!(hedge_delay(both, &t), Some(observed));
        let cheap = HedgeCfg {
            after_ms: 900,
            percentile_milli: 950,
        };
        assert_eq!(hedge_delay(cheap, &t), Some(Duration::from_millis(900)));
    }
}
