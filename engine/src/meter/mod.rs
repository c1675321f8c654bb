//! Phase 9: what a request used and cost. [`tap::UsageTap`] reads the
//! provider's own bytes (whatever the client is sent) and takes the
//! provider's usage report; when a stream ends early without one, the
//! tokens already streamed are counted (see [`tap`]). [`cost`] prices it
//! exactly; [`record::UsageRecord`] is the one row per request.

pub mod cost;
pub mod record;
pub mod tap;
pub mod usage;

use crate::budgets::BudgetHold;
use crate::classify::RouteDecision;
use crate::limits::LimitPermit;
use record::UsageRecord;
use tap::UsageSource;
use usage::Usage;

/// What one request accrues on its way through the phases; turned into
/// its [`UsageRecord`] at the end, after limits and budgets settle.
#[derive(Default)]
pub struct Bill {
    pub alias: String,
    pub provider: String,
    pub model: String,
    pub usage: Usage,
    pub source: UsageSource,
    pub cost_nanos: u64,
    pub ttfb_us: u64,
    pub overhead_us: u64,
    pub limits: Option<LimitPermit>,
    pub budget: Option<BudgetHold>,
    /// The router's decision, for requests sent to a router.
    pub route: Option<RouteDecision>,
}

/// Who made the request, for the record.
pub struct Account<'a> {
    pub request_id: &'a str,
    pub ts_ms: i64,
    pub key: &'a str,
    pub user: &'a str,
    pub team: &'a str,
    pub task: &'a str,
    pub inbound: &'static str,
}

impl Bill {
    /// Settle limits and budgets to what was used, and write the record.
    pub fn close(
        mut self,
        who: &Account<'_>,
        status: u16,
        error: &str,
        attempts: u32,
        total_us: u64,
        now_ns: u64,
    ) -> UsageRecord {
        if let Some(p) = self.limits.as_mut() {
            p.settle(self.usage.total(), now_ns);
        }
        if let Some(h) = self.budget.as_mut() {
            h.settle(self.cost_nanos);
        }
        UsageRecord {
            request_id: who.request_id.to_string(),
            ts_ms: who.ts_ms,
            key: who.key.to_string(),
            user: who.user.to_string(),
            team: who.team.to_string(),
            task: who.task.to_string(),
            inbound: who.inbound,
            alias: self.alias,
            provider: self.provider,
            model: self.model,
            attempts,
            status,
            error: error.to_string(),
            usage: self.usage,
            usage_source: self.source,
            cost_nanos: self.cost_nanos,
            cache_hit: false,
            total_us,
            ttfb_us: self.ttfb_us,
            overhead_us: self.overhead_us,
            route: self
                .route
                .as_ref()
                .map(|d| format!("{}/{}", d.router, d.rule))
                .unwrap_or_default(),
            route_label: self
                .route
                .as_ref()
                .and_then(|d| d.label)
                .map(|(l, _)| l.to_string())
                .unwrap_or_default(),
            route_score: self.route.as_ref().and_then(|d| d.score).map(f64::from),
        }
    }
}
