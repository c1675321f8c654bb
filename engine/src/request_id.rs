//! Request ids: the client's `x-request-id` when it is sane, else ours.

use std::cell::Cell;

thread_local! {
    // A random per-thread prefix plus a counter: unique without coordination.
    static PREFIX: u64 = fastrand::u64(..);
    static COUNTER: Cell<u64> = const { Cell::new(0) };
}

pub fn generate() -> String {
    let n = COUNTER.with(|c| {
        let v = c.get().wrapping_add(1);
        c.set(v);
        v
    });
    PREFIX.with(|p| format!("req_{p:016x}{n:08x}"))
}

/// Keep a client-supplied id if it is short and plain (it ends up in logs
/// and headers); otherwise make one.
pub fn from_client(value: Option<&[u8]>) -> String {
    match value {
        Some(v)
            if !v.is_empty()
                && v.len() <= 128
                && v.iter().all(|b| {
                    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':')
                }) =>
        {
            String::from_utf8_lossy(v).into_owned()
        }
        _ => generate(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_unique_and_client_ids_are_sanitised() {
        let a = generate();
        let b = generate();
        assert_ne!(a, b);
        assert!(a.starts_with("req_") && a.len() == 4 + 24);
        assert_eq!(from_client(Some(b"trace-42")), "trace-42");
        assert!(from_client(Some(b"bad\r\nid")).starts_with("req_"));
        assert!(from_client(Some(&[b'a'; 200])).starts_with("req_"));
        assert!(from_client(None).starts_with("req_"));
    }
}
