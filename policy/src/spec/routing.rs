//! Semantic routing: the classifier's settings, operator-defined routes
//! (example utterances) and routers (ordered rules from a model name the
//! client sends to one of the policy's aliases).

use serde::Deserialize;
use std::collections::BTreeMap;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClassifierSpec {
    /// Off: label and route rules are skipped, the encoder never loads.
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Inference threads, each with its own ONNX Runtime session.
    #[serde(default = "one")]
    pub threads: u32,
    /// Prompts run as one encoder pass when they queue together.
    #[serde(default = "eight")]
    pub max_batch: u32,
    /// Pooled vectors kept by prompt-window hash.
    #[serde(default = "cache_entries")]
    pub cache_entries: u32,
    /// How long a request waits for its label before its label and route
    /// rules are skipped.
    #[serde(default = "timeout_ms")]
    pub timeout_ms: u64,
    /// Routes defined by example utterances, by name.
    #[serde(default)]
    pub routes: BTreeMap<String, SemanticRouteSpec>,
}

impl Default for ClassifierSpec {
    fn default() -> Self {
        ClassifierSpec {
            enabled: true,
            threads: 1,
            max_batch: 8,
            cache_entries: cache_entries(),
            timeout_ms: timeout_ms(),
            routes: BTreeMap::new(),
        }
    }
}

fn yes() -> bool {
    true
}
fn one() -> u32 {
    1
}
fn eight() -> u32 {
    8
}
fn cache_entries() -> u32 {
    16_384
}
fn timeout_ms() -> u64 {
    50
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SemanticRouteSpec {
    pub utterances: Vec<String>,
    /// Prompts nearer to one of these than to any utterance do not match.
    #[serde(default)]
    pub negatives: Vec<String>,
    /// Cosine similarity to the nearest utterance needed to match.
    #[serde(default = "route_threshold")]
    pub threshold: f64,
}

fn route_threshold() -> f64 {
    0.5
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouterSpec {
    /// First match wins.
    #[serde(default)]
    pub rules: Vec<RuleSpec>,
    /// The alias when no rule matches.
    pub default: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleSpec {
    /// Shown in `x-switchyard-route` and the ledger; default `rule-<n>`.
    #[serde(default)]
    pub name: Option<String>,
    /// Every condition given must hold.
    pub when: WhenSpec,
    /// The alias that serves a match.
    pub to: String,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct WhenSpec {
    /// A built-in task label (code, math, summarize, extract, translate,
    /// creative, chat).
    #[serde(default)]
    pub label: Option<String>,
    /// An operator-defined route under `classifier.routes`.
    #[serde(default)]
    pub route: Option<String>,
    /// For `label`: the label's probability (default: the built-in head's
    /// calibrated threshold for the label, 0.5 without one). For `route`: the
    /// similarity, instead of the route's own threshold.
    #[serde(default)]
    pub min_score: Option<f64>,
    /// Estimated input tokens, e.g. `">= 50000"`, `"< 2000"`.
    #[serde(default)]
    pub input_tokens: Option<String>,
    /// `image`: the request carries an image part; `text`: it does not.
    #[serde(default)]
    pub modality: Option<ModalitySpec>,
    /// The calling key's tier is one of these.
    #[serde(default)]
    pub tier: Option<Vec<String>>,
}

#[derive(Debug, Deserialize, Clone, Copy)]
#[serde(rename_all = "snake_case")]
pub enum ModalitySpec {
    Image,
    Text,
}
