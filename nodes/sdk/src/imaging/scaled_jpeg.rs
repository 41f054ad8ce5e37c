//! JPEG decoding at a reduced scale (DCT scaling), for [`super::decode_at_least`].
//!
//! A JPEG stores 8 x 8 blocks of DCT coefficients; decoding at 1/2, 1/4 or 1/8 uses only the
//! low-frequency coefficients of each block (the `jpeg-decoder` crate's `scale`), which skips
//! most of the inverse-DCT and colour-conversion work and allocates only the scaled image.
//! It is what Pillow's `draft` and libjpeg's `scale_num/scale_denom` do.

use std::io::Cursor;

use image::metadata::Orientation;
use image::{DynamicImage, GrayImage, RgbImage};
use jpeg_decoder::PixelFormat;

use super::{DecodeLimits, Decoded, Format, check_size};

/// The denominators tried, largest reduction first.
const SCALES: [u32; 3] = [8, 4, 2];

/// Decodes `bytes` (a complete JPEG, already checked by the caller) at the smallest DCT scale
/// whose upright size is at least `min_width` x `min_height`.
///
/// `None` leaves the file to the full decoder, which then accepts or refuses it exactly as
/// [`super::decode`] does: when no reduced scale fits, for pixel formats it handles (16-bit
/// grey, CMYK), for a size over the limits, and when this decoder finds the data damaged or
/// uses a feature it lacks.
pub(super) fn decode(
    bytes: &[u8],
    limits: &DecodeLimits,
    min_width: u32,
    min_height: u32,
) -> Option<Decoded> {
    let mut decoder = jpeg_decoder::Decoder::new(Cursor::new(bytes));
    decoder.read_info().ok()?;
    let info = decoder.info()?;
    let (width, height) = (u32::from(info.width), u32::from(info.height));
    check_size(Format::Jpeg, width, height, limits).ok()?;
    let channels: u64 = match info.pixel_format {
        PixelFormat::L8 => 1,
        PixelFormat::RGB24 => 3,
        PixelFormat::L16 | PixelFormat::CMYK32 => return None,
    };
    // The same memory limit as a full decode: what a full decode would refuse is left to it,
    // so both paths accept the same files.
    if u64::from(width) * u64::from(height) * channels > limits.max_alloc {
        return None;
    }
    // Unreadable EXIF is not a reason to refuse the pixels.
    let orientation = decoder
        .exif_data()
        .and_then(Orientation::from_exif_chunk)
        .unwrap_or(Orientation::NoTransforms);
    let (need_width, need_height) = if swaps_axes(orientation) {
        (min_height, min_width)
    } else {
        (min_width, min_height)
    };
    let denominator = SCALES
        .into_iter()
        .find(|&d| width.div_ceil(d) >= need_width && height.div_ceil(d) >= need_height)?;
    // Asking for exactly the size at 1/d makes the decoder choose 1/d.
    let requested = |side: u32| u16::try_from(side.div_ceil(denominator)).unwrap_or(u16::MAX);
    let (scaled_width, scaled_height) = decoder.scale(requested(width), requested(height)).ok()?;
    let pixels = decoder.decode().ok()?;
    let (w, h) = (u32::from(scaled_width), u32::from(scaled_height));
    let image = match info.pixel_format {
        PixelFormat::L8 => GrayImage::from_raw(w, h, pixels).map(DynamicImage::ImageLuma8),
        _ => RgbImage::from_raw(w, h, pixels).map(DynamicImage::ImageRgb8),
    };
    let mut image = image?;
    image.apply_orientation(orientation);
    Some(Decoded {
        image,
        format: Format::Jpeg,
        stored_width: width,
        stored_height: height,
        orientation,
    })
}

/// Whether applying `orientation` turns the image a quarter turn (width and height swap).
fn swaps_axes(orientation: Orientation) -> bool {
    matches!(
        orientation,
        Orientation::Rotate90
            | Orientation::Rotate270
            | Orientation::Rotate90FlipH
            | Orientation::Rotate270FlipH
    )
}

#[cfg(test)]
mod tests {
    use std::io::Cursor;

    use image::{DynamicImage, GenericImageView, ImageFormat, RgbImage};

    use super::super::testing::with_exif_orientation;
    use super::super::{DecodeLimits, Format, decode, decode_at_least};

    /// A smooth colour photo (gradients and a disc), JPEG at quality 90.
    fn photo(width: u32, height: u32) -> (DynamicImage, Vec<u8>) {
        let image = DynamicImage::ImageRgb8(RgbImage::from_fn(width, height, |x, y| {
            let (fx, fy) = (x as f32 / width as f32, y as f32 / height as f32);
            let disc = ((fx - 0.5).powi(2) + (fy - 0.5).powi(2)).sqrt() < 0.3;
            image::Rgb([
                (fx * 255.0) as u8,
                (fy * 255.0) as u8,
                if disc { 220 } else { 40 },
            ])
        }));
        let mut out = Cursor::new(Vec::new());
        image.write_to(&mut out, ImageFormat::Jpeg).unwrap();
        (image, out.into_inner())
    }

    fn mean_abs_difference(a: &DynamicImage, b: &DynamicImage) -> f64 {
        let (a, b) = (a.to_rgb8(), b.to_rgb8());
        assert_eq!(a.dimensions(), b.dimensions());
        let sum: u64 = a
            .as_raw()
            .iter()
            .zip(b.as_raw())
            .map(|(x, y)| u64::from(x.abs_diff(*y)))
            .sum();
        sum as f64 / a.as_raw().len() as f64
    }

    #[test]
    fn a_camera_size_jpeg_decodes_at_the_smallest_scale_still_large_enough() {
        let (_, jpeg) = photo(2048, 1536);
        let limits = DecodeLimits::default();
        // 1/8 would be 256 x 192, short of 256 in height: 1/4.
        let d = decode_at_least(&jpeg, &limits, 256, 256).unwrap();
        assert_eq!((d.width(), d.height()), (512, 384));
        assert_eq!(
            (d.stored_width, d.stored_height, d.format),
            (2048, 1536, Format::Jpeg)
        );
        let d = decode_at_least(&jpeg, &limits, 256, 192).unwrap();
        assert_eq!((d.width(), d.height()), (256, 192));
        // Odd sizes round up, as the decoder does.
        let (_, odd) = photo(2449, 2047);
        let d = decode_at_least(&odd, &limits, 256, 256).unwrap();
        assert_eq!((d.width(), d.height()), (307, 256));
    }

    #[test]
    fn the_scaled_pixels_are_the_full_decode_shrunk() {
        let (_, jpeg) = photo(1024, 1024);
        let limits = DecodeLimits::default();
        let scaled = decode_at_least(&jpeg, &limits, 128, 128).unwrap().image;
        assert_eq!(scaled.dimensions(), (128, 128));
        let full = decode(&jpeg, &limits).unwrap().image;
        let shrunk = full.resize_exact(128, 128, image::imageops::FilterType::Triangle);
        let diff = mean_abs_difference(&scaled, &shrunk);
        assert!(diff < 3.0, "mean difference {diff}");
    }

    #[test]
    fn small_or_unscalable_images_decode_exactly_as_decode_does() {
        let limits = DecodeLimits::default();
        // Less than twice the wanted size: no reduced scale fits.
        let (_, jpeg) = photo(400, 300);
        let a = decode_at_least(&jpeg, &limits, 256, 256).unwrap();
        let b = decode(&jpeg, &limits).unwrap();
        assert_eq!(a.image, b.image);
        // PNG is never scaled.
        let png = super::super::testing::zero_png(1024, 1024);
        assert_eq!(
            decode_at_least(&png, &limits, 64, 64).unwrap().width(),
            1024
        );
    }

    #[test]
    fn grey_jpegs_scale_and_stay_grey() {
        let (image, _) = photo(800, 800);
        let mut out = Cursor::new(Vec::new());
        image
            .grayscale()
            .write_to(&mut out, ImageFormat::Jpeg)
            .unwrap();
        let d = decode_at_least(&out.into_inner(), &DecodeLimits::default(), 100, 100).unwrap();
        assert!(matches!(d.image, DynamicImage::ImageLuma8(_)));
        assert_eq!(d.image.dimensions(), (100, 100));
    }

    #[test]
    fn exif_orientation_is_applied_and_decides_the_scale() {
        let (_, jpeg) = photo(2048, 1024);
        let limits = DecodeLimits::default();
        // Orientation 6 (rotate 90): upright 1024 wide, 2048 high. Wanting 256 x 256 upright
        // allows 1/4 (stored 512 x 256, upright 256 x 512).
        let rotated = with_exif_orientation(&jpeg, 6);
        let d = decode_at_least(&rotated, &limits, 256, 256).unwrap();
        assert_eq!((d.width(), d.height()), (256, 512));
        let full = decode(&rotated, &limits).unwrap();
        assert_eq!(d.orientation, full.orientation);
        let shrunk = full
            .image
            .resize_exact(256, 512, image::imageops::FilterType::Triangle);
        assert!(mean_abs_difference(&d.image, &shrunk) < 3.0);
    }

    #[test]
    fn bad_jpegs_are_refused_as_decode_refuses_them() {
        let (_, jpeg) = photo(1024, 1024);
        let limits = DecodeLimits::default();
        // Cut short: the completeness check comes first.
        let cut = &jpeg[..jpeg.len() / 2];
        assert_eq!(
            decode_at_least(cut, &limits, 64, 64)
                .unwrap_err()
                .to_string(),
            decode(cut, &limits).unwrap_err().to_string()
        );
        // Over the pixel limit: refused before any decoding, with the same message.
        let small = DecodeLimits {
            max_pixels: 1000,
            ..DecodeLimits::default()
        };
        assert_eq!(
            decode_at_least(&jpeg, &small, 64, 64)
                .unwrap_err()
                .to_string(),
            decode(&jpeg, &small).unwrap_err().to_string()
        );
        // Damaged entropy-coded data (a stretch of bytes overwritten): an image or an error,
        // never a panic.
        let mut damaged = jpeg.clone();
        let middle = damaged.len() / 2;
        for b in &mut damaged[middle..middle + 64] {
            *b = 0x5A;
        }
        if let Ok(d) = decode_at_least(&damaged, &limits, 64, 64) {
            assert!(d.image.width() >= 64 && d.image.height() >= 64);
        }
    }
}
