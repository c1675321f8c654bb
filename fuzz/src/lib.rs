//! What the fuzz targets share: one provider of every kind, compiled once.

use policy::{compile_yaml, snapshot, ArchivedProvider, Snapshot};
use std::sync::OnceLock;

const POLICY: &str = "version: 1
providers:
  openai: {kind: openai, base_url: https://api.openai.com/v1, keys: [{key: k}]}
  compat: {kind: openai_compatible, base_url: http://127.0.0.1:1/v1, compat: {preset: mistral}, keys: [{key: k}]}
  anthropic: {kind: anthropic, base_url: https://api.anthropic.com, keys: [{key: k}]}
  gemini: {kind: gemini, base_url: https://generativelanguage.googleapis.com, keys: [{key: k}]}
  cohere: {kind: cohere, base_url: https://api.cohere.com, keys: [{key: k}]}
";

/// The providers, one per kind, in name order.
pub fn providers() -> &'static [ArchivedProvider] {
    static SNAP: OnceLock<Snapshot> = OnceLock::new();
    let snap = SNAP.get_or_init(|| {
        let c = compile_yaml(POLICY, "fuzz.yaml", &std::collections::HashMap::new())
            .expect("the fuzz policy compiles");
        Snapshot::from_bytes(&snapshot::encode(&c.policy, 0).expect("encodes")).expect("loads")
    });
    &snap.policy().providers
}

/// Split `data` into pieces whose sizes the first byte chooses.
pub fn pieces(data: &[u8]) -> (usize, &[u8]) {
    match data.split_first() {
        Some((&n, rest)) => (usize::from(n % 64) + 1, rest),
        None => (1, data),
    }
}
