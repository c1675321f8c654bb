//! Upstream trust roots. Pingora's rustls connector takes a CA *file*, so
//! the bundled Mozilla roots (`webpki-root-certs`) are written once as PEM,
//! into a directory only this process's user can enter: created 0700 with
//! a name nobody could have prepared (`mkdir` fails on anything already
//! there, a symlink included), the file created exclusively, 0600. Another
//! local user can neither replace the bundle with one that trusts their CA
//! nor delete it. The directory goes when the [`CaBundle`] is dropped.

use base64::Engine;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::PathBuf;

/// The CA file the connectors load, and the private directory holding it
/// when it is the bundled one.
#[derive(Debug)]
pub struct CaBundle {
    /// `None`: the system store.
    pub file: Option<String>,
    dir: Option<PathBuf>,
}

impl Drop for CaBundle {
    fn drop(&mut self) {
        if let Some(dir) = &self.dir {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

/// Where the connector should load CAs from, for `listener.upstream_ca`.
pub fn ca_file(setting: &str) -> Result<CaBundle, String> {
    match setting {
        "system" => Ok(CaBundle {
            file: None,
            dir: None,
        }),
        "webpki" => write_webpki_bundle(),
        path => {
            if std::path::Path::new(path).is_file() {
                Ok(CaBundle {
                    file: Some(path.to_string()),
                    dir: None,
                })
            } else {
                Err(format!(
                    "listener.upstream_ca: {path} is not a readable PEM file"
                ))
            }
        }
    }
}

fn webpki_pem() -> String {
    let mut pem = String::new();
    for cert in webpki_root_certs::TLS_SERVER_ROOT_CERTS {
        pem.push_str("-----BEGIN CERTIFICATE-----\n");
        let b64 = base64::engine::general_purpose::STANDARD.encode(cert.as_ref());
        for line in b64.as_bytes().chunks(64) {
            pem.push_str(&String::from_utf8_lossy(line));
            pem.push('\n');
        }
        pem.push_str("-----END CERTIFICATE-----\n");
    }
    pem
}

fn write_webpki_bundle() -> Result<CaBundle, String> {
    let dir = private_dir()?;
    let path = dir.join("webpki-roots.pem");
    let bundle = CaBundle {
        file: Some(path.display().to_string()),
        dir: Some(dir),
    };
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)
        .map_err(|e| format!("cannot create {}: {e}", path.display()))?;
    file.write_all(webpki_pem().as_bytes())
        .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    Ok(bundle)
}

/// A new 0700 directory under the temporary directory, with a random name.
fn private_dir() -> Result<PathBuf, String> {
    let mut last = None;
    for _ in 0..16 {
        let dir = std::env::temp_dir().join(format!(
            "switchyard-{}-{:016x}",
            std::process::id(),
            fastrand::u64(..)
        ));
        match std::fs::DirBuilder::new().mode(0o700).create(&dir) {
            Ok(()) => return Ok(dir),
            Err(e) => last = Some(e),
        }
    }
    Err(format!(
        "cannot create a private directory for the CA bundle: {}",
        last.map_or_else(|| "no attempt".into(), |e| e.to_string())
    ))
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn webpki_bundle_is_valid_pem_in_a_private_directory_removed_on_drop() {
        let bundle = super::ca_file("webpki").unwrap();
        let path = std::path::PathBuf::from(bundle.file.clone().unwrap());
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.matches("BEGIN CERTIFICATE").count() > 100);
        let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&path), 0o600);
        let dir = path.parent().unwrap().to_path_buf();
        assert_eq!(mode(&dir), 0o700);
        // Two gateways never share (or take over) each other's bundle.
        let other = super::ca_file("webpki").unwrap();
        assert_ne!(other.file, bundle.file);
        drop(bundle);
        assert!(!dir.exists());
        assert!(super::ca_file("system").unwrap().file.is_none());
        assert!(super::ca_file("/nonexistent.pem").is_err());
    }
}
