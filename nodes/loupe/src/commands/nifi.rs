//! `loupe nifi export FLOW [--out F]`: a flow file as an Apache NiFi 2.x flow definition.
//!
//! The flow is compiled as `loupe validate` does (an invalid flow is refused with every
//! located error), then turned into NiFi's `RegisteredFlowSnapshot` JSON by
//! `crate::nifi_export`, which documents the mapping.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, bail};

use crate::nifi_export;

/// `loupe nifi` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Write a flow as a NiFi 2.x flow definition (JSON for "Upload flow definition").
    ///
    /// One process group named after the flow: an InvokeHTTP per processing node (calling
    /// the node's `POST /process` at the URL in parameter `loupe.<node-id>.url`), a
    /// RouteOnAttribute after nodes with named relationships (`route`), ListFile + FetchFile
    /// (or ListenHTTP) for the capture, and one connection per flow connection with its
    /// prioritizer and back pressure. The flow is validated first; an invalid flow is
    /// refused with its errors.
    Export {
        /// The flow file.
        flow: PathBuf,
        /// Write the JSON to this file instead of standard output.
        #[arg(long)]
        out: Option<PathBuf>,
    },
}

/// Runs a `loupe nifi` subcommand.
pub fn nifi(what: Command) -> anyhow::Result<ExitCode> {
    match what {
        Command::Export { flow, out } => export(&flow, out.as_deref()),
    }
}

/// Compiles `flow` and writes its NiFi flow definition to `out` (default: standard output).
fn export(flow: &Path, out: Option<&Path>) -> anyhow::Result<ExitCode> {
    let registry = crate::nodes::registry();
    let compiled = match loupe_flow::compile_file(flow, &registry) {
        Ok(compiled) => compiled,
        Err(errors) => {
            for e in &errors {
                eprintln!("{e}");
            }
            bail!(
                "{}: {} error(s); nothing exported",
                flow.display(),
                errors.len()
            );
        }
    };
    let description = description(flow)?;
    let cwd = std::env::current_dir().context("cannot read the working directory")?;
    let snapshot = nifi_export::export(&compiled, description.as_deref(), &cwd)
        .with_context(|| format!("{}: cannot export to NiFi", flow.display()))?;
    let mut json = serde_json::to_string_pretty(&snapshot)?;
    json.push('\n');
    match out {
        Some(path) => std::fs::write(path, json)
            .with_context(|| format!("cannot write {}", path.display()))?,
        None => std::io::stdout()
            .lock()
            .write_all(json.as_bytes())
            .context("cannot write to standard output")?,
    }
    Ok(ExitCode::SUCCESS)
}

/// The flow file's `description` (the compiled flow does not keep it).
fn description(flow: &Path) -> anyhow::Result<Option<String>> {
    let text =
        std::fs::read_to_string(flow).with_context(|| format!("cannot read {}", flow.display()))?;
    let loaded = loupe_flow::yaml::load(&text)
        .map_err(|e| anyhow::anyhow!("{}: {}", flow.display(), e.message))?;
    let (spec, _) = loupe_flow::spec::read_flow(&loaded.root);
    Ok(spec.description)
}
