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
//! ## Layout
//! - [`card`]: the model card (`model.yaml`), the single source of truth for preprocessing.
//! - [`preprocess`]: decode, and image -> tensor exactly as the card says (pure; reused by
//!   `loupe eval`).
//! - [`classifier`]: card + ONNX Runtime session: image in, probabilities out.
//! - this file: the node type ([`Classify`]), its settings and its processor.

pub mod card;
pub mod classifier;
pub mod preprocess;

use std::path::PathBuf;
use std::sync::Arc;

use async_trait::async_trait;
use loupe_sdk::{
    BuildContext, ErrorKind, FlowFile, Node, NodeDescription, NodeError, NodeKind, Output,
    ProcessError, Processor, Relationship, SettingsError,
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
}

fn default_intra_threads() -> usize {
    1
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
        let load_dir = dir.clone();
        // Loading the runtime and the model is blocking file and CPU work.
        let classifier = tokio::task::spawn_blocking(move || Classifier::load(load_dir, threads))
            .await
            .map_err(|e| NodeError::Other(format!("classify: loading the model: {e}")))?
            .map_err(|e| NodeError::Other(format!("classify: {e}")))?;

        let threshold = settings
            .threshold_override
            .unwrap_or(classifier.card().threshold);
        let description = NodeDescription {
            node_type: Self::TYPE.to_string(),
            version: loupe_sdk::VERSION.to_string(),
            relationships: Self::relationships(&settings),
            settings_schema: serde_json::to_string(&schemars::schema_for!(ClassifySettings))
                .unwrap_or_default(),
            is_source: false,
            max_message_bytes: ctx.max_message_bytes as u64,
            ..Default::default()
        };
        tracing::info!(
            model = %classifier.card().id(),
            dir = %dir.display(),
            threshold,
            intra_threads = threads,
            "classify model loaded"
        );
        Ok(Node::processor(ClassifyProcessor {
            model_id: classifier.card().id(),
            classifier: Arc::new(classifier),
            threshold,
            description,
        }))
    }
}

/// The built node: one loaded model.
struct ClassifyProcessor {
    classifier: Arc<Classifier>,
    model_id: String,
    threshold: f32,
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
        let classifier = self.classifier.clone();
        join(tokio::task::spawn_blocking(move || classifier.warm_up()).await)
            .map_err(|e| NodeError::Unavailable(format!("classify: warm-up interrupted: {e}")))?
            .map_err(|e| NodeError::Other(format!("classify: warm-up of {}: {e}", self.model_id)))
    }

    async fn process(&self, flow_file: FlowFile) -> Result<Vec<Output>, ProcessError> {
        let classifier = self.classifier.clone();
        // `Bytes` clones share the buffer; the content itself is not copied.
        let content = flow_file.content.clone();
        // Decoding, resizing and inference are CPU-bound: keep them off the async workers.
        let prediction = join(
            tokio::task::spawn_blocking(move || {
                let image = preprocess::decode(&content).map_err(|e| {
                    ProcessError::invalid_input(format!("cannot decode image: {e}"))
                })?;
                classifier
                    .classify(&image)
                    .map_err(|e| ProcessError::new(ErrorKind::Model, e.to_string()))
            })
            .await,
        )
        .map_err(|e| {
            ProcessError::new(
                ErrorKind::Unavailable,
                format!("classify: interrupted: {e}"),
            )
        })??;

        let scores: serde_json::Map<String, serde_json::Value> = prediction
            .probabilities
            .iter()
            .map(|(label, p)| (label.clone(), serde_json::json!(round4(*p))))
            .collect();
        let confident = prediction.score >= self.threshold;
        Ok(vec![
            flow_file
                .with_attr(attr::LABEL, prediction.label)
                .with_attr(attr::SCORE, format!("{:.4}", prediction.score))
                .with_attr(attr::SCORES, serde_json::Value::Object(scores).to_string())
                .with_attr(attr::CONFIDENT, confident.to_string())
                .with_attr(attr::MODEL, self.model_id.clone())
                .to(loupe_sdk::SUCCESS),
        ])
    }
}

/// Passes a blocking task's result through, except that a panic inside it is re-raised so the
/// SDK's panic handling reports it as a panic (`error.kind = panic`), not as an internal error.
/// What is left is cancellation, which only happens when the runtime is shutting down.
fn join<T>(joined: Result<T, tokio::task::JoinError>) -> Result<T, tokio::task::JoinError> {
    match joined {
        Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
        other => other,
    }
}

/// Rounds to 4 decimals in f64 so the JSON shows `0.9993`, not `0.9993000030517578`.
fn round4(p: f32) -> f64 {
    (f64::from(p) * 1e4).round() / 1e4
}
