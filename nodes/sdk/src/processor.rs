//! The transport-agnostic node traits.
//!
//! A node is hosted the same way in-process (by the flow runner) and behind gRPC (by
//! [`crate::serve`]): both call it through these traits, with the wire messages as values.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use crate::error::{NodeError, ProcessError};
use crate::pb::{FlowFile, NodeDescription, Offer, Output};

/// Something that turns one FlowFile into zero or more routed FlowFiles.
///
/// Implementations return `Err` for a failure; the SDK turns it into an output on
/// `failure` with `error.kind`/`error.message` and the content untouched. A panic inside
/// `process` is caught the same way.
#[async_trait]
pub trait Processor: Send + Sync + 'static {
    /// What this node is: type, version, relationships, settings schema.
    /// The readiness field is filled in by whoever serves the node.
    fn describe(&self) -> NodeDescription;

    /// Loads and warms up whatever the node needs (models, connections). Health stays
    /// NOT_SERVING until this returns `Ok`.
    async fn start(&self) -> Result<(), NodeError> {
        Ok(())
    }

    /// Processes one FlowFile.
    async fn process(&self, flow_file: FlowFile) -> Result<Vec<Output>, ProcessError>;

    /// Called once when the node shuts down, after in-flight work has drained.
    async fn stop(&self) {}
}

/// What one [`Source::pull`] returned.
#[derive(Debug, Default, Clone)]
pub struct Pulled {
    /// FlowFiles offered, each to be acknowledged by its delivery id.
    pub offers: Vec<Offer>,
    /// True when a batch source has offered everything and every offer was acknowledged.
    pub exhausted: bool,
}

/// A node that brings FlowFiles into a flow with acknowledgements.
///
/// The runner pulls offers, enqueues them, and only then acknowledges them; the source
/// deletes or marks its input on acknowledgement, so nothing is lost when either side stops.
#[async_trait]
pub trait Source: Send + Sync + 'static {
    /// Up to `max` offers, waiting up to `wait` for the first one.
    async fn pull(&self, max: usize, wait: Duration) -> Result<Pulled, NodeError>;

    /// Settles offers: `accepted` ones are committed (input deleted or moved), `rejected`
    /// ones will be offered again.
    async fn ack(&self, accepted: Vec<String>, rejected: Vec<String>) -> Result<(), NodeError>;
}

/// A built node: always a processor, and a source when it brings data in.
#[derive(Clone)]
pub struct Node {
    /// The processor face (every node has one; sources answer `Describe` through it).
    pub processor: Arc<dyn Processor>,
    /// The source face, for source nodes.
    pub source: Option<Arc<dyn Source>>,
    /// Extra front-ends the node type brings, added to its port by `loupe serve` (through
    /// [`crate::serve::serve`]'s `extensions`); the in-process flow runner ignores them.
    pub extensions: Vec<crate::serve::Extension>,
}

impl Node {
    /// A plain processor node.
    pub fn processor(p: impl Processor) -> Self {
        Node {
            processor: Arc::new(p),
            source: None,
            extensions: Vec::new(),
        }
    }

    /// A source node whose one object serves both faces.
    pub fn source<S: Processor + Source>(s: S) -> Self {
        let s = Arc::new(s);
        Node {
            processor: s.clone(),
            source: Some(s),
            extensions: Vec::new(),
        }
    }

    /// This node with one more front-end (see [`Node::extensions`]).
    pub fn with_extension(mut self, extension: crate::serve::Extension) -> Self {
        self.extensions.push(extension);
        self
    }

    /// The node's front-ends as the server takes them: pass to [`crate::serve::serve`].
    pub fn server_extensions(&self) -> Vec<crate::serve::Extension> {
        self.extensions.clone()
    }
}

impl std::fmt::Debug for Node {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Node")
            .field("type", &self.processor.describe().node_type)
            .field("source", &self.source.is_some())
            .field("extensions", &self.extensions.len())
            .finish()
    }
}
