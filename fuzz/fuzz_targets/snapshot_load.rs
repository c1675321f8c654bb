//! Any bytes given to the snapshot loader give a snapshot or an error,
//! never a panic. Odd first bytes get a valid header so that the archive
//! validation and invariant checks behind the hash are exercised too.
#![no_main]

use libfuzzer_sys::fuzz_target;
use policy::snapshot::{wrap_payload, Snapshot};

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let bytes = if mode & 1 == 1 {
        wrap_payload(rest, 0)
    } else {
        rest.to_vec()
    };
    if let Ok(snap) = Snapshot::from_bytes(&bytes) {
        // Whatever validated must be fully usable.
        let p = snap.policy();
        for a in p.aliases.iter() {
            let _ = p.alias(a.name.as_str());
            for t in a.targets.iter() {
                assert!(p.provider_at(t.provider.to_native()).is_some());
            }
        }
        let _ = snap.to_owned_policy();
    }
});
