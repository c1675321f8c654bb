//! The compiled `cluster:` section.

use rkyv::{Archive, Deserialize, Serialize};

#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[rkyv(derive(PartialEq))]
pub struct Cluster {
    /// Holds the password when the URL has one: a secret, like provider keys.
    pub redis_url: String,
    pub timeout_ms: u64,
    pub connect_timeout_ms: u64,
    /// Empty: the engine names itself `<host>:<pid>`.
    pub node_id: String,
    pub mode: SharedLimits,
    pub lease_ttl_ms: u64,
    pub heartbeat_ms: u64,
    pub on_redis_down: RedisDown,
}

#[derive(Archive, Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
#[rkyv(derive(Debug, PartialEq, Eq, Clone, Copy))]
pub enum SharedLimits {
    Exact,
    Pooled,
}

#[derive(Archive, Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
#[rkyv(derive(Debug, PartialEq, Eq, Clone, Copy))]
pub enum RedisDown {
    Share,
    Refuse,
}
