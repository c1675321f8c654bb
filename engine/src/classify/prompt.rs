//! What a router reads from a request: the text the classifier sees, the
//! estimated input size and whether there are images. Pure; parses only
//! the message fields it needs (borrowed), and only for requests sent to a
//! router.

use serde::Deserialize;
use serde_json::value::RawValue;
use std::borrow::Cow;

/// A rough token count for an image part: OpenAI bills a high-detail
/// 512-px tile at 170 tokens plus 85; a typical photo is a few tiles.
const IMAGE_TOKENS: u64 = 765;

#[derive(Debug, Default, PartialEq)]
pub struct PromptFacts {
    pub system: String,
    pub last_user: String,
    pub has_image: bool,
    /// Text characters / 4, plus [`IMAGE_TOKENS`] per image.
    pub input_tokens: u64,
}

#[derive(Deserialize)]
struct Message<'a> {
    #[serde(borrow, default)]
    role: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    content: Option<Content<'a>>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Content<'a> {
    Text(#[serde(borrow)] Cow<'a, str>),
    Parts(#[serde(borrow)] Vec<Part<'a>>),
    Other(serde::de::IgnoredAny),
}

#[derive(Deserialize)]
struct Part<'a> {
    #[serde(rename = "type", borrow, default)]
    kind: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    text: Option<Cow<'a, str>>,
    /// Anthropic tool results nest their content.
    #[serde(borrow, default)]
    content: Option<Box<Content<'a>>>,
}

/// OpenAI (`messages` with system/developer roles) and Anthropic (`system`
/// plus `messages`) alike. Malformed parts are ignored, not errors: the
/// provider judges the request, the router only reads it.
pub fn facts(messages: Option<&RawValue>, system: Option<&RawValue>) -> PromptFacts {
    let mut out = PromptFacts::default();
    let mut chars = 0usize;
    let mut images = 0u64;
    if let Some(system) = system {
        if let Ok(content) = serde_json::from_str::<Content<'_>>(system.get()) {
            let mut text = Joined::default();
            walk(&content, &mut images, &mut text);
            chars += text.0.chars().count();
            out.system = text.0;
        }
    }
    let list: Vec<Message<'_>> = messages
        .and_then(|m| serde_json::from_str(m.get()).ok())
        .unwrap_or_default();
    // The history is only counted; only the system prompt and the last
    // user turn are copied out.
    let mut last_user = None;
    for m in &list {
        let Some(content) = &m.content else { continue };
        match m.role.as_deref() {
            Some("system" | "developer") => {
                let mut text = Joined::default();
                walk(content, &mut images, &mut text);
                chars += text.0.chars().count();
                if !out.system.is_empty() {
                    out.system.push('\n');
                }
                out.system.push_str(&text.0);
            }
            role => {
                let mut counted = Counted::default();
                walk(content, &mut images, &mut counted);
                chars += counted.chars;
                if role == Some("user") {
                    last_user = Some(content);
                }
            }
        }
    }
    if let Some(content) = last_user {
        let mut text = Joined::default();
        walk(content, &mut 0, &mut text);
        out.last_user = text.0;
    }
    out.has_image = images > 0;
    out.input_tokens = (chars as u64).div_ceil(4) + images * IMAGE_TOKENS;
    out
}

/// Where [`walk`] puts the text pieces of a message: joined with newlines,
/// or only counted.
trait Pieces {
    fn piece(&mut self, text: &str);
}

#[derive(Default)]
struct Joined(String);

impl Pieces for Joined {
    fn piece(&mut self, text: &str) {
        if !text.is_empty() {
            if !self.0.is_empty() {
                self.0.push('\n');
            }
            self.0.push_str(text);
        }
    }
}

/// The characters [`Joined`] would hold, without building it.
#[derive(Default)]
struct Counted {
    chars: usize,
}

impl Pieces for Counted {
    fn piece(&mut self, text: &str) {
        if !text.is_empty() {
            if self.chars > 0 {
                self.chars += 1;
            }
            self.chars += text.chars().count();
        }
    }
}

fn walk(content: &Content<'_>, images: &mut u64, out: &mut impl Pieces) {
    match content {
        Content::Text(t) => out.piece(t),
        Content::Other(_) => {}
        Content::Parts(parts) => {
            for p in parts {
                if let Some("image_url" | "input_image" | "image") = p.kind.as_deref() {
                    *images += 1;
                }
                if let Some(t) = p.text.as_deref() {
                    out.piece(t);
                }
                if let Some(nested) = p.content.as_deref() {
                    walk(nested, images, out);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(s: &str) -> Box<RawValue> {
        RawValue::from_string(s.to_string()).unwrap()
    }

    #[test]
    fn openai_conversation() {
        let m = raw(r#"[{"role":"system","content":"You are terse."},
                {"role":"user","content":"first question"},
                {"role":"assistant","content":"answer"},
                {"role":"user","content":[{"type":"text","text":"What is in this picture?"},
                  {"type":"image_url","image_url":{"url":"data:image/png;base64,AAAA"}}]}]"#);
        let f = facts(Some(&m), None);
        assert_eq!(f.system, "You are terse.");
        assert_eq!(f.last_user, "What is in this picture?");
        assert!(f.has_image);
        let text = "You are terse.first questionanswerWhat is in this picture?";
        assert_eq!(
            f.input_tokens,
            (text.len() as u64).div_ceil(4) + IMAGE_TOKENS
        );
    }

    #[test]
    fn anthropic_system_blocks_and_tool_results() {
        let m = raw(
            r#"[{"role":"user","content":[{"type":"tool_result","tool_use_id":"t","content":[{"type":"text","text":"42 rows"}]},
                 {"type":"text","text":"Sum them"}]}]"#,
        );
        let s = raw(r#"[{"type":"text","text":"You are an analyst."}]"#);
        let f = facts(Some(&m), Some(&s));
        assert_eq!(
            (f.system.as_str(), f.last_user.as_str(), f.has_image),
            ("You are an analyst.", "42 rows\nSum them", false)
        );
    }

    #[test]
    fn odd_shapes_are_ignored() {
        for bad in [
            r#"{"not":"a list"}"#,
            r#"[1, "x", {"role":"user","content":7}]"#,
            "[]",
        ] {
            let m = raw(bad);
            let f = facts(Some(&m), None);
            assert_eq!((f.last_user.as_str(), f.has_image), ("", false), "{bad}");
        }
        assert_eq!(facts(None, None), PromptFacts::default());
    }
}
