//! Shared rate limits, `exact` mode: every admission is decided in Redis,
//! one atomic script per scope (its keys share a hash tag), the scripts of
//! one request sent together, and those of concurrent requests batched
//! ([`super::batch`]). A request refused by one scope gives back
//! what the others took. Concurrency slots are leases: members of a sorted
//! set scored by their expiry, renewed by the runner while the request
//! runs, so the slots of a replica that dies come back within the TTL.

use super::batch::Ask;
use super::keys::{limit_keys, scope_tag};
use super::runner::Write;
use super::Cluster;
use crate::error::LimitKind;
use crate::limits::Entry;
use dashmap::DashMap;
use std::sync::Arc;
use std::time::Duration;

/// The leases this replica holds, for renewal.
#[derive(Default)]
pub struct Leases {
    held: DashMap<u64, Arc<Lease>>,
}

#[derive(Debug)]
pub struct Lease {
    pub member: String,
    /// Lease sets, grouped by scope (one slot each).
    pub sets: Vec<Vec<String>>,
}

impl Leases {
    pub fn snapshot(&self) -> Vec<Arc<Lease>> {
        self.held.iter().map(|e| e.value().clone()).collect()
    }

    pub fn count(&self) -> usize {
        self.held.len()
    }
}

/// A scope's part of one admission.
struct ScopeCall {
    rpm_keys: Vec<(String, u64)>,
    tpm_keys: Vec<(String, u64)>,
    lease_sets: Vec<String>,
    /// Index in the request's entries of this call's first entry.
    first: usize,
    /// Per entry its three keys and three rates, as `ADMIT_MANY` takes them
    /// (moved into the batch).
    keys: Vec<String>,
    rates: Vec<u64>,
}

pub enum Admission {
    Admitted(SharedPermit),
    Refused {
        /// Index of the refusing entry.
        entry: usize,
        kind: LimitKind,
        wait: Option<Duration>,
    },
}

/// An admission decided through Redis.
pub enum SharedPermit {
    Exact(ExactPermit),
    Pooled(super::pooled::PooledPermit),
}

impl SharedPermit {
    /// Replace the token estimate by the tokens actually used.
    pub fn settle(&mut self, actual: u64) {
        match self {
            SharedPermit::Exact(p) => p.settle(actual),
            SharedPermit::Pooled(p) => p.settle(actual),
        }
    }
}

/// An admission held in Redis.
pub struct ExactPermit {
    cluster: Arc<Cluster>,
    lease: Option<(u64, Arc<Lease>)>,
    /// Token buckets, per scope.
    tokens_in: Vec<(Vec<String>, Vec<u64>)>,
    tokens: u64,
}

impl ExactPermit {
    pub fn settle(&mut self, actual: u64) {
        let delta = actual as i64 - self.tokens as i64;
        if delta != 0 {
            for (keys, rates) in &self.tokens_in {
                self.cluster.write(Write::Adjust {
                    keys: keys.clone(),
                    rates: rates.clone(),
                    delta,
                });
            }
        }
        self.tokens = actual;
    }
}

impl Drop for ExactPermit {
    fn drop(&mut self) {
        if let Some((id, lease)) = self.lease.take() {
            self.cluster.leases.held.remove(&id);
            for keys in &lease.sets {
                self.cluster.write(Write::Unlease {
                    keys: keys.clone(),
                    member: lease.member.clone(),
                });
            }
        }
    }
}

/// Group the entries by scope, in order (entries of one scope are adjacent).
fn calls(entries: &[Entry<'_>]) -> Vec<ScopeCall> {
    let mut out: Vec<ScopeCall> = Vec::new();
    let mut current: Option<(crate::tenants::ScopeKind, &str)> = None;
    let mut tag = String::new();
    for (i, e) in entries.iter().enumerate() {
        if current != Some((e.kind, e.name)) {
            current = Some((e.kind, e.name));
            tag = scope_tag(e.kind, e.name);
            out.push(ScopeCall {
                rpm_keys: Vec::new(),
                tpm_keys: Vec::new(),
                lease_sets: Vec::new(),
                first: i,
                keys: Vec::new(),
                rates: Vec::new(),
            });
        }
        let Some(call) = out.last_mut() else { continue };
        let [rpm, tpm, conc] = limit_keys(&tag, e.pattern);
        if e.rpm > 0 {
            call.rpm_keys.push((rpm.clone(), e.rpm));
        }
        if e.tpm > 0 {
            call.tpm_keys.push((tpm.clone(), e.tpm));
        }
        if e.concurrency > 0 {
            call.lease_sets.push(conc.clone());
        }
        call.keys.extend([rpm, tpm, conc]);
        call.rates.extend([e.rpm, e.tpm, u64::from(e.concurrency)]);
    }
    out
}

/// Decide an admission in Redis. `Err` when Redis did not answer in time
/// (the cluster is then degraded and the caller decides locally).
pub(crate) async fn admit(
    cluster: &Arc<Cluster>,
    entries: &[Entry<'_>],
    tokens: u64,
) -> Result<Admission, ()> {
    let this = cluster.clone();
    let mut calls = calls(entries);
    let id = cluster.next_id();
    let member = format!("{}#{id}", cluster.config.node);
    // Every scope's admission joins the batch of its scope and entries.
    let answers = futures_util::future::join_all(calls.iter_mut().map(|c| {
        let (keys, rates) = (std::mem::take(&mut c.keys), std::mem::take(&mut c.rates));
        super::batch::admit(cluster, Ask::new(keys, rates, member.clone(), tokens))
    }))
    .await;
    let mut refusal = None;
    let mut failed = None;
    for (c, a) in calls.iter().zip(&answers) {
        match a {
            Ok(v) if v.first() == Some(&0) => {}
            Ok(v) if v.len() == 3 && refusal.is_none() => {
                let kind = match v[1] {
                    1 => LimitKind::Concurrency,
                    2 => LimitKind::Requests,
                    _ => LimitKind::Tokens,
                };
                let wait = u64::try_from(v[2]).ok().map(Duration::from_millis);
                let entry = c.first + usize::try_from(v[0] - 1).unwrap_or(0);
                refusal = Some(Admission::Refused { entry, kind, wait });
            }
            Ok(_) => {}
            Err(e) => failed = Some(e.clone()),
        }
    }
    if refusal.is_some() || failed.is_some() {
        // Give back what the scopes that admitted took.
        for (c, a) in calls.iter().zip(&answers) {
            if matches!(a, Ok(v) if v.first() == Some(&0)) {
                give_back(&this, c, &member, tokens);
            }
        }
        if let Some(why) = failed {
            cluster.trouble(&why);
            return Err(());
        }
    }
    if let Some(r) = refusal {
        return Ok(r);
    }
    let sets: Vec<Vec<String>> = calls
        .iter()
        .filter(|c| !c.lease_sets.is_empty())
        .map(|c| c.lease_sets.clone())
        .collect();
    let lease = (!sets.is_empty()).then(|| {
        let lease = Arc::new(Lease { member, sets });
        this.leases.held.insert(id, lease.clone());
        (id, lease)
    });
    let tokens_in = calls
        .iter()
        .filter(|c| !c.tpm_keys.is_empty())
        .map(|c| c.tpm_keys.iter().cloned().unzip())
        .collect();
    Ok(Admission::Admitted(SharedPermit::Exact(ExactPermit {
        cluster: this,
        lease,
        tokens_in,
        tokens,
    })))
}

fn give_back(cluster: &Cluster, c: &ScopeCall, member: &str, tokens: u64) {
    for (keys, delta) in [(&c.rpm_keys, -1), (&c.tpm_keys, -(tokens as i64))] {
        if !keys.is_empty() && delta != 0 {
            let (keys, rates) = keys.iter().cloned().unzip();
            cluster.write(Write::Adjust { keys, rates, delta });
        }
    }
    if !c.lease_sets.is_empty() {
        cluster.write(Write::Unlease {
            keys: c.lease_sets.clone(),
            member: member.to_string(),
        });
    }
}
