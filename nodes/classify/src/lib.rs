//! # loupe-classify
//!
//! The `classify` node: runs an ONNX image classifier on ONNX Runtime and writes the verdict
//! as attributes. The content passes through unchanged and goes to `success`; an image that
//! cannot be decoded goes to `failure` with `error.kind = invalid_input`.
//!
//! Attributes written (see [`attr`]):
//! - `classify.label`: the winning label;
//! - `classify.score`: its probability, 4 decimals;
//! - `classify.scores`: JSON object label -> probability (4 decimals);
//! - `classify.confident`: `true` when the score reaches the decision threshold (the card's, or
//!   `threshold_override`), else `false`;
//! - `classify.model`: `name@version` from the model card.
//!
//! ## Serving
//! - Dynamic batching: concurrent requests share one inference (`max_batch`,
//!   `max_batch_delay`, `batch_queue`; see [`loupe_sdk::model::batch`]).
//! - Warm-up at start: health stays NOT_SERVING until one inference has run.
//! - Hot reload: when `model.onnx` or `model.yaml` change (and then stay unchanged for one
//!   more look), the new model is loaded and warmed up beside the old one, then swapped in;
//!   requests in flight finish on the model they started with, none is dropped. A model that
//!   fails to load is logged and the old one keeps serving (`reload_interval`).
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
use std::time::Duration;

use async_trait::async_trait;
use loupe_sdk::model::oip;
use loupe_sdk::model::server::{ModelServer, ServingConfig, model_problems};
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
    /// The batching, threading and reload settings apply to `local` only.
    #[serde(default)]
    pub backend: Backend,
    /// Threads one inference may use. `0` lets ONNX Runtime use one per core, which
    /// oversubscribes the machine when several nodes share it.
    #[serde(default = "default_intra_threads")]
    pub intra_threads: usize,
    /// Decision threshold in `[0, 1]` replacing the model card's: `classify.confident` is
    /// `true` when the winning probability is at or above it.
    #[serde(default)]
    pub threshold_override: Option<f32>,
    /// Most images classified in one inference (dynamic batching); `1` (the default) turns
    /// batching off. On a CPU with one intra-op thread batching gains nothing (measured:
    /// `benches/README.md`); raise it where one inference is parallel (GPU, more threads).
    #[serde(default = "default_max_batch")]
    pub max_batch: usize,
    /// Longest the first image of a batch waits for more (humantime, e.g. `2ms`). Only spent
    /// while other requests are on their way: a lone request never waits.
    #[serde(
        default = "default_max_batch_delay",
        with = "loupe_sdk::config::duration"
    )]
    #[schemars(with = "String")]
    pub max_batch_delay: Duration,
    /// Most decoded images waiting for a batch; more requests wait for room (back pressure).
    #[serde(default = "default_batch_queue")]
    pub batch_queue: usize,
    /// How often the model directory is looked at for a changed model to load (hot reload;
    /// humantime, e.g. `2s`); `0s` turns hot reload off.
    #[serde(
        default = "default_reload_interval",
        with = "loupe_sdk::config::duration"
    )]
    #[schemars(with = "String")]
    pub reload_interval: Duration,
}

fn default_intra_threads() -> usize {
    1
}

fn default_max_batch() -> usize {
    1
}

fn default_max_batch_delay() -> Duration {
    Duration::from_millis(2)
}

fn default_batch_queue() -> usize {
    64
}

fn default_reload_interval() -> Duration {
    Duration::from_secs(2)
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
        problems.extend(settings.serving().problems());
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
                        settings.serving(),
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
                let remote =
                    RemoteClassifier::open(dir, &settings.model, backend, ctx.max_message_bytes)
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

impl ClassifySettings {
    /// The settings shared with every served model.
    pub fn serving(&self) -> ServingConfig {
        ServingConfig {
            intra_threads: self.intra_threads,
            max_batch: self.max_batch,
            max_batch_delay: self.max_batch_delay,
            batch_queue: self.batch_queue,
            reload_interval: self.reload_interval,
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
                let inference = server.infer(content).await?;
                Ok(self.verdict(flow_file, inference.model.card(), inference.output))
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
