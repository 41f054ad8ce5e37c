//! `loupe nifi export`: the shipped flows as NiFi 2.x flow definitions, checked field by
//! field against a flow definition NiFi itself exported
//! (`tests/data/nifi-flow-definition-example.json`), and against the flow files they come
//! from (relationships, prioritizers, back pressure, parameters).

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use common::{loupe, repo};
use serde_json::Value;

/// The flows `loupe demo` runs.
const SHIPPED: [&str; 2] = [
    "flows/loose-wire-recheck.yaml",
    "flows/surface-defects.yaml",
];

/// The relationships of NiFi's InvokeHTTP.
const INVOKE_HTTP_RELATIONSHIPS: [&str; 5] =
    ["Original", "Response", "Retry", "No Retry", "Failure"];

/// Runs `loupe nifi export FLOW` and returns its standard output, parsed too.
fn export(flow: &Path) -> (String, Value) {
    let out = loupe().args(["nifi", "export"]).arg(flow).output().unwrap();
    assert!(
        out.status.success(),
        "export of {} failed:\n{}",
        flow.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let json = serde_json::from_str(&text).unwrap();
    (text, json)
}

/// A flow definition NiFi exported ("Download flow definition").
fn reference() -> Value {
    let path = repo().join("tests/data/nifi-flow-definition-example.json");
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// A flow file as plain YAML.
fn flow_yaml(flow: &Path) -> serde_norway::Value {
    serde_norway::from_str(&std::fs::read_to_string(flow).unwrap()).unwrap()
}

fn keys(value: &Value) -> BTreeSet<String> {
    value.as_object().unwrap().keys().cloned().collect()
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// Every key both have holds the same JSON type (a `null` in the reference says nothing).
fn assert_same_types(what: &str, ours: &Value, reference: &Value) {
    for (key, theirs) in reference.as_object().unwrap() {
        if let Some(mine) = ours.get(key)
            && !theirs.is_null()
        {
            assert_eq!(
                kind(mine),
                kind(theirs),
                "{what}.{key}: NiFi writes a {}, we wrote {mine}",
                kind(theirs)
            );
        }
    }
}

fn processors(snapshot: &Value) -> &Vec<Value> {
    snapshot["flowContents"]["processors"].as_array().unwrap()
}

fn connections(snapshot: &Value) -> &Vec<Value> {
    snapshot["flowContents"]["connections"].as_array().unwrap()
}

fn processor_named<'a>(snapshot: &'a Value, name: &str) -> &'a Value {
    processors(snapshot)
        .iter()
        .find(|p| p["name"] == name)
        .unwrap_or_else(|| panic!("no processor named {name}"))
}

fn processor_by_id<'a>(snapshot: &'a Value, id: &Value) -> &'a Value {
    processors(snapshot)
        .iter()
        .find(|p| p["identifier"] == *id)
        .unwrap_or_else(|| panic!("no processor with identifier {id}"))
}

fn short_type(processor: &Value) -> &str {
    processor["type"]
        .as_str()
        .unwrap()
        .rsplit('.')
        .next()
        .unwrap()
}

fn strings(value: &Value) -> BTreeSet<String> {
    value
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect()
}

/// A NiFi data size in bytes (NiFi's units are binary: 1 KB = 1024 B).
fn nifi_bytes(size: &str) -> u64 {
    let (number, unit) = size.split_once(' ').unwrap();
    let number: u64 = number.parse().unwrap();
    let shift = match unit {
        "B" => 0,
        "KB" => 10,
        "MB" => 20,
        "GB" => 30,
        "TB" => 40,
        other => panic!("unknown NiFi unit {other}"),
    };
    number << shift
}

#[test]
fn shipped_flows_have_the_structure_nifi_exports() {
    let reference = reference();
    let ref_contents = &reference["flowContents"];
    let ref_processor = &ref_contents["processors"][0];
    let ref_connections = ref_contents["connections"].as_array().unwrap();
    let ref_connection_keys: BTreeSet<BTreeSet<String>> =
        ref_connections.iter().map(keys).collect();
    let ref_end = &ref_connections[0]["source"];
    for flow in SHIPPED {
        let (_, snapshot) = export(&repo().join(flow));
        assert_eq!(keys(&snapshot), keys(&reference), "{flow}: top-level keys");
        assert_same_types(flow, &snapshot, &reference);
        assert_eq!(snapshot["flowEncodingVersion"], "1.0");

        // The process group: NiFi's keys plus the parameter context binding.
        let contents = &snapshot["flowContents"];
        let mut expected = keys(ref_contents);
        expected.insert("parameterContextName".to_string());
        assert_eq!(keys(contents), expected, "{flow}: flowContents keys");
        assert_same_types(&format!("{flow}: flowContents"), contents, ref_contents);
        assert_eq!(contents["componentType"], "PROCESS_GROUP");
        let name = flow_yaml(&repo().join(flow))["name"]
            .as_str()
            .unwrap()
            .to_string();
        assert_eq!(contents["name"], name.as_str());
        assert!(
            !contents["comments"].as_str().unwrap().is_empty(),
            "description as comments"
        );

        for processor in processors(&snapshot) {
            let what = format!("{flow}: processor {}", processor["name"]);
            assert_eq!(keys(processor), keys(ref_processor), "{what}: keys");
            assert_same_types(&what, processor, ref_processor);
            assert_eq!(keys(&processor["bundle"]), keys(&ref_processor["bundle"]));
            assert_eq!(
                keys(&processor["position"]),
                keys(&ref_processor["position"])
            );
            assert_eq!(processor["bundle"]["group"], "org.apache.nifi");
            assert!(
                processor["bundle"]["version"]
                    .as_str()
                    .unwrap()
                    .starts_with("2."),
                "{what}: a NiFi 2.x bundle"
            );
            assert_eq!(processor["componentType"], "PROCESSOR");
            assert_eq!(processor["groupIdentifier"], contents["identifier"]);
            assert_eq!(processor["scheduledState"], "ENABLED");
            assert_eq!(processor["schedulingStrategy"], "TIMER_DRIVEN");
            assert_eq!(processor["executionNode"], "ALL");
            assert_eq!(processor["backoffMechanism"], "PENALIZE_FLOWFILE");
            // Every property set has its descriptor.
            assert_eq!(
                keys(&processor["properties"]),
                keys(&processor["propertyDescriptors"]),
                "{what}"
            );
            for descriptor in processor["propertyDescriptors"]
                .as_object()
                .unwrap()
                .values()
            {
                let ref_descriptor = ref_processor["propertyDescriptors"]
                    .as_object()
                    .unwrap()
                    .values()
                    .next()
                    .unwrap();
                assert_eq!(keys(descriptor), keys(ref_descriptor), "{what}: descriptor");
            }
        }
        for connection in connections(&snapshot) {
            let what = format!("{flow}: connection {}", connection["name"]);
            let mine = keys(connection);
            assert!(
                ref_connection_keys.contains(&mine),
                "{what}: keys {mine:?} are not those of a NiFi connection"
            );
            let like = ref_connections.iter().find(|c| keys(c) == mine).unwrap();
            assert_same_types(&what, connection, like);
            for end in ["source", "destination"] {
                assert_eq!(keys(&connection[end]), keys(ref_end), "{what}: {end} keys");
                assert_same_types(&format!("{what}.{end}"), &connection[end], ref_end);
            }
        }
    }
}

#[test]
fn connections_join_processors_and_leave_no_relationship_dangling() {
    for flow in SHIPPED {
        let (_, snapshot) = export(&repo().join(flow));
        let group = &snapshot["flowContents"]["identifier"];
        let mut connected: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for connection in connections(&snapshot) {
            let what = format!("{flow}: connection {}", connection["name"]);
            for end in ["source", "destination"] {
                let end = &connection[end];
                let processor = processor_by_id(&snapshot, &end["id"]);
                assert_eq!(end["type"], "PROCESSOR", "{what}");
                assert_eq!(end["groupId"], *group, "{what}");
                assert_eq!(end["name"], processor["name"], "{what}");
                assert_eq!(end["instanceIdentifier"], processor["instanceIdentifier"]);
            }
            assert_eq!(connection["groupIdentifier"], *group, "{what}");
            assert_eq!(connection["componentType"], "CONNECTION");
            assert_eq!(connection["loadBalanceStrategy"], "DO_NOT_LOAD_BALANCE");
            let selected = strings(&connection["selectedRelationships"]);
            assert!(!selected.is_empty(), "{what}: no relationship selected");
            connected
                .entry(connection["source"]["id"].as_str().unwrap().to_string())
                .or_default()
                .extend(selected);
        }
        for processor in processors(&snapshot) {
            let what = format!("{flow}: processor {}", processor["name"]);
            let id = processor["identifier"].as_str().unwrap();
            let out = connected.get(id).cloned().unwrap_or_default();
            let dropped = strings(&processor["autoTerminatedRelationships"]);
            assert!(out.is_disjoint(&dropped), "{what}: {out:?} vs {dropped:?}");
            let all: BTreeSet<String> = match short_type(processor) {
                "InvokeHTTP" => INVOKE_HTTP_RELATIONSHIPS
                    .iter()
                    .map(|r| r.to_string())
                    .collect(),
                "RouteOnAttribute" => processor["properties"]
                    .as_object()
                    .unwrap()
                    .keys()
                    .filter(|k| *k != "Routing Strategy")
                    .cloned()
                    .chain(["unmatched".to_string()])
                    .collect(),
                "FetchFile" => ["success", "not.found", "permission.denied", "failure"]
                    .iter()
                    .map(|r| r.to_string())
                    .collect(),
                _ => ["success".to_string()].into(),
            };
            let covered: BTreeSet<String> = out.union(&dropped).cloned().collect();
            assert_eq!(
                covered, all,
                "{what}: every relationship connected or dropped"
            );
            for retried in strings(&processor["retriedRelationships"]) {
                assert!(all.contains(&retried), "{what}: retries unknown {retried}");
            }
        }
    }
}

#[test]
fn route_rules_become_route_on_attribute_properties() {
    for flow in SHIPPED {
        let path = repo().join(flow);
        let (_, snapshot) = export(&path);
        let yaml = flow_yaml(&path);
        let route = yaml["nodes"]
            .as_sequence()
            .unwrap()
            .iter()
            .find(|n| n["type"] == "route")
            .unwrap();
        let id = route["id"].as_str().unwrap();
        let rules: Vec<&str> = route["settings"]["rules"]
            .as_sequence()
            .unwrap()
            .iter()
            .map(|r| r["name"].as_str().unwrap())
            .collect();
        // InvokeHTTP `route` (the Loupe route node sets `route`) -> its RouteOnAttribute.
        let invoke = processor_named(&snapshot, id);
        assert_eq!(short_type(invoke), "InvokeHTTP");
        let router = connections(&snapshot)
            .iter()
            .filter(|c| c["source"]["id"] == invoke["identifier"])
            .map(|c| processor_by_id(&snapshot, &c["destination"]["id"]))
            .find(|p| short_type(p) == "RouteOnAttribute")
            .expect("a RouteOnAttribute after the route node");
        let properties = router["properties"].as_object().unwrap();
        assert_eq!(properties.len(), rules.len() + 1, "{flow}: {properties:?}");
        assert_eq!(properties["Routing Strategy"], "Route to Property name");
        for rule in &rules {
            assert_eq!(
                properties[*rule],
                format!("${{route:equals('{rule}')}}"),
                "{flow}: rule {rule}"
            );
            let out = connections(&snapshot)
                .iter()
                .find(|c| {
                    c["name"]
                        .as_str()
                        .unwrap()
                        .starts_with(&format!("{id}.{rule}->"))
                })
                .unwrap_or_else(|| panic!("{flow}: no connection for {id}.{rule}"));
            assert_eq!(out["source"]["id"], router["identifier"]);
            assert_eq!(
                strings(&out["selectedRelationships"]),
                [rule.to_string()].into()
            );
        }
        let unmatched = connections(&snapshot)
            .iter()
            .find(|c| {
                c["name"]
                    .as_str()
                    .unwrap()
                    .starts_with(&format!("{id}.unmatched->"))
            })
            .unwrap();
        assert_eq!(unmatched["source"]["id"], router["identifier"]);
        assert_eq!(
            strings(&unmatched["selectedRelationships"]),
            ["unmatched".to_string()].into()
        );
        let failure = connections(&snapshot)
            .iter()
            .find(|c| {
                c["name"]
                    .as_str()
                    .unwrap()
                    .starts_with(&format!("{id}.failure->"))
            })
            .unwrap();
        assert_eq!(failure["source"]["id"], invoke["identifier"]);
        assert_eq!(
            strings(&failure["selectedRelationships"]),
            ["Failure", "No Retry", "Retry"]
                .iter()
                .map(|r| r.to_string())
                .collect()
        );
    }
}

#[test]
fn queues_keep_the_flow_files_prioritizers_and_back_pressure() {
    let classes = BTreeMap::from([
        (
            "fifo",
            "org.apache.nifi.prioritizer.FirstInFirstOutPrioritizer",
        ),
        (
            "oldest-first",
            "org.apache.nifi.prioritizer.OldestFlowFileFirstPrioritizer",
        ),
        (
            "newest-first",
            "org.apache.nifi.prioritizer.NewestFlowFileFirstPrioritizer",
        ),
        (
            "priority-attribute",
            "org.apache.nifi.prioritizer.PriorityAttributePrioritizer",
        ),
    ]);
    for flow in SHIPPED {
        let path = repo().join(flow);
        let (_, snapshot) = export(&path);
        let yaml = flow_yaml(&path);
        let flow_connections = yaml["connections"].as_sequence().unwrap();
        let named: Vec<&Value> = connections(&snapshot)
            .iter()
            .filter(|c| c["name"].as_str().unwrap().contains("->"))
            .collect();
        assert_eq!(
            named.len(),
            flow_connections.len(),
            "{flow}: one per flow connection"
        );
        for c in flow_connections {
            let name = format!(
                "{}->{}",
                c["from"].as_str().unwrap(),
                c["to"].as_str().unwrap()
            );
            let nifi = named
                .iter()
                .find(|n| n["name"] == name.as_str())
                .unwrap_or_else(|| panic!("{flow}: no connection {name}"));
            let prioritizer = c["prioritizer"].as_str().unwrap_or("fifo");
            assert_eq!(
                strings(&nifi["prioritizers"]),
                [classes[prioritizer].to_string()].into(),
                "{flow}: {name}"
            );
            let objects = c["back_pressure"]["objects"].as_u64().unwrap_or(10_000);
            assert_eq!(
                nifi["backPressureObjectThreshold"], objects,
                "{flow}: {name}"
            );
            let size = nifi["backPressureDataSizeThreshold"].as_str().unwrap();
            match c["back_pressure"]["bytes"].as_str() {
                Some(bytes) => assert_eq!(
                    nifi_bytes(size),
                    loupe_flow::spec::parse_bytes(bytes).unwrap(),
                    "{flow}: {name}: {size} is not {bytes}"
                ),
                None => assert_eq!(size, "1 GB", "{flow}: {name}: NiFi's default"),
            }
            assert_eq!(nifi["flowFileExpiration"], "0 sec", "{flow}: {name}");
        }
    }
}

#[test]
fn every_parameter_reference_is_in_the_bound_context() {
    for flow in SHIPPED {
        let path = repo().join(flow);
        let (_, snapshot) = export(&path);
        let yaml = flow_yaml(&path);
        let bound = snapshot["flowContents"]["parameterContextName"]
            .as_str()
            .unwrap();
        let context = &snapshot["parameterContexts"][bound];
        assert_eq!(context["name"], bound, "{flow}: the bound context exists");
        assert_eq!(context["componentType"], "PARAMETER_CONTEXT");
        let parameters: BTreeMap<&str, &str> = context["parameters"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| (p["name"].as_str().unwrap(), p["value"].as_str().unwrap()))
            .collect();
        for processor in processors(&snapshot) {
            for value in processor["properties"].as_object().unwrap().values() {
                let mut rest = value.as_str().unwrap();
                while let Some(start) = rest.find("#{") {
                    let end = rest[start..].find('}').unwrap() + start;
                    let name = &rest[start + 2..end];
                    assert!(
                        parameters.contains_key(name),
                        "{flow}: #{{{name}}} is not defined"
                    );
                    rest = &rest[end..];
                }
            }
        }
        for node in yaml["nodes"].as_sequence().unwrap() {
            let id = node["id"].as_str().unwrap();
            if node["type"] == "capture" {
                continue;
            }
            let invoke = processor_named(&snapshot, id);
            assert_eq!(short_type(invoke), "InvokeHTTP", "{flow}: {id}");
            assert_eq!(invoke["properties"]["HTTP Method"], "POST");
            assert_eq!(
                invoke["properties"]["HTTP URL"],
                format!("#{{loupe.{id}.url}}")
            );
            assert_eq!(
                parameters[format!("loupe.{id}.url").as_str()],
                format!("http://loupe-{id}:50051/process"),
                "{flow}: a local node's default is its compose service"
            );
            let concurrency = node["concurrency"].as_u64().unwrap_or(1);
            assert_eq!(
                invoke["concurrentlySchedulableTaskCount"], concurrency,
                "{flow}: {id}"
            );
        }
    }
}

#[test]
fn exports_are_stable_with_unique_name_based_ids() {
    for flow in SHIPPED {
        let path = repo().join(flow);
        let (first, snapshot) = export(&path);
        let (second, _) = export(&path);
        assert_eq!(first, second, "{flow}: two exports differ");
        let mut ids = Vec::new();
        let contents = &snapshot["flowContents"];
        ids.push(&contents["identifier"]);
        ids.push(&contents["instanceIdentifier"]);
        for component in processors(&snapshot).iter().chain(connections(&snapshot)) {
            ids.push(&component["identifier"]);
            ids.push(&component["instanceIdentifier"]);
        }
        for context in snapshot["parameterContexts"].as_object().unwrap().values() {
            ids.push(&context["identifier"]);
        }
        let unique: BTreeSet<&str> = ids.iter().map(|id| id.as_str().unwrap()).collect();
        assert_eq!(unique.len(), ids.len(), "{flow}: identifiers repeat");
        for id in unique {
            let bytes = id.as_bytes();
            assert_eq!(id.len(), 36, "{id}");
            assert_eq!(bytes[14], b'5', "{id}: a version 5 UUID");
            assert!(
                matches!(bytes[19], b'8' | b'9' | b'a' | b'b'),
                "{id}: RFC variant"
            );
        }
    }
}

#[test]
fn out_writes_the_same_json_as_standard_output() {
    let flow = repo().join(SHIPPED[0]);
    let (stdout, _) = export(&flow);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("flow.json");
    let out = loupe()
        .args(["nifi", "export"])
        .arg(&flow)
        .arg("--out")
        .arg(&file)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.stdout.is_empty());
    assert_eq!(std::fs::read_to_string(&file).unwrap(), stdout);
}

#[test]
fn an_invalid_flow_is_refused_with_its_located_errors() {
    let flow = repo().join("tests/fixtures/five-mistakes.yaml");
    let out = loupe()
        .args(["nifi", "export"])
        .arg(&flow)
        .output()
        .unwrap();
    assert!(!out.status.success(), "an invalid flow must exit non-zero");
    assert!(out.stdout.is_empty(), "nothing is exported");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("five-mistakes.yaml:11:") && stderr.contains("unknown node type `clasify`"),
        "{stderr}"
    );
    assert!(stderr.contains("five-mistakes.yaml:31:"), "{stderr}");
    assert!(stderr.contains("nothing exported"), "{stderr}");
}

#[test]
fn remote_nodes_and_upload_only_captures() {
    let dir = tempfile::tempdir().unwrap();
    let flow = dir.path().join("remote.yaml");
    std::fs::write(
        &flow,
        "\
name: remote-check
nodes:
  - id: cam
    type: capture
    settings:
      upload: { listen: 127.0.0.1:8099 }
      metadata:
        attributes: { line: L7 }
  - id: classify
    type: classify
    endpoints: [http://gpu-1:50051/, http://gpu-2:50051]
    concurrency: 3
    retry: { max_attempts: 3, initial_backoff: 200ms, max_backoff: 10s }
  - id: out
    type: report
    settings: { path: ./out.jsonl }
    auto_terminate: [failure]
connections:
  - from: cam.success
    to: classify
    prioritizer: newest-first
    back_pressure: { objects: 5, bytes: 2 MiB }
    expiration: 10 min
  - from: classify.success
    to: out
    prioritizer: oldest-first
  - from: classify.failure
    to: out
",
    )
    .unwrap();
    let (_, snapshot) = export(&flow);

    let listener = processor_named(&snapshot, "cam");
    assert_eq!(short_type(listener), "ListenHTTP");
    assert_eq!(listener["properties"]["Listening Port"], "8099");
    assert_eq!(listener["properties"]["Base Path"], "upload");
    let attributes = processor_named(&snapshot, "cam: attributes");
    assert_eq!(short_type(attributes), "UpdateAttribute");
    assert_eq!(attributes["properties"]["line"], "L7");

    let classify = processor_named(&snapshot, "classify");
    assert_eq!(classify["concurrentlySchedulableTaskCount"], 3);
    assert_eq!(classify["retryCount"], 2);
    assert_eq!(
        strings(&classify["retriedRelationships"]),
        ["Failure", "Retry"].iter().map(|r| r.to_string()).collect()
    );
    assert_eq!(classify["penaltyDuration"], "200 ms");
    assert_eq!(classify["maxBackoffPeriod"], "10 sec");
    let parameters = snapshot["parameterContexts"]["remote-check"]["parameters"]
        .as_array()
        .unwrap();
    let url = parameters
        .iter()
        .find(|p| p["name"] == "loupe.classify.url")
        .unwrap();
    assert_eq!(
        url["value"], "http://gpu-1:50051/process",
        "the first endpoint"
    );

    let queue = connections(&snapshot)
        .iter()
        .find(|c| c["name"] == "cam.success->classify")
        .unwrap();
    assert_eq!(queue["source"]["id"], attributes["identifier"]);
    assert_eq!(queue["backPressureObjectThreshold"], 5);
    assert_eq!(queue["backPressureDataSizeThreshold"], "2 MB");
    assert_eq!(queue["flowFileExpiration"], "10 mins");
    assert_eq!(
        queue["prioritizers"][0],
        "org.apache.nifi.prioritizer.NewestFlowFileFirstPrioritizer"
    );
    let records = connections(&snapshot)
        .iter()
        .find(|c| c["name"] == "classify.success->out")
        .unwrap();
    assert_eq!(
        strings(&records["selectedRelationships"]),
        ["Response".to_string()].into()
    );
    assert_eq!(
        records["prioritizers"][0],
        "org.apache.nifi.prioritizer.OldestFlowFileFirstPrioritizer"
    );
}
