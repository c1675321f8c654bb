//! Upstream TLS (rustls): a provider over HTTPS is reached when its CA is
//! trusted, and refused when it is not. Certificates are made per run.

mod common;

use common::*;
use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair};
use tools::mock::{MockConfig, MockServer};

/// A CA and a `localhost` server certificate it signed, as PEM.
fn chain() -> (String, String, String) {
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let server_key = KeyPair::generate().unwrap();
    let server = CertificateParams::new(vec!["localhost".to_string()])
        .unwrap()
        .signed_by(&server_key, &ca, &ca_key)
        .unwrap();
    (ca.pem(), server.pem(), server_key.serialize_pem())
}

fn policy(port: u16, upstream_ca: &str) -> String {
    format!(
        "version: 1\nlistener:\n  upstream_ca: {upstream_ca}\nproviders:\n  secure:\n    kind: openai\n    base_url: https://localhost:{port}/v1\n    keys: [{{key: sk-tls}}]\nmodels:\n  m:\n    targets: [{{provider: secure, model: x}}]\nclient_keys:\n  - name: t\n    key: {CLIENT_KEY}\n"
    )
}

#[test]
fn a_provider_over_https_is_verified_against_the_configured_roots() {
    let (ca, cert, key) = chain();
    let mock = MockServer::start_tls(MockConfig::default(), &cert, &key).unwrap();
    let dir = TempDir::new();
    let ca_path = dir.0.join("ca.pem");
    std::fs::write(&ca_path, ca).unwrap();

    let gw = Gateway::start(
        policy(mock.addr.port(), &ca_path.display().to_string()).as_bytes(),
        "p.yaml",
    );
    let body = r#"{"model":"m","messages":[{"role":"user","content":"over tls"}]}"#;
    let r = gw.chat(body, &[]);
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        r.json()["choices"][0]["message"]["content"],
        "Mock reply: over tls"
    );
    let streamed = gw.chat(
        r#"{"model":"m","stream":true,"messages":[{"role":"user","content":"over tls"}]}"#,
        &[],
    );
    assert!(streamed.text().trim_end().ends_with("data: [DONE]"));
    assert_eq!(mock.requests().len(), 2);
    drop(gw);

    // With the bundled public roots the test CA is not trusted: refused.
    let gw = Gateway::start(policy(mock.addr.port(), "webpki").as_bytes(), "p.yaml");
    let r = gw.chat(body, &[]);
    assert_eq!(r.status, 502, "{}", r.text());
    assert_eq!(r.json()["error"]["code"], "upstream_unreachable");
    assert!(r.text().contains("TLS"), "{}", r.text());
    assert_eq!(
        mock.requests().len(),
        2,
        "nothing reached the untrusted server"
    );
}
