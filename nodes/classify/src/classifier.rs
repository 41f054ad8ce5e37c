//! A loaded model: card + ONNX Runtime session, image in, class probabilities out.
//!
//! Independent of the node machinery so `loupe eval` can score a labelled folder with exactly
//! the code path the `classify` node serves.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use image::DynamicImage;
use ndarray::Array4;
use ort::session::Session;
use ort::value::TensorRef;

use loupe_sdk::onnx::{self, OnnxError};

use crate::card::{CardError, MODEL_FILE, ModelCard, OutputSemantics};
use crate::preprocess;

/// Loading or running a model failed.
#[derive(Debug, thiserror::Error)]
pub enum ClassifierError {
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

/// The outcome of classifying one image.
#[derive(Debug, Clone, PartialEq)]
pub struct Prediction {
    /// Index of the winning class in the card's labels.
    pub index: usize,
    /// The winning label.
    pub label: String,
    /// Probability of the winning label.
    pub score: f32,
    /// Probability of every label, in the card's label order.
    pub probabilities: Vec<(String, f32)>,
}

/// A model ready to classify images.
pub struct Classifier {
    card: ModelCard,
    /// `Session::run` takes `&mut self` in ort rc.15 (some ONNX Runtime internals are not
    /// thread-safe), so concurrent requests take turns. Correct first; batching comes later.
    session: Mutex<Session>,
}

impl std::fmt::Debug for Classifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Classifier")
            .field("model", &self.card.id())
            .finish_non_exhaustive()
    }
}

impl Classifier {
    /// Loads `model.yaml` and `model.onnx` from `dir` (initialising ONNX Runtime if needed) and
    /// checks that the graph matches the card.
    ///
    /// `intra_threads` is the number of threads one inference may use (`0`: ONNX Runtime
    /// decides). Blocking: call it off the async runtime.
    pub fn load(
        dir: impl AsRef<Path>,
        intra_threads: usize,
    ) -> Result<Classifier, ClassifierError> {
        let dir = dir.as_ref();
        if !dir.is_dir() {
            return Err(ClassifierError::MissingDir {
                path: dir.to_path_buf(),
            });
        }
        let card = ModelCard::load_dir(dir)?;
        let session = onnx::session(dir.join(MODEL_FILE), intra_threads)?;
        check_contract(&card, &session)?;
        Ok(Classifier {
            card,
            session: Mutex::new(session),
        })
    }

    /// The model card.
    pub fn card(&self) -> &ModelCard {
        &self.card
    }

    /// Runs one inference on an all-zero input so the first real request does not pay for
    /// ONNX Runtime's lazy allocations, and checks the output against the card's labels.
    pub fn warm_up(&self) -> Result<(), ClassifierError> {
        let input = Array4::<f32>::zeros(shape4(&self.card.input.batch_shape(1)));
        self.probabilities(&input).map(|_| ())
    }

    /// Classifies an already decoded image (see [`preprocess::decode`]).
    pub fn classify(&self, image: &DynamicImage) -> Result<Prediction, ClassifierError> {
        let tensor = preprocess::to_tensor(image, &self.card.input);
        let probabilities = self.probabilities(&tensor)?;
        let index = self.card.decide(&probabilities);
        let score = probabilities[index];
        Ok(Prediction {
            index,
            label: self.card.labels[index].clone(),
            score,
            probabilities: self
                .card
                .labels
                .iter()
                .cloned()
                .zip(probabilities)
                .collect(),
        })
    }

    /// Runs the model on a preprocessed `[1, ...]` tensor; returns one probability per label
    /// (softmax applied when the card says the output is logits).
    pub fn probabilities(&self, input: &Array4<f32>) -> Result<Vec<f32>, ClassifierError> {
        let inference = |e: ort::Error| ClassifierError::Inference(e.to_string());
        let tensor = TensorRef::from_array_view(input.view()).map_err(inference)?;
        let mut session = self
            .session
            .lock()
            // A panic while holding the lock happened in Rust code around `run`, not inside
            // ONNX Runtime's state, so the session itself is still usable.
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let outputs = session
            .run(ort::inputs![self.card.input.name.as_str() => tensor])
            .map_err(inference)?;
        let name = &self.card.output.name;
        let output = outputs
            .get(name)
            .ok_or_else(|| ClassifierError::Inference(format!("no output named {name:?}")))?;
        let (shape, values) = output.try_extract_tensor::<f32>().map_err(inference)?;
        if values.len() != self.card.labels.len() {
            return Err(ClassifierError::Mismatch {
                model: self.card.id(),
                message: format!(
                    "output {name:?} has shape {shape} for one image but the card has {} labels",
                    self.card.labels.len()
                ),
            });
        }
        Ok(match self.card.output.semantics {
            OutputSemantics::Probabilities => values.to_vec(),
            OutputSemantics::Logits => softmax(values),
        })
    }
}

fn shape4(dims: &[usize]) -> (usize, usize, usize, usize) {
    (dims[0], dims[1], dims[2], dims[3])
}

/// Numerically stable softmax (subtracting the maximum keeps `exp` from overflowing).
pub fn softmax(logits: &[f32]) -> Vec<f32> {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let exps: Vec<f32> = logits.iter().map(|l| (l - max).exp()).collect();
    let sum: f32 = exps.iter().sum();
    exps.into_iter().map(|e| e / sum).collect()
}

/// Checks names and fixed dimensions so a card written for another model fails at load, not
/// with a confusing error on the first image.
fn check_contract(card: &ModelCard, session: &Session) -> Result<(), ClassifierError> {
    let mismatch = |message: String| ClassifierError::Mismatch {
        model: card.id(),
        message,
    };
    let names = |outlets: &[ort::value::Outlet]| {
        outlets
            .iter()
            .map(|o| o.name().to_string())
            .collect::<Vec<_>>()
    };

    let input = session
        .inputs()
        .iter()
        .find(|i| i.name() == card.input.name)
        .ok_or_else(|| {
            mismatch(format!(
                "card input {:?} is not a graph input (graph inputs: {:?})",
                card.input.name,
                names(session.inputs())
            ))
        })?;
    if session.inputs().len() != 1 {
        return Err(mismatch(format!(
            "the graph has {} inputs {:?}; a classifier takes exactly one image",
            session.inputs().len(),
            names(session.inputs())
        )));
    }
    if let Some(graph_shape) = input.dtype().tensor_shape()
        && !compatible(graph_shape, &card.input.shape)
    {
        return Err(mismatch(format!(
            "input {:?} has shape {graph_shape} in the graph but {:?} in the card",
            card.input.name, card.input.shape
        )));
    }
    if input.dtype().tensor_type() != Some(ort::value::TensorElementType::Float32) {
        return Err(mismatch(format!(
            "input {:?} is {:?} in the graph; only float32 inputs are supported",
            card.input.name,
            input.dtype()
        )));
    }

    let output = session
        .outputs()
        .iter()
        .find(|o| o.name() == card.output.name)
        .ok_or_else(|| {
            mismatch(format!(
                "card output {:?} is not a graph output (graph outputs: {:?})",
                card.output.name,
                names(session.outputs())
            ))
        })?;
    if let Some(&classes) = output.dtype().tensor_shape().and_then(|s| s.last())
        && classes >= 0
        && classes as usize != card.labels.len()
    {
        return Err(mismatch(format!(
            "output {:?} has {classes} classes in the graph but the card has {} labels",
            card.output.name,
            card.labels.len()
        )));
    }
    Ok(())
}

/// Same rank, and every dimension fixed on both sides is equal (`-1` matches anything).
fn compatible(graph: &[i64], card: &[i64]) -> bool {
    graph.len() == card.len()
        && graph
            .iter()
            .zip(card)
            .all(|(g, c)| *g < 0 || *c < 0 || g == c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn softmax_is_stable_and_normalised() {
        let p = softmax(&[1000.0, 1000.0, 0.0]);
        assert!((p[0] - 0.5).abs() < 1e-6 && (p[1] - 0.5).abs() < 1e-6);
        assert!(p[2] >= 0.0 && p[2] < 1e-6);
        let p = softmax(&[0.0, 4.0, 0.0]);
        assert!((p.iter().sum::<f32>() - 1.0).abs() < 1e-6);
        assert!((p[1] - 4f32.exp() / (4f32.exp() + 2.0)).abs() < 1e-6);
    }

    #[test]
    fn shapes_are_compared_on_fixed_dimensions() {
        assert!(compatible(&[-1, 3, 32, 32], &[-1, 3, 32, 32]));
        assert!(compatible(&[-1, 3, 32, 32], &[1, 3, 32, 32]));
        assert!(!compatible(&[-1, 3, 32, 32], &[-1, 3, 48, 48]));
        assert!(!compatible(&[-1, 3, 32], &[-1, 3, 32, 32]));
    }
}
