//! The builder: walks a compiled flow node by node and emits NiFi components (processors,
//! connections, parameters) into one process group, then assembles the flow snapshot.
//!
//! Components get name-based identifiers ([`stable_id`]) and are laid out top to bottom in
//! the order they are added, so the same flow always gives the same bytes.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Component, Path, PathBuf};

use anyhow::{Context, bail};
use loupe_capture::{After, CaptureSettings};
use loupe_flow::model::{DEFAULT_BACK_PRESSURE_BYTES, DEFAULT_BACK_PRESSURE_OBJECTS};
use loupe_flow::{CompiledConnection, CompiledFlow, CompiledNode};

use super::catalogue::{
    DEFAULT_NODE_PORT, FETCH_FILE, INVOKE_HTTP, INVOKE_HTTP_FAILURES, LIST_FILE, LISTEN_HTTP,
    NIFI_GROUP, NIFI_RETRIES_WITHOUT_LIMIT, NIFI_VERSION, ProcessorType, READ_TIMEOUT,
    RELATIONSHIP_HEADER, REQUEST_HEADER_ATTRIBUTES, ROUTE_ATTRIBUTE, ROUTE_ON_ATTRIBUTE,
    UPDATE_ATTRIBUTE,
};
use super::expressions::{
    back_pressure_size, el_attribute, el_literal, el_string, glob_to_regex, nifi_data_size,
    nifi_duration,
};
use super::model::{
    Bundle, ConnectableComponent, Connection, FlowSnapshot, Parameter, ParameterContext, Position,
    ProcessGroup, Processor, PropertyDescriptor,
};

/// Vertical distance between two processors on the canvas.
const ROW_HEIGHT: f64 = 200.0;

/// Namespace of the name-based identifiers: UUIDv5(URL namespace, `loupe:nifi-export`),
/// `344416be-7cba-5364-8a1c-cb9eaaf3489a`.
const ID_NAMESPACE: [u8; 16] = [
    0x34, 0x44, 0x16, 0xbe, 0x7c, 0xba, 0x53, 0x64, 0x8a, 0x1c, 0xcb, 0x9e, 0xaa, 0xf3, 0x48, 0x9a,
];

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
    /// The processor (its auto-terminated relationships are set by [`auto_terminate`]).
    processor: Processor,
    /// Every relationship the processor has: its type's, and a RouteOnAttribute's properties.
    relationships: Vec<String>,
}

/// Builds the snapshot's components.
struct Builder<'f> {
    /// The flow being exported.
    flow: &'f CompiledFlow,
    /// Absolute directory relative paths in settings resolve against.
    base_dir: PathBuf,
    /// The process group's identifier.
    group_id: String,
    /// The processors so far, in canvas order (a processor's index is its row).
    drafts: Vec<Draft>,
    /// The connections so far, in the order they were made.
    connections: Vec<Connection>,
    /// The parameter context's parameters, by name.
    parameters: BTreeMap<String, Parameter>,
}

/// Components: processors, parameters and connections, with NiFi's defaults.
impl<'f> Builder<'f> {
    /// An empty builder for `flow`, whose relative directories resolve against `cwd`.
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

    /// `path` made absolute against the flow's directory, without `.` and `..`.
    fn absolute(&self, path: &Path) -> PathBuf {
        normalize(&self.base_dir.join(path))
    }
}

/// Processing nodes: an `InvokeHTTP` calling the node, and a `RouteOnAttribute` after it
/// when the node has more relationships than `success` and `failure`.
impl Builder<'_> {
    /// A processing node: InvokeHTTP, and a RouteOnAttribute when it has relationships
    /// beyond `success` and `failure`.
    fn processing(&mut self, node: &CompiledNode) -> Stage {
        let invoke = self.invoke(node);
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
        let router = self.relationship_router(node, invoke, attribute, &routed);
        for relationship in routed {
            outputs.insert(relationship.clone(), (router, vec![relationship.clone()]));
        }
        Stage {
            input: Some(invoke),
            outputs,
        }
    }

    /// The `InvokeHTTP` POSTing each FlowFile to a processing node, with the node's
    /// concurrency and `retry` policy; returns its index.
    fn invoke(&mut self, node: &CompiledNode) -> usize {
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
        invoke
    }

    /// The `RouteOnAttribute` after `invoke` that splits its `Response` on `attribute`: one
    /// property per relationship in `routed` (`unmatched` is its own); returns its index.
    fn relationship_router(
        &mut self,
        node: &CompiledNode,
        invoke: usize,
        attribute: &str,
        routed: &[&String],
    ) -> usize {
        let id = &node.id;
        let mut properties = vec![prop("Routing Strategy", "Route to Property name")];
        for relationship in routed {
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
        router
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

    /// The comments of a node's RouteOnAttribute: what it routes on and, for a `route`
    /// node, its rules.
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
}

/// The `capture` source: NiFi's own source processors, chosen from its settings.
impl Builder<'_> {
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
        let (last, relationship) =
            self.capture_processors(node, settings.as_ref(), &mut attributes)?;
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

    /// The NiFi source processors a capture's settings call for: `ListenHTTP` for an
    /// upload alone, a snapshot `InvokeHTTP` for snapshots alone (whose camera id goes into
    /// `attributes`), else `ListFile` + `FetchFile`. Returns the last processor and the
    /// relationship FlowFiles leave it on.
    fn capture_processors(
        &mut self,
        node: &CompiledNode,
        settings: Option<&CaptureSettings>,
        attributes: &mut BTreeMap<String, String>,
    ) -> anyhow::Result<(usize, &'static str)> {
        Ok(match settings {
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
            other => (self.list_fetch(node, other), "success"),
        })
    }

    /// `ListFile` + `FetchFile` for a capture directory; returns the last processor.
    fn list_fetch(&mut self, node: &CompiledNode, settings: Option<&CaptureSettings>) -> usize {
        let id = &node.id;
        let directory = self.directory_parameter(node, settings);
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

    /// The `#{loupe.<id>.directory}` parameter of a capture: its `directory` made
    /// absolute, or a placeholder for a remote capture.
    fn directory_parameter(
        &mut self,
        node: &CompiledNode,
        settings: Option<&CaptureSettings>,
    ) -> String {
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
        self.parameter(
            format!("loupe.{id}.directory"),
            directory.to_string_lossy().into_owned(),
            description,
        )
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
}

/// Flow connections and the finished snapshot.
impl Builder<'_> {
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
        let processors = auto_terminate(self.drafts, &self.connections);
        let context = parameter_context(&name, self.parameters.into_values().collect());
        let flow_contents = process_group(
            &name,
            description,
            self.group_id,
            processors,
            self.connections,
        );
        FlowSnapshot {
            flow_contents,
            external_controller_services: BTreeMap::new(),
            parameter_contexts: BTreeMap::from([(name, context)]),
            flow_encoding_version: "1.0".to_string(),
            parameter_providers: BTreeMap::new(),
            latest: false,
        }
    }
}

/// The processors of `drafts`, each auto-terminating the relationships no connection takes
/// from it (sorted).
fn auto_terminate(drafts: Vec<Draft>, connections: &[Connection]) -> Vec<Processor> {
    let mut used: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for connection in connections {
        used.entry(connection.source.id.clone())
            .or_default()
            .extend(connection.selected_relationships.iter().cloned());
    }
    drafts
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
        .collect()
}

/// The parameter context of flow `name`, which its process group is bound to.
fn parameter_context(name: &str, parameters: Vec<Parameter>) -> ParameterContext {
    let context_key = format!("{name}/parameter-context");
    ParameterContext {
        identifier: stable_id(&context_key),
        instance_identifier: stable_id(&format!("{context_key}#instance")),
        name: name.to_string(),
        description: format!(
            "Where the Loupe nodes of flow `{name}` are: one POST /process URL per node \
             (loupe.<node-id>.url) and the capture directories (loupe.<node-id>.directory)."
        ),
        parameters,
        inherited_parameter_contexts: Vec::new(),
        component_type: "PARAMETER_CONTEXT".to_string(),
    }
}

/// The process group of flow `name` (`identifier`: its stable id) holding `processors` and
/// `connections`, bound to the parameter context of the same name.
fn process_group(
    name: &str,
    description: &str,
    identifier: String,
    processors: Vec<Processor>,
    connections: Vec<Connection>,
) -> ProcessGroup {
    let group_key = format!("{name}/process-group");
    ProcessGroup {
        identifier,
        instance_identifier: stable_id(&format!("{group_key}#instance")),
        name: name.to_string(),
        comments: description.to_string(),
        position: Position { x: 0.0, y: 0.0 },
        process_groups: Vec::new(),
        remote_process_groups: Vec::new(),
        processors,
        input_ports: Vec::new(),
        output_ports: Vec::new(),
        connections,
        labels: Vec::new(),
        funnels: Vec::new(),
        controller_services: Vec::new(),
        variables: BTreeMap::new(),
        default_flow_file_expiration: "0 sec".to_string(),
        default_back_pressure_object_threshold: DEFAULT_BACK_PRESSURE_OBJECTS as u64,
        default_back_pressure_data_size_threshold: back_pressure_size(DEFAULT_BACK_PRESSURE_BYTES),
        component_type: "PROCESS_GROUP".to_string(),
        flow_file_outbound_policy: "STREAM_WHEN_AVAILABLE".to_string(),
        flow_file_concurrency: "UNBOUNDED".to_string(),
        parameter_context_name: name.to_string(),
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
    fn paths_normalize_lexically() {
        assert_eq!(
            normalize(Path::new("/work/main/flows/../.loupe/./inbox")),
            PathBuf::from("/work/main/.loupe/inbox")
        );
    }
}
