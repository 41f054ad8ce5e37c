//! `loupe eval MODEL_DIR DATA_DIR`: a model over a labelled folder through the serving code
//! path, the Models issue's figures, and how they compare with the model card's.

use std::path::Path;
use std::process::ExitCode;

use anyhow::Context;
use loupe_classify::Classifier;
use loupe_sdk::model::eval::{Comparison, TOLERANCE_PP, comparison_table};
use loupe_segment::Segmenter;

/// What `loupe eval` was asked.
pub struct Args<'a> {
    /// Model directory (`model.onnx` + `model.yaml`).
    pub model: &'a Path,
    /// Labelled folder (`manifest.jsonl` + images).
    pub data: &'a Path,
    /// Images per inference.
    pub batch: usize,
    /// Threads decoding and running batches.
    pub workers: usize,
    /// Write the full report as JSON here.
    pub json: Option<&'a Path>,
    /// Exit 1 unless every card figure is reproduced within the tolerance.
    pub check: bool,
}

/// Runs the evaluation and prints the report and the comparison with the card.
pub fn eval(args: Args<'_>) -> anyhow::Result<ExitCode> {
    let card_text = std::fs::read_to_string(args.model.join("model.yaml"))
        .with_context(|| format!("cannot read the model card in {}", args.model.display()))?;
    // A segmentation card says how pixels are classified; a classifier card does not.
    let is_segmenter = card_text
        .lines()
        .any(|line| line.starts_with("pixel_rule:") || line.starts_with("image_threshold:"));
    let started = std::time::Instant::now();
    let (text, comparisons, json) = if is_segmenter {
        let segmenter = Segmenter::load(args.model, 1)?;
        let report =
            loupe_segment::eval::evaluate(&segmenter, args.data, args.batch, args.workers)?;
        let test = segmenter
            .card()
            .metrics
            .as_ref()
            .and_then(|m| m.get("test"));
        (
            report.text(),
            report.comparisons(test),
            serde_json::to_value(&report)?,
        )
    } else {
        let classifier = Classifier::load(args.model, 1)?;
        let report =
            loupe_classify::eval::evaluate(&classifier, args.data, args.batch, args.workers)?;
        let test = classifier
            .card()
            .metrics
            .as_ref()
            .and_then(|m| m.get("test"));
        (
            report.text(),
            report.comparisons(test),
            serde_json::to_value(&report)?,
        )
    };
    let seconds = started.elapsed().as_secs_f64();
    println!("{text}");
    println!(
        "compared with the card's metrics.test (held-out figures; only meaningful on the card's \
         held-out folder):\n{}",
        comparison_table(&comparisons)
    );
    println!("evaluated in {seconds:.1} s");
    if let Some(path) = args.json {
        let out = serde_json::json!({ "report": json, "card_comparison": comparisons, "seconds": seconds });
        std::fs::write(path, serde_json::to_string_pretty(&out)?)
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    let differing: Vec<&Comparison> = comparisons.iter().filter(|c| !c.reproduced()).collect();
    if args.check && comparisons.iter().all(|c| c.card.is_none()) {
        eprintln!(
            "loupe eval: the card has no metrics.test figures to compare with; nothing was checked"
        );
        return Ok(ExitCode::from(1));
    }
    if args.check && !differing.is_empty() {
        eprintln!(
            "loupe eval: {} card figure(s) not reproduced within {TOLERANCE_PP} percentage points: {}",
            differing.len(),
            differing
                .iter()
                .map(|c| c.figure.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        );
        return Ok(ExitCode::from(1));
    }
    Ok(ExitCode::SUCCESS)
}
