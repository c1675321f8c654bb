//! A provider's retry and rate-limit headers and error body: the cool-down
//! hint (`retry-after`, `retry-after-ms`, OpenAI resets, Anthropic reset
//! times, Gemini `RetryInfo`) and the status verdict. Never a panic, and a
//! hint never past the cap.
#![no_main]

use engine::resilience::{cooldown, outcome};
use http::{HeaderMap, HeaderName, HeaderValue};
use libfuzzer_sys::fuzz_target;
use std::time::{Duration, SystemTime};

const NAMES: [&str; 8] = [
    "retry-after",
    "retry-after-ms",
    "x-ratelimit-reset-requests",
    "x-ratelimit-reset-tokens",
    "x-ratelimit-remaining-requests",
    "x-ratelimit-remaining-tokens",
    "anthropic-ratelimit-requests-reset",
    "anthropic-ratelimit-tokens-reset",
];

fuzz_target!(|data: &[u8]| {
    // Lines of `<name index byte><value>`; a blank line, then the body.
    let (head, body) = match data.windows(2).position(|w| w == b"\n\n") {
        Some(i) => (&data[..i], &data[i + 2..]),
        None => (data, &b""[..]),
    };
    let mut headers = HeaderMap::new();
    for line in head.split(|b| *b == b'\n') {
        let Some((&i, value)) = line.split_first() else {
            continue;
        };
        if let Ok(v) = HeaderValue::from_bytes(value) {
            headers.append(
                HeaderName::from_static(NAMES[usize::from(i) % NAMES.len()]),
                v,
            );
        }
    }
    let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_772_049_750);
    if let Some(d) = cooldown::hint(&headers, body, now) {
        assert!(d <= cooldown::MAX_COOLDOWN);
    }
    let _ = cooldown::go_duration(&String::from_utf8_lossy(body));
    for status in [200u16, 400, 401, 403, 429, 503] {
        let _ = outcome::classify_status(status, &headers, body);
    }
});
