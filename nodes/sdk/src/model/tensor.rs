//! Image to tensor, exactly as a model card's [`InputSpec`] says.
//!
//! Two steps, so a batch can be filled in place:
//! 1. [`prepare`] (per request, in parallel): convert to 8-bit RGB (or luma for `GRAY`),
//!    dropping alpha, and stretch to the card's input height x width with the card's
//!    resampling filter — the result is a small 8-bit image;
//! 2. [`fill`] (once per image, straight into its slot of the batch tensor): per channel, in
//!    the card's colour order, `(pixel * scale - mean[c]) / std[c]`, laid out as NCHW or NHWC.
//!
//! Pure functions with no runtime state: the nodes and `loupe eval` get bit-identical inputs.

use image::imageops::FilterType;
use image::{DynamicImage, GrayImage, ImageBuffer, Pixel, RgbImage};
use ndarray::{Array4, ArrayViewMut3, Axis};

use super::input::{ColorOrder, InputSpec, Layout, ResizeMethod};
use crate::imaging::{self, DecodeLimits, ImageError};

/// Decodes encoded image bytes with the SDK's one safe decoder, [`imaging::decode`]: JPEG,
/// PNG, BMP or TIFF recognised from the content, `limits` checked from the header before any
/// pixel is allocated (a small file claiming 16000x16000 pixels costs nothing), EXIF
/// orientation applied.
pub fn decode(bytes: &[u8], limits: &DecodeLimits) -> Result<DynamicImage, ImageError> {
    imaging::decode(bytes, limits).map(|decoded| decoded.image)
}

/// [`decode`] for a model's input only: a JPEG much larger than `input` is decoded with DCT
/// scaling to the smallest scale still at least the input size
/// ([`imaging::decode_at_least`]), then [`prepare`] stretches it as the card says. For
/// anything else the result is exactly [`decode`]'s.
pub fn decode_for(
    bytes: &[u8],
    limits: &DecodeLimits,
    input: &InputSpec,
) -> Result<DynamicImage, ImageError> {
    let side = |n: usize| u32::try_from(n).unwrap_or(u32::MAX);
    imaging::decode_at_least(bytes, limits, side(input.width()), side(input.height()))
        .map(|decoded| decoded.image)
}

/// An image converted to the model's channels and stretched to its input size; 8-bit.
#[derive(Debug, Clone, PartialEq)]
pub enum Prepared {
    /// Red, green, blue (for `RGB` and `BGR` models; the swap happens in [`fill`]).
    Rgb(RgbImage),
    /// One luma channel (for `GRAY` models).
    Gray(GrayImage),
}

impl Prepared {
    /// Width and height in pixels.
    pub fn dimensions(&self) -> (u32, u32) {
        match self {
            Prepared::Rgb(image) => image.dimensions(),
            Prepared::Gray(image) => image.dimensions(),
        }
    }
}

/// Converts and resizes an image for `input` (step 1).
pub fn prepare(image: &DynamicImage, input: &InputSpec) -> Prepared {
    match input.color_order {
        ColorOrder::Rgb | ColorOrder::Bgr => Prepared::Rgb(resized(image.to_rgb8(), input)),
        ColorOrder::Gray => Prepared::Gray(resized(image.to_luma8(), input)),
    }
}

/// [`prepare`] for an image no longer needed: the same result, without a copy of the full
/// image when it already has the model's channels (8-bit RGB, or luma for `GRAY`).
pub fn prepare_owned(image: DynamicImage, input: &InputSpec) -> Prepared {
    match input.color_order {
        ColorOrder::Rgb | ColorOrder::Bgr => Prepared::Rgb(resized(image.into_rgb8(), input)),
        ColorOrder::Gray => Prepared::Gray(resized(image.into_luma8(), input)),
    }
}

/// One image as a `[1, ...]` tensor in the card's layout: [`prepare`] then [`fill`].
///
/// The card must have passed [`InputSpec::problems`] (fixed height, width and a channel count
/// that matches the colour order).
pub fn to_tensor(image: &DynamicImage, input: &InputSpec) -> Array4<f32> {
    let mut tensor = Array4::<f32>::zeros(batch_dims(input, 1));
    fill(
        &prepare(image, input),
        input,
        tensor.index_axis_mut(Axis(0), 0),
    );
    tensor
}

/// The `[batch, ...]` dimensions of a batch tensor for `input`.
pub fn batch_dims(input: &InputSpec, batch: usize) -> (usize, usize, usize, usize) {
    let (c, h, w) = (input.color_order.channels(), input.height(), input.width());
    match input.layout {
        Layout::Nchw => (batch, c, h, w),
        Layout::Nhwc => (batch, h, w, c),
    }
}

/// Writes one prepared image, normalised, into its slot of a batch tensor (step 2): `slot`
/// is `tensor.index_axis_mut(Axis(0), i)`.
///
/// A prepared image of another size or channel kind than `input` (not made by [`prepare`] for
/// this card) leaves the slot's uncovered values unchanged; callers always pair them.
pub fn fill(prepared: &Prepared, input: &InputSpec, slot: ArrayViewMut3<f32>) {
    match (prepared, input.color_order) {
        (Prepared::Rgb(image), ColorOrder::Bgr) => fill_from(image, input, [2, 1, 0], slot),
        (Prepared::Rgb(image), _) => fill_from(image, input, [0, 1, 2], slot),
        (Prepared::Gray(image), _) => fill_from(image, input, [0], slot),
    }
}

/// Stretches to the input size; no copy through a filter when the size already matches, so a
/// correctly sized image is passed through exactly.
fn resized<P>(buffer: ImageBuffer<P, Vec<u8>>, input: &InputSpec) -> ImageBuffer<P, Vec<u8>>
where
    P: Pixel<Subpixel = u8> + 'static,
{
    let (width, height) = (input.width() as u32, input.height() as u32);
    if buffer.dimensions() == (width, height) {
        buffer
    } else {
        image::imageops::resize(&buffer, width, height, filter(input.resize))
    }
}

fn filter(method: ResizeMethod) -> FilterType {
    match method {
        ResizeMethod::Nearest => FilterType::Nearest,
        ResizeMethod::Bilinear => FilterType::Triangle,
        ResizeMethod::Bicubic => FilterType::CatmullRom,
        ResizeMethod::Lanczos3 => FilterType::Lanczos3,
    }
}

/// `source[c]` is the pixel channel that becomes tensor channel `c`.
fn fill_from<P, const C: usize>(
    image: &ImageBuffer<P, Vec<u8>>,
    input: &InputSpec,
    source: [usize; C],
    mut slot: ArrayViewMut3<f32>,
) where
    P: Pixel<Subpixel = u8> + 'static,
{
    // Folded into one multiply-add per value: (p * scale - mean) / std = p * a + b.
    let a: [f32; C] = std::array::from_fn(|c| input.scale / input.std[c]);
    let b: [f32; C] = std::array::from_fn(|c| -input.mean[c] / input.std[c]);
    let (width, height) = image.dimensions();
    let (width, height) = (width as usize, height as usize);
    let pixels = image.as_raw();
    let stride = P::CHANNEL_COUNT as usize;
    match (input.layout, slot.as_slice_mut()) {
        // The usual case, a slot of a standard-layout batch: straight slices, no index checks
        // per value.
        (Layout::Nchw, Some(out)) if out.len() == C * width * height => {
            let plane = width * height;
            for (i, pixel) in pixels.chunks_exact(stride).enumerate() {
                for c in 0..C {
                    out[c * plane + i] = f32::from(pixel[source[c]]) * a[c] + b[c];
                }
            }
        }
        (Layout::Nhwc, Some(out)) if out.len() == C * width * height => {
            for (values, pixel) in out.chunks_exact_mut(C).zip(pixels.chunks_exact(stride)) {
                for c in 0..C {
                    values[c] = f32::from(pixel[source[c]]) * a[c] + b[c];
                }
            }
        }
        _ => {
            for (i, pixel) in pixels.chunks_exact(stride).enumerate() {
                let (y, x) = (i / width, i % width);
                for c in 0..C {
                    let index = match input.layout {
                        Layout::Nchw => [c, y, x],
                        Layout::Nhwc => [y, x, c],
                    };
                    if let Some(value) = slot.get_mut(index) {
                        *value = f32::from(pixel[source[c]]) * a[c] + b[c];
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::{Rgb, Rgba, RgbaImage};

    fn spec(shape: &str, layout: &str, order: &str, mean: &str, std: &str) -> InputSpec {
        // JSON is YAML; the SDK parses cards' input sections with serde like any other.
        let spec: InputSpec = serde_json::from_str(&format!(
            r#"{{"name": "x", "shape": {shape}, "layout": "{layout}", "color_order": "{order}",
               "resize": "nearest", "scale": "1/255", "mean": {mean}, "std": {std}}}"#
        ))
        .unwrap();
        assert!(spec.problems().is_empty(), "{:?}", spec.problems());
        spec
    }

    /// A 2x1 image: left pixel (10, 20, 30), right pixel (40, 50, 60).
    fn two_pixels() -> DynamicImage {
        let mut img = RgbImage::new(2, 1);
        img.put_pixel(0, 0, Rgb([10, 20, 30]));
        img.put_pixel(1, 0, Rgb([40, 50, 60]));
        DynamicImage::ImageRgb8(img)
    }

    fn close(a: f32, b: f32) -> bool {
        (a - b).abs() < 1e-5
    }

    #[test]
    fn nchw_rgb_scale_only() {
        let input = spec("[-1, 3, 1, 2]", "NCHW", "RGB", "[0, 0, 0]", "[1, 1, 1]");
        let t = to_tensor(&two_pixels(), &input);
        assert_eq!(t.shape(), &[1, 3, 1, 2]);
        assert!(close(t[[0, 0, 0, 0]], 10.0 / 255.0));
        assert!(close(t[[0, 1, 0, 0]], 20.0 / 255.0));
        assert!(close(t[[0, 2, 0, 1]], 60.0 / 255.0));
    }

    #[test]
    fn nhwc_bgr_with_mean_and_std() {
        let input = spec(
            "[1, 1, 2, 3]",
            "NHWC",
            "BGR",
            "[0.1, 0.2, 0.3]",
            "[0.5, 0.25, 2]",
        );
        let t = to_tensor(&two_pixels(), &input);
        assert_eq!(t.shape(), &[1, 1, 2, 3]);
        // Channel 0 is blue in BGR, normalised with mean[0]/std[0].
        assert!(close(t[[0, 0, 0, 0]], (30.0 / 255.0 - 0.1) / 0.5));
        assert!(close(t[[0, 0, 0, 1]], (20.0 / 255.0 - 0.2) / 0.25));
        assert!(close(t[[0, 0, 0, 2]], (10.0 / 255.0 - 0.3) / 2.0));
        assert!(close(t[[0, 0, 1, 0]], (60.0 / 255.0 - 0.1) / 0.5));
    }

    #[test]
    fn gray_and_alpha_are_converted() {
        let input = spec("[-1, 1, 1, 1]", "NCHW", "GRAY", "[0]", "[1]");
        let white = DynamicImage::ImageRgba8(RgbaImage::from_pixel(1, 1, Rgba([255, 255, 255, 0])));
        let t = to_tensor(&white, &input);
        assert_eq!(t.shape(), &[1, 1, 1, 1]);
        assert!(close(t[[0, 0, 0, 0]], 1.0));
    }

    #[test]
    fn resizes_to_the_input_size() {
        let input = spec("[-1, 3, 4, 6]", "NCHW", "RGB", "[0, 0, 0]", "[1, 1, 1]");
        let big = DynamicImage::ImageRgb8(RgbImage::from_pixel(100, 37, Rgb([255, 0, 0])));
        let t = to_tensor(&big, &input);
        assert_eq!(t.shape(), &[1, 3, 4, 6]);
        assert!(t.index_axis(Axis(1), 0).iter().all(|v| close(*v, 1.0)));
        assert!(t.index_axis(Axis(1), 1).iter().all(|v| close(*v, 0.0)));
    }

    #[test]
    fn batch_slots_are_filled_in_place_and_independently() {
        let input = spec("[-1, 3, 1, 2]", "NCHW", "RGB", "[0, 0, 0]", "[1, 1, 1]");
        let mut batch = Array4::<f32>::from_elem(batch_dims(&input, 3), -7.0);
        let prepared = prepare(&two_pixels(), &input);
        fill(&prepared, &input, batch.index_axis_mut(Axis(0), 1));
        let single = to_tensor(&two_pixels(), &input);
        assert_eq!(batch.index_axis(Axis(0), 1), single.index_axis(Axis(0), 0));
        assert!(batch.index_axis(Axis(0), 0).iter().all(|v| *v == -7.0));
        assert!(batch.index_axis(Axis(0), 2).iter().all(|v| *v == -7.0));
    }

    #[test]
    fn decode_rejects_garbage_and_bombs() {
        let limits = DecodeLimits::default();
        assert!(matches!(
            decode(b"definitely not an image", &limits),
            Err(ImageError::UnsupportedFormat { .. })
        ));
        assert!(decode(&[0x89, b'P', b'N', b'G', 0, 0], &limits).is_err());
        // A 16000x16000 PNG header: refused from the header, before any pixel is allocated.
        let bomb = imaging::testing::zero_png(16_000, 16_000);
        let e = decode(&bomb, &limits).unwrap_err();
        assert!(matches!(e, ImageError::TooManyPixels { .. }), "{e}");
        assert_eq!(e.kind(), crate::ErrorKind::TooLarge);
    }

    #[test]
    fn prepare_owned_is_prepare() {
        for order in ["RGB", "GRAY"] {
            let channels = if order == "RGB" { 3 } else { 1 };
            let input = spec(
                &format!("[-1, {channels}, 4, 6]"),
                "NCHW",
                order,
                if order == "RGB" { "[0, 0, 0]" } else { "[0]" },
                if order == "RGB" { "[1, 1, 1]" } else { "[1]" },
            );
            for image in [
                two_pixels(),
                DynamicImage::ImageRgba8(RgbaImage::from_pixel(9, 5, Rgba([1, 2, 3, 4]))),
                DynamicImage::ImageLuma8(image::GrayImage::from_pixel(6, 4, image::Luma([77]))),
            ] {
                assert_eq!(
                    prepare_owned(image.clone(), &input),
                    prepare(&image, &input)
                );
            }
        }
    }
}
