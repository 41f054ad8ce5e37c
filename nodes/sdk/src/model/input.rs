//! The input half of a model card: which tensor a model takes and how an image becomes it.
//!
//! Shared by every image model Loupe serves (`classify`, `segment`) and by `loupe eval`, so a
//! card means the same thing everywhere. In YAML:
//!
//! ```yaml
//! input:
//!   name: image
//!   shape: [-1, 3, 224, 224]   # NCHW: [batch, channels, height, width]; -1 = dynamic batch
//!   layout: NCHW               # or NHWC: [batch, height, width, channels]
//!   dtype: float32
//!   color_order: RGB           # RGB, BGR or GRAY
//!   resize: bilinear           # nearest, bilinear, bicubic, lanczos3 (stretch to the input size)
//!   scale: 1/255               # value = (pixel * scale - mean[c]) / std[c]
//!   mean: [0.5, 0.5, 0.5]
//!   std: [0.5, 0.5, 0.5]
//! ```

use serde::{Deserialize, Deserializer, Serialize};

/// The image input tensor and how to produce it from an image.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InputSpec {
    /// Tensor name in the ONNX graph.
    pub name: String,
    /// Tensor shape in `layout` order; the batch dimension may be `-1` (dynamic), every other
    /// dimension must be fixed.
    pub shape: Vec<i64>,
    /// Dimension order of `shape`.
    pub layout: Layout,
    /// Element type; only `float32` is supported.
    #[serde(default)]
    pub dtype: DType,
    /// Channel order the model expects.
    pub color_order: ColorOrder,
    /// How the image is resized (stretched) to the input height and width.
    pub resize: ResizeMethod,
    /// Multiplier applied to 8-bit pixel values before mean/std; a number or a fraction such
    /// as `"1/255"`.
    #[serde(deserialize_with = "number_or_fraction")]
    pub scale: f32,
    /// Per-channel mean subtracted after scaling, in `color_order`.
    pub mean: Vec<f32>,
    /// Per-channel standard deviation divided by after subtracting the mean, in `color_order`.
    pub std: Vec<f32>,
}

/// Dimension order of an image tensor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Layout {
    /// `[batch, channels, height, width]` (PyTorch).
    #[serde(rename = "NCHW")]
    Nchw,
    /// `[batch, height, width, channels]` (TensorFlow).
    #[serde(rename = "NHWC")]
    Nhwc,
}

/// Element type of the input tensor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DType {
    /// 32-bit float.
    #[default]
    Float32,
}

/// Channel order the model was trained with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ColorOrder {
    /// Red, green, blue (PIL, torchvision).
    #[serde(rename = "RGB")]
    Rgb,
    /// Blue, green, red (OpenCV).
    #[serde(rename = "BGR")]
    Bgr,
    /// One luma channel.
    #[serde(rename = "GRAY")]
    Gray,
}

impl ColorOrder {
    /// Number of channels.
    pub fn channels(self) -> usize {
        match self {
            ColorOrder::Rgb | ColorOrder::Bgr => 3,
            ColorOrder::Gray => 1,
        }
    }
}

/// Resampling filter used to stretch the image to the input size.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ResizeMethod {
    /// Nearest neighbour.
    Nearest,
    /// Bilinear (triangle filter; widened when downscaling, like Pillow's `BILINEAR`).
    Bilinear,
    /// Bicubic (Catmull-Rom).
    Bicubic,
    /// Lanczos with a window of 3.
    Lanczos3,
}

impl InputSpec {
    /// Input height in pixels.
    pub fn height(&self) -> usize {
        self.dim(match self.layout {
            Layout::Nchw => 2,
            Layout::Nhwc => 1,
        })
    }

    /// Input width in pixels.
    pub fn width(&self) -> usize {
        self.dim(match self.layout {
            Layout::Nchw => 3,
            Layout::Nhwc => 2,
        })
    }

    /// Number of channels in the tensor.
    pub fn channels(&self) -> usize {
        self.dim(match self.layout {
            Layout::Nchw => 1,
            Layout::Nhwc => 3,
        })
    }

    /// Shape of a batch of `batch` images.
    pub fn batch_shape(&self, batch: usize) -> Vec<usize> {
        let (c, h, w) = (self.channels(), self.height(), self.width());
        match self.layout {
            Layout::Nchw => vec![batch, c, h, w],
            Layout::Nhwc => vec![batch, h, w, c],
        }
    }

    fn dim(&self, index: usize) -> usize {
        self.shape
            .get(index)
            .and_then(|d| usize::try_from(*d).ok())
            .unwrap_or(0)
    }

    /// Every inconsistency of this input contract (empty when it is usable).
    pub fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        if self.name.is_empty() {
            problems.push("input.name is empty".to_string());
        }
        if self.shape.len() != 4 {
            problems.push(format!(
                "input.shape must have 4 dimensions ({}), got {:?}",
                layout_dims(self.layout),
                self.shape
            ));
            return problems;
        }
        if self.shape[0] != -1 && self.shape[0] < 1 {
            problems.push(format!(
                "input.shape batch dimension must be -1 (dynamic) or positive, got {}",
                self.shape[0]
            ));
        }
        if self.shape[1..].iter().any(|d| *d < 1) {
            problems.push(format!(
                "input.shape dimensions other than the batch must be fixed and positive ({}), got {:?}",
                layout_dims(self.layout),
                self.shape
            ));
        }
        let channels = self.color_order.channels();
        if self.channels() != channels {
            problems.push(format!(
                "input.shape has {} channels in {} layout but color_order {:?} needs {channels}",
                self.channels(),
                layout_name(self.layout),
                self.color_order
            ));
        }
        if !(self.scale.is_finite() && self.scale > 0.0) {
            problems.push(format!("input.scale must be positive, got {}", self.scale));
        }
        if self.mean.len() != channels {
            problems.push(format!(
                "input.mean needs one value per channel ({channels}), got {}",
                self.mean.len()
            ));
        }
        if self.std.len() != channels {
            problems.push(format!(
                "input.std needs one value per channel ({channels}), got {}",
                self.std.len()
            ));
        }
        if self.std.iter().any(|s| !(s.is_finite() && *s != 0.0)) {
            problems.push(format!(
                "input.std values must be non-zero, got {:?}",
                self.std
            ));
        }
        problems
    }
}

fn layout_dims(layout: Layout) -> &'static str {
    match layout {
        Layout::Nchw => "batch, channels, height, width",
        Layout::Nhwc => "batch, height, width, channels",
    }
}

fn layout_name(layout: Layout) -> &'static str {
    match layout {
        Layout::Nchw => "NCHW",
        Layout::Nhwc => "NHWC",
    }
}

/// Accepts `0.5`, `1` or a fraction string such as `"1/255"`, which is how normalisation
/// constants are usually written and avoids copying 0.00392156862745098 by hand.
fn number_or_fraction<'de, D: Deserializer<'de>>(deserializer: D) -> Result<f32, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        Number(f64),
        Text(String),
    }
    match Raw::deserialize(deserializer)? {
        Raw::Number(n) => Ok(n as f32),
        Raw::Text(text) => parse_fraction(&text).map(|v| v as f32).ok_or_else(|| {
            serde::de::Error::custom(format!(
                "expected a number or a fraction like 1/255, got {text:?}"
            ))
        }),
    }
}

fn parse_fraction(text: &str) -> Option<f64> {
    let (numerator, denominator) = match text.split_once('/') {
        Some((n, d)) => (n.trim().parse::<f64>().ok()?, d.trim().parse::<f64>().ok()?),
        None => (text.trim().parse::<f64>().ok()?, 1.0),
    };
    (denominator != 0.0).then(|| numerator / denominator)
}
