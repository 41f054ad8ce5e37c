//! One module per subcommand; each declares its own arguments (`Args`, or `Command` for a
//! command with subcommands) and runs them.

pub mod call;
pub mod certs;
pub mod client_args;
pub mod dataset;
pub mod demo;
pub mod describe;
pub mod eval;
pub mod nifi;
pub mod run;
pub mod schema;
pub mod serve;
pub mod setup;
pub mod synth;
pub mod users;
pub mod validate;

use std::process::ExitCode;

/// A multi-threaded runtime for the long-running commands (`run`, `serve`).
pub(crate) fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?)
}

/// Runs a short command on a single-threaded runtime: `describe` and `call` must start and
/// end fast (NiFi's ExecuteStreamCommand starts `loupe call` once per FlowFile).
pub(crate) fn run_small(
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
