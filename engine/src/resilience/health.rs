//! Health state that must survive policy reloads (a reload must not forget
//! that a key is rate limited or a provider is down). Entries are keyed by
//! identity: a key by provider, name and a hash of its secret (a rotated
//! secret starts fresh), a target by provider and model.

use super::breaker::CircuitBreaker;
use super::budget::{BudgetConfig, RetryBudget};
use super::latency::{PeakEwma, TtfbHistogram};
use dashmap::DashMap;
use std::collections::HashSet;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering::*};
use std::sync::Arc;

/// A key the provider refused (401/403) stays out of rotation this long; a
/// fixed secret arrives with a policy reload, which starts it fresh.
pub const REJECTED_KEY_PAUSE_MS: u64 = 5 * 60 * 1000;

/// Where cool-downs and refusals go besides this replica: the cluster,
/// which tells the others (None on a single node).
pub trait KeyHealthSink: Send + Sync {
    /// The provider asked to leave key `id` alone for `pause_ms`.
    fn cooled(&self, id: &str, pause_ms: u64);
    /// The provider refused key `id`.
    fn rejected(&self, id: &str);
}

pub struct KeyHealth {
    /// Provider, name and a fingerprint of the secret: the same on every
    /// replica with the same policy, and no secret.
    pub id: String,
    pub provider: String,
    pub name: String,
    pub breaker: CircuitBreaker,
    cooling_until_ms: AtomicU64,
    rejected_until_ms: AtomicU64,
    pub in_flight: AtomicU32,
    pub cooldowns_total: AtomicU64,
    pub rejections_total: AtomicU64,
}

impl KeyHealth {
    fn new(id: String, provider: &str, name: &str) -> Self {
        KeyHealth {
            id,
            provider: provider.to_string(),
            name: name.to_string(),
            breaker: CircuitBreaker::default(),
            cooling_until_ms: AtomicU64::new(0),
            rejected_until_ms: AtomicU64::new(0),
            in_flight: AtomicU32::new(0),
            cooldowns_total: AtomicU64::new(0),
            rejections_total: AtomicU64::new(0),
        }
    }

    pub fn cool_down_until(&self, until_ms: u64) {
        self.cooling_until_ms.fetch_max(until_ms, AcqRel);
        self.cooldowns_total.fetch_add(1, Relaxed);
    }

    pub fn cooling_until(&self, now_ms: u64) -> Option<u64> {
        let until = self.cooling_until_ms.load(Acquire);
        (until > now_ms).then_some(until)
    }

    pub fn reject(&self, now_ms: u64) {
        self.rejected_until_ms
            .fetch_max(now_ms + REJECTED_KEY_PAUSE_MS, AcqRel);
        self.rejections_total.fetch_add(1, Relaxed);
    }

    pub fn is_rejected(&self, now_ms: u64) -> bool {
        self.rejected_until_ms.load(Acquire) > now_ms
    }

    /// What another replica saw: the same pause, not counted as this
    /// replica's own.
    pub fn hold_cooling_until(&self, until_ms: u64) {
        self.cooling_until_ms.fetch_max(until_ms, AcqRel);
    }

    pub fn hold_rejected_until(&self, until_ms: u64) {
        self.rejected_until_ms.fetch_max(until_ms, AcqRel);
    }
}

pub struct TargetHealth {
    pub provider: String,
    pub model: String,
    pub breaker: CircuitBreaker,
    pub latency: PeakEwma,
    pub ttfb: TtfbHistogram,
    pub in_flight: AtomicU32,
}

/// Process-wide health, plus the retry budget and resilience counters.
pub struct HealthRegistry {
    keys: DashMap<String, Arc<KeyHealth>>,
    targets: DashMap<String, Arc<TargetHealth>>,
    pub budget: RetryBudget,
    pub retries_total: AtomicU64,
    pub hedges_total: AtomicU64,
    pub hedge_wins_total: AtomicU64,
    sink: std::sync::OnceLock<Arc<dyn KeyHealthSink>>,
}

impl Default for HealthRegistry {
    fn default() -> Self {
        HealthRegistry::new(&BudgetConfig {
            ratio_milli: 0,
            min_per_second: 0,
        })
    }
}

impl HealthRegistry {
    pub fn new(budget: &BudgetConfig) -> Self {
        HealthRegistry {
            keys: DashMap::new(),
            targets: DashMap::new(),
            budget: RetryBudget::new(budget, super::now_ms()),
            retries_total: AtomicU64::new(0),
            hedges_total: AtomicU64::new(0),
            hedge_wins_total: AtomicU64::new(0),
            sink: std::sync::OnceLock::new(),
        }
    }

    /// Tell `sink` about every cool-down and refusal from now on.
    pub fn share_with(&self, sink: Arc<dyn KeyHealthSink>) {
        let _ = self.sink.set(sink);
    }

    /// A 429 on `key`: out of rotation for `pause_ms`, here and (in a
    /// cluster) on every replica.
    pub fn cool_down(&self, key: &KeyHealth, now_ms: u64, pause_ms: u64) {
        key.cool_down_until(now_ms.saturating_add(pause_ms));
        if let Some(s) = self.sink.get() {
            s.cooled(&key.id, pause_ms);
        }
    }

    /// A 401/403 on `key`: out of rotation, here and on every replica.
    pub fn reject(&self, key: &KeyHealth, now_ms: u64) {
        key.reject(now_ms);
        if let Some(s) = self.sink.get() {
            s.rejected(&key.id);
        }
    }

    pub fn key_by_id(&self, id: &str) -> Option<Arc<KeyHealth>> {
        self.keys.get(id).map(|k| k.clone())
    }

    pub fn key(&self, provider: &str, name: &str, secret: &str) -> Arc<KeyHealth> {
        use sha2::Digest;
        let fingerprint = hex::encode(&sha2::Sha256::digest(secret.as_bytes())[..8]);
        let id = format!("{provider}\0{name}\0{fingerprint}");
        self.keys
            .entry(id.clone())
            .or_insert_with(|| Arc::new(KeyHealth::new(id, provider, name)))
            .clone()
    }

    pub fn target(&self, provider: &str, model: &str) -> Arc<TargetHealth> {
        let id = format!("{provider}\0{model}");
        self.targets
            .entry(id)
            .or_insert_with(|| {
                Arc::new(TargetHealth {
                    provider: provider.to_string(),
                    model: model.to_string(),
                    breaker: CircuitBreaker::default(),
                    latency: PeakEwma::default(),
                    ttfb: TtfbHistogram::default(),
                    in_flight: AtomicU32::new(0),
                })
            })
            .clone()
    }

    /// Forget entries the active policy no longer names (requests still
    /// holding them keep their `Arc`).
    pub fn retain(&self, keys: &HashSet<*const KeyHealth>, targets: &HashSet<*const TargetHealth>) {
        self.keys.retain(|_, k| keys.contains(&Arc::as_ptr(k)));
        self.targets
            .retain(|_, t| targets.contains(&Arc::as_ptr(t)));
    }

    pub fn for_each_key(&self, mut f: impl FnMut(&KeyHealth)) {
        for k in self.keys.iter() {
            f(k.value());
        }
    }

    pub fn for_each_target(&self, mut f: impl FnMut(&TargetHealth)) {
        for t in self.targets.iter() {
            f(t.value());
        }
    }
}
