//! Switchyard's semantic classifier: one pass of a local BERT-family
//! encoder per prompt window, serving the built-in task labels (a small
//! trained head) and every operator-defined route (utterance vectors from
//! the policy) at once.
//!
//! Layers, from pure to I/O: [`window`] picks the text, [`pooling`],
//! [`head`] and [`routes`] are arithmetic over vectors, [`encoder`] runs
//! ONNX Runtime, [`service`] puts encoders on their own threads with
//! micro-batching and a [`cache`].

pub mod cache;
pub mod encoder;
mod error;
pub mod files;
pub mod head;
pub mod policy_encoder;
pub mod pooling;
pub mod routes;
mod runtime;
pub mod service;
pub mod window;

pub use encoder::{Encoder, EncoderOptions, OutputKind, Signature};
pub use error::{ClassifierError, Result};
pub use files::ModelFiles;
pub use head::{LabelHead, BUILTIN_LABELS, DEFAULT_THRESHOLD};
pub use policy_encoder::{RouteEncoder, ServiceEncoder};
pub use routes::{RouteScore, RouteSet, RouteVectors};
pub use service::{ClassifierService, Embedded, ServiceOptions, ServiceStats};
pub use window::prompt_window;
