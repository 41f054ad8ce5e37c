//! The `snapshot` input: `GET url` every `interval`, each frame one FlowFile.
//!
//! A grab that fails (connection refused, timeout, non-2xx, empty or over-size body) is
//! logged (a warning when the camera starts failing or fails differently, then quietly)
//! and the camera is tried again at the next interval. At most `max_pending` frames are
//! waiting for or offered to the flow; while that many are, the camera is not even asked
//! and the frame is counted as skipped: a live camera's next frame is worth more than an
//! old one, and memory stays bounded. Frames are in memory only: a restart loses the
//! pending ones (at most `max_pending`), which the camera's next frames replace.
//!
//! Attributes: `metadata.attributes`, then `camera.id` (setting `camera_id`),
//! `snapshot.url`, `snapshot.time` (RFC 3339, when the grab started), `mime.type` (the
//! response's `Content-Type`, else `application/octet-stream`), `filename`
//! (`snapshot-<time>.<ext>`), `file.size`, `capture.input=snapshot`.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use axum::http::{Request, Uri, header};
use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Limited};
use loupe_sdk::error::chain;
use loupe_sdk::https::HttpsClient;
use loupe_sdk::{FlowFile, attr};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::metadata::{CAMERA_ID, CAPTURE_INPUT, FILE_SIZE, Metadata};
use crate::pending::PendingQueue;
use crate::settings::{SnapshotSettings, parse_url};

/// Attribute with the URL a frame was grabbed from.
pub const SNAPSHOT_URL: &str = "snapshot.url";
/// Attribute with the time a frame was grabbed (RFC 3339, milliseconds).
pub const SNAPSHOT_TIME: &str = "snapshot.time";

/// Delivery ids of snapshots start with this.
const PREFIX: &str = "snapshot-";

/// A file extension for a MIME type (`bin` when unknown).
pub fn extension(mime: &str) -> &'static str {
    match mime {
        "image/jpeg" | "image/jpg" => "jpg",
        "image/png" => "png",
        "image/bmp" => "bmp",
        "image/tiff" => "tiff",
        "application/json" => "json",
        "text/plain" => "txt",
        _ => "bin",
    }
}

struct Config {
    uri: Uri,
    url: String,
    interval: Duration,
    timeout: Duration,
    camera_id: Option<String>,
    max_bytes: u64,
    metadata: Arc<Metadata>,
}

/// A running snapshot poller and its queue.
pub(crate) struct SnapshotInput {
    /// Frames waiting for the flow or offered to it.
    pub(crate) queue: Arc<PendingQueue>,
    shutdown: CancellationToken,
}

impl SnapshotInput {
    /// Starts grabbing (the first grab is immediate).
    pub(crate) fn start(
        settings: &SnapshotSettings,
        base_dir: &std::path::Path,
        max_message_bytes: usize,
        redeliver_after: Duration,
        metadata: Arc<Metadata>,
        notify: Arc<Notify>,
    ) -> Result<Self, crate::CaptureError> {
        let uri = parse_url(&settings.url).map_err(crate::CaptureError::SnapshotUrl)?;
        // `https://` always TLS, against `tls.ca` or the system's roots.
        let client =
            loupe_sdk::https::client(&settings.tls.resolved(base_dir), settings.timeout.get(), 1)
                .map_err(|e| crate::CaptureError::SnapshotUrl(format!("snapshot.tls: {e}")))?;
        let mut max_bytes = settings.max_bytes;
        if max_message_bytes > 0 {
            max_bytes = max_bytes.min(max_message_bytes as u64);
        }
        let cfg = Config {
            uri,
            url: settings.url.clone(),
            interval: settings.interval.get(),
            timeout: settings.timeout.get(),
            camera_id: settings.camera_id.clone(),
            max_bytes,
            metadata,
        };
        let queue = Arc::new(PendingQueue::new(
            PREFIX,
            settings.max_pending,
            redeliver_after,
            notify,
        ));
        let shutdown = CancellationToken::new();
        tokio::spawn(run(client, cfg, queue.clone(), shutdown.clone()));
        Ok(SnapshotInput { queue, shutdown })
    }

    /// Stops grabbing and drops pending frames.
    pub(crate) fn stop(&self) {
        self.shutdown.cancel();
        self.queue.close();
    }
}

async fn run(
    client: HttpsClient<Empty<Bytes>>,
    cfg: Config,
    queue: Arc<PendingQueue>,
    shutdown: CancellationToken,
) {
    let mut ticker = tokio::time::interval(cfg.interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_error: Option<String> = None;
    let (mut skipped, mut skipping) = (0u64, false);
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            _ = ticker.tick() => {}
        }
        if queue.len() >= queue.capacity() {
            skipped += 1;
            if !skipping {
                tracing::warn!(url = %cfg.url, pending = queue.len(), skipped,
                    "the flow is not taking snapshots; skipping frames until it does");
                skipping = true;
            } else {
                tracing::debug!(url = %cfg.url, skipped, "snapshot skipped: flow saturated");
            }
            continue;
        }
        skipping = false;
        let started = SystemTime::now();
        let grabbed = tokio::select! {
            () = shutdown.cancelled() => return,
            r = tokio::time::timeout(cfg.timeout, grab(&client, &cfg)) => r,
        };
        let frame = match grabbed {
            Ok(Ok(frame)) => frame,
            Ok(Err(e)) => {
                report_failure(&cfg, &mut last_error, e);
                continue;
            }
            Err(_) => {
                let e = format!(
                    "no complete answer within {} (setting `snapshot.timeout`)",
                    humantime::format_duration(cfg.timeout)
                );
                report_failure(&cfg, &mut last_error, e);
                continue;
            }
        };
        if last_error.take().is_some() {
            tracing::info!(url = %cfg.url, "camera answers again");
        }
        let flow_file = flow_file(&cfg, frame, started);
        if queue.try_push(flow_file, None).is_err() {
            skipped += 1;
            tracing::debug!(url = %cfg.url, skipped, "snapshot skipped: flow saturated");
        }
    }
}

fn report_failure(cfg: &Config, last_error: &mut Option<String>, error: String) {
    if last_error.as_deref() != Some(error.as_str()) {
        tracing::warn!(url = %cfg.url, %error,
            "snapshot failed; trying again every interval (repeats of this error at debug)");
    } else {
        tracing::debug!(url = %cfg.url, %error, "snapshot failed again");
    }
    *last_error = Some(error);
}

/// One grabbed frame.
struct Frame {
    content: Bytes,
    mime: Option<String>,
}

async fn grab(client: &HttpsClient<Empty<Bytes>>, cfg: &Config) -> Result<Frame, String> {
    let request = Request::get(cfg.uri.clone())
        .header(
            header::USER_AGENT,
            concat!("loupe-capture/", env!("CARGO_PKG_VERSION")),
        )
        .body(Empty::new())
        .map_err(|e| format!("cannot build the request: {e}"))?;
    let response = client
        .request(request)
        .await
        .map_err(|e| format!("request failed: {}", chain(&e)))?;
    let status = response.status();
    if !status.is_success() {
        return Err(format!("camera answered {status}"));
    }
    let mime = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(|v| v.trim().to_ascii_lowercase())
        .filter(|v| !v.is_empty());
    let limit = usize::try_from(cfg.max_bytes).unwrap_or(usize::MAX);
    let content = Limited::new(response.into_body(), limit)
        .collect()
        .await
        .map_err(|e| {
            if e.is::<http_body_util::LengthLimitError>() {
                format!(
                    "frame larger than {} bytes (setting `snapshot.max_bytes`)",
                    cfg.max_bytes
                )
            } else {
                format!("cannot read the frame: {}", chain(e.as_ref()))
            }
        })?
        .to_bytes();
    if content.is_empty() {
        return Err("camera answered with an empty body".to_string());
    }
    Ok(Frame { content, mime })
}

fn flow_file(cfg: &Config, frame: Frame, started: SystemTime) -> FlowFile {
    let time = humantime::format_rfc3339_millis(started).to_string();
    let mime = frame
        .mime
        .unwrap_or_else(|| "application/octet-stream".to_string());
    let stamp: String = time.chars().filter(|c| *c != '-' && *c != ':').collect();
    let filename = format!("snapshot-{stamp}.{}", extension(&mime));
    let mut attrs = cfg.metadata.base(None);
    if let Some(camera) = &cfg.camera_id {
        attrs.insert(CAMERA_ID.into(), camera.clone());
    }
    let size = frame.content.len();
    let mut flow_file = FlowFile::create(frame.content, attrs)
        .with_attr(SNAPSHOT_URL, cfg.url.clone())
        .with_attr(SNAPSHOT_TIME, time)
        .with_attr(attr::MIME_TYPE, mime)
        .with_attr(attr::FILENAME, filename)
        .with_attr(FILE_SIZE, size.to_string())
        .with_attr(CAPTURE_INPUT, "snapshot");
    cfg.metadata.finish(&mut flow_file.attributes);
    flow_file
}
