//! Pooled vectors by window hash, so an agent loop that resends the same
//! conversation pays for one encoder pass. Bounded by two generations:
//! inserts go to the young map; when it is full it becomes the old map and
//! the previous old map is dropped whole. A hit in the old map is promoted.
//! No locks beyond dashmap's sharded ones, no per-entry bookkeeping.

use arc_swap::ArcSwap;
use dashmap::DashMap;
use std::sync::Arc;

type Generation = DashMap<u64, Arc<[f32]>>;

pub struct EmbeddingCache {
    young: ArcSwap<Generation>,
    old: ArcSwap<Generation>,
    /// Entries per generation; the cache holds at most twice this.
    per_generation: usize,
}

impl EmbeddingCache {
    pub fn new(capacity: usize) -> EmbeddingCache {
        EmbeddingCache {
            young: ArcSwap::from_pointee(DashMap::new()),
            old: ArcSwap::from_pointee(DashMap::new()),
            per_generation: (capacity / 2).max(1),
        }
    }

    pub fn get(&self, key: u64) -> Option<Arc<[f32]>> {
        if let Some(v) = self.young.load().get(&key) {
            return Some(v.clone());
        }
        let v = self.old.load().get(&key).map(|v| v.clone())?;
        self.insert(key, v.clone());
        Some(v)
    }

    pub fn insert(&self, key: u64, vector: Arc<[f32]>) {
        let young = self.young.load_full();
        young.insert(key, vector);
        if young.len() >= self.per_generation {
            // Two threads may both rotate; the cost is one generation
            // dropped early, never an unbounded map.
            self.old.store(young);
            self.young.store(Arc::new(DashMap::new()));
        }
    }

    pub fn len(&self) -> usize {
        self.young.load().len() + self.old.load().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounded_with_promotion() {
        let cache = EmbeddingCache::new(4);
        let v: Arc<[f32]> = Arc::from(vec![1.0f32]);
        for k in 0..100 {
            cache.insert(k, v.clone());
            assert!(cache.len() <= 4);
        }
        // 98 and 99 sit in the old generation; a hit promotes 99.
        assert!(cache.get(99).is_some());
        assert!(cache.get(0).is_none());
        cache.insert(1000, v.clone());
        assert!(
            cache.get(99).is_some(),
            "promoted entries survive a rotation"
        );
        assert!(cache.get(98).is_none(), "unused entries do not");
    }
}
