//! `loupe describe ENDPOINT`

use std::process::ExitCode;

use loupe_sdk::client::{ClientOptions, RemoteNode};
use loupe_sdk::pb::Readiness;

use super::client_args::ClientArgs;

/// Arguments of `loupe describe`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The node's address, `host:port`, `http://host:port` or `https://host:port` (TLS).
    pub endpoint: String,
    /// TLS and credentials.
    #[command(flatten)]
    pub client: ClientArgs,
}

/// Prints the node's description as JSON.
pub async fn describe(args: Args) -> anyhow::Result<ExitCode> {
    let options = ClientOptions {
        connect_timeout: std::time::Duration::from_secs(3),
        security: args.client.security()?,
        ..Default::default()
    };
    let node = RemoteNode::connect(&[args.endpoint], &options).await?;
    let d = node.description();
    let schema: serde_json::Value =
        serde_json::from_str(&d.settings_schema).unwrap_or(serde_json::Value::Null);
    let readiness = Readiness::try_from(d.readiness)
        .map(|r| {
            r.as_str_name()
                .trim_start_matches("READINESS_")
                .to_lowercase()
        })
        .unwrap_or_else(|_| "unknown".into());
    let out = serde_json::json!({
        "node_type": d.node_type,
        "version": d.version,
        "readiness": readiness,
        "is_source": d.is_source,
        "max_message_bytes": d.max_message_bytes,
        "relationships": d.relationships.iter()
            .map(|r| serde_json::json!({"name": r.name, "description": r.description}))
            .collect::<Vec<_>>(),
        "settings_schema": schema,
    });
    println!("{}", serde_json::to_string_pretty(&out)?);
    Ok(ExitCode::SUCCESS)
}
