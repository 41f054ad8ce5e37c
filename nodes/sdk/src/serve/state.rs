//! [`NodeState`]: what every front-end on a node's port shares — the invoker, readiness,
//! the in-flight permits and the serve options.

use std::sync::Arc;
use std::sync::atomic::{AtomicI32, Ordering};

use tokio::sync::Semaphore;
use tonic::Status;

use super::ServeOptions;
use crate::error::{ErrorKind, ProcessError};
use crate::invoke::Invoker;
use crate::pb::{self, FlowFile, Output, Readiness};
use crate::processor::{Node, Source};

/// Shared state of a served node, handed to [`Extension`]s so extra front-ends call the
/// node through the same invoker, limits and readiness.
pub struct NodeState {
    pub(super) invoker: Invoker,
    pub(super) source: Option<Arc<dyn Source>>,
    readiness: AtomicI32,
    pub(super) permits: Arc<Semaphore>,
    pub(super) options: ServeOptions,
}

impl NodeState {
    pub(super) fn new(node: &Node, options: ServeOptions) -> Self {
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

    pub(super) fn set_readiness(&self, r: Readiness) {
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
        let permit = self.permit_now()?;
        self.process_with(permit, flow_file, parent).await
    }

    /// Processes one FlowFile with a permit taken earlier ([`Self::permit_now`]): a front-end
    /// that takes the permit before it reads the request's body refuses an overload before
    /// it holds the body in memory.
    pub async fn process_with(
        &self,
        permit: tokio::sync::OwnedSemaphorePermit,
        flow_file: FlowFile,
        parent: Option<opentelemetry::Context>,
    ) -> Result<Vec<Output>, ProcessError> {
        let outputs = self.invoker.invoke(flow_file, parent).await;
        drop(permit);
        outputs
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
