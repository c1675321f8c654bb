//! Compiled semantic routing. Route vectors are filled in by
//! [`crate::embed_routes`] (policyc, or the engine when it loads YAML),
//! tagged with the encoder that made them.

use rkyv::{Archive, Deserialize, Serialize};

/// The classifier's built-in labels, in the order its head predicts them
/// (`classifier::BUILTIN_LABELS` is this list; the committed head is
/// checked against it).
pub const TASK_LABELS: [&str; 7] = [
    "code",
    "math",
    "summarize",
    "extract",
    "translate",
    "creative",
    "chat",
];

#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Default)]
pub struct Routing {
    pub classifier: ClassifierSettings,
    /// Sorted by name.
    pub routes: Vec<SemanticRoute>,
    /// Sorted by name.
    pub routers: Vec<Router>,
}

#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Default)]
pub struct ClassifierSettings {
    pub enabled: bool,
    pub threads: u32,
    pub max_batch: u32,
    pub cache_entries: u32,
    pub timeout_ms: u64,
    /// sha256 of the encoder graph the route vectors came from; empty when
    /// there are none.
    pub encoder: String,
    pub dim: u32,
}

#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct SemanticRoute {
    pub name: String,
    pub threshold: f32,
    pub utterances: Vec<String>,
    pub negatives: Vec<String>,
    /// `utterances.len() × dim`, normalised rows; empty until embedded.
    pub positive_vectors: Vec<f32>,
    pub negative_vectors: Vec<f32>,
}

#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct Router {
    pub name: String,
    pub rules: Vec<Rule>,
    /// Index into `aliases`.
    pub default_alias: u32,
}

#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct Rule {
    pub name: String,
    /// Index into [`TASK_LABELS`].
    pub label: Option<u32>,
    /// Index into `routing.routes`.
    pub route: Option<u32>,
    pub min_score: Option<f32>,
    pub input_tokens: Option<TokenBound>,
    pub modality: Option<Modality>,
    /// Empty: any tier.
    pub tiers: Vec<String>,
    /// Index into `aliases`.
    pub alias: u32,
}

#[derive(Archive, Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
pub enum Comparison {
    AtLeast,
    MoreThan,
    AtMost,
    LessThan,
}

#[derive(Archive, Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
pub struct TokenBound {
    pub comparison: Comparison,
    pub tokens: u64,
}

impl ArchivedComparison {
    pub fn symbol(&self) -> &'static str {
        match self {
            ArchivedComparison::AtLeast => ">=",
            ArchivedComparison::MoreThan => ">",
            ArchivedComparison::AtMost => "<=",
            ArchivedComparison::LessThan => "<",
        }
    }
}

impl ArchivedModality {
    pub fn as_str(&self) -> &'static str {
        match self {
            ArchivedModality::Image => "image",
            ArchivedModality::Text => "text",
        }
    }
}

impl ArchivedTokenBound {
    pub fn holds(&self, tokens: u64) -> bool {
        let bound = self.tokens.to_native();
        match self.comparison {
            ArchivedComparison::AtLeast => tokens >= bound,
            ArchivedComparison::MoreThan => tokens > bound,
            ArchivedComparison::AtMost => tokens <= bound,
            ArchivedComparison::LessThan => tokens < bound,
        }
    }
}

#[derive(Archive, Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
pub enum Modality {
    Image,
    Text,
}

impl ArchivedRule {
    /// Needs the classifier's output to be decided.
    pub fn needs_classifier(&self) -> bool {
        self.label.is_some() || self.route.is_some()
    }
}

impl ArchivedRouting {
    pub fn router(&self, name: &str) -> Option<&ArchivedRouter> {
        let i = self
            .routers
            .binary_search_by(|r| r.name.as_str().cmp(name))
            .ok()?;
        self.routers.get(i)
    }

    /// Some router has a label or route rule.
    pub fn uses_classifier(&self) -> bool {
        self.routers
            .iter()
            .any(|r| r.rules.iter().any(ArchivedRule::needs_classifier))
    }
}
