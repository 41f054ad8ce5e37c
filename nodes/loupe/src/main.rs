//! `loupe`: the one binary of Loupe.
//!
//! ## Layout
//! - [`cli`]: the command line (clap).
//! - [`nodes`]: the registry of node types this binary hosts.
//! - `commands/`: one module per subcommand (`serve`, `run`, `validate`, `describe`,
//!   `call`, `demo`, `setup`, `synth`, `schema`).

mod cli;
mod commands;
mod nifi_export;
mod nodes;

use clap::Parser;

fn main() -> std::process::ExitCode {
    let cli = cli::Cli::parse();
    match commands::dispatch(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("loupe: error: {e:#}");
            std::process::ExitCode::from(1)
        }
    }
}
