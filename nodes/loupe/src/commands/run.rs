//! `loupe run FLOW`

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use loupe_flow::runner::{self, ProgressMode, RunOptions};
use loupe_sdk::client::ClientOptions;

use crate::cli::Progress;

/// Arguments of `loupe run`.
pub struct Args {
    pub flow: PathBuf,
    pub once: bool,
    pub provenance: Option<PathBuf>,
    pub summary_json: Option<PathBuf>,
    pub progress: Progress,
    pub progress_interval: u64,
    pub connect_timeout: u64,
}

/// Compiles and runs a flow, then prints the summary.
pub async fn run(args: Args) -> anyhow::Result<ExitCode> {
    let _telemetry = loupe_sdk::telemetry::init("loupe-run", "warn");
    let registry = crate::nodes::registry();
    let flow = match loupe_flow::compile_file(&args.flow, &registry) {
        Ok(flow) => flow,
        Err(errors) => {
            for e in &errors {
                eprintln!("{e}");
            }
            anyhow::bail!(
                "{}: {} error(s); nothing was run",
                args.flow.display(),
                errors.len()
            );
        }
    };
    let options = RunOptions {
        once: args.once,
        provenance_file: args.provenance,
        progress: match args.progress {
            Progress::Auto => ProgressMode::Auto,
            Progress::Lines => ProgressMode::Lines,
            Progress::Off => ProgressMode::Off,
        },
        progress_interval: Duration::from_secs(args.progress_interval.max(1)),
        client: ClientOptions {
            connect_timeout: Duration::from_secs(args.connect_timeout),
            ..Default::default()
        },
        ..Default::default()
    };
    let shutdown = async {
        let _ = tokio::signal::ctrl_c().await;
        eprintln!("loupe: draining (Ctrl-C again to stop at once; queued FlowFiles would be lost)");
        tokio::spawn(async {
            let _ = tokio::signal::ctrl_c().await;
            eprintln!("loupe: stopped before the flow was drained");
            std::process::exit(130);
        });
    };
    let summary = runner::run(&flow, &registry, options, shutdown).await?;
    eprint!("{summary}");
    if let Some(path) = args.summary_json {
        std::fs::write(&path, serde_json::to_string_pretty(&summary)?)
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    Ok(ExitCode::SUCCESS)
}
