//! The Open Inference Protocol (KServe v2, Triton's gRPC API), both ways.
//!
//! - [`service`]: a served model node also answers `inference.GRPCInferenceService` on its
//!   port (all six rpcs), running requests' tensors through the same ONNX Runtime session it
//!   serves FlowFiles with. Added to a node with [`service::extension`].
//! - [`client`]: [`client::OipClient`], for a node whose inference runs on a remote OIP server
//!   (Triton, KServe, another Loupe node).
//! - [`datatype`]: the protocol's datatypes and raw little-endian tensor data.
//! - [`session`]: an ONNX Runtime session's tensors as OIP metadata, and raw tensors through it.
//!
//! Wire rules both sides follow: tensor data travels raw (`raw_input_contents` /
//! `raw_output_contents`, one entry per tensor in order, row-major, little-endian, no padding);
//! the server answers raw only (the Triton client's `as_numpy` reads nothing else) and accepts
//! typed `contents` inputs too; the ONNX platform is [`PLATFORM`].

pub mod client;
pub mod datatype;
pub mod service;
pub mod session;

pub use client::{OipClient, OipTarget};
pub use datatype::{DataType, RawTensor};
pub use service::{OipModel, extension};

/// The `platform` of ONNX models in `ModelMetadata`.
pub const PLATFORM: &str = "onnx_onnxv1";

/// The gRPC service name, as health and reflection know it.
pub const SERVICE: &str = "inference.GRPCInferenceService";

/// Generated `inference` protocol types and gRPC stubs (`proto/inference/grpc_service.proto`).
#[allow(missing_docs, clippy::all)]
pub mod pb {
    tonic::include_proto!("inference");

    /// Encoded file descriptor set of `inference`, for server reflection.
    pub const FILE_DESCRIPTOR_SET: &[u8] =
        include_bytes!(concat!(env!("OUT_DIR"), "/inference_descriptor.bin"));
}
