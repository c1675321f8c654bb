//! Phase 2: read the request body within the policy's size limit, the
//! listener's body deadline and the gateway-wide memory budget for bodies.

use crate::edge::{BodyReservation, ClientTimeout, Edge};
use crate::error::GatewayError;
use bytes::{Bytes, BytesMut};
use pingora::protocols::http::ServerSession;
use std::time::Duration;

/// Most JSON values (array elements, object members, scalars) one request
/// may hold. Translators for some providers parse the body into a tree
/// whose nodes take tens of bytes each: `[0,0,0,…]` in 32 MiB is 16 M
/// nodes, hundreds of MB. A real request, even a long agent history, has
/// a few hundred thousand at most.
pub const MAX_JSON_VALUES: u64 = 1_000_000;

/// Memory charged per JSON value against the body budget: a parsed tree
/// costs about this much per node beyond the bytes themselves.
pub const BYTES_PER_JSON_VALUE: u64 = 64;

/// What a body read may take.
pub struct Bounds<'e> {
    pub max_body: u64,
    pub deadline: Duration,
    pub edge: &'e Edge,
    /// The gateway-wide budget for bodies in memory.
    pub max_buffered: u64,
}

pub async fn read(
    session: &mut ServerSession,
    bounds: &Bounds<'_>,
    held: &mut BodyReservation,
) -> Result<Bytes, GatewayError> {
    match pingora_timeout::timeout(bounds.deadline, read_within(session, bounds, held)).await {
        Ok(r) => r,
        Err(_) => {
            bounds.edge.timed_out(ClientTimeout::Body);
            Err(GatewayError::RequestTimeout {
                what: "request body",
                limit_ms: bounds.deadline.as_millis() as u64,
            })
        }
    }
}

async fn read_within(
    session: &mut ServerSession,
    bounds: &Bounds<'_>,
    held: &mut BodyReservation,
) -> Result<Bytes, GatewayError> {
    let limit = bounds.max_body;
    let declared = session
        .get_header(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if let Some(size) = declared.filter(|s| *s > limit) {
        // Answer before reading: the client never has to upload it.
        return Err(GatewayError::BodyTooLarge { size, limit });
    }
    // A declared length is held up front: a client cannot get past the
    // budget by sending slowly.
    let mut reserved = declared.unwrap_or(0);
    held.grow(reserved, bounds.max_buffered)
        .map_err(|_| GatewayError::Overloaded("request bodies in memory"))?;
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
        total = total.saturating_add(chunk.len() as u64);
        if total > limit {
            return Err(GatewayError::BodyTooLarge { size: total, limit });
        }
        if total > reserved {
            held.grow(total - reserved, bounds.max_buffered)
                .map_err(|_| GatewayError::Overloaded("request bodies in memory"))?;
            reserved = total;
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

/// Deepest nesting of arrays and objects accepted: serde_json's own
/// recursion limit, which the translators that parse the body would hit.
pub const MAX_JSON_DEPTH: u32 = 128;

/// What a body would cost to parse, read without parsing it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JsonShape {
    /// An upper bound on the values: one plus every `,`, `:`, `[` and `{`
    /// outside strings.
    pub values: u64,
    /// The deepest nesting of `[` and `{`.
    pub depth: u32,
}

/// The [`JsonShape`] of `body`. String contents (most of a real body) are
/// skipped with `memchr`; malformed JSON is the parser's to report.
pub fn json_shape(body: &[u8]) -> JsonShape {
    let mut n: u64 = 1;
    let (mut depth, mut deepest) = (0u32, 0u32);
    let mut i = 0;
    while i < body.len() {
        match body[i] {
            b'"' => {
                // Skip to the closing quote, over escapes.
                i += 1;
                loop {
                    match memchr::memchr2(b'"', b'\\', &body[i.min(body.len())..]) {
                        None => {
                            return JsonShape {
                                values: n,
                                depth: deepest,
                            }
                        }
                        Some(j) if body[i + j] == b'\\' => i += j + 2,
                        Some(j) => {
                            i += j + 1;
                            break;
                        }
                    }
                }
                continue;
            }
            b',' | b':' => n += 1,
            b'[' | b'{' => {
                n += 1;
                depth += 1;
                deepest = deepest.max(depth);
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
        i += 1;
    }
    JsonShape {
        values: n,
        depth: deepest,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_values_bound_what_a_parse_would_build() {
        for (text, at_least) in [
            (&br#"{"a":1}"#[..], 2),
            (br#"[0,0,0,0]"#, 4),
            (br#"{"s":"a,b:c[d{e\"f,g","t":[1,{"u":2}]}"#, 6),
            (br#""unterminated ,,,"#, 1),
            (br#""ends in a backslash\"#, 1),
            (b"", 1),
        ] {
            let n = json_shape(text).values;
            assert!(n >= at_least, "{}: {n}", String::from_utf8_lossy(text));
        }
        // Commas inside strings are not values.
        assert_eq!(json_shape(br#"{"s":",,,,,,,,"}"#).values, 3);
        let zeros = format!("[{}0]", "0,".repeat(2_000_000));
        assert!(json_shape(zeros.as_bytes()).values > MAX_JSON_VALUES);
        assert_eq!(json_shape(br#"{"a":[[{"b":"[[[["}]]]}"#).depth, 4);
        let deep = format!("{}{}", "[".repeat(500), "]".repeat(500));
        assert_eq!(json_shape(deep.as_bytes()).depth, 500);
    }
}
