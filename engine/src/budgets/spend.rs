//! Spend in one budget period, as one atomic word: the low 56 bits are the
//! amount committed (settled spend plus open reservations, in nano-units),
//! the high 8 bits tag the period it belongs to. A reservation, a
//! settlement and the roll to a new period are each one compare-and-swap,
//! so concurrent requests can never both take the last of a budget.

use std::sync::atomic::{AtomicU64, Ordering};

const AMOUNT_BITS: u32 = 56;
const AMOUNT_MAX: u64 = (1 << AMOUNT_BITS) - 1;

#[derive(Debug, Default)]
pub struct SpendCounter {
    word: AtomicU64,
}

fn unpack(word: u64) -> (u8, u64) {
    ((word >> AMOUNT_BITS) as u8, word & AMOUNT_MAX)
}

fn pack(tag: u8, amount: u64) -> u64 {
    (u64::from(tag) << AMOUNT_BITS) | amount.min(AMOUNT_MAX)
}

impl SpendCounter {
    /// Reserve `cost` within `cap` in period `tag`; a counter still on an
    /// older period starts from zero. Err: what is already committed.
    pub fn reserve(&self, tag: u8, cost: u64, cap: u64) -> Result<(), u64> {
        let mut committed = 0;
        self.word
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |w| {
                let (t, a) = unpack(w);
                let a = if t == tag { a } else { 0 };
                committed = a;
                // A spent budget stays spent, even for a free request.
                if a.saturating_add(cost) > cap || (a >= cap && cap > 0) || cap == 0 {
                    None
                } else {
                    Some(pack(tag, a + cost))
                }
            })
            .map(|_| ())
            .map_err(|_| committed)
    }

    /// Replace a reservation by the actual cost. A reservation from a
    /// period that has since ended is dropped: that spend belongs to the
    /// old period (the ledger has it), not the new one.
    pub fn settle(&self, tag: u8, reserved: u64, actual: u64) {
        let _ = self
            .word
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |w| {
                let (t, a) = unpack(w);
                (t == tag).then(|| pack(tag, a.saturating_sub(reserved).saturating_add(actual)))
            });
    }

    /// Add spend already made (start-up, from the ledger).
    pub fn seed(&self, tag: u8, amount: u64) {
        let _ = self
            .word
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |w| {
                let (t, a) = unpack(w);
                let a = if t == tag { a } else { 0 };
                Some(pack(tag, a.saturating_add(amount)))
            });
    }

    /// Committed in period `tag`.
    pub fn committed(&self, tag: u8) -> u64 {
        let (t, a) = unpack(self.word.load(Ordering::Acquire));
        if t == tag {
            a
        } else {
            0
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reservations_never_pass_the_cap_and_settle_to_actual() {
        let c = SpendCounter::default();
        c.reserve(1, 60, 100).unwrap();
        assert_eq!(c.reserve(1, 50, 100), Err(60));
        c.settle(1, 60, 20);
        assert_eq!(c.committed(1), 20);
        c.reserve(1, 80, 100).unwrap();
        assert_eq!(c.reserve(1, 0, 100), Err(100), "spent is spent");
        // A new period starts from zero; a late settlement of the old one
        // does not leak into it.
        c.reserve(2, 10, 100).unwrap();
        c.settle(1, 80, 80);
        assert_eq!(c.committed(2), 10);
        assert_eq!(c.reserve(2, 1, 0), Err(10), "a zero budget admits nothing");
    }

    #[test]
    fn exact_under_contention() {
        let c = std::sync::Arc::new(SpendCounter::default());
        let admitted: u64 = std::thread::scope(|s| {
            let hs: Vec<_> = (0..8)
                .map(|_| {
                    let c = c.clone();
                    s.spawn(move || {
                        (0..5_000)
                            .filter(|_| c.reserve(7, 3, 10_000).is_ok())
                            .count() as u64
                    })
                })
                .collect();
            hs.into_iter().map(|h| h.join().unwrap()).sum()
        });
        assert_eq!(admitted, 3_333);
        assert_eq!(c.committed(7), 9_999);
    }
}
