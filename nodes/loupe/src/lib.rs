//! `loupe`: the one binary of Loupe, as a library (`main.rs` only calls [`main`]).
//!
//! ## Layout
//! - [`cli`]: the command line — the subcommands and their help; each command's arguments are
//!   declared by the command itself.
//! - [`dispatch`]: runs the parsed command.
//! - [`commands`]: one module per subcommand (`serve`, `run`, `validate`, `describe`, `call`,
//!   `demo`, `eval`, `setup`, `schema`, `synth`, `dataset`, `certs`, `nifi`, `users`), each
//!   owning its `clap` arguments and running them.
//! - `nifi_export`: a compiled flow as an Apache NiFi flow definition (`loupe nifi export`).
//! - `nodes`: the registry of node types this binary hosts.

pub mod cli;
pub mod commands;
mod nifi_export;
mod nodes;

use std::process::ExitCode;

use clap::Parser;

use crate::cli::{Cli, Command};
use crate::commands::{
    call, certs, dataset, demo, describe, eval, nifi, run, run_small, runtime, schema, serve,
    setup, synth, users, validate,
};

/// Parses the command line, runs the command and prints an error with its causes: the whole
/// of the `loupe` binary.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    match dispatch(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("loupe: error: {e:#}");
            ExitCode::from(1)
        }
    }
}

/// Runs the chosen subcommand.
pub fn dispatch(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Validate(args) => validate::validate(&args),
        Command::Run(args) => runtime()?.block_on(run::run(args)),
        Command::Serve(args) => runtime()?.block_on(serve::serve(&args)),
        Command::Describe(args) => run_small(describe::describe(args)),
        Command::Call(args) => run_small(call::call(args)),
        Command::Demo(args) => demo::demo(args),
        Command::Eval(args) => eval::eval(args),
        Command::Setup => setup::setup().map(|_| ExitCode::SUCCESS),
        Command::Schema(args) => schema::schema(&args),
        Command::Synth { what } => synth::synth(what),
        Command::Dataset { what } => dataset::dataset(what),
        Command::Nifi { what } => nifi::nifi(what),
        Command::Certs { what } => certs::certs(what),
        Command::Users(args) => users::users(args),
    }
}
