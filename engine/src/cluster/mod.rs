//! Cluster mode: replicas share their rate limits through Redis.
//!
//! What it guarantees (and the README's "Scaling out" states with bounds):
//! - budgets are reserved and settled in Redis ([`budgets`]); spend made
//!   while it is down is added once it is back.
//! - a key's cool-down or refusal seen by one replica reaches the others
//!   within milliseconds ([`health`]).
//! - `exact`: every admission is one atomic script in Redis per scope, so a
//!   burst across all replicas admits exactly the limit.
//! - concurrency slots are leases in Redis with a TTL, renewed by the
//!   replica that holds them; a replica that dies frees its slots within
//!   the TTL.
//! - Redis is never the client's problem: a Redis call on the request path
//!   waits at most `redis.timeout_ms`; when Redis is slow or gone the
//!   replica serves from its local state with every shared limit divided
//!   by the live replicas (the last count it saw), and returns to shared
//!   state by itself once Redis answers again.
//!
//! The Redis connection, heartbeats and lease renewals live on one thread
//! of their own ([`runner`]); the request path only sends commands on the
//! connection that thread keeps ([`link`]).

pub mod batch;
pub mod budgets;
pub mod health;
pub mod keys;
pub mod limits;
pub(crate) mod link;
pub mod pooled;
mod runner;
pub mod scripts;

use link::{CallError, Link};
use policy::{ArchivedCluster, ArchivedRedisDown, ArchivedSharedLimits};
use std::sync::atomic::{AtomicU32, AtomicU64, AtomicU8, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Where shared limits are decided right now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClusterState {
    /// In Redis.
    Shared,
    /// Locally, each limit divided by the live replicas: Redis is slow or
    /// unreachable.
    Degraded,
}

impl ClusterState {
    pub fn as_str(self) -> &'static str {
        match self {
            ClusterState::Shared => "shared",
            ClusterState::Degraded => "degraded",
        }
    }
}

/// The cluster settings a replica starts with (a reload that changes them
/// takes effect at the next start).
#[derive(Debug, Clone)]
pub struct ClusterConfig {
    pub redis_url: String,
    pub timeout: Duration,
    pub connect_timeout: Duration,
    pub node: String,
    pub exact: bool,
    pub lease_ttl: Duration,
    pub heartbeat: Duration,
    pub refuse_when_down: bool,
}

impl ClusterConfig {
    pub fn from_policy(c: &ArchivedCluster) -> ClusterConfig {
        let node = match c.node_id.as_str() {
            "" => default_node_id(),
            n => n.to_string(),
        };
        ClusterConfig {
            redis_url: c.redis_url.to_string(),
            timeout: Duration::from_millis(c.timeout_ms.to_native()),
            connect_timeout: Duration::from_millis(c.connect_timeout_ms.to_native()),
            node,
            exact: c.mode == ArchivedSharedLimits::Exact,
            lease_ttl: Duration::from_millis(c.lease_ttl_ms.to_native()),
            heartbeat: Duration::from_millis(c.heartbeat_ms.to_native()),
            refuse_when_down: c.on_redis_down == ArchivedRedisDown::Refuse,
        }
    }
}

/// Counts for `/metrics`.
#[derive(Debug, Default)]
pub struct ClusterStats {
    /// Redis calls that failed or timed out.
    pub redis_errors: AtomicU64,
    /// Admissions decided locally because Redis did not answer in time.
    pub local_admissions: AtomicU64,
    /// Background writes (settlements, releases) dropped because their
    /// queue was full; a dropped release frees its slot at lease expiry.
    pub dropped_writes: AtomicU64,
    /// Leases that had expired in Redis when their renewal came.
    pub lost_leases: AtomicU64,
}

pub struct Cluster {
    pub config: ClusterConfig,
    link: Link,
    state: AtomicU8,
    /// Live replicas at the last heartbeat (at least 1).
    live: AtomicU32,
    pub stats: ClusterStats,
    pub(crate) leases: limits::Leases,
    pub(crate) pools: pooled::Pools,
    pub(crate) budgets: budgets::BudgetBook,
    pub(crate) batcher: batch::Batcher,
    writes: tokio::sync::mpsc::Sender<runner::Write>,
    /// Numbers leases, holds and once-tokens of this replica.
    ids: AtomicU64,
}

/// Request-path timeouts in a row that count as an outage.
const TIMEOUTS_TO_DEGRADE: u32 = 3;

const SHARED: u8 = 0;
const DEGRADED: u8 = 1;

impl Cluster {
    /// Connect (in the background: a Redis that is down at start-up only
    /// means the replica starts degraded) and start the cluster thread.
    pub fn start(
        config: ClusterConfig,
        registry: Arc<crate::resilience::health::HealthRegistry>,
    ) -> Result<Arc<Cluster>, String> {
        let link = Link::new(&config).map_err(|e| format!("cluster.redis.url: {e}"))?;
        let (writes, queue) = tokio::sync::mpsc::channel(runner::WRITE_QUEUE);
        let cluster = Arc::new(Cluster {
            config,
            link,
            state: AtomicU8::new(DEGRADED),
            live: AtomicU32::new(1),
            stats: ClusterStats::default(),
            leases: limits::Leases::default(),
            pools: pooled::Pools::default(),
            budgets: budgets::BudgetBook::default(),
            batcher: batch::Batcher::default(),
            ids: AtomicU64::new(0),
            writes,
        });
        runner::spawn(cluster.clone(), queue, registry.clone())
            .map_err(|e| format!("cluster thread: {e}"))?;
        registry.share_with(cluster.clone());
        Ok(cluster)
    }

    /// A number nothing else of this replica gets.
    pub(crate) fn next_id(&self) -> u64 {
        self.ids.fetch_add(1, Ordering::Relaxed)
    }

    pub fn state(&self) -> ClusterState {
        match self.state.load(Ordering::Acquire) {
            SHARED => ClusterState::Shared,
            _ => ClusterState::Degraded,
        }
    }

    /// Live replicas, as last counted (the divisor of local limits while
    /// degraded).
    pub fn live_replicas(&self) -> u32 {
        self.live.load(Ordering::Relaxed).max(1)
    }

    /// A Redis call failed or took too long. A failure, or a few timeouts
    /// in a row (one slow answer is not an outage), make the replica decide
    /// locally until the runner reaches Redis again. Logged once per outage.
    pub(crate) fn trouble(&self, e: &CallError) {
        self.stats.redis_errors.fetch_add(1, Ordering::Relaxed);
        if matches!(e, CallError::Timeout) && self.link.timeouts_in_a_row() < TIMEOUTS_TO_DEGRADE {
            return;
        }
        let what = e.reason();
        if self.state.swap(DEGRADED, Ordering::AcqRel) == SHARED {
            tracing::warn!(
                node = %self.config.node,
                replicas = self.live_replicas(),
                reason = what,
                "cluster: Redis unavailable; limits are local, each divided by the live replicas"
            );
        }
    }

    fn recovered(&self, live: u32) {
        self.live.store(live.max(1), Ordering::Relaxed);
        if self.state.swap(SHARED, Ordering::AcqRel) == DEGRADED {
            tracing::info!(node = %self.config.node, replicas = live, "cluster: shared state in Redis");
        }
    }

    /// On shutdown, after the last request: give back what the pools hold
    /// and wait (at most `within`) for the queued writes to reach Redis.
    pub fn drain(&self, within: Duration) {
        for w in self.pools.drain(Duration::ZERO) {
            self.write(w);
        }
        let node = &self.config.node;
        for w in self
            .budgets
            .take_pending(|key| keys::once_token(key, node, self.next_id()))
        {
            self.write(w);
        }
        let (done, wait) = std::sync::mpsc::channel();
        if self.writes.try_send(runner::Write::Flush(done)).is_ok() {
            let _ = wait.recv_timeout(within);
        }
    }

    /// For `/healthz`.
    pub fn health(&self) -> serde_json::Value {
        serde_json::json!({
            "state": self.state().as_str(),
            "node": self.config.node,
            "replicas": self.live_replicas(),
            "limits": if self.config.exact { "exact" } else { "pooled" },
        })
    }

    /// For `/metrics`.
    pub fn render(&self, out: &mut String) {
        use std::fmt::Write;
        let state = self.state();
        let _ = writeln!(
            out,
            "# HELP switchyard_cluster_state Where shared limits are decided: 1 for the current state.\n# TYPE switchyard_cluster_state gauge"
        );
        for s in [ClusterState::Shared, ClusterState::Degraded] {
            let _ = writeln!(
                out,
                "switchyard_cluster_state{{state=\"{}\"}} {}",
                s.as_str(),
                u8::from(s == state)
            );
        }
        let s = &self.stats;
        for (name, help, v) in [
            (
                "switchyard_cluster_replicas",
                "Live replicas at the last heartbeat.",
                u64::from(self.live_replicas()),
            ),
            (
                "switchyard_cluster_redis_errors_total",
                "Redis calls that failed or timed out.",
                s.redis_errors.load(Ordering::Relaxed),
            ),
            (
                "switchyard_cluster_local_admissions_total",
                "Admissions decided locally because Redis did not answer.",
                s.local_admissions.load(Ordering::Relaxed),
            ),
            (
                "switchyard_cluster_dropped_writes_total",
                "Settlements and releases dropped because their queue was full.",
                s.dropped_writes.load(Ordering::Relaxed),
            ),
            (
                "switchyard_cluster_lost_leases_total",
                "Concurrency leases found expired when renewed.",
                s.lost_leases.load(Ordering::Relaxed),
            ),
        ] {
            let kind = if name.ends_with("_total") {
                "counter"
            } else {
                "gauge"
            };
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {v}"
            );
        }
    }
}

/// `<host>:<pid>`: a replica's name when the policy gives none.
pub fn default_node_id() -> String {
    format!("{}:{}", hostname(), std::process::id())
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .map(|h| h.trim().to_string())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".into())
}
