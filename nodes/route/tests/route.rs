//! The `route` node through its factory, as the flow runner builds it.

use std::collections::HashMap;

use loupe_route::Route;
use loupe_sdk::{BuildContext, ErrorKind, FlowFile, Node, Output, factory::factory};
use serde_json::json;

async fn node(settings: serde_json::Value) -> Node {
    let ctx = BuildContext {
        node_id: "route-test".into(),
        base_dir: std::env::temp_dir(),
        max_message_bytes: loupe_sdk::DEFAULT_MAX_MESSAGE_BYTES,
    };
    factory::<Route>()
        .build(&settings, &ctx)
        .await
        .unwrap_or_else(|e| panic!("build: {e}"))
}

fn flow_file(attrs: &[(&str, &str)]) -> FlowFile {
    FlowFile::create(
        b"image".to_vec(),
        attrs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect::<HashMap<_, _>>(),
    )
}

fn rels(outputs: &[Output]) -> Vec<&str> {
    outputs.iter().map(|o| o.relationship.as_str()).collect()
}

fn recheck() -> serde_json::Value {
    json!({
        "rules": [
            {"name": "confirmed", "when": "classify.label == \"loose_wire\""},
            {"name": "cleared", "when": "camera.verdict == \"loose_wire\" && classify.label != \"loose_wire\""},
            {"name": "uncertain", "when": "double(classify.score) < 0.9"},
        ],
        "priority": "classify.label == \"loose_wire\" ? 1 : 5",
        "set": {"review": "double(classify.score) < 0.9 ? \"yes\" : \"no\""},
    })
}

#[tokio::test]
async fn first_match_wins_and_priority_and_attributes_are_set() {
    let node = node(recheck()).await;
    let described: Vec<String> = node
        .processor
        .describe()
        .relationships
        .into_iter()
        .map(|r| r.name)
        .collect();
    assert_eq!(
        described,
        ["confirmed", "cleared", "uncertain", "unmatched", "failure"]
    );

    let input = flow_file(&[
        ("classify.label", "loose_wire"),
        ("classify.score", "0.62"),
        ("camera.verdict", "loose_wire"),
    ]);
    let uuid = input.uuid.clone();
    let out = node.processor.process(input).await.unwrap();
    assert_eq!(rels(&out), ["confirmed"]);
    let ff = out[0].flow_file.as_ref().unwrap();
    assert_eq!(ff.uuid, uuid, "the FlowFile itself, not a copy");
    assert_eq!(ff.attr("route"), Some("confirmed"));
    assert_eq!(ff.attr("priority"), Some("1"));
    assert_eq!(ff.attr("review"), Some("yes"));

    let out = node
        .processor
        .process(flow_file(&[
            ("classify.label", "burr"),
            ("classify.score", "0.97"),
            ("camera.verdict", "loose_wire"),
        ]))
        .await
        .unwrap();
    assert_eq!(rels(&out), ["cleared"]);
    assert_eq!(
        out[0].flow_file.as_ref().unwrap().attr("priority"),
        Some("5")
    );

    let out = node
        .processor
        .process(flow_file(&[
            ("classify.label", "ok"),
            ("classify.score", "0.99"),
            ("camera.verdict", "ok"),
        ]))
        .await
        .unwrap();
    assert_eq!(rels(&out), ["unmatched"]);
    assert_eq!(
        out[0].flow_file.as_ref().unwrap().attr("route"),
        Some("unmatched")
    );
}

#[tokio::test]
async fn every_match_gets_a_copy_with_the_all_strategy() {
    let mut settings = recheck();
    settings["strategy"] = json!("all");
    let node = node(settings).await;
    let input = flow_file(&[
        ("classify.label", "burr"),
        ("classify.score", "0.5"),
        ("camera.verdict", "loose_wire"),
    ]);
    let uuid = input.uuid.clone();
    let out = node.processor.process(input).await.unwrap();
    assert_eq!(rels(&out), ["cleared", "uncertain"]);
    let (a, b) = (
        out[0].flow_file.as_ref().unwrap(),
        out[1].flow_file.as_ref().unwrap(),
    );
    assert_eq!(a.uuid, uuid);
    assert_ne!(b.uuid, uuid, "a copy is a FlowFile of its own");
    assert_eq!(
        (a.attr("route"), b.attr("route")),
        (Some("cleared"), Some("uncertain"))
    );
    assert_eq!(a.content, b.content);
}

#[tokio::test]
async fn an_evaluation_error_is_a_failure_with_the_reason() {
    let node = node(recheck()).await;
    let err = node
        .processor
        .process(flow_file(&[
            ("classify.label", "ok"),
            ("classify.score", "n/a"),
            ("camera.verdict", "ok"),
        ]))
        .await
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::InvalidInput);
    assert!(
        err.message.contains("double(classify.score)"),
        "{}",
        err.message
    );
    // A missing attribute is an error too, named in the message.
    let err = node.processor.process(flow_file(&[])).await.unwrap_err();
    assert!(err.message.contains("classify"), "{}", err.message);
}

#[test]
fn invalid_rules_are_settings_errors_with_paths() {
    let problems = factory::<Route>()
        .check(&json!({
            "rules": [
                {"name": "ok", "when": "classify.label == "},
                {"name": "ok", "when": "true"},
                {"name": "unmatched", "when": "true"},
                {"name": "bad name", "when": "true"},
            ],
            "priority": "1 +",
            "set": {"route": "\"x\""},
        }))
        .unwrap_err();
    let paths: Vec<&str> = problems.iter().map(|p| p.path.as_str()).collect();
    assert_eq!(
        paths,
        [
            "rules[0].when",
            "rules[1].name",
            "rules[2].name",
            "rules[3].name",
            "priority",
            "set.route"
        ]
    );
    assert!(
        problems[0].message.contains("CEL syntax error"),
        "{}",
        problems[0].message
    );
    let empty = factory::<Route>().check(&json!({})).unwrap_err();
    assert_eq!(empty[0].path, "rules");
}
