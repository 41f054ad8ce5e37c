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
//!
//! ## Layout
//! - [`card`]: the model card (`model.yaml`), the single source of truth for preprocessing.
//! - [`classifier`]: card + ONNX Runtime session: images in, class probabilities and the
//!   card's decision out (shared with `loupe eval`); image -> tensor is the SDK's
//!   [`loupe_sdk::model::tensor`].
//! - [`eval`]: the Models issue's figures over a labelled folder, for `loupe eval`.
//! - this file: the node type ([`Classify`]), its settings and its processor.

pub mod card;
pub mod classifier;
pub mod eval;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use loupe_sdk::model::batch::{BatchConfig, Batcher};
use loupe_sdk::model::card::{CARD_FILE, MODEL_FILE};
use loupe_sdk::model::reload::{self, DirSignature, ModelSlot, WatchSpec};
use loupe_sdk::model::tensor;
use loupe_sdk::model::{interrupted, resume_panic};
use loupe_sdk::{
    BuildContext, FlowFile, Node, NodeDescription, NodeError, NodeKind, Output, ProcessError,
    Processor, Relationship, SettingsError,
};
use schemars::JsonSchema;
use serde::Deserialize;

pub use card::ModelCard;
pub use classifier::{Classifier, ClassifierError, Prediction};

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
    /// resolved against the flow file's directory.
    pub model: PathBuf,
    /// Threads one inference may use. `0` lets ONNX Runtime use one per core, which
    /// oversubscribes the machine when several nodes share it.
    #[serde(default = "default_intra_threads")]
    pub intra_threads: usize,
    /// Decision threshold in `[0, 1]` replacing the model card's: `classify.confident` is
    /// `true` when the winning probability is at or above it.
    #[serde(default)]
    pub threshold_override: Option<f32>,
    /// Most images classified in one inference (dynamic batching); `1` turns batching off.
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
    8
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
        let mut problems = Vec::new();
        if settings.model.as_os_str().is_empty() {
            problems.push(SettingsError::new(
                "model",
                "must name a directory holding model.onnx and model.yaml",
            ));
        }
        if let Some(t) = settings.threshold_override
            && !(0.0..=1.0).contains(&t)
        {
            problems.push(SettingsError::new(
                "threshold_override",
                format!("must be within [0, 1], got {t}"),
            ));
        }
        for (name, value) in [
            ("max_batch", settings.max_batch),
            ("batch_queue", settings.batch_queue),
        ] {
            if value == 0 {
                problems.push(SettingsError::new(name, "must be at least 1"));
            }
        }
        if settings.max_batch_delay > Duration::from_secs(1) {
            problems.push(SettingsError::new(
                "max_batch_delay",
                "must be at most 1s (it is added to a request's latency)",
            ));
        }
        problems
    }

    async fn build(settings: ClassifySettings, ctx: &BuildContext) -> Result<Node, NodeError> {
        let dir = ctx.resolve(&settings.model);
        // Checked here for an error that names the setting; the classifier checks again.
        match std::fs::metadata(&dir) {
            Ok(meta) if meta.is_dir() => {}
            Ok(_) => {
                return Err(NodeError::Other(format!(
                    "classify: model {} is not a directory (it must hold model.onnx and model.yaml)",
                    dir.display()
                )));
            }
            Err(e) => {
                return Err(NodeError::io(
                    format!(
                        "classify: model directory {} (setting `model`: {})",
                        dir.display(),
                        settings.model.display()
                    ),
                    e,
                ));
            }
        }

        let threads = settings.intra_threads;
        let signature = DirSignature::read(&dir, &[MODEL_FILE, CARD_FILE]);
        let load_dir = dir.clone();
        // Loading the runtime and the model is blocking file and CPU work.
        let classifier = tokio::task::spawn_blocking(move || Classifier::load(load_dir, threads))
            .await
            .map_err(|e| NodeError::Other(format!("classify: loading the model: {e}")))?
            .map_err(|e| NodeError::Other(format!("classify: {e}")))?;

        let description = loupe_sdk::factory::describe::<Self>(&settings, ctx);
        tracing::info!(
            model = %classifier.card().id(),
            dir = %dir.display(),
            intra_threads = threads,
            max_batch = settings.max_batch,
            "classify model loaded"
        );
        let slot = Arc::new(ModelSlot::new(classifier));
        if !settings.reload_interval.is_zero() {
            let spec = WatchSpec {
                dir,
                files: vec![MODEL_FILE, CARD_FILE],
                interval: settings.reload_interval,
                node: ctx.node_id.clone(),
            };
            reload::watch(&slot, spec, signature, move |dir| {
                let classifier = Classifier::load(dir, threads)?;
                classifier.warm_up()?;
                tracing::info!(model = %classifier.card().id(), "classify: new model warmed up");
                Ok::<_, ClassifierError>(classifier)
            });
        }
        let batcher = Batcher::spawn(BatchConfig {
            max_batch: settings.max_batch,
            max_delay: settings.max_batch_delay,
            queue: settings.batch_queue,
        });
        Ok(Node::processor(ClassifyProcessor {
            slot,
            batcher,
            threshold_override: settings.threshold_override,
            description,
        }))
    }
}

/// The built node: the current model, its batcher.
struct ClassifyProcessor {
    slot: Arc<ModelSlot<Classifier>>,
    batcher: Batcher<Classifier>,
    threshold_override: Option<f32>,
    description: NodeDescription,
}

#[async_trait]
impl Processor for ClassifyProcessor {
    fn describe(&self) -> NodeDescription {
        self.description.clone()
    }

    /// One dummy inference: the first real request would otherwise pay for ONNX Runtime's
    /// lazy initialisation, and a card/graph mismatch on the output surfaces before serving.
    async fn start(&self) -> Result<(), NodeError> {
        let classifier = self.slot.current();
        let id = classifier.card().id();
        resume_panic(tokio::task::spawn_blocking(move || classifier.warm_up()).await)
            .map_err(|e| NodeError::Unavailable(format!("classify: warm-up interrupted: {e}")))?
            .map_err(|e| NodeError::Other(format!("classify: warm-up of {id}: {e}")))
    }

    async fn process(&self, flow_file: FlowFile) -> Result<Vec<Output>, ProcessError> {
        // One model from decoding to answer, even if a reload swaps it meanwhile.
        let classifier = self.slot.current();
        let ticket = self.batcher.ticket();
        // `Bytes` clones share the buffer; the content itself is not copied.
        let content = flow_file.content.clone();
        let model = classifier.clone();
        // Decoding and resizing are CPU-bound: keep them off the async workers.
        let prepared = resume_panic(
            tokio::task::spawn_blocking(move || {
                let image = tensor::decode(&content).map_err(|e| {
                    ProcessError::invalid_input(format!("cannot decode image: {e}"))
                })?;
                Ok::<_, ProcessError>(tensor::prepare(&image, &model.card().input))
            })
            .await,
        )
        .map_err(|e| interrupted(Classify::TYPE, e))??;
        let prediction = self
            .batcher
            .infer(classifier.clone(), prepared, ticket)
            .await
            .map_err(|e| e.into_process_error(Classify::TYPE))?;

        let scores: serde_json::Map<String, serde_json::Value> = prediction
            .probabilities
            .iter()
            .map(|(label, p)| (label.clone(), serde_json::json!(round4(*p))))
            .collect();
        let threshold = self
            .threshold_override
            .unwrap_or(classifier.card().threshold);
        let confident = prediction.score >= threshold;
        Ok(vec![
            flow_file
                .with_attr(attr::LABEL, prediction.label)
                .with_attr(attr::SCORE, format!("{:.4}", prediction.score))
                .with_attr(attr::SCORES, serde_json::Value::Object(scores).to_string())
                .with_attr(attr::CONFIDENT, confident.to_string())
                .with_attr(attr::MODEL, classifier.card().id())
                .to(loupe_sdk::SUCCESS),
        ])
    }
}

/// Rounds to 4 decimals in f64 so the JSON shows `0.9993`, not `0.9993000030517578`.
fn round4(p: f32) -> f64 {
    (f64::from(p) * 1e4).round() / 1e4
}
