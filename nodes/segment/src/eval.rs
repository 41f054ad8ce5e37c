//! `loupe eval` for segmenters: a labelled surface folder (`loupe synth surfaces` layout:
//! images, class-index masks, `manifest.jsonl`) through the node's own path, and the figures of
//! the Models issue: per-class Dice and IoU pooled over all pixels, their mean over the defect
//! classes, and the image-level defect AUROC of the card's image score.
//!
//! Definitions as in `models/train/loupe_train/segmenter.py::evaluate`: the prediction is the
//! argmax mask at the model's output size, the true mask is stretched to that size with
//! nearest neighbour; an image is defective when its true mask has any defect pixel.

use std::collections::BTreeMap;
use std::path::Path;

use image::GrayImage;
use loupe_sdk::model::eval::{self, Comparison, EvalError, ratio};
use loupe_sdk::model::tensor;
use serde::{Deserialize, Serialize};

use crate::overlay::mask_at;
use crate::segmenter::{Segmentation, Segmenter};

/// One manifest line (other fields are ignored).
#[derive(Debug, Clone, Deserialize)]
pub struct Record {
    /// Image path relative to the folder.
    pub file: String,
    /// Mask path relative to the folder (8-bit, pixel value = class index).
    pub mask: String,
}

/// Pixel counts of one class.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct PixelCounts {
    /// Predicted and true.
    pub tp: u64,
    /// Predicted, not true.
    pub fp: u64,
    /// True, not predicted.
    pub fn_: u64,
}

/// Everything `loupe eval` measures for a segmenter.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    /// `name@version`.
    pub model: String,
    /// Images evaluated.
    pub images: u64,
    /// Images whose true mask has a defect.
    pub defective_images: u64,
    /// Dice per defect class.
    pub dice: BTreeMap<String, Option<f64>>,
    /// IoU per defect class.
    pub iou: BTreeMap<String, Option<f64>>,
    /// Mean Dice over the defect classes present (or predicted).
    pub mean_dice_defects: Option<f64>,
    /// Mean IoU over the same classes.
    pub mean_iou_defects: Option<f64>,
    /// AUROC of the image score for "image has a defect".
    pub image_auroc: Option<f64>,
    /// Share of defective images flagged at the card's image threshold.
    pub image_recall: Option<f64>,
    /// Share of clean images flagged.
    pub image_false_positive_rate: Option<f64>,
    /// Pixel counts per class (all labels, background included).
    pub pixel_counts: BTreeMap<String, PixelCounts>,
}

/// Runs the model over `data_dir` in batches of `batch` on `workers` threads.
pub fn evaluate(
    segmenter: &Segmenter,
    data_dir: &Path,
    batch: usize,
    workers: usize,
) -> Result<Report, EvalError> {
    let records: Vec<Record> = eval::read_manifest(data_dir)?;
    let batch = eval::batch_size(segmenter, batch);
    let card = segmenter.card();
    let (classes, height, width) = card.output_dims();
    let read = |name: &str| eval::read_image(data_dir, name);
    let results: Vec<(Segmentation, GrayImage)> = eval::run_batched(
        &records,
        batch,
        workers,
        |record| {
            let image = read(&record.file)?;
            let truth = mask_at(&read(&record.mask)?.to_luma8(), width as u32, height as u32);
            Ok((tensor::prepare(&image, &card.input), truth))
        },
        |items| {
            let (prepared, truths): (Vec<_>, Vec<_>) = items.into_iter().unzip();
            let outputs = segmenter
                .segment_batch(&prepared)
                .map_err(|e| EvalError::Model(e.to_string()))?;
            Ok(outputs.into_iter().zip(truths).collect())
        },
    )?;

    let mut counts = vec![PixelCounts::default(); classes];
    let mut scores = Vec::with_capacity(results.len());
    let mut defective = Vec::with_capacity(results.len());
    for (segmentation, truth) in &results {
        let mut has_defect = false;
        for (p, t) in segmentation.mask.as_raw().iter().zip(truth.as_raw()) {
            let (p, t) = (usize::from(*p), usize::from(*t).min(classes - 1));
            has_defect |= t > 0;
            if p == t {
                counts[p].tp += 1;
            } else {
                counts[p].fp += 1;
                counts[t].fn_ += 1;
            }
        }
        scores.push(segmentation.score);
        defective.push(has_defect);
    }
    let dice_of = |c: &PixelCounts| ratio(2 * c.tp, 2 * c.tp + c.fp + c.fn_);
    let iou_of = |c: &PixelCounts| ratio(c.tp, c.tp + c.fp + c.fn_);
    let mean = |values: Vec<Option<f64>>| {
        let present: Vec<f64> = values.into_iter().flatten().collect();
        (!present.is_empty()).then(|| present.iter().sum::<f64>() / present.len() as f64)
    };
    let defects = &card.labels[1..];
    let dice: BTreeMap<String, Option<f64>> = defects
        .iter()
        .zip(&counts[1..])
        .map(|(l, c)| (l.clone(), dice_of(c)))
        .collect();
    let iou: BTreeMap<String, Option<f64>> = defects
        .iter()
        .zip(&counts[1..])
        .map(|(l, c)| (l.clone(), iou_of(c)))
        .collect();
    let flagged: Vec<bool> = scores.iter().map(|s| *s >= card.image_threshold).collect();
    let count = |f: &dyn Fn(usize) -> bool| (0..flagged.len()).filter(|i| f(*i)).count() as u64;
    let n_defective = count(&|i| defective[i]);
    Ok(Report {
        model: card.id(),
        images: results.len() as u64,
        defective_images: n_defective,
        mean_dice_defects: mean(dice.values().copied().collect()),
        mean_iou_defects: mean(iou.values().copied().collect()),
        dice,
        iou,
        image_auroc: eval::auroc(&scores, &defective),
        image_recall: ratio(count(&|i| flagged[i] && defective[i]), n_defective),
        image_false_positive_rate: ratio(
            count(&|i| flagged[i] && !defective[i]),
            results.len() as u64 - n_defective,
        ),
        pixel_counts: card.labels.iter().cloned().zip(counts).collect(),
    })
}

impl Report {
    /// The figures that can be checked against the card's `metrics.test`.
    pub fn comparisons(&self, card_test: Option<&serde_json::Value>) -> Vec<Comparison> {
        let mut figures: Vec<(String, Option<f64>)> = vec![
            ("mean_dice_defects".into(), self.mean_dice_defects),
            (
                "image_auroc_max_defect_probability".into(),
                self.image_auroc,
            ),
            ("image_recall".into(), self.image_recall),
            (
                "image_false_positive_rate".into(),
                self.image_false_positive_rate,
            ),
        ];
        for (class, dice) in &self.dice {
            figures.push((format!("dice.{class}"), *dice));
        }
        let borrowed: Vec<(&str, Option<f64>)> =
            figures.iter().map(|(k, v)| (k.as_str(), *v)).collect();
        eval::compare(card_test, &borrowed)
    }

    /// The report as text for people.
    pub fn text(&self) -> String {
        let num = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.4}"));
        let mut out = format!(
            "model {} on {} images ({} with a defect)\n\n{:<12} {:>8} {:>8}\n",
            self.model, self.images, self.defective_images, "class", "Dice", "IoU"
        );
        for (class, dice) in &self.dice {
            out.push_str(&format!(
                "{class:<12} {:>8} {:>8}\n",
                num(*dice),
                num(self.iou[class])
            ));
        }
        out.push_str(&format!(
            "{:<12} {:>8} {:>8}\n\nimage AUROC {}   recall at the card's threshold {}   false positive rate {}\n",
            "mean",
            num(self.mean_dice_defects),
            num(self.mean_iou_defects),
            num(self.image_auroc),
            num(self.image_recall),
            num(self.image_false_positive_rate)
        ));
        out
    }
}
