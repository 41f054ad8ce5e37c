//! `loupe eval MODEL_DIR DATA_DIR [--flow FLOW] [--fault F]...`: a model over a labelled
//! folder through the serving code path, the Models issue's figures, how they compare with
//! the model card's — and, with `--flow`, the plant's coil table: the flow run over the
//! folder with this model, its product policy deciding, counted from the verdicts its report
//! node stored. `--fault` repeats everything under camera faults.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use loupe_classify::Classifier;
use loupe_report::coils::CoilFigures;
use loupe_sdk::model::eval::{Comparison, TOLERANCE_PP, comparison_table};
use loupe_segment::Segmenter;
use loupe_synth::faults::Fault;

/// Arguments of `loupe eval`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Model directory (model.onnx + model.yaml).
    pub model: PathBuf,
    /// Labelled folder (manifest.jsonl + images [+ masks]).
    pub data: PathBuf,
    /// Images per inference.
    #[arg(long, default_value_t = 8)]
    pub batch: usize,
    /// Threads decoding images and running batches.
    #[arg(long, default_value_t = 2)]
    pub workers: usize,
    /// Also write the report and the card comparison as JSON to this file.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Exit with status 1 unless every figure in the card's `metrics.test` is reproduced
    /// within 0.5 percentage points (with `--flow`, also its coil figures under each fault,
    /// `metrics.test.coils.<fault>`, where the card has them).
    #[arg(long)]
    pub check: bool,
    /// Also run this flow over the folder (its classify nodes serving MODEL_DIR, its capture
    /// reading a copy of the folder, its report writing a scratch database) and print the
    /// coil table under the flow's product policy.
    #[arg(long)]
    pub flow: Option<PathBuf>,
    /// Measure under a camera fault as well (repeatable): blur:S, jpeg:Q, exposure:F,
    /// noise:S, tilt:D, black, white, grey, static, small; `ordinary` = the seven faults of
    /// the robustness targets; `clean` = no fault. Default: clean only.
    #[arg(long = "fault", value_name = "FAULT")]
    pub faults: Vec<String>,
}

/// One condition measured: no fault, or one fault.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Condition {
    Clean,
    Fault(Fault),
}

impl std::fmt::Display for Condition {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Condition::Clean => f.write_str("clean"),
            Condition::Fault(fault) => fault.fmt(f),
        }
    }
}

fn conditions(given: &[String]) -> anyhow::Result<Vec<Condition>> {
    if given.is_empty() {
        return Ok(vec![Condition::Clean]);
    }
    let mut out = Vec::new();
    for text in given {
        match text.as_str() {
            "clean" => out.push(Condition::Clean),
            "ordinary" => out.extend(Fault::ordinary().into_iter().map(Condition::Fault)),
            other => out.push(Condition::Fault(other.parse()?)),
        }
    }
    out.dedup();
    Ok(out)
}

/// Runs the evaluation and prints the report and the comparison with the card.
pub fn eval(args: Args) -> anyhow::Result<ExitCode> {
    let conditions = conditions(&args.faults)?;
    let model = Model::load(&args.model)?;
    let scratch = Scratch::new()?;
    let mut failed = Vec::new();
    let mut json = serde_json::Map::new();
    for (i, condition) in conditions.iter().enumerate() {
        let data = match condition {
            Condition::Clean => args.data.clone(),
            Condition::Fault(fault) => {
                let dir = scratch.path().join(format!("data-{i}"));
                let started = std::time::Instant::now();
                let n = loupe_synth::faults::write_faulted_copy(&args.data, &dir, *fault, 1)
                    .with_context(|| format!("cannot apply {fault} to {}", args.data.display()))?;
                eprintln!(
                    "loupe eval: {fault} applied to {n} images in {:.1} s",
                    started.elapsed().as_secs_f64()
                );
                dir
            }
        };
        println!("== {condition}");
        let mut entry = serde_json::Map::new();
        let started = std::time::Instant::now();
        let (text, comparisons, report) = model.images(&data, args.batch, args.workers)?;
        println!("{text}");
        if *condition == Condition::Clean {
            println!(
                "compared with the card's metrics.test (held-out figures; only meaningful on the \
                 card's held-out folder):\n{}",
                comparison_table(&comparisons)
            );
            if args.check && comparisons.iter().all(|c| c.card.is_none()) {
                failed.push("the card has no metrics.test figures to compare with".to_string());
            }
            failed.extend(
                comparisons
                    .iter()
                    .filter(|c| !c.reproduced())
                    .map(|c| c.figure.clone()),
            );
            entry.insert(
                "card_comparison".into(),
                serde_json::to_value(&comparisons)?,
            );
        }
        entry.insert("report".into(), report);
        if let Some(flow) = &args.flow {
            let work = scratch.path().join(format!("flow-{i}"));
            let coils = flow_coils(flow, &args.model, &data, &work)?;
            println!(
                "coils under {} (its product policy; verdicts as its report node stored them):\n{}",
                flow.display(),
                coils.text()
            );
            let card = model
                .card_test()
                .and_then(|test| test.get("coils"))
                .and_then(|coils| coils.get(condition.to_string()));
            if let Some(card) = card {
                let differing = compare_coils(&coils, card);
                println!(
                    "compared with the card's metrics.test.coils.{condition}: {}",
                    if differing.is_empty() {
                        "reproduced".to_string()
                    } else {
                        differing.join(", ")
                    }
                );
                failed.extend(
                    differing
                        .into_iter()
                        .map(|d| format!("coils.{condition}.{d}")),
                );
            }
            entry.insert("coils".into(), serde_json::to_value(&coils)?);
        }
        println!("evaluated in {:.1} s\n", started.elapsed().as_secs_f64());
        json.insert(condition.to_string(), entry.into());
    }
    if let Some(path) = &args.json {
        std::fs::write(path, serde_json::to_string_pretty(&json)?)
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    if args.check && !failed.is_empty() {
        eprintln!(
            "loupe eval: {} card figure(s) not reproduced within {TOLERANCE_PP} percentage points: {}",
            failed.len(),
            failed.join(", ")
        );
        return Ok(ExitCode::from(1));
    }
    Ok(ExitCode::SUCCESS)
}

/// The model evaluated, loaded once for every condition.
enum Model {
    Classifier(Classifier),
    Segmenter(Segmenter),
}

impl Model {
    /// Loads the model in `dir`: a segmenter when its card says how pixels are classified.
    fn load(dir: &Path) -> anyhow::Result<Model> {
        let card_text = std::fs::read_to_string(dir.join("model.yaml"))
            .with_context(|| format!("cannot read the model card in {}", dir.display()))?;
        let is_segmenter = card_text
            .lines()
            .any(|line| line.starts_with("pixel_rule:") || line.starts_with("image_threshold:"));
        Ok(if is_segmenter {
            Model::Segmenter(Segmenter::load(dir, 1)?)
        } else {
            Model::Classifier(Classifier::load(dir, 1)?)
        })
    }

    /// The card's held-out figures (`metrics.test`).
    fn card_test(&self) -> Option<&serde_json::Value> {
        let metrics = match self {
            Model::Classifier(c) => c.card().metrics.as_ref(),
            Model::Segmenter(s) => s.card().metrics.as_ref(),
        };
        metrics.and_then(|m| m.get("test"))
    }

    /// The image-level figures on `data`: text, card comparisons, JSON.
    fn images(
        &self,
        data: &Path,
        batch: usize,
        workers: usize,
    ) -> anyhow::Result<(String, Vec<Comparison>, serde_json::Value)> {
        let test = self.card_test();
        Ok(match self {
            Model::Segmenter(segmenter) => {
                let report = loupe_segment::eval::evaluate(segmenter, data, batch, workers)?;
                (
                    report.text(),
                    report.comparisons(test),
                    serde_json::to_value(&report)?,
                )
            }
            Model::Classifier(classifier) => {
                let report = loupe_classify::eval::evaluate(classifier, data, batch, workers)?;
                (
                    report.text(),
                    report.comparisons(test),
                    serde_json::to_value(&report)?,
                )
            }
        })
    }
}

/// Runs `flow` over a copy of `data` with `model` in its classify nodes and counts the coil
/// figures from the product verdicts its (first) report node stored.
fn flow_coils(flow: &Path, model: &Path, data: &Path, work: &Path) -> anyhow::Result<CoilFigures> {
    let registry = crate::nodes::registry();
    let mut compiled = loupe_flow::compile_file(flow, &registry).map_err(|errors| {
        anyhow::anyhow!(
            "{}: {} error(s):\n{}",
            flow.display(),
            errors.len(),
            errors
                .iter()
                .map(|e| e.to_string())
                .collect::<Vec<_>>()
                .join("\n")
        )
    })?;
    let inbox = work.join("inbox");
    link_folder(data, &inbox)?;
    let database = work.join("report.db");
    let absolute = |p: &Path| std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf());
    let mut report = None;
    for node in &mut compiled.nodes {
        let Some(settings) = node.settings.as_object_mut() else {
            continue;
        };
        match node.node_type.as_str() {
            "capture" => {
                settings.insert(
                    "directory".into(),
                    absolute(&inbox).to_string_lossy().into(),
                );
                settings.insert("after".into(), "delete".into());
                settings.insert("min_age".into(), "0s".into());
                for key in ["move_to", "upload", "snapshot"] {
                    settings.remove(key);
                }
            }
            "classify" => {
                settings.insert("model".into(), absolute(model).to_string_lossy().into());
            }
            "report" => {
                settings.insert(
                    "database".into(),
                    format!("sqlite:{}", absolute(&database).display()).into(),
                );
                for key in ["dashboard", "media_dir", "notify", "retention_days", "path"] {
                    settings.remove(key);
                }
                if report.is_none() {
                    let parsed: loupe_report::ReportSettings =
                        serde_json::from_value(serde_json::Value::Object(settings.clone()))
                            .with_context(|| format!("report node `{}`", node.id))?;
                    report = Some(parsed);
                }
            }
            _ => {}
        }
    }
    let report = report.with_context(|| format!("{} has no report node", flow.display()))?;
    let options = loupe_flow::runner::RunOptions {
        once: true,
        progress: loupe_flow::runner::ProgressMode::Off,
        ..Default::default()
    };
    let runtime = super::runtime()?;
    runtime.block_on(async {
        loupe_flow::runner::run(&compiled, &registry, options, std::future::pending::<()>())
            .await
            .with_context(|| format!("running {}", flow.display()))?;
        let store = loupe_store::Store::open(
            &format!("sqlite:{}", database.display()),
            Path::new("."),
            &report.table,
        )
        .await?;
        let counts = store.coil_counts(None).await?;
        Ok(CoilFigures::from_counts(
            &counts,
            &report.camera_flag,
            &report.defect_labels,
        ))
    })
}

/// Hard-links (or copies) every file of `from` into `to`, keeping the tree.
fn link_folder(from: &Path, to: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(to).with_context(|| format!("cannot create {}", to.display()))?;
    for entry in
        std::fs::read_dir(from).with_context(|| format!("cannot read {}", from.display()))?
    {
        let entry = entry?;
        let (source, target) = (entry.path(), to.join(entry.file_name()));
        if source.is_dir() {
            link_folder(&source, &target)?;
        } else if std::fs::hard_link(&source, &target).is_err() {
            std::fs::copy(&source, &target)
                .with_context(|| format!("cannot copy {}", source.display()))?;
        }
    }
    Ok(())
}

/// The coil figures that differ from the card's: counts of defective coils stopped exactly,
/// good coils stopped within the tolerance (percentage points of the good coils).
fn compare_coils(measured: &CoilFigures, card: &serde_json::Value) -> Vec<String> {
    let mut differing = Vec::new();
    let get = |key: &str| card.get(key).and_then(serde_json::Value::as_u64);
    if let Some(v) = get("defective_stopped")
        && v != measured.defective_stopped
    {
        differing.push(format!(
            "defective_stopped (card {v}, measured {})",
            measured.defective_stopped
        ));
    }
    let good = (measured.coils - measured.defective).max(1) as f64;
    if let Some(v) = get("good_stopped") {
        let pp = (v as f64 - measured.good_stopped as f64).abs() * 100.0 / good;
        if pp > TOLERANCE_PP {
            differing.push(format!(
                "good_stopped (card {v}, measured {}, {pp:.2} pp)",
                measured.good_stopped
            ));
        }
    }
    differing
}

/// A scratch folder removed when dropped.
struct Scratch(PathBuf);

impl Scratch {
    fn new() -> anyhow::Result<Scratch> {
        let dir = std::env::temp_dir().join(format!(
            "loupe-eval-{}-{}",
            std::process::id(),
            uuid::Uuid::new_v4().simple()
        ));
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("cannot create {}", dir.display()))?;
        Ok(Scratch(dir))
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
