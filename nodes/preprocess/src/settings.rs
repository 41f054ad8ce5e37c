//! The `preprocess` node's settings and their pure validation.

use loupe_sdk::SettingsError;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Largest side `resize` may ask for, in pixels.
pub const MAX_OUTPUT_SIDE: u32 = 16_384;

/// Settings of a `preprocess` node. Every field is optional: with none, the node decodes the
/// image, turns it the right way up (EXIF orientation) and re-encodes it as PNG.
///
/// The steps run in this order: decode, orientation, `roi`, `resize`, `color`, `output`.
#[derive(Debug, Clone, PartialEq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PreprocessSettings {
    /// Region of interest, in pixels of the upright image (after EXIF orientation), cropped
    /// before resizing. An image that does not contain the whole region is a failure
    /// (`invalid_input`), never silently clamped. Absent: the whole image.
    #[serde(default)]
    pub roi: Option<Roi>,

    /// Resize the image (or the region of interest) to a fixed size. Absent: keep the size.
    #[serde(default)]
    pub resize: Option<Resize>,

    /// Pixel format of the output: `keep` (as decoded, as far as the output format allows),
    /// `rgb` (8-bit RGB) or `gray` (8-bit luma, ITU-R BT.709 weights). `rgb` and `gray` drop
    /// alpha without blending and reduce 16-bit samples to 8 bits.
    #[serde(default)]
    pub color: ColorMode,

    /// How the result is encoded into the FlowFile content.
    #[serde(default)]
    pub output: OutputSettings,

    /// Largest image accepted, in pixels (width x height as stored in the file), checked from
    /// the header before anything is decoded; larger images fail with `too_large`.
    /// Default: 50 000 000.
    #[serde(default = "default_max_pixels")]
    pub max_pixels: u64,

    /// Largest encoded image accepted, in bytes; larger content fails with `too_large`.
    /// Default: 64 MiB (the node's largest message also applies).
    #[serde(default = "default_max_bytes")]
    pub max_bytes: u64,

    /// Check that each frame can be judged at all (exposure, focus, noise, the object at its
    /// expected scale) and write `frame.usable`, `frame.reason` and the measures (see
    /// `loupe_preprocess::frame`). An unusable frame still goes to `success`: the flow's
    /// policy decides (the shipped flows send its product to review). Absent: no check.
    #[serde(default)]
    pub frame_check: Option<crate::frame::FrameCheckSettings>,
}

impl Default for PreprocessSettings {
    fn default() -> Self {
        PreprocessSettings {
            roi: None,
            resize: None,
            color: ColorMode::default(),
            output: OutputSettings::default(),
            max_pixels: default_max_pixels(),
            max_bytes: default_max_bytes(),
            frame_check: None,
        }
    }
}

/// A rectangle of the upright image, in pixels; `(x, y)` is its top-left corner.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Roi {
    /// Left edge, in pixels from the image's left side.
    pub x: u32,
    /// Top edge, in pixels from the image's top.
    pub y: u32,
    /// Width in pixels (at least 1).
    pub width: u32,
    /// Height in pixels (at least 1).
    pub height: u32,
}

impl std::fmt::Display for Roi {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}x{} at ({}, {})",
            self.width, self.height, self.x, self.y
        )
    }
}

/// Resizing to a fixed output size.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Resize {
    /// Output width in pixels (1 to 16384).
    pub width: u32,
    /// Output height in pixels (1 to 16384).
    pub height: u32,
    /// How the aspect ratio is handled: `exact` stretches to `width` x `height`; `fit` keeps
    /// the aspect ratio, scales the whole image inside the box and pads the rest (centred,
    /// with `pad`); `fill` keeps the aspect ratio, covers the box and crops the overflow
    /// (centred). Default: `exact`.
    #[serde(default)]
    pub mode: ResizeMode,
    /// Resampling filter: `nearest`, `bilinear`, `catmull-rom` or `lanczos3`. Downscaling
    /// with the last three is antialiased (the filter widens with the scale factor).
    /// Default: `bilinear`.
    #[serde(default)]
    pub filter: Filter,
    /// Grey level (0 to 255, scaled to the sample depth) of the padding `fit` adds; alpha, if
    /// any, is opaque there. Only with `mode: fit`. Default: 0 (black).
    #[serde(default)]
    pub pad: Option<u8>,
}

/// How [`Resize`] treats the aspect ratio.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum ResizeMode {
    /// Stretch to exactly width x height.
    #[default]
    Exact,
    /// Keep the aspect ratio, fit inside, pad the rest.
    Fit,
    /// Keep the aspect ratio, cover, crop the overflow.
    Fill,
}

/// Resampling filter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Filter {
    /// Nearest neighbour: fastest, no smoothing.
    Nearest,
    /// Bilinear (triangle) convolution.
    #[default]
    Bilinear,
    /// Catmull-Rom bicubic convolution.
    CatmullRom,
    /// Lanczos with 3 lobes: sharpest, slowest.
    Lanczos3,
}

/// Pixel format of the output.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum ColorMode {
    /// As decoded (grey or colour, 8 or 16 bits, alpha kept) where the output format can
    /// store it: JPEG output gets 8-bit grey or RGB.
    #[default]
    Keep,
    /// 8-bit RGB.
    Rgb,
    /// 8-bit grey.
    Gray,
}

/// Encoding of the output.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct OutputSettings {
    /// `png` (lossless; 8 or 16 bits, alpha kept) or `jpeg` (lossy; 8-bit grey or RGB).
    /// Default: `png`.
    #[serde(default)]
    pub format: OutputFormat,
    /// JPEG quality, 1 to 100. Only with `format: jpeg`. Default: 90.
    #[serde(default)]
    pub quality: Option<u8>,
}

/// Output encoding.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum OutputFormat {
    /// PNG, fast compression.
    #[default]
    Png,
    /// Baseline JPEG.
    Jpeg,
}

impl OutputFormat {
    /// The MIME type written to `mime.type`.
    pub fn mime_type(self) -> &'static str {
        match self {
            OutputFormat::Png => "image/png",
            OutputFormat::Jpeg => "image/jpeg",
        }
    }
}

/// Default JPEG quality.
pub const DEFAULT_JPEG_QUALITY: u8 = 90;

fn default_max_pixels() -> u64 {
    loupe_sdk::imaging::DecodeLimits::DEFAULT_MAX_PIXELS
}

fn default_max_bytes() -> u64 {
    loupe_sdk::imaging::DecodeLimits::DEFAULT_MAX_BYTES as u64
}

impl PreprocessSettings {
    /// Every problem with these settings that needs no I/O to find.
    pub fn problems(&self) -> Vec<SettingsError> {
        let mut problems = Vec::new();
        if self.max_pixels == 0 {
            problems.push(SettingsError::new("max_pixels", "must be at least 1"));
        }
        if self.max_bytes == 0 {
            problems.push(SettingsError::new("max_bytes", "must be at least 1"));
        }
        if let Some(frame) = &self.frame_check {
            for (path, message) in frame.problems() {
                problems.push(SettingsError::new(path, message));
            }
        }
        if let Some(roi) = &self.roi {
            if roi.width == 0 || roi.height == 0 {
                problems.push(SettingsError::new(
                    "roi",
                    format!("width and height must be at least 1, got {roi}"),
                ));
            }
            if u64::from(roi.x) + u64::from(roi.width) > u64::from(u32::MAX)
                || u64::from(roi.y) + u64::from(roi.height) > u64::from(u32::MAX)
            {
                problems.push(SettingsError::new(
                    "roi",
                    format!("{roi} reaches beyond the largest possible image"),
                ));
            }
            let pixels = u64::from(roi.width) * u64::from(roi.height);
            if self.max_pixels > 0 && pixels > self.max_pixels {
                problems.push(SettingsError::new(
                    "roi",
                    format!(
                        "{roi} covers {pixels} pixels, more than `max_pixels` ({}) allows any image to have",
                        self.max_pixels
                    ),
                ));
            }
        }
        if let Some(resize) = &self.resize {
            for (name, value) in [("width", resize.width), ("height", resize.height)] {
                if !(1..=MAX_OUTPUT_SIDE).contains(&value) {
                    problems.push(SettingsError::new(
                        format!("resize.{name}"),
                        format!("must be within 1..={MAX_OUTPUT_SIDE}, got {value}"),
                    ));
                }
            }
            let pixels = u64::from(resize.width) * u64::from(resize.height);
            if self.max_pixels > 0 && pixels > self.max_pixels {
                problems.push(SettingsError::new(
                    "resize",
                    format!(
                        "the output of {}x{} = {pixels} pixels exceeds `max_pixels` ({})",
                        resize.width, resize.height, self.max_pixels
                    ),
                ));
            }
            if resize.pad.is_some() && resize.mode != ResizeMode::Fit {
                problems.push(SettingsError::new(
                    "resize.pad",
                    "only applies with `mode: fit` (the other modes add no padding)",
                ));
            }
        }
        match (self.output.format, self.output.quality) {
            (OutputFormat::Jpeg, Some(q)) if !(1..=100).contains(&q) => {
                problems.push(SettingsError::new(
                    "output.quality",
                    format!("must be within 1..=100, got {q}"),
                ));
            }
            (OutputFormat::Png, Some(_)) => problems.push(SettingsError::new(
                "output.quality",
                "only applies with `format: jpeg` (PNG is lossless)",
            )),
            _ => {}
        }
        problems
    }

    /// The JPEG quality in effect.
    pub fn jpeg_quality(&self) -> u8 {
        self.output.quality.unwrap_or(DEFAULT_JPEG_QUALITY)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use loupe_sdk::factory::parse_settings;
    use serde_json::json;

    fn problems(value: serde_json::Value) -> Vec<String> {
        parse_settings::<PreprocessSettings>(&value)
            .expect("parses")
            .problems()
            .iter()
            .map(ToString::to_string)
            .collect()
    }

    #[test]
    fn defaults() {
        let s = parse_settings::<PreprocessSettings>(&serde_json::Value::Null).unwrap();
        assert_eq!(s, PreprocessSettings::default());
        assert_eq!(s.max_pixels, 50_000_000);
        assert_eq!(s.max_bytes, 64 * 1024 * 1024);
        assert!(s.problems().is_empty());
    }

    #[test]
    fn full_settings_parse() {
        let s = parse_settings::<PreprocessSettings>(&json!({
            "roi": {"x": 1, "y": 2, "width": 3, "height": 4},
            "resize": {"width": 224, "height": 224, "mode": "fit", "filter": "catmull-rom", "pad": 114},
            "color": "gray",
            "output": {"format": "jpeg", "quality": 80},
            "max_pixels": 1000000,
            "max_bytes": 1000,
        }))
        .unwrap();
        assert_eq!(s.resize.unwrap().filter, Filter::CatmullRom);
        assert_eq!(s.resize.unwrap().mode, ResizeMode::Fit);
        assert_eq!(s.color, ColorMode::Gray);
        assert_eq!(s.jpeg_quality(), 80);
        assert!(s.problems().is_empty(), "{:?}", s.problems());
    }

    #[test]
    fn unknown_fields_are_located() {
        let e = parse_settings::<PreprocessSettings>(
            &json!({"resize": {"width": 1, "height": 1, "sizes": 2}}),
        )
        .unwrap_err();
        assert_eq!(e.path, "resize.sizes");
        let e = parse_settings::<PreprocessSettings>(
            &json!({"resize": {"width": 1, "height": 1, "filter": "cubic"}}),
        )
        .unwrap_err();
        assert_eq!(e.path, "resize.filter");
    }

    #[test]
    fn problems_are_named() {
        assert_eq!(
            problems(json!({"roi": {"x": 0, "y": 0, "width": 0, "height": 5}})),
            ["roi: width and height must be at least 1, got 0x5 at (0, 0)"]
        );
        assert_eq!(
            problems(json!({"resize": {"width": 0, "height": 20000}})),
            [
                "resize.width: must be within 1..=16384, got 0",
                "resize.height: must be within 1..=16384, got 20000"
            ]
        );
        assert_eq!(
            problems(json!({"resize": {"width": 10, "height": 10, "pad": 3}})),
            ["resize.pad: only applies with `mode: fit` (the other modes add no padding)"]
        );
        assert_eq!(
            problems(json!({"output": {"quality": 50}})),
            ["output.quality: only applies with `format: jpeg` (PNG is lossless)"]
        );
        assert_eq!(
            problems(json!({"output": {"format": "jpeg", "quality": 0}})),
            ["output.quality: must be within 1..=100, got 0"]
        );
        assert_eq!(
            problems(json!({"max_pixels": 100, "resize": {"width": 20, "height": 20}})),
            ["resize: the output of 20x20 = 400 pixels exceeds `max_pixels` (100)"]
        );
        assert_eq!(
            problems(json!({"max_pixels": 0, "max_bytes": 0})),
            [
                "max_pixels: must be at least 1",
                "max_bytes: must be at least 1"
            ]
        );
    }
}
