//! A loaded model: card + ONNX Runtime session, image in, class probabilities out.
//!
//! Independent of the node machinery so `loupe eval` can score a labelled folder with exactly
//! the code path the `classify` node serves.

use std::path::Path;
use std::sync::Mutex;

use image::DynamicImage;
use ndarray::{Array4, Axis};
use ort::session::Session;

use loupe_sdk::model::batch::BatchModel;
use loupe_sdk::model::input::InputSpec;
use loupe_sdk::model::oip::OipModel;
use loupe_sdk::model::server::ServedModel;
use loupe_sdk::model::tensor::{self, Prepared};
use loupe_sdk::onnx;

use crate::card::{MODEL_FILE, ModelCard, OutputSemantics};

/// Loading or running the classifier failed (the SDK's one error type for served models).
pub use loupe_sdk::model::ModelError as ClassifierError;

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
    /// `Session::run` takes `&mut self` in ort rc.15, so one session runs one inference at a
    /// time: the node keeps `serving.sessions` of them, and the batcher runs that many
    /// batches at once.
    sessions: onnx::SessionPool,
    /// The batch size the graph is fixed to, if it is.
    fixed_batch: Option<usize>,
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
    /// decides; the node's `serving.intra_threads`). Blocking: call it off the async runtime.
    pub fn load(
        dir: impl AsRef<Path>,
        intra_threads: usize,
    ) -> Result<Classifier, ClassifierError> {
        Classifier::load_with(dir, onnx::Threads::single(intra_threads))
    }

    /// [`Classifier::load`] with `threads.sessions` sessions, so that many inferences run at
    /// once (the node's `serving.sessions`).
    pub fn load_with(
        dir: impl AsRef<Path>,
        threads: onnx::Threads,
    ) -> Result<Classifier, ClassifierError> {
        let dir = dir.as_ref();
        if !dir.is_dir() {
            return Err(ClassifierError::MissingDir {
                path: dir.to_path_buf(),
            });
        }
        let card = ModelCard::load_dir(dir)?;
        let sessions = onnx::SessionPool::load(dir.join(MODEL_FILE), threads)?;
        let fixed_batch = {
            let session = sessions.first().lock().unwrap_or_else(|p| p.into_inner());
            check_contract(&card, &session)?;
            onnx::fixed_batch(&session, &card.input)
        };
        Ok(Classifier {
            fixed_batch,
            card,
            sessions,
        })
    }

    /// The model card.
    pub fn card(&self) -> &ModelCard {
        &self.card
    }

    /// Runs one inference on an all-zero input so the first real request does not pay for
    /// ONNX Runtime's lazy allocations, and checks the output against the card's labels.
    pub fn warm_up(&self) -> Result<(), ClassifierError> {
        // Once per session: each pays ONNX Runtime's lazy set-up on its first inference.
        let input = Array4::<f32>::zeros(tensor::batch_dims(&self.card.input, 1));
        for _ in 0..self.sessions.len() {
            self.probabilities(&input)?;
        }
        Ok(())
    }

    /// Classifies an already decoded image (see [`tensor::decode`]) on its own, without
    /// batching.
    pub fn classify(&self, image: &DynamicImage) -> Result<Prediction, ClassifierError> {
        let prepared = tensor::prepare(image, &self.card.input);
        Ok(self.classify_batch(&[prepared])?.remove(0))
    }

    /// Classifies images prepared for this model ([`tensor::prepare`]) in one inference: the
    /// path the node's batcher takes, and `loupe eval`'s.
    pub fn classify_batch(&self, images: &[Prepared]) -> Result<Vec<Prediction>, ClassifierError> {
        let input = &self.card.input;
        let mut batch = Array4::<f32>::zeros(tensor::batch_dims(input, images.len()));
        for (image, slot) in images.iter().zip(batch.axis_iter_mut(Axis(0))) {
            tensor::fill(image, input, slot);
        }
        Ok(self
            .probabilities(&batch)?
            .into_iter()
            .map(|p| self.predict(p))
            .collect())
    }

    /// The decision for one image's probabilities (label order), by the card's rule.
    pub fn predict(&self, probabilities: Vec<f32>) -> Prediction {
        predict(&self.card, probabilities)
    }

    /// Runs the model on a preprocessed `[n, ...]` tensor; returns, per image, one
    /// probability per label (softmax applied when the card says the output is logits).
    pub fn probabilities(&self, input: &Array4<f32>) -> Result<Vec<Vec<f32>>, ClassifierError> {
        let images = input.shape()[0];
        let labels = self.card.labels.len();
        let name = &self.card.output.name;
        onnx::run_image_model(&self.sessions, &self.card.input.name, input, name, |shape, values| {
            if values.len() != labels * images {
                return Err(ClassifierError::Mismatch {
                    model: self.card.id(),
                    message: format!(
                        "output {name:?} has shape {shape} for {images} image(s) but the card has {labels} labels"
                    ),
                });
            }
            Ok(probability_rows(&self.card, values))
        })
        .map_err(ClassifierError::Inference)?
    }
}

/// One probability vector per image from a class output's values (`[n, labels]`, row-major),
/// softmax applied when the card says the output is logits. Shared by the local model and a
/// remote (OIP) one, so both mean the same by the same numbers.
pub fn probability_rows(card: &ModelCard, values: &[f32]) -> Vec<Vec<f32>> {
    values
        .chunks_exact(card.labels.len().max(1))
        .map(|row| match card.output.semantics {
            OutputSemantics::Probabilities => row.to_vec(),
            OutputSemantics::Logits => softmax(row),
        })
        .collect()
}

/// The decision for one image's probabilities (label order), by the card's rule.
pub fn predict(card: &ModelCard, probabilities: Vec<f32>) -> Prediction {
    let index = card.decide(&probabilities);
    Prediction {
        index,
        label: card.labels[index].clone(),
        score: probabilities[index],
        probabilities: card.labels.iter().cloned().zip(probabilities).collect(),
    }
}

impl ServedModel for Classifier {
    type Error = ClassifierError;

    fn load(dir: &Path, threads: onnx::Threads) -> Result<Self, ClassifierError> {
        Classifier::load_with(dir, threads)
    }

    fn warm_up(&self) -> Result<(), ClassifierError> {
        Classifier::warm_up(self)
    }

    fn id(&self) -> String {
        self.card.id()
    }
}

/// The Open Inference Protocol serves the model under its card's name and version, through
/// the session the node classifies with.
impl OipModel for Classifier {
    fn oip_name(&self) -> &str {
        &self.card.name
    }

    fn oip_version(&self) -> &str {
        &self.card.version
    }

    fn onnx_session(&self) -> &Mutex<Session> {
        self.sessions.first()
    }
}

impl BatchModel for Classifier {
    type Output = Prediction;

    fn input(&self) -> &InputSpec {
        &self.card.input
    }

    fn max_batch(&self) -> Option<usize> {
        self.fixed_batch
    }

    fn run_batch(&self, batch: &Array4<f32>) -> Result<Vec<Prediction>, String> {
        Ok(self
            .probabilities(batch)
            .map_err(|e| e.to_string())?
            .into_iter()
            .map(|p| self.predict(p))
            .collect())
    }
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
    let output = onnx::check_contract(session, &card.input, &card.output.name).map_err(mismatch)?;
    if let Some(&classes) = output.as_ref().and_then(|s| s.last())
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
}
