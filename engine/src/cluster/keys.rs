//! Key names in Redis. Every key of one scope (a client key, user or team)
//! carries the same hash tag, `{k:<name>}`, so the keys one admission
//! script touches live in one slot and the scripts run on Redis Cluster.
//! Names come from the policy, never from a client.

use crate::tenants::ScopeKind;

/// The prefix of every key Switchyard writes.
const PREFIX: &str = "sy";

/// The hash tag of a scope. `{` and `}` inside a name would end the tag
/// early, so they are escaped, as is `%` itself.
pub fn scope_tag(kind: ScopeKind, name: &str) -> String {
    let mut tag = String::with_capacity(name.len() + 4);
    tag.push('{');
    tag.push(match kind {
        ScopeKind::Key => 'k',
        ScopeKind::User => 'u',
        ScopeKind::Team => 't',
    });
    tag.push(':');
    for c in name.chars() {
        match c {
            '{' => tag.push_str("%7B"),
            '}' => tag.push_str("%7D"),
            '%' => tag.push_str("%25"),
            c => tag.push(c),
        }
    }
    tag.push('}');
    tag
}

/// The three keys of one limit entry: its request bucket, its token bucket
/// and its set of concurrency leases. `pattern` names a per-model entry.
pub fn limit_keys(tag: &str, pattern: Option<&str>) -> [String; 3] {
    let base = match pattern {
        None => format!("{PREFIX}:{tag}:l"),
        Some(p) => format!("{PREFIX}:{tag}:m:{p}"),
    };
    [
        format!("{base}:rpm"),
        format!("{base}:tpm"),
        format!("{base}:conc"),
    ]
}

/// The set of live replicas (one slot: it is one key).
pub fn nodes() -> String {
    format!("{PREFIX}:{{cluster}}:nodes")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The slot-deciding part of a key, as Redis Cluster reads it.
    fn hash_tag(key: &str) -> &str {
        let open = key.find('{').unwrap();
        let close = open + key[open..].find('}').unwrap();
        &key[open + 1..close]
    }

    #[test]
    fn keys_of_one_scope_share_a_slot_and_names_cannot_break_out() {
        let tag = scope_tag(ScopeKind::Key, "ci}{bot%");
        assert_eq!(tag, "{k:ci%7D%7Bbot%25}");
        let a = limit_keys(&tag, None);
        let b = limit_keys(&tag, Some("gpt-*"));
        let tags: Vec<_> = a.iter().chain(b.iter()).map(|k| hash_tag(k)).collect();
        assert!(tags.iter().all(|t| *t == "k:ci%7D%7Bbot%25"), "{tags:?}");
        assert_ne!(
            scope_tag(ScopeKind::User, "a"),
            scope_tag(ScopeKind::Team, "a")
        );
    }
}
