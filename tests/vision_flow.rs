//! The vision flows on `loupe synth` folders: capture -> preprocess -> classify (coils) and
//! capture -> preprocess -> segment (surfaces), each run in-process and with every node as its
//! own `loupe serve` process; both ways must record the same verdicts for the same images.
//! (`serving: {max_batch: 1}` here: scores are compared to 4 decimals, and a batch's
//! composition, which depends on timing, could move the last bits of a float.)

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use common::{Served, loupe, onnxruntime_available, read_report, repo, run_once};

fn synth(kind: &str, count: &str, out: &Path) {
    let flag = if kind == "coils" {
        "--products"
    } else {
        "--images"
    };
    let status = loupe()
        .args(["synth", kind, flag, count, "--seed", "11", "--out"])
        .arg(out)
        .output()
        .unwrap();
    assert!(
        status.status.success(),
        "{}",
        String::from_utf8_lossy(&status.stderr)
    );
}

/// Node settings of the coil flow, as YAML mappings, keyed by node id.
fn coil_nodes(dir: &Path) -> Vec<(&'static str, &'static str, String)> {
    vec![
        (
            "camera",
            "capture",
            format!(
                "{{directory: \"{}\", recursive: true, pattern: \"*.png\", after: delete, \
                 min_age: 0s, metadata: {{manifest: manifest.jsonl, attributes: {{line: L1}}}}}}",
                dir.join("inbox").display()
            ),
        ),
        ("preprocess", "preprocess", "{}".to_string()),
        (
            "classify",
            "classify",
            format!(
                "{{model: \"{}\", serving: {{max_batch: 1}}}}",
                repo().join("models/coil-classifier").display()
            ),
        ),
        (
            "records",
            "report",
            format!("{{path: \"{}\"}}", dir.join("report.jsonl").display()),
        ),
    ]
}

fn surface_nodes(dir: &Path) -> Vec<(&'static str, &'static str, String)> {
    vec![
        (
            "camera",
            "capture",
            format!(
                "{{directory: \"{}\", pattern: \"*.png\", after: delete, min_age: 0s}}",
                dir.join("inbox/images").display()
            ),
        ),
        ("preprocess", "preprocess", "{color: gray}".to_string()),
        (
            "segment",
            "segment",
            format!(
                "{{model: \"{}\", serving: {{max_batch: 1}}}}",
                repo().join("models/surface-segmenter").display()
            ),
        ),
        (
            "records",
            "report",
            format!("{{path: \"{}\"}}", dir.join("report.jsonl").display()),
        ),
    ]
}

/// Writes a linear flow `camera -> preprocess -> MODEL -> records` (every other relationship
/// to `records` too). With `served`, each node is started as `loupe serve` and the flow
/// names its endpoint instead of hosting it.
fn flow(
    dir: &Path,
    nodes: &[(&str, &str, String)],
    extra_relationships: &[&str],
    served: bool,
    processes: &mut Vec<Served>,
) -> PathBuf {
    // A record that cannot be written is logged (a DROP provenance event).
    let terminate = |id: &str| {
        if *id == *"records" {
            ", auto_terminate: [failure]"
        } else {
            ""
        }
    };
    let mut yaml = String::from("name: vision-test\nnodes:\n");
    for (id, node_type, settings) in nodes {
        if served {
            let config = dir.join(format!("{id}.yaml"));
            std::fs::write(&config, format!("settings: {settings}\n")).unwrap();
            let process = Served::start(node_type, &config, "127.0.0.1:0");
            yaml.push_str(&format!(
                "  - {{id: {id}, type: {node_type}, endpoint: \"{}\"{}}}\n",
                process.endpoint(),
                terminate(id)
            ));
            processes.push(process);
        } else {
            yaml.push_str(&format!(
                "  - {{id: {id}, type: {node_type}, settings: {settings}{}}}\n",
                terminate(id)
            ));
        }
    }
    let model = nodes[2].0;
    yaml.push_str(&format!(
        "connections:\n  - {{from: camera.success, to: preprocess}}\n  \
         - {{from: preprocess.success, to: {model}}}\n  - {{from: preprocess.failure, to: records}}\n  \
         - {{from: {model}.success, to: records}}\n  - {{from: {model}.failure, to: records}}\n"
    ));
    for relationship in extra_relationships {
        yaml.push_str(&format!(
            "  - {{from: {model}.{relationship}, to: records}}\n"
        ));
    }
    let path = dir.join("flow.yaml");
    std::fs::write(&path, yaml).unwrap();
    path
}

/// Records by (file name, segment.output) with the attributes under test.
fn verdicts(report: &Path, keys: &[&str]) -> BTreeMap<(String, String), Vec<String>> {
    read_report(report)
        .into_iter()
        .map(|record| {
            let attrs = &record["attributes"];
            let get = |k: &str| attrs[k].as_str().unwrap_or("").to_string();
            (
                (get("filename"), get("segment.output")),
                keys.iter().map(|k| get(k)).collect(),
            )
        })
        .collect()
}

#[test]
fn coil_flow_in_process_and_served_records_the_same_verdicts() {
    if !onnxruntime_available() {
        return;
    }
    let keys = [
        "classify.label",
        "classify.score",
        "classify.model",
        "product.id",
        "camera.verdict",
        "truth.label",
        "fragment.identifier",
        "fragment.index",
        "fragment.count",
        "line",
    ];
    let mut results = Vec::new();
    for served in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        synth("coils", "4", &dir.path().join("inbox"));
        let mut processes = Vec::new();
        let flow = flow(
            dir.path(),
            &coil_nodes(dir.path()),
            &[],
            served,
            &mut processes,
        );
        run_once(&flow);
        let report = dir.path().join("report.jsonl");
        assert_eq!(
            read_report(&report).len(),
            32,
            "4 products x 8 angles, none twice"
        );
        results.push(verdicts(&report, &keys));
    }
    let (local, remote) = (&results[0], &results[1]);
    assert_eq!(local.len(), 32, "4 products x 8 angles");
    assert_eq!(local, remote, "in-process and served verdicts differ");
    for ((file, _), v) in local {
        assert!(
            ["ok", "burr", "loose_wire"].contains(&v[0].as_str()),
            "{file}: {v:?}"
        );
        assert!(v[2].starts_with("coil-classifier@1."), "{v:?}");
        assert!(
            file.starts_with(&v[3]),
            "{file} belongs to product {}",
            v[3]
        );
        assert_eq!(
            (v[6].as_str(), v[8].as_str(), v[9].as_str()),
            (v[3].as_str(), "8", "L1")
        );
    }
}

#[test]
fn surface_flow_in_process_and_served_records_the_same_regions() {
    if !onnxruntime_available() {
        return;
    }
    let keys = [
        "segment.defect",
        "segment.score",
        "segment.classes",
        "segment.regions",
        "segment.model",
        "mime.type",
    ];
    let mut results = Vec::new();
    for served in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        synth("surfaces", "12", &dir.path().join("inbox"));
        let mut processes = Vec::new();
        let flow = flow(
            dir.path(),
            &surface_nodes(dir.path()),
            &["overlay", "mask"],
            served,
            &mut processes,
        );
        run_once(&flow);
        let report = dir.path().join("report.jsonl");
        assert_eq!(
            read_report(&report).len(),
            36,
            "12 sheets x 3 outputs, none twice"
        );
        results.push(verdicts(&report, &keys));
    }
    let (local, remote) = (&results[0], &results[1]);
    assert_eq!(local.len(), 36, "12 sheets, each with its overlay and mask");
    assert_eq!(local, remote, "in-process and served results differ");
    let sheets: Vec<_> = local
        .iter()
        .filter(|((_, output), _)| output.is_empty())
        .collect();
    assert_eq!(sheets.len(), 12);
    assert!(
        sheets.iter().any(|(_, v)| v[0] == "true"),
        "the generator puts defects on most sheets"
    );
    for ((file, output), v) in local {
        if !output.is_empty() {
            assert!(file.ends_with(&format!(".{output}.png")), "{file}");
            assert_eq!(v[5], "image/png");
        }
    }
}
