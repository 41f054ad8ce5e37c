//! The `serve` scaffold every node uses.
//!
//! One port serves: `loupe.v1.Processor`, `loupe.v1.Source` (source nodes),
//! `grpc.health.v1.Health` (NOT_SERVING until [`Processor::start`](crate::Processor::start) finished, and again while
//! draining), server reflection (v1 and v1alpha), NiFi 1.x's
//! `org.apache.nifi.processors.grpc.FlowFileService` ([`crate::nifi`], for InvokeGRPC) and,
//! over HTTP/1.1 on the same port, `POST /process`, `GET /describe` and `GET /health`
//! ([`crate::http_front`], for NiFi 2.x's InvokeHTTP). Further front-ends (the Open Inference
//! Protocol, ...) plug in as [`Extension`]s on the same port. Every front-end calls the node
//! through the same [`NodeState`]: invoker, readiness and in-flight permits.
//!
//! Overload is answered RESOURCE_EXHAUSTED (unary) or by not reading more of a stream (the
//! HTTP/2 window then slows the sender); shutdown stops taking work, waits for in-flight work
//! up to the drain timeout, then closes.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicI32, Ordering};
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::{Semaphore, mpsc};
use tokio_stream::wrappers::ReceiverStream;
use tonic::codec::CompressionEncoding;
use tonic::service::{Routes, RoutesBuilder};
use tonic::{Request, Response, Status, Streaming};
use tonic_health::ServingStatus;

use crate::config::ServeConfig;
use crate::error::{ErrorKind, NodeError, ProcessError};
use crate::invoke::Invoker;
use crate::pb::{self, FlowFile, Output, Readiness};
use crate::processor::{Node, Source};
use crate::{http_front, nifi, telemetry};

/// Name of the Processor service, as health and reflection know it.
pub const PROCESSOR_SERVICE: &str = "loupe.v1.Processor";

/// How a node is served.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// Name in logs and traces.
    pub node_id: String,
    /// Largest message accepted or sent, bytes.
    pub max_message_bytes: usize,
    /// Most FlowFiles processed at once.
    pub max_in_flight: usize,
    /// How long shutdown waits for in-flight work.
    pub drain_timeout: Duration,
    /// Limits on every FlowFile's attributes.
    pub attributes: crate::invoke::AttributeLimits,
}

impl ServeOptions {
    /// Options from a loaded [`ServeConfig`]; `node_type` names the node when no id is set.
    pub fn from_config(config: &ServeConfig, node_type: &str) -> Self {
        ServeOptions {
            node_id: config
                .node_id
                .clone()
                .unwrap_or_else(|| node_type.to_string()),
            max_message_bytes: config.max_message_bytes,
            max_in_flight: config.max_in_flight.max(1),
            drain_timeout: config.drain_timeout,
            attributes: config.attributes,
        }
    }
}

/// Serving failed.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The node failed to start (load its model, ...).
    #[error("node failed to start: {0}")]
    Start(#[source] NodeError),
    /// The gRPC server failed.
    #[error("gRPC server: {0}")]
    Transport(#[from] tonic::transport::Error),
    /// Reflection could not be set up.
    #[error("reflection: {0}")]
    Reflection(#[from] tonic_reflection::server::Error),
}

/// Shared state of a served node, handed to [`Extension`]s so extra front-ends call the
/// node through the same invoker, limits and readiness.
pub struct NodeState {
    invoker: Invoker,
    source: Option<Arc<dyn Source>>,
    readiness: AtomicI32,
    permits: Arc<Semaphore>,
    options: ServeOptions,
}

impl NodeState {
    fn new(node: &Node, options: ServeOptions) -> Self {
        NodeState {
            invoker: Invoker::new(
                node.processor.clone(),
                &options.node_id,
                options.max_message_bytes,
            )
            .with_attribute_limits(options.attributes),
            source: node.source.clone(),
            readiness: AtomicI32::new(Readiness::Starting as i32),
            permits: Arc::new(Semaphore::new(options.max_in_flight)),
            options,
        }
    }

    /// The invoker every front-end must use.
    pub fn invoker(&self) -> &Invoker {
        &self.invoker
    }

    /// Current readiness.
    pub fn readiness(&self) -> Readiness {
        Readiness::try_from(self.readiness.load(Ordering::Acquire)).unwrap_or_default()
    }

    fn set_readiness(&self, r: Readiness) {
        self.readiness.store(r as i32, Ordering::Release);
    }

    /// The serve options.
    pub fn options(&self) -> &ServeOptions {
        &self.options
    }

    /// `Ok` when the node takes work; an `unavailable` error while starting or draining.
    pub fn ready(&self) -> Result<(), ProcessError> {
        match self.readiness() {
            Readiness::Ready => Ok(()),
            Readiness::Draining => Err(ProcessError::new(
                ErrorKind::Unavailable,
                "node is draining (shutting down)",
            )),
            _ => Err(ProcessError::new(
                ErrorKind::Unavailable,
                "node is starting (not ready yet)",
            )),
        }
    }

    /// `Ok` when the node takes work; UNAVAILABLE while starting or draining.
    pub fn check_ready(&self) -> Result<(), Status> {
        self.ready().map_err(|e| e.to_status())
    }

    /// A slot for one FlowFile, or an `overloaded` error when `max_in_flight` are in progress.
    pub fn permit_now(&self) -> Result<tokio::sync::OwnedSemaphorePermit, ProcessError> {
        self.permits.clone().try_acquire_owned().map_err(|_| {
            ProcessError::new(
                ErrorKind::Overloaded,
                format!(
                    "node overloaded: {} FlowFiles in flight; retry later",
                    self.options.max_in_flight
                ),
            )
        })
    }

    /// A slot for one FlowFile, or RESOURCE_EXHAUSTED when `max_in_flight` are in progress.
    pub fn try_permit(&self) -> Result<tokio::sync::OwnedSemaphorePermit, Status> {
        self.permit_now().map_err(|e| e.to_status())
    }

    /// Processes one FlowFile for a unary front-end (NiFi's `Send`, HTTP `POST /process`):
    /// refuses it while the node is not ready or has `max_in_flight` FlowFiles in progress,
    /// otherwise hands it to the invoker holding a permit (so draining waits for it).
    ///
    /// `Err` is always retryable (`overloaded` or `unavailable`): the FlowFile was not
    /// processed. Processing failures come back as `failure` outputs.
    pub async fn process(
        &self,
        flow_file: FlowFile,
        parent: Option<opentelemetry::Context>,
    ) -> Result<Vec<Output>, ProcessError> {
        self.ready()?;
        let _permit = self.permit_now()?;
        self.invoker.invoke(flow_file, parent).await
    }

    /// Waits for a slot for one FlowFile.
    pub async fn permit(&self) -> Option<tokio::sync::OwnedSemaphorePermit> {
        self.permits.clone().acquire_owned().await.ok()
    }

    /// The node's description with its current readiness and limits.
    pub fn describe(&self) -> pb::NodeDescription {
        let mut d = self.invoker.processor().describe();
        d.readiness = self.readiness() as i32;
        d.is_source = self.source.is_some();
        d.max_message_bytes = self.options.max_message_bytes as u64;
        if d.version.is_empty() {
            d.version = crate::VERSION.to_string();
        }
        d
    }
}

/// Adds a front-end (extra gRPC services or HTTP routes) on the node's port.
pub type Extension = Box<dyn FnOnce(&Arc<NodeState>, &mut RoutesBuilder) + Send>;

struct ProcessorService(Arc<NodeState>);

#[tonic::async_trait]
impl pb::processor_server::Processor for ProcessorService {
    async fn describe(
        &self,
        _request: Request<pb::DescribeRequest>,
    ) -> Result<Response<pb::NodeDescription>, Status> {
        Ok(Response::new(self.0.describe()))
    }

    async fn process(
        &self,
        request: Request<pb::ProcessRequest>,
    ) -> Result<Response<pb::ProcessResponse>, Status> {
        let parent = telemetry::extract_metadata(request.metadata());
        let flow_file = request
            .into_inner()
            .flow_file
            .ok_or_else(|| Status::invalid_argument("ProcessRequest.flow_file is missing"))?;
        let outputs = self
            .0
            .process(flow_file, parent)
            .await
            .map_err(|e| e.to_status())?;
        Ok(Response::new(pb::ProcessResponse { outputs }))
    }

    type ProcessStreamStream = ReceiverStream<Result<pb::ProcessStreamResponse, Status>>;

    async fn process_stream(
        &self,
        request: Request<Streaming<pb::ProcessStreamRequest>>,
    ) -> Result<Response<Self::ProcessStreamStream>, Status> {
        self.0.check_ready()?;
        let parent = telemetry::extract_metadata(request.metadata());
        let mut inbound = request.into_inner();
        // Bounded: at most this many answers wait for the client to read them.
        let (tx, rx) = mpsc::channel(32);
        let state = self.0.clone();
        tokio::spawn(async move {
            let mut tasks = tokio::task::JoinSet::new();
            while let Ok(Some(msg)) = inbound.message().await {
                let seq = msg.seq;
                let Some(flow_file) = msg.flow_file else {
                    let _ = tx
                        .send(Err(Status::invalid_argument("flow_file is missing")))
                        .await;
                    break;
                };
                if let Err(status) = state.check_ready() {
                    let reply = retry_reply(seq, status.message());
                    if tx.send(Ok(reply)).await.is_err() {
                        break;
                    }
                    continue;
                }
                // Waiting here (instead of answering RESOURCE_EXHAUSTED) stops reading the
                // stream, so HTTP/2 flow control slows the sender: back pressure, not errors.
                let Some(permit) = state.permit().await else {
                    break;
                };
                let (state, tx, parent) = (state.clone(), tx.clone(), parent.clone());
                tasks.spawn(async move {
                    let reply = match state.invoker.invoke(flow_file, parent).await {
                        Ok(outputs) => pb::ProcessStreamResponse {
                            seq,
                            outputs,
                            retryable_error: String::new(),
                        },
                        Err(e) => retry_reply(seq, &e.to_string()),
                    };
                    drop(permit);
                    let _ = tx.send(Ok(reply)).await;
                });
                // Reap finished tasks so the set stays small on long streams.
                while tasks.try_join_next().is_some() {}
            }
            while tasks.join_next().await.is_some() {}
        });
        Ok(Response::new(ReceiverStream::new(rx)))
    }
}

fn retry_reply(seq: u64, message: &str) -> pb::ProcessStreamResponse {
    pb::ProcessStreamResponse {
        seq,
        outputs: Vec::new(),
        retryable_error: message.to_string(),
    }
}

struct SourceService {
    state: Arc<NodeState>,
    source: Arc<dyn Source>,
}

/// Longest a Pull may wait for offers, so a runner notices shutdowns promptly.
const MAX_PULL_WAIT: Duration = Duration::from_secs(5);

#[tonic::async_trait]
impl pb::source_server::Source for SourceService {
    async fn pull(
        &self,
        request: Request<pb::PullRequest>,
    ) -> Result<Response<pb::PullResponse>, Status> {
        self.state.check_ready()?;
        let r = request.into_inner();
        let wait = Duration::from_millis(r.wait_ms.into()).min(MAX_PULL_WAIT);
        let pulled = self
            .source
            .pull((r.max as usize).clamp(1, 10_000), wait)
            .await
            .map_err(|e| e.to_status())?;
        Ok(Response::new(pb::PullResponse {
            offers: pulled.offers,
            exhausted: pulled.exhausted,
        }))
    }

    async fn ack(
        &self,
        request: Request<pb::AckRequest>,
    ) -> Result<Response<pb::AckResponse>, Status> {
        let r = request.into_inner();
        self.source
            .ack(r.accepted, r.rejected)
            .await
            .map_err(|e| e.to_status())?;
        Ok(Response::new(pb::AckResponse {}))
    }
}

/// Serves `node` on `listener` until `shutdown` resolves, then drains.
///
/// Returns an error if the node fails to start; in-flight work is given
/// [`ServeOptions::drain_timeout`] to finish.
pub async fn serve(
    node: Node,
    options: ServeOptions,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
    extensions: Vec<Extension>,
) -> Result<(), ServeError> {
    let max = options.max_message_bytes;
    let drain_timeout = options.drain_timeout;
    let max_in_flight = options.max_in_flight as u32;
    let state = Arc::new(NodeState::new(&node, options));

    let (health, health_service) = tonic_health::server::health_reporter();
    health
        .set_service_status("", ServingStatus::NotServing)
        .await;
    health
        .set_service_status(PROCESSOR_SERVICE, ServingStatus::NotServing)
        .await;

    let mut routes = RoutesBuilder::default();
    routes.add_service(
        pb::processor_server::ProcessorServer::new(ProcessorService(state.clone()))
            .max_decoding_message_size(max)
            .max_encoding_message_size(max)
            .accept_compressed(CompressionEncoding::Gzip)
            .send_compressed(CompressionEncoding::Gzip),
    );
    if let Some(source) = node.source.clone() {
        routes.add_service(
            pb::source_server::SourceServer::new(SourceService {
                state: state.clone(),
                source,
            })
            .max_decoding_message_size(max)
            .max_encoding_message_size(max)
            .accept_compressed(CompressionEncoding::Gzip)
            .send_compressed(CompressionEncoding::Gzip),
        );
    }
    // NiFi 1.x's InvokeGRPC calls every node through its own service.
    routes.add_service(nifi::service(&state));
    routes.add_service(health_service);
    let reflection = || {
        tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(pb::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(nifi::pb::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
    };
    routes.add_service(reflection().build_v1()?);
    routes.add_service(reflection().build_v1alpha()?);
    for extension in extensions {
        extension(&state, &mut routes);
    }

    // Start (load, warm up) while already listening, so health can answer NOT_SERVING.
    let (start_failed_tx, start_failed_rx) = tokio::sync::oneshot::channel::<NodeError>();
    {
        let (state, health, processor) = (state.clone(), health.clone(), node.processor.clone());
        tokio::spawn(async move {
            match processor.start().await {
                Ok(()) => {
                    state.set_readiness(Readiness::Ready);
                    health.set_service_status("", ServingStatus::Serving).await;
                    health
                        .set_service_status(PROCESSOR_SERVICE, ServingStatus::Serving)
                        .await;
                    tracing::info!(node = %state.options.node_id, "ready");
                }
                Err(e) => {
                    let _ = start_failed_tx.send(e);
                }
            }
        });
    }

    let start_error = Arc::new(std::sync::Mutex::new(None));
    let drain = {
        let (state, health, start_error) = (state.clone(), health.clone(), start_error.clone());
        async move {
            tokio::select! {
                _ = shutdown => {}
                Ok(e) = start_failed_rx => {
                    *start_error.lock().unwrap_or_else(|p| p.into_inner()) = Some(e);
                }
            }
            state.set_readiness(Readiness::Draining);
            health
                .set_service_status("", ServingStatus::NotServing)
                .await;
            health
                .set_service_status(PROCESSOR_SERVICE, ServingStatus::NotServing)
                .await;
            tracing::info!(node = %state.options.node_id, "draining");
            // All permits free means no FlowFile is in flight.
            let idle = state.permits.acquire_many(max_in_flight);
            if tokio::time::timeout(drain_timeout, idle).await.is_err() {
                tracing::warn!("drain timeout: closing with FlowFiles still in flight");
            }
        }
    };

    // Small request/response pairs otherwise wait on Nagle + delayed ACK (~40 ms each); the
    // builder's own `tcp_nodelay` does not reach connections from a listener we pass in.
    let incoming = tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true));
    // HTTP/1.1 (NiFi's InvokeHTTP, curl) and gRPC (HTTP/2) share the port: the HTTP
    // routes join the gRPC services' router, and the server tells the protocols apart.
    let router = http_front::routes(routes.routes().into_axum_router(), &state);
    tonic::transport::Server::builder()
        .accept_http1(true)
        .add_routes(Routes::from(router))
        .serve_with_incoming_shutdown(incoming, drain)
        .await?;
    node.processor.stop().await;
    let start_error = start_error.lock().unwrap_or_else(|p| p.into_inner()).take();
    match start_error {
        Some(e) => Err(ServeError::Start(e)),
        None => Ok(()),
    }
}

/// Resolves on SIGTERM or SIGINT (Ctrl-C).
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        _ = term => {}
    }
}
