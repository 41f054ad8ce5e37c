//! The `serve` scaffold every node uses.
//!
//! One port serves: `loupe.v1.Processor`, `loupe.v1.Source` (source nodes),
//! `grpc.health.v1.Health` (NOT_SERVING until [`Processor::start`](crate::Processor::start) finished, and again while
//! draining), server reflection (v1 and v1alpha), NiFi 1.x's
//! `org.apache.nifi.processors.grpc.FlowFileService` ([`crate::serve::nifi`], for InvokeGRPC) and,
//! over HTTP/1.1 on the same port, `POST /process`, `GET /describe` and `GET /health`
//! ([`crate::serve::http`], for NiFi 2.x's InvokeHTTP). Further front-ends (the Open Inference
//! Protocol, ...) plug in as [`Extension`]s on the same port. Every front-end calls the node
//! through the same [`NodeState`]: invoker, readiness and in-flight permits.
//!
//! Overload is answered RESOURCE_EXHAUSTED (unary) or by not reading more of a stream (the
//! HTTP/2 window then slows the sender); shutdown stops taking work, waits for in-flight work
//! up to the drain timeout, then closes.

mod app;
mod auth;
mod grpc;
pub mod http;
mod listen;
pub mod nifi;
mod security;
mod state;
mod tls;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tonic::codec::CompressionEncoding;
use tonic::service::{Routes, RoutesBuilder};
use tonic_health::ServingStatus;

use crate::error::NodeError;
use crate::pb::{self, Readiness};
use crate::processor::Node;

pub use app::{SecureListener, serve_app};
pub use auth::{AuthError, AuthSettings, Authenticator, CertificateRights, Right, TokenSettings};
pub use listen::{Conn, Incoming, PeerInfo};
pub use security::{Security, SecurityError, SecuritySettings};
pub use state::NodeState;
pub use tls::{TlsError, TlsSettings};
pub(crate) use tls::{certificates, provider as tls_provider};

use grpc::{ProcessorService, SourceService};

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
    /// TLS and credentials of the port (default: plaintext, no credentials — loopback only).
    pub security: Security,
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
    /// The port's security is refused (secure by default) or could not be loaded.
    #[error(transparent)]
    Security(#[from] SecurityError),
    /// The listener's address could not be read.
    #[error("listener: {0}")]
    Listener(#[source] std::io::Error),
}

/// Adds a front-end (extra gRPC services, e.g. the Open Inference Protocol) on the node's
/// port, behind the same security and limits as the others. Shared (`Fn` behind an `Arc`) so
/// that a [`Node`] carrying it stays cheap to clone.
pub type Extension = Arc<dyn Fn(&Arc<NodeState>, &mut RoutesBuilder) + Send + Sync>;

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
    let addr = listener.local_addr().map_err(ServeError::Listener)?;
    options.security.check_listener(addr, "")?;
    let security = options.security.clone();
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
        // Answers are not compressed, even for a client that accepts gzip: their content is
        // an image, which gzip cannot shrink, and compressing a camera JPEG cost more than
        // decoding it (benches/README.md: 4.7 -> 13.6 images/s on a 2048 x 2048 JPEG).
        pb::processor_server::ProcessorServer::new(ProcessorService(state.clone()))
            .max_decoding_message_size(max)
            .max_encoding_message_size(max)
            .accept_compressed(CompressionEncoding::Gzip),
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

    // TCP_NODELAY and the TLS handshakes happen in the accept task (`listen`).
    let incoming = security.incoming(listener);
    // HTTP/1.1 (NiFi's InvokeHTTP, curl) and gRPC (HTTP/2) share the port: the HTTP
    // routes join the gRPC services' router, and the server tells the protocols apart.
    // One credential check in front of all of it: no front-end can be forgotten.
    let router = security.guard(http::routes(routes.routes().into_axum_router(), &state));
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
