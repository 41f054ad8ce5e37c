//! Who is asking, and whether they may: the middleware every dashboard request passes after
//! the guard (`guard.rs`).
//!
//! A request's identity comes from, in order:
//! 1. the trusted reverse proxy's identity header (`auth.proxy_header`), honoured only when the
//!    peer is one of `auth.trusted_proxies` — the header from any other peer is refused
//!    (`403`), so a client cannot name itself by talking to the dashboard directly;
//! 2. the `loupe_session` cookie of a login (`/login`), whose user must still be in the users
//!    file (the file's current role counts);
//! 3. nobody — except in open mode (no logins configured; allowed on a loopback `listen`, or
//!    anywhere with `auth.insecure`), where everyone is an anonymous reviewer.
//!
//! What each route needs is [`need`]: nothing (`/login`, `/health`), or a role — viewer for
//! every read, reviewer for a review or an upload, admin for `/admin/...`. Without an identity
//! a page redirects to `/login?next=...`, the API and media answer `401`; a role too low gets
//! `403`. Every change (not `GET`/`HEAD`/`OPTIONS`) by a logged-in user must carry the
//! session's CSRF token, in header `x-csrf-token` or form field `csrf`; else `403`. (Login
//! itself is protected by the guard's Origin / Sec-Fetch-Site check; in open mode there is no
//! token and the guard is the protection, as before logins existed.)

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use hmac::{Hmac, Mac};
use loupe_sdk::serve::PeerInfo;
use sha2::Sha256;

use super::html::url_encode;
use super::identity::{Identity, Via};
use super::session::{self, Sessions};
use super::settings::DashboardSettings;
use super::throttle::Throttle;
use super::users::{Role, Users, UsersError};

/// The header a page's script sends its CSRF token in.
pub(crate) const CSRF_HEADER: &str = "x-csrf-token";
/// The form field a page's form sends its CSRF token in.
pub(crate) const CSRF_FIELD: &str = "csrf";
/// The largest form body read to find the CSRF field.
const MAX_FORM_BYTES: usize = 64 * 1024;

/// What a route needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Need {
    /// Nothing: anyone may.
    Public,
    /// At least this role.
    Role(Role),
}

/// What `method` on `path` needs (the one place the roles of routes are decided).
pub(crate) fn need(method: &Method, path: &str) -> Need {
    let read = matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS);
    match path {
        "/login" | "/health" => Need::Public,
        p if p == "/admin" || p.starts_with("/admin/") => Need::Role(Role::Admin),
        "/logout" => Need::Role(Role::Viewer),
        _ if read => Need::Role(Role::Viewer),
        _ => Need::Role(Role::Reviewer),
    }
}

/// The users file, read again when it changes on disk.
#[derive(Debug)]
pub(crate) struct UsersFile {
    path: PathBuf,
    cache: Mutex<Cached>,
}

/// The users file's modification time and length when read, and its users.
type Cached = (Option<(SystemTime, u64)>, Arc<Users>);

impl UsersFile {
    /// Reads `path` (it must exist and be valid).
    pub(crate) fn open(path: PathBuf) -> Result<UsersFile, UsersError> {
        let users = Users::load(&path)?;
        let stamp = stamp(&path);
        Ok(UsersFile {
            path,
            cache: Mutex::new((stamp, Arc::new(users))),
        })
    }

    /// The users now (read again if the file changed; a file that became unreadable or
    /// invalid keeps the last good users, with a warning).
    pub(crate) fn current(&self) -> Arc<Users> {
        let now = stamp(&self.path);
        let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        if now.is_some() && now != cache.0 {
            match Users::load(&self.path) {
                Ok(users) => *cache = (now, Arc::new(users)),
                Err(e) => {
                    tracing::warn!(error = %e, "dashboard: users file not read; keeping the users read before");
                    cache.0 = now;
                }
            }
        }
        cache.1.clone()
    }
}

fn stamp(path: &std::path::Path) -> Option<(SystemTime, u64)> {
    let meta = std::fs::metadata(path).ok()?;
    Some((meta.modified().ok()?, meta.len()))
}

/// The trusted proxy's sign-on.
#[derive(Debug)]
struct Proxy {
    header: http::HeaderName,
    role_header: Option<http::HeaderName>,
    default_role: Option<Role>,
}

/// Everything the middleware and the login handlers need.
#[derive(Debug)]
pub(crate) struct Auth {
    /// No logins configured: everyone is an anonymous reviewer.
    pub open: bool,
    /// The local users, if a users file is configured.
    pub users: Option<UsersFile>,
    proxy: Option<Proxy>,
    trusted: Vec<IpAddr>,
    /// The login sessions.
    pub sessions: Sessions,
    /// The failed-login counts.
    pub throttle: Throttle,
    /// Whether cookies get `Secure` (served over TLS).
    pub secure_cookies: bool,
    /// Key of proxy users' CSRF tokens (random per start).
    csrf_key: [u8; 32],
}

/// Why the dashboard's logins cannot start.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// The users file cannot be used.
    #[error("dashboard.auth.users_file: {0}")]
    Users(#[from] UsersError),
    /// No logins on a non-loopback address.
    #[error(
        "dashboard.auth: the dashboard listens on `{0}`, not a loopback address, without logins: \
         set dashboard.auth.users_file (see `loupe users add`) or dashboard.auth.proxy_header, or \
         dashboard.auth.insecure: true to serve it open to anyone who can reach it"
    )]
    Unprotected(String),
}

impl Auth {
    /// From the settings; `users_file` resolved; `secure_cookies` when served over TLS.
    pub(crate) fn new(
        settings: &DashboardSettings,
        users_file: Option<PathBuf>,
        secure_cookies: bool,
    ) -> Result<Auth, AuthError> {
        let auth = &settings.auth;
        let loopback = settings
            .listen
            .parse::<SocketAddr>()
            .is_ok_and(|a| a.ip().is_loopback());
        let open = users_file.is_none() && auth.proxy_header.is_none();
        if open && !loopback {
            if !auth.insecure {
                return Err(AuthError::Unprotected(settings.listen.clone()));
            }
            tracing::warn!(
                listen = %settings.listen,
                "INSECURE: the dashboard is served WITHOUT LOGINS on a non-loopback address \
                 (dashboard.auth.insecure: true): anyone who can reach it may review and upload"
            );
        }
        let users = users_file.map(UsersFile::open).transpose()?;
        let proxy = auth.proxy_header.as_ref().and_then(|h| {
            Some(Proxy {
                header: h.parse().ok()?,
                role_header: auth.proxy_role_header.as_ref().and_then(|r| r.parse().ok()),
                default_role: auth.proxy_default_role,
            })
        });
        let mut csrf_key = [0u8; 32];
        getrandom::fill(&mut csrf_key).expect("the operating system's random source works");
        Ok(Auth {
            open,
            users,
            proxy,
            trusted: auth.trusted_proxies.clone(),
            sessions: Sessions::new(auth.max_sessions, auth.session_idle, auth.session_lifetime),
            throttle: Throttle::new(auth.max_failed_logins),
            secure_cookies,
            csrf_key,
        })
    }

    /// The client's address: the peer, or the last `X-Forwarded-For` entry a trusted proxy
    /// added.
    pub(crate) fn client_ip(&self, peer: Option<IpAddr>, headers: &HeaderMap) -> Option<IpAddr> {
        let peer = peer?;
        if self.trusted.contains(&peer)
            && let Some(forwarded) = headers
                .get_all("x-forwarded-for")
                .iter()
                .filter_map(|v| v.to_str().ok())
                .flat_map(|v| v.split(','))
                .filter_map(|a| a.trim().parse::<IpAddr>().ok())
                .next_back()
        {
            return Some(forwarded);
        }
        Some(peer)
    }

    fn proxy_csrf(&self, name: &str) -> String {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.csrf_key).expect("any key size");
        mac.update(b"loupe-dashboard-csrf:");
        mac.update(name.as_bytes());
        mac.finalize()
            .into_bytes()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }

    /// The identity of a request, `Ok(None)` for nobody, or why it is refused (`403`).
    fn identify(
        &self,
        peer: Option<IpAddr>,
        headers: &HeaderMap,
    ) -> Result<Option<Identity>, String> {
        if let Some(proxy) = &self.proxy
            && let Some(value) = headers.get(&proxy.header)
        {
            if !peer.is_some_and(|p| self.trusted.contains(&p)) {
                tracing::warn!(peer = ?peer, header = %proxy.header, "dashboard: identity header from an untrusted peer refused");
                return Err(format!(
                    "header `{}` is accepted only from the trusted proxies (dashboard.auth.trusted_proxies)\n",
                    proxy.header
                ));
            }
            let name = value.to_str().unwrap_or("").trim();
            if name.is_empty() || name.chars().count() > 80 || name.chars().any(|c| c.is_control())
            {
                return Err(format!("header `{}`: not a user name\n", proxy.header));
            }
            let role = match proxy
                .role_header
                .as_ref()
                .and_then(|h| headers.get(h))
                .and_then(|v| v.to_str().ok())
            {
                Some(role) => role.parse::<Role>().map_err(|e| format!("{e}\n"))?,
                None => proxy.default_role.ok_or_else(|| {
                    "the proxy gave no role (dashboard.auth.proxy_role_header)\n".to_string()
                })?,
            };
            return Ok(Some(Identity {
                name: name.to_string(),
                role,
                via: Via::Proxy,
                csrf: Some(self.proxy_csrf(name)),
            }));
        }
        if let Some(users) = &self.users
            && let Some(id) = session::cookie(headers, session::COOKIE)
            && let Some(s) = self.sessions.touch(id)
        {
            // The users file decides: a removed user is logged out, a changed role applies.
            match users.current().get(&s.user) {
                Some(user) => {
                    return Ok(Some(Identity {
                        name: s.user,
                        role: user.role,
                        via: Via::Session(id.to_string()),
                        csrf: Some(s.csrf),
                    }));
                }
                None => self.sessions.remove(id),
            }
        }
        Ok(self.open.then(|| Identity {
            name: "local".to_string(),
            role: Role::Reviewer,
            via: Via::Open,
            csrf: None,
        }))
    }
}

/// Whether `path` is answered with data (`401` when nobody is logged in) rather than a page
/// (redirect to the login page).
fn is_data(path: &str) -> bool {
    path.starts_with("/api/") || path.starts_with("/media/") || path == "/logout"
}

/// A same-site relative path to return to after login, or `/`.
pub(crate) fn safe_next(next: Option<&str>) -> String {
    match next {
        Some(n)
            if n.starts_with('/')
                && !n.starts_with("//")
                && !n.starts_with("/\\")
                && !n.chars().any(|c| c.is_control() || c == '\\') =>
        {
            n.to_string()
        }
        _ => "/".to_string(),
    }
}

/// The middleware: identifies, checks the role and the CSRF token, and hands the
/// [`Identity`] to the handler (a request extension).
pub(crate) async fn layer(
    State(auth): State<Arc<Auth>>,
    mut request: Request,
    next: Next,
) -> Response {
    let peer = request
        .extensions()
        .get::<ConnectInfo<PeerInfo>>()
        .and_then(|c| c.0.remote)
        .map(|a| a.ip());
    let identity = match auth.identify(peer, request.headers()) {
        Ok(identity) => identity,
        Err(why) => return (StatusCode::FORBIDDEN, why).into_response(),
    };
    let method = request.method().clone();
    let path = request.uri().path().to_string();
    let needed = match need(&method, &path) {
        Need::Public => {
            if let Some(identity) = identity {
                request.extensions_mut().insert(identity);
            }
            return next.run(request).await;
        }
        Need::Role(role) => role,
    };
    let Some(identity) = identity else {
        if is_data(&path) || !matches!(method, Method::GET | Method::HEAD) {
            return (StatusCode::UNAUTHORIZED, "log in first: /login\n").into_response();
        }
        let target = request
            .uri()
            .path_and_query()
            .map_or("/", |p| p.as_str())
            .to_string();
        return Redirect::to(&format!("/login?next={}", url_encode(&target))).into_response();
    };
    if identity.role < needed {
        return (
            StatusCode::FORBIDDEN,
            format!(
                "`{}` is a {}: this needs a {}\n",
                identity.name, identity.role, needed
            ),
        )
            .into_response();
    }
    if !matches!(method, Method::GET | Method::HEAD | Method::OPTIONS)
        && let Some(expected) = identity.csrf.clone()
    {
        let (ok, rebuilt) = csrf_ok(request, &expected).await;
        let Some(rebuilt) = rebuilt.filter(|_| ok) else {
            return (
                StatusCode::FORBIDDEN,
                "missing or wrong CSRF token (header x-csrf-token or form field csrf): reload the page\n",
            )
                .into_response();
        };
        request = rebuilt;
    }
    request.extensions_mut().insert(identity);
    next.run(request).await
}

/// Whether `request` carries `expected` as its CSRF token; gives the request back (its body
/// read and put back when the token is in a form).
async fn csrf_ok(request: Request, expected: &str) -> (bool, Option<Request>) {
    if let Some(token) = request
        .headers()
        .get(CSRF_HEADER)
        .and_then(|v| v.to_str().ok())
    {
        return (session::same_secret(token, expected), Some(request));
    }
    let is_form = request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|t| t.starts_with("application/x-www-form-urlencoded"));
    if !is_form {
        return (false, Some(request));
    }
    let (parts, body) = request.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, MAX_FORM_BYTES).await else {
        return (false, None);
    };
    let ok = form_field(&bytes, CSRF_FIELD).is_some_and(|t| session::same_secret(&t, expected));
    (
        ok,
        Some(Request::from_parts(parts, axum::body::Body::from(bytes))),
    )
}

/// The value of field `name` of an `application/x-www-form-urlencoded` body.
pub(crate) fn form_field(body: &[u8], name: &str) -> Option<String> {
    body.split(|b| *b == b'&').find_map(|pair| {
        let mut kv = pair.splitn(2, |b| *b == b'=');
        let key = url_decode(kv.next()?)?;
        (key == name).then(|| url_decode(kv.next().unwrap_or(b"")))?
    })
}

/// Decodes one form-encoded value (`+` is a space).
fn url_decode(raw: &[u8]) -> Option<String> {
    let mut out = Vec::with_capacity(raw.len());
    let mut i = 0;
    while i < raw.len() {
        match raw[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = std::str::from_utf8(raw.get(i + 1..i + 3)?).ok()?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_need_the_roles_of_the_table() {
        use Method as M;
        assert_eq!(need(&M::GET, "/login"), Need::Public);
        assert_eq!(need(&M::POST, "/login"), Need::Public);
        assert_eq!(need(&M::GET, "/health"), Need::Public);
        assert_eq!(need(&M::GET, "/"), Need::Role(Role::Viewer));
        assert_eq!(need(&M::GET, "/api/events"), Need::Role(Role::Viewer));
        assert_eq!(
            need(&M::POST, "/api/inspections/x/review"),
            Need::Role(Role::Reviewer)
        );
        assert_eq!(need(&M::POST, "/api/upload"), Need::Role(Role::Reviewer));
        assert_eq!(need(&M::GET, "/admin/users"), Need::Role(Role::Admin));
        assert_eq!(need(&M::POST, "/logout"), Need::Role(Role::Viewer));
        assert_eq!(need(&M::DELETE, "/"), Need::Role(Role::Reviewer));
    }

    #[test]
    fn next_stays_on_this_site_and_forms_decode() {
        assert_eq!(safe_next(Some("/inspections/a?x=1")), "/inspections/a?x=1");
        for bad in [
            "//evil.example",
            "https://evil.example",
            "/\\evil",
            "evil",
            "",
        ] {
            assert_eq!(safe_next(Some(bad)), "/", "{bad}");
        }
        assert_eq!(safe_next(None), "/");
        let body = b"name=anna+b&csrf=a%2Fb&empty=";
        assert_eq!(form_field(body, "name").as_deref(), Some("anna b"));
        assert_eq!(form_field(body, "csrf").as_deref(), Some("a/b"));
        assert_eq!(form_field(body, "empty").as_deref(), Some(""));
        assert_eq!(form_field(body, "none"), None);
    }

    #[test]
    fn reviewers_are_who_logged_in_or_marked_local() {
        let open = Identity {
            name: "local".into(),
            role: Role::Reviewer,
            via: Via::Open,
            csrf: None,
        };
        assert_eq!(open.reviewer(Some(" anna ")).unwrap(), "local:anna");
        assert_eq!(open.reviewer(Some("")).unwrap(), "local");
        assert_eq!(open.reviewer(None).unwrap(), "local");
        let anna = Identity {
            name: "anna".into(),
            role: Role::Reviewer,
            via: Via::Session("s".into()),
            csrf: Some("t".into()),
        };
        assert_eq!(anna.reviewer(None).unwrap(), "anna");
        assert_eq!(anna.reviewer(Some("anna")).unwrap(), "anna");
        assert!(anna.reviewer(Some("ben")).is_err());
    }
}
