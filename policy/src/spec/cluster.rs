//! `cluster:` — several replicas sharing one set of limits through Redis.
//! Absent, the gateway keeps all of its state in memory, as a single node.

use serde::Deserialize;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterSpec {
    pub redis: RedisSpec,
    /// This replica's name in Redis; absent: `<host>:<pid>`.
    #[serde(default)]
    pub node_id: Option<String>,
    /// `exact` (every admission decided in Redis) or `pooled` (each
    /// replica borrows allotments into its local buckets).
    #[serde(default = "default_mode")]
    pub limits: String,
    /// A concurrency slot held by a replica that stops renewing it (killed,
    /// cut off) is freed after this.
    #[serde(default = "default_lease_ttl")]
    pub lease_ttl_ms: u64,
    /// How often a replica says it is alive; a replica silent for three
    /// beats no longer counts.
    #[serde(default = "default_heartbeat")]
    pub heartbeat_ms: u64,
    /// While Redis is unreachable: `share` serves from local state with each
    /// shared limit divided by the live replicas; `refuse` answers 503.
    #[serde(default = "default_on_redis_down")]
    pub on_redis_down: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RedisSpec {
    /// `redis://[user:password@]host:port[/db]`, or `rediss://` for TLS.
    pub url: String,
    /// The longest a Redis call on the request path may wait.
    #[serde(default = "default_timeout")]
    pub timeout_ms: u64,
    #[serde(default = "default_connect_timeout")]
    pub connect_timeout_ms: u64,
}

fn default_mode() -> String {
    "exact".into()
}
fn default_lease_ttl() -> u64 {
    10_000
}
fn default_heartbeat() -> u64 {
    1_000
}
fn default_on_redis_down() -> String {
    "share".into()
}
fn default_timeout() -> u64 {
    10
}
fn default_connect_timeout() -> u64 {
    1_000
}
