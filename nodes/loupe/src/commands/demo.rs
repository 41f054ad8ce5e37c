//! `loupe demo`: the main job of the quick start.
//!
//! Generates a camera drop folder of small test images, runs `flows/demo.yaml`
//! (capture -> classify -> report) over it once, and prints what happened.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use image::{Rgb, RgbImage};

use crate::cli::Progress;

/// Where the demo's camera folder and results live (relative to the working directory, which
/// the flow file's paths also assume: the repository root).
const DEMO_DIR: &str = ".loupe/demo";

/// Runs the demo.
pub fn demo(images: usize, flow: &Path) -> anyhow::Result<ExitCode> {
    anyhow::ensure!(images > 0, "--images must be at least 1");
    super::setup::setup()?;
    let dir = PathBuf::from(DEMO_DIR);
    let inbox = dir.join("inbox");
    std::fs::create_dir_all(&inbox)
        .with_context(|| format!("cannot create {}", inbox.display()))?;
    let report = dir.join("report.jsonl");
    let _ = std::fs::remove_file(&report);
    eprintln!(
        "loupe: writing {images} camera images to {}",
        inbox.display()
    );
    for i in 0..images {
        write_image(&inbox, i)?;
    }
    let code = super::runtime()?.block_on(super::run::run(super::run::Args {
        flow: flow.to_path_buf(),
        once: true,
        provenance: Some(dir.join("provenance.jsonl")),
        summary_json: Some(dir.join("summary.json")),
        progress: Progress::Auto,
        progress_interval: 5,
        connect_timeout: 10,
    }))?;
    print_outcome(&report)?;
    Ok(code)
}

/// A deterministic 64x64 image dominated by one colour, with a little texture.
fn write_image(inbox: &Path, i: usize) -> anyhow::Result<()> {
    let dominant = i % 3;
    let img = RgbImage::from_fn(64, 64, |x, y| {
        let t = ((x * 7 + y * 13 + i as u32 * 31) % 40) as u8;
        let mut px = [30 + t, 30 + t, 30 + t];
        px[dominant] = 180 + t;
        Rgb(px)
    });
    let path = inbox.join(format!("cam1-{i:05}.png"));
    img.save(&path)
        .with_context(|| format!("cannot write {}", path.display()))
}

fn print_outcome(report: &Path) -> anyhow::Result<()> {
    let text = std::fs::read_to_string(report).unwrap_or_default();
    let mut labels = std::collections::BTreeMap::<String, usize>::new();
    let mut failures = 0;
    for line in text.lines() {
        let v: serde_json::Value = serde_json::from_str(line)?;
        match v["attributes"]["classify.label"].as_str() {
            Some(label) => *labels.entry(label.to_string()).or_default() += 1,
            None => failures += 1,
        }
    }
    println!(
        "recorded {} inspections in {}",
        text.lines().count(),
        report.display()
    );
    for (label, n) in labels {
        println!("  {label:<12} {n}");
    }
    if failures > 0 {
        println!("  failed       {failures}");
    }
    Ok(())
}
