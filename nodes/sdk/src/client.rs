//! [`RemoteNode`]: a node in another process, behind the same [`Processor`]/[`Source`] traits.
//!
//! The flow runner treats a remote node exactly like an in-process one. Transport trouble
//! comes back as retryable [`ProcessError`]s (the runner retries with backoff); processing
//! failures come back as `failure` outputs, as the node produced them.

use std::time::Duration;

use async_trait::async_trait;
use tonic::codec::CompressionEncoding;
use tonic::transport::{Channel, Endpoint};

use crate::error::{NodeError, ProcessError};
use crate::pb::{self, FlowFile, NodeDescription, Output};
use crate::processor::{Node, Processor, Pulled, Source};
use crate::telemetry;

/// How to talk to a remote node.
#[derive(Debug, Clone)]
pub struct ClientOptions {
    /// Largest message sent or accepted, bytes.
    pub max_message_bytes: usize,
    /// How long [`RemoteNode::connect`] keeps trying before giving up.
    pub connect_timeout: Duration,
    /// Deadline of one call; a node that does not answer in time is retried.
    pub request_timeout: Duration,
}

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions {
            max_message_bytes: crate::DEFAULT_MAX_MESSAGE_BYTES,
            connect_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(120),
        }
    }
}

/// A remote node could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// An endpoint is not a valid URI.
    #[error("invalid endpoint `{endpoint}`: {message}")]
    BadEndpoint {
        /// The endpoint as given.
        endpoint: String,
        /// Why it is invalid.
        message: String,
    },
    /// No endpoint answered `Describe` within the connect timeout.
    #[error("node at {endpoints} unreachable after {waited:?}: {message}")]
    Unreachable {
        /// The endpoints tried.
        endpoints: String,
        /// How long it tried.
        waited: Duration,
        /// The last error.
        message: String,
    },
}

/// Normalizes `host:port` to `http://host:port`.
pub fn endpoint_uri(endpoint: &str) -> String {
    if endpoint.contains("://") {
        endpoint.to_string()
    } else {
        format!("http://{endpoint}")
    }
}

/// A lazily connecting channel to one endpoint, or load-balanced over several; it reconnects
/// by itself when a node restarts.
pub fn channel(endpoints: &[String], options: &ClientOptions) -> Result<Channel, ClientError> {
    let mut list = Vec::with_capacity(endpoints.len());
    for e in endpoints {
        let ep = Endpoint::from_shared(endpoint_uri(e))
            .map_err(|err| ClientError::BadEndpoint {
                endpoint: e.clone(),
                message: err.to_string(),
            })?
            .connect_timeout(Duration::from_secs(2).min(options.connect_timeout))
            .timeout(options.request_timeout)
            .tcp_nodelay(true);
        list.push(ep);
    }
    match list.len() {
        0 => Err(ClientError::BadEndpoint {
            endpoint: String::new(),
            message: "no endpoint given".into(),
        }),
        1 => Ok(list.remove(0).connect_lazy()),
        _ => Ok(Channel::balance_list(list.into_iter())),
    }
}

/// A remote node.
#[derive(Clone)]
pub struct RemoteNode {
    endpoints: String,
    processor: pb::processor_client::ProcessorClient<Channel>,
    source: pb::source_client::SourceClient<Channel>,
    description: NodeDescription,
}

impl RemoteNode {
    /// Connects and fetches the node's description, retrying until the connect timeout.
    pub async fn connect(
        endpoints: &[String],
        options: &ClientOptions,
    ) -> Result<Self, ClientError> {
        let mut node = Self::connect_unchecked(endpoints, options)?;
        let started = tokio::time::Instant::now();
        let mut delay = Duration::from_millis(50);
        loop {
            match node.processor.describe(pb::DescribeRequest {}).await {
                Ok(d) => {
                    node.description = d.into_inner();
                    return Ok(node);
                }
                Err(status) if started.elapsed() < options.connect_timeout => {
                    tracing::debug!(endpoints = %node.endpoints, %status, "waiting for node");
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_secs(1));
                }
                Err(status) => {
                    return Err(ClientError::Unreachable {
                        endpoints: node.endpoints,
                        waited: started.elapsed(),
                        message: ProcessError::from_status(&status).message,
                    });
                }
            }
        }
    }

    /// A client that does not call the node until it is used (fast start for `loupe call`).
    pub fn connect_unchecked(
        endpoints: &[String],
        options: &ClientOptions,
    ) -> Result<Self, ClientError> {
        let channel = channel(endpoints, options)?;
        let max = options.max_message_bytes;
        Ok(RemoteNode {
            endpoints: endpoints.join(", "),
            processor: pb::processor_client::ProcessorClient::new(channel.clone())
                .max_decoding_message_size(max)
                .max_encoding_message_size(max)
                .accept_compressed(CompressionEncoding::Gzip),
            source: pb::source_client::SourceClient::new(channel)
                .max_decoding_message_size(max)
                .max_encoding_message_size(max)
                .accept_compressed(CompressionEncoding::Gzip),
            description: NodeDescription::default(),
        })
    }

    /// The endpoints, for messages.
    pub fn endpoints(&self) -> &str {
        &self.endpoints
    }

    /// The description fetched at connect time.
    pub fn description(&self) -> &NodeDescription {
        &self.description
    }

    /// Fetches a fresh description (readiness included).
    pub async fn fetch_description(&self) -> Result<NodeDescription, ProcessError> {
        let mut client = self.processor.clone();
        client
            .describe(pb::DescribeRequest {})
            .await
            .map(|r| r.into_inner())
            .map_err(|s| ProcessError::from_status(&s))
    }

    /// This remote node as a [`Node`] (with the source face when it is a source).
    pub fn into_node(self) -> Node {
        let is_source = self.description.is_source;
        let this = std::sync::Arc::new(self);
        Node {
            processor: this.clone(),
            source: is_source.then_some(this as std::sync::Arc<dyn Source>),
            extensions: Vec::new(),
        }
    }
}

#[async_trait]
impl Processor for RemoteNode {
    fn describe(&self) -> NodeDescription {
        self.description.clone()
    }

    async fn process(&self, flow_file: FlowFile) -> Result<Vec<Output>, ProcessError> {
        let mut request = tonic::Request::new(pb::ProcessRequest {
            flow_file: Some(flow_file),
        });
        telemetry::inject_current_into_metadata(request.metadata_mut());
        let mut client = self.processor.clone();
        match client.process(request).await {
            Ok(r) => Ok(r.into_inner().outputs),
            Err(status) => {
                let mut e = ProcessError::from_status(&status);
                e.message = format!("node at {}: {}", self.endpoints, e.message);
                Err(e)
            }
        }
    }
}

#[async_trait]
impl Source for RemoteNode {
    async fn pull(&self, max: usize, wait: Duration) -> Result<Pulled, NodeError> {
        let mut client = self.source.clone();
        let r = client
            .pull(pb::PullRequest {
                max: max.min(u32::MAX as usize) as u32,
                wait_ms: wait.as_millis().min(u32::MAX as u128) as u32,
            })
            .await
            .map_err(|s| NodeError::Unavailable(format!("source at {}: {s}", self.endpoints)))?
            .into_inner();
        Ok(Pulled {
            offers: r.offers,
            exhausted: r.exhausted,
        })
    }

    async fn ack(&self, accepted: Vec<String>, rejected: Vec<String>) -> Result<(), NodeError> {
        let mut client = self.source.clone();
        client
            .ack(pb::AckRequest { accepted, rejected })
            .await
            .map_err(|s| NodeError::Unavailable(format!("source at {}: {s}", self.endpoints)))?;
        Ok(())
    }
}
