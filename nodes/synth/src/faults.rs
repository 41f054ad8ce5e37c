//! Ordinary camera faults, applied to a finished photo: what a real line does to the frames a
//! model sees (a lens out of focus, a camera set to heavy JPEG compression, the light too
//! dim or too bright, sensor noise, a camera knocked askew), and the frames of a failed camera.
//! `loupe eval --fault` and `loupe synth faults` use them to measure a model and a flow's
//! policy under each; `models/train/loupe_train/faults.py` implements the same definitions
//! for training.
//!
//! | fault | what |
//! |---|---|
//! | `blur:S` | Gaussian blur, standard deviation `S` px (kernel radius ceil(3S)), edges replicated |
//! | `jpeg:Q` | encoded as JPEG quality `Q`, decoded |
//! | `exposure:F` | every value times `F`, rounded, clipped to 0..255 |
//! | `noise:S` | N(0, S²) added to every pixel and channel, rounded, clipped |
//! | `tilt:D` | rotated `D` degrees about the centre, bilinear, edges replicated |
//! | `black`, `white`, `grey`, `static` | the frame of a failed camera (static: uniform noise) |
//! | `small` | the photo shrunk to a sixth of its side, centred on its own border colour |

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use image::{DynamicImage, ImageFormat, Rgb, RgbImage};

use crate::SynthError;
use crate::rng::Rng;

/// One camera fault.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Fault {
    /// Gaussian blur with this standard deviation (px).
    Blur(f32),
    /// JPEG re-encoding at this quality (1-100).
    Jpeg(u8),
    /// Exposure factor.
    Exposure(f32),
    /// Gaussian noise of this standard deviation (0-255 scale).
    Noise(f32),
    /// Rotation in degrees.
    Tilt(f32),
    /// An all-black frame.
    Black,
    /// An all-white frame.
    White,
    /// An all-grey frame.
    Grey,
    /// A frame of uniform noise.
    Static,
    /// The photo far too small in the frame.
    Small,
}

/// A fault that could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "`{given}` is not a camera fault: {why} (blur:S, jpeg:Q, exposure:F, noise:S, tilt:D, black, white, grey, static, small)"
)]
pub struct FaultError {
    /// What was given.
    pub given: String,
    /// What is wrong with it.
    pub why: String,
}

impl FromStr for Fault {
    type Err = FaultError;

    fn from_str(s: &str) -> Result<Fault, FaultError> {
        let error = |why: &str| FaultError {
            given: s.to_string(),
            why: why.to_string(),
        };
        let (name, value) = match s.split_once(':') {
            Some((n, v)) => (n, Some(v)),
            None => (s, None),
        };
        let number = || -> Result<f32, FaultError> {
            let v: f32 = value
                .ok_or_else(|| error("needs a value after `:`"))?
                .parse()
                .map_err(|_| error("the value is not a number"))?;
            if v.is_finite() {
                Ok(v)
            } else {
                Err(error("the value is not finite"))
            }
        };
        let fault = match name {
            "blur" => Fault::Blur(number()?),
            "jpeg" => {
                let q = number()?;
                if !(1.0..=100.0).contains(&q) {
                    return Err(error("quality must be 1 to 100"));
                }
                Fault::Jpeg(q as u8)
            }
            "exposure" => Fault::Exposure(number()?),
            "noise" => Fault::Noise(number()?),
            "tilt" => Fault::Tilt(number()?),
            "black" | "white" | "grey" | "static" | "small" if value.is_some() => {
                return Err(error("takes no value"));
            }
            "black" => Fault::Black,
            "white" => Fault::White,
            "grey" => Fault::Grey,
            "static" => Fault::Static,
            "small" => Fault::Small,
            _ => return Err(error("unknown fault")),
        };
        match fault {
            Fault::Blur(v) | Fault::Noise(v) if v < 0.0 => Err(error("must not be negative")),
            Fault::Exposure(v) if v <= 0.0 => Err(error("must be more than 0")),
            other => Ok(other),
        }
    }
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Fault::Blur(v) => write!(f, "blur:{v}"),
            Fault::Jpeg(q) => write!(f, "jpeg:{q}"),
            Fault::Exposure(v) => write!(f, "exposure:{v}"),
            Fault::Noise(v) => write!(f, "noise:{v}"),
            Fault::Tilt(v) => write!(f, "tilt:{v}"),
            Fault::Black => f.write_str("black"),
            Fault::White => f.write_str("white"),
            Fault::Grey => f.write_str("grey"),
            Fault::Static => f.write_str("static"),
            Fault::Small => f.write_str("small"),
        }
    }
}

impl Fault {
    /// The faults a plant sees every day, at the strength the robustness targets name.
    pub fn ordinary() -> Vec<Fault> {
        vec![
            Fault::Blur(1.5),
            Fault::Jpeg(50),
            Fault::Exposure(0.7),
            Fault::Exposure(1.3),
            Fault::Noise(8.0),
            Fault::Tilt(7.0),
            Fault::Tilt(-7.0),
        ]
    }

    /// The frames of a failed camera or a wrong scene, never to be judged good.
    pub fn unusable() -> Vec<Fault> {
        vec![
            Fault::Black,
            Fault::White,
            Fault::Grey,
            Fault::Static,
            Fault::Small,
        ]
    }

    /// Applies the fault to `image`; `seed` drives the noise (same seed, same bytes).
    pub fn apply(self, image: &RgbImage, seed: u64) -> RgbImage {
        let (w, h) = image.dimensions();
        match self {
            Fault::Blur(sigma) => blur(image, sigma),
            Fault::Jpeg(quality) => jpeg(image, quality),
            Fault::Exposure(factor) => map(image, |v| f32::from(v) * factor),
            Fault::Noise(sigma) => {
                let mut rng = Rng::new(seed, &[0x006e_6f69_7365]);
                map(image, |v| f32::from(v) + sigma * rng.normal())
            }
            Fault::Tilt(degrees) => tilt(image, degrees),
            Fault::Black => RgbImage::from_pixel(w, h, Rgb([0; 3])),
            Fault::White => RgbImage::from_pixel(w, h, Rgb([255; 3])),
            Fault::Grey => RgbImage::from_pixel(w, h, Rgb([128; 3])),
            Fault::Static => {
                let mut rng = Rng::new(seed, &[0x7374_6174_6963]);
                RgbImage::from_fn(w, h, |_, _| {
                    let v = rng.u64();
                    Rgb([v as u8, (v >> 8) as u8, (v >> 16) as u8])
                })
            }
            Fault::Small => small(image),
        }
    }
}

fn clip(v: f32) -> u8 {
    v.round().clamp(0.0, 255.0) as u8
}

fn map(image: &RgbImage, mut f: impl FnMut(u8) -> f32) -> RgbImage {
    let mut out = image.clone();
    for v in out.iter_mut() {
        *v = clip(f(*v));
    }
    out
}

/// Separable Gaussian, radius ceil(3 sigma), edges replicated.
fn blur(image: &RgbImage, sigma: f32) -> RgbImage {
    if sigma <= 0.0 {
        return image.clone();
    }
    let radius = (3.0 * sigma).ceil() as i64;
    let weights: Vec<f32> = (-radius..=radius)
        .map(|i| (-(i * i) as f32 / (2.0 * sigma * sigma)).exp())
        .collect();
    let total: f32 = weights.iter().sum();
    let weights: Vec<f32> = weights.iter().map(|w| w / total).collect();
    let (w, h) = (image.width() as i64, image.height() as i64);
    let src: Vec<f32> = image.iter().map(|&v| f32::from(v)).collect();
    let pass = |src: &[f32], horizontal: bool| -> Vec<f32> {
        let mut out = vec![0.0f32; src.len()];
        for y in 0..h {
            for x in 0..w {
                for c in 0..3 {
                    let mut acc = 0.0;
                    for (k, weight) in weights.iter().enumerate() {
                        let d = k as i64 - radius;
                        let (sx, sy) = if horizontal {
                            ((x + d).clamp(0, w - 1), y)
                        } else {
                            (x, (y + d).clamp(0, h - 1))
                        };
                        acc += weight * src[((sy * w + sx) * 3 + c) as usize];
                    }
                    out[((y * w + x) * 3 + c) as usize] = acc;
                }
            }
        }
        out
    };
    let out = pass(&pass(&src, true), false);
    RgbImage::from_vec(
        image.width(),
        image.height(),
        out.into_iter().map(clip).collect(),
    )
    .unwrap_or_else(|| image.clone())
}

fn jpeg(image: &RgbImage, quality: u8) -> RgbImage {
    let mut bytes = Vec::new();
    let encoder = image::codecs::jpeg::JpegEncoder::new_with_quality(&mut bytes, quality);
    if image.write_with_encoder(encoder).is_err() {
        return image.clone();
    }
    image::load_from_memory_with_format(&bytes, ImageFormat::Jpeg)
        .map(DynamicImage::into_rgb8)
        .unwrap_or_else(|_| image.clone())
}

/// Bilinear sample at (x, y) with edges replicated.
fn sample(image: &RgbImage, x: f32, y: f32) -> [f32; 3] {
    let (w, h) = (image.width() as i64, image.height() as i64);
    let (x0, y0) = (x.floor(), y.floor());
    let (fx, fy) = (x - x0, y - y0);
    let at =
        |xi: i64, yi: i64| image.get_pixel(xi.clamp(0, w - 1) as u32, yi.clamp(0, h - 1) as u32);
    let (x0, y0) = (x0 as i64, y0 as i64);
    let (a, b, c, d) = (
        at(x0, y0),
        at(x0 + 1, y0),
        at(x0, y0 + 1),
        at(x0 + 1, y0 + 1),
    );
    std::array::from_fn(|i| {
        let top = f32::from(a[i]) * (1.0 - fx) + f32::from(b[i]) * fx;
        let bottom = f32::from(c[i]) * (1.0 - fx) + f32::from(d[i]) * fx;
        top * (1.0 - fy) + bottom * fy
    })
}

fn tilt(image: &RgbImage, degrees: f32) -> RgbImage {
    let (w, h) = image.dimensions();
    let (cx, cy) = ((w as f32 - 1.0) / 2.0, (h as f32 - 1.0) / 2.0);
    let (sin, cos) = degrees.to_radians().sin_cos();
    RgbImage::from_fn(w, h, |x, y| {
        // The source of output pixel (x, y): rotate back.
        let (dx, dy) = (x as f32 - cx, y as f32 - cy);
        let sx = cos * dx + sin * dy + cx;
        let sy = -sin * dx + cos * dy + cy;
        let v = sample(image, sx, sy);
        Rgb([clip(v[0]), clip(v[1]), clip(v[2])])
    })
}

/// The photo at a sixth of its side (area-averaged), centred on its top-left pixel's colour.
fn small(image: &RgbImage) -> RgbImage {
    let (w, h) = image.dimensions();
    let (sw, sh) = ((w / 6).max(1), (h / 6).max(1));
    let shrunk = image::imageops::resize(image, sw, sh, image::imageops::FilterType::Triangle);
    let mut out = RgbImage::from_pixel(w, h, *image.get_pixel(0, 0));
    image::imageops::overlay(
        &mut out,
        &shrunk,
        i64::from((w - sw) / 2),
        i64::from((h - sh) / 2),
    );
    out
}

/// Why a faulted copy of a folder could not be written.
#[derive(Debug, thiserror::Error)]
pub enum FaultedCopyError {
    /// Reading or writing a file failed.
    #[error(transparent)]
    Io(#[from] SynthError),
    /// The manifest has a line that is not JSON with a `file`.
    #[error("{}: line {line}: {message}", path.display())]
    Manifest {
        /// The manifest.
        path: PathBuf,
        /// 1-based line.
        line: usize,
        /// What is wrong.
        message: String,
    },
    /// An image of the folder could not be decoded.
    #[error("{}: {source}", path.display())]
    Image {
        /// The image.
        path: PathBuf,
        /// The decoder's error.
        #[source]
        source: image::ImageError,
    },
    /// The fault would move pixels away from their masks.
    #[error("{fault} moves pixels, and {} has masks that would no longer match", folder.display())]
    GeometryWithMasks {
        /// The fault.
        fault: Fault,
        /// The folder.
        folder: PathBuf,
    },
}

/// Writes a copy of the labelled folder `data` (its `manifest.jsonl` and the images it lists
/// under `file`) into `out` with `fault` applied to every image (saved as PNG under the same
/// name, so the manifest still holds). Everything else in the folder (masks, `dataset.json`)
/// is copied unchanged. Returns the number of images written. Image `i` of the manifest gets
/// noise seed `seed + i`.
pub fn write_faulted_copy(
    data: &Path,
    out: &Path,
    fault: Fault,
    seed: u64,
) -> Result<usize, FaultedCopyError> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| SynthError::Io { path, source }
    };
    let manifest = data.join(crate::manifest::MANIFEST_FILE);
    let text = std::fs::read_to_string(&manifest).map_err(io(&manifest))?;
    let mut images = Vec::new();
    let mut has_masks = false;
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let bad = |message: String| FaultedCopyError::Manifest {
            path: manifest.clone(),
            line: i + 1,
            message,
        };
        let value: serde_json::Value =
            serde_json::from_str(line).map_err(|e| bad(e.to_string()))?;
        let file = value
            .get("file")
            .and_then(|f| f.as_str())
            .ok_or_else(|| bad("no `file`".to_string()))?;
        if file.split(['/', '\\']).any(|part| part == "..") || Path::new(file).is_absolute() {
            return Err(bad(format!("`{file}` leaves the folder")));
        }
        has_masks |= value.get("mask").is_some();
        images.push(file.to_string());
    }
    if has_masks && matches!(fault, Fault::Tilt(_) | Fault::Small) {
        return Err(FaultedCopyError::GeometryWithMasks {
            fault,
            folder: data.to_path_buf(),
        });
    }
    let listed: std::collections::HashSet<&str> = images.iter().map(String::as_str).collect();
    copy_others(data, out, Path::new(""), &listed)?;
    let write = |i: usize, file: &str| -> Result<(), FaultedCopyError> {
        let (from, to) = (data.join(file), out.join(file));
        let image = image::open(&from)
            .map_err(|source| FaultedCopyError::Image {
                path: from.clone(),
                source,
            })?
            .into_rgb8();
        let faulted = fault.apply(&image, seed.wrapping_add(i as u64));
        if let Some(parent) = to.parent() {
            std::fs::create_dir_all(parent).map_err(io(parent))?;
        }
        faulted
            .save_with_format(&to, ImageFormat::Png)
            .map_err(|source| FaultedCopyError::Image {
                path: to.clone(),
                source,
            })
    };
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let results: Vec<Result<(), FaultedCopyError>> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads)
            .map(|t| {
                let (images, write) = (&images, &write);
                scope.spawn(move || {
                    (t..images.len())
                        .step_by(threads)
                        .try_for_each(|i| write(i, &images[i]))
                })
            })
            .collect();
        workers
            .into_iter()
            .map(|w| w.join().unwrap_or_else(|e| std::panic::resume_unwind(e)))
            .collect()
    });
    results.into_iter().collect::<Result<(), _>>()?;
    Ok(images.len())
}

/// Copies every file under `data/rel` that the manifest does not list as an image.
fn copy_others(
    data: &Path,
    out: &Path,
    rel: &Path,
    listed: &std::collections::HashSet<&str>,
) -> Result<(), SynthError> {
    let dir = data.join(rel);
    std::fs::create_dir_all(out.join(rel)).map_err(|source| SynthError::Io {
        path: out.join(rel),
        source,
    })?;
    let entries = std::fs::read_dir(&dir).map_err(|source| SynthError::Io {
        path: dir.clone(),
        source,
    })?;
    for entry in entries {
        let entry = entry.map_err(|source| SynthError::Io {
            path: dir.clone(),
            source,
        })?;
        let name = rel.join(entry.file_name());
        let path = entry.path();
        if path.is_dir() {
            copy_others(data, out, &name, listed)?;
        } else if !listed.contains(name.to_string_lossy().as_ref()) {
            std::fs::copy(&path, out.join(&name)).map_err(|source| SynthError::Io {
                path: path.clone(),
                source,
            })?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gradient() -> RgbImage {
        RgbImage::from_fn(32, 24, |x, y| Rgb([(x * 8) as u8, (y * 10) as u8, 100]))
    }

    #[test]
    fn faults_read_and_print_the_same() {
        for text in [
            "blur:1.5",
            "jpeg:50",
            "exposure:0.7",
            "noise:8",
            "tilt:-7",
            "black",
            "small",
        ] {
            let fault: Fault = text.parse().unwrap();
            assert_eq!(fault.to_string(), text);
        }
        for bad in [
            "blur",
            "blur:x",
            "jpeg:0",
            "exposure:0",
            "noise:-1",
            "black:1",
            "fog:2",
        ] {
            assert!(bad.parse::<Fault>().is_err(), "{bad}");
        }
    }

    #[test]
    fn each_fault_does_what_it_says() {
        let image = gradient();
        let brighter = Fault::Exposure(1.3).apply(&image, 1);
        assert_eq!(brighter.get_pixel(10, 10)[0], clip(80.0 * 1.3));
        assert_eq!(brighter.get_pixel(31, 0)[0], 255, "clipped");
        // Blur keeps a flat image flat and smooths an edge.
        let flat = RgbImage::from_pixel(16, 16, Rgb([90; 3]));
        assert_eq!(Fault::Blur(1.5).apply(&flat, 1), flat);
        let blurred = Fault::Blur(1.5).apply(&image, 1);
        assert_ne!(blurred, image);
        // Noise is seeded and of about the asked size.
        let noisy = Fault::Noise(8.0).apply(&flat, 7);
        assert_eq!(noisy, Fault::Noise(8.0).apply(&flat, 7));
        let n = noisy.len() as f32;
        let sd = (noisy
            .iter()
            .map(|&v| (f32::from(v) - 90.0).powi(2))
            .sum::<f32>()
            / n)
            .sqrt();
        assert!((sd - 8.0).abs() < 0.8, "{sd}");
        // A tilt of 0 changes nothing; a tilt keeps the centre.
        assert_eq!(Fault::Tilt(0.0).apply(&image, 1), image);
        let square = RgbImage::from_fn(33, 33, |x, y| Rgb([(x * 7) as u8, (y * 7) as u8, 0]));
        assert_eq!(
            Fault::Tilt(7.0).apply(&square, 1).get_pixel(16, 16),
            square.get_pixel(16, 16)
        );
        let jpeg = Fault::Jpeg(50).apply(&image, 1);
        assert_eq!(jpeg.dimensions(), image.dimensions());
        assert!(Fault::Black.apply(&image, 1).iter().all(|&v| v == 0));
        let small = Fault::Small.apply(&image, 1);
        assert_eq!(small.get_pixel(0, 0), image.get_pixel(0, 0));
    }
}
