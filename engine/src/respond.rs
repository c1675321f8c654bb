//! Writing gateway-made responses (errors, JSON) to the client.

use crate::error::GatewayError;
use crate::translate::ClientFormat;
use bytes::Bytes;
use pingora::http::ResponseHeader;
use pingora::protocols::http::ServerSession;

/// Write a complete JSON response. Returns false when the client is gone.
pub async fn json(
    session: &mut ServerSession,
    status: u16,
    body: Vec<u8>,
    request_id: &str,
) -> bool {
    write_full(session, status, "application/json", body, request_id, &[]).await
}

pub async fn text(
    session: &mut ServerSession,
    status: u16,
    content_type: &str,
    body: Vec<u8>,
    request_id: &str,
) -> bool {
    write_full(session, status, content_type, body, request_id, &[]).await
}

/// Write an error in the client's format (OpenAI's or Anthropic's).
pub async fn error(
    session: &mut ServerSession,
    err: &GatewayError,
    request_id: &str,
    client: ClientFormat,
) -> bool {
    let retry_after = err.retry_after().map(|s| s.to_string());
    // Whose fault: the gateway's own decision (limits, keys, validation)
    // or a provider it could not use.
    let mut extra: Vec<(&str, &str)> = vec![("x-switchyard-error-source", "gateway")];
    if matches!(err, GatewayError::MissingKey | GatewayError::InvalidKey) {
        extra.push(("www-authenticate", "Bearer"));
    }
    if let Some(r) = &retry_after {
        extra.push(("retry-after", r));
    }
    let limit_headers = err.limit_headers();
    for (k, v) in &limit_headers {
        extra.push((k, v));
    }
    let status = err.status().as_u16();
    let body = match client {
        ClientFormat::OpenAi => err.openai_body(),
        ClientFormat::Anthropic => {
            crate::translate::anthropic::inbound::error_body(status, &err.openai_body())
        }
    };
    write_full(
        session,
        status,
        "application/json",
        body,
        request_id,
        &extra,
    )
    .await
}

async fn write_full(
    session: &mut ServerSession,
    status: u16,
    content_type: &str,
    body: Vec<u8>,
    request_id: &str,
    extra: &[(&str, &str)],
) -> bool {
    let Ok(mut resp) = ResponseHeader::build(status, Some(4 + extra.len())) else {
        return false;
    };
    let headers_ok = resp
        .insert_header(http::header::CONTENT_TYPE, content_type)
        .is_ok()
        && resp
            .insert_header(http::header::CONTENT_LENGTH, body.len())
            .is_ok()
        && resp.insert_header("x-request-id", request_id).is_ok()
        && extra
            .iter()
            .all(|(k, v)| resp.insert_header(k.to_string(), *v).is_ok());
    if !headers_ok {
        return false;
    }
    if session.write_response_header(Box::new(resp)).await.is_err() {
        return false;
    }
    session
        .write_response_body(Bytes::from(body), true)
        .await
        .is_ok()
}
