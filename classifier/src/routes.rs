//! Operator-defined routes: example utterances (and optional negative
//! examples) embedded offline by `policyc`. A prompt matches a route when
//! its nearest example utterance is at least `threshold` similar and closer
//! than the route's nearest negative example. Nearest-example rather than a
//! centroid, because operators list varied phrasings and a centroid of
//! varied phrasings resembles none of them.

use crate::pooling::dot;

#[derive(Debug, Clone, PartialEq)]
pub struct RouteVectors {
    pub name: String,
    pub threshold: f32,
    /// `n × dim`, normalised rows.
    pub positives: Vec<f32>,
    pub negatives: Vec<f32>,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RouteScore {
    /// Cosine similarity to the nearest example utterance.
    pub score: f32,
    /// ... and to the nearest negative example (-1 when there is none).
    pub negative: f32,
    pub matched: bool,
}

#[derive(Debug, Clone, Default)]
pub struct RouteSet {
    pub dim: usize,
    pub routes: Vec<RouteVectors>,
}

impl RouteSet {
    pub fn score(&self, index: usize, vector: &[f32]) -> Option<RouteScore> {
        let route = self.routes.get(index)?;
        if self.dim == 0 || vector.len() != self.dim {
            return None;
        }
        let nearest = |rows: &[f32]| {
            rows.chunks_exact(self.dim)
                .map(|row| dot(row, vector))
                .fold(-1f32, f32::max)
        };
        let score = nearest(&route.positives);
        let negative = nearest(&route.negatives);
        Some(RouteScore {
            score,
            negative,
            matched: score >= route.threshold && score > negative,
        })
    }

    pub fn index_of(&self, name: &str) -> Option<usize> {
        self.routes.iter().position(|r| r.name == name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_example_threshold_and_negatives() {
        let set = RouteSet {
            dim: 2,
            routes: vec![RouteVectors {
                name: "legal".into(),
                threshold: 0.8,
                positives: vec![1., 0., 0., 1.],
                negatives: vec![0.6, 0.8],
            }],
        };
        let hit = set.score(0, &[1., 0.]).unwrap();
        assert_eq!((hit.score, hit.matched), (1.0, true));
        // Close to the second example but closer still to the negative one.
        let near_negative = set.score(0, &[0.5, 0.866]).unwrap();
        assert!(near_negative.score > 0.8 && !near_negative.matched);
        let weak = set.score(0, &[0.6, -0.8]).unwrap();
        assert!(!weak.matched);
        assert!(set.score(0, &[1., 0., 0.]).is_none(), "dimension mismatch");
        assert!(set.score(1, &[1., 0.]).is_none());
        assert_eq!(set.index_of("legal"), Some(0));
    }
}
