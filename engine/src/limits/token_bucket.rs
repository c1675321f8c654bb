//! A token bucket as one atomic: the generic cell rate algorithm (GCRA).
//!
//! The bucket holds `per_minute` tokens and refills at `per_minute` a
//! minute. Its whole state is the "theoretical arrival time" (TAT): the
//! instant at which the bucket would be full again. Taking `n` tokens moves
//! the TAT forward by `n` emission intervals; the take is refused when that
//! would put the TAT more than a full bucket ahead of now. One
//! compare-and-swap per take makes it exact across threads: the tokens
//! admitted in any window never exceed what the bucket allows.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

const MINUTE_NS: u64 = 60_000_000_000;

/// Monotonic nanoseconds. The clock starts an hour in, so that usage
/// replayed from the ledger (at most a minute old) never goes below zero.
pub fn mono_ns() -> u64 {
    static START: OnceLock<Instant> = OnceLock::new();
    let start = *START.get_or_init(Instant::now);
    3_600_000_000_000 + start.elapsed().as_nanos() as u64
}

#[derive(Debug, Default)]
pub struct TokenBucket {
    tat: AtomicU64,
}

/// Why a take was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Wait this long, then the take fits.
    Wait(Duration),
    /// More tokens than the bucket holds when full: it never fits.
    TooLarge,
}

/// The bucket after a take: for `x-ratelimit-remaining-*` and `-reset-*`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Level {
    pub remaining: u64,
    /// Until the bucket is full again.
    pub reset: Duration,
}

fn interval(per_minute: u64) -> u64 {
    (MINUTE_NS / per_minute.max(1)).max(1)
}

impl TokenBucket {
    pub fn try_take(&self, now: u64, n: u64, per_minute: u64) -> Result<Level, Refusal> {
        if n > per_minute {
            return Err(Refusal::TooLarge);
        }
        let t = interval(per_minute);
        let capacity = per_minute * t;
        let mut tat = self.tat.load(Ordering::Acquire);
        loop {
            let next = tat.max(now).saturating_add(n * t);
            let ahead = next - now;
            if ahead > capacity {
                return Err(Refusal::Wait(Duration::from_nanos(ahead - capacity)));
            }
            match self
                .tat
                .compare_exchange_weak(tat, next, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => {
                    return Ok(Level {
                        remaining: (capacity - ahead) / t,
                        reset: Duration::from_nanos(ahead),
                    })
                }
                Err(actual) => tat = actual,
            }
        }
    }

    /// Tokens used beyond what was taken (actual usage over the estimate):
    /// always charged, even past the limit; later takes wait for it.
    pub fn charge(&self, now: u64, n: u64, per_minute: u64) {
        let t = interval(per_minute);
        let _ = self
            .tat
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |tat| {
                Some(tat.max(now).saturating_add(n.saturating_mul(t)))
            });
    }

    /// Give back tokens taken but not used. A bucket never holds more than
    /// it is full: a TAT before now already reads as full.
    pub fn refund(&self, n: u64, per_minute: u64) {
        let t = interval(per_minute);
        let _ = self
            .tat
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |tat| {
                Some(tat.saturating_sub(n.saturating_mul(t)))
            });
    }

    /// Tokens available now, without taking any.
    pub fn level(&self, now: u64, per_minute: u64) -> Level {
        let t = interval(per_minute);
        let capacity = per_minute * t;
        let ahead = self.tat.load(Ordering::Acquire).saturating_sub(now);
        Level {
            remaining: capacity.saturating_sub(ahead) / t,
            reset: Duration::from_nanos(ahead),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: u64 = 1_000_000_000;

    #[test]
    fn a_full_bucket_admits_its_size_then_refills_at_the_rate() {
        let b = TokenBucket::default();
        let now = mono_ns();
        for i in 0..60 {
            let level = b.try_take(now, 1, 60).unwrap();
            assert_eq!(level.remaining, 59 - i);
        }
        match b.try_take(now, 1, 60) {
            Err(Refusal::Wait(d)) => assert_eq!(d, Duration::from_secs(1)),
            other => panic!("{other:?}"),
        }
        // One second later exactly one more token is there.
        assert!(b.try_take(now + S, 1, 60).is_ok());
        assert!(b.try_take(now + S, 1, 60).is_err());
        assert_eq!(b.level(now + 61 * S, 60).remaining, 60);
    }

    #[test]
    fn oversized_takes_never_fit_and_refunds_do_not_overfill() {
        let b = TokenBucket::default();
        let now = mono_ns();
        assert_eq!(b.try_take(now, 101, 100), Err(Refusal::TooLarge));
        b.try_take(now, 100, 100).unwrap();
        b.refund(40, 100);
        assert_eq!(b.level(now, 100).remaining, 40);
        b.refund(1000, 100);
        assert_eq!(b.level(now, 100).remaining, 100);
        assert!(b.try_take(now, 101, 100).is_err());
        b.try_take(now, 100, 100).unwrap();
        b.charge(now, 50, 100);
        match b.try_take(now, 1, 100) {
            Err(Refusal::Wait(d)) => assert_eq!(d.as_secs(), 30),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_provider_reporting_absurd_usage_fills_the_bucket_without_wrapping() {
        let b = TokenBucket::default();
        let now = mono_ns();
        b.charge(now, u64::MAX, 100);
        assert!(matches!(b.try_take(now, 1, 100), Err(Refusal::Wait(_))));
        b.charge(now, u64::MAX, 100);
        assert_eq!(b.level(now, 100).remaining, 0);
        b.refund(u64::MAX, 100);
        assert_eq!(b.level(now, 100).remaining, 100);
    }

    #[test]
    fn exact_under_contention() {
        let b = std::sync::Arc::new(TokenBucket::default());
        let now = mono_ns();
        let admitted: u64 = std::thread::scope(|s| {
            let handles: Vec<_> = (0..8)
                .map(|_| {
                    let b = b.clone();
                    s.spawn(move || {
                        (0..10_000)
                            .filter(|_| b.try_take(now, 1, 5000).is_ok())
                            .count() as u64
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).sum()
        });
        assert_eq!(admitted, 5000);
    }
}
