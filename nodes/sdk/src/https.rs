//! HTTP/1.1 clients for the nodes' outgoing calls — webhooks, camera snapshots, the
//! dashboard's uploads to a capture node — that always speak TLS for `https://` (rustls;
//! the node's CA file, or the operating system's trusted roots), plain HTTP for `http://`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use http_body_util::Full;
use hyper_rustls::{HttpsConnector, HttpsConnectorBuilder};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde::{Deserialize, Serialize};

use crate::serve::TlsError;

/// A client for `http://` and `https://` URLs.
pub type HttpsClient<B = Full<bytes::Bytes>> = Client<HttpsConnector<HttpConnector>, B>;

/// How an outgoing HTTP client checks the server and proves itself.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct ClientTlsSettings {
    /// PEM CA certificate(s) an `https://` server's certificate must chain to (relative to
    /// the flow file's directory). Absent: the operating system's trusted roots.
    pub ca: Option<PathBuf>,
}

impl ClientTlsSettings {
    /// These settings with a relative CA path resolved against `base`.
    pub fn resolved(&self, base: &Path) -> ClientTlsSettings {
        ClientTlsSettings {
            ca: self.ca.as_ref().map(|p| base.join(p)),
        }
    }
}

/// Checks an outgoing URL setting (a webhook, a camera's snapshot): `https://` (TLS) or
/// `http://`, with a host. `example` is shown in the message for text that is no URL at all
/// (`https://host[:port]/path`).
pub fn parse_http_url(url: &str, example: &str) -> Result<axum::http::Uri, String> {
    let uri: axum::http::Uri = url
        .parse()
        .map_err(|e| format!("`{url}` is not a URL ({e}); write `{example}`"))?;
    match uri.scheme_str() {
        Some("http" | "https") => {}
        _ => return Err(format!("`{url}` must start with `https://` or `http://`")),
    }
    if uri.host().is_none_or(str::is_empty) {
        return Err(format!("`{url}` has no host"));
    }
    Ok(uri)
}

/// A client with `connect_timeout`, TCP_NODELAY and at most `idle_per_host` idle
/// connections kept per host.
pub fn client<B>(
    tls: &ClientTlsSettings,
    connect_timeout: Duration,
    idle_per_host: usize,
) -> Result<HttpsClient<B>, TlsError>
where
    B: http_body::Body + Send + 'static,
    B::Data: Send,
{
    let provider = crate::serve::tls_provider();
    let builder = match &tls.ca {
        Some(ca) => {
            let mut roots = rustls::RootCertStore::empty();
            for cert in crate::serve::certificates(ca)? {
                roots.add(cert)?;
            }
            let config = rustls::ClientConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()?
                .with_root_certificates(roots)
                .with_no_client_auth();
            HttpsConnectorBuilder::new().with_tls_config(config)
        }
        None => HttpsConnectorBuilder::new()
            .with_provider_and_native_roots(provider)
            .map_err(|source| TlsError::Read {
                path: PathBuf::from("the system's trusted roots"),
                source,
            })?,
    };
    let mut http = HttpConnector::new();
    http.set_connect_timeout(Some(connect_timeout));
    http.set_nodelay(true);
    // `https://` only over TLS; `http://` stays plain.
    http.enforce_http(false);
    let connector = builder.https_or_http().enable_http1().wrap_connector(http);
    Ok(Client::builder(TokioExecutor::new())
        .pool_idle_timeout(Duration::from_secs(30))
        .pool_max_idle_per_host(idle_per_host)
        .build(connector))
}
