//! Shared budgets: reservations and settlements in Redis, one atomic
//! script per scope, so "settled spend plus open reservations never
//! exceeds the cap at admission" holds across the fleet. A period's
//! counter is named by the period's end, so a new day starts from zero
//! and a late settlement still lands in the day it belongs to.
//!
//! While Redis is unavailable a replica may spend, per cap, its share of
//! what was left when it last heard from Redis: `(cap - committed) / N`.
//! That spend, and any settlement that could not be written, is kept as a
//! pending delta and added to Redis once it answers again: nothing is lost.

use super::keys::{budget_key, hold_marker, scope_tag};
use super::link::CallError;
use super::runner::Write;
use super::scripts::scripts;
use super::Cluster;
use crate::budgets::Cap;
use dashmap::DashMap;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;

/// A period's counter is kept this long after the period ends, for late
/// settlements.
const KEEP_MS: i64 = 24 * 3_600_000;

/// A hold's marker outlives any request.
const MARKER_TTL_MS: u64 = 3_600_000;

/// What this replica knows of the shared budget counters.
#[derive(Default)]
pub struct BudgetBook {
    /// Committed, as Redis last said (for the share while it is down).
    seen: DashMap<String, (AtomicU64, i64)>,
    /// Spend made while Redis was away, not yet in it, and when each key
    /// may expire.
    pending: DashMap<String, (AtomicI64, i64)>,
    /// Budget writes that failed, by their token, to try again (each is
    /// applied at most once however often it is sent).
    retry: DashMap<String, Write>,
}

impl BudgetBook {
    fn saw(&self, key: &str, committed: u64, expire_at: i64) {
        match self.seen.get(key) {
            Some(e) => e.0.store(committed, Ordering::Relaxed),
            None => {
                self.seen
                    .insert(key.to_string(), (AtomicU64::new(committed), expire_at));
            }
        }
    }

    pub(super) fn owe(&self, key: &str, delta: i64, expire_at: i64) {
        self.pending
            .entry(key.to_string())
            .or_insert_with(|| (AtomicI64::new(0), expire_at))
            .0
            .fetch_add(delta, Ordering::AcqRel);
    }

    /// The pending deltas (each under a fresh token from `token`) and the
    /// writes to retry, taken out of the book.
    pub(super) fn take_pending(&self, mut token: impl FnMut(&str) -> String) -> Vec<Write> {
        let mut out = Vec::new();
        self.pending.retain(|key, (delta, expire_at)| {
            let d = delta.swap(0, Ordering::AcqRel);
            if d != 0 {
                out.push(Write::Spend {
                    keys: vec![key.clone()],
                    expire_at: vec![*expire_at],
                    delta: d,
                    token: token(key),
                    settle: false,
                });
            }
            false
        });
        self.retry.retain(|_, w| {
            out.push(w.clone());
            false
        });
        out
    }

    /// Keep a budget write that failed, to send again.
    pub(super) fn retry(&self, token: String, w: Write) {
        self.retry.insert(token, w);
    }

    /// Forget counters of periods long over.
    pub(super) fn prune(&self, now_ms: i64) {
        self.seen.retain(|_, (_, expire_at)| *expire_at > now_ms);
    }

    pub fn pending_total(&self) -> i64 {
        let retried: i64 = self
            .retry
            .iter()
            .map(|e| match e.value() {
                Write::Spend { delta, .. } => *delta,
                _ => 0,
            })
            .sum();
        self.pending
            .iter()
            .map(|e| e.value().0.load(Ordering::Relaxed))
            .sum::<i64>()
            + retried
    }
}

/// One scope's caps, as Redis sees them.
struct ScopeCaps {
    first: usize,
    keys: Vec<String>,
    expire_at: Vec<i64>,
    limits: Vec<u64>,
    marker: String,
}

fn group(caps: &[Cap<'_>], hold: &str) -> Vec<ScopeCaps> {
    let mut out: Vec<ScopeCaps> = Vec::new();
    let mut current = None;
    for (i, c) in caps.iter().enumerate() {
        if current != Some((c.kind, c.name)) {
            current = Some((c.kind, c.name));
            out.push(ScopeCaps {
                first: i,
                keys: Vec::new(),
                expire_at: Vec::new(),
                limits: Vec::new(),
                marker: hold_marker(&scope_tag(c.kind, c.name), hold),
            });
        }
        let Some(g) = out.last_mut() else { continue };
        g.keys.push(budget_key(
            &scope_tag(c.kind, c.name),
            c.pattern,
            c.monthly,
            c.ends_ms,
        ));
        g.expire_at.push(c.ends_ms.saturating_add(KEEP_MS));
        g.limits.push(c.cap);
    }
    out
}

/// Reservations of one request made through the cluster.
pub struct SharedHold {
    cluster: Arc<Cluster>,
    /// Per scope: counters, their expiry, the hold's marker.
    scopes: Vec<(Vec<String>, Vec<i64>, String)>,
    reserved: u64,
    /// Made while Redis was down: the reservation is a pending delta.
    pending: bool,
}

impl SharedHold {
    fn new(cluster: &Arc<Cluster>, groups: Vec<ScopeCaps>, reserved: u64, pending: bool) -> Self {
        SharedHold {
            cluster: cluster.clone(),
            scopes: groups
                .into_iter()
                .map(|g| (g.keys, g.expire_at, g.marker))
                .collect(),
            reserved,
            pending,
        }
    }

    pub fn settle(&mut self, actual: u64) {
        let delta = actual as i64 - self.reserved as i64;
        if delta != 0 {
            for (keys, expire_at, marker) in &self.scopes {
                if self.pending {
                    for (k, e) in keys.iter().zip(expire_at) {
                        self.cluster.budgets.owe(k, delta, *e);
                    }
                } else {
                    self.cluster
                        .write(settlement(keys, expire_at, delta, marker));
                }
            }
        } else if !self.pending {
            // Nothing to add, but the markers go.
            for (keys, expire_at, marker) in &self.scopes {
                self.cluster.write(settlement(keys, expire_at, 0, marker));
            }
        }
        self.reserved = actual;
    }
}

/// Settle a hold: applied once, by its marker.
fn settlement(keys: &[String], expire_at: &[i64], delta: i64, marker: &str) -> Write {
    Write::Spend {
        keys: keys.to_vec(),
        expire_at: expire_at.to_vec(),
        delta,
        token: marker.to_string(),
        settle: true,
    }
}

/// Reserve in Redis. `Ok(Err((cap index, committed)))` when a cap refuses;
/// `Err` when Redis did not answer in time.
#[allow(clippy::type_complexity)]
pub(crate) async fn reserve(
    cluster: &Arc<Cluster>,
    caps: &[Cap<'_>],
    cost: u64,
) -> Result<Result<SharedHold, (usize, u64)>, ()> {
    let id = cluster.next_id();
    let groups = group(caps, &format!("{}#{id}", cluster.config.node));
    let invocations: Vec<_> = groups
        .iter()
        .map(|g| {
            let mut inv = scripts().reserve.prepare_invoke();
            for k in &g.keys {
                inv.key(k);
            }
            inv.key(&g.marker);
            inv.arg(cost).arg(MARKER_TTL_MS);
            for (limit, exp) in g.limits.iter().zip(&g.expire_at) {
                inv.arg(limit).arg(exp);
            }
            inv
        })
        .collect();
    let answers = futures_util::future::join_all(
        invocations
            .iter()
            .map(|inv| cluster.link.call::<Vec<i64>>(inv, cluster.config.timeout)),
    )
    .await;
    let mut refused = None;
    let mut failed = None;
    for (g, a) in groups.iter().zip(&answers) {
        match a {
            Ok(v) if v.first() == Some(&0) => {
                for ((k, exp), c) in g.keys.iter().zip(&g.expire_at).zip(&v[1..]) {
                    cluster.budgets.saw(k, (*c).max(0) as u64, *exp);
                }
            }
            Ok(v) if v.len() == 2 => {
                let i = g.first + usize::try_from(v[0] - 1).unwrap_or(0);
                if refused.is_none() {
                    refused = Some((i, v[1].max(0) as u64));
                }
            }
            Ok(_) => failed = Some(CallError::Redis("unexpected reply to reserve".into())),
            Err(e) => failed = Some(e.clone()),
        }
    }
    if refused.is_some() || failed.is_some() {
        // Give back what the scopes that reserved took; a reservation whose
        // answer was lost is taken back by its marker if it was made (the
        // write follows it on the same connection).
        for (g, a) in groups.iter().zip(&answers) {
            match a {
                Ok(v) if v.first() == Some(&0) => {
                    cluster.write(settlement(&g.keys, &g.expire_at, -(cost as i64), &g.marker))
                }
                Ok(_) => {}
                Err(_) => cluster.write(Write::Unreserve {
                    keys: g.keys.clone(),
                    expire_at: g.expire_at.clone(),
                    marker: g.marker.clone(),
                }),
            }
        }
    }
    if let Some(why) = failed {
        cluster.trouble(&why);
        return Err(());
    }
    if let Some(r) = refused {
        return Ok(Err(r));
    }
    Ok(Ok(SharedHold::new(cluster, groups, cost, false)))
}

/// Reserve while Redis is unavailable: within this replica's share of what
/// each cap had left, as a pending delta.
pub(crate) fn reserve_while_down(
    cluster: &Arc<Cluster>,
    caps: &[Cap<'_>],
    cost: u64,
) -> Result<SharedHold, (usize, u64)> {
    let groups = group(caps, "");
    let live = u64::from(cluster.live_replicas());
    let book = &cluster.budgets;
    let mut taken: Vec<(&String, i64)> = Vec::new();
    for g in &groups {
        for (j, (key, limit)) in g.keys.iter().zip(&g.limits).enumerate() {
            let seen = book
                .seen
                .get(key)
                .map_or(0, |e| e.0.load(Ordering::Relaxed));
            let share = limit.saturating_sub(seen) / live;
            let entry = book
                .pending
                .entry(key.clone())
                .or_insert_with(|| (AtomicI64::new(0), g.expire_at[j]));
            let ok = entry
                .0
                .fetch_update(Ordering::AcqRel, Ordering::Acquire, |p| {
                    let after = p.saturating_add(cost as i64);
                    (share > 0 && after <= share as i64 && p < share as i64).then_some(after)
                });
            match ok {
                Ok(_) => taken.push((key, g.expire_at[j])),
                Err(p) => {
                    drop(entry);
                    for (k, e) in &taken {
                        book.owe(k, -(cost as i64), *e);
                    }
                    return Err((g.first + j, seen.saturating_add(p.max(0) as u64)));
                }
            }
        }
    }
    Ok(SharedHold::new(cluster, groups, cost, true))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::{Cluster, ClusterConfig};
    use crate::tenants::ScopeKind;
    use std::time::Duration;

    fn cluster() -> Arc<Cluster> {
        // Nothing listens on port 1: the replica is degraded from the start.
        Cluster::start(
            ClusterConfig {
                redis_url: "redis://127.0.0.1:1".into(),
                timeout: Duration::from_millis(5),
                connect_timeout: Duration::from_millis(50),
                node: "t".into(),
                exact: true,
                lease_ttl: Duration::from_secs(3),
                heartbeat: Duration::from_secs(1),
                refuse_when_down: false,
            },
            Arc::default(),
        )
        .unwrap()
    }

    #[test]
    fn while_redis_is_away_a_replica_spends_its_share_and_owes_it_once() {
        let c = cluster();
        let caps = [Cap::daily_for_test("a", 100, 1_000)];
        let key = budget_key(&scope_tag(ScopeKind::Key, "a"), None, false, 1_000);
        // Redis last said 40 of 100 were committed; two replicas live.
        c.budgets.saw(&key, 40, i64::MAX);
        c.live.store(2, Ordering::Relaxed);
        let mut first = reserve_while_down(&c, &caps, 20).unwrap();
        let _second = reserve_while_down(&c, &caps, 10).unwrap();
        let refused = reserve_while_down(&c, &caps, 1).err();
        assert_eq!(
            refused,
            Some((0, 70)),
            "the share of (100 - 40) / 2 is spent"
        );
        // Settled lower: the difference is owed too.
        first.settle(15);
        assert_eq!(c.budgets.pending_total(), 25);
        let mut n = 0;
        let writes = c.budgets.take_pending(|k| {
            n += 1;
            format!("{k}:once:{n}")
        });
        assert_eq!(writes.len(), 1);
        assert!(
            matches!(&writes[0], Write::Spend { delta: 25, settle: false, token, .. } if token.ends_with(":once:1")),
            "{writes:?}"
        );
        assert_eq!(c.budgets.pending_total(), 0, "handed over once");
    }
}
