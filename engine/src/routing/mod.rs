//! Phase 4: which provider and model serve a requested model name.
//! Aliases first; then `<provider>/<model>` for providers that allow it.
//! A router name (see [`rules`]) resolves to the alias its rules chose.

pub mod rules;

use crate::error::GatewayError;
use policy::{ArchivedClientKey, ArchivedCompiledPolicy, ArchivedProvider};

pub enum Route<'a> {
    /// An alias of the policy, by index.
    Alias(usize),
    /// `<provider>/<model>` for a provider that allows it.
    Direct {
        provider_index: u32,
        provider: &'a ArchivedProvider,
        model: &'a str,
    },
}

/// The longest model name a client may send.
pub const MAX_MODEL_NAME: usize = 256;

/// A client's model name, checked before anything records it (the usage
/// ledger, metrics, logs, error messages): 1–256 of `A-Z a-z 0-9 . _ : / @ + -`.
pub fn check_model_name(name: &str) -> Result<(), GatewayError> {
    let ok = !name.is_empty()
        && name.len() <= MAX_MODEL_NAME
        && name.bytes().all(|b| {
            b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'/' | b'@' | b'+' | b'-')
        });
    if ok {
        Ok(())
    } else {
        Err(GatewayError::InvalidModelName(
            "`model` must be 1 to 256 characters of letters, digits and `. _ : / @ + -`",
        ))
    }
}

/// The model part of `<provider>/<model>`, which may end up in a provider's
/// URL: `A-Z a-z 0-9 . _ : -` only, and no `..`.
fn check_direct_model(model: &str) -> Result<(), GatewayError> {
    let ok = !model.is_empty()
        && !model.contains("..")
        && model
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(GatewayError::InvalidModelName(
            "the model in `<provider>/<model>` must be letters, digits and `. _ : -`, without `..`",
        ))
    }
}

pub fn resolve<'a>(
    policy: &'a ArchivedCompiledPolicy,
    key: &ArchivedClientKey,
    requested: &'a str,
) -> Result<Route<'a>, GatewayError> {
    let route = find(policy, requested)?;
    // The caller is authenticated: say plainly that the model exists but
    // is not theirs to use.
    if !key.allows(requested) {
        return Err(GatewayError::ModelNotAllowed(requested.to_string()));
    }
    Ok(route)
}

/// Whether the caller may send requests to this router (checked before
/// the router spends anything on classification).
pub fn may_use(key: &ArchivedClientKey, router: &str) -> Result<(), GatewayError> {
    if key.allows(router) {
        Ok(())
    } else {
        Err(GatewayError::ModelNotAllowed(router.to_string()))
    }
}

fn find<'a>(
    policy: &'a ArchivedCompiledPolicy,
    requested: &'a str,
) -> Result<Route<'a>, GatewayError> {
    let unknown = || GatewayError::UnknownModel(requested.to_string());
    if let Some(index) = policy.alias_index(requested) {
        return Ok(Route::Alias(index));
    }
    let (provider_name, model) = requested.split_once('/').ok_or_else(unknown)?;
    match policy.provider(provider_name) {
        Some((index, provider)) if provider.allow_direct && !model.is_empty() => {
            check_direct_model(model)?;
            Ok(Route::Direct {
                provider_index: index,
                provider,
                model,
            })
        }
        _ => Err(unknown()),
    }
}

/// The model names `key` may use, for `GET /v1/models`.
pub fn visible_models<'a>(
    policy: &'a ArchivedCompiledPolicy,
    key: &ArchivedClientKey,
) -> Vec<&'a str> {
    policy
        .aliases
        .iter()
        .map(|a| a.name.as_str())
        .chain(policy.routing.routers.iter().map(|r| r.name.as_str()))
        .filter(|name| key.allows(name))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use policy::{compile_yaml, snapshot, Snapshot};
    use std::collections::HashMap;

    fn snap(models: &str) -> Snapshot {
        let src = format!(
            "version: 1\nproviders:\n  openai:\n    kind: openai\n    base_url: http://127.0.0.1:1/v1\n    allow_direct: true\n    keys: [{{key: k}}]\n  closed:\n    kind: openai\n    base_url: http://127.0.0.1:2\nmodels:\n  fast:\n    targets: [{{provider: openai, model: gpt-4o-mini}}]\n  other:\n    targets: [{{provider: closed, model: m}}]\nclient_keys:\n  - name: a\n    key: sk-sy-0123456789abcdef\n    models: {models}\n"
        );
        let c = compile_yaml(&src, "t.yaml", &HashMap::new()).unwrap();
        Snapshot::from_bytes(&snapshot::encode(&c.policy, 0).unwrap()).unwrap()
    }

    fn key(s: &Snapshot) -> &ArchivedClientKey {
        &s.policy().client_keys[0]
    }

    #[test]
    fn model_names_are_bounded_and_plain() {
        assert!(check_model_name("gpt-4o-mini").is_ok());
        assert!(check_model_name("openai/ft:gpt-4o:org:x@1+2").is_ok());
        assert!(check_model_name(&"m".repeat(256)).is_ok());
        for bad in ["", "gpt\nINFO forged", "a b", "m#", "m?", "é"] {
            assert!(check_model_name(bad).is_err(), "{bad:?}");
        }
        assert!(check_model_name(&"m".repeat(257)).is_err());
    }

    #[test]
    fn aliases_direct_addressing_and_permissions() {
        let s = snap(r#"["*"]"#);
        let p = s.policy();
        assert!(matches!(
            resolve(p, key(&s), "fast").unwrap(),
            Route::Alias(0)
        ));
        match resolve(p, key(&s), "openai/gpt-4.1").unwrap() {
            Route::Direct {
                provider_index,
                provider,
                model,
            } => {
                assert_eq!(
                    (provider_index, provider.name.as_str(), model),
                    (1, "openai", "gpt-4.1")
                )
            }
            Route::Alias(_) => panic!("direct expected"),
        }
        assert!(matches!(
            resolve(p, key(&s), "closed/m"),
            Err(GatewayError::UnknownModel(_))
        ));
        assert!(resolve(p, key(&s), "openai/").is_err());
        for hostile in [
            "openai/gemini-2.5-flash:countTokens#",
            "openai/../v1/files",
            "openai/a/b",
            "openai/m?x=1",
            "openai/m%2F",
        ] {
            assert!(
                matches!(
                    resolve(p, key(&s), hostile),
                    Err(GatewayError::InvalidModelName(_))
                ),
                "{hostile}"
            );
        }
        assert!(resolve(p, key(&s), "openai/ft:gpt-4o-mini:org::abc").is_ok());
        assert!(resolve(p, key(&s), "nope").is_err());
        assert_eq!(visible_models(p, key(&s)), ["fast", "other"]);

        let s = snap(r#"["fast"]"#);
        assert!(resolve(s.policy(), key(&s), "fast").is_ok());
        assert!(matches!(
            resolve(s.policy(), key(&s), "other"),
            Err(GatewayError::ModelNotAllowed(_))
        ));
        assert!(matches!(
            resolve(s.policy(), key(&s), "missing"),
            Err(GatewayError::UnknownModel(_))
        ));
        assert!(resolve(s.policy(), key(&s), "openai/gpt-4.1").is_err());
        assert_eq!(visible_models(s.policy(), key(&s)), ["fast"]);
    }
}
