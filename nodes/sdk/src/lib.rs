//! # loupe-sdk
//!
//! Everything a Loupe node needs, so that a node crate is mostly domain code.
//!
//! ## Layout
//! - [`pb`]: the generated `loupe.v1` wire types and gRPC stubs.
//! - [`flowfile`]: helpers on [`FlowFile`] and the well-known attribute names.
//! - [`processor`]: the transport-agnostic [`Processor`] and [`Source`] traits and [`Node`].
//! - [`error`]: typed errors ([`ProcessError`], [`NodeError`]) and their one mapping to gRPC status.
//! - [`invoke`]: [`Invoker`], the one place a FlowFile is handed to a processor (size limit,
//!   panic catching, failure routing, spans) — used by the gRPC server and the in-process runner.
//! - [`factory`]: [`NodeKind`]/[`NodeFactory`]: typed settings, validation, declared relationships.
//! - [`serve`]: everything on a served node's port, in one place — the scaffold (Processor +
//!   Source services, health, reflection, limits, overload answers, graceful drain), NiFi
//!   1.x's `FlowFileService` ([`serve::nifi`], InvokeGRPC), HTTP/1.1 `POST /process`,
//!   `/describe`, `/health` ([`serve::http`], InvokeHTTP), and the security every front-end
//!   gets: TLS with rotation and mutual TLS, bearer tokens and per-method rights, secure by
//!   default beyond loopback.
//! - [`https`]: HTTP/1.1 clients for outgoing calls (webhooks, snapshots, uploads): `https://`
//!   always TLS, with the node's CA or the system's roots.
//! - [`client`]: [`client::RemoteNode`], a remote node behind the same traits (TLS for
//!   `https://`, client certificates, a bearer token).
//! - `imaging` (feature `imaging`, and `onnx`): image decoding with limits (formats, EXIF orientation,
//!   decompression bombs, JPEG decoded at a model's size by DCT scaling), errors mapped to
//!   [`ProcessError`] kinds.
//! - `model` (feature `onnx`): serving image models — the card's input contract, image ->
//!   tensor, dynamic batching, hot reload — shared by `classify`, `segment` and `loupe eval`.
//! - `onnx` (feature `onnx`): loading ONNX Runtime and sessions.
//! - [`config`]: layered configuration for `loupe serve` (defaults < YAML < `LOUPE_*` env < flags;
//!   `--set` values typed by the key's schema in `config/typed_override.rs`).
//! - [`telemetry`]: tracing + OpenTelemetry set-up and W3C trace-context propagation.
//! - [`episode`]: one warning per outage (a database, a node, a folder), not one per retry.

pub mod client;
pub mod config;
pub mod episode;
pub mod error;
#[cfg(feature = "expr")]
pub mod expr;
pub mod factory;
pub mod flowfile;
pub mod https;
// Model serving decodes through it too, so `onnx` brings it.
#[cfg(any(feature = "imaging", feature = "onnx"))]
pub mod imaging;
pub mod invoke;
#[cfg(feature = "onnx")]
pub mod model;
#[cfg(feature = "onnx")]
pub mod onnx;
pub mod processor;
pub mod serve;
pub mod telemetry;

/// Generated `loupe.v1` protocol types and gRPC stubs.
#[allow(missing_docs, clippy::all)]
pub mod pb {
    tonic::include_proto!("loupe.v1");

    /// Encoded file descriptor set of `loupe.v1`, for server reflection.
    pub const FILE_DESCRIPTOR_SET: &[u8] =
        include_bytes!(concat!(env!("OUT_DIR"), "/loupe_descriptor.bin"));
}

pub use error::{ErrorKind, NodeError, ProcessError};
pub use factory::{BuildContext, NodeFactory, NodeKind, Registry, SettingsError};
pub use flowfile::attr;
pub use invoke::{AttributeLimitError, AttributeLimits, Invoker};
pub use pb::{FlowFile, NodeDescription, Output, Relationship};
pub use processor::{Node, Processor, Pulled, Source};

/// Default largest message (64 MiB): camera images exceed gRPC's usual 4 MiB.
pub const DEFAULT_MAX_MESSAGE_BYTES: usize = 64 * 1024 * 1024;
/// Name of the relationship every processor routes failures to.
pub const FAILURE: &str = "failure";
/// Name of the usual relationship for successful processing.
pub const SUCCESS: &str = "success";
/// Version of this SDK and of every node built with it.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
