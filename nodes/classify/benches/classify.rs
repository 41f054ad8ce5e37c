//! `classify` benchmarks with the shipped coil classifier on ONNX Runtime (one intra-op
//! thread): image -> tensor, inference at batch 1 and 8, and the whole node (decode, prepare,
//! dynamic batching, inference, attributes) at concurrency 1, 8 and 32 with batching off
//! (`serving.max_batch: 1`) and on (`serving.max_batch: 8`); and a camera-size JPEG (a
//! 2048 x 2048 coil photo) decoded in full vs at the model's size (DCT scaling,
//! `tensor::decode_for`), each then prepared for the model. Figures: `benches/README.md` at
//! the repository root.
//!
//! Run: `cargo bench -p loupe-classify --bench classify` (needs the ONNX Runtime library:
//! `tests/run` or `loupe setup` installs it into `.venv`).

use std::collections::HashMap;
use std::hint::black_box;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use loupe_classify::{Classifier, Classify};
use loupe_sdk::model::tensor;
use loupe_sdk::{BuildContext, FlowFile, factory::factory};

fn model_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../models/coil-classifier")
}

/// A coil photo with a burr, `size` pixels square, from the project's own generator.
fn coil_photo(size: u32) -> loupe_synth::CoilPhoto {
    let options = loupe_synth::CoilOptions {
        seed: 42,
        products: 8,
        burr: 1.0,
        loose_wire: 0.0,
        both: 0.0,
        size,
        ..Default::default()
    };
    loupe_synth::coil_photo(&options, 3, 2).expect("render")
}

/// A 256 x 256 coil photo with a burr, as PNG.
fn coil_png() -> Vec<u8> {
    coil_photo(256).png().expect("encode")
}

/// A 2048 x 2048 (4.2 MP) coil photo, JPEG at quality 90: camera size; or the JPEG file
/// `LOUPE_BENCH_CAMERA_JPEG` names (to compare with another decoder on the same file).
fn camera_jpeg() -> Vec<u8> {
    if let Ok(path) = std::env::var("LOUPE_BENCH_CAMERA_JPEG") {
        return std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    }
    let photo = coil_photo(2048);
    let image = image::RgbImage::from_raw(photo.size, photo.size, photo.rgb).expect("pixels");
    let mut out = std::io::Cursor::new(Vec::new());
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 90)
        .encode_image(&image)
        .expect("encode");
    out.into_inner()
}

fn camera_size(c: &mut Criterion, input: &loupe_sdk::model::input::InputSpec) {
    let jpeg = camera_jpeg();
    let limits = loupe_sdk::imaging::DecodeLimits::default();
    let mut group = c.benchmark_group("camera_jpeg_2048");
    group.measurement_time(Duration::from_secs(8));
    group.sample_size(20);
    group.bench_function("decode_full_then_prepare", |b| {
        b.iter(|| {
            let image = tensor::decode(black_box(&jpeg), &limits).unwrap();
            tensor::prepare_owned(image, input)
        })
    });
    group.bench_function("decode_for_model_then_prepare", |b| {
        b.iter(|| {
            let image = tensor::decode_for(black_box(&jpeg), &limits, input).unwrap();
            tensor::prepare_owned(image, input)
        })
    });
    group.finish();
}

fn benches(c: &mut Criterion) {
    if let Err(e) = loupe_sdk::onnx::init() {
        eprintln!("SKIPPED: {e}");
        return;
    }
    let png = coil_png();
    let classifier = Classifier::load(model_dir(), 1).expect("load the coil classifier");
    let input = classifier.card().input.clone();
    let limits = loupe_sdk::imaging::DecodeLimits::default();
    let image = tensor::decode(&png, &limits).expect("decode");
    let prepared = tensor::prepare(&image, &input);
    camera_size(c, &input);

    let mut group = c.benchmark_group("classify");
    group.measurement_time(Duration::from_secs(8));
    group.bench_function("decode_png_256", |b| {
        b.iter(|| tensor::decode(black_box(&png), &limits).unwrap())
    });
    group.bench_function("prepare_and_fill_256", |b| {
        b.iter(|| tensor::to_tensor(black_box(&image), &input))
    });
    for batch in [1usize, 8] {
        let images = vec![prepared.clone(); batch];
        group.throughput(Throughput::Elements(batch as u64));
        group.bench_with_input(
            BenchmarkId::new("inference_batch", batch),
            &images,
            |b, images| b.iter(|| classifier.classify_batch(black_box(images)).unwrap()),
        );
    }
    group.finish();

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let mut group = c.benchmark_group("classify_node");
    group.measurement_time(Duration::from_secs(10));
    group.sample_size(10);
    for max_batch in [1usize, 8] {
        let node = runtime.block_on(async {
            let ctx = BuildContext {
                node_id: "bench".into(),
                base_dir: model_dir(),
                max_message_bytes: loupe_sdk::DEFAULT_MAX_MESSAGE_BYTES,
            };
            let settings = serde_json::json!({
                "model": model_dir(),
                "serving": { "max_batch": max_batch, "max_batch_delay": "2ms", "reload_interval": "0s" },
            });
            let node = factory::<Classify>()
                .build(&settings, &ctx)
                .await
                .expect("build");
            node.processor.start().await.expect("warm-up");
            node
        });
        for concurrency in [1usize, 8, 32] {
            // Each iteration classifies `concurrency` images at once (one request per image).
            group.throughput(Throughput::Elements(concurrency as u64));
            group.bench_function(
                BenchmarkId::new(
                    format!("max_batch_{max_batch}"),
                    format!("concurrency_{concurrency}"),
                ),
                |b| {
                    b.iter_custom(|iterations| {
                        runtime.block_on(async {
                            let started = Instant::now();
                            for _ in 0..iterations {
                                let requests = (0..concurrency).map(|_| {
                                    let node = node.clone();
                                    let flow_file = FlowFile::create(png.clone(), HashMap::new());
                                    tokio::spawn(async move {
                                        node.processor.process(flow_file).await.expect("classify")
                                    })
                                });
                                for request in requests.collect::<Vec<_>>() {
                                    black_box(request.await.expect("task"));
                                }
                            }
                            started.elapsed()
                        })
                    })
                },
            );
        }
    }
    group.finish();
}

criterion_group!(classify, benches);
criterion_main!(classify);
