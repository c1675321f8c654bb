//! Which part of a prompt the encoder reads. Classifying the whole
//! conversation would cost quadratically in its length and mostly measure
//! the history; the task is stated in the last user turn, usually at its
//! start ("Summarize the following…") and sometimes at its end (a question
//! after a pasted document). So the window is the head and tail of the last
//! user turn, then the head of the system prompt, which only matters when
//! the turn itself is short ("go on"). The encoder truncates at
//! `max_tokens` word pieces, so the system head is what gets cut first.

/// Characters of the last user turn kept whole; longer turns keep a head
/// and a tail. About 4 characters a word piece in English prose.
pub const USER_WHOLE_CHARS: usize = 176;
pub const USER_HEAD_CHARS: usize = 120;
pub const USER_TAIL_CHARS: usize = 48;
pub const SYSTEM_HEAD_CHARS: usize = 64;

/// The text the classifier sees for a conversation.
pub fn prompt_window(system: Option<&str>, last_user: &str) -> String {
    let user = last_user.trim();
    let mut out = String::with_capacity(USER_WHOLE_CHARS + SYSTEM_HEAD_CHARS + 8);
    if let Some(system) = system.map(str::trim).filter(|s| !s.is_empty()) {
        out.push_str(head(system, SYSTEM_HEAD_CHARS));
        out.push('\n');
    }
    if user.chars().count() <= USER_WHOLE_CHARS {
        out.push_str(user);
    } else {
        out.push_str(head(user, USER_HEAD_CHARS));
        out.push_str(" … ");
        out.push_str(tail(user, USER_TAIL_CHARS));
    }
    out
}

/// At most `n` characters from the start, cut at a char boundary.
fn head(s: &str, n: usize) -> &str {
    match s.char_indices().nth(n) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

/// At most `n` characters from the end, cut at a char boundary.
fn tail(s: &str, n: usize) -> &str {
    let count = s.chars().count();
    if count <= n {
        return s;
    }
    match s.char_indices().nth(count - n) {
        Some((i, _)) => &s[i..],
        None => s,
    }
}

/// The cache key of a window. `DefaultHasher::new()` has fixed keys, so
/// equal windows hash equally on every thread.
pub fn window_key(window: &str) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    window.hash(&mut h);
    h.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_turns_whole_long_turns_head_and_tail() {
        assert_eq!(prompt_window(None, "  fix this bug  "), "fix this bug");
        assert_eq!(
            prompt_window(Some("You are a coding agent."), "go on"),
            "You are a coding agent.\ngo on"
        );
        let long = format!(
            "Summarize this: {} What is the verdict?",
            "blah ".repeat(200)
        );
        let w = prompt_window(None, &long);
        assert!(w.starts_with("Summarize this: "));
        assert!(w.ends_with("What is the verdict?"));
        assert_eq!(w.chars().count(), USER_HEAD_CHARS + 3 + USER_TAIL_CHARS);
        // Multi-byte characters are cut at boundaries.
        let wide = "é".repeat(1000);
        assert_eq!(
            prompt_window(None, &wide).chars().count(),
            USER_HEAD_CHARS + 3 + USER_TAIL_CHARS
        );
        assert_eq!(window_key("a"), window_key("a"));
        assert_ne!(window_key("a"), window_key("b"));
    }
}
