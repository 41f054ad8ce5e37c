//! The proof that serving matches training: `loupe eval --check` regenerates each shipped
//! model's held-out set from the seed and size its card records, runs the model through the
//! serving code path, and must reproduce every `metrics.test` figure of the card within 0.5
//! percentage points. For the coil classifier the shipped main flow also runs over the
//! held-out coils (`--flow flows/loose-wire-recheck.yaml`): the coil verdicts its report node
//! stores must reproduce the card's `metrics.test.coils.clean`, and stop every defective coil.
//!
//! Heavy (12 000 coil images and 600 sheets are generated and evaluated; a few minutes on two
//! cores), so it is one test per model, run by `tests/run` like every other.

mod common;

use std::path::Path;

use common::{loupe, onnxruntime_available, repo};

/// The card's `data.test` section.
fn held_out(model: &str) -> serde_json::Value {
    let text =
        std::fs::read_to_string(repo().join("models").join(model).join("model.yaml")).unwrap();
    let card: serde_json::Value = serde_norway::from_str(&text).unwrap();
    card["data"]["test"].clone()
}

fn synth(args: &[String], out: &Path) {
    let output = loupe().args(args).arg("--out").arg(out).output().unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Generates the card's held-out set (checking it is the one the card was measured on), then
/// runs `loupe eval --check` on it.
fn reproduce(model: &str, synth_args: Vec<String>, flow: Option<&str>) {
    let test = held_out(model);
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("held-out");
    synth(&synth_args, &data);
    let dataset: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(data.join("dataset.json")).unwrap()).unwrap();
    if let Some(counts) = test.get("counts") {
        assert_eq!(
            &dataset["counts"]["images"], counts,
            "the generated held-out set is not the one the {model} card was measured on"
        );
    }
    let report = dir.path().join("eval.json");
    let mut command = loupe();
    command
        .args(["eval", "--check", "--json"])
        .arg(&report)
        .arg(repo().join("models").join(model))
        .arg(&data);
    if let Some(flow) = flow {
        command.arg("--flow").arg(repo().join(flow));
    }
    let output = command.output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    println!("{stdout}");
    assert!(
        output.status.success(),
        "{model}: {}\n{stdout}",
        String::from_utf8_lossy(&output.stderr)
    );
    // Every figure was compared with the card, none silently skipped.
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    let json = &json["clean"];
    let rows = json["card_comparison"].as_array().unwrap();
    assert!(rows.len() >= 4, "{rows:?}");
    for row in rows {
        assert!(
            row["card"].is_number(),
            "{model}: the card lacks {}",
            row["figure"]
        );
    }
    if let Some(defective) = test.get("defective_images") {
        assert_eq!(&json["report"]["defective_images"], defective);
    }
    if flow.is_some() {
        let coils = &json["coils"];
        let products = test["products"].as_u64().unwrap();
        assert_eq!(coils["decided"].as_u64(), Some(products), "{coils}");
        assert!(coils["defective"].as_u64().unwrap() > 0, "{coils}");
        assert_eq!(
            coils["defective_stopped"], coils["defective"],
            "every defective coil stopped: {coils}"
        );
    }
}

#[test]
fn coil_classifier_card_figures_are_reproduced_by_the_serving_path() {
    if !onnxruntime_available() {
        return;
    }
    let test = held_out("coil-classifier");
    reproduce(
        "coil-classifier",
        vec![
            "synth".into(),
            "coils".into(),
            "--products".into(),
            test["products"]
                .as_u64()
                .expect("data.test.products")
                .to_string(),
            "--seed".into(),
            test["seed"].as_u64().expect("data.test.seed").to_string(),
        ],
        Some("flows/loose-wire-recheck.yaml"),
    );
}

#[test]
fn surface_segmenter_card_figures_are_reproduced_by_the_serving_path() {
    if !onnxruntime_available() {
        return;
    }
    let test = held_out("surface-segmenter");
    reproduce(
        "surface-segmenter",
        vec![
            "synth".into(),
            "surfaces".into(),
            "--images".into(),
            test["images"]
                .as_u64()
                .expect("data.test.images")
                .to_string(),
            "--seed".into(),
            test["seed"].as_u64().expect("data.test.seed").to_string(),
        ],
        None,
    );
}
