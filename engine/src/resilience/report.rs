//! Resilience state in Prometheus text: breakers, cool-downs, refused keys,
//! in-flight counts, latency, retries, hedges and the retry budget.

use super::breaker::BreakerState;
use super::health::HealthRegistry;
use super::now_ms;
use crate::metrics::label_text;
use std::fmt::Write;
use std::sync::atomic::Ordering::Relaxed;

fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

fn state_value(s: BreakerState) -> u8 {
    s as u8
}

pub fn render(out: &mut String, reg: &HealthRegistry) {
    let now = now_ms();
    let mut keys: Vec<(String, [u64; 7])> = Vec::new();
    reg.for_each_key(|k| {
        let labels = label_text(&[("provider", k.provider.clone()), ("key", k.name.clone())]);
        keys.push((
            labels,
            [
                state_value(k.breaker.state()) as u64,
                k.cooling_until(now).is_some() as u64,
                k.is_rejected(now) as u64,
                k.in_flight.load(Relaxed) as u64,
                k.cooldowns_total.load(Relaxed),
                k.rejections_total.load(Relaxed),
                k.breaker.opens_total(),
            ],
        ));
    });
    keys.sort();
    let key_families = [
        (
            "switchyard_upstream_key_breaker_state",
            "gauge",
            "Key circuit breaker: 0 closed, 1 open, 2 half-open.",
        ),
        (
            "switchyard_upstream_key_cooling",
            "gauge",
            "1 while the key cools down after a provider 429.",
        ),
        (
            "switchyard_upstream_key_refused",
            "gauge",
            "1 while the key is out of rotation after a provider 401/403.",
        ),
        (
            "switchyard_upstream_key_in_flight",
            "gauge",
            "Requests using the key now.",
        ),
        (
            "switchyard_upstream_key_cooldowns_total",
            "counter",
            "Provider 429s that cooled the key down.",
        ),
        (
            "switchyard_upstream_key_refusals_total",
            "counter",
            "Provider 401/403 answers for the key.",
        ),
        (
            "switchyard_upstream_key_breaker_opens_total",
            "counter",
            "Times the key's breaker opened.",
        ),
    ];
    for (i, (name, kind, help)) in key_families.iter().enumerate() {
        family(out, name, kind, help);
        for (labels, values) in &keys {
            let _ = writeln!(out, "{name}{{{labels}}} {}", values[i]);
        }
    }

    let mut targets: Vec<(String, u8, u32, f64, u64)> = Vec::new();
    reg.for_each_target(|t| {
        let labels = label_text(&[("provider", t.provider.clone()), ("model", t.model.clone())]);
        targets.push((
            labels,
            state_value(t.breaker.state()),
            t.in_flight.load(Relaxed),
            t.latency.micros() / 1e6,
            t.breaker.opens_total(),
        ));
    });
    targets.sort_by(|a, b| a.0.cmp(&b.0));
    family(
        out,
        "switchyard_target_breaker_state",
        "gauge",
        "Target circuit breaker: 0 closed, 1 open, 2 half-open.",
    );
    for t in &targets {
        let _ = writeln!(out, "switchyard_target_breaker_state{{{}}} {}", t.0, t.1);
    }
    family(
        out,
        "switchyard_target_in_flight",
        "gauge",
        "Requests at the target now.",
    );
    for t in &targets {
        let _ = writeln!(out, "switchyard_target_in_flight{{{}}} {}", t.0, t.2);
    }
    family(
        out,
        "switchyard_target_ttfb_ewma_seconds",
        "gauge",
        "Peak-EWMA time to first byte.",
    );
    for t in &targets {
        let _ = writeln!(
            out,
            "switchyard_target_ttfb_ewma_seconds{{{}}} {}",
            t.0, t.3
        );
    }
    family(
        out,
        "switchyard_target_breaker_opens_total",
        "counter",
        "Times the target's breaker opened.",
    );
    for t in &targets {
        let _ = writeln!(
            out,
            "switchyard_target_breaker_opens_total{{{}}} {}",
            t.0, t.4
        );
    }

    for (name, kind, help, value) in [
        (
            "switchyard_retries_total",
            "counter",
            "Attempts after the first (failover and retries).",
            reg.retries_total.load(Relaxed) as i64,
        ),
        (
            "switchyard_hedges_total",
            "counter",
            "Hedged second attempts sent.",
            reg.hedges_total.load(Relaxed) as i64,
        ),
        (
            "switchyard_hedge_wins_total",
            "counter",
            "Hedged attempts that answered first.",
            reg.hedge_wins_total.load(Relaxed) as i64,
        ),
        (
            "switchyard_retry_budget_exhausted_total",
            "counter",
            "Retries refused by the retry budget.",
            reg.budget.exhausted_total.load(Relaxed) as i64,
        ),
        (
            "switchyard_retry_budget_available",
            "gauge",
            "Retries the budget allows now.",
            reg.budget.available(),
        ),
    ] {
        family(out, name, kind, help);
        let _ = writeln!(out, "{name} {value}");
    }
}
