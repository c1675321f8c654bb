//! Training and scoring the classifier's label head. Pure arithmetic over
//! vectors; the encoder passes and file I/O live in
//! `bin/train_classifier.rs`.

mod calibrate;
mod metrics;
mod regression;

pub use calibrate::{abstention, thresholds, Scored, GRID};
pub use metrics::{ConfusionMatrix, LabelScores};
pub use regression::{argmax, scores, train_softmax, TrainOptions};
