//! `loupe run FLOW`

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use loupe_flow::runner::{self, ProgressMode, RunOptions};
use loupe_sdk::AttributeLimits;
use loupe_sdk::client::ClientOptions;

/// SIGTERM (what `docker stop` and systemd send, also to PID 1 in a container, which has no
/// default handler) and SIGINT (Ctrl-C), listened to from the start of the run.
struct Signals {
    #[cfg(unix)]
    term: tokio::signal::unix::Signal,
    #[cfg(unix)]
    int: tokio::signal::unix::Signal,
}

impl Signals {
    fn new() -> anyhow::Result<Self> {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            Ok(Signals {
                term: signal(SignalKind::terminate()).context("cannot listen for SIGTERM")?,
                int: signal(SignalKind::interrupt()).context("cannot listen for SIGINT")?,
            })
        }
        #[cfg(not(unix))]
        Ok(Signals {})
    }

    /// The next SIGTERM or SIGINT.
    async fn next(&mut self) {
        #[cfg(unix)]
        tokio::select! {
            _ = self.term.recv() => {}
            _ = self.int.recv() => {}
        }
        #[cfg(not(unix))]
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// Progress display.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum Progress {
    /// A live line on a terminal, plain lines otherwise.
    Auto,
    /// Plain lines.
    Lines,
    /// Nothing.
    Off,
}

/// Arguments of `loupe run`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The flow file.
    pub flow: PathBuf,
    /// Stop when every source is exhausted and every offer is finished.
    #[arg(long)]
    pub once: bool,
    /// Append provenance events (JSON lines) to this file.
    #[arg(long)]
    pub provenance: Option<PathBuf>,
    /// Write the run summary as JSON to this file.
    #[arg(long)]
    pub summary_json: Option<PathBuf>,
    /// Progress display.
    #[arg(long, value_enum, default_value_t = Progress::Auto)]
    pub progress: Progress,
    /// Seconds between plain progress lines (when not on a terminal).
    #[arg(long, default_value_t = 10)]
    pub progress_interval: u64,
    /// Seconds to wait for remote nodes at start.
    #[arg(long, default_value_t = 10)]
    pub connect_timeout: u64,
    /// On SIGTERM or Ctrl-C, how long the flow may finish what it holds (humantime, e.g.
    /// `4s`). What is not finished is not acknowledged: its input is offered again at the
    /// next start. A second signal stops at once (nothing is lost either way).
    #[arg(long, default_value = "4s", value_parser = humantime::parse_duration)]
    pub drain_timeout: Duration,
    /// Most attributes on one FlowFile; a FlowFile over a limit goes to `failure` with the
    /// reason.
    #[arg(long, default_value_t = AttributeLimits::DEFAULT_MAX_COUNT)]
    pub max_attributes: usize,
    /// Longest attribute value, bytes.
    #[arg(long, default_value_t = AttributeLimits::DEFAULT_MAX_VALUE_BYTES)]
    pub max_attribute_bytes: usize,
    /// Most bytes of one FlowFile's attribute names and values together.
    #[arg(long, default_value_t = AttributeLimits::DEFAULT_MAX_TOTAL_BYTES)]
    pub max_attributes_total_bytes: usize,
    /// TLS and credentials towards the flow's remote nodes.
    #[command(flatten)]
    pub client: super::client_args::ClientArgs,
}

impl Args {
    /// The defaults for running `flow`, as the command line gives them.
    pub fn new(flow: PathBuf) -> Self {
        Args {
            flow,
            once: false,
            provenance: None,
            summary_json: None,
            progress: Progress::Auto,
            progress_interval: 10,
            connect_timeout: 10,
            drain_timeout: runner::DEFAULT_DRAIN_TIMEOUT,
            max_attributes: AttributeLimits::DEFAULT_MAX_COUNT,
            max_attribute_bytes: AttributeLimits::DEFAULT_MAX_VALUE_BYTES,
            max_attributes_total_bytes: AttributeLimits::DEFAULT_MAX_TOTAL_BYTES,
            client: Default::default(),
        }
    }
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
            security: args.client.security()?,
            ..Default::default()
        },
        drain_timeout: args.drain_timeout,
        attribute_limits: AttributeLimits {
            max_count: args.max_attributes,
            max_value_bytes: args.max_attribute_bytes,
            max_total_bytes: args.max_attributes_total_bytes,
        },
        ..Default::default()
    };
    let mut signals = Signals::new()?;
    let shutdown = async move {
        signals.next().await;
        eprintln!(
            "loupe: draining (a second SIGTERM or Ctrl-C stops at once; what is not finished \
             is offered again at the next start)"
        );
        tokio::spawn(async move {
            signals.next().await;
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
