//! The plant's figures, per coil: a coil is passed or stopped, and a person re-checks every
//! coil stopped. Counted from the product verdicts the report node stored (every verdict but
//! `ok` stops the coil) against what the factory camera would have done (stop a coil when it
//! flags any angle) and, where the data knows it (`truth.label`, as `loupe synth` data does),
//! which coils are really defective.

use std::collections::BTreeMap;

use loupe_store::CoilCount;
use loupe_store::product::Verdict;
use serde::Serialize;

/// The coil figures of a set of records.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct CoilFigures {
    /// Products with at least one stored image.
    pub coils: u64,
    /// Of those, products with a stored verdict.
    pub decided: u64,
    /// Decided products per verdict.
    pub verdicts: BTreeMap<String, u64>,
    /// Products the camera would have stopped (it flagged an angle).
    pub camera_stopped: u64,
    /// Decided products Loupe stopped (every verdict but `ok`).
    pub stopped: u64,
    /// Whether the records carry the truth.
    pub truth_known: bool,
    /// Really defective products (truth).
    pub defective: u64,
    /// Of those, how many the camera would have stopped.
    pub defective_camera_stopped: u64,
    /// Of those, how many Loupe stopped.
    pub defective_stopped: u64,
    /// Good products the camera would have stopped: its false rejects.
    pub good_camera_stopped: u64,
    /// Good products Loupe stopped (among them any the camera passed).
    pub good_stopped: u64,
}

#[derive(Default)]
struct Coil {
    verdict: Option<String>,
    camera: bool,
    truth_known: bool,
    defective: bool,
}

impl CoilFigures {
    /// Counts the figures from the store's per-product rows; `camera_flag` is the camera's
    /// defect verdict and `defect_labels` the true labels that make a coil defective.
    pub fn from_counts(rows: &[CoilCount], camera_flag: &str, defect_labels: &[String]) -> Self {
        let mut coils: BTreeMap<&str, Coil> = BTreeMap::new();
        for row in rows {
            let coil = coils.entry(row.product_id.as_str()).or_default();
            if row.verdict.is_some() {
                coil.verdict = row.verdict.clone();
            }
            coil.camera |= row.camera_verdict.as_deref() == Some(camera_flag);
            if let Some(truth) = &row.truth {
                coil.truth_known = true;
                coil.defective |= defect_labels.contains(truth);
            }
        }
        let mut f = CoilFigures {
            coils: coils.len() as u64,
            truth_known: coils.values().any(|c| c.truth_known),
            ..Default::default()
        };
        for coil in coils.values() {
            f.camera_stopped += u64::from(coil.camera);
            let stopped = match &coil.verdict {
                Some(v) => {
                    f.decided += 1;
                    *f.verdicts.entry(v.clone()).or_default() += 1;
                    Verdict::stops(v)
                }
                None => false,
            };
            f.stopped += u64::from(stopped);
            if coil.defective {
                f.defective += 1;
                f.defective_camera_stopped += u64::from(coil.camera);
                f.defective_stopped += u64::from(stopped);
            } else if coil.truth_known {
                f.good_camera_stopped += u64::from(coil.camera);
                f.good_stopped += u64::from(stopped);
            }
        }
        f
    }

    /// Defective coils Loupe passed (or left undecided).
    pub fn defective_passed(&self) -> u64 {
        self.defective - self.defective_stopped
    }

    /// Share of the camera's false rejects (good coils it would stop) Loupe clears: 1 - good
    /// coils Loupe stopped / good coils the camera stopped.
    pub fn false_rejects_cleared(&self) -> Option<f64> {
        (self.good_camera_stopped > 0)
            .then(|| 1.0 - self.good_stopped as f64 / self.good_camera_stopped as f64)
    }

    /// The plant's lines: what the camera would have stopped, what Loupe stopped.
    pub fn text(&self) -> String {
        let verdicts: Vec<String> = self
            .verdicts
            .iter()
            .map(|(v, n)| format!("{n} {v}"))
            .collect();
        let mut out = format!(
            "coils: {} judged ({}); Loupe stopped {}, the camera would have stopped {}\n",
            self.decided,
            if verdicts.is_empty() {
                "none".to_string()
            } else {
                verdicts.join(", ")
            },
            self.stopped,
            self.camera_stopped
        );
        if self.decided < self.coils {
            out.push_str(&format!(
                "coils still waiting for their angles: {}\n",
                self.coils - self.decided
            ));
        }
        if self.truth_known {
            out.push_str(&format!(
                "the camera would have stopped {} good coils, Loupe stopped {}; defective coils passed: {} (of {})\n",
                self.good_camera_stopped,
                self.good_stopped,
                self.defective_passed(),
                self.defective
            ));
            if let Some(rate) = self.false_rejects_cleared() {
                out.push_str(&format!(
                    "{:.1}% of the camera's false rejects cleared\n",
                    rate * 100.0
                ));
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn count(product: &str, verdict: Option<&str>, camera: &str, truth: &str) -> CoilCount {
        CoilCount {
            product_id: product.to_string(),
            verdict: verdict.map(str::to_string),
            camera_verdict: Some(camera.to_string()),
            truth: Some(truth.to_string()),
            images: 1,
        }
    }

    #[test]
    fn coils_are_counted_against_the_camera_and_the_truth() {
        let rows = vec![
            // A defective coil both stop.
            count("a", Some("defective"), "loose_wire", "loose_wire"),
            count("a", Some("defective"), "ok", "ok"),
            // A burr the camera flags, Loupe clears.
            count("b", Some("ok"), "loose_wire", "burr"),
            count("b", Some("ok"), "ok", "ok"),
            // A good coil sent to review (an unusable frame): stopped.
            count("c", Some("review"), "ok", "ok"),
            // A good coil the camera flags and Loupe stops too.
            count("d", Some("defective"), "loose_wire", "burr"),
            // Still waiting.
            count("e", None, "ok", "ok"),
        ];
        let f = CoilFigures::from_counts(&rows, "loose_wire", &["loose_wire".to_string()]);
        assert_eq!(
            (f.coils, f.decided, f.stopped, f.camera_stopped),
            (5, 4, 3, 3)
        );
        assert_eq!(
            (f.defective, f.defective_stopped, f.defective_passed()),
            (1, 1, 0)
        );
        assert_eq!((f.good_camera_stopped, f.good_stopped), (2, 2));
        assert_eq!(f.false_rejects_cleared(), Some(0.0));
        let text = f.text();
        assert!(text.contains("the camera would have stopped 2 good coils, Loupe stopped 2; defective coils passed: 0 (of 1)"), "{text}");
        assert!(
            text.contains("coils still waiting for their angles: 1"),
            "{text}"
        );
        assert_eq!(f.verdicts["review"], 1);
    }
}
