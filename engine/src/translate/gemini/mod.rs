//! Google Gemini (`generateContent`, `streamGenerateContent?alt=sse`) as an
//! outbound provider. Mapping rules: `shared/conformance/README.md`.

pub mod request;
pub mod response;
pub mod stream;

/// Gemini 2.x function calls carry no id; Gemini 3 attaches a
/// `thoughtSignature` that must come back on the next turn. Both ride in
/// the OpenAI tool-call id, which every client sends back verbatim:
/// `<id>` or `<id>~ts~<signature>`.
const SIGNATURE_SEPARATOR: &str = "~ts~";

pub fn encode_call_id(id: &str, signature: Option<&str>) -> String {
    match signature {
        Some(sig) => format!("{id}{SIGNATURE_SEPARATOR}{sig}"),
        None => id.to_string(),
    }
}

pub fn decode_call_id(id: &str) -> (&str, Option<&str>) {
    match id.split_once(SIGNATURE_SEPARATOR) {
        Some((id, sig)) => (id, Some(sig)),
        None => (id, None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn call_ids_carry_signatures_both_ways() {
        let id = encode_call_id("call_1", Some("EpwI+/=="));
        assert_eq!(decode_call_id(&id), ("call_1", Some("EpwI+/==")));
        assert_eq!(decode_call_id("call_2"), ("call_2", None));
    }
}
