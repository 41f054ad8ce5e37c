//! `loupe call ENDPOINT`: a thin client, one FlowFile from stdin.
//!
//! NiFi's ExecuteStreamCommand starts one process per FlowFile, so this must start fast and
//! must never load a model itself: the model stays loaded in the long-running node
//! (start-up and call time: `cargo bench --bench call_startup`).
//!
//! Standard output carries the output content (`--output content`, ExecuteStreamCommand's
//! `output stream`) or the outputs' relationships and attributes as one JSON line
//! (`--output json`, for its "Output Destination Attribute"). Exit status 0 on success, 2 when
//! the node routed the FlowFile to `failure` (the reason on standard error, which NiFi keeps in
//! `execution.error`), 3 when the node could not be reached.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::ValueEnum;
use loupe_sdk::client::{ClientOptions, RemoteNode};
use loupe_sdk::{FlowFile, Processor, attr};

use super::client_args::ClientArgs;

/// Exit code when the node routed the FlowFile to `failure`.
const EXIT_FAILURE_RELATIONSHIP: u8 = 2;
/// Exit code when the node could not be reached or refused the call.
const EXIT_TRANSPORT: u8 = 3;

/// Arguments of `loupe call`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The node's address.
    pub endpoint: String,
    /// An attribute of the FlowFile sent, `key=value` (repeatable).
    #[arg(long = "attr", value_name = "KEY=VALUE")]
    pub attrs: Vec<String>,
    /// Write the outputs' relationships and attributes as JSON to this file (default:
    /// standard error, with `--output content`).
    #[arg(long)]
    pub attributes_out: Option<PathBuf>,
    /// What standard output carries: the outputs' `content` (NiFi ExecuteStreamCommand's
    /// output stream), or their relationships and attributes as one line of `json` (for
    /// ExecuteStreamCommand's "Output Destination Attribute").
    #[arg(long, value_enum, default_value_t = CallOutput::Content)]
    pub output: CallOutput,
    /// Seconds to wait for the answer.
    #[arg(long, default_value_t = 60)]
    pub timeout: u64,
    /// TLS and credentials.
    #[command(flatten)]
    pub client: ClientArgs,
}

/// What `loupe call` writes to standard output.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum CallOutput {
    /// The output FlowFiles' content.
    Content,
    /// `{"outputs": [{"relationship", "uuid", "size", "attributes"}]}` on one line.
    Json,
}

/// Sends stdin as one FlowFile and writes the outputs.
pub async fn call(args: Args) -> anyhow::Result<ExitCode> {
    let Args {
        endpoint,
        attrs,
        attributes_out,
        output,
        timeout,
        client,
    } = args;
    let security = client.security()?;
    let mut attributes = HashMap::new();
    for a in &attrs {
        let (k, v) = a
            .split_once('=')
            .with_context(|| format!("--attr expects key=value, got `{a}`"))?;
        attributes.insert(k.to_string(), v.to_string());
    }
    let mut content = Vec::new();
    std::io::stdin()
        .read_to_end(&mut content)
        .context("cannot read stdin")?;
    let flow_file = FlowFile::create(content, attributes);
    let options = ClientOptions {
        request_timeout: Duration::from_secs(timeout),
        security,
        ..Default::default()
    };
    let node = RemoteNode::connect_unchecked(&[endpoint], &options)?;
    let outputs = match node.process(flow_file).await {
        Ok(outputs) => outputs,
        Err(e) => {
            eprintln!("loupe call: {e}");
            return Ok(ExitCode::from(EXIT_TRANSPORT));
        }
    };
    let mut stdout = std::io::stdout().lock();
    let mut described = Vec::with_capacity(outputs.len());
    let mut failed = None;
    for out in &outputs {
        let Some(ff) = out.flow_file() else { continue };
        if output == CallOutput::Content {
            stdout.write_all(&ff.content)?;
        }
        let sorted: std::collections::BTreeMap<_, _> = ff.attributes.iter().collect();
        described.push(serde_json::json!({
            "relationship": out.relationship,
            "uuid": ff.uuid,
            "size": ff.content.len(),
            "attributes": sorted,
        }));
        if out.relationship == loupe_sdk::FAILURE {
            failed = Some(
                ff.attr(attr::ERROR_MESSAGE)
                    .unwrap_or("routed to failure")
                    .to_string(),
            );
        }
    }
    let json = serde_json::to_string(&serde_json::json!({ "outputs": described }))?;
    if output == CallOutput::Json {
        writeln!(stdout, "{json}")?;
    }
    stdout.flush()?;
    match &attributes_out {
        Some(path) => std::fs::write(path, json + "\n")
            .with_context(|| format!("cannot write {}", path.display()))?,
        None if output == CallOutput::Content => eprintln!("{json}"),
        None => {}
    }
    if let Some(reason) = failed {
        eprintln!("loupe call: failure: {reason}");
        return Ok(ExitCode::from(EXIT_FAILURE_RELATIONSHIP));
    }
    Ok(ExitCode::SUCCESS)
}
