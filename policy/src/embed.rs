//! Filling in route vectors: the utterances of `classifier.routes` go
//! through the same encoder the engine classifies prompts with, and the
//! vectors are archived with that encoder's id. Kept behind a trait so the
//! policy crate does not link ONNX Runtime.

use crate::error::Error;
use crate::model::CompiledPolicy;

pub trait UtteranceEncoder {
    /// sha256 of the encoder graph.
    fn model_id(&self) -> String;
    /// One normalised vector per text.
    fn embed(&mut self, texts: &[&str]) -> Result<Vec<Vec<f32>>, String>;
}

/// Some route has utterances but no vectors yet.
pub fn needs_embedding(policy: &CompiledPolicy) -> bool {
    policy
        .routing
        .routes
        .iter()
        .any(|r| r.positive_vectors.is_empty() && !r.utterances.is_empty())
}

pub fn embed_routes(
    policy: &mut CompiledPolicy,
    encoder: &mut dyn UtteranceEncoder,
) -> Result<(), Error> {
    let mut dim = 0usize;
    for route in &mut policy.routing.routes {
        let mut flat = |texts: &[String]| -> Result<Vec<f32>, Error> {
            if texts.is_empty() {
                return Ok(Vec::new());
            }
            let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
            let vectors = encoder
                .embed(&refs)
                .map_err(|e| Error::Embed(format!("route {}: {e}", route.name)))?;
            let mut out = Vec::new();
            for v in vectors {
                if dim != 0 && v.len() != dim {
                    return Err(Error::Embed("the encoder changed dimension".into()));
                }
                dim = v.len();
                out.extend(v);
            }
            Ok(out)
        };
        let positives = flat(&route.utterances)?;
        let negatives = flat(&route.negatives)?;
        route.positive_vectors = positives;
        route.negative_vectors = negatives;
    }
    policy.routing.classifier.encoder = encoder.model_id();
    policy.routing.classifier.dim = dim as u32;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compile_yaml;
    use std::collections::HashMap;

    /// Letters counted into a 3-d vector: deterministic and dependency-free.
    struct Letters;

    impl UtteranceEncoder for Letters {
        fn model_id(&self) -> String {
            "letters".into()
        }
        fn embed(&mut self, texts: &[&str]) -> Result<Vec<Vec<f32>>, String> {
            Ok(texts
                .iter()
                .map(|t| {
                    let n = |c: char| t.chars().filter(|x| *x == c).count() as f32;
                    vec![n('a'), n('b'), n('c')]
                })
                .collect())
        }
    }

    #[test]
    fn routes_get_vectors_and_the_encoder_id() {
        let src = "version: 1\nproviders:\n  p:\n    kind: openai\n    base_url: http://127.0.0.1:1\nmodels:\n  m:\n    targets: [{provider: p, model: x}]\nclassifier:\n  routes:\n    legal:\n      utterances: [aa, ab, abc]\n      negatives: [cc]\nrouters:\n  auto:\n    rules:\n      - when: {route: legal}\n        to: m\n    default: m\n";
        let mut c = compile_yaml(src, "t.yaml", &HashMap::new()).unwrap().policy;
        assert!(needs_embedding(&c));
        embed_routes(&mut c, &mut Letters).unwrap();
        assert!(!needs_embedding(&c));
        let r = &c.routing.routes[0];
        assert_eq!(r.positive_vectors, [2., 0., 0., 1., 1., 0., 1., 1., 1.]);
        assert_eq!(r.negative_vectors, [0., 0., 2.]);
        assert_eq!(
            (
                c.routing.classifier.encoder.as_str(),
                c.routing.classifier.dim
            ),
            ("letters", 3)
        );
    }
}
