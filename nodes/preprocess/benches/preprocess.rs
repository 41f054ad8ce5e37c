//! `preprocess` benchmarks: decoding a 2048x2048 camera JPEG, and resizing it to 224x224 with
//! `fast_image_resize` (what the node uses) against `image::imageops` (what a plain `image`
//! user would write), plus the node's whole pipeline. Figures: `benches/README.md`.
//!
//! Run: `cargo bench -p loupe-preprocess --bench preprocess`.

use std::hint::black_box;
use std::io::Cursor;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use fast_image_resize as fir;
use image::imageops::FilterType;
use image::{DynamicImage, ImageFormat, Rgb, RgbImage};
use loupe_preprocess::{Filter, Pipeline, PreprocessSettings, Resize, ResizeMode, pipeline};
use loupe_sdk::imaging::{self, DecodeLimits};

const SIDE: u32 = 2048;
const OUT: u32 = 224;

/// A 2048x2048 JPEG (the `image` crate's default quality, 75) with gradients and
/// deterministic noise, so it compresses like a photograph rather than like a flat colour.
fn camera_jpeg() -> Vec<u8> {
    let mut state = 0x9E37_79B9_7F4A_7C15_u64;
    let image = RgbImage::from_fn(SIDE, SIDE, |x, y| {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        let noise = (state & 0x1F) as u32;
        Rgb([
            ((x * 255 / SIDE + noise) & 0xFF) as u8,
            ((y * 255 / SIDE + noise) & 0xFF) as u8,
            (((x ^ y) & 0x7F) + noise) as u8,
        ])
    });
    let mut out = Cursor::new(Vec::new());
    DynamicImage::ImageRgb8(image)
        .write_to(&mut out, ImageFormat::Jpeg)
        .expect("encode");
    out.into_inner()
}

fn fir_resize(image: &DynamicImage, filter: Filter) -> DynamicImage {
    let mut dst = DynamicImage::new(OUT, OUT, image.color());
    fir::Resizer::new()
        .resize(
            image,
            &mut dst,
            &fir::ResizeOptions::new().resize_alg(pipeline::algorithm(filter)),
        )
        .expect("resize");
    dst
}

fn benches(c: &mut Criterion) {
    let jpeg = camera_jpeg();
    let limits = DecodeLimits::default();
    let decoded = imaging::decode(&jpeg, &limits).expect("decode").image;
    let rgb = decoded.as_rgb8().expect("an RGB JPEG").clone();

    let mut group = c.benchmark_group("decode");
    group.bench_function("jpeg_2048x2048", |b| {
        b.iter(|| imaging::decode(black_box(&jpeg), &limits).expect("decode"))
    });
    group.finish();

    let mut group = c.benchmark_group("resize_2048_to_224");
    for (name, filter, image_filter) in [
        ("bilinear", Filter::Bilinear, FilterType::Triangle),
        ("catmull-rom", Filter::CatmullRom, FilterType::CatmullRom),
        ("lanczos3", Filter::Lanczos3, FilterType::Lanczos3),
    ] {
        group.bench_function(format!("fast_image_resize/{name}"), |b| {
            b.iter(|| fir_resize(black_box(&decoded), filter))
        });
        group.bench_function(format!("image_imageops/{name}"), |b| {
            b.iter(|| image::imageops::resize(black_box(&rgb), OUT, OUT, image_filter))
        });
    }
    group.bench_function("fast_image_resize/nearest", |b| {
        b.iter(|| fir_resize(black_box(&decoded), Filter::Nearest))
    });
    group.bench_function("image_imageops/nearest", |b| {
        b.iter(|| image::imageops::resize(black_box(&rgb), OUT, OUT, FilterType::Nearest))
    });
    group.finish();

    let mut group = c.benchmark_group("pipeline");
    let settings = PreprocessSettings {
        resize: Some(Resize {
            width: OUT,
            height: OUT,
            mode: ResizeMode::Exact,
            filter: Filter::Bilinear,
            pad: None,
        }),
        ..PreprocessSettings::default()
    };
    let pipeline = Pipeline::new(&settings);
    group.bench_function("jpeg_2048_to_png_224", |b| {
        b.iter(|| pipeline.run(black_box(&jpeg)).expect("pipeline"))
    });
    group.finish();
}

criterion_group! {
    name = preprocess;
    // Short runs: the reference machine is shared (see README.md).
    config = Criterion::default()
        .sample_size(20)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(4));
    targets = benches
}
criterion_main!(preprocess);
