//! The connections to Redis. Each is multiplexed, so the calls of
//! concurrent requests share one socket and are pipelined on it (many
//! requests, one round trip).
//!
//! The cluster thread keeps the shared connection, and decides when Redis
//! is reachable. Each worker thread also opens one of its own, in the
//! background, the first time it needs Redis: its calls then run on the
//! worker's own runtime, with no hop to another thread and back (what a
//! Redis round trip costs on the request path is mostly those hops). Until
//! it is open, and whenever it fails, the worker uses the shared one. A
//! reconnection of the shared connection retires every worker's too.

use super::ClusterConfig;
use arc_swap::ArcSwapOption;
use redis::aio::MultiplexedConnection;
use redis::{AsyncConnectionConfig, Client, FromRedisValue, ScriptInvocation};
use std::cell::{Cell, RefCell};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

thread_local! {
    /// This thread's own connection, and the generation it belongs to.
    static OWN: RefCell<Option<(u64, MultiplexedConnection)>> = const { RefCell::new(None) };
    /// Whether this thread is opening one now.
    static OPENING: Cell<bool> = const { Cell::new(false) };
}

pub struct Link {
    client: Client,
    connect_timeout: Duration,
    conn: ArcSwapOption<MultiplexedConnection>,
    /// Calls that timed out since the last one answered in time.
    timeouts_in_a_row: AtomicU32,
    /// Bumped when the shared connection is dropped: threads' own
    /// connections of an older generation are not used again.
    generation: AtomicU64,
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
            generation: AtomicU64::new(0),
        })
    }

    /// On the cluster thread: open a connection (its driver task runs on
    /// that thread's runtime).
    pub async fn connect(&self) -> Result<(), CallError> {
        let conn = self
            .client
            .get_multiplexed_async_connection_with_config(&self.config())
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
        self.generation.fetch_add(1, Ordering::AcqRel);
        self.conn.store(None);
    }

    fn config(&self) -> AsyncConnectionConfig {
        AsyncConnectionConfig::new()
            .set_connection_timeout(Some(self.connect_timeout))
            // Each call sets its own deadline (see `call`).
            .set_response_timeout(None)
    }

    /// The connection a call on this thread uses: its own when it has one
    /// of the current generation, else the shared one (and, inside a
    /// runtime, its own is opened in the background for next time).
    fn pick(&self) -> Option<MultiplexedConnection> {
        let generation = self.generation.load(Ordering::Acquire);
        let own = OWN.with(|o| {
            o.borrow()
                .as_ref()
                .filter(|(g, _)| *g == generation)
                .map(|(_, c)| c.clone())
        });
        if own.is_some() {
            return own;
        }
        let shared = self.conn.load_full()?;
        if !OPENING.with(|o| o.replace(true)) {
            match tokio::runtime::Handle::try_current() {
                Ok(rt) => {
                    let client = self.client.clone();
                    let cfg = self.config();
                    rt.spawn(async move {
                        // On a single-threaded runtime (the workers'), this
                        // runs on the thread that asked.
                        if let Ok(c) = client
                            .get_multiplexed_async_connection_with_config(&cfg)
                            .await
                        {
                            OWN.with(|o| *o.borrow_mut() = Some((generation, c)));
                        }
                        OPENING.with(|o| o.set(false));
                    });
                }
                Err(_) => OPENING.with(|o| o.set(false)),
            }
        }
        Some(MultiplexedConnection::clone(&shared))
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
        let Some(mut conn) = self.pick() else {
            return Err(CallError::NotConnected);
        };
        match tokio::time::timeout(deadline, invocation.invoke_async(&mut conn)).await {
            Ok(Ok(v)) => {
                self.timeouts_in_a_row.store(0, Ordering::Relaxed);
                Ok(v)
            }
            Ok(Err(e)) => {
                // This thread's own connection may be the broken one.
                OWN.with(|o| *o.borrow_mut() = None);
                Err(redis_error(e))
            }
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
