//! What to generate: the options of `loupe synth coils` and `loupe synth surfaces`,
//! and their validation.

use std::fmt;
use std::str::FromStr;

use serde::Serialize;

use crate::error::SynthError;

/// Smallest supported image size (pixels per side).
pub const MIN_SIZE: u32 = 64;
/// Largest supported image size (pixels per side).
pub const MAX_SIZE: u32 = 2048;

/// Image file format of the coil photographs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ImageFormat {
    /// Lossless PNG (8-bit RGB).
    #[default]
    Png,
    /// JPEG, quality 90 (like most factory cameras deliver).
    Jpg,
}

impl ImageFormat {
    /// The file extension, without the dot.
    pub fn extension(self) -> &'static str {
        match self {
            ImageFormat::Png => "png",
            ImageFormat::Jpg => "jpg",
        }
    }
}

impl FromStr for ImageFormat {
    type Err = SynthError;

    /// `png`, or `jpg` / `jpeg` (any case).
    fn from_str(s: &str) -> Result<Self, SynthError> {
        match s.to_ascii_lowercase().as_str() {
            "png" => Ok(ImageFormat::Png),
            "jpg" | "jpeg" => Ok(ImageFormat::Jpg),
            _ => Err(SynthError::UnknownFormat(s.to_string())),
        }
    }
}

impl fmt::Display for ImageFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.extension())
    }
}

/// Options of `loupe synth coils`.
///
/// Prevalences are fractions of *products*: `loose_wire` of products have at least one
/// loose wire, `burr` have burrs, and `both` have both (so `both` counts towards each of
/// the other two; products with neither are `ok`).
#[derive(Debug, Clone, PartialEq)]
pub struct CoilOptions {
    /// Number of products (coils); each is photographed from 8 angles.
    pub products: u32,
    /// Seed of every random choice.
    pub seed: u64,
    /// Image width and height in pixels.
    pub size: u32,
    /// Image file format.
    pub format: ImageFormat,
    /// Fraction of products with a loose wire (`--loose-wire`).
    pub loose_wire: f64,
    /// Fraction of products with burrs (`--burr`).
    pub burr: f64,
    /// Fraction of products with both a loose wire and burrs (`--both`).
    pub both: f64,
}

impl Default for CoilOptions {
    fn default() -> Self {
        CoilOptions {
            products: 100,
            seed: 0,
            size: 256,
            format: ImageFormat::Png,
            loose_wire: 0.05,
            burr: 0.25,
            both: 0.01,
        }
    }
}

impl CoilOptions {
    /// Refuses impossible options with a message naming the flag.
    pub fn validate(&self) -> Result<(), SynthError> {
        if self.products == 0 {
            return Err(SynthError::ZeroCount { flag: "--products" });
        }
        validate_size(self.size)?;
        for (flag, value) in [
            ("--loose-wire", self.loose_wire),
            ("--burr", self.burr),
            ("--both", self.both),
        ] {
            if !(0.0..=1.0).contains(&value) {
                return Err(SynthError::PrevalenceOutOfRange { flag, value });
            }
        }
        for (flag, value) in [("--loose-wire", self.loose_wire), ("--burr", self.burr)] {
            if self.both > value + 1e-12 {
                return Err(SynthError::InconsistentPrevalence(format!(
                    "--both ({}) cannot exceed {flag} ({value}): products with both defects \
                     are counted in {flag} too",
                    self.both
                )));
            }
        }
        if self.loose_wire + self.burr - self.both > 1.0 + 1e-12 {
            return Err(SynthError::InconsistentPrevalence(format!(
                "--loose-wire ({}) + --burr ({}) - --both ({}) exceeds 1: raise --both \
                 (products with both defects) or lower the others",
                self.loose_wire, self.burr, self.both
            )));
        }
        Ok(())
    }
}

/// Options of `loupe synth surfaces`.
#[derive(Debug, Clone, PartialEq)]
pub struct SurfaceOptions {
    /// Number of images.
    pub images: u32,
    /// Seed of every random choice.
    pub seed: u64,
    /// Image width and height in pixels.
    pub size: u32,
}

impl Default for SurfaceOptions {
    fn default() -> Self {
        SurfaceOptions {
            images: 100,
            seed: 0,
            size: 256,
        }
    }
}

impl SurfaceOptions {
    /// Refuses impossible options with a message naming the flag.
    pub fn validate(&self) -> Result<(), SynthError> {
        if self.images == 0 {
            return Err(SynthError::ZeroCount { flag: "--images" });
        }
        validate_size(self.size)
    }
}

fn validate_size(size: u32) -> Result<(), SynthError> {
    if !(MIN_SIZE..=MAX_SIZE).contains(&size) {
        return Err(SynthError::SizeOutOfRange {
            value: size,
            min: MIN_SIZE,
            max: MAX_SIZE,
        });
    }
    Ok(())
}
