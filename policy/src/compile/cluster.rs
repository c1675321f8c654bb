//! `cluster:`: the Redis URL (its password never reaches a diagnostic),
//! the limit mode and the timings, each within a sane range.

use super::Checker;
use crate::model::*;
use crate::spec::*;

impl Checker<'_> {
    pub(super) fn cluster(&mut self, c: ClusterSpec) -> Cluster {
        let redis_url = self
            .expand("cluster.redis.url", &c.redis.url)
            .unwrap_or_default();
        if let Err(why) = check_redis_url(&redis_url) {
            self.error("cluster.redis.url", why);
        }
        let mode = match c.limits.as_str() {
            "exact" => SharedLimits::Exact,
            "pooled" => SharedLimits::Pooled,
            other => {
                self.error(
                    "cluster.limits",
                    format!("{other:?}: expected `exact` or `pooled`"),
                );
                SharedLimits::Exact
            }
        };
        let on_redis_down = match c.on_redis_down.as_str() {
            "share" => RedisDown::Share,
            "refuse" => RedisDown::Refuse,
            other => {
                self.error(
                    "cluster.on_redis_down",
                    format!("{other:?}: expected `share` or `refuse`"),
                );
                RedisDown::Share
            }
        };
        let node_id = match &c.node_id {
            Some(raw) => self.expand("cluster.node_id", raw).unwrap_or_default(),
            None => String::new(),
        };
        if c.node_id.is_some()
            && (node_id.is_empty()
                || node_id.len() > 128
                || !node_id.bytes().all(|b| b.is_ascii_graphic()))
        {
            self.error(
                "cluster.node_id",
                "expected 1 to 128 printable characters without spaces",
            );
        }
        for (field, ms, min, max) in [
            ("redis.timeout_ms", c.redis.timeout_ms, 1, 10_000),
            (
                "redis.connect_timeout_ms",
                c.redis.connect_timeout_ms,
                1,
                60_000,
            ),
            ("lease_ttl_ms", c.lease_ttl_ms, 1_000, 3_600_000),
            ("heartbeat_ms", c.heartbeat_ms, 100, 60_000),
        ] {
            if !(min..=max).contains(&ms) {
                self.error(
                    &format!("cluster.{field}"),
                    format!("must be between {min} and {max}"),
                );
            }
        }
        if c.heartbeat_ms.saturating_mul(3) > c.lease_ttl_ms {
            self.error(
                "cluster.lease_ttl_ms",
                "must be at least three heartbeats, or leases of live replicas could expire between renewals",
            );
        }
        if redis_url.starts_with("redis://") && !is_loopback_url(&redis_url) {
            self.warn(
                "cluster.redis.url",
                "plain redis:// to a non-loopback host: limits, budgets and the password cross the network in clear (use rediss://)",
            );
        }
        Cluster {
            redis_url,
            timeout_ms: c.redis.timeout_ms,
            connect_timeout_ms: c.redis.connect_timeout_ms,
            node_id,
            mode,
            lease_ttl_ms: c.lease_ttl_ms,
            heartbeat_ms: c.heartbeat_ms,
            on_redis_down,
        }
    }
}

/// The URL's shape, without echoing it (it may hold a password).
fn check_redis_url(url: &str) -> Result<(), String> {
    let Some((scheme, rest)) = url.split_once("://") else {
        return Err("expected redis://host:port or rediss://host:port".into());
    };
    if scheme != "redis" && scheme != "rediss" {
        return Err(format!("scheme {scheme:?}: expected redis:// or rediss://"));
    }
    let host = host_of(rest);
    if host.is_empty() {
        return Err("the URL names no host".into());
    }
    Ok(())
}

/// `host` (or `[v6]`) of `[user:pass@]host[:port][/db]`.
fn host_of(rest: &str) -> &str {
    let authority = rest.split('/').next().unwrap_or("");
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    if let Some(v6) = host_port.strip_prefix('[') {
        return v6.split(']').next().unwrap_or("");
    }
    host_port.split(':').next().unwrap_or("")
}

fn is_loopback_url(url: &str) -> bool {
    let rest = url.split_once("://").map_or("", |(_, r)| r);
    let host = host_of(rest);
    host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_checked_without_echoing_secrets() {
        assert!(check_redis_url("redis://127.0.0.1:6379").is_ok());
        assert!(check_redis_url("rediss://:pw@cache.internal:6380/2").is_ok());
        assert!(check_redis_url("redis://[::1]:6379").is_ok());
        let e = check_redis_url("http://user:hunter2@host").unwrap_err();
        assert!(!e.contains("hunter2"));
        assert!(check_redis_url("redis://:pw@/0").is_err());
        assert!(is_loopback_url("redis://:pw@127.0.0.1:1"));
        assert!(is_loopback_url("redis://localhost"));
        assert!(!is_loopback_url("redis://10.0.0.5:6379"));
    }
}
