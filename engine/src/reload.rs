//! Policy hot reload, Vector-style: validate → build → atomic swap, and keep
//! the old policy when anything fails. Requests hold an `Arc` to the policy
//! they started with, so in-flight requests finish on the old one.

use crate::classify::ClassifierSlot;
use crate::metrics::Metrics;
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

pub struct PolicyStore {
    path: PathBuf,
    current: ArcSwap<ActivePolicy>,
    metrics: Arc<Metrics>,
    classifier: Arc<ClassifierSlot>,
}

impl PolicyStore {
    pub fn new(
        path: PathBuf,
        initial: ActivePolicy,
        metrics: Arc<Metrics>,
        classifier: Arc<ClassifierSlot>,
    ) -> Self {
        PolicyStore {
            path,
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
                tracing::error!(path = %self.path.display(), error = %e, active = %self.current().short_hash(), "policy reload rejected; keeping the active policy");
            }
        }
        result
    }

    fn try_reload(&self) -> Result<bool, String> {
        let loaded = load(&self.path, &self.classifier).map_err(|e| e.to_string())?;
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
        let next = ActivePolicy::build(loaded.snapshot, old.registry.clone(), old.tenants.clone());
        tracing::info!(from = %old.short_hash(), to = %next.short_hash(), "policy reloaded");
        self.current.store(Arc::new(next));
        Ok(true)
    }
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
    let watcher = file_watcher(&store.path, tx);
    std::thread::Builder::new()
        .name("switchyard-reload".into())
        .spawn(move || {
            let _keep_alive = watcher;
            let mut next_dns = std::time::Instant::now() + DNS_REFRESH;
            loop {
                let wait = next_dns.saturating_duration_since(std::time::Instant::now());
                match rx.recv_timeout(wait) {
                    Ok(()) => {
                        // Coalesce a burst of events into one reload.
                        std::thread::sleep(DEBOUNCE);
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
