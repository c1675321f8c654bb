//! What happens to each OpenAI request parameter on each provider kind:
//! mapped, dropped (and reported in `x-switchyard-dropped-params`), or
//! rejected with a 400 that names it. Unknown parameters are rejected.
//! Kept as data so the README's parameter matrix is these tables.

use crate::error::GatewayError;
use serde_json::{Map, Value};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rule {
    Map,
    Drop,
    Reject(&'static str),
}

pub struct ParamTable {
    pub kind: &'static str,
    pub rules: &'static [(&'static str, Rule)],
}

impl ParamTable {
    /// Check every top-level field of the request; the dropped ones.
    pub fn check(&self, req: &Map<String, Value>) -> Result<Vec<String>, GatewayError> {
        let mut dropped = Vec::new();
        for (name, value) in req {
            if value.is_null() {
                continue;
            }
            match self.rules.iter().find(|(n, _)| n == name).map(|(_, r)| *r) {
                Some(Rule::Map) => {}
                Some(Rule::Drop) => dropped.push(name.clone()),
                Some(Rule::Reject(why)) => return Err(unsupported(name, self.kind, why)),
                None => return Err(unsupported(name, self.kind, "unknown parameter")),
            }
        }
        Ok(dropped)
    }
}

/// The README's parameter matrix: every parameter any table names, and
/// what each provider kind does with it.
pub fn matrix_markdown(tables: &[&ParamTable]) -> String {
    let mut names: Vec<&str> = tables
        .iter()
        .flat_map(|t| t.rules.iter().map(|(n, _)| *n))
        .collect();
    names.sort_unstable();
    names.dedup();
    let mut out = String::from("| parameter | openai, openai_compatible |");
    for t in tables {
        out.push_str(&format!(" {} |", t.kind));
    }
    out.push_str("\n|---|---|");
    for _ in tables {
        out.push_str("---|");
    }
    out.push('\n');
    for name in names {
        out.push_str(&format!("| `{name}` | passed through |"));
        for t in tables {
            let cell = match t.rules.iter().find(|(n, _)| *n == name).map(|(_, r)| *r) {
                Some(Rule::Map) => "mapped".to_string(),
                Some(Rule::Drop) => "dropped (reported)".to_string(),
                Some(Rule::Reject(why)) => format!("rejected: {why}"),
                None => "rejected: unknown".to_string(),
            };
            out.push_str(&format!(" {cell} |"));
        }
        out.push('\n');
    }
    out
}

pub fn unsupported(param: &str, kind: &'static str, reason: &str) -> GatewayError {
    GatewayError::UnsupportedParameter {
        param: param.to_string(),
        kind,
        reason: reason.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The README shows exactly what the tables do.
    #[test]
    fn readme_parameter_matrix_is_current() {
        let readme =
            std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md")).unwrap();
        let matrix = matrix_markdown(&[
            &crate::translate::anthropic::request::PARAMS,
            &crate::translate::gemini::request::PARAMS,
            &crate::translate::cohere::PARAMS,
        ]);
        assert!(
            readme.contains(&matrix),
            "README.md's parameter matrix is out of date; replace it with:\n\n{matrix}"
        );
    }

    #[test]
    fn maps_drops_and_rejects() {
        let t = ParamTable {
            kind: "x",
            rules: &[
                ("model", Rule::Map),
                ("seed", Rule::Drop),
                ("audio", Rule::Reject("no audio")),
            ],
        };
        let req = |v: Value| v.as_object().unwrap().clone();
        assert_eq!(
            t.check(&req(
                serde_json::json!({"model": "m", "seed": 1, "audio": null})
            ))
            .unwrap(),
            ["seed"]
        );
        let e = t
            .check(&req(serde_json::json!({"audio": {}})))
            .unwrap_err()
            .to_string();
        assert!(e.contains("`audio`") && e.contains("no audio"), "{e}");
        let e = t
            .check(&req(serde_json::json!({"frobnicate": 1})))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("`frobnicate`") && e.contains("unknown parameter"),
            "{e}"
        );
    }
}
