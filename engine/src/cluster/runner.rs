//! The cluster thread: its own single-threaded runtime keeps the Redis
//! connection (reconnecting as needed), beats the heartbeat that counts
//! live replicas and brings a degraded replica back to shared state,
//! renews the leases of running requests, and performs the writes the
//! request path queued (settlements, releases), a batch at a time.

use super::scripts::scripts;
use super::{keys, Cluster};
use crate::resilience::health::HealthRegistry;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc::Receiver;

/// Background writes queued at most; past it they are dropped and counted.
pub(super) const WRITE_QUEUE: usize = 65_536;

/// What the runner writes to Redis off the request path.
#[derive(Debug, Clone)]
pub(crate) enum Write {
    /// Move one scope's buckets by `delta` (see the `ADJUST` script).
    Adjust {
        keys: Vec<String>,
        rates: Vec<u64>,
        delta: i64,
    },
    /// Take `member` out of lease sets.
    Unlease { keys: Vec<String>, member: String },
    /// Add `delta` to budget counters (one scope's), exactly once: by a
    /// hold's marker (`settle`), or by a fresh token (`once`).
    Spend {
        keys: Vec<String>,
        expire_at: Vec<i64>,
        delta: i64,
        token: String,
        settle: bool,
    },
    /// Take back a reservation whose answer was lost, if it was made.
    Unreserve {
        keys: Vec<String>,
        expire_at: Vec<i64>,
        marker: String,
    },
    /// Refill a pool that ran low (`pooled` mode).
    TopUp(Arc<super::pooled::Pool>),
    /// Record and publish news about an upstream key.
    KeyHealth(super::health::KeyNews),
    /// Say when every write queued before this one was performed.
    Flush(std::sync::mpsc::Sender<()>),
}

impl Cluster {
    /// Queue a background write; a full queue drops it (counted).
    pub(crate) fn write(&self, w: Write) {
        if self.writes.try_send(w).is_err() {
            self.stats.dropped_writes.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// Writes performed together (pipelined on the one connection).
const BATCH: usize = 512;

pub fn spawn(
    cluster: Arc<Cluster>,
    queue: Receiver<Write>,
    registry: Arc<HealthRegistry>,
) -> std::io::Result<()> {
    std::thread::Builder::new()
        .name("switchyard-cluster".into())
        .spawn(move || {
            let rt = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(rt) => rt,
                Err(e) => {
                    tracing::error!(error = %e, "cluster: cannot start its runtime; limits stay local");
                    return;
                }
            };
            rt.block_on(async move {
                tokio::spawn(super::health::listen(cluster.clone(), registry));
                run(cluster, queue).await
            });
        })
        .map(|_| ())
}

/// Background calls may wait longer than the request path's.
fn background_deadline(c: &Cluster) -> Duration {
    c.config.connect_timeout.max(c.config.timeout)
}

async fn run(cluster: Arc<Cluster>, mut queue: Receiver<Write>) {
    let mut beat = tokio::time::interval(cluster.config.heartbeat);
    beat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut renew = tokio::time::interval(cluster.config.lease_ttl / 3);
    renew.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut batch = Vec::with_capacity(BATCH);
    loop {
        tokio::select! {
            _ = beat.tick() => {
                heartbeat(&cluster).await;
                // Idle pools give their credit back.
                let mut returns = cluster.pools.drain(super::pooled::IDLE);
                if !returns.is_empty() {
                    perform(&cluster, &mut returns).await;
                }
            }
            _ = renew.tick() => renew_leases(&cluster).await,
            n = queue.recv_many(&mut batch, BATCH) => {
                if n == 0 {
                    return;
                }
                perform(&cluster, &mut batch).await;
            }
        }
    }
}

/// Say this replica is alive and count the live ones; reconnect first if
/// needed, and once more if the connection turns out dead.
async fn heartbeat(c: &Cluster) {
    for _ in 0..2 {
        if !c.link.connected() {
            if let Err(e) = c.link.connect().await {
                c.trouble(&e);
                return;
            }
        }
        let ttl_ms = (c.config.heartbeat.as_millis() as u64).saturating_mul(3);
        let mut inv = scripts().heartbeat.prepare_invoke();
        inv.key(keys::nodes()).arg(&c.config.node).arg(ttl_ms);
        match c.link.call::<u32>(&inv, background_deadline(c)).await {
            Ok(live) => {
                // Spend made while Redis was away goes in before the
                // replica decides in Redis again.
                // (Holds made while it was away settle into the book later:
                // every beat hands the book over.)
                let mut owed = c
                    .budgets
                    .take_pending(|key| keys::once_token(key, &c.config.node, c.next_id()));
                let written = owed.is_empty() || perform(c, &mut owed).await;
                c.budgets.prune(jiff::Timestamp::now().as_millisecond());
                if written {
                    c.recovered(live);
                }
                return;
            }
            Err(e) => {
                c.trouble(&e);
                c.link.disconnect();
            }
        }
    }
}

async fn renew_leases(c: &Cluster) {
    if !c.link.connected() {
        return;
    }
    let ttl_ms = c.config.lease_ttl.as_millis() as u64;
    let leases = c.leases.snapshot();
    let mut invocations = Vec::new();
    for lease in &leases {
        for sets in &lease.sets {
            let mut inv = scripts().renew.prepare_invoke();
            for k in sets {
                inv.key(k);
            }
            inv.arg(&lease.member).arg(ttl_ms);
            invocations.push((inv, sets.len()));
        }
    }
    let deadline = background_deadline(c);
    let answers = futures_util::future::join_all(
        invocations
            .iter()
            .map(|(inv, _)| c.link.call::<u64>(inv, deadline)),
    )
    .await;
    for ((_, sets), a) in invocations.iter().zip(answers) {
        match a {
            // `CH` counts changed scores: every set should have the member.
            Ok(n) if n as usize >= *sets => {}
            Ok(n) => {
                c.stats
                    .lost_leases
                    .fetch_add((*sets - n as usize) as u64, Ordering::Relaxed);
            }
            Err(e) => {
                c.trouble(&e);
                return;
            }
        }
    }
}

/// How long a `once` token guards its write against a second application.
const TOKEN_TTL_MS: u64 = 3_600_000;

/// Token settlements of the same buckets become one: under load, most
/// requests of a key settle within the same batch, and one script then
/// serves them all. (Charges and refunds add up to the same level once the
/// bucket is ahead of now, which it is while tokens are being settled.)
fn coalesce(batch: &mut Vec<Write>) {
    let mut merged: Vec<Write> = Vec::with_capacity(batch.len());
    let mut at: std::collections::HashMap<(Vec<String>, Vec<u64>), usize> = Default::default();
    for w in batch.drain(..) {
        match w {
            Write::Adjust { keys, rates, delta } => match at.get(&(keys.clone(), rates.clone())) {
                Some(&i) => {
                    if let Some(Write::Adjust { delta: d, .. }) = merged.get_mut(i) {
                        *d = d.saturating_add(delta);
                    }
                }
                None => {
                    at.insert((keys.clone(), rates.clone()), merged.len());
                    merged.push(Write::Adjust { keys, rates, delta });
                }
            },
            other => merged.push(other),
        }
    }
    merged.retain(|w| !matches!(w, Write::Adjust { delta: 0, .. }));
    *batch = merged;
}

/// Perform a batch of writes; whether all of them reached Redis.
async fn perform(c: &Cluster, batch: &mut Vec<Write>) -> bool {
    let deadline = background_deadline(c);
    let mut top_ups = Vec::new();
    let mut invocations = Vec::new();
    let mut flushed = Vec::new();
    // Per invocation, the budget write to keep if it fails.
    let mut owed = Vec::new();
    coalesce(batch);
    for w in batch.drain(..) {
        match &w {
            Write::Adjust { keys, rates, delta } => {
                let mut inv = scripts().adjust.prepare_invoke();
                for k in keys {
                    inv.key(k);
                }
                inv.arg(delta);
                for r in rates {
                    inv.arg(r);
                }
                invocations.push(inv);
            }
            Write::Unlease { keys, member } => {
                let mut inv = scripts().unlease.prepare_invoke();
                for k in keys {
                    inv.key(k);
                }
                inv.arg(member);
                invocations.push(inv);
            }
            Write::Spend {
                keys,
                expire_at,
                delta,
                token,
                settle,
            } => {
                let mut inv = scripts().spend.prepare_invoke();
                for k in keys {
                    inv.key(k);
                }
                inv.key(token);
                inv.arg(delta)
                    .arg(if *settle { "settle" } else { "once" })
                    .arg(TOKEN_TTL_MS);
                for e in expire_at {
                    inv.arg(e);
                }
                invocations.push(inv);
            }
            Write::Unreserve {
                keys,
                expire_at,
                marker,
            } => {
                let mut inv = scripts().unreserve.prepare_invoke();
                for k in keys {
                    inv.key(k);
                }
                inv.key(marker);
                for e in expire_at {
                    inv.arg(e);
                }
                invocations.push(inv);
            }
            Write::KeyHealth(news) => {
                invocations.push(super::health::announce(news));
            }
            Write::TopUp(pool) => top_ups.push(pool.clone()),
            Write::Flush(done) => flushed.push(done.clone()),
        }
        // Budget writes are kept to send again should this one fail (each
        // is applied once, by its token, however often it is sent).
        match &w {
            Write::Spend { token, .. } | Write::Unreserve { marker: token, .. } => {
                owed.push(Some((token.clone(), w)))
            }
            Write::TopUp(_) | Write::Flush(_) => {}
            _ => owed.push(None),
        }
    }
    let writes = futures_util::future::join_all(
        invocations
            .iter()
            .map(|inv| c.link.call::<redis::Value>(inv, deadline)),
    );
    let refills = futures_util::future::join_all(
        top_ups
            .iter()
            .map(|p| super::pooled::top_up(c, p, deadline)),
    );
    let (answers, _) = tokio::join!(writes, refills);
    let mut trouble = None;
    for (a, owed) in answers.into_iter().zip(owed) {
        let Err(e) = a else { continue };
        trouble = Some(e);
        // Spend is kept until Redis takes it. Other writes are let go: a
        // lease comes back at expiry, a token settlement is the gap
        // between an estimate and the actual use.
        if let Some((token, w)) = owed {
            c.budgets.retry(token, w);
        }
    }
    for done in flushed {
        let _ = done.send(());
    }
    match trouble {
        Some(e) => {
            c.trouble(&e);
            false
        }
        None => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settlements_of_the_same_buckets_become_one_and_nothing_else_moves() {
        let adjust = |k: &str, d: i64| Write::Adjust {
            keys: vec![k.into()],
            rates: vec![60],
            delta: d,
        };
        let mut batch = vec![
            adjust("a", 5),
            Write::Unlease {
                keys: vec!["l".into()],
                member: "m".into(),
            },
            adjust("b", 3),
            adjust("a", -2),
            adjust("b", -3),
        ];
        coalesce(&mut batch);
        assert_eq!(batch.len(), 2, "{batch:?}");
        assert!(matches!(&batch[0], Write::Adjust { keys, delta: 3, .. } if keys == &["a"]));
        assert!(matches!(&batch[1], Write::Unlease { .. }));
    }
}
