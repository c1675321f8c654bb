//! A lock-free circuit breaker.
//!
//! Closed → Open after `consecutive_failures` failures in a row, or when the
//! sliding window (10 buckets over `window_ms`) has at least `min_calls`
//! calls of which at least `error_ratio` failed. Open → Half-open once the
//! open period ends; one probe is let through. Its success closes the
//! breaker; its failure re-opens it for twice as long (up to `max_open_ms`).
//!
//! The window's bucket rotation is racy by design: a count may land in a
//! bucket just before another thread resets it. The error is at most the
//! calls of one instant; no lock is worth that.

use policy::ArchivedBreaker;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicU8, Ordering::*};

const BUCKETS: usize = 10;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BreakerState {
    Closed = 0,
    Open = 1,
    HalfOpen = 2,
}

/// The settings, copied out of the archived policy.
#[derive(Debug, Clone, Copy)]
pub struct BreakerConfig {
    pub consecutive_failures: u32,
    pub error_ratio_milli: u32,
    pub min_calls: u32,
    pub window_ms: u64,
    pub open_ms: u64,
    pub max_open_ms: u64,
}

impl From<&ArchivedBreaker> for BreakerConfig {
    fn from(b: &ArchivedBreaker) -> Self {
        BreakerConfig {
            consecutive_failures: b.consecutive_failures.to_native(),
            error_ratio_milli: b.error_ratio_milli.to_native(),
            min_calls: b.min_calls.to_native(),
            window_ms: b.window_ms.to_native(),
            open_ms: b.open_ms.to_native(),
            max_open_ms: b.max_open_ms.to_native(),
        }
    }
}

#[derive(Default)]
struct Bucket {
    epoch: AtomicU64,
    ok: AtomicU32,
    failed: AtomicU32,
}

#[derive(Default)]
pub struct CircuitBreaker {
    state: AtomicU8,
    consecutive: AtomicU32,
    open_until: AtomicU64,
    reopened: AtomicU32,
    probing: AtomicBool,
    window: [Bucket; BUCKETS],
    opens_total: AtomicU64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    Allowed,
    /// The single half-open trial call; its outcome decides the state.
    Probe,
    Rejected,
}

impl CircuitBreaker {
    pub fn state(&self) -> BreakerState {
        match self.state.load(Acquire) {
            1 => BreakerState::Open,
            2 => BreakerState::HalfOpen,
            _ => BreakerState::Closed,
        }
    }

    /// How many times this breaker has opened.
    pub fn opens_total(&self) -> u64 {
        self.opens_total.load(Relaxed)
    }

    pub fn admit(&self, now: u64) -> Admission {
        match self.state() {
            BreakerState::Closed => Admission::Allowed,
            BreakerState::Open => {
                if now < self.open_until.load(Acquire) {
                    return Admission::Rejected;
                }
                // Whoever moves it to half-open, anyone may take the probe.
                let _ = self.state.compare_exchange(1, 2, AcqRel, Acquire);
                self.try_probe()
            }
            BreakerState::HalfOpen => self.try_probe(),
        }
    }

    fn try_probe(&self) -> Admission {
        if self
            .probing
            .compare_exchange(false, true, AcqRel, Acquire)
            .is_ok()
        {
            Admission::Probe
        } else {
            Admission::Rejected
        }
    }

    /// A probe that ended without an outcome (cancelled): let another try.
    pub fn release_probe(&self) {
        self.probing.store(false, Release);
    }

    pub fn on_success(&self, cfg: &BreakerConfig, now: u64, admission: Admission) {
        self.consecutive.store(0, Relaxed);
        self.bucket(cfg, now).ok.fetch_add(1, Relaxed);
        if admission == Admission::Probe {
            self.reopened.store(0, Relaxed);
            self.clear_window();
            self.state.store(BreakerState::Closed as u8, Release);
            self.probing.store(false, Release);
        }
    }

    pub fn on_failure(&self, cfg: &BreakerConfig, now: u64, admission: Admission) {
        let consecutive = self.consecutive.fetch_add(1, Relaxed) + 1;
        self.bucket(cfg, now).failed.fetch_add(1, Relaxed);
        if admission == Admission::Probe {
            let n = self.reopened.fetch_add(1, Relaxed) + 1;
            self.open(cfg, now, n);
            self.probing.store(false, Release);
            return;
        }
        if self.state() != BreakerState::Closed {
            return;
        }
        let tripped = consecutive >= cfg.consecutive_failures || self.window_tripped(cfg, now);
        if tripped && self.state.compare_exchange(0, 1, AcqRel, Acquire).is_ok() {
            self.open(cfg, now, 0);
        }
    }

    fn open(&self, cfg: &BreakerConfig, now: u64, reopened: u32) {
        let period = cfg
            .open_ms
            .saturating_mul(1u64 << reopened.min(20))
            .min(cfg.max_open_ms);
        self.open_until.store(now + period, Release);
        self.consecutive.store(0, Relaxed);
        self.state.store(BreakerState::Open as u8, Release);
        self.opens_total.fetch_add(1, Relaxed);
    }

    fn bucket_ms(cfg: &BreakerConfig) -> u64 {
        (cfg.window_ms / BUCKETS as u64).max(1)
    }

    fn bucket(&self, cfg: &BreakerConfig, now: u64) -> &Bucket {
        let epoch = now / Self::bucket_ms(cfg) + 1;
        let b = &self.window[(epoch % BUCKETS as u64) as usize];
        let seen = b.epoch.load(Acquire);
        if seen != epoch
            && b.epoch
                .compare_exchange(seen, epoch, AcqRel, Acquire)
                .is_ok()
        {
            b.ok.store(0, Relaxed);
            b.failed.store(0, Relaxed);
        }
        b
    }

    fn window_tripped(&self, cfg: &BreakerConfig, now: u64) -> bool {
        let current = now / Self::bucket_ms(cfg) + 1;
        let (mut ok, mut failed) = (0u64, 0u64);
        for b in &self.window {
            let e = b.epoch.load(Acquire);
            if e + (BUCKETS as u64) > current && e <= current {
                ok += b.ok.load(Relaxed) as u64;
                failed += b.failed.load(Relaxed) as u64;
            }
        }
        let calls = ok + failed;
        calls >= cfg.min_calls.max(1) as u64
            && failed * 1000 >= calls * cfg.error_ratio_milli as u64
    }

    fn clear_window(&self) {
        for b in &self.window {
            b.ok.store(0, Relaxed);
            b.failed.store(0, Relaxed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> BreakerConfig {
        BreakerConfig {
            consecutive_failures: 3,
            error_ratio_milli: 500,
            min_calls: 10,
            window_ms: 1000,
            open_ms: 100,
            max_open_ms: 350,
        }
    }

    #[test]
    fn opens_after_consecutive_failures_and_recovers_through_a_probe() {
        let (b, c) = (CircuitBreaker::default(), cfg());
        for t in 0..2 {
            assert_eq!(b.admit(t), Admission::Allowed);
            b.on_failure(&c, t, Admission::Allowed);
        }
        b.on_success(&c, 2, Admission::Allowed);
        for t in 3..6 {
            b.on_failure(&c, t, Admission::Allowed);
        }
        assert_eq!(b.state(), BreakerState::Open);
        assert_eq!(b.admit(50), Admission::Rejected);
        // Open period over: exactly one probe.
        assert_eq!(b.admit(106), Admission::Probe);
        assert_eq!(b.state(), BreakerState::HalfOpen);
        assert_eq!(b.admit(107), Admission::Rejected);
        b.on_success(&c, 108, Admission::Probe);
        assert_eq!(b.state(), BreakerState::Closed);
        assert_eq!(b.admit(109), Admission::Allowed);
        assert_eq!(b.opens_total(), 1);
    }

    #[test]
    fn failed_probes_back_off_exponentially_up_to_the_cap() {
        let (b, c) = (CircuitBreaker::default(), cfg());
        for t in 0..3 {
            b.on_failure(&c, t, Admission::Allowed);
        }
        // open 100 → probe fails → 200 → 350 (capped)
        let mut t = 2;
        for period in [100, 200, 350, 350] {
            assert_eq!(
                b.admit(t + period - 1),
                Admission::Rejected,
                "before {period}"
            );
            t += period;
            assert_eq!(b.admit(t), Admission::Probe);
            b.on_failure(&c, t, Admission::Probe);
        }
        assert_eq!(b.state(), BreakerState::Open);
    }

    #[test]
    fn abandoned_probe_lets_another_request_probe() {
        let (b, c) = (CircuitBreaker::default(), cfg());
        for t in 0..3 {
            b.on_failure(&c, t, Admission::Allowed);
        }
        assert_eq!(b.admit(200), Admission::Probe);
        assert_eq!(b.admit(201), Admission::Rejected);
        b.release_probe();
        assert_eq!(b.admit(202), Admission::Probe);
    }

    #[test]
    fn opens_on_error_ratio_over_the_window_only() {
        let (b, c) = (CircuitBreaker::default(), cfg());
        // Alternate: never 3 failures in a row, but 50% errors.
        for i in 0..9u64 {
            if i % 2 == 0 {
                b.on_failure(&c, i * 10, Admission::Allowed)
            } else {
                b.on_success(&c, i * 10, Admission::Allowed)
            }
        }
        assert_eq!(b.state(), BreakerState::Closed, "9 calls < min_calls");
        b.on_failure(&c, 95, Admission::Allowed);
        assert_eq!(b.state(), BreakerState::Open, "10 calls, 6 failed");

        // Old failures slide out of the window: counted, these 4 + 2 of 11
        // calls would trip it; alone the recent 3 calls are too few.
        let b = CircuitBreaker::default();
        for i in 0..4u64 {
            b.on_failure(&c, i * 100, Admission::Allowed);
            b.on_success(&c, i * 100 + 1, Admission::Allowed);
        }
        b.on_failure(&c, 5000, Admission::Allowed);
        b.on_success(&c, 5001, Admission::Allowed);
        b.on_failure(&c, 5002, Admission::Allowed);
        assert_eq!(b.state(), BreakerState::Closed);
    }

    #[test]
    fn concurrent_use_is_consistent() {
        let b = std::sync::Arc::new(CircuitBreaker::default());
        let c = BreakerConfig {
            consecutive_failures: 1_000_000,
            ..cfg()
        };
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let b = b.clone();
                std::thread::spawn(move || {
                    for i in 0..10_000u64 {
                        b.on_success(&c, i / 100, Admission::Allowed);
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(b.state(), BreakerState::Closed);
    }
}
