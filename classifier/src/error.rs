use thiserror::Error;

/// Everything that can go wrong loading or running the classifier. None of
/// these reach a client: the engine skips classifier rules and counts them.
#[derive(Debug, Error)]
pub enum ClassifierError {
    #[error("classifier file missing: {path} (run `bash scripts/models.sh`, or set SWITCHYARD_MODEL_DIR)")]
    MissingFile { path: String },
    #[error("checksum mismatch for {path}: expected sha256 {expected}, found {found}")]
    Checksum {
        path: String,
        expected: String,
        found: String,
    },
    #[error("cannot read {path}: {message}")]
    Io { path: String, message: String },
    #[error("cannot load ONNX Runtime from {path}: {message}")]
    Runtime { path: String, message: String },
    #[error("cannot load model {path}: {message}")]
    Model { path: String, message: String },
    #[error("cannot load tokenizer {path}: {message}")]
    Tokenizer { path: String, message: String },
    #[error("unsupported model signature: {0}")]
    Signature(String),
    #[error("tokenization failed: {0}")]
    Tokenize(String),
    #[error("inference failed: {0}")]
    Inference(String),
    #[error("label head: {0}")]
    Head(String),
    #[error("the classifier queue is full")]
    Busy,
    #[error("the classifier has stopped")]
    Stopped,
}

pub type Result<T, E = ClassifierError> = std::result::Result<T, E>;
