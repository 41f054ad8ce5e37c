//! Flow-file compiler tests (`loupe validate`), against a small registry of test node kinds.

use std::path::{Path, PathBuf};
use std::time::Duration;

use async_trait::async_trait;
use loupe_flow::{CompiledFlow, FlowError, Prioritizer, RetryPolicy, compile_file, compile_str};
use loupe_sdk::{BuildContext, Node, NodeError, NodeKind, Registry, Relationship, SettingsError};
use serde::Deserialize;

/// Settings of kinds without settings.
#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct NoSettings {}

/// A source: `success`.
struct Src;

#[async_trait]
impl NodeKind for Src {
    const TYPE: &'static str = "src";
    const IS_SOURCE: bool = true;
    type Settings = NoSettings;

    fn relationships(_: &NoSettings) -> Vec<Relationship> {
        vec![Relationship::new("success", "")]
    }

    async fn build(_: NoSettings, _: &BuildContext) -> Result<Node, NodeError> {
        Err(NodeError::Other("test kind".into()))
    }
}

/// Settings of `proc`.
#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct ProcSettings {
    /// In `[0, 1]`.
    threshold: f32,
}

/// A processor: `success` and `failure`.
struct Proc;

#[async_trait]
impl NodeKind for Proc {
    const TYPE: &'static str = "proc";
    type Settings = ProcSettings;

    fn relationships(_: &ProcSettings) -> Vec<Relationship> {
        vec![
            Relationship::new("success", ""),
            Relationship::new("failure", ""),
        ]
    }

    fn validate(settings: &ProcSettings) -> Vec<SettingsError> {
        if (0.0..=1.0).contains(&settings.threshold) {
            Vec::new()
        } else {
            vec![SettingsError::new("threshold", "must be in [0, 1]")]
        }
    }

    async fn build(_: ProcSettings, _: &BuildContext) -> Result<Node, NodeError> {
        Err(NodeError::Other("test kind".into()))
    }
}

/// Settings of `route`.
#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct RouteSettings {
    /// One relationship each.
    routes: Vec<String>,
}

/// Relationships from settings: one per route, plus `unmatched`.
struct Route;

#[async_trait]
impl NodeKind for Route {
    const TYPE: &'static str = "route";
    type Settings = RouteSettings;

    fn relationships(settings: &RouteSettings) -> Vec<Relationship> {
        settings
            .routes
            .iter()
            .chain(std::iter::once(&"unmatched".to_string()))
            .map(|r| Relationship::new(r.clone(), ""))
            .collect()
    }

    async fn build(_: RouteSettings, _: &BuildContext) -> Result<Node, NodeError> {
        Err(NodeError::Other("test kind".into()))
    }
}

/// A sink: no relationships.
struct Sink;

#[async_trait]
impl NodeKind for Sink {
    const TYPE: &'static str = "sink";
    type Settings = NoSettings;

    fn relationships(_: &NoSettings) -> Vec<Relationship> {
        Vec::new()
    }

    async fn build(_: NoSettings, _: &BuildContext) -> Result<Node, NodeError> {
        Err(NodeError::Other("test kind".into()))
    }
}

fn registry() -> Registry {
    Registry::new()
        .with::<Src>()
        .with::<Proc>()
        .with::<Route>()
        .with::<Sink>()
}

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

fn compile(text: &str) -> Result<CompiledFlow, Vec<FlowError>> {
    compile_str(text, Path::new("flows/test.yaml"), &registry())
}

fn compile_errors(text: &str) -> Vec<FlowError> {
    match compile(text) {
        Ok(flow) => panic!("expected errors, compiled {flow:?}"),
        Err(errors) => errors,
    }
}

/// Asserts exactly one error, at `line`, with `path`, whose message contains `needle`.
#[track_caller]
fn one_error(text: &str, line: usize, path: &str, needle: &str) -> FlowError {
    let errors = compile_errors(text);
    assert_eq!(errors.len(), 1, "{errors:#?}");
    let e = errors.into_iter().next().expect("one error");
    assert_eq!((e.line, e.path.as_str()), (line, path), "{e}");
    assert!(e.message.contains(needle), "`{needle}` not in: {e}");
    e
}

/// A valid two-node flow to which test cases append.
const HEAD: &str = "\
nodes:
  - id: camera
    type: src
    auto_terminate: [success]
  - id: grade
    type: proc
    settings: { threshold: 0.5 }
    auto_terminate: [success, failure]
";

#[test]
fn the_valid_fixture_compiles_with_defaults_applied() {
    let path = fixture("valid.yaml");
    let flow = compile_file(&path, &registry()).expect("valid flow");
    assert_eq!(flow.name, "demo");
    assert_eq!(flow.base_dir, fixture(""));
    let ids: Vec<&str> = flow.nodes.iter().map(|n| n.id.as_str()).collect();
    assert_eq!(ids, ["camera", "grade", "split", "recheck", "sink"]);

    let camera = &flow.nodes[0];
    assert!(camera.is_source);
    assert_eq!(camera.node_type, "src");
    assert_eq!(camera.relationships, ["success"]);
    assert_eq!(camera.concurrency, 1);
    assert!(camera.endpoints.is_empty());
    assert!(camera.settings.is_null());
    assert_eq!(camera.retry, RetryPolicy::default());
    assert_eq!(camera.line, 5);

    let grade = &flow.nodes[1];
    assert!(!grade.is_source);
    assert_eq!(grade.settings, serde_json::json!({"threshold": 0.25}));
    assert_eq!(grade.concurrency, 4);
    assert_eq!(grade.relationships, ["success", "failure"]);
    assert_eq!(grade.auto_terminate, ["failure"]);
    let retry = RetryPolicy {
        max_attempts: Some(3),
        initial_backoff: Duration::from_millis(50),
        max_backoff: Duration::from_secs(2),
    };
    assert_eq!(grade.retry, retry);

    let split = &flow.nodes[2];
    assert_eq!(split.relationships, ["good", "bad", "unmatched"]);
    assert_eq!(
        split.endpoints,
        ["http://10.0.0.1:50051", "http://10.0.0.2:50051"]
    );

    // Remote without settings: the relationships the flow uses, connected ones first.
    let recheck = &flow.nodes[3];
    assert_eq!(recheck.endpoints, ["http://127.0.0.1:50051"]);
    assert!(recheck.settings.is_null());
    assert_eq!(recheck.relationships, ["success", "retry", "failure"]);

    let ids: Vec<&str> = flow.connections.iter().map(|c| c.id.as_str()).collect();
    assert_eq!(
        ids,
        [
            "camera.success->grade",
            "grade.success->split",
            "split.good->sink",
            "split.bad->recheck",
            "recheck.success->sink",
            "recheck.retry->grade",
        ]
    );
    let first = &flow.connections[0];
    assert_eq!((first.from, first.to), (0, 1));
    assert_eq!(first.relationship, "success");
    assert_eq!(first.prioritizer, Prioritizer::Fifo);
    assert_eq!(first.back_pressure_objects, 10_000);
    assert_eq!(first.back_pressure_bytes, 1_000_000_000);
    assert_eq!(first.expiration, None);

    let second = &flow.connections[1];
    assert_eq!(second.prioritizer, Prioritizer::PriorityAttribute);
    assert_eq!(second.back_pressure_objects, 500);
    assert_eq!(second.back_pressure_bytes, 512_000_000);
    assert_eq!(second.expiration, Some(Duration::from_secs(300)));

    let fourth = &flow.connections[3];
    assert_eq!((fourth.from, fourth.to), (2, 3));
    assert_eq!(fourth.prioritizer, Prioritizer::OldestFirst);
    assert_eq!(fourth.back_pressure_objects, 10_000);
    assert_eq!(fourth.back_pressure_bytes, 1 << 30);
    assert_eq!(fourth.expiration, None);
}

#[test]
fn five_mistakes_give_exactly_five_located_errors() {
    let path = fixture("five-mistakes.yaml");
    let errors = compile_file(&path, &registry()).expect_err("five mistakes");
    let found: Vec<(usize, &str)> = errors.iter().map(|e| (e.line, e.path.as_str())).collect();
    assert_eq!(
        found,
        [
            (10, "nodes[1].settings.threshold"),
            (15, "nodes[3].type"),
            (16, "nodes[4].id"),
            (25, "connections[3]"),
            (28, "connections[4].to"),
        ],
        "{errors:#?}"
    );
    let needles = [
        "expected f32",
        "unknown node type `archiver`; known types: proc, route, sink, src",
        "duplicate node id `check` (first used at line 11)",
        "cycle grade -> check -> grade",
        "unknown node `reviewer`",
    ];
    for (e, needle) in errors.iter().zip(needles) {
        assert!(e.message.contains(needle), "`{needle}` not in: {e}");
        assert_eq!(e.file, path);
    }
    assert_eq!(errors[1].column, 11);
    assert!(errors[0].to_string().starts_with(&format!(
        "{}:10:7: nodes[1].settings.threshold: ",
        path.display()
    )));
}

#[test]
fn name_defaults_to_the_file_stem_and_base_dir_to_dot() {
    let text = "nodes:\n  - {id: a, type: src, auto_terminate: [success]}\n";
    let flow = compile_str(text, Path::new("line-3.yaml"), &registry()).expect("valid");
    assert_eq!(flow.name, "line-3");
    assert_eq!(flow.base_dir, PathBuf::from("."));
    assert!(flow.connections.is_empty());
}

#[test]
fn yaml_syntax_errors_stop_with_one_located_error() {
    let text = "nodes:\n  - id: a\n    type: [src\n  - id: b\n";
    let errors = compile_errors(text);
    assert_eq!(errors.len(), 1, "{errors:#?}");
    assert!(
        errors[0].message.starts_with("invalid YAML"),
        "{}",
        errors[0]
    );
    assert!(errors[0].line >= 3, "{}", errors[0]);
}

#[test]
fn unreadable_files_give_one_error() {
    let path = fixture("does-not-exist.yaml");
    let errors = compile_file(&path, &registry()).expect_err("missing");
    assert_eq!(errors.len(), 1);
    assert_eq!(errors[0].line, 0);
    assert!(errors[0].to_string().contains("cannot read the flow file"));
}

#[test]
fn structure_errors_are_located() {
    one_error(
        &format!("{HEAD}    colour: red\n"),
        9,
        "nodes[1].colour",
        "unknown key `colour`",
    );
    one_error(
        &format!("{HEAD}conections: []\n"),
        9,
        "conections",
        "did you mean `connections`?",
    );
    one_error(
        &format!("{HEAD}  - type: sink\n"),
        9,
        "nodes[2]",
        "missing required key `id`",
    );
    one_error(
        &format!("{HEAD}  - {{id: my sink, type: sink}}\n"),
        9,
        "nodes[2].id",
        "invalid node id `my sink`",
    );
    one_error(
        &format!("{HEAD}  - {{id: s, type: sink, concurrency: 0}}\n"),
        9,
        "nodes[2].concurrency",
        "at least 1",
    );
    one_error(
        "nodes:\n  - id: a\n    type: src\n    id: b\n    auto_terminate: [success]\n",
        4,
        "",
        "duplicate key `id` (first at line 2)",
    );
}

#[test]
fn unknown_node_types_list_the_known_ones() {
    let e = one_error(
        &format!("{HEAD}  - {{id: s, type: snik}}\n"),
        9,
        "nodes[2].type",
        "unknown node type `snik`",
    );
    assert!(e.message.contains("(did you mean `sink`?)"), "{e}");
    assert!(
        e.message.contains("known types: proc, route, sink, src"),
        "{e}"
    );
}

#[test]
fn settings_errors_are_located_at_their_key() {
    let text = "nodes:\n  - id: camera\n    type: src\n    auto_terminate: [success]\n  - id: g\n    type: proc\n    auto_terminate: [success, failure]\n    settings:\n      threshold: 0.5\n      bogus: 1\n";
    let e = one_error(text, 10, "nodes[1].settings.bogus", "unknown field `bogus`");
    assert_eq!(e.column, 7);
    let text = text
        .replace("threshold: 0.5", "threshold: 2")
        .replace("      bogus: 1\n", "");
    one_error(&text, 9, "nodes[1].settings.threshold", "must be in [0, 1]");
    // No settings at all: located at the node.
    let text = "nodes:\n  - {id: camera, type: src, auto_terminate: [success]}\n  - {id: g, type: proc, auto_terminate: [success, failure]}\n";
    one_error(text, 3, "nodes[1].settings", "missing field `threshold`");
}

#[test]
fn connection_ends_are_checked() {
    let tail = "connections:\n  - from: camera.success\n    to: grade\n";
    compile(&format!("{HEAD}{tail}")).expect("the base flow is valid");

    let e = one_error(
        &format!("{HEAD}{tail}  - from: grade.succes\n    to: grade\n    allow_cycle: true\n"),
        12,
        "connections[1].from",
        "node `grade` (type `proc`) has no relationship `succes`",
    );
    assert!(e.message.contains("(did you mean `success`?)"), "{e}");
    assert!(e.message.contains("it declares: success, failure"), "{e}");

    one_error(
        &format!("{HEAD}{tail}  - from: nowhere.success\n    to: grade\n"),
        12,
        "connections[1].from",
        "`from` names unknown node `nowhere`",
    );
    one_error(
        &format!("{HEAD}{tail}  - from: camera\n    to: grade\n"),
        12,
        "connections[1].from",
        "expected `node.relationship`",
    );
    one_error(
        &format!("{HEAD}{tail}  - from: grade.success\n    to: gradee\n"),
        13,
        "connections[1].to",
        "`to` names unknown node `gradee` (did you mean `grade`?)",
    );
    one_error(
        &format!("{HEAD}{tail}  - from: grade.success\n    to: camera\n"),
        13,
        "connections[1].to",
        "node `camera` is a source (type `src`) and takes no input",
    );
    one_error(
        &format!(
            "{HEAD}{tail}  - from: camera.success\n    to: grade\n    prioritizer: newest-first\n"
        ),
        12,
        "connections[1]",
        "duplicate connection `camera.success` -> `grade` (first at line 10)",
    );
}

#[test]
fn every_declared_relationship_is_connected_or_auto_terminated() {
    let text = "nodes:\n  - id: camera\n    type: src\n  - id: grade\n    type: proc\n    settings: {threshold: 0.5}\nconnections:\n  - {from: camera.success, to: grade}\n";
    let errors = compile_errors(text);
    assert_eq!(errors.len(), 2, "{errors:#?}");
    for (e, relationship) in errors.iter().zip(["success", "failure"]) {
        assert_eq!((e.line, e.path.as_str()), (4, "nodes[1]"), "{e}");
        let needle = format!("relationship `{relationship}` of node `grade` is neither connected");
        assert!(e.message.contains(&needle), "{e}");
    }
    // A typo in `from` is one mistake, not also an unconnected relationship.
    one_error(
        "nodes:\n  - {id: camera, type: src}\n  - {id: s, type: sink}\nconnections:\n  - {from: camera.sucess, to: s}\n",
        5,
        "connections[0].from",
        "no relationship `sucess` (did you mean `success`?)",
    );
    let errors = compile_errors(&HEAD.replace("[success, failure]", "[success, failur]"));
    let found: Vec<(usize, &str)> = errors.iter().map(|e| (e.line, e.path.as_str())).collect();
    assert_eq!(
        found,
        [(5, "nodes[1]"), (8, "nodes[1].auto_terminate[1]")],
        "{errors:#?}"
    );
    assert!(errors[0].message.contains("`failure`"), "{}", errors[0]);
    assert!(
        errors[1].message.contains("cannot auto-terminate `failur`"),
        "{}",
        errors[1]
    );
    assert!(
        errors[1].message.contains("(did you mean `failure`?)"),
        "{}",
        errors[1]
    );
}

#[test]
fn cycles_need_allow_cycle_and_are_reported_once_each() {
    let text = "\
nodes:
  - {id: camera, type: src}
  - {id: a, type: proc, settings: {threshold: 0.5}}
  - {id: b, type: proc, settings: {threshold: 0.5}}
  - {id: c, type: proc, settings: {threshold: 0.5}, auto_terminate: [failure]}
connections:
  - {from: camera.success, to: a}
  - {from: a.success, to: b}
  - {from: b.success, to: a}
  - {from: a.failure, to: c}
  - {from: c.success, to: a}
  - {from: b.failure, to: b}
";
    let errors = compile_errors(text);
    let found: Vec<(usize, &str)> = errors.iter().map(|e| (e.line, e.path.as_str())).collect();
    assert_eq!(
        found,
        [
            (9, "connections[2]"),
            (11, "connections[4]"),
            (12, "connections[5]")
        ],
        "{errors:#?}"
    );
    assert!(
        errors[0].message.contains("cycle a -> b -> a"),
        "{}",
        errors[0]
    );
    assert!(
        errors[1].message.contains("cycle a -> c -> a"),
        "{}",
        errors[1]
    );
    assert!(errors[2].message.contains("cycle b -> b"), "{}", errors[2]);

    let allowed = text
        .replace(
            "to: a}\n  - {from: a.failure",
            "to: a, allow_cycle: true}\n  - {from: a.failure",
        )
        .replace(
            "{from: c.success, to: a}",
            "{from: c.success, to: a, allow_cycle: true}",
        )
        .replace(
            "{from: b.failure, to: b}",
            "{from: b.failure, to: b, allow_cycle: true}",
        );
    let flow = compile(&allowed).expect("every cycle allowed");
    assert_eq!(flow.connections.len(), 6);
}

#[test]
fn remote_nodes_without_settings_take_relationships_from_the_flow() {
    let text = "\
nodes:
  - {id: camera, type: src, endpoint: http://cam:1}
  - {id: far, type: proc, endpoint: http://far:2, auto_terminate: [anything]}
connections:
  - {from: camera.success, to: far}
  - {from: far.odd, to: far, allow_cycle: true}
";
    let flow = compile(text).expect("valid");
    assert!(flow.nodes[0].is_source);
    assert_eq!(flow.nodes[0].relationships, ["success"]);
    assert_eq!(flow.nodes[1].relationships, ["odd", "anything"]);

    // With settings, they are validated and relationships are checked as usual.
    let text = text.replace(
        "endpoint: http://far:2,",
        "endpoint: http://far:2, settings: {threshold: 0.5},",
    );
    let errors = compile_errors(&text);
    let found: Vec<(usize, &str)> = errors.iter().map(|e| (e.line, e.path.as_str())).collect();
    assert_eq!(
        found,
        [
            (3, "nodes[1]"),
            (3, "nodes[1]"),
            (3, "nodes[1].auto_terminate[0]"),
            (6, "connections[1].from"),
        ],
        "{errors:#?}"
    );
}

#[test]
fn endpoint_durations_and_sizes_are_checked() {
    let errors = compile_errors(
        "\
nodes:
  - id: camera
    type: src
    endpoint: http://a:1
    endpoints: [ftp://b:2]
    retry: {initial_backoff: soon}
  - {id: s, type: sink}
connections:
  - from: camera.success
    to: s
    back_pressure: {objects: 0, bytes: 12 XB}
    expiration: 5
",
    );
    let found: Vec<(usize, &str)> = errors.iter().map(|e| (e.line, e.path.as_str())).collect();
    assert_eq!(
        found,
        [
            (5, "nodes[0].endpoints"),
            (5, "nodes[0].endpoints[0]"),
            (6, "nodes[0].retry.initial_backoff"),
            (11, "connections[0].back_pressure.objects"),
            (11, "connections[0].back_pressure.bytes"),
            (12, "connections[0].expiration"),
        ],
        "{errors:#?}"
    );
    assert!(errors[0].message.contains("not both"), "{}", errors[0]);
    assert!(
        errors[4].message.contains("invalid size `12 XB`"),
        "{}",
        errors[4]
    );
}

#[test]
fn errors_are_sorted_by_line() {
    let errors = compile_errors(
        "nodes:\n  - {id: b, type: nope}\n  - {id: a, type: src, extra: 1}\nconnections:\n  - {from: zz.x, to: b}\nbogus: 1\n",
    );
    let lines: Vec<usize> = errors.iter().map(|e| e.line).collect();
    assert_eq!(lines, [2, 3, 3, 5, 6], "{errors:#?}");
}

/// The example in `flows/README.md` must at least have a valid shape.
#[test]
fn the_readme_example_is_well_formed() {
    let readme = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../flows/README.md");
    let text = std::fs::read_to_string(&readme).expect("flows/README.md");
    let example = text
        .split("```yaml\n")
        .nth(1)
        .and_then(|rest| rest.split("```").next())
        .expect("a yaml block");
    let loaded = loupe_flow::yaml::load(example).expect("valid YAML");
    assert!(loaded.problems.is_empty(), "{:?}", loaded.problems);
    let (flow, problems) = loupe_flow::spec::read_flow(&loaded.root);
    assert!(problems.is_empty(), "{problems:#?}");
    assert!(flow.nodes.len() >= 4);
}
