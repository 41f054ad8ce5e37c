//! `loupe eval` for classifiers: a labelled coil folder (`loupe synth coils` layout) through
//! the node's own path — decode, [`tensor::prepare`], batch fill, ONNX Runtime, the card's
//! decision — and the figures of the Models issue: confusion matrix, per-class precision and
//! recall, loose_wire recall, and the share of the camera's false alarms the model clears,
//! per image and per product.
//!
//! The definitions are those of `models/train/loupe_train/classifier.py::evaluate`, so the
//! figures can be compared with the card's `metrics.test`.

use std::collections::BTreeMap;
use std::path::Path;

use loupe_sdk::model::eval::{self, Comparison, EvalError, ratio};
use loupe_sdk::model::tensor;
use serde::{Deserialize, Serialize};

use crate::classifier::{Classifier, Prediction};

/// The label the plant cares about; the camera's flag.
pub const DEFECT_LABEL: &str = "loose_wire";

/// One manifest line (other fields are ignored).
#[derive(Debug, Clone, Deserialize)]
pub struct Record {
    /// Image path relative to the folder.
    pub file: String,
    /// True label of the image.
    pub label: String,
    /// Product the image belongs to (for product figures).
    #[serde(default)]
    pub product_id: Option<String>,
    /// What the factory camera said (`ok` or `loose_wire`).
    #[serde(default)]
    pub camera_verdict: Option<String>,
}

/// Precision, recall and support of one class.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ClassFigures {
    /// Of the images predicted this class, the share that are.
    pub precision: Option<f64>,
    /// Of the images of this class, the share predicted so.
    pub recall: Option<f64>,
    /// Images of this class.
    pub support: u64,
}

/// Product-level figures: a product is flagged when any of its images is.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ProductFigures {
    /// Products.
    pub products: u64,
    /// Products with a loose_wire image.
    pub loose_wire_products: u64,
    /// Of those, the share the model flags.
    pub loose_wire_recall: Option<f64>,
    /// Products the model flags that have no loose wire.
    pub model_flagged_not_loose: u64,
    /// Products the camera flags that have no loose wire.
    pub camera_flagged_not_loose: u64,
    /// Of those, how many the model clears.
    pub camera_false_alarms_cleared: u64,
    /// ... as a share.
    pub camera_false_alarms_cleared_rate: Option<f64>,
}

/// Everything `loupe eval` measures for a classifier.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    /// `name@version`.
    pub model: String,
    /// Images evaluated.
    pub images: u64,
    /// Images per true label.
    pub counts: BTreeMap<String, u64>,
    /// Share of loose_wire images called loose_wire.
    pub loose_wire_recall: Option<f64>,
    /// loose_wire images not called loose_wire.
    pub loose_wire_missed: u64,
    /// Images the camera flagged that are not loose_wire.
    pub camera_false_alarms: u64,
    /// Of those, how many the model clears.
    pub camera_false_alarms_cleared: u64,
    /// ... as a share.
    pub camera_false_alarms_cleared_rate: Option<f64>,
    /// Images the model flags that are not loose_wire.
    pub model_false_alarms: u64,
    /// Share of images whose decided label is the true one.
    pub accuracy: Option<f64>,
    /// Per class, in label order.
    pub per_class: BTreeMap<String, ClassFigures>,
    /// Rows: true label, columns: predicted label, both in the card's label order.
    pub confusion: Vec<Vec<u64>>,
    /// The card's labels.
    pub labels: Vec<String>,
    /// Product-level figures (when the manifest names products).
    pub products: Option<ProductFigures>,
}

/// Runs the model over `data_dir` (its `manifest.jsonl` and images) in batches of `batch` on
/// `workers` threads.
pub fn evaluate(
    classifier: &Classifier,
    data_dir: &Path,
    batch: usize,
    workers: usize,
) -> Result<Report, EvalError> {
    let records: Vec<Record> = eval::read_manifest(data_dir)?;
    let batch = eval::batch_size(classifier, batch);
    let labels = classifier.card().labels.clone();
    let index_of = |label: &str| labels.iter().position(|l| l == label);
    for (i, record) in records.iter().enumerate() {
        if index_of(&record.label).is_none() {
            return Err(EvalError::Record {
                path: data_dir.join(eval::MANIFEST),
                record: i + 1,
                message: format!(
                    "label {:?} is not one of the model's {labels:?}",
                    record.label
                ),
            });
        }
    }
    let input = &classifier.card().input;
    let predictions: Vec<Prediction> = eval::run_batched(
        &records,
        batch,
        workers,
        |record| {
            Ok(tensor::prepare(
                &eval::read_image(data_dir, &record.file)?,
                input,
            ))
        },
        |prepared| {
            classifier
                .classify_batch(&prepared)
                .map_err(|e| EvalError::Model(e.to_string()))
        },
    )?;

    let n = labels.len();
    let defect = index_of(DEFECT_LABEL);
    let mut confusion = vec![vec![0u64; n]; n];
    let (mut lw, mut lw_hit, mut false_alarms, mut cleared, mut model_fa) = (0, 0, 0, 0, 0);
    // product -> (truly loose, model flagged, camera flagged)
    let mut products: BTreeMap<&str, (bool, bool, bool)> = BTreeMap::new();
    for (record, prediction) in records.iter().zip(&predictions) {
        let truth = index_of(&record.label).unwrap_or(0);
        confusion[truth][prediction.index] += 1;
        let is_lw = Some(truth) == defect;
        let flagged = Some(prediction.index) == defect;
        let camera = record.camera_verdict.as_deref() == Some(DEFECT_LABEL);
        lw += u64::from(is_lw);
        lw_hit += u64::from(is_lw && flagged);
        false_alarms += u64::from(camera && !is_lw);
        cleared += u64::from(camera && !is_lw && !flagged);
        model_fa += u64::from(flagged && !is_lw);
        if let Some(product) = &record.product_id {
            let entry = products.entry(product).or_default();
            *entry = (entry.0 | is_lw, entry.1 | flagged, entry.2 | camera);
        }
    }
    let images = records.len() as u64;
    let correct: u64 = (0..n).map(|i| confusion[i][i]).sum();
    let per_class = labels
        .iter()
        .enumerate()
        .map(|(i, label)| {
            let support: u64 = confusion[i].iter().sum();
            let predicted: u64 = confusion.iter().map(|row| row[i]).sum();
            (
                label.clone(),
                ClassFigures {
                    precision: ratio(confusion[i][i], predicted),
                    recall: ratio(confusion[i][i], support),
                    support,
                },
            )
        })
        .collect();
    let products = (!products.is_empty()).then(|| {
        let count = |f: &dyn Fn(&(bool, bool, bool)) -> bool| {
            products.values().filter(|p| f(p)).count() as u64
        };
        let loose = count(&|p| p.0);
        let camera_fa = count(&|p| p.2 && !p.0);
        let camera_cleared = count(&|p| p.2 && !p.0 && !p.1);
        ProductFigures {
            products: products.len() as u64,
            loose_wire_products: loose,
            loose_wire_recall: ratio(count(&|p| p.0 && p.1), loose),
            model_flagged_not_loose: count(&|p| p.1 && !p.0),
            camera_flagged_not_loose: camera_fa,
            camera_false_alarms_cleared: camera_cleared,
            camera_false_alarms_cleared_rate: ratio(camera_cleared, camera_fa),
        }
    });
    Ok(Report {
        model: classifier.card().id(),
        images,
        counts: labels
            .iter()
            .enumerate()
            .map(|(i, l)| (l.clone(), confusion[i].iter().sum()))
            .collect(),
        loose_wire_recall: ratio(lw_hit, lw),
        loose_wire_missed: lw - lw_hit,
        camera_false_alarms: false_alarms,
        camera_false_alarms_cleared: cleared,
        camera_false_alarms_cleared_rate: ratio(cleared, false_alarms),
        model_false_alarms: model_fa,
        accuracy: ratio(correct, images),
        per_class,
        confusion,
        labels,
        products,
    })
}

impl Report {
    /// The figures that can be checked against the card's `metrics.test`.
    pub fn comparisons(&self, card_test: Option<&serde_json::Value>) -> Vec<Comparison> {
        let mut figures: Vec<(String, Option<f64>)> = vec![
            ("loose_wire_recall".into(), self.loose_wire_recall),
            (
                "camera_false_alarms_cleared_rate".into(),
                self.camera_false_alarms_cleared_rate,
            ),
            ("accuracy".into(), self.accuracy),
        ];
        for (label, f) in &self.per_class {
            figures.push((format!("per_class.{label}.precision"), f.precision));
            figures.push((format!("per_class.{label}.recall"), f.recall));
        }
        if let Some(p) = &self.products {
            figures.push(("products.loose_wire_recall".into(), p.loose_wire_recall));
            figures.push((
                "products.camera_false_alarms_cleared_rate".into(),
                p.camera_false_alarms_cleared_rate,
            ));
        }
        let borrowed: Vec<(&str, Option<f64>)> =
            figures.iter().map(|(k, v)| (k.as_str(), *v)).collect();
        eval::compare(card_test, &borrowed)
    }

    /// The report as text for people.
    pub fn text(&self) -> String {
        let pct = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{:.2}%", v * 100.0));
        let mut out = format!("model {} on {} images\n\n", self.model, self.images);
        out.push_str(&format!(
            "loose_wire recall           {} ({} missed of {})\n",
            pct(self.loose_wire_recall),
            self.loose_wire_missed,
            self.counts.get(DEFECT_LABEL).copied().unwrap_or(0)
        ));
        out.push_str(&format!(
            "camera false alarms cleared {} ({} of {})\n",
            pct(self.camera_false_alarms_cleared_rate),
            self.camera_false_alarms_cleared,
            self.camera_false_alarms
        ));
        out.push_str(&format!(
            "model false alarms          {}\naccuracy                    {}\n\n",
            self.model_false_alarms,
            pct(self.accuracy)
        ));
        out.push_str(&format!(
            "{:<12} {:>10} {:>10} {:>8}\n",
            "class", "precision", "recall", "support"
        ));
        for label in &self.labels {
            let f = &self.per_class[label];
            out.push_str(&format!(
                "{label:<12} {:>10} {:>10} {:>8}\n",
                pct(f.precision),
                pct(f.recall),
                f.support
            ));
        }
        out.push_str("\nconfusion (rows: true, columns: predicted)\n");
        out.push_str(&format!("{:<12}", ""));
        for label in &self.labels {
            out.push_str(&format!(" {label:>10}"));
        }
        out.push('\n');
        for (label, row) in self.labels.iter().zip(&self.confusion) {
            out.push_str(&format!("{label:<12}"));
            for v in row {
                out.push_str(&format!(" {v:>10}"));
            }
            out.push('\n');
        }
        if let Some(p) = &self.products {
            out.push_str(&format!(
                "\nproducts {}: loose_wire recall {} ({} products), camera false alarms cleared {} ({} of {})\n",
                p.products,
                pct(p.loose_wire_recall),
                p.loose_wire_products,
                pct(p.camera_false_alarms_cleared_rate),
                p.camera_false_alarms_cleared,
                p.camera_flagged_not_loose
            ));
        }
        out
    }
}
