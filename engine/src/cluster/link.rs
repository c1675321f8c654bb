//! The connection to Redis: one multiplexed connection, so the calls of
//! concurrent requests share one socket and are pipelined on it (many
//! requests, one round trip). Only the cluster thread connects and
//! reconnects; the request path takes the current connection, or none.

use super::ClusterConfig;
use arc_swap::ArcSwapOption;
use redis::aio::MultiplexedConnection;
use redis::{AsyncConnectionConfig, Client, FromRedisValue, ScriptInvocation};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

pub struct Link {
    client: Client,
    connect_timeout: Duration,
    conn: ArcSwapOption<MultiplexedConnection>,
    /// Calls that timed out since the last one answered in time.
    timeouts_in_a_row: AtomicU32,
}

/// Why a Redis call did not give an answer. The text never holds the URL.
#[derive(Debug, Clone)]
pub enum CallError {
    NotConnected,
    Timeout,
    Redis(String),
}

impl CallError {
    pub fn reason(&self) -> &str {
        match self {
            CallError::NotConnected => "not connected",
            CallError::Timeout => "timed out",
            CallError::Redis(e) => e,
        }
    }
}

impl Link {
    pub fn new(config: &ClusterConfig) -> Result<Link, String> {
        // The error of a bad URL may quote it; it may hold a password.
        let client = Client::open(config.redis_url.as_str())
            .map_err(|e| format!("not a usable Redis URL ({:?})", e.kind()))?;
        Ok(Link {
            client,
            connect_timeout: config.connect_timeout,
            conn: ArcSwapOption::empty(),
            timeouts_in_a_row: AtomicU32::new(0),
        })
    }

    /// On the cluster thread: open a connection (its driver task runs on
    /// that thread's runtime).
    pub async fn connect(&self) -> Result<(), CallError> {
        let cfg = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(self.connect_timeout))
            // Each call sets its own deadline (see `call`).
            .set_response_timeout(None);
        let conn = self
            .client
            .get_multiplexed_async_connection_with_config(&cfg)
            .await
            .map_err(redis_error)?;
        self.conn.store(Some(Arc::new(conn)));
        Ok(())
    }

    pub fn timeouts_in_a_row(&self) -> u32 {
        self.timeouts_in_a_row.load(Ordering::Relaxed)
    }

    /// A connection of its own for subscriptions.
    pub async fn pubsub(&self) -> redis::RedisResult<redis::aio::PubSub> {
        self.client.get_async_pubsub().await
    }

    pub fn disconnect(&self) {
        self.conn.store(None);
    }

    pub fn connected(&self) -> bool {
        self.conn.load().is_some()
    }

    /// Run a script within `deadline`.
    pub async fn call<T: FromRedisValue>(
        &self,
        invocation: &ScriptInvocation<'_>,
        deadline: Duration,
    ) -> Result<T, CallError> {
        let Some(conn) = self.conn.load_full() else {
            return Err(CallError::NotConnected);
        };
        let mut conn = MultiplexedConnection::clone(&conn);
        match tokio::time::timeout(deadline, invocation.invoke_async(&mut conn)).await {
            Ok(Ok(v)) => {
                self.timeouts_in_a_row.store(0, Ordering::Relaxed);
                Ok(v)
            }
            Ok(Err(e)) => Err(redis_error(e)),
            Err(_) => {
                self.timeouts_in_a_row.fetch_add(1, Ordering::Relaxed);
                Err(CallError::Timeout)
            }
        }
    }
}

fn redis_error(e: redis::RedisError) -> CallError {
    // The kind and the server's code, not the display (it can name the
    // address it failed to reach).
    CallError::Redis(match e.code() {
        Some(code) => format!("{:?} ({code})", e.kind()),
        None => format!("{:?}", e.kind()),
    })
}
