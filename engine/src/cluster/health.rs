//! Shared key health: a 429 cool-down or a 401/403 refusal seen by one
//! replica takes the key out of rotation on every replica, with the same
//! expiry. The replica that saw it publishes it (and keeps it in a Redis
//! hash, for replicas that connect later); every replica subscribes.
//!
//! Circuit breakers stay per replica, on purpose: a breaker measures this
//! replica's own path to a provider (its network, resolver and
//! connections), and a fault on that path says nothing about the others.
//! A cool-down or a refusal is the provider's statement about the key, the
//! same for every replica.

use super::keys;
use super::runner::Write;
use super::scripts::scripts;
use super::Cluster;
use crate::resilience::cooldown::MAX_COOLDOWN;
use crate::resilience::health::{HealthRegistry, KeyHealthSink, REJECTED_KEY_PAUSE_MS};
use crate::resilience::now_ms;
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::time::Duration;

/// One replica's news about one key.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct KeyNews {
    pub node: String,
    pub key: String,
    /// Cool-down left, ms (0: none).
    pub cool_ms: u64,
    /// Refusal left, ms (0: none).
    pub reject_ms: u64,
}

impl KeyHealthSink for Cluster {
    fn cooled(&self, id: &str, pause_ms: u64) {
        self.write(Write::KeyHealth(KeyNews {
            node: self.config.node.clone(),
            key: id.to_string(),
            cool_ms: pause_ms,
            reject_ms: 0,
        }));
    }

    fn rejected(&self, id: &str) {
        self.write(Write::KeyHealth(KeyNews {
            node: self.config.node.clone(),
            key: id.to_string(),
            cool_ms: 0,
            reject_ms: REJECTED_KEY_PAUSE_MS,
        }));
    }
}

/// Apply news from another replica (or from Redis), bounded as this
/// replica's own would be: a wrong value cannot park a key for long.
fn apply(registry: &HealthRegistry, key: &str, cool_ms: u64, reject_ms: u64) {
    let Some(k) = registry.key_by_id(key) else {
        return;
    };
    let cool_ms = cool_ms.min(MAX_COOLDOWN.as_millis() as u64);
    let reject_ms = reject_ms.min(REJECTED_KEY_PAUSE_MS);
    let now = now_ms();
    if cool_ms > 0 {
        k.hold_cooling_until(now.saturating_add(cool_ms));
    }
    if reject_ms > 0 {
        k.hold_rejected_until(now.saturating_add(reject_ms));
    }
}

/// On the runner: listen for news, reconnecting after each loss; on every
/// (re)connection, first catch up with what is still running.
pub(super) async fn listen(cluster: Arc<Cluster>, registry: Arc<HealthRegistry>) {
    loop {
        // The runner's connection first (the catch-up runs on it).
        while !cluster.link.connected() {
            tokio::time::sleep(cluster.config.heartbeat / 4).await;
        }
        if let Err(e) = subscribed(&cluster, &registry).await {
            tracing::debug!(error = %e, "cluster: key-health subscription lost");
        }
        tokio::time::sleep(cluster.config.heartbeat).await;
    }
}

async fn subscribed(cluster: &Cluster, registry: &HealthRegistry) -> Result<(), String> {
    let deadline = cluster.config.connect_timeout;
    let mut pubsub = tokio::time::timeout(deadline, cluster.link.pubsub())
        .await
        .map_err(|_| "connect timed out".to_string())?
        .map_err(|e| format!("{:?}", e.kind()))?;
    tokio::time::timeout(deadline, pubsub.subscribe(keys::key_health_channel()))
        .await
        .map_err(|_| "subscribe timed out".to_string())?
        .map_err(|e| format!("{:?}", e.kind()))?;
    // Subscribed first, so nothing published after the catch-up is missed.
    catch_up(cluster, registry).await?;
    let mut messages = pubsub.on_message();
    while let Some(msg) = messages.next().await {
        let Ok(news) = serde_json::from_slice::<KeyNews>(msg.get_payload_bytes()) else {
            continue;
        };
        if news.node != cluster.config.node {
            apply(registry, &news.key, news.cool_ms, news.reject_ms);
        }
    }
    Err("the subscription ended".into())
}

async fn catch_up(cluster: &Cluster, registry: &HealthRegistry) -> Result<(), String> {
    let mut inv = scripts().key_health_now.prepare_invoke();
    inv.key(keys::key_health());
    let deadline = cluster
        .config
        .connect_timeout
        .max(Duration::from_millis(100));
    let flat = cluster
        .link
        .call::<Vec<redis::Value>>(&inv, deadline)
        .await
        .map_err(|e| format!("catching up: {}", e.reason()))?;
    for pair in flat.chunks(2) {
        let [field, left] = pair else { continue };
        let (Ok(field), Ok(left)) = (
            redis::from_redis_value_ref::<String>(field),
            redis::from_redis_value_ref::<u64>(left),
        ) else {
            continue;
        };
        match field.rsplit_once('|') {
            Some((key, "c")) => apply(registry, key, left, 0),
            Some((key, "r")) => apply(registry, key, 0, left),
            _ => {}
        }
    }
    Ok(())
}

/// The script invocation that records and publishes news.
pub(super) fn announce(news: &KeyNews) -> redis::ScriptInvocation<'static> {
    let mut inv = scripts().key_health.prepare_invoke();
    inv.key(keys::key_health())
        .arg(&news.key)
        .arg(news.cool_ms)
        .arg(news.reject_ms)
        .arg(keys::key_health_channel())
        .arg(serde_json::to_string(news).unwrap_or_default());
    inv
}
