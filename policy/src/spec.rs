//! The YAML schema operators write. Unknown fields are rejected so that a
//! typo (`base_ulr`) is an error with a line number, not a silent default.

use serde::Deserialize;
use std::collections::BTreeMap;

mod cluster;
mod listener;
mod routing;
mod tenancy;
pub use cluster::*;
pub use listener::*;
pub use routing::*;
pub use tenancy::*;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicySpec {
    pub version: u32,
    #[serde(default)]
    pub listener: ListenerSpec,
    pub providers: BTreeMap<String, ProviderSpec>,
    #[serde(default)]
    pub models: BTreeMap<String, AliasSpec>,
    #[serde(default)]
    pub client_keys: Vec<ClientKeySpec>,
    #[serde(default)]
    pub retry_budget: RetryBudgetSpec,
    #[serde(default)]
    pub tenancy: TenancySpec,
    #[serde(default)]
    pub users: BTreeMap<String, PrincipalSpec>,
    #[serde(default)]
    pub teams: BTreeMap<String, PrincipalSpec>,
    #[serde(default)]
    pub prices: BTreeMap<String, PriceSpec>,
    #[serde(default)]
    pub usage: UsageSpec,
    #[serde(default)]
    pub admin_keys: Vec<AdminKeySpec>,
    #[serde(default)]
    pub classifier: ClassifierSpec,
    #[serde(default)]
    pub routers: BTreeMap<String, RouterSpec>,
    /// Replicas sharing limits through Redis; absent: a single node.
    #[serde(default)]
    pub cluster: Option<ClusterSpec>,
}

/// Retries (and hedges) may add at most `ratio` of the request rate, plus a
/// floor of `min_per_second` so that a quiet gateway can still retry.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetryBudgetSpec {
    #[serde(default = "default_budget_ratio")]
    pub ratio: f64,
    #[serde(default = "default_budget_floor")]
    pub min_per_second: u32,
}

impl Default for RetryBudgetSpec {
    fn default() -> Self {
        RetryBudgetSpec {
            ratio: default_budget_ratio(),
            min_per_second: default_budget_floor(),
        }
    }
}

fn default_budget_ratio() -> f64 {
    0.2
}
fn default_budget_floor() -> u32 {
    10
}

#[derive(Debug, Deserialize, Clone, Copy)]
#[serde(rename_all = "snake_case")]
pub enum ProviderKindSpec {
    Openai,
    OpenaiCompatible,
    Anthropic,
    Gemini,
    Cohere,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProviderSpec {
    pub kind: ProviderKindSpec,
    pub base_url: String,
    /// Lets clients address `<provider>/<model>` directly.
    #[serde(default)]
    pub allow_direct: bool,
    #[serde(default)]
    pub keys: Vec<UpstreamKeySpec>,
    #[serde(default)]
    pub timeouts: TimeoutSpec,
    /// When every key of a tier is unusable, use the next tier.
    #[serde(default = "yes")]
    pub cross_tier_failover: bool,
    /// How long a 429 cools a key down when the provider gives no hint.
    #[serde(default = "default_cooldown_ms")]
    pub default_cooldown_ms: u64,
    #[serde(default)]
    pub breaker: BreakerSpec,
    /// Quirks of an OpenAI-compatible server.
    #[serde(default)]
    pub compat: Option<CompatSpec>,
}

/// See `compat.rs`: a preset, overridden field by field.
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct CompatSpec {
    #[serde(default)]
    pub preset: Option<String>,
    /// `max_tokens` or `max_completion_tokens`: the one field the server takes.
    #[serde(default)]
    pub max_tokens_field: Option<String>,
    /// Parameters removed before sending (reported to the client).
    #[serde(default)]
    pub drop_params: Option<Vec<String>>,
    /// Parameters sent under another name.
    #[serde(default)]
    pub rename_params: Option<BTreeMap<String, String>>,
    /// The server's name for reasoning text, answered as `reasoning_content`.
    #[serde(default)]
    pub reasoning_field: Option<String>,
    /// Non-standard answer fields removed (top level and per choice).
    #[serde(default)]
    pub strip_fields: Option<Vec<String>>,
}

fn yes() -> bool {
    true
}
fn default_cooldown_ms() -> u64 {
    5_000
}

/// Circuit breaker settings, for each key and each (provider, model) target.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BreakerSpec {
    /// Open after this many failures in a row.
    #[serde(default = "default_consecutive")]
    pub consecutive_failures: u32,
    /// Or when this fraction of the window's calls failed…
    #[serde(default = "default_ratio")]
    pub error_ratio: f64,
    /// …and the window saw at least this many calls.
    #[serde(default = "default_min_calls")]
    pub min_calls: u32,
    #[serde(default = "default_window_ms")]
    pub window_ms: u64,
    /// First open period; doubles on each failed probe up to `max_open_ms`.
    #[serde(default = "default_open_ms")]
    pub open_ms: u64,
    #[serde(default = "default_max_open_ms")]
    pub max_open_ms: u64,
}

impl Default for BreakerSpec {
    fn default() -> Self {
        BreakerSpec {
            consecutive_failures: default_consecutive(),
            error_ratio: default_ratio(),
            min_calls: default_min_calls(),
            window_ms: default_window_ms(),
            open_ms: default_open_ms(),
            max_open_ms: default_max_open_ms(),
        }
    }
}

fn default_consecutive() -> u32 {
    5
}
fn default_ratio() -> f64 {
    0.5
}
fn default_min_calls() -> u32 {
    20
}
fn default_window_ms() -> u64 {
    10_000
}
fn default_open_ms() -> u64 {
    1_000
}
fn default_max_open_ms() -> u64 {
    60_000
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpstreamKeySpec {
    pub key: String,
    /// Lower tiers are used first.
    #[serde(default)]
    pub tier: u32,
    #[serde(default)]
    pub name: Option<String>,
    /// Requests this key may have in flight at once; absent = no cap.
    #[serde(default)]
    pub max_concurrency: Option<u32>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TimeoutSpec {
    /// TCP connect plus TLS handshake.
    #[serde(default = "default_connect_ms")]
    pub connect_ms: u64,
    /// From sending the request to the first body byte.
    #[serde(default = "default_first_byte_ms")]
    pub first_byte_ms: u64,
    /// Longest silence between two body chunks.
    #[serde(default = "default_idle_ms")]
    pub idle_ms: u64,
    /// The whole attempt, streaming included.
    #[serde(default = "default_total_ms")]
    pub total_ms: u64,
}

impl Default for TimeoutSpec {
    fn default() -> Self {
        TimeoutSpec {
            connect_ms: default_connect_ms(),
            first_byte_ms: default_first_byte_ms(),
            idle_ms: default_idle_ms(),
            total_ms: default_total_ms(),
        }
    }
}

fn default_connect_ms() -> u64 {
    5_000
}
fn default_first_byte_ms() -> u64 {
    120_000
}
fn default_idle_ms() -> u64 {
    60_000
}
fn default_total_ms() -> u64 {
    600_000
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AliasSpec {
    pub targets: Vec<TargetSpec>,
    /// How to order targets of equal priority.
    #[serde(default)]
    pub balance: BalanceSpec,
    #[serde(default)]
    pub retry: RetrySpec,
    #[serde(default)]
    pub hedge: Option<HedgeSpec>,
}

#[derive(Debug, Deserialize, Default, Clone, Copy)]
#[serde(rename_all = "snake_case")]
pub enum BalanceSpec {
    #[default]
    RoundRobin,
    Weighted,
    /// Power of two choices on peak-EWMA latency times in-flight requests.
    LeastLatency,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetrySpec {
    /// Attempts per request, the first included.
    #[serde(default = "default_attempts")]
    pub max_attempts: u32,
    /// Give up (with the last error) after this long.
    #[serde(default = "default_deadline_ms")]
    pub deadline_ms: u64,
    /// Full-jitter exponential backoff between attempts on the same target.
    #[serde(default = "default_backoff_ms")]
    pub backoff_ms: u64,
    #[serde(default = "default_max_backoff_ms")]
    pub max_backoff_ms: u64,
}

impl Default for RetrySpec {
    fn default() -> Self {
        RetrySpec {
            max_attempts: default_attempts(),
            deadline_ms: default_deadline_ms(),
            backoff_ms: default_backoff_ms(),
            max_backoff_ms: default_max_backoff_ms(),
        }
    }
}

fn default_attempts() -> u32 {
    3
}
fn default_deadline_ms() -> u64 {
    600_000
}
fn default_backoff_ms() -> u64 {
    50
}
fn default_max_backoff_ms() -> u64 {
    1_000
}

/// Send a second attempt to the next target when the first has not
/// produced a byte after `after_ms`, or after the target's observed
/// `percentile` time to first byte (whichever is given; both: the larger).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HedgeSpec {
    #[serde(default)]
    pub after_ms: Option<u64>,
    #[serde(default)]
    pub percentile: Option<f64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TargetSpec {
    pub provider: String,
    pub model: String,
    /// Lower first; absent = the target's position in the list, so a plain
    /// list is a failover chain.
    #[serde(default)]
    pub priority: Option<u32>,
    /// For `balance: weighted`.
    #[serde(default = "one")]
    pub weight: u32,
}

fn one() -> u32 {
    1
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientKeySpec {
    pub name: String,
    /// The key itself (hashed at compile time; only the hash is stored).
    #[serde(default)]
    pub key: Option<String>,
    /// Or its SHA-256, hex, as printed by `policyc mint-key`.
    #[serde(default)]
    pub key_sha256: Option<String>,
    /// Model names this key may call: exact names, `prefix*` or `*`.
    #[serde(default = "all_models")]
    pub models: Vec<String>,
    #[serde(default)]
    pub user: Option<String>,
    /// Default: the user's team.
    #[serde(default)]
    pub team: Option<String>,
    #[serde(default)]
    pub status: KeyStatusSpec,
    /// RFC 3339 time after which the key is refused.
    #[serde(default)]
    pub expires_at: Option<String>,
    /// Client addresses (IPs or CIDRs, v4 and v6) the key may be used from;
    /// empty = anywhere.
    #[serde(default)]
    pub source_ips: Vec<String>,
    /// Routing tier (free-form, e.g. `free`, `pro`).
    #[serde(default)]
    pub tier: Option<String>,
    #[serde(default)]
    pub metadata: BTreeMap<String, String>,
    #[serde(default)]
    pub limits: LimitsSpec,
    #[serde(default)]
    pub budgets: BudgetsSpec,
}

fn all_models() -> Vec<String> {
    vec!["*".into()]
}
