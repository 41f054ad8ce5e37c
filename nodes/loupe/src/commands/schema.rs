//! `loupe schema NODE_TYPE`: a node type's settings as JSON Schema.

use std::process::ExitCode;

/// Arguments of `loupe schema`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Node type.
    pub node_type: String,
}

/// Prints the settings schema of `args.node_type`.
pub fn schema(args: &Args) -> anyhow::Result<ExitCode> {
    let registry = crate::nodes::registry();
    let factory = registry.get(&args.node_type).ok_or_else(|| {
        anyhow::anyhow!(
            "unknown node type `{}` (known: {})",
            args.node_type,
            registry.types().join(", ")
        )
    })?;
    println!(
        "{}",
        serde_json::to_string_pretty(&factory.settings_schema())?
    );
    Ok(ExitCode::SUCCESS)
}
