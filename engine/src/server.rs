//! Start-up: load the policy, build the runtime state, start Pingora with
//! one single-threaded runtime per worker, each its own service with its
//! own accept loop ([`crate::listen`]).

use crate::app::{Gateway, Role};
use crate::classify::ClassifierSlot;
use crate::ledger::sqlite::SqliteSink;
use crate::ledger::{self, LedgerError, UsageLedger};
use crate::listen::{self, WorkerService};
use crate::metrics::Metrics;
use crate::reload::{self, PolicyStore};
use crate::resilience::budget::BudgetConfig;
use crate::resilience::health::HealthRegistry;
use crate::state::ActivePolicy;
use crate::tenants::TenantRegistry;
use crate::tls_listener::LiveCert;
use crate::{tls_roots, upstream};
use pingora::server::configuration::ServerConf;
use pingora::server::{RunArgs, Server};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

pub struct ServeOptions {
    pub policy: reload::PolicySource,
    pub listen: Option<String>,
    pub threads: Option<usize>,
    /// Seconds SIGTERM waits for in-flight requests.
    pub grace_seconds: u64,
    /// Overrides `usage.ledger`.
    pub ledger: Option<PathBuf>,
}

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("{0}")]
    Policy(#[from] policy::Error),
    #[error("policy: {0}")]
    Source(String),
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: String,
        source: std::io::Error,
    },
    #[error("{0}")]
    Tls(String),
    #[error("cannot start the reload watcher: {0}")]
    Watcher(std::io::Error),
    #[error("{0}")]
    Ledger(#[from] LedgerError),
    #[error("cannot start the usage ledger writer: {0}")]
    LedgerThread(std::io::Error),
    #[error("{0}")]
    Cluster(String),
}

/// Runs until the process is told to stop; returns only on start-up errors.
pub fn run(opts: ServeOptions) -> Result<(), StartError> {
    let classifier = Arc::new(ClassifierSlot::default());
    let loaded = reload::load_source(&opts.policy, &classifier).map_err(StartError::Source)?;
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
    // Held until the server stops: the bundle's directory goes with it.
    let ca = tls_roots::ca_file(listener.upstream_ca.as_str()).map_err(StartError::Tls)?;
    upstream::set_ca_file(ca.file.clone());
    let sockets = listen::bind(&listen, threads).map_err(|source| StartError::Listen {
        addr: listen.clone(),
        source,
    })?;
    // HTTPS: the certificate served from memory, watched for changes.
    let live_cert = match listener.tls.as_ref() {
        Some(t) => {
            let live = LiveCert::open(
                std::path::Path::new(t.cert_file.as_str()),
                std::path::Path::new(t.key_file.as_str()),
            )
            .map_err(StartError::Tls)?;
            live.watch().map_err(StartError::Watcher)?;
            Some(live)
        }
        None => None,
    };
    let acceptor = match &live_cert {
        Some(live) => Some(Arc::new(live.acceptor().map_err(StartError::Tls)?)),
        None => None,
    };
    // The admin listener: one socket, one worker; scrapes and admin calls
    // are few.
    let admin_address = listener.admin_address.to_string();
    let admin_sockets = if admin_address.is_empty() {
        Vec::new()
    } else {
        listen::bind(&admin_address, 1).map_err(|source| StartError::Listen {
            addr: admin_address.clone(),
            source,
        })?
    };

    let metrics = Arc::new(Metrics::new(threads));
    let budget = &loaded.snapshot.policy().retry_budget;
    let budget = BudgetConfig {
        ratio_milli: budget.ratio_milli.to_native(),
        min_per_second: budget.min_per_second.to_native(),
    };
    let ledger_cfg = &loaded.snapshot.policy().tenancy.ledger;
    let ledger_pg = ledger_cfg.postgres.to_string();
    let (ledger_file, queue_capacity, flush_interval) = (
        ledger_cfg.path.to_string(),
        ledger_cfg.queue_capacity.to_native() as usize,
        Duration::from_millis(ledger_cfg.flush_interval_ms.to_native()),
    );
    let health = Arc::new(HealthRegistry::new(&budget));
    let active = ActivePolicy::build(
        loaded.snapshot,
        health.clone(),
        Arc::new(TenantRegistry::default()),
    );
    tracing::info!(policy = %opts.policy.describe(), hash = %active.short_hash(), "policy loaded");
    let ledger_path = opts
        .ledger
        .clone()
        .or_else(|| (!ledger_file.is_empty()).then(|| PathBuf::from(&ledger_file)));
    let ledger = match ledger_path.clone() {
        Some(path) => {
            let sink = SqliteSink::open(&path)?;
            if active.snapshot.policy().cluster.is_some() {
                // Redis holds the fleet's counters; this replica's ledger
                // is only its own part of them.
                tracing::info!(ledger = %path.display(), "usage ledger open; budgets and limits are in Redis");
            } else {
                let conn = ledger::sqlite::open_read(&path)?;
                let now = jiff::Timestamp::now().as_millisecond();
                let r = ledger::restore::restore(&active, &conn, now)?;
                tracing::info!(
                    ledger = %path.display(),
                    month_requests = r.month_requests,
                    month_cost = r.month_cost_nanos as f64 / 1e9,
                    minute_requests = r.minute_requests,
                    "usage ledger open; budgets and limits resumed from it"
                );
            }
            let mut ledger = UsageLedger::start(Box::new(sink), queue_capacity, flush_interval)
                .map_err(StartError::LedgerThread)?;
            if !ledger_pg.is_empty() {
                let node = match active.snapshot.policy().cluster.as_ref() {
                    Some(c) => crate::cluster::ClusterConfig::from_policy(c).node,
                    None => crate::cluster::default_node_id(),
                };
                let shipper = ledger::postgres::Shipper::start(&path, &ledger_pg, &node)
                    .map_err(StartError::LedgerThread)?;
                tracing::info!(node = %node, "usage: shipping the ledger to PostgreSQL");
                ledger.ship_with(shipper);
            }
            ledger
        }
        None => {
            tracing::warn!("no usage ledger configured: usage is metered but not stored");
            UsageLedger::disabled()
        }
    };
    let ledger = Arc::new(ledger);
    let cluster = match active.snapshot.policy().cluster.as_ref() {
        Some(c) => {
            let config = crate::cluster::ClusterConfig::from_policy(c);
            tracing::info!(node = %config.node, exact = config.exact, "cluster mode: limits shared through Redis");
            Some(crate::cluster::Cluster::start(config, health).map_err(StartError::Cluster)?)
        }
        None => None,
    };
    let store = Arc::new(PolicyStore::new(
        opts.policy,
        active,
        metrics.clone(),
        classifier.clone(),
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
    let gateway = Arc::new(Gateway {
        store,
        metrics,
        ledger: ledger.clone(),
        ledger_path,
        classifier,
        edge: Arc::default(),
        tls: live_cert,
        cluster,
    });
    for worker in WorkerService::for_sockets(sockets, &gateway, Role::Client, acceptor) {
        server.add_service(worker);
    }
    for worker in WorkerService::for_sockets(admin_sockets, &gateway, Role::Admin, None) {
        server.add_service(worker);
    }
    let scheme = if gateway.tls.is_some() {
        "https"
    } else {
        "http"
    };
    tracing::info!(%listen, scheme, threads, admin = %admin_address, "switchyard listening");
    server.run(RunArgs::default());
    if let Some(c) = &gateway.cluster {
        c.drain(Duration::from_secs(2));
    }
    // Every service has stopped: commit what is still queued.
    let stats = &ledger.stats;
    let queued = stats.queued.load(std::sync::atomic::Ordering::Relaxed);
    ledger.close();
    tracing::info!(queued, "usage ledger drained; switchyard stopped");
    drop(ca);
    Ok(())
}
