//! What every wire format's mock reads and answers the same way, so that
//! tests can check that content reached the provider correctly translated.

use serde_json::{json, Value};

/// The words of a content value (a string, OpenAI parts, Anthropic blocks,
/// Gemini parts), with `[image]` for each image in that provider's shape.
pub fn content_words(v: &Value) -> Vec<String> {
    match v {
        Value::String(s) => s.split_whitespace().map(str::to_string).collect(),
        Value::Array(items) => items
            .iter()
            .flat_map(|p| {
                let image = matches!(
                    p.get("type").and_then(Value::as_str),
                    Some("image_url") | Some("image")
                ) || p.get("inlineData").is_some()
                    || p.get("fileData").is_some();
                if image {
                    vec!["[image]".to_string()]
                } else {
                    p.get("text")
                        .and_then(Value::as_str)
                        .map(|t| t.split_whitespace().map(str::to_string).collect())
                        .unwrap_or_default()
                }
            })
            .collect(),
        _ => Vec::new(),
    }
}

/// `Mock reply: <the user's words>` as words, or in JSON mode one word
/// holding `{"reply": "<that text>"}`.
pub fn tokens(user_words: Vec<String>, json_mode: bool) -> Vec<String> {
    let words: Vec<String> = ["Mock".to_string(), "reply:".to_string()]
        .into_iter()
        .chain(user_words)
        .collect();
    if json_mode {
        return vec![json!({"reply": words.join(" ")}).to_string()];
    }
    words
}

/// Tokens after the first carry their leading space, so that
/// concatenating them gives the text.
pub fn space(tokens: &mut [String]) {
    for t in tokens.iter_mut().skip(1) {
        t.insert(0, ' ');
    }
}

/// The tools a forced tool choice calls: the named one, else the first two
/// offered (so two tools make a parallel call).
pub fn forced(named: Option<&str>, offered: &[&str]) -> Vec<String> {
    match named {
        Some(n) => vec![n.to_string()],
        None => offered.iter().take(2).map(|s| s.to_string()).collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn images_in_every_shape_are_seen() {
        let parts = json!([{"type": "text", "text": "what is"}, {"type": "image_url"}, {"type": "image"}, {"inlineData": {}}, {"fileData": {}}]);
        assert_eq!(
            content_words(&parts),
            ["what", "is", "[image]", "[image]", "[image]", "[image]"]
        );
        assert_eq!(
            tokens(vec!["hi".into()], true),
            [r#"{"reply":"Mock reply: hi"}"#]
        );
        assert_eq!(forced(None, &["a", "b", "c"]), ["a", "b"]);
        assert_eq!(forced(Some("c"), &["a", "b", "c"]), ["c"]);
    }
}
