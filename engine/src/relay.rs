//! Phase 7 for pass-through formats: the provider's response goes to the
//! client as it arrives — status, filtered headers, then each body chunk
//! as soon as it is read (SSE is never buffered).

use crate::headers::{self, ResponseHeaderRule};
use crate::upstream::UpstreamResponse;
use bytes::Bytes;
use pingora::http::ResponseHeader;
use pingora::protocols::http::ServerSession;
use serde_json::json;

#[derive(Debug, PartialEq)]
pub enum RelayEnd {
    Complete,
    /// The client went away; the upstream connection is dropped so the
    /// provider stops generating.
    ClientGone,
    /// The provider failed after headers were sent; the client got an
    /// error event (SSE) or a truncated body.
    UpstreamBroke(String),
}

pub async fn relay(
    session: &mut ServerSession,
    up: &mut UpstreamResponse,
    request_id: &str,
) -> RelayEnd {
    let upstream = &up.header;
    let is_sse = upstream
        .headers
        .get(http::header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"text/event-stream"));
    let length = if is_sse {
        None
    } else {
        upstream.headers.get(http::header::CONTENT_LENGTH).cloned()
    };
    let Ok(mut resp) = ResponseHeader::build(upstream.status, Some(upstream.headers.len() + 2))
    else {
        return RelayEnd::ClientGone;
    };
    for (name, value) in upstream.headers.iter() {
        let added = match headers::from_provider(name) {
            ResponseHeaderRule::Pass => resp.append_header(name.clone(), value.clone()).is_ok(),
            ResponseHeaderRule::Rename(to) => resp.append_header(to, value.clone()).is_ok(),
            ResponseHeaderRule::Drop => true,
        };
        if !added {
            return RelayEnd::ClientGone;
        }
    }
    let framing = match length {
        Some(len) => resp.insert_header(http::header::CONTENT_LENGTH, len),
        // Without a length, chunked keeps the client connection reusable.
        None => resp.insert_header(http::header::TRANSFER_ENCODING, "chunked"),
    };
    if framing.is_err() || resp.insert_header("x-request-id", request_id).is_err() {
        return RelayEnd::ClientGone;
    }
    if session.write_response_header(Box::new(resp)).await.is_err() {
        return RelayEnd::ClientGone;
    }
    loop {
        match up.read_body().await {
            Ok(Some(chunk)) => {
                if session.write_response_body(chunk, false).await.is_err() {
                    return RelayEnd::ClientGone;
                }
            }
            Ok(None) => return RelayEnd::Complete,
            Err(e) => {
                let reason = e.etype().as_str().to_string();
                if is_sse {
                    // The status is already sent: tell the client in-band, in
                    // the shape OpenAI uses for errors inside a stream.
                    let event = json!({"error": {
                        "message": format!("the provider stream failed: {reason}"),
                        "type": "upstream_error",
                        "param": null,
                        "code": "upstream_stream_interrupted",
                    }});
                    let frame = Bytes::from(format!("data: {event}\n\n"));
                    let _ = session.write_response_body(frame, true).await;
                } else {
                    // A JSON body of known length cannot be finished honestly:
                    // close the connection so the client sees the truncation.
                    session.set_keepalive(None);
                }
                return RelayEnd::UpstreamBroke(reason);
            }
        }
    }
}
