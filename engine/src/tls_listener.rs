//! HTTPS on the client listener: rustls through Pingora's acceptor, TLS 1.2
//! and 1.3 only, HTTP/2 for clients that offer it (ALPN `h2`, then
//! `http/1.1`).
//!
//! The certificate is served from memory ([`LiveCert`]) and reloaded when
//! its files change, the way a policy reloads: read → validate (the chain
//! parses, the key is one rustls can sign with, and it matches the leaf) →
//! atomic swap. A pair that fails validation (a half-written file, a key
//! from another certificate) is logged and counted, and the old one keeps
//! serving. Handshakes in progress never see a half-changed pair.

use arc_swap::ArcSwap;
use pingora::listeners::tls::Acceptor;
use pingora::tls::sign::CertifiedKey;
use pingora::tls::{version, ClientHello, CryptoProvider, ResolvesServerCert, ServerConfig};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

/// How often the files are checked for a change.
const WATCH_EVERY: Duration = Duration::from_secs(1);

/// The certificate being served, and where it comes from.
#[derive(Debug)]
pub struct LiveCert {
    current: ArcSwap<CertifiedKey>,
    cert_file: PathBuf,
    key_file: PathBuf,
    pub reloads_ok: AtomicU64,
    pub reloads_failed: AtomicU64,
}

impl ResolvesServerCert for LiveCert {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current.load_full())
    }
}

/// What identifies a version of the two files, cheaply.
type Stamp = [(Option<SystemTime>, u64); 2];

fn stamp(cert: &Path, key: &Path) -> Stamp {
    let one = |p: &Path| {
        std::fs::metadata(p)
            .map(|m| (m.modified().ok(), m.len()))
            .unwrap_or((None, 0))
    };
    [one(cert), one(key)]
}

/// The process's rustls provider (Pingora's: ring).
fn provider() -> Result<Arc<CryptoProvider>, String> {
    pingora::tls::install_default_crypto_provider();
    CryptoProvider::get_default()
        .cloned()
        .ok_or_else(|| "no rustls crypto provider is installed".to_string())
}

/// Read and check a certificate chain and its key.
pub fn load(cert_file: &Path, key_file: &Path) -> Result<CertifiedKey, String> {
    let (cert, key) = (cert_file.display(), key_file.display());
    let (chain, private) =
        pingora::tls::load_certs_and_key_files(&cert.to_string(), &key.to_string())
            .map_err(|e| format!("cannot read {cert} or {key}: {e}"))?
            .ok_or_else(|| format!("no certificate in {cert}, or no private key in {key}"))?;
    CertifiedKey::from_der(chain, private, provider()?.as_ref())
        .map_err(|e| format!("{key} is not a usable key for the certificate in {cert}: {e}"))
}

impl LiveCert {
    pub fn open(cert_file: &Path, key_file: &Path) -> Result<Arc<LiveCert>, String> {
        let first = load(cert_file, key_file)?;
        Ok(Arc::new(LiveCert {
            current: ArcSwap::from_pointee(first),
            cert_file: cert_file.to_path_buf(),
            key_file: key_file.to_path_buf(),
            reloads_ok: AtomicU64::new(0),
            reloads_failed: AtomicU64::new(0),
        }))
    }

    /// Validate the files as they are now and swap them in; on failure the
    /// served pair stays.
    pub fn reload(&self) -> Result<(), String> {
        match load(&self.cert_file, &self.key_file) {
            Ok(pair) => {
                self.current.store(Arc::new(pair));
                self.reloads_ok.fetch_add(1, Relaxed);
                Ok(())
            }
            Err(e) => {
                self.reloads_failed.fetch_add(1, Relaxed);
                Err(e)
            }
        }
    }

    /// Watch the files from a thread of its own; reload on every change.
    pub fn watch(self: &Arc<Self>) -> std::io::Result<()> {
        let live = self.clone();
        std::thread::Builder::new()
            .name("switchyard-tls-watch".into())
            .spawn(move || {
                let mut seen = stamp(&live.cert_file, &live.key_file);
                loop {
                    std::thread::sleep(WATCH_EVERY);
                    let now = stamp(&live.cert_file, &live.key_file);
                    if now == seen {
                        continue;
                    }
                    seen = now;
                    match live.reload() {
                        Ok(()) => tracing::info!(cert = %live.cert_file.display(), "listener certificate reloaded"),
                        Err(e) => tracing::warn!(error = %e, "listener certificate not reloaded; the previous one keeps serving"),
                    }
                }
            })
            .map(|_| ())
    }

    /// The acceptor every client connection's handshake goes through.
    pub fn acceptor(self: &Arc<Self>) -> Result<Acceptor, String> {
        let mut config = ServerConfig::builder_with_provider(provider()?)
            .with_protocol_versions(&[&version::TLS12, &version::TLS13])
            .map_err(|e| format!("TLS settings: {e}"))?
            .with_no_client_auth()
            .with_cert_resolver(self.clone());
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(Acceptor::from_server_config(Arc::new(config)))
    }

    pub fn render(&self, out: &mut String) {
        use std::fmt::Write;
        let _ = writeln!(out, "# HELP switchyard_tls_reloads_total Listener certificate reloads by result.\n# TYPE switchyard_tls_reloads_total counter");
        let _ = writeln!(
            out,
            "switchyard_tls_reloads_total{{result=\"ok\"}} {}\nswitchyard_tls_reloads_total{{result=\"error\"}} {}",
            self.reloads_ok.load(Relaxed),
            self.reloads_failed.load(Relaxed)
        );
    }
}
