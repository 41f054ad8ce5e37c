//! `loupe serve NODE_TYPE`: one node as its own gRPC process.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use loupe_sdk::BuildContext;
use loupe_sdk::serve::{ServeOptions, serve as serve_node, shutdown_signal};

/// Arguments of `loupe serve`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Node type (`capture`, `classify`, `report`, ...).
    pub node_type: String,
    /// YAML configuration file (`listen`, `max_message_bytes`, `settings`, ...).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Address to listen on (overrides the configuration); port 0 picks a free port.
    #[arg(long)]
    pub listen: Option<String>,
    /// Override a configuration key, e.g. `--set settings.path=/tmp/r.jsonl`; the value
    /// takes the key's type from the node's settings schema (`--set settings.line=007`
    /// stays the text `007` where `line` is text).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub overrides: Vec<String>,
}

/// Loads the layered configuration, builds the node, serves it until SIGTERM/SIGINT.
pub async fn serve(args: &Args) -> anyhow::Result<ExitCode> {
    let (node_type, config) = (args.node_type.as_str(), args.config.as_deref());
    let (listen, overrides) = (args.listen.as_deref(), args.overrides.as_slice());
    let _telemetry = loupe_sdk::telemetry::init(&format!("loupe-{node_type}"), "info");
    let registry = crate::nodes::registry();
    let factory = registry.get(node_type).with_context(|| {
        format!(
            "unknown node type `{node_type}` (known: {})",
            registry.types().join(", ")
        )
    })?;
    let cfg = loupe_sdk::config::load(config, listen, overrides, Some(&factory.settings_schema()))?;
    let base_dir = match config.and_then(Path::parent) {
        Some(dir) if !dir.as_os_str().is_empty() => dir.to_path_buf(),
        _ => std::env::current_dir()?,
    };
    // TLS files and tokens load before anything else, so a mistake fails at once.
    let options = ServeOptions::from_config(&cfg, node_type, &base_dir)?;
    let ctx = BuildContext {
        node_id: options.node_id.clone(),
        base_dir,
        max_message_bytes: cfg.max_message_bytes,
    };
    let listener = tokio::net::TcpListener::bind(&cfg.listen)
        .await
        .with_context(|| format!("cannot listen on {}", cfg.listen))?;
    let addr = listener.local_addr()?;
    // Secure by default: refused before the node is built or anything is printed.
    if let Some(refused) = options.security.refusal(addr, "") {
        return Err(refused.into());
    }
    let node = factory
        .build(&cfg.settings, &ctx)
        .await
        .with_context(|| format!("cannot build the `{node_type}` node"))?;
    // One machine-readable line on stdout: scripts and tests read the port from it.
    println!("listening on {addr}");
    std::io::stdout().flush()?;
    tracing::info!(%addr, node_type, "serving");
    // Front-ends the node type brings (the Open Inference Protocol for model nodes).
    let extensions = node.server_extensions();
    serve_node(node, options, listener, shutdown_signal(), extensions).await?;
    Ok(ExitCode::SUCCESS)
}
