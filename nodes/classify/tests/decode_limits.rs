//! Images over the decoding limits are refused with a reason, and the node keeps serving:
//! served over gRPC (local ONNX Runtime), with a tighter `serving.max_pixels`, and with the
//! inference on a remote Open Inference Protocol server (`backend: oip`). The hostile images
//! are made by the test (`loupe_sdk::imaging::testing::zero_png`), never downloaded.

mod common;

use std::sync::Arc;

use common::{MODEL, build, connect, flow_file, ort_available, png, serve_node, single};
use image::Rgb;
use loupe_classify::attr;
use loupe_sdk::imaging::testing::zero_png;
use loupe_sdk::{Invoker, Processor};
use serde_json::json;

const BLUE: Rgb<u8> = Rgb([0, 0, 255]);
const RED: Rgb<u8> = Rgb([255, 0, 0]);

const BOMB_MESSAGE: &str = "cannot decode image: PNG image of 16000x16000 = 256000000 pixels \
                            exceeds the limit of 50000000 pixels (setting `serving.max_pixels`)";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_decompression_bomb_is_a_failure_and_the_served_node_keeps_serving() {
    if !ort_available() {
        return;
    }
    let served = serve_node(build(json!({ "model": MODEL })).await, 8).await;
    let remote = connect(&served.addr).await;

    // 16000x16000 pixels in about 200 KB: 256 MB as 8-bit grey, 768 MB as RGB.
    let bomb = zero_png(16_000, 16_000);
    assert!(bomb.len() < 300_000, "{} bytes", bomb.len());
    let input = flow_file(bomb);
    let outputs = remote
        .process(input.clone())
        .await
        .expect("a refused image is an output, not an error");
    let out = single(outputs, "failure");
    assert_eq!(out.attr(loupe_sdk::attr::ERROR_KIND), Some("too_large"));
    assert_eq!(out.attr(loupe_sdk::attr::ERROR_MESSAGE), Some(BOMB_MESSAGE));
    assert_eq!(out.content, input.content, "content untouched");
    assert_eq!(out.uuid, input.uuid);

    // The next good image is classified.
    let out = single(
        remote.process(flow_file(png(64, 48, BLUE))).await.unwrap(),
        "success",
    );
    assert_eq!(out.attr(attr::LABEL), Some("loose_wire"));

    // Undecodable content: `invalid_input`, with the reason; then serving goes on.
    let out = single(
        remote
            .process(flow_file(b"<html>not an image</html>".to_vec()))
            .await
            .unwrap(),
        "failure",
    );
    assert_eq!(out.attr(loupe_sdk::attr::ERROR_KIND), Some("invalid_input"));
    assert_eq!(
        out.attr(loupe_sdk::attr::ERROR_MESSAGE),
        Some(
            "cannot decode image: unsupported image format: HTML document; expected JPEG, PNG, BMP or TIFF"
        )
    );
    let out = single(
        remote.process(flow_file(png(32, 32, RED))).await.unwrap(),
        "success",
    );
    assert_eq!(out.attr(attr::LABEL), Some("burr"));
    served.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serving_max_pixels_and_max_bytes_are_settings() {
    if !ort_available() {
        return;
    }
    let node = build(json!({
        "model": MODEL,
        "serving": { "max_pixels": 2000, "max_bytes": 4000 },
    }))
    .await;
    node.processor.start().await.unwrap();
    let invoker = Invoker::new(node.processor.clone(), "classify", 1 << 20);

    // 64x48 = 3072 pixels: over 2000.
    let out = single(
        invoker
            .invoke(flow_file(png(64, 48, BLUE)), None)
            .await
            .unwrap(),
        "failure",
    );
    assert_eq!(out.attr(loupe_sdk::attr::ERROR_KIND), Some("too_large"));
    assert_eq!(
        out.attr(loupe_sdk::attr::ERROR_MESSAGE),
        Some(
            "cannot decode image: PNG image of 64x48 = 3072 pixels exceeds the limit of 2000 \
             pixels (setting `serving.max_pixels`)"
        )
    );
    // A big encoded file (noise does not compress): over 4000 bytes.
    let mut noisy = image::RgbImage::new(40, 40);
    for (i, p) in noisy.pixels_mut().enumerate() {
        let v = (i as u32).wrapping_mul(2_654_435_761);
        *p = Rgb([v as u8, (v >> 8) as u8, (v >> 16) as u8]);
    }
    let mut encoded = std::io::Cursor::new(Vec::new());
    noisy
        .write_to(&mut encoded, image::ImageFormat::Png)
        .unwrap();
    let encoded = encoded.into_inner();
    assert!(encoded.len() > 4000, "{}", encoded.len());
    let out = single(
        invoker.invoke(flow_file(encoded), None).await.unwrap(),
        "failure",
    );
    let message = out.attr(loupe_sdk::attr::ERROR_MESSAGE).unwrap();
    assert!(
        message.ends_with("exceeds the limit of 4000 bytes (setting `serving.max_bytes`)"),
        "{message}"
    );
    // Within both: classified.
    let out = single(
        invoker
            .invoke(flow_file(png(40, 40, BLUE)), None)
            .await
            .unwrap(),
        "success",
    );
    assert_eq!(out.attr(attr::LABEL), Some("loose_wire"));

    // Zero is not a limit.
    let errors = loupe_sdk::factory::factory::<loupe_classify::Classify>()
        .check(&json!({ "model": MODEL, "serving": { "max_pixels": 0 } }))
        .unwrap_err();
    assert_eq!(
        errors[0].to_string(),
        "serving.max_pixels: must be at least 1"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_oip_backend_refuses_a_bomb_before_sending_anything() {
    if !ort_available() {
        return;
    }
    let served = serve_node(build(json!({ "model": MODEL })).await, 8).await;
    let node = build(json!({
        "model": MODEL,
        "backend": { "oip": { "endpoint": served.addr, "model": MODEL, "timeout": "10s" } },
    }))
    .await;
    node.processor.start().await.expect("remote model ready");
    let invoker = Invoker::new(Arc::clone(&node.processor), "classify-oip", 1 << 20);

    let out = single(
        invoker
            .invoke(flow_file(zero_png(16_000, 16_000)), None)
            .await
            .unwrap(),
        "failure",
    );
    assert_eq!(out.attr(loupe_sdk::attr::ERROR_KIND), Some("too_large"));
    assert_eq!(out.attr(loupe_sdk::attr::ERROR_MESSAGE), Some(BOMB_MESSAGE));
    let out = single(
        invoker
            .invoke(flow_file(png(64, 48, BLUE)), None)
            .await
            .unwrap(),
        "success",
    );
    assert_eq!(out.attr(attr::LABEL), Some("loose_wire"));
    served.stop().await;
}
