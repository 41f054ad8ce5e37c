//! The segmentation model card (`model.yaml`): the shared input contract plus what the
//! per-pixel output means and when an image counts as defective.
//!
//! ```yaml
//! name: surface-segmenter
//! version: "1.0.0"
//! input: { name: image, shape: [-1, 1, 256, 256], layout: NCHW, dtype: float32,
//!          color_order: GRAY, resize: bilinear, scale: 1/255, mean: [0.5], std: [0.25] }
//! output:
//!   name: probabilities
//!   shape: [-1, 5, 256, 256]      # [batch, classes, height, width] at the input size
//!   layout: NCHW
//!   semantics: probabilities      # or logits (softmax over the class axis is applied)
//! labels: [background, scratch, pit, patch, inclusion]   # index 0 is background
//! pixel_rule: argmax
//! image_score: max_defect_probability                    # max over pixels of 1 - p(background)
//! image_threshold: 0.5
//! ```
//!
//! Sections the node does not read (`image_threshold_choice`, `data`, `training`, `metrics`)
//! are kept as documentation; `loupe eval` compares its figures with `metrics.test`.

use std::path::Path;

use loupe_sdk::model::card::{self as card_file, Card, CardError};
use loupe_sdk::model::input::InputSpec;
use serde::{Deserialize, Serialize};

/// A segmentation model card.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SegmenterCard {
    /// Model name, e.g. `surface-segmenter`.
    pub name: String,
    /// Model version, e.g. `1.0.0`.
    pub version: String,
    /// One-line description.
    #[serde(default)]
    pub description: String,
    /// Free-form note (provenance, caveats).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    /// What the model's image input expects.
    pub input: InputSpec,
    /// What the per-pixel class output is.
    pub output: MaskOutputSpec,
    /// Class labels; class axis index `i` is `labels[i]`, and index 0 is the background.
    pub labels: Vec<String>,
    /// How a pixel's class is chosen; only `argmax` is defined.
    #[serde(default)]
    pub pixel_rule: PixelRule,
    /// How the image-level score is computed; only `max_defect_probability` is defined.
    #[serde(default)]
    pub image_score: ImageScore,
    /// Image score at or above which the image is defective (`segment.defect`), in `[0, 1]`.
    pub image_threshold: f32,
    /// How `image_threshold` was chosen; documentation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_threshold_choice: Option<serde_json::Value>,
    /// The data the model was trained, validated and tested on; documentation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<serde_json::Value>,
    /// How the model was trained; documentation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub training: Option<serde_json::Value>,
    /// Measured figures; `loupe eval` compares against `metrics.test`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metrics: Option<serde_json::Value>,
}

/// The per-pixel class output tensor.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MaskOutputSpec {
    /// Tensor name in the ONNX graph.
    pub name: String,
    /// `[batch, classes, height, width]` (NCHW) or `[batch, height, width, classes]` (NHWC);
    /// `-1` for a dynamic batch. Height and width may differ from the input's.
    pub shape: Vec<i64>,
    /// Dimension order of `shape`.
    pub layout: loupe_sdk::model::input::Layout,
    /// What the values are.
    pub semantics: Semantics,
}

/// What the output values are.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Semantics {
    /// Per-pixel probabilities over the class axis (the graph ends in a softmax).
    Probabilities,
    /// Unnormalised per-pixel scores; softmax over the class axis is applied.
    Logits,
}

/// How a pixel's class is chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PixelRule {
    /// The class with the highest probability (ties to the lower index).
    #[default]
    Argmax,
}

/// How the image-level defect score is computed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ImageScore {
    /// The largest `1 - p(background)` over the image's pixels.
    #[default]
    MaxDefectProbability,
}

impl Card for SegmenterCard {
    fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        if self.name.is_empty() {
            problems.push("name is empty".to_string());
        }
        if self.version.is_empty() {
            problems.push("version is empty".to_string());
        }
        problems.extend(self.input.problems());
        if self.output.name.is_empty() {
            problems.push("output.name is empty".to_string());
        }
        if self.output.shape.len() != 4 {
            problems.push(format!(
                "output.shape must have 4 dimensions, got {:?}",
                self.output.shape
            ));
        } else {
            if self.output.shape[1..].iter().any(|d| *d < 1) {
                problems.push(format!(
                    "output.shape dimensions other than the batch must be fixed and positive, got {:?}",
                    self.output.shape
                ));
            }
            let classes = self.output_dims().0;
            if classes != self.labels.len() {
                problems.push(format!(
                    "output.shape has {classes} classes but labels has {}",
                    self.labels.len()
                ));
            }
        }
        if self.labels.len() > 256 {
            problems.push(format!(
                "labels has {} classes; a class mask holds at most 256",
                self.labels.len()
            ));
        }
        if self.labels.len() < 2 {
            problems.push(format!(
                "labels needs the background and at least one defect class, got {}",
                self.labels.len()
            ));
        }
        let mut seen = std::collections::BTreeSet::new();
        for label in &self.labels {
            if label.is_empty() || !seen.insert(label.as_str()) {
                problems.push(format!(
                    "label {label:?} is empty or appears more than once"
                ));
            }
        }
        if !(0.0..=1.0).contains(&self.image_threshold) {
            problems.push(format!(
                "image_threshold must be within [0, 1], got {}",
                self.image_threshold
            ));
        }
        problems
    }
}

impl SegmenterCard {
    /// Reads and checks `model.yaml` in `dir`.
    pub fn load_dir(dir: impl AsRef<Path>) -> Result<SegmenterCard, CardError> {
        card_file::load(&dir.as_ref().join(card_file::CARD_FILE))
    }

    /// Parses and checks a card from YAML text.
    pub fn from_yaml(text: &str) -> Result<SegmenterCard, CardError> {
        card_file::parse(text, Path::new(""))
    }

    /// `name@version`, as written to `segment.model`.
    pub fn id(&self) -> String {
        format!("{}@{}", self.name, self.version)
    }

    /// `(classes, height, width)` of one image's output.
    pub fn output_dims(&self) -> (usize, usize, usize) {
        let dim = |i: usize| {
            self.output
                .shape
                .get(i)
                .and_then(|d| usize::try_from(*d).ok())
                .unwrap_or(0)
        };
        match self.output.layout {
            loupe_sdk::model::input::Layout::Nchw => (dim(1), dim(2), dim(3)),
            loupe_sdk::model::input::Layout::Nhwc => (dim(3), dim(1), dim(2)),
        }
    }

    /// The defect class names (every label but the background), in index order from 1.
    pub fn defect_classes(&self) -> &[String] {
        &self.labels[1..]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CARD: &str = r#"
name: seg
version: "1"
input: { name: x, shape: [-1, 1, 8, 8], layout: NCHW, color_order: GRAY, resize: bilinear,
         scale: 1/255, mean: [0.5], std: [0.25] }
output: { name: p, shape: [-1, 3, 8, 8], layout: NCHW, semantics: probabilities }
labels: [background, scratch, pit]
pixel_rule: argmax
image_score: max_defect_probability
image_threshold: 0.4
metrics: { test: { mean_dice_defects: 0.8 } }
"#;

    #[test]
    fn parses_and_checks_a_card() {
        let card = SegmenterCard::from_yaml(CARD).unwrap();
        assert_eq!(card.id(), "seg@1");
        assert_eq!(card.output_dims(), (3, 8, 8));
        assert_eq!(card.defect_classes(), ["scratch", "pit"]);
        let bad = CARD
            .replace("[-1, 3, 8, 8]", "[-1, 4, 8, 8]")
            .replace("0.4", "1.4");
        let err = SegmenterCard::from_yaml(&bad).unwrap_err().to_string();
        assert!(
            err.contains("4 classes but labels has 3") && err.contains("image_threshold"),
            "{err}"
        );
        let unknown = SegmenterCard::from_yaml(&format!("{CARD}pixel_threshold: 2\n"));
        assert!(unknown.unwrap_err().to_string().contains("pixel_threshold"));
    }
}
