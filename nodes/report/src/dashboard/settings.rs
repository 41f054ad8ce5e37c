//! The dashboard's settings (`dashboard:` of a `report` node).

use std::path::PathBuf;

use loupe_sdk::SettingsError;
use schemars::JsonSchema;
use serde::Deserialize;

/// The web dashboard a `report` node serves over HTTP: the live list of inspections, their
/// details, review (feedback for retraining), the daily report, and an upload page.
///
/// It has no login: it listens on the loopback interface by default; put it behind the
/// plant's reverse proxy (with its authentication) to open it to the network. Reviewers give
/// their name with each review. It serves only the host names of `allowed_hosts` and refuses
/// changes a browser says come from another site (`guard.rs`).
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
            && !(url.starts_with("http://") && url.parse::<http::Uri>().is_ok())
        {
            problems.push(SettingsError::new(
                "upload_url",
                format!("`{url}` is not an http:// URL"),
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
        problems
    }
}
