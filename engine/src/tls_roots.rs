//! Upstream trust roots. Pingora's rustls connector takes a CA *file*, so the
//! bundled Mozilla roots (`webpki-root-certs`) are written once as PEM.

use base64::Engine;
use std::path::PathBuf;

/// Where the connector should load CAs from: `None` means the system store.
pub fn ca_file(setting: &str) -> Result<Option<String>, String> {
    match setting {
        "system" => Ok(None),
        "webpki" => write_webpki_bundle().map(Some),
        path => {
            if std::path::Path::new(path).is_file() {
                Ok(Some(path.to_string()))
            } else {
                Err(format!(
                    "listener.upstream_ca: {path} is not a readable PEM file"
                ))
            }
        }
    }
}

fn write_webpki_bundle() -> Result<String, String> {
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
    let path: PathBuf = std::env::temp_dir().join(format!(
        "switchyard-webpki-roots-{}.pem",
        std::process::id()
    ));
    std::fs::write(&path, pem).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    Ok(path.display().to_string())
}

#[cfg(test)]
mod tests {
    #[test]
    fn webpki_bundle_is_valid_pem() {
        let path = super::ca_file("webpki").unwrap().unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.matches("BEGIN CERTIFICATE").count() > 100);
        assert!(super::ca_file("system").unwrap().is_none());
        assert!(super::ca_file("/nonexistent.pem").is_err());
    }
}
