//! The admin endpoint's query string: parameters, the grouping and the
//! time expressions. Never a panic.
#![no_main]

use engine::admin::url_param;
use engine::ledger::report::{parse_time, GroupBy};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let query = String::from_utf8_lossy(data);
    for name in ["since", "until", "by", "format"] {
        if let Some(v) = url_param(&query, name) {
            assert!(v.len() <= 256);
            let _ = GroupBy::parse(&v);
            let _ = parse_time(&v, 1_772_049_750_000);
        }
    }
});
