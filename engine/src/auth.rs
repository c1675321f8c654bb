//! Phase 1: who is calling. Keys are looked up by SHA-256 in the archived
//! policy (constant-time final compare); no I/O, microseconds.

use crate::error::GatewayError;
use policy::{ArchivedClientKey, ArchivedCompiledPolicy};

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

pub fn authenticate<'p>(
    policy: &'p ArchivedCompiledPolicy,
    key: Option<&[u8]>,
) -> Result<&'p ArchivedClientKey, GatewayError> {
    let key = key
        .filter(|k| !k.is_empty())
        .ok_or(GatewayError::MissingKey)?;
    let hash: [u8; 32] = {
        use sha2::Digest;
        sha2::Sha256::digest(key).into()
    };
    policy.client_key(&hash).ok_or(GatewayError::InvalidKey)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extracts_bearer_or_x_api_key() {
        assert_eq!(presented_key(Some(b"Bearer abc"), None), Some(&b"abc"[..]));
        assert_eq!(
            presented_key(Some(b"bearer  abc "), None),
            Some(&b"abc"[..])
        );
        assert_eq!(
            presented_key(Some(b"Basic abc"), Some(b"k")),
            Some(&b"k"[..])
        );
        assert_eq!(presented_key(None, Some(b"")), None);
        assert_eq!(presented_key(Some(b"Bearer"), None), None);
    }
}
