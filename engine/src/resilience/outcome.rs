//! What an attempt's outcome means for the request and for the key.

use http::HeaderMap;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Serve it to the client.
    Deliver,
    /// Return it to the client as it is: another attempt would get the same
    /// answer (400, 404, `insufficient_quota`…).
    Final,
    /// Try the next key or target.
    Retry(Blame),
}

/// Whom a retryable failure counts against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Blame {
    /// The key is rate limited: cool it down.
    KeyRateLimited,
    /// The provider says the key itself is invalid (401, or a provider's
    /// documented invalid-key error): take it out of rotation. A 403 about
    /// the request (a model that project may not use) is not the key's
    /// fault and goes back to the client: it must not bench a key that
    /// serves every other tenant.
    KeyRejected,
    /// The provider failed (5xx, 529, transport): counts against the key's
    /// and the target's breakers.
    Provider,
}

/// Classify an upstream HTTP status. `body` is the (bounded) error body,
/// used to tell a quota exhaustion from a rate limit.
pub fn classify_status(status: u16, _headers: &HeaderMap, body: &[u8]) -> Verdict {
    match status {
        200..=399 => Verdict::Deliver,
        401 => Verdict::Retry(Blame::KeyRejected),
        400 | 403 if is_invalid_key(body) => Verdict::Retry(Blame::KeyRejected),
        429 if is_quota_exhausted(body) => Verdict::Final,
        429 => Verdict::Retry(Blame::KeyRateLimited),
        500 | 502 | 503 | 504 | 529 => Verdict::Retry(Blame::Provider),
        _ => Verdict::Final,
    }
}

/// A provider's documented "this API key is invalid" error, whatever the
/// status: OpenAI's `invalid_api_key` code, Anthropic's
/// `authentication_error`, Google's `API_KEY_INVALID` reason (sent with a
/// 400) or `UNAUTHENTICATED` status.
fn is_invalid_key(body: &[u8]) -> bool {
    let Some(e) = error_object(body) else {
        return false;
    };
    e["code"] == "invalid_api_key"
        || e["type"] == "authentication_error"
        || e["status"] == "UNAUTHENTICATED"
        || e["details"].as_array().is_some_and(|d| {
            d.iter()
                .any(|d| d["reason"] == "API_KEY_INVALID" || d["reason"] == "API_KEY_EXPIRED")
        })
}

/// OpenAI's `insufficient_quota` (billing, not rate): retrying cannot help.
fn is_quota_exhausted(body: &[u8]) -> bool {
    error_object(body)
        .is_some_and(|e| e["code"] == "insufficient_quota" || e["type"] == "insufficient_quota")
}

/// The `error` member of a provider's JSON error body.
fn error_object(body: &[u8]) -> Option<serde_json::Value> {
    let mut v = serde_json::from_slice::<serde_json::Value>(body).ok()?;
    Some(v.get_mut("error")?.take())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_map_to_verdicts() {
        let h = HeaderMap::new();
        assert_eq!(classify_status(200, &h, b""), Verdict::Deliver);
        assert_eq!(classify_status(400, &h, b""), Verdict::Final);
        assert_eq!(classify_status(404, &h, b""), Verdict::Final);
        assert_eq!(
            classify_status(401, &h, b""),
            Verdict::Retry(Blame::KeyRejected)
        );
        assert_eq!(
            classify_status(529, &h, b""),
            Verdict::Retry(Blame::Provider)
        );
        assert_eq!(classify_status(501, &h, b""), Verdict::Final);
        // A 403 about the request goes back to the client; only a
        // documented invalid-key error benches the key.
        let project = br#"{"error":{"message":"Project `p` does not have access to model `m`","type":"invalid_request_error","code":"model_not_found"}}"#;
        assert_eq!(classify_status(403, &h, project), Verdict::Final);
        assert_eq!(classify_status(403, &h, b""), Verdict::Final);
        let anthropic = br#"{"type":"error","error":{"type":"permission_error","message":"no"}}"#;
        assert_eq!(classify_status(403, &h, anthropic), Verdict::Final);
        let gemini = br#"{"error":{"code":400,"status":"INVALID_ARGUMENT","details":[{"@type":"type.googleapis.com/google.rpc.ErrorInfo","reason":"API_KEY_INVALID"}]}}"#;
        assert_eq!(
            classify_status(400, &h, gemini),
            Verdict::Retry(Blame::KeyRejected)
        );
        let openai = std::fs::read(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../shared/conformance/openai/error_401_invalid_api_key.json"
        ))
        .unwrap_or_else(|_| br#"{"error":{"code":"invalid_api_key"}}"#.to_vec());
        assert_eq!(
            classify_status(403, &h, &openai),
            Verdict::Retry(Blame::KeyRejected)
        );
        let rate = br#"{"error":{"code":"rate_limit_exceeded","type":"tokens"}}"#;
        assert_eq!(
            classify_status(429, &h, rate),
            Verdict::Retry(Blame::KeyRateLimited)
        );
        let quota = std::fs::read(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../shared/conformance/openai/error_429_insufficient_quota.json"
        ))
        .unwrap_or_else(|_| br#"{"error":{"code":"insufficient_quota"}}"#.to_vec());
        assert_eq!(classify_status(429, &h, &quota), Verdict::Final);
    }
}
