//! A loaded segmentation model: card + ONNX Runtime session, images in, class masks out.
//!
//! Independent of the node machinery so `loupe eval` scores a labelled folder with exactly the
//! code path the `segment` node serves.

use std::path::Path;
use std::sync::Mutex;

use image::{DynamicImage, GrayImage};
use ndarray::{Array4, Axis};
use ort::session::Session;

use loupe_sdk::model::batch::BatchModel;
use loupe_sdk::model::card::MODEL_FILE;
use loupe_sdk::model::input::{InputSpec, Layout};
use loupe_sdk::model::server::ServedModel;
use loupe_sdk::model::tensor::{self, Prepared};
use loupe_sdk::onnx;

use crate::card::{SegmenterCard, Semantics};

/// Loading or running the segmenter failed (the SDK's one error type for served models).
pub use loupe_sdk::model::ModelError as SegmenterError;

/// What the model says about one image, at the model's output size.
#[derive(Debug, Clone, PartialEq)]
pub struct Segmentation {
    /// Class index per pixel (0 = background), output height x width.
    pub mask: GrayImage,
    /// Image-level defect score: the largest `1 - p(background)` over the pixels.
    pub score: f32,
    /// Pixels per class, in label order (index 0: background).
    pub class_pixels: Vec<u64>,
}

/// A segmentation model ready to run.
pub struct Segmenter {
    card: SegmenterCard,
    /// `Session::run` takes `&mut self` in ort rc.15: inferences take turns (batched by the
    /// node's batcher).
    sessions: onnx::SessionPool,
    /// The batch size the graph is fixed to, if it is.
    fixed_batch: Option<usize>,
}

impl std::fmt::Debug for Segmenter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Segmenter")
            .field("model", &self.card.id())
            .finish_non_exhaustive()
    }
}

impl Segmenter {
    /// Loads `model.yaml` and `model.onnx` from `dir` and checks the graph against the card.
    /// Blocking.
    pub fn load(dir: impl AsRef<Path>, intra_threads: usize) -> Result<Segmenter, SegmenterError> {
        Segmenter::load_with(dir, onnx::Threads::single(intra_threads))
    }

    /// [`Segmenter::load`] with `threads.sessions` sessions, so that many inferences run at
    /// once (the node's `serving.sessions`).
    pub fn load_with(
        dir: impl AsRef<Path>,
        threads: onnx::Threads,
    ) -> Result<Segmenter, SegmenterError> {
        let dir = dir.as_ref();
        if !dir.is_dir() {
            return Err(SegmenterError::MissingDir {
                path: dir.to_path_buf(),
            });
        }
        let card = SegmenterCard::load_dir(dir)?;
        let sessions = onnx::SessionPool::load(dir.join(MODEL_FILE), threads)?;
        let mismatch = |message: String| SegmenterError::Mismatch {
            model: card.id(),
            message,
        };
        let fixed_batch = {
            let session = sessions.first().lock().unwrap_or_else(|p| p.into_inner());
            let shape =
                onnx::check_contract(&session, &card.input, &card.output.name).map_err(mismatch)?;
            if let Some(shape) = shape
                && !onnx::compatible(&shape, &card.output.shape)
            {
                return Err(mismatch(format!(
                    "output {:?} has shape {shape:?} in the graph but {:?} in the card",
                    card.output.name, card.output.shape
                )));
            }
            onnx::fixed_batch(&session, &card.input)
        };
        Ok(Segmenter {
            fixed_batch,
            card,
            sessions,
        })
    }

    /// The model card.
    pub fn card(&self) -> &SegmenterCard {
        &self.card
    }

    /// The ONNX Runtime session the model runs in (the node's Open Inference Protocol
    /// front-end runs requests' tensors through it too).
    pub fn session(&self) -> &Mutex<Session> {
        self.sessions.first()
    }

    /// One inference on an all-zero input, so the first request does not pay for ONNX
    /// Runtime's lazy set-up and an output that contradicts the card shows at start.
    pub fn warm_up(&self) -> Result<(), SegmenterError> {
        // Once per session: each pays ONNX Runtime's lazy set-up on its first inference.
        let input = Array4::<f32>::zeros(tensor::batch_dims(&self.card.input, 1));
        for _ in 0..self.sessions.len() {
            self.run(&input)?;
        }
        Ok(())
    }

    /// Segments one decoded image on its own (no batching).
    pub fn segment(&self, image: &DynamicImage) -> Result<Segmentation, SegmenterError> {
        let prepared = tensor::prepare(image, &self.card.input);
        Ok(self.segment_batch(&[prepared])?.remove(0))
    }

    /// Segments images prepared for this model in one inference (the node's and `loupe
    /// eval`'s path).
    pub fn segment_batch(&self, images: &[Prepared]) -> Result<Vec<Segmentation>, SegmenterError> {
        let input = &self.card.input;
        let mut batch = Array4::<f32>::zeros(tensor::batch_dims(input, images.len()));
        for (image, slot) in images.iter().zip(batch.axis_iter_mut(Axis(0))) {
            tensor::fill(image, input, slot);
        }
        self.run(&batch)
    }

    /// Runs the model on a `[n, ...]` tensor: per image, the argmax mask and the score.
    pub fn run(&self, input: &Array4<f32>) -> Result<Vec<Segmentation>, SegmenterError> {
        let images = input.shape()[0];
        let (classes, height, width) = self.card.output_dims();
        let per_image = classes * height * width;
        let name = &self.card.output.name;
        onnx::run_image_model(&self.sessions, &self.card.input.name, input, name, |shape, values| {
            if values.len() != per_image * images {
                return Err(SegmenterError::Mismatch {
                    model: self.card.id(),
                    message: format!(
                        "output {name:?} has shape {shape} for {images} image(s); the card says {:?}",
                        self.card.output.shape
                    ),
                });
            }
            Ok(values
                .chunks_exact(per_image)
                .map(|one| self.decode_output(one, classes, height, width))
                .collect())
        })
        .map_err(SegmenterError::Inference)?
    }

    /// Argmax per pixel, and the image score, from one image's output values.
    fn decode_output(
        &self,
        values: &[f32],
        classes: usize,
        height: usize,
        width: usize,
    ) -> Segmentation {
        let plane = height * width;
        // Where class `c` of pixel `i` is, in either layout.
        let at = |c: usize, i: usize| match self.card.output.layout {
            Layout::Nchw => values[c * plane + i],
            Layout::Nhwc => values[i * classes + c],
        };
        let mut mask = vec![0u8; plane];
        let mut class_pixels = vec![0u64; classes];
        let mut score = 0f32;
        for (i, class_of) in mask.iter_mut().enumerate() {
            let (mut best, mut best_value) = (0usize, at(0, i));
            for c in 1..classes {
                let v = at(c, i);
                if v > best_value {
                    (best, best_value) = (c, v);
                }
            }
            let background = match self.card.output.semantics {
                Semantics::Probabilities => at(0, i),
                Semantics::Logits => {
                    // p(background) of a softmax over the class axis, stable form.
                    let sum: f32 = (0..classes).map(|c| (at(c, i) - best_value).exp()).sum();
                    (at(0, i) - best_value).exp() / sum
                }
            };
            score = score.max(1.0 - background);
            *class_of = best as u8;
            class_pixels[best] += 1;
        }
        Segmentation {
            mask: GrayImage::from_raw(width as u32, height as u32, mask)
                .unwrap_or_else(|| GrayImage::new(width as u32, height as u32)),
            score: score.clamp(0.0, 1.0),
            class_pixels,
        }
    }
}

impl ServedModel for Segmenter {
    type Error = SegmenterError;

    fn load(dir: &Path, threads: onnx::Threads) -> Result<Self, SegmenterError> {
        Segmenter::load_with(dir, threads)
    }

    fn warm_up(&self) -> Result<(), SegmenterError> {
        Segmenter::warm_up(self)
    }

    fn id(&self) -> String {
        self.card.id()
    }
}

impl BatchModel for Segmenter {
    type Output = Segmentation;

    fn input(&self) -> &InputSpec {
        &self.card.input
    }

    fn max_batch(&self) -> Option<usize> {
        self.fixed_batch
    }

    fn run_batch(&self, batch: &Array4<f32>) -> Result<Vec<Segmentation>, String> {
        self.run(batch).map_err(|e| e.to_string())
    }
}
