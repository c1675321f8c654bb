//! Switchyard's data plane. [`pipeline`] is the request path, top to
//! bottom; every other module is one phase or one piece of state.

pub mod app;
pub mod auth;
pub mod body;
pub mod error;
pub mod failover;
pub mod headers;
pub mod metrics;
pub mod pipeline;
pub mod relay;
pub mod reload;
pub mod request_id;
pub mod resilience;
pub mod respond;
pub mod routing;
pub mod server;
pub mod shard;
pub mod state;
pub mod tls_roots;
pub mod translate;
pub mod upstream;
