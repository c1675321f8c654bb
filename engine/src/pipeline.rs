//! The request path, top to bottom. Each phase is one call into its own
//! module, in this order:
//!
//! 1. auth        [`crate::auth`]      who is calling (key, status, expiry, source address)
//! 2. body        [`crate::body`]      read within the size limit
//! 3. classify    [`crate::classify`]  for a router: its rules, classifying the prompt
//!    only when a rule needs it ([`crate::routing::rules`])
//! 4. route       [`crate::routing`]   alias → targets; the key may use the model
//! 5. limits      [`crate::limits`]    rate limits; [`crate::budgets`] reserves the worst-case cost
//! 6. translate   [`crate::translate`] client format → provider format
//! 7. attempt     [`crate::failover`]  keys, breakers, retries, hedging; [`crate::upstream`] sends
//! 8. translate back + relay [`crate::relay`], watched by [`crate::meter::tap`]
//! 9. meter       [`crate::meter`]     settle limits and budgets to actual usage; [`crate::ledger`] records
//! 10. log        [`crate::metrics`], `tracing`
//!
//! Every failure is a [`GatewayError`], written once by [`respond::error`].

use crate::app::{Gateway, Role};
use crate::edge::Refusal;
use crate::error::GatewayError;
use crate::failover::{self, Delivery};
use crate::limits::token_bucket::mono_ns;
use crate::meter::tap::UsageTap;
use crate::meter::{cost, Account, Bill};
use crate::metrics::RequestRecord;
use crate::relay::{self, RelayEnd};
use crate::resilience::now_ms;
use crate::state::ActivePolicy;
use crate::translate::{ClientFormat, ResponseMode};
use crate::{
    admin, auth, body, budgets, classify, headers, limits, quota, request_id, respond, routing,
    translate,
};
use http::Method;
use pingora::protocols::http::ServerSession;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

/// What a finished request reports to metrics and the access log.
pub(crate) struct Served {
    route: &'static str,
    status: u16,
    /// The client's model name (checked: short and plain), for the log.
    model: String,
    /// The alias that served, `<direct>` or `-`: only names from the
    /// policy become metric labels, never a string a client made up.
    model_label: String,
    provider: String,
    error: Option<&'static str>,
    attempts: u32,
}

impl Served {
    pub(crate) fn plain(route: &'static str, status: u16) -> Self {
        Served {
            route,
            status,
            model: "-".into(),
            model_label: "-".into(),
            provider: "-".into(),
            error: None,
            attempts: 0,
        }
    }
}

/// Serve one request. Returns whether the connection may be reused.
pub async fn handle(gw: &Gateway, session: &mut ServerSession, role: Role) -> bool {
    let started = Instant::now();
    let in_flight = gw.metrics.in_flight.fetch_add(1, Relaxed);
    let rid = request_id::from_client(session.get_header("x-request-id").map(|v| v.as_bytes()));
    let active = gw.store.current();
    let method = session.req_header().method.clone();
    // The path only reaches the log and error messages, bounded.
    let path = bounded(session.req_header().uri.path()).to_string();
    let listener = &active.snapshot.policy().listener;
    let max_in_flight = u64::from(listener.limits.max_in_flight.to_native());
    // With no admin listener, its routes stay on the client listener.
    let admin_here = role == Role::Admin || listener.admin_address.is_empty();
    // The cap is for the API; liveness, metrics and admin calls cost
    // little and are what an operator needs most when it is reached.
    let api = role == Role::Client
        && matches!(
            path.as_str(),
            "/v1/chat/completions" | "/v1/messages" | "/v1/models"
        );
    let served = match (&method, path.as_str()) {
        (&Method::GET, "/healthz") if role == Role::Client => {
            respond::json(session, 200, br#"{"status":"ok"}"#.to_vec(), &rid).await;
            Served::plain("health", 200)
        }
        _ if api && in_flight >= max_in_flight => {
            gw.edge.refuse(Refusal::InFlight);
            let e = GatewayError::Overloaded("requests in flight");
            fail(session, "other", e, &rid, ClientFormat::OpenAi).await
        }
        (&Method::POST, "/v1/chat/completions") if role == Role::Client => {
            chat(session, &active, &rid, gw, ClientFormat::OpenAi, started).await
        }
        (&Method::POST, "/v1/messages") if role == Role::Client => {
            chat(session, &active, &rid, gw, ClientFormat::Anthropic, started).await
        }
        (&Method::GET, "/v1/models") if role == Role::Client => {
            models(session, &active, &rid).await
        }
        (&Method::GET, "/admin/usage") if admin_here => {
            admin::usage(session, &active, &rid, gw).await
        }
        (&Method::GET, "/healthz" | "/admin/health") if admin_here => {
            health(session, &active, &rid, gw).await
        }
        (&Method::GET, "/metrics") if admin_here => {
            let mut text = gw.metrics.render(&active.hash, &active.registry);
            text.push_str(&admin::ledger_metrics(&gw.ledger));
            text.push_str(&classify::metrics(&gw.classifier));
            gw.edge.render(&mut text);
            if let Some(c) = &gw.cluster {
                c.render(&mut text);
            }
            if let Some(tls) = &gw.tls {
                tls.render(&mut text);
            }
            let text = text.into_bytes();
            respond::text(session, 200, "text/plain; version=0.0.4", text, &rid).await;
            Served::plain("metrics", 200)
        }
        (_, p) if routes(role, admin_here).contains(&p) => {
            let e = GatewayError::MethodNotAllowed {
                method: bounded(method.as_str()).to_string(),
                path: path.clone(),
            };
            fail(session, "other", e, &rid, ClientFormat::OpenAi).await
        }
        _ => {
            let e = GatewayError::NotFound {
                method: bounded(method.as_str()).to_string(),
                path: path.clone(),
            };
            fail(session, "other", e, &rid, ClientFormat::OpenAi).await
        }
    };
    let elapsed = started.elapsed();
    gw.metrics.in_flight.fetch_sub(1, Relaxed);
    if served.route != "metrics" && served.route != "health" {
        gw.metrics.record_request(&RequestRecord {
            route: served.route,
            model: &served.model_label,
            provider: &served.provider,
            status: served.status,
            duration: elapsed,
        });
    }
    tracing::info!(
        target: "switchyard::access",
        request_id = %rid,
        method = ?bounded(method.as_str()),
        path = ?path,
        status = served.status,
        model = ?served.model,
        provider = %served.provider,
        error = served.error.unwrap_or("-"),
        attempts = served.attempts,
        ms = elapsed.as_secs_f64() * 1000.0,
    );
    // Pingora's finish() decides reuse from the session's own state (the
    // paths above turn keep-alive off where the wire is not clean).
    served.status != 499
}

/// A client's method or path as logs and error messages may carry it: at
/// most 256 bytes (a request head may be a megabyte).
fn bounded(s: &str) -> &str {
    clip(s, 256)
}

/// At most `max` bytes of `s`, cut at a character boundary.
pub(crate) fn clip(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// The paths a listener serves, for telling 405 from 404.
fn routes(role: Role, admin_here: bool) -> &'static [&'static str] {
    match (role, admin_here) {
        (Role::Client, true) => &[
            "/v1/chat/completions",
            "/v1/messages",
            "/v1/models",
            "/healthz",
            "/metrics",
            "/admin/usage",
            "/admin/health",
        ],
        (Role::Client, false) => &[
            "/v1/chat/completions",
            "/v1/messages",
            "/v1/models",
            "/healthz",
        ],
        (Role::Admin, _) => &["/healthz", "/metrics", "/admin/usage", "/admin/health"],
    }
}

pub(crate) async fn fail(
    session: &mut ServerSession,
    route: &'static str,
    e: GatewayError,
    rid: &str,
    client: ClientFormat,
) -> Served {
    if matches!(
        e,
        GatewayError::BodyTooLarge { .. }
            | GatewayError::BodyRead(_)
            | GatewayError::RequestTimeout { .. }
            | GatewayError::Overloaded(_)
    ) {
        // The rest of the body is still on the wire: the connection cannot
        // carry another request.
        session.set_keepalive(None);
    }
    respond::error(session, &e, rid, client).await;
    Served {
        error: Some(e.code()),
        ..Served::plain(route, e.status().as_u16())
    }
}

/// The caller of this request: its key, checked against the client's address.
fn authenticate<'p>(
    session: &ServerSession,
    policy: &'p policy::ArchivedCompiledPolicy,
    now_unix: u64,
) -> Result<auth::Caller<'p>, GatewayError> {
    let peer = session
        .client_addr()
        .and_then(|a| a.as_inet())
        .map(|a| a.ip());
    let forwarded_for: Vec<&[u8]> = session
        .req_header()
        .headers
        .get_all("x-forwarded-for")
        .iter()
        .map(|v| v.as_bytes())
        .collect();
    let ip = auth::client_ip(peer, &forwarded_for, &policy.tenancy);
    auth::authenticate(policy, presented_key(session), ip, now_unix)
}

pub(crate) fn presented_key(session: &ServerSession) -> Option<&[u8]> {
    auth::presented_key(
        session
            .get_header(http::header::AUTHORIZATION)
            .map(|v| v.as_bytes()),
        session.get_header("x-api-key").map(|v| v.as_bytes()),
    )
}

/// Chat completions (OpenAI clients) and messages (Anthropic clients):
/// authenticate, serve, then settle and record what it used.
async fn chat(
    session: &mut ServerSession,
    active: &ActivePolicy,
    rid: &str,
    gw: &Gateway,
    client: ClientFormat,
    started: Instant,
) -> Served {
    let route = match client {
        ClientFormat::OpenAi => "chat",
        ClientFormat::Anthropic => "messages",
    };
    let policy = active.snapshot.policy();
    let ts_ms = jiff::Timestamp::now().as_millisecond();
    // 1. auth
    let caller = match authenticate(session, policy, (ts_ms / 1000) as u64) {
        Ok(c) => c,
        Err(e) => return fail(session, route, e, rid, client).await,
    };
    let task = match task_id(session) {
        Ok(t) => t,
        Err(e) => return fail(session, route, e, rid, client).await,
    };
    let mut bill = Bill::default();
    let served = serve_chat(
        session, active, &caller, rid, gw, client, route, &mut bill, started,
    )
    .await;
    // 9. meter: settle limits and budgets, record usage
    let t = &policy.tenancy;
    let who = Account {
        request_id: rid,
        ts_ms,
        key: caller.key.name.as_str(),
        user: principal_name(caller.key.user.as_ref().and_then(|u| t.user(u.to_native()))),
        team: principal_name(caller.key.team.as_ref().and_then(|u| t.team(u.to_native()))),
        task: &task,
        inbound: match client {
            ClientFormat::OpenAi => "openai",
            ClientFormat::Anthropic => "anthropic",
        },
    };
    let total_us = started.elapsed().as_micros() as u64;
    let record = bill.close(
        &who,
        served.status,
        served.error.unwrap_or(""),
        served.attempts,
        total_us,
        mono_ns(),
    );
    gw.ledger.record(record);
    served
}

/// The longest `x-task-id` kept.
const MAX_TASK_ID: usize = 128;

/// The client's `x-task-id`, checked before the ledger records it: at most
/// 128 printable ASCII characters; absent is empty.
fn task_id(session: &ServerSession) -> Result<String, GatewayError> {
    let Some(v) = session.get_header("x-task-id") else {
        return Ok(String::new());
    };
    let v = v.as_bytes();
    if v.len() > MAX_TASK_ID || !v.iter().all(|b| (0x20..0x7f).contains(b)) {
        return Err(GatewayError::BadHeader {
            header: "x-task-id",
            reason: "at most 128 printable ASCII characters",
        });
    }
    Ok(String::from_utf8_lossy(v).into_owned())
}

fn principal_name(p: Option<&policy::ArchivedPrincipal>) -> &str {
    p.map(|p| p.name.as_str()).unwrap_or("")
}

#[allow(clippy::too_many_arguments)]
async fn serve_chat(
    session: &mut ServerSession,
    active: &ActivePolicy,
    caller: &auth::Caller<'_>,
    rid: &str,
    gw: &Gateway,
    client: ClientFormat,
    route: &'static str,
    bill: &mut Bill,
    started: Instant,
) -> Served {
    let policy = active.snapshot.policy();
    // 2. body: within the size limit, the deadline and the memory budget
    // (the reservation is held until the request is done with the body).
    let l = &policy.listener;
    let bounds = body::Bounds {
        max_body: l.max_body_bytes.to_native(),
        deadline: Duration::from_millis(l.limits.body_timeout_ms.to_native()),
        edge: &gw.edge,
        max_buffered: l.limits.max_buffered_bytes.to_native(),
    };
    let mut held = gw.edge.body();
    let body = match body::read(session, &bounds, &mut held).await {
        Ok(b) => b,
        Err(e) => return fail(session, route, e, rid, client).await,
    };
    // What a parsed tree of it could take is bounded, and held too.
    let shape = body::json_shape(&body);
    if shape.depth > body::MAX_JSON_DEPTH {
        let e = GatewayError::BadRequest(format!(
            "the JSON body is nested deeper than {} levels",
            body::MAX_JSON_DEPTH
        ));
        return fail(session, route, e, rid, client).await;
    }
    let values = shape.values;
    if values > body::MAX_JSON_VALUES {
        let e = GatewayError::TooManyJsonValues {
            limit: body::MAX_JSON_VALUES,
        };
        return fail(session, route, e, rid, client).await;
    }
    if held
        .grow(values * body::BYTES_PER_JSON_VALUE, bounds.max_buffered)
        .is_err()
    {
        let e = GatewayError::Overloaded("request bodies in memory");
        return fail(session, route, e, rid, client).await;
    }
    let request = match translate::openai::parse_chat(&body) {
        Ok(r) => r,
        Err(e) => return fail(session, route, e, rid, client).await,
    };
    if let Err(e) = routing::check_model_name(&request.model) {
        return fail(session, route, e, rid, client).await;
    }
    bill.alias = request.model.to_string();
    // What the client's own API requires is checked before any provider
    // state (cool-downs, breakers) can answer in its place.
    if client == ClientFormat::Anthropic {
        if let Err(e) = translate::anthropic::inbound::validate(&request) {
            return fail(session, route, e, rid, client).await;
        }
    }
    // 3. classify (requests sent to a router)
    let decision = match policy.routing.router(&request.model) {
        None => None,
        Some(router) => {
            if let Err(e) = routing::may_use(caller.key, &request.model) {
                return fail(session, route, e, rid, client).await;
            }
            let facts = classify::prompt::facts(request.messages, request.system);
            let tier = caller.key.tier.as_str();
            Some(classify::decide(&gw.classifier, active, router, tier, &facts).await)
        }
    };
    // 4. route
    let routed = match &decision {
        Some(d) => Ok(routing::Route::Alias(d.alias)),
        None => routing::resolve(policy, caller.key, &request.model),
    };
    let target = match routed {
        Ok(r) => r,
        Err(e) => return fail(session, route, e, rid, client).await,
    };
    // Limits, budgets and the ledger see the alias that serves.
    let model_name = match (
        &decision,
        policy.aliases.get(decision.as_ref().map_or(0, |d| d.alias)),
    ) {
        (Some(d), Some(alias)) => {
            bill.route = Some(d.clone());
            alias.name.as_str()
        }
        _ => request.model.as_ref(),
    };
    bill.alias = model_name.to_string();
    let notes = match &decision {
        Some(d) => d.headers(model_name),
        None => Vec::new(),
    };
    let plan = failover::plan(active, &target);
    // 5. limits and budgets
    let body_bytes = body.len() as u64;
    let estimate = cost::token_estimate(body_bytes, request.max_tokens);
    let scopes = quota::scopes(active, caller);
    let limited = scopes.limited();
    let cluster = gw.cluster.as_ref();
    bill.limits = match limits::admit(cluster, &limited, model_name, estimate, mono_ns()).await {
        Ok(p) => Some(p),
        Err(e) => return fail(session, route, e, rid, client).await,
    };
    // Most callers have no budget: then no prices are looked up here.
    let budgeted = scopes.budgeted();
    if !budgeted.is_empty() {
        let worst = match quota::reservation(policy, &plan, body_bytes, request.max_tokens) {
            Ok(w) => w,
            Err(e) => return fail(session, route, e, rid, client).await,
        };
        let periods = active.periods.at(jiff::Timestamp::now().as_millisecond());
        bill.budget = match budgets::reserve(cluster, &budgeted, model_name, worst, &periods).await
        {
            Ok(h) => Some(h),
            Err(e) => return fail(session, route, e, rid, client).await,
        };
    }
    // 6–7. translate, attempt, fail over
    let forwarded: Vec<_> = session
        .req_header()
        .headers
        .iter()
        .filter(|(name, _)| headers::forward_to_provider(name, &policy.listener.forward_headers))
        .map(|(n, v)| (n.clone(), v.clone()))
        .collect();
    let client_request = translate::ClientRequest::new(client, &body, &request);
    let env = failover::Env {
        active,
        request: &client_request,
        request_id: rid,
        forwarded: &forwarded,
        metrics: &gw.metrics,
    };
    bill.overhead_us = started.elapsed().as_micros() as u64;
    let (delivery, attempts) = failover::run(&env, &plan).await;
    let model = request.model.to_string();
    let model_label = match target {
        routing::Route::Alias(_) => model_name.to_string(),
        routing::Route::Direct { .. } => "<direct>".to_string(),
    };
    let served = |provider: &str, status: u16, error: Option<&'static str>| Served {
        route,
        status,
        model: model.clone(),
        model_label: model_label.clone(),
        provider: provider.to_string(),
        error,
        attempts,
    };
    // 8. translate back and relay
    match delivery {
        Delivery::Stream {
            mut committed,
            deadline,
        } => {
            let provider = committed.prepared.provider;
            let status = committed.response.header.status.as_u16();
            let idle = Duration::from_millis(provider.timeouts.idle_ms.to_native());
            let is_sse = committed
                .response
                .header
                .headers
                .get(http::header::CONTENT_TYPE)
                .is_some_and(|v| v.as_bytes().starts_with(b"text/event-stream"));
            let mut tap = UsageTap::new(provider.kind.native(), is_sse, body_bytes.div_ceil(4));
            bill.provider = provider.name.to_string();
            bill.model = committed.prepared.model.to_string();
            bill.ttfb_us = (committed.started + committed.time_to_first_byte)
                .saturating_duration_since(started)
                .as_micros() as u64;
            committed.notes = notes;
            let c = &mut committed;
            let relayed = match c.prepared.mode {
                ResponseMode::PassThrough => {
                    relay::stream(session, c, &mut tap, rid, idle, deadline, client).await
                }
                ResponseMode::Json => {
                    relay::translated_json(session, c, &mut tap, rid, idle, deadline, client).await
                }
                ResponseMode::Stream => match translate::stream_translator(
                    provider,
                    c.prepared.model,
                    request.include_usage,
                    relay::unix_now(),
                    client,
                ) {
                    Some(t) => {
                        relay::translated_stream(
                            session, c, t, &mut tap, rid, idle, deadline, client,
                        )
                        .await
                    }
                    None => relay::stream(session, c, &mut tap, rid, idle, deadline, client).await,
                },
            };
            let (usage, source) = tap.finish(relayed == RelayEnd::Complete);
            bill.usage = usage;
            bill.source = source;
            bill.cost_nanos = policy
                .tenancy
                .price(provider.name.as_str(), committed.prepared.model)
                .map_or(0, |p| cost::cost_nanos(p, &usage));
            match relayed {
                RelayEnd::Complete => {
                    committed.response.release().await;
                    served(provider.name.as_str(), status, None)
                }
                RelayEnd::ClientGone => {
                    served(provider.name.as_str(), 499, Some("client_closed_request"))
                }
                RelayEnd::UpstreamBroke(_) => {
                    let cfg = active.providers[committed.prepared.provider_index]
                        .pool
                        .breaker;
                    let now = now_ms();
                    committed.prepared.lease.failed(&cfg, now);
                    committed.prepared.target.failed(&cfg, now);
                    served(
                        provider.name.as_str(),
                        status,
                        Some("upstream_stream_interrupted"),
                    )
                }
            }
        }
        Delivery::Buffered { provider, response } => {
            let status = response.header.status.as_u16();
            bill.provider = provider.clone();
            match relay::buffered(session, response, rid, client, &notes).await {
                RelayEnd::Complete => served(&provider, status, None),
                _ => served(&provider, 499, Some("client_closed_request")),
            }
        }
        Delivery::Error(e) => {
            let (status, code) = (e.status().as_u16(), e.code());
            respond::error(session, &e, rid, client).await;
            served("-", status, Some(code))
        }
    }
}

async fn models(session: &mut ServerSession, active: &ActivePolicy, rid: &str) -> Served {
    let policy = active.snapshot.policy();
    let now = jiff::Timestamp::now().as_second().max(0) as u64;
    let key = match authenticate(session, policy, now) {
        Ok(c) => c.key,
        Err(e) => return fail(session, "models", e, rid, ClientFormat::OpenAi).await,
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

async fn health(
    session: &mut ServerSession,
    active: &ActivePolicy,
    rid: &str,
    gw: &Gateway,
) -> Served {
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
    let mut body = serde_json::json!({
        "status": "ok",
        "policy_hash": active.hash,
        "policy_loaded_at": loaded,
        "providers": providers,
    });
    if let Some(c) = &gw.cluster {
        body["cluster"] = c.health();
    }
    respond::json(session, 200, body.to_string().into_bytes(), rid).await;
    Served::plain("health", 200)
}
