//! How long a provider asked us to leave a key alone, from a 429's headers
//! and body. Each provider says it differently (see the conformance corpus):
//!
//! - `retry-after: 20` or an HTTP date; `retry-after-ms: 1500` (OpenAI)
//! - OpenAI `x-ratelimit-reset-requests: 1m30.5s` / `-tokens: 120ms`, for the
//!   limit whose `x-ratelimit-remaining-*` is 0 (else the longer one)
//! - Anthropic `anthropic-ratelimit-*-reset: 2026-02-25T20:02:37Z`
//! - Gemini `error.details[]` `RetryInfo.retryDelay: "34.4s"`

use http::HeaderMap;
use std::time::{Duration, SystemTime};

/// Hints longer than this are treated as this (a bad header must not park a
/// key for a day).
pub const MAX_COOLDOWN: Duration = Duration::from_secs(600);

pub fn hint(headers: &HeaderMap, body: &[u8], now: SystemTime) -> Option<Duration> {
    let h = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
    };
    let found = h("retry-after-ms")
        .and_then(|v| v.parse::<f64>().ok())
        .and_then(|ms| seconds(ms / 1000.0))
        .or_else(|| h("retry-after").and_then(|v| retry_after(v, now)))
        .or_else(|| openai_reset(&h))
        .or_else(|| anthropic_reset(headers, now))
        .or_else(|| gemini_retry_info(body));
    found.map(|d| d.min(MAX_COOLDOWN))
}

fn retry_after(v: &str, now: SystemTime) -> Option<Duration> {
    if let Ok(secs) = v.parse::<f64>() {
        return seconds(secs);
    }
    let at = httpdate::parse_http_date(v).ok()?;
    Some(at.duration_since(now).unwrap_or_default())
}

fn openai_reset<'a>(h: &impl Fn(&str) -> Option<&'a str>) -> Option<Duration> {
    let requests = h("x-ratelimit-reset-requests").and_then(go_duration);
    let tokens = h("x-ratelimit-reset-tokens").and_then(go_duration);
    let exhausted = |kind: &str| h(&format!("x-ratelimit-remaining-{kind}")) == Some("0");
    match (exhausted("requests"), exhausted("tokens")) {
        (true, false) => requests.or(tokens),
        (false, true) => tokens.or(requests),
        _ => requests.max(tokens),
    }
}

fn anthropic_reset(headers: &HeaderMap, now: SystemTime) -> Option<Duration> {
    headers
        .iter()
        .filter(|(k, _)| {
            k.as_str().starts_with("anthropic-ratelimit-") && k.as_str().ends_with("-reset")
        })
        .filter_map(|(_, v)| humantime::parse_rfc3339_weak(v.to_str().ok()?.trim()).ok())
        .map(|at| at.duration_since(now).unwrap_or_default())
        .max()
}

fn gemini_retry_info(body: &[u8]) -> Option<Duration> {
    let v: serde_json::Value = serde_json::from_slice(body).ok()?;
    v.pointer("/error/details")?
        .as_array()?
        .iter()
        .find(|d| {
            d.get("@type")
                .and_then(|t| t.as_str())
                .is_some_and(|t| t.ends_with("google.rpc.RetryInfo"))
        })
        .and_then(|d| d.get("retryDelay")?.as_str())
        .and_then(go_duration)
}

/// Go-style durations as OpenAI and Google send them: `6ms`, `1.5s`,
/// `1m30.5s`, `2h0m0s`.
pub fn go_duration(s: &str) -> Option<Duration> {
    let mut total = 0f64;
    let mut rest = s.trim();
    if rest.is_empty() {
        return None;
    }
    while !rest.is_empty() {
        let num_end = rest.find(|c: char| !(c.is_ascii_digit() || c == '.'))?;
        let value: f64 = rest[..num_end].parse().ok()?;
        rest = &rest[num_end..];
        let unit_end = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let scale = match &rest[..unit_end] {
            "h" => 3600.0,
            "m" => 60.0,
            "s" => 1.0,
            "ms" => 0.001,
            "us" | "µs" => 0.000_001,
            "ns" => 0.000_000_001,
            _ => return None,
        };
        total += value * scale;
        rest = &rest[unit_end..];
    }
    seconds(total)
}

/// A provider's number of seconds as a duration: negative, NaN and
/// infinite values (`1e400` parses as infinity) are garbage, not a
/// panic; a finite value too large for a `Duration` is held at a century
/// (the caller caps it to [`MAX_COOLDOWN`] anyway).
fn seconds(secs: f64) -> Option<Duration> {
    const CENTURY: f64 = 100.0 * 365.0 * 86_400.0;
    if !secs.is_finite() || secs < 0.0 {
        return None;
    }
    Some(Duration::from_secs_f64(secs.min(CENTURY)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        pairs
            .iter()
            .map(|(k, v)| (http::HeaderName::from_static(k), v.parse().unwrap()))
            .collect()
    }

    const NOW: u64 = 1_772_049_750; // 2026-02-25T20:02:30Z

    fn now() -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(NOW)
    }

    #[test]
    fn parses_go_durations() {
        assert_eq!(go_duration("6ms"), Some(Duration::from_millis(6)));
        assert_eq!(go_duration("1m30.5s"), Some(Duration::from_millis(90_500)));
        assert_eq!(go_duration("34.4s"), Some(Duration::from_millis(34_400)));
        assert_eq!(go_duration("2h0m0s"), Some(Duration::from_secs(7200)));
        assert_eq!(go_duration("abc"), None);
        assert_eq!(go_duration("5x"), None);
        assert_eq!(go_duration(""), None);
    }

    #[test]
    fn retry_after_in_seconds_milliseconds_or_a_date() {
        assert_eq!(
            hint(&headers(&[("retry-after", "3")]), b"", now()),
            Some(Duration::from_secs(3))
        );
        assert_eq!(
            hint(
                &headers(&[("retry-after-ms", "1500"), ("retry-after", "3")]),
                b"",
                now()
            ),
            Some(Duration::from_millis(1500))
        );
        let date = httpdate::fmt_http_date(now() + Duration::from_secs(7));
        assert_eq!(
            hint(&headers(&[("retry-after", &date)]), b"", now()),
            Some(Duration::from_secs(7))
        );
        assert_eq!(
            hint(&headers(&[("retry-after", "99999")]), b"", now()),
            Some(MAX_COOLDOWN)
        );
        assert_eq!(hint(&headers(&[("retry-after", "soon")]), b"", now()), None);
    }

    #[test]
    fn hostile_numbers_are_ignored_or_capped_never_a_panic() {
        for v in ["1e400", "inf", "-inf", "NaN", "-1", "-0.5e3"] {
            for name in ["retry-after", "retry-after-ms"] {
                assert_eq!(
                    hint(&headers(&[(name, v)]), b"", now()),
                    None,
                    "{name}: {v}"
                );
            }
        }
        assert_eq!(
            hint(&headers(&[("retry-after-ms", "1e300")]), b"", now()),
            Some(MAX_COOLDOWN)
        );
        let huge = format!("{}h", "9".repeat(400));
        assert_eq!(go_duration(&huge), None);
        assert_eq!(go_duration("1e3s"), None);
        let h = headers(&[("x-ratelimit-reset-tokens", "99999999999999999999h")]);
        assert_eq!(hint(&h, b"", now()), Some(MAX_COOLDOWN));
    }

    #[test]
    fn openai_reset_of_the_exhausted_limit() {
        let h = headers(&[
            ("x-ratelimit-reset-requests", "120ms"),
            ("x-ratelimit-reset-tokens", "6m0s"),
            ("x-ratelimit-remaining-requests", "0"),
            ("x-ratelimit-remaining-tokens", "5000"),
        ]);
        assert_eq!(hint(&h, b"", now()), Some(Duration::from_millis(120)));
        let h = headers(&[
            ("x-ratelimit-reset-requests", "120ms"),
            ("x-ratelimit-reset-tokens", "2s"),
        ]);
        assert_eq!(
            hint(&h, b"", now()),
            Some(Duration::from_secs(2)),
            "unknown which: the longer"
        );
    }

    #[test]
    fn anthropic_reset_timestamps_from_the_recorded_headers() {
        let recorded = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../shared/conformance/anthropic/headers_ratelimit_200.txt"
        ));
        let Ok(recorded) = recorded else { return };
        let mut h = HeaderMap::new();
        for line in recorded.lines().skip(1) {
            if let Some((k, v)) = line.split_once(':') {
                if let (Ok(k), Ok(v)) = (
                    http::HeaderName::from_bytes(k.trim().to_ascii_lowercase().as_bytes()),
                    v.trim().parse(),
                ) {
                    h.append(k, v);
                }
            }
        }
        // Latest reset in the file is 20:02:37, seven seconds after NOW.
        assert_eq!(hint(&h, b"", now()), Some(Duration::from_secs(7)));
    }

    #[test]
    fn gemini_retry_info_from_the_recorded_body() {
        let body = std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/conformance/gemini/error_429_retryinfo.sdk_fixture.json"))
            .unwrap_or_else(|_| br#"{"error":{"details":[{"@type":"type.googleapis.com/google.rpc.RetryInfo","retryDelay":"34.4s"}]}}"#.to_vec());
        assert_eq!(
            hint(&HeaderMap::new(), &body, now()),
            Some(Duration::from_millis(34_400))
        );
        assert_eq!(hint(&HeaderMap::new(), b"{}", now()), None);
    }
}
