//! The Pingora application: one [`Gateway`] shared by all worker threads.
//!
//! We implement pingora-core's `HttpServerApp` rather than pingora-proxy's
//! `ProxyHttp`: `ProxyHttp` retries only connect-level errors and resends the
//! same buffered body, while we need a fresh, re-translated body per attempt
//! (another provider may need another wire format) and failover on 429/5xx
//! responses. With `HttpServerApp` plus pingora's pooled `Connector`, each
//! attempt is ours to build, and the request path stays in one readable
//! function ([`crate::pipeline::handle`]).

use crate::classify::ClassifierSlot;
use crate::ledger::UsageLedger;
use crate::metrics::Metrics;
use crate::pipeline;
use crate::reload::PolicyStore;
use async_trait::async_trait;
use pingora::apps::{HttpPersistentSettings, HttpServerApp, ReusedHttpStream};
use pingora::protocols::http::ServerSession;
use pingora::server::ShutdownWatch;
use std::sync::Arc;

const CLIENT_READ_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);

pub struct Gateway {
    pub store: Arc<PolicyStore>,
    pub metrics: Arc<Metrics>,
    pub ledger: Arc<UsageLedger>,
    /// The ledger file, for reports (None: no ledger).
    pub ledger_path: Option<std::path::PathBuf>,
    /// The semantic classifier, when a policy's routers use it.
    pub classifier: Arc<ClassifierSlot>,
}

#[async_trait]
impl HttpServerApp for Gateway {
    async fn process_new_http(
        self: &Arc<Self>,
        mut session: ServerSession,
        shutdown: &ShutdownWatch,
    ) -> Option<ReusedHttpStream> {
        match session.read_request().await {
            Ok(true) => {}
            // Closed or garbage before a request: nothing to answer.
            Ok(false) | Err(_) => return None,
        }
        // While shutting down, finish this request but take no more.
        session.set_keepalive(if *shutdown.borrow() { None } else { Some(60) });
        // A client that trickles its body cannot hold a worker forever.
        session.set_read_timeout(Some(CLIENT_READ_TIMEOUT));
        if !pipeline::handle(self, &mut session).await {
            return None;
        }
        let persistent = HttpPersistentSettings::for_session(&session);
        match session.finish().await {
            Ok(Some(stream)) => Some(ReusedHttpStream::from_reusable_stream(stream, persistent)),
            _ => None,
        }
    }
}
