//! `switchyard classify`: run prompts through the classifier and, with a
//! policy, through its routes and routers — what an operator uses to tune
//! thresholds and utterances before deploying them.

use crate::classify::prompt::PromptFacts;
use crate::routing::rules::{self, Facts, Outcome, Scores};
use crate::state::SemanticRoutes;
use classifier::{
    prompt_window, ClassifierService, EncoderOptions, LabelHead, ModelFiles, ServiceOptions,
};
use std::io::BufRead;
use std::path::PathBuf;

#[derive(clap::Args, Debug)]
pub struct ClassifyArgs {
    /// Prompts: plain lines, or JSONL with a `text` field (and optional
    /// `system`). Default: standard input.
    #[arg(long)]
    pub file: Option<PathBuf>,
    /// A policy (YAML or snapshot): also score its routes and routers.
    #[arg(long)]
    pub policy: Option<PathBuf>,
    /// The model cache (default: SWITCHYARD_MODEL_DIR, else .cache/models).
    #[arg(long)]
    pub model_dir: Option<PathBuf>,
    /// The caller's tier, for routers with tier rules.
    #[arg(long, default_value = "")]
    pub tier: String,
    /// table or json.
    #[arg(long, default_value = "table")]
    pub format: String,
}

pub fn run(a: ClassifyArgs) -> Result<(), String> {
    if a.format != "table" && a.format != "json" {
        return Err(format!(
            "--format must be table or json, not {:?}",
            a.format
        ));
    }
    let files = match &a.model_dir {
        Some(d) => ModelFiles::in_dir(d),
        None => ModelFiles::from_env(),
    };
    let head = LabelHead::builtin().map_err(|e| e.to_string())?;
    let options = ServiceOptions {
        encoder: EncoderOptions {
            max_tokens: head.max_tokens,
            intra_threads: 1,
            segment_edge: head.segment_edge,
        },
        ..ServiceOptions::default()
    };
    let service = ClassifierService::start(&files, &options).map_err(|e| e.to_string())?;
    let fits = head.encoder == service.model_id() && head.dim == service.feature_dim();
    if !fits {
        eprintln!(
            "warning: the built-in head was trained on another encoder; labels are not shown"
        );
    }
    let policy = match &a.policy {
        Some(p) => {
            let mut encoder = classifier::ServiceEncoder(&service);
            let loaded =
                policy::load_path_with(p, Some(&mut encoder)).map_err(|e| e.to_string())?;
            for w in &loaded.warnings {
                eprintln!("warning: {w}");
            }
            Some(loaded.snapshot)
        }
        None => None,
    };
    let semantic = policy
        .as_ref()
        .map(|s| SemanticRoutes::build(&s.policy().routing));
    let routes = semantic
        .as_ref()
        .and_then(|s| s.usable_with(service.model_id(), service.dim()));
    if semantic.as_ref().is_some_and(|s| !s.set.routes.is_empty()) && routes.is_none() {
        eprintln!("warning: the policy's route vectors came from another encoder; recompile it with policyc");
    }

    let input: Box<dyn BufRead> = match &a.file {
        Some(f) => Box::new(std::io::BufReader::new(
            std::fs::File::open(f).map_err(|e| format!("cannot read {}: {e}", f.display()))?,
        )),
        None => Box::new(std::io::stdin().lock()),
    };
    if a.format == "table" {
        println!(
            "{:<10} {:>5}  {:<24} {:<28} {:>8}  prompt",
            "label", "p", "route", "router", "ms"
        );
    }
    for (n, line) in input.lines().enumerate() {
        let line = line.map_err(|e| e.to_string())?;
        if line.trim().is_empty() {
            continue;
        }
        let (system, text) = parse_line(&line).map_err(|e| format!("line {}: {e}", n + 1))?;
        let window = prompt_window(system.as_deref(), &text);
        let e = service.embed_blocking(&window).map_err(|e| e.to_string())?;
        let probs = fits.then(|| head.probabilities(&e.vector));
        let sentence = e.vector.get(..service.dim()).unwrap_or(&e.vector);
        let (label, p) = probs.as_ref().map_or(("-", 0.0), |p| head.top(p));
        let best_route = routes.and_then(|set| {
            (0..set.routes.len())
                .filter_map(|i| set.score(i, sentence).map(|s| (i, s)))
                .max_by(|x, y| x.1.score.total_cmp(&y.1.score))
                .map(|(i, s)| (set.routes[i].name.as_str(), s))
        });
        let facts = PromptFacts {
            input_tokens: ((system.as_deref().unwrap_or("").len() + text.len()) as u64).div_ceil(4),
            ..PromptFacts::default()
        };
        let decisions: Vec<(String, String, String)> = policy
            .as_ref()
            .map(|s| {
                let p = s.policy();
                p.routing
                    .routers
                    .iter()
                    .map(|r| {
                        let scores = Scores::Ready {
                            labels: probs.as_deref(),
                            thresholds: &head.thresholds,
                            vector: sentence,
                            routes,
                        };
                        let cheap = Facts {
                            input_tokens: facts.input_tokens,
                            has_image: false,
                            tier: &a.tier,
                        };
                        let (rule, alias) = match rules::evaluate(r, &cheap, &scores) {
                            Outcome::Rule { index, .. } => {
                                let rule = &r.rules[index];
                                (rule.name.to_string(), rule.alias.to_native())
                            }
                            _ => ("default".to_string(), r.default_alias.to_native()),
                        };
                        let alias = p
                            .aliases
                            .get(alias as usize)
                            .map(|a| a.name.to_string())
                            .unwrap_or_default();
                        (r.name.to_string(), rule, alias)
                    })
                    .collect()
            })
            .unwrap_or_default();
        let ms = e.latency.as_secs_f64() * 1000.0;
        if a.format == "json" {
            let labels: serde_json::Map<String, serde_json::Value> = probs
                .iter()
                .flat_map(|p| head.labels.iter().zip(p.iter()))
                .map(|(l, p)| (l.clone(), serde_json::json!(round3(*p))))
                .collect();
            let out = serde_json::json!({
                "text": text,
                "label": label,
                "score": round3(p),
                "labels": labels,
                "route": best_route.map(|(name, s)| serde_json::json!({
                    "name": name, "score": round3(s.score), "matched": s.matched,
                })),
                "routers": decisions.iter().map(|(r, rule, alias)| serde_json::json!({
                    "router": r, "rule": rule, "alias": alias,
                })).collect::<Vec<_>>(),
                "ms": (ms * 1000.0).round() / 1000.0,
                "cached": e.cached,
            });
            println!("{out}");
        } else {
            let route = best_route
                .map(|(n, s)| format!("{n} {:.2}{}", s.score, if s.matched { " ✓" } else { "" }))
                .unwrap_or_else(|| "-".into());
            let router = decisions
                .iter()
                .map(|(r, rule, alias)| format!("{r}/{rule}→{alias}"))
                .collect::<Vec<_>>()
                .join(" ");
            let shown: String = text.chars().take(60).collect();
            println!(
                "{label:<10} {p:>5.2}  {route:<24} {:<28} {ms:>8.2}  {}",
                if router.is_empty() { "-" } else { &router },
                shown.replace('\n', " ")
            );
        }
    }
    Ok(())
}

/// A JSONL object with `text` (and optional `system`), or a plain line.
fn parse_line(line: &str) -> Result<(Option<String>, String), String> {
    if !line.trim_start().starts_with('{') {
        return Ok((None, line.to_string()));
    }
    let v: serde_json::Value = serde_json::from_str(line).map_err(|e| e.to_string())?;
    let text = v
        .get("text")
        .and_then(|t| t.as_str())
        .ok_or("a JSON line needs a string `text` field")?;
    let system = v.get("system").and_then(|s| s.as_str()).map(str::to_string);
    Ok((system, text.to_string()))
}

fn round3(x: f32) -> f64 {
    (f64::from(x) * 1000.0).round() / 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_plain_or_jsonl() {
        assert_eq!(
            parse_line("fix my code").unwrap(),
            (None, "fix my code".into())
        );
        assert_eq!(
            parse_line(r#"{"text":"hi","system":"be brief"}"#).unwrap(),
            (Some("be brief".into()), "hi".into())
        );
        assert!(parse_line(r#"{"prompt":"hi"}"#)
            .unwrap_err()
            .contains("`text`"));
        assert!(parse_line("{not json").is_err());
    }
}
