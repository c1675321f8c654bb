//! The client-facing listener: where it listens, TLS, an optional admin
//! listener, and the bounds that keep a hostile client from holding the
//! gateway's connections, memory and upstream slots.

use serde::Deserialize;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListenerSpec {
    #[serde(default = "default_address")]
    pub address: String,
    /// Worker threads; 0 or absent means one per core.
    #[serde(default)]
    pub threads: u32,
    #[serde(default = "default_max_body")]
    pub max_body_bytes: u64,
    /// `webpki` (bundled Mozilla roots), `system`, or a PEM file path.
    #[serde(default = "default_ca")]
    pub upstream_ca: String,
    /// A second listener for `/metrics`, `/healthz` detail and `/admin/*`;
    /// with it, the client listener serves none of them.
    #[serde(default)]
    pub admin_address: Option<String>,
    /// Serve HTTPS (TLS 1.2/1.3, HTTP/2 by ALPN) with this certificate.
    #[serde(default)]
    pub tls: Option<ListenerTlsSpec>,
    /// Client request headers forwarded to providers beyond the built-in
    /// allowlist: exact names, or a prefix ending in `*` (`x-mock-*`).
    #[serde(default)]
    pub forward_headers: Vec<String>,
    /// The whole request head must arrive within this.
    #[serde(default = "default_header_timeout")]
    pub header_timeout_ms: u64,
    /// The whole request body must arrive within this.
    #[serde(default = "default_body_timeout")]
    pub body_timeout_ms: u64,
    /// A kept-alive connection with no new request is closed after this.
    #[serde(default = "default_idle_timeout")]
    pub idle_timeout_ms: u64,
    /// A client that does not take a write for this long is cut off, and
    /// everything its request holds is released.
    #[serde(default = "default_write_timeout")]
    pub write_timeout_ms: u64,
    /// Open client connections, over all workers.
    #[serde(default = "default_max_connections")]
    pub max_connections: u32,
    /// Open client connections from one source address.
    #[serde(default = "default_max_connections_per_ip")]
    pub max_connections_per_ip: u32,
    /// Requests being served at once; more are answered 503.
    #[serde(default = "default_max_in_flight")]
    pub max_in_flight: u32,
    /// Request bodies held in memory at once, in bytes; a request that
    /// would pass it is answered 503.
    #[serde(default = "default_max_buffered_bytes")]
    pub max_buffered_bytes: u64,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListenerTlsSpec {
    /// PEM certificate chain, leaf first.
    pub cert_file: String,
    /// PEM private key (PKCS#8, PKCS#1 or SEC1).
    pub key_file: String,
}

impl Default for ListenerSpec {
    fn default() -> Self {
        ListenerSpec {
            address: default_address(),
            threads: 0,
            max_body_bytes: default_max_body(),
            upstream_ca: default_ca(),
            admin_address: None,
            tls: None,
            forward_headers: Vec::new(),
            header_timeout_ms: default_header_timeout(),
            body_timeout_ms: default_body_timeout(),
            idle_timeout_ms: default_idle_timeout(),
            write_timeout_ms: default_write_timeout(),
            max_connections: default_max_connections(),
            max_connections_per_ip: default_max_connections_per_ip(),
            max_in_flight: default_max_in_flight(),
            max_buffered_bytes: default_max_buffered_bytes(),
        }
    }
}

fn default_address() -> String {
    "127.0.0.1:8080".into()
}
fn default_max_body() -> u64 {
    32 * 1024 * 1024
}
fn default_ca() -> String {
    "webpki".into()
}
fn default_header_timeout() -> u64 {
    10_000
}
fn default_body_timeout() -> u64 {
    60_000
}
fn default_idle_timeout() -> u64 {
    60_000
}
fn default_write_timeout() -> u64 {
    30_000
}
fn default_max_connections() -> u32 {
    16_384
}
fn default_max_connections_per_ip() -> u32 {
    1024
}
fn default_max_in_flight() -> u32 {
    4096
}
fn default_max_buffered_bytes() -> u64 {
    1 << 30
}
