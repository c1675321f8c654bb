//! Any text given to the policy compiler gives a policy or diagnostics,
//! never a panic; and whatever compiles must archive and load back.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::collections::HashMap;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let env: HashMap<String, String> =
        [("FUZZ_KEY".to_string(), "sk-sy-fuzz-0123456789".to_string())].into();
    match policy::compile_yaml(text, "fuzz.yaml", &env) {
        Ok(compiled) => {
            let bytes = policy::snapshot::encode(&compiled.policy, 0).expect("archive");
            let snap = policy::Snapshot::from_bytes(&bytes).expect("a compiled policy loads");
            assert_eq!(
                snap.to_owned_policy().expect("deserialise"),
                compiled.policy
            );
        }
        Err(e) => assert!(!e.diagnostics().is_empty()),
    }
});
