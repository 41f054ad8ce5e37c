//! One module per subcommand.

mod call;
pub(crate) mod certs;
pub(crate) mod client_args;
mod dataset;
mod demo;
mod describe;
pub(crate) mod eval;
mod nifi;
pub(crate) mod run;
mod serve;
mod setup;
mod synth;
pub(crate) mod users;
mod validate;

use std::process::ExitCode;

use crate::cli::{Cli, Command};

/// Runs the chosen subcommand.
pub fn dispatch(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Validate { flows } => validate::validate(&flows),
        Command::Run(args) => runtime()?.block_on(run::run(args)),
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
        Command::Describe { endpoint, client } => {
            run_small(describe::describe(&endpoint, client.security()?))
        }
        Command::Call {
            endpoint,
            attrs,
            attributes_out,
            output,
            timeout,
            client,
        } => run_small(call::call(
            &endpoint,
            &attrs,
            attributes_out.as_deref(),
            output,
            timeout,
            client.security()?,
        )),
        Command::Demo {
            kind,
            products,
            seed,
            flow,
            exit,
        } => demo::demo(demo::Args {
            kind,
            products,
            seed,
            flow,
            exit,
        }),
        Command::Eval(args) => eval::eval(args),
        Command::Setup => setup::setup().map(|_| ExitCode::SUCCESS),
        Command::Synth { what } => synth::synth(what),
        Command::Dataset { what } => dataset::dataset(what),
        Command::Nifi { what } => nifi::nifi(what),
        Command::Certs { what } => certs::certs(what),
        Command::Users(args) => users::users(args),
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

/// Runs a short command on a single-threaded runtime: `describe` and `call` must start and
/// end fast (NiFi's ExecuteStreamCommand starts `loupe call` once per FlowFile).
fn run_small(
    fut: impl std::future::Future<Output = anyhow::Result<ExitCode>>,
) -> anyhow::Result<ExitCode> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let result = rt.block_on(fut);
    // Do not wait for the blocking pool (the resolver thread lingers): the answer is out.
    rt.shutdown_background();
    result
}
