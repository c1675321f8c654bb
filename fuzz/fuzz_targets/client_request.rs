//! A client's request body, as both client APIs receive it: the size and
//! shape checks, the parse, the model-name check, Anthropic's validation
//! and its translation to the hub format. Never a panic.
#![no_main]

use engine::translate::{openai, ClientFormat, ClientRequest};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = engine::body::json_shape(data);
    let body = bytes::Bytes::copy_from_slice(data);
    let Ok(chat) = openai::parse_chat(&body) else {
        return;
    };
    let _ = engine::routing::check_model_name(&chat.model);
    let _ = engine::translate::anthropic::inbound::validate(&chat);
    // Every provider kind, from either client format.
    for format in [ClientFormat::OpenAi, ClientFormat::Anthropic] {
        let req = ClientRequest::new(format, &body, &chat);
        for p in switchyard_fuzz::providers() {
            let _ = engine::translate::outbound(p, "k", "m", &req);
        }
    }
});
