//! # loupe-classify
//!
//! The `classify` node: runs an ONNX image classifier on ONNX Runtime and writes the verdict
//! as attributes. The content passes through unchanged and goes to `success`; an image that
//! cannot be decoded goes to `failure` with `error.kind = invalid_input`, one over the size
//! limits (`serving.max_pixels`, `serving.max_bytes`; checked from the header, so a
//! decompression bomb costs nothing) with `error.kind = too_large`.
//!
//! Attributes written (see [`attr`]):
//! - `classify.label`: the winning label;
//! - `classify.score`: its probability, 4 decimals;
//! - `classify.scores`: JSON object label -> probability (4 decimals);
//! - `classify.p.<label>`: each label's probability on its own (6 decimals), for rules:
//!   `double(classify.p.loose_wire) >= 0.2` in a route rule or a product policy;
//! - `classify.confident`: `true` when the score reaches the decision threshold (the card's, or
//!   `threshold_override`), else `false`;
//! - `classify.model`: `name@version` from the model card.
//!
//! ## Serving
//! The `serving:` settings ([`loupe_sdk::model::serving::ServingSettings`], shared with
//! `segment`, one set of defaults) say how the model runs:
//!
//! ```yaml
//! settings:
//!   model: models/coil-classifier
//!   serving:            # every key optional; these are the defaults but max_batch
//!     intra_threads: 1
//!     sessions: 0         # one per core: that many inferences at once
//!     max_batch: 8
//!     max_batch_delay: 2ms
//!     batch_queue: 64
//!     reload_interval: 2s
//!     max_pixels: 50000000   # largest image accepted (both backends)
//!     max_bytes: 67108864    # largest encoded image accepted (both backends)
//! ```
//!
//! - Dynamic batching: concurrent requests share one inference (`serving.max_batch`,
//!   `serving.max_batch_delay`, `serving.batch_queue`; see [`loupe_sdk::model::batch`]);
//!   off by default (`max_batch: 1`: on a CPU it gains nothing, `benches/README.md`).
//! - Cores: `serving.sessions` inferences at once, each in its own ONNX Runtime session
//!   (default: one per core the process may use), `serving.intra_threads` per inference
//!   (default 1).
//! - Warm-up at start: health stays NOT_SERVING until one inference has run.
//! - Hot reload: when `model.onnx` or `model.yaml` change (and then stay unchanged for one
//!   more look), the new model is loaded and warmed up beside the old one, then swapped in;
//!   requests in flight finish on the model they started with, none is dropped. A model that
//!   fails to load is logged and the old one keeps serving (`serving.reload_interval`).
//! - Open Inference Protocol: served with `loupe serve classify`, the node's port also answers
//!   `inference.GRPCInferenceService` (KServe v2 / Triton's gRPC API) for its model, under the
//!   card's name and version, through the same ONNX Runtime session
//!   ([`loupe_sdk::model::oip::service`]).
//! - Remote inference: `backend: { oip: { endpoint, model, version, timeout } }` sends the
//!   card-prepared tensor to a remote OIP server (Triton, KServe, another Loupe node) instead
//!   of running ONNX Runtime here ([`backend`], [`remote`]).
//!
//! ## Layout
//! - [`card`]: the model card (`model.yaml`), the single source of truth for preprocessing.
//! - [`classifier`]: card + ONNX Runtime session: images in, class probabilities and the
//!   card's decision out (shared with `loupe eval`); image -> tensor is the SDK's
//!   [`loupe_sdk::model::tensor`].
//! - [`backend`]: the `backend` setting (local ONNX Runtime or a remote OIP server).
//! - [`remote`]: the card + a remote OIP model.
//! - [`eval`]: the Models issue's figures over a labelled folder, for `loupe eval`.
//! - this file: the node type ([`Classify`]), its settings and its processor.

pub mod backend;
pub mod card;
pub mod classifier;
pub mod eval;
pub mod remote;

use std::path::PathBuf;
use std::sync::Arc;

use async_trait::async_trait;
use loupe_sdk::model::oip;
use loupe_sdk::model::server::{ModelServer, model_problems};
use loupe_sdk::model::serving::{self, ServingSettings};
use loupe_sdk::{
    BuildContext, FlowFile, Node, NodeDescription, NodeError, NodeKind, Output, ProcessError,
    Processor, Relationship, SettingsError,
};
use schemars::JsonSchema;
use serde::Deserialize;

pub use backend::{Backend, OipBackend};
pub use card::ModelCard;
pub use classifier::{Classifier, ClassifierError, Prediction};
use remote::RemoteClassifier;

/// Attribute names this node writes.
pub mod attr {
    /// The winning label.
    pub const LABEL: &str = "classify.label";
    /// Probability of the winning label, 4 decimals.
    pub const SCORE: &str = "classify.score";
    /// JSON object label -> probability.
    pub const SCORES: &str = "classify.scores";
    /// Prefix of one attribute per label with its probability (`classify.p.loose_wire`).
    pub const PROBABILITY_PREFIX: &str = "classify.p.";
    /// `true` when the score reaches the decision threshold, else `false`.
    pub const CONFIDENT: &str = "classify.confident";
    /// `name@version` of the model.
    pub const MODEL: &str = "classify.model";
}

/// The `classify` node type.
#[derive(Debug, Clone, Copy, Default)]
pub struct Classify;

/// Settings of a `classify` node.
#[derive(Debug, Clone, PartialEq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ClassifySettings {
    /// Directory holding `model.onnx` and its model card `model.yaml`; a relative path is
    /// resolved against the flow file's directory. With an `oip` backend only the card is
    /// read from it.
    pub model: PathBuf,
    /// Where inference runs: `local` (the default: ONNX Runtime in this process) or
    /// `{ oip: { endpoint, model, version, timeout, ready_timeout } }`, a remote Open Inference
    /// Protocol server; the card drives preprocessing and labels either way (see [`backend`]).
    /// The `serving` settings apply to `local` only.
    #[serde(default)]
    pub backend: Backend,
    /// Decision threshold in `[0, 1]` replacing the model card's: `classify.confident` is
    /// `true` when the winning probability is at or above it.
    #[serde(default)]
    pub threshold_override: Option<f32>,
    /// How the model is served: batching, threads, hot reload (`serving: { max_batch: 8 }`;
    /// every key optional, defaults in [`ServingSettings`]). Applies to the `local` backend,
    /// but for the image limits `max_pixels` and `max_bytes`, which apply to both.
    #[serde(default)]
    pub serving: ServingSettings,
}

#[async_trait]
impl NodeKind for Classify {
    const TYPE: &'static str = "classify";
    type Settings = ClassifySettings;

    fn relationships(_settings: &ClassifySettings) -> Vec<Relationship> {
        vec![
            Relationship::new(
                loupe_sdk::SUCCESS,
                "Classified: classify.* attributes written, content unchanged",
            ),
            Relationship::failure(),
        ]
    }

    fn validate(settings: &ClassifySettings) -> Vec<SettingsError> {
        let mut problems = model_problems(&settings.model, settings.threshold_override);
        problems.extend(settings.serving.problems_at(serving::KEY));
        problems.extend(settings.backend.problems());
        problems
    }

    async fn build(settings: ClassifySettings, ctx: &BuildContext) -> Result<Node, NodeError> {
        let description = loupe_sdk::factory::describe::<Self>(&settings, ctx);
        let dir = ctx.resolve(&settings.model);
        let threshold_override = settings.threshold_override;
        match &settings.backend {
            Backend::Local => {
                let server = Arc::new(
                    ModelServer::open(
                        Self::TYPE,
                        &ctx.node_id,
                        dir,
                        &settings.model,
                        settings.serving,
                    )
                    .await?,
                );
                let current = server.clone();
                Ok(Node::processor(ClassifyProcessor {
                    engine: Engine::Local(server),
                    threshold_override,
                    description,
                })
                .with_extension(oip::extension(move || current.current())))
            }
            Backend::Oip(backend) => {
                let remote = RemoteClassifier::open(
                    dir,
                    &settings.model,
                    backend,
                    &ctx.base_dir,
                    ctx.max_message_bytes,
                    settings.serving.decode_limits(),
                )
                .await?;
                Ok(Node::processor(ClassifyProcessor {
                    engine: Engine::Remote(Box::new(remote)),
                    threshold_override,
                    description,
                }))
            }
        }
    }
}

/// Where the built node's inference runs.
enum Engine {
    /// The served model in this process (shared with the OIP front-end).
    Local(Arc<ModelServer<Classifier>>),
    /// A remote OIP model.
    Remote(Box<RemoteClassifier>),
}

/// The built node: its engine and decision settings.
struct ClassifyProcessor {
    engine: Engine,
    threshold_override: Option<f32>,
    description: NodeDescription,
}

#[async_trait]
impl Processor for ClassifyProcessor {
    fn describe(&self) -> NodeDescription {
        self.description.clone()
    }

    /// Local: one dummy inference, since the first real request would otherwise pay for ONNX
    /// Runtime's lazy initialisation, and a card/graph mismatch on the output surfaces before
    /// serving. Remote: waits for the remote model to be ready and checks it against the card.
    async fn start(&self) -> Result<(), NodeError> {
        match &self.engine {
            Engine::Local(server) => server.warm_up().await,
            Engine::Remote(remote) => remote.start().await,
        }
    }

    async fn process(&self, flow_file: FlowFile) -> Result<Vec<Output>, ProcessError> {
        let content = flow_file.content.clone();
        match &self.engine {
            Engine::Local(server) => {
                let (model, prediction) = server.infer_output(content).await?;
                Ok(self.verdict(flow_file, model.card(), prediction))
            }
            Engine::Remote(remote) => {
                let prediction = remote.classify(content).await?;
                Ok(self.verdict(flow_file, remote.card(), prediction))
            }
        }
    }
}

impl ClassifyProcessor {
    /// The `success` output: the FlowFile with the verdict's attributes.
    fn verdict(
        &self,
        flow_file: FlowFile,
        card: &ModelCard,
        prediction: Prediction,
    ) -> Vec<Output> {
        let scores: serde_json::Map<String, serde_json::Value> = prediction
            .probabilities
            .iter()
            .map(|(label, p)| (label.clone(), serde_json::json!(round4(*p))))
            .collect();
        let threshold = self.threshold_override.unwrap_or(card.threshold);
        let confident = prediction.score >= threshold;
        let mut flow_file = flow_file;
        for (label, p) in &prediction.probabilities {
            flow_file = flow_file.with_attr(
                format!("{}{label}", attr::PROBABILITY_PREFIX),
                format!("{p:.6}"),
            );
        }
        vec![
            flow_file
                .with_attr(attr::LABEL, prediction.label)
                .with_attr(attr::SCORE, format!("{:.4}", prediction.score))
                .with_attr(attr::SCORES, serde_json::Value::Object(scores).to_string())
                .with_attr(attr::CONFIDENT, confident.to_string())
                .with_attr(attr::MODEL, card.id())
                .to(loupe_sdk::SUCCESS),
        ]
    }
}

/// Rounds to 4 decimals in f64 so the JSON shows `0.9993`, not `0.9993000030517578`.
fn round4(p: f32) -> f64 {
    (f64::from(p) * 1e4).round() / 1e4
}
