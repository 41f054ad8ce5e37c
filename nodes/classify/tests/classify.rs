//! The `classify` node against real ONNX Runtime and the tiny fixed-weight models in
//! `models/tiny-classifier` (see `make_model.py` there for why the expected answers are what
//! they are).
//!
//! Tests that need ONNX Runtime print `SKIPPED: ...` and pass when the library is absent (with `CI=true` they
//! fail instead), so a
//! fresh checkout's `cargo test` passes; with the repository's `.venv` (or `ORT_DYLIB_PATH`)
//! they really run.

use std::collections::HashMap;
use std::io::Cursor;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use image::{DynamicImage, ImageFormat, Rgb, RgbImage};
use loupe_classify::{Classify, attr};
use loupe_sdk::onnx::{self, OnnxError};
use loupe_sdk::{BuildContext, ErrorKind, FlowFile, Node, factory::factory};
use serde_json::json;

const RED: Rgb<u8> = Rgb([255, 0, 0]);
const GREEN: Rgb<u8> = Rgb([0, 255, 0]);
const BLUE: Rgb<u8> = Rgb([0, 0, 255]);

fn models_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../models")
}

/// See [`onnx::available_for_tests`].
fn ort_available() -> bool {
    onnx::available_for_tests()
}

fn ctx() -> BuildContext {
    BuildContext {
        node_id: "classify-test".to_string(),
        base_dir: models_dir(),
        max_message_bytes: loupe_sdk::DEFAULT_MAX_MESSAGE_BYTES,
    }
}

/// Builds and starts a node the way the flow runner does: settings JSON through the factory.
async fn node(settings: serde_json::Value) -> Node {
    let node = factory::<Classify>()
        .build(&settings, &ctx())
        .await
        .unwrap_or_else(|e| panic!("build failed: {e}"));
    node.processor.start().await.expect("start (warm-up)");
    node
}

fn encode(image: RgbImage, format: ImageFormat) -> Vec<u8> {
    let mut bytes = Cursor::new(Vec::new());
    DynamicImage::ImageRgb8(image)
        .write_to(&mut bytes, format)
        .expect("encode");
    bytes.into_inner()
}

fn png(width: u32, height: u32, colour: Rgb<u8>) -> Vec<u8> {
    encode(
        RgbImage::from_pixel(width, height, colour),
        ImageFormat::Png,
    )
}

fn flow_file(content: Vec<u8>) -> FlowFile {
    FlowFile::create(
        content,
        HashMap::from([("filename".to_string(), "part.png".to_string())]),
    )
}

/// Processes one image and returns the single output, checking the pass-through guarantees.
async fn classify(node: &Node, content: Vec<u8>) -> FlowFile {
    let input = flow_file(content);
    let mut outputs = node
        .processor
        .process(input.clone())
        .await
        .unwrap_or_else(|e| panic!("process failed: {e}"));
    assert_eq!(outputs.len(), 1);
    let output = outputs.remove(0);
    assert_eq!(output.relationship, "success");
    let out = output.flow_file.expect("flow file");
    assert_eq!(
        out.content, input.content,
        "content must pass through unchanged"
    );
    assert_eq!(out.uuid, input.uuid);
    assert_eq!(out.attr("filename"), Some("part.png"));
    out
}

fn scores(out: &FlowFile) -> serde_json::Map<String, serde_json::Value> {
    let value: serde_json::Value =
        serde_json::from_str(out.attr(attr::SCORES).expect("scores")).expect("scores JSON");
    value.as_object().expect("scores object").clone()
}

#[tokio::test]
async fn nchw_model_labels_colours_as_the_card_says() {
    if !ort_available() {
        return;
    }
    // Relative to the flow directory (BuildContext::base_dir), like a flow file would say it.
    let node = node(json!({ "model": "tiny-classifier" })).await;

    for (colour, label) in [(RED, "burr"), (GREEN, "ok"), (BLUE, "loose_wire")] {
        // Exactly the input size, then larger and not square (exercises the resize).
        for (w, h) in [(32, 32), (640, 480)] {
            let out = classify(&node, png(w, h, colour)).await;
            assert_eq!(out.attr(attr::LABEL), Some(label), "{colour:?} {w}x{h}");
            // Channel means after mean/std 0.5 are +1 for the colour and -1 for the others,
            // so logits are (+4, -4, -4): p = 1 / (1 + 2 e^-8) = 0.99933. Ignoring mean/std
            // would give (4, 0, 0) -> 0.9647, so this also proves the card's normalisation.
            assert_eq!(out.attr(attr::SCORE), Some("0.9993"));
            assert_eq!(out.attr(attr::MODEL), Some("tiny-classifier@1.0.0"));
            assert_eq!(out.attr(attr::CONFIDENT), Some("true"));
            let scores = scores(&out);
            assert_eq!(scores.len(), 3);
            assert_eq!(scores[label], json!(0.9993));
            let total: f64 = scores.values().map(|v| v.as_f64().unwrap()).sum();
            assert!((total - 1.0).abs() < 1e-3, "{scores:?}");
        }
    }
}

#[tokio::test]
async fn mostly_one_colour_wins() {
    if !ort_available() {
        return;
    }
    let node = node(json!({ "model": "tiny-classifier" })).await;
    // A red part with a blue patch on 1/16 of it is still mostly red.
    let mut image = RgbImage::from_pixel(64, 64, RED);
    for y in 0..16 {
        for x in 0..16 {
            image.put_pixel(x, y, BLUE);
        }
    }
    let out = classify(&node, encode(image.clone(), ImageFormat::Png)).await;
    assert_eq!(out.attr(attr::LABEL), Some("burr"));
    // Same verdict through a lossy JPEG.
    let out = classify(&node, encode(image, ImageFormat::Jpeg)).await;
    assert_eq!(out.attr(attr::LABEL), Some("burr"));
}

#[tokio::test]
async fn nhwc_bgr_logits_variant_is_driven_by_its_card() {
    if !ort_available() {
        return;
    }
    // 48x48, NHWC, BGR, no mean/std, logits output: every card-controlled step differs from
    // the NCHW model. Reading the image as RGB here would turn red into `loose_wire`.
    let node =
        node(json!({ "model": "tiny-classifier/nhwc", "serving": { "intra_threads": 2 } })).await;
    for (colour, label) in [(RED, "burr"), (GREEN, "ok"), (BLUE, "loose_wire")] {
        for (w, h) in [(48, 48), (32, 32), (300, 200)] {
            let out = classify(&node, png(w, h, colour)).await;
            assert_eq!(out.attr(attr::LABEL), Some(label), "{colour:?} {w}x{h}");
            // Logits (4, 0, 0) softmaxed by the node: e^4 / (e^4 + 2) = 0.96466.
            assert_eq!(out.attr(attr::SCORE), Some("0.9647"));
            assert_eq!(out.attr(attr::MODEL), Some("tiny-classifier-nhwc@1.0.0"));
            // The card's threshold is 0.8.
            assert_eq!(out.attr(attr::CONFIDENT), Some("true"));
        }
        let out = classify(
            &node,
            encode(RgbImage::from_pixel(50, 50, colour), ImageFormat::Jpeg),
        )
        .await;
        assert_eq!(out.attr(attr::LABEL), Some(label), "{colour:?} jpeg");
    }
}

#[tokio::test]
async fn threshold_override_replaces_the_cards() {
    if !ort_available() {
        return;
    }
    let node = node(json!({ "model": "tiny-classifier/nhwc", "threshold_override": 0.99 })).await;
    let out = classify(&node, png(48, 48, GREEN)).await;
    assert_eq!(out.attr(attr::LABEL), Some("ok"));
    assert_eq!(out.attr(attr::CONFIDENT), Some("false"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_requests_with_batching_on_each_get_their_own_answer() {
    if !ort_available() {
        return;
    }
    let node =
        node(json!({ "model": "tiny-classifier", "serving": { "max_batch": 8, "max_batch_delay": "20ms" } }))
            .await;
    let tasks: Vec<_> = (0..32)
        .map(|i| {
            let node = node.clone();
            let (colour, label) = [(RED, "burr"), (GREEN, "ok"), (BLUE, "loose_wire")][i % 3];
            tokio::spawn(async move {
                let out = classify(&node, png(40 + i as u32, 40, colour)).await;
                assert_eq!(out.attr(attr::LABEL), Some(label));
            })
        })
        .collect();
    for task in tasks {
        task.await.expect("task");
    }
}

#[tokio::test]
async fn corrupt_image_is_invalid_input() {
    if !ort_available() {
        return;
    }
    let node = node(json!({ "model": "tiny-classifier" })).await;
    let mut truncated = png(32, 32, RED);
    truncated.truncate(40);
    for content in [b"not an image at all".to_vec(), truncated, Vec::new()] {
        let err = node
            .processor
            .process(flow_file(content))
            .await
            .expect_err("corrupt content must fail");
        assert_eq!(err.kind, ErrorKind::InvalidInput, "{err}");
        assert!(
            err.message.starts_with("cannot decode image: "),
            "{}",
            err.message
        );
    }
}

#[tokio::test]
async fn describe_declares_success_and_failure() {
    if !ort_available() {
        return;
    }
    let node = node(json!({ "model": "tiny-classifier" })).await;
    let description = node.processor.describe();
    assert_eq!(description.node_type, "classify");
    assert!(!description.is_source);
    let names: Vec<_> = description
        .relationships
        .iter()
        .map(|r| r.name.as_str())
        .collect();
    assert_eq!(names, ["success", "failure"]);
    let schema: serde_json::Value = serde_json::from_str(&description.settings_schema).unwrap();
    assert!(
        schema["properties"]["threshold_override"].is_object(),
        "{schema}"
    );
}

#[tokio::test]
async fn card_that_does_not_match_the_graph_fails_at_build() {
    if !ort_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let source = models_dir().join("tiny-classifier");
    std::fs::copy(source.join("model.onnx"), dir.path().join("model.onnx")).unwrap();
    let card = std::fs::read_to_string(source.join("model.yaml"))
        .unwrap()
        .replace("shape: [-1, 3, 32, 32]", "shape: [-1, 3, 64, 64]");
    std::fs::write(dir.path().join("model.yaml"), card).unwrap();

    let err = factory::<Classify>()
        .build(&json!({ "model": dir.path() }), &ctx())
        .await
        .expect_err("mismatched card must fail");
    let message = err.to_string();
    assert!(message.contains("does not match its card"), "{message}");
    assert!(message.contains("[-1, 3, 64, 64]"), "{message}");
}

// ---- No ONNX Runtime needed below: these run everywhere. ----

#[tokio::test]
async fn missing_model_directory_is_a_clear_build_error() {
    let err = factory::<Classify>()
        .build(&json!({ "model": "no-such-model" }), &ctx())
        .await
        .expect_err("missing model dir must fail");
    let message = err.to_string();
    assert!(message.contains("model directory"), "{message}");
    assert!(message.contains("not found"), "{message}");
    assert!(message.contains("no-such-model"), "{message}");
}

#[tokio::test]
async fn missing_card_is_a_clear_build_error() {
    let dir = tempfile::tempdir().unwrap();
    let err = factory::<Classify>()
        .build(&json!({ "model": dir.path() }), &ctx())
        .await
        .expect_err("empty model dir must fail");
    let message = err.to_string();
    assert!(message.contains("model.yaml"), "{message}");
}

#[test]
fn missing_library_is_a_typed_error_with_the_how_to() {
    let err = onnx::init_from("/nonexistent/onnxruntime/libonnxruntime.so.1.31.1")
        .expect_err("bogus path must fail");
    assert!(matches!(err, OnnxError::LibraryNotFound { .. }), "{err:?}");
    let message = err.to_string();
    assert!(message.contains("/nonexistent/onnxruntime/libonnxruntime.so.1.31.1"));
    assert!(message.contains("tests/run"), "{message}");
    assert!(
        message.contains("python3 -m venv .venv && .venv/bin/pip install onnxruntime==1.31.1"),
        "{message}"
    );
    assert!(message.contains("ORT_DYLIB_PATH"), "{message}");
}

#[test]
fn settings_are_checked_with_locations() {
    let f = factory::<Classify>();
    let relationships = f.check(&json!({ "model": "m" })).expect("valid settings");
    assert_eq!(relationships.len(), 2);
    let errors = f
        .check(&json!({ "model": "m", "threads": 2 }))
        .expect_err("unknown field");
    assert_eq!(errors[0].path, "threads");
    let errors = f
        .check(&json!({ "model": "m", "threshold_override": 1.5 }))
        .expect_err("threshold out of range");
    assert_eq!(errors[0].path, "threshold_override");
    let errors = f.check(&json!({})).expect_err("model is required");
    assert!(errors[0].to_string().contains("model"), "{:?}", errors);
}

/// Copies a model directory's two files into `to` (created), atomically per file: written
/// under a temporary name, then renamed, as a deployment script would.
fn install_model(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for name in ["model.onnx", "model.yaml"] {
        let tmp = to.join(format!(".{name}.tmp"));
        std::fs::copy(from.join(name), &tmp).unwrap();
        std::fs::rename(&tmp, to.join(name)).unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_changed_model_is_hot_reloaded_without_dropping_a_request() {
    if !ort_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let live = dir.path().join("live");
    install_model(&models_dir().join("tiny-classifier"), &live);
    let node = node(json!({ "model": live, "serving": { "reload_interval": "50ms" } })).await;

    // Two clients keep classifying while the model is replaced under them.
    let stop = Arc::new(AtomicBool::new(false));
    let clients: Vec<_> = (0..2)
        .map(|i| {
            let (node, stop) = (node.clone(), stop.clone());
            tokio::spawn(async move {
                let (colour, label) = [(RED, "burr"), (BLUE, "loose_wire")][i];
                let mut models = Vec::new();
                while !stop.load(Ordering::Relaxed) {
                    // `classify` fails the test on any error: no request may be dropped.
                    let out = classify(&node, png(64, 64, colour)).await;
                    assert_eq!(out.attr(attr::LABEL), Some(label));
                    models.push(out.attr(attr::MODEL).unwrap().to_string());
                }
                models
            })
        })
        .collect();

    tokio::time::sleep(Duration::from_millis(200)).await;
    // A broken model first: logged, and the running model keeps serving.
    std::fs::write(live.join("model.onnx"), b"not an onnx graph").unwrap();
    tokio::time::sleep(Duration::from_millis(400)).await;
    // Then a real one with another size, layout, colour order and output semantics.
    install_model(&models_dir().join("tiny-classifier/nhwc"), &live);
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let out = classify(&node, png(64, 64, GREEN)).await;
        assert_eq!(out.attr(attr::LABEL), Some("ok"));
        if out.attr(attr::MODEL) == Some("tiny-classifier-nhwc@1.0.0") {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the new model was never loaded"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    stop.store(true, Ordering::Relaxed);
    for client in clients {
        let models = client.await.expect("client");
        assert!(!models.is_empty());
        assert_eq!(models[0], "tiny-classifier@1.0.0");
        assert!(
            models
                .iter()
                .all(|m| m == "tiny-classifier@1.0.0" || m == "tiny-classifier-nhwc@1.0.0"),
            "{models:?}"
        );
    }
}

#[tokio::test]
async fn batching_and_reload_settings_are_checked() {
    let problems = <Classify as loupe_sdk::NodeKind>::validate(
        &serde_json::from_value(json!({
            "model": "m",
            "serving": { "max_batch": 0, "batch_queue": 0, "max_batch_delay": "5s" }
        }))
        .unwrap(),
    );
    let paths: Vec<&str> = problems.iter().map(|p| p.path.as_str()).collect();
    assert_eq!(
        paths,
        [
            "serving.max_batch",
            "serving.batch_queue",
            "serving.max_batch_delay"
        ]
    );
}

#[test]
fn eval_figures_match_hand_counts() {
    if !ort_available() {
        return;
    }
    // (colour -> what the tiny model says, true label, camera verdict, product)
    let rows = [
        (BLUE, "loose_wire", "loose_wire", "p1"),  // caught
        (GREEN, "loose_wire", "loose_wire", "p1"), // missed
        (RED, "burr", "loose_wire", "p2"),         // camera false alarm, cleared
        (BLUE, "burr", "loose_wire", "p2"),        // camera false alarm, not cleared
        (GREEN, "ok", "loose_wire", "p3"),         // camera false alarm, cleared
        (GREEN, "ok", "ok", "p3"),
    ];
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("images")).unwrap();
    let mut manifest = String::new();
    for (i, (colour, label, camera, product)) in rows.iter().enumerate() {
        let file = format!("images/{i}.png");
        std::fs::write(dir.path().join(&file), png(32, 32, *colour)).unwrap();
        manifest.push_str(&format!(
            "{}\n",
            json!({"file": file, "label": label, "camera_verdict": camera, "product_id": product})
        ));
    }
    std::fs::write(dir.path().join("manifest.jsonl"), manifest).unwrap();
    let classifier =
        loupe_classify::Classifier::load(models_dir().join("tiny-classifier"), 1).unwrap();
    let report = loupe_classify::eval::evaluate(&classifier, dir.path(), 4, 2).unwrap();
    assert_eq!(report.images, 6);
    assert_eq!(report.loose_wire_recall, Some(0.5));
    assert_eq!(report.loose_wire_missed, 1);
    assert_eq!(report.camera_false_alarms, 3);
    assert_eq!(report.camera_false_alarms_cleared, 2);
    assert_eq!(report.model_false_alarms, 1);
    // rows: true ok, burr, loose_wire; columns: predicted.
    assert_eq!(
        report.confusion,
        vec![vec![2, 0, 0], vec![0, 1, 1], vec![1, 0, 1]]
    );
    let products = report.products.as_ref().unwrap();
    assert_eq!((products.products, products.loose_wire_products), (3, 1));
    assert_eq!(products.loose_wire_recall, Some(1.0));
    // p2 and p3 were flagged by the camera without a loose wire; the model clears p3 only.
    assert_eq!(products.camera_false_alarms_cleared_rate, Some(0.5));
    let card = json!({"loose_wire_recall": 0.5, "accuracy": 0.9});
    let rows = report.comparisons(Some(&card));
    assert!(
        rows.iter()
            .find(|r| r.figure == "loose_wire_recall")
            .unwrap()
            .reproduced()
    );
    assert!(
        !rows
            .iter()
            .find(|r| r.figure == "accuracy")
            .unwrap()
            .reproduced()
    );
}
