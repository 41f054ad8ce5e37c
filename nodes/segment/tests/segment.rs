//! The `segment` node and `loupe eval`'s segmentation figures against real ONNX Runtime and
//! the fixed-weight `models/tiny-segmenter` (pixels brighter than 0.75 are `bright`, darker
//! than 0.25 `dark`, the rest background — see its make_model.py), so every expected mask,
//! region and score is known by hand.
//!
//! Tests that need ONNX Runtime print `SKIPPED: ...` and pass when the library is absent (with `CI=true` they
//! fail instead).

use std::collections::HashMap;
use std::io::Cursor;
use std::path::{Path, PathBuf};

use image::{DynamicImage, GrayImage, ImageFormat, Luma};
use loupe_sdk::onnx;
use loupe_sdk::{BuildContext, FlowFile, Node, factory::factory};
use loupe_segment::{Segment, Segmenter, attr};
use serde_json::json;

fn models_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../models")
}

/// See [`onnx::available_for_tests`].
fn ort_available() -> bool {
    onnx::available_for_tests()
}

async fn node(settings: serde_json::Value) -> Node {
    let ctx = BuildContext {
        node_id: "segment-test".to_string(),
        base_dir: models_dir(),
        max_message_bytes: loupe_sdk::DEFAULT_MAX_MESSAGE_BYTES,
    };
    let node = factory::<Segment>()
        .build(&settings, &ctx)
        .await
        .unwrap_or_else(|e| panic!("build failed: {e}"));
    node.processor.start().await.expect("start (warm-up)");
    node
}

/// 64 x 64 mid-grey with a bright 16 x 16 square at (8, 8) and a dark 8 x 24 bar at (40, 32).
fn sheet() -> GrayImage {
    GrayImage::from_fn(64, 64, |x, y| {
        if (8..24).contains(&x) && (8..24).contains(&y) {
            Luma([250])
        } else if (40..48).contains(&x) && (32..56).contains(&y) {
            Luma([5])
        } else {
            Luma([128])
        }
    })
}

fn png(image: GrayImage) -> Vec<u8> {
    let mut bytes = Cursor::new(Vec::new());
    DynamicImage::ImageLuma8(image)
        .write_to(&mut bytes, ImageFormat::Png)
        .unwrap();
    bytes.into_inner()
}

fn flow_file(content: Vec<u8>) -> FlowFile {
    FlowFile::create(
        content,
        HashMap::from([("filename".to_string(), "sheet-7.png".to_string())]),
    )
}

#[tokio::test]
async fn regions_overlay_and_mask_of_a_known_image() {
    if !ort_available() {
        return;
    }
    let node = node(json!({"model": "tiny-segmenter", "min_region_px": 1})).await;
    let input = flow_file(png(sheet()));
    let uuid = input.uuid.clone();
    let outputs = node.processor.process(input).await.unwrap();
    let rels: Vec<&str> = outputs.iter().map(|o| o.relationship.as_str()).collect();
    assert_eq!(rels, ["success", "overlay", "mask"]);

    let original = outputs[0].flow_file.as_ref().unwrap();
    let a = |k: &str| original.attr(k).unwrap_or_default().to_string();
    assert_eq!(a(attr::DEFECT), "true");
    assert_eq!(a(attr::CLASSES), "bright,dark");
    assert_eq!(a(attr::MODEL), "tiny-segmenter@1.0.0");
    assert_eq!(a(attr::REGION_COUNT), "2");
    // 16 x 16 of 64 x 64 = 6.25 %; 8 x 24 = 4.6875 %.
    assert_eq!(a("segment.area_pct.bright"), "6.250");
    assert_eq!(a("segment.area_pct.dark"), "4.688");
    assert!(a(attr::SCORE).parse::<f32>().unwrap() > 0.99);
    let regions: serde_json::Value = serde_json::from_str(&a(attr::REGIONS)).unwrap();
    assert_eq!(
        regions,
        json!([
            {"class": "bright", "bbox": [8, 8, 24, 24], "area_px": 256, "area_pct": 6.25},
            {"class": "dark", "bbox": [40, 32, 48, 56], "area_px": 192, "area_pct": 4.688},
        ])
    );
    assert_eq!(original.content, png(sheet()), "content unchanged");

    let overlay = outputs[1].flow_file.as_ref().unwrap();
    assert_eq!(overlay.attr(attr::OUTPUT), Some("overlay"));
    assert_eq!(overlay.attr(attr::PARENT), Some(uuid.as_str()));
    assert_eq!(overlay.attr("filename"), Some("sheet-7.overlay.png"));
    assert_eq!(overlay.attr("mime.type"), Some("image/png"));
    let drawn = image::load_from_memory(&overlay.content).unwrap().to_rgb8();
    assert_eq!(drawn.dimensions(), (64, 64));
    assert_eq!(
        drawn.get_pixel(8, 8).0,
        loupe_segment::overlay::PALETTE[0],
        "bright contour"
    );
    assert_eq!(
        drawn.get_pixel(40, 40).0,
        loupe_segment::overlay::PALETTE[1],
        "dark contour"
    );
    assert_eq!(
        drawn.get_pixel(16, 16).0,
        [250, 250, 250],
        "inside untouched"
    );
    assert_eq!(
        drawn.get_pixel(60, 2).0,
        [128, 128, 128],
        "background untouched"
    );

    let mask = outputs[2].flow_file.as_ref().unwrap();
    assert_eq!(mask.attr("filename"), Some("sheet-7.mask.png"));
    let mask = image::load_from_memory(&mask.content).unwrap().to_luma8();
    assert_eq!(mask.dimensions(), (64, 64));
    assert_eq!(mask.get_pixel(10, 10).0[0], 1);
    assert_eq!(mask.get_pixel(44, 50).0[0], 2);
    assert_eq!(mask.get_pixel(30, 30).0[0], 0);
}

#[tokio::test]
async fn a_clean_image_has_no_regions_and_outputs_can_be_turned_off() {
    if !ort_available() {
        return;
    }
    let node = node(json!({"model": "tiny-segmenter", "overlay": false, "mask": false})).await;
    let rels: Vec<String> = node
        .processor
        .describe()
        .relationships
        .into_iter()
        .map(|r| r.name)
        .collect();
    assert_eq!(rels, ["success", "failure"]);
    let outputs = node
        .processor
        .process(flow_file(png(GrayImage::from_pixel(40, 30, Luma([128])))))
        .await
        .unwrap();
    assert_eq!(outputs.len(), 1);
    let ff = outputs[0].flow_file.as_ref().unwrap();
    assert_eq!(ff.attr(attr::DEFECT), Some("false"));
    assert_eq!(ff.attr(attr::CLASSES), Some(""));
    assert_eq!(ff.attr(attr::REGIONS), Some("[]"));
    assert_eq!(ff.attr("segment.area_pct.bright"), Some("0.000"));
}

#[tokio::test]
async fn undecodable_content_fails_with_a_reason_and_the_node_keeps_serving() {
    if !ort_available() {
        return;
    }
    let node = node(json!({"model": "tiny-segmenter"})).await;
    let err = node
        .processor
        .process(flow_file(b"\x89PNG\r\n\x1a\n truncated".to_vec()))
        .await
        .unwrap_err();
    assert_eq!(err.kind, loupe_sdk::ErrorKind::InvalidInput);
    assert!(
        err.message.contains("cannot decode image"),
        "{}",
        err.message
    );
    let ok = node
        .processor
        .process(flow_file(png(sheet())))
        .await
        .unwrap();
    assert_eq!(ok.len(), 3);
}

#[tokio::test]
async fn a_missing_model_directory_is_a_build_error_naming_it() {
    let ctx = BuildContext {
        node_id: "segment-test".to_string(),
        base_dir: models_dir(),
        max_message_bytes: loupe_sdk::DEFAULT_MAX_MESSAGE_BYTES,
    };
    let err = factory::<Segment>()
        .build(&json!({"model": "no-such-model"}), &ctx)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("no-such-model") && err.contains("not found"),
        "{err}"
    );
}

/// Writes a labelled folder: images and masks as `loupe synth surfaces` lays them out.
fn folder(dir: &Path, items: &[(GrayImage, GrayImage)]) {
    std::fs::create_dir_all(dir.join("images")).unwrap();
    std::fs::create_dir_all(dir.join("masks")).unwrap();
    let mut manifest = String::new();
    for (i, (image, mask)) in items.iter().enumerate() {
        std::fs::write(dir.join(format!("images/s{i}.png")), png(image.clone())).unwrap();
        std::fs::write(dir.join(format!("masks/s{i}.png")), png(mask.clone())).unwrap();
        manifest.push_str(&format!(
            "{}\n",
            json!({"file": format!("images/s{i}.png"), "mask": format!("masks/s{i}.png")})
        ));
    }
    std::fs::write(dir.join("manifest.jsonl"), manifest).unwrap();
}

#[test]
fn eval_figures_match_hand_counts() {
    if !ort_available() {
        return;
    }
    // The model's mask of `sheet()` at 32 x 32: bright square (4..12)^2, dark bar x 20..24,
    // y 16..28. Truth: the same, except the dark bar is labelled 2 pixels taller (y 14..28).
    let truth = |taller: bool| {
        GrayImage::from_fn(32, 32, |x, y| {
            if (4..12).contains(&x) && (4..12).contains(&y) {
                Luma([1])
            } else if (20..24).contains(&x) && ((if taller { 14 } else { 16 })..28).contains(&y) {
                Luma([2])
            } else {
                Luma([0])
            }
        })
    };
    let clean = GrayImage::from_pixel(64, 64, Luma([128]));
    let dir = tempfile::tempdir().unwrap();
    folder(
        dir.path(),
        &[
            (sheet(), truth(true)),
            (clean.clone(), GrayImage::new(32, 32)),
            (clean, GrayImage::new(32, 32)),
        ],
    );
    let segmenter = Segmenter::load(models_dir().join("tiny-segmenter"), 1).unwrap();
    let report = loupe_segment::eval::evaluate(&segmenter, dir.path(), 2, 2).unwrap();
    assert_eq!((report.images, report.defective_images), (3, 1));
    assert_eq!(report.dice["bright"], Some(1.0));
    // dark: TP 48, FN 8 -> Dice 96 / 104, IoU 48 / 56.
    assert_eq!(report.dice["dark"], Some(96.0 / 104.0));
    assert_eq!(report.iou["dark"], Some(48.0 / 56.0));
    assert_eq!(report.image_auroc, Some(1.0));
    assert_eq!(report.image_recall, Some(1.0));
    assert_eq!(report.image_false_positive_rate, Some(0.0));
    let text = report.text();
    assert!(text.contains("dark") && text.contains("0.9231"), "{text}");
}

#[test]
fn eval_refuses_a_folder_without_manifest() {
    if !ort_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let segmenter = Segmenter::load(models_dir().join("tiny-segmenter"), 1).unwrap();
    let err = loupe_segment::eval::evaluate(&segmenter, dir.path(), 2, 1)
        .unwrap_err()
        .to_string();
    assert!(err.contains("manifest.jsonl"), "{err}");
}
