//! A decompression bomb sent to `segment` is a `failure` output with the reason, and the node
//! segments the next image. The bomb is made by the test, never downloaded.

use std::collections::HashMap;
use std::io::Cursor;
use std::path::PathBuf;

use image::{DynamicImage, GrayImage, ImageFormat, Luma};
use loupe_sdk::imaging::testing::zero_png;
use loupe_sdk::onnx;
use loupe_sdk::{BuildContext, FlowFile, Invoker, factory::factory};
use loupe_segment::Segment;
use serde_json::json;

/// See [`onnx::available_for_tests`].
fn ort_available() -> bool {
    onnx::available_for_tests()
}

fn flow_file(content: Vec<u8>) -> FlowFile {
    FlowFile::create(
        content,
        HashMap::from([("filename".to_string(), "sheet.png".to_string())]),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bomb_is_refused_and_the_next_image_is_segmented() {
    if !ort_available() {
        return;
    }
    let ctx = BuildContext {
        node_id: "segment-limits-test".to_string(),
        base_dir: PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../models"),
        max_message_bytes: loupe_sdk::DEFAULT_MAX_MESSAGE_BYTES,
    };
    let node = factory::<Segment>()
        .build(&json!({ "model": "tiny-segmenter" }), &ctx)
        .await
        .unwrap_or_else(|e| panic!("build failed: {e}"));
    node.processor.start().await.expect("start (warm-up)");
    let invoker = Invoker::new(node.processor.clone(), "segment", 1 << 20);

    let bomb = flow_file(zero_png(16_000, 16_000));
    let outputs = invoker.invoke(bomb.clone(), None).await.unwrap();
    assert_eq!(outputs.len(), 1);
    assert_eq!(outputs[0].relationship, "failure");
    let out = outputs[0].flow_file.as_ref().unwrap();
    assert_eq!(out.attr(loupe_sdk::attr::ERROR_KIND), Some("too_large"));
    assert_eq!(
        out.attr(loupe_sdk::attr::ERROR_MESSAGE),
        Some(
            "cannot decode image: PNG image of 16000x16000 = 256000000 pixels exceeds the \
             limit of 50000000 pixels (setting `serving.max_pixels`)"
        )
    );
    assert_eq!(out.content, bomb.content, "content untouched");

    let mut sheet = GrayImage::from_pixel(64, 64, Luma([128]));
    for y in 8..24 {
        for x in 8..24 {
            sheet.put_pixel(x, y, Luma([250]));
        }
    }
    let mut png = Cursor::new(Vec::new());
    DynamicImage::ImageLuma8(sheet)
        .write_to(&mut png, ImageFormat::Png)
        .unwrap();
    let outputs = invoker
        .invoke(flow_file(png.into_inner()), None)
        .await
        .unwrap();
    let relationships: Vec<&str> = outputs.iter().map(|o| o.relationship.as_str()).collect();
    assert_eq!(relationships, ["success", "overlay", "mask"]);
    let out = outputs[0].flow_file.as_ref().unwrap();
    assert_eq!(out.attr("segment.classes"), Some("bright"));
}
