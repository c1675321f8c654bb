//! The built-in task labels: a linear softmax head over the encoder's
//! pooled vector, trained offline by `tools/src/bin/train_classifier.rs`
//! and committed as `classifier/heads/builtin.json` (a few thousand
//! numbers; the command that reproduces it is recorded inside).

use crate::error::{ClassifierError, Result};
use crate::pooling::softmax;
use serde::{Deserialize, Serialize};

/// The labels the built-in head predicts, in its output order: the ones
/// policies name in label rules.
pub const BUILTIN_LABELS: [&str; 7] = policy::TASK_LABELS;

/// A label's threshold when the head carries none.
pub const DEFAULT_THRESHOLD: f32 = 0.5;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LabelHead {
    /// sha256 of the encoder graph the head was trained on.
    pub encoder: String,
    pub labels: Vec<String>,
    pub dim: usize,
    /// Word pieces the encoder read when the head was trained; the engine
    /// runs the encoder at the same bound.
    pub max_tokens: usize,
    /// The head reads the encoder's mean vector followed by its two end
    /// segments of this many word pieces (`pooling::segment_pool`); None:
    /// the mean vector alone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub segment_edge: Option<usize>,
    /// `labels × dim`, row-major.
    pub weights: Vec<f32>,
    pub bias: Vec<f32>,
    /// Per label, the probability below which the label is uncertain:
    /// chosen on prompts from sources the head was not trained on (see
    /// REPORT.md). A label rule without `min_score` needs its label's
    /// threshold; empty means 0.5 for every label.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub thresholds: Vec<f32>,
    /// How it was made: command, data, split, test metrics.
    #[serde(default)]
    pub provenance: serde_json::Value,
}

impl LabelHead {
    /// The committed head (`classifier/heads/builtin.json`).
    pub fn builtin() -> Result<LabelHead> {
        LabelHead::from_json(include_str!("../heads/builtin.json"))
    }

    pub fn from_json(text: &str) -> Result<LabelHead> {
        let head: LabelHead =
            serde_json::from_str(text).map_err(|e| ClassifierError::Head(e.to_string()))?;
        head.validate()?;
        Ok(head)
    }

    pub fn validate(&self) -> Result<()> {
        let n = self.labels.len();
        if n == 0 || self.dim == 0 {
            return Err(ClassifierError::Head("no labels or zero dimension".into()));
        }
        if self.weights.len() != n * self.dim || self.bias.len() != n {
            return Err(ClassifierError::Head(format!(
                "{} labels × {} dims needs {} weights and {} biases, found {} and {}",
                n,
                self.dim,
                n * self.dim,
                n,
                self.weights.len(),
                self.bias.len()
            )));
        }
        if self
            .weights
            .iter()
            .chain(&self.bias)
            .any(|w| !w.is_finite())
        {
            return Err(ClassifierError::Head("non-finite weight".into()));
        }
        if !self.thresholds.is_empty()
            && (self.thresholds.len() != n
                || self.thresholds.iter().any(|t| !(0.0..=1.0).contains(t)))
        {
            return Err(ClassifierError::Head(format!(
                "thresholds need one probability in [0, 1] per label ({n})"
            )));
        }
        if self.segment_edge == Some(0) {
            return Err(ClassifierError::Head(
                "segment_edge must be at least 1".into(),
            ));
        }
        Ok(())
    }

    /// Label probabilities for one pooled vector (same order as `labels`).
    pub fn probabilities(&self, vector: &[f32]) -> Vec<f32> {
        let mut logits: Vec<f32> = self
            .weights
            .chunks_exact(self.dim)
            .zip(&self.bias)
            .map(|(row, b)| b + crate::pooling::dot(row, vector))
            .collect();
        softmax(&mut logits);
        logits
    }

    /// The most probable label and its probability.
    pub fn top<'a>(&'a self, probabilities: &[f32]) -> (&'a str, f32) {
        let (i, p) =
            probabilities
                .iter()
                .copied()
                .enumerate()
                .fold(
                    (0, f32::MIN),
                    |best, (i, p)| if p > best.1 { (i, p) } else { best },
                );
        (self.labels.get(i).map(String::as_str).unwrap_or(""), p)
    }

    /// The probability label `index` must reach to be more than uncertain.
    pub fn threshold(&self, index: usize) -> f32 {
        self.thresholds
            .get(index)
            .copied()
            .unwrap_or(DEFAULT_THRESHOLD)
    }

    /// Whether the most probable label is below its threshold.
    pub fn uncertain(&self, probabilities: &[f32]) -> bool {
        let (label, p) = self.top(probabilities);
        self.index_of(label).is_some_and(|i| p < self.threshold(i))
    }

    pub fn index_of(&self, label: &str) -> Option<usize> {
        self.labels.iter().position(|l| l == label)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_builtin_head_is_whole_and_matches_the_set_up_encoder() {
        let head = LabelHead::builtin().unwrap();
        assert_eq!(head.labels, BUILTIN_LABELS);
        // The mean vector and both end segments of MiniLM's 384 dimensions.
        let edge = crate::pooling::SEGMENT_EDGE;
        assert_eq!(
            (head.dim, head.max_tokens, head.segment_edge),
            (3 * 384, crate::encoder::DEFAULT_MAX_TOKENS, Some(edge))
        );
        assert_eq!(head.thresholds.len(), head.labels.len());
        // The sha256 scripts/models.sh pins for minilm/model.onnx.
        let pins = include_str!("../heads/encoder.sha256");
        assert!(pins.contains(&format!("{}  minilm/model.onnx", head.encoder)));
    }

    #[test]
    fn probabilities_follow_the_weights() {
        let head = LabelHead {
            encoder: String::new(),
            labels: vec!["a".into(), "b".into()],
            dim: 2,
            max_tokens: 64,
            segment_edge: None,
            weights: vec![8., 0., 0., 8.],
            bias: vec![0., 0.],
            thresholds: vec![],
            provenance: serde_json::Value::Null,
        };
        head.validate().unwrap();
        let p = head.probabilities(&[1., 0.]);
        assert!(p[0] > 0.99 && (p[0] + p[1] - 1.0).abs() < 1e-6);
        assert_eq!(head.top(&p).0, "a");
        assert_eq!(head.top(&head.probabilities(&[0., 1.])).0, "b");
        // Thresholds: empty means 0.5; else one per label.
        assert_eq!(head.threshold(1), 0.5);
        assert!(!head.uncertain(&[0.45, 0.55]) && head.uncertain(&[0.45, 0.40]));
        let calibrated = LabelHead {
            thresholds: vec![0.3, 0.9],
            ..head.clone()
        };
        calibrated.validate().unwrap();
        assert!(calibrated.uncertain(&[0.2, 0.8]) && !calibrated.uncertain(&[0.6, 0.4]));
        for bad in [
            LabelHead {
                bias: vec![0.],
                ..head.clone()
            },
            LabelHead {
                thresholds: vec![0.5],
                ..head.clone()
            },
            LabelHead {
                thresholds: vec![0.5, 1.5],
                ..head.clone()
            },
            LabelHead {
                segment_edge: Some(0),
                ..head
            },
        ] {
            assert!(bad.validate().is_err());
        }
    }
}
