//! The image work of one FlowFile: decode, crop, resize, convert, encode. Pure and
//! synchronous (the node runs it on a blocking thread), reusable outside the node.
//!
//! Copies are kept to what each step needs: the content is decoded once; the region of
//! interest is not copied out but given to the resizer as its source window; the resizer
//! writes straight into the output buffer (for `fit`, into the window of the padded canvas);
//! colour conversion happens on the resized image (or not at all when it is already in the
//! wanted format); the encoder writes into one pre-sized `Vec` that becomes the content.

use fast_image_resize::images::CroppedImageMut;
use fast_image_resize::{self as fir, ResizeAlg, ResizeOptions};
use image::codecs::jpeg::JpegEncoder;
use image::codecs::png::{CompressionType, PngEncoder};
use image::{DynamicImage, ImageBuffer, Luma, LumaA, Pixel, Rgb, Rgba};
use loupe_sdk::imaging::{self, DecodeLimits, Format, Orientation};

use crate::error::PreprocessError;
use crate::frame::{self, FrameCheckSettings, FrameReport};
use crate::geometry::{self, FracRect, Rect};
use crate::settings::{
    ColorMode, Filter, OutputFormat, PreprocessSettings, Resize, ResizeMode, Roi,
};

/// What the node does to each image, prepared once from its settings.
#[derive(Debug, Clone)]
pub struct Pipeline {
    limits: DecodeLimits,
    roi: Option<Roi>,
    resize: Option<Resize>,
    color: ColorMode,
    output: OutputFormat,
    jpeg_quality: u8,
    frame_check: Option<FrameCheckSettings>,
}

/// The result of [`Pipeline::run`].
#[derive(Debug, Clone)]
pub struct Processed {
    /// The encoded output image.
    pub content: Vec<u8>,
    /// Output width.
    pub width: u32,
    /// Output height.
    pub height: u32,
    /// MIME type of `content`.
    pub mime_type: &'static str,
    /// Width of the input image, upright (after EXIF orientation).
    pub original_width: u32,
    /// Height of the input image, upright.
    pub original_height: u32,
    /// Format of the input, recognised from its content.
    pub original_format: Format,
    /// The EXIF orientation that was applied to the input.
    pub orientation: Orientation,
    /// The usable-frame check of the output image, when the settings ask for it.
    pub frame: Option<FrameReport>,
}

impl Pipeline {
    /// The pipeline for these (validated) settings.
    pub fn new(settings: &PreprocessSettings) -> Self {
        let max_bytes = usize::try_from(settings.max_bytes).unwrap_or(usize::MAX);
        Pipeline {
            limits: DecodeLimits::for_pixels(max_bytes, settings.max_pixels),
            roi: settings.roi,
            resize: settings.resize,
            color: settings.color,
            output: settings.output.format,
            jpeg_quality: settings.jpeg_quality(),
            frame_check: settings.frame_check.clone(),
        }
    }

    /// The decoding limits in effect.
    pub fn limits(&self) -> &DecodeLimits {
        &self.limits
    }

    /// Preprocesses one encoded image.
    pub fn run(&self, bytes: &[u8]) -> Result<Processed, PreprocessError> {
        let decoded = imaging::decode(bytes, &self.limits)?;
        let (original_width, original_height) = (decoded.width(), decoded.height());
        let source = geometry::source_rect(self.roi, original_width, original_height)?;
        let whole = source.width == original_width && source.height == original_height;

        let image = match &self.resize {
            Some(resize) => resize_image(&decoded.image, source, resize)?,
            None if whole => decoded.image,
            None => decoded
                .image
                .crop_imm(source.x, source.y, source.width, source.height),
        };
        let image = convert(image, self.color, self.output);
        let frame = self
            .frame_check
            .as_ref()
            .map(|settings| frame::check(&image, settings));
        let content = encode(&image, self.output, self.jpeg_quality)?;
        Ok(Processed {
            content,
            width: image.width(),
            height: image.height(),
            mime_type: self.output.mime_type(),
            original_width,
            original_height,
            original_format: decoded.format,
            orientation: decoded.orientation,
            frame,
        })
    }
}

/// The resize algorithm of a filter.
pub fn algorithm(filter: Filter) -> ResizeAlg {
    match filter {
        Filter::Nearest => ResizeAlg::Nearest,
        Filter::Bilinear => ResizeAlg::Convolution(fir::FilterType::Bilinear),
        Filter::CatmullRom => ResizeAlg::Convolution(fir::FilterType::CatmullRom),
        Filter::Lanczos3 => ResizeAlg::Convolution(fir::FilterType::Lanczos3),
    }
}

/// Resizes the `source` window of `image` as `resize` says, in the image's own pixel format.
pub fn resize_image(
    image: &DynamicImage,
    source: Rect,
    resize: &Resize,
) -> Result<DynamicImage, PreprocessError> {
    let (width, height) = (resize.width, resize.height);
    let options = |window: FracRect| {
        ResizeOptions::new()
            .resize_alg(algorithm(resize.filter))
            .crop(window.left, window.top, window.width, window.height)
    };
    let failed = |e: fir::ResizeError| PreprocessError::Resize(e.to_string());
    let mut resizer = fir::Resizer::new();
    let mut out = DynamicImage::new(width, height, image.color());
    match resize.mode {
        ResizeMode::Exact => {
            resizer
                .resize(image, &mut out, &options(source.into()))
                .map_err(failed)?;
        }
        ResizeMode::Fill => {
            let window = geometry::fill_crop(source, width, height);
            resizer
                .resize(image, &mut out, &options(window))
                .map_err(failed)?;
        }
        ResizeMode::Fit => {
            let inner = geometry::fit_inside(source, width, height);
            fill(&mut out, resize.pad.unwrap_or(0));
            let mut target =
                CroppedImageMut::new(&mut out, inner.x, inner.y, inner.width, inner.height)
                    .map_err(|e| PreprocessError::Resize(e.to_string()))?;
            resizer
                .resize(image, &mut target, &options(source.into()))
                .map_err(failed)?;
        }
    }
    Ok(out)
}

/// Paints every pixel grey `level` (scaled to the sample type), alpha opaque.
fn fill(image: &mut DynamicImage, level: u8) {
    fn paint<P: Pixel>(buffer: &mut ImageBuffer<P, Vec<P::Subpixel>>, pixel: P) {
        for p in buffer.pixels_mut() {
            *p = pixel;
        }
    }
    let l16 = u16::from(level) * 257;
    let lf = f32::from(level) / 255.0;
    // `DynamicImage::new` zero-fills: black without alpha needs no painting.
    if level == 0 && !image.color().has_alpha() {
        return;
    }
    match image {
        DynamicImage::ImageLuma8(b) => paint(b, Luma([level])),
        DynamicImage::ImageLumaA8(b) => paint(b, LumaA([level, u8::MAX])),
        DynamicImage::ImageRgb8(b) => paint(b, Rgb([level; 3])),
        DynamicImage::ImageRgba8(b) => paint(b, Rgba([level, level, level, u8::MAX])),
        DynamicImage::ImageLuma16(b) => paint(b, Luma([l16])),
        DynamicImage::ImageLumaA16(b) => paint(b, LumaA([l16, u16::MAX])),
        DynamicImage::ImageRgb16(b) => paint(b, Rgb([l16; 3])),
        DynamicImage::ImageRgba16(b) => paint(b, Rgba([l16, l16, l16, u16::MAX])),
        DynamicImage::ImageRgb32F(b) => paint(b, Rgb([lf; 3])),
        DynamicImage::ImageRgba32F(b) => paint(b, Rgba([lf, lf, lf, 1.0])),
        _ => {}
    }
}

/// Converts to the pixel format `color` asks for and `output` can store; no copy when the
/// image already is in that format.
pub fn convert(image: DynamicImage, color: ColorMode, output: OutputFormat) -> DynamicImage {
    match (color, output) {
        (ColorMode::Rgb, _) => DynamicImage::ImageRgb8(image.into_rgb8()),
        (ColorMode::Gray, _) => DynamicImage::ImageLuma8(image.into_luma8()),
        // JPEG stores 8-bit grey or RGB only.
        (ColorMode::Keep, OutputFormat::Jpeg) if image.color().has_color() => {
            DynamicImage::ImageRgb8(image.into_rgb8())
        }
        (ColorMode::Keep, OutputFormat::Jpeg) => DynamicImage::ImageLuma8(image.into_luma8()),
        // PNG stores everything but floating point (TIFF can hold float samples).
        (ColorMode::Keep, OutputFormat::Png) => match image {
            DynamicImage::ImageRgb32F(_) => DynamicImage::ImageRgb16(image.into_rgb16()),
            DynamicImage::ImageRgba32F(_) => DynamicImage::ImageRgba16(image.into_rgba16()),
            other => other,
        },
    }
}

/// Encodes into a buffer sized from the raw image, so it rarely grows.
pub fn encode(
    image: &DynamicImage,
    output: OutputFormat,
    jpeg_quality: u8,
) -> Result<Vec<u8>, PreprocessError> {
    let raw = image.as_bytes().len();
    let mut buffer = Vec::with_capacity(
        match output {
            OutputFormat::Png => raw / 2,
            OutputFormat::Jpeg => raw / 6,
        } + 4096,
    );
    let result = match output {
        OutputFormat::Png => image.write_with_encoder(PngEncoder::new_with_quality(
            &mut buffer,
            CompressionType::Fast,
            image::codecs::png::FilterType::Adaptive,
        )),
        OutputFormat::Jpeg => {
            image.write_with_encoder(JpegEncoder::new_with_quality(&mut buffer, jpeg_quality))
        }
    };
    result.map_err(|e| PreprocessError::Encode {
        format: output,
        reason: e.to_string(),
    })?;
    Ok(buffer)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gradient(width: u32, height: u32) -> DynamicImage {
        DynamicImage::ImageRgb8(ImageBuffer::from_fn(width, height, |x, y| {
            Rgb([
                (x * 255 / width.max(1)) as u8,
                (y * 255 / height.max(1)) as u8,
                128,
            ])
        }))
    }

    fn resize(width: u32, height: u32, mode: ResizeMode) -> Resize {
        Resize {
            width,
            height,
            mode,
            filter: Filter::Bilinear,
            pad: None,
        }
    }

    fn whole(image: &DynamicImage) -> Rect {
        Rect {
            x: 0,
            y: 0,
            width: image.width(),
            height: image.height(),
        }
    }

    #[test]
    fn fit_pads_with_the_pad_level() {
        let image = gradient(40, 20);
        let mut r = resize(20, 20, ResizeMode::Fit);
        r.pad = Some(114);
        let out = resize_image(&image, whole(&image), &r).unwrap().into_rgb8();
        assert_eq!(out.dimensions(), (20, 20));
        // 40x20 -> 20x10 at rows 5..15; rows 0..5 and 15..20 are padding.
        assert_eq!(out.get_pixel(10, 0).0, [114, 114, 114]);
        assert_eq!(out.get_pixel(10, 19).0, [114, 114, 114]);
        assert_eq!(out.get_pixel(10, 10).0[2], 128, "inside is the image");
    }

    #[test]
    fn fit_pad_is_opaque_with_alpha() {
        let image = DynamicImage::ImageRgba16(ImageBuffer::from_pixel(10, 30, Rgba([0, 0, 0, 0])));
        let out = resize_image(&image, whole(&image), &resize(30, 30, ResizeMode::Fit)).unwrap();
        let out = out.into_rgba16();
        assert_eq!(out.get_pixel(0, 15).0, [0, 0, 0, u16::MAX]);
        assert_eq!(
            out.get_pixel(15, 15).0[3],
            0,
            "the image keeps its transparency"
        );
    }

    #[test]
    fn fill_takes_the_centre() {
        // Left half black, right half white, 40x10; fill to 10x10 takes x 15..25.
        let image = DynamicImage::ImageLuma8(ImageBuffer::from_fn(40, 10, |x, _| {
            Luma([if x < 20 { 0 } else { 255 }])
        }));
        let mut r = resize(10, 10, ResizeMode::Fill);
        r.filter = Filter::Nearest;
        let out = resize_image(&image, whole(&image), &r)
            .unwrap()
            .into_luma8();
        assert_eq!(out.get_pixel(0, 5).0, [0]);
        assert_eq!(out.get_pixel(9, 5).0, [255]);
    }

    #[test]
    fn roi_window_is_the_source() {
        // A white 4x4 square at (8, 8) of a black 20x20 image.
        let image = DynamicImage::ImageLuma8(ImageBuffer::from_fn(20, 20, |x, y| {
            Luma([if (8..12).contains(&x) && (8..12).contains(&y) {
                255
            } else {
                0
            }])
        }));
        let roi = Rect {
            x: 8,
            y: 8,
            width: 4,
            height: 4,
        };
        let mut r = resize(8, 8, ResizeMode::Exact);
        r.filter = Filter::Nearest;
        let out = resize_image(&image, roi, &r).unwrap().into_luma8();
        assert!(out.pixels().all(|p| p.0 == [255]));
    }

    #[test]
    fn conversions() {
        let image =
            DynamicImage::ImageRgba16(ImageBuffer::from_pixel(2, 2, Rgba([65535, 0, 0, 100])));
        let rgb = convert(image.clone(), ColorMode::Rgb, OutputFormat::Png);
        assert_eq!(rgb.as_rgb8().unwrap().get_pixel(0, 0).0, [255, 0, 0]);
        let keep = convert(image.clone(), ColorMode::Keep, OutputFormat::Png);
        assert_eq!(keep.color(), image::ColorType::Rgba16);
        let jpeg = convert(image, ColorMode::Keep, OutputFormat::Jpeg);
        assert_eq!(jpeg.color(), image::ColorType::Rgb8);
        let gray = DynamicImage::ImageLumaA8(ImageBuffer::from_pixel(2, 2, LumaA([7, 9])));
        let jpeg = convert(gray, ColorMode::Keep, OutputFormat::Jpeg);
        assert_eq!(jpeg.color(), image::ColorType::L8);
    }
}
