//! The order in which an alias's targets are tried. Targets are grouped by
//! priority (lower first); inside a group the alias's `balance` decides:
//! round-robin, weighted random (without replacement), or least latency
//! (power of two choices on peak-EWMA × in-flight, then the rest by cost).

use super::health::TargetHealth;
use policy::{ArchivedBalance, ArchivedTarget};
use std::sync::atomic::{AtomicUsize, Ordering::*};
use std::sync::Arc;

pub struct TargetSet {
    pub health: Vec<Arc<TargetHealth>>,
    /// (start, len) of each priority group, in order.
    groups: Vec<(usize, usize)>,
    cursor: AtomicUsize,
}

impl TargetSet {
    pub fn new(targets: &[ArchivedTarget], health: Vec<Arc<TargetHealth>>) -> TargetSet {
        let mut groups: Vec<(usize, usize)> = Vec::new();
        for (i, t) in targets.iter().enumerate() {
            match groups.last_mut() {
                Some(g) if targets[g.0].priority == t.priority => g.1 += 1,
                _ => groups.push((i, 1)),
            }
        }
        TargetSet {
            health,
            groups,
            cursor: AtomicUsize::new(0),
        }
    }

    /// Indexes of targets in the order to try them.
    pub fn order(
        &self,
        targets: &[ArchivedTarget],
        balance: ArchivedBalance,
        random: &mut impl FnMut() -> f64,
    ) -> Vec<usize> {
        let mut out = Vec::with_capacity(targets.len());
        let turn = self.cursor.fetch_add(1, Relaxed);
        for &(start, len) in &self.groups {
            let mut group: Vec<usize> = (start..start + len).collect();
            if len > 1 {
                match balance {
                    ArchivedBalance::RoundRobin => group.rotate_left(turn % len),
                    ArchivedBalance::Weighted => {
                        weighted_shuffle(&mut group, |i| targets[i].weight.to_native(), random)
                    }
                    ArchivedBalance::LeastLatency => self.least_latency(&mut group, random),
                }
            }
            out.extend(group);
        }
        out
    }

    fn cost(&self, i: usize) -> f64 {
        let h = &self.health[i];
        h.latency.cost(h.in_flight.load(Relaxed))
    }

    fn least_latency(&self, group: &mut [usize], random: &mut impl FnMut() -> f64) {
        let n = group.len();
        let a = ((random() * n as f64) as usize).min(n - 1);
        let b = (a + 1 + ((random() * (n - 1) as f64) as usize).min(n - 2)) % n;
        let first = if self.cost(group[a]) <= self.cost(group[b]) {
            a
        } else {
            b
        };
        group.swap(0, first);
        group[1..].sort_by(|x, y| self.cost(*x).total_cmp(&self.cost(*y)));
    }
}

/// Order `items` by repeated weighted draws without replacement.
fn weighted_shuffle(
    items: &mut [usize],
    weight: impl Fn(usize) -> u32,
    random: &mut impl FnMut() -> f64,
) {
    for pos in 0..items.len() {
        let total: u64 = items[pos..].iter().map(|&i| weight(i) as u64).sum();
        let mut point = (random() * total as f64) as u64;
        let mut chosen = pos;
        for (k, &i) in items[pos..].iter().enumerate() {
            let w = weight(i) as u64;
            if point < w {
                chosen = pos + k;
                break;
            }
            point -= w;
        }
        items.swap(pos, chosen);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resilience::health::HealthRegistry;
    use policy::{compile_yaml, snapshot, Snapshot};

    fn setup(balance: &str, targets: &str) -> (Snapshot, TargetSet) {
        let src = format!("version: 1\nproviders:\n  p: {{kind: openai, base_url: http://x/v1}}\nmodels:\n  m:\n    balance: {balance}\n    targets: {targets}\n");
        let c = compile_yaml(&src, "t.yaml", &std::collections::HashMap::new()).unwrap();
        let snap = Snapshot::from_bytes(&snapshot::encode(&c.policy, 0).unwrap()).unwrap();
        let reg = HealthRegistry::default();
        let alias = &snap.policy().aliases[0];
        let health = alias
            .targets
            .iter()
            .map(|t| reg.target("p", t.model.as_str()))
            .collect();
        let set = TargetSet::new(&alias.targets, health);
        (snap, set)
    }

    fn models(s: &Snapshot, order: &[usize]) -> String {
        order
            .iter()
            .map(|&i| s.policy().aliases[0].targets[i].model.as_str())
            .collect::<Vec<_>>()
            .join(",")
    }

    #[test]
    fn priority_groups_come_in_order_and_round_robin_rotates_inside() {
        let (s, set) = setup("round_robin", "[{provider: p, model: a, priority: 0}, {provider: p, model: b, priority: 0}, {provider: p, model: z, priority: 9}]");
        let t = &s.policy().aliases[0];
        let mut r = || 0.5;
        assert_eq!(
            models(&s, &set.order(&t.targets, t.balance, &mut r)),
            "a,b,z"
        );
        assert_eq!(
            models(&s, &set.order(&t.targets, t.balance, &mut r)),
            "b,a,z"
        );
        // A plain list is a failover chain.
        let (s, set) = setup(
            "round_robin",
            "[{provider: p, model: a}, {provider: p, model: b}]",
        );
        let t = &s.policy().aliases[0];
        for _ in 0..3 {
            assert_eq!(models(&s, &set.order(&t.targets, t.balance, &mut r)), "a,b");
        }
    }

    #[test]
    fn weighted_picks_in_proportion() {
        let (s, set) = setup("weighted", "[{provider: p, model: a, priority: 0, weight: 3}, {provider: p, model: b, priority: 0, weight: 1}]");
        let t = &s.policy().aliases[0];
        let mut rng = fastrand::Rng::with_seed(7);
        let mut r = || rng.f64();
        let firsts_a = (0..4000)
            .filter(|_| set.order(&t.targets, t.balance, &mut r)[0] == 0)
            .count();
        assert!((2800..3200).contains(&firsts_a), "{firsts_a}");
    }

    #[test]
    fn least_latency_prefers_the_faster_and_less_loaded_target() {
        let (s, set) = setup(
            "least_latency",
            "[{provider: p, model: slow, priority: 0}, {provider: p, model: fast, priority: 0}]",
        );
        let t = &s.policy().aliases[0];
        set.health[0].latency.observe(80_000, 0);
        set.health[1].latency.observe(5_000, 0);
        let mut rng = fastrand::Rng::with_seed(1);
        let mut r = || rng.f64();
        for _ in 0..20 {
            assert_eq!(
                models(&s, &set.order(&t.targets, t.balance, &mut r)),
                "fast,slow"
            );
        }
        set.health[1].in_flight.store(100, Relaxed);
        assert_eq!(
            models(&s, &set.order(&t.targets, t.balance, &mut r)),
            "slow,fast"
        );
    }
}
