use super::*;
use policy::{compile_yaml, snapshot, Snapshot};
use std::collections::HashMap;

fn snap(extra: &str) -> Snapshot {
    let yaml = format!(
        "version: 1\nproviders:\n  p: {{kind: openai, base_url: http://127.0.0.1:1/v1, keys: [{{key: k}}]}}\n\
         tenancy: {{trusted_proxies: [10.0.0.0/8, 'fd00::/8']}}\n\
         admin_keys: [{{name: ops, key: sk-sy-admin-000000000000}}]\n\
         client_keys:\n\
         - {{name: ok, key: sk-sy-ok-000000000000000}}\n\
         - {{name: off, key: sk-sy-off-00000000000000, status: suspended}}\n\
         - {{name: old, key: sk-sy-old-00000000000000, expires_at: '2020-01-01T00:00:00Z'}}\n\
         - {{name: lan, key: sk-sy-lan-00000000000000, source_ips: [192.168.0.0/16, '2001:db8::/32']}}\n{extra}"
    );
    let c = compile_yaml(&yaml, "t.yaml", &HashMap::new()).unwrap();
    Snapshot::from_bytes(&snapshot::encode(&c.policy, 1).unwrap()).unwrap()
}

const NOW: u64 = 1_800_000_000;

fn auth(s: &Snapshot, key: &str, ip: &str) -> Result<String, GatewayError> {
    let ip = ip.parse().ok();
    authenticate(s.policy(), Some(key.as_bytes()), ip, NOW).map(|c| c.key.name.to_string())
}

#[test]
fn extracts_bearer_or_x_api_key() {
    assert_eq!(presented_key(Some(b"Bearer abc"), None), Some(&b"abc"[..]));
    assert_eq!(
        presented_key(Some(b"bearer  abc "), None),
        Some(&b"abc"[..])
    );
    assert_eq!(
        presented_key(Some(b"Basic abc"), Some(b"k")),
        Some(&b"k"[..])
    );
    assert_eq!(presented_key(None, Some(b"")), None);
    assert_eq!(presented_key(Some(b"Bearer"), None), None);
}

#[test]
fn every_failure_mode_has_its_own_error() {
    let s = snap("");
    assert_eq!(
        auth(&s, "sk-sy-ok-000000000000000", "1.2.3.4").unwrap(),
        "ok"
    );
    assert!(matches!(
        authenticate(s.policy(), None, None, NOW),
        Err(GatewayError::MissingKey)
    ));
    assert!(matches!(
        auth(&s, "sk-sy-nope-0000000000000", "1.2.3.4"),
        Err(GatewayError::InvalidKey)
    ));
    let e = auth(&s, "sk-sy-off-00000000000000", "1.2.3.4").unwrap_err();
    assert_eq!((e.status().as_u16(), e.code()), (403, "key_suspended"));
    let e = auth(&s, "sk-sy-old-00000000000000", "1.2.3.4").unwrap_err();
    assert_eq!((e.status().as_u16(), e.code()), (401, "key_expired"));
    assert!(e.to_string().contains("2020-01-01T00:00:00Z"));
    let e = auth(&s, "sk-sy-lan-00000000000000", "1.2.3.4").unwrap_err();
    assert_eq!((e.status().as_u16(), e.code()), (403, "ip_not_allowed"));
    assert!(e.to_string().contains("1.2.3.4"));
    assert!(auth(&s, "sk-sy-lan-00000000000000", "192.168.7.7").is_ok());
    assert!(auth(&s, "sk-sy-lan-00000000000000", "2001:db8::5").is_ok());
    assert!(auth(&s, "sk-sy-lan-00000000000000", "::ffff:192.168.7.7").is_ok());
    for e in [
        auth(&s, "sk-sy-off-00000000000000", "1.2.3.4").unwrap_err(),
        auth(&s, "sk-sy-nope-0000000000000", "1.2.3.4").unwrap_err(),
    ] {
        let body = String::from_utf8(e.openai_body()).unwrap();
        assert!(!body.contains("sk-sy"), "no key material in errors: {body}");
    }
}

#[test]
fn admin_endpoint_takes_admin_keys_only() {
    let s = snap("");
    let p = s.policy();
    assert!(authenticate_admin(p, Some(b"sk-sy-admin-000000000000")).is_ok());
    assert!(matches!(
        authenticate_admin(p, Some(b"sk-sy-ok-000000000000000")),
        Err(GatewayError::AdminOnly)
    ));
    assert!(matches!(
        authenticate_admin(p, Some(b"sk-sy-zzz-00000000000000")),
        Err(GatewayError::InvalidKey)
    ));
}

#[test]
fn forwarded_for_is_believed_only_from_trusted_proxies() {
    let s = snap("");
    let t = &s.policy().tenancy;
    let ip = |peer: &str, xff: Option<&str>| {
        let lines: Vec<&[u8]> = xff.map(str::as_bytes).into_iter().collect();
        client_ip(peer.parse().ok(), &lines, t).map(|i| i.to_string())
    };
    // An untrusted peer cannot claim another address.
    assert_eq!(ip("1.2.3.4", Some("192.168.0.9")).unwrap(), "1.2.3.4");
    // Through our proxy: the last untrusted hop.
    assert_eq!(ip("10.0.0.1", Some("192.168.0.9")).unwrap(), "192.168.0.9");
    assert_eq!(
        ip("10.0.0.1", Some("6.6.6.6, 192.168.0.9, 10.0.0.2")).unwrap(),
        "192.168.0.9",
        "a spoofed left-most entry is ignored"
    );
    // A proxy that appends its own line: the client's line comes first
    // and cannot decide the address.
    let lines: [&[u8]; 2] = [b"6.6.6.6", b"192.168.0.9"];
    assert_eq!(
        client_ip("10.0.0.1".parse().ok(), &lines, t)
            .unwrap()
            .to_string(),
        "192.168.0.9"
    );
    assert_eq!(ip("fd00::1", Some("2001:db8::7")).unwrap(), "2001:db8::7");
    assert_eq!(ip("10.0.0.1", Some("10.0.0.3")).unwrap(), "10.0.0.3");
    assert_eq!(ip("10.0.0.1", Some("junk")).unwrap(), "10.0.0.1");
    assert_eq!(ip("10.0.0.1", None).unwrap(), "10.0.0.1");
}
