//! Trains the classifier's built-in label head on the set written by
//! `tools/classifier/build_dataset.py`, through the same window and encoder
//! the engine runs, and writes the head (JSON) and a markdown report.
//! Run by `tools/classifier/train.sh`; see it for the exact command.

use clap::Parser;
use classifier::{prompt_window, Encoder, EncoderOptions, LabelHead, ModelFiles, BUILTIN_LABELS};
use serde::Deserialize;
use std::path::PathBuf;
use tools::train::{train_softmax, ConfusionMatrix, TrainOptions};

#[derive(Parser)]
struct Args {
    /// JSONL from build_dataset.py.
    #[arg(long)]
    data: PathBuf,
    #[arg(long)]
    out: PathBuf,
    #[arg(long)]
    report: PathBuf,
    /// Word pieces the encoder reads (the engine uses the head's value).
    #[arg(long, default_value_t = 48)]
    max_tokens: usize,
    /// Model cache (scripts/models.sh); default SWITCHYARD_MODEL_DIR.
    #[arg(long)]
    model_dir: Option<PathBuf>,
    /// Recorded in the head's provenance.
    #[arg(long, default_value = "")]
    command: String,
}

#[derive(Deserialize)]
struct Row {
    text: String,
    system: Option<String>,
    label: String,
    source: String,
    split: String,
}

struct Example {
    label: usize,
    templated: bool,
    window: String,
    /// The last user message alone (no system prompt).
    user_only: String,
    /// The request with a long pasted document after it.
    padded: String,
    tokens: usize,
}

/// A ~700-token document appended to test prompts for the long-prompt
/// figure: the instruction stays at the head, the tail is unrelated text.
const FILLER: &str = "The committee reviewed the quarterly figures in detail, noting that the regional offices had reported mixed results across most product lines. Several members asked for clarification about the timing of shipments, the assumptions behind the forecast, and the reasons for the delay in hiring. The chair reminded everyone that the minutes of the previous meeting had been circulated and approved, and that the agenda for the next session would include the annual review of suppliers, the renewal of the lease for the warehouse, and a presentation by the facilities team about energy use in the main building. ";

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    let files = match &args.model_dir {
        Some(dir) => ModelFiles::in_dir(dir),
        None => ModelFiles::from_env(),
    };
    let options = EncoderOptions {
        max_tokens: args.max_tokens,
        intra_threads: 2,
    };
    let mut encoder = Encoder::load(&files, &options)?;
    let labels: Vec<String> = BUILTIN_LABELS.iter().map(|s| s.to_string()).collect();
    let data = std::fs::read_to_string(&args.data)?;
    let mut splits: [Vec<Example>; 3] = Default::default();
    for line in data.lines().filter(|l| !l.trim().is_empty()) {
        let row: Row = serde_json::from_str(line)?;
        let Some(label) = labels.iter().position(|l| *l == row.label) else {
            return Err(format!("unknown label {}", row.label).into());
        };
        let split = match row.split.as_str() {
            "train" => 0,
            "validation" => 1,
            "test" => 2,
            other => return Err(format!("unknown split {other}").into()),
        };
        let padded_text = format!("{}\n\n{}", row.text, FILLER.repeat(6));
        splits[split].push(Example {
            label,
            templated: row.source.ends_with(":templated"),
            window: prompt_window(row.system.as_deref(), &row.text),
            user_only: prompt_window(None, &row.text),
            padded: prompt_window(row.system.as_deref(), &padded_text),
            tokens: encoder.count_tokens(&format!(
                "{}\n{}",
                row.system.as_deref().unwrap_or(""),
                row.text
            ))?,
        });
    }
    let [train, validation, test] = &splits;
    eprintln!(
        "train {}, validation {}, test {}",
        train.len(),
        validation.len(),
        test.len()
    );
    let embed = |enc: &mut Encoder,
                 texts: Vec<&str>|
     -> Result<Vec<Vec<f32>>, classifier::ClassifierError> {
        let mut out = Vec::with_capacity(texts.len());
        for chunk in texts.chunks(16) {
            out.extend(enc.embed(chunk)?);
        }
        Ok(out)
    };
    let started = std::time::Instant::now();
    // Each training prompt is seen with and without its system prompt:
    // in the wild the instruction often sits in an earlier turn.
    let train_windows: Vec<(&str, usize)> = train
        .iter()
        .flat_map(|e| {
            let alt = (e.user_only != e.window).then_some((e.user_only.as_str(), e.label));
            std::iter::once((e.window.as_str(), e.label)).chain(alt)
        })
        .collect();
    let xs_train = embed(
        &mut encoder,
        train_windows.iter().map(|(w, _)| *w).collect(),
    )?;
    let xs_val = embed(
        &mut encoder,
        validation.iter().map(|e| e.window.as_str()).collect(),
    )?;
    let xs_test = embed(
        &mut encoder,
        test.iter().map(|e| e.window.as_str()).collect(),
    )?;
    let xs_user = embed(
        &mut encoder,
        test.iter().map(|e| e.user_only.as_str()).collect(),
    )?;
    let xs_padded = embed(
        &mut encoder,
        test.iter().map(|e| e.padded.as_str()).collect(),
    )?;
    eprintln!("embedded in {:.1?}", started.elapsed());
    let ys_train: Vec<usize> = train_windows.iter().map(|(_, l)| *l).collect();

    let mut best = (f64::MIN, 0f32, Vec::new(), Vec::new());
    for l2 in [1e-5f32, 3e-5, 1e-4, 3e-4, 1e-3, 3e-3] {
        let opts = TrainOptions {
            l2,
            ..TrainOptions::default()
        };
        let (w, b) = train_softmax(&xs_train, &ys_train, labels.len(), &opts);
        let f1 = confusion(&labels, &w, &b, validation.iter().zip(&xs_val), |_| true).macro_f1();
        eprintln!("l2 {l2:e}: validation macro-F1 {f1:.4}");
        if f1 > best.0 {
            best = (f1, l2, w, b);
        }
    }
    let (val_f1, l2, w, b) = best;
    let all = |_: &Example| true;
    let test_cm = confusion(&labels, &w, &b, test.iter().zip(&xs_test), all);
    let natural_cm = confusion(&labels, &w, &b, test.iter().zip(&xs_test), |e| !e.templated);
    let user_cm = confusion(&labels, &w, &b, test.iter().zip(&xs_user), all);
    let padded_cm = confusion(&labels, &w, &b, test.iter().zip(&xs_padded), all);
    let long_cm = confusion(&labels, &w, &b, test.iter().zip(&xs_test), |e| {
        e.tokens > 512
    });

    let encoder_id = files.model_id()?;
    let dataset_sha = classifier::files::sha256_file(&args.data)?;
    let head = LabelHead {
        encoder: encoder_id.clone(),
        labels: labels.clone(),
        dim: xs_train.first().map_or(0, Vec::len),
        max_tokens: args.max_tokens,
        weights: w.iter().map(|x| round6(*x)).collect(),
        bias: b.iter().map(|x| round6(*x)).collect(),
        provenance: serde_json::json!({
            "command": args.command,
            "dataset_sha256": dataset_sha,
            "examples": {"train": train.len(), "validation": validation.len(), "test": test.len()},
            "l2": l2,
            "validation_macro_f1": round4(val_f1),
            "test_macro_f1": round4(test_cm.macro_f1()),
            "test_accuracy": round4(test_cm.accuracy()),
        }),
    };
    head.validate()?;
    std::fs::write(&args.out, serde_json::to_string(&head)? + "\n")?;

    let mut report = String::new();
    report.push_str(&format!(
        "Encoder `{}` (sha256 {}…), window of at most {} word pieces, linear head (L2 {l2:e}, chosen on validation: macro-F1 {:.3}).\n\n",
        files.model.file_name().and_then(|n| n.to_str()).unwrap_or("model.onnx"),
        &encoder_id[..12],
        args.max_tokens,
        val_f1
    ));
    report.push_str(&format!(
        "Examples: {} train, {} validation, {} test (dataset sha256 {}…).\n\n",
        train.len(),
        validation.len(),
        test.len(),
        &dataset_sha[..12]
    ));
    report.push_str("| test set | prompts | macro-F1 | accuracy |\n|---|---:|---:|---:|\n");
    for (name, cm) in [
        ("held-out test split", &test_cm),
        ("… without templated prompts", &natural_cm),
        ("… last user message only (system prompt dropped)", &user_cm),
        (
            "… with a ~700-word document pasted after the request",
            &padded_cm,
        ),
        ("… prompts over 512 word pieces", &long_cm),
    ] {
        report.push_str(&format!(
            "| {name} | {} | {:.3} | {:.3} |\n",
            cm.total(),
            cm.macro_f1(),
            cm.accuracy()
        ));
    }
    report.push_str("\nPer label on the test split:\n\n| label | precision | recall | F1 | support |\n|---|---:|---:|---:|---:|\n");
    for (i, l) in labels.iter().enumerate() {
        let s = test_cm.label(i);
        report.push_str(&format!(
            "| {l} | {:.3} | {:.3} | {:.3} | {} |\n",
            s.precision, s.recall, s.f1, s.support
        ));
    }
    report.push_str("\nConfusion matrix (test split):\n\n");
    report.push_str(&test_cm.to_markdown());
    std::fs::write(&args.report, &report)?;
    print!("{report}");
    Ok(())
}

fn confusion<'a>(
    labels: &[String],
    w: &[f32],
    b: &[f32],
    examples: impl Iterator<Item = (&'a Example, &'a Vec<f32>)>,
    keep: impl Fn(&Example) -> bool,
) -> ConfusionMatrix {
    let mut cm = ConfusionMatrix::new(labels);
    for (e, x) in examples.filter(|(e, _)| keep(e)) {
        cm.add(
            e.label,
            tools::train::argmax(&tools::train::scores(w, b, x)),
        );
    }
    cm
}

fn round6(x: f32) -> f32 {
    (x * 1e6).round() / 1e6
}

fn round4(x: f64) -> f64 {
    (x * 1e4).round() / 1e4
}
