//! Serving image models (feature `onnx`): what `classify`, `segment` and `loupe eval` share.
//!
//! - [`input`]: the model card's input contract ([`input::InputSpec`]).
//! - [`card`]: reading and checking a card file; [`card::CardError`].
//! - [`error`]: [`ModelError`], why loading or running a served model failed.
//! - [`tensor`]: image -> tensor exactly as the card says, filled in place per batch slot.
//! - [`batch`]: dynamic batching of concurrent requests ([`batch::Batcher`]).
//! - [`eval`]: manifests, batched runs on several threads, AUROC and card comparison for
//!   `loupe eval`.
//! - [`reload`]: a replaceable current model and the directory watcher that swaps it.
//! - [`serving`]: the `serving:` settings every model node takes (batching, threads, hot
//!   reload; [`serving::ServingSettings`]), with one set of defaults.
//! - [`server`]: all of the above put together for one node ([`server::ModelServer`]).
//! - [`oip`]: the Open Inference Protocol (KServe v2): served beside a model node's own
//!   service, and a client for remote inference.

pub mod batch;
pub mod card;
pub mod error;
pub mod eval;
pub mod input;
pub mod oip;
pub mod reload;
pub mod server;
pub mod serving;
pub mod tensor;

pub use error::ModelError;

use crate::{ErrorKind, ProcessError};

/// Passes a blocking task's result through, except that a panic inside it is re-raised, so
/// the SDK's panic handling reports it as `error.kind = panic` (and the node keeps serving)
/// rather than as an internal error. What is left is cancellation, which only happens when
/// the runtime shuts down.
pub fn resume_panic<T>(
    joined: Result<T, tokio::task::JoinError>,
) -> Result<T, tokio::task::JoinError> {
    match joined {
        Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
        other => other,
    }
}

/// The error for a blocking task of node type `node` cancelled by a shutdown.
pub fn interrupted(node: &str, e: tokio::task::JoinError) -> ProcessError {
    ProcessError::new(ErrorKind::Unavailable, format!("{node}: interrupted: {e}"))
}

impl batch::BatchError {
    /// The processing error a node of type `node` reports for this batch failure.
    pub fn into_process_error(self, node: &str) -> ProcessError {
        match self {
            batch::BatchError::Model(message) => ProcessError::new(ErrorKind::Model, message),
            batch::BatchError::Panic(message) => ProcessError::new(
                ErrorKind::Panic,
                format!("{node}: the model panicked: {message}"),
            ),
            batch::BatchError::Stopped => {
                ProcessError::new(ErrorKind::Unavailable, format!("{node}: shutting down"))
            }
        }
    }
}
