//! Phase 7 for pass-through formats: what the failover loop settled on goes
//! to the client — a committed stream (status, filtered headers, the first
//! chunk, then each chunk as it arrives; SSE is never buffered), or a
//! provider's finished error answer.

use crate::failover::attempt::{Buffered, Committed};
use crate::headers::{self, ResponseHeaderRule};
use bytes::Bytes;
use pingora::http::ResponseHeader;
use pingora::protocols::http::ServerSession;
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

/// The client's response header: the provider's status and passable
/// headers, our framing and request id.
fn client_header(
    upstream: &ResponseHeader,
    length: Option<usize>,
    request_id: &str,
) -> Option<ResponseHeader> {
    let mut resp = ResponseHeader::build(upstream.status, Some(upstream.headers.len() + 2)).ok()?;
    for (name, value) in upstream.headers.iter() {
        match headers::from_provider(name) {
            ResponseHeaderRule::Pass => resp.append_header(name.clone(), value.clone()).ok()?,
            ResponseHeaderRule::Rename(to) => resp.append_header(to, value.clone()).ok()?,
            ResponseHeaderRule::Drop => true,
        };
    }
    match length {
        Some(len) => resp.insert_header(http::header::CONTENT_LENGTH, len).ok()?,
        // Without a length, chunked keeps the client connection reusable.
        None => resp
            .insert_header(http::header::TRANSFER_ENCODING, "chunked")
            .ok()?,
    };
    resp.insert_header("x-request-id", request_id).ok()?;
    Some(resp)
}

/// A provider's finished (error) answer, as it was.
pub async fn buffered(
    session: &mut ServerSession,
    response: Box<Buffered>,
    request_id: &str,
) -> RelayEnd {
    let response = *response;
    let Some(header) = client_header(&response.header, Some(response.body.len()), request_id)
    else {
        return RelayEnd::ClientGone;
    };
    if session
        .write_response_header(Box::new(header))
        .await
        .is_err()
        || session
            .write_response_body(response.body, true)
            .await
            .is_err()
    {
        return RelayEnd::ClientGone;
    }
    RelayEnd::Complete
}

/// Relay a committed stream until its end, the provider's silence (`idle`)
/// or `deadline`.
pub async fn stream(
    session: &mut ServerSession,
    c: &mut Committed<'_>,
    request_id: &str,
    idle: Duration,
    deadline: Instant,
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
    let Some(header) = client_header(upstream, length, request_id) else {
        return RelayEnd::ClientGone;
    };
    if session
        .write_response_header(Box::new(header))
        .await
        .is_err()
    {
        return RelayEnd::ClientGone;
    }
    let mut next = c.first.take();
    loop {
        match next {
            Some(chunk) => {
                if session.write_response_body(chunk, false).await.is_err() {
                    return RelayEnd::ClientGone;
                }
            }
            None => return RelayEnd::Complete,
        }
        let now = Instant::now();
        let wait = idle.min(deadline.saturating_duration_since(now));
        next = match tokio::time::timeout(wait, c.response.read_body()).await {
            Ok(Ok(chunk)) => chunk,
            Ok(Err(e)) => return broken(session, is_sse, e.etype().as_str().to_string()).await,
            Err(_) if Instant::now() >= deadline => {
                return broken(
                    session,
                    is_sse,
                    "the attempt's total time limit was reached".into(),
                )
                .await
            }
            Err(_) => {
                return broken(
                    session,
                    is_sse,
                    format!("no data from the provider for {} ms", idle.as_millis()),
                )
                .await
            }
        };
    }
}

async fn broken(session: &mut ServerSession, is_sse: bool, reason: String) -> RelayEnd {
    if is_sse {
        // The status is already sent: tell the client in-band, in the shape
        // OpenAI uses for errors inside a stream.
        let event = json!({"error": {
            "message": format!("the provider stream failed: {reason}"),
            "type": "upstream_error",
            "param": null,
            "code": "upstream_stream_interrupted",
        }});
        let frame = Bytes::from(format!("data: {event}\n\n"));
        let _ = session.write_response_body(frame, true).await;
    } else {
        // A body of known length cannot be finished honestly: close the
        // connection so the client sees the truncation.
        session.set_keepalive(None);
    }
    RelayEnd::UpstreamBroke(reason)
}
