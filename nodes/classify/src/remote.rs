//! Classifying on a remote Open Inference Protocol server (`backend: { oip: ... }`).
//!
//! The card in the `model` directory still drives everything but the inference call: each
//! image is decoded and turned into the card's input tensor here (exactly as the local path
//! does, [`loupe_sdk::model::tensor::to_tensor`]), sent raw as `FP32` to the server, and the
//! card's output semantics and decision rule turn the answer into a [`Prediction`]. There is
//! no batching on this side (one image per call; a server such as Triton batches concurrent
//! calls itself) and no hot reload of the card.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use loupe_sdk::imaging::DecodeLimits;
use loupe_sdk::model::oip::pb::ModelMetadataResponse;
use loupe_sdk::model::oip::{DataType, OipClient, OipTarget, RawTensor};
use loupe_sdk::model::server::decode_error;
use loupe_sdk::model::{interrupted, resume_panic, tensor};
use loupe_sdk::{ErrorKind, NodeError, ProcessError};

use crate::backend::OipBackend;
use crate::card::ModelCard;
use crate::classifier::{Prediction, predict, probability_rows};

/// A card plus a remote model.
pub struct RemoteClassifier {
    card: Arc<ModelCard>,
    client: OipClient,
    ready_timeout: std::time::Duration,
    limits: DecodeLimits,
}

impl std::fmt::Debug for RemoteClassifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RemoteClassifier")
            .field("card", &self.card.id())
            .field("target", self.client.target())
            .finish_non_exhaustive()
    }
}

impl RemoteClassifier {
    /// Reads the card in `dir` (named by the `model` setting `setting`, for messages) and
    /// makes a lazily connecting client; nothing is sent before [`RemoteClassifier::start`].
    /// Images are decoded with `limits` (the `serving` settings' `max_pixels`, `max_bytes`).
    /// Must run within a Tokio runtime.
    pub async fn open(
        dir: PathBuf,
        setting: &Path,
        oip: &OipBackend,
        base_dir: &Path,
        max_message_bytes: usize,
        limits: DecodeLimits,
    ) -> Result<RemoteClassifier, NodeError> {
        let card = tokio::task::spawn_blocking(move || ModelCard::load_dir(&dir))
            .await
            .map_err(|e| NodeError::failed("classify: reading the model card", e))?
            .map_err(|e| {
                NodeError::failed(
                    format!("classify (setting `model`: {})", setting.display()),
                    e,
                )
            })?;
        let model = if oip.model.is_empty() {
            card.name.clone()
        } else {
            oip.model.clone()
        };
        let token = match &oip.token_file {
            Some(file) => {
                let path = base_dir.join(file);
                let token = loupe_sdk::client::Secret::from_file(&path).map_err(|e| {
                    NodeError::Settings(format!("backend.oip.token_file {}: {e}", path.display()))
                })?;
                Some(token)
            }
            None => None,
        };
        let client = OipClient::new(OipTarget {
            endpoint: oip.endpoint.clone(),
            model,
            version: oip.version.clone(),
            timeout: oip.timeout,
            security: loupe_sdk::client::ClientSecurity {
                ca: oip.ca.as_ref().map(|p| base_dir.join(p)),
                token,
                ..Default::default()
            },
            max_message_bytes,
        })
        .map_err(|e| NodeError::Settings(format!("backend.oip.endpoint: {e}")))?;
        Ok(RemoteClassifier {
            card: Arc::new(card),
            client,
            ready_timeout: oip.ready_timeout,
            limits,
        })
    }

    /// The model card.
    pub fn card(&self) -> &ModelCard {
        &self.card
    }

    /// Waits (up to `ready_timeout`) for the remote model to be ready and checks its metadata
    /// against the card, so a card written for another model fails at start, not on the
    /// first image.
    pub async fn start(&self) -> Result<(), NodeError> {
        let metadata = self
            .client
            .wait_ready(self.ready_timeout)
            .await
            .map_err(|e| match e.kind {
                ErrorKind::Unavailable | ErrorKind::Overloaded => {
                    NodeError::Unavailable(format!("classify: {}", e.message))
                }
                _ => NodeError::Other(format!("classify: {}", e.message)),
            })?;
        check_metadata(&self.card, &metadata).map_err(|message| {
            NodeError::Other(format!(
                "classify: the remote model {:?} does not match the card {}: {message}",
                metadata.name,
                self.card.id()
            ))
        })?;
        tracing::info!(target = ?self.client.target(), card = %self.card.id(),
            "classify: remote OIP model ready");
        Ok(())
    }

    /// Decodes and prepares `content` as the card says, runs it on the remote model and
    /// decides by the card. Undecodable content is `invalid_input`, content over the limits
    /// `too_large`; the server's errors keep their kind (retryable
    /// `unavailable`/`overloaded`, `invalid_input`, `model`).
    pub async fn classify(&self, content: Bytes) -> Result<Prediction, ProcessError> {
        let card = self.card.clone();
        let limits = self.limits;
        let input = resume_panic(
            tokio::task::spawn_blocking(move || {
                let image =
                    tensor::decode_for(&content, &limits, &card.input).map_err(decode_error)?;
                let values = tensor::to_tensor(&image, &card.input);
                let shape = values.shape().iter().map(|d| *d as i64).collect();
                let data: Vec<f32> = values.iter().copied().collect();
                Ok::<_, ProcessError>(RawTensor::from_f32(card.input.name.clone(), shape, &data))
            })
            .await,
        )
        .map_err(|e| interrupted("classify", e))??;
        let output = self.client.infer(input, &self.card.output.name).await?;
        let model_error = |message: String| {
            ProcessError::new(
                ErrorKind::Model,
                format!("remote model {:?}: {message}", self.client.target().model),
            )
        };
        let values = output.to_f32().map_err(model_error)?;
        let labels = self.card.labels.len();
        if values.len() != labels {
            return Err(model_error(format!(
                "output {:?} has {} values (shape {:?}) for one image but the card has {labels} \
                 labels",
                self.card.output.name,
                values.len(),
                output.shape
            )));
        }
        let row = probability_rows(&self.card, &values)
            .pop()
            .unwrap_or_default();
        Ok(predict(&self.card, row))
    }
}

/// Checks a remote model's metadata against the card: the card's input is the model's one
/// input, `FP32`, with a compatible shape; the card's output exists and has one value per
/// label where the model says how many.
pub fn check_metadata(card: &ModelCard, metadata: &ModelMetadataResponse) -> Result<(), String> {
    let names =
        |tensors: &[loupe_sdk::model::oip::pb::model_metadata_response::TensorMetadata]| {
            tensors.iter().map(|t| t.name.clone()).collect::<Vec<_>>()
        };
    let input = metadata
        .inputs
        .iter()
        .find(|i| i.name == card.input.name)
        .ok_or_else(|| {
            format!(
                "card input {:?} is not a model input (model inputs: {:?})",
                card.input.name,
                names(&metadata.inputs)
            )
        })?;
    if metadata.inputs.len() != 1 {
        return Err(format!(
            "the model has {} inputs {:?}; an image classifier takes exactly one",
            metadata.inputs.len(),
            names(&metadata.inputs)
        ));
    }
    if input.datatype != DataType::Fp32.as_str() {
        return Err(format!(
            "input {:?} is {} on the server; the card's tensors are FP32",
            input.name, input.datatype
        ));
    }
    if !loupe_sdk::onnx::compatible(&input.shape, &card.input.shape) {
        return Err(format!(
            "input {:?} has shape {:?} on the server but {:?} in the card",
            input.name, input.shape, card.input.shape
        ));
    }
    let output = metadata
        .outputs
        .iter()
        .find(|o| o.name == card.output.name)
        .ok_or_else(|| {
            format!(
                "card output {:?} is not a model output (model outputs: {:?})",
                card.output.name,
                names(&metadata.outputs)
            )
        })?;
    if let Some(&classes) = output.shape.last()
        && classes >= 0
        && classes as usize != card.labels.len()
    {
        return Err(format!(
            "output {:?} has {classes} classes on the server but the card has {} labels",
            output.name,
            card.labels.len()
        ));
    }
    Ok(())
}
