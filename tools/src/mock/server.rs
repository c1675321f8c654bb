//! The mock's HTTP server (hyper, HTTP/1.1 keep-alive).

use super::openai::{self, ApiError};
use super::schedule::Schedule;
use super::served::{Account, Served, ServedUsage};
use super::{anthropic, cohere, gemini};
use super::{Faults, MockConfig, RecordedRequest, Recorder};
use bytes::Bytes;
use futures_util::stream;
use http::{header, Method, Request, Response, StatusCode};
use http_body_util::{combinators::BoxBody, BodyExt, Full, Limited, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio_rustls::TlsAcceptor;

type Body = BoxBody<Bytes, std::io::Error>;

struct State {
    cfg: MockConfig,
    recorder: Recorder,
    served: Served,
    schedule: Schedule,
    next_id: AtomicU64,
    /// API requests being answered, and the most there ever were at once.
    in_flight: AtomicU64,
    peak_in_flight: AtomicU64,
}

/// Counts one API request as in flight until its handler returns.
struct InFlight<'a>(&'a State);

impl<'a> InFlight<'a> {
    fn enter(state: &'a State) -> Self {
        let now = state.in_flight.fetch_add(1, Ordering::AcqRel) + 1;
        state.peak_in_flight.fetch_max(now, Ordering::AcqRel);
        InFlight(state)
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

impl State {
    fn new(cfg: MockConfig) -> Arc<State> {
        Arc::new(State {
            recorder: Recorder::new(cfg.record),
            served: Served::default(),
            schedule: Schedule::new(cfg.schedule.clone()),
            cfg,
            next_id: AtomicU64::new(1),
            in_flight: AtomicU64::new(0),
            peak_in_flight: AtomicU64::new(0),
        })
    }

    /// Headers first, then the key's faults, then the schedule, then defaults.
    fn faults_for(&self, headers: &http::HeaderMap) -> Faults {
        if Faults::in_headers(headers) {
            return Faults::from_request(headers, &self.cfg);
        }
        let key = bearer(headers);
        if let Some((_, f)) = self
            .cfg
            .key_faults
            .iter()
            .find(|(k, _)| Some(k.as_str()) == key)
        {
            return f.clone();
        }
        self.schedule
            .next()
            .unwrap_or_else(|| Faults::from_request(headers, &self.cfg))
    }
}

impl AsRef<Served> for State {
    fn as_ref(&self) -> &Served {
        &self.served
    }
}

fn bearer(headers: &http::HeaderMap) -> Option<&str> {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
}

/// Accept connections on `listener` until the task is dropped.
pub async fn serve(listener: tokio::net::TcpListener, cfg: MockConfig) -> std::io::Result<()> {
    serve_state(listener, State::new(cfg), None).await
}

async fn serve_state(
    listener: tokio::net::TcpListener,
    state: Arc<State>,
    tls: Option<TlsAcceptor>,
) -> std::io::Result<()> {
    loop {
        let (stream, _) = listener.accept().await?;
        let _ = stream.set_nodelay(true);
        let state = state.clone();
        let tls = tls.clone();
        tokio::spawn(async move {
            let svc = service_fn(move |req| handle(state.clone(), req));
            // Connection errors (including our own injected drops and failed
            // handshakes) end the connection; there is no one to report them to.
            match tls {
                Some(acceptor) => {
                    if let Ok(stream) = acceptor.accept(stream).await {
                        let _ = http1::Builder::new()
                            .serve_connection(TokioIo::new(stream), svc)
                            .await;
                    }
                }
                None => {
                    let _ = http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), svc)
                        .await;
                }
            }
        });
    }
}

/// A TLS acceptor for a PEM certificate chain and private key.
pub fn tls_acceptor(cert_chain_pem: &str, key_pem: &str) -> std::io::Result<TlsAcceptor> {
    let bad = |e: String| std::io::Error::new(std::io::ErrorKind::InvalidInput, e);
    let certs =
        rustls_pemfile::certs(&mut cert_chain_pem.as_bytes()).collect::<Result<Vec<_>, _>>()?;
    let key = rustls_pemfile::private_key(&mut key_pem.as_bytes())?
        .ok_or_else(|| bad("no private key in the PEM".into()))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| bad(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| bad(e.to_string()))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}

/// A mock running on its own runtime thread, for tests. Stops on drop.
pub struct MockServer {
    pub addr: SocketAddr,
    state: Arc<State>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl MockServer {
    /// Bind 127.0.0.1 on a free port and serve `cfg` from a background thread.
    pub fn start(cfg: MockConfig) -> std::io::Result<MockServer> {
        Self::start_with(cfg, None)
    }

    /// Like [`MockServer::start`], over HTTPS with this certificate chain.
    pub fn start_tls(
        cfg: MockConfig,
        cert_chain_pem: &str,
        key_pem: &str,
    ) -> std::io::Result<MockServer> {
        Self::start_with(cfg, Some(tls_acceptor(cert_chain_pem, key_pem)?))
    }

    fn start_with(cfg: MockConfig, tls: Option<TlsAcceptor>) -> std::io::Result<MockServer> {
        let std_listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        std_listener.set_nonblocking(true)?;
        let addr = std_listener.local_addr()?;
        let state = State::new(cfg);
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel();
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()?;
        let thread_state = state.clone();
        let thread = std::thread::Builder::new()
            .name("mock-provider".into())
            .spawn(move || {
                runtime.block_on(async move {
                    let Ok(listener) = tokio::net::TcpListener::from_std(std_listener) else {
                        return;
                    };
                    tokio::select! {
                        _ = serve_state(listener, thread_state, tls) => {}
                        _ = stop_rx => {}
                    }
                });
                runtime.shutdown_background();
            })?;
        Ok(MockServer {
            addr,
            state,
            stop: Some(stop_tx),
            thread: Some(thread),
        })
    }

    pub fn base_url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }

    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.state.recorder.all()
    }

    /// Tokens served, by the gateway's `x-request-id`.
    pub fn served(&self) -> std::collections::BTreeMap<String, ServedUsage> {
        self.state.served.all()
    }

    /// The most API requests the mock was answering at once (until their
    /// response headers were sent).
    pub fn peak_in_flight(&self) -> u64 {
        self.state.peak_in_flight.load(Ordering::Acquire)
    }

    pub fn clear_requests(&self) {
        self.state.recorder.clear()
    }
}

impl Drop for MockServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn full(status: StatusCode, content_type: &str, body: impl Into<Bytes>) -> Response<Body> {
    let mut resp = Response::new(Full::new(body.into()).map_err(|e| match e {}).boxed());
    *resp.status_mut() = status;
    if let Ok(v) = content_type.parse() {
        resp.headers_mut().insert(header::CONTENT_TYPE, v);
    }
    resp
}

fn api_error(e: ApiError, retry_after: Option<&str>) -> Response<Body> {
    let status = StatusCode::from_u16(e.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut resp = full(status, "application/json", e.body.to_string());
    if let Some(v) = retry_after.and_then(|r| r.parse().ok()) {
        resp.headers_mut().insert(header::RETRY_AFTER, v);
    }
    resp
}

async fn handle(
    state: Arc<State>,
    req: Request<Incoming>,
) -> Result<Response<Body>, std::io::Error> {
    let (parts, body) = req.into_parts();
    let path = parts.uri.path().to_string();
    let body = match Limited::new(body, 64 * 1024 * 1024).collect().await {
        Ok(b) => b.to_bytes(),
        Err(e) => return Err(std::io::Error::other(e.to_string())),
    };
    match (&parts.method, path.as_str()) {
        (&Method::GET, "/_mock/requests") => {
            let json = serde_json::to_vec(&state.recorder.all()).unwrap_or_default();
            return Ok(full(StatusCode::OK, "application/json", json));
        }
        (&Method::DELETE, "/_mock/requests") => {
            state.recorder.clear();
            return Ok(full(StatusCode::NO_CONTENT, "text/plain", ""));
        }
        (&Method::GET, "/_mock/served") => {
            let json = serde_json::to_vec(&state.served.all()).unwrap_or_default();
            return Ok(full(StatusCode::OK, "application/json", json));
        }
        (&Method::GET, "/healthz") => return Ok(full(StatusCode::OK, "text/plain", "ok\n")),
        _ => {}
    }
    let _in_flight = InFlight::enter(&state);
    record(&state, &parts, &body);
    let api = if path.ends_with("/messages") {
        Api::Anthropic
    } else if path.contains(":generateContent") || path.contains(":streamGenerateContent") {
        Api::Gemini
    } else if path.ends_with("/v2/chat") {
        Api::Cohere
    } else {
        Api::OpenAi
    };
    let faults = state.faults_for(&parts.headers);
    if faults.latency_ms > 0 {
        tokio::time::sleep(Duration::from_millis(faults.latency_ms)).await;
    }
    if faults.drop_before_headers {
        return Err(std::io::Error::new(
            std::io::ErrorKind::ConnectionReset,
            "injected drop",
        ));
    }
    if let Err(e) = check_key(&state.cfg, &parts.headers, api) {
        return Ok(api_error(e, None));
    }
    if let Some(status) = faults.status {
        let mut e = match api {
            Api::Anthropic => anthropic::injected_error(status),
            Api::Gemini => gemini::injected_error(status),
            Api::Cohere => cohere::error(status, "Injected error (mock)."),
            Api::OpenAi if status == 401 => {
                openai::incorrect_key(bearer(&parts.headers).unwrap_or(""))
            }
            Api::OpenAi => openai::injected_error(status),
        };
        if let Some(code) = &faults.error_code {
            e.body["error"]["code"] = code.as_str().into();
            e.body["error"]["type"] = code.as_str().into();
        }
        return Ok(api_error(e, faults.retry_after.as_deref()));
    }
    if parts.method == Method::GET && path.ends_with("/models") {
        let models = serde_json::json!({"object": "list", "data": [
            {"id": "gpt-4o-mini", "object": "model", "created": 1721172741, "owned_by": "system"},
            {"id": "gpt-4.1", "object": "model", "created": 1744316542, "owned_by": "system"}
        ]});
        return Ok(full(StatusCode::OK, "application/json", models.to_string()));
    }
    let n = state.next_id.fetch_add(1, Ordering::Relaxed);
    let rid = parts
        .headers
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let ledger = |prompt: u64, per_event: Vec<u64>| Account {
        state: state.clone(),
        request_id: rid.clone(),
        prompt,
        per_event,
    };
    let mut resp = match (&parts.method, api) {
        (&Method::POST, Api::Anthropic) => match anthropic::plan(
            &body,
            &parts.headers,
            faults.reply_tokens,
            format!("msg_mock{n}"),
        ) {
            Ok(r) if r.stream => {
                let tpc = faults.tokens_per_chunk.max(1);
                let mut per_event = vec![0, 0, 0];
                per_event.extend(r.tokens.chunks(tpc).map(|c| c.len() as u64));
                stream_response(
                    anthropic::sse_events(&r, faults.tokens_per_chunk),
                    &faults,
                    Some(anthropic::overloaded_event()),
                    Some(ledger(r.input_tokens, per_event)),
                )
            }
            Ok(r) => {
                ledger(r.input_tokens, vec![r.tokens.len() as u64]).add_all();
                full(
                    StatusCode::OK,
                    "application/json",
                    anthropic::message_body(&r),
                )
            }
            Err(e) => return Ok(api_error(e, None)),
        },
        (&Method::POST, Api::Gemini) => {
            match gemini::plan(&path, &body, faults.reply_tokens, format!("mockresp{n}")) {
                Ok(r) if path.contains(":streamGenerateContent") => stream_response(
                    gemini::sse_events(&r, faults.tokens_per_chunk),
                    &faults,
                    Some(gemini::stream_error_event()),
                    None,
                ),
                Ok(r) => full(
                    StatusCode::OK,
                    "application/json",
                    gemini::response_body(&r),
                ),
                Err(e) => return Ok(api_error(e, None)),
            }
        }
        (&Method::POST, Api::Cohere) => match cohere::plan(&body, format!("mock-{n}")) {
            Ok(r) if r.stream => stream_response(
                cohere::sse_events(&r, faults.tokens_per_chunk),
                &faults,
                None,
                None,
            ),
            Ok(r) => full(
                StatusCode::OK,
                "application/json",
                cohere::response_body(&r),
            ),
            Err(e) => return Ok(api_error(e, None)),
        },
        (&Method::POST, Api::OpenAi) if path.ends_with("/chat/completions") => {
            let created = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0);
            match openai::plan(
                &body,
                faults.reply_tokens,
                format!("chatcmpl-mock{n}"),
                created,
            ) {
                Ok(r) if r.stream => {
                    let tpc = faults.tokens_per_chunk.max(1);
                    let mut per_event = vec![0];
                    per_event.extend(r.tokens.chunks(tpc).map(|c| c.len() as u64));
                    stream_response(
                        openai::sse_events(&r, faults.tokens_per_chunk),
                        &faults,
                        None,
                        Some(ledger(r.prompt_tokens, per_event)),
                    )
                }
                Ok(r) => {
                    ledger(r.prompt_tokens, vec![r.tokens.len() as u64]).add_all();
                    full(
                        StatusCode::OK,
                        "application/json",
                        openai::completion_body(&r),
                    )
                }
                Err(e) => return Ok(api_error(e, None)),
            }
        }
        _ => {
            let e = openai::error(
                404,
                &format!("Invalid URL ({} {path})", parts.method),
                "invalid_request_error",
                None,
                None,
            );
            return Ok(api_error(e, None));
        }
    };
    let h = resp.headers_mut();
    h.insert("x-request-id", header_value(&format!("req_mock{n}")));
    match api {
        Api::OpenAi => {
            h.insert(
                "openai-processing-ms",
                header_value(&faults.latency_ms.to_string()),
            );
            h.insert("x-ratelimit-limit-requests", header_value("10000"));
            h.insert("x-ratelimit-remaining-requests", header_value("9999"));
            h.insert("x-ratelimit-reset-requests", header_value("6ms"));
        }
        Api::Anthropic => {
            h.insert("anthropic-ratelimit-requests-limit", header_value("4000"));
            h.insert(
                "anthropic-ratelimit-requests-remaining",
                header_value("3999"),
            );
        }
        // Gemini and Cohere send no rate-limit headers.
        Api::Gemini | Api::Cohere => {}
    }
    Ok(resp)
}

#[derive(Clone, Copy, PartialEq)]
enum Api {
    OpenAi,
    Anthropic,
    Gemini,
    Cohere,
}

fn header_value(s: &str) -> http::HeaderValue {
    http::HeaderValue::from_str(s).unwrap_or_else(|_| http::HeaderValue::from_static(""))
}

fn check_key(cfg: &MockConfig, headers: &http::HeaderMap, api: Api) -> Result<(), ApiError> {
    let presented = match api {
        Api::OpenAi | Api::Cohere => bearer(headers),
        Api::Anthropic => headers.get("x-api-key").and_then(|v| v.to_str().ok()),
        Api::Gemini => headers.get("x-goog-api-key").and_then(|v| v.to_str().ok()),
    };
    match (presented, &cfg.expect_key, api) {
        (None, _, Api::Anthropic) => Err(anthropic::error(401, "authentication_error", "x-api-key header is required")),
        (None, _, Api::Gemini) => Err(gemini::error(401, "UNAUTHENTICATED", "Method doesn't allow unregistered callers. Please use an API key.")),
        (Some(_), Some(_), Api::Gemini) if presented != cfg.expect_key.as_deref() => Err(gemini::invalid_key()),
        (None, _, Api::OpenAi | Api::Cohere) => Err(openai::error(401, "You didn't provide an API key. You need to provide your API key in an Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY).", "invalid_request_error", None, None)),
        (Some(k), Some(expected), _) if k != expected => Err(match api {
            Api::Anthropic => anthropic::injected_error(401),
            Api::Gemini => gemini::injected_error(401),
            Api::Cohere => cohere::error(401, "invalid api token"),
            Api::OpenAi => openai::incorrect_key(k),
        }),
        _ => Ok(()),
    }
}

/// An event stream, whole when nothing is to be injected, else paced, cut
/// (`drop_after_chunks`: a reset, or the API's in-stream error event when
/// it has one and `error_code` is `stream-error`).
fn stream_response(
    events: Vec<Vec<u8>>,
    faults: &Faults,
    error_event: Option<Vec<u8>>,
    account: Option<Account<State>>,
) -> Response<Body> {
    let delay = Duration::from_millis(faults.chunk_delay_ms);
    let drop_after = faults.drop_after_chunks;
    let in_band = (faults.error_code.as_deref() == Some("stream-error"))
        .then_some(error_event)
        .flatten();
    let body: Body = if delay.is_zero() && drop_after.is_none() {
        if let Some(a) = &account {
            a.add_all();
        }
        Full::new(Bytes::from(events.concat()))
            .map_err(|e| match e {})
            .boxed()
    } else {
        let account = account.map(Arc::new);
        let s = stream::unfold(
            (events.into_iter(), 0usize, false, in_band),
            move |(mut it, sent, done, in_band)| {
                let account = account.clone();
                async move {
                    if done {
                        return None;
                    }
                    // The pause comes first, so that a frame is on the wire
                    // before a drop that follows it (what was handed over
                    // was served).
                    if sent > 0 && !delay.is_zero() {
                        tokio::time::sleep(delay).await;
                    }
                    if drop_after == Some(sent) {
                        if let Some(ev) = in_band {
                            return Some((
                                Ok(Frame::data(Bytes::from(ev))),
                                (it, sent, true, None),
                            ));
                        }
                        let err = std::io::Error::new(
                            std::io::ErrorKind::ConnectionReset,
                            "injected mid-stream drop",
                        );
                        return Some((Err(err), (it, sent, true, None)));
                    }
                    let event = it.next()?;
                    if let Some(a) = &account {
                        a.add(sent);
                    }
                    Some((
                        Ok(Frame::data(Bytes::from(event))),
                        (it, sent + 1, false, in_band),
                    ))
                }
            },
        );
        StreamBody::new(s).boxed()
    };
    let mut resp = Response::new(body);
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        header_value("text/event-stream; charset=utf-8"),
    );
    resp
}

fn record(state: &State, parts: &http::request::Parts, body: &Bytes) {
    let mut headers = std::collections::BTreeMap::new();
    for (name, value) in parts.headers.iter() {
        let v = String::from_utf8_lossy(value.as_bytes()).into_owned();
        headers
            .entry(name.as_str().to_string())
            .and_modify(|e: &mut String| {
                e.push_str(", ");
                e.push_str(&v);
            })
            .or_insert(v);
    }
    let body = if body.len() > 1024 * 1024 {
        serde_json::json!({"omitted_bytes": body.len()})
    } else {
        serde_json::from_slice(body).unwrap_or_else(|_| {
            serde_json::Value::String(String::from_utf8_lossy(body).into_owned())
        })
    };
    state.recorder.push(RecordedRequest {
        method: parts.method.to_string(),
        path: parts
            .uri
            .path_and_query()
            .map(|p| p.to_string())
            .unwrap_or_default(),
        headers,
        body,
    });
}
