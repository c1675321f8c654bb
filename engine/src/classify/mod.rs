//! Phase 3: classify, for requests sent to a router. The encoder runs on
//! its own threads ([`classifier::ClassifierService`]); a request waits at
//! most `classifier.timeout_ms` for its vector, and a missing model, a full
//! queue or a timeout only skips the label and route rules (counted in
//! metrics, warned once) — a request never fails for the classifier.
//!
//! [`decide`] is the phase: read the prompt ([`prompt`]), evaluate the
//! router's rules ([`crate::routing::rules`]), classifying only when a rule
//! needs it.

pub mod prompt;

use crate::routing::rules::{self, Facts, Outcome, Scores};
use crate::state::ActivePolicy;
use arc_swap::ArcSwapOption;
use classifier::{
    prompt_window, ClassifierService, EncoderOptions, LabelHead, ModelFiles, ServiceOptions,
};
use policy::{ArchivedRouter, ArchivedRouting};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The loaded encoder service and the label head that fits it.
pub struct Classifier {
    pub service: ClassifierService,
    /// None when the running encoder is not the one the head was trained on.
    pub head: Option<LabelHead>,
}

#[derive(Default)]
pub struct ClassifyStats {
    pub cached: AtomicU64,
    pub computed: AtomicU64,
    pub unavailable: AtomicU64,
    pub timeouts: AtomicU64,
    pub refused: AtomicU64,
    pub failed: AtomicU64,
    /// Sum of classification waits as requests saw them, microseconds.
    pub wait_micros: AtomicU64,
}

/// Where the running classifier lives; empty until a policy needs one.
#[derive(Default)]
pub struct ClassifierSlot {
    running: ArcSwapOption<Classifier>,
    problem: ArcSwapOption<String>,
    warned: AtomicBool,
    pub stats: ClassifyStats,
}

impl ClassifierSlot {
    pub fn current(&self) -> Option<Arc<Classifier>> {
        self.running.load_full()
    }

    /// Why there is no classifier, if a policy wanted one.
    pub fn problem(&self) -> Option<Arc<String>> {
        self.problem.load_full()
    }

    /// Start the classifier if the policy uses it and it is not running.
    /// Blocking (model load): call at start-up or on the reload thread.
    pub fn ensure(&self, routing: &ArchivedRouting) {
        let wanted =
            routing.classifier.enabled && (routing.uses_classifier() || !routing.routes.is_empty());
        if !wanted || self.running.load().is_some() {
            return;
        }
        match start(routing, &ModelFiles::from_env()) {
            Ok(c) => {
                if c.head.is_none() {
                    tracing::warn!(
                        "the classifier's encoder is not the one the built-in head was trained on: label rules are skipped"
                    );
                }
                tracing::info!(encoder = %&c.service.model_id()[..12], threads = routing.classifier.threads.to_native(), "classifier started");
                self.running.store(Some(Arc::new(c)));
                self.problem.store(None);
            }
            Err(e) => {
                tracing::warn!(error = %e, "classifier unavailable: label and route rules will be skipped; requests are still served");
                self.problem.store(Some(Arc::new(e.to_string())));
            }
        }
    }

    /// Counts and warns (once) about a request whose classifier rules were
    /// skipped.
    fn unavailable(&self) {
        self.stats.unavailable.fetch_add(1, Relaxed);
        if !self.warned.swap(true, Relaxed) {
            tracing::warn!(
                problem = self.problem().as_deref().map(String::as_str).unwrap_or("not started"),
                "a router needed the classifier and it is unavailable; skipping its label and route rules"
            );
        }
    }
}

fn start(routing: &ArchivedRouting, files: &ModelFiles) -> classifier::Result<Classifier> {
    let head = LabelHead::builtin()?;
    let settings = &routing.classifier;
    let options = ServiceOptions {
        threads: settings.threads.to_native() as usize,
        max_batch: settings.max_batch.to_native() as usize,
        cache_entries: settings.cache_entries.to_native() as usize,
        encoder: EncoderOptions {
            max_tokens: head.max_tokens,
            intra_threads: 1,
            segment_edge: head.segment_edge,
        },
        ..ServiceOptions::default()
    };
    let service = ClassifierService::start(files, &options)?;
    let fits = head.encoder == service.model_id() && head.dim == service.feature_dim();
    Ok(Classifier {
        service,
        head: fits.then_some(head),
    })
}

/// What a router decided, for the response headers and the ledger.
#[derive(Debug, Clone, PartialEq)]
pub struct RouteDecision {
    pub router: String,
    /// The rule's name, or `default`.
    pub rule: String,
    pub alias: usize,
    /// The most probable built-in label, when the prompt was classified.
    pub label: Option<(&'static str, f32)>,
    /// The label is below its calibrated threshold: label rules without
    /// `min_score` did not take it.
    pub uncertain: bool,
    /// What the deciding rule scored (label probability or similarity).
    pub score: Option<f32>,
    /// `cached`, `computed`, `unavailable` or `not_needed`.
    pub classifier: &'static str,
    /// How long the request waited for its classification.
    pub wait_us: u64,
}

impl RouteDecision {
    pub fn headers(&self, alias_name: &str) -> Vec<(&'static str, String)> {
        let mut out = vec![
            (
                "x-switchyard-route",
                format!("{}/{}", self.router, self.rule),
            ),
            ("x-switchyard-route-alias", alias_name.to_string()),
            ("x-switchyard-route-classifier", self.classifier.to_string()),
        ];
        if let Some((label, p)) = self.label {
            let mark = if self.uncertain { ";uncertain" } else { "" };
            out.push((
                "x-switchyard-route-label",
                format!("{label};p={p:.3}{mark}"),
            ));
        }
        if let Some(score) = self.score {
            out.push(("x-switchyard-route-score", format!("{score:.3}")));
        }
        if self.classifier != "not_needed" {
            let ms = self.wait_us as f64 / 1000.0;
            out.push(("x-switchyard-classify-ms", format!("{ms:.3}")));
        }
        out
    }
}

/// Phase 3: evaluate `router` for this request.
pub async fn decide(
    slot: &ClassifierSlot,
    active: &ActivePolicy,
    router: &ArchivedRouter,
    tier: &str,
    facts: &prompt::PromptFacts,
) -> RouteDecision {
    let cheap = Facts {
        input_tokens: facts.input_tokens,
        has_image: facts.has_image,
        tier,
    };
    let mut classifier = "not_needed";
    let mut label = None;
    let mut uncertain = false;
    let started = Instant::now();
    let mut wait_us = 0;
    let mut outcome = rules::evaluate(router, &cheap, &Scores::Pending);
    if matches!(outcome, Outcome::NeedsScores { .. }) {
        let timeout = Duration::from_millis(
            active
                .snapshot
                .policy()
                .routing
                .classifier
                .timeout_ms
                .to_native(),
        );
        let embedded = embed(slot, facts, timeout).await;
        wait_us = started.elapsed().as_micros() as u64;
        outcome = match embedded {
            Some((c, vector, cached)) => {
                classifier = if cached { "cached" } else { "computed" };
                let probabilities = c.head.as_ref().map(|h| h.probabilities(&vector));
                if let (Some(h), Some(p)) = (c.head.as_ref(), probabilities.as_ref()) {
                    let (name, score) = h.top(p);
                    uncertain = h.uncertain(p);
                    label = policy::TASK_LABELS
                        .iter()
                        .find(|l| **l == name)
                        .map(|l| (*l, score));
                }
                let routes = active
                    .semantic
                    .usable_with(c.service.model_id(), c.service.dim());
                rules::evaluate(
                    router,
                    &cheap,
                    &Scores::Ready {
                        labels: probabilities.as_deref(),
                        thresholds: c.head.as_ref().map_or(&[], |h| &h.thresholds),
                        vector: vector.get(..c.service.dim()).unwrap_or(&vector),
                        routes,
                    },
                )
            }
            None => {
                classifier = "unavailable";
                rules::evaluate(router, &cheap, &Scores::Unavailable)
            }
        };
    }
    let (rule, alias, score) = match outcome {
        Outcome::Rule { index, score } => match router.rules.get(index) {
            Some(r) => (r.name.to_string(), r.alias.to_native() as usize, score),
            None => default_of(router),
        },
        Outcome::Default | Outcome::NeedsScores { .. } => default_of(router),
    };
    RouteDecision {
        router: router.name.to_string(),
        rule,
        alias,
        label,
        uncertain,
        score,
        classifier,
        wait_us,
    }
}

fn default_of(router: &ArchivedRouter) -> (String, usize, Option<f32>) {
    (
        "default".into(),
        router.default_alias.to_native() as usize,
        None,
    )
}

/// The prompt's vector within `timeout`, or None (counted).
async fn embed(
    slot: &ClassifierSlot,
    facts: &prompt::PromptFacts,
    timeout: Duration,
) -> Option<(Arc<Classifier>, Arc<[f32]>, bool)> {
    let Some(c) = slot.current() else {
        slot.unavailable();
        return None;
    };
    let system = (!facts.system.is_empty()).then_some(facts.system.as_str());
    let window = prompt_window(system, &facts.last_user);
    let started = Instant::now();
    let result = tokio::time::timeout(timeout, c.service.embed(&window)).await;
    let stats = &slot.stats;
    stats
        .wait_micros
        .fetch_add(started.elapsed().as_micros() as u64, Relaxed);
    match result {
        Ok(Ok(e)) => {
            let counter = if e.cached {
                &stats.cached
            } else {
                &stats.computed
            };
            counter.fetch_add(1, Relaxed);
            Some((c, e.vector, e.cached))
        }
        Ok(Err(classifier::ClassifierError::Busy)) => {
            stats.refused.fetch_add(1, Relaxed);
            None
        }
        Ok(Err(e)) => {
            stats.failed.fetch_add(1, Relaxed);
            tracing::warn!(error = %e, "classification failed; skipping label and route rules");
            None
        }
        Err(_) => {
            stats.timeouts.fetch_add(1, Relaxed);
            None
        }
    }
}

/// Prometheus text for the classifier.
pub fn metrics(slot: &ClassifierSlot) -> String {
    let s = &slot.stats;
    let mut out = String::from(
        "# HELP switchyard_classifier_requests_total Router classifications by outcome.\n\
         # TYPE switchyard_classifier_requests_total counter\n",
    );
    for (outcome, n) in [
        ("cached", &s.cached),
        ("computed", &s.computed),
        ("unavailable", &s.unavailable),
        ("timeout", &s.timeouts),
        ("queue_full", &s.refused),
        ("failed", &s.failed),
    ] {
        out.push_str(&format!(
            "switchyard_classifier_requests_total{{outcome=\"{outcome}\"}} {}\n",
            n.load(Relaxed)
        ));
    }
    out.push_str(&format!(
        "# HELP switchyard_classifier_wait_seconds_total Time requests spent waiting for classification.\n\
         # TYPE switchyard_classifier_wait_seconds_total counter\n\
         switchyard_classifier_wait_seconds_total {:.6}\n\
         # HELP switchyard_classifier_up Whether the classifier is loaded (0 when a policy needs it and it could not start).\n\
         # TYPE switchyard_classifier_up gauge\n\
         switchyard_classifier_up {}\n",
        s.wait_micros.load(Relaxed) as f64 / 1e6,
        u8::from(slot.current().is_some()),
    ));
    if let Some(c) = slot.current() {
        let st = c.service.stats();
        out.push_str(&format!(
            "# HELP switchyard_classifier_batches_total Encoder passes.\n\
             # TYPE switchyard_classifier_batches_total counter\n\
             switchyard_classifier_batches_total {}\n\
             # HELP switchyard_classifier_batched_prompts_total Prompts encoded (a pass may carry several).\n\
             # TYPE switchyard_classifier_batched_prompts_total counter\n\
             switchyard_classifier_batched_prompts_total {}\n\
             # HELP switchyard_classifier_inference_seconds_total Encoder time.\n\
             # TYPE switchyard_classifier_inference_seconds_total counter\n\
             switchyard_classifier_inference_seconds_total {:.6}\n\
             # HELP switchyard_classifier_cache_entries Prompt vectors cached.\n\
             # TYPE switchyard_classifier_cache_entries gauge\n\
             switchyard_classifier_cache_entries {}\n",
            st.batches.load(Relaxed),
            st.batched_prompts.load(Relaxed),
            st.inference_micros.load(Relaxed) as f64 / 1e6,
            c.service.cached_entries(),
        ));
    }
    out
}
