//! The model card (`model.yaml`): what a model expects and what its output means.
//!
//! The card is the single source of truth for preprocessing. Serving and evaluation both read
//! it, because preprocessing that differs between training and serving (resize method, RGB vs
//! BGR, /255 vs mean/std) is the most common way a correct model gives wrong answers.
//!
//! ```yaml
//! name: tiny-classifier
//! version: "1.0.0"
//! input:
//!   name: image
//!   shape: [-1, 3, 32, 32]   # NCHW: [batch, channels, height, width]; -1 = dynamic batch
//!   layout: NCHW             # or NHWC: [batch, height, width, channels]
//!   dtype: float32
//!   color_order: RGB         # RGB, BGR or GRAY
//!   resize: bilinear         # nearest, bilinear, bicubic, lanczos3 (stretch to the input size)
//!   scale: 1/255             # value = (pixel * scale - mean[c]) / std[c]
//!   mean: [0.5, 0.5, 0.5]
//!   std: [0.5, 0.5, 0.5]
//! output:
//!   name: probabilities
//!   semantics: probabilities # or logits (softmax is applied by the server)
//! labels: [ok, burr, loose_wire]
//! threshold: 0.9
//! ```

use std::path::Path;

use serde::{Deserialize, Serialize};

use loupe_sdk::model::card::{self as card_file, Card};
pub use loupe_sdk::model::card::{CARD_FILE, CardError, MODEL_FILE};
pub use loupe_sdk::model::input::{ColorOrder, DType, InputSpec, Layout, ResizeMethod};

/// A model card: identity, input contract, output contract, labels, decision threshold.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelCard {
    /// Model name, e.g. `tiny-classifier`.
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
    /// What the model's class output is.
    pub output: OutputSpec,
    /// Class labels; output index `i` is `labels[i]`.
    pub labels: Vec<String>,
    /// Winning probability at or above which a decision counts as confident, in `[0, 1]`.
    pub threshold: f32,
    /// A label decided by its own probability before the arg-max (e.g. call `loose_wire`
    /// from p >= 0.015 so that no real defect is missed); without it the arg-max wins.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decision: Option<LabelThreshold>,
    /// The data the model was trained, validated and tested on; documentation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<serde_json::Value>,
    /// Measured figures (held-out metrics, timings); documentation, not read by the node.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metrics: Option<serde_json::Value>,
    /// How the model was trained (data seeds and sizes, command, epochs); documentation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub training: Option<serde_json::Value>,
}

/// A label called whenever its probability reaches `threshold`; otherwise the arg-max over
/// the other labels wins.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LabelThreshold {
    /// One of the card's labels.
    pub label: String,
    /// Probability in `[0, 1]` at or above which the label is called.
    pub threshold: f32,
    /// How the threshold was chosen (rule, data set, target); documentation only.
    #[serde(flatten)]
    pub notes: std::collections::BTreeMap<String, serde_json::Value>,
}

/// The class output tensor.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutputSpec {
    /// Tensor name in the ONNX graph; shape `[batch, labels.len()]`.
    pub name: String,
    /// What the values are.
    pub semantics: OutputSemantics,
}

/// What the output values are.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OutputSemantics {
    /// Probabilities that sum to 1 (the graph ends in a softmax).
    Probabilities,
    /// Unnormalised scores; the server applies softmax.
    Logits,
}

impl Card for ModelCard {
    fn problems(&self) -> Vec<String> {
        ModelCard::problems(self)
    }
}

impl ModelCard {
    /// Reads and checks `model.yaml` in `dir`.
    pub fn load_dir(dir: impl AsRef<Path>) -> Result<ModelCard, CardError> {
        Self::load(dir.as_ref().join(CARD_FILE))
    }

    /// Reads and checks a card file.
    pub fn load(path: impl AsRef<Path>) -> Result<ModelCard, CardError> {
        card_file::load(path.as_ref())
    }

    /// Parses and checks a card from YAML text.
    pub fn from_yaml(text: &str) -> Result<ModelCard, CardError> {
        card_file::parse(text, Path::new(""))
    }

    /// `name@version`, as written to `classify.model`.
    pub fn id(&self) -> String {
        format!("{}@{}", self.name, self.version)
    }

    /// Every inconsistency in the card (empty when it is usable).
    pub fn problems(&self) -> Vec<String> {
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
        if self.labels.len() < 2 {
            problems.push(format!(
                "labels needs at least 2 classes, got {}",
                self.labels.len()
            ));
        }
        let mut seen = std::collections::BTreeSet::new();
        for label in &self.labels {
            if label.is_empty() {
                problems.push("labels contains an empty label".to_string());
            } else if !seen.insert(label.as_str()) {
                problems.push(format!("label {label:?} appears more than once"));
            }
        }
        if !(0.0..=1.0).contains(&self.threshold) {
            problems.push(format!(
                "threshold must be within [0, 1], got {}",
                self.threshold
            ));
        }
        if let Some(rule) = &self.decision {
            if !self.labels.contains(&rule.label) {
                problems.push(format!(
                    "decision names label {:?}, which is not in labels",
                    rule.label
                ));
            }
            if !(0.0..=1.0).contains(&rule.threshold) {
                problems.push(format!(
                    "decision threshold of {:?} must be within [0, 1], got {}",
                    rule.label, rule.threshold
                ));
            }
        }
        problems
    }

    /// The index of the decided label for one probability vector (in label order): the
    /// [`ModelCard::decision`] label when its probability reaches the threshold, else the
    /// arg-max over the other labels (ties to the first, as numpy's argmax).
    pub fn decide(&self, probabilities: &[f32]) -> usize {
        let ruled = self.decision.as_ref().and_then(|rule| {
            self.labels
                .iter()
                .position(|l| *l == rule.label)
                .zip(Some(rule))
        });
        if let Some((i, rule)) = ruled
            && probabilities.get(i).is_some_and(|p| *p >= rule.threshold)
        {
            return i;
        }
        probabilities
            .iter()
            .copied()
            .enumerate()
            .filter(|(i, _)| ruled.is_none_or(|(r, _)| r != *i))
            .fold((0, f32::NEG_INFINITY), |best, (i, p)| {
                if p > best.1 { (i, p) } else { best }
            })
            .0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CARD: &str = r#"
name: m
version: "2"
input:
  name: x
  shape: [-1, 3, 4, 5]
  layout: NCHW
  color_order: BGR
  resize: bicubic
  scale: 1/255
  mean: [0.1, 0.2, 0.3]
  std: [1, 2, 3]
output: { name: y, semantics: logits }
labels: [a, b]
threshold: 0.5
"#;

    #[test]
    fn decision_rules_come_before_the_arg_max() {
        let yaml = format!(
            "{CARD}decision:\n  {{label: b, threshold: 0.2, chosen_on: validation}}\nmetrics: {{recall: 0.999}}\ntraining: {{seed: 1}}\ndata: {{train: {{seed: 2}}}}\n"
        );
        let card = ModelCard::from_yaml(&yaml).unwrap();
        assert_eq!(card.decide(&[0.75, 0.25]), 1, "b reaches its threshold");
        assert_eq!(
            card.decide(&[0.85, 0.15]),
            0,
            "below it: arg-max of the others"
        );
        assert_eq!(
            card.decision.as_ref().unwrap().notes["chosen_on"],
            "validation"
        );
        assert_eq!(card.metrics.as_ref().unwrap()["recall"], 0.999);
        let plain = ModelCard::from_yaml(CARD).unwrap();
        assert_eq!(plain.decide(&[0.5, 0.5]), 0, "ties go to the first label");
        assert_eq!(plain.decide(&[0.25, 0.75]), 1);
        let bad = format!("{CARD}decision:\n  {{label: zzz, threshold: 2}}\n");
        let problems = ModelCard::from_yaml(&bad).unwrap_err().to_string();
        assert!(
            problems.contains("zzz") && problems.contains("within [0, 1]"),
            "{problems}"
        );
    }

    #[test]
    fn parses_a_card() {
        let card = ModelCard::from_yaml(CARD).unwrap();
        assert_eq!(card.id(), "m@2");
        assert_eq!(card.input.dtype, DType::Float32);
        assert_eq!(card.input.color_order, ColorOrder::Bgr);
        assert_eq!(card.input.resize, ResizeMethod::Bicubic);
        assert_eq!(card.output.semantics, OutputSemantics::Logits);
        assert!((card.input.scale - 1.0 / 255.0).abs() < 1e-9);
        assert_eq!(
            (
                card.input.channels(),
                card.input.height(),
                card.input.width()
            ),
            (3, 4, 5)
        );
        assert_eq!(card.input.batch_shape(2), vec![2, 3, 4, 5]);
    }

    #[test]
    fn nhwc_dimensions() {
        let card = ModelCard::from_yaml(
            &CARD
                .replace("[-1, 3, 4, 5]", "[1, 4, 5, 3]")
                .replace("NCHW", "NHWC"),
        )
        .unwrap();
        assert_eq!(
            (
                card.input.channels(),
                card.input.height(),
                card.input.width()
            ),
            (3, 4, 5)
        );
        assert_eq!(card.input.batch_shape(1), vec![1, 4, 5, 3]);
    }

    #[test]
    fn numeric_scale_is_accepted() {
        let card = ModelCard::from_yaml(&CARD.replace("1/255", "0.5")).unwrap();
        assert_eq!(card.input.scale, 0.5);
        let err = ModelCard::from_yaml(&CARD.replace("1/255", "one/255")).unwrap_err();
        assert!(err.to_string().contains("fraction"), "{err}");
    }

    #[test]
    fn unknown_fields_are_rejected() {
        let err = ModelCard::from_yaml(&format!("{CARD}extra: 1\n")).unwrap_err();
        assert!(matches!(err, CardError::Parse { .. }));
        assert!(err.to_string().contains("extra"), "{err}");
    }

    #[test]
    fn inconsistencies_are_all_reported() {
        let text = CARD
            .replace("[-1, 3, 4, 5]", "[-1, 1, 4, -1]")
            .replace("std: [1, 2, 3]", "std: [1, 0]")
            .replace("labels: [a, b]", "labels: [a, a]")
            .replace("threshold: 0.5", "threshold: 1.5");
        let Err(CardError::Invalid { problems, .. }) = ModelCard::from_yaml(&text) else {
            panic!("expected an invalid card");
        };
        let all = problems.join("\n");
        assert!(all.contains("fixed and positive"), "{all}");
        assert!(all.contains("color_order"), "{all}");
        assert!(
            all.contains("input.std needs one value per channel"),
            "{all}"
        );
        assert!(all.contains("non-zero"), "{all}");
        assert!(all.contains("more than once"), "{all}");
        assert!(all.contains("threshold"), "{all}");
    }

    #[test]
    fn the_shipped_cards_are_valid() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../models/tiny-classifier");
        let nchw = ModelCard::load_dir(&root).unwrap();
        assert_eq!(nchw.id(), "tiny-classifier@1.0.0");
        assert_eq!(nchw.labels, ["ok", "burr", "loose_wire"]);
        assert_eq!(nchw.input.shape, [-1, 3, 32, 32]);
        let nhwc = ModelCard::load_dir(root.join("nhwc")).unwrap();
        assert_eq!(nhwc.input.layout, Layout::Nhwc);
        assert_eq!(nhwc.input.color_order, ColorOrder::Bgr);
    }
}
