//! `loupe validate FLOW...`

use std::path::PathBuf;
use std::process::ExitCode;

/// Arguments of `loupe validate`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Flow files (YAML).
    #[arg(required = true)]
    pub flows: Vec<PathBuf>,
}

/// Compiles each flow and prints every error with its place; exit 1 if any flow is invalid.
pub fn validate(args: &Args) -> anyhow::Result<ExitCode> {
    let registry = crate::nodes::registry();
    let mut ok = true;
    for path in &args.flows {
        match loupe_flow::compile_file(path, &registry) {
            Ok(flow) => println!(
                "{}: valid ({} nodes, {} connections)",
                path.display(),
                flow.nodes.len(),
                flow.connections.len()
            ),
            Err(errors) => {
                ok = false;
                for e in &errors {
                    eprintln!("{e}");
                }
                eprintln!("{}: {} error(s)", path.display(), errors.len());
            }
        }
    }
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
