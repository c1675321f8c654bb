//! Phase 1: who is calling. Keys are looked up by SHA-256 in the archived
//! policy (constant-time final compare), then the key's status, expiry and
//! allowed source addresses are checked. No I/O: microseconds.

use crate::error::GatewayError;
use policy::{ArchivedClientKey, ArchivedCompiledPolicy, ArchivedTenancy};
use std::net::IpAddr;

/// The presented key: `Authorization: Bearer <key>`, or `x-api-key` as
/// Anthropic clients send it.
pub fn presented_key<'a>(
    authorization: Option<&'a [u8]>,
    x_api_key: Option<&'a [u8]>,
) -> Option<&'a [u8]> {
    if let Some(v) = authorization {
        let v = v.trim_ascii();
        if v.len() > 7 && v[..7].eq_ignore_ascii_case(b"bearer ") {
            return Some(v[7..].trim_ascii());
        }
    }
    x_api_key.map(<[u8]>::trim_ascii).filter(|k| !k.is_empty())
}

fn hash(key: Option<&[u8]>) -> Result<[u8; 32], GatewayError> {
    let key = key
        .filter(|k| !k.is_empty())
        .ok_or(GatewayError::MissingKey)?;
    use sha2::Digest;
    Ok(sha2::Sha256::digest(key).into())
}

/// An authenticated caller: the key and its index in the policy.
pub struct Caller<'p> {
    pub index: usize,
    pub key: &'p ArchivedClientKey,
}

/// Check the presented key for a request from `client` at `now_unix`.
pub fn authenticate<'p>(
    policy: &'p ArchivedCompiledPolicy,
    key: Option<&[u8]>,
    client: Option<IpAddr>,
    now_unix: u64,
) -> Result<Caller<'p>, GatewayError> {
    let (index, key) = policy
        .client_key_at(&hash(key)?)
        .ok_or(GatewayError::InvalidKey)?;
    if key.suspended {
        return Err(GatewayError::KeySuspended(key.name.to_string()));
    }
    if let Some(at) = key.expires_at.as_ref().map(|t| t.to_native()) {
        if now_unix >= at {
            let when = jiff::Timestamp::from_second(at as i64)
                .map(|t| t.to_string())
                .unwrap_or_else(|_| at.to_string());
            return Err(GatewayError::KeyExpired(key.name.to_string(), when));
        }
    }
    if !key.source_ips.is_empty() {
        let allowed = client.is_some_and(|ip| key.source_ips.iter().any(|c| c.contains(ip)));
        if !allowed {
            let from = client.map_or_else(|| "an unknown address".to_string(), |ip| ip.to_string());
            return Err(GatewayError::SourceNotAllowed(from));
        }
    }
    Ok(Caller { index, key })
}

/// Whether the presented key is an admin key.
pub fn authenticate_admin(
    policy: &ArchivedCompiledPolicy,
    key: Option<&[u8]>,
) -> Result<(), GatewayError> {
    let h = hash(key)?;
    if policy.tenancy.admin_key(&h).is_some() {
        return Ok(());
    }
    // A valid client key that is not an admin key is refused, not unknown.
    match policy.client_key(&h) {
        Some(_) => Err(GatewayError::AdminOnly),
        None => Err(GatewayError::InvalidKey),
    }
}

/// The client's address: the socket peer, or, when the peer is a trusted
/// proxy, the last address in `X-Forwarded-For` that is not one.
/// `forwarded_for` holds every `X-Forwarded-For` line in the order
/// received: a proxy that appends its own line rather than extending the
/// client's must not let the client's line decide (RFC 9110 §5.3: the
/// lines are one comma-separated list).
pub fn client_ip(
    peer: Option<IpAddr>,
    forwarded_for: &[&[u8]],
    tenancy: &ArchivedTenancy,
) -> Option<IpAddr> {
    let peer = peer?;
    if !tenancy.trusts_proxy(peer) {
        return Some(peer);
    }
    let mut client = peer;
    // Right to left: each hop appended the address it saw; the first one
    // not added by a proxy we trust is the client.
    for line in forwarded_for.iter().rev() {
        let Ok(list) = std::str::from_utf8(line) else {
            return Some(client);
        };
        for hop in list.rsplit(',') {
            let Ok(ip) = hop.trim().parse::<IpAddr>() else {
                // A garbled entry: nothing left of it can be believed.
                return Some(client);
            };
            client = ip;
            if !tenancy.trusts_proxy(ip) {
                return Some(client);
            }
        }
    }
    Some(client)
}

#[cfg(test)]
mod tests;
