//! Which headers cross the gateway, in each direction. Both directions are
//! allowlists: a header nobody named here (or, for requests, in
//! `listener.forward_headers`) stays on its side.

use http::HeaderName;
use policy::never_forwarded;
use rkyv::string::ArchivedString;

/// Client headers every provider may see: content negotiation, the SDK's
/// own identification, and the providers' feature-flag headers.
const FORWARDED: &[&str] = &[
    "accept",
    "user-agent",
    "anthropic-beta",
    "openai-beta",
    "x-stainless-arch",
    "x-stainless-async",
    "x-stainless-lang",
    "x-stainless-os",
    "x-stainless-package-version",
    "x-stainless-retry-count",
    "x-stainless-runtime",
    "x-stainless-runtime-version",
    "x-stainless-timeout",
];

/// Whether a client request header goes on to the provider: the built-in
/// allowlist plus the operator's `extra` names (a trailing `*` is a
/// prefix). Credentials, cookies, proxy identity, framing and the client's
/// own request id never leave, whatever `extra` says.
pub fn forward_to_provider(name: &HeaderName, extra: &[ArchivedString]) -> bool {
    let n = name.as_str();
    if never_forwarded(n) {
        return false;
    }
    FORWARDED.contains(&n)
        || extra.iter().any(|e| match e.as_str().strip_suffix('*') {
            Some(prefix) => n.starts_with(prefix),
            None => n == e.as_str(),
        })
}

/// What happens to a provider response header on its way to the client.
pub enum ResponseHeaderRule {
    Pass,
    Rename(&'static str),
    Drop,
}

/// Provider response headers passed back to the client: content type and
/// encoding, and `retry-after`; the provider's request id as
/// `x-upstream-request-id`. Nothing else: the provider's rate-limit
/// headers describe the gateway's own key across every tenant
/// (`x-ratelimit-*`, `anthropic-ratelimit-*`), and cookies, organisation
/// and project ids are the gateway's business.
pub fn from_provider(name: &HeaderName) -> ResponseHeaderRule {
    match name.as_str() {
        "x-request-id" | "request-id" => ResponseHeaderRule::Rename("x-upstream-request-id"),
        "content-type" | "content-encoding" | "retry-after" => ResponseHeaderRule::Pass,
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
    fn operator_extras_add_names_and_prefixes_but_never_credentials() {
        let yaml = "version: 1\nlistener:\n  forward_headers: [x-mock-*, OpenAI-Organization, x-*]\nproviders:\n  p: {kind: openai, base_url: http://127.0.0.1:1/v1}\n";
        let c = policy::compile_yaml(yaml, "t", &std::collections::HashMap::new()).unwrap();
        let s =
            policy::Snapshot::from_bytes(&policy::snapshot::encode(&c.policy, 1).unwrap()).unwrap();
        let extra = &s.policy().listener.forward_headers;
        for n in ["x-mock-status", "openai-organization", "x-custom"] {
            assert!(forward_to_provider(&h(n), extra), "{n}");
        }
        for n in ["x-api-key", "x-forwarded-for", "x-request-id", "cookie"] {
            assert!(!forward_to_provider(&h(n), extra), "{n}");
        }
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
            "x-request-id",
            "x-anything-else",
            "openai-organization",
        ] {
            assert!(!forward_to_provider(&h(n), &[]), "{n}");
        }
        for n in ["x-stainless-lang", "accept", "user-agent", "anthropic-beta"] {
            assert!(forward_to_provider(&h(n), &[]), "{n}");
        }
    }

    #[test]
    fn provider_headers_are_filtered() {
        assert!(matches!(
            from_provider(&h("x-request-id")),
            ResponseHeaderRule::Rename(_)
        ));
        for n in [
            "x-ratelimit-remaining-requests",
            "anthropic-ratelimit-tokens-remaining",
            "openai-organization",
            "set-cookie",
            "keep-alive",
            "x-anything",
        ] {
            assert!(
                matches!(from_provider(&h(n)), ResponseHeaderRule::Drop),
                "{n}"
            );
        }
    }
}
