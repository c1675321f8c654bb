//! A router's rules, in order: the first whose every condition holds picks
//! the alias, else the router's default. Pure: the classifier's scores come
//! in as data, and [`evaluate`] says when it needs them, so a request whose
//! earlier rules match (or whose classifier rules fail on tier or size) is
//! never classified.

use classifier::RouteSet;
use policy::{ArchivedModality, ArchivedRouter, ArchivedRule};

/// What the cheap conditions read.
pub struct Facts<'a> {
    pub input_tokens: u64,
    pub has_image: bool,
    pub tier: &'a str,
}

/// The classifier's output for this request.
pub enum Scores<'a> {
    /// Not asked yet.
    Pending,
    /// Asked, and it could not answer (missing model, timeout, busy):
    /// label and route rules are skipped.
    Unavailable,
    Ready {
        /// Built-in label probabilities; None when the head does not fit the
        /// running encoder.
        labels: Option<&'a [f32]>,
        /// Per label, the probability a label rule without `min_score`
        /// needs (the head's calibrated thresholds); empty: 0.5 each.
        thresholds: &'a [f32],
        /// The sentence vector routes compare (without end segments).
        vector: &'a [f32],
        /// None when the policy's route vectors came from another encoder.
        routes: Option<&'a RouteSet>,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// Rule `index` matched; `score` is what its label or route scored.
    Rule {
        index: usize,
        score: Option<f32>,
    },
    Default,
    /// Rule `index` needs the classifier: evaluate again with its scores.
    NeedsScores {
        index: usize,
    },
}

/// The default a label rule's probability must reach when the head
/// carries no threshold for the label.
pub const DEFAULT_LABEL_SCORE: f32 = classifier::DEFAULT_THRESHOLD;

pub fn evaluate(router: &ArchivedRouter, facts: &Facts<'_>, scores: &Scores<'_>) -> Outcome {
    for (index, rule) in router.rules.iter().enumerate() {
        if !cheap_conditions_hold(rule, facts) {
            continue;
        }
        if !rule.needs_classifier() {
            return Outcome::Rule { index, score: None };
        }
        match scores {
            Scores::Pending => return Outcome::NeedsScores { index },
            Scores::Unavailable => continue,
            Scores::Ready {
                labels,
                thresholds,
                vector,
                routes,
            } => {
                if let Some(score) =
                    classifier_condition(rule, *labels, thresholds, vector, *routes)
                {
                    return Outcome::Rule {
                        index,
                        score: Some(score),
                    };
                }
            }
        }
    }
    Outcome::Default
}

fn cheap_conditions_hold(rule: &ArchivedRule, facts: &Facts<'_>) -> bool {
    if let Some(bound) = rule.input_tokens.as_ref() {
        if !bound.holds(facts.input_tokens) {
            return false;
        }
    }
    match rule.modality.as_ref() {
        Some(ArchivedModality::Image) if !facts.has_image => return false,
        Some(ArchivedModality::Text) if facts.has_image => return false,
        _ => {}
    }
    rule.tiers.is_empty() || rule.tiers.iter().any(|t| t.as_str() == facts.tier)
}

/// The label's probability or the route's similarity when the rule holds.
fn classifier_condition(
    rule: &ArchivedRule,
    labels: Option<&[f32]>,
    thresholds: &[f32],
    vector: &[f32],
    routes: Option<&RouteSet>,
) -> Option<f32> {
    let min = rule.min_score.as_ref().map(|s| s.to_native());
    if let Some(label) = rule.label.as_ref() {
        let i = label.to_native() as usize;
        let p = *labels?.get(i)?;
        // An operator's min_score wins; else the label's calibrated
        // threshold, so an uncertain label falls through to the next rule.
        let floor =
            min.unwrap_or_else(|| thresholds.get(i).copied().unwrap_or(DEFAULT_LABEL_SCORE));
        return (p >= floor).then_some(p);
    }
    let route = rule.route.as_ref()?.to_native() as usize;
    let s = routes?.score(route, vector)?;
    let matched = match min {
        Some(m) => s.score >= m && s.score > s.negative,
        None => s.matched,
    };
    matched.then_some(s.score)
}

#[cfg(test)]
mod tests {
    use super::*;
    use classifier::RouteVectors;
    use policy::{compile_yaml, snapshot, Snapshot};
    use std::collections::HashMap;

    fn router() -> Snapshot {
        let src = "version: 1\nproviders:\n  p:\n    kind: openai\n    base_url: http://127.0.0.1:1\nmodels:\n  cheap: {targets: [{provider: p, model: a}]}\n  coder: {targets: [{provider: p, model: b}]}\n  long: {targets: [{provider: p, model: c}]}\n  vision: {targets: [{provider: p, model: d}]}\n  legal: {targets: [{provider: p, model: e}]}\nclassifier:\n  routes:\n    contracts:\n      utterances: [a, b, c]\n      threshold: 0.8\nrouters:\n  auto:\n    rules:\n      - {name: big, when: {input_tokens: '>= 1000'}, to: long}\n      - {name: eyes, when: {modality: image}, to: vision}\n      - {name: gold-code, when: {label: code, tier: [gold]}, to: coder}\n      - {name: code, when: {label: code, min_score: 0.7}, to: coder}\n      - {name: law, when: {route: contracts}, to: legal}\n    default: cheap\n";
        let c = compile_yaml(src, "t.yaml", &HashMap::new()).unwrap();
        Snapshot::from_bytes(&snapshot::encode(&c.policy, 0).unwrap()).unwrap()
    }

    fn facts(tokens: u64, image: bool, tier: &str) -> Facts<'_> {
        Facts {
            input_tokens: tokens,
            has_image: image,
            tier,
        }
    }

    #[test]
    fn an_uncertain_label_falls_through_unless_the_rule_sets_min_score() {
        let s = router();
        let r = s.policy().routing.router("auto").unwrap();
        let labels = policy::TASK_LABELS.map(|l| if l == "code" { 0.6 } else { 0.4 / 6.0 });
        let with = |thresholds: &'static [f32]| Scores::Ready {
            labels: Some(&labels),
            thresholds,
            vector: &[1.0, 0.0],
            routes: None,
        };
        // No thresholds: 0.5, so gold-code (no min_score) takes 0.6.
        assert!(matches!(
            evaluate(r, &facts(10, false, "gold"), &with(&[])),
            Outcome::Rule { index: 2, .. }
        ));
        // Code's calibrated threshold is 0.65: gold-code falls through, and
        // `code` keeps its own min_score (0.7): the default serves.
        let calibrated: &'static [f32] = &[0.65, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5];
        assert_eq!(
            evaluate(r, &facts(10, false, "gold"), &with(calibrated)),
            Outcome::Default
        );
        // An operator's min_score below the threshold still wins.
        let low: &'static [f32] = &[0.99, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5];
        let mut at_half = labels;
        at_half[0] = 0.75;
        let scores = Scores::Ready {
            labels: Some(&at_half),
            thresholds: low,
            vector: &[1.0, 0.0],
            routes: None,
        };
        assert!(matches!(
            evaluate(r, &facts(10, false, ""), &scores),
            Outcome::Rule { index: 3, .. }
        ));
    }

    #[test]
    fn order_cheap_conditions_and_lazy_classification() {
        let s = router();
        let r = s.policy().routing.router("auto").unwrap();
        let rule = |o: Outcome| match o {
            Outcome::Rule { index, .. } => r.rules[index].name.to_string(),
            other => format!("{other:?}"),
        };
        // Size and images decide before any classification.
        assert_eq!(
            rule(evaluate(r, &facts(5000, true, ""), &Scores::Pending)),
            "big"
        );
        assert_eq!(
            rule(evaluate(r, &facts(10, true, ""), &Scores::Pending)),
            "eyes"
        );
        // A gold caller reaches the first label rule; others the second.
        assert_eq!(
            evaluate(r, &facts(10, false, "gold"), &Scores::Pending),
            Outcome::NeedsScores { index: 2 }
        );
        assert_eq!(
            evaluate(r, &facts(10, false, ""), &Scores::Pending),
            Outcome::NeedsScores { index: 3 }
        );
        // Without a classifier, its rules are skipped: the default serves.
        assert_eq!(
            evaluate(r, &facts(10, false, ""), &Scores::Unavailable),
            Outcome::Default
        );

        let mut labels = [0.0f32; 7];
        labels[0] = 0.6; // code, below the rule's 0.7 but above the default 0.5
        let routes = RouteSet {
            dim: 2,
            routes: vec![RouteVectors {
                name: "contracts".into(),
                threshold: 0.8,
                positives: vec![1.0, 0.0],
                negatives: vec![],
            }],
        };
        let ready = |vector: &'static [f32], labels: &'static [f32]| Scores::Ready {
            labels: Some(labels),
            thresholds: &[],
            vector,
            routes: None,
        };
        let labels: &'static [f32] = Box::leak(Box::new(labels));
        assert_eq!(
            rule(evaluate(
                r,
                &facts(10, false, "gold"),
                &ready(&[0.0, 1.0], labels)
            )),
            "gold-code"
        );
        assert_eq!(
            evaluate(r, &facts(10, false, ""), &ready(&[0.0, 1.0], labels)),
            Outcome::Default
        );
        let with_routes = Scores::Ready {
            labels: Some(labels),
            thresholds: &[],
            vector: &[1.0, 0.0],
            routes: Some(&routes),
        };
        match evaluate(r, &facts(10, false, ""), &with_routes) {
            Outcome::Rule {
                index: 4,
                score: Some(s),
            } => assert_eq!(s, 1.0),
            other => panic!("{other:?}"),
        }
    }
}
