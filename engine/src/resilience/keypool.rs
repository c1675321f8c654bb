//! Choosing an upstream key: lock-free round-robin within the first tier
//! that has a usable key, skipping keys that are cooling down after a 429,
//! refused (401/403), at their concurrency cap, open-circuited, or already
//! tried by this request. Later tiers are used only when the policy allows
//! cross-tier failover.

use super::breaker::{Admission, BreakerConfig};
use super::health::{HealthRegistry, KeyHealth};
use policy::ArchivedProvider;
use std::sync::atomic::{AtomicUsize, Ordering::*};
use std::sync::Arc;

struct Tier {
    start: usize,
    len: usize,
    cursor: AtomicUsize,
}

pub struct KeyPool {
    keys: Vec<Arc<KeyHealth>>,
    caps: Vec<u32>,
    tiers: Vec<Tier>,
    cross_tier: bool,
    pub breaker: BreakerConfig,
}

/// Why no key could be had.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoKey {
    /// The provider has no keys at all.
    Empty,
    /// Every candidate is cooling down; the earliest is free at this time.
    CoolingDown { until_ms: u64 },
    /// Refused, open-circuited, at capacity or already tried.
    Unavailable,
}

/// A key in use. Dropping it releases its concurrency slot, and a probe
/// that never reported back, so a cancelled request leaks nothing.
pub struct KeyLease {
    pub index: usize,
    pub key: Arc<KeyHealth>,
    pub admission: Admission,
    reported: bool,
}

impl KeyLease {
    pub fn succeeded(&mut self, cfg: &BreakerConfig, now: u64) {
        self.key.breaker.on_success(cfg, now, self.admission);
        self.reported = true;
    }

    pub fn failed(&mut self, cfg: &BreakerConfig, now: u64) {
        self.key.breaker.on_failure(cfg, now, self.admission);
        self.reported = true;
    }
}

impl Drop for KeyLease {
    fn drop(&mut self) {
        self.key.in_flight.fetch_sub(1, AcqRel);
        if !self.reported && self.admission == Admission::Probe {
            self.key.breaker.release_probe();
        }
    }
}

impl KeyPool {
    pub fn build(provider: &ArchivedProvider, registry: &HealthRegistry) -> KeyPool {
        let keys: Vec<Arc<KeyHealth>> = provider
            .keys
            .iter()
            .map(|k| registry.key(provider.name.as_str(), k.name.as_str(), k.secret.as_str()))
            .collect();
        let caps = provider
            .keys
            .iter()
            .map(|k| k.max_concurrency.to_native())
            .collect();
        let mut tiers: Vec<Tier> = Vec::new();
        for (i, k) in provider.keys.iter().enumerate() {
            let same = i > 0 && provider.keys[i - 1].tier == k.tier;
            match tiers.last_mut() {
                Some(t) if same => t.len += 1,
                _ => tiers.push(Tier {
                    start: i,
                    len: 1,
                    cursor: AtomicUsize::new(0),
                }),
            }
        }
        KeyPool {
            keys,
            caps,
            tiers,
            cross_tier: provider.cross_tier_failover,
            breaker: BreakerConfig::from(&provider.breaker),
        }
    }

    pub fn keys(&self) -> &[Arc<KeyHealth>] {
        &self.keys
    }

    pub fn acquire(&self, now: u64, tried: &[usize]) -> Result<KeyLease, NoKey> {
        if self.keys.is_empty() {
            return Err(NoKey::Empty);
        }
        let mut earliest_cool: Option<u64> = None;
        let mut only_cooling = true;
        let tiers = if self.cross_tier {
            &self.tiers[..]
        } else {
            &self.tiers[..1]
        };
        for tier in tiers {
            let offset = tier.cursor.fetch_add(1, Relaxed);
            for step in 0..tier.len {
                let index = tier.start + (offset + step) % tier.len;
                if tried.contains(&index) {
                    only_cooling = false;
                    continue;
                }
                let key = &self.keys[index];
                if key.is_rejected(now) {
                    only_cooling = false;
                    continue;
                }
                if let Some(until) = key.cooling_until(now) {
                    earliest_cool = Some(earliest_cool.map_or(until, |e| e.min(until)));
                    continue;
                }
                let cap = self.caps[index];
                let reserved = key
                    .in_flight
                    .fetch_update(AcqRel, Acquire, |n| (cap == 0 || n < cap).then_some(n + 1))
                    .is_ok();
                if !reserved {
                    only_cooling = false;
                    continue;
                }
                match key.breaker.admit(now) {
                    Admission::Rejected => {
                        key.in_flight.fetch_sub(1, AcqRel);
                        only_cooling = false;
                    }
                    admission => {
                        return Ok(KeyLease {
                            index,
                            key: key.clone(),
                            admission,
                            reported: false,
                        });
                    }
                }
            }
        }
        match earliest_cool {
            Some(until_ms) if only_cooling => Err(NoKey::CoolingDown { until_ms }),
            _ => Err(NoKey::Unavailable),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use policy::{compile_yaml, snapshot, Snapshot};

    fn pool(keys: &str, cross_tier: bool) -> (KeyPool, HealthRegistry) {
        let src = format!("version: 1\nproviders:\n  p:\n    kind: openai\n    base_url: http://127.0.0.1:1/v1\n    cross_tier_failover: {cross_tier}\n    breaker: {{consecutive_failures: 2}}\n    keys: {keys}\n");
        let c = compile_yaml(&src, "t.yaml", &std::collections::HashMap::new()).unwrap();
        let snap = Snapshot::from_bytes(&snapshot::encode(&c.policy, 0).unwrap()).unwrap();
        let reg = HealthRegistry::default();
        let pool = KeyPool::build(&snap.policy().providers[0], &reg);
        (pool, reg)
    }

    fn names(pool: &KeyPool, n: usize) -> Vec<String> {
        (0..n)
            .map(|_| pool.keys[pool.acquire(0, &[]).unwrap().index].name.clone())
            .collect()
    }

    const KEYS: &str = "[{key: a, name: a}, {key: b, name: b}, {key: c, name: c, tier: 1}]";

    #[test]
    fn round_robin_within_the_first_tier() {
        let (p, _) = pool(KEYS, true);
        assert_eq!(names(&p, 4), ["a", "b", "a", "b"]);
    }

    #[test]
    fn cooling_rejected_and_tried_keys_are_skipped_then_the_next_tier_serves() {
        let (p, _) = pool(KEYS, true);
        p.keys[0].cool_down_until(1_000);
        assert_eq!(names(&p, 2), ["b", "b"]);
        p.keys[1].reject(0);
        assert_eq!(names(&p, 1), ["c"], "tier 0 exhausted: cross-tier failover");
        assert_eq!(p.acquire(2_000, &[]).unwrap().index, 0, "cool-down over");
        assert_eq!(p.acquire(0, &[2]).err(), Some(NoKey::Unavailable));
    }

    #[test]
    fn without_cross_tier_failover_cooling_is_reported_with_its_end() {
        let (p, _) = pool(KEYS, false);
        p.keys[0].cool_down_until(700);
        p.keys[1].cool_down_until(500);
        assert_eq!(
            p.acquire(0, &[]).err(),
            Some(NoKey::CoolingDown { until_ms: 500 })
        );
    }

    #[test]
    fn concurrency_caps_hold_and_leases_release_on_drop() {
        let (p, _) = pool("[{key: a, max_concurrency: 2}]", true);
        let l1 = p.acquire(0, &[]).unwrap();
        let _l2 = p.acquire(0, &[]).unwrap();
        assert_eq!(p.acquire(0, &[]).err(), Some(NoKey::Unavailable));
        drop(l1);
        assert!(p.acquire(0, &[]).is_ok());
    }

    #[test]
    fn open_breakers_take_keys_out_until_a_probe_succeeds() {
        let (p, _) = pool("[{key: a, name: a}, {key: b, name: b}]", true);
        for _ in 0..2 {
            let mut l = p.acquire(0, &[1]).unwrap();
            l.failed(&p.breaker, 0);
        }
        assert_eq!(names(&p, 3), ["b", "b", "b"]);
        // After the open period (1 s default) one probe goes to `a`.
        let mut probe = p.acquire(1_500, &[1]).unwrap();
        assert_eq!(probe.admission, Admission::Probe);
        probe.succeeded(&p.breaker, 1_500);
        drop(probe);
        assert_eq!(
            p.acquire(1_600, &[1]).unwrap().admission,
            Admission::Allowed
        );
    }

    #[test]
    fn health_survives_rebuilds() {
        let (p, reg) = pool(KEYS, true);
        p.keys[0].cool_down_until(9_999);
        let (fresh, _) = pool(KEYS, true);
        assert!(fresh.keys[0].cooling_until(0).is_none(), "another registry");
        let again = KeyPool {
            keys: vec![reg.key("p", "a", "a")],
            caps: vec![0],
            tiers: vec![Tier {
                start: 0,
                len: 1,
                cursor: AtomicUsize::new(0),
            }],
            cross_tier: true,
            breaker: p.breaker,
        };
        assert_eq!(again.keys[0].cooling_until(0), Some(9_999));
    }
}
