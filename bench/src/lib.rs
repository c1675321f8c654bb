//! Switchyard benchmarks. `cargo bench` runs the criterion micro-benchmarks
//! in `benches/`; `src/bin/` holds end-to-end harnesses that start what they
//! measure (the gateway binary, the mock provider) and stop it.

pub mod fastmock;
pub mod http;
pub mod load;
pub mod plot;
