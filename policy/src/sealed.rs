//! Sealed snapshots, for publishing a policy to a fleet: a snapshot holds
//! upstream secrets, so what travels through shared storage is encrypted
//! and authenticated (ChaCha20-Poly1305, from `ring`). A replica opens a
//! sealed snapshot only with the key, and a snapshot changed by anyone
//! without it does not open.
//!
//! ```text
//! 0   magic "SYSEAL1\n"   8 bytes (also the associated data)
//! 8   nonce               12 bytes, random per seal
//! 20  ciphertext + tag    the snapshot, encrypted; 16-byte tag
//! ```
//!
//! Keys are 32 random bytes, written as 64 hex digits (`policyc keygen`).

use crate::error::Error;
use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, CHACHA20_POLY1305, NONCE_LEN};
use ring::rand::{SecureRandom, SystemRandom};

pub const SEAL_MAGIC: &[u8; 8] = b"SYSEAL1\n";

/// Where a published policy lives in Redis: a hash with the snapshot's
/// content hash (`hash`), the sealed snapshot (`sealed`) and when it was
/// published (`at`, unix ms). One `HSET` writes all three.
pub const PUBLISHED_KEY: &str = "sy:{cluster}:policy";

pub struct SealKey(LessSafeKey);

fn invalid(msg: impl Into<String>) -> Error {
    Error::Sealed(msg.into())
}

impl SealKey {
    /// 64 hex digits (surrounding whitespace ignored).
    pub fn from_hex(text: &str) -> Result<SealKey, Error> {
        let bytes =
            hex::decode(text.trim()).map_err(|_| invalid("the key is not 64 hex digits"))?;
        if bytes.len() != 32 {
            return Err(invalid("the key is not 64 hex digits (32 bytes)"));
        }
        let key = UnboundKey::new(&CHACHA20_POLY1305, &bytes)
            .map_err(|_| invalid("the key is not usable"))?;
        Ok(SealKey(LessSafeKey::new(key)))
    }

    /// From a file holding the hex key.
    pub fn from_file(path: &std::path::Path) -> Result<SealKey, Error> {
        let text = std::fs::read_to_string(path).map_err(|source| Error::Io {
            path: path.display().to_string(),
            source,
        })?;
        SealKey::from_hex(&text)
    }

    /// From an environment variable holding the hex key.
    pub fn from_env(name: &str) -> Result<SealKey, Error> {
        let text = std::env::var(name)
            .map_err(|_| invalid(format!("the environment variable {name} is not set")))?;
        SealKey::from_hex(&text)
    }

    /// A new random key, as hex.
    pub fn generate_hex() -> Result<String, Error> {
        let mut bytes = [0u8; 32];
        SystemRandom::new()
            .fill(&mut bytes)
            .map_err(|_| invalid("no randomness"))?;
        Ok(hex::encode(bytes))
    }

    /// Encrypt and authenticate a snapshot.
    pub fn seal(&self, snapshot: &[u8]) -> Result<Vec<u8>, Error> {
        let mut nonce = [0u8; NONCE_LEN];
        SystemRandom::new()
            .fill(&mut nonce)
            .map_err(|_| invalid("no randomness"))?;
        let mut body = snapshot.to_vec();
        self.0
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(SEAL_MAGIC),
                &mut body,
            )
            .map_err(|_| invalid("cannot seal"))?;
        let mut out = Vec::with_capacity(8 + NONCE_LEN + body.len());
        out.extend_from_slice(SEAL_MAGIC);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&body);
        Ok(out)
    }

    /// The snapshot inside, if the seal is intact and made with this key.
    /// (The snapshot itself is then validated as any other.)
    pub fn open(&self, sealed: &[u8]) -> Result<Vec<u8>, Error> {
        let Some(rest) = sealed.strip_prefix(SEAL_MAGIC.as_slice()) else {
            return Err(invalid("not a sealed snapshot"));
        };
        if rest.len() < NONCE_LEN + CHACHA20_POLY1305.tag_len() {
            return Err(invalid("a sealed snapshot cut short"));
        }
        let (nonce, body) = rest.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce)
            .map_err(|_| invalid("a sealed snapshot cut short"))?;
        let mut body = body.to_vec();
        let plain = self
            .0
            .open_in_place(nonce, Aad::from(SEAL_MAGIC), &mut body)
            .map_err(|_| {
                invalid("the sealed snapshot does not authenticate with this key (tampered, or sealed with another key)")
            })?;
        Ok(plain.to_vec())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_seal_opens_only_intact_and_with_its_key() {
        let key = SealKey::from_hex(&SealKey::generate_hex().unwrap()).unwrap();
        let other = SealKey::from_hex(&SealKey::generate_hex().unwrap()).unwrap();
        let sealed = key.seal(b"SWYDPOL\0 a snapshot with secrets").unwrap();
        assert!(!sealed.windows(7).any(|w| w == b"secrets"));
        assert_eq!(
            key.open(&sealed).unwrap(),
            b"SWYDPOL\0 a snapshot with secrets"
        );
        assert!(other.open(&sealed).is_err());
        for i in [0, 9, 25, sealed.len() - 1] {
            let mut t = sealed.clone();
            t[i] ^= 1;
            assert!(key.open(&t).is_err(), "byte {i} flipped");
        }
        assert!(key.open(&sealed[..30]).is_err());
        assert!(SealKey::from_hex("abc").is_err());
        // Two seals of the same snapshot differ (fresh nonces).
        assert_ne!(key.seal(b"x").unwrap(), key.seal(b"x").unwrap());
    }
}
