//! The compiled listener settings.

use rkyv::{Archive, Deserialize, Serialize};

#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct Listener {
    pub address: String,
    pub threads: u32,
    pub max_body_bytes: u64,
    pub upstream_ca: String,
    /// Empty: no admin listener; the client listener serves `/metrics`.
    pub admin_address: String,
    pub tls: Option<ListenerTls>,
    /// Lower-case names; a trailing `*` matches a prefix.
    pub forward_headers: Vec<String>,
    pub limits: ConnectionLimits,
}

#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[rkyv(derive(PartialEq))]
pub struct ListenerTls {
    pub cert_file: String,
    pub key_file: String,
}

#[derive(Archive, Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionLimits {
    pub header_timeout_ms: u64,
    pub body_timeout_ms: u64,
    pub idle_timeout_ms: u64,
    pub write_timeout_ms: u64,
    pub max_connections: u32,
    pub max_connections_per_ip: u32,
    pub max_in_flight: u32,
    pub max_buffered_bytes: u64,
}

/// Headers a client can never have forwarded, whatever the policy says:
/// credentials, cookies, proxy identity, hop-by-hop and framing headers,
/// which the gateway always sets itself.
pub fn never_forwarded(name: &str) -> bool {
    matches!(
        name,
        "authorization"
            | "x-api-key"
            | "x-goog-api-key"
            | "api-key"
            | "cookie"
            | "host"
            | "connection"
            | "keep-alive"
            | "proxy-connection"
            | "proxy-authenticate"
            | "proxy-authorization"
            | "te"
            | "trailer"
            | "transfer-encoding"
            | "upgrade"
            | "content-length"
            | "x-request-id"
            | "x-real-ip"
            | "forwarded"
    ) || name.starts_with("x-forwarded-")
}
