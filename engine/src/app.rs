//! The Pingora application: one [`Gateway`] shared by all worker threads,
//! served on each listener by a [`Front`] that knows which listener it is.
//!
//! We implement pingora-core's `HttpServerApp` rather than pingora-proxy's
//! `ProxyHttp`: `ProxyHttp` retries only connect-level errors and resends the
//! same buffered body, while we need a fresh, re-translated body per attempt
//! (another provider may need another wire format) and failover on 429/5xx
//! responses. With `HttpServerApp` plus pingora's pooled `Connector`, each
//! attempt is ours to build, and the request path stays in one readable
//! function ([`crate::pipeline::handle`]).
//!
//! Per connection, before the request path: the whole request head must
//! arrive within `header_timeout_ms` (a kept-alive connection may first
//! wait `idle_timeout_ms` for it to start). Pingora's own timeouts apply
//! per read, so a client sending one byte every few seconds would never
//! meet them; this bounds the whole. (Writes are bounded by the
//! connection itself: [`crate::listen::Downstream`].)

use crate::classify::ClassifierSlot;
use crate::edge::{ClientTimeout, Edge};
use crate::ledger::UsageLedger;
use crate::metrics::Metrics;
use crate::pipeline;
use crate::reload::PolicyStore;
use async_trait::async_trait;
use pingora::apps::{HttpPersistentSettings, HttpServerApp, HttpServerOptions, ReusedHttpStream};
use pingora::protocols::http::ServerSession;
use pingora::server::ShutdownWatch;
use std::sync::Arc;
use std::time::Duration;

pub struct Gateway {
    pub store: Arc<PolicyStore>,
    pub metrics: Arc<Metrics>,
    pub ledger: Arc<UsageLedger>,
    /// The ledger file, for reports (None: no ledger).
    pub ledger_path: Option<std::path::PathBuf>,
    /// The semantic classifier, when a policy's routers use it.
    pub classifier: Arc<ClassifierSlot>,
    /// Connections and bodies held at the edge.
    pub edge: Arc<Edge>,
    /// The listener's certificate, when it serves HTTPS.
    pub tls: Option<Arc<crate::tls_listener::LiveCert>>,
    /// Shared limits through Redis (None: a single node).
    pub cluster: Option<Arc<crate::cluster::Cluster>>,
}

/// Which listener a connection arrived on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// The client listener: the APIs, liveness, and (only when there is
    /// no admin listener) `/metrics` and `/admin/*`.
    Client,
    /// `listener.admin_address`: `/metrics`, `/healthz` in detail,
    /// `/admin/*`; no client API.
    Admin,
}

/// A listener's application: the shared gateway and the listener's role.
pub struct Front {
    pub gateway: Arc<Gateway>,
    pub role: Role,
    /// HTTP/2 connections (over TLS) close after `idle_timeout_ms` without
    /// a stream; Pingora bounds their streams and header lists itself.
    pub options: HttpServerOptions,
}

impl Front {
    pub fn new(gateway: Arc<Gateway>, role: Role) -> Front {
        let idle = {
            let active = gateway.store.current();
            let ms = active.snapshot.policy().listener.limits.idle_timeout_ms;
            Duration::from_millis(ms.to_native())
        };
        let mut options = HttpServerOptions::default();
        options.h2_idle_timeout = Some(idle);
        Front {
            gateway,
            role,
            options,
        }
    }
}

/// Marks a connection that has served a request (Pingora carries it to
/// the next request on the same connection).
struct Served;

#[async_trait]
impl HttpServerApp for Front {
    fn server_options(&self) -> Option<&HttpServerOptions> {
        Some(&self.options)
    }

    async fn process_new_http(
        self: &Arc<Self>,
        mut session: ServerSession,
        shutdown: &ShutdownWatch,
    ) -> Option<ReusedHttpStream> {
        let gw = &self.gateway;
        let limits = {
            let active = gw.store.current();
            let l = &active.snapshot.policy().listener.limits;
            (
                Duration::from_millis(l.header_timeout_ms.to_native()),
                Duration::from_millis(l.idle_timeout_ms.to_native()),
            )
        };
        let (header, idle) = limits;
        let reused = session.take_connection_user_context().is_some();
        // The timeout around the read bounds the whole head; Pingora's
        // per-read keep-alive timeout is set past it, so that ours is the
        // one that fires and the timeout is counted.
        let wait = if reused { idle + header } else { header };
        session.set_keepalive(Some(wait.as_secs() + 1));
        match pingora_timeout::timeout(wait, session.read_request()).await {
            Ok(Ok(true)) => {}
            // Closed or garbage before a request: nothing to answer.
            Ok(Ok(false)) | Ok(Err(_)) => return None,
            Err(_) => {
                gw.edge.timed_out(if reused {
                    ClientTimeout::Idle
                } else {
                    ClientTimeout::Header
                });
                return None;
            }
        }
        // While shutting down, finish this request but take no more.
        let keepalive = (!*shutdown.borrow()).then(|| idle.as_secs().max(1));
        session.set_keepalive(keepalive);
        // Each read of the body must make progress; the body as a whole
        // has its own deadline (`crate::body`).
        session.set_read_timeout(Some(header.max(Duration::from_secs(1))));
        if !pipeline::handle(gw, &mut session, self.role).await {
            return None;
        }
        let mut persistent = HttpPersistentSettings::for_session(&session);
        persistent.set_user_context(Box::new(Served));
        match session.finish().await {
            Ok(Some(stream)) => Some(ReusedHttpStream::from_reusable_stream(stream, persistent)),
            _ => None,
        }
    }
}
