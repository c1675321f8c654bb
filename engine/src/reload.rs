//! Policy hot reload, Vector-style: validate → build → atomic swap, and keep
//! the old policy when anything fails. Requests hold an `Arc` to the policy
//! they started with, so in-flight requests finish on the old one.

use crate::classify::ClassifierSlot;
use crate::metrics::Metrics;
use crate::published::Published;
use crate::state::ActivePolicy;
use arc_swap::ArcSwap;
use notify::{RecursiveMode, Watcher};
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;

/// How often hostnames are re-resolved.
const DNS_REFRESH: Duration = Duration::from_secs(30);
/// Editors and `kubectl` write files in several steps; wait for quiet.
const DEBOUNCE: Duration = Duration::from_millis(150);

/// Where the policy comes from.
pub enum PolicySource {
    /// A YAML policy or compiled snapshot, watched for changes.
    File(PathBuf),
    /// The sealed snapshot `policyc publish` put in Redis, polled.
    Published(Box<std::sync::Mutex<Published>>),
}

impl PolicySource {
    pub fn describe(&self) -> String {
        match self {
            PolicySource::File(p) => p.display().to_string(),
            PolicySource::Published(_) => "redis (published)".into(),
        }
    }
}

pub struct PolicyStore {
    source: PolicySource,
    /// The last publication refused (hash and time), so it is not fetched
    /// again.
    refused: ArcSwap<String>,
    current: ArcSwap<ActivePolicy>,
    metrics: Arc<Metrics>,
    classifier: Arc<ClassifierSlot>,
}

impl PolicyStore {
    pub fn new(
        source: PolicySource,
        initial: ActivePolicy,
        metrics: Arc<Metrics>,
        classifier: Arc<ClassifierSlot>,
    ) -> Self {
        PolicyStore {
            source,
            refused: ArcSwap::from_pointee(String::new()),
            current: ArcSwap::from_pointee(initial),
            metrics,
            classifier,
        }
    }

    /// The policy a new request runs on.
    pub fn current(&self) -> Arc<ActivePolicy> {
        self.current.load_full()
    }

    /// Reload from disk. On error the active policy is untouched.
    pub fn reload(&self) -> Result<bool, String> {
        let result = self.try_reload();
        match &result {
            Ok(true) => {
                self.metrics.reloads_ok.fetch_add(1, Relaxed);
            }
            Ok(false) => {}
            Err(e) => {
                self.metrics.reloads_failed.fetch_add(1, Relaxed);
                tracing::error!(source = %self.source.describe(), error = %e, active = %self.current().short_hash(), "policy reload rejected; keeping the active policy");
            }
        }
        result
    }

    fn try_reload(&self) -> Result<bool, String> {
        let loaded = match &self.source {
            PolicySource::File(path) => load(path, &self.classifier).map_err(|e| e.to_string())?,
            PolicySource::Published(p) => {
                let mut p = p.lock().map_err(|_| "the published-policy reader failed")?;
                let Some((hash, at)) = p.hash()? else {
                    return Ok(false);
                };
                let version = format!("{hash}@{at}");
                if hash == self.current().hash || version == **self.refused.load() {
                    return Ok(false);
                }
                let opened = p.snapshot().and_then(|bytes| {
                    load_bytes(&bytes, &self.classifier).map_err(|e| e.to_string())
                });
                match opened {
                    Ok(l) => l,
                    Err(e) => {
                        // Refused once per publication, not every poll.
                        self.refused.store(Arc::new(version));
                        return Err(e);
                    }
                }
            }
        };
        for w in &loaded.warnings {
            tracing::warn!("policy: {w}");
        }
        let old = self.current();
        if loaded.snapshot.header().content_hash == old.snapshot.header().content_hash {
            tracing::debug!("policy file changed on disk but its content hash did not");
            return Ok(false);
        }
        let new_listener = &loaded.snapshot.policy().listener;
        let old_listener = &old.snapshot.policy().listener;
        if new_listener.address != old_listener.address
            || new_listener.threads != old_listener.threads
            || new_listener.upstream_ca != old_listener.upstream_ca
            || new_listener.admin_address != old_listener.admin_address
            || new_listener.tls != old_listener.tls
        {
            // The certificate files' contents reload on their own; which
            // files, and whether there is TLS at all, is fixed at start.
            tracing::warn!(
                "listener address, threads, admin_address, tls files and upstream_ca take effect at the next restart"
            );
        }
        if loaded.snapshot.policy().cluster != old.snapshot.policy().cluster {
            // The Redis connection, node id and modes are set up at start.
            tracing::warn!("cluster settings take effect at the next restart");
        }
        let next = ActivePolicy::build(loaded.snapshot, old.registry.clone(), old.tenants.clone());
        tracing::info!(from = %old.short_hash(), to = %next.short_hash(), "policy reloaded");
        self.current.store(Arc::new(next));
        Ok(true)
    }
}

/// Load a policy from where the source says (at start).
pub fn load_source(
    source: &PolicySource,
    classifier: &ClassifierSlot,
) -> Result<policy::Loaded, String> {
    match source {
        PolicySource::File(path) => load(path, classifier).map_err(|e| e.to_string()),
        PolicySource::Published(p) => {
            let mut p = p.lock().map_err(|_| "the published-policy reader failed")?;
            let bytes = p.first(Duration::from_secs(30))?;
            load_bytes(&bytes, classifier).map_err(|e| e.to_string())
        }
    }
}

/// A snapshot's bytes, validated; its classifier started if its routers
/// need one.
pub fn load_bytes(
    bytes: &[u8],
    classifier: &ClassifierSlot,
) -> Result<policy::Loaded, policy::Error> {
    let snapshot = policy::Snapshot::from_bytes(bytes)?;
    classifier.ensure(&snapshot.policy().routing);
    Ok(policy::Loaded {
        snapshot,
        warnings: Vec::new(),
    })
}

/// Load a policy file. A policy whose routers use the classifier starts it
/// (once) before its routes are embedded, so a YAML policy's utterances go
/// through the same encoder that classifies prompts.
pub fn load(path: &Path, classifier: &ClassifierSlot) -> Result<policy::Loaded, policy::Error> {
    let first = policy::load_path_with(path, None)?;
    let routing = &first.snapshot.policy().routing;
    classifier.ensure(routing);
    let unembedded = routing.routes.iter().any(|r| r.positive_vectors.is_empty());
    match classifier.current() {
        Some(c) if unembedded => {
            policy::load_path_with(path, Some(&mut classifier::ServiceEncoder(&c.service)))
        }
        _ => Ok(first),
    }
}

/// Reload on file changes and SIGHUP; refresh DNS periodically. Runs on its
/// own thread for the life of the process.
pub fn spawn_watcher(store: Arc<PolicyStore>) -> std::io::Result<()> {
    let (tx, rx) = std::sync::mpsc::channel::<()>();
    let mut signals = signal_hook::iterator::Signals::new([signal_hook::consts::SIGHUP])?;
    let sig_tx = tx.clone();
    std::thread::Builder::new()
        .name("switchyard-sighup".into())
        .spawn(move || {
            for _ in signals.forever() {
                tracing::info!("SIGHUP: reloading policy");
                let _ = sig_tx.send(());
            }
        })?;
    let watcher = match &store.source {
        PolicySource::File(path) => file_watcher(path, tx),
        PolicySource::Published(_) => {
            let poll_tx = tx;
            std::thread::Builder::new()
                .name("switchyard-published".into())
                .spawn(move || loop {
                    std::thread::sleep(crate::published::POLL);
                    if poll_tx.send(()).is_err() {
                        return;
                    }
                })?;
            None
        }
    };
    std::thread::Builder::new()
        .name("switchyard-reload".into())
        .spawn(move || {
            let _keep_alive = watcher;
            let mut next_dns = std::time::Instant::now() + DNS_REFRESH;
            loop {
                let wait = next_dns.saturating_duration_since(std::time::Instant::now());
                match rx.recv_timeout(wait) {
                    Ok(()) => {
                        // Coalesce a burst of file events into one reload.
                        if matches!(store.source, PolicySource::File(_)) {
                            std::thread::sleep(DEBOUNCE);
                        }
                        while rx.try_recv().is_ok() {}
                        let _ = store.reload();
                    }
                    Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
                        store.current().resolve_all(Duration::from_secs(5));
                        next_dns = std::time::Instant::now() + DNS_REFRESH;
                    }
                    Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => return,
                }
            }
        })?;
    Ok(())
}

/// Watch the file's directory, not the file: atomic renames and Kubernetes
/// ConfigMap symlink swaps replace the inode a file watch would follow.
fn file_watcher(
    path: &Path,
    tx: std::sync::mpsc::Sender<()>,
) -> Option<notify::RecommendedWatcher> {
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
        .to_path_buf();
    let name = path.file_name().map(|n| n.to_os_string());
    let handler = move |event: notify::Result<notify::Event>| {
        let Ok(event) = event else { return };
        if event.kind.is_access() {
            return;
        }
        let ours = event.paths.iter().any(|p| {
            p.file_name().map(|n| n.to_os_string()) == name
                || p.file_name().is_some_and(|n| n == "..data")
        });
        if ours {
            let _ = tx.send(());
        }
    };
    match notify::recommended_watcher(handler)
        .and_then(|mut w| w.watch(&dir, RecursiveMode::NonRecursive).map(|_| w))
    {
        Ok(w) => Some(w),
        Err(e) => {
            tracing::warn!(error = %e, "cannot watch the policy file; reload with SIGHUP");
            None
        }
    }
}
