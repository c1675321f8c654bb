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
