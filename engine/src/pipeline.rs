//! The request path, top to bottom. Each phase is one call into its own
//! module, in this order:
//!
//! 1. auth        [`crate::auth`]      who is calling
//! 2. limits      (issue: tenants, limits and budgets)
//! 3. body        [`crate::body`]      read within the size limit
//! 4. classify    (issue: semantic routing)
//! 5. route       [`crate::routing`]   alias → provider + model + key
//! 6. translate   [`crate::translate`] client format → provider format
//! 7. attempt     [`crate::upstream`]  send over a pooled connection
//! 8. translate back + relay [`crate::relay`]
//! 9. meter + log [`crate::metrics`], `tracing`
//!
//! Every failure is a [`GatewayError`], written once by [`respond::error`].

use crate::app::Gateway;
use crate::error::GatewayError;
use crate::metrics::RequestRecord;
use crate::relay::{self, RelayEnd};
use crate::state::ActivePolicy;
use crate::upstream::{self, Attempt};
use crate::{auth, body, headers, request_id, respond, routing, translate};
use http::Method;
use pingora::protocols::http::ServerSession;
use policy::ProviderKind;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Instant;

/// What a finished request reports to metrics and the access log.
struct Served {
    route: &'static str,
    status: u16,
    model: String,
    provider: String,
    error: Option<&'static str>,
}

impl Served {
    fn plain(route: &'static str, status: u16) -> Self {
        Served {
            route,
            status,
            model: "-".into(),
            provider: "-".into(),
            error: None,
        }
    }
}

/// Serve one request. Returns whether the connection may be reused.
pub async fn handle(gw: &Gateway, session: &mut ServerSession) -> bool {
    let started = Instant::now();
    gw.metrics.in_flight.fetch_add(1, Relaxed);
    let rid = request_id::from_client(session.get_header("x-request-id").map(|v| v.as_bytes()));
    let active = gw.store.current();
    let method = session.req_header().method.clone();
    let path = session.req_header().uri.path().to_string();
    let served = match (&method, path.as_str()) {
        (&Method::POST, "/v1/chat/completions") => chat(session, &active, &rid, gw).await,
        (&Method::GET, "/v1/models") => models(session, &active, &rid).await,
        (&Method::GET, "/healthz") => health(session, &active, &rid).await,
        (&Method::GET, "/metrics") => {
            let text = gw.metrics.render(&active.hash).into_bytes();
            respond::text(session, 200, "text/plain; version=0.0.4", text, &rid).await;
            Served::plain("metrics", 200)
        }
        (_, "/v1/chat/completions" | "/v1/models" | "/healthz" | "/metrics") => {
            let e = GatewayError::MethodNotAllowed {
                method: method.to_string(),
                path: path.clone(),
            };
            fail(session, "other", e, &rid).await
        }
        _ => {
            let e = GatewayError::NotFound {
                method: method.to_string(),
                path: path.clone(),
            };
            fail(session, "other", e, &rid).await
        }
    };
    let elapsed = started.elapsed();
    gw.metrics.in_flight.fetch_sub(1, Relaxed);
    if served.route != "metrics" && served.route != "health" {
        gw.metrics.record_request(&RequestRecord {
            route: served.route,
            model: &served.model,
            provider: &served.provider,
            status: served.status,
            duration: elapsed,
        });
    }
    tracing::info!(
        target: "switchyard::access",
        request_id = %rid,
        method = %method,
        path = %path,
        status = served.status,
        model = %served.model,
        provider = %served.provider,
        error = served.error.unwrap_or("-"),
        ms = elapsed.as_secs_f64() * 1000.0,
    );
    // Pingora's finish() decides reuse from the session's own state (the
    // paths above turn keep-alive off where the wire is not clean).
    served.status != 499
}

async fn fail(
    session: &mut ServerSession,
    route: &'static str,
    e: GatewayError,
    rid: &str,
) -> Served {
    if matches!(
        e,
        GatewayError::BodyTooLarge { .. } | GatewayError::BodyRead(_)
    ) {
        // The rest of the body is still on the wire: the connection cannot
        // carry another request.
        session.set_keepalive(None);
    }
    respond::error(session, &e, rid).await;
    Served {
        error: Some(e.code()),
        ..Served::plain(route, e.status().as_u16())
    }
}

fn presented_key(session: &ServerSession) -> Option<&[u8]> {
    auth::presented_key(
        session
            .get_header(http::header::AUTHORIZATION)
            .map(|v| v.as_bytes()),
        session.get_header("x-api-key").map(|v| v.as_bytes()),
    )
}

async fn chat(
    session: &mut ServerSession,
    active: &ActivePolicy,
    rid: &str,
    gw: &Gateway,
) -> Served {
    const ROUTE: &str = "chat";
    let policy = active.snapshot.policy();
    // 1. auth
    let key = match auth::authenticate(policy, presented_key(session)) {
        Ok(k) => k,
        Err(e) => return fail(session, ROUTE, e, rid).await,
    };
    // 3. body
    let body = match body::read(session, policy.listener.max_body_bytes.to_native()).await {
        Ok(b) => b,
        Err(e) => return fail(session, ROUTE, e, rid).await,
    };
    let request = match translate::openai::parse_chat(&body) {
        Ok(r) => r,
        Err(e) => return fail(session, ROUTE, e, rid).await,
    };
    // 5. route
    let route = match routing::resolve(policy, key, &request.model) {
        Ok(r) => r,
        Err(e) => return fail(session, ROUTE, e, rid).await,
    };
    let labels = |status: u16, error: Option<&'static str>| Served {
        route: ROUTE,
        status,
        model: request.model.to_string(),
        provider: route.provider.name.to_string(),
        error,
    };
    let kind = route.provider.kind.native();
    if !matches!(kind, ProviderKind::OpenAi | ProviderKind::OpenAiCompatible) {
        let e = GatewayError::NotImplemented(format!(
            "model `{}` is served by provider `{}` of kind `{}`, whose translator is not available in this build; use an OpenAI or OpenAI-compatible provider",
            request.model, route.provider.name, kind.as_str()
        ));
        let served = labels(e.status().as_u16(), Some(e.code()));
        respond::error(session, &e, rid).await;
        return served;
    }
    // 6. translate
    let upstream_body = match translate::openai::to_upstream(&body, &request, route.model) {
        Ok(b) => b,
        Err(e) => return fail(session, ROUTE, e, rid).await,
    };
    let Some(runtime) = active.providers.get(route.provider_index as usize) else {
        return fail(
            session,
            ROUTE,
            GatewayError::Internal("provider index out of range".into()),
            rid,
        )
        .await;
    };
    let Some(key_index) = runtime.next_key_index() else {
        let e = GatewayError::NoUpstreamKey(route.provider.name.to_string());
        let served = labels(e.status().as_u16(), Some(e.code()));
        respond::error(session, &e, rid).await;
        return served;
    };
    let Some(peer) = runtime.peer.load_full() else {
        let reason = runtime
            .resolve_error
            .load_full()
            .map(|r| r.to_string())
            .unwrap_or_default();
        let e = GatewayError::UpstreamConnect {
            provider: route.provider.name.to_string(),
            reason,
        };
        let served = labels(e.status().as_u16(), Some(e.code()));
        respond::error(session, &e, rid).await;
        return served;
    };
    let forwarded = session
        .req_header()
        .headers
        .iter()
        .filter(|(name, _)| headers::forward_to_provider(name))
        .map(|(n, v)| (n.clone(), v.clone()))
        .collect();
    let attempt = Attempt {
        provider: route.provider.name.as_str(),
        peer,
        authority: &runtime.authority,
        path: format!("{}/chat/completions", route.provider.path_prefix),
        api_key: route.provider.keys[key_index].secret.as_str(),
        request_id: rid,
        forwarded,
        body: upstream_body,
    };
    // 7. attempt
    let mut response = match upstream::send(&attempt).await {
        Ok(r) => r,
        Err(e) => {
            gw.metrics
                .record_attempt(attempt.provider, upstream::outcome_label(&Err(&e)));
            let served = labels(e.status().as_u16(), Some(e.code()));
            respond::error(session, &e, rid).await;
            return served;
        }
    };
    let status = response.header.status.as_u16();
    gw.metrics
        .record_attempt(attempt.provider, upstream::outcome_label(&Ok(status)));
    // 8. translate back (pass-through for OpenAI) and relay
    match relay::relay(session, &mut response, rid).await {
        RelayEnd::Complete => {
            response.release().await;
            labels(status, None)
        }
        RelayEnd::ClientGone => labels(499, Some("client_closed_request")),
        RelayEnd::UpstreamBroke(_) => labels(status, Some("upstream_stream_interrupted")),
    }
}

async fn models(session: &mut ServerSession, active: &ActivePolicy, rid: &str) -> Served {
    let policy = active.snapshot.policy();
    let key = match auth::authenticate(policy, presented_key(session)) {
        Ok(k) => k,
        Err(e) => return fail(session, "models", e, rid).await,
    };
    let created = active.snapshot.header().compiled_at_unix;
    let data: Vec<serde_json::Value> = routing::visible_models(policy, key)
        .into_iter()
        .map(|name| {
            let owner = policy
                .alias(name)
                .and_then(|a| a.targets.first())
                .and_then(|t| policy.provider_at(t.provider.to_native()))
                .map(|p| p.name.as_str())
                .unwrap_or("switchyard");
            serde_json::json!({"id": name, "object": "model", "created": created, "owned_by": owner})
        })
        .collect();
    let body = serde_json::json!({"object": "list", "data": data})
        .to_string()
        .into_bytes();
    respond::json(session, 200, body, rid).await;
    Served::plain("models", 200)
}

async fn health(session: &mut ServerSession, active: &ActivePolicy, rid: &str) -> Served {
    let policy = active.snapshot.policy();
    let providers: serde_json::Map<String, serde_json::Value> = policy
        .providers
        .iter()
        .zip(active.providers.iter())
        .map(|(p, rt)| {
            let state = serde_json::json!({
                "kind": p.kind.native().as_str(),
                "keys": p.keys.len(),
                "resolved": rt.peer.load().is_some(),
            });
            (p.name.to_string(), state)
        })
        .collect();
    let loaded = humantime::format_rfc3339_seconds(active.loaded_at).to_string();
    let body = serde_json::json!({
        "status": "ok",
        "policy_hash": active.hash,
        "policy_loaded_at": loaded,
        "providers": providers,
    });
    respond::json(session, 200, body.to_string().into_bytes(), rid).await;
    Served::plain("health", 200)
}
