//! Against recorded provider traffic (`shared/conformance`).

use super::*;

const DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/conformance/");

/// The corpus sits beside the repository, as for the other corpus tests;
/// a checkout without it skips these.
fn have_corpus() -> bool {
    let there = std::path::Path::new(DIR).is_dir();
    if !there {
        eprintln!("conformance corpus not found at {DIR}: skipped");
    }
    there
}

fn corpus(path: &str) -> Vec<u8> {
    std::fs::read(format!("{DIR}{path}")).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// Feed in small, uneven pieces, as the network would.
fn tap(kind: ProviderKind, sse: bool, bytes: &[u8], complete: bool) -> (Usage, UsageSource) {
    let mut t = UsageTap::new(kind, sse, 777);
    for piece in bytes.chunks(37) {
        t.observe(piece);
    }
    t.finish(complete)
}

#[test]
fn whole_answers_report_every_token_kind() {
    if !have_corpus() {
        return;
    }
    let (u, s) = tap(
        ProviderKind::OpenAi,
        false,
        &corpus("openai/response_cached_tokens.json"),
        true,
    );
    assert_eq!(s, UsageSource::Provider);
    assert_eq!((u.input, u.cached_input, u.output), (4020, 4012, 4));
    let (u, _) = tap(
        ProviderKind::Anthropic,
        false,
        &corpus("anthropic/response_cache_read.json"),
        true,
    );
    assert_eq!(
        (u.input, u.cached_input, u.cache_write, u.output),
        (1592, 1590, 0, 4)
    );
    let (u, _) = tap(
        ProviderKind::Gemini,
        false,
        &corpus("gemini/response_thoughts_usage.json"),
        true,
    );
    assert_eq!((u.input, u.output, u.reasoning), (9, 43, 34));
    let (u, _) = tap(
        ProviderKind::Cohere,
        false,
        &corpus("cohere/response_cached_tokens.json"),
        true,
    );
    assert_eq!((u.input, u.cached_input, u.output), (2406, 2928, 2));
}

#[test]
fn streams_report_their_final_totals() {
    if !have_corpus() {
        return;
    }
    let (u, s) = tap(
        ProviderKind::OpenAi,
        true,
        &corpus("openai/stream_include_usage.sse"),
        true,
    );
    assert_eq!(s, UsageSource::Provider);
    assert_eq!((u.input, u.output, u.reasoning), (12, 100, 100));
    let (u, s) = tap(
        ProviderKind::Anthropic,
        true,
        &corpus("anthropic/stream_thinking.sse"),
        true,
    );
    assert_eq!(s, UsageSource::Provider);
    assert_eq!((u.input, u.output), (43, 282));
    let (u, _) = tap(
        ProviderKind::Gemini,
        true,
        &corpus("gemini/stream_usage_thoughts.sse"),
        true,
    );
    assert_eq!((u.input, u.output, u.reasoning), (18, 115, 35));
}

#[test]
fn interrupted_streams_are_never_zero() {
    if !have_corpus() {
        return;
    }
    // OpenAI without a usage chunk, cut halfway: one token per content event.
    let text = corpus("openai/stream_text.sse");
    let events: Vec<&[u8]> = text.split_inclusive(|b| *b == b'\n').collect();
    let half: Vec<u8> = events[..events.len() / 2].concat();
    let content = String::from_utf8_lossy(&half)
        .lines()
        .filter(|l| l.contains("\"content\":\"") && !l.contains("\"content\":\"\""))
        .count() as u64;
    assert!(content > 0);
    let (u, s) = tap(ProviderKind::OpenAi, true, &half, false);
    assert_eq!(s, UsageSource::Counted);
    assert_eq!(u.output, content);
    assert_eq!(u.input, 777, "the prompt estimate");
    // Anthropic cut after some deltas: the input is the provider's own.
    let thinking = corpus("anthropic/stream_thinking.sse");
    let cut = thinking.len() / 2;
    let deltas = String::from_utf8_lossy(&thinking[..cut])
        .matches("event: content_block_delta")
        .count() as u64;
    let (u, s) = tap(ProviderKind::Anthropic, true, &thinking[..cut], false);
    assert_eq!(s, UsageSource::Partial);
    assert_eq!(u.input, 43);
    assert!(
        u.output >= deltas.saturating_sub(1) && u.output > 0,
        "{u:?} vs {deltas}"
    );
}
