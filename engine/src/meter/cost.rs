//! Prices in integers: pico-units per token in, nano-units per request
//! out (rounded up, so a request is never billed below its cost).

use super::usage::Usage;
use policy::ArchivedPrice;

/// When neither the request (`max_tokens`) nor the price
/// (`max_output_tokens`) bounds the answer, budgets reserve this many.
pub const DEFAULT_RESERVED_OUTPUT: u64 = 4096;

pub fn cost_nanos(price: &ArchivedPrice, u: &Usage) -> u64 {
    let cached = u.cached_input.min(u.input);
    let write = u.cache_write.min(u.input - cached);
    let plain_input = u.input - cached - write;
    let reasoning = u.reasoning.min(u.output);
    let plain_output = u.output - reasoning;
    let pico = u128::from(plain_input) * u128::from(price.input.to_native())
        + u128::from(cached) * u128::from(price.cached_input.to_native())
        + u128::from(write) * u128::from(price.cache_write.to_native())
        + u128::from(plain_output) * u128::from(price.output.to_native())
        + u128::from(reasoning) * u128::from(price.reasoning.to_native());
    pico.div_ceil(1000).min(u128::from(u64::MAX)) as u64
}

/// The worst case a request can cost on `price`: every prompt byte a token
/// (tokenizers in use make at most one token per byte of text, and the
/// JSON around the text is larger than the per-message overhead), and
/// the largest answer allowed.
pub fn reservation_nanos(price: &ArchivedPrice, body_bytes: u64, max_tokens: Option<u64>) -> u64 {
    let output = max_tokens.unwrap_or(match price.max_output_tokens.to_native() {
        0 => DEFAULT_RESERVED_OUTPUT,
        n => u64::from(n),
    });
    let in_rate = price
        .input
        .to_native()
        .max(price.cache_write.to_native())
        .max(price.cached_input.to_native());
    let out_rate = price.output.to_native().max(price.reasoning.to_native());
    let pico =
        u128::from(body_bytes) * u128::from(in_rate) + u128::from(output) * u128::from(out_rate);
    pico.div_ceil(1000).min(u128::from(u64::MAX)) as u64
}

/// Tokens-per-minute estimate of a request before it runs.
pub fn token_estimate(body_bytes: u64, max_tokens: Option<u64>) -> u64 {
    body_bytes
        .div_ceil(4)
        .saturating_add(max_tokens.unwrap_or(0))
}

#[cfg(test)]
mod tests {
    use super::*;
    use policy::{compile_yaml, snapshot, Snapshot};

    fn price() -> Snapshot {
        let yaml = "version: 1\nproviders:\n  p: {kind: openai, base_url: http://127.0.0.1:1/v1}\nprices:\n  m: {input: 3, output: 15, cached_input: 0.3, cache_write: 3.75, max_output_tokens: 100}\n";
        let c = compile_yaml(yaml, "t", &std::collections::HashMap::new()).unwrap();
        Snapshot::from_bytes(&snapshot::encode(&c.policy, 1).unwrap()).unwrap()
    }

    #[test]
    fn a_max_tokens_near_the_limit_does_not_wrap_the_estimate() {
        assert_eq!(token_estimate(1000, Some(u64::MAX)), u64::MAX);
        assert_eq!(token_estimate(u64::MAX, Some(u64::MAX)), u64::MAX);
    }

    #[test]
    fn costs_are_exact_by_token_kind() {
        let s = price();
        let p = s.policy().tenancy.price("p", "m").unwrap();
        // 1M plain input at 3/M = 3.0 = 3e9 nano.
        let u = Usage {
            input: 1_000_000,
            ..Usage::default()
        };
        assert_eq!(cost_nanos(p, &u), 3_000_000_000);
        let u = Usage {
            input: 1000,
            cached_input: 600,
            cache_write: 100,
            output: 50,
            reasoning: 20,
        };
        // 300*3 + 600*0.3 + 100*3.75 + 30*15 + 20*15 (per M) = 2205 µ-units.
        assert_eq!(cost_nanos(p, &u), 2_205_000);
        // One token at 0.3/M is 0.3 micro = 300 nano exactly.
        let u = Usage {
            input: 1,
            cached_input: 1,
            ..Usage::default()
        };
        assert_eq!(cost_nanos(p, &u), 300);
    }

    #[test]
    fn reservations_cover_the_worst_case() {
        let s = price();
        let p = s.policy().tenancy.price("p", "m").unwrap();
        // 100 bytes at the dearest input rate (3.75) + 10 tokens at 15.
        assert_eq!(reservation_nanos(p, 100, Some(10)), 375_000 + 150_000);
        // No max_tokens: the price's max_output_tokens.
        assert_eq!(reservation_nanos(p, 0, None), 1_500_000);
        assert_eq!(token_estimate(401, Some(7)), 101 + 7);
    }
}
