//! HTTPS on the client listener: a client that trusts the test CA is
//! served over TLS 1.2 and 1.3 (HTTP/2 offered by ALPN); a new certificate
//! written over the files is served without a restart; a broken one is
//! refused and the old one keeps serving.

mod common;

use common::*;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use std::io::{BufReader, Write};
use std::net::TcpStream;
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tools::mock::{MockConfig, MockServer};

fn client(
    ca_pem: &str,
    versions: &[&'static rustls::SupportedProtocolVersion],
    alpn: &[&[u8]],
) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_slice(ca_pem.as_bytes()).unwrap())
        .unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(versions)
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    // Every handshake sees the certificate served now, not a resumed
    // session's.
    config.resumption = rustls::client::Resumption::disabled();
    Arc::new(config)
}

/// One HTTP/1.1 request over TLS: the response, the TLS version and the
/// ALPN protocol agreed.
fn https(
    port: u16,
    config: Arc<rustls::ClientConfig>,
    request: &str,
) -> std::io::Result<(Response, Option<rustls::ProtocolVersion>, Option<Vec<u8>>)> {
    let name = ServerName::try_from("localhost").unwrap();
    let conn = rustls::ClientConnection::new(config, name).map_err(std::io::Error::other)?;
    let tcp = TcpStream::connect(("127.0.0.1", port))?;
    tcp.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut tls = rustls::StreamOwned::new(conn, tcp);
    tls.write_all(request.as_bytes())?;
    tls.flush()?;
    let version = tls.conn.protocol_version();
    let alpn = tls.conn.alpn_protocol().map(|p| p.to_vec());
    let response = read_response(&mut BufReader::new(tls))?;
    Ok((response, version, alpn))
}

/// The protocol ALPN settles on, from the handshake alone.
fn negotiated(port: u16, config: Arc<rustls::ClientConfig>) -> Option<Vec<u8>> {
    let name = ServerName::try_from("localhost").unwrap();
    let mut conn = rustls::ClientConnection::new(config, name).unwrap();
    let mut tcp = TcpStream::connect(("127.0.0.1", port)).unwrap();
    while conn.is_handshaking() {
        conn.complete_io(&mut tcp).unwrap();
    }
    conn.alpn_protocol().map(|p| p.to_vec())
}

const HEALTH: &str = "GET /healthz HTTP/1.1\r\nhost: localhost\r\nconnection: close\r\n\r\n";

#[test]
fn https_is_served_and_a_new_certificate_is_taken_without_a_restart() {
    let mock = MockServer::start(MockConfig::default()).unwrap();
    let dir = TempDir::new();
    let (ca1, cert1, key1) = test_chain();
    let (cert_file, key_file) = (dir.0.join("cert.pem"), dir.0.join("key.pem"));
    std::fs::write(&cert_file, &cert1).unwrap();
    std::fs::write(&key_file, &key1).unwrap();
    let admin = free_port();
    let yaml = policy_yaml(&mock.base_url(), 1 << 20, "").replace(
        "listener:\n",
        &format!(
            "listener:\n  admin_address: 127.0.0.1:{admin}\n  tls: {{cert_file: {}, key_file: {}}}\n",
            cert_file.display(),
            key_file.display()
        ),
    );
    let policy = dir.0.join("p.yaml");
    std::fs::write(&policy, yaml).unwrap();
    let port = free_port();
    let _gw = Gateway {
        child: Gateway::spawn(&policy, port, Stdio::null()),
        port,
        dir: TempDir::new(),
        policy: policy.clone(),
    };
    let v12_13: &[&'static rustls::SupportedProtocolVersion] =
        &[&rustls::version::TLS13, &rustls::version::TLS12];
    let trusts_1 = client(&ca1, v12_13, &[b"http/1.1"]);
    let deadline = Instant::now() + Duration::from_secs(30);
    while https(port, trusts_1.clone(), HEALTH).is_err() {
        assert!(
            Instant::now() < deadline,
            "the HTTPS listener never came up"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    // TLS 1.3 and 1.2 each, and a whole chat request.
    for version in [&rustls::version::TLS13, &rustls::version::TLS12] {
        let (r, got, _) = https(port, client(&ca1, &[version], &[b"http/1.1"]), HEALTH).unwrap();
        assert_eq!(r.status, 200);
        assert_eq!(got, Some(version.version));
    }
    let body = r#"{"model":"fast","messages":[{"role":"user","content":"over https"}]}"#;
    let chat = format!(
        "POST /v1/chat/completions HTTP/1.1\r\nhost: localhost\r\nconnection: close\r\nauthorization: Bearer {CLIENT_KEY}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    );
    let (r, _, _) = https(port, trusts_1.clone(), &chat).unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        r.json()["choices"][0]["message"]["content"],
        "Mock reply: over https"
    );
    // HTTP/2 is offered to clients that ask for it.
    let h2 = client(&ca1, v12_13, &[b"h2", b"http/1.1"]);
    assert_eq!(negotiated(port, h2).as_deref(), Some(&b"h2"[..]));
    // Plain HTTP on the HTTPS port is not served.
    assert!(try_request(port, "GET", "/healthz", &[], b"").map_or(true, |r| r.status != 200));

    // A new certificate from another CA, written over the files.
    let (ca2, cert2, key2) = test_chain();
    std::fs::write(dir.0.join("key.tmp"), &key2).unwrap();
    std::fs::write(dir.0.join("cert.tmp"), &cert2).unwrap();
    std::fs::rename(dir.0.join("key.tmp"), &key_file).unwrap();
    std::fs::rename(dir.0.join("cert.tmp"), &cert_file).unwrap();
    let trusts_2 = client(&ca2, v12_13, &[b"http/1.1"]);
    let deadline = Instant::now() + Duration::from_secs(20);
    while https(port, trusts_2.clone(), HEALTH).is_err() {
        assert!(
            Instant::now() < deadline,
            "the new certificate was never served"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(
        https(port, trusts_1, HEALTH).is_err(),
        "the old certificate is still served"
    );

    // A key that does not match: refused, and the second pair keeps serving.
    let (_, _, other_key) = test_chain();
    std::fs::write(&key_file, other_key).unwrap();
    let metric = |text: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix("switchyard_tls_reloads_total{result=\"error\"} "))
            .and_then(|v| v.trim().parse::<u64>().ok())
            .unwrap_or(0)
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let m = try_request(admin, "GET", "/metrics", &[], b"")
            .unwrap()
            .text();
        if metric(&m) >= 1 {
            break;
        }
        assert!(Instant::now() < deadline, "the bad key was never noticed");
        std::thread::sleep(Duration::from_millis(100));
    }
    let (r, _, _) = https(port, trusts_2, HEALTH).unwrap();
    assert_eq!(r.status, 200);
}
