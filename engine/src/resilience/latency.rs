//! Latency signals per target, lock-free.
//!
//! [`PeakEwma`] (as in Finagle and linkerd) jumps up to any slower sample at
//! once and decays towards faster ones over `TAU`; multiplied by in-flight
//! requests it is the cost `least_latency` balancing minimises.
//!
//! [`TtfbHistogram`] keeps time to first byte in log buckets (four per power
//! of two, so ±12%) over two rotating 30-second generations, so a hedge
//! threshold at "p95" follows the last minute, not all history.

use std::sync::atomic::{AtomicU64, Ordering::*};

const TAU_MS: f64 = 10_000.0;

#[derive(Default)]
pub struct PeakEwma {
    /// f64 bits, microseconds.
    value: AtomicU64,
    stamp_ms: AtomicU64,
}

impl PeakEwma {
    pub fn observe(&self, micros: u64, now_ms: u64) {
        let sample = micros as f64;
        let last = self.stamp_ms.swap(now_ms, AcqRel);
        let elapsed = now_ms.saturating_sub(last) as f64;
        let _ = self.value.fetch_update(AcqRel, Acquire, |bits| {
            let old = f64::from_bits(bits);
            let new = if sample > old || old == 0.0 {
                sample
            } else {
                let w = (-elapsed / TAU_MS).exp();
                old * w + sample * (1.0 - w)
            };
            Some(new.to_bits())
        });
    }

    pub fn micros(&self) -> f64 {
        f64::from_bits(self.value.load(Acquire))
    }

    /// Cost for balancing: latency × (in-flight + 1). Unknown targets cost
    /// least, so they get tried.
    pub fn cost(&self, in_flight: u32) -> f64 {
        (self.micros() + 1.0) * (in_flight as f64 + 1.0)
    }
}

const SUB: u32 = 4;
const BUCKETS: usize = 44 * SUB as usize;
const GENERATION_MS: u64 = 30_000;

struct Generation {
    started_ms: AtomicU64,
    counts: [AtomicU64; BUCKETS],
}

impl Default for Generation {
    fn default() -> Self {
        Generation {
            started_ms: AtomicU64::new(0),
            counts: std::array::from_fn(|_| AtomicU64::new(0)),
        }
    }
}

#[derive(Default)]
pub struct TtfbHistogram {
    generations: [Generation; 2],
}

fn bucket_of(micros: u64) -> usize {
    let v = micros.max(1);
    let exp = 63 - v.leading_zeros();
    let sub = if exp >= 2 {
        ((v >> (exp - 2)) & 3) as u32
    } else {
        0
    };
    ((exp * SUB + sub) as usize).min(BUCKETS - 1)
}

/// The largest value that lands in bucket `i`.
fn upper_bound(i: usize) -> u64 {
    let (exp, sub) = (i as u32 / SUB, i as u32 % SUB);
    if exp < 2 {
        return (1u64 << (exp + 1)) - 1;
    }
    ((4 + sub as u64 + 1) << (exp - 2)) - 1
}

impl TtfbHistogram {
    pub fn record(&self, micros: u64, now_ms: u64) {
        let slot = ((now_ms / GENERATION_MS) % 2) as usize;
        let g = &self.generations[slot];
        let start = now_ms - now_ms % GENERATION_MS;
        let seen = g.started_ms.load(Acquire);
        if seen != start
            && g.started_ms
                .compare_exchange(seen, start, AcqRel, Acquire)
                .is_ok()
        {
            for c in &g.counts {
                c.store(0, Relaxed);
            }
        }
        g.counts[bucket_of(micros)].fetch_add(1, Relaxed);
    }

    /// The `q`-quantile (0..1) over the last one or two generations, or
    /// `None` below `min_samples`.
    pub fn quantile(&self, q: f64, now_ms: u64, min_samples: u64) -> Option<u64> {
        let oldest = now_ms.saturating_sub(2 * GENERATION_MS);
        let mut counts = [0u64; BUCKETS];
        for g in &self.generations {
            let started = g.started_ms.load(Acquire);
            if started + GENERATION_MS > oldest && started <= now_ms {
                for (sum, c) in counts.iter_mut().zip(g.counts.iter()) {
                    *sum += c.load(Relaxed);
                }
            }
        }
        let total: u64 = counts.iter().sum();
        if total < min_samples.max(1) {
            return None;
        }
        let rank = (q.clamp(0.0, 1.0) * total as f64).ceil().max(1.0) as u64;
        let mut seen = 0;
        for (i, c) in counts.iter().enumerate() {
            seen += c;
            if seen >= rank {
                return Some(upper_bound(i));
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_within_a_quarter_octave() {
        for v in [1u64, 3, 7, 100, 1_000, 123_456, 9_999_999] {
            let b = bucket_of(v);
            assert!(upper_bound(b) >= v, "{v}");
            assert!(b == 0 || upper_bound(b - 1) < v, "{v}");
            assert!(
                (upper_bound(b) as f64) <= v as f64 * 1.26 + 1.0,
                "{v} -> {}",
                upper_bound(b)
            );
        }
    }

    #[test]
    fn quantiles_follow_recent_samples() {
        let h = TtfbHistogram::default();
        assert_eq!(h.quantile(0.5, 0, 1), None);
        for i in 0..100u64 {
            h.record(1_000 * (i + 1), 1_000);
        }
        let p50 = h.quantile(0.5, 1_000, 10).unwrap();
        let p95 = h.quantile(0.95, 1_000, 10).unwrap();
        assert!((45_000..=63_000).contains(&p50), "{p50}");
        assert!((90_000..=120_000).contains(&p95), "{p95}");
        assert_eq!(h.quantile(0.5, 1_000, 1_000), None, "not enough samples");
        // Two generations later the old samples are gone.
        h.record(500, 70_000);
        assert!(h.quantile(0.99, 70_000, 1).unwrap() < 1_000);
    }

    #[test]
    fn peak_ewma_jumps_up_and_decays_down() {
        let e = PeakEwma::default();
        e.observe(1_000, 0);
        e.observe(50_000, 10);
        assert_eq!(e.micros(), 50_000.0, "peaks are taken at once");
        e.observe(1_000, 10_010);
        let after_tau = e.micros();
        assert!(
            after_tau < 50_000.0 * 0.4 && after_tau > 1_000.0,
            "{after_tau}"
        );
        assert!(e.cost(3) > e.cost(0));
    }
}
