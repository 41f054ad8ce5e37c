//! Serving one image model in a node: load, warm up, hot reload, dynamic batching — everything
//! `classify` and `segment` share, so each of them is only its model type and what it makes of
//! the model's output.
//!
//! A node keeps a [`ModelServer`] and calls [`ModelServer::infer`] per FlowFile: the content
//! is decoded and prepared for the current model on the blocking pool, then joins a batch; the
//! answer comes with the model that produced it (for its card) and the decoded image.
//!
//! Decoding goes through the SDK's one safe decoder with the `serving:` settings' limits
//! ([`ServingSettings::decode_limits`]): an image over them is refused from its header
//! (`error.kind = too_large`, the reason in `error.message`) and the node keeps serving. At
//! most one image per core is decoded at a time, so however many requests are in flight,
//! decoded pixels take at most that many decodes' worth of memory (plus, for
//! [`ModelServer::infer`], the images of the requests waiting for a batch).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use image::DynamicImage;
use tokio::sync::Semaphore;

use super::batch::{BatchConfig, BatchModel, Batcher};
use super::card::{CARD_FILE, MODEL_FILE};
use super::reload::{self, DirSignature, ModelSlot, WatchSpec};
use super::serving::ServingSettings;
use super::{interrupted, resume_panic, tensor};
use crate::error::BoxError;
use crate::imaging::{DecodeLimits, ImageError};
use crate::{NodeError, ProcessError, SettingsError};

/// A model a node can serve.
pub trait ServedModel: BatchModel + Sized {
    /// Why loading or running failed.
    type Error: std::error::Error + Send + Sync + 'static;

    /// Loads the model (card and graph) from a model directory. Blocking.
    fn load(dir: &Path, threads: crate::onnx::Threads) -> Result<Self, Self::Error>;

    /// Runs it once on a dummy input, so the first request does not pay for lazy set-up.
    /// Blocking.
    fn warm_up(&self) -> Result<(), Self::Error>;

    /// `name@version`, for attributes and logs.
    fn id(&self) -> String;
}

/// Problems with the two settings every model node has: `model` (a directory) and
/// `threshold_override` (a probability).
pub fn model_problems(model: &Path, threshold_override: Option<f32>) -> Vec<SettingsError> {
    let mut problems = Vec::new();
    if model.as_os_str().is_empty() {
        problems.push(SettingsError::new(
            "model",
            "must name a directory holding model.onnx and model.yaml",
        ));
    }
    if let Some(t) = threshold_override
        && !(0.0..=1.0).contains(&t)
    {
        problems.push(SettingsError::new(
            "threshold_override",
            format!("must be within [0, 1], got {t}"),
        ));
    }
    problems
}

/// What one inference gave: the model that ran (its card says what the output means), the
/// decoded image, and the output.
pub struct Inference<M: ServedModel> {
    /// The model the image was prepared for and run on.
    pub model: Arc<M>,
    /// The decoded content.
    pub image: DynamicImage,
    /// The model's output for it.
    pub output: M::Output,
}

/// The processing error for an image the decoder refused: its kind (`too_large` for a limit,
/// `invalid_input` otherwise) and the reason, naming the `serving` setting that would accept
/// it where a limit refused it.
pub fn decode_error(e: ImageError) -> ProcessError {
    let hint = match &e {
        ImageError::TooManyPixels { .. } | ImageError::TooMuchMemory { .. } => {
            " (setting `serving.max_pixels`)"
        }
        ImageError::TooManyBytes { .. } => " (setting `serving.max_bytes`)",
        _ => "",
    };
    ProcessError::new(e.kind(), format!("cannot decode image: {e}{hint}"))
}

/// Decodings running at once: one per core (decoding is CPU-bound, so more would not go
/// faster, only hold more pixels).
fn decode_parallelism() -> usize {
    std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
}

/// The served model of one node: the current model, its batcher, its reload watcher.
pub struct ModelServer<M: ServedModel> {
    node_type: &'static str,
    slot: Arc<ModelSlot<M>>,
    batcher: Batcher<M>,
    limits: DecodeLimits,
    decoding: Arc<Semaphore>,
}

impl<M: ServedModel> ModelServer<M> {
    /// Loads the model in `dir` (named by the `model` setting `setting`, for messages) and
    /// starts batching and, unless `config.reload_interval` is zero, watching `dir` for a new
    /// model, as the node's `serving` settings say.
    /// Must run within a Tokio runtime.
    pub async fn open(
        node_type: &'static str,
        node_id: &str,
        dir: PathBuf,
        setting: &Path,
        config: ServingSettings,
    ) -> Result<Self, NodeError> {
        let threads = config.threads();
        let (check_dir, load_dir) = (dir.clone(), dir.clone());
        // Loading the runtime and the model is blocking file and CPU work.
        let (signature, model) = tokio::task::spawn_blocking(move || {
            if !check_dir.is_dir() {
                return Err(BoxError::from(format!(
                    "model directory {} not found or not a directory (it must hold model.onnx \
                     and model.yaml)",
                    check_dir.display()
                )));
            }
            // Read before loading, so a change during the load is seen by the watcher.
            let signature = DirSignature::read(&check_dir, &[MODEL_FILE, CARD_FILE]);
            M::load(&load_dir, threads)
                .map(|model| (signature, model))
                .map_err(BoxError::from)
        })
        .await
        .map_err(|e| NodeError::failed(format!("{node_type}: loading the model"), e))?
        .map_err(|e| {
            NodeError::failed(
                format!("{node_type} (setting `model`: {})", setting.display()),
                e,
            )
        })?;
        tracing::info!(node = node_id, model = %model.id(), dir = %dir.display(),
            sessions = threads.sessions, intra_threads = threads.intra,
            max_batch = config.max_batch, "{node_type}: model loaded");

        let slot = Arc::new(ModelSlot::new(model));
        if !config.reload_interval.is_zero() {
            let spec = WatchSpec {
                dir,
                files: vec![MODEL_FILE, CARD_FILE],
                interval: config.reload_interval,
                node: node_id.to_string(),
            };
            reload::watch(&slot, spec, signature, move |dir: &Path| {
                let model = M::load(dir, threads)?;
                model.warm_up()?;
                tracing::info!(model = %model.id(), "{node_type}: new model warmed up");
                Ok::<_, M::Error>(model)
            });
        }
        let batcher = Batcher::spawn(BatchConfig {
            max_batch: config.max_batch,
            max_delay: config.max_batch_delay,
            queue: config.batch_queue,
            parallel: threads.sessions,
        });
        Ok(ModelServer {
            node_type,
            slot,
            batcher,
            limits: config.decode_limits(),
            decoding: Arc::new(Semaphore::new(decode_parallelism())),
        })
    }

    /// The limits every image is decoded with.
    pub fn decode_limits(&self) -> &DecodeLimits {
        &self.limits
    }

    /// The model serving new requests now.
    pub fn current(&self) -> Arc<M> {
        self.slot.current()
    }

    /// Warms the current model up (the node's `start`: health stays NOT_SERVING until done).
    pub async fn warm_up(&self) -> Result<(), NodeError> {
        let model = self.slot.current();
        let (node_type, id) = (self.node_type, model.id());
        resume_panic(tokio::task::spawn_blocking(move || model.warm_up()).await)
            .map_err(|e| NodeError::Unavailable(format!("{node_type}: warm-up interrupted: {e}")))?
            .map_err(|e| NodeError::failed(format!("{node_type}: warm-up of {id}"), e))
    }

    /// Decodes `content`, prepares it for the current model and runs it in a batch. An image
    /// that cannot be decoded is `invalid_input`, one over the limits `too_large` (see
    /// [`decode_error`]); a model failure is `model`.
    pub async fn infer(&self, content: Bytes) -> Result<Inference<M>, ProcessError> {
        let (model, image, output) = self.run(content, true).await?;
        Ok(Inference {
            model,
            image: image.unwrap_or_default(),
            output,
        })
    }

    /// [`ModelServer::infer`] for a node that needs only the output: the decoded image is
    /// dropped as soon as it is prepared (without a copy when it already has the model's
    /// channels), so a request waiting for a batch holds only the small prepared image.
    pub async fn infer_output(&self, content: Bytes) -> Result<(Arc<M>, M::Output), ProcessError> {
        let (model, _, output) = self.run(content, false).await?;
        Ok((model, output))
    }

    async fn run(
        &self,
        content: Bytes,
        keep_image: bool,
    ) -> Result<(Arc<M>, Option<DynamicImage>, M::Output), ProcessError> {
        // A turn to decode (waiting for it holds only the encoded content); the semaphore is
        // never closed.
        let permit = self
            .decoding
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| interrupted_decoding(self.node_type))?;
        // One model from decoding to answer, even if a reload swaps it meanwhile.
        let model = self.slot.current();
        let ticket = self.batcher.ticket();
        let for_prepare = model.clone();
        let limits = self.limits;
        // Decoding and resizing are CPU-bound: keep them off the async workers. `content` is
        // a `Bytes`: moving it here copies no pixels.
        let (image, prepared) = resume_panic(
            tokio::task::spawn_blocking(move || {
                let _permit = permit;
                let input = for_prepare.input();
                Ok::<_, ProcessError>(if keep_image {
                    // The full image is answered too (overlays, masks): decoded at full size.
                    let image = tensor::decode(&content, &limits).map_err(decode_error)?;
                    let prepared = tensor::prepare(&image, input);
                    (Some(image), prepared)
                } else {
                    let image =
                        tensor::decode_for(&content, &limits, input).map_err(decode_error)?;
                    (None, tensor::prepare_owned(image, input))
                })
            })
            .await,
        )
        .map_err(|e| interrupted(self.node_type, e))??;
        let output = self
            .batcher
            .infer(model.clone(), prepared, ticket)
            .await
            .map_err(|e| e.into_process_error(self.node_type))?;
        Ok((model, image, output))
    }
}

fn interrupted_decoding(node: &str) -> ProcessError {
    ProcessError::new(
        crate::ErrorKind::Unavailable,
        format!("{node}: shutting down"),
    )
}
