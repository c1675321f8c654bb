//! Spend caps per key, user and team, per day and month (and per model
//! pattern), with atomic pre-consumption: before dispatch the worst-case
//! cost is reserved in every cap that applies; afterwards the reservation
//! is replaced by the actual cost.
//!
//! The bound: at every admission, settled spend plus open reservations is
//! within the cap. A budget can be passed only by requests already
//! admitted whose actual cost exceeds their reservation, and a reservation
//! is the worst case whenever the provider honours `max_tokens` (prompt
//! tokens are bounded by the request's bytes; see `meter::cost`).
//!
//! In cluster mode the same reservations are made in Redis
//! ([`crate::cluster::budgets`]), so the bound holds across the fleet.

pub mod period;
pub mod spend;

use crate::cluster::budgets::SharedHold;
use crate::cluster::{Cluster, ClusterState};
use crate::error::{BudgetHit, GatewayError};
use crate::tenants::{Counters, Scope, ScopeKind};
use period::Periods;
use policy::{pattern_matches, ArchivedBudgets};
use std::sync::Arc;
use std::time::Duration;

pub struct Budgeted<'a> {
    pub kind: ScopeKind,
    pub name: &'a str,
    pub budgets: &'a ArchivedBudgets,
    pub scope: &'a Scope,
}

/// One cap that applies to a request.
pub(crate) struct Cap<'a> {
    pub kind: ScopeKind,
    pub name: &'a str,
    pub pattern: Option<&'a str>,
    pub monthly: bool,
    /// Nano-units.
    pub cap: u64,
    /// When the period ends (unix ms): it names the period in Redis.
    pub ends_ms: i64,
    counters: Arc<Counters>,
    tag: u8,
}

impl<'a> Cap<'a> {
    /// A daily cap of a client key, for tests of the shared path.
    #[cfg(test)]
    pub(crate) fn daily_for_test(name: &'a str, cap: u64, ends_ms: i64) -> Cap<'a> {
        Cap {
            kind: ScopeKind::Key,
            name,
            pattern: None,
            monthly: false,
            cap,
            ends_ms,
            counters: Arc::default(),
            tag: 0,
        }
    }

    pub(crate) fn exceeded(&self, committed: u64, needed: u64) -> GatewayError {
        let now = jiff::Timestamp::now().as_millisecond();
        GatewayError::BudgetExceeded(Box::new(BudgetHit {
            scope: self.kind.as_str(),
            name: self.name.to_string(),
            model: self.pattern.map(str::to_string),
            period: if self.monthly { "monthly" } else { "daily" },
            cap: self.cap,
            committed,
            needed,
            resets_in: Duration::from_millis((self.ends_ms - now).max(0) as u64),
        }))
    }
}

struct Held {
    counters: Arc<Counters>,
    monthly: bool,
    tag: u8,
}

/// Reservations of one request; settle them with the actual cost. Dropped
/// unsettled (the request never reached a provider), they are released.
pub struct BudgetHold {
    held: Vec<Held>,
    reserved: u64,
    settled: bool,
    /// Reserved through the cluster: settled there.
    shared: Option<SharedHold>,
}

impl BudgetHold {
    pub fn settle(&mut self, actual: u64) {
        if let Some(s) = &mut self.shared {
            s.settle(actual);
        }
        for h in &self.held {
            let counter = if h.monthly {
                &h.counters.monthly
            } else {
                &h.counters.daily
            };
            counter.settle(h.tag, self.reserved, actual);
        }
        self.settled = true;
    }
}

impl Drop for BudgetHold {
    fn drop(&mut self) {
        if !self.settled {
            self.settle(0);
        }
    }
}

fn caps<'a>(scopes: &[Budgeted<'a>], model: &str, periods: &Periods) -> Vec<Cap<'a>> {
    let mut out = Vec::new();
    for s in scopes {
        let b = s.budgets;
        let mut sets = vec![(None, b.daily.as_ref(), b.monthly.as_ref(), None)];
        for m in b.per_model.iter() {
            if pattern_matches(m.pattern.as_str(), model) {
                sets.push((
                    Some(s.scope.model(m.pattern.as_str())),
                    m.daily.as_ref(),
                    m.monthly.as_ref(),
                    Some(m.pattern.as_str()),
                ));
            }
        }
        for (counters, daily, monthly, pattern) in sets {
            let counters = counters.unwrap_or_else(|| s.scope.counters.clone());
            for (monthly, cap) in [(false, daily), (true, monthly)] {
                let Some(cap) = cap.map(|c| c.to_native()) else {
                    continue;
                };
                let (tag, ends_ms) = if monthly {
                    (periods.month_tag(), periods.month_end_ms)
                } else {
                    (periods.day_tag(), periods.day_end_ms)
                };
                out.push(Cap {
                    kind: s.kind,
                    name: s.name,
                    pattern,
                    monthly,
                    cap,
                    ends_ms,
                    counters: counters.clone(),
                    tag,
                });
            }
        }
    }
    out
}

/// Reserve `cost` (nano-units) against every cap that applies to `model`:
/// here, or in Redis when the replica is part of a cluster.
pub async fn reserve(
    cluster: Option<&Arc<Cluster>>,
    scopes: &[Budgeted<'_>],
    model: &str,
    cost: u64,
    periods: &Periods,
) -> Result<BudgetHold, GatewayError> {
    let caps = caps(scopes, model, periods);
    let Some(cluster) = cluster.filter(|_| !caps.is_empty()) else {
        return reserve_here(&caps, cost);
    };
    if cluster.state() == ClusterState::Shared {
        match crate::cluster::budgets::reserve(cluster, &caps, cost).await {
            Ok(Ok(shared)) => return Ok(hold(cost, shared)),
            Ok(Err((i, committed))) => return Err(caps[i].exceeded(committed, cost)),
            // Redis did not answer in time: decided here.
            Err(()) => {}
        }
    }
    if cluster.config.refuse_when_down {
        return Err(GatewayError::ClusterUnavailable);
    }
    match crate::cluster::budgets::reserve_while_down(cluster, &caps, cost) {
        Ok(shared) => Ok(hold(cost, shared)),
        Err((i, committed)) => Err(caps[i].exceeded(committed, cost)),
    }
}

fn hold(reserved: u64, shared: SharedHold) -> BudgetHold {
    BudgetHold {
        held: Vec::new(),
        reserved,
        settled: false,
        shared: Some(shared),
    }
}

/// Reserve against this replica's own counters (a single node).
fn reserve_here(caps: &[Cap<'_>], cost: u64) -> Result<BudgetHold, GatewayError> {
    let mut hold = BudgetHold {
        held: Vec::new(),
        reserved: cost,
        settled: false,
        shared: None,
    };
    for c in caps {
        let counter = if c.monthly {
            &c.counters.monthly
        } else {
            &c.counters.daily
        };
        if let Err(committed) = counter.reserve(c.tag, cost, c.cap) {
            // `hold` drops here and releases what it reserved.
            return Err(c.exceeded(committed, cost));
        }
        hold.held.push(Held {
            counters: c.counters.clone(),
            monthly: c.monthly,
            tag: c.tag,
        });
    }
    Ok(hold)
}

#[cfg(test)]
mod tests;
