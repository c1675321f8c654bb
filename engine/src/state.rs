//! Runtime state built from one policy snapshot: what the request path
//! needs beyond the archived policy itself (resolved upstream peers, key
//! cursors). Built off the request path, then swapped in whole.

use crate::budgets::period::PeriodClock;
use crate::resilience::balance::TargetSet;
use crate::resilience::health::{HealthRegistry, KeyHealth, TargetHealth};
use crate::resilience::keypool::KeyPool;
use crate::tenants::{CallerScopes, TenantRegistry};
use arc_swap::ArcSwapOption;
use pingora::upstreams::peer::HttpPeer;
use policy::{ArchivedProvider, Snapshot};
use std::collections::HashSet;
use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

/// How long start-up or a reload waits for DNS before going on without the
/// slow names (they keep being retried in the background).
const RESOLVE_WAIT: Duration = Duration::from_millis(1500);

pub struct ActivePolicy {
    pub snapshot: Snapshot,
    pub hash: String,
    pub loaded_at: SystemTime,
    /// Same order as `snapshot.policy().providers`.
    pub providers: Vec<ProviderRuntime>,
    /// Same order as `snapshot.policy().aliases`.
    pub aliases: Vec<TargetSet>,
    pub registry: Arc<HealthRegistry>,
    /// Live counters of keys, users and teams (kept across reloads).
    pub tenants: Arc<TenantRegistry>,
    /// Same order as `snapshot.policy().client_keys`.
    pub callers: Vec<CallerScopes>,
    /// Budget days and months in the policy's time zone.
    pub periods: PeriodClock,
    /// The policy's route vectors, unpacked once for scoring.
    pub semantic: SemanticRoutes,
}

/// Route vectors and the encoder that made them: comparable only with
/// prompt vectors from the same encoder.
pub struct SemanticRoutes {
    pub encoder: String,
    pub set: classifier::RouteSet,
}

impl SemanticRoutes {
    pub fn build(routing: &policy::ArchivedRouting) -> SemanticRoutes {
        let floats = |v: &rkyv::vec::ArchivedVec<rkyv::rend::f32_le>| -> Vec<f32> {
            v.iter().map(|x| x.to_native()).collect()
        };
        SemanticRoutes {
            encoder: routing.classifier.encoder.to_string(),
            set: classifier::RouteSet {
                dim: routing.classifier.dim.to_native() as usize,
                routes: routing
                    .routes
                    .iter()
                    .map(|r| classifier::RouteVectors {
                        name: r.name.to_string(),
                        threshold: r.threshold.to_native(),
                        positives: floats(&r.positive_vectors),
                        negatives: floats(&r.negative_vectors),
                    })
                    .collect(),
            },
        }
    }

    pub fn usable_with(&self, encoder: &str, dim: usize) -> Option<&classifier::RouteSet> {
        (!self.set.routes.is_empty() && self.encoder == encoder && self.set.dim == dim)
            .then_some(&self.set)
    }
}

pub struct ProviderRuntime {
    pub peer: ArcSwapOption<HttpPeer>,
    pub resolve_error: ArcSwapOption<String>,
    /// `Host` header value.
    pub authority: String,
    pub pool: KeyPool,
    /// Health of `<provider>/<model>` direct requests, one per provider so
    /// that client-chosen model names cannot grow the registry.
    pub direct: Arc<TargetHealth>,
}

impl ActivePolicy {
    pub fn build(
        snapshot: Snapshot,
        registry: Arc<HealthRegistry>,
        tenants: Arc<TenantRegistry>,
    ) -> ActivePolicy {
        let hash = snapshot.header().hash_hex();
        let policy = snapshot.policy();
        let providers: Vec<ProviderRuntime> = policy
            .providers
            .iter()
            .map(|p| ProviderRuntime {
                peer: ArcSwapOption::empty(),
                resolve_error: ArcSwapOption::from_pointee(
                    "DNS lookup has not finished yet".to_string(),
                ),
                authority: authority(p),
                pool: KeyPool::build(p, &registry),
                direct: registry.target(p.name.as_str(), "<direct>"),
            })
            .collect();
        let aliases: Vec<TargetSet> = policy
            .aliases
            .iter()
            .map(|a| {
                let health = a
                    .targets
                    .iter()
                    .map(|t| {
                        let provider = policy
                            .provider_at(t.provider.to_native())
                            .map(|p| p.name.as_str())
                            .unwrap_or("?");
                        registry.target(provider, t.model.as_str())
                    })
                    .collect();
                TargetSet::new(&a.targets, health)
            })
            .collect();
        let keys: HashSet<*const KeyHealth> = providers
            .iter()
            .flat_map(|p| p.pool.keys().iter().map(Arc::as_ptr))
            .collect();
        let targets: HashSet<*const TargetHealth> = providers
            .iter()
            .map(|p| Arc::as_ptr(&p.direct))
            .chain(
                aliases
                    .iter()
                    .flat_map(|a| a.health.iter().map(Arc::as_ptr)),
            )
            .collect();
        registry.retain(&keys, &targets);
        let callers = policy
            .client_keys
            .iter()
            .map(|k| CallerScopes::build(&tenants, &policy.tenancy, k))
            .collect();
        let periods = PeriodClock::new(policy.tenancy.timezone.as_str());
        let semantic = SemanticRoutes::build(&policy.routing);
        let active = ActivePolicy {
            snapshot,
            hash,
            loaded_at: SystemTime::now(),
            providers,
            aliases,
            registry,
            tenants,
            callers,
            periods,
            semantic,
        };
        active.resolve_all(RESOLVE_WAIT);
        active
    }

    pub fn short_hash(&self) -> &str {
        &self.hash[..12]
    }

    /// Resolve every provider host in parallel; wait at most `wait`. A
    /// lookup that finishes later still updates this policy's peers.
    pub fn resolve_all(&self, wait: Duration) {
        let policy = self.snapshot.policy();
        let (tx, rx) = std::sync::mpsc::channel();
        for (i, p) in policy.providers.iter().enumerate() {
            let host = p.host.to_string();
            let port = p.port.to_native();
            let tx = tx.clone();
            // Resolution blocks; it gets its own short-lived thread so one
            // slow name cannot hold up the others.
            let _ = std::thread::Builder::new()
                .name("switchyard-dns".into())
                .spawn(move || {
                    let r = (host.as_str(), port)
                        .to_socket_addrs()
                        .map(|mut a| a.next());
                    let _ = tx.send((i, r));
                });
        }
        drop(tx);
        let deadline = std::time::Instant::now() + wait;
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match rx.recv_timeout(left) {
                Ok((i, result)) => self.apply_resolution(i, result),
                Err(_) => break,
            }
        }
    }

    fn apply_resolution(&self, index: usize, result: std::io::Result<Option<SocketAddr>>) {
        let (Some(p), Some(rt)) = (
            self.snapshot.policy().providers.get(index),
            self.providers.get(index),
        ) else {
            return;
        };
        match result {
            Ok(Some(addr)) => {
                let new_peer = make_peer(p, addr);
                let unchanged = rt
                    .peer
                    .load()
                    .as_ref()
                    .is_some_and(|old| old._address == new_peer._address);
                if !unchanged {
                    rt.peer.store(Some(Arc::new(new_peer)));
                }
                rt.resolve_error.store(None);
            }
            Ok(None) => rt
                .resolve_error
                .store(Some(Arc::new(format!("{} resolved to no address", p.host)))),
            Err(e) => {
                tracing::warn!(provider = %p.name, host = %p.host, error = %e, "DNS lookup failed");
                rt.resolve_error
                    .store(Some(Arc::new(format!("cannot resolve {}: {e}", p.host))));
            }
        }
    }
}

fn authority(p: &ArchivedProvider) -> String {
    let default_port = if p.tls { 443 } else { 80 };
    let host = if p.host.contains(':') {
        format!("[{}]", p.host)
    } else {
        p.host.to_string()
    };
    if p.port.to_native() == default_port {
        host
    } else {
        format!("{host}:{}", p.port)
    }
}

fn make_peer(p: &ArchivedProvider, addr: SocketAddr) -> HttpPeer {
    let mut peer = HttpPeer::new(addr, p.tls, p.host.to_string());
    let connect = Duration::from_millis(p.timeouts.connect_ms.to_native());
    peer.options.connection_timeout = Some(connect);
    // Covers TCP connect plus the TLS handshake.
    peer.options.total_connection_timeout = Some(connect);
    // Reads are timed by the attempt itself (first byte, idle, total).
    peer.options.write_timeout = Some(connect.max(Duration::from_secs(10)));
    peer.options.idle_timeout = Some(Duration::from_secs(60));
    peer
}
