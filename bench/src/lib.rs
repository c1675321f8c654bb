//! Switchyard benchmarks. `cargo bench` runs the criterion micro-benchmarks
//! in `benches/`; `src/bin/` holds end-to-end harnesses that start what they
//! measure (the gateway binary, the mock provider) and stop it.

pub mod fastmock;
pub mod http;
pub mod load;
pub mod plot;
pub mod procs;
pub mod relay;

/// Run `op` `iters` times split over `threads` threads; the wall time.
/// For criterion's `iter_custom`, when every thread hits one shared object.
pub fn contended(threads: usize, iters: u64, op: impl Fn() + Sync) -> std::time::Duration {
    let per = iters / threads as u64 + 1;
    let start = std::time::Instant::now();
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| {
                for _ in 0..per {
                    op();
                }
            });
        }
    });
    start.elapsed()
}
