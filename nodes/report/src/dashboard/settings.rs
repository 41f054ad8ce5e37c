//! The dashboard's settings (`dashboard:` of a `report` node).

use std::path::PathBuf;
use std::time::Duration;

use loupe_sdk::SettingsError;
use schemars::JsonSchema;
use serde::Deserialize;

/// The web dashboard a `report` node serves over HTTP: the live list of inspections, their
/// details, review (feedback for retraining), the daily report, and an upload page.
///
/// Logins (`auth`): local users of a users file (argon2id hashes, `loupe users`) and/or a
/// trusted reverse proxy's identity header; roles viewer, reviewer, admin. Without either it
/// stays open (anyone is a reviewer) but only on a loopback address; on any other address it
/// refuses to start unless `auth.insecure: true`. It serves only the host names of
/// `allowed_hosts` and refuses changes a browser says come from another site (`guard.rs`).
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DashboardSettings {
    /// Address and port to listen on (`127.0.0.1:8090`; `0.0.0.0:8090` for every interface;
    /// port 0 picks a free port, logged at start).
    #[serde(default = "default_listen")]
    pub listen: String,
    /// The `capture` node's upload endpoint (`http://HOST:PORT/upload`) the upload page sends
    /// an image to, so it goes through the running flow like a camera's. Absent: the upload
    /// page says uploads are not configured.
    #[serde(default)]
    pub upload_url: Option<String>,
    /// How an `https://` upload endpoint's certificate is checked (`ca`: a PEM CA file,
    /// relative to the flow file's directory; absent: the system's trusted roots).
    #[serde(default)]
    pub upload_tls: loupe_sdk::https::ClientTlsSettings,
    /// File holding the bearer token sent to the upload endpoint (one of the capture node's
    /// `upload.auth.tokens`); relative to the flow file's directory. Absent: none sent.
    #[serde(default)]
    pub upload_token_file: Option<PathBuf>,
    /// The provenance file `loupe run --provenance FILE` writes (relative to the flow file's
    /// directory): the detail page lists a record's events from it. Absent: no events shown.
    #[serde(default)]
    pub provenance: Option<PathBuf>,
    /// Link to a trace viewer for a record's trace, `{trace_id}` replaced (e.g.
    /// `http://localhost:16686/trace/{trace_id}` for Jaeger). Absent: the id is shown as text.
    #[serde(default)]
    pub trace_url: Option<String>,
    /// Labels a reviewer may choose. Empty (default): the labels of the record's model scores
    /// (`classify.scores`), or `ok`/`defect` and the segmenter's classes.
    #[serde(default)]
    pub labels: Vec<String>,
    /// Largest image the upload page accepts, bytes.
    #[serde(default = "default_max_upload_bytes")]
    pub max_upload_bytes: usize,
    /// Most browsers following live updates at once; more get `503` and retry.
    #[serde(default = "default_max_live_clients")]
    pub max_live_clients: usize,
    /// Shown in every page's title bar (e.g. the plant or line).
    #[serde(default = "default_title")]
    pub title: String,
    /// Host names browsers may reach the dashboard by (the `Host` header; against DNS
    /// rebinding). Empty (default): `localhost`, `127.0.0.1`, `::1` and the IP of `listen`.
    /// Behind a reverse proxy or under a DNS name, list that name; `*` allows any.
    #[serde(default)]
    pub allowed_hosts: Vec<String>,
    /// TLS on the dashboard (`cert`, `key`, optional `client_ca`, `reload_interval`; paths
    /// relative to the flow file's directory). Session cookies are then `Secure`. Beyond
    /// loopback the dashboard refuses to start without it unless `auth.insecure`.
    #[serde(default)]
    pub tls: Option<loupe_sdk::serve::TlsSettings>,
    /// Who may use the dashboard: logins, sessions, roles (see [`AuthSettings`]).
    #[serde(default)]
    pub auth: AuthSettings,
}

/// The dashboard's logins (`dashboard.auth`). Neither `users_file` nor `proxy_header` set: no
/// logins, which is allowed only when `listen` is a loopback address (or with `insecure`).
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AuthSettings {
    /// The users file (`NAME:ROLE:ARGON2ID-HASH` lines, written by `loupe users add`;
    /// relative to the flow file's directory). Read at start (it must exist) and again when
    /// it changes: a removed user's sessions end at their next request.
    #[serde(default)]
    pub users_file: Option<PathBuf>,
    /// A header a trusted reverse proxy sets to the signed-in user's name for single sign-on
    /// (e.g. `X-Forwarded-User`). Honoured only on requests from `trusted_proxies`; the same
    /// header on a request from any other peer is refused (`403`). Absent: no proxy sign-on.
    #[serde(default)]
    pub proxy_header: Option<String>,
    /// A header the proxy sets to the user's role (`viewer`, `reviewer`, `admin`). Absent, or
    /// missing on a request: `proxy_default_role`.
    #[serde(default)]
    pub proxy_role_header: Option<String>,
    /// The role of a proxy-signed-in user when no role header says otherwise. Absent: a
    /// request without a role header is refused (`403`).
    #[serde(default)]
    pub proxy_default_role: Option<super::users::Role>,
    /// IP addresses of the reverse proxies whose requests may carry `proxy_header` (their
    /// `X-Forwarded-For` also names the client for the login rate limit).
    #[serde(default)]
    pub trusted_proxies: Vec<std::net::IpAddr>,
    /// Serve the dashboard without logins on a non-loopback `listen` anyway (anyone who can
    /// reach it may review and upload). Logged as a warning at every start.
    #[serde(default)]
    pub insecure: bool,
    /// Most sessions held at once; a new login beyond it ends the session idle longest.
    #[serde(default = "default_max_sessions")]
    pub max_sessions: usize,
    /// A session ends after this long without a request (humantime).
    #[serde(default = "default_session_idle", with = "loupe_sdk::config::duration")]
    #[schemars(with = "String")]
    pub session_idle: Duration,
    /// A session ends this long after its login, however busy (humantime).
    #[serde(
        default = "default_session_lifetime",
        with = "loupe_sdk::config::duration"
    )]
    #[schemars(with = "String")]
    pub session_lifetime: Duration,
    /// Failed logins allowed per minute, per user name and per client address; more get
    /// `429` with `Retry-After`.
    #[serde(default = "default_max_failed_logins")]
    pub max_failed_logins: u32,
}

impl Default for AuthSettings {
    fn default() -> Self {
        AuthSettings {
            users_file: None,
            proxy_header: None,
            proxy_role_header: None,
            proxy_default_role: None,
            trusted_proxies: Vec::new(),
            insecure: false,
            max_sessions: default_max_sessions(),
            session_idle: default_session_idle(),
            session_lifetime: default_session_lifetime(),
            max_failed_logins: default_max_failed_logins(),
        }
    }
}

impl AuthSettings {
    /// Whether any login is configured (a users file or a proxy header).
    pub fn configured(&self) -> bool {
        self.users_file.is_some() || self.proxy_header.is_some()
    }
}

fn default_max_sessions() -> usize {
    1000
}

fn default_session_idle() -> Duration {
    Duration::from_secs(30 * 60)
}

fn default_session_lifetime() -> Duration {
    Duration::from_secs(12 * 3600)
}

fn default_max_failed_logins() -> u32 {
    5
}

fn default_listen() -> String {
    "127.0.0.1:8090".to_string()
}

fn default_max_upload_bytes() -> usize {
    32 * 1024 * 1024
}

fn default_max_live_clients() -> usize {
    32
}

fn default_title() -> String {
    "Loupe".to_string()
}

impl DashboardSettings {
    /// Every problem with these settings that needs no I/O to find (paths relative to
    /// `dashboard.`).
    pub fn problems(&self) -> Vec<SettingsError> {
        let mut problems = Vec::new();
        if self.listen.parse::<std::net::SocketAddr>().is_err() {
            problems.push(SettingsError::new(
                "listen",
                format!("`{}` is not HOST:PORT (e.g. 127.0.0.1:8090)", self.listen),
            ));
        }
        if let Some(url) = &self.upload_url
            && !((url.starts_with("https://") || url.starts_with("http://"))
                && url.parse::<http::Uri>().is_ok())
        {
            problems.push(SettingsError::new(
                "upload_url",
                format!("`{url}` is not an https:// or http:// URL"),
            ));
        }
        if let Some(url) = &self.trace_url
            && !url.contains("{trace_id}")
        {
            problems.push(SettingsError::new("trace_url", "must contain `{trace_id}`"));
        }
        if self.max_upload_bytes == 0 {
            problems.push(SettingsError::new(
                "max_upload_bytes",
                "must be more than 0",
            ));
        }
        if self.max_live_clients == 0 {
            problems.push(SettingsError::new("max_live_clients", "must be at least 1"));
        }
        problems.extend(self.auth_problems());
        problems
    }

    /// The problems of `auth` (paths relative to `dashboard.`).
    fn auth_problems(&self) -> Vec<SettingsError> {
        let auth = &self.auth;
        let mut problems = Vec::new();
        let loopback = self
            .listen
            .parse::<std::net::SocketAddr>()
            .is_ok_and(|a| a.ip().is_loopback());
        if !auth.configured() && !auth.insecure && !loopback {
            problems.push(SettingsError::new(
                "auth",
                format!(
                    "the dashboard listens on `{}`, not a loopback address, without logins: set \
                     `dashboard.auth.users_file` (see `loupe users add`) or \
                     `dashboard.auth.proxy_header`, or `dashboard.auth.insecure: true` to serve it \
                     open to anyone who can reach it",
                    self.listen
                ),
            ));
        }
        if let Some(header) = &auth.proxy_header {
            if header.parse::<http::HeaderName>().is_err() {
                problems.push(SettingsError::new(
                    "auth.proxy_header",
                    format!("`{header}` is not a header name"),
                ));
            }
            if auth.trusted_proxies.is_empty() {
                problems.push(SettingsError::new(
                    "auth.trusted_proxies",
                    "list the reverse proxies' addresses: `proxy_header` is honoured only from them",
                ));
            }
            if auth.proxy_role_header.is_none() && auth.proxy_default_role.is_none() {
                problems.push(SettingsError::new(
                    "auth.proxy_default_role",
                    "give `proxy_default_role` or `proxy_role_header`: a proxy user needs a role",
                ));
            }
        }
        if let Some(header) = &auth.proxy_role_header
            && header.parse::<http::HeaderName>().is_err()
        {
            problems.push(SettingsError::new(
                "auth.proxy_role_header",
                format!("`{header}` is not a header name"),
            ));
        }
        if auth.max_sessions == 0 {
            problems.push(SettingsError::new(
                "auth.max_sessions",
                "must be at least 1",
            ));
        }
        if auth.session_idle.is_zero() || auth.session_lifetime.is_zero() {
            problems.push(SettingsError::new(
                "auth.session_idle",
                "session_idle and session_lifetime must be more than 0s",
            ));
        }
        if auth.max_failed_logins == 0 {
            problems.push(SettingsError::new(
                "auth.max_failed_logins",
                "must be at least 1",
            ));
        }
        problems
    }
}
