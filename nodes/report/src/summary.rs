//! What a run did, in the words of the plant: first per coil — what the camera would have
//! stopped and what Loupe stopped ([`crate::coils`]) — then per image: how many images the
//! camera flagged, how many the model confirmed and cleared, how many real defects it missed
//! (where the data knows the truth, as `loupe synth` data does).

use std::collections::BTreeMap;

use loupe_store::{ListQuery, Store, StoreError, Stored, VerdictCount};
use serde::Serialize;

use crate::coils::CoilFigures;

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
    /// The plant's figures, per coil (empty when the images name no products).
    pub coils: CoilFigures,
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
        let coils = store.coil_counts(None).await?;
        Ok(Summary {
            coils: CoilFigures::from_counts(&coils, camera_flag, defect_labels),
            ..Summary::from_counts(&rows, products, camera_flag, defect_labels)
        })
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
            coils: CoilFigures::default(),
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
        let per_coil = self.coils.coils > 0;
        let mut out = if per_coil {
            format!("{}per image: ", self.coils.text())
        } else {
            String::new()
        };
        out.push_str(&format!(
            "camera flagged {} of {} images; the model confirmed {} and cleared {}",
            self.camera_flagged, self.images, self.confirmed, self.cleared
        ));
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
        if !per_coil && !self.products.is_empty() {
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

/// What a segmentation run found, sheet by sheet: sheets with defects per class, and against
/// the ground truth where the data has it (`defect` from a `loupe synth surfaces` manifest).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct SurfaceSummary {
    /// Sheets recorded.
    pub sheets: u64,
    /// Sheets the model found a defect on.
    pub defective: u64,
    /// Sheets per defect class found.
    pub classes: BTreeMap<String, u64>,
    /// Sheets that could not be inspected (an error on the way).
    pub failed: u64,
    /// Sheets that truly have a defect (when the truth is known).
    pub real_defects: Option<u64>,
    /// Of those, how many the model missed.
    pub missed: Option<u64>,
    /// Sheets that truly are clean (when the truth is known).
    pub clean: Option<u64>,
    /// Of those, how many the model flagged.
    pub false_alarms: Option<u64>,
}

impl SurfaceSummary {
    /// Reads every record of `store` (a demo's worth: at most 100 000).
    pub async fn of(store: &Store) -> Result<SurfaceSummary, StoreError> {
        let mut records = Vec::new();
        let mut query = ListQuery {
            limit: loupe_store::query::MAX_PAGE,
            ..Default::default()
        };
        loop {
            let page = store.list(&query).await?;
            let full = page.len() as u32 >= query.limit;
            query.before = page
                .last()
                .map(|s| (s.record.recorded_ms, s.record.uuid.clone()));
            records.extend(page);
            if !full || records.len() >= 100_000 {
                break;
            }
        }
        Ok(SurfaceSummary::from_records(&records))
    }

    /// The figures of `records`.
    pub fn from_records(records: &[Stored]) -> SurfaceSummary {
        let mut s = SurfaceSummary::default();
        let mut known = false;
        let (mut real, mut missed, mut clean, mut false_alarms) = (0, 0, 0, 0);
        for stored in records {
            let r = &stored.record;
            s.sheets += 1;
            if r.error_kind.is_some() {
                s.failed += 1;
                continue;
            }
            let found = stored.verdict() == Some("defect");
            if found {
                s.defective += 1;
                for class in r.segment_classes.as_deref().unwrap_or("").split(',') {
                    let class = class.trim();
                    if !class.is_empty() {
                        *s.classes.entry(class.to_string()).or_default() += 1;
                    }
                }
            }
            match r.attributes.get("defect").map(String::as_str) {
                Some("true") => {
                    known = true;
                    real += 1;
                    missed += u64::from(!found);
                }
                Some("false") => {
                    known = true;
                    clean += 1;
                    false_alarms += u64::from(found);
                }
                _ => {}
            }
        }
        if known {
            s.real_defects = Some(real);
            s.missed = Some(missed);
            s.clean = Some(clean);
            s.false_alarms = Some(false_alarms);
        }
        s
    }

    /// A few lines a plant manager reads.
    pub fn text(&self) -> String {
        let classes: Vec<String> = self
            .classes
            .iter()
            .map(|(c, n)| format!("{c} {n}"))
            .collect();
        let mut out = format!(
            "inspected {} sheets: the model found defects on {}",
            self.sheets, self.defective
        );
        if !classes.is_empty() {
            out.push_str(&format!(" (sheets per class: {})", classes.join(", ")));
        }
        out.push('\n');
        if self.failed > 0 {
            out.push_str(&format!(
                "{} sheets could not be inspected (see the dashboard)\n",
                self.failed
            ));
        }
        if let (Some(real), Some(missed), Some(clean), Some(fa)) = (
            self.real_defects,
            self.missed,
            self.clean,
            self.false_alarms,
        ) {
            out.push_str(&format!(
                "real defects (ground truth of the generated data): {real} sheets, missed by the model: {missed}; \
                 clean sheets: {clean}, flagged by the model: {fa}\n"
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
