//! The photographic chain after the scene is drawn: exposure and white balance,
//! vignetting, lens blur, sensor noise, 8-bit quantization, and file encoding.

use std::io::Cursor;

use image::codecs::jpeg::JpegEncoder;
use image::codecs::png::{CompressionType, FilterType, PngEncoder};
use image::{ExtendedColorType, ImageEncoder, ImageError};

use crate::geom::v2;
use crate::options::ImageFormat;
use crate::raster::Canvas;
use crate::rng::Rng;

/// JPEG quality of `--format jpg`.
pub const JPEG_QUALITY: u8 = 90;

/// One exposure's settings.
#[derive(Debug, Clone)]
pub(crate) struct Exposure {
    /// Overall gain.
    pub gain: f32,
    /// Per-channel white balance error (1 for gray images).
    pub balance: [f32; 3],
    /// Corner darkening, 0..1.
    pub vignette: f32,
    /// Lens blur (Gaussian sigma, pixels).
    pub blur: f32,
    /// Read noise (sigma, 0..1 scale).
    pub read_noise: f32,
    /// Shot noise factor (sigma = factor * sqrt(signal)).
    pub shot_noise: f32,
}

impl Exposure {
    /// Random settings of a factory camera photo of a `size`-pixel image.
    pub fn random(rng: &mut Rng, size: u32) -> Exposure {
        let unit = size as f32 / 256.0;
        Exposure {
            gain: rng.range(0.82, 1.22),
            balance: [0; 3].map(|_| 1.0 + 0.03 * rng.normal().clamp(-2.0, 2.0)),
            vignette: rng.range(0.05, 0.3),
            blur: rng.range(0.45, 1.1) * unit,
            read_noise: rng.range(0.004, 0.022),
            shot_noise: rng.range(0.0, 0.025),
        }
    }

    /// Applies the chain to `canvas` in place (noise from `rng`).
    pub fn develop(&self, canvas: &mut Canvas, rng: &mut Rng) {
        let (w, h) = (canvas.width, canvas.height);
        let c = v2(w as f32 / 2.0, h as f32 / 2.0);
        let inv_r2 = 1.0 / (c.x * c.x + c.y * c.y);
        let mut fall = vec![0.0f32; w * h];
        for y in 0..h {
            for x in 0..w {
                let d = v2(x as f32 + 0.5, y as f32 + 0.5) - c;
                fall[y * w + x] = 1.0 - self.vignette * d.dot(d) * inv_r2;
            }
        }
        for (plane, b) in canvas.planes.iter_mut().zip(self.balance) {
            let g = self.gain * b;
            for (v, f) in plane.iter_mut().zip(&fall) {
                *v *= g * f;
            }
        }
        canvas.blur(self.blur);
        for plane in &mut canvas.planes {
            for v in plane.iter_mut() {
                let s = self.read_noise + self.shot_noise * v.max(0.0).sqrt();
                *v += s * rng.noise();
            }
        }
    }
}

/// Encodes 8-bit interleaved pixels (`channels` 1 = gray, 3 = RGB) as `format`.
pub(crate) fn encode(
    pixels: &[u8],
    width: u32,
    height: u32,
    channels: u8,
    format: ImageFormat,
) -> Result<Vec<u8>, ImageError> {
    let colour = if channels == 1 {
        ExtendedColorType::L8
    } else {
        ExtendedColorType::Rgb8
    };
    let mut out = Vec::with_capacity(pixels.len() / 2);
    match format {
        ImageFormat::Png => PngEncoder::new_with_quality(
            Cursor::new(&mut out),
            CompressionType::Fast,
            FilterType::Adaptive,
        )
        .write_image(pixels, width, height, colour)?,
        ImageFormat::Jpg => JpegEncoder::new_with_quality(Cursor::new(&mut out), JPEG_QUALITY)
            .write_image(pixels, width, height, colour)?,
    }
    Ok(out)
}

/// Decodes an encoded image back to 8-bit RGB (what the camera rule sees of a JPEG).
pub(crate) fn decode_rgb(bytes: &[u8]) -> Result<Vec<u8>, ImageError> {
    Ok(image::load_from_memory(bytes)?.to_rgb8().into_raw())
}
