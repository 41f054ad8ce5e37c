//! A compiled flow as an Apache NiFi 2.x flow definition (`loupe nifi export`).
//!
//! The result is NiFi's `RegisteredFlowSnapshot`, the JSON that the NiFi UI imports with
//! "Upload flow definition" (and exports with "Download flow definition"): one process group
//! named after the flow, bound to a parameter context of the same name. The structure follows
//! a real NiFi export field by field (`tests/data/nifi-flow-definition-example.json`), plus
//! the process group's `parameterContextName` (the binding; without it every `#{...}`
//! reference is invalid).
//!
//! ## How Loupe nodes become NiFi processors
//!
//! - **Processing nodes** (`preprocess`, `classify`, `segment`, `route`, `report`, ...) stay
//!   Loupe nodes: each is called by an `InvokeHTTP` processor. Every Loupe node answers
//!   `POST /process` on its gRPC port (`loupe_sdk::serve::http`): request body = FlowFile
//!   content, request headers = attributes (all but NiFi's file location and earlier answer
//!   headers, [`REQUEST_HEADER_ATTRIBUTES`]); response body = the first output's content,
//!   response headers = the attributes the node set, plus [`RELATIONSHIP_HEADER`] naming the
//!   Loupe relationship. A Loupe `failure` is answered 422, an overloaded or starting node
//!   503. InvokeHTTP's `Response` FlowFile is a child of the request FlowFile with the
//!   response headers added as attributes, so the verdicts travel on with the content (no
//!   "Response Header Request Attributes" needed: `Original` is dropped).
//! - **Relationships**: Loupe `success` -> InvokeHTTP `Response`; Loupe `failure` ->
//!   `Failure` (transport error), `No Retry` (422 and other 4xx) and `Retry` (503). The
//!   node's `retry`
//!   policy becomes NiFi's processor retry on `Failure` and `Retry` (`retryCount` =
//!   `max_attempts - 1`, penalty = `initial_backoff` doubling up to `max_backoff`, which is
//!   what Loupe's runner does; a node without `max_attempts`, which Loupe retries until it
//!   answers, gets NiFi's 10 retries). `Original` is auto-terminated.
//! - A node with more relationships than `success`/`failure` (a `route` node's rules,
//!   `segment`'s `overlay`/`mask`) gets a `RouteOnAttribute` after its InvokeHTTP, strategy
//!   "Route to Property name", one property per relationship. For `route` the property is
//!   `${route:equals('<rule>')}`: the Loupe route node evaluates its CEL rules itself and
//!   writes the relationship it chose into `route`, so the NiFi routing is exactly Loupe's
//!   (no CEL-to-Expression-Language translation that could differ at the edges). Other
//!   nodes route on [`RELATIONSHIP_HEADER`]. `unmatched` is RouteOnAttribute's own
//!   `unmatched`. (One HTTP exchange carries one output: with `strategy: all` only the first
//!   matching rule's copy comes back, and `segment`'s overlay and mask need calls of their
//!   own.)
//! - **The `capture` source** becomes NiFi's own source processors, chosen from its settings:
//!   `directory` -> `ListFile` + `FetchFile` (FetchFile's completion strategy does what
//!   `after: delete|move` does, which GetFile cannot: GetFile either deletes or re-reads the
//!   same files forever); static `metadata.attributes` -> an `UpdateAttribute` after them;
//!   `upload` alone -> `ListenHTTP` on the same port and path (`/upload`); `snapshot` alone ->
//!   a source `InvokeHTTP` GET on the camera URL every `interval`. Manifest, sidecar and file
//!   name metadata have no NiFi equivalent and are not reproduced (the processor's comments
//!   say so). A capture without settings (remote) is read from a directory parameter.
//! - **Connections**: one per flow connection, with its prioritizer, back pressure and
//!   expiration; one per internal step (ListFile -> FetchFile, InvokeHTTP -> RouteOnAttribute)
//!   with NiFi's defaults. Every NiFi relationship left unconnected is auto-terminated, so a
//!   Loupe `auto_terminate` becomes NiFi auto-termination.
//!
//! ## Parameters
//!
//! The parameter context named after the flow holds one parameter per processing node,
//! `loupe.<node-id>.url`, the node's `POST /process` URL, referenced by the InvokeHTTP's
//! `HTTP URL` as `#{loupe.<node-id>.url}`. Its default is the node's `endpoint`
//! (`endpoints[0]`; NiFi calls one URL) + `/process` for a remote node, else
//! `http://loupe-<node-id>:50051/process`: the Docker Compose service `loupe-<node-id>`
//! running `loupe serve TYPE` on the default port. A capture's directory is
//! `loupe.<node-id>.directory` (default: the flow's directory made absolute), so a NiFi
//! running elsewhere only needs its parameters changed.
//!
//! ## Stable output
//!
//! Identifiers are name-based UUIDs (version 5) of the flow name and the component's role
//! (`<flow>/processor/<node-id>/<step>`), maps are sorted, and positions are laid out top to
//! bottom in file order: exporting the same flow twice gives the same bytes, and a changed
//! flow gives a readable diff.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Component, Path, PathBuf};
use std::time::Duration;

/// NiFi's retry count for a node Loupe retries without limit (NiFi's own upper bound).
const NIFI_RETRIES_WITHOUT_LIMIT: u32 = 10;

use anyhow::{Context, bail};
use loupe_capture::{After, CaptureSettings};
use loupe_flow::model::{DEFAULT_BACK_PRESSURE_BYTES, DEFAULT_BACK_PRESSURE_OBJECTS};
use loupe_flow::{CompiledConnection, CompiledFlow, CompiledNode};
use serde::Serialize;
use serde_json::Value;

/// The NiFi version named in every processor's bundle: the first 2.x release. Newer NiFi
/// versions load the same bundles (NiFi picks the installed version of a bundle when the
/// named one is absent) and migrate renamed properties on import.
pub const NIFI_VERSION: &str = "2.0.0";

/// Bundle group of NiFi's own processors.
const NIFI_GROUP: &str = "org.apache.nifi";
/// Bundle artifact of the standard processors.
const STANDARD_NAR: &str = "nifi-standard-nar";

/// Response header naming the Loupe relationship an output went to.
pub const RELATIONSHIP_HEADER: &str = "x-loupe-relationship";

/// The attribute the Loupe `route` node writes: the relationship it routed to.
const ROUTE_ATTRIBUTE: &str = "route";

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
const READ_TIMEOUT: &str = "60 secs";

/// Vertical distance between two processors on the canvas.
const ROW_HEIGHT: f64 = 200.0;

/// Namespace of the name-based identifiers: UUIDv5(URL namespace, `loupe:nifi-export`),
/// `344416be-7cba-5364-8a1c-cb9eaaf3489a`.
const ID_NAMESPACE: [u8; 16] = [
    0x34, 0x44, 0x16, 0xbe, 0x7c, 0xba, 0x53, 0x64, 0x8a, 0x1c, 0xcb, 0x9e, 0xaa, 0xf3, 0x48, 0x9a,
];

/// NiFi's `RegisteredFlowSnapshot`: what "Upload flow definition" imports.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FlowSnapshot {
    /// The process group holding the flow.
    pub flow_contents: ProcessGroup,
    /// Controller services outside the group the flow refers to (none).
    pub external_controller_services: BTreeMap<String, Value>,
    /// Parameter contexts by name: the flow's own.
    pub parameter_contexts: BTreeMap<String, ParameterContext>,
    /// Always `"1.0"`.
    pub flow_encoding_version: String,
    /// Parameter providers by id (none).
    pub parameter_providers: BTreeMap<String, Value>,
    /// Whether this is the latest version in a registry (not from a registry: false).
    pub latest: bool,
}

/// A canvas position.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Position {
    /// Horizontal, pixels.
    pub x: f64,
    /// Vertical, pixels (down).
    pub y: f64,
}

/// NiFi's `VersionedProcessGroup`, with the fields a NiFi export has.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ProcessGroup {
    /// Stable identifier.
    pub identifier: String,
    /// Instance identifier.
    pub instance_identifier: String,
    /// The flow's name.
    pub name: String,
    /// The flow's description.
    pub comments: String,
    /// Where the group sits on its parent's canvas.
    pub position: Position,
    /// Child groups (none).
    pub process_groups: Vec<Value>,
    /// Remote process groups (none).
    pub remote_process_groups: Vec<Value>,
    /// The processors.
    pub processors: Vec<Processor>,
    /// Input ports (none).
    pub input_ports: Vec<Value>,
    /// Output ports (none).
    pub output_ports: Vec<Value>,
    /// The connections.
    pub connections: Vec<Connection>,
    /// Labels (none).
    pub labels: Vec<Value>,
    /// Funnels (none).
    pub funnels: Vec<Value>,
    /// Controller services (none).
    pub controller_services: Vec<Value>,
    /// NiFi 1.x variables (none; kept because NiFi's own exports have the key).
    pub variables: BTreeMap<String, String>,
    /// Default FlowFile expiration of new connections.
    pub default_flow_file_expiration: String,
    /// Default back-pressure object threshold of new connections.
    pub default_back_pressure_object_threshold: u64,
    /// Default back-pressure data-size threshold of new connections.
    pub default_back_pressure_data_size_threshold: String,
    /// Always `PROCESS_GROUP`.
    pub component_type: String,
    /// How FlowFiles leave the group.
    pub flow_file_outbound_policy: String,
    /// How many FlowFiles may be in the group at once.
    pub flow_file_concurrency: String,
    /// The parameter context bound to the group.
    pub parameter_context_name: String,
}

/// A bundle (NAR) coordinate.
#[derive(Debug, Clone, Serialize)]
pub struct Bundle {
    /// Group id.
    pub group: String,
    /// Artifact id.
    pub artifact: String,
    /// Version.
    pub version: String,
}

/// What NiFi records about a set property.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PropertyDescriptor {
    /// The property's name (its key in `properties`).
    pub name: String,
    /// The name shown in the UI.
    pub display_name: String,
    /// Whether the value is a controller service id.
    pub identifies_controller_service: bool,
    /// Whether the value is secret.
    pub sensitive: bool,
}

/// NiFi's `VersionedProcessor`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Processor {
    /// Stable identifier.
    pub identifier: String,
    /// Instance identifier.
    pub instance_identifier: String,
    /// Name on the canvas.
    pub name: String,
    /// What it does for the Loupe flow.
    pub comments: String,
    /// Canvas position.
    pub position: Position,
    /// Java class.
    #[serde(rename = "type")]
    pub class: String,
    /// Bundle holding the class.
    pub bundle: Bundle,
    /// Properties set (others keep NiFi's defaults).
    pub properties: BTreeMap<String, String>,
    /// Descriptors of the properties set.
    pub property_descriptors: BTreeMap<String, PropertyDescriptor>,
    /// UI style (none).
    pub style: BTreeMap<String, String>,
    /// Run schedule.
    pub scheduling_period: String,
    /// `TIMER_DRIVEN`.
    pub scheduling_strategy: String,
    /// `ALL` nodes of a cluster.
    pub execution_node: String,
    /// Penalty of a penalized FlowFile (first retry backoff).
    pub penalty_duration: String,
    /// Yield when there is nothing to do.
    pub yield_duration: String,
    /// Lowest bulletin level shown.
    pub bulletin_level: String,
    /// Run duration (0: lowest latency).
    pub run_duration_millis: u64,
    /// Concurrent tasks.
    pub concurrently_schedulable_task_count: usize,
    /// Relationships whose FlowFiles are dropped.
    pub auto_terminated_relationships: Vec<String>,
    /// `ENABLED` (imported stopped, ready to start).
    pub scheduled_state: String,
    /// Retries of a FlowFile routed to a retried relationship.
    pub retry_count: u32,
    /// Relationships retried before a FlowFile is routed to them.
    pub retried_relationships: Vec<String>,
    /// How retries back off.
    pub backoff_mechanism: String,
    /// Longest retry backoff.
    pub max_backoff_period: String,
    /// Always `PROCESSOR`.
    pub component_type: String,
    /// The process group's identifier.
    pub group_identifier: String,
}

/// One end of a connection.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ConnectableComponent {
    /// The component's identifier.
    pub id: String,
    /// `PROCESSOR`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The process group's identifier.
    pub group_id: String,
    /// The component's name.
    pub name: String,
    /// The component's comments.
    pub comments: String,
    /// The component's instance identifier.
    pub instance_identifier: String,
}

/// NiFi's `VersionedConnection`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Connection {
    /// Stable identifier.
    pub identifier: String,
    /// Instance identifier.
    pub instance_identifier: String,
    /// The Loupe connection (`from.relationship->to`), or the internal step.
    pub name: String,
    /// Where FlowFiles come from.
    pub source: ConnectableComponent,
    /// Where they go.
    pub destination: ConnectableComponent,
    /// Which of the label's positions the name is drawn at.
    pub label_index: u32,
    /// Drawing order.
    pub z_index: u64,
    /// The source's relationships feeding this connection.
    pub selected_relationships: Vec<String>,
    /// Back pressure engages at this many queued FlowFiles.
    pub back_pressure_object_threshold: u64,
    /// Back pressure engages at this much queued content.
    pub back_pressure_data_size_threshold: String,
    /// FlowFiles older than this are dropped (`0 sec`: never).
    pub flow_file_expiration: String,
    /// Queue order (prioritizer classes).
    pub prioritizers: Vec<String>,
    /// Bend points (none).
    pub bends: Vec<Position>,
    /// Cluster load balancing (none).
    pub load_balance_strategy: String,
    /// Compression of load-balanced transfers.
    pub load_balance_compression: String,
    /// Always `CONNECTION`.
    pub component_type: String,
    /// The process group's identifier.
    pub group_identifier: String,
}

/// NiFi's `VersionedParameterContext`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ParameterContext {
    /// Stable identifier.
    pub identifier: String,
    /// Instance identifier.
    pub instance_identifier: String,
    /// The flow's name.
    pub name: String,
    /// What the parameters are.
    pub description: String,
    /// The parameters, sorted by name.
    pub parameters: Vec<Parameter>,
    /// Contexts inherited from (none).
    pub inherited_parameter_contexts: Vec<String>,
    /// Always `PARAMETER_CONTEXT`.
    pub component_type: String,
}

/// NiFi's `VersionedParameter`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Parameter {
    /// `loupe.<node-id>.<what>`.
    pub name: String,
    /// What it is for and where its default comes from.
    pub description: String,
    /// Never secret.
    pub sensitive: bool,
    /// Not from a parameter provider.
    pub provided: bool,
    /// The default value.
    pub value: String,
}

/// A NiFi processor class and its fixed relationships.
struct ProcessorType {
    /// Java class.
    class: &'static str,
    /// Bundle artifact.
    artifact: &'static str,
    /// Relationships (a RouteOnAttribute adds one per property).
    relationships: &'static [&'static str],
}

const INVOKE_HTTP: ProcessorType = ProcessorType {
    class: "org.apache.nifi.processors.standard.InvokeHTTP",
    artifact: STANDARD_NAR,
    relationships: &["Original", "Response", "Retry", "No Retry", "Failure"],
};
const ROUTE_ON_ATTRIBUTE: ProcessorType = ProcessorType {
    class: "org.apache.nifi.processors.standard.RouteOnAttribute",
    artifact: STANDARD_NAR,
    relationships: &["unmatched"],
};
const LIST_FILE: ProcessorType = ProcessorType {
    class: "org.apache.nifi.processors.standard.ListFile",
    artifact: STANDARD_NAR,
    relationships: &["success"],
};
const FETCH_FILE: ProcessorType = ProcessorType {
    class: "org.apache.nifi.processors.standard.FetchFile",
    artifact: STANDARD_NAR,
    relationships: &["success", "not.found", "permission.denied", "failure"],
};
const LISTEN_HTTP: ProcessorType = ProcessorType {
    class: "org.apache.nifi.processors.standard.ListenHTTP",
    artifact: STANDARD_NAR,
    relationships: &["success"],
};
const UPDATE_ATTRIBUTE: ProcessorType = ProcessorType {
    class: "org.apache.nifi.processors.attributes.UpdateAttribute",
    artifact: "nifi-update-attribute-nar",
    relationships: &["success"],
};

/// InvokeHTTP relationships a Loupe `failure` maps to: transport error, 4xx (the node's 422),
/// 5xx (503: overloaded, starting or draining).
const INVOKE_HTTP_FAILURES: [&str; 3] = ["Failure", "No Retry", "Retry"];

/// Exports a compiled flow as a NiFi flow definition.
///
/// `description` is the flow file's `description`; `cwd` makes the flow's relative
/// directories absolute (NiFi would resolve them against its own working directory).
pub fn export(
    flow: &CompiledFlow,
    description: Option<&str>,
    cwd: &Path,
) -> anyhow::Result<FlowSnapshot> {
    let mut builder = Builder::new(flow, cwd);
    let stages = flow
        .nodes
        .iter()
        .map(|node| {
            if node.is_source {
                builder.source(node)
            } else {
                Ok(builder.processing(node))
            }
        })
        .collect::<anyhow::Result<Vec<Stage>>>()?;
    for connection in &flow.connections {
        builder.flow_connection(connection, &stages)?;
    }
    Ok(builder.finish(description.unwrap_or_default()))
}

/// A name-based (version 5) UUID of `name` in the export's namespace.
pub fn stable_id(name: &str) -> String {
    uuid_v5(&ID_NAMESPACE, name)
}

/// A Loupe node in NiFi: where FlowFiles enter it and where each relationship leaves.
struct Stage {
    /// The processor receiving FlowFiles (none for a source).
    input: Option<usize>,
    /// Loupe relationship -> (processor index, NiFi relationships).
    outputs: BTreeMap<String, (usize, Vec<String>)>,
}

/// A processor being built, with everything it can route to.
struct Draft {
    processor: Processor,
    relationships: Vec<String>,
}

/// Builds the snapshot's components.
struct Builder<'f> {
    flow: &'f CompiledFlow,
    /// Absolute directory relative paths in settings resolve against.
    base_dir: PathBuf,
    group_id: String,
    drafts: Vec<Draft>,
    connections: Vec<Connection>,
    parameters: BTreeMap<String, Parameter>,
}

impl<'f> Builder<'f> {
    fn new(flow: &'f CompiledFlow, cwd: &Path) -> Self {
        Builder {
            flow,
            base_dir: normalize(&cwd.join(&flow.base_dir)),
            group_id: stable_id(&format!("{}/process-group", flow.name)),
            drafts: Vec::new(),
            connections: Vec::new(),
            parameters: BTreeMap::new(),
        }
    }

    /// `<flow>/<kind>/<key>`: the name of a component's stable id.
    fn key(&self, kind: &str, key: &str) -> String {
        format!("{}/{kind}/{key}", self.flow.name)
    }

    /// Adds a processor with NiFi's defaults; returns its index.
    fn processor(
        &mut self,
        key: &str,
        name: String,
        kind: &ProcessorType,
        properties: Vec<(String, String)>,
        comments: String,
    ) -> usize {
        let key = self.key("processor", key);
        let index = self.drafts.len();
        let mut relationships: Vec<String> =
            kind.relationships.iter().map(|r| r.to_string()).collect();
        if kind.class == ROUTE_ON_ATTRIBUTE.class {
            relationships.extend(
                properties
                    .iter()
                    .map(|(name, _)| name.clone())
                    .filter(|name| name != "Routing Strategy"),
            );
        }
        let property_descriptors = properties
            .iter()
            .map(|(name, _)| {
                let descriptor = PropertyDescriptor {
                    name: name.clone(),
                    display_name: name.clone(),
                    identifies_controller_service: false,
                    sensitive: false,
                };
                (name.clone(), descriptor)
            })
            .collect();
        let processor = Processor {
            identifier: stable_id(&key),
            instance_identifier: stable_id(&format!("{key}#instance")),
            name,
            comments,
            position: Position {
                x: 0.0,
                y: ROW_HEIGHT * index as f64,
            },
            class: kind.class.to_string(),
            bundle: Bundle {
                group: NIFI_GROUP.to_string(),
                artifact: kind.artifact.to_string(),
                version: NIFI_VERSION.to_string(),
            },
            properties: properties.into_iter().collect(),
            property_descriptors,
            style: BTreeMap::new(),
            scheduling_period: "0 sec".to_string(),
            scheduling_strategy: "TIMER_DRIVEN".to_string(),
            execution_node: "ALL".to_string(),
            penalty_duration: "30 sec".to_string(),
            yield_duration: "1 sec".to_string(),
            bulletin_level: "WARN".to_string(),
            run_duration_millis: 0,
            concurrently_schedulable_task_count: 1,
            auto_terminated_relationships: Vec::new(),
            scheduled_state: "ENABLED".to_string(),
            retry_count: 10,
            retried_relationships: Vec::new(),
            backoff_mechanism: "PENALIZE_FLOWFILE".to_string(),
            max_backoff_period: "10 mins".to_string(),
            component_type: "PROCESSOR".to_string(),
            group_identifier: self.group_id.clone(),
        };
        self.drafts.push(Draft {
            processor,
            relationships,
        });
        index
    }

    /// Adds a parameter and returns its reference, `#{name}`.
    fn parameter(&mut self, name: String, value: String, description: String) -> String {
        let reference = format!("#{{{name}}}");
        let parameter = Parameter {
            name: name.clone(),
            description,
            sensitive: false,
            provided: false,
            value,
        };
        self.parameters.insert(name, parameter);
        reference
    }

    /// Connects `from`'s `relationships` to `to`.
    fn connect(
        &mut self,
        key: &str,
        name: String,
        from: usize,
        relationships: Vec<String>,
        to: usize,
        queue: Option<&CompiledConnection>,
    ) {
        let key = self.key("connection", key);
        let end = |draft: &Draft| ConnectableComponent {
            id: draft.processor.identifier.clone(),
            kind: "PROCESSOR".to_string(),
            group_id: self.group_id.clone(),
            name: draft.processor.name.clone(),
            comments: draft.processor.comments.clone(),
            instance_identifier: draft.processor.instance_identifier.clone(),
        };
        let (objects, bytes, expiration, prioritizers) = match queue {
            Some(c) => (
                c.back_pressure_objects as u64,
                back_pressure_size(c.back_pressure_bytes),
                c.expiration
                    .map_or_else(|| "0 sec".to_string(), nifi_duration),
                vec![c.prioritizer.nifi_class().to_string()],
            ),
            None => (
                DEFAULT_BACK_PRESSURE_OBJECTS as u64,
                back_pressure_size(DEFAULT_BACK_PRESSURE_BYTES),
                "0 sec".to_string(),
                Vec::new(),
            ),
        };
        let connection = Connection {
            identifier: stable_id(&key),
            instance_identifier: stable_id(&format!("{key}#instance")),
            name,
            source: end(&self.drafts[from]),
            destination: end(&self.drafts[to]),
            label_index: 1,
            z_index: 0,
            selected_relationships: relationships,
            back_pressure_object_threshold: objects,
            back_pressure_data_size_threshold: bytes,
            flow_file_expiration: expiration,
            prioritizers,
            bends: Vec::new(),
            load_balance_strategy: "DO_NOT_LOAD_BALANCE".to_string(),
            load_balance_compression: "DO_NOT_COMPRESS".to_string(),
            component_type: "CONNECTION".to_string(),
            group_identifier: self.group_id.clone(),
        };
        self.connections.push(connection);
    }

    /// A processing node: InvokeHTTP, and a RouteOnAttribute when it has relationships
    /// beyond `success` and `failure`.
    fn processing(&mut self, node: &CompiledNode) -> Stage {
        let id = &node.id;
        let url = self.url_parameter(node);
        let properties = vec![
            prop("HTTP Method", "POST"),
            prop("HTTP URL", &url),
            prop(
                "Request Header Attributes Pattern",
                REQUEST_HEADER_ATTRIBUTES,
            ),
            prop("Socket Read Timeout", READ_TIMEOUT),
        ];
        let comments = format!(
            "Loupe node `{id}` (type {}): POST each FlowFile to its /process front-end \
             ({url}); the response is the output, its headers the attributes the node set, \
             and {RELATIONSHIP_HEADER} the Loupe relationship. Response = Loupe success; \
             Failure, No Retry and Retry = Loupe failure (retried as the flow's `retry` says).",
            node.node_type
        );
        let invoke = self.processor(
            &format!("{id}/invoke"),
            id.clone(),
            &INVOKE_HTTP,
            properties,
            comments,
        );
        let processor = &mut self.drafts[invoke].processor;
        processor.concurrently_schedulable_task_count = node.concurrency;
        let retry = &node.retry;
        processor.retry_count = retry
            .max_attempts
            .map_or(NIFI_RETRIES_WITHOUT_LIMIT, |a| a.saturating_sub(1));
        if processor.retry_count > 0 {
            processor.retried_relationships = vec!["Failure".to_string(), "Retry".to_string()];
        }
        processor.penalty_duration = nifi_duration(retry.initial_backoff);
        processor.max_backoff_period = nifi_duration(retry.max_backoff);

        let mut outputs = BTreeMap::new();
        let failures: Vec<String> = INVOKE_HTTP_FAILURES.iter().map(|r| r.to_string()).collect();
        let is_route = node.node_type == "route";
        // A route node, or one with relationships besides success and failure, needs a
        // RouteOnAttribute to split InvokeHTTP's single Response.
        let split = is_route
            || node
                .relationships
                .iter()
                .any(|r| r != loupe_sdk::SUCCESS && r != loupe_sdk::FAILURE);
        for relationship in &node.relationships {
            if relationship == loupe_sdk::FAILURE {
                outputs.insert(relationship.clone(), (invoke, failures.clone()));
            } else if relationship == loupe_sdk::SUCCESS && !split {
                outputs.insert(relationship.clone(), (invoke, vec!["Response".to_string()]));
            }
        }
        if !split {
            return Stage {
                input: Some(invoke),
                outputs,
            };
        }

        // More than success/failure: route the response on the relationship it carries.
        let attribute = if is_route {
            ROUTE_ATTRIBUTE
        } else {
            RELATIONSHIP_HEADER
        };
        let routed: Vec<&String> = node
            .relationships
            .iter()
            .filter(|r| *r != loupe_sdk::FAILURE)
            .collect();
        let mut properties = vec![prop("Routing Strategy", "Route to Property name")];
        for relationship in &routed {
            if *relationship != "unmatched" {
                let expression = format!(
                    "${{{}:equals({})}}",
                    el_attribute(attribute),
                    el_string(relationship)
                );
                properties.push((relationship.to_string(), expression));
            }
        }
        let comments = self.router_comments(node, attribute);
        let router = self.processor(
            &format!("{id}/relationships"),
            format!("{id}: relationships"),
            &ROUTE_ON_ATTRIBUTE,
            properties,
            comments,
        );
        self.connect(
            &format!("{id}/relationships"),
            format!("{id}: response"),
            invoke,
            vec!["Response".to_string()],
            router,
            None,
        );
        for relationship in routed {
            outputs.insert(relationship.clone(), (router, vec![relationship.clone()]));
        }
        Stage {
            input: Some(invoke),
            outputs,
        }
    }

    /// The `#{loupe.<id>.url}` parameter of a processing node.
    fn url_parameter(&mut self, node: &CompiledNode) -> String {
        let id = &node.id;
        let (value, origin) = match node.endpoints.split_first() {
            Some((first, rest)) => {
                let mut origin = format!("the flow's endpoint {first}");
                if !rest.is_empty() {
                    origin.push_str(&format!(
                        " (the flow load-balances over {} endpoints; NiFi calls this one: \
                         put a load balancer in front of them and name it here)",
                        node.endpoints.len()
                    ));
                }
                (format!("{}/process", first.trim_end_matches('/')), origin)
            }
            None => (
                format!("http://loupe-{id}:{DEFAULT_NODE_PORT}/process"),
                format!(
                    "the Docker Compose service `loupe-{id}` running `loupe serve {}` on the \
                     default port",
                    node.node_type
                ),
            ),
        };
        let description = format!(
            "POST /process URL of Loupe node `{id}` (type {}); default: {origin}.",
            node.node_type
        );
        self.parameter(format!("loupe.{id}.url"), value, description)
    }

    fn router_comments(&self, node: &CompiledNode, attribute: &str) -> String {
        let id = &node.id;
        if attribute != ROUTE_ATTRIBUTE {
            return format!(
                "Routes the response of Loupe node `{id}` on the {RELATIONSHIP_HEADER} header \
                 it sent: one property per Loupe relationship."
            );
        }
        let mut comments = format!(
            "Routes on the `route` attribute written by Loupe node `{id}`, which evaluates its \
             CEL rules itself: exactly Loupe's routing. Rules:"
        );
        let settings = serde_json::from_value::<loupe_route::RouteSettings>(node.settings.clone());
        match settings {
            Ok(settings) => {
                for rule in &settings.rules {
                    comments.push_str(&format!("\n- {}: {}", rule.name, rule.when));
                }
                if settings.strategy == loupe_route::Strategy::All {
                    comments.push_str(
                        "\nWith `strategy: all` the node answers with the first matching \
                         rule's copy only.",
                    );
                }
            }
            Err(_) => comments.push_str(" (set on the remote node)"),
        }
        comments
    }

    /// The `capture` source as NiFi source processors.
    fn source(&mut self, node: &CompiledNode) -> anyhow::Result<Stage> {
        if node.node_type != "capture" {
            bail!(
                "node `{}`: source type `{}` has no NiFi equivalent",
                node.id,
                node.node_type
            );
        }
        if let Some(other) = node.relationships.iter().find(|r| *r != loupe_sdk::SUCCESS) {
            bail!(
                "node `{}`: relationship `{other}` of a capture has no NiFi equivalent",
                node.id
            );
        }
        let settings = serde_json::from_value::<CaptureSettings>(node.settings.clone()).ok();
        let mut attributes = BTreeMap::new();
        let (last, relationship) = match &settings {
            Some(s) if s.directory.is_none() && s.upload.is_some() => {
                let listen = s
                    .upload
                    .as_ref()
                    .map(|u| u.listen.as_str())
                    .unwrap_or_default();
                (self.listen(node, listen, s.snapshot.is_some())?, "success")
            }
            Some(s) if s.directory.is_none() && s.snapshot.is_some() => {
                let snapshot = s.snapshot.as_ref().expect("matched");
                if let Some(camera) = &snapshot.camera_id {
                    attributes.insert("camera.id".to_string(), camera.clone());
                }
                (self.snapshot(node, snapshot), "Response")
            }
            other => (self.list_fetch(node, other.as_ref()), "success"),
        };
        if let Some(s) = &settings {
            attributes.extend(s.metadata.attributes.clone());
        }
        let last = if attributes.is_empty() {
            last
        } else {
            self.static_attributes(node, last, relationship, attributes)
        };
        let relationship = if self.drafts[last].processor.class == UPDATE_ATTRIBUTE.class {
            "success"
        } else {
            relationship
        };
        let mut outputs = BTreeMap::new();
        outputs.insert(
            loupe_sdk::SUCCESS.to_string(),
            (last, vec![relationship.to_string()]),
        );
        Ok(Stage {
            input: None,
            outputs,
        })
    }

    /// `ListFile` + `FetchFile` for a capture directory; returns the last processor.
    fn list_fetch(&mut self, node: &CompiledNode, settings: Option<&CaptureSettings>) -> usize {
        let id = &node.id;
        let (directory, origin) = match settings.and_then(|s| s.directory.as_ref()) {
            Some(dir) => (
                self.absolute(dir),
                "the flow's `directory`, made absolute".to_string(),
            ),
            None => (
                PathBuf::from(format!("/data/loupe/{id}/inbox")),
                "none in the flow (a remote capture): set it".to_string(),
            ),
        };
        let description =
            format!("Directory Loupe capture node `{id}` takes images from; default: {origin}.");
        let directory = self.parameter(
            format!("loupe.{id}.directory"),
            directory.to_string_lossy().into_owned(),
            description,
        );
        let mut list = vec![prop("Input Directory", &directory)];
        let mut fetch = vec![prop("File to Fetch", "${absolute.path}/${filename}")];
        let mut notes = vec!["the file-name glob is the File Filter regex".to_string()];
        let mut poll = None;
        match settings {
            Some(s) => {
                list.push(prop("Recurse Subdirectories", &s.recursive.to_string()));
                list.push(prop("File Filter", &glob_to_regex(&s.pattern)));
                list.push(prop("Ignore Hidden Files", &s.ignore_hidden.to_string()));
                list.push(prop("Minimum File Age", &nifi_duration(s.min_age.get())));
                list.push(prop("Maximum File Size", &nifi_data_size(s.max_file_bytes)));
                poll = Some(nifi_duration(s.poll_interval.get()));
                match (s.after, &s.move_to) {
                    (After::Move, Some(to)) => {
                        let to = self.absolute(to);
                        fetch.push(prop("Completion Strategy", "Move File"));
                        fetch.push(prop(
                            "Move Destination Directory",
                            &format!("{}/${{path}}", to.to_string_lossy()),
                        ));
                        fetch.push(prop("Move Conflict Strategy", "Rename"));
                    }
                    _ => fetch.push(prop("Completion Strategy", "Delete File")),
                }
                let metadata = &s.metadata;
                if metadata.manifest.is_some()
                    || metadata.sidecar
                    || metadata.filename_pattern.is_some()
                    || metadata.fragment_count.is_some()
                {
                    notes.push(
                        "manifest, sidecar, file-name and fragment metadata are not reproduced"
                            .to_string(),
                    );
                }
            }
            None => {
                list.push(prop("Recurse Subdirectories", "false"));
                fetch.push(prop("Completion Strategy", "None"));
                notes.push("the remote capture's settings are unknown: adjust".to_string());
            }
        }
        let list_comments = format!(
            "Loupe capture node `{id}`: lists new files in {directory} ({}).",
            notes.join("; ")
        );
        let lister = self.processor(
            &format!("{id}/list"),
            format!("{id}: list"),
            &LIST_FILE,
            list,
            list_comments,
        );
        if let Some(poll) = poll {
            self.drafts[lister].processor.scheduling_period = poll;
        }
        let fetch_comments = format!(
            "Loupe capture node `{id}`: reads each listed file, then deletes or moves it as the \
             capture's `after` says."
        );
        let fetcher = self.processor(
            &format!("{id}/fetch"),
            id.clone(),
            &FETCH_FILE,
            fetch,
            fetch_comments,
        );
        self.drafts[fetcher]
            .processor
            .concurrently_schedulable_task_count = node.concurrency;
        self.connect(
            &format!("{id}/fetch"),
            format!("{id}: listed"),
            lister,
            vec!["success".to_string()],
            fetcher,
            None,
        );
        let mut skipped = Vec::new();
        if let Some(s) = settings {
            if s.upload.is_some() {
                skipped.push("upload endpoint");
            }
            if s.snapshot.is_some() {
                skipped.push("snapshots");
            }
        }
        self.note_skipped(fetcher, &skipped);
        fetcher
    }

    /// `ListenHTTP` for an upload-only capture.
    fn listen(
        &mut self,
        node: &CompiledNode,
        listen: &str,
        has_snapshot: bool,
    ) -> anyhow::Result<usize> {
        let id = &node.id;
        let port = listen
            .rsplit_once(':')
            .and_then(|(_, port)| port.parse::<u16>().ok())
            .with_context(|| format!("node `{id}`: upload.listen `{listen}` has no port"))?;
        let comments = format!(
            "Loupe capture node `{id}`: takes images POSTed to /upload on port {port} (the \
             capture's upload endpoint)."
        );
        let listener = self.processor(
            &format!("{id}/listen"),
            id.clone(),
            &LISTEN_HTTP,
            vec![
                prop("Listening Port", &port.to_string()),
                prop("Base Path", "upload"),
            ],
            comments,
        );
        if has_snapshot {
            self.note_skipped(listener, &["snapshots"]);
        }
        Ok(listener)
    }

    /// A source `InvokeHTTP` GET for a snapshot-only capture.
    fn snapshot(
        &mut self,
        node: &CompiledNode,
        snapshot: &loupe_capture::SnapshotSettings,
    ) -> usize {
        let id = &node.id;
        let timeout = nifi_duration(snapshot.timeout.get());
        let comments = format!(
            "Loupe capture node `{id}`: grabs a frame from {} every {} (the capture's \
             snapshot); each Response is one image.",
            snapshot.url,
            nifi_duration(snapshot.interval.get())
        );
        let grabber = self.processor(
            &format!("{id}/snapshot"),
            id.clone(),
            &INVOKE_HTTP,
            vec![
                prop("HTTP Method", "GET"),
                prop("HTTP URL", &snapshot.url),
                prop("Connection Timeout", &timeout),
                prop("Socket Read Timeout", &timeout),
            ],
            comments,
        );
        let processor = &mut self.drafts[grabber].processor;
        processor.scheduling_period = nifi_duration(snapshot.interval.get());
        processor.retry_count = 0;
        grabber
    }

    /// `UpdateAttribute` setting a capture's static attributes after `last`.
    fn static_attributes(
        &mut self,
        node: &CompiledNode,
        last: usize,
        relationship: &str,
        attributes: BTreeMap<String, String>,
    ) -> usize {
        let id = &node.id;
        let properties = attributes
            .into_iter()
            .map(|(name, value)| (name, el_literal(&value)))
            .collect();
        let comments =
            format!("Loupe capture node `{id}`: the static attributes of its `metadata`.");
        let updater = self.processor(
            &format!("{id}/attributes"),
            format!("{id}: attributes"),
            &UPDATE_ATTRIBUTE,
            properties,
            comments,
        );
        self.connect(
            &format!("{id}/attributes"),
            format!("{id}: captured"),
            last,
            vec![relationship.to_string()],
            updater,
            None,
        );
        updater
    }

    /// Says in a capture processor's comments which of the capture's inputs NiFi lacks.
    fn note_skipped(&mut self, processor: usize, skipped: &[&str]) {
        if !skipped.is_empty() {
            self.drafts[processor].processor.comments.push_str(&format!(
                " Not exported: the capture's {} (one NiFi source per capture; add them by \
                 hand).",
                skipped.join(" and ")
            ));
        }
    }

    /// One connection of the flow file.
    fn flow_connection(
        &mut self,
        connection: &CompiledConnection,
        stages: &[Stage],
    ) -> anyhow::Result<()> {
        let from = &self.flow.nodes[connection.from];
        let to = &self.flow.nodes[connection.to];
        let Some((source, relationships)) = stages[connection.from]
            .outputs
            .get(&connection.relationship)
            .cloned()
        else {
            bail!(
                "connection `{}`: node `{}` has no NiFi output for `{}`",
                connection.id,
                from.id,
                connection.relationship
            );
        };
        let Some(destination) = stages[connection.to].input else {
            bail!(
                "connection `{}`: node `{}` takes no input",
                connection.id,
                to.id
            );
        };
        self.connect(
            &connection.id,
            connection.id.clone(),
            source,
            relationships,
            destination,
            Some(connection),
        );
        Ok(())
    }

    /// Auto-terminates every unconnected relationship and assembles the snapshot.
    fn finish(self, description: &str) -> FlowSnapshot {
        let name = self.flow.name.clone();
        let context_key = format!("{name}/parameter-context");
        let group_key = format!("{name}/process-group");
        let mut used: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for connection in &self.connections {
            used.entry(connection.source.id.clone())
                .or_default()
                .extend(connection.selected_relationships.iter().cloned());
        }
        let processors = self
            .drafts
            .into_iter()
            .map(|draft| {
                let mut processor = draft.processor;
                let connected = used.get(&processor.identifier);
                let mut dropped: Vec<String> = draft
                    .relationships
                    .into_iter()
                    .filter(|r| !connected.is_some_and(|c| c.contains(r)))
                    .collect();
                dropped.sort();
                processor.auto_terminated_relationships = dropped;
                processor
            })
            .collect();
        let context = ParameterContext {
            identifier: stable_id(&context_key),
            instance_identifier: stable_id(&format!("{context_key}#instance")),
            name: name.clone(),
            description: format!(
                "Where the Loupe nodes of flow `{name}` are: one POST /process URL per node \
                 (loupe.<node-id>.url) and the capture directories (loupe.<node-id>.directory)."
            ),
            parameters: self.parameters.into_values().collect(),
            inherited_parameter_contexts: Vec::new(),
            component_type: "PARAMETER_CONTEXT".to_string(),
        };
        let flow_contents = ProcessGroup {
            identifier: self.group_id,
            instance_identifier: stable_id(&format!("{group_key}#instance")),
            name: name.clone(),
            comments: description.to_string(),
            position: Position { x: 0.0, y: 0.0 },
            process_groups: Vec::new(),
            remote_process_groups: Vec::new(),
            processors,
            input_ports: Vec::new(),
            output_ports: Vec::new(),
            connections: self.connections,
            labels: Vec::new(),
            funnels: Vec::new(),
            controller_services: Vec::new(),
            variables: BTreeMap::new(),
            default_flow_file_expiration: "0 sec".to_string(),
            default_back_pressure_object_threshold: DEFAULT_BACK_PRESSURE_OBJECTS as u64,
            default_back_pressure_data_size_threshold: back_pressure_size(
                DEFAULT_BACK_PRESSURE_BYTES,
            ),
            component_type: "PROCESS_GROUP".to_string(),
            flow_file_outbound_policy: "STREAM_WHEN_AVAILABLE".to_string(),
            flow_file_concurrency: "UNBOUNDED".to_string(),
            parameter_context_name: name.clone(),
        };
        FlowSnapshot {
            flow_contents,
            external_controller_services: BTreeMap::new(),
            parameter_contexts: BTreeMap::from([(name, context)]),
            flow_encoding_version: "1.0".to_string(),
            parameter_providers: BTreeMap::new(),
            latest: false,
        }
    }

    /// `path` made absolute against the flow's directory, without `.` and `..`.
    fn absolute(&self, path: &Path) -> PathBuf {
        normalize(&self.base_dir.join(path))
    }
}

/// A `(name, value)` property pair.
fn prop(name: &str, value: &str) -> (String, String) {
    (name.to_string(), value.to_string())
}

/// Removes `.` and resolves `..` lexically (the directory need not exist yet).
fn normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for component in path.components() {
        match component {
            Component::CurDir => {}
            Component::ParentDir => {
                if !out.pop() {
                    out.push("..");
                }
            }
            other => out.push(other.as_os_str()),
        }
    }
    out
}

/// A duration as NiFi writes time periods: `0 sec`, `250 ms`, `5 sec`, `10 mins`, `2 hours`,
/// `1 days`.
pub fn nifi_duration(duration: Duration) -> String {
    let mut millis = duration.as_millis();
    if millis == 0 && !duration.is_zero() {
        millis = 1;
    }
    if !millis.is_multiple_of(1000) {
        return format!("{millis} ms");
    }
    let secs = millis / 1000;
    match secs {
        0 => "0 sec".to_string(),
        s if s.is_multiple_of(86_400) => format!("{} days", s / 86_400),
        s if s.is_multiple_of(3_600) => format!("{} hours", s / 3_600),
        s if s.is_multiple_of(60) => format!("{} mins", s / 60),
        s => format!("{s} sec"),
    }
}

/// A back-pressure size as a NiFi data size.
///
/// NiFi's units are binary (`1 MB` = 1 MiB); Loupe's `MB` is decimal. The exact byte count
/// is kept: written in the largest NiFi unit that divides it (`64 MiB` -> `64 MB`,
/// `64 MB` -> `62500 KB`), else in bytes. Loupe's default (1 GB, meant as NiFi's default) is NiFi's
/// `1 GB`.
pub fn back_pressure_size(bytes: u64) -> String {
    if bytes == DEFAULT_BACK_PRESSURE_BYTES {
        return "1 GB".to_string();
    }
    nifi_data_size(bytes)
}

/// A byte count as an exact NiFi data size (binary units).
pub fn nifi_data_size(bytes: u64) -> String {
    const UNITS: [(&str, u64); 4] = [
        ("TB", 1 << 40),
        ("GB", 1 << 30),
        ("MB", 1 << 20),
        ("KB", 1 << 10),
    ];
    for (unit, size) in UNITS {
        if bytes > 0 && bytes.is_multiple_of(size) {
            return format!("{} {unit}", bytes / size);
        }
    }
    format!("{bytes} B")
}

/// A capture glob (`*`, `?`, `[set]`, `[!set]`, `\` escapes; see `loupe_capture::Glob`) as
/// the Java regular expression ListFile matches whole file names against.
pub fn glob_to_regex(glob: &str) -> String {
    let mut out = String::new();
    let mut chars = glob.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '*' => {
                while chars.next_if_eq(&'*').is_some() {}
                out.push_str(".*");
            }
            '?' => out.push('.'),
            '\\' => {
                if let Some(escaped) = chars.next() {
                    push_literal(&mut out, escaped);
                }
            }
            '[' => {
                let negated = chars.next_if(|&c| c == '!' || c == '^').is_some();
                out.push('[');
                if negated {
                    out.push('^');
                }
                let mut first = true;
                while let Some(c) = chars.next() {
                    if c == ']' && !first {
                        break;
                    }
                    first = false;
                    let lo = if c == '\\' {
                        chars.next().unwrap_or('\\')
                    } else {
                        c
                    };
                    push_literal(&mut out, lo);
                    let is_range = chars.peek() == Some(&'-') && {
                        let mut ahead = chars.clone();
                        ahead.next();
                        matches!(ahead.peek(), Some(&c) if c != ']')
                    };
                    if is_range {
                        chars.next();
                        out.push('-');
                        let hi = chars.next().unwrap_or(lo);
                        push_literal(&mut out, hi);
                    }
                }
                out.push(']');
            }
            c => push_literal(&mut out, c),
        }
    }
    out
}

/// One literal character in a Java regex: ASCII punctuation (but `_`) and space are escaped
/// (a backslash before a non-alphabetic character is always a literal in Java, inside a
/// class too).
fn push_literal(out: &mut String, c: char) {
    if c.is_ascii() && !c.is_ascii_alphanumeric() && c != '_' {
        out.push('\\');
    }
    out.push(c);
}

/// A string literal of NiFi Expression Language: single quotes, `\` and `'` escaped.
fn el_string(text: &str) -> String {
    format!("'{}'", text.replace('\\', "\\\\").replace('\'', "\\'"))
}

/// An attribute name in Expression Language: bare when it is a plain name (`route`),
/// else quoted (`'x-loupe-relationship'`).
fn el_attribute(name: &str) -> String {
    let plain = name.chars().next().is_some_and(|c| !c.is_ascii_digit())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.');
    if plain {
        name.to_string()
    } else {
        el_string(name)
    }
}

/// A literal value for a property NiFi evaluates as Expression Language: `${` and `#{` are
/// escaped so they stay text.
fn el_literal(text: &str) -> String {
    text.replace("${", "$${").replace("#{", "##{")
}

/// UUID version 5 (RFC 9562: SHA-1 of namespace + name).
fn uuid_v5(namespace: &[u8; 16], name: &str) -> String {
    uuid::Uuid::new_v5(&uuid::Uuid::from_bytes(*namespace), name.as_bytes()).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uuid_v5_matches_rfc_examples_and_our_namespace() {
        // The DNS namespace, 6ba7b810-9dad-11d1-80b4-00c04fd430c8.
        let dns = [
            0x6b, 0xa7, 0xb8, 0x10, 0x9d, 0xad, 0x11, 0xd1, 0x80, 0xb4, 0x00, 0xc0, 0x4f, 0xd4,
            0x30, 0xc8,
        ];
        assert_eq!(
            uuid_v5(&dns, "python.org"),
            "886313e1-3b8a-5372-9b90-0c9aee199e5d"
        );
        // The URL namespace, 6ba7b811-...: our namespace is derived from it.
        let mut url = dns;
        url[3] = 0x11;
        assert_eq!(
            uuid_v5(&url, "loupe:nifi-export"),
            "344416be-7cba-5364-8a1c-cb9eaaf3489a"
        );
        assert_eq!(
            stable_id("loose-wire-recheck/process-group"),
            "8020962e-3e30-58cf-b54c-b0066f0a1dbf"
        );
    }

    #[test]
    fn durations_use_nifi_units() {
        assert_eq!(nifi_duration(Duration::ZERO), "0 sec");
        assert_eq!(nifi_duration(Duration::from_millis(100)), "100 ms");
        assert_eq!(nifi_duration(Duration::from_micros(10)), "1 ms");
        assert_eq!(nifi_duration(Duration::from_secs(5)), "5 sec");
        assert_eq!(nifi_duration(Duration::from_secs(600)), "10 mins");
        assert_eq!(nifi_duration(Duration::from_secs(7200)), "2 hours");
        assert_eq!(nifi_duration(Duration::from_secs(86_400)), "1 days");
        assert_eq!(nifi_duration(Duration::from_millis(1500)), "1500 ms");
    }

    #[test]
    fn sizes_stay_exact_in_binary_units() {
        assert_eq!(back_pressure_size(DEFAULT_BACK_PRESSURE_BYTES), "1 GB");
        assert_eq!(back_pressure_size(64_000_000), "62500 KB");
        assert_eq!(back_pressure_size(1_000_001), "1000001 B");
        assert_eq!(back_pressure_size(64 << 20), "64 MB");
        assert_eq!(nifi_data_size(1 << 30), "1 GB");
        assert_eq!(nifi_data_size(1536), "1536 B");
        assert_eq!(nifi_data_size(2048), "2 KB");
        assert_eq!(nifi_data_size(0), "0 B");
    }

    #[test]
    fn globs_become_java_regexes() {
        assert_eq!(glob_to_regex("*.png"), ".*\\.png");
        assert_eq!(glob_to_regex("*"), ".*");
        assert_eq!(glob_to_regex("**a?"), ".*a.");
        assert_eq!(glob_to_regex("[!a-z]x"), "[^a-z]x");
        assert_eq!(glob_to_regex("[]a]"), "[\\]a]");
        assert_eq!(glob_to_regex("a\\*b c"), "a\\*b\\ c");
        assert_eq!(glob_to_regex("img_[0-9].jp*g"), "img_[0-9]\\.jp.*g");
    }

    #[test]
    fn expression_language_is_quoted() {
        assert_eq!(el_string("x-loupe-relationship"), "'x-loupe-relationship'");
        assert_eq!(el_string("it's"), "'it\\'s'");
        assert_eq!(el_literal("a${b}#{c}"), "a$${b}##{c}");
        assert_eq!(el_attribute("route"), "route");
        assert_eq!(el_attribute("segment.defect"), "segment.defect");
        assert_eq!(
            el_attribute("x-loupe-relationship"),
            "'x-loupe-relationship'"
        );
        assert_eq!(el_attribute("2x"), "'2x'");
    }

    #[test]
    fn paths_normalize_lexically() {
        assert_eq!(
            normalize(Path::new("/work/main/flows/../.loupe/./inbox")),
            PathBuf::from("/work/main/.loupe/inbox")
        );
    }
}
