//! Which headers cross the gateway, in each direction.

use http::HeaderName;

/// Connection-scoped headers (RFC 9110 §7.6.1) plus framing, which we
/// always set ourselves.
fn is_hop_by_hop(name: &str) -> bool {
    matches!(
        name,
        "connection"
            | "keep-alive"
            | "proxy-connection"
            | "proxy-authenticate"
            | "proxy-authorization"
            | "te"
            | "trailer"
            | "transfer-encoding"
            | "upgrade"
            | "content-length"
            | "host"
    )
}

/// Client request headers forwarded to the provider: `x-*`,
/// `anthropic-beta` and a few content headers. Credentials, cookies, proxy identity and the client's
/// own request id never leave.
pub fn forward_to_provider(name: &HeaderName) -> bool {
    let n = name.as_str();
    if is_hop_by_hop(n) {
        return false;
    }
    match n {
        "accept" | "user-agent" | "anthropic-beta" => true,
        "x-api-key" | "x-request-id" | "x-real-ip" | "x-goog-api-key" => false,
        _ => n.starts_with("x-") && !n.starts_with("x-forwarded-"),
    }
}

/// Provider response headers passed back to the client: `x-*` (rate limit
/// headers included), `retry-after`, content type and encoding. The provider's
/// own request id is kept as `x-upstream-request-id`.
pub enum ResponseHeaderRule {
    Pass,
    Rename(&'static str),
    Drop,
}

pub fn from_provider(name: &HeaderName) -> ResponseHeaderRule {
    let n = name.as_str();
    if is_hop_by_hop(n) {
        return ResponseHeaderRule::Drop;
    }
    match n {
        "x-request-id" => ResponseHeaderRule::Rename("x-upstream-request-id"),
        "content-type" | "content-encoding" | "retry-after" => ResponseHeaderRule::Pass,
        _ if n.starts_with("x-") || n.starts_with("anthropic-ratelimit-") => {
            ResponseHeaderRule::Pass
        }
        _ => ResponseHeaderRule::Drop,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(s: &str) -> HeaderName {
        HeaderName::from_bytes(s.as_bytes()).unwrap()
    }

    #[test]
    fn credentials_and_hop_by_hop_never_cross() {
        for n in [
            "authorization",
            "cookie",
            "connection",
            "transfer-encoding",
            "x-api-key",
            "x-forwarded-for",
            "proxy-authorization",
            "host",
        ] {
            assert!(!forward_to_provider(&h(n)), "{n}");
        }
        for n in ["x-stainless-lang", "x-mock-status", "accept", "user-agent"] {
            assert!(forward_to_provider(&h(n)), "{n}");
        }
    }

    #[test]
    fn provider_headers_are_filtered() {
        assert!(matches!(
            from_provider(&h("x-ratelimit-remaining-requests")),
            ResponseHeaderRule::Pass
        ));
        assert!(matches!(
            from_provider(&h("x-request-id")),
            ResponseHeaderRule::Rename(_)
        ));
        assert!(matches!(
            from_provider(&h("set-cookie")),
            ResponseHeaderRule::Drop
        ));
        assert!(matches!(
            from_provider(&h("keep-alive")),
            ResponseHeaderRule::Drop
        ));
    }
}
