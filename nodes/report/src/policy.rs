//! The plant's product policy, written in the flow: how each angle of a product is decided
//! (`stop`, `review` or `pass`) from its attributes, and how the angles make the product's
//! verdict.
//!
//! ```yaml
//! product_policy:
//!   angles:                       # tried in order; the first rule whose `when` holds decides
//!     - when: 'attrs["frame.usable"] == "false"'
//!       decision: review
//!       reason: unusable frame
//!     - when: 'camera.verdict == "loose_wire" && double(classify.scores.loose_wire) >= 0.2'
//!       decision: stop
//!   stop_angles: 1                # angles that must stop for the product to stop
//!   suspect_angles: 2             # or that must be `suspect` or `stop` (multi-view evidence)
//! ```
//!
//! - An angle no rule matches **passes**. An angle whose rule cannot be evaluated (a missing
//!   attribute, a bad number) goes to **review**: a frame Loupe could not judge is never
//!   taken as good.
//! - With no rules, the default policy is the model's: an angle stops when its model label
//!   is one of `defect_labels`, goes to review when it failed somewhere (`error.kind`), and
//!   passes otherwise.
//! - Rules see what `route` rules see (`loupe_sdk::expr`): every stored attribute.

use std::collections::HashMap;

use loupe_sdk::SettingsError;
use loupe_sdk::expr::{Expression, Variables};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The `product_policy` settings of a report node.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PolicySettings {
    /// Rules tried in order for each angle; the first whose `when` holds decides it. An angle
    /// no rule matches passes; one whose rule cannot be evaluated goes to review. Empty: the
    /// model's label decides (a `defect_labels` label stops, an error sends to review).
    #[serde(default)]
    pub angles: Vec<AngleRule>,
    /// How many of a product's angles must stop for the product to stop (default 1: any).
    #[serde(default = "one")]
    pub stop_angles: u32,
    /// Multi-view evidence: a product also stops when at least this many of its angles are
    /// `suspect` or `stop` (weak evidence seen from several sides). Absent: `suspect` angles
    /// alone never stop a product.
    #[serde(default)]
    pub suspect_angles: Option<u32>,
}

fn one() -> u32 {
    1
}

impl Default for PolicySettings {
    fn default() -> Self {
        PolicySettings {
            angles: Vec::new(),
            stop_angles: one(),
            suspect_angles: None,
        }
    }
}

/// One rule of the angle policy.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AngleRule {
    /// CEL condition over the angle's attributes (see `loupe_sdk::expr`).
    pub when: String,
    /// What the angle becomes when `when` holds.
    pub decision: AngleDecision,
    /// Why, in a person's words (shown with a product sent to review); default: the rule's
    /// `when`.
    #[serde(default)]
    pub reason: Option<String>,
}

/// What one angle of a product says.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum AngleDecision {
    /// The angle shows nothing wrong.
    Pass,
    /// Weak evidence of a defect: it stops the product only together with other angles
    /// (`suspect_angles`).
    Suspect,
    /// A person must look (an unusable frame, a failed angle, an undecidable rule).
    Review,
    /// The angle shows a defect: it stops the product.
    Stop,
}

impl PolicySettings {
    /// Every problem with these settings (expressions that do not compile), with its path.
    pub fn problems(&self) -> Vec<SettingsError> {
        let mut problems = Vec::new();
        for (i, rule) in self.angles.iter().enumerate() {
            if let Err(e) = Expression::compile(&rule.when) {
                problems.push(SettingsError::new(format!("angles[{i}].when"), e));
            }
        }
        if self.stop_angles == 0 {
            problems.push(SettingsError::new("stop_angles", "must be at least 1"));
        }
        if self.suspect_angles == Some(0) {
            problems.push(SettingsError::new("suspect_angles", "must be at least 1"));
        }
        problems
    }
}

/// A compiled product policy.
#[derive(Debug)]
pub struct Policy {
    rules: Vec<(Expression, AngleDecision, String)>,
    stop_angles: u32,
    suspect_angles: Option<u32>,
    defect_labels: Vec<String>,
}

/// The facts of one stored angle a policy decides from.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AngleFacts<'a> {
    /// The model's label.
    pub model_label: Option<&'a str>,
    /// `error.kind`, when the image failed somewhere.
    pub error_kind: Option<&'a str>,
    /// Every attribute of the record.
    pub attributes: Option<&'a HashMap<String, String>>,
}

impl Policy {
    /// Compiles `settings` (validated: an expression that does not compile is an error here).
    pub fn new(settings: &PolicySettings, defect_labels: &[String]) -> Result<Policy, String> {
        let rules = settings
            .angles
            .iter()
            .enumerate()
            .map(|(i, rule)| {
                let expression = Expression::compile(&rule.when)
                    .map_err(|e| format!("product_policy.angles[{i}].when: {e}"))?;
                let reason = rule.reason.clone().unwrap_or_else(|| rule.when.clone());
                Ok((expression, rule.decision, reason))
            })
            .collect::<Result<_, String>>()?;
        Ok(Policy {
            rules,
            stop_angles: settings.stop_angles.max(1),
            suspect_angles: settings.suspect_angles.map(|n| n.max(1)),
            defect_labels: defect_labels.to_vec(),
        })
    }

    /// The default policy: the model's label decides.
    pub fn model_labels(defect_labels: &[String]) -> Policy {
        Policy {
            rules: Vec::new(),
            stop_angles: 1,
            suspect_angles: None,
            defect_labels: defect_labels.to_vec(),
        }
    }

    /// Whether a product whose angles say this stops: enough `stop` angles, or enough `stop`
    /// and `suspect` angles together.
    pub fn stops(&self, stop: u32, suspect: u32) -> bool {
        stop >= self.stop_angles || self.suspect_angles.is_some_and(|n| stop + suspect >= n)
    }

    /// The decision on one angle, and why.
    pub fn decide(&self, angle: &AngleFacts<'_>) -> (AngleDecision, String) {
        if self.rules.is_empty() {
            if let Some(kind) = angle.error_kind {
                return (AngleDecision::Review, format!("failed: {kind}"));
            }
            return match angle.model_label {
                Some(label) if self.defect_labels.iter().any(|d| d == label) => {
                    (AngleDecision::Stop, label.to_string())
                }
                _ => (AngleDecision::Pass, String::new()),
            };
        }
        let empty = HashMap::new();
        let variables = Variables::new(angle.attributes.unwrap_or(&empty), 0);
        for (expression, decision, reason) in &self.rules {
            match expression.test(&variables) {
                Ok(true) => return (*decision, reason.clone()),
                Ok(false) => {}
                Err(e) => {
                    let why = match angle.error_kind {
                        Some(kind) => format!("failed: {kind}"),
                        None => format!("policy undecided: {}", e.message),
                    };
                    return (AngleDecision::Review, why);
                }
            }
        }
        (AngleDecision::Pass, String::new())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attrs(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn recheck() -> Policy {
        let settings: PolicySettings = serde_json::from_value(serde_json::json!({
            "angles": [
                {"when": "attrs[\"frame.usable\"] == \"false\"", "decision": "review", "reason": "unusable frame"},
                {"when": "camera.verdict == \"loose_wire\" && double(classify.scores.loose_wire) >= 0.2", "decision": "stop"},
                {"when": "double(classify.scores.loose_wire) >= 0.9", "decision": "stop"},
            ]
        }))
        .unwrap();
        assert!(settings.problems().is_empty());
        Policy::new(&settings, &["loose_wire".to_string()]).unwrap()
    }

    fn decide(policy: &Policy, pairs: &[(&str, &str)]) -> AngleDecision {
        let a = attrs(pairs);
        policy
            .decide(&AngleFacts {
                attributes: Some(&a),
                ..Default::default()
            })
            .0
    }

    #[test]
    fn a_camera_passed_angle_below_the_override_is_not_stopped() {
        let p = recheck();
        let ok = [("frame.usable", "true"), ("camera.verdict", "ok")];
        let with = |score: &str| {
            let mut v = ok.to_vec();
            v.push(("classify.scores.loose_wire", score));
            decide(&p, &v)
        };
        assert_eq!(
            with("0.5"),
            AngleDecision::Pass,
            "camera passed, model unsure"
        );
        assert_eq!(
            with("0.95"),
            AngleDecision::Stop,
            "camera passed, model very sure"
        );
        let flagged = [
            ("frame.usable", "true"),
            ("camera.verdict", "loose_wire"),
            ("classify.scores.loose_wire", "0.3"),
        ];
        assert_eq!(
            decide(&p, &flagged),
            AngleDecision::Stop,
            "camera and model agree"
        );
    }

    #[test]
    fn unusable_and_undecidable_angles_go_to_review() {
        let p = recheck();
        let a = attrs(&[("frame.usable", "false"), ("frame.reason", "too dark")]);
        let (d, why) = p.decide(&AngleFacts {
            attributes: Some(&a),
            ..Default::default()
        });
        assert_eq!((d, why.as_str()), (AngleDecision::Review, "unusable frame"));
        // A failed image has no classify.* attributes: review, with the failure named.
        let a = attrs(&[("frame.usable", "true"), ("camera.verdict", "ok")]);
        let (d, why) = p.decide(&AngleFacts {
            attributes: Some(&a),
            error_kind: Some("invalid_input"),
            ..Default::default()
        });
        assert_eq!(
            (d, why.as_str()),
            (AngleDecision::Review, "failed: invalid_input")
        );
        let (d, why) = p.decide(&AngleFacts::default());
        assert_eq!(d, AngleDecision::Review);
        assert!(why.starts_with("policy undecided"), "{why}");
    }

    #[test]
    fn the_default_policy_is_the_model_label() {
        let p = Policy::model_labels(&["loose_wire".to_string()]);
        let facts = |label, error| AngleFacts {
            model_label: Some(label),
            error_kind: error,
            attributes: None,
        };
        assert_eq!(p.decide(&facts("loose_wire", None)).0, AngleDecision::Stop);
        assert_eq!(p.decide(&facts("burr", None)).0, AngleDecision::Pass);
        assert_eq!(
            p.decide(&facts("ok", Some("decode"))).0,
            AngleDecision::Review
        );
    }

    #[test]
    fn bad_rules_are_located() {
        let settings: PolicySettings = serde_json::from_value(serde_json::json!({
            "angles": [{"when": "classify.label == ", "decision": "stop"}],
            "stop_angles": 0
        }))
        .unwrap();
        let paths: Vec<_> = settings.problems().into_iter().map(|p| p.path).collect();
        assert_eq!(paths, ["angles[0].when", "stop_angles"]);
    }

    #[test]
    fn suspect_angles_stop_a_product_together() {
        let settings: PolicySettings = serde_json::from_value(serde_json::json!({
            "angles": [{"when": "true", "decision": "suspect"}],
            "suspect_angles": 2
        }))
        .unwrap();
        let p = Policy::new(&settings, &[]).unwrap();
        assert!(!p.stops(0, 1), "one weak angle is not enough");
        assert!(p.stops(0, 2) && p.stops(1, 0) && p.stops(1, 1));
        let plain = Policy::model_labels(&[]);
        assert!(
            !plain.stops(0, 5),
            "without suspect_angles, suspects never stop"
        );
    }
}
