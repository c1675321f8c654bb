//! Each request translator on a body that parses as a chat request:
//! OpenAI (compat rules too), Anthropic, Gemini and Cohere, and the
//! Anthropic-to-OpenAI hub. Never a panic, and a Gemini path never carries
//! a character the model name could use to leave its segment.
#![no_main]

use engine::translate::{openai, ClientFormat, ClientRequest};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    // The model name the target gets comes from the input too.
    let split = rest.iter().position(|b| *b == 0).unwrap_or(0);
    let (model, body) = rest.split_at(split);
    let model = String::from_utf8_lossy(model);
    let body = bytes::Bytes::copy_from_slice(body.strip_prefix(b"\0").unwrap_or(body));
    let Ok(chat) = openai::parse_chat(&body) else {
        return;
    };
    let format = if selector & 1 == 0 {
        ClientFormat::OpenAi
    } else {
        ClientFormat::Anthropic
    };
    let req = ClientRequest::new(format, &body, &chat);
    for p in switchyard_fuzz::providers() {
        if let Ok(out) = engine::translate::outbound(p, "k", &model, &req) {
            if p.kind.native() == policy::ProviderKind::Gemini {
                let tail = out.path.split("/models/").nth(1).unwrap_or("");
                let segment = tail.rsplit_once(':').map_or(tail, |(m, _)| m);
                assert!(!segment.contains(['/', '?', '#', ':']), "{}", out.path);
            }
        }
    }
});
