//! Against the real model files from `scripts/models.sh`. Skipped (with a
//! message) when they are absent, unless SWITCHYARD_REQUIRE_MODEL=1, which
//! `scripts/test.sh` sets after installing them.

use classifier::pooling::dot;
use classifier::{
    ClassifierError, ClassifierService, Encoder, EncoderOptions, ModelFiles, ServiceOptions,
    Signature,
};
use std::path::PathBuf;

fn model_dir() -> Option<PathBuf> {
    let dir = std::env::var_os("SWITCHYARD_MODEL_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../.cache/models"));
    if dir.join("minilm/model.onnx").is_file() {
        return Some(dir);
    }
    assert!(
        std::env::var("SWITCHYARD_REQUIRE_MODEL").as_deref() != Ok("1"),
        "model files required but absent from {}",
        dir.display()
    );
    eprintln!(
        "skipping: no model files in {} (run scripts/models.sh)",
        dir.display()
    );
    None
}

const TEXTS: [&str; 4] = [
    "Write a Python function that reverses a linked list.",
    "What is 17 times 23?",
    "Summarize the following article in three sentences: the council met on Tuesday to discuss the budget.",
    "hi",
];

#[test]
fn two_input_distilbert_signature_matches_three_input_bert() {
    let Some(dir) = model_dir() else { return };
    let three = ModelFiles::in_dir(&dir);
    let two = ModelFiles {
        model: dir.join("minilm/two-input.onnx"),
        ..three.clone()
    };
    let mut bert = Encoder::load(&three, &EncoderOptions::default()).unwrap();
    let mut distil = Encoder::load(&two, &EncoderOptions::default()).unwrap();
    assert_eq!(bert.signature(), Signature::ThreeInputs);
    assert_eq!(distil.signature(), Signature::TwoInputs);
    assert_eq!((bert.dim(), distil.dim()), (384, 384));
    let a = bert.embed(&TEXTS).unwrap();
    let b = distil.embed(&TEXTS).unwrap();
    for (x, y) in a.iter().zip(&b) {
        assert!(
            dot(x, y) > 0.9999,
            "single-segment inputs: same network, same vector"
        );
        assert!((dot(x, x) - 1.0).abs() < 1e-4, "normalised");
    }
}

#[test]
fn padding_in_a_batch_barely_changes_a_vector() {
    let Some(dir) = model_dir() else { return };
    let mut enc = Encoder::load(&ModelFiles::in_dir(&dir), &EncoderOptions::default()).unwrap();
    let batch = enc.embed(&TEXTS).unwrap();
    for (text, batched) in TEXTS.iter().zip(&batch) {
        let alone = enc.embed(&[text]).unwrap().remove(0);
        // Not exactly equal: dynamic int8 quantization picks one activation
        // scale per tensor, and a batch is one tensor. Masking is right if
        // the pad tokens do not pull the vector away.
        assert!(
            dot(&alone, batched) > 0.97,
            "{text}: {}",
            dot(&alone, batched)
        );
    }
    // Meaning, roughly: paraphrases are nearer than unrelated prompts.
    let v = enc
        .embed(&[
            "Reverse a linked list in Python",
            "Tell me about the weather in Paris",
        ])
        .unwrap();
    assert!(dot(&batch[0], &v[0]) > dot(&batch[0], &v[1]) + 0.2);
}

#[test]
fn the_packaged_export_agrees_with_the_built_graph() {
    let Some(dir) = model_dir() else { return };
    let ours = ModelFiles::in_dir(&dir);
    let reference = ModelFiles {
        model: dir.join("reference/minilm-int8.onnx"),
        ..ours.clone()
    };
    let a = Encoder::load(&ours, &EncoderOptions::default())
        .unwrap()
        .embed(&TEXTS)
        .unwrap();
    let b = Encoder::load(&reference, &EncoderOptions::default())
        .unwrap()
        .embed(&TEXTS)
        .unwrap();
    // The built graph carries the label adapters, trained to keep the
    // mean vector where the base model puts it (operator routes compare
    // mean vectors with thresholds set in the base model's space): 0.93
    // to 0.97 here, the shortest prompt ("hi") drifting most.
    for (x, y) in a.iter().zip(&b) {
        assert!(dot(x, y) > 0.9, "{}", dot(x, y));
    }
}

#[test]
fn a_missing_file_is_named() {
    let Some(dir) = model_dir() else { return };
    let files = ModelFiles {
        tokenizer: dir.join("minilm/nope.json"),
        ..ModelFiles::in_dir(&dir)
    };
    match Encoder::load(&files, &EncoderOptions::default()) {
        Err(ClassifierError::MissingFile { path }) => assert!(path.ends_with("nope.json")),
        Err(e) => panic!("{e}"),
        Ok(_) => panic!("loaded without a tokenizer"),
    }
}

#[test]
fn service_batches_concurrent_prompts_and_caches() {
    let Some(dir) = model_dir() else { return };
    let service = std::sync::Arc::new(
        ClassifierService::start(&ModelFiles::in_dir(&dir), &ServiceOptions::default()).unwrap(),
    );
    assert_eq!(service.model_id().len(), 64);
    let threads: Vec<_> = (0..16)
        .map(|i| {
            let s = service.clone();
            std::thread::spawn(move || {
                s.embed_blocking(&format!("prompt number {i} about sorting"))
                    .unwrap()
            })
        })
        .collect();
    for t in threads {
        assert!(!t.join().unwrap().cached);
    }
    let stats = service.stats();
    let batches = stats.batches.load(std::sync::atomic::Ordering::Relaxed);
    assert_eq!(
        stats
            .batched_prompts
            .load(std::sync::atomic::Ordering::Relaxed),
        16
    );
    assert!(
        batches < 16,
        "16 concurrent prompts took {batches} passes: no batching"
    );
    let again = service
        .embed_blocking("prompt number 3 about sorting")
        .unwrap();
    assert!(again.cached);
    assert_eq!(
        service
            .stats()
            .cache_hits
            .load(std::sync::atomic::Ordering::Relaxed),
        1
    );
}

#[test]
fn the_builtin_head_labels_plain_prompts() {
    let Some(dir) = model_dir() else { return };
    let head = classifier::LabelHead::builtin().unwrap();
    let options = EncoderOptions {
        max_tokens: head.max_tokens,
        segment_edge: head.segment_edge,
        ..EncoderOptions::default()
    };
    let mut enc = Encoder::load(&ModelFiles::in_dir(&dir), &options).unwrap();
    for (prompt, label) in [
        ("Write a Rust function that parses a CSV line into fields, handling quoted commas.", "code"),
        ("A train travels 120 km in 1.5 hours. What is its average speed in km/h?", "math"),
        ("Summarize the following article in two sentences: The city council voted on Tuesday to expand the bike lane network, citing a rise in cycling commuters and fewer accidents on protected routes.", "summarize"),
        ("Translate into French: The meeting has been moved to Thursday afternoon.", "translate"),
        ("Write a short poem about the sea at night.", "creative"),
    ] {
        let window = classifier::prompt_window(None, prompt);
        let v = enc.embed(&[&window]).unwrap().remove(0);
        let p = head.probabilities(&v);
        assert_eq!(head.top(&p).0, label, "{prompt}: {p:?}");
    }
}
