//! The compiled policy: flat, sorted and index-linked so the engine can use
//! the archived form in place (binary search, no deserialisation).

use rkyv::{Archive, Deserialize, Serialize};

mod cluster;
mod listener;
mod routing;
mod tenancy;
pub use cluster::*;
pub use listener::*;
pub use routing::*;
pub use tenancy::*;

#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct CompiledPolicy {
    pub source: String,
    pub listener: Listener,
    /// Sorted by name.
    pub providers: Vec<Provider>,
    /// Sorted by name.
    pub aliases: Vec<Alias>,
    /// Sorted by hash.
    pub client_keys: Vec<ClientKey>,
    pub retry_budget: RetryBudget,
    pub tenancy: Tenancy,
    pub routing: Routing,
    /// None: a single node, all state in memory.
    pub cluster: Option<Cluster>,
}

#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct RetryBudget {
    /// Retries allowed per original request, in thousandths.
    pub ratio_milli: u32,
    pub min_per_second: u32,
}

#[derive(Archive, Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
#[rkyv(derive(Debug, PartialEq, Eq, Clone, Copy))]
pub enum ProviderKind {
    OpenAi,
    OpenAiCompatible,
    Anthropic,
    Gemini,
    Cohere,
}

impl ProviderKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ProviderKind::OpenAi => "openai",
            ProviderKind::OpenAiCompatible => "openai_compatible",
            ProviderKind::Anthropic => "anthropic",
            ProviderKind::Gemini => "gemini",
            ProviderKind::Cohere => "cohere",
        }
    }
}

impl ArchivedProviderKind {
    pub fn native(self) -> ProviderKind {
        match self {
            ArchivedProviderKind::OpenAi => ProviderKind::OpenAi,
            ArchivedProviderKind::OpenAiCompatible => ProviderKind::OpenAiCompatible,
            ArchivedProviderKind::Anthropic => ProviderKind::Anthropic,
            ArchivedProviderKind::Gemini => ProviderKind::Gemini,
            ArchivedProviderKind::Cohere => ProviderKind::Cohere,
        }
    }
}

#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct Provider {
    pub name: String,
    pub kind: ProviderKind,
    /// As written (after interpolation), for display.
    pub base_url: String,
    pub tls: bool,
    pub host: String,
    pub port: u16,
    /// Path before the API's own paths, without a trailing slash (`/v1`).
    pub path_prefix: String,
    pub allow_direct: bool,
    /// Sorted by tier, then by position in the file.
    pub keys: Vec<UpstreamKey>,
    pub timeouts: Timeouts,
    pub cross_tier_failover: bool,
    pub default_cooldown_ms: u64,
    pub breaker: Breaker,
    pub compat: Compat,
}

/// What the engine changes for an OpenAI-compatible server. All empty:
/// requests and answers pass through byte for byte.
#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Default)]
pub struct Compat {
    /// Empty: as the client sent it; else `max_tokens` or `max_completion_tokens`.
    pub max_tokens_field: String,
    pub drop_params: Vec<String>,
    /// (client name, server name)
    pub rename_params: Vec<(String, String)>,
    /// Empty: none.
    pub reasoning_field: String,
    pub strip_fields: Vec<String>,
}

impl ArchivedCompat {
    pub fn changes_requests(&self) -> bool {
        !self.max_tokens_field.is_empty()
            || !self.drop_params.is_empty()
            || !self.rename_params.is_empty()
    }

    pub fn changes_answers(&self) -> bool {
        !self.reasoning_field.is_empty() || !self.strip_fields.is_empty()
    }
}

#[derive(Archive, Serialize, Deserialize, Debug, Clone, Copy, PartialEq)]
pub struct Timeouts {
    pub connect_ms: u64,
    pub first_byte_ms: u64,
    pub idle_ms: u64,
    pub total_ms: u64,
}

#[derive(Archive, Serialize, Deserialize, Debug, Clone, Copy, PartialEq)]
pub struct Breaker {
    pub consecutive_failures: u32,
    /// Thousandths.
    pub error_ratio_milli: u32,
    pub min_calls: u32,
    pub window_ms: u64,
    pub open_ms: u64,
    pub max_open_ms: u64,
}

#[derive(Archive, Serialize, Deserialize, Clone, PartialEq)]
pub struct UpstreamKey {
    pub name: String,
    pub secret: String,
    pub tier: u32,
    /// 0 = no cap.
    pub max_concurrency: u32,
}

// Secrets never reach logs, even through `{:?}`.
impl std::fmt::Debug for UpstreamKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UpstreamKey")
            .field("name", &self.name)
            .field("tier", &self.tier)
            .finish_non_exhaustive()
    }
}

#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct Alias {
    pub name: String,
    /// Sorted by priority (stable: list order within one priority).
    pub targets: Vec<Target>,
    pub balance: Balance,
    pub retry: Retry,
    pub hedge: Option<Hedge>,
}

#[derive(Archive, Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
#[rkyv(derive(Debug, PartialEq, Eq, Clone, Copy))]
pub enum Balance {
    RoundRobin,
    Weighted,
    LeastLatency,
}

#[derive(Archive, Serialize, Deserialize, Debug, Clone, Copy, PartialEq)]
pub struct Retry {
    pub max_attempts: u32,
    pub deadline_ms: u64,
    pub backoff_ms: u64,
    pub max_backoff_ms: u64,
}

#[derive(Archive, Serialize, Deserialize, Debug, Clone, Copy, PartialEq)]
pub struct Hedge {
    /// 0 = not set.
    pub after_ms: u64,
    /// Percentile of observed time to first byte, in thousandths; 0 = not set.
    pub percentile_milli: u32,
}

#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct Target {
    /// Index into `providers`.
    pub provider: u32,
    pub model: String,
    pub priority: u32,
    pub weight: u32,
}

#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct ClientKey {
    pub name: String,
    pub sha256: [u8; 32],
    /// Exact names, `prefix*` or `*`.
    pub models: Vec<String>,
    /// Index into `tenancy.users`.
    pub user: Option<u32>,
    /// Index into `tenancy.teams`.
    pub team: Option<u32>,
    pub suspended: bool,
    /// Unix seconds after which the key is refused.
    pub expires_at: Option<u64>,
    /// Empty = any address.
    pub source_ips: Vec<Cidr>,
    /// Empty = none.
    pub tier: String,
    pub metadata: Vec<(String, String)>,
    pub limits: Limits,
    pub budgets: Budgets,
}

impl ArchivedCompiledPolicy {
    pub fn alias(&self, name: &str) -> Option<&ArchivedAlias> {
        self.aliases.get(self.alias_index(name)?)
    }

    pub fn alias_index(&self, name: &str) -> Option<usize> {
        self.aliases
            .binary_search_by(|a| a.name.as_str().cmp(name))
            .ok()
    }

    pub fn provider(&self, name: &str) -> Option<(u32, &ArchivedProvider)> {
        let i = self
            .providers
            .binary_search_by(|p| p.name.as_str().cmp(name))
            .ok()?;
        Some((i as u32, self.providers.get(i)?))
    }

    pub fn provider_at(&self, index: u32) -> Option<&ArchivedProvider> {
        self.providers.get(index as usize)
    }

    /// The client key whose hash equals `sha256`, and its index.
    pub fn client_key_at(&self, sha256: &[u8; 32]) -> Option<(usize, &ArchivedClientKey)> {
        let key = self.client_key(sha256)?;
        let i = self
            .client_keys
            .binary_search_by(|k| k.sha256.cmp(sha256))
            .ok()?;
        Some((i, key))
    }

    /// The client key whose hash equals `sha256`, compared in constant time.
    pub fn client_key(&self, sha256: &[u8; 32]) -> Option<&ArchivedClientKey> {
        use subtle::ConstantTimeEq;
        // The search only learns about the hash of the presented key, which
        // says nothing useful about any stored key; the final equality check
        // is constant-time anyway.
        let i = self
            .client_keys
            .binary_search_by(|k| k.sha256.cmp(sha256))
            .ok()?;
        let key = self.client_keys.get(i)?;
        bool::from(key.sha256.ct_eq(sha256)).then_some(key)
    }
}

impl ArchivedClientKey {
    pub fn allows(&self, model: &str) -> bool {
        self.models
            .iter()
            .any(|p| pattern_matches(p.as_str(), model))
    }
}

/// `*` matches everything, `prefix*` a prefix, anything else exactly.
pub fn pattern_matches(pattern: &str, name: &str) -> bool {
    match pattern.strip_suffix('*') {
        Some(prefix) => name.starts_with(prefix),
        None => pattern == name,
    }
}
