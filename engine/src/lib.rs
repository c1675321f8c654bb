//! Switchyard's data plane. [`pipeline`] is the request path, top to
//! bottom; every other module is one phase or one piece of state.

pub mod admin;
pub mod app;
pub mod auth;
pub mod body;
pub mod budgets;
pub mod classify;
pub mod classify_cli;
pub mod cluster;
pub mod edge;
pub mod error;
pub mod failover;
pub mod headers;
pub mod ledger;
pub mod limits;
pub mod listen;
pub mod meter;
pub mod metrics;
pub mod pipeline;
pub mod published;
pub mod quota;
pub mod relay;
pub mod reload;
pub mod request_id;
pub mod resilience;
pub mod respond;
pub mod routing;
pub mod server;
pub mod shard;
pub mod state;
pub mod tenants;
pub mod tls_listener;
pub mod tls_roots;
pub mod translate;
pub mod upstream;
pub mod usage_cli;
