//! How `loupe run`, `describe` and `call` reach nodes that ask for TLS and credentials: one
//! set of flags, flattened into each command.

use std::path::PathBuf;

use anyhow::Context;
use loupe_sdk::client::{ClientSecurity, Secret};

/// TLS and credentials towards remote nodes.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct ClientArgs {
    /// PEM CA certificate that nodes' certificates must chain to (`https://` endpoints;
    /// default: the system's trusted roots).
    #[arg(long, value_name = "FILE", env = "LOUPE_CLIENT_CA")]
    pub ca: Option<PathBuf>,
    /// PEM client certificate for mutual TLS (with `--key`).
    #[arg(long, value_name = "FILE", env = "LOUPE_CLIENT_CERT", requires = "key")]
    pub cert: Option<PathBuf>,
    /// PEM private key of `--cert`.
    #[arg(long, value_name = "FILE", env = "LOUPE_CLIENT_KEY", requires = "cert")]
    pub key: Option<PathBuf>,
    /// Name the node's certificate must carry, when it differs from the endpoint's host.
    #[arg(long, value_name = "NAME")]
    pub server_name: Option<String>,
    /// File holding the bearer token sent on every call.
    #[arg(
        long,
        value_name = "FILE",
        env = "LOUPE_TOKEN_FILE",
        conflicts_with = "token_env"
    )]
    pub token_file: Option<PathBuf>,
    /// Environment variable holding the bearer token (its name, never the token itself on
    /// the command line, where other users can read it).
    #[arg(long, value_name = "VAR")]
    pub token_env: Option<String>,
}

impl ClientArgs {
    /// The client security these flags describe (reads the token).
    pub fn security(&self) -> anyhow::Result<ClientSecurity> {
        let token = match (&self.token_file, &self.token_env) {
            (Some(file), _) => Some(
                Secret::from_file(file)
                    .with_context(|| format!("cannot read the token file {}", file.display()))?,
            ),
            (None, Some(var)) => {
                Some(Secret::new(&std::env::var(var).with_context(|| {
                    format!("--token-env {var}: the variable is not set")
                })?))
            }
            (None, None) => None,
        };
        Ok(ClientSecurity {
            ca: self.ca.clone(),
            cert: self.cert.clone(),
            key: self.key.clone(),
            server_name: self.server_name.clone(),
            token,
        })
    }
}
