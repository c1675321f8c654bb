//! Per-worker-thread shards of hot state. Each Pingora worker runs its own
//! single-threaded runtime, so a thread index is a shard index: writers on
//! different cores never touch the same cache line.

use crossbeam_utils::CachePadded;
use std::sync::atomic::{AtomicUsize, Ordering};

static NEXT_THREAD: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    static THREAD_SLOT: usize = NEXT_THREAD.fetch_add(1, Ordering::Relaxed);
}

/// This thread's stable slot number (0, 1, 2, … in order of first use).
pub fn thread_slot() -> usize {
    THREAD_SLOT.with(|s| *s)
}

pub struct Sharded<T> {
    shards: Box<[CachePadded<T>]>,
}

impl<T> Sharded<T> {
    pub fn new(count: usize, make: impl Fn() -> T) -> Self {
        Sharded {
            shards: (0..count.max(1))
                .map(|_| CachePadded::new(make()))
                .collect(),
        }
    }

    /// The calling thread's shard.
    pub fn local(&self) -> &T {
        &self.shards[thread_slot() % self.shards.len()]
    }

    pub fn iter(&self) -> impl Iterator<Item = &T> {
        self.shards.iter().map(|s| &**s)
    }
}
