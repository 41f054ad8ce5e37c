//! Requests the dashboard refuses before any handler runs.
//!
//! - **Host allow-list** (against DNS rebinding: a hostile page whose name is made to resolve
//!   to the dashboard's address): the `Host` header's name must be one of `allowed_hosts`, by
//!   default the loopback names and the address the dashboard listens on. Refused: `421`.
//! - **Cross-site writes** (a page elsewhere posting a form or a plain-text body to
//!   `/api/upload` or a review, which a browser sends without asking): a request that changes
//!   something (not `GET`/`HEAD`/`OPTIONS`) is refused with `403` when the browser says it
//!   comes from another site — `Sec-Fetch-Site: cross-site`, or an `Origin` whose host and port
//!   differ from `Host`. Clients that are not browsers send neither header and pass.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

/// The names a request's `Host` may carry: the configured ones, or the defaults.
#[derive(Debug, Clone)]
pub(crate) struct AllowedHosts(Vec<String>);

impl AllowedHosts {
    /// `configured` when not empty, else `localhost`, `127.0.0.1`, `::1` and the IP the
    /// dashboard listens on (unless it is the unspecified address).
    pub(crate) fn new(configured: &[String], listen: &str) -> Self {
        if !configured.is_empty() {
            return AllowedHosts(configured.iter().map(|h| h.to_ascii_lowercase()).collect());
        }
        let mut hosts = vec![
            "localhost".to_string(),
            "127.0.0.1".to_string(),
            "::1".to_string(),
        ];
        if let Ok(addr) = listen.parse::<std::net::SocketAddr>()
            && !addr.ip().is_unspecified()
            && !hosts.contains(&addr.ip().to_string())
        {
            hosts.push(addr.ip().to_string());
        }
        AllowedHosts(hosts)
    }

    fn allows(&self, host: &str) -> bool {
        let host = host.to_ascii_lowercase();
        self.0.iter().any(|h| h == "*" || *h == host)
    }
}

/// The name part of a `Host` (or `Origin` authority) value: without the port, IPv6
/// brackets removed.
fn host_name(authority: &str) -> &str {
    if let Some(rest) = authority.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest);
    }
    authority
        .rsplit_once(':')
        .map_or(authority, |(name, _)| name)
}

/// The refusal of a request, or `None` to let it through.
fn refusal(allowed: &AllowedHosts, method: &Method, headers: &HeaderMap) -> Option<Response> {
    let text = |name: header::HeaderName| headers.get(name).and_then(|v| v.to_str().ok());
    let Some(host) = text(header::HOST) else {
        return Some((StatusCode::BAD_REQUEST, "no Host header\n").into_response());
    };
    if !allowed.allows(host_name(host)) {
        let message = format!(
            "host `{}` is not served here (dashboard setting `allowed_hosts`)\n",
            host_name(host)
        );
        return Some((StatusCode::MISDIRECTED_REQUEST, message).into_response());
    }
    if matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS) {
        return None;
    }
    let cross_site = headers
        .get("sec-fetch-site")
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"cross-site"));
    let foreign_origin = text(header::ORIGIN).is_some_and(|origin| {
        let authority = origin.split_once("://").map_or(origin, |(_, a)| a);
        !authority.eq_ignore_ascii_case(host)
    });
    (cross_site || foreign_origin).then(|| {
        (
            StatusCode::FORBIDDEN,
            "cross-site request refused: changes are only accepted from the dashboard's own pages\n",
        )
            .into_response()
    })
}

/// The middleware: refuses what [`refusal`] refuses.
pub(crate) async fn guard(
    State(allowed): State<Arc<AllowedHosts>>,
    request: Request,
    next: Next,
) -> Response {
    match refusal(&allowed, request.method(), request.headers()) {
        Some(response) => response,
        None => next.run(request).await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    fn status(allowed: &AllowedHosts, method: Method, pairs: &[(&'static str, &str)]) -> u16 {
        refusal(allowed, &method, &headers(pairs)).map_or(200, |r| r.status().as_u16())
    }

    #[test]
    fn only_allowed_hosts_are_served() {
        let allowed = AllowedHosts::new(&[], "127.0.0.1:8090");
        assert_eq!(
            status(&allowed, Method::GET, &[("host", "127.0.0.1:8090")]),
            200
        );
        assert_eq!(
            status(&allowed, Method::GET, &[("host", "localhost:8090")]),
            200
        );
        assert_eq!(
            status(&allowed, Method::GET, &[("host", "[::1]:8090")]),
            200
        );
        assert_eq!(
            status(&allowed, Method::GET, &[("host", "evil.example:8090")]),
            421
        );
        assert_eq!(status(&allowed, Method::GET, &[]), 400);
        let lan = AllowedHosts::new(&[], "10.1.2.3:8090");
        assert_eq!(status(&lan, Method::GET, &[("host", "10.1.2.3:8090")]), 200);
        let named = AllowedHosts::new(&["Loupe.Plant.Local".to_string()], "0.0.0.0:8090");
        assert_eq!(
            status(&named, Method::GET, &[("host", "loupe.plant.local")]),
            200
        );
        assert_eq!(
            status(&named, Method::GET, &[("host", "127.0.0.1:8090")]),
            421
        );
    }

    #[test]
    fn cross_site_writes_are_refused_and_own_pages_pass() {
        let allowed = AllowedHosts::new(&[], "127.0.0.1:8090");
        let host = ("host", "127.0.0.1:8090");
        assert_eq!(
            status(&allowed, Method::POST, &[host]),
            200,
            "curl, scripts"
        );
        let own = ("origin", "http://127.0.0.1:8090");
        assert_eq!(status(&allowed, Method::POST, &[host, own]), 200);
        let same = ("sec-fetch-site", "same-origin");
        assert_eq!(status(&allowed, Method::POST, &[host, own, same]), 200);
        let foreign = ("origin", "http://evil.example");
        assert_eq!(status(&allowed, Method::POST, &[host, foreign]), 403);
        let cross = ("sec-fetch-site", "cross-site");
        assert_eq!(status(&allowed, Method::POST, &[host, cross]), 403);
        let other_port = ("origin", "http://127.0.0.1:9999");
        assert_eq!(status(&allowed, Method::POST, &[host, other_port]), 403);
        // Reading stays open to links from elsewhere.
        assert_eq!(status(&allowed, Method::GET, &[host, foreign, cross]), 200);
    }
}
