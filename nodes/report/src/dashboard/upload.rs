//! The upload page's way into the flow: `POST /api/upload` is passed on to the `capture`
//! node's upload endpoint (`dashboard.upload_url`), so a hand-checked image goes through the
//! running flow like a camera's and its record appears in the list.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use http_body_util::{BodyExt, Full, Limited};
use loupe_sdk::error::chain;

use super::{DashboardError, Shared};

/// How long the capture node may take to accept an upload (it answers once the flow has
/// the FlowFile, so back pressure shows here).
const UPLOAD_TIMEOUT: Duration = Duration::from_secs(30);
/// The most of the capture node's answer read.
const MAX_ANSWER_BYTES: usize = 64 * 1024;

/// A client of the capture node's upload endpoint.
pub(super) struct Uploader {
    client: loupe_sdk::https::HttpsClient<Full<Bytes>>,
    uri: http::Uri,
    token: Option<loupe_sdk::client::Secret>,
}

impl Uploader {
    /// For the endpoint at `url` (`https://HOST:PORT/upload`, always TLS, or `http://`),
    /// sending `token` as a bearer token when given.
    pub(super) fn new(
        url: &str,
        tls: &loupe_sdk::https::ClientTlsSettings,
        token: Option<loupe_sdk::client::Secret>,
    ) -> Result<Uploader, String> {
        let uri: http::Uri = url
            .parse()
            .map_err(|e| format!("dashboard.upload_url `{url}`: {e}"))?;
        let client = loupe_sdk::https::client(tls, Duration::from_secs(5), 4)
            .map_err(|e| format!("dashboard.upload_tls: {e}"))?;
        Ok(Uploader { client, uri, token })
    }
}

/// `POST /api/upload`: the image as the body; `X-Loupe-Filename` and `X-Loupe-Attr-*`
/// headers are passed on. Answers what the capture node answered (`202` with the FlowFile's
/// uuid), or `503` when it cannot be reached.
pub(super) async fn upload(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, DashboardError> {
    let Some(uploader) = &shared.uploader else {
        return Err(DashboardError::NotFound(
            "uploads are not configured: set dashboard.upload_url to the capture node's upload endpoint"
                .to_string(),
        ));
    };
    if body.is_empty() {
        return Err(DashboardError::BadRequest(
            "no image in the request".to_string(),
        ));
    }
    let mut request = http::Request::post(uploader.uri.clone());
    for (name, value) in &headers {
        let keep = name.as_str().starts_with("x-loupe-") || name == header::CONTENT_TYPE;
        if keep {
            request = request.header(name, value);
        }
    }
    request = request.header("x-loupe-attr-capture.via", "dashboard-upload");
    if let Some(token) = &uploader.token {
        request = request.header(header::AUTHORIZATION, format!("Bearer {}", token.expose()));
    }
    let request = request
        .body(Full::new(body))
        .map_err(|e| DashboardError::BadRequest(format!("cannot pass the upload on: {e}")))?;
    let unreachable = |why: String| {
        DashboardError::Unavailable(format!(
            "the capture node at {} did not take the image: {why}",
            uploader.uri
        ))
    };
    let response = tokio::time::timeout(UPLOAD_TIMEOUT, uploader.client.request(request))
        .await
        .map_err(|_| unreachable(format!("no answer in {}s", UPLOAD_TIMEOUT.as_secs())))?
        .map_err(|e| unreachable(chain(&e)))?;
    let status =
        StatusCode::from_u16(response.status().as_u16()).unwrap_or(StatusCode::BAD_GATEWAY);
    let content_type = response
        .headers()
        .get(header::CONTENT_TYPE)
        .cloned()
        .unwrap_or(header::HeaderValue::from_static("text/plain"));
    let answer = Limited::new(response.into_body(), MAX_ANSWER_BYTES)
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    Ok((status, [(header::CONTENT_TYPE, content_type)], answer).into_response())
}
