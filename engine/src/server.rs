//! Start-up: load the policy, build the runtime state, start Pingora with
//! one single-threaded runtime per worker (no work stealing).

use crate::app::Gateway;
use crate::metrics::Metrics;
use crate::reload::{self, PolicyStore};
use crate::resilience::budget::BudgetConfig;
use crate::resilience::health::HealthRegistry;
use crate::state::ActivePolicy;
use crate::{tls_roots, upstream};
use pingora::server::configuration::ServerConf;
use pingora::server::Server;
use pingora::services::listening::Service;
use std::path::PathBuf;
use std::sync::Arc;

pub struct ServeOptions {
    pub policy: PathBuf,
    pub listen: Option<String>,
    pub threads: Option<usize>,
    /// Seconds SIGTERM waits for in-flight requests.
    pub grace_seconds: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("{0}")]
    Policy(#[from] policy::Error),
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: String,
        source: std::io::Error,
    },
    #[error("{0}")]
    Tls(String),
    #[error("cannot start the reload watcher: {0}")]
    Watcher(std::io::Error),
}

/// Runs until the process is told to stop; returns only on start-up errors.
pub fn run(opts: ServeOptions) -> Result<(), StartError> {
    let loaded = policy::load_path(&opts.policy)?;
    for w in &loaded.warnings {
        tracing::warn!("policy: {w}");
    }
    let listener = &loaded.snapshot.policy().listener;
    let listen = opts
        .listen
        .clone()
        .unwrap_or_else(|| listener.address.to_string());
    let threads = opts
        .threads
        .or(match listener.threads.to_native() {
            0 => None,
            n => Some(n as usize),
        })
        .unwrap_or_else(|| {
            std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1)
        });
    let ca = tls_roots::ca_file(listener.upstream_ca.as_str()).map_err(StartError::Tls)?;
    upstream::set_ca_file(ca);
    // Fail with a clear message now rather than a panic inside Pingora.
    std::net::TcpListener::bind(&listen).map_err(|source| StartError::Listen {
        addr: listen.clone(),
        source,
    })?;

    let metrics = Arc::new(Metrics::new(threads));
    let budget = &loaded.snapshot.policy().retry_budget;
    let budget = BudgetConfig {
        ratio_milli: budget.ratio_milli.to_native(),
        min_per_second: budget.min_per_second.to_native(),
    };
    let active = ActivePolicy::build(loaded.snapshot, Arc::new(HealthRegistry::new(&budget)));
    tracing::info!(policy = %opts.policy.display(), hash = %active.short_hash(), "policy loaded");
    let store = Arc::new(PolicyStore::new(
        opts.policy.clone(),
        active,
        metrics.clone(),
    ));
    reload::spawn_watcher(store.clone()).map_err(StartError::Watcher)?;

    let conf = ServerConf {
        threads,
        work_stealing: false,
        grace_period_seconds: Some(opts.grace_seconds),
        graceful_shutdown_timeout_seconds: Some(opts.grace_seconds.max(1)),
        ..ServerConf::default()
    };
    let mut server = Server::new_with_opt_and_conf(None, conf);
    server.bootstrap();
    let mut service = Service::new("switchyard".to_string(), Gateway { store, metrics });
    service.add_tcp(&listen);
    server.add_service(service);
    tracing::info!(%listen, threads, "switchyard listening");
    server.run_forever()
}
