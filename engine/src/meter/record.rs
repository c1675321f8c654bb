//! One usage record per request: what the ledger stores and reports read.

use super::tap::UsageSource;
use super::usage::Usage;

#[derive(Debug, Clone, PartialEq)]
pub struct UsageRecord {
    pub request_id: String,
    /// Unix milliseconds when the request arrived (budgets and reports
    /// place a request in the period it started in).
    pub ts_ms: i64,
    pub key: String,
    pub user: String,
    pub team: String,
    /// `x-task-id`, for agent runs.
    pub task: String,
    /// `openai` or `anthropic`: the API the client spoke.
    pub inbound: &'static str,
    /// The model name the client asked for.
    pub alias: String,
    pub provider: String,
    /// The provider's model name.
    pub model: String,
    pub attempts: u32,
    pub status: u16,
    /// Error code, empty on success.
    pub error: String,
    pub usage: Usage,
    pub usage_source: UsageSource,
    /// Nano-units of currency.
    pub cost_nanos: u64,
    /// Served from a response cache (no provider cost).
    pub cache_hit: bool,
    pub total_us: u64,
    /// Until the first byte of the provider's answer; 0 without one.
    pub ttfb_us: u64,
    /// Gateway time before the first attempt: auth, body, limits, routing.
    pub overhead_us: u64,
    /// `<router>/<rule>` for requests sent to a router, else empty.
    pub route: String,
    /// The prompt's most probable built-in label, when it was classified.
    pub route_label: String,
    /// The deciding rule's label probability or route similarity.
    pub route_score: Option<f64>,
}

impl UsageRecord {
    /// What the record holds in memory, strings included: the ledger's
    /// queue is bounded by it.
    pub fn size(&self) -> u64 {
        let strings = [
            &self.request_id,
            &self.key,
            &self.user,
            &self.team,
            &self.task,
            &self.alias,
            &self.provider,
            &self.model,
            &self.error,
            &self.route,
            &self.route_label,
        ];
        (std::mem::size_of::<Self>() + strings.iter().map(|s| s.len()).sum::<usize>()) as u64
    }
}
