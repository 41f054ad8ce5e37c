//! Serving an HTTP application (an axum [`Router`]) on its own listener with the same
//! security as a node's port: TLS with rotation, credentials checked before any handler,
//! secure by default beyond loopback. Used by the capture node's upload endpoint and the
//! report node's dashboard.
//!
//! Handlers learn who connected through `ConnectInfo<PeerInfo>` (address, TLS, client
//! certificate names).

use std::future::Future;
use std::io;

use axum::Router;
use axum::extract::connect_info::Connected;
use axum::serve::IncomingStream;
use tokio::net::TcpListener;
use tokio_stream::StreamExt;

use super::listen::{Conn, Incoming, PeerInfo};
use super::security::{Security, SecurityError};

/// A listener whose connections went through [`Security`] (TLS handshakes done).
pub struct SecureListener {
    incoming: Incoming,
    local: PeerInfo,
}

impl axum::serve::Listener for SecureListener {
    type Io = Conn;
    type Addr = PeerInfo;

    async fn accept(&mut self) -> (Conn, PeerInfo) {
        loop {
            match self.incoming.next().await {
                Some(Ok(conn)) => {
                    let peer = conn.peer();
                    return (conn, peer);
                }
                Some(Err(e)) => tracing::debug!(error = %e, "connection not accepted"),
                // The accept task ended: nothing more will come.
                None => std::future::pending::<()>().await,
            }
        }
    }

    fn local_addr(&self) -> io::Result<PeerInfo> {
        Ok(self.local.clone())
    }
}

impl Connected<IncomingStream<'_, SecureListener>> for PeerInfo {
    fn connect_info(stream: IncomingStream<'_, SecureListener>) -> Self {
        stream.remote_addr().clone()
    }
}

/// Serves `app` on `listener` until `shutdown` resolves: refused beyond loopback without TLS
/// and credentials (unless `insecure`; `prefix` names where the settings live in the
/// message), TLS when configured, [`Security::guard`] when `guard` is true (an application
/// with its own logins, like the dashboard, passes false and checks its callers itself).
pub async fn serve_app(
    listener: TcpListener,
    app: Router,
    security: Security,
    prefix: &str,
    guard: bool,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<impl Future<Output = io::Result<()>>, SecurityError> {
    let addr = listener
        .local_addr()
        .map_err(|e| SecurityError::Listener(e.to_string()))?;
    if guard {
        security.check_listener(addr, prefix)?;
    }
    let app = if guard { security.guard(app) } else { app };
    let listener = SecureListener {
        local: PeerInfo {
            remote: Some(addr),
            tls: security.tls(),
            subjects: std::sync::Arc::from(Vec::new()),
        },
        incoming: security.incoming(listener),
    };
    let server = axum::serve(
        listener,
        app.into_make_service_with_connect_info::<PeerInfo>(),
    )
    .with_graceful_shutdown(shutdown);
    Ok(async move { server.await })
}
