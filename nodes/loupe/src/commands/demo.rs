//! `loupe demo`: the main job of the quick start.
//!
//! Generates a camera drop folder of coil photos with `loupe synth coils` (8 angles per coil,
//! the simulated factory camera's verdict in the manifest), runs
//! `flows/loose-wire-recheck.yaml` (capture -> preprocess -> classify -> route -> report) over
//! it once with a progress display, and ends with a summary a plant manager reads.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;

use crate::cli::Progress;

/// Where the demo's camera folder and results live (relative to the working directory, which
/// the flow file's paths also assume: the repository root).
const DEMO_DIR: &str = ".loupe/recheck";

/// Runs the demo over `products` generated coils.
pub fn demo(products: u32, seed: u64, flow: &Path) -> anyhow::Result<ExitCode> {
    anyhow::ensure!(products > 0, "--products must be at least 1");
    super::setup::setup()?;
    let dir = PathBuf::from(DEMO_DIR);
    // A fresh run: the records of an earlier demo would mix into the summary.
    if dir.exists() {
        std::fs::remove_dir_all(&dir)
            .with_context(|| format!("cannot clear the previous demo in {}", dir.display()))?;
    }
    let inbox = dir.join("inbox");
    eprintln!(
        "loupe: generating {products} coils x 8 camera angles into {}",
        inbox.display()
    );
    let options = loupe_synth::CoilOptions {
        products,
        seed,
        ..Default::default()
    };
    let dataset = loupe_synth::generate_coils(&options, &inbox)
        .with_context(|| format!("cannot generate the camera folder {}", inbox.display()))?;
    eprintln!(
        "loupe: the simulated camera flagged {} of {} images as loose_wire",
        dataset.camera.images.ok.loose_wire
            + dataset.camera.images.burr.loose_wire
            + dataset.camera.images.loose_wire.loose_wire,
        dataset.images
    );
    let code = super::runtime()?.block_on(super::run::run(super::run::Args {
        flow: flow.to_path_buf(),
        once: true,
        provenance: Some(dir.join("provenance.jsonl")),
        summary_json: Some(dir.join("summary.json")),
        progress: Progress::Auto,
        progress_interval: 5,
        connect_timeout: 10,
    }))?;
    let db = dir.join("report.db");
    let summary = super::runtime()?.block_on(async {
        let store = loupe_report::Store::open(
            &format!("sqlite:{}", db.display()),
            Path::new("."),
            "inspections",
        )
        .await?;
        loupe_report::Summary::of(&store, "loose_wire", &["loose_wire".to_string()]).await
    })?;
    println!("\n{}", summary.text());
    println!(
        "records: {}   photos: {}",
        db.display(),
        dir.join("media").display()
    );
    Ok(code)
}
