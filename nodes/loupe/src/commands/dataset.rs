//! `loupe dataset export`: the images people reviewed in the report node's dashboard, as a
//! training set for fine-tuning (`models/train`, `loupe_train.finetune`).
//!
//! ```text
//! DIR/dataset.json     {"kind": "feedback", "generator": "loupe dataset export", "since": ...,
//!                       "exported_ms": ..., "images": N, "classes": {...}, "val_fraction": ...,
//!                       "skipped": {"no_media": 0, "missing_file": 0}}
//! DIR/manifest.jsonl   one JSON object per image, sorted by `file`
//! DIR/<label>/<name>   a copy of the original image (ImageFolder layout)
//! ```
//!
//! A record is exported when its latest review is at or after `--since`; its label is that
//! review's label. The split is decided per product (all angles of one product in the same
//! split; a record without product is its own product) by a hash of the product id, so
//! exporting again gives the same split. The database, table and media directory are the
//! flow's report node's, resolved against the flow file's directory as the node does, or
//! given on the command line.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Component, Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, anyhow, bail};
use loupe_flow::model::CompiledNode;
use loupe_report::ReportSettings;
use loupe_sdk::factory::parse_settings;
use loupe_store::query::MAX_PAGE;
use loupe_store::{ListQuery, Stored};
use serde::Serialize;
use sha2::{Digest, Sha256};

/// What `dataset.json` says the folder is.
const KIND: &str = "feedback";
/// Who wrote the folder (an earlier export is recognised by it).
const GENERATOR: &str = "loupe dataset export";
/// The manifest's file name.
const MANIFEST: &str = "manifest.jsonl";
/// The summary's file name.
const DATASET: &str = "dataset.json";
/// How many skipped records are named one by one on stderr.
const WARN_EACH: usize = 20;

/// `loupe dataset` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Export the reviewed images as a fine-tuning set: one folder per reviewed label.
    ///
    /// Takes every record whose latest review is at or after `--since` (UTC), labelled with
    /// that review's label, and writes DIR/<label>/<image> (a copy of the original from the
    /// media directory), DIR/manifest.jsonl (one line per image, sorted by file; `split`
    /// train or val, decided per product by a stable hash) and DIR/dataset.json (counts).
    /// Records without media, or whose image file is gone, are skipped and counted.
    Export(Args),
}

/// Runs a `loupe dataset` subcommand.
pub fn dataset(what: Command) -> anyhow::Result<ExitCode> {
    match what {
        Command::Export(args) => export(&args),
    }
}

/// The arguments of `loupe dataset export`.
#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    /// First day of reviews to take, `YYYY-MM-DD` (UTC, from the start of the day).
    #[arg(long)]
    pub since: String,
    /// Output directory (created; must be empty unless `--force`).
    #[arg(long)]
    pub out: PathBuf,
    /// Write into a non-empty DIR: an earlier export there is replaced, other files are
    /// left alone.
    #[arg(long)]
    pub force: bool,
    /// The flow whose report node holds the database, table and media directory.
    #[arg(long, default_value = "flows/loose-wire-recheck.yaml")]
    pub flow: PathBuf,
    /// The report node of the flow (default: the first one with a database).
    #[arg(long)]
    pub node: Option<String>,
    /// The database instead of the flow's: `sqlite:PATH` (relative to the working
    /// directory) or `postgres://USER@HOST/DB`; needs `--media`.
    #[arg(long, conflicts_with_all = ["flow", "node"], requires = "media")]
    pub database: Option<String>,
    /// The table of the records (default: the report node's, else `inspections`).
    #[arg(long)]
    pub table: Option<String>,
    /// The media directory instead of the report node's `media_dir`.
    #[arg(long)]
    pub media: Option<PathBuf>,
    /// Fraction of products put in the val split (0..=1).
    #[arg(long, default_value_t = 0.2)]
    pub val_fraction: f64,
}

/// Where the reviewed records and their images are.
#[derive(Debug, Clone, PartialEq)]
pub struct Source {
    /// Database URL as the report node has it.
    pub url: String,
    /// What relative SQLite paths resolve against.
    pub base_dir: PathBuf,
    /// Table of the records.
    pub table: String,
    /// The media directory, if the records' images are kept.
    pub media_dir: Option<PathBuf>,
    /// Where this came from, for messages (`report node `records` of flows/x.yaml`).
    pub origin: String,
}

/// One line of `manifest.jsonl`.
#[derive(Debug, Clone, Serialize)]
pub struct Entry {
    /// The image, relative to the output directory (`<label>/<name>`).
    pub file: String,
    /// The latest review's label.
    pub label: String,
    /// `train` or `val`.
    pub split: &'static str,
    /// The record's uuid.
    pub uuid: String,
    /// `product.id`.
    pub product_id: Option<String>,
    /// `camera.angle`.
    pub angle: Option<i32>,
    /// `line`.
    pub line: Option<String>,
    /// What the factory camera said.
    pub camera_verdict: Option<String>,
    /// The model that judged the image.
    pub model: Option<String>,
    /// The model's label.
    pub model_label: Option<String>,
    /// The model's score.
    pub model_score: Option<f64>,
    /// Who reviewed last.
    pub reviewer: String,
    /// When, Unix epoch milliseconds.
    pub reviewed_ms: i64,
    /// `coil` (a classifier's record), `surface` (a segmenter's) or null.
    pub source_kind: Option<&'static str>,
}

/// `dataset.json`.
#[derive(Debug, Clone, Serialize)]
struct Summary {
    kind: &'static str,
    generator: &'static str,
    since: String,
    exported_ms: i64,
    images: usize,
    classes: BTreeMap<String, usize>,
    val_fraction: f64,
    skipped: Skipped,
}

/// Reviewed records left out, by reason.
#[derive(Debug, Clone, Default, Serialize)]
struct Skipped {
    no_media: usize,
    missing_file: usize,
}

/// Exports the reviewed images and prints a summary.
pub fn export(args: &Args) -> anyhow::Result<ExitCode> {
    let since_ms = loupe_store::day::start_ms(&args.since).map_err(|e| anyhow!("--since {e}"))?;
    anyhow::ensure!(
        args.val_fraction.is_finite() && (0.0..=1.0).contains(&args.val_fraction),
        "--val-fraction {} is not a fraction between 0 and 1",
        args.val_fraction
    );
    check_out(&args.out, args.force)?;
    let source = source(args)?;
    let Some(media_dir) = source.media_dir.clone() else {
        bail!(
            "{} keeps no media (no `media_dir`): there are no images to export; give --media DIR",
            source.origin
        );
    };
    let stored = read_reviewed(&source, since_ms)?;

    // Decide everything before writing anything: a bad label refuses the whole export.
    let mut skipped = Skipped::default();
    let mut warnings = Vec::new();
    let mut planned: Vec<(Stored, PathBuf, String)> = Vec::new();
    for s in stored {
        let Some(review) = &s.review else { continue };
        check_label(&review.label).with_context(|| {
            format!(
                "record {} was reviewed by {} as `{}`",
                s.record.uuid, review.reviewer, review.label
            )
        })?;
        let Some(media_path) = s.record.media_path.clone().filter(|p| !p.is_empty()) else {
            skipped.no_media += 1;
            warnings.push(format!("record {}: no media kept", s.record.uuid));
            continue;
        };
        let Some(from) = inside(&media_dir, &media_path) else {
            skipped.missing_file += 1;
            warnings.push(format!(
                "record {}: media path `{media_path}` is not inside the media directory",
                s.record.uuid
            ));
            continue;
        };
        if !from.is_file() {
            skipped.missing_file += 1;
            warnings.push(format!(
                "record {}: image {} is missing",
                s.record.uuid,
                from.display()
            ));
            continue;
        }
        planned.push((s, from, media_path));
    }
    // A stable order, so that name clashes resolve the same way every time.
    planned.sort_by(|a, b| (&a.2, &a.0.record.uuid).cmp(&(&b.2, &b.0.record.uuid)));

    prepare_out(&args.out)?;
    let mut entries = Vec::new();
    let mut taken: BTreeSet<String> = BTreeSet::new();
    for (s, from, media_path) in planned {
        let review = s.review.as_ref().expect("planned records are reviewed");
        let label = review.label.clone();
        let file = unique_file(&label, &media_path, &s.record.uuid, &taken);
        let to = args.out.join(&file);
        std::fs::create_dir_all(args.out.join(&label))
            .with_context(|| format!("cannot create {}", args.out.join(&label).display()))?;
        match std::fs::copy(&from, &to) {
            Ok(_) => {}
            // Deleted since it was looked at (retention): skipped like any missing file.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && !from.exists() => {
                skipped.missing_file += 1;
                warnings.push(format!(
                    "record {}: image {} is missing",
                    s.record.uuid,
                    from.display()
                ));
                continue;
            }
            Err(e) => {
                return Err(e).with_context(|| {
                    format!("cannot copy {} to {}", from.display(), to.display())
                });
            }
        }
        taken.insert(file.clone());
        let product = s
            .record
            .product_id
            .clone()
            .unwrap_or_else(|| s.record.uuid.clone());
        entries.push(Entry {
            file,
            label,
            split: split_of(&product, args.val_fraction),
            uuid: s.record.uuid.clone(),
            product_id: s.record.product_id.clone(),
            angle: s.record.angle,
            line: s.record.line.clone(),
            camera_verdict: s.record.camera_verdict.clone(),
            model: s.record.model.clone(),
            model_label: s.record.model_label.clone(),
            model_score: s.record.model_score,
            reviewer: review.reviewer.clone(),
            reviewed_ms: review.reviewed_ms,
            source_kind: source_kind(&s),
        });
    }
    entries.sort_by(|a, b| a.file.cmp(&b.file));

    let mut manifest = String::new();
    for entry in &entries {
        manifest.push_str(&serde_json::to_string(entry)?);
        manifest.push('\n');
    }
    let manifest_path = args.out.join(MANIFEST);
    std::fs::write(&manifest_path, manifest)
        .with_context(|| format!("cannot write {}", manifest_path.display()))?;
    let mut classes: BTreeMap<String, usize> = BTreeMap::new();
    for entry in &entries {
        *classes.entry(entry.label.clone()).or_default() += 1;
    }
    let summary = Summary {
        kind: KIND,
        generator: GENERATOR,
        since: args.since.clone(),
        exported_ms: loupe_sdk::flowfile::now_ms(),
        images: entries.len(),
        classes,
        val_fraction: args.val_fraction,
        skipped,
    };
    let dataset_path = args.out.join(DATASET);
    std::fs::write(
        &dataset_path,
        serde_json::to_string_pretty(&summary)? + "\n",
    )
    .with_context(|| format!("cannot write {}", dataset_path.display()))?;

    for warning in warnings.iter().take(WARN_EACH) {
        eprintln!("loupe: warning: skipped {warning}");
    }
    if warnings.len() > WARN_EACH {
        eprintln!(
            "loupe: warning: ... and {} more skipped",
            warnings.len() - WARN_EACH
        );
    }
    if entries.is_empty() {
        eprintln!(
            "loupe: warning: no reviewed images since {} in {}",
            args.since, source.origin
        );
    }
    print_summary(args, &source, &entries, &summary);
    Ok(ExitCode::SUCCESS)
}

/// `train` or `val` for a product: the first 8 bytes of the SHA-256 of its id, as a fraction
/// of `u64::MAX`, below `val_fraction` is `val`. The same id always lands in the same split.
pub fn split_of(product: &str, val_fraction: f64) -> &'static str {
    let digest = Sha256::digest(product.as_bytes());
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    let at = u64::from_be_bytes(first) as f64 / u64::MAX as f64;
    if at < val_fraction { "val" } else { "train" }
}

/// `coil` for a classifier's record, `surface` for a segmenter's, else none.
fn source_kind(stored: &Stored) -> Option<&'static str> {
    let has = |prefix: &str| {
        stored
            .record
            .attributes
            .keys()
            .any(|k| k.starts_with(prefix))
    };
    if has("classify.") {
        Some("coil")
    } else if has("segment.") {
        Some("surface")
    } else {
        None
    }
}

/// A label must be usable as a folder name as it is: `[A-Za-z0-9_.-]`, not starting with a
/// dot, and not one of the export's own files.
fn check_label(label: &str) -> anyhow::Result<()> {
    if label.is_empty()
        || label.starts_with('.')
        || label == MANIFEST
        || label == DATASET
        || !label
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
    {
        bail!(
            "label `{label}` cannot be a folder name: labels may only use letters, digits, \
             `_`, `.` and `-` (not starting with `.`); correct the review in the dashboard"
        );
    }
    Ok(())
}

/// `media_dir/media_path` when `media_path` is a plain relative path (no `..`, not absolute).
fn inside(media_dir: &Path, media_path: &str) -> Option<PathBuf> {
    let path = Path::new(media_path);
    path.components()
        .all(|c| matches!(c, Component::Normal(_)))
        .then(|| media_dir.join(path))
}

/// `<label>/<file name>`, made unique with the record's uuid if another image took it.
fn unique_file(label: &str, media_path: &str, uuid: &str, taken: &BTreeSet<String>) -> String {
    let name = media_path.rsplit(['/', '\\']).next().unwrap_or(media_path);
    let name = loupe_report::media::sanitize(name);
    let name = if name.is_empty() {
        "image".to_string()
    } else {
        name
    };
    let file = format!("{label}/{name}");
    if !taken.contains(&file) {
        return file;
    }
    let path = Path::new(&name);
    let stem = path
        .file_stem()
        .map_or_else(|| name.clone(), |s| s.to_string_lossy().into_owned());
    let uuid = loupe_report::media::sanitize(&uuid.replace('-', ""));
    match path.extension() {
        Some(ext) => format!("{label}/{stem}_{uuid}.{}", ext.to_string_lossy()),
        None => format!("{label}/{stem}_{uuid}"),
    }
}

/// Refuses an output path that is a file, or a non-empty directory without `--force`.
fn check_out(out: &Path, force: bool) -> anyhow::Result<()> {
    match std::fs::metadata(out) {
        Ok(m) if !m.is_dir() => bail!("--out {} exists and is not a directory", out.display()),
        Ok(_) => {
            let mut entries = std::fs::read_dir(out)
                .with_context(|| format!("cannot read --out {}", out.display()))?;
            if entries.next().is_some() && !force {
                bail!(
                    "--out {} is not empty: choose a new directory, or pass --force to write \
                     into it (an earlier export there is replaced)",
                    out.display()
                );
            }
            Ok(())
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e).with_context(|| format!("cannot read --out {}", out.display())),
    }
}

/// Creates the output directory, removing an earlier export's files from it.
fn prepare_out(out: &Path) -> anyhow::Result<()> {
    if let Some(earlier) = earlier_export(out) {
        for label in earlier.keys().filter(|l| check_label(l).is_ok()) {
            let dir = out.join(label);
            if dir.is_dir() {
                std::fs::remove_dir_all(&dir)
                    .with_context(|| format!("cannot remove the earlier {}", dir.display()))?;
            }
        }
        for file in [MANIFEST, DATASET] {
            let path = out.join(file);
            if path.is_file() {
                std::fs::remove_file(&path)
                    .with_context(|| format!("cannot remove the earlier {}", path.display()))?;
            }
        }
    }
    std::fs::create_dir_all(out).with_context(|| format!("cannot create {}", out.display()))
}

/// The classes of an earlier export in `out`, if `out/dataset.json` is one.
fn earlier_export(out: &Path) -> Option<BTreeMap<String, serde_json::Value>> {
    let bytes = std::fs::read(out.join(DATASET)).ok()?;
    let value: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
    if value.get("generator")?.as_str()? != GENERATOR {
        return None;
    }
    let classes = value.get("classes")?.as_object()?;
    Some(
        classes
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
    )
}

/// The database, table and media directory: from the command line, else from the flow.
fn source(args: &Args) -> anyhow::Result<Source> {
    let cwd = PathBuf::from(".");
    let mut source = match &args.database {
        Some(url) => Source {
            url: url.clone(),
            base_dir: cwd.clone(),
            table: "inspections".to_string(),
            media_dir: None,
            origin: format!("database {}", loupe_store::redact(url)),
        },
        None => from_flow(&args.flow, args.node.as_deref())?,
    };
    if let Some(table) = &args.table {
        source.table = table.clone();
    }
    if let Some(media) = &args.media {
        source.media_dir = Some(media.clone());
    }
    anyhow::ensure!(
        loupe_store::valid_table(&source.table),
        "table `{}` is not a plain table name (letters, digits, _)",
        source.table
    );
    Ok(source)
}

/// The report node `node` (default: the first with a database) of the flow file `flow`:
/// the flow is compiled as `loupe run` compiles it (an invalid flow is refused with its
/// errors), the node's settings are read with the report node's own settings type, and its
/// paths are resolved against the flow file's directory as the node resolves them.
pub fn from_flow(flow: &Path, node: Option<&str>) -> anyhow::Result<Source> {
    let compiled = loupe_flow::compile_file(flow, &crate::nodes::registry()).map_err(|errors| {
        let listed: Vec<String> = errors.iter().map(ToString::to_string).collect();
        anyhow!(
            "the flow {} is not valid ({} error(s)):\n{}",
            flow.display(),
            errors.len(),
            listed.join("\n")
        )
    })?;
    let reports: Vec<&CompiledNode> = compiled
        .nodes
        .iter()
        .filter(|n| n.node_type == "report")
        .collect();
    let ids = || {
        let ids: Vec<String> = reports.iter().map(|n| format!("`{}`", n.id)).collect();
        if ids.is_empty() {
            "none".to_string()
        } else {
            ids.join(", ")
        }
    };
    let settings_of = |n: &CompiledNode| -> anyhow::Result<ReportSettings> {
        parse_settings(&n.settings)
            .map_err(|e| anyhow!("report node `{}` of the flow {}: {e}", n.id, flow.display()))
    };
    let (id, settings) = match node {
        Some(id) => {
            let found = compiled.nodes.iter().find(|n| n.id == id).ok_or_else(|| {
                anyhow!(
                    "no node `{id}` in the flow {} (its report nodes: {})",
                    flow.display(),
                    ids()
                )
            })?;
            anyhow::ensure!(
                found.node_type == "report",
                "node `{id}` of the flow {} is a `{}` node, not a `report` node",
                flow.display(),
                found.node_type
            );
            let settings = settings_of(found)?;
            anyhow::ensure!(
                settings.database_url().is_some(),
                "report node `{id}` of the flow {} keeps no database (only a JSON-lines `path`)",
                flow.display()
            );
            (id.to_string(), settings)
        }
        None => {
            let mut first = None;
            for n in &reports {
                let settings = settings_of(n)?;
                if settings.database_url().is_some() {
                    first = Some((n.id.clone(), settings));
                    break;
                }
            }
            first.ok_or_else(|| {
                anyhow!(
                    "no report node with a database in the flow {} (its report nodes: {}); \
                     name another flow with --flow, or give --database and --media",
                    flow.display(),
                    ids()
                )
            })?
        }
    };
    let base_dir = compiled.base_dir.clone();
    let resolve = |p: &Path| {
        if p.is_absolute() {
            p.to_path_buf()
        } else {
            base_dir.join(p)
        }
    };
    Ok(Source {
        url: settings.database_url().expect("checked above"),
        base_dir: base_dir.clone(),
        table: settings.table.clone(),
        media_dir: settings.media_dir.as_deref().map(resolve),
        origin: format!("report node `{id}` of {}", flow.display()),
    })
}

/// Every record whose latest review is at or after `since_ms`, newest first.
fn read_reviewed(source: &Source, since_ms: i64) -> anyhow::Result<Vec<Stored>> {
    let shown = loupe_store::redact(&source.url);
    // Opening a SQLite store creates it: a missing file is a wrong path, not an empty export.
    if let Some(path) = source.url.strip_prefix("sqlite:") {
        let path = path.strip_prefix("//").unwrap_or(path);
        let file = source.base_dir.join(path);
        anyhow::ensure!(
            file.is_file(),
            "cannot open the database {shown} of {}: {} does not exist (has the flow run?)",
            source.origin,
            file.display()
        );
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let result = rt.block_on(async {
        let store = loupe_store::Store::open(&source.url, &source.base_dir, &source.table)
            .await
            .with_context(|| format!("cannot open the database of {}", source.origin))?;
        let mut all = Vec::new();
        let mut before = None;
        loop {
            let page = store
                .list(&ListQuery {
                    reviewed_since: Some(since_ms),
                    before: before.clone(),
                    limit: MAX_PAGE,
                    ..Default::default()
                })
                .await
                .with_context(|| format!("cannot read the reviewed records from {shown}"))?;
            let full = page.len() >= MAX_PAGE as usize;
            before = page
                .last()
                .map(|s| (s.record.recorded_ms, s.record.uuid.clone()));
            all.extend(page);
            if !full {
                break;
            }
        }
        anyhow::Ok(all)
    });
    rt.shutdown_background();
    result
}

/// Prints images per class and split, what was skipped, and where the export is.
fn print_summary(args: &Args, source: &Source, entries: &[Entry], summary: &Summary) {
    println!(
        "loupe dataset export: {} reviewed images since {} from {} -> {}",
        entries.len(),
        args.since,
        source.origin,
        args.out.display()
    );
    let count = |label: Option<&str>, split: &str| {
        entries
            .iter()
            .filter(|e| e.split == split && label.is_none_or(|l| e.label == l))
            .count()
    };
    let width = summary
        .classes
        .keys()
        .map(String::len)
        .chain([5])
        .max()
        .unwrap_or(5);
    println!(
        "  {:<width$}  {:>6}  {:>6}  {:>6}",
        "label", "train", "val", "total"
    );
    for (label, total) in &summary.classes {
        println!(
            "  {label:<width$}  {:>6}  {:>6}  {total:>6}",
            count(Some(label), "train"),
            count(Some(label), "val")
        );
    }
    println!(
        "  {:<width$}  {:>6}  {:>6}  {:>6}",
        "all",
        count(None, "train"),
        count(None, "val"),
        entries.len()
    );
    let products = |split: &str| {
        entries
            .iter()
            .filter(|e| e.split == split)
            .map(|e| e.product_id.as_deref().unwrap_or(&e.uuid))
            .collect::<BTreeSet<_>>()
            .len()
    };
    println!(
        "  products: {} train, {} val (val fraction {})",
        products("train"),
        products("val"),
        args.val_fraction
    );
    println!(
        "skipped: {} without media, {} with the image file missing",
        summary.skipped.no_media, summary.skipped.missing_file
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_split_is_stable_and_follows_the_fraction() {
        assert_eq!(split_of("p00042", 0.2), split_of("p00042", 0.2));
        assert_eq!(split_of("p00042", 0.0), "train");
        assert_eq!(split_of("p00042", 1.0), "val");
        let val = (0..1000)
            .filter(|i| split_of(&format!("p{i:05}"), 0.2) == "val")
            .count();
        assert!((150..250).contains(&val), "{val}");
    }

    #[test]
    fn labels_must_be_folder_names() {
        for good in ["ok", "loose_wire", "burr-2", "v1.2"] {
            assert!(check_label(good).is_ok(), "{good}");
        }
        for bad in [
            "", ".", "..", ".hidden", "a/b", "a b", "é", MANIFEST, DATASET,
        ] {
            assert!(check_label(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn media_paths_stay_inside_and_names_stay_unique() {
        let dir = Path::new("/m");
        assert_eq!(
            inside(dir, "2026-11-21/a.png"),
            Some(PathBuf::from("/m/2026-11-21/a.png"))
        );
        assert_eq!(inside(dir, "../a.png"), None);
        assert_eq!(inside(dir, "/etc/passwd"), None);
        let mut taken = BTreeSet::new();
        let first = unique_file("ok", "2026-11-21/a_1.png", "u-1", &taken);
        assert_eq!(first, "ok/a_1.png");
        taken.insert(first);
        assert_eq!(
            unique_file("ok", "2026-11-22/a_1.png", "u-2", &taken),
            "ok/a_1_u2.png"
        );
    }
}
