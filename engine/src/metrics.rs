//! Prometheus metrics, sharded per worker thread (see [`crate::shard`]).
//!
//! Series are keyed by a 64-bit hash of their labels so that recording is
//! allocation-free once a series exists; the labels themselves are stored
//! once, at first use. Rendering merges the shards.

use crate::shard::Sharded;
use dashmap::DashMap;
use std::fmt::Write;
use std::hash::{BuildHasher, Hash, Hasher};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

/// Upper bounds in seconds; the last bucket is +Inf.
const BUCKETS: [f64; 16] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
    120.0,
];

#[derive(Default)]
struct Histogram {
    buckets: [AtomicU64; BUCKETS.len() + 1],
    sum_micros: AtomicU64,
    count: AtomicU64,
}

impl Histogram {
    fn observe(&self, d: Duration) {
        let secs = d.as_secs_f64();
        let i = BUCKETS
            .iter()
            .position(|b| secs <= *b)
            .unwrap_or(BUCKETS.len());
        self.buckets[i].fetch_add(1, Relaxed);
        self.sum_micros.fetch_add(d.as_micros() as u64, Relaxed);
        self.count.fetch_add(1, Relaxed);
    }
}

struct Series<V> {
    labels: Vec<(&'static str, String)>,
    value: V,
}

#[derive(Default)]
struct Shard {
    requests: DashMap<u64, Series<AtomicU64>>,
    durations: DashMap<u64, Series<Histogram>>,
    attempts: DashMap<u64, Series<AtomicU64>>,
}

/// The gateway's metrics registry.
pub struct Metrics {
    shards: Sharded<Shard>,
    hasher: std::collections::hash_map::RandomState,
    pub reloads_ok: AtomicU64,
    pub reloads_failed: AtomicU64,
    pub in_flight: AtomicU64,
}

/// What one finished request reports.
pub struct RequestRecord<'a> {
    pub route: &'a str,
    pub model: &'a str,
    pub provider: &'a str,
    pub status: u16,
    pub duration: Duration,
}

impl Metrics {
    pub fn new(threads: usize) -> Self {
        Metrics {
            // One extra shard for threads outside the worker pool.
            shards: Sharded::new(threads + 1, Shard::default),
            hasher: Default::default(),
            reloads_ok: AtomicU64::new(0),
            reloads_failed: AtomicU64::new(0),
            in_flight: AtomicU64::new(0),
        }
    }

    fn key(&self, parts: &[&str], extra: u64) -> u64 {
        let mut h = self.hasher.build_hasher();
        parts.hash(&mut h);
        extra.hash(&mut h);
        h.finish()
    }

    pub fn record_request(&self, r: &RequestRecord<'_>) {
        let shard = self.shards.local();
        let labels = [
            ("route", r.route),
            ("model", r.model),
            ("provider", r.provider),
        ];
        let status = r.status.to_string();
        let with_status = [labels[0], labels[1], labels[2], ("status", status.as_str())];
        let k = self.key(&[r.route, r.model, r.provider], r.status as u64);
        with_series(&shard.requests, k, &with_status, |c| {
            c.fetch_add(1, Relaxed);
        });
        let k = self.key(&[r.route, r.model, r.provider], u64::MAX);
        with_series(&shard.durations, k, &labels, |h| h.observe(r.duration));
    }

    /// One upstream attempt and how it ended (`ok`, `http_5xx`, `connect_error`…).
    pub fn record_attempt(&self, provider: &str, outcome: &str) {
        let k = self.key(&[provider, outcome], 0);
        let labels = [("provider", provider), ("outcome", outcome)];
        with_series(&self.shards.local().attempts, k, &labels, |c| {
            c.fetch_add(1, Relaxed);
        });
    }

    /// Prometheus text exposition (format 0.0.4).
    pub fn render(
        &self,
        policy_hash: &str,
        health: &crate::resilience::health::HealthRegistry,
    ) -> String {
        let mut out = String::with_capacity(4096);
        counter_family(
            &mut out,
            "switchyard_requests_total",
            "Client requests by route, model, provider and status.",
            self.shards.iter().map(|s| &s.requests),
        );
        counter_family(
            &mut out,
            "switchyard_upstream_attempts_total",
            "Upstream attempts by provider and outcome.",
            self.shards.iter().map(|s| &s.attempts),
        );
        self.render_durations(&mut out);
        let _ = writeln!(out, "# HELP switchyard_in_flight_requests Requests being served now.\n# TYPE switchyard_in_flight_requests gauge\nswitchyard_in_flight_requests {}", self.in_flight.load(Relaxed));
        let _ = writeln!(out, "# HELP switchyard_policy_reloads_total Policy reloads by result.\n# TYPE switchyard_policy_reloads_total counter");
        let _ = writeln!(
            out,
            "switchyard_policy_reloads_total{{result=\"ok\"}} {}",
            self.reloads_ok.load(Relaxed)
        );
        let _ = writeln!(
            out,
            "switchyard_policy_reloads_total{{result=\"error\"}} {}",
            self.reloads_failed.load(Relaxed)
        );
        let _ = writeln!(out, "# HELP switchyard_policy_info The active policy's content hash.\n# TYPE switchyard_policy_info gauge\nswitchyard_policy_info{{hash=\"{policy_hash}\"}} 1");
        crate::resilience::report::render(&mut out, health);
        out
    }

    fn render_durations(&self, out: &mut String) {
        let name = "switchyard_request_duration_seconds";
        let _ = writeln!(out, "# HELP {name} Time from request start to the last response byte.\n# TYPE {name} histogram");
        let mut merged: std::collections::BTreeMap<String, ([u64; BUCKETS.len() + 1], u64, u64)> =
            Default::default();
        for shard in self.shards.iter() {
            for s in shard.durations.iter() {
                let e =
                    merged
                        .entry(label_text(&s.labels))
                        .or_insert(([0; BUCKETS.len() + 1], 0, 0));
                for (i, b) in s.value.buckets.iter().enumerate() {
                    e.0[i] += b.load(Relaxed);
                }
                e.1 += s.value.sum_micros.load(Relaxed);
                e.2 += s.value.count.load(Relaxed);
            }
        }
        for (labels, (buckets, sum_micros, count)) in merged {
            let mut cumulative = 0;
            for (i, n) in buckets.iter().enumerate() {
                cumulative += n;
                let le = BUCKETS
                    .get(i)
                    .map(|b| b.to_string())
                    .unwrap_or_else(|| "+Inf".into());
                let _ = writeln!(out, "{name}_bucket{{{labels},le=\"{le}\"}} {cumulative}");
            }
            let _ = writeln!(out, "{name}_sum{{{labels}}} {}", sum_micros as f64 / 1e6);
            let _ = writeln!(out, "{name}_count{{{labels}}} {count}");
        }
    }
}

/// Apply `f` to the series under `key`, created with `labels` on first
/// use. Existing series take only a shard read lock and no allocation.
fn with_series<V: Default>(
    map: &DashMap<u64, Series<V>>,
    key: u64,
    labels: &[(&'static str, &str)],
    f: impl FnOnce(&V),
) {
    if let Some(s) = map.get(&key) {
        return f(&s.value);
    }
    let s = map.entry(key).or_insert_with(|| Series {
        labels: labels.iter().map(|(k, v)| (*k, v.to_string())).collect(),
        value: V::default(),
    });
    f(&s.value)
}

fn counter_family<'a>(
    out: &mut String,
    name: &str,
    help: &str,
    shards: impl Iterator<Item = &'a DashMap<u64, Series<AtomicU64>>>,
) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
    let mut merged: std::collections::BTreeMap<String, u64> = Default::default();
    for shard in shards {
        for s in shard.iter() {
            *merged.entry(label_text(&s.labels)).or_default() += s.value.load(Relaxed);
        }
    }
    for (labels, v) in merged {
        let _ = writeln!(out, "{name}{{{labels}}} {v}");
    }
}

pub(crate) fn label_text(labels: &[(&'static str, String)]) -> String {
    let mut s = String::new();
    for (i, (k, v)) in labels.iter().enumerate() {
        if i > 0 {
            s.push(',');
        }
        let _ = write!(s, "{k}=\"");
        for c in v.chars() {
            match c {
                '\\' => s.push_str("\\\\"),
                '"' => s.push_str("\\\""),
                '\n' => s.push_str("\\n"),
                c => s.push(c),
            }
        }
        s.push('"');
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_merged_counters_and_histograms() {
        let m = Metrics::new(2);
        let rec = |status, ms| RequestRecord {
            route: "chat",
            model: "gpt\"x",
            provider: "openai",
            status,
            duration: Duration::from_millis(ms),
        };
        m.record_request(&rec(200, 3));
        m.record_request(&rec(200, 40));
        m.record_request(&rec(502, 1));
        m.record_attempt("openai", "ok");
        let text = m.render("abc", &Default::default());
        assert!(text.contains(r#"switchyard_requests_total{route="chat",model="gpt\"x",provider="openai",status="200"} 2"#), "{text}");
        assert!(text.contains(r#"status="502"} 1"#));
        assert!(text.contains(r#"switchyard_request_duration_seconds_bucket{route="chat",model="gpt\"x",provider="openai",le="0.005"} 2"#), "{text}");
        assert!(text.contains(r#"le="+Inf"} 3"#));
        assert!(text.contains(r#"switchyard_request_duration_seconds_count{route="chat",model="gpt\"x",provider="openai"} 3"#));
        assert!(text
            .contains(r#"switchyard_upstream_attempts_total{provider="openai",outcome="ok"} 1"#));
        assert!(text.contains(r#"switchyard_policy_info{hash="abc"} 1"#));
    }
}
