//! The gateway-wide retry budget: retries (and hedges) may add at most
//! `ratio` of the original request rate, plus `min_per_second` so that a
//! quiet gateway can still retry. A token bucket in thousandths: every
//! original request deposits `ratio`, every retry withdraws one, time adds
//! the floor. The balance is capped at ten seconds' worth of floor plus
//! `ratio` × 100 requests, so a long quiet spell cannot bank a storm. A new
//! budget holds one second of floor, so the first failure can be retried.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering::*};

const ONE: i64 = 1000;

pub struct RetryBudget {
    balance: AtomicI64,
    last_refill_ms: AtomicU64,
    pub exhausted_total: AtomicU64,
}

#[derive(Debug, Clone, Copy)]
pub struct BudgetConfig {
    pub ratio_milli: u32,
    pub min_per_second: u32,
}

impl BudgetConfig {
    fn cap(&self) -> i64 {
        (self.min_per_second as i64 * 10 * ONE) + self.ratio_milli as i64 * 100
    }
}

impl RetryBudget {
    /// A budget at time `now_ms`, holding one second of its floor.
    pub fn new(cfg: &BudgetConfig, now_ms: u64) -> Self {
        RetryBudget {
            balance: AtomicI64::new((cfg.min_per_second as i64 * ONE).min(cfg.cap())),
            last_refill_ms: AtomicU64::new(now_ms),
            exhausted_total: AtomicU64::new(0),
        }
    }

    /// An original (first) attempt was made.
    pub fn deposit(&self, cfg: &BudgetConfig) {
        self.add(cfg.ratio_milli as i64, cfg.cap());
    }

    /// May one more attempt be made? Takes one retry from the budget if so.
    pub fn try_withdraw(&self, cfg: &BudgetConfig, now_ms: u64) -> bool {
        self.refill(cfg, now_ms);
        let taken = self
            .balance
            .fetch_update(AcqRel, Acquire, |b| (b >= ONE).then_some(b - ONE))
            .is_ok();
        if !taken {
            self.exhausted_total.fetch_add(1, Relaxed);
        }
        taken
    }

    fn refill(&self, cfg: &BudgetConfig, now_ms: u64) {
        let last = self.last_refill_ms.load(Acquire);
        if now_ms <= last || cfg.min_per_second == 0 {
            return;
        }
        if self
            .last_refill_ms
            .compare_exchange(last, now_ms, AcqRel, Acquire)
            .is_ok()
        {
            let earned = (now_ms - last) as i64 * cfg.min_per_second as i64;
            self.add(earned, cfg.cap());
        }
    }

    fn add(&self, amount: i64, cap: i64) {
        let _ = self
            .balance
            .fetch_update(AcqRel, Acquire, |b| Some((b + amount).min(cap)));
    }

    /// Whole retries available now, for metrics.
    pub fn available(&self) -> i64 {
        self.balance.load(Relaxed) / ONE
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_are_bounded_by_the_ratio_of_traffic() {
        let b = RetryBudget::new(
            &BudgetConfig {
                ratio_milli: 200,
                min_per_second: 0,
            },
            0,
        );
        let cfg = BudgetConfig {
            ratio_milli: 200,
            min_per_second: 0,
        };
        let mut retries = 0;
        for _ in 0..1000 {
            b.deposit(&cfg);
            // Every request fails and wants to retry, all at t = 0.
            while b.try_withdraw(&cfg, 0) {
                retries += 1;
            }
        }
        assert_eq!(retries, 200);
        assert!(b.exhausted_total.load(Relaxed) >= 800);
    }

    #[test]
    fn the_floor_refills_with_time_and_is_capped() {
        let cfg = BudgetConfig {
            ratio_milli: 0,
            min_per_second: 2,
        };
        let b = RetryBudget::new(&cfg, 0);
        assert!(
            b.try_withdraw(&cfg, 0) && b.try_withdraw(&cfg, 0),
            "one second of floor to start"
        );
        assert!(!b.try_withdraw(&cfg, 0));
        assert!(b.try_withdraw(&cfg, 500), "1 retry earned in 500 ms");
        assert!(!b.try_withdraw(&cfg, 500));
        // An hour of quiet banks at most 10 s of floor.
        let mut n = 0;
        while b.try_withdraw(&cfg, 3_600_000) {
            n += 1;
        }
        assert_eq!(n, 20);
    }

    #[test]
    fn concurrent_withdrawals_never_overdraw() {
        let cfg = BudgetConfig {
            ratio_milli: 1000,
            min_per_second: 0,
        };
        let b = std::sync::Arc::new(RetryBudget::new(&cfg, 0));
        for _ in 0..100 {
            b.deposit(&cfg);
        }
        let got: usize = (0..4)
            .map(|_| {
                let b = b.clone();
                std::thread::spawn(move || (0..1000).filter(|_| b.try_withdraw(&cfg, 0)).count())
            })
            .collect::<Vec<_>>()
            .into_iter()
            .map(|t| t.join().unwrap())
            .sum();
        assert_eq!(got, 100);
    }
}
