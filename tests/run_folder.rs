//! `loupe run --once` over a camera folder: every file exactly once, summary = report;
//! and a remote report node killed (SIGKILL) mid-run and started again loses nothing.

mod common;

use std::collections::HashSet;
use std::path::Path;
use std::time::Duration;

use common::{Served, fill_folder, loupe, read_report, run_once, wait_until};

fn write_flow(path: &Path, inbox: &Path, report_node: &str) {
    std::fs::write(
        path,
        format!(
            r#"
name: folder
nodes:
  - id: camera
    type: capture
    settings: {{ directory: "{}", min_age: 50ms, poll_interval: 20ms }}
  - id: records
    type: report
    concurrency: 4
{report_node}
connections:
  - from: camera.success
    to: records
    back_pressure: {{ objects: 100 }}
"#,
            inbox.display()
        ),
    )
    .unwrap();
}

#[test]
fn thousand_files_each_processed_exactly_once() {
    let dir = tempfile::tempdir().unwrap();
    let inbox = dir.path().join("inbox");
    fill_folder(&inbox, 1000);
    let report = dir.path().join("report.jsonl");
    let flow = dir.path().join("flow.yaml");
    write_flow(
        &flow,
        &inbox,
        &format!(
            "    auto_terminate: [failure]\n    settings: {{ path: \"{}\" }}",
            report.display()
        ),
    );
    let summary_path = dir.path().join("summary.json");
    let out = loupe()
        .args(["run", "--once", "--progress", "lines"])
        .arg(&flow)
        .arg("--summary-json")
        .arg(&summary_path)
        .arg("--provenance")
        .arg(dir.path().join("prov.jsonl"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let records = read_report(&report);
    assert_eq!(records.len(), 1000);
    let names = filenames(&records);
    assert_eq!(names.len(), 1000, "each file exactly once");
    assert_eq!(
        std::fs::read_dir(&inbox).unwrap().count(),
        0,
        "accepted files are deleted"
    );

    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&summary_path).unwrap()).unwrap();
    let node = |id: &str| {
        summary["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|n| n["id"] == id)
            .unwrap()
            .clone()
    };
    assert_eq!(node("camera")["received"], 1000);
    assert_eq!(node("camera")["out"]["success"], 1000);
    assert_eq!(node("records")["received"], 1000);
    assert_eq!(node("records")["failed"], 0);
    assert_eq!(summary["left_in_queues"], 0);
    assert_eq!(summary["provenance"]["RECEIVE"], 1000);
    assert!(summary["queues"][0]["peak_len"].as_u64().unwrap() <= 100);
    let provenance = std::fs::read_to_string(dir.path().join("prov.jsonl")).unwrap();
    assert_eq!(
        provenance
            .lines()
            .filter(|l| l.contains("\"RECEIVE\""))
            .count(),
        1000
    );
}

#[test]
fn killing_a_remote_node_mid_run_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let inbox = dir.path().join("inbox");
    fill_folder(&inbox, 1000);
    let report = dir.path().join("report.jsonl");
    let config = dir.path().join("report-node.yaml");
    // Both a JSON-lines file and the SQLite database: neither may lose or repeat a record.
    std::fs::write(
        &config,
        format!(
            "settings:\n  path: \"{}\"\n  database: \"sqlite:{}\"\n",
            report.display(),
            dir.path().join("report.db").display()
        ),
    )
    .unwrap();
    let mut node = Served::start("report", &config, "127.0.0.1:0");
    let addr = node.addr.clone();
    let flow = dir.path().join("flow.yaml");
    write_flow(
        &flow,
        &inbox,
        &format!(
            "    endpoint: {}\n    retry: {{ max_attempts: 200, initial_backoff: 20ms, max_backoff: 200ms }}",
            node.endpoint()
        ),
    );
    let run = loupe()
        .args(["run", "--once", "--progress", "off"])
        .arg(&flow)
        .spawn()
        .unwrap();

    // Crash the node once records are being written, then start it again on the same port.
    assert!(wait_until(Duration::from_secs(60), || read_report(&report)
        .len()
        >= 200));
    node.kill();
    let written_before_restart = read_report(&report).len();
    std::thread::sleep(Duration::from_millis(500));
    let _node = Served::start("report", &config, &addr);

    let out = run.wait_with_output().unwrap();
    assert!(out.status.success());
    let records = read_report(&report);
    let names = filenames(&records);
    assert_eq!(names.len(), 1000, "nothing lost");
    assert_eq!(records.len(), 1000, "no duplicates (idempotent by uuid)");
    assert!(written_before_restart < 1000, "the crash happened mid-run");
    let rows = tokio::runtime::Runtime::new().unwrap().block_on(async {
        let db = format!("sqlite:{}", dir.path().join("report.db").display());
        let store = loupe_store::Store::open(&db, dir.path(), "inspections")
            .await
            .unwrap();
        store.count().await.unwrap()
    });
    assert_eq!(rows, 1000, "the database has each FlowFile once");
}

#[test]
fn interrupt_drains_the_flow_and_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let inbox = dir.path().join("inbox");
    fill_folder(&inbox, 400);
    let report = dir.path().join("report.jsonl");
    let flow = dir.path().join("flow.yaml");
    // No --once: the run only ends on the interrupt.
    std::fs::write(
        &flow,
        format!(
            r#"
nodes:
  - id: camera
    type: capture
    settings: {{ directory: "{}", min_age: 50ms, poll_interval: 20ms }}
  - id: records
    type: report
    auto_terminate: [failure]
    settings: {{ path: "{}" }}
connections:
  - {{ from: camera.success, to: records, back_pressure: {{ objects: 10 }} }}
"#,
            inbox.display(),
            report.display()
        ),
    )
    .unwrap();
    let summary = dir.path().join("summary.json");
    let run = loupe()
        .args(["run", "--progress", "off", "--summary-json"])
        .arg(&summary)
        .arg(&flow)
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    assert!(wait_until(Duration::from_secs(60), || !read_report(
        &report
    )
    .is_empty()));
    let status = std::process::Command::new("kill")
        .args(["-INT", &run.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let out = run.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let recorded = read_report(&report).len();
    let left = std::fs::read_dir(&inbox).unwrap().count();
    assert_eq!(
        recorded + left,
        400,
        "every file is either recorded or still in the folder"
    );
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&summary).unwrap()).unwrap();
    assert_eq!(summary["left_in_queues"], 0, "the queues were drained");
}

#[test]
fn a_served_capture_node_hands_files_over_grpc_with_acknowledgements() {
    let dir = tempfile::tempdir().unwrap();
    let inbox = dir.path().join("inbox");
    fill_folder(&inbox, 300);
    let config = dir.path().join("capture.yaml");
    std::fs::write(
        &config,
        format!(
            "settings:\n  directory: \"{}\"\n  min_age: 50ms\n",
            inbox.display()
        ),
    )
    .unwrap();
    let node = Served::start("capture", &config, "127.0.0.1:0");
    let report = dir.path().join("report.jsonl");
    let flow = dir.path().join("flow.yaml");
    write_served_capture_flow(&flow, &node.endpoint(), &report);
    run_once(&flow);
    let records = read_report(&report);
    let names = filenames(&records);
    assert_eq!(names.len(), 300);
    assert_eq!(records.len(), 300);
    assert_eq!(
        std::fs::read_dir(&inbox).unwrap().count(),
        0,
        "the served source deleted each file after the runner acknowledged it"
    );
}

#[test]
fn killing_the_capture_node_mid_run_neither_loses_nor_duplicates() {
    let dir = tempfile::tempdir().unwrap();
    let inbox = dir.path().join("inbox");
    fill_folder(&inbox, 1000);
    let report = dir.path().join("report.jsonl");
    let config = dir.path().join("capture-node.yaml");
    std::fs::write(
        &config,
        format!(
            "settings:\n  directory: \"{}\"\n  min_age: 0s\n  poll_interval: 20ms\n",
            inbox.display()
        ),
    )
    .unwrap();
    let mut node = Served::start("capture", &config, "127.0.0.1:0");
    let addr = node.addr.clone();
    let flow = dir.path().join("flow.yaml");
    write_served_capture_flow(&flow, &node.endpoint(), &report);
    let run = loupe()
        .args(["run", "--once", "--progress", "off"])
        .arg(&flow)
        .spawn()
        .unwrap();

    // SIGKILL the capture node mid-batch (files offered, some acknowledged but not yet
    // deleted), then start it again on the same port: it offers what is left again.
    assert!(wait_until(Duration::from_secs(60), || read_report(&report)
        .len()
        >= 200));
    node.kill();
    let written_before_restart = read_report(&report).len();
    std::thread::sleep(Duration::from_millis(300));
    let _node = Served::start("capture", &config, &addr);

    let out = run.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let records = read_report(&report);
    let names = filenames(&records);
    assert_eq!(names.len(), 1000, "nothing lost");
    assert_eq!(
        records.len(),
        1000,
        "no double ingest (same file, same uuid)"
    );
    assert!(written_before_restart < 1000, "the crash happened mid-run");
    assert_eq!(
        std::fs::read_dir(&inbox).unwrap().count(),
        0,
        "every file settled"
    );
}

/// The distinct `filename`s of report records.
fn filenames(records: &[serde_json::Value]) -> HashSet<&str> {
    records
        .iter()
        .map(|r| r["attributes"]["filename"].as_str().unwrap())
        .collect()
}

/// A flow from a served capture node at `endpoint` (retried patiently, so a restarted node
/// is waited for) into an in-process JSON-lines report.
fn write_served_capture_flow(flow: &Path, endpoint: &str, report: &Path) {
    std::fs::write(
        flow,
        format!(
            r#"
nodes:
  - id: camera
    type: capture
    endpoint: "{endpoint}"
    retry: {{ max_attempts: 200, initial_backoff: 20ms, max_backoff: 200ms }}
  - id: records
    type: report
    settings: {{ path: "{}" }}
    auto_terminate: [failure]
connections:
  - {{ from: camera.success, to: records, back_pressure: {{ objects: 20 }} }}
"#,
            report.display()
        ),
    )
    .unwrap();
}

#[test]
fn attribute_limits_from_the_command_line_send_oversized_flowfiles_to_failure() {
    let dir = tempfile::tempdir().unwrap();
    let inbox = dir.path().join("inbox");
    fill_folder(&inbox, 5);
    let report = dir.path().join("report.jsonl");
    let flow = dir.path().join("flow.yaml");
    write_flow(
        &flow,
        &inbox,
        &format!(
            "    auto_terminate: [failure]\n    settings: {{ path: \"{}\" }}",
            report.display()
        ),
    );
    let summary_path = dir.path().join("summary.json");
    let out = loupe()
        .args([
            "run",
            "--once",
            "--progress",
            "off",
            "--max-attributes",
            "3",
        ])
        .arg(&flow)
        .arg("--summary-json")
        .arg(&summary_path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&summary_path).unwrap()).unwrap();
    let records = summary["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["id"] == "records")
        .unwrap();
    assert_eq!(
        records["failed"], 5,
        "a capture FlowFile carries more than 3 attributes"
    );
    assert!(read_report(&report).is_empty());
}
