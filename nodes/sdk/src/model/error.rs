//! Why loading or running a served model failed: one error type for every model node.

use std::path::PathBuf;

use super::card::CardError;
use crate::onnx::OnnxError;

/// Loading or running a served model (classify, segment) failed.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    /// The model directory does not exist or is not a directory.
    #[error("model directory {} not found (it must hold model.onnx and model.yaml)", path.display())]
    MissingDir {
        /// The directory that was looked for.
        path: PathBuf,
    },
    /// The model card is missing or wrong.
    #[error(transparent)]
    Card(#[from] CardError),
    /// ONNX Runtime is missing, or rejected the model.
    #[error(transparent)]
    Onnx(#[from] OnnxError),
    /// The card and the ONNX graph disagree (names, shapes, label count).
    #[error("model {model} does not match its card: {message}")]
    Mismatch {
        /// `name@version`.
        model: String,
        /// What disagrees.
        message: String,
    },
    /// ONNX Runtime failed while running the model.
    #[error("inference failed: {0}")]
    Inference(String),
}
