//! `/login` (the form, and checking it), `POST /logout`, and the admin's `/admin/users`.
//!
//! A login checks the password against the users file's argon2id hash on a blocking thread;
//! an unknown name is checked against a decoy hash, so it takes as long as a wrong password.
//! Failed logins count against the name and the client address (`throttle.rs`). Nothing here
//! logs a password, a hash or a session id.

use std::fmt::Write as _;
use std::sync::Arc;

use axum::Extension;
use axum::extract::{ConnectInfo, Query, Request, State};
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use loupe_sdk::serve::PeerInfo;

use super::auth::{form_field, safe_next};
use super::html::{Tab, esc, page};
use super::identity::{Identity, Via};
use super::session;
use super::users::verify_password;
use super::{DashboardError, Shared};

/// The largest login form read.
const MAX_LOGIN_BYTES: usize = 8 * 1024;

/// The login page's query.
#[derive(Debug, Default, serde::Deserialize)]
pub(super) struct LoginQuery {
    /// Where to go after logging in (a path of this site).
    next: Option<String>,
}

/// The login form, with `message` above it.
fn login_page(shared: &Shared, next: &str, message: &str) -> Html<String> {
    let body = if shared.auth.users.is_some() {
        format!(
            "<h1>Log in</h1>{message}<form id=\"login-form\" class=\"card login\" method=\"post\" action=\"/login\">\
             <input type=\"hidden\" name=\"next\" value=\"{next}\">\
             <label>Name<input id=\"login-name\" name=\"name\" autocomplete=\"username\" required autofocus></label>\
             <label>Password<input id=\"login-password\" name=\"password\" type=\"password\" autocomplete=\"current-password\" required></label>\
             <p><button type=\"submit\" id=\"login\">Log in</button></p></form>",
            next = esc(next)
        )
    } else {
        "<h1>Log in</h1><p id=\"login-off\">This dashboard has no local users: sign in through the \
         plant's single sign-on.</p>"
            .to_string()
    };
    Html(page(
        &shared.settings.title,
        "Log in",
        Tab::None,
        &body,
        "",
        None,
    ))
}

/// `GET /login`
pub(super) async fn form(
    State(shared): State<Arc<Shared>>,
    Query(query): Query<LoginQuery>,
) -> Response {
    if shared.auth.open {
        return Redirect::to("/").into_response();
    }
    login_page(&shared, &safe_next(query.next.as_deref()), "").into_response()
}

/// `POST /login`: form fields `name`, `password`, `next`. Success: a new session cookie and
/// `303` to `next`; wrong: `401` and the form again; too many failures: `429`.
pub(super) async fn login(State(shared): State<Arc<Shared>>, request: Request) -> Response {
    let Some(users) = &shared.auth.users else {
        return (
            StatusCode::NOT_FOUND,
            "no local users: this dashboard has no users_file\n",
        )
            .into_response();
    };
    let peer = request
        .extensions()
        .get::<ConnectInfo<PeerInfo>>()
        .and_then(|c| c.0.remote)
        .map(|a| a.ip());
    let client = shared.auth.client_ip(peer, request.headers());
    let old_session = session::cookie(request.headers(), session::COOKIE).map(str::to_string);
    let Ok(body) = axum::body::to_bytes(request.into_body(), MAX_LOGIN_BYTES).await else {
        return (StatusCode::PAYLOAD_TOO_LARGE, "login form too large\n").into_response();
    };
    let name = form_field(&body, "name")
        .unwrap_or_default()
        .trim()
        .to_string();
    let password = form_field(&body, "password").unwrap_or_default();
    let next = safe_next(form_field(&body, "next").as_deref());
    let keys = [
        format!("user:{}", name.to_lowercase()),
        format!(
            "ip:{}",
            client.map_or_else(|| "unknown".to_string(), |c| c.to_string())
        ),
    ];
    if let Some(wait) = shared.auth.throttle.blocked(&keys) {
        let seconds = wait.as_secs() + 1;
        let mut response = login_page(
            &shared,
            &next,
            &format!(
                "<p id=\"login-error\" class=\"error\">Too many failed logins: try again in {seconds} s.</p>"
            ),
        )
        .into_response();
        *response.status_mut() = StatusCode::TOO_MANY_REQUESTS;
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, header::HeaderValue::from(seconds));
        return response;
    }
    let user = users.current().get(&name).cloned();
    let hash = user.as_ref().map_or_else(
        || super::users::decoy_hash().to_string(),
        |u| u.hash.clone(),
    );
    let matches = tokio::task::spawn_blocking(move || verify_password(&hash, &password))
        .await
        .unwrap_or(false);
    let Some(user) = user.filter(|_| matches) else {
        shared.auth.throttle.failed(&keys);
        tracing::info!(user = %name, client = ?client, "dashboard: failed login");
        let mut response = login_page(
            &shared,
            &next,
            "<p id=\"login-error\" class=\"error\">Wrong name or password.</p>",
        )
        .into_response();
        *response.status_mut() = StatusCode::UNAUTHORIZED;
        return response;
    };
    shared.auth.throttle.succeeded(&keys[..1]);
    if let Some(old) = old_session {
        shared.auth.sessions.remove(&old);
    }
    let id = shared.auth.sessions.create(&user.name);
    tracing::info!(user = %user.name, role = %user.role, client = ?client, "dashboard: login");
    (
        StatusCode::SEE_OTHER,
        [
            (
                header::SET_COOKIE,
                session::set_cookie(&id, shared.auth.secure_cookies),
            ),
            (header::LOCATION, next),
        ],
    )
        .into_response()
}

/// `POST /logout`: ends the session, forgets the cookie, back to the login page.
pub(super) async fn logout(
    State(shared): State<Arc<Shared>>,
    Extension(who): Extension<Identity>,
) -> Response {
    if let Via::Session(id) = &who.via {
        shared.auth.sessions.remove(id);
        tracing::info!(user = %who.name, "dashboard: logout");
    }
    (
        StatusCode::SEE_OTHER,
        [
            (
                header::SET_COOKIE,
                session::clear_cookie(shared.auth.secure_cookies),
            ),
            (header::LOCATION, "/login".to_string()),
        ],
    )
        .into_response()
}

/// `GET /admin/users`: the users of the users file, with their roles (never a hash).
pub(super) async fn users(
    State(shared): State<Arc<Shared>>,
    Extension(who): Extension<Identity>,
) -> Result<Html<String>, DashboardError> {
    let mut body = String::from("<h1>Users</h1>");
    match &shared.auth.users {
        Some(users) => {
            body.push_str(
                "<p class=\"muted\">Add or remove users with <code>loupe users add|remove NAME --file USERS_FILE</code>; \
                 the dashboard reads the file again when it changes.</p>\
                 <table id=\"users\"><thead><tr><th>Name</th><th>Role</th></tr></thead><tbody>",
            );
            for u in &users.current().users {
                let _ = write!(
                    body,
                    "<tr><td>{}</td><td>{}</td></tr>",
                    esc(&u.name),
                    u.role
                );
            }
            body.push_str("</tbody></table>");
        }
        None => body.push_str("<p class=\"muted\">No users file: sign-on is the proxy's.</p>"),
    }
    Ok(Html(page(
        &shared.settings.title,
        "Users",
        Tab::Admin,
        &body,
        "",
        Some(&who),
    )))
}
