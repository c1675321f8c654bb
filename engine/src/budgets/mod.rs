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

pub mod period;
pub mod spend;

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
}

impl BudgetHold {
    pub fn settle(&mut self, actual: u64) {
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

/// Reserve `cost` (nano-units) against every cap that applies to `model`.
pub fn reserve(
    scopes: &[Budgeted<'_>],
    model: &str,
    cost: u64,
    periods: &Periods,
) -> Result<BudgetHold, GatewayError> {
    let mut hold = BudgetHold {
        held: Vec::new(),
        reserved: cost,
        settled: false,
    };
    for s in scopes {
        let b = s.budgets;
        let mut caps = vec![(None, b.daily.as_ref(), b.monthly.as_ref(), None)];
        for m in b.per_model.iter() {
            if pattern_matches(m.pattern.as_str(), model) {
                caps.push((
                    Some(s.scope.model(m.pattern.as_str())),
                    m.daily.as_ref(),
                    m.monthly.as_ref(),
                    Some(m.pattern.as_str()),
                ));
            }
        }
        for (counters, daily, monthly, pattern) in caps {
            let counters = counters.unwrap_or_else(|| s.scope.counters.clone());
            for (monthly_cap, cap) in [(false, daily), (true, monthly)] {
                let Some(cap) = cap.map(|c| c.to_native()) else {
                    continue;
                };
                let (tag, ends) = if monthly_cap {
                    (periods.month_tag(), periods.month_end_ms)
                } else {
                    (periods.day_tag(), periods.day_end_ms)
                };
                let counter = if monthly_cap {
                    &counters.monthly
                } else {
                    &counters.daily
                };
                if let Err(committed) = counter.reserve(tag, cost, cap) {
                    let now = jiff::Timestamp::now().as_millisecond();
                    let hit = BudgetHit {
                        scope: s.kind.as_str(),
                        name: s.name.to_string(),
                        model: pattern.map(str::to_string),
                        period: if monthly_cap { "monthly" } else { "daily" },
                        cap,
                        committed,
                        needed: cost,
                        resets_in: Duration::from_millis((ends - now).max(0) as u64),
                    };
                    // `hold` drops here and releases what it reserved.
                    return Err(GatewayError::BudgetExceeded(Box::new(hit)));
                }
                hold.held.push(Held {
                    counters: counters.clone(),
                    monthly: monthly_cap,
                    tag,
                });
            }
        }
    }
    Ok(hold)
}

#[cfg(test)]
mod tests;
