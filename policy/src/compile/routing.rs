//! Checks and builds `classifier` and `routers`.

use super::{is_plain_name, Checker};
use crate::model::*;
use crate::spec::*;
use std::collections::BTreeMap;

impl Checker<'_> {
    pub(super) fn routing(
        &mut self,
        classifier: ClassifierSpec,
        routers: BTreeMap<String, RouterSpec>,
        aliases: &[Alias],
    ) -> Routing {
        let settings = ClassifierSettings {
            enabled: classifier.enabled,
            threads: self.at_least_one("classifier.threads", classifier.threads),
            max_batch: self.at_least_one("classifier.max_batch", classifier.max_batch),
            cache_entries: classifier.cache_entries,
            timeout_ms: classifier.timeout_ms,
            encoder: String::new(),
            dim: 0,
        };
        if classifier.timeout_ms == 0 {
            self.error("classifier.timeout_ms", "must be at least 1");
        }
        let routes = self.semantic_routes(classifier.routes);
        let alias_index = |name: &str| {
            aliases
                .binary_search_by(|a| a.name.as_str().cmp(name))
                .ok()
                .map(|i| i as u32)
        };
        let mut out = Vec::with_capacity(routers.len());
        for (name, spec) in routers {
            let at = format!("routers.{name}");
            if !is_plain_name(&name) {
                self.error(
                    &at,
                    "router names may use letters, digits, `-`, `_` and `.`",
                );
            }
            if alias_index(&name).is_some() {
                self.error(
                    &at,
                    format!("{name:?} is also a model alias; a name can be one or the other"),
                );
            }
            let default_alias =
                self.alias_ref(&format!("{at}.default"), &spec.default, &alias_index);
            let mut rules = Vec::with_capacity(spec.rules.len());
            for (i, r) in spec.rules.into_iter().enumerate() {
                let rat = format!("{at}.rules[{i}]");
                let alias = self.alias_ref(&format!("{rat}.to"), &r.to, &alias_index);
                let rule = self.rule(&rat, r, i, alias, &routes);
                rules.push(rule);
            }
            out.push(Router {
                name,
                rules,
                default_alias,
            });
        }
        if !settings.enabled
            && out.iter().any(|r| {
                r.rules
                    .iter()
                    .any(|x| x.label.is_some() || x.route.is_some())
            })
        {
            self.warn(
                "classifier.enabled",
                "the classifier is off: label and route rules will never match",
            );
        }
        Routing {
            classifier: settings,
            routes,
            routers: out,
        }
    }

    fn at_least_one(&mut self, at: &str, v: u32) -> u32 {
        if v == 0 {
            self.error(at, "must be at least 1");
        }
        v.max(1)
    }

    fn alias_ref(&mut self, at: &str, name: &str, index: &dyn Fn(&str) -> Option<u32>) -> u32 {
        match index(name) {
            Some(i) => i,
            None => {
                self.error(at, format!("unknown model alias {name:?}"));
                0
            }
        }
    }

    fn semantic_routes(
        &mut self,
        specs: BTreeMap<String, SemanticRouteSpec>,
    ) -> Vec<SemanticRoute> {
        let mut out = Vec::with_capacity(specs.len());
        for (name, spec) in specs {
            let at = format!("classifier.routes.{name}");
            if !is_plain_name(&name) {
                self.error(&at, "route names may use letters, digits, `-`, `_` and `.`");
            }
            let clean = |v: Vec<String>| -> Vec<String> {
                v.into_iter().map(|u| u.trim().to_string()).collect()
            };
            let utterances = clean(spec.utterances);
            let negatives = clean(spec.negatives);
            if utterances.is_empty() {
                self.error(
                    &format!("{at}.utterances"),
                    "at least one example utterance is required",
                );
            }
            for (field, list) in [("utterances", &utterances), ("negatives", &negatives)] {
                if let Some(i) = list.iter().position(|u| u.is_empty()) {
                    self.error(&format!("{at}.{field}[{i}]"), "must not be empty");
                }
            }
            if utterances.len() < 3 {
                self.warn(
                    &format!("{at}.utterances"),
                    "fewer than 3 examples: a route matches best with several phrasings",
                );
            }
            if !(0.0..=1.0).contains(&spec.threshold) {
                self.error(
                    &format!("{at}.threshold"),
                    "must be between 0 and 1 (a cosine similarity)",
                );
            }
            out.push(SemanticRoute {
                name,
                threshold: spec.threshold as f32,
                utterances,
                negatives,
                positive_vectors: Vec::new(),
                negative_vectors: Vec::new(),
            });
        }
        out
    }

    fn rule(
        &mut self,
        at: &str,
        r: RuleSpec,
        i: usize,
        alias: u32,
        routes: &[SemanticRoute],
    ) -> Rule {
        let w = r.when;
        let label = w.label.as_deref().and_then(|l| {
            let found = TASK_LABELS.iter().position(|t| *t == l).map(|i| i as u32);
            if found.is_none() {
                self.error(
                    &format!("{at}.when.label"),
                    format!(
                        "unknown label {l:?}: expected one of {}",
                        TASK_LABELS.join(", ")
                    ),
                );
            }
            found
        });
        let route = w.route.as_deref().and_then(|name| {
            let found = routes.iter().position(|x| x.name == name).map(|i| i as u32);
            if found.is_none() {
                let known: Vec<&str> = routes.iter().map(|x| x.name.as_str()).collect();
                self.error(
                    &format!("{at}.when.route"),
                    format!(
                        "unknown route {name:?}: define it under classifier.routes (known: {})",
                        if known.is_empty() {
                            "none".to_string()
                        } else {
                            known.join(", ")
                        }
                    ),
                );
            }
            found
        });
        if label.is_some() && route.is_some() {
            self.error(
                &format!("{at}.when"),
                "use `label` or `route`, not both, in one rule",
            );
        }
        if let Some(s) = w.min_score {
            if w.label.is_none() && w.route.is_none() {
                self.error(
                    &format!("{at}.when.min_score"),
                    "applies to `label` or `route` only",
                );
            }
            if !(0.0..=1.0).contains(&s) {
                self.error(&format!("{at}.when.min_score"), "must be between 0 and 1");
            }
        }
        let input_tokens =
            w.input_tokens
                .as_deref()
                .and_then(|s| match parse_bound(s) {
                    Some(b) => Some(b),
                    None => {
                        self.error(
                    &format!("{at}.when.input_tokens"),
                    format!("expected a comparison like \">= 50000\" or \"< 2000\", found {s:?}"),
                );
                        None
                    }
                });
        let tiers = w.tier.unwrap_or_default();
        if tiers.iter().any(|t| t.trim().is_empty()) {
            self.error(&format!("{at}.when.tier"), "tiers must not be empty");
        }
        let empty = w.label.is_none()
            && w.route.is_none()
            && w.input_tokens.is_none()
            && w.modality.is_none()
            && tiers.is_empty();
        if empty {
            self.error(
                &format!("{at}.when"),
                "give at least one condition (label, route, input_tokens, modality, tier); use `default` for the fallback",
            );
        }
        Rule {
            name: r.name.unwrap_or_else(|| format!("rule-{i}")),
            label,
            route,
            min_score: w.min_score.map(|s| s as f32),
            input_tokens,
            modality: w.modality.map(|m| match m {
                ModalitySpec::Image => Modality::Image,
                ModalitySpec::Text => Modality::Text,
            }),
            tiers,
            alias,
        }
    }
}

/// `">= 50000"`, `"> 10"`, `"<= 8k"`, `"< 2000"`; `k` and `m` suffixes.
fn parse_bound(s: &str) -> Option<TokenBound> {
    let s = s.trim();
    let (comparison, rest) = if let Some(r) = s.strip_prefix(">=") {
        (Comparison::AtLeast, r)
    } else if let Some(r) = s.strip_prefix("<=") {
        (Comparison::AtMost, r)
    } else if let Some(r) = s.strip_prefix('>') {
        (Comparison::MoreThan, r)
    } else if let Some(r) = s.strip_prefix('<') {
        (Comparison::LessThan, r)
    } else {
        return None;
    };
    let rest = rest.trim().replace('_', "");
    let (digits, scale) = match rest.chars().last()? {
        'k' | 'K' => (&rest[..rest.len() - 1], 1_000),
        'm' | 'M' => (&rest[..rest.len() - 1], 1_000_000),
        _ => (rest.as_str(), 1),
    };
    let n: u64 = digits.trim().parse().ok()?;
    Some(TokenBound {
        comparison,
        tokens: n.checked_mul(scale)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::snapshot::{self, Snapshot};
    use std::collections::HashMap;

    const BASE: &str = "version: 1\nproviders:\n  p:\n    kind: openai\n    base_url: http://127.0.0.1:1\nmodels:\n  cheap:\n    targets: [{provider: p, model: a}]\n  coder:\n    targets: [{provider: p, model: b}]\n  long:\n    targets: [{provider: p, model: c}]\n";

    fn compile(extra: &str) -> Result<CompiledPolicy, String> {
        crate::compile_yaml(&format!("{BASE}{extra}"), "t.yaml", &HashMap::new())
            .map(|c| c.policy)
            .map_err(|e| e.to_string())
    }

    #[test]
    fn routers_compile_and_archive() {
        let p = compile(
            "classifier:\n  routes:\n    legal:\n      utterances: [review this contract, is this clause enforceable, draft an NDA]\n      threshold: 0.6\nrouters:\n  auto:\n    rules:\n      - name: big\n        when: {input_tokens: \">= 50k\"}\n        to: long\n      - when: {label: code, min_score: 0.7}\n        to: coder\n      - when: {route: legal, tier: [gold]}\n        to: long\n      - when: {modality: image}\n        to: coder\n    default: cheap\n",
        )
        .unwrap();
        let r = &p.routing.routers[0];
        assert_eq!(
            (r.name.as_str(), r.default_alias, r.rules.len()),
            ("auto", 0, 4)
        );
        assert_eq!(r.rules[0].name, "big");
        assert_eq!(r.rules[1].name, "rule-1");
        assert_eq!(
            (r.rules[1].label, r.rules[1].min_score, r.rules[1].alias),
            (Some(0), Some(0.7), 1)
        );
        assert_eq!(
            (r.rules[2].route, r.rules[2].tiers.clone()),
            (Some(0), vec!["gold".to_string()])
        );
        assert_eq!(r.rules[3].modality, Some(Modality::Image));
        assert_eq!(p.routing.routes[0].threshold, 0.6);
        let snap = Snapshot::from_bytes(&snapshot::encode(&p, 0).unwrap()).unwrap();
        let routing = &snap.policy().routing;
        assert!(routing.uses_classifier());
        let big = &routing.router("auto").unwrap().rules[0];
        let bound = big.input_tokens.as_ref().unwrap();
        assert!(bound.holds(50_000) && !bound.holds(49_999));
        assert!(routing.router("cheap").is_none());
    }

    #[test]
    fn mistakes_are_reported_where_they_are() {
        for (extra, needle) in [
            ("routers:\n  auto:\n    rules:\n      - when: {label: poetry}\n        to: cheap\n    default: cheap\n", "unknown label \"poetry\""),
            ("routers:\n  auto:\n    rules:\n      - when: {label: code}\n        to: nope\n    default: cheap\n", "rules[0].to: unknown model alias \"nope\""),
            ("routers:\n  auto:\n    default: missing\n", "routers.auto.default: unknown model alias"),
            ("routers:\n  cheap:\n    default: cheap\n", "also a model alias"),
            ("routers:\n  auto:\n    rules:\n      - when: {}\n        to: cheap\n    default: cheap\n", "at least one condition"),
            ("routers:\n  auto:\n    rules:\n      - when: {input_tokens: lots}\n        to: cheap\n    default: cheap\n", "expected a comparison"),
            ("routers:\n  auto:\n    rules:\n      - when: {route: legal}\n        to: cheap\n    default: cheap\n", "unknown route \"legal\""),
            ("routers:\n  auto:\n    rules:\n      - when: {tier: [gold], min_score: 0.5}\n        to: cheap\n    default: cheap\n", "applies to `label` or `route` only"),
            ("classifier:\n  routes:\n    legal:\n      utterances: []\n", "at least one example utterance"),
            ("classifier:\n  routes:\n    legal:\n      utterances: [a, b, c]\n      threshold: 2\n", "between 0 and 1"),
            ("classifier:\n  threads: 0\n", "classifier.threads: must be at least 1"),
        ] {
            let err = compile(extra).expect_err(extra);
            assert!(err.contains(needle), "{extra}\n{err}");
        }
    }

    #[test]
    fn token_bounds() {
        let b = parse_bound(">= 50000").unwrap();
        assert_eq!((b.comparison, b.tokens), (Comparison::AtLeast, 50_000));
        assert_eq!(parse_bound("<8k").unwrap().tokens, 8_000);
        assert_eq!(
            parse_bound("> 1_000").unwrap().comparison,
            Comparison::MoreThan
        );
        assert_eq!(parse_bound("<= 2M").unwrap().tokens, 2_000_000);
        for bad in ["50000", "=> 5", ">= x", ">=", "< -1"] {
            assert!(parse_bound(bad).is_none(), "{bad}");
        }
    }
}
