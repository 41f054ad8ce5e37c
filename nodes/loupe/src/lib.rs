//! `loupe`: the one binary of Loupe, as a library (`main.rs` only calls [`main`]).
//!
//! ## Layout
//! - [`cli`]: the command line — the subcommands and their help; each command's arguments are
//!   declared by the command itself.
//! - [`commands`]: one module per subcommand (`serve`, `run`, `validate`, `describe`, `call`,
//!   `demo`, `eval`, `setup`, `schema`, `synth`, `dataset`, `certs`, `nifi`, `users`), each
//!   owning its `clap` arguments and running them.
//! - `nifi_export`: a compiled flow as an Apache NiFi flow definition (`loupe nifi export`).
//! - `nodes`: the registry of node types this binary hosts.

pub mod cli;
pub mod commands;
mod nifi_export;
mod nodes;

use clap::Parser;

/// Parses the command line, runs the command and prints an error with its causes: the whole
/// of the `loupe` binary.
pub fn main() -> std::process::ExitCode {
    let cli = cli::Cli::parse();
    match commands::dispatch(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("loupe: error: {e:#}");
            std::process::ExitCode::from(1)
        }
    }
}
