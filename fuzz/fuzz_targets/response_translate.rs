//! A provider's whole answer and its error bodies, translated for either
//! client API from every provider kind. Never a panic.
#![no_main]

use engine::translate::{self, ClientFormat};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&selector, body)) = data.split_first() else {
        return;
    };
    let client = if selector & 1 == 0 {
        ClientFormat::OpenAi
    } else {
        ClientFormat::Anthropic
    };
    let status = [400u16, 401, 403, 404, 429, 500, 503, 529][usize::from(selector >> 1) % 8];
    for p in switchyard_fuzz::providers() {
        let _ = translate::response_json(p, "m", body, 1_700_000_000, client);
        let _ = translate::error_response(p.kind.native(), status, body, client);
    }
});
