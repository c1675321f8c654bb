//! Shared rate limits, `pooled` mode: each replica borrows allotments from
//! the shared buckets in Redis into local atomic pools and admits from
//! them without a round trip. A pool short of what a request needs
//! borrows on the spot; a pool running low is topped up in the background;
//! a pool left idle gives its credit back (as does a replica that drains
//! on shutdown).
//!
//! The bound. A borrowed token is debited in Redis when it is borrowed, so
//! a burst admits at most the limit across the fleet; what pooling adds is
//! time: credit borrowed before a window may be spent inside it. A pool
//! never holds more than its allotment `A = max(1, ⌊L / (10·N)⌋)` (L the
//! limit, N the live replicas), so in any one-minute window the fleet
//! admits at most `L + N·A` (about 1.1·L) of a limit L. Borrows shrink as
//! the bucket empties: beyond what a request needs, a borrow takes at most
//! the rest divided by 2·N.
//!
//! Concurrency caps are not pooled: a limit set with one is decided per
//! request in Redis ([`super::limits`]), in both modes.

use super::limits::{Admission, SharedPermit};
use super::link::CallError;
use super::runner::Write;
use super::scripts::scripts;
use super::Cluster;
use crate::error::LimitKind;
use crate::limits::Entry;
use dashmap::DashMap;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// A pool left unused this long gives its credit back.
pub const IDLE: Duration = Duration::from_secs(5);

/// This replica's credit in one shared bucket.
#[derive(Debug)]
pub struct Pool {
    pub key: String,
    /// Tokens borrowed and not yet spent; below zero, a debt (tokens used
    /// beyond an estimate) that the next borrow pays.
    credit: AtomicI64,
    rate: AtomicU64,
    last_used_ms: AtomicU64,
    topping_up: AtomicBool,
}

#[derive(Default)]
pub struct Pools {
    map: DashMap<String, Arc<Pool>>,
}

/// The most credit one replica keeps for a limit of `rate` shared by
/// `live` replicas.
pub fn allotment(rate: u64, live: u32) -> u64 {
    (rate / (10 * u64::from(live.max(1)))).max(1)
}

fn now_ms() -> u64 {
    crate::limits::token_bucket::mono_ns() / 1_000_000
}

impl Pools {
    fn pool(&self, key: &str, rate: u64) -> Arc<Pool> {
        let pool = match self.map.get(key) {
            Some(p) => p.clone(),
            None => self
                .map
                .entry(key.to_string())
                .or_insert_with(|| {
                    Arc::new(Pool {
                        key: key.to_string(),
                        credit: AtomicI64::new(0),
                        rate: AtomicU64::new(rate),
                        last_used_ms: AtomicU64::new(now_ms()),
                        topping_up: AtomicBool::new(false),
                    })
                })
                .clone(),
        };
        pool.rate.store(rate, Ordering::Relaxed);
        pool.last_used_ms.store(now_ms(), Ordering::Relaxed);
        pool
    }

    /// Credit held, over all pools (for `/metrics`).
    pub fn credit(&self) -> i64 {
        self.map
            .iter()
            .map(|p| p.credit.load(Ordering::Relaxed))
            .sum()
    }

    /// Take out every pool idle for `idle` (all of them when `idle` is
    /// zero), returning its credit or charging its debt.
    pub(crate) fn drain(&self, idle: Duration) -> Vec<Write> {
        let now = now_ms();
        let mut out = Vec::new();
        self.map.retain(|_, p| {
            let since = now.saturating_sub(p.last_used_ms.load(Ordering::Relaxed));
            if since < idle.as_millis() as u64 {
                return true;
            }
            let credit = p.credit.swap(0, Ordering::AcqRel);
            if credit != 0 {
                out.push(Write::Adjust {
                    keys: vec![p.key.clone()],
                    rates: vec![p.rate.load(Ordering::Relaxed)],
                    delta: -credit,
                });
            }
            false
        });
        out
    }
}

impl Pool {
    fn take(&self, n: u64) -> bool {
        let n = n as i64;
        self.credit
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |c| {
                (c >= n).then_some(c - n)
            })
            .is_ok()
    }

    /// Add credit (a grant beyond the need, a refund); anything over the
    /// allotment goes back to Redis.
    fn add(&self, cluster: &Cluster, n: i64) {
        let cap = allotment(self.rate.load(Ordering::Relaxed), cluster.live_replicas()) as i64;
        let mut excess = 0;
        let _ = self
            .credit
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |c| {
                let next = c.saturating_add(n);
                excess = (next - cap).max(0);
                Some(next - excess)
            });
        if excess > 0 {
            cluster.write(Write::Adjust {
                keys: vec![self.key.clone()],
                rates: vec![self.rate.load(Ordering::Relaxed)],
                delta: -excess,
            });
        }
    }

    fn charge(&self, n: u64) {
        self.credit.fetch_sub(n as i64, Ordering::AcqRel);
    }

    /// Ask the runner to top the pool up when it is under half its
    /// allotment (once at a time).
    fn maybe_top_up(self: &Arc<Self>, cluster: &Cluster) {
        let cap = allotment(self.rate.load(Ordering::Relaxed), cluster.live_replicas()) as i64;
        if self.credit.load(Ordering::Relaxed) * 2 < cap
            && !self.topping_up.swap(true, Ordering::AcqRel)
        {
            cluster.write(Write::TopUp(self.clone()));
        }
    }
}

/// The outcome of one borrow.
enum Borrowed {
    Granted(u64),
    /// The shared bucket cannot give `need` now (None: never).
    Refused(Option<Duration>),
}

async fn borrow(
    cluster: &Cluster,
    pool: &Pool,
    need: u64,
    deadline: Duration,
) -> Result<Borrowed, CallError> {
    let rate = pool.rate.load(Ordering::Relaxed);
    let live = cluster.live_replicas();
    let credit = pool.credit.load(Ordering::Relaxed);
    let extra = (allotment(rate, live) as i64 - credit.max(0)).max(0) as u64;
    let mut inv = scripts().borrow.prepare_invoke();
    inv.key(&pool.key).arg(need).arg(extra).arg(rate).arg(live);
    match cluster.link.call::<Vec<i64>>(&inv, deadline).await {
        Ok(v) if v.len() == 2 && v[0] > 0 => Ok(Borrowed::Granted(v[0] as u64)),
        Ok(v) if v.len() == 2 && v[0] == 0 && need == 0 => Ok(Borrowed::Granted(0)),
        Ok(v) if v.len() == 2 => Ok(Borrowed::Refused(
            u64::try_from(v[1]).ok().map(Duration::from_millis),
        )),
        Ok(_) => Err(CallError::Redis("unexpected reply to borrow".into())),
        Err(e) => Err(e),
    }
}

/// On the runner: refill a pool that ran low.
pub(super) async fn top_up(cluster: &Cluster, pool: &Pool, deadline: Duration) {
    let result = borrow(cluster, pool, 0, deadline).await;
    match result {
        Ok(Borrowed::Granted(n)) if n > 0 => pool.add(cluster, n as i64),
        Ok(_) => {}
        Err(why) => cluster.trouble(&why),
    }
    pool.topping_up.store(false, Ordering::Release);
}

/// What a pooled admission took, for settling its tokens.
pub struct PooledPermit {
    cluster: Arc<Cluster>,
    token_pools: Vec<Arc<Pool>>,
    tokens: u64,
}

impl PooledPermit {
    /// Tokens used beyond the estimate are charged to the pools (a debt the
    /// next borrow pays); unused ones go back into them.
    pub fn settle(&mut self, actual: u64) {
        for p in &self.token_pools {
            if actual > self.tokens {
                p.charge(actual - self.tokens);
            } else {
                p.add(&self.cluster, (self.tokens - actual) as i64);
            }
        }
        self.tokens = actual;
    }
}

/// Admit from the pools, borrowing where they fall short. `Err` when Redis
/// did not answer in time (the cluster is then degraded).
pub(crate) async fn admit(
    cluster: &Arc<Cluster>,
    entries: &[Entry<'_>],
    tokens: u64,
) -> Result<Admission, ()> {
    let mut taken: Vec<(Arc<Pool>, u64)> = Vec::new();
    let mut token_pools = Vec::new();
    let give_back = |taken: &[(Arc<Pool>, u64)]| {
        for (p, n) in taken {
            p.add(cluster, *n as i64);
        }
    };
    for (i, e) in entries.iter().enumerate() {
        let [rpm_key, tpm_key, _] =
            super::keys::limit_keys(&super::keys::scope_tag(e.kind, e.name), e.pattern);
        for (kind, key, rate, need) in [
            (LimitKind::Requests, rpm_key, e.rpm, 1),
            (LimitKind::Tokens, tpm_key, e.tpm, tokens),
        ] {
            if rate == 0 {
                continue;
            }
            let refused = |wait| Admission::Refused {
                entry: i,
                kind,
                wait,
            };
            if need > rate {
                give_back(&taken);
                return Ok(refused(None));
            }
            let pool = cluster.pools.pool(&key, rate);
            if !pool.take(need) {
                // Short: borrow what this request needs, any debt of the
                // pool, and a share more. The request takes its part of the
                // grant directly, whatever concurrent requests do to the
                // pool meanwhile.
                let debt = (-pool.credit.load(Ordering::Acquire)).max(0) as u64;
                match borrow(cluster, &pool, need + debt, cluster.config.timeout).await {
                    Ok(Borrowed::Granted(g)) => pool.add(cluster, g as i64 - need as i64),
                    Ok(Borrowed::Refused(wait)) => {
                        give_back(&taken);
                        return Ok(refused(wait));
                    }
                    Err(why) => {
                        give_back(&taken);
                        cluster.trouble(&why);
                        return Err(());
                    }
                }
            }
            pool.maybe_top_up(cluster);
            if kind == LimitKind::Tokens {
                token_pools.push(pool.clone());
            }
            taken.push((pool, need));
        }
    }
    let permit = PooledPermit {
        cluster: cluster.clone(),
        token_pools,
        tokens,
    };
    Ok(Admission::Admitted(SharedPermit::Pooled(permit)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pool_holds_at_most_a_tenth_of_the_limit_shared_by_the_replicas() {
        assert_eq!(allotment(60, 3), 2);
        assert_eq!(allotment(1, 5), 1, "at least one");
        assert_eq!(allotment(1_000_000, 2), 50_000);
        assert_eq!(allotment(100, 0), 10, "no replicas counted reads as one");
    }
}
