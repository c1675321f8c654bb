//! Who may call, how much, and at what price: tenants (users and teams),
//! rate limits, spend budgets, prices and the usage ledger.

use serde::Deserialize;
use std::collections::BTreeMap;

/// Gateway-wide tenancy settings.
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct TenancySpec {
    /// IANA time zone that days and months of budgets follow (default UTC).
    #[serde(default)]
    pub timezone: Option<String>,
    /// Proxies whose `X-Forwarded-For` is believed: IPs or CIDRs.
    #[serde(default)]
    pub trusted_proxies: Vec<String>,
}

/// A user or a team: limits and budgets shared by all of its keys.
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct PrincipalSpec {
    /// Users only: the team the user belongs to.
    #[serde(default)]
    pub team: Option<String>,
    #[serde(default)]
    pub limits: LimitsSpec,
    #[serde(default)]
    pub budgets: BudgetsSpec,
}

/// Rate limits; absent = unlimited.
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct LimitsSpec {
    /// Requests per minute.
    #[serde(default)]
    pub rpm: Option<u64>,
    /// Tokens (input + output) per minute.
    #[serde(default)]
    pub tpm: Option<u64>,
    /// Requests in flight at once.
    #[serde(default)]
    pub concurrency: Option<u32>,
    /// Limits per model name or `prefix*` pattern (on keys: per key and model).
    #[serde(default)]
    pub per_model: BTreeMap<String, ModelLimitsSpec>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct ModelLimitsSpec {
    #[serde(default)]
    pub rpm: Option<u64>,
    #[serde(default)]
    pub tpm: Option<u64>,
    #[serde(default)]
    pub concurrency: Option<u32>,
}

/// Spend caps in the policy's currency; absent = uncapped.
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct BudgetsSpec {
    #[serde(default)]
    pub daily: Option<f64>,
    #[serde(default)]
    pub monthly: Option<f64>,
    #[serde(default)]
    pub per_model: BTreeMap<String, PeriodCapsSpec>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct PeriodCapsSpec {
    #[serde(default)]
    pub daily: Option<f64>,
    #[serde(default)]
    pub monthly: Option<f64>,
}

/// Price of a model, in currency per million tokens. Keyed by
/// `provider/model` (or a bare `model`, for any provider).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PriceSpec {
    pub input: f64,
    pub output: f64,
    /// Cache reads; default: the input price.
    #[serde(default)]
    pub cached_input: Option<f64>,
    /// Cache writes; default: the input price.
    #[serde(default)]
    pub cache_write: Option<f64>,
    /// Reasoning tokens; default: the output price.
    #[serde(default)]
    pub reasoning: Option<f64>,
    /// Output reserved against budgets when a request sets no `max_tokens`.
    #[serde(default)]
    pub max_output_tokens: Option<u32>,
}

/// The durable usage ledger.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UsageSpec {
    /// SQLite database file; empty = no ledger (usage is still metered).
    #[serde(default = "default_ledger")]
    pub ledger: String,
    /// Longest time a record waits before it is committed: the most a
    /// crash can lose.
    #[serde(default = "default_flush_ms")]
    pub flush_interval_ms: u64,
    /// Records queued for the writer; when full, new records are dropped
    /// and counted (`switchyard_usage_dropped_total`).
    #[serde(default = "default_queue")]
    pub queue_capacity: u32,
    /// A PostgreSQL database the fleet's usage is shipped to
    /// (`postgres://user:password@host:port/db`); the SQLite ledger is the
    /// spool while it is unreachable.
    #[serde(default)]
    pub postgres: Option<String>,
}

impl Default for UsageSpec {
    fn default() -> Self {
        UsageSpec {
            ledger: default_ledger(),
            flush_interval_ms: default_flush_ms(),
            queue_capacity: default_queue(),
            postgres: None,
        }
    }
}

fn default_ledger() -> String {
    "switchyard-usage.db".into()
}
fn default_flush_ms() -> u64 {
    200
}
fn default_queue() -> u32 {
    65_536
}

/// A key that may read `/admin/usage`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdminKeySpec {
    pub name: String,
    #[serde(default)]
    pub key: Option<String>,
    #[serde(default)]
    pub key_sha256: Option<String>,
}

#[derive(Debug, Deserialize, Default, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum KeyStatusSpec {
    #[default]
    Active,
    Suspended,
}
