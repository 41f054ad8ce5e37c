//! The NiFi flow-definition data model: the parts of NiFi's `RegisteredFlowSnapshot` that
//! `loupe nifi export` writes, as serde structs serialized field by field in NiFi's JSON
//! (camelCase keys, NiFi's key order).

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::Value;

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
