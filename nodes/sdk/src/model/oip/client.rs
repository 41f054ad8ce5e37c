//! [`OipClient`]: one model on a remote Open Inference Protocol server (Triton, KServe,
//! another Loupe node), called with raw tensors.
//!
//! Errors are [`ProcessError`]s a node can return as they are: the server unreachable,
//! overloaded, too slow (the call's `timeout`) or not ready are retryable (`unavailable`,
//! `overloaded`); a request the server rejects as invalid is `invalid_input`; anything else,
//! including an answer that does not hold the expected output, is `model`.

use std::time::Duration;

use tonic::codec::CompressionEncoding;
use tonic::{Request, Status};

use super::datatype::{DataType, RawTensor, contents_to_raw};
use super::pb::{self, grpc_inference_service_client::GrpcInferenceServiceClient};
use crate::client::{AuthChannel, ClientOptions, ClientSecurity, endpoint_uri};
use crate::{ErrorKind, ProcessError};

/// Which model on which server, and how to call it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OipTarget {
    /// The server's gRPC address: `https://host:port` (always TLS), `http://host:port` or
    /// `host:port`.
    pub endpoint: String,
    /// The model's name on the server.
    pub model: String,
    /// The model's version; empty: the server chooses.
    pub version: String,
    /// Deadline of one call.
    pub timeout: Duration,
    /// TLS towards an `https://` server (its CA, a client certificate) and a bearer token.
    pub security: ClientSecurity,
    /// Largest message sent or accepted, bytes.
    pub max_message_bytes: usize,
}

/// `Ok` when `endpoint` can name an OIP server (`http://host:port` or `host:port`); the
/// reason otherwise. No I/O.
pub fn check_endpoint(endpoint: &str) -> Result<(), String> {
    if endpoint.trim().is_empty() {
        return Err("must name the server, e.g. http://triton:8001".to_string());
    }
    let uri = endpoint_uri(endpoint);
    if !uri.starts_with("http://") && !uri.starts_with("https://") {
        return Err(format!(
            "{endpoint:?} is not an https:// or http:// address"
        ));
    }
    let parsed: tonic::codegen::http::Uri = uri
        .parse()
        .map_err(|e| format!("{endpoint:?} is not a valid address: {e}"))?;
    match parsed.host() {
        Some(host) if !host.is_empty() => Ok(()),
        _ => Err(format!("{endpoint:?} names no host")),
    }
}

/// A lazily connecting client of one model on an OIP server; cheap to clone.
#[derive(Debug, Clone)]
pub struct OipClient {
    target: OipTarget,
    client: GrpcInferenceServiceClient<AuthChannel>,
}

impl OipClient {
    /// A client for `target`; nothing is sent until it is used (the channel reconnects by
    /// itself when the server restarts). Must be called within a Tokio runtime.
    pub fn new(target: OipTarget) -> Result<OipClient, String> {
        check_endpoint(&target.endpoint)?;
        // The same channel as a runner's towards a node: `https://` always TLS, the token on
        // every call.
        let options = ClientOptions {
            max_message_bytes: target.max_message_bytes,
            connect_timeout: Duration::from_secs(2).min(target.timeout),
            request_timeout: target.timeout,
            security: target.security.clone(),
        };
        let channel = crate::client::channel(std::slice::from_ref(&target.endpoint), &options)
            .map_err(|e| e.to_string())?;
        let max = target.max_message_bytes;
        let client = GrpcInferenceServiceClient::new(channel)
            .max_decoding_message_size(max)
            .max_encoding_message_size(max)
            .accept_compressed(CompressionEncoding::Gzip);
        Ok(OipClient { target, client })
    }

    /// Where and what this client calls.
    pub fn target(&self) -> &OipTarget {
        &self.target
    }

    fn request<T>(&self, message: T) -> Request<T> {
        let mut request = Request::new(message);
        request.set_timeout(self.target.timeout);
        request
    }

    /// A status from the server as the error a node reports: retryable kinds stay retryable,
    /// rejected input is `invalid_input`, the rest is `model`.
    fn error(&self, status: &Status) -> ProcessError {
        let e = ProcessError::from_status(status);
        let kind = match e.kind {
            ErrorKind::Internal => ErrorKind::Model,
            other => other,
        };
        ProcessError::new(kind, format!("{}: {}", self.describe(), e.message))
    }

    /// `OIP server http://... model "m"`, for messages.
    fn describe(&self) -> String {
        let version = if self.target.version.is_empty() {
            String::new()
        } else {
            format!(" version {:?}", self.target.version)
        };
        format!(
            "OIP server {} model {:?}{version}",
            self.target.endpoint, self.target.model
        )
    }

    fn model_error(&self, message: String) -> ProcessError {
        ProcessError::new(ErrorKind::Model, format!("{}: {message}", self.describe()))
    }

    /// Whether the server says the model is ready.
    pub async fn model_ready(&self) -> Result<bool, ProcessError> {
        let mut client = self.client.clone();
        client
            .model_ready(self.request(pb::ModelReadyRequest {
                name: self.target.model.clone(),
                version: self.target.version.clone(),
            }))
            .await
            .map(|r| r.into_inner().ready)
            .map_err(|s| self.error(&s))
    }

    /// The model's metadata (inputs, outputs, platform).
    pub async fn model_metadata(&self) -> Result<pb::ModelMetadataResponse, ProcessError> {
        let mut client = self.client.clone();
        client
            .model_metadata(self.request(pb::ModelMetadataRequest {
                name: self.target.model.clone(),
                version: self.target.version.clone(),
            }))
            .await
            .map(|r| r.into_inner())
            .map_err(|s| self.error(&s))
    }

    /// Waits up to `within` for the model to be ready, then returns its metadata. A server
    /// that is unreachable or says "not ready" is asked again (backing off up to 1 s); any
    /// other error ends the wait at once.
    pub async fn wait_ready(
        &self,
        within: Duration,
    ) -> Result<pb::ModelMetadataResponse, ProcessError> {
        let deadline = tokio::time::Instant::now() + within;
        let mut delay = Duration::from_millis(50);
        loop {
            let last = match self.model_ready().await {
                Ok(true) => return self.model_metadata().await,
                Ok(false) => format!("{}: the model is not ready", self.describe()),
                Err(e) if e.is_retryable() => e.message,
                Err(e) => return Err(e),
            };
            if tokio::time::Instant::now() + delay > deadline {
                return Err(ProcessError::new(
                    ErrorKind::Unavailable,
                    format!("not ready after {within:?}: {last}"),
                ));
            }
            tracing::debug!(model = %self.target.model, %last, "waiting for the OIP model");
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(Duration::from_secs(1));
        }
    }

    /// Runs the model on one input tensor and returns the output named `output`, checked
    /// (datatype known, byte count matching its shape).
    pub async fn infer(&self, input: RawTensor, output: &str) -> Result<RawTensor, ProcessError> {
        let request = pb::ModelInferRequest {
            model_name: self.target.model.clone(),
            model_version: self.target.version.clone(),
            id: String::new(),
            parameters: Default::default(),
            inputs: vec![pb::model_infer_request::InferInputTensor {
                name: input.name,
                datatype: input.datatype.as_str().to_string(),
                shape: input.shape,
                parameters: Default::default(),
                contents: None,
            }],
            outputs: vec![pb::model_infer_request::InferRequestedOutputTensor {
                name: output.to_string(),
                parameters: Default::default(),
            }],
            raw_input_contents: vec![input.data],
        };
        let mut client = self.client.clone();
        let response = client
            .model_infer(self.request(request))
            .await
            .map_err(|s| self.error(&s))?
            .into_inner();
        let index = response
            .outputs
            .iter()
            .position(|o| o.name == output)
            .ok_or_else(|| {
                self.model_error(format!(
                    "the answer has no output {output:?} (it has {:?})",
                    response.outputs.iter().map(|o| &o.name).collect::<Vec<_>>()
                ))
            })?;
        let meta = &response.outputs[index];
        let datatype = DataType::parse(&meta.datatype).ok_or_else(|| {
            self.model_error(format!(
                "output {output:?} has unknown datatype {:?}",
                meta.datatype
            ))
        })?;
        let data = if response.raw_output_contents.is_empty() {
            // Servers that answer in typed contents (the protocol allows it).
            let contents = meta.contents.clone().unwrap_or_default();
            contents_to_raw(output, datatype, &contents).map_err(|m| self.model_error(m))?
        } else {
            response
                .raw_output_contents
                .get(index)
                .cloned()
                .ok_or_else(|| {
                    self.model_error(format!(
                        "raw_output_contents has {} entries for {} outputs",
                        response.raw_output_contents.len(),
                        response.outputs.len()
                    ))
                })?
        };
        let tensor = RawTensor {
            name: meta.name.clone(),
            datatype,
            shape: meta.shape.clone(),
            data,
        };
        tensor.check_size().map_err(|m| self.model_error(m))?;
        Ok(tensor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_are_checked_without_io() {
        assert_eq!(check_endpoint("http://triton:8001"), Ok(()));
        assert_eq!(check_endpoint("127.0.0.1:8001"), Ok(()));
        assert!(check_endpoint("").unwrap_err().contains("must name"));
        assert!(check_endpoint("https://x:1").is_ok());
        assert!(check_endpoint("ftp://x:1").unwrap_err().contains("http://"));
        assert!(check_endpoint("http://").is_err());
        assert!(check_endpoint("http://a b:1").is_err());
    }

    #[tokio::test]
    async fn statuses_map_to_retryable_or_not() {
        let client = OipClient::new(OipTarget {
            endpoint: "127.0.0.1:1".into(),
            model: "m".into(),
            version: String::new(),
            timeout: Duration::from_secs(1),
            security: ClientSecurity::default(),
            max_message_bytes: 1 << 20,
        })
        .unwrap();
        let kind = |s: Status| client.error(&s).kind;
        assert_eq!(kind(Status::unavailable("down")), ErrorKind::Unavailable);
        assert_eq!(
            kind(Status::deadline_exceeded("slow")),
            ErrorKind::Unavailable
        );
        assert_eq!(
            kind(Status::resource_exhausted("busy")),
            ErrorKind::Overloaded
        );
        assert_eq!(
            kind(Status::invalid_argument("shape")),
            ErrorKind::InvalidInput
        );
        assert_eq!(kind(Status::not_found("no model")), ErrorKind::Model);
        assert_eq!(kind(Status::internal("boom")), ErrorKind::Model);
        let message = client.error(&Status::not_found("no model")).message;
        assert!(
            message.contains("127.0.0.1:1") && message.contains("\"m\""),
            "{message}"
        );
        // Nothing listens on port 1: a retryable error, not a hang.
        let err = client.model_ready().await.unwrap_err();
        assert!(err.is_retryable(), "{err}");
    }
}
