//! The classifier's hot paths: tokenisation, one encoder pass at 16, 64,
//! 128 and 256 word pieces, batched throughput, a cache hit, and the head
//! plus route scoring that follow a pass. Needs the model files
//! (scripts/models.sh); without them it says so and measures nothing.

use classifier::{
    prompt_window, ClassifierService, Encoder, EncoderOptions, LabelHead, ModelFiles, RouteSet,
    RouteVectors, ServiceOptions,
};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use std::hint::black_box;

fn files() -> Option<ModelFiles> {
    let files = ModelFiles::from_env();
    let files = if files.model.is_file() {
        files
    } else {
        ModelFiles::in_dir(
            &std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../.cache/models"),
        )
    };
    if files.model.is_file() {
        Some(files)
    } else {
        eprintln!("classifier benches skipped: no model files (run scripts/models.sh)");
        None
    }
}

/// Text that tokenises to about `n` word pieces (CLS and SEP included).
fn text_of(n: usize) -> String {
    let words = [
        "the", "gateway", "routes", "each", "request", "to", "a", "model", "that", "fits",
    ];
    (0..n.saturating_sub(2))
        .map(|i| words[i % words.len()])
        .collect::<Vec<_>>()
        .join(" ")
}

fn encoder(c: &mut Criterion) {
    let Some(files) = files() else { return };
    let options = EncoderOptions {
        max_tokens: 256,
        intra_threads: 1,
        segment_edge: None,
    };
    let mut enc = Encoder::load(&files, &options).expect("encoder loads");
    let mut g = c.benchmark_group("classifier/encoder");
    g.sample_size(20);
    let long = text_of(128);
    g.bench_function("tokenize_128", |b| {
        b.iter(|| enc.tokenize(&[black_box(&long)]).expect("tokenizes"))
    });
    for n in [16usize, 64, 128, 256] {
        let text = text_of(n);
        assert_eq!(enc.count_tokens(&text).expect("counts"), n);
        g.bench_with_input(BenchmarkId::new("pass", n), &text, |b, t| {
            b.iter(|| enc.embed(&[black_box(t.as_str())]).expect("embeds"))
        });
    }
    // The engine's default: a 48-piece window.
    let window = text_of(48);
    for batch in [1usize, 8] {
        let texts: Vec<String> = (0..batch).map(|i| format!("{i} {window}")).collect();
        let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
        g.throughput(Throughput::Elements(batch as u64));
        g.bench_with_input(BenchmarkId::new("batch_of_48", batch), &refs, |b, r| {
            b.iter(|| enc.embed(black_box(r)).expect("embeds"))
        });
    }
    g.finish();
}

fn service(c: &mut Criterion) {
    let Some(files) = files() else { return };
    let head = LabelHead::builtin().expect("head");
    let service = ClassifierService::start(&files, &ServiceOptions::default()).expect("service");
    let window = prompt_window(Some("You are a coding agent."), &text_of(200));
    service.embed_blocking(&window).expect("embeds");
    let mut g = c.benchmark_group("classifier/service");
    g.bench_function("cache_hit", |b| {
        b.iter(|| {
            let e = service.embed_blocking(black_box(&window)).expect("cached");
            assert!(e.cached);
            e
        })
    });
    let vector = service.embed_blocking(&window).expect("cached").vector;
    g.bench_function("head_probabilities", |b| {
        b.iter(|| head.probabilities(black_box(&vector)))
    });
    // 20 routes of 10 utterances: a large operator setup.
    let routes = RouteSet {
        dim: vector.len(),
        routes: (0..20)
            .map(|r| RouteVectors {
                name: format!("r{r}"),
                threshold: 0.5,
                positives: (0..10)
                    .flat_map(|_| vector.iter().map(|x| x * 0.9))
                    .collect(),
                negatives: vector.to_vec(),
            })
            .collect(),
    };
    g.bench_function("score_20_routes_of_10", |b| {
        b.iter(|| {
            (0..20)
                .filter_map(|i| routes.score(i, black_box(&vector)))
                .count()
        })
    });
    g.bench_function("prompt_window", |b| {
        let long = text_of(2000);
        b.iter(|| prompt_window(Some(black_box("You are terse.")), black_box(&long)))
    });
    g.finish();
}

criterion_group!(benches, encoder, service);
criterion_main!(benches);
