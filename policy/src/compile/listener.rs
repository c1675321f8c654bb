//! The listener: addresses, TLS files, forwarded headers and the
//! connection bounds, each checked to a sane range.

use super::Checker;
use crate::model::*;
use crate::spec::*;

/// Names a wildcard pattern may shadow, for the warning.
const SENSITIVE: &[&str] = &[
    "authorization",
    "x-api-key",
    "x-goog-api-key",
    "api-key",
    "cookie",
    "x-forwarded-for",
    "x-real-ip",
    "proxy-authorization",
];

/// The longest any listener timeout may be: a bound that is hours long
/// is no bound.
const MAX_TIMEOUT_MS: u64 = 3_600_000;

impl Checker<'_> {
    pub(super) fn listener(&mut self, l: ListenerSpec) -> Listener {
        let address = self.socket_address("listener.address", &l.address);
        let admin_address = match &l.admin_address {
            Some(a) => self.socket_address("listener.admin_address", a),
            None => String::new(),
        };
        if !admin_address.is_empty() && admin_address == address {
            self.error(
                "listener.admin_address",
                "must differ from listener.address (the point is to keep /metrics off the client listener)",
            );
        }
        if admin_address.is_empty() && is_public(&address) {
            self.warn(
                "listener.address",
                "the client listener is not loopback and there is no admin_address: /metrics (provider and key names, their state, traffic per model) is served to anyone who can reach it",
            );
        }
        if l.max_body_bytes == 0 {
            self.error("listener.max_body_bytes", "must be greater than 0");
        }
        if l.upstream_ca.trim().is_empty() {
            self.error(
                "listener.upstream_ca",
                "expected `webpki`, `system` or the path of a PEM file",
            );
        }
        let tls = l.tls.map(|t| ListenerTls {
            cert_file: self.file_path("listener.tls.cert_file", &t.cert_file),
            key_file: self.file_path("listener.tls.key_file", &t.key_file),
        });
        let forward_headers = l
            .forward_headers
            .iter()
            .enumerate()
            .filter_map(|(i, h)| self.forward_header(&format!("listener.forward_headers[{i}]"), h))
            .collect();
        for (field, ms) in [
            ("header_timeout_ms", l.header_timeout_ms),
            ("body_timeout_ms", l.body_timeout_ms),
            ("idle_timeout_ms", l.idle_timeout_ms),
            ("write_timeout_ms", l.write_timeout_ms),
        ] {
            if ms == 0 || ms > MAX_TIMEOUT_MS {
                self.error(
                    &format!("listener.{field}"),
                    format!("must be between 1 and {MAX_TIMEOUT_MS} (one hour)"),
                );
            }
        }
        for (field, n) in [
            ("max_connections", u64::from(l.max_connections)),
            (
                "max_connections_per_ip",
                u64::from(l.max_connections_per_ip),
            ),
            ("max_in_flight", u64::from(l.max_in_flight)),
            ("max_buffered_bytes", l.max_buffered_bytes),
        ] {
            if n == 0 {
                self.error(&format!("listener.{field}"), "must be greater than 0");
            }
        }
        if l.max_buffered_bytes > 0 && l.max_buffered_bytes < l.max_body_bytes {
            self.error(
                "listener.max_buffered_bytes",
                "must be at least max_body_bytes, or no request of the largest allowed size could ever be read",
            );
        }
        Listener {
            address,
            threads: l.threads,
            max_body_bytes: l.max_body_bytes,
            upstream_ca: l.upstream_ca,
            admin_address,
            tls,
            forward_headers,
            limits: ConnectionLimits {
                header_timeout_ms: l.header_timeout_ms,
                body_timeout_ms: l.body_timeout_ms,
                idle_timeout_ms: l.idle_timeout_ms,
                write_timeout_ms: l.write_timeout_ms,
                max_connections: l.max_connections,
                max_connections_per_ip: l.max_connections_per_ip,
                max_in_flight: l.max_in_flight,
                max_buffered_bytes: l.max_buffered_bytes,
            },
        }
    }

    fn socket_address(&mut self, path: &str, raw: &str) -> String {
        let address = self.expand(path, raw).unwrap_or_default();
        if !address.is_empty() && address.parse::<std::net::SocketAddr>().is_err() {
            self.error(
                path,
                format!("{address:?} is not an IP:port address (e.g. 127.0.0.1:8080)"),
            );
        }
        address
    }

    fn file_path(&mut self, path: &str, raw: &str) -> String {
        let file = self.expand(path, raw).unwrap_or_default();
        if file.trim().is_empty() {
            self.error(path, "expected the path of a PEM file");
        }
        file
    }

    fn forward_header(&mut self, path: &str, raw: &str) -> Option<String> {
        let name = raw.trim().to_ascii_lowercase();
        let stem = name.strip_suffix('*').unwrap_or(&name);
        let valid = !stem.is_empty()
            && stem
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if !valid {
            self.error(
                path,
                format!("{raw:?} is not a header name (letters, digits, `-`, `_`; a trailing `*` for a prefix)"),
            );
            return None;
        }
        if !name.ends_with('*') && never_forwarded(&name) {
            self.error(
                path,
                format!("{raw:?} is a credential, cookie, proxy-identity or framing header; those never cross the gateway"),
            );
            return None;
        }
        if name.ends_with('*') && SENSITIVE.iter().any(|n| n.starts_with(stem)) {
            self.warn(
                path,
                format!("{raw:?} also matches credential, cookie or framing headers; those stay blocked whatever the pattern"),
            );
        }
        Some(name)
    }
}

/// An address other hosts can reach (not loopback).
fn is_public(address: &str) -> bool {
    address
        .parse::<std::net::SocketAddr>()
        .is_ok_and(|a| !a.ip().is_loopback())
}
