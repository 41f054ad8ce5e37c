//! One module per subcommand.

mod call;
mod demo;
mod describe;
mod run;
mod serve;
mod setup;
mod validate;

use std::process::ExitCode;

use crate::cli::{Cli, Command};

/// Runs the chosen subcommand.
pub fn dispatch(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Validate { flows } => validate::validate(&flows),
        Command::Run {
            flow,
            once,
            provenance,
            summary_json,
            progress,
            progress_interval,
            connect_timeout,
        } => runtime()?.block_on(run::run(run::Args {
            flow,
            once,
            provenance,
            summary_json,
            progress,
            progress_interval,
            connect_timeout,
        })),
        Command::Serve {
            node_type,
            config,
            listen,
            overrides,
        } => runtime()?.block_on(serve::serve(
            &node_type,
            config.as_deref(),
            listen.as_deref(),
            &overrides,
        )),
        Command::Describe { endpoint } => small_runtime()?.block_on(describe::describe(&endpoint)),
        Command::Call {
            endpoint,
            attrs,
            attributes_out,
            timeout,
        } => small_runtime()?.block_on(call::call(
            &endpoint,
            &attrs,
            attributes_out.as_deref(),
            timeout,
        )),
        Command::Demo { images, flow } => demo::demo(images, &flow),
        Command::Setup => setup::setup().map(|_| ExitCode::SUCCESS),
        Command::Schema { node_type } => {
            let registry = crate::nodes::registry();
            let factory = registry.get(&node_type).ok_or_else(|| {
                anyhow::anyhow!(
                    "unknown node type `{node_type}` (known: {})",
                    registry.types().join(", ")
                )
            })?;
            println!(
                "{}",
                serde_json::to_string_pretty(&factory.settings_schema())?
            );
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?)
}

/// A single-threaded runtime: `describe` and `call` must start fast (NiFi's
/// ExecuteStreamCommand starts `loupe call` once per FlowFile).
fn small_runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?)
}
