//! Keeping provider trouble away from clients: each concern is its own
//! small unit, sans-IO (time is passed in), shared lock-free by all workers.
//!
//! - [`breaker`]: circuit breakers for keys and targets
//! - [`keypool`]: tiered, capped, round-robin key selection with cool-downs
//! - [`cooldown`]: how long a provider asked us to back off
//! - [`outcome`]: which attempt outcomes are retryable
//! - [`budget`]: the gateway-wide retry budget
//! - [`backoff`]: full-jitter exponential backoff
//! - [`latency`]: peak-EWMA and a percentile histogram per target
//! - [`balance`]: ordering equal-priority targets
//! - [`health`]: health state that outlives policy reloads
//! - [`report`]: all of it as Prometheus metrics

pub mod backoff;
pub mod balance;
pub mod breaker;
pub mod budget;
pub mod cooldown;
pub mod health;
pub mod keypool;
pub mod latency;
pub mod outcome;
pub mod report;

use std::sync::OnceLock;
use std::time::Instant;

/// Milliseconds on a monotonic clock (since first use).
pub fn now_ms() -> u64 {
    static START: OnceLock<Instant> = OnceLock::new();
    START.get_or_init(Instant::now).elapsed().as_millis() as u64
}
