//! Plain HTTP/1.1 front-end for NiFi 2.x's InvokeHTTP (and curl), on the node's gRPC port.
//!
//! The routes join the gRPC services' router ([`routes`]); the server accepts HTTP/1.1 next
//! to HTTP/2, so one port serves both. Every request goes through the same [`NodeState`] as
//! gRPC: readiness, `max_in_flight` permits, the invoker.
//!
//! ## `POST /process`
//! The request body is the FlowFile's content (`Content-Encoding: gzip` is decoded; any
//! other encoding is 415). Request headers become attributes:
//! - every header except the standard HTTP ones in [`STANDARD_HEADERS`] (framing,
//!   negotiation, credentials, proxies), under its name (HTTP header names are
//!   case-insensitive, so names arrive lower-cased);
//! - `x-loupe-attr-NAME: value` sets attribute `NAME` (and wins over a plain header); other
//!   `x-loupe-*` headers are reserved and ignored;
//! - `content-type` becomes `mime.type` (unless `x-loupe-attr-mime.type` is given);
//! - `filename` (like any other header) becomes the `filename` attribute; a `uuid` header
//!   that is a UUID becomes the FlowFile's uuid (see [`crate::serve::nifi::incoming_flow_file`]);
//!   `traceparent` travels as an attribute and parents the node's span;
//! - `x-loupe-answer: attributes` asks for the verdict only: the answer's headers as below,
//!   without the content (a caller that routes on attributes never downloads the image).
//!
//! Answers:
//! | status | when | body |
//! |---|---|---|
//! | 200 | processed, first output not on `failure` | the first output's content (empty with `x-loupe-answer: attributes`) |
//! | 204 | processed, the node produced no output | empty |
//! | 422 | the first output is on `failure` (bad image, ...) | `error.message`, text |
//! | 503 + `Retry-After: 1` | overloaded (`max_in_flight`), starting or draining; decided before the body is read | reason, text |
//! | 413 | body (or decoded body) larger than the node's `max_message_bytes` | reason, text |
//! | 415 | a `Content-Encoding` other than `gzip`/`identity` | reason, text |
//! | 400 | the body could not be read or un-gzipped | reason, text |
//!
//! Headers of 200 and 422 answers (InvokeHTTP turns response headers into attributes):
//! - `x-loupe-relationship`: the first output's relationship; `x-loupe-outputs`: how many
//!   outputs the node produced (only the first one's content is returned);
//! - one header per attribute the node added or changed on the first output (so 422 carries
//!   `error.kind` and `error.message`), named as the attribute;
//! - `content-type`: the first output's `mime.type` (200), else `application/octet-stream`.
//!
//! Header values are made safe, never dropped: a value that is not printable ASCII without
//! leading or trailing blanks (newlines, non-ASCII, tabs, ...) is sent percent-encoded
//! (UTF-8 bytes; `%`, `+`, `,`, space, control and non-ASCII bytes as `%XX`, so Java's
//! `URLDecoder` and NiFi's `${attr:urlDecode()}` restore it), and its name is listed in
//! `x-loupe-encoded-attributes` (comma-separated). Attributes that cannot be a header —
//! a name that is not an HTTP token, a standard HTTP header name, or one starting with
//! `x-loupe-` — are left out and listed (names percent-encoded) in
//! `x-loupe-dropped-attributes`. Percent-decoding a listed value gives the exact attribute.
//!
//! ## `GET /describe`, `GET /health`
//! `/describe`: the node description as JSON (`node_type`, `version`, `readiness`
//! (`STARTING`, `READY`, `DRAINING`), `is_source`, `max_message_bytes`, `relationships`
//! `[{name, description}]`, `settings_schema` (a JSON Schema object)). `/health`: 200
//! `SERVING` when the node takes work, else 503 `NOT_SERVING` with `Retry-After`.
//!
//! Any other path is 404 (gRPC requests to an unknown service get gRPC's UNIMPLEMENTED).

use std::collections::{BTreeMap, HashMap};
use std::io::Read;
use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::header::{CONTENT_ENCODING, CONTENT_LENGTH, CONTENT_TYPE, RETRY_AFTER};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use bytes::Bytes;
use http_body_util::{BodyExt, LengthLimitError, Limited};

use crate::error::ProcessError;
use crate::flowfile::attr;
use crate::pb::{Output, Readiness};
use crate::serve::NodeState;
use crate::serve::nifi::{changed_attributes, incoming_flow_file};

/// Request header naming an attribute explicitly: `x-loupe-attr-NAME: value`.
pub const ATTR_HEADER_PREFIX: &str = "x-loupe-attr-";
/// Response header: relationship of the first output.
pub const RELATIONSHIP_HEADER: &str = "x-loupe-relationship";
/// Response header: number of outputs the node produced.
pub const OUTPUTS_HEADER: &str = "x-loupe-outputs";
/// Response header: attributes whose header value is percent-encoded.
pub const ENCODED_HEADER: &str = "x-loupe-encoded-attributes";
/// Response header: attributes left out because they cannot be a header.
pub const DROPPED_HEADER: &str = "x-loupe-dropped-attributes";
/// Request header: `attributes` asks for the answer's headers without the content.
pub const ANSWER_HEADER: &str = "x-loupe-answer";
/// Seconds a refused caller should wait, sent as `Retry-After`.
const RETRY_AFTER_SECONDS: &str = "1";
/// Prefix reserved for this front-end's own headers.
const RESERVED_PREFIX: &str = "x-loupe-";

/// Standard HTTP headers that never become attributes (and attributes of these names are
/// never sent as response headers): framing, negotiation, credentials, proxies.
pub const STANDARD_HEADERS: &[&str] = &[
    "accept",
    "accept-charset",
    "accept-encoding",
    "accept-language",
    "authorization",
    "cache-control",
    "connection",
    "content-encoding",
    "content-length",
    "content-type",
    "cookie",
    "date",
    "expect",
    "forwarded",
    "host",
    "keep-alive",
    "origin",
    "pragma",
    "proxy-authorization",
    "proxy-connection",
    "referer",
    "retry-after",
    "server",
    "set-cookie",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "user-agent",
    "via",
    "x-forwarded-for",
    "x-forwarded-host",
    "x-forwarded-proto",
];

fn is_standard(name: &str) -> bool {
    STANDARD_HEADERS
        .iter()
        .any(|h| h.eq_ignore_ascii_case(name))
}

/// `grpc` (the gRPC services' router) with the HTTP routes added and a fallback that
/// answers 404 to HTTP and UNIMPLEMENTED to gRPC. A unary gRPC `Process` arriving while
/// every in-flight slot is taken is answered RESOURCE_EXHAUSTED before its message is read
/// ([`refuse_when_full`]), as `POST /process` answers 503 before its body is read.
pub fn routes(grpc: Router, state: &Arc<NodeState>) -> Router {
    let http = Router::new()
        .route("/process", post(process))
        .route("/describe", get(describe))
        .route("/health", get(health))
        .with_state(state.clone());
    grpc.merge(http)
        .fallback(not_found)
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            refuse_when_full,
        ))
}

/// The unary gRPC method whose requests carry a whole image.
const GRPC_PROCESS_PATH: &str = "/loupe.v1.Processor/Process";

/// Answers a unary gRPC `Process` with RESOURCE_EXHAUSTED, without reading its message, while
/// the node has no free in-flight slot (the handler would refuse it anyway, after tonic had
/// read the whole message into memory: under a storm of callers that is what grows memory).
/// A free slot is not kept: the handler takes its own.
async fn refuse_when_full(
    State(state): State<Arc<NodeState>>,
    request: Request,
    next: axum::middleware::Next,
) -> Response {
    if request.uri().path() == GRPC_PROCESS_PATH
        && let Err(e) = state.permit_now()
    {
        let (parts, ()) = e.to_status().into_http::<()>().into_parts();
        return Response::from_parts(parts, Body::empty());
    }
    next.run(request).await
}

/// Why a `POST /process` was answered without a processed FlowFile.
#[derive(Debug, thiserror::Error)]
enum Refusal {
    /// Overloaded, starting or draining: retry later.
    #[error("{0}")]
    Retry(ProcessError),
    /// The body is over the node's limit.
    #[error("request body exceeds the node's limit of {0} bytes")]
    TooLarge(usize),
    /// A content encoding this front-end does not decode.
    #[error("unsupported Content-Encoding `{0}` (gzip and identity are)")]
    Encoding(String),
    /// The body could not be read or decoded.
    #[error("cannot read the request body: {0}")]
    Body(String),
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        let status = match &self {
            Refusal::Retry(_) => StatusCode::SERVICE_UNAVAILABLE,
            Refusal::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            Refusal::Encoding(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Refusal::Body(_) => StatusCode::BAD_REQUEST,
        };
        let mut response = (status, format!("{self}\n")).into_response();
        if matches!(self, Refusal::Retry(_)) {
            response
                .headers_mut()
                .insert(RETRY_AFTER, HeaderValue::from_static(RETRY_AFTER_SECONDS));
        }
        response
    }
}

async fn process(State(state): State<Arc<NodeState>>, request: Request) -> Response {
    match process_request(&state, request).await {
        Ok(response) => response,
        Err(refusal) => refusal.into_response(),
    }
}

async fn process_request(state: &NodeState, request: Request) -> Result<Response, Refusal> {
    // Refuse before reading a body that would not be processed anyway: not ready, or every
    // in-flight slot taken (the permit is held from here, so the bodies held in memory are
    // at most `max_in_flight`, whatever the number of callers).
    state.ready().map_err(Refusal::Retry)?;
    let permit = state.permit_now().map_err(Refusal::Retry)?;
    let max = state.options().max_message_bytes;
    let (parts, body) = request.into_parts();
    let attributes_only = wants_attributes_only(&parts.headers);
    let declared = parts
        .headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > max as u64) {
        return Err(Refusal::TooLarge(max));
    }
    let gzip = match parts.headers.get(CONTENT_ENCODING).map(|v| v.as_bytes()) {
        None => false,
        Some(v) if v.eq_ignore_ascii_case(b"identity") => false,
        Some(v) if v.eq_ignore_ascii_case(b"gzip") || v.eq_ignore_ascii_case(b"x-gzip") => true,
        Some(v) => return Err(Refusal::Encoding(String::from_utf8_lossy(v).into_owned())),
    };
    let body = match Limited::new(body, max).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(e) if e.downcast_ref::<LengthLimitError>().is_some() => {
            return Err(Refusal::TooLarge(max));
        }
        Err(e) => return Err(Refusal::Body(e.to_string())),
    };
    let content = if gzip {
        tokio::task::spawn_blocking(move || gunzip(&body, max))
            .await
            .map_err(|e| Refusal::Body(e.to_string()))??
    } else {
        body
    };

    let flow_file = incoming_flow_file(attributes_from_headers(&parts.headers), content);
    let sent = flow_file.attributes.clone();
    // The parent span comes from the `traceparent` attribute (a header like any other).
    let outputs = state
        .process_with(permit, flow_file, None)
        .await
        .map_err(Refusal::Retry)?;
    Ok(answer(&sent, outputs, attributes_only))
}

/// Whether the caller asked for the verdict without the content (`x-loupe-answer:
/// attributes`): NiFi flows and scripts that only route on the attributes.
fn wants_attributes_only(headers: &HeaderMap) -> bool {
    headers
        .get(ANSWER_HEADER)
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"attributes"))
}

/// Decodes a gzip body, refusing more than `max` bytes of output (decompression bombs).
fn gunzip(body: &[u8], max: usize) -> Result<Bytes, Refusal> {
    let mut out = Vec::new();
    flate2::read::MultiGzDecoder::new(body)
        .take(max as u64 + 1)
        .read_to_end(&mut out)
        .map_err(|e| Refusal::Body(format!("gzip: {e}")))?;
    if out.len() > max {
        return Err(Refusal::TooLarge(max));
    }
    Ok(out.into())
}

/// Attributes from request headers (see the module documentation for the rules).
pub fn attributes_from_headers(headers: &HeaderMap) -> HashMap<String, String> {
    let mut attributes = HashMap::new();
    let mut explicit = HashMap::new();
    for name in headers.keys() {
        let value = headers
            .get_all(name)
            .iter()
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
            .collect::<Vec<_>>()
            .join(", ");
        let name = name.as_str();
        if let Some(attribute) = name.strip_prefix(ATTR_HEADER_PREFIX) {
            if !attribute.is_empty() {
                explicit.insert(attribute.to_string(), value);
            }
        } else if name == CONTENT_TYPE.as_str() {
            attributes.insert(attr::MIME_TYPE.to_string(), value);
        } else if !is_standard(name) && !name.starts_with(RESERVED_PREFIX) {
            attributes.insert(name.to_string(), value);
        }
    }
    attributes.extend(explicit);
    attributes
}

/// The HTTP answer for processed `outputs` of a FlowFile sent with attributes `sent`; with
/// `attributes_only` a 200 carries the headers and an empty body.
fn answer(sent: &HashMap<String, String>, outputs: Vec<Output>, attributes_only: bool) -> Response {
    let count = outputs.len();
    let Some(first) = outputs.into_iter().next() else {
        let mut response = StatusCode::NO_CONTENT.into_response();
        response
            .headers_mut()
            .insert(OUTPUTS_HEADER, HeaderValue::from(0));
        return response;
    };
    let flow_file = first.flow_file.unwrap_or_default();
    let failed = first.relationship == crate::FAILURE;
    let mut headers = HeaderMap::new();
    headers.insert(OUTPUTS_HEADER, HeaderValue::from(count));
    if let Ok(v) = HeaderValue::from_str(&first.relationship) {
        headers.insert(RELATIONSHIP_HEADER, v);
    }
    attribute_headers(&changed_attributes(sent, &flow_file), &mut headers);
    if failed {
        headers.insert(
            CONTENT_TYPE,
            HeaderValue::from_static("text/plain; charset=utf-8"),
        );
        let reason = flow_file
            .attr(attr::ERROR_MESSAGE)
            .unwrap_or("processing failed")
            .to_string();
        return (StatusCode::UNPROCESSABLE_ENTITY, headers, reason + "\n").into_response();
    }
    let mime = flow_file
        .attr(attr::MIME_TYPE)
        .and_then(|m| HeaderValue::from_str(m).ok())
        .unwrap_or_else(|| HeaderValue::from_static("application/octet-stream"));
    headers.insert(CONTENT_TYPE, mime);
    if attributes_only {
        return (StatusCode::OK, headers, Body::empty()).into_response();
    }
    (StatusCode::OK, headers, Body::from(flow_file.content)).into_response()
}

/// Adds one header per attribute, made safe (see the module documentation).
fn attribute_headers(attributes: &BTreeMap<&str, &str>, headers: &mut HeaderMap) {
    let mut encoded = Vec::new();
    let mut dropped = Vec::new();
    for (&name, &value) in attributes {
        let header = HeaderName::from_bytes(name.as_bytes())
            .ok()
            .filter(|h| !is_standard(h.as_str()) && !h.as_str().starts_with(RESERVED_PREFIX));
        let Some(header) = header else {
            dropped.push(percent_encode(name));
            continue;
        };
        let value = if is_safe_value(value) {
            value.to_string()
        } else {
            encoded.push(name.to_string());
            percent_encode(value)
        };
        // Both forms are printable ASCII by now.
        if let Ok(value) = HeaderValue::from_str(&value) {
            headers.append(header, value);
        }
    }
    for (header, names) in [(ENCODED_HEADER, encoded), (DROPPED_HEADER, dropped)] {
        if let Ok(v) = HeaderValue::from_str(&names.join(","))
            && !names.is_empty()
        {
            headers.insert(header, v);
        }
    }
}

/// Whether `value` can be a header value as is: printable ASCII (space included), not
/// starting or ending with a blank (which HTTP would trim).
fn is_safe_value(value: &str) -> bool {
    value.bytes().all(|b| (0x20..0x7f).contains(&b))
        && !value.starts_with(' ')
        && !value.ends_with(' ')
}

/// `%XX` for control bytes, space, `%`, `+`, `,`, DEL and non-ASCII (UTF-8) bytes.
fn percent_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b <= b' ' || b >= 0x7f || matches!(b, b'%' | b'+' | b',') {
            out.push_str(&format!("%{b:02X}"));
        } else {
            out.push(b as char);
        }
    }
    out
}

async fn describe(State(state): State<Arc<NodeState>>) -> Response {
    let d = state.describe();
    let readiness = Readiness::try_from(d.readiness)
        .unwrap_or_default()
        .as_str_name()
        .trim_start_matches("READINESS_");
    let schema = serde_json::from_str::<serde_json::Value>(&d.settings_schema)
        .unwrap_or(serde_json::Value::String(d.settings_schema.clone()));
    let relationships: Vec<_> = d
        .relationships
        .iter()
        .map(|r| serde_json::json!({"name": r.name, "description": r.description}))
        .collect();
    axum::Json(serde_json::json!({
        "node_type": d.node_type,
        "version": d.version,
        "readiness": readiness,
        "is_source": d.is_source,
        "max_message_bytes": d.max_message_bytes,
        "relationships": relationships,
        "settings_schema": schema,
    }))
    .into_response()
}

async fn health(State(state): State<Arc<NodeState>>) -> Response {
    match state.ready() {
        Ok(()) => (StatusCode::OK, "SERVING\n").into_response(),
        Err(_) => (
            StatusCode::SERVICE_UNAVAILABLE,
            [(RETRY_AFTER, RETRY_AFTER_SECONDS)],
            "NOT_SERVING\n",
        )
            .into_response(),
    }
}

/// 404 for HTTP; gRPC's UNIMPLEMENTED (as tonic answers it) for gRPC requests.
async fn not_found(headers: HeaderMap) -> Response {
    let grpc = headers
        .get(CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/grpc"));
    if grpc {
        let (parts, ()) = tonic::Status::unimplemented("")
            .into_http::<()>()
            .into_parts();
        return Response::from_parts(parts, Body::empty());
    }
    (StatusCode::NOT_FOUND, "not found\n").into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unsafe_values_are_percent_encoded_for_url_decoders() {
        assert!(is_safe_value(r#"{"ok": 0.97, "burr": 0.02}"#));
        for unsafe_value in ["a\nb", "é", " lead", "trail ", "tab\there"] {
            assert!(!is_safe_value(unsafe_value), "{unsafe_value:?}");
        }
        assert_eq!(percent_encode("a b+c%d,é\n"), "a%20b%2Bc%25d%2C%C3%A9%0A");
    }

    #[test]
    fn headers_become_attributes() {
        let mut headers = HeaderMap::new();
        for (k, v) in [
            ("content-type", "image/png"),
            ("host", "node:50051"),
            ("camera", "7"),
            ("x-loupe-attr-camera", "8"),
            ("x-loupe-relationship", "ignored"),
            ("x-loupe-attr-", "ignored"),
        ] {
            headers.append(HeaderName::from_static(k), HeaderValue::from_static(v));
        }
        headers.append("tag", HeaderValue::from_static("a"));
        headers.append("tag", HeaderValue::from_static("b"));
        let got: BTreeMap<String, String> = attributes_from_headers(&headers).into_iter().collect();
        let want: BTreeMap<String, String> =
            [("camera", "8"), ("mime.type", "image/png"), ("tag", "a, b")]
                .into_iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
        assert_eq!(got, want);
    }
}
