//! The YAML schema operators write. Unknown fields are rejected so that a
//! typo (`base_ulr`) is an error with a line number, not a silent default.

use serde::Deserialize;
use std::collections::BTreeMap;

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
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListenerSpec {
    #[serde(default = "default_address")]
    pub address: String,
    /// Worker threads; 0 or absent means one per core.
    #[serde(default)]
    pub threads: u32,
    #[serde(default = "default_max_body")]
    pub max_body_bytes: u64,
    /// `webpki` (bundled Mozilla roots), `system`, or a PEM file path.
    #[serde(default = "default_ca")]
    pub upstream_ca: String,
}

impl Default for ListenerSpec {
    fn default() -> Self {
        ListenerSpec {
            address: default_address(),
            threads: 0,
            max_body_bytes: default_max_body(),
            upstream_ca: default_ca(),
        }
    }
}

fn default_address() -> String {
    "127.0.0.1:8080".into()
}
fn default_max_body() -> u64 {
    32 * 1024 * 1024
}
fn default_ca() -> String {
    "webpki".into()
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
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TimeoutSpec {
    #[serde(default = "default_connect_ms")]
    pub connect_ms: u64,
    /// Longest wait for the next byte from the provider (first byte included).
    #[serde(default = "default_read_ms")]
    pub read_ms: u64,
}

impl Default for TimeoutSpec {
    fn default() -> Self {
        TimeoutSpec {
            connect_ms: default_connect_ms(),
            read_ms: default_read_ms(),
        }
    }
}

fn default_connect_ms() -> u64 {
    5_000
}
fn default_read_ms() -> u64 {
    300_000
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AliasSpec {
    pub targets: Vec<TargetSpec>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TargetSpec {
    pub provider: String,
    pub model: String,
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
}

fn all_models() -> Vec<String> {
    vec!["*".into()]
}
