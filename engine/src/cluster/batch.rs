//! Batched admissions (`exact` mode): the admissions concurrent requests
//! make at the same moment go to Redis together, one script call per
//! scope and set of entries for all of them ([`super::scripts`]'s
//! `ADMIT_MANY`), instead of one call each. A request joins the batch
//! being gathered; the first to arrive schedules a flush, which runs once
//! the requests ready on this runtime have had their turn, so a batch
//! costs a yield, not a timer. Under light load a batch is one request.

use super::link::CallError;
use super::scripts::scripts;
use super::Cluster;
use crossbeam_channel::{unbounded, Receiver, Sender};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::oneshot;

/// One request's admission in one scope.
pub struct Ask {
    /// The entries' keys (3 each) and rates (rpm, tpm, concurrency each):
    /// requests with the same ones share a call.
    pub keys: Vec<String>,
    pub rates: Vec<u64>,
    pub member: String,
    pub tokens: u64,
    answer: Option<oneshot::Sender<Result<Vec<i64>, CallError>>>,
}

pub struct Batcher {
    tx: Sender<Ask>,
    rx: Receiver<Ask>,
    scheduled: AtomicBool,
}

impl Default for Batcher {
    fn default() -> Self {
        let (tx, rx) = unbounded();
        Batcher {
            tx,
            rx,
            scheduled: AtomicBool::new(false),
        }
    }
}

/// Most requests in one call (bounds a script's run in Redis).
const MAX_BATCH: usize = 256;

impl Ask {
    pub fn new(keys: Vec<String>, rates: Vec<u64>, member: String, tokens: u64) -> Ask {
        Ask {
            keys,
            rates,
            member,
            tokens,
            answer: None,
        }
    }
}

/// Admit `ask` as part of the current batch; its answer as `ADMIT_MANY`
/// gives it.
pub async fn admit(cluster: &Arc<Cluster>, mut ask: Ask) -> Result<Vec<i64>, CallError> {
    let (tx, rx) = oneshot::channel();
    ask.answer = Some(tx);
    let b = &cluster.batcher;
    if b.tx.send(ask).is_err() {
        return Err(CallError::NotConnected);
    }
    if !b.scheduled.swap(true, Ordering::AcqRel) {
        let c = cluster.clone();
        tokio::spawn(async move {
            // Let the requests that are ready now join.
            tokio::task::yield_now().await;
            c.batcher.scheduled.store(false, Ordering::Release);
            flush(&c).await;
        });
    }
    match tokio::time::timeout(cluster.config.timeout, rx).await {
        Ok(Ok(answer)) => answer,
        Ok(Err(_)) => Err(CallError::NotConnected),
        Err(_) => Err(CallError::Timeout),
    }
}

async fn flush(c: &Cluster) {
    let asks: Vec<Ask> = c.batcher.rx.try_iter().collect();
    let mut groups: HashMap<(Vec<String>, Vec<u64>), Vec<Ask>> = HashMap::new();
    for mut a in asks {
        // The group holds the keys and rates; the ask keeps its answer.
        let group = (std::mem::take(&mut a.keys), std::mem::take(&mut a.rates));
        groups.entry(group).or_default().push(a);
    }
    let calls = groups.into_iter().flat_map(|((keys, rates), asks)| {
        let mut chunks = Vec::new();
        let mut asks = asks.into_iter().peekable();
        while asks.peek().is_some() {
            let chunk: Vec<Ask> = asks.by_ref().take(MAX_BATCH).collect();
            chunks.push((keys.clone(), rates.clone(), chunk));
        }
        chunks
    });
    let ttl = c.config.lease_ttl.as_millis() as u64;
    let deadline = c.config.timeout.max(Duration::from_millis(1));
    futures_util::future::join_all(calls.map(|(keys, rates, asks)| async move {
        let mut inv = scripts().admit_many.prepare_invoke();
        for k in &keys {
            inv.key(k);
        }
        inv.arg(ttl).arg(asks.len());
        for r in &rates {
            inv.arg(r);
        }
        for a in &asks {
            inv.arg(&a.member).arg(a.tokens);
        }
        let answer = c.link.call::<Vec<Vec<i64>>>(&inv, deadline).await;
        for (i, mut a) in asks.into_iter().enumerate() {
            let one = match &answer {
                Ok(all) => all
                    .get(i)
                    .cloned()
                    .ok_or_else(|| CallError::Redis("a short batch answer".into())),
                Err(e) => Err(e.clone()),
            };
            if let Some(tx) = a.answer.take() {
                let _ = tx.send(one);
            }
        }
    }))
    .await;
}
