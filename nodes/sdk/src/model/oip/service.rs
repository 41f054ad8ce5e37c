//! `inference.GRPCInferenceService` on a served model node's port.
//!
//! The node's current model (hot reloads included) answers under its card's name and version;
//! `ModelInfer` runs the request's tensors, as given (OIP clients send model tensors, not
//! images: no preprocessing here), through the same ONNX Runtime session the node serves
//! FlowFiles with. The service shares the node's [`NodeState`]: `ServerReady` and `ModelReady`
//! are true only once the node's start (model loaded and warmed up) finished and until it
//! drains; `ModelInfer` is refused UNAVAILABLE meanwhile and RESOURCE_EXHAUSTED when the
//! node's `max_in_flight` are in progress; messages are limited to the node's
//! `max_message_bytes` both ways.
//!
//! Errors are gRPC statuses: NOT_FOUND for a model or version the node does not serve,
//! INVALID_ARGUMENT for tensors that do not fit the model (names, datatypes, shapes, byte
//! counts), INTERNAL when ONNX Runtime fails.

use std::sync::{Arc, Mutex};

use bytes::Bytes;
use ort::session::Session;
use tonic::codec::CompressionEncoding;
use tonic::service::RoutesBuilder;
use tonic::{Request, Response, Status};

use super::datatype::{DataType, RawTensor, contents_to_raw};
use super::pb::{self, grpc_inference_service_server as server};
use super::session::{self, RunError};
use crate::pb::Readiness;
use crate::serve::NodeState;

/// What the service needs of a served model: its name and version (the card's) and the ONNX
/// Runtime session the node serves with.
pub trait OipModel: Send + Sync + 'static {
    /// The model's name in the protocol (the card's `name`).
    fn oip_name(&self) -> &str;
    /// The model's version in the protocol (the card's `version`).
    fn oip_version(&self) -> &str;
    /// The session the node runs the model in.
    fn onnx_session(&self) -> &Mutex<Session>;
}

/// The front-end to add to a node ([`crate::Node::with_extension`]): serves
/// `inference.GRPCInferenceService` for the model `current` returns (called per request, so a
/// hot-reloaded model is served as soon as the node serves it).
pub fn extension<M, F>(current: F) -> crate::serve::Extension
where
    M: OipModel,
    F: Fn() -> Arc<M> + Clone + Send + Sync + 'static,
{
    Arc::new(move |state: &Arc<NodeState>, routes: &mut RoutesBuilder| {
        let max = state.options().max_message_bytes;
        routes.add_service(
            server::GrpcInferenceServiceServer::new(OipService {
                state: state.clone(),
                current: current.clone(),
            })
            .max_decoding_message_size(max)
            .max_encoding_message_size(max)
            .accept_compressed(CompressionEncoding::Gzip),
        );
    })
}

/// The service for one node.
struct OipService<F> {
    state: Arc<NodeState>,
    current: F,
}

impl<M, F> OipService<F>
where
    M: OipModel,
    F: Fn() -> Arc<M> + Send + Sync + 'static,
{
    fn ready(&self) -> bool {
        self.state.readiness() == Readiness::Ready
    }

    /// The current model when `name`/`version` name it (an empty version names any).
    fn model(&self, name: &str, version: &str) -> Result<Arc<M>, Status> {
        let model = (self.current)();
        if name != model.oip_name() {
            return Err(Status::not_found(format!(
                "unknown model {name:?}: this node serves {:?} (version {:?})",
                model.oip_name(),
                model.oip_version()
            )));
        }
        if !version.is_empty() && version != model.oip_version() {
            return Err(Status::not_found(format!(
                "model {name:?} has no version {version:?}: this node serves version {:?}",
                model.oip_version()
            )));
        }
        Ok(model)
    }
}

#[tonic::async_trait]
impl<M, F> server::GrpcInferenceService for OipService<F>
where
    M: OipModel,
    F: Fn() -> Arc<M> + Send + Sync + 'static,
{
    async fn server_live(
        &self,
        _request: Request<pb::ServerLiveRequest>,
    ) -> Result<Response<pb::ServerLiveResponse>, Status> {
        // Answering at all is being live; draining still finishes work.
        Ok(Response::new(pb::ServerLiveResponse { live: true }))
    }

    async fn server_ready(
        &self,
        _request: Request<pb::ServerReadyRequest>,
    ) -> Result<Response<pb::ServerReadyResponse>, Status> {
        Ok(Response::new(pb::ServerReadyResponse {
            ready: self.ready(),
        }))
    }

    async fn model_ready(
        &self,
        request: Request<pb::ModelReadyRequest>,
    ) -> Result<Response<pb::ModelReadyResponse>, Status> {
        let r = request.into_inner();
        // A readiness probe: a model this node does not serve is simply not ready.
        let ready = self.ready() && self.model(&r.name, &r.version).is_ok();
        Ok(Response::new(pb::ModelReadyResponse { ready }))
    }

    async fn server_metadata(
        &self,
        _request: Request<pb::ServerMetadataRequest>,
    ) -> Result<Response<pb::ServerMetadataResponse>, Status> {
        Ok(Response::new(pb::ServerMetadataResponse {
            name: "loupe".to_string(),
            version: crate::VERSION.to_string(),
            extensions: Vec::new(),
        }))
    }

    async fn model_metadata(
        &self,
        request: Request<pb::ModelMetadataRequest>,
    ) -> Result<Response<pb::ModelMetadataResponse>, Status> {
        let r = request.into_inner();
        let model = self.model(&r.name, &r.version)?;
        let (inputs, outputs) = {
            let session = model
                .onnx_session()
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            session::metadata(&session)
        };
        Ok(Response::new(pb::ModelMetadataResponse {
            name: model.oip_name().to_string(),
            versions: vec![model.oip_version().to_string()],
            platform: super::PLATFORM.to_string(),
            inputs,
            outputs,
        }))
    }

    async fn model_infer(
        &self,
        request: Request<pb::ModelInferRequest>,
    ) -> Result<Response<pb::ModelInferResponse>, Status> {
        self.state.check_ready()?;
        let _permit = self.state.try_permit()?;
        let r = request.into_inner();
        let model = self.model(&r.model_name, &r.model_version)?;
        let inputs = raw_inputs(&r)?;
        let graph_inputs = {
            let session = model
                .onnx_session()
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            session::metadata(&session).0
        };
        session::check_inputs(&graph_inputs, &inputs).map_err(run_status)?;
        let wanted: Vec<String> = r.outputs.iter().map(|o| o.name.clone()).collect();
        let for_run = model.clone();
        // ONNX Runtime is blocking CPU work; it takes its turn with the node's batches.
        let outputs = tokio::task::spawn_blocking(move || {
            session::run(for_run.onnx_session(), inputs, &wanted)
        })
        .await
        .map_err(|e| {
            if e.is_panic() {
                Status::internal("the model panicked on this request")
            } else {
                Status::unavailable(format!("interrupted: {e}"))
            }
        })?
        .map_err(run_status)?;
        let (outputs, raw_output_contents): (Vec<_>, Vec<Bytes>) = outputs
            .into_iter()
            .map(|t| {
                (
                    pb::model_infer_response::InferOutputTensor {
                        name: t.name,
                        datatype: t.datatype.as_str().to_string(),
                        shape: t.shape,
                        parameters: Default::default(),
                        contents: None,
                    },
                    t.data,
                )
            })
            .unzip();
        Ok(Response::new(pb::ModelInferResponse {
            model_name: model.oip_name().to_string(),
            model_version: model.oip_version().to_string(),
            id: r.id,
            parameters: Default::default(),
            outputs,
            raw_output_contents,
        }))
    }
}

fn run_status(e: RunError) -> Status {
    match e {
        RunError::InvalidInput(m) => Status::invalid_argument(m),
        RunError::Model(m) => Status::internal(format!("the model failed: {m}")),
    }
}

/// The request's input tensors with raw data: from `raw_input_contents` (one entry per input,
/// in order) or, when that is empty, from each input's typed `contents`.
fn raw_inputs(r: &pb::ModelInferRequest) -> Result<Vec<RawTensor>, Status> {
    let raw = !r.raw_input_contents.is_empty();
    if raw && r.raw_input_contents.len() != r.inputs.len() {
        return Err(Status::invalid_argument(format!(
            "raw_input_contents has {} entries for {} inputs: give one per input, in order",
            r.raw_input_contents.len(),
            r.inputs.len()
        )));
    }
    r.inputs
        .iter()
        .enumerate()
        .map(|(i, input)| {
            let datatype = DataType::parse(&input.datatype).ok_or_else(|| {
                Status::invalid_argument(format!(
                    "input {:?}: unknown datatype {:?} (BOOL, UINT8..UINT64, INT8..INT64, \
                     FP16, BF16, FP32, FP64 or BYTES)",
                    input.name, input.datatype
                ))
            })?;
            let data = if raw {
                if input.contents.as_ref().is_some_and(has_values) {
                    return Err(Status::invalid_argument(format!(
                        "input {:?} has both contents and raw_input_contents: give one",
                        input.name
                    )));
                }
                r.raw_input_contents[i].clone()
            } else {
                let contents = input.contents.clone().unwrap_or_default();
                contents_to_raw(&input.name, datatype, &contents)
                    .map_err(Status::invalid_argument)?
            };
            Ok(RawTensor {
                name: input.name.clone(),
                datatype,
                shape: input.shape.clone(),
                data,
            })
        })
        .collect()
}

/// Whether typed contents hold any value (an empty message counts as not set).
fn has_values(c: &pb::InferTensorContents) -> bool {
    !(c.bool_contents.is_empty()
        && c.int_contents.is_empty()
        && c.int64_contents.is_empty()
        && c.uint_contents.is_empty()
        && c.uint64_contents.is_empty()
        && c.fp32_contents.is_empty()
        && c.fp64_contents.is_empty()
        && c.bytes_contents.is_empty())
}
