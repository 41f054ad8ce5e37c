//! The dashboard a `report` node serves over HTTP (axum): pages for people, a small JSON API
//! under `/api` for scripts, live updates as server-sent events.
//!
//! | path | what | role |
//! |---|---|---|
//! | `/` | live list of inspections, newest first; filters `line`, `product`, `verdict`, `day`, `disagree` | viewer |
//! | `/coils` | the coils: today's coil figures against the camera, the newest coil verdicts (with why), each linking to its angles (`/?product=ID`) | viewer |
//! | `/inspections/{uuid}` | one inspection: original and overlay side by side, scores, attributes, provenance, review | viewer |
//! | `/upload` | check one image through the running flow (sent to the `capture` node's upload endpoint) | viewer (sending: reviewer) |
//! | `/daily` | daily report: per day x line the coils (camera would stop / Loupe stopped), then per defect class, with charts; `/daily.csv` downloads it (`view=coils` the coil table) | viewer |
//! | `/api/inspections[/{uuid}]` | the list / one record as JSON (same filters) | viewer |
//! | `POST /api/inspections/{uuid}/review` | store a review: `{"label","note"}` under the logged-in user (open mode: `"reviewer"` too, stored as `local:NAME`); a label outside the record's allowed labels is `422` | reviewer |
//! | `/api/events` | server-sent events: `inspection` per new record, `resync` when a client fell behind | viewer |
//! | `/api/daily` | the daily report as JSON | viewer |
//! | `POST /api/upload` | the upload page's proxy to the capture node | reviewer |
//! | `/media/{path}` | files of the media store (original, overlay, mask, record JSON) | viewer |
//! | `/login` | the login form; `POST` checks it (name, password; rate-limited) and sets the session cookie | anyone |
//! | `POST /logout` | ends the session | viewer |
//! | `/admin/users` | the users of the users file and their roles | admin |
//! | `/health` | `ok` | anyone |
//!
//! Logins and roles (`auth.rs`): without a login a page redirects to `/login?next=...` and the
//! API and media answer `401`; a role too low gets `403`; every change by a logged-in user
//! carries the session's CSRF token (`x-csrf-token` or form field `csrf`). Without any login
//! configured the dashboard is open (everyone a reviewer, recorded as `local:NAME`), which it
//! allows only on a loopback address unless `auth.insecure`.
//!
//! Every page is self-contained (inline CSS, inline script, SVG charts): nothing is loaded
//! from outside the node. Live updates come from this node's own records (a broadcast channel
//! of bounded size: a browser that falls behind is told to reload, never buffered for);
//! reads go to the database, so every report node sharing a PostgreSQL database shows all
//! records.

mod api;
mod auth;
mod guard;
mod html;
mod identity;
mod login;
mod pages;
mod provenance;
mod query;
mod session;
mod settings;
mod throttle;
mod upload;
pub mod users;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use axum::Router;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use loupe_sdk::serve::{Security, SecuritySettings, serve_app};
use loupe_store::{Disagreement, Store, StoreError, Stored};
use tokio::sync::{Semaphore, broadcast};
use tokio_util::sync::CancellationToken;

pub use auth::AuthError;
pub use settings::{AuthSettings, DashboardSettings};

/// How many new records wait for a slow browser before it is told to reload.
const LIVE_BUFFER: usize = 256;

/// Where the dashboard's data comes from.
#[derive(Debug, Clone)]
pub struct Sources {
    /// The records.
    pub store: Arc<Store>,
    /// The media directory, if images are kept.
    pub media_dir: Option<PathBuf>,
    /// The provenance file, resolved.
    pub provenance: Option<PathBuf>,
    /// What a camera flag and a defect are (for the disagreement filter).
    pub disagreement: Disagreement,
    /// The users file (`auth.users_file`), resolved.
    pub users_file: Option<PathBuf>,
    /// Whether the dashboard is served over TLS: session cookies get `Secure`.
    pub secure_cookies: bool,
    /// The dashboard's TLS settings (`dashboard.tls`), paths resolved.
    pub tls: Option<loupe_sdk::serve::TlsSettings>,
    /// How the upload page reaches the capture node: TLS (`upload_tls`, resolved) and the
    /// bearer token read from `upload_token_file`.
    pub upload_client: (
        loupe_sdk::https::ClientTlsSettings,
        Option<loupe_sdk::client::Secret>,
    ),
}

/// Sends new records to the browsers following the live list.
#[derive(Debug, Clone)]
pub struct Live(broadcast::Sender<Arc<Stored>>);

impl Live {
    /// A new channel.
    pub fn new() -> Live {
        Live(broadcast::channel(LIVE_BUFFER).0)
    }

    /// Tells the browsers about a new record (nobody listening is fine).
    pub fn publish(&self, record: Stored) {
        let _ = self.0.send(Arc::new(record));
    }
}

impl Default for Live {
    fn default() -> Self {
        Live::new()
    }
}

/// A running dashboard; stops when dropped.
#[derive(Debug)]
pub struct Dashboard {
    addr: SocketAddr,
    shutdown: CancellationToken,
}

impl Dashboard {
    /// Binds `settings.listen` and serves until dropped.
    pub async fn start(
        settings: &DashboardSettings,
        sources: Sources,
        live: Live,
    ) -> Result<Dashboard, std::io::Error> {
        let addr: SocketAddr = settings.listen.parse().map_err(|_| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!("dashboard.listen `{}` is not HOST:PORT", settings.listen),
            )
        })?;
        let listener = tokio::net::TcpListener::bind(addr).await.map_err(|e| {
            std::io::Error::new(e.kind(), format!("dashboard cannot listen on {addr}: {e}"))
        })?;
        let addr = listener.local_addr()?;
        let invalid = |e: &dyn std::fmt::Display| {
            std::io::Error::new(std::io::ErrorKind::InvalidInput, e.to_string())
        };
        // TLS here; logins are the dashboard's own (`auth`), so no token layer.
        let security = Security::load(
            &SecuritySettings {
                tls: sources.tls.clone(),
                auth: Default::default(),
                insecure: settings.auth.insecure,
            },
            // `sources.tls` is already resolved against the flow file's directory.
            std::path::Path::new("."),
        )
        .map_err(|e| invalid(&format!("dashboard.tls: {e}")))?;
        let uploader = match &settings.upload_url {
            Some(url) => Some(
                upload::Uploader::new(
                    url,
                    &sources.upload_client.0,
                    sources.upload_client.1.clone(),
                )
                .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?,
            ),
            None => None,
        };
        let auth = auth::Auth::new(settings, sources.users_file.clone(), sources.secure_cookies)
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
        // Secure by default, after the logins loaded (their errors come first).
        if sources.tls.is_none() && !addr.ip().is_loopback() {
            if !settings.auth.insecure {
                return Err(invalid(&format!(
                    "refusing to serve the dashboard on {addr} without TLS: set dashboard.tls \
                     (cert, key; `loupe certs` makes them), or dashboard.auth.insecure: true \
                     on a closed network"
                )));
            }
            tracing::warn!(%addr, "INSECURE: the dashboard is served WITHOUT TLS on a non-loopback address (dashboard.auth.insecure: true)");
        }
        let shutdown = CancellationToken::new();
        let shared = Arc::new(Shared {
            auth: Arc::new(auth),
            settings: settings.clone(),
            sources,
            live,
            live_slots: Arc::new(Semaphore::new(settings.max_live_clients)),
            uploader,
            shutdown: shutdown.clone(),
        });
        let stop = shutdown.clone();
        let app = router(shared);
        let scheme = if security.tls() { "https" } else { "http" };
        let server = serve_app(listener, app, security, "dashboard.", false, async move {
            stop.cancelled().await
        })
        .await
        .map_err(|e| invalid(&e))?;
        tokio::spawn(async move {
            if let Err(e) = server.await {
                tracing::warn!(error = %e, "dashboard stopped");
            }
        });
        tracing::info!(url = %format!("{scheme}://{addr}/"), "dashboard listening");
        Ok(Dashboard { addr, shutdown })
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for Dashboard {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// What every handler sees.
struct Shared {
    /// Logins, sessions, roles.
    auth: Arc<auth::Auth>,
    settings: DashboardSettings,
    sources: Sources,
    live: Live,
    live_slots: Arc<Semaphore>,
    uploader: Option<upload::Uploader>,
    /// Cancelled when the dashboard stops: live streams end, so browsers reconnect.
    shutdown: CancellationToken,
}

fn router(shared: Arc<Shared>) -> Router {
    let allowed = Arc::new(guard::AllowedHosts::new(
        &shared.settings.allowed_hosts,
        &shared.settings.listen,
    ));
    Router::new()
        .route("/", get(pages::list))
        .route("/inspections/{uuid}", get(pages::detail))
        .route("/coils", get(pages::coils))
        .route("/upload", get(pages::upload))
        .route("/daily", get(pages::daily))
        .route("/daily.csv", get(api::daily_csv))
        .route("/api/inspections", get(api::list))
        .route("/api/inspections/{uuid}", get(api::get))
        .route("/api/inspections/{uuid}/review", post(api::review))
        .route("/api/daily", get(api::daily))
        .route("/api/events", get(api::events))
        .route(
            "/api/upload",
            post(upload::upload).layer(axum::extract::DefaultBodyLimit::max(
                shared.settings.max_upload_bytes,
            )),
        )
        .route("/media/{*path}", get(api::media))
        .route("/health", get(|| async { "ok" }))
        .route("/login", get(login::form).post(login::login))
        .route("/logout", post(login::logout))
        .route("/admin/users", get(login::users))
        .layer(axum::middleware::from_fn_with_state(
            shared.auth.clone(),
            auth::layer,
        ))
        // The guard runs first (the outer layer): refused hosts never reach a login.
        .layer(axum::middleware::from_fn_with_state(allowed, guard::guard))
        .with_state(shared)
}

/// Why a request failed; becomes the response.
#[derive(Debug, thiserror::Error)]
enum DashboardError {
    /// No such record or file.
    #[error("{0}")]
    NotFound(String),
    /// The request is wrong.
    #[error("{0}")]
    BadRequest(String),
    /// The database (or the capture node) cannot answer now.
    #[error("{0}")]
    Unavailable(String),
    /// The request is well-formed but not allowed (a label outside the allowed set).
    #[error("{0}")]
    Unprocessable(String),
    /// Something else failed.
    #[error("{0}")]
    Internal(String),
}

impl From<StoreError> for DashboardError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Unavailable { .. } => DashboardError::Unavailable(e.to_string()),
            other => DashboardError::Internal(other.to_string()),
        }
    }
}

impl IntoResponse for DashboardError {
    fn into_response(self) -> Response {
        let status = match &self {
            DashboardError::NotFound(_) => StatusCode::NOT_FOUND,
            DashboardError::BadRequest(_) => StatusCode::BAD_REQUEST,
            DashboardError::Unprocessable(_) => StatusCode::UNPROCESSABLE_ENTITY,
            DashboardError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            DashboardError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        };
        if status.is_server_error() {
            tracing::warn!(error = %self, "dashboard request failed");
        }
        (status, self.to_string()).into_response()
    }
}
