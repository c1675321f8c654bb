//! Phase 3: read the request body, enforcing the policy's size limit.

use crate::error::GatewayError;
use bytes::{Bytes, BytesMut};
use pingora::protocols::http::ServerSession;

pub async fn read(session: &mut ServerSession, limit: u64) -> Result<Bytes, GatewayError> {
    let declared = session
        .get_header(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if let Some(size) = declared.filter(|s| *s > limit) {
        // Answer before reading: the client never has to upload it.
        return Err(GatewayError::BodyTooLarge { size, limit });
    }
    if session
        .get_header(http::header::EXPECT)
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"100-continue"))
    {
        session
            .write_continue_response()
            .await
            .map_err(|e| GatewayError::BodyRead(e.etype().as_str().to_string()))?;
    }
    let mut first: Option<Bytes> = None;
    let mut rest = BytesMut::new();
    let mut total: u64 = 0;
    while let Some(chunk) = session
        .read_request_body()
        .await
        .map_err(|e| GatewayError::BodyRead(e.etype().as_str().to_string()))?
    {
        total += chunk.len() as u64;
        if total > limit {
            return Err(GatewayError::BodyTooLarge { size: total, limit });
        }
        // The common case is one chunk: keep it without copying.
        match first.take() {
            None if rest.is_empty() => first = Some(chunk),
            prev => {
                if let Some(p) = prev {
                    rest.reserve(declared.unwrap_or(0).max(total) as usize);
                    rest.extend_from_slice(&p);
                }
                rest.extend_from_slice(&chunk);
            }
        }
    }
    Ok(first.unwrap_or_else(|| rest.freeze()))
}
