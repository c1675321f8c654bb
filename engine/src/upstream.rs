//! Phase 6: one attempt at a provider over a pooled connection.
//!
//! Each worker thread owns its own Pingora [`Connector`] and keeps its own
//! idle HTTP/1 connections ([`IdlePool`]): a connection registered with one
//! thread's runtime is only ever driven by that runtime. Pingora's own pool
//! parks each idle connection in a watcher task spawned on a *random*
//! worker (`pingora_runtime::current_handle`), so reusing it means a
//! cross-thread wake-up and, now and then, losing the connection to a race
//! ("failed to acquire reusable stream"). Ours keeps no watcher: a
//! connection the provider closed while idle fails on first use, before
//! any response, and [`send`] retries it on a fresh one.

use crate::error::GatewayError;
use bytes::Bytes;
use http::{HeaderName, HeaderValue};
use pingora::connectors::http::Connector;
use pingora::connectors::ConnectorOptions;
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::protocols::http::client::HttpSession;
use pingora::protocols::http::v1::client::HttpSession as Http1Session;
use pingora::protocols::Stream;
use pingora::upstreams::peer::HttpPeer;
use pingora::upstreams::peer::Peer;
use pingora::{Error as PingoraError, ErrorType};
use std::cell::OnceCell;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

static CA_FILE: OnceLock<Option<String>> = OnceLock::new();

/// Set once at start-up, before any worker connects.
pub fn set_ca_file(ca: Option<String>) {
    let _ = CA_FILE.set(ca);
}

thread_local! {
    static CONNECTOR: OnceCell<Arc<Connector>> = const { OnceCell::new() };
    static IDLE: IdlePool = IdlePool::default();
}

/// Idle keep-alive connections by peer, most recently used first out.
#[derive(Default)]
struct IdlePool {
    by_peer: std::cell::RefCell<std::collections::HashMap<u64, Vec<(Stream, Instant)>>>,
}

/// Idle connections kept per peer and worker.
const IDLE_PER_PEER: usize = 256;

impl IdlePool {
    fn take(&self, peer: &HttpPeer) -> Option<HttpSession> {
        let mut map = self.by_peer.borrow_mut();
        let idle = map.get_mut(&peer.reuse_hash())?;
        while let Some((stream, since)) = idle.pop() {
            if since.elapsed() < POOL_IDLE {
                return Some(HttpSession::H1(Http1Session::new_with_options(
                    stream, peer,
                )));
            }
        }
        None
    }

    fn put(&self, peer: &HttpPeer, stream: Stream) {
        let mut map = self.by_peer.borrow_mut();
        let idle = map.entry(peer.reuse_hash()).or_default();
        // Oldest first in the list: drop the expired, then make room.
        let expired = idle
            .iter()
            .take_while(|(_, t)| t.elapsed() >= POOL_IDLE)
            .count();
        idle.drain(..expired);
        if idle.len() >= IDLE_PER_PEER {
            idle.remove(0);
        }
        idle.push((stream, Instant::now()));
    }
}

fn connector() -> Arc<Connector> {
    CONNECTOR.with(|c| {
        c.get_or_init(|| {
            let mut opts = ConnectorOptions::new(256);
            opts.ca_file = CA_FILE.get().cloned().flatten();
            Arc::new(Connector::new(Some(opts)))
        })
        .clone()
    })
}

/// How long an idle upstream connection stays in the pool.
const POOL_IDLE: Duration = Duration::from_secs(60);

pub struct Attempt<'a> {
    pub provider: &'a str,
    pub peer: Arc<HttpPeer>,
    pub authority: &'a str,
    pub path: String,
    /// Authentication and API-version headers, from the translator.
    pub auth: Vec<(HeaderName, HeaderValue)>,
    pub request_id: &'a str,
    pub forwarded: &'a [(HeaderName, HeaderValue)],
    pub body: Bytes,
}

/// An upstream response whose body has not been read yet.
pub struct UpstreamResponse {
    pub session: HttpSession,
    pub header: ResponseHeader,
    peer: Arc<HttpPeer>,
    connector: Arc<Connector>,
}

impl UpstreamResponse {
    pub async fn read_body(&mut self) -> Result<Option<Bytes>, Box<PingoraError>> {
        self.session.read_response_body().await
    }

    /// Return the connection to the pool if the response was read cleanly.
    pub async fn release(mut self) {
        if !self.session.response_done() {
            self.session.shutdown().await;
            return;
        }
        match self.session {
            HttpSession::H1(mut h1) => {
                // Keep-alive as the provider's response asked (what
                // pingora's own release does before reusing).
                h1.respect_keepalive();
                if let Some(stream) = h1.reuse().await {
                    IDLE.with(|p| p.put(&self.peer, stream));
                }
            }
            other => {
                self.connector
                    .release_http_session(other, &*self.peer, Some(POOL_IDLE))
                    .await
            }
        }
    }
}

/// Send the request and read the response header.
pub async fn send(a: &Attempt<'_>) -> Result<UpstreamResponse, GatewayError> {
    let connector = connector();
    // A pooled connection the provider already closed fails before any
    // response; that is safe to retry on the next one. Each turn of the
    // loop either returns or uses up one pooled connection, so it ends.
    loop {
        let (session, reused) = match IDLE.with(|p| p.take(&a.peer)) {
            Some(s) => (s, true),
            None => connector
                .get_http_session(&*a.peer)
                .await
                .map_err(|e| classify(a.provider, &e))?,
        };
        match exchange(session, a).await {
            Ok((session, header)) => {
                return Ok(UpstreamResponse {
                    session,
                    header,
                    peer: a.peer.clone(),
                    connector,
                })
            }
            Err(e) if reused && is_stale_connection(&e) => continue,
            Err(e) => return Err(classify(a.provider, &e)),
        }
    }
}

async fn exchange(
    session: HttpSession,
    a: &Attempt<'_>,
) -> Result<(HttpSession, ResponseHeader), Box<PingoraError>> {
    let mut req = RequestHeader::build("POST", a.path.as_bytes(), Some(8 + a.forwarded.len()))?;
    req.insert_header(http::header::HOST, a.authority)?;
    for (name, value) in &a.auth {
        req.insert_header(name.clone(), value.clone())?;
    }
    req.insert_header(http::header::CONTENT_TYPE, "application/json")?;
    req.insert_header(http::header::CONTENT_LENGTH, a.body.len())?;
    req.insert_header("x-request-id", a.request_id)?;
    for (name, value) in a.forwarded {
        req.append_header(name.clone(), value.clone())?;
    }
    let mut session = match session {
        HttpSession::H1(h1) => HttpSession::H1(write_whole(h1, &req, &a.body, &a.peer).await?),
        mut other => {
            other.write_request_header(Box::new(req)).await?;
            other.write_request_body(a.body.clone(), true).await?;
            other.finish_request_body().await?;
            other
        }
    };
    session.read_response_header().await?;
    let header = session
        .response_header()
        .cloned()
        .ok_or_else(|| PingoraError::explain(ErrorType::H1Error, "no response header"))?;
    Ok((session, header))
}

/// Writes an HTTP/1 request's head and body in one write.
///
/// Pingora's session flushes the head on its own, so the provider gets two
/// packets and, when it reads the head before the body has landed, wakes
/// twice. One write is one packet and one wake-up. The session that reads
/// the response is a fresh one over the same connection: it only needs the
/// request to tell a HEAD or an upgrade, and ours are neither.
async fn write_whole(
    h1: Http1Session,
    req: &RequestHeader,
    body: &[u8],
    peer: &HttpPeer,
) -> Result<Http1Session, Box<PingoraError>> {
    use pingora::OrErr;
    use tokio::io::AsyncWriteExt;
    let mut wire = pingora::protocols::http::v1::client::http_req_header_to_wire(req)
        .ok_or_else(|| PingoraError::explain(ErrorType::InvalidHTTPHeader, "request head"))?;
    wire.extend_from_slice(body);
    let mut stream = h1.into_inner();
    stream
        .write_all(&wire)
        .await
        .or_err(ErrorType::WriteError, "while writing the request")?;
    stream
        .flush()
        .await
        .or_err(ErrorType::WriteError, "while flushing the request")?;
    Ok(Http1Session::new_with_options(stream, peer))
}

fn is_stale_connection(e: &PingoraError) -> bool {
    matches!(
        e.etype(),
        ErrorType::ConnectionClosed
            | ErrorType::ReadError
            | ErrorType::WriteError
            | ErrorType::H1Error
    )
}

/// Turn a transport error into the client-facing error, without secrets.
pub fn classify(provider: &str, e: &PingoraError) -> GatewayError {
    let provider = provider.to_string();
    let reason = e.etype().as_str().to_string();
    match e.etype() {
        ErrorType::ConnectTimedout
        | ErrorType::TLSHandshakeTimedout
        | ErrorType::ReadTimedout
        | ErrorType::WriteTimedout => GatewayError::UpstreamTimeout { provider, reason },
        ErrorType::ConnectRefused
        | ErrorType::ConnectNoRoute
        | ErrorType::ConnectError
        | ErrorType::TLSHandshakeFailure
        | ErrorType::InvalidCert
        | ErrorType::HandshakeError
        | ErrorType::SocketError => GatewayError::UpstreamConnect { provider, reason },
        _ => GatewayError::UpstreamProtocol {
            provider,
            reason: format!(
                "{reason}: {}",
                e.context.as_ref().map(|c| c.as_str()).unwrap_or("")
            ),
        },
    }
}

/// The metric label for an attempt's outcome.
pub fn outcome_label(result: &Result<u16, &GatewayError>) -> &'static str {
    match result {
        Ok(429) => "http_429",
        Ok(s) if *s >= 500 => "http_5xx",
        Ok(s) if *s >= 400 => "http_4xx",
        Ok(_) => "ok",
        Err(GatewayError::UpstreamTimeout { .. }) => "timeout",
        Err(GatewayError::UpstreamConnect { .. }) => "connect_error",
        Err(_) => "protocol_error",
    }
}
