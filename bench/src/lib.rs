//! Switchyard benchmarks. `cargo bench` runs the criterion micro-benchmarks
//! in `benches/`; the end-to-end load harness lands with the benchmark issue.
