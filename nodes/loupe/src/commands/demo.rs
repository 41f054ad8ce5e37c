//! `loupe demo [coils|surfaces]`: the main job of the quick start.
//!
//! `coils` generates a camera drop folder of coil photos with `loupe synth coils` (8 angles
//! per coil, the simulated factory camera's verdict in the manifest) and runs
//! `flows/loose-wire-recheck.yaml` (capture -> preprocess -> classify -> route -> report);
//! `surfaces` generates steel-sheet photos with `loupe synth surfaces` and runs
//! `flows/surface-defects.yaml` (capture -> preprocess -> segment -> route -> report). Either
//! runs the folder once with a progress display, ends with a summary a plant manager reads
//! and the dashboard's address, then keeps the flow running — dashboard, upload page, and the
//! drop folder for more images — until Ctrl-C (`--exit` stops after the summary instead).

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;

use clap::ValueEnum;

use super::run::Progress;

/// Arguments of `loupe demo`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Which demo.
    #[arg(value_enum, default_value_t = DemoKind::Coils)]
    pub kind: DemoKind,
    /// How many coils (8 photos each) or sheets to generate.
    #[arg(long, default_value_t = 50)]
    pub products: u32,
    /// Seed of the generated data.
    #[arg(long, default_value_t = 7)]
    pub seed: u64,
    /// The flow to run (default: the demo's shipped flow).
    #[arg(long)]
    pub flow: Option<PathBuf>,
    /// Stop after the summary instead of keeping the dashboard up.
    #[arg(long)]
    pub exit: bool,
}

/// The demos of `loupe demo`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DemoKind {
    /// Coil photos: re-check the camera's loose-wire flags with the coil classifier.
    Coils,
    /// Steel-sheet photos: find and outline surface defects with the segmenter.
    Surfaces,
}

impl DemoKind {
    /// The shipped flow, and the folder (relative to the working directory, which the flow
    /// file's paths also assume: the repository root) its data and results live in.
    fn defaults(self) -> (&'static str, &'static str) {
        match self {
            DemoKind::Coils => ("flows/loose-wire-recheck.yaml", ".loupe/recheck"),
            DemoKind::Surfaces => ("flows/surface-defects.yaml", ".loupe/surface-defects"),
        }
    }
}

/// Runs the demo.
pub fn demo(args: Args) -> anyhow::Result<ExitCode> {
    anyhow::ensure!(args.products > 0, "--products must be at least 1");
    super::setup::setup()?;
    let (default_flow, dir) = args.kind.defaults();
    let flow = args
        .flow
        .clone()
        .unwrap_or_else(|| PathBuf::from(default_flow));
    let dir = PathBuf::from(dir);
    // A fresh run: the records of an earlier demo would mix into the summary.
    if dir.exists() {
        std::fs::remove_dir_all(&dir)
            .with_context(|| format!("cannot clear the previous demo in {}", dir.display()))?;
    }
    let inbox = dir.join("inbox");
    generate(&args, &inbox)?;
    let dashboard = dashboard_url(&flow);
    if let Some(url) = &dashboard {
        eprintln!("loupe: dashboard (live while the flow runs): {url}");
    }
    let run = |once: bool, progress: Progress| {
        super::runtime()?.block_on(super::run::run(super::run::Args {
            flow: flow.clone(),
            once,
            provenance: Some(dir.join("provenance.jsonl")),
            summary_json: once.then(|| dir.join("summary.json")),
            progress,
            progress_interval: 5,
            ..super::run::Args::new(flow.clone())
        }))
    };
    let code = run(true, Progress::Auto)?;
    let db = dir.join("report.db");
    let summary = super::runtime()?.block_on(summary(args.kind, &db))?;
    println!("\n{summary}");
    println!(
        "records: {}   photos: {}",
        db.display(),
        dir.join("media").display()
    );
    if let Some(url) = &dashboard {
        println!("dashboard: {url}");
    }
    if args.exit || code != ExitCode::SUCCESS {
        return Ok(code);
    }
    eprintln!(
        "loupe: the flow keeps running for the dashboard, its upload page and new files in {} \
         (Ctrl-C to stop; --exit to stop after the summary)",
        inbox.display()
    );
    run(false, Progress::Off)
}

/// Generates the demo's camera folder.
fn generate(args: &Args, inbox: &Path) -> anyhow::Result<()> {
    match args.kind {
        DemoKind::Coils => {
            eprintln!(
                "loupe: generating {} coils x 8 camera angles into {}",
                args.products,
                inbox.display()
            );
            let options = loupe_synth::CoilOptions {
                products: args.products,
                seed: args.seed,
                ..Default::default()
            };
            let dataset = loupe_synth::generate_coils(&options, inbox).with_context(|| {
                format!("cannot generate the camera folder {}", inbox.display())
            })?;
            eprintln!(
                "loupe: the simulated camera flagged {} of {} images as loose_wire",
                dataset.camera.images.ok.loose_wire
                    + dataset.camera.images.burr.loose_wire
                    + dataset.camera.images.loose_wire.loose_wire,
                dataset.images
            );
        }
        DemoKind::Surfaces => {
            eprintln!(
                "loupe: generating {} steel-sheet photos into {}",
                args.products,
                inbox.display()
            );
            let options = loupe_synth::SurfaceOptions {
                images: args.products,
                seed: args.seed,
                size: 256,
            };
            loupe_synth::generate_surfaces(&options, inbox).with_context(|| {
                format!("cannot generate the camera folder {}", inbox.display())
            })?;
        }
    }
    Ok(())
}

/// The plant's summary of the records in `db`.
async fn summary(kind: DemoKind, db: &Path) -> anyhow::Result<String> {
    let store = loupe_store::Store::open(
        &format!("sqlite:{}", db.display()),
        Path::new("."),
        "inspections",
    )
    .await?;
    Ok(match kind {
        DemoKind::Coils => {
            loupe_report::Summary::of(&store, "loose_wire", &["loose_wire".to_string()])
                .await?
                .text()
        }
        DemoKind::Surfaces => loupe_report::summary::SurfaceSummary::of(&store)
            .await?
            .text(),
    })
}

/// The dashboard address of the flow's report node, if it serves one.
fn dashboard_url(flow: &Path) -> Option<String> {
    let text = std::fs::read_to_string(flow).ok()?;
    let doc: serde_norway::Value = serde_norway::from_str(&text).ok()?;
    doc.get("nodes")?.as_sequence()?.iter().find_map(|node| {
        let listen = node
            .get("settings")?
            .get("dashboard")?
            .get("listen")?
            .as_str()?;
        Some(format!(
            "http://{}/",
            listen.replace("0.0.0.0", "127.0.0.1")
        ))
    })
}
