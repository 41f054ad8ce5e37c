//! The `backend` setting: where the classifier's inference runs.
//!
//! ```yaml
//! # default: ONNX Runtime in this process, model.onnx from the `model` directory
//! backend: local
//! # or a remote Open Inference Protocol server (Triton, KServe, another Loupe node):
//! backend:
//!   oip:
//!     endpoint: http://triton:8001
//!     model: coil-classifier     # default: the card's name
//!     version: ""                # default: the server chooses
//!     timeout: 5s
//!     ready_timeout: 60s
//! ```
//!
//! Either way the card (`model.yaml` in the `model` directory) drives preprocessing and the
//! meaning of the output: only the inference call moves.

use std::time::Duration;

use loupe_sdk::SettingsError;
use loupe_sdk::model::oip::client::check_endpoint;
use schemars::JsonSchema;
use serde::Deserialize;

/// Where inference runs.
#[derive(Debug, Clone, PartialEq, Default, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Backend {
    /// ONNX Runtime in this process, with `model.onnx` from the `model` directory (dynamic
    /// batching, warm-up, hot reload; the node also serves the model over the Open Inference
    /// Protocol when run with `loupe serve`).
    #[default]
    Local,
    /// A remote Open Inference Protocol (KServe v2) server, called over gRPC with raw
    /// tensors; the `model` directory needs only the card (`model.yaml`).
    Oip(OipBackend),
}

/// A model on a remote Open Inference Protocol server.
#[derive(Debug, Clone, PartialEq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct OipBackend {
    /// The server's gRPC address, `https://host:port` (always TLS) or `http://host:port`
    /// (Triton's default port is 8001; a Loupe node serves the protocol on its own port).
    pub endpoint: String,
    /// PEM CA the server's certificate must chain to (`https://`; relative to the flow file's
    /// directory). Absent: the operating system's trusted roots.
    #[serde(default)]
    pub ca: Option<std::path::PathBuf>,
    /// File holding a bearer token sent on every call (a Loupe node's `auth.tokens`, with the
    /// `process` right); relative to the flow file's directory.
    #[serde(default)]
    pub token_file: Option<std::path::PathBuf>,
    /// The model's name on the server; empty (the default): the card's `name`.
    #[serde(default)]
    pub model: String,
    /// The model's version on the server; empty (the default): the server chooses.
    #[serde(default)]
    pub version: String,
    /// Deadline of one inference call (humantime, e.g. `5s`); a call that takes longer is
    /// retried (`unavailable`).
    #[serde(default = "default_timeout", with = "loupe_sdk::config::duration")]
    #[schemars(with = "String")]
    pub timeout: Duration,
    /// How long the node's start waits for the remote model to be ready (humantime); the
    /// node is not ready (health NOT_SERVING) until it is.
    #[serde(
        default = "default_ready_timeout",
        with = "loupe_sdk::config::duration"
    )]
    #[schemars(with = "String")]
    pub ready_timeout: Duration,
}

fn default_timeout() -> Duration {
    Duration::from_secs(5)
}

fn default_ready_timeout() -> Duration {
    Duration::from_secs(60)
}

impl Backend {
    /// Every problem with the setting, located under `backend`.
    pub fn problems(&self) -> Vec<SettingsError> {
        let Backend::Oip(oip) = self else {
            return Vec::new();
        };
        let mut problems = Vec::new();
        if let Err(message) = check_endpoint(&oip.endpoint) {
            problems.push(SettingsError::new("backend.oip.endpoint", message));
        }
        if oip.timeout.is_zero() {
            problems.push(SettingsError::new(
                "backend.oip.timeout",
                "must be more than 0s",
            ));
        }
        for (name, value) in [("model", &oip.model), ("version", &oip.version)] {
            if value.trim() != value.as_str() {
                problems.push(SettingsError::new(
                    format!("backend.oip.{name}"),
                    format!("{value:?} has leading or trailing spaces"),
                ));
            }
        }
        problems
    }
}
