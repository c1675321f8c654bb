//! A provider's event stream in arbitrary pieces, through every stream
//! translator into either client API, then its end. Never a panic.
#![no_main]

use engine::translate::{self, ClientFormat};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let (piece, stream) = switchyard_fuzz::pieces(data);
    for client in [ClientFormat::OpenAi, ClientFormat::Anthropic] {
        for p in switchyard_fuzz::providers() {
            let Some(mut t) = translate::stream_translator(p, "m", true, 1_700_000_000, client)
            else {
                continue;
            };
            for chunk in stream.chunks(piece) {
                let _ = t.push(chunk);
            }
            let _ = t.finish();
            let _ = (t.failed(), t.usage());
        }
    }
});
