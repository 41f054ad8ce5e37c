//! `report` against a real filesystem.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use loupe_report::Report;
use loupe_sdk::factory::factory;
use loupe_sdk::{BuildContext, FlowFile, Node, NodeError, Processor};
use serde_json::{Value, json};

fn ctx(base: &Path) -> BuildContext {
    BuildContext {
        node_id: "report".into(),
        base_dir: base.to_path_buf(),
        max_message_bytes: loupe_sdk::DEFAULT_MAX_MESSAGE_BYTES,
    }
}

async fn try_build(base: &Path, settings: Value) -> Result<Node, NodeError> {
    factory::<Report>().build(&settings, &ctx(base)).await
}

async fn build(base: &Path, settings: Value) -> Arc<dyn Processor> {
    try_build(base, settings).await.unwrap().processor
}

fn flow_file(attrs: &[(&str, &str)], content: &'static [u8]) -> FlowFile {
    let attrs: HashMap<String, String> = attrs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    FlowFile::create(content, attrs)
}

fn lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect()
}

#[tokio::test]
async fn one_line_per_flow_file_with_sorted_attributes() {
    let tmp = tempfile::tempdir().unwrap();
    // Relative to the flow's directory, parents created.
    let report = build(tmp.path(), json!({"path": "out/deep/report.jsonl"})).await;
    let path = tmp.path().join("out/deep/report.jsonl");

    let a = flow_file(&[("zeta", "1"), ("alpha", "2"), ("mid", "3")], b"12345");
    let b = flow_file(&[("filename", "b.jpg")], b"");
    assert!(report.process(a.clone()).await.unwrap().is_empty());
    assert!(report.process(b.clone()).await.unwrap().is_empty());

    let lines = lines(&path);
    assert_eq!(lines.len(), 2);
    assert!(
        lines[0].contains(r#""attributes":{"alpha":"2","mid":"3","zeta":"1"}"#),
        "{}",
        lines[0]
    );
    let first: Value = serde_json::from_str(&lines[0]).unwrap();
    assert_eq!(first["uuid"], a.uuid.as_str());
    assert_eq!(first["size"], 5);
    assert!(first["time_ms"].as_i64().unwrap() > 0);
    let second: Value = serde_json::from_str(&lines[1]).unwrap();
    assert_eq!(second["uuid"], b.uuid.as_str());
    assert_eq!(second["attributes"]["filename"], "b.jpg");

    let desc = report.describe();
    assert_eq!(desc.node_type, "report");
    assert!(!desc.is_source);
    let rels: Vec<_> = desc.relationships.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(rels, ["failure"]);
}

#[tokio::test]
async fn content_size_can_be_left_out() {
    let tmp = tempfile::tempdir().unwrap();
    let report = build(
        tmp.path(),
        json!({"path": "r.jsonl", "include_content_size": false}),
    )
    .await;
    report.process(flow_file(&[], b"xyz")).await.unwrap();
    let record: Value = serde_json::from_str(&lines(&tmp.path().join("r.jsonl"))[0]).unwrap();
    assert!(record.get("size").is_none(), "{record}");
}

#[tokio::test]
async fn the_same_uuid_is_recorded_once() {
    let tmp = tempfile::tempdir().unwrap();
    let report = build(tmp.path(), json!({"path": "r.jsonl"})).await;
    let ff = flow_file(&[("k", "v")], b"x");
    report.process(ff.clone()).await.unwrap();
    report.process(ff.clone()).await.unwrap();
    assert_eq!(lines(&tmp.path().join("r.jsonl")).len(), 1);
}

#[tokio::test]
async fn concurrent_writes_never_interleave_or_duplicate() {
    let tmp = tempfile::tempdir().unwrap();
    let report = build(tmp.path(), json!({"path": "r.jsonl"})).await;
    let flow_files: Vec<_> = (0..20)
        .map(|i| {
            let v = "v".repeat(i * 500);
            let attrs = HashMap::from([("big".to_string(), v)]);
            FlowFile::create(&b"data"[..], attrs)
        })
        .collect();
    // Every FlowFile delivered three times, all at once.
    let tasks: Vec<_> = flow_files
        .iter()
        .cycle()
        .take(60)
        .map(|ff| {
            let report = report.clone();
            let ff = ff.clone();
            tokio::spawn(async move { report.process(ff).await })
        })
        .collect();
    for t in tasks {
        t.await.unwrap().unwrap();
    }

    let lines = lines(&tmp.path().join("r.jsonl"));
    assert_eq!(lines.len(), 20);
    let mut uuids: Vec<String> = lines
        .iter()
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap()["uuid"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    uuids.sort();
    let mut expected: Vec<_> = flow_files.iter().map(|f| f.uuid.clone()).collect();
    expected.sort();
    assert_eq!(uuids, expected);
}

#[tokio::test]
async fn idempotency_survives_a_restart() {
    let tmp = tempfile::tempdir().unwrap();
    let settings = json!({"path": "r.jsonl"});
    let ff = flow_file(&[("k", "v")], b"x");

    let before = build(tmp.path(), settings.clone()).await;
    before.process(ff.clone()).await.unwrap();
    before.stop().await;
    drop(before);

    let after = build(tmp.path(), settings).await;
    after.process(ff.clone()).await.unwrap(); // re-delivered after the restart
    let other = flow_file(&[], b"y");
    after.process(other.clone()).await.unwrap();

    let lines = lines(&tmp.path().join("r.jsonl"));
    assert_eq!(lines.len(), 2);
    assert!(lines[0].contains(&ff.uuid));
    assert!(lines[1].contains(&other.uuid));
}

#[tokio::test]
async fn a_torn_last_line_is_not_glued_to_the_next_record() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("r.jsonl");
    let old = flow_file(&[], b"");
    std::fs::write(
        &path,
        format!(
            "{{\"uuid\":\"{}\",\"time_ms\":1,\"attributes\":{{}}}}\n{{\"uuid\":\"torn",
            old.uuid
        ),
    )
    .unwrap();

    let report = build(tmp.path(), json!({"path": "r.jsonl"})).await;
    report.process(old.clone()).await.unwrap(); // already recorded
    let new = flow_file(&[("a", "b")], b"");
    report.process(new.clone()).await.unwrap();

    let lines = lines(&path);
    assert_eq!(lines.len(), 3, "{lines:?}");
    assert_eq!(lines[1], r#"{"uuid":"torn"#);
    let record: Value = serde_json::from_str(&lines[2]).unwrap();
    assert_eq!(record["uuid"], new.uuid.as_str());
}

#[tokio::test]
async fn without_idempotency_every_delivery_is_written() {
    let tmp = tempfile::tempdir().unwrap();
    let report = build(tmp.path(), json!({"path": "r.jsonl", "idempotent": false})).await;
    let ff = flow_file(&[], b"");
    report.process(ff.clone()).await.unwrap();
    report.process(ff).await.unwrap();
    assert_eq!(lines(&tmp.path().join("r.jsonl")).len(), 2);
}

#[cfg(target_os = "linux")]
#[tokio::test]
async fn a_failed_write_is_a_process_error() {
    // /dev/full accepts the open and fails every write with ENOSPC.
    if !Path::new("/dev/full").exists() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let report = build(
        tmp.path(),
        json!({"path": "/dev/full", "idempotent": false}),
    )
    .await;
    let err = report.process(flow_file(&[], b"x")).await.unwrap_err();
    assert!(err.message.contains("cannot write"), "{err}");
    // A full disk passes: the flow retries the FlowFile rather than routing it to `failure`.
    assert_eq!(err.kind, loupe_sdk::ErrorKind::Unavailable, "{err}");
}

#[tokio::test]
async fn bad_settings_and_unopenable_paths_are_clear() {
    let tmp = tempfile::tempdir().unwrap();
    let problems = factory::<Report>().check(&json!({"path": ""})).unwrap_err();
    assert_eq!(problems[0].path, "path");
    let problems = factory::<Report>()
        .check(&json!({"path": "r.jsonl", "format": "csv"}))
        .unwrap_err();
    assert_eq!(problems[0].path, "format");

    // A directory where the file should be.
    std::fs::create_dir(tmp.path().join("dir")).unwrap();
    let err = try_build(tmp.path(), json!({"path": "dir"}))
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("cannot open report"), "{err}");
}
