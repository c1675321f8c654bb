//! Trains the classifier's built-in label head on the set written by
//! `tools/classifier/build_dataset.py`, through the same window, encoder
//! and pooling the engine runs, and writes the head (JSON) and a markdown
//! report: in-distribution split, out-of-source families (never trained
//! on), leave-one-family-out cross-validation, and the calibrated
//! thresholds. Run by `tools/classifier/train.sh`; see it for the command.

use clap::Parser;
use classifier::{prompt_window, Encoder, EncoderOptions, LabelHead, ModelFiles, BUILTIN_LABELS};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::PathBuf;
use tools::train::{
    abstention, argmax, scores, thresholds, train_softmax, ConfusionMatrix, Scored, TrainOptions,
};

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
    /// Word pieces in each end segment the head reads beside the mean
    /// vector; 0 for the mean vector alone.
    #[arg(long, default_value_t = 8)]
    segment_edge: usize,
    /// Precision a label's confident predictions must reach out of source.
    #[arg(long, default_value_t = 0.9)]
    precision: f64,
    /// Model cache (scripts/models.sh); default SWITCHYARD_MODEL_DIR.
    #[arg(long)]
    model_dir: Option<PathBuf>,
    /// Recorded in the head's provenance.
    #[arg(long, default_value = "")]
    command: String,
    /// Out-of-family probabilities from `finetune.py
    /// --leave-one-family-out` (the encoder re-tuned without each family):
    /// the leave-one-family-out table and the thresholds come from them.
    /// Without it, folds retrain the head only.
    #[arg(long)]
    out_of_family: Option<PathBuf>,
    /// The data packages and their versions, for the report
    /// ("name==version", space separated).
    #[arg(long, default_value = "")]
    packages: String,
}

#[derive(Deserialize)]
struct Row {
    text: String,
    system: Option<String>,
    label: String,
    source: String,
    family: String,
    split: String,
}

#[derive(Deserialize)]
struct OutOfFamily {
    family: String,
    label: String,
    probabilities: Vec<f32>,
}

#[derive(Clone, Copy, PartialEq)]
enum Split {
    Train,
    Validation,
    Test,
    /// Out-of-source evaluation: never trained on.
    Eval,
}

struct Example {
    label: usize,
    family: String,
    source: String,
    split: Split,
    /// The last user message as sent.
    text: String,
    window: String,
    /// The last user message alone (no system prompt).
    user_only: String,
    tokens: usize,
}

/// A ~700-word document pasted after the request, for the long-prompt
/// figure. (Requests written after a pasted document are in the
/// hand-written set, reported as their own source.)
const FILLER: &str = "The committee reviewed the quarterly figures in detail, noting that the regional offices had reported mixed results across most product lines. Several members asked for clarification about the timing of shipments, the assumptions behind the forecast, and the reasons for the delay in hiring. The chair reminded everyone that the minutes of the previous meeting had been circulated and approved, and that the agenda for the next session would include the annual review of suppliers, the renewal of the lease for the warehouse, and a presentation by the facilities team about energy use in the main building. ";

const L2_GRID: [f32; 4] = [1e-4, 3e-4, 1e-3, 3e-3];

struct Head {
    w: Vec<f32>,
    b: Vec<f32>,
}

impl Head {
    fn fit(xs: &[Vec<f32>], ys: &[usize], classes: usize, l2: f32) -> Head {
        let opts = TrainOptions {
            l2,
            ..TrainOptions::default()
        };
        let (w, b) = train_softmax(xs, ys, classes, &opts);
        Head { w, b }
    }

    fn probabilities(&self, x: &[f32]) -> Vec<f32> {
        let mut p = scores(&self.w, &self.b, x);
        classifier::pooling::softmax(&mut p);
        p
    }

    fn confusion<'a>(
        &self,
        labels: &[String],
        pairs: impl Iterator<Item = (usize, &'a Vec<f32>)>,
    ) -> ConfusionMatrix {
        let mut cm = ConfusionMatrix::new(labels);
        for (truth, x) in pairs {
            cm.add(truth, argmax(&scores(&self.w, &self.b, x)));
        }
        cm
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    let files = match &args.model_dir {
        Some(dir) => ModelFiles::in_dir(dir),
        None => ModelFiles::from_env(),
    };
    let segment_edge = (args.segment_edge > 0).then_some(args.segment_edge);
    let options = EncoderOptions {
        max_tokens: args.max_tokens,
        intra_threads: 2,
        segment_edge,
    };
    let mut encoder = Encoder::load(&files, &options)?;
    let labels: Vec<String> = BUILTIN_LABELS.iter().map(|s| s.to_string()).collect();
    let examples = read_examples(&args.data, &labels, &encoder)?;
    let of = |s: Split| examples.iter().filter(move |e| e.split == s);
    eprintln!(
        "train {}, validation {}, test {}, evaluation {}",
        of(Split::Train).count(),
        of(Split::Validation).count(),
        of(Split::Test).count(),
        of(Split::Eval).count()
    );

    let started = std::time::Instant::now();
    let windows: Vec<&str> = examples.iter().map(|e| e.window.as_str()).collect();
    let xs = embed(&mut encoder, &windows)?;
    // Each training prompt is seen with and without its system prompt:
    // in the wild the instruction often sits in an earlier turn.
    let alt: Vec<usize> = (0..examples.len())
        .filter(|&i| {
            examples[i].split == Split::Train && examples[i].user_only != examples[i].window
        })
        .collect();
    let alt_xs = embed(
        &mut encoder,
        &alt.iter()
            .map(|&i| examples[i].user_only.as_str())
            .collect::<Vec<_>>(),
    )?;
    let test: Vec<usize> = (0..examples.len())
        .filter(|&i| examples[i].split == Split::Test)
        .collect();
    let variant = |f: &dyn Fn(&Example) -> String| -> Vec<String> {
        test.iter().map(|&i| f(&examples[i])).collect()
    };
    let user_xs = embed(&mut encoder, &refs(&variant(&|e| e.user_only.clone())))?;
    let after_xs = embed(
        &mut encoder,
        &refs(&variant(&|e| {
            prompt_window(None, &format!("{}\n\n{}", e.text, FILLER.repeat(6)))
        })),
    )?;
    eprintln!("embedded in {:.1?}", started.elapsed());

    // The training set: every training row, plus its user-only variant.
    let training = |keep: &dyn Fn(&Example) -> bool| -> (Vec<Vec<f32>>, Vec<usize>) {
        let mut x = Vec::new();
        let mut y = Vec::new();
        for (i, e) in examples.iter().enumerate() {
            if e.split == Split::Train && keep(e) {
                x.push(xs[i].clone());
                y.push(e.label);
            }
        }
        for (j, &i) in alt.iter().enumerate() {
            if keep(&examples[i]) {
                x.push(alt_xs[j].clone());
                y.push(examples[i].label);
            }
        }
        (x, y)
    };
    let pairs = |split: Split| {
        examples
            .iter()
            .zip(&xs)
            .filter(move |(e, _)| e.split == split)
            .map(|(e, x)| (e.label, x))
    };

    let (train_x, train_y) = training(&|_| true);
    let mut best: Option<(f64, f32, Head)> = None;
    for l2 in L2_GRID {
        let head = Head::fit(&train_x, &train_y, labels.len(), l2);
        let f1 = head.confusion(&labels, pairs(Split::Validation)).macro_f1();
        eprintln!("l2 {l2:e}: validation macro-F1 {f1:.4}");
        if best.as_ref().is_none_or(|b| f1 > b.0) {
            best = Some((f1, l2, head));
        }
    }
    let (val_f1, l2, head) = best.ok_or("no training examples")?;

    // Leave one family out: train without it, score every row of it. The
    // pooled out-of-family predictions also calibrate the thresholds.
    let (lofo, out_of_family) = match &args.out_of_family {
        Some(path) => read_out_of_family(path, &labels)?,
        None => head_only_folds(&examples, &xs, &labels, l2, &training),
    };
    let floors = thresholds(&out_of_family, labels.len(), args.precision, 5);

    let encoder_id = files.model_id()?;
    let dataset_sha = classifier::files::sha256_file(&args.data)?;
    let eval_scored: Vec<Scored> = pairs(Split::Eval)
        .map(|(truth, x)| Scored {
            truth,
            probabilities: head.probabilities(x),
        })
        .collect();
    let test_cm = head.confusion(&labels, pairs(Split::Test));
    let eval_cm = head.confusion(&labels, pairs(Split::Eval));
    let label_head = LabelHead {
        encoder: encoder_id.clone(),
        labels: labels.clone(),
        dim: xs.first().map_or(0, Vec::len),
        max_tokens: args.max_tokens,
        segment_edge,
        weights: head.w.iter().map(|x| round6(*x)).collect(),
        bias: head.b.iter().map(|x| round6(*x)).collect(),
        thresholds: floors.clone(),
        provenance: serde_json::json!({
            "command": args.command,
            "dataset_sha256": dataset_sha,
            "examples": {
                "train": of(Split::Train).count(),
                "validation": of(Split::Validation).count(),
                "test": of(Split::Test).count(),
                "out_of_source": of(Split::Eval).count(),
            },
            "l2": l2,
            "validation_macro_f1": round4(val_f1),
            "test_macro_f1": round4(test_cm.macro_f1()),
            "out_of_source_macro_f1": round4(eval_cm.macro_f1()),
        }),
    };
    label_head.validate()?;
    std::fs::write(&args.out, serde_json::to_string(&label_head)? + "\n")?;

    let mut r = Report::default();
    r.line(&format!(
        "Encoder `{}` (sha256 {}…), window of at most {} word pieces, {}, linear head (L2 {l2:e}, chosen on validation: macro-F1 {val_f1:.3}). Command: `{}`.",
        files.model.file_name().and_then(|n| n.to_str()).unwrap_or("model.onnx"),
        &encoder_id[..12],
        args.max_tokens,
        match segment_edge {
            Some(k) => format!("mean vector plus the mean of the first and of the last {k} word pieces"),
            None => "mean vector".into(),
        },
        args.command,
    ));
    r.line(&format!(
        "Data: dataset sha256 {}…, packages {}.",
        &dataset_sha[..12],
        if args.packages.is_empty() {
            "-"
        } else {
            &args.packages
        }
    ));

    r.heading("Out of source: prompts from sources never trained on");
    r.line("`handwritten` is classifier/eval/handwritten.txt (typed the way people type into a chat box or an agent, written for this purpose, never trained on); `registry` is packages no training row comes from. Macro-F1 is over the labels a set has.");
    let mut fams: BTreeMap<String, Vec<usize>> = BTreeMap::new();
    let mut sources: BTreeMap<String, Vec<usize>> = BTreeMap::new();
    for (i, e) in examples.iter().enumerate() {
        if e.split == Split::Eval {
            fams.entry(e.family.clone()).or_default().push(i);
            if e.source != e.family {
                sources.entry(e.source.clone()).or_default().push(i);
            }
        }
    }
    r.table_head(&["set", "prompts", "labels", "macro-F1", "accuracy"]);
    let cm_of =
        |idx: &[usize]| head.confusion(&labels, idx.iter().map(|&i| (examples[i].label, &xs[i])));
    for (name, idx) in &fams {
        r.cm_row(&format!("**{name}**"), &cm_of(idx));
    }
    for (name, idx) in &sources {
        r.cm_row(&format!("… {name}"), &cm_of(idx));
    }
    r.cm_row("**all out-of-source**", &eval_cm);
    r.line("\nPer label, all out-of-source prompts:");
    r.per_label(&eval_cm);
    r.line("\nConfusion matrix, all out-of-source prompts:\n");
    r.line(&eval_cm.to_markdown());

    r.heading("Leave one family out");
    r.line(if args.out_of_family.is_some() {
        "Each training family in turn is left out of training, the encoder's fine-tuning included (one epoch instead of three, fp32), and scored whole: how the classifier does on a source whose style it has not seen."
    } else {
        "Each training family in turn is left out of the head's training (the encoder is not re-tuned per fold) and scored whole."
    });
    r.table_head(&[
        "family left out",
        "prompts",
        "labels",
        "macro-F1",
        "accuracy",
    ]);
    for (family, cm) in &lofo {
        r.cm_row(family, cm);
    }

    r.heading("Abstention");
    let (coverage, precision) = abstention(&eval_scored, &floors);
    r.line(&format!(
        "Per label, the lowest probability at which the label was right at least {:.0}% of the time on the leave-one-family-out predictions above (never on the out-of-source sets). Below it a label is uncertain: a label rule without `min_score` falls through to the router's next rule. On the out-of-source prompts, {:.1}% get a label this way and {:.1}% of those are right (without thresholds: 100% and {:.1}%).",
        args.precision * 100.0,
        coverage * 100.0,
        precision * 100.0,
        eval_cm.accuracy() * 100.0
    ));
    r.table_head(&["label", "threshold"]);
    for (l, t) in labels.iter().zip(&floors) {
        r.line(&format!("| {l} | {t:.2} |"));
    }

    r.heading("In distribution: held-out split of the training sources");
    r.table_head(&["test set", "prompts", "labels", "macro-F1", "accuracy"]);
    let on_test = |xs_variant: &[Vec<f32>], keep: &dyn Fn(&Example) -> bool| {
        let mut cm = ConfusionMatrix::new(&labels);
        for (j, &i) in test.iter().enumerate() {
            if keep(&examples[i]) {
                cm.add(
                    examples[i].label,
                    argmax(&scores(&head.w, &head.b, &xs_variant[j])),
                );
            }
        }
        cm
    };
    let test_xs: Vec<Vec<f32>> = test.iter().map(|&i| xs[i].clone()).collect();
    r.cm_row("held-out test split", &test_cm);
    r.cm_row(
        "… last user message only (system prompt dropped)",
        &on_test(&user_xs, &|_| true),
    );
    r.cm_row(
        "… a ~700-word document pasted after the request",
        &on_test(&after_xs, &|_| true),
    );
    r.cm_row(
        "… prompts over 512 word pieces",
        &on_test(&test_xs, &|e| e.tokens > 512),
    );
    r.line("\nPer label on the test split:");
    r.per_label(&test_cm);

    r.heading("Training families");
    r.table_head(&["family", "train", "validation", "test"]);
    let families = training_families(&examples);
    for family in families {
        let n = |s: Split| {
            examples
                .iter()
                .filter(|e| e.family == family && e.split == s)
                .count()
        };
        r.line(&format!(
            "| {family} | {} | {} | {} |",
            n(Split::Train),
            n(Split::Validation),
            n(Split::Test)
        ));
    }
    std::fs::write(&args.report, &r.text)?;
    print!("{}", r.text);
    Ok(())
}

type Folds = (Vec<(String, ConfusionMatrix)>, Vec<Scored>);
/// The training vectors and labels of the examples a filter keeps.
type TrainingSet<'a> = &'a dyn Fn(&dyn Fn(&Example) -> bool) -> (Vec<Vec<f32>>, Vec<usize>);

fn read_out_of_family(
    path: &PathBuf,
    labels: &[String],
) -> Result<Folds, Box<dyn std::error::Error>> {
    let mut folds: BTreeMap<String, ConfusionMatrix> = BTreeMap::new();
    let mut scored = Vec::new();
    for line in std::fs::read_to_string(path)?
        .lines()
        .filter(|l| !l.trim().is_empty())
    {
        let row: OutOfFamily = serde_json::from_str(line)?;
        let truth = labels
            .iter()
            .position(|l| *l == row.label)
            .ok_or_else(|| format!("unknown label {}", row.label))?;
        if row.probabilities.len() != labels.len() {
            return Err(format!(
                "{}: {} probabilities",
                path.display(),
                row.probabilities.len()
            )
            .into());
        }
        folds
            .entry(row.family)
            .or_insert_with(|| ConfusionMatrix::new(labels))
            .add(truth, argmax(&row.probabilities));
        scored.push(Scored {
            truth,
            probabilities: row.probabilities,
        });
    }
    Ok((folds.into_iter().collect(), scored))
}

/// The families training rows come from, sorted.
fn training_families(examples: &[Example]) -> Vec<&str> {
    let mut families: Vec<&str> = examples
        .iter()
        .filter(|e| e.split != Split::Eval)
        .map(|e| e.family.as_str())
        .collect();
    families.sort();
    families.dedup();
    families
}

fn head_only_folds(
    examples: &[Example],
    xs: &[Vec<f32>],
    labels: &[String],
    l2: f32,
    training: TrainingSet<'_>,
) -> Folds {
    let families = training_families(examples);
    let mut folds = Vec::new();
    let mut scored = Vec::new();
    for family in families {
        let (x, y) = training(&|e| e.family != family);
        let held = Head::fit(&x, &y, labels.len(), l2);
        let mut cm = ConfusionMatrix::new(labels);
        for (e, x) in examples.iter().zip(xs) {
            if e.family == family && e.split != Split::Eval {
                let p = held.probabilities(x);
                cm.add(e.label, argmax(&p));
                scored.push(Scored {
                    truth: e.label,
                    probabilities: p,
                });
            }
        }
        eprintln!("without {family}: macro-F1 {:.3}", cm.macro_f1());
        folds.push((family.to_string(), cm));
    }
    (folds, scored)
}

fn read_examples(
    path: &PathBuf,
    labels: &[String],
    encoder: &Encoder,
) -> Result<Vec<Example>, Box<dyn std::error::Error>> {
    let data = std::fs::read_to_string(path)?;
    let mut out = Vec::new();
    for line in data.lines().filter(|l| !l.trim().is_empty()) {
        let row: Row = serde_json::from_str(line)?;
        let Some(label) = labels.iter().position(|l| *l == row.label) else {
            return Err(format!("unknown label {}", row.label).into());
        };
        let split = match row.split.as_str() {
            "train" => Split::Train,
            "validation" => Split::Validation,
            "test" => Split::Test,
            "eval" => Split::Eval,
            other => return Err(format!("unknown split {other}").into()),
        };
        out.push(Example {
            label,
            family: row.family,
            source: row.source,
            split,
            window: prompt_window(row.system.as_deref(), &row.text),
            user_only: prompt_window(None, &row.text),
            text: row.text.clone(),
            tokens: encoder.count_tokens(&format!(
                "{}\n{}",
                row.system.as_deref().unwrap_or(""),
                row.text
            ))?,
        });
    }
    Ok(out)
}

fn refs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

fn embed(enc: &mut Encoder, texts: &[&str]) -> Result<Vec<Vec<f32>>, classifier::ClassifierError> {
    let mut out = Vec::with_capacity(texts.len());
    for chunk in texts.chunks(16) {
        out.extend(enc.embed(chunk)?);
    }
    Ok(out)
}

#[derive(Default)]
struct Report {
    text: String,
}

impl Report {
    fn line(&mut self, s: &str) {
        self.text.push_str(s);
        self.text.push('\n');
    }

    fn heading(&mut self, s: &str) {
        self.line(&format!("\n## {s}\n"));
    }

    fn table_head(&mut self, cols: &[&str]) {
        self.line("");
        self.line(&format!("| {} |", cols.join(" | ")));
        let aligns: Vec<&str> = cols
            .iter()
            .enumerate()
            .map(|(i, _)| if i == 0 { "---" } else { "---:" })
            .collect();
        self.line(&format!("|{}|", aligns.join("|")));
    }

    fn cm_row(&mut self, name: &str, cm: &ConfusionMatrix) {
        let present = (0..cm.labels.len())
            .filter(|&i| cm.label(i).support > 0)
            .count();
        self.line(&format!(
            "| {name} | {} | {present} | {:.3} | {:.3} |",
            cm.total(),
            cm.macro_f1(),
            cm.accuracy()
        ));
    }

    fn per_label(&mut self, cm: &ConfusionMatrix) {
        self.line("");
        self.table_head(&["label", "precision", "recall", "F1", "support"]);
        for (i, l) in cm.labels.iter().enumerate() {
            let s = cm.label(i);
            self.line(&format!(
                "| {l} | {:.3} | {:.3} | {:.3} | {} |",
                s.precision, s.recall, s.f1, s.support
            ));
        }
    }
}

fn round6(x: f32) -> f32 {
    (x * 1e6).round() / 1e6
}

fn round4(x: f64) -> f64 {
    (x * 1e4).round() / 1e4
}
