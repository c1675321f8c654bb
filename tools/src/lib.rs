//! Switchyard tools: the policy compiler (`policyc`) and the mock provider
//! (`mock-provider`), which tests and benchmarks run in-process or as a binary.

pub mod mock;
pub mod train;
