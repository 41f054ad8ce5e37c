//! Image to tensor, exactly as the model card says.
//!
//! Pure functions with no runtime state, so `loupe eval` can reuse them and get bit-identical
//! inputs to what the `classify` node serves.
//!
//! The steps, in order:
//! 1. convert to 8-bit RGB (or luma for `GRAY`), dropping alpha;
//! 2. stretch to the card's input height x width with the card's resampling filter;
//! 3. per channel, in the card's colour order: `(pixel * scale - mean[c]) / std[c]`;
//! 4. lay out as NCHW or NHWC with a batch dimension of 1.

use image::imageops::FilterType;
use image::{DynamicImage, ImageBuffer, Pixel};
use ndarray::Array4;

use crate::card::{ColorOrder, InputSpec, Layout, ResizeMethod};

/// Decodes encoded image bytes (PNG and JPEG at least), guessing the format from the content.
///
/// The `image` crate's default limits apply (512 MiB of allocation), so a small file that
/// claims enormous dimensions is an error rather than an out-of-memory abort.
pub fn decode(bytes: &[u8]) -> Result<DynamicImage, image::ImageError> {
    image::ImageReader::new(std::io::Cursor::new(bytes))
        .with_guessed_format()
        .map_err(image::ImageError::IoError)?
        .decode()
}

/// One image as a `[1, ...]` tensor in the card's layout, ready for the model.
///
/// The card must have passed [`crate::card::ModelCard::problems`] (fixed height, width and a
/// channel count that matches the colour order).
pub fn to_tensor(image: &DynamicImage, input: &InputSpec) -> Array4<f32> {
    let (height, width) = (input.height(), input.width());
    let mut tensor = Array4::<f32>::zeros(match input.layout {
        Layout::Nchw => (1, input.color_order.channels(), height, width),
        Layout::Nhwc => (1, height, width, input.color_order.channels()),
    });
    match input.color_order {
        ColorOrder::Rgb => fill(
            &mut tensor,
            &resized(image.to_rgb8(), input),
            input,
            [0, 1, 2],
        ),
        ColorOrder::Bgr => fill(
            &mut tensor,
            &resized(image.to_rgb8(), input),
            input,
            [2, 1, 0],
        ),
        ColorOrder::Gray => fill(&mut tensor, &resized(image.to_luma8(), input), input, [0]),
    }
    tensor
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

/// Writes normalised pixels; `source[c]` is the pixel channel that becomes tensor channel `c`.
fn fill<P, const C: usize>(
    tensor: &mut Array4<f32>,
    image: &ImageBuffer<P, Vec<u8>>,
    input: &InputSpec,
    source: [usize; C],
) where
    P: Pixel<Subpixel = u8> + 'static,
{
    // Folded into one multiply-add per value: (p * scale - mean) / std = p * a + b.
    let a: [f32; C] = std::array::from_fn(|c| input.scale / input.std[c]);
    let b: [f32; C] = std::array::from_fn(|c| -input.mean[c] / input.std[c]);
    for (x, y, pixel) in image.enumerate_pixels() {
        let channels = pixel.channels();
        let (x, y) = (x as usize, y as usize);
        for c in 0..C {
            let value = f32::from(channels[source[c]]) * a[c] + b[c];
            match input.layout {
                Layout::Nchw => tensor[[0, c, y, x]] = value,
                Layout::Nhwc => tensor[[0, y, x, c]] = value,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::card::ModelCard;
    use image::{Rgb, RgbImage, Rgba, RgbaImage};

    fn card(shape: &str, layout: &str, order: &str, mean: &str, std: &str) -> InputSpec {
        ModelCard::from_yaml(&format!(
            "name: m\nversion: '1'\ninput:\n  name: x\n  shape: {shape}\n  layout: {layout}\n  \
             color_order: {order}\n  resize: nearest\n  scale: 1/255\n  mean: {mean}\n  \
             std: {std}\noutput: {{name: y, semantics: logits}}\nlabels: [a, b]\nthreshold: 0.5\n"
        ))
        .unwrap()
        .input
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
        let input = card("[-1, 3, 1, 2]", "NCHW", "RGB", "[0, 0, 0]", "[1, 1, 1]");
        let t = to_tensor(&two_pixels(), &input);
        assert_eq!(t.shape(), &[1, 3, 1, 2]);
        assert!(close(t[[0, 0, 0, 0]], 10.0 / 255.0));
        assert!(close(t[[0, 1, 0, 0]], 20.0 / 255.0));
        assert!(close(t[[0, 2, 0, 1]], 60.0 / 255.0));
    }

    #[test]
    fn nhwc_bgr_with_mean_and_std() {
        let input = card(
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
        let input = card("[-1, 1, 1, 1]", "NCHW", "GRAY", "[0]", "[1]");
        let white = DynamicImage::ImageRgba8(RgbaImage::from_pixel(1, 1, Rgba([255, 255, 255, 0])));
        let t = to_tensor(&white, &input);
        assert_eq!(t.shape(), &[1, 1, 1, 1]);
        assert!(close(t[[0, 0, 0, 0]], 1.0));
    }

    #[test]
    fn resizes_to_the_input_size() {
        let input = card("[-1, 3, 4, 6]", "NCHW", "RGB", "[0, 0, 0]", "[1, 1, 1]");
        let big = DynamicImage::ImageRgb8(RgbImage::from_pixel(100, 37, Rgb([255, 0, 0])));
        let t = to_tensor(&big, &input);
        assert_eq!(t.shape(), &[1, 3, 4, 6]);
        assert!(
            t.index_axis(ndarray::Axis(1), 0)
                .iter()
                .all(|v| close(*v, 1.0))
        );
        assert!(
            t.index_axis(ndarray::Axis(1), 1)
                .iter()
                .all(|v| close(*v, 0.0))
        );
    }

    #[test]
    fn decode_rejects_garbage() {
        assert!(decode(b"definitely not an image").is_err());
        assert!(decode(&[0x89, b'P', b'N', b'G', 0, 0]).is_err());
    }
}
