//! A BERT-family ONNX model and its tokenizer. The signature is read from
//! the session, not assumed: DistilBERT exports take `input_ids` and
//! `attention_mask`; BERT and MiniLM also take `token_type_ids`. The output
//! decides the pooling: token states are mean-pooled, a pooled output is
//! used as is, and a sequence classifier's logits become label scores.

use crate::error::{ClassifierError, Result};
use crate::files::ModelFiles;
use crate::pooling::{l2_normalize, mean_pool, segment_pool, softmax};
use ort::session::builder::GraphOptimizationLevel;
use ort::session::Session;
use ort::value::{Tensor, ValueType};
use tokenizers::{Tokenizer, TruncationParams};

/// The longest input the encoder sees, in word pieces. Cost grows with
/// length (≈ 0.09 ms a word piece on one core here); on the held-out set 48
/// classifies within a point of 64 (see classifier/heads/REPORT.md), and
/// the window in `window.rs` chooses which 48.
pub const DEFAULT_MAX_TOKENS: usize = 48;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signature {
    /// `input_ids`, `attention_mask` (DistilBERT).
    TwoInputs,
    /// `input_ids`, `attention_mask`, `token_type_ids` (BERT, MiniLM).
    ThreeInputs,
}

#[derive(Debug, Clone, PartialEq)]
pub enum OutputKind {
    /// `[batch, seq, dim]` token states: mean-pooled and normalised.
    TokenStates { dim: usize },
    /// `[batch, dim]` sentence vectors: normalised.
    Pooled { dim: usize },
    /// `[batch, labels]` logits of a sequence classifier: softmaxed.
    Logits { labels: Vec<String> },
}

#[derive(Debug, Clone)]
pub struct EncoderOptions {
    pub max_tokens: usize,
    /// ONNX Runtime intra-op threads per session. One keeps inference from
    /// competing with the proxy's own threads for the cores.
    pub intra_threads: usize,
    /// Token-state encoders only: append the two end segments of
    /// [`segment_pool`] to the mean vector (a label head trained on them
    /// asks for them; routes read only the mean part).
    pub segment_edge: Option<usize>,
}

impl Default for EncoderOptions {
    fn default() -> Self {
        EncoderOptions {
            max_tokens: DEFAULT_MAX_TOKENS,
            intra_threads: 1,
            segment_edge: None,
        }
    }
}

/// Token ids for a batch, padded to its longest member.
pub struct TokenBatch {
    pub ids: Vec<i64>,
    pub mask: Vec<i64>,
    pub types: Vec<i64>,
    pub batch: usize,
    pub seq: usize,
}

pub struct Encoder {
    session: Session,
    tokenizer: Tokenizer,
    signature: Signature,
    output: OutputKind,
    output_name: String,
    segment_edge: Option<usize>,
}

impl Encoder {
    pub fn load(files: &ModelFiles, options: &EncoderOptions) -> Result<Encoder> {
        files.verify()?;
        let env = crate::runtime::environment(&files.runtime)?;
        let model_err = |message: String| ClassifierError::Model {
            path: files.model.display().to_string(),
            message,
        };
        let session = Session::builder(&env)
            .and_then(|b| Ok(b.with_optimization_level(GraphOptimizationLevel::Level3)?))
            .and_then(|b| Ok(b.with_intra_threads(options.intra_threads.max(1))?))
            .and_then(|b| Ok(b.with_inter_threads(1)?))
            .map_err(|e| model_err(e.to_string()))?
            .commit_from_file(&files.model)
            .map_err(|e| model_err(e.to_string()))?;
        let tokenizer = load_tokenizer(files, options.max_tokens)?;
        let signature = signature(&session)?;
        let (output_name, output) = output_kind(&session, files)?;
        Ok(Encoder {
            session,
            tokenizer,
            signature,
            output,
            output_name,
            segment_edge: options.segment_edge,
        })
    }

    pub fn signature(&self) -> Signature {
        self.signature
    }

    pub fn output(&self) -> &OutputKind {
        &self.output
    }

    /// Length of the vectors [`Encoder::embed`] returns.
    pub fn dim(&self) -> usize {
        match &self.output {
            OutputKind::TokenStates { dim } | OutputKind::Pooled { dim } => *dim,
            OutputKind::Logits { labels } => labels.len(),
        }
    }

    /// Length of the vectors [`Encoder::embed`] returns: [`Encoder::dim`],
    /// or three times it with end segments.
    pub fn feature_dim(&self) -> usize {
        match (&self.output, self.segment_edge) {
            (OutputKind::TokenStates { dim }, Some(_)) => 3 * dim,
            _ => self.dim(),
        }
    }

    pub fn tokenize(&self, texts: &[&str]) -> Result<TokenBatch> {
        let encodings = self
            .tokenizer
            .encode_batch_fast(texts.to_vec(), true)
            .map_err(|e| ClassifierError::Tokenize(e.to_string()))?;
        let seq = encodings.iter().map(|e| e.len()).max().unwrap_or(0).max(1);
        let batch = encodings.len();
        let mut out = TokenBatch {
            ids: vec![0; batch * seq],
            mask: vec![0; batch * seq],
            types: vec![0; batch * seq],
            batch,
            seq,
        };
        for (b, e) in encodings.iter().enumerate() {
            let row = b * seq;
            for (t, ((id, m), ty)) in e
                .get_ids()
                .iter()
                .zip(e.get_attention_mask())
                .zip(e.get_type_ids())
                .enumerate()
            {
                out.ids[row + t] = i64::from(*id);
                out.mask[row + t] = i64::from(*m);
                out.types[row + t] = i64::from(*ty);
            }
        }
        Ok(out)
    }

    /// Word pieces in `text` before truncation (for reports, not routing).
    pub fn count_tokens(&self, text: &str) -> Result<usize> {
        let mut whole = self.tokenizer.clone();
        whole
            .with_truncation(None)
            .map_err(|e| ClassifierError::Tokenize(e.to_string()))?;
        whole
            .encode_fast(text, true)
            .map(|e| e.len())
            .map_err(|e| ClassifierError::Tokenize(e.to_string()))
    }

    /// One normalised vector (or label distribution) per text.
    pub fn embed(&mut self, texts: &[&str]) -> Result<Vec<Vec<f32>>> {
        if texts.is_empty() {
            return Ok(Vec::new());
        }
        let batch = self.tokenize(texts)?;
        self.run(batch)
    }

    pub fn run(&mut self, batch: TokenBatch) -> Result<Vec<Vec<f32>>> {
        let infer = |e: ort::Error| ClassifierError::Inference(e.to_string());
        let shape = [batch.batch, batch.seq];
        let mask = batch.mask.clone();
        let ids = Tensor::from_array((shape, batch.ids)).map_err(infer)?;
        let attention = Tensor::from_array((shape, batch.mask)).map_err(infer)?;
        let outputs = match self.signature {
            Signature::TwoInputs => self.session.run(ort::inputs![
                "input_ids" => ids,
                "attention_mask" => attention,
            ]),
            Signature::ThreeInputs => {
                let types = Tensor::from_array((shape, batch.types)).map_err(infer)?;
                self.session.run(ort::inputs![
                    "input_ids" => ids,
                    "attention_mask" => attention,
                    "token_type_ids" => types,
                ])
            }
        }
        .map_err(infer)?;
        let value = outputs
            .get(&self.output_name)
            .ok_or_else(|| ClassifierError::Inference(format!("no output {}", self.output_name)))?;
        let (dims, data) = value.try_extract_tensor::<f32>().map_err(infer)?;
        let dims: Vec<usize> = dims.iter().map(|d| (*d).max(0) as usize).collect();
        let mut vectors = match (&self.output, dims.as_slice()) {
            (OutputKind::TokenStates { .. }, [b, s, d]) => match self.segment_edge {
                // Each part is normalised on its own.
                Some(edge) => return Ok(segment_pool(data, &mask, *b, *s, *d, edge)),
                None => mean_pool(data, &mask, *b, *s, *d),
            },
            (OutputKind::Pooled { .. } | OutputKind::Logits { .. }, [b, d]) => {
                (0..*b).map(|i| data[i * d..(i + 1) * d].to_vec()).collect()
            }
            _ => {
                return Err(ClassifierError::Inference(format!(
                    "unexpected output shape {dims:?}"
                )))
            }
        };
        for v in &mut vectors {
            match self.output {
                OutputKind::Logits { .. } => softmax(v),
                _ => l2_normalize(v),
            }
        }
        Ok(vectors)
    }
}

fn load_tokenizer(files: &ModelFiles, max_tokens: usize) -> Result<Tokenizer> {
    let err = |message: String| ClassifierError::Tokenizer {
        path: files.tokenizer.display().to_string(),
        message,
    };
    let mut tokenizer = Tokenizer::from_file(&files.tokenizer).map_err(|e| err(e.to_string()))?;
    // The packaged tokenizer pads every input to 128; we pad per batch
    // instead, so a short prompt costs a short inference.
    tokenizer.with_padding(None);
    tokenizer
        .with_truncation(Some(TruncationParams {
            max_length: max_tokens,
            ..TruncationParams::default()
        }))
        .map_err(|e| err(e.to_string()))?;
    Ok(tokenizer)
}

fn signature(session: &Session) -> Result<Signature> {
    let names: Vec<&str> = session.inputs().iter().map(|i| i.name()).collect();
    let has = |n: &str| names.contains(&n);
    let known = ["input_ids", "attention_mask", "token_type_ids"];
    if let Some(other) = names.iter().find(|n| !known.contains(n)) {
        return Err(ClassifierError::Signature(format!(
            "unexpected input `{other}` (inputs: {names:?})"
        )));
    }
    match (
        has("input_ids"),
        has("attention_mask"),
        has("token_type_ids"),
    ) {
        (true, true, false) => Ok(Signature::TwoInputs),
        (true, true, true) => Ok(Signature::ThreeInputs),
        _ => Err(ClassifierError::Signature(format!(
            "need input_ids and attention_mask (inputs: {names:?})"
        ))),
    }
}

fn output_kind(session: &Session, files: &ModelFiles) -> Result<(String, OutputKind)> {
    let rank_dims = |t: &ValueType| match t {
        ValueType::Tensor { shape, .. } => Some(shape.to_vec()),
        _ => None,
    };
    let outputs: Vec<(String, Vec<i64>)> = session
        .outputs()
        .iter()
        .filter_map(|o| rank_dims(o.dtype()).map(|d| (o.name().to_string(), d)))
        .collect();
    let pick = |names: &[&str]| outputs.iter().find(|(n, _)| names.contains(&n.as_str()));
    if let Some((name, dims)) = pick(&["logits"]) {
        let count = dims.last().copied().unwrap_or(-1);
        let labels = label_names(files, count)?;
        return Ok((name.clone(), OutputKind::Logits { labels }));
    }
    if let Some((name, dims)) = pick(&["sentence_embedding", "pooler_output"]) {
        let dim = last_dim(dims)?;
        return Ok((name.clone(), OutputKind::Pooled { dim }));
    }
    let states =
        pick(&["last_hidden_state"]).or_else(|| outputs.iter().find(|(_, d)| d.len() == 3));
    if let Some((name, dims)) = states {
        let dim = last_dim(dims)?;
        return Ok((name.clone(), OutputKind::TokenStates { dim }));
    }
    Err(ClassifierError::Signature(format!(
        "no token-state, pooled or logits output (outputs: {:?})",
        outputs.iter().map(|(n, _)| n).collect::<Vec<_>>()
    )))
}

fn last_dim(dims: &[i64]) -> Result<usize> {
    match dims.last() {
        Some(d) if *d > 0 => Ok(*d as usize),
        _ => Err(ClassifierError::Signature(format!(
            "the output's last dimension must be fixed, found {dims:?}"
        ))),
    }
}

/// A sequence classifier's label names, from `config.json`'s `id2label`.
fn label_names(files: &ModelFiles, count: i64) -> Result<Vec<String>> {
    let fallback = || (0..count.max(0)).map(|i| format!("LABEL_{i}")).collect();
    let Some(path) = &files.config else {
        return Ok(fallback());
    };
    let text = std::fs::read_to_string(path).map_err(|e| ClassifierError::Io {
        path: path.display().to_string(),
        message: e.to_string(),
    })?;
    let config: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| ClassifierError::Model {
            path: path.display().to_string(),
            message: e.to_string(),
        })?;
    let Some(map) = config.get("id2label").and_then(|m| m.as_object()) else {
        return Ok(fallback());
    };
    let mut labels: Vec<(usize, String)> = map
        .iter()
        .filter_map(|(k, v)| Some((k.parse().ok()?, v.as_str()?.to_string())))
        .collect();
    labels.sort();
    Ok(labels.into_iter().map(|(_, l)| l).collect())
}
