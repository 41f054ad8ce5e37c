//! Secure by default: a listener's TLS and credentials, loaded once, and the rule that a
//! listener reachable beyond loopback needs both unless it is explicitly told `insecure`.
//!
//! Used by every listener Loupe opens: a node's port ([`super::serve`]), the capture node's
//! upload endpoint and the report node's dashboard.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use tokio::net::TcpListener;

use super::auth::{AuthError, AuthSettings, Authenticator};
use super::listen::{Incoming, incoming};
use super::tls::{ReloadingTls, TlsError, TlsSettings};

/// How one listener is secured.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct SecuritySettings {
    /// TLS on the listener. Absent: plaintext, refused beyond loopback unless `insecure`.
    pub tls: Option<TlsSettings>,
    /// Credentials callers must present. None configured (and no client CA): anyone who
    /// reaches the port may call, refused beyond loopback unless `insecure`.
    pub auth: AuthSettings,
    /// Accept a listener beyond loopback without TLS or without credentials. Said loudly at
    /// every start; for a network that is itself closed and trusted.
    pub insecure: bool,
}

/// A listener's security could not be set up, or is refused.
#[derive(Debug, thiserror::Error)]
pub enum SecurityError {
    /// TLS files could not be loaded.
    #[error(transparent)]
    Tls(#[from] TlsError),
    /// Credentials could not be loaded.
    #[error(transparent)]
    Auth(#[from] AuthError),
    /// The listener's address could not be read.
    #[error("listener: {0}")]
    Listener(String),
    /// Secure by default: the listener is reachable beyond loopback without TLS or
    /// credentials.
    #[error(
        "refusing to listen on {addr} without {missing}: an address beyond loopback needs TLS ({prefix}tls.cert, {prefix}tls.key) and credentials ({prefix}auth.tokens, or {prefix}tls.client_ca for client certificates); set {prefix}insecure: true to accept the risk on a closed network"
    )]
    Insecure {
        /// The address.
        addr: SocketAddr,
        /// What is missing: `TLS`, `credentials` or both.
        missing: String,
        /// Where the settings live (`` or `dashboard.`), for the message.
        prefix: String,
    },
}

/// A listener's loaded security: TLS (reloading) and the authenticator.
#[derive(Debug, Clone)]
pub struct Security {
    tls: Option<Arc<ReloadingTls>>,
    auth: Arc<Authenticator>,
    insecure: bool,
}

impl Default for Security {
    /// Plaintext, no credentials: for loopback only.
    fn default() -> Self {
        Security {
            tls: None,
            auth: Arc::new(Authenticator::open()),
            insecure: false,
        }
    }
}

impl Security {
    /// Loads the TLS files and tokens (relative paths against `base`) and starts watching
    /// the TLS files for rotation.
    pub fn load(settings: &SecuritySettings, base: &Path) -> Result<Self, SecurityError> {
        let tls = match &settings.tls {
            Some(tls) => Some(ReloadingTls::start(tls.resolved(base))?),
            None => None,
        };
        let mutual = settings.tls.as_ref().is_some_and(TlsSettings::mutual);
        let auth = Authenticator::load(&settings.auth, base, mutual)?;
        Ok(Security {
            tls,
            auth: Arc::new(auth),
            insecure: settings.insecure,
        })
    }

    /// True when the listener speaks TLS.
    pub fn tls(&self) -> bool {
        self.tls.is_some()
    }

    /// The secure-by-default rule for a listener bound to `addr`, without logging: the
    /// refusal, if any (`insecure` lets everything through). `prefix` says where the settings
    /// live in the message (`""` for a node's port, `"dashboard."`, ...).
    pub fn refusal(&self, addr: SocketAddr, prefix: &str) -> Option<SecurityError> {
        let missing = self.missing(addr)?;
        (!self.insecure).then(|| SecurityError::Insecure {
            addr,
            missing,
            prefix: prefix.to_string(),
        })
    }

    /// What a listener on `addr` lacks (`TLS`, `credentials`), when it is reachable beyond
    /// loopback and lacks anything.
    fn missing(&self, addr: SocketAddr) -> Option<String> {
        if addr.ip().is_loopback() {
            return None;
        }
        let mut missing = Vec::new();
        if self.tls.is_none() {
            missing.push("TLS");
        }
        if !self.auth.requires_credentials() {
            missing.push("credentials");
        }
        (!missing.is_empty()).then(|| missing.join(" and "))
    }

    /// [`Security::refusal`] as the listener starts: an error, or a loud warning when
    /// `insecure` lets an unsafe listener start.
    pub fn check_listener(&self, addr: SocketAddr, prefix: &str) -> Result<(), SecurityError> {
        if let Some(refused) = self.refusal(addr, prefix) {
            return Err(refused);
        }
        if let Some(missing) = self.missing(addr) {
            tracing::warn!(
                %addr,
                "INSECURE: listening on {addr} without {missing} ({prefix}insecure: true): anyone who reaches this address can read and change what it serves"
            );
        }
        Ok(())
    }

    /// Starts accepting connections on `listener`: TLS handshakes when configured.
    pub fn incoming(&self, listener: TcpListener) -> Incoming {
        incoming(listener, self.tls.clone())
    }

    /// `router` behind this listener's credential check (see [`super::auth`]).
    pub fn guard(&self, router: axum::Router) -> axum::Router {
        router.layer(axum::middleware::from_fn_with_state(
            self.auth.clone(),
            super::auth::guard,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn beyond_loopback_needs_tls_and_credentials() {
        let open = Security::default();
        assert!(
            open.check_listener("127.0.0.1:1".parse().unwrap(), "")
                .is_ok()
        );
        assert!(open.check_listener("[::1]:1".parse().unwrap(), "").is_ok());
        let err = open
            .check_listener("0.0.0.0:50051".parse().unwrap(), "")
            .unwrap_err();
        let message = err.to_string();
        assert!(
            message.contains("without TLS and credentials") && message.contains("insecure"),
            "{message}"
        );
        let insecure = Security {
            insecure: true,
            ..Security::default()
        };
        assert!(
            insecure
                .check_listener("0.0.0.0:50051".parse().unwrap(), "")
                .is_ok()
        );
    }
}
