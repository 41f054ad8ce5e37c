//! [`RemoteNode`]: a node in another process, behind the same [`Processor`]/[`Source`] traits.
//!
//! The flow runner treats a remote node exactly like an in-process one. Transport trouble
//! comes back as retryable [`ProcessError`]s (the runner retries with backoff); processing
//! failures come back as `failure` outputs, as the node produced them.

use std::path::PathBuf;
use std::time::Duration;

use async_trait::async_trait;
use tonic::codec::CompressionEncoding;
use tonic::metadata::MetadataValue;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};

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
    /// TLS and credentials towards the node.
    pub security: ClientSecurity,
}

/// A secret that never shows in logs or `Debug` output.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret value (trimmed).
    pub fn new(value: &str) -> Self {
        Secret(value.trim().to_string())
    }

    /// The secret in `path` (its content, trimmed): a token file.
    pub fn from_file(path: &std::path::Path) -> std::io::Result<Self> {
        std::fs::read_to_string(path).map(|text| Secret::new(&text))
    }

    /// The value, for the one place that sends it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(..)")
    }
}

/// How a client proves itself and checks the node: TLS for `https://` endpoints (always; a
/// plaintext node then fails the handshake), a client certificate for mutual TLS, a bearer
/// token on every call.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClientSecurity {
    /// PEM CA certificate(s) the node's certificate must chain to. Absent: the operating
    /// system's trusted roots.
    pub ca: Option<PathBuf>,
    /// PEM client certificate chain (mutual TLS); needs `key`.
    pub cert: Option<PathBuf>,
    /// PEM private key of `cert`.
    pub key: Option<PathBuf>,
    /// Name the node's certificate must carry, when it differs from the endpoint's host.
    pub server_name: Option<String>,
    /// Sent as `Authorization: Bearer TOKEN` on every call.
    pub token: Option<Secret>,
}

impl ClientSecurity {
    /// The TLS configuration for `https://` endpoints.
    fn tls(&self) -> Result<ClientTlsConfig, ClientError> {
        let read = |path: &PathBuf| {
            std::fs::read(path).map_err(|e| ClientError::Tls {
                message: format!("cannot read {}: {e}", path.display()),
            })
        };
        let mut tls = ClientTlsConfig::new();
        tls = match &self.ca {
            Some(ca) => tls.ca_certificate(Certificate::from_pem(read(ca)?)),
            None => tls.with_native_roots(),
        };
        match (&self.cert, &self.key) {
            (Some(cert), Some(key)) => {
                tls = tls.identity(Identity::from_pem(read(cert)?, read(key)?));
            }
            (None, None) => {}
            _ => {
                return Err(ClientError::Tls {
                    message: "a client certificate needs both a certificate and its key".into(),
                });
            }
        }
        if let Some(name) = &self.server_name {
            tls = tls.domain_name(name.clone());
        }
        Ok(tls)
    }
}

/// Adds the bearer token to every call.
#[derive(Debug, Clone)]
pub struct Credentials(Option<MetadataValue<tonic::metadata::Ascii>>);

impl tonic::service::Interceptor for Credentials {
    fn call(
        &mut self,
        mut request: tonic::Request<()>,
    ) -> Result<tonic::Request<()>, tonic::Status> {
        if let Some(token) = &self.0 {
            request
                .metadata_mut()
                .insert("authorization", token.clone());
        }
        Ok(request)
    }
}

/// A channel whose calls carry the client's credentials.
pub type AuthChannel = InterceptedService<Channel, Credentials>;

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions {
            max_message_bytes: crate::DEFAULT_MAX_MESSAGE_BYTES,
            connect_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(120),
            security: ClientSecurity::default(),
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
    /// The TLS files or the token could not be used.
    #[error("TLS client: {message}")]
    Tls {
        /// What is wrong.
        message: String,
    },
    /// The node refused the credentials (or their absence).
    #[error("node at {endpoints} refused the call: {message}")]
    Refused {
        /// The endpoints tried.
        endpoints: String,
        /// The node's reason.
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
/// by itself when a node restarts. `https://` endpoints always speak TLS; every call carries
/// the token, if any.
pub fn channel(endpoints: &[String], options: &ClientOptions) -> Result<AuthChannel, ClientError> {
    let security = &options.security;
    let mut list = Vec::with_capacity(endpoints.len());
    for e in endpoints {
        let uri = endpoint_uri(e);
        let bad = |err: &dyn std::fmt::Display| ClientError::BadEndpoint {
            endpoint: e.clone(),
            message: err.to_string(),
        };
        let mut ep = Endpoint::from_shared(uri.clone())
            .map_err(|err| bad(&err))?
            .connect_timeout(Duration::from_secs(2).min(options.connect_timeout))
            .timeout(options.request_timeout)
            .tcp_nodelay(true);
        if uri.starts_with("https://") {
            ep = ep.tls_config(security.tls()?).map_err(|err| bad(&err))?;
        } else if security.token.is_some() && !is_loopback(ep.uri().host()) {
            tracing::warn!(endpoint = %e, "sending a bearer token over plaintext http:// beyond loopback: use https://");
        }
        list.push(ep);
    }
    let token =
        match &security.token {
            Some(token) => Some(format!("Bearer {}", token.expose()).parse().map_err(|_| {
                ClientError::Tls {
                    message: "the token has characters a header cannot carry".into(),
                }
            })?),
            None => None,
        };
    let channel = match list.len() {
        0 => {
            return Err(ClientError::BadEndpoint {
                endpoint: String::new(),
                message: "no endpoint given".into(),
            });
        }
        1 => list.remove(0).connect_lazy(),
        _ => Channel::balance_list(list.into_iter()),
    };
    Ok(InterceptedService::new(channel, Credentials(token)))
}

fn is_loopback(host: Option<&str>) -> bool {
    match host {
        Some("localhost") => true,
        Some(h) => h
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback()),
        None => false,
    }
}

/// The error of a call, with the cause chain (TLS trouble hides in the sources).
fn status_message(status: &tonic::Status, endpoints: &str) -> String {
    let mut message = ProcessError::from_status(status).message;
    let mut source = std::error::Error::source(status);
    while let Some(s) = source {
        let text = s.to_string();
        if !message.contains(&text) {
            message = format!("{message}: {text}");
        }
        source = s.source();
    }
    let lower = message.to_ascii_lowercase();
    if endpoints.contains("https://")
        && [
            "tls",
            "certificate",
            "handshake",
            "corrupt message",
            "alert",
        ]
        .iter()
        .any(|w| lower.contains(w))
        && !lower.contains("tls handshake")
    {
        message = format!(
            "TLS handshake failed ({message}); does the node serve TLS on this port, with a certificate the given CA signed?"
        );
    }
    message
}

/// A remote node.
#[derive(Clone)]
pub struct RemoteNode {
    endpoints: String,
    processor: pb::processor_client::ProcessorClient<AuthChannel>,
    source: pb::source_client::SourceClient<AuthChannel>,
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
                Err(status)
                    if matches!(
                        status.code(),
                        tonic::Code::Unauthenticated | tonic::Code::PermissionDenied
                    ) =>
                {
                    return Err(ClientError::Refused {
                        endpoints: node.endpoints,
                        message: status.message().to_string(),
                    });
                }
                Err(status) if started.elapsed() < options.connect_timeout => {
                    tracing::debug!(endpoints = %node.endpoints, %status, "waiting for node");
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_secs(1));
                }
                Err(status) => {
                    let message = status_message(&status, &node.endpoints);
                    return Err(ClientError::Unreachable {
                        endpoints: node.endpoints,
                        waited: started.elapsed(),
                        message,
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
        self.process_request(flow_file, false).await
    }
}

impl RemoteNode {
    /// Processes one FlowFile; with `attributes_only` the node answers with the outputs'
    /// relationships and attributes and empty content (the verdict without the image).
    pub async fn process_request(
        &self,
        flow_file: FlowFile,
        attributes_only: bool,
    ) -> Result<Vec<Output>, ProcessError> {
        let mut request = tonic::Request::new(pb::ProcessRequest {
            flow_file: Some(flow_file),
            attributes_only,
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
