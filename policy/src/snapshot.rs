//! Snapshot file: a 64-byte header followed by the rkyv archive of a
//! [`CompiledPolicy`].
//!
//! ```text
//! 0   magic "SWYDPOL\0"      8 bytes
//! 8   format version         u32 LE
//! 12  header length (64)     u32 LE
//! 16  payload length         u64 LE
//! 24  compiled at (unix s)   u64 LE
//! 32  SHA-256 of payload     32 bytes
//! 64  payload (rkyv)
//! ```
//!
//! The hash is over the payload only, so recompiling an unchanged policy
//! gives the same content hash. Loading checks, in order: size, magic,
//! version, length, hash, rkyv structure (bytecheck), cross-references.
//! Only then is the archive handed out, without deserialising it.

use crate::error::Error;
use crate::model::{ArchivedCompiledPolicy, CompiledPolicy};
use rkyv::rancor;
use rkyv::util::AlignedVec;
use sha2::{Digest, Sha256};

pub const MAGIC: &[u8; 8] = b"SWYDPOL\0";
pub const FORMAT_VERSION: u32 = 5;
pub const HEADER_LEN: usize = 64;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SnapshotHeader {
    pub format_version: u32,
    pub payload_len: u64,
    pub compiled_at_unix: u64,
    pub content_hash: [u8; 32],
}

impl SnapshotHeader {
    pub fn hash_hex(&self) -> String {
        hex::encode(self.content_hash)
    }

    /// The first 12 hex digits: enough to tell policies apart in logs.
    pub fn short_hash(&self) -> String {
        hex::encode(&self.content_hash[..6])
    }
}

pub fn now_unix() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

pub fn looks_like_snapshot(bytes: &[u8]) -> bool {
    bytes.starts_with(MAGIC)
}

/// Archive `policy` and prepend the header.
pub fn encode(policy: &CompiledPolicy, compiled_at_unix: u64) -> Result<Vec<u8>, Error> {
    let payload =
        rkyv::to_bytes::<rancor::Error>(policy).map_err(|e| Error::Archive(e.to_string()))?;
    Ok(wrap_payload(&payload, compiled_at_unix))
}

/// Put a header with a correct hash in front of any payload. Lets the
/// fuzzer reach archive validation instead of stopping at the hash check.
pub fn wrap_payload(payload: &[u8], compiled_at_unix: u64) -> Vec<u8> {
    let hash: [u8; 32] = Sha256::digest(payload).into();
    let mut out = Vec::with_capacity(HEADER_LEN + payload.len());
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
    out.extend_from_slice(&(HEADER_LEN as u32).to_le_bytes());
    out.extend_from_slice(&(payload.len() as u64).to_le_bytes());
    out.extend_from_slice(&compiled_at_unix.to_le_bytes());
    out.extend_from_slice(&hash);
    out.extend_from_slice(payload);
    out
}

/// A validated snapshot. Owns an aligned copy of the payload: we read files
/// rather than map them because a file overwritten in place under a mapping
/// can fault the process, and a policy is only kilobytes.
pub struct Snapshot {
    header: SnapshotHeader,
    payload: AlignedVec,
}

impl std::fmt::Debug for Snapshot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Snapshot")
            .field("header", &self.header)
            .finish_non_exhaustive()
    }
}

impl Snapshot {
    pub fn from_bytes(bytes: &[u8]) -> Result<Snapshot, Error> {
        let header = parse_header(bytes)?;
        let body = &bytes[HEADER_LEN..];
        let actual: [u8; 32] = Sha256::digest(body).into();
        if actual != header.content_hash {
            return Err(Error::snapshot(
                "content hash mismatch: the file is corrupted or was modified after compiling",
            ));
        }
        let mut payload = AlignedVec::with_capacity(body.len());
        payload.extend_from_slice(body);
        let archived = rkyv::access::<ArchivedCompiledPolicy, rancor::Error>(&payload)
            .map_err(|e| Error::snapshot(format!("archive failed validation: {e}")))?;
        check_invariants(archived)?;
        Ok(Snapshot { header, payload })
    }

    pub fn header(&self) -> &SnapshotHeader {
        &self.header
    }

    /// The archived policy, read in place.
    pub fn policy(&self) -> &ArchivedCompiledPolicy {
        // SAFETY: `payload` passed `rkyv::access` (full bytecheck validation)
        // in `from_bytes`, and it is private and never mutated afterwards.
        #[allow(unsafe_code)]
        unsafe {
            rkyv::access_unchecked::<ArchivedCompiledPolicy>(&self.payload)
        }
    }

    /// A deserialised copy, for tools that want owned data.
    pub fn to_owned_policy(&self) -> Result<CompiledPolicy, Error> {
        rkyv::deserialize::<CompiledPolicy, rancor::Error>(self.policy())
            .map_err(|e| Error::snapshot(e.to_string()))
    }
}

fn parse_header(bytes: &[u8]) -> Result<SnapshotHeader, Error> {
    if bytes.len() < HEADER_LEN {
        return Err(Error::snapshot(format!(
            "truncated: {} bytes, shorter than the {HEADER_LEN}-byte header",
            bytes.len()
        )));
    }
    if &bytes[..8] != MAGIC {
        return Err(Error::snapshot(
            "not a Switchyard policy snapshot (bad magic)",
        ));
    }
    let u32_at =
        |o: usize| u32::from_le_bytes([bytes[o], bytes[o + 1], bytes[o + 2], bytes[o + 3]]);
    let u64_at = |o: usize| {
        let mut b = [0u8; 8];
        b.copy_from_slice(&bytes[o..o + 8]);
        u64::from_le_bytes(b)
    };
    let format_version = u32_at(8);
    if format_version != FORMAT_VERSION {
        return Err(Error::snapshot(format!(
            "format version {format_version} is not supported (this build reads version {FORMAT_VERSION}); recompile the policy with a matching policyc"
        )));
    }
    if u32_at(12) as usize != HEADER_LEN {
        return Err(Error::snapshot("unexpected header length"));
    }
    let payload_len = u64_at(16);
    let actual = (bytes.len() - HEADER_LEN) as u64;
    if payload_len != actual {
        return Err(Error::snapshot(format!(
            "truncated or padded: header says {payload_len} payload bytes, file has {actual}"
        )));
    }
    let mut content_hash = [0u8; 32];
    content_hash.copy_from_slice(&bytes[32..64]);
    Ok(SnapshotHeader {
        format_version,
        payload_len,
        compiled_at_unix: u64_at(24),
        content_hash,
    })
}

/// What bytecheck cannot know: indexes in range, lookup tables sorted.
fn check_invariants(p: &ArchivedCompiledPolicy) -> Result<(), Error> {
    let providers = p.providers.len() as u32;
    for a in p.aliases.iter() {
        if a.targets.is_empty() {
            return Err(Error::snapshot(format!("model {} has no targets", a.name)));
        }
        for t in a.targets.iter() {
            if t.provider.to_native() >= providers {
                return Err(Error::snapshot(format!(
                    "model {} points at provider #{} of {providers}",
                    a.name,
                    t.provider.to_native()
                )));
            }
        }
    }
    let sorted_by = |ok: bool, what: &str| {
        if ok {
            Ok(())
        } else {
            Err(Error::snapshot(format!("{what} table is not sorted")))
        }
    };
    sorted_by(
        p.aliases
            .windows(2)
            .all(|w| w[0].name.as_str() < w[1].name.as_str()),
        "model",
    )?;
    sorted_by(
        p.providers
            .windows(2)
            .all(|w| w[0].name.as_str() < w[1].name.as_str()),
        "provider",
    )?;
    sorted_by(
        p.client_keys.windows(2).all(|w| w[0].sha256 < w[1].sha256),
        "client key",
    )?;
    let t = &p.tenancy;
    sorted_by(
        t.users.windows(2).all(|w| w[0].name < w[1].name)
            && t.teams.windows(2).all(|w| w[0].name < w[1].name),
        "user or team",
    )?;
    sorted_by(
        t.prices.windows(2).all(|w| w[0].model < w[1].model),
        "price",
    )?;
    sorted_by(
        t.admin_keys.windows(2).all(|w| w[0].sha256 < w[1].sha256),
        "admin key",
    )?;
    let (users, teams) = (t.users.len() as u32, t.teams.len() as u32);
    let in_range = |i: &rkyv::option::ArchivedOption<rkyv::rend::u32_le>, n: u32| {
        i.as_ref().is_none_or(|i| i.to_native() < n)
    };
    let linked = p
        .client_keys
        .iter()
        .all(|k| in_range(&k.user, users) && in_range(&k.team, teams))
        && t.users.iter().all(|u| in_range(&u.team, teams));
    if !linked {
        return Err(Error::snapshot(
            "a client key or user points at a missing user or team".to_string(),
        ));
    }
    Ok(())
}
