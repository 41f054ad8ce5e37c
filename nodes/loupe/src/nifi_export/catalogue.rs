//! The processor catalogue: which NiFi processor types (class, bundle, relationships) stand
//! for which part of a Loupe flow, and the fixed values their properties get (the NiFi
//! version named in bundles, the `/process` front-end's headers and port, timeouts, retries).

/// The NiFi version named in every processor's bundle: the first 2.x release. Newer NiFi
/// versions load the same bundles (NiFi picks the installed version of a bundle when the
/// named one is absent) and migrate renamed properties on import.
pub const NIFI_VERSION: &str = "2.0.0";

/// Bundle group of NiFi's own processors.
pub(super) const NIFI_GROUP: &str = "org.apache.nifi";
/// Bundle artifact of the standard processors.
const STANDARD_NAR: &str = "nifi-standard-nar";

/// Response header naming the Loupe relationship an output went to.
pub const RELATIONSHIP_HEADER: &str = "x-loupe-relationship";

/// The attribute the Loupe `route` node writes: the relationship it routed to.
pub(super) const ROUTE_ATTRIBUTE: &str = "route";

/// InvokeHTTP's "Request Header Attributes Pattern" (a Java regex matched against whole
/// attribute names): every attribute is sent as a header except NiFi's file location
/// (`path`, `absolute.path`), InvokeHTTP's own `invokehttp.*` results, the front-end's
/// `x-loupe-*` answer headers of the previous hop, and standard HTTP headers of an earlier
/// response that came back as attributes (`content-length`, `transfer-encoding`, ...). `uuid`
/// is sent on purpose: the node keeps it as the FlowFile's uuid, so NiFi's retry of a
/// FlowFile is the same FlowFile to Loupe's idempotent sinks.
pub const REQUEST_HEADER_ATTRIBUTES: &str = "(?!(?i:path|absolute\\.path|content-length|\
content-type|content-encoding|transfer-encoding|connection|keep-alive|date|host|server|te|\
trailer|upgrade|retry-after)$)(?!(?i:x-loupe-|invokehttp\\.)).+";

/// The port `loupe serve` listens on by default (gRPC and the `/process` front-end).
pub const DEFAULT_NODE_PORT: u16 = 50051;

/// How long InvokeHTTP waits for a node's answer: inference under load (batching, a model
/// reload) takes longer than InvokeHTTP's default 15 s; `loupe call` waits 60 s too.
pub(super) const READ_TIMEOUT: &str = "60 secs";

/// NiFi's retry count for a node Loupe retries without limit (NiFi's own upper bound).
pub(super) const NIFI_RETRIES_WITHOUT_LIMIT: u32 = 10;

/// A NiFi processor class and its fixed relationships.
pub(super) struct ProcessorType {
    /// Java class.
    pub(super) class: &'static str,
    /// Bundle artifact.
    pub(super) artifact: &'static str,
    /// Relationships (a RouteOnAttribute adds one per property).
    pub(super) relationships: &'static [&'static str],
}

/// `InvokeHTTP`: calls a processing node's `POST /process`, or grabs a capture's snapshot.
pub(super) const INVOKE_HTTP: ProcessorType = ProcessorType {
    class: "org.apache.nifi.processors.standard.InvokeHTTP",
    artifact: STANDARD_NAR,
    relationships: &["Original", "Response", "Retry", "No Retry", "Failure"],
};
/// `RouteOnAttribute`: splits a node's response by Loupe relationship.
pub(super) const ROUTE_ON_ATTRIBUTE: ProcessorType = ProcessorType {
    class: "org.apache.nifi.processors.standard.RouteOnAttribute",
    artifact: STANDARD_NAR,
    relationships: &["unmatched"],
};
/// `ListFile`: lists a capture directory's new files.
pub(super) const LIST_FILE: ProcessorType = ProcessorType {
    class: "org.apache.nifi.processors.standard.ListFile",
    artifact: STANDARD_NAR,
    relationships: &["success"],
};
/// `FetchFile`: reads each listed file, then deletes or moves it.
pub(super) const FETCH_FILE: ProcessorType = ProcessorType {
    class: "org.apache.nifi.processors.standard.FetchFile",
    artifact: STANDARD_NAR,
    relationships: &["success", "not.found", "permission.denied", "failure"],
};
/// `ListenHTTP`: a capture's upload endpoint.
pub(super) const LISTEN_HTTP: ProcessorType = ProcessorType {
    class: "org.apache.nifi.processors.standard.ListenHTTP",
    artifact: STANDARD_NAR,
    relationships: &["success"],
};
/// `UpdateAttribute`: a capture's static metadata attributes.
pub(super) const UPDATE_ATTRIBUTE: ProcessorType = ProcessorType {
    class: "org.apache.nifi.processors.attributes.UpdateAttribute",
    artifact: "nifi-update-attribute-nar",
    relationships: &["success"],
};

/// InvokeHTTP relationships a Loupe `failure` maps to: transport error, 4xx (the node's 422),
/// 5xx (503: overloaded, starting or draining).
pub(super) const INVOKE_HTTP_FAILURES: [&str; 3] = ["Failure", "No Retry", "Retry"];
