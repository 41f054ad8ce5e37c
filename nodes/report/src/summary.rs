//! What a run did, in the words of the plant: how many images the camera flagged, how many the
//! model confirmed and cleared, how many real defects it missed (where the data knows the
//! truth, as `loupe synth` data does), and the products' verdicts.

use serde::Serialize;

use crate::store::{Store, StoreError, VerdictCount};

/// The summary of the records in a store.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Summary {
    /// Images recorded.
    pub images: u64,
    /// Images the factory camera flagged.
    pub camera_flagged: u64,
    /// Flagged images the model also called defective.
    pub confirmed: u64,
    /// Flagged images the model cleared.
    pub cleared: u64,
    /// Images the camera passed that the model called defective.
    pub model_only: u64,
    /// Flagged images that truly have no defect (when the truth is known).
    pub camera_false_alarms: Option<u64>,
    /// Of those, how many the model cleared.
    pub false_alarms_cleared: Option<u64>,
    /// Images that truly have the defect (when the truth is known).
    pub real_defects: Option<u64>,
    /// Of those, how many the model missed.
    pub real_defects_missed: Option<u64>,
    /// Products per verdict.
    pub products: Vec<(String, u64)>,
}

impl Summary {
    /// Reads the figures from `store`; `camera_flag` is the camera's defect verdict and
    /// `defect_labels` the model labels (and true labels) that mean a defect.
    pub async fn of(
        store: &Store,
        camera_flag: &str,
        defect_labels: &[String],
    ) -> Result<Summary, StoreError> {
        let rows = store.verdict_counts().await?;
        let products = store.product_counts().await?;
        Ok(Summary::from_counts(
            &rows,
            products,
            camera_flag,
            defect_labels,
        ))
    }

    /// The figures from verdict counts.
    pub fn from_counts(
        rows: &[VerdictCount],
        products: Vec<(String, u64)>,
        camera_flag: &str,
        defect_labels: &[String],
    ) -> Summary {
        let defect = |l: &Option<String>| l.as_ref().is_some_and(|l| defect_labels.contains(l));
        let flagged = |r: &&VerdictCount| r.camera_verdict.as_deref() == Some(camera_flag);
        let sum = |f: &dyn Fn(&VerdictCount) -> bool| -> u64 {
            rows.iter().filter(|r| f(r)).map(|r| r.images).sum()
        };
        let known = rows.iter().any(|r| r.truth.is_some());
        let truth = |v: u64| known.then_some(v);
        Summary {
            images: sum(&|_| true),
            camera_flagged: sum(&|r| flagged(&r)),
            confirmed: sum(&|r| flagged(&r) && defect(&r.model_label)),
            cleared: sum(&|r| flagged(&r) && !defect(&r.model_label)),
            model_only: sum(&|r| !flagged(&r) && defect(&r.model_label)),
            camera_false_alarms: truth(sum(&|r| {
                flagged(&r) && r.truth.is_some() && !defect(&r.truth)
            })),
            false_alarms_cleared: truth(sum(&|r| {
                flagged(&r) && r.truth.is_some() && !defect(&r.truth) && !defect(&r.model_label)
            })),
            real_defects: truth(sum(&|r| defect(&r.truth))),
            real_defects_missed: truth(sum(&|r| defect(&r.truth) && !defect(&r.model_label))),
            products,
        }
    }

    /// A few lines a plant manager reads.
    pub fn text(&self) -> String {
        let pct = |a: u64, b: u64| {
            if b == 0 {
                0.0
            } else {
                a as f64 * 100.0 / b as f64
            }
        };
        let mut out = format!(
            "camera flagged {} of {} images; the model confirmed {} and cleared {}",
            self.camera_flagged, self.images, self.confirmed, self.cleared
        );
        if let (Some(fa), Some(fa_cleared)) = (self.camera_false_alarms, self.false_alarms_cleared)
        {
            out.push_str(&format!(
                " — {:.0}% fewer false alarms ({fa_cleared} of the camera's {fa} false alarms cleared)",
                pct(fa_cleared, fa)
            ));
        }
        out.push('\n');
        if self.model_only > 0 {
            out.push_str(&format!(
                "the model also called {} images defective that the camera passed\n",
                self.model_only
            ));
        }
        if let (Some(real), Some(missed)) = (self.real_defects, self.real_defects_missed) {
            out.push_str(&format!(
                "real defects (ground truth of the generated data): {real}, missed by the model: {missed}\n"
            ));
        }
        if !self.products.is_empty() {
            let total: u64 = self.products.iter().map(|(_, n)| n).sum();
            let parts: Vec<String> = self
                .products
                .iter()
                .map(|(v, n)| format!("{n} {v}"))
                .collect();
            out.push_str(&format!(
                "products: {total} judged — {}\n",
                parts.join(", ")
            ));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(camera: &str, model: &str, truth: &str, images: u64) -> VerdictCount {
        VerdictCount {
            camera_verdict: Some(camera.into()),
            model_label: Some(model.into()),
            route: None,
            truth: Some(truth.into()),
            images,
        }
    }

    #[test]
    fn figures_a_plant_manager_reads() {
        let labels = vec!["loose_wire".to_string()];
        let rows = [
            row("loose_wire", "loose_wire", "loose_wire", 37),
            row("loose_wire", "burr", "burr", 360),
            row("loose_wire", "loose_wire", "burr", 15),
            row("ok", "ok", "ok", 1186),
            row("ok", "loose_wire", "ok", 2),
        ];
        let s = Summary::from_counts(
            &rows,
            vec![("defective".into(), 9), ("ok".into(), 191)],
            "loose_wire",
            &labels,
        );
        assert_eq!(
            (s.images, s.camera_flagged, s.confirmed, s.cleared),
            (1600, 412, 52, 360)
        );
        assert_eq!(
            (s.camera_false_alarms, s.false_alarms_cleared),
            (Some(375), Some(360))
        );
        assert_eq!((s.real_defects, s.real_defects_missed), (Some(37), Some(0)));
        let text = s.text();
        assert!(text.contains("96% fewer false alarms"), "{text}");
        assert!(text.contains("missed by the model: 0"), "{text}");
        assert!(text.contains("also called 2 images defective"), "{text}");
        assert!(
            text.contains("products: 200 judged — 9 defective, 191 ok"),
            "{text}"
        );
    }
}
