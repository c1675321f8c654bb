//! Phase 7: what the failover loop settled on goes to the client.
//!
//! - [`stream`]: same wire format; status, filtered headers, the first chunk,
//!   then each chunk as it arrives (SSE is never held back; chunks that
//!   arrived together leave together, [`pull`]).
//! - [`translated_stream`]: another provider's event stream, translated
//!   event by event.
//! - [`translated_json`]: another provider's JSON answer, read whole and
//!   translated.
//! - [`buffered`]: a provider's finished error answer, normalised.
//!
//! Every mode applies the provider's idle and total limits, and once bytes
//! are out a failure ends the response; it is never retried.

use crate::error::GatewayError;
use crate::failover::attempt::{Buffered, Committed};
use crate::headers::{self, ResponseHeaderRule};
use crate::meter::tap::UsageTap;
use crate::respond;
use crate::translate::{self, ClientFormat, StreamTranslator};
use bytes::Bytes;
use pingora::http::ResponseHeader;
use pingora::protocols::http::ServerSession;
use pull::Pull;
use serde_json::json;
use std::time::{Duration, Instant};

#[derive(Debug, PartialEq)]
pub enum RelayEnd {
    Complete,
    /// The client went away; the upstream connection is dropped so the
    /// provider stops generating.
    ClientGone,
    /// The provider failed or went silent after headers were sent; the
    /// client got an error event (SSE) or a truncated body. Never retried.
    UpstreamBroke(String),
}

mod pull;

/// Largest provider JSON body translated whole.
const MAX_JSON_BODY: usize = 64 << 20;

/// The client's response header: the provider's passable headers, our
/// framing, content type (when translated), dropped parameters, the
/// gateway's notes (routing decision) and id.
fn client_header(
    upstream: &ResponseHeader,
    status: u16,
    content_type: Option<&'static str>,
    length: Option<usize>,
    request_id: &str,
    dropped: &[String],
    notes: &[(&'static str, String)],
) -> Option<ResponseHeader> {
    let mut resp = ResponseHeader::build(status, Some(upstream.headers.len() + 3)).ok()?;
    for (name, value) in upstream.headers.iter() {
        if content_type.is_some()
            && (name == http::header::CONTENT_TYPE || name == http::header::CONTENT_ENCODING)
        {
            continue;
        }
        match headers::from_provider(name) {
            ResponseHeaderRule::Pass => resp.append_header(name.clone(), value.clone()).ok()?,
            ResponseHeaderRule::Rename(to) => resp.append_header(to, value.clone()).ok()?,
            ResponseHeaderRule::Drop => true,
        };
    }
    if let Some(ct) = content_type {
        resp.insert_header(http::header::CONTENT_TYPE, ct).ok()?;
    }
    match length {
        Some(len) => resp.insert_header(http::header::CONTENT_LENGTH, len).ok()?,
        // Without a length, chunked keeps the client connection reusable.
        None => resp
            .insert_header(http::header::TRANSFER_ENCODING, "chunked")
            .ok()?,
    };
    if !dropped.is_empty() {
        resp.insert_header("x-switchyard-dropped-params", dropped.join(","))
            .ok()?;
    }
    for (name, value) in notes {
        resp.insert_header(*name, value.as_str()).ok()?;
    }
    resp.insert_header("x-request-id", request_id).ok()?;
    Some(resp)
}

/// Write the response header; false when there is none or the client left.
/// `body_follows`: a body write comes right after and carries the head in
/// the same packet.
async fn send_header(
    session: &mut ServerSession,
    header: Option<ResponseHeader>,
    body_follows: bool,
) -> bool {
    let Some(h) = header else {
        return false;
    };
    if body_follows {
        crate::listen::hold_header_flush(session);
    }
    session.write_response_header(Box::new(h)).await.is_ok()
}

/// [`send_header`], unless the head has gone out already.
async fn send_head_once(
    session: &mut ServerSession,
    head: &mut Option<Option<ResponseHeader>>,
    body_follows: bool,
) -> bool {
    match head.take() {
        Some(header) => send_header(session, header, body_follows).await,
        None => true,
    }
}

async fn send_whole(
    session: &mut ServerSession,
    header: Option<ResponseHeader>,
    body: Bytes,
) -> RelayEnd {
    let Some(header) = header else {
        return RelayEnd::ClientGone;
    };
    if session
        .write_response_header(Box::new(header))
        .await
        .is_err()
        || session.write_response_body(body, true).await.is_err()
    {
        return RelayEnd::ClientGone;
    }
    RelayEnd::Complete
}

/// A provider's finished (error) answer, in the client's format, with the
/// provider's message and rate-limit headers.
pub async fn buffered(
    session: &mut ServerSession,
    response: Box<Buffered>,
    request_id: &str,
    client: ClientFormat,
    notes: &[(&'static str, String)],
) -> RelayEnd {
    let (status, body) = translate::error_response(
        response.kind,
        response.header.status.as_u16(),
        &response.body,
        client,
    );
    let translated = (body != response.body).then_some("application/json");
    let header = client_header(
        &response.header,
        status,
        translated,
        Some(body.len()),
        request_id,
        &[],
        notes,
    );
    let header = header.and_then(|mut h| {
        h.insert_header("x-switchyard-error-source", "provider")
            .ok()
            .map(|_| h)
    });
    send_whole(session, header, Bytes::from(body)).await
}

/// Relay a committed response in the client's own format.
pub async fn stream(
    session: &mut ServerSession,
    c: &mut Committed<'_>,
    tap: &mut UsageTap,
    request_id: &str,
    idle: Duration,
    deadline: Instant,
    client: ClientFormat,
) -> RelayEnd {
    let upstream = &c.response.header;
    let is_sse = upstream
        .headers
        .get(http::header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"text/event-stream"));
    let length = if is_sse {
        None
    } else {
        upstream
            .headers
            .get(http::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse().ok())
    };
    let status = upstream.status.as_u16();
    let header = client_header(
        upstream,
        status,
        None,
        length,
        request_id,
        &c.prepared.dropped,
        &c.notes,
    );
    // The first chunk goes out right behind the head: one packet. (With a
    // length, Pingora does not flush the head on its own; nothing to hold.)
    let first_follows = length.is_none() && c.first.as_ref().is_some_and(|b| !b.is_empty());
    if !send_header(session, header, first_follows).await {
        return RelayEnd::ClientGone;
    }
    let mut pull = Pull::new(c.first.take(), idle, deadline);
    loop {
        match pull.next(c).await {
            Ok(Some(chunk)) => {
                tap.observe(&chunk);
                if session.write_response_body(chunk, false).await.is_err() {
                    return RelayEnd::ClientGone;
                }
            }
            Ok(None) => return RelayEnd::Complete,
            Err(reason) => return broken(session, is_sse, reason, client).await,
        }
    }
}

/// Another provider's JSON answer: read it whole, translate, send.
pub async fn translated_json(
    session: &mut ServerSession,
    c: &mut Committed<'_>,
    tap: &mut UsageTap,
    request_id: &str,
    idle: Duration,
    deadline: Instant,
    client: ClientFormat,
) -> RelayEnd {
    let mut body = Vec::new();
    let mut pull = Pull::new(c.first.take(), idle, deadline);
    loop {
        let chunk = match pull.next(c).await {
            Ok(Some(chunk)) => chunk,
            Ok(None) => break,
            Err(reason) => return fail_before_headers(session, request_id, reason, client).await,
        };
        tap.observe(&chunk);
        body.extend_from_slice(&chunk);
        if body.len() > MAX_JSON_BODY {
            return fail_before_headers(
                session,
                request_id,
                format!("the provider's answer is larger than {MAX_JSON_BODY} bytes"),
                client,
            )
            .await;
        }
    }
    let json = match translate::response_json(
        c.prepared.provider,
        c.prepared.model,
        &body,
        unix_now(),
        client,
    ) {
        Ok(j) => j,
        Err(e) => {
            respond::error(session, &e, request_id, client).await;
            return RelayEnd::UpstreamBroke(e.to_string());
        }
    };
    let status = c.response.header.status.as_u16();
    let header = client_header(
        &c.response.header,
        status,
        Some("application/json"),
        Some(json.len()),
        request_id,
        &c.prepared.dropped,
        &c.notes,
    );
    send_whole(session, header, Bytes::from(json)).await
}

/// Another provider's event stream, translated event by event.
#[allow(clippy::too_many_arguments)]
pub async fn translated_stream(
    session: &mut ServerSession,
    c: &mut Committed<'_>,
    mut translator: Box<dyn StreamTranslator>,
    tap: &mut UsageTap,
    request_id: &str,
    idle: Duration,
    deadline: Instant,
    client: ClientFormat,
) -> RelayEnd {
    let status = c.response.header.status.as_u16();
    let header = client_header(
        &c.response.header,
        status,
        Some("text/event-stream; charset=utf-8"),
        None,
        request_id,
        &c.prepared.dropped,
        &c.notes,
    );
    // The head waits for the first event's translation, so both can
    // leave in one packet.
    let mut head = Some(header);
    let mut pull = Pull::new(c.first.take(), idle, deadline);
    loop {
        let (out, ended) = match pull.next(c).await {
            Ok(Some(chunk)) => {
                tap.observe(&chunk);
                (translator.push(&chunk), false)
            }
            Ok(None) => (translator.finish(), true),
            Err(reason) => {
                if !send_head_once(session, &mut head, false).await {
                    return RelayEnd::ClientGone;
                }
                return broken(session, true, reason, client).await;
            }
        };
        if !send_head_once(session, &mut head, !out.is_empty()).await {
            return RelayEnd::ClientGone;
        }
        if !out.is_empty()
            && session
                .write_response_body(Bytes::from(out), false)
                .await
                .is_err()
        {
            return RelayEnd::ClientGone;
        }
        if translator.failed() {
            return RelayEnd::UpstreamBroke("the provider reported an error in the stream".into());
        }
        if ended {
            return RelayEnd::Complete;
        }
    }
}

async fn fail_before_headers(
    session: &mut ServerSession,
    request_id: &str,
    reason: String,
    client: ClientFormat,
) -> RelayEnd {
    let e = GatewayError::UpstreamProtocol {
        provider: "upstream".into(),
        reason: reason.clone(),
    };
    respond::error(session, &e, request_id, client).await;
    RelayEnd::UpstreamBroke(reason)
}

async fn broken(
    session: &mut ServerSession,
    is_sse: bool,
    reason: String,
    client: ClientFormat,
) -> RelayEnd {
    if is_sse {
        // The status is already sent: tell the client in-band, in the shape
        // its API uses for errors inside a stream.
        let message = format!("the provider stream failed: {reason}");
        let frame = match client {
            ClientFormat::OpenAi => {
                let event = json!({"error": {"message": message, "type": "upstream_error", "param": null, "code": "upstream_stream_interrupted"}});
                format!("data: {event}\n\n")
            }
            ClientFormat::Anthropic => {
                let event =
                    json!({"type": "error", "error": {"type": "api_error", "message": message}});
                format!("event: error\ndata: {event}\n\n")
            }
        };
        let _ = session.write_response_body(Bytes::from(frame), true).await;
    } else {
        // A body of known length cannot be finished honestly: close the
        // connection so the client sees the truncation.
        session.set_keepalive(None);
    }
    RelayEnd::UpstreamBroke(reason)
}

pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}
