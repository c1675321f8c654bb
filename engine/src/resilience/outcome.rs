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
    /// The key was refused (401/403): take it out of rotation.
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
        401 | 403 => Verdict::Retry(Blame::KeyRejected),
        429 if is_quota_exhausted(body) => Verdict::Final,
        429 => Verdict::Retry(Blame::KeyRateLimited),
        500 | 502 | 503 | 504 | 529 => Verdict::Retry(Blame::Provider),
        _ => Verdict::Final,
    }
}

/// OpenAI's `insufficient_quota` (billing, not rate): retrying cannot help.
fn is_quota_exhausted(body: &[u8]) -> bool {
    let Ok(v) = serde_json::from_slice::<serde_json::Value>(body) else {
        return false;
    };
    let e = &v["error"];
    e["code"] == "insufficient_quota" || e["type"] == "insufficient_quota"
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
