//! Client (virtual) API keys: hashing and minting.

use sha2::{Digest, Sha256};

/// Prefix that makes a Switchyard key recognisable in configs and scanners.
pub const KEY_PREFIX: &str = "sk-sy-";

pub fn sha256(key: &str) -> [u8; 32] {
    Sha256::digest(key.as_bytes()).into()
}

pub fn parse_sha256_hex(text: &str) -> Result<[u8; 32], String> {
    let bytes = hex::decode(text.trim())
        .map_err(|e| format!("expected 64 hex digits (a SHA-256), got {e}"))?;
    bytes
        .try_into()
        .map_err(|b: Vec<u8>| format!("expected 32 bytes (64 hex digits), got {}", b.len()))
}

/// A new key from 32 bytes of OS randomness (256 bits), hex after the prefix.
pub fn mint(random: [u8; 32]) -> String {
    format!("{KEY_PREFIX}{}", hex::encode(random))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_round_trips_through_hex() {
        let h = sha256("sk-sy-test");
        assert_eq!(parse_sha256_hex(&hex::encode(h)).unwrap(), h);
        assert!(parse_sha256_hex("abcd").is_err());
        assert!(parse_sha256_hex("zz").is_err());
    }

    #[test]
    fn minted_keys_are_prefixed_and_long() {
        let k = mint([7; 32]);
        assert!(k.starts_with(KEY_PREFIX));
        assert_eq!(k.len(), KEY_PREFIX.len() + 64);
    }
}
