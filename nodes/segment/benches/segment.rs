//! `segment` benchmarks with the shipped surface segmenter on ONNX Runtime (one intra-op
//! thread): inference at batch 1, and the whole node (decode, prepare, inference, regions,
//! contour overlay and mask PNGs) for one 256 x 256 sheet. Figures: `benches/README.md` at the
//! repository root.
//!
//! Run: `cargo bench -p loupe-segment --bench segment`.

use std::collections::HashMap;
use std::hint::black_box;
use std::path::PathBuf;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use loupe_sdk::model::tensor;
use loupe_sdk::{BuildContext, FlowFile, factory::factory};
use loupe_segment::{Segment, Segmenter};

fn model_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../models/surface-segmenter")
}

/// One 256 x 256 sheet with defects, as PNG, from the project's own generator.
fn sheet_png() -> Vec<u8> {
    let dir = tempfile::tempdir().expect("tempdir");
    let options = loupe_synth::SurfaceOptions {
        images: 4,
        seed: 5,
        ..Default::default()
    };
    loupe_synth::generate_surfaces(&options, dir.path()).expect("generate");
    let manifest = std::fs::read_to_string(dir.path().join("manifest.jsonl")).expect("manifest");
    let record = manifest
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).expect("json"))
        .find(|r| r["defect"] == true)
        .expect("a sheet with a defect");
    std::fs::read(dir.path().join(record["file"].as_str().expect("file"))).expect("read")
}

fn benches(c: &mut Criterion) {
    if let Err(e) = loupe_sdk::onnx::init() {
        eprintln!("SKIPPED: {e}");
        return;
    }
    if !model_dir().join("model.onnx").is_file() {
        eprintln!("SKIPPED: no model at {}", model_dir().display());
        return;
    }
    let png = sheet_png();
    let segmenter = Segmenter::load(model_dir(), 1).expect("load the segmenter");
    let image = tensor::decode(&png, &loupe_sdk::imaging::DecodeLimits::default()).expect("decode");
    let prepared = tensor::prepare(&image, &segmenter.card().input);

    let mut group = c.benchmark_group("segment");
    group.measurement_time(Duration::from_secs(10));
    group.sample_size(20);
    group.bench_function("inference_batch_1", |b| {
        b.iter(|| {
            segmenter
                .segment_batch(black_box(std::slice::from_ref(&prepared)))
                .unwrap()
        })
    });

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let node = runtime.block_on(async {
        let ctx = BuildContext {
            node_id: "bench".into(),
            base_dir: model_dir(),
            max_message_bytes: loupe_sdk::DEFAULT_MAX_MESSAGE_BYTES,
        };
        let settings =
            serde_json::json!({"model": model_dir(), "serving": {"reload_interval": "0s"}});
        let node = factory::<Segment>()
            .build(&settings, &ctx)
            .await
            .expect("build");
        node.processor.start().await.expect("warm-up");
        node
    });
    group.bench_function("node_process_with_overlay_and_mask", |b| {
        b.iter(|| {
            runtime.block_on(async {
                let flow_file = FlowFile::create(png.clone(), HashMap::new());
                black_box(node.processor.process(flow_file).await.expect("segment"))
            })
        })
    });
    group.finish();
}

criterion_group!(segment, benches);
criterion_main!(segment);
