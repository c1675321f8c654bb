//! Full-jitter exponential backoff (AWS architecture blog's "full jitter"):
//! sleep a uniform random time in [0, min(max, base · 2^n)].

use std::time::Duration;

pub fn full_jitter(base_ms: u64, max_ms: u64, retry: u32, unit_random: f64) -> Duration {
    let ceiling = base_ms.saturating_mul(1u64 << retry.min(30)).min(max_ms);
    Duration::from_millis((ceiling as f64 * unit_random.clamp(0.0, 1.0)) as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_then_caps_and_stays_within_the_ceiling() {
        assert_eq!(full_jitter(50, 1000, 0, 1.0), Duration::from_millis(50));
        assert_eq!(full_jitter(50, 1000, 3, 1.0), Duration::from_millis(400));
        assert_eq!(full_jitter(50, 1000, 10, 1.0), Duration::from_millis(1000));
        assert_eq!(full_jitter(50, 1000, 10, 0.0), Duration::ZERO);
        assert_eq!(full_jitter(50, 1000, 2, 0.5), Duration::from_millis(100));
    }
}
