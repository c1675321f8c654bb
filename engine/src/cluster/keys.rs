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

/// The spend counter of one budget cap in one period (named by its end).
pub fn budget_key(tag: &str, pattern: Option<&str>, monthly: bool, ends_ms: i64) -> String {
    let period = if monthly { "mo" } else { "d" };
    match pattern {
        None => format!("{PREFIX}:{tag}:b:{period}:{ends_ms}"),
        Some(p) => format!("{PREFIX}:{tag}:m:{p}:b:{period}:{ends_ms}"),
    }
}

/// The marker of one request's hold on a scope's budgets.
pub fn hold_marker(tag: &str, hold: &str) -> String {
    format!("{PREFIX}:{tag}:h:{hold}")
}

/// A token that makes one write to `key` apply at most once: in the same
/// slot as `key`, and not under any of its prefixes.
pub fn once_token(key: &str, node: &str, id: u64) -> String {
    let tag_end = key.find('}').map_or(key.len(), |i| i + 1);
    format!("{}:once:{node}#{id}", &key[..tag_end])
}

/// Cool-downs and refusals of upstream keys, by key id.
pub fn key_health() -> String {
    format!("{PREFIX}:{{cluster}}:keyhealth")
}

/// Where replicas tell each other about upstream keys.
pub fn key_health_channel() -> String {
    format!("{PREFIX}:{{cluster}}:keyhealth")
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
        let budget = budget_key(&tag, None, false, 1);
        assert_eq!(hash_tag(&once_token(&budget, "n", 7)), hash_tag(&budget));
        assert_eq!(hash_tag(&hold_marker(&tag, "n#1")), hash_tag(&budget));
        assert_ne!(
            scope_tag(ScopeKind::User, "a"),
            scope_tag(ScopeKind::Team, "a")
        );
    }
}
