//! The SSE parser on bytes in arbitrary pieces: events or an error, never a
//! panic, and the same events whatever the piece size.
#![no_main]

use engine::translate::sse::SseParser;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let (piece, stream) = switchyard_fuzz::pieces(data);
    let parse = |size: usize| {
        let mut p = SseParser::default();
        let mut out = Vec::new();
        for chunk in stream.chunks(size) {
            if p.feed(chunk, &mut out).is_err() {
                return None;
            }
        }
        p.finish(&mut out);
        Some(out)
    };
    let whole = parse(stream.len().max(1));
    let split = parse(piece);
    assert_eq!(whole, split);
});
