//! NiFi 1.x's InvokeGRPC front-end: every served node answers
//! `org.apache.nifi.processors.grpc.FlowFileService/Send` on its gRPC port
//! (`proto/nifi/flowfile_service.proto`, wire-compatible with NiFi's own).
//!
//! A `Send` goes through the same [`NodeState`] as the Processor service: readiness,
//! `max_in_flight` permits, the invoker (size limit, failure routing, per-FlowFile span with
//! its parent from gRPC metadata or the `traceparent` attribute), max message size both ways,
//! gzip accepted (and used for the reply when the client accepts it).
//!
//! ## Request
//! `attributes` become the FlowFile's attributes and `content` its content. The `uuid`
//! attribute, when it is a UUID, becomes the FlowFile's uuid (so a NiFi retry of the same
//! FlowFile is the same FlowFile to Loupe's idempotent sinks) and is not kept as an
//! attribute; otherwise a fresh uuid is used. `id` (NiFi's internal long) is not used.
//!
//! ## Reply
//! | `responseCode` | when |
//! |---|---|
//! | `SUCCESS` | processed; the first output is not on `failure` |
//! | `ERROR` | processed and routed to `failure` (bad image, too large, panic, ...) |
//! | `RETRY` | not processed: node overloaded (`max_in_flight` reached), starting or draining |
//!
//! InvokeGRPC's Response FlowFile has no content, so results travel only in `body`, always a
//! JSON object ([`Summary`]); it never carries content, so the reply stays far below
//! NiFi's 4 MB default "Max Message Size":
//!
//! ```json
//! {
//!   "relationship": "success",
//!   "attributes": {"classify.label": "ok", "classify.score": "0.9731", "traceparent": "00-..."},
//!   "outputs": [
//!     {"relationship": "success", "attributes": {"classify.label": "ok", "...": "..."}, "size": 1234}
//!   ]
//! }
//! ```
//!
//! - `relationship`: relationship of the first output (the primary result), `null` when the
//!   node produced no output (and when the FlowFile was not processed);
//! - `attributes`: the attributes the node added or changed on the first output, compared
//!   with the request's (removed attributes are not listed);
//! - `outputs`: every output in the node's order: relationship, added/changed attributes,
//!   content size in bytes;
//! - `error`: only with `ERROR` and `RETRY`: `{"kind": "...", "message": "..."}` — the first
//!   output's `error.kind`/`error.message`, or why the FlowFile was not processed
//!   (`overloaded`, `unavailable`).
//!
//! The body is what NiFi writes to `invokegrpc.response.body`; an UpdateAttribute with
//! `${invokegrpc.response.body:jsonPath('$.attributes["classify.label"]')}` turns its fields
//! into attributes (docs/nifi.md).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use bytes::Bytes;
use serde::Serialize;
use tonic::codec::CompressionEncoding;
use tonic::{Request, Response, Status};

use crate::error::ProcessError;
use crate::flowfile::{attr, now_ms};
use crate::pb::{FlowFile, Output};
use crate::serve::NodeState;
use crate::telemetry;

use pb::flow_file_reply::ResponseCode;
use pb::flow_file_service_server::{FlowFileService, FlowFileServiceServer};

/// Generated `org.apache.nifi.processors.grpc` types and gRPC stubs (NiFi's wire names).
#[allow(missing_docs, clippy::all)]
pub mod pb {
    tonic::include_proto!("org.apache.nifi.processors.grpc");

    /// Encoded file descriptor set of `nifi/flowfile_service.proto`, for server reflection.
    pub const FILE_DESCRIPTOR_SET: &[u8] =
        include_bytes!(concat!(env!("OUT_DIR"), "/nifi_descriptor.bin"));
}

/// Full name of NiFi's service, as health and reflection know it.
pub const SERVICE: &str = "org.apache.nifi.processors.grpc.FlowFileService";

/// The `FlowFileService` for a served node, with the node's message limits and gzip.
pub fn service(state: &Arc<NodeState>) -> FlowFileServiceServer<NifiService> {
    let max = state.options().max_message_bytes;
    FlowFileServiceServer::new(NifiService(state.clone()))
        .max_decoding_message_size(max)
        .max_encoding_message_size(max)
        .accept_compressed(CompressionEncoding::Gzip)
        .send_compressed(CompressionEncoding::Gzip)
}

/// NiFi's `FlowFileService` over a served node.
pub struct NifiService(Arc<NodeState>);

#[tonic::async_trait]
impl FlowFileService for NifiService {
    async fn send(
        &self,
        request: Request<pb::FlowFileRequest>,
    ) -> Result<Response<pb::FlowFileReply>, Status> {
        let parent = telemetry::extract_metadata(request.metadata());
        let request = request.into_inner();
        let flow_file = incoming_flow_file(request.attributes, request.content);
        let sent = flow_file.attributes.clone();
        let (code, summary) = match self.0.process(flow_file, parent).await {
            Ok(outputs) => {
                let summary = Summary::of(&sent, &outputs);
                let code = if summary.error.is_some() {
                    ResponseCode::Error
                } else {
                    ResponseCode::Success
                };
                (code, summary)
            }
            Err(refused) => (ResponseCode::Retry, Summary::refused(&refused)),
        };
        Ok(Response::new(pb::FlowFileReply {
            response_code: code as i32,
            body: summary.to_json(),
        }))
    }
}

/// A FlowFile from a front-end's attributes and content: the `uuid` attribute, when it is a
/// UUID, becomes the FlowFile's uuid (and leaves the attributes); otherwise a fresh one.
pub fn incoming_flow_file(
    mut attributes: HashMap<String, String>,
    content: impl Into<Bytes>,
) -> FlowFile {
    let uuid = match attributes.get(UUID_ATTRIBUTE) {
        Some(u) if uuid::Uuid::parse_str(u).is_ok() => attributes.remove(UUID_ATTRIBUTE),
        _ => None,
    };
    let now = now_ms();
    FlowFile {
        uuid: uuid.unwrap_or_else(|| uuid::Uuid::new_v4().to_string()),
        attributes,
        content: content.into(),
        entry_time_ms: now,
        lineage_start_ms: now,
    }
}

/// NiFi's core attribute holding the FlowFile's uuid.
const UUID_ATTRIBUTE: &str = "uuid";

/// The attributes of `output` that are new or differ from `sent`, sorted by name.
pub fn changed_attributes<'a>(
    sent: &HashMap<String, String>,
    output: &'a FlowFile,
) -> BTreeMap<&'a str, &'a str> {
    output
        .attributes
        .iter()
        .filter(|(k, v)| sent.get(*k) != Some(*v))
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect()
}

/// What a node made of one FlowFile, for front-ends that return no content (the `body` of
/// NiFi's `FlowFileReply`). See the module documentation for the JSON shape.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Summary {
    /// Relationship of the first output; `None` without outputs.
    pub relationship: Option<String>,
    /// Attributes added or changed on the first output.
    pub attributes: BTreeMap<String, String>,
    /// Every output, in the node's order.
    pub outputs: Vec<OutputSummary>,
    /// Why the FlowFile failed (first output on `failure`) or was not processed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<ErrorSummary>,
}

/// One output in a [`Summary`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OutputSummary {
    /// Relationship it was routed to.
    pub relationship: String,
    /// Attributes added or changed by the node.
    pub attributes: BTreeMap<String, String>,
    /// Content size, bytes.
    pub size: u64,
}

/// `error.kind` and `error.message` of a [`Summary`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ErrorSummary {
    /// The error kind (`invalid_input`, `too_large`, `overloaded`, ...).
    pub kind: String,
    /// Human-readable reason.
    pub message: String,
}

impl Summary {
    /// The summary of `outputs` of a FlowFile sent with attributes `sent`.
    pub fn of(sent: &HashMap<String, String>, outputs: &[Output]) -> Self {
        let outputs: Vec<OutputSummary> = outputs
            .iter()
            .map(|out| {
                let (attributes, size) = match out.flow_file() {
                    Some(ff) => (owned(changed_attributes(sent, ff)), ff.size()),
                    None => (BTreeMap::new(), 0),
                };
                OutputSummary {
                    relationship: out.relationship.clone(),
                    attributes,
                    size,
                }
            })
            .collect();
        let first = outputs.first();
        let error = first
            .filter(|o| o.relationship == crate::FAILURE)
            .map(|o| ErrorSummary {
                kind: o
                    .attributes
                    .get(attr::ERROR_KIND)
                    .cloned()
                    .unwrap_or_else(|| "unknown".into()),
                message: o
                    .attributes
                    .get(attr::ERROR_MESSAGE)
                    .cloned()
                    .unwrap_or_default(),
            });
        Summary {
            relationship: first.map(|o| o.relationship.clone()),
            attributes: first.map(|o| o.attributes.clone()).unwrap_or_default(),
            error,
            outputs,
        }
    }

    /// The summary of a FlowFile that was not processed (retry later).
    pub fn refused(err: &ProcessError) -> Self {
        Summary {
            error: Some(ErrorSummary {
                kind: err.kind.as_str().into(),
                message: err.message.clone(),
            }),
            ..Summary::default()
        }
    }

    /// The summary as a JSON text.
    pub fn to_json(&self) -> String {
        // Maps of strings always serialize.
        serde_json::to_string(self).unwrap_or_default()
    }
}

fn owned(map: BTreeMap<&str, &str>) -> BTreeMap<String, String> {
    map.into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorKind;

    fn attrs(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn uuid_attribute_becomes_the_flow_file_uuid_when_valid() {
        let id = "0b9e5a43-2f0e-4c8e-9a51-5f1b8e0c7d2a";
        let ff = incoming_flow_file(attrs(&[("uuid", id), ("filename", "a.png")]), vec![1]);
        assert_eq!(ff.uuid, id);
        assert_eq!(ff.attributes, attrs(&[("filename", "a.png")]));

        let ff = incoming_flow_file(attrs(&[("uuid", "not-a-uuid")]), Vec::new());
        assert_ne!(ff.uuid, "not-a-uuid");
        assert_eq!(ff.attr("uuid"), Some("not-a-uuid"), "kept as an attribute");
    }

    #[test]
    fn summary_lists_changed_attributes_and_failure_reason() {
        let sent = attrs(&[("filename", "a.png"), ("camera", "7")]);
        let ok = FlowFile::create(vec![0; 5], sent.clone())
            .with_attr("camera", "8")
            .with_attr("label", "ok");
        let summary = Summary::of(&sent, &[ok.to("success")]);
        assert_eq!(summary.relationship.as_deref(), Some("success"));
        assert_eq!(
            summary.attributes,
            owned_map(&[("camera", "8"), ("label", "ok")])
        );
        assert_eq!(summary.outputs[0].size, 5);
        assert!(summary.error.is_none());
        let json: serde_json::Value = serde_json::from_str(&summary.to_json()).unwrap();
        assert!(json.get("error").is_none());
        assert_eq!(json["outputs"][0]["attributes"]["label"], "ok");

        let err = ProcessError::invalid_input("not an image");
        let failed = FlowFile::create(vec![0; 3], sent.clone()).with_error(&err);
        let summary = Summary::of(&sent, &[failed.to(crate::FAILURE)]);
        let error = summary.error.unwrap();
        assert_eq!(
            (error.kind.as_str(), error.message.as_str()),
            ("invalid_input", "not an image")
        );

        let none = Summary::of(&sent, &[]);
        assert_eq!(none.relationship, None);
        assert!(none.error.is_none());

        let refused = Summary::refused(&ProcessError::new(ErrorKind::Overloaded, "busy"));
        let json: serde_json::Value = serde_json::from_str(&refused.to_json()).unwrap();
        assert_eq!(json["relationship"], serde_json::Value::Null);
        assert_eq!(json["error"]["kind"], "overloaded");
    }

    fn owned_map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }
}
