//! The `upload` input: an HTTP endpoint cameras push images to.
//!
//! `POST /upload` with the image as the raw body, or as `multipart/form-data`. The upload
//! is written to the node's spool directory and synced ([`crate::spool`]); only then is the
//! request answered `202` with `{"uuid": ..., "filename": ..., "size": ...}`. From then on
//! it survives a crash: the spool file is removed when the flow acknowledges the upload (its
//! record is durable), and a restarted node offers what is left in the spool again. The uuid
//! is derived from the content and the client's file name, so a client that retries an upload
//! whose answer it lost sends the same FlowFile again, which idempotent sinks record once.
//! Security: TLS (`upload.tls`) and credentials (`upload.auth`: a camera sends
//! `Authorization: Bearer TOKEN`, or a client certificate) through the SDK's
//! [`serve_app`]; beyond loopback the node refuses to start without both unless
//! `upload.insecure`.
//!
//! Refusals:
//! - `401` / `403`: credentials are configured and the request has none, a wrong one, or one
//!   without the right (checked before the body is read);
//! - `400`: empty body, no file part, two file parts, an attribute that is not text;
//! - `413`: body larger than `max_body_bytes`;
//! - `503` + `Retry-After`: `max_pending` uploads held (being received, spooled and not yet
//!   acknowledged) for longer than `wait_accept`, the spool cannot be written (a full disk),
//!   or the node is stopping.
//!
//! Memory and spool are bounded by `max_pending` × `max_body_bytes`: a request is admitted
//! (before its body is read) only while fewer than `max_pending` others are held.
//!
//! Attributes (later ones win): `metadata.attributes`, `metadata.filename_pattern` on the
//! file name, then headers `X-Loupe-Attr-<name>: value` (raw body; names arrive lower-case)
//! or the form's non-file fields (multipart), then the upload's own: `filename` (header
//! `X-Loupe-Filename`, the part's file name, else `upload-<uuid>.<ext>`), `mime.type`
//! (`Content-Type` of the body or part), `file.size`, `upload.remote.address`,
//! `capture.input=upload`.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{ConnectInfo, DefaultBodyLimit, FromRequest, Multipart, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use loupe_sdk::serve::{PeerInfo, Security, serve_app};
use loupe_sdk::{FlowFile, attr};
use sha2::{Digest, Sha256};
use tokio::sync::{Notify, OwnedSemaphorePermit, oneshot};
use tokio_util::sync::CancellationToken;

use crate::error::CaptureError;
use crate::metadata::{CAPTURE_INPUT, FILE_SIZE, Metadata};
use crate::pending::PendingQueue;
use crate::settings::UploadSettings;
use crate::spool::Spool;

/// Attribute with the uploading peer's IP address.
pub const UPLOAD_REMOTE_ADDRESS: &str = "upload.remote.address";
/// Header prefix whose headers become attributes.
pub const ATTR_HEADER_PREFIX: &str = "x-loupe-attr-";
/// Header naming the uploaded file.
pub const FILENAME_HEADER: &str = "x-loupe-filename";

/// Delivery ids of uploads start with this.
const PREFIX: &str = "upload-";

/// Namespace of upload uuids (random, fixed).
const UPLOAD_NAMESPACE: uuid::Uuid =
    uuid::Uuid::from_u128(0x9d3b_6a20_41f7_4c55_8e0b_d2a4_5f61_c7e3);

struct Shared {
    queue: Arc<PendingQueue>,
    spool: Spool,
    /// One permit per upload being read, spooled or waiting for its acknowledgement:
    /// bounds memory and spool to `max_pending` bodies, including those still arriving.
    admission: Arc<tokio::sync::Semaphore>,
    metadata: Arc<Metadata>,
    limit: u64,
    wait_accept: Duration,
    retry_after: String,
}

/// A running upload endpoint and its queue.
pub(crate) struct UploadInput {
    /// Uploads waiting for the flow or offered to it.
    pub(crate) queue: Arc<PendingQueue>,
    addr: SocketAddr,
    shutdown: CancellationToken,
}

impl UploadInput {
    /// Binds `settings.listen` and starts serving.
    pub(crate) async fn start(
        settings: &UploadSettings,
        base_dir: &std::path::Path,
        max_message_bytes: usize,
        redeliver_after: Duration,
        metadata: Arc<Metadata>,
        notify: Arc<Notify>,
        spool: Spool,
    ) -> Result<Self, CaptureError> {
        let wanted = settings.address().ok_or_else(|| CaptureError::Listen {
            address: settings.listen.clone(),
            source: std::io::Error::other("not an `IP:port` address"),
        })?;
        let bind_error = |source| CaptureError::Listen {
            address: settings.listen.clone(),
            source,
        };
        let security =
            Security::load(&settings.security(), base_dir).map_err(CaptureError::UploadSecurity)?;
        let listener = tokio::net::TcpListener::bind(wanted)
            .await
            .map_err(bind_error)?;
        let addr = listener.local_addr().map_err(bind_error)?;
        // Secure by default, before anything is recovered or served.
        if let Some(refused) = security.refusal(addr, "upload.") {
            return Err(CaptureError::UploadSecurity(refused));
        }

        let mut limit = settings.max_body_bytes;
        if max_message_bytes > 0 {
            limit = limit.min(max_message_bytes as u64);
        }
        let queue = Arc::new(PendingQueue::new(
            PREFIX,
            settings.max_pending,
            redeliver_after,
            notify,
        ));
        let shared = Arc::new(Shared {
            queue: queue.clone(),
            spool,
            admission: Arc::new(tokio::sync::Semaphore::new(settings.max_pending)),
            metadata,
            limit,
            wait_accept: settings.wait_accept.get(),
            retry_after: settings
                .retry_after
                .get()
                .as_secs_f64()
                .ceil()
                .max(1.0)
                .to_string(),
        });
        let app = Router::new()
            .route("/upload", post(upload))
            .layer(DefaultBodyLimit::max(
                usize::try_from(limit).unwrap_or(usize::MAX),
            ))
            .with_state(shared.clone());
        recover(&shared).await?;
        let shutdown = CancellationToken::new();
        let signal = shutdown.clone().cancelled_owned();
        let server = serve_app(listener, app, security.clone(), "upload.", true, signal)
            .await
            .map_err(CaptureError::UploadSecurity)?;
        tokio::spawn(async move {
            if let Err(e) = server.await {
                tracing::error!(%addr, error = %e, "upload endpoint stopped");
            }
        });
        tracing::info!(%addr, tls = security.tls(), "capture upload endpoint listening (POST /upload)");
        Ok(UploadInput {
            queue,
            addr,
            shutdown,
        })
    }

    /// The bound address (the real port when `listen` said port 0).
    pub(crate) fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops accepting; every waiting request is answered `503`.
    pub(crate) fn stop(&self) {
        self.shutdown.cancel();
        self.queue.close();
    }
}

/// A refusal: status and a one-line reason.
struct Refusal(StatusCode, String);

impl Refusal {
    fn bad(message: impl Into<String>) -> Self {
        Refusal(StatusCode::BAD_REQUEST, message.into())
    }
}

/// Offers again what a previous run spooled and the flow never acknowledged.
async fn recover(shared: &Arc<Shared>) -> Result<(), CaptureError> {
    let spool = shared.spool.clone();
    let found = tokio::task::spawn_blocking(move || spool.recover())
        .await
        .map_err(std::io::Error::other)
        .and_then(|r| r)
        .map_err(|source| CaptureError::Spool {
            path: shared.spool.dir().to_path_buf(),
            source,
        })?;
    if !found.is_empty() {
        tracing::info!(uploads = found.len(), spool = %shared.spool.dir().display(),
            "offering uploads spooled before the last stop again");
    }
    for flow_file in found {
        // They were admitted before; they take a permit when one is free so that new
        // uploads wait for them, and are queued whatever the count.
        let permit = shared.admission.clone().try_acquire_owned().ok();
        hold(shared, flow_file, permit, true);
    }
    Ok(())
}

/// Queues a spooled upload; when the flow acknowledges it, its spool file is removed and its
/// admission permit returned. An upload not acknowledged before the node stops stays spooled.
/// Returns false when the queue refused it.
fn hold(
    shared: &Arc<Shared>,
    flow_file: FlowFile,
    permit: Option<OwnedSemaphorePermit>,
    force: bool,
) -> bool {
    let uuid = flow_file.uuid.clone();
    let (tx, rx) = oneshot::channel();
    let pushed = if force {
        shared.queue.push_recovered(flow_file, tx);
        true
    } else {
        shared.queue.try_push(flow_file, Some(tx)).is_ok()
    };
    if !pushed {
        return false;
    }
    let spool = shared.spool.clone();
    tokio::spawn(async move {
        if rx.await.is_ok() {
            let removed = tokio::task::spawn_blocking(move || spool.remove(&uuid)).await;
            if let Ok(Err(e)) = removed {
                tracing::warn!(error = %e,
                    "acknowledged upload's spool file could not be removed; it will be \
                     offered again at the next start (sinks record it once)");
            }
        }
        drop(permit);
    });
    true
}

async fn upload(
    State(shared): State<Arc<Shared>>,
    ConnectInfo(peer): ConnectInfo<PeerInfo>,
    request: Request,
) -> Response {
    let peer = peer
        .remote
        .unwrap_or_else(|| SocketAddr::from(([0, 0, 0, 0], 0)));
    match accept(&shared, peer, request).await {
        Ok(response) => response,
        Err(Refusal(status, message)) => {
            tracing::debug!(%peer, %status, %message, "upload refused");
            let mut response = (status, format!("{message}\n")).into_response();
            if status == StatusCode::SERVICE_UNAVAILABLE
                && let Ok(v) = HeaderValue::from_str(&shared.retry_after)
            {
                response.headers_mut().insert(header::RETRY_AFTER, v);
            }
            response
        }
    }
}

async fn accept(
    shared: &Arc<Shared>,
    peer: SocketAddr,
    request: Request,
) -> Result<Response, Refusal> {
    let busy = || {
        Refusal(
            StatusCode::SERVICE_UNAVAILABLE,
            format!(
                "capture is saturated ({} uploads pending); retry later",
                shared.queue.len()
            ),
        )
    };
    // Wait for room (overload slows the sender), before reading a body that could not be
    // held anyway.
    let permit =
        tokio::time::timeout(shared.wait_accept, shared.admission.clone().acquire_owned()).await;
    let Ok(Ok(permit)) = permit else {
        return Err(busy());
    };
    let too_large = |size: Option<u64>| {
        let size = size.map(|s| format!("{s} bytes, ")).unwrap_or_default();
        Refusal(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!(
                "upload too large ({size}more than the limit of {} bytes; setting \
                 `upload.max_body_bytes`, capped by the node's largest message)",
                shared.limit
            ),
        )
    };
    let declared = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    if declared.is_some_and(|n| n > shared.limit) {
        return Err(too_large(declared));
    }

    let content_type = media_type(request.headers());
    let part = if content_type.as_deref() == Some("multipart/form-data") {
        read_multipart(request, || too_large(None)).await?
    } else {
        read_raw(request, content_type, shared.limit, || too_large(None)).await?
    };
    if part.content.is_empty() {
        return Err(Refusal::bad(
            "empty upload: the body (or file part) has no bytes",
        ));
    }

    let uuid = upload_uuid(&part.content, part.filename.as_deref());
    let filename = part.filename.unwrap_or_else(|| {
        let ext = part
            .mime
            .as_deref()
            .map(crate::snapshot::extension)
            .unwrap_or("bin");
        format!("upload-{uuid}.{ext}")
    });
    let mime = part
        .mime
        .unwrap_or_else(|| crate::files::mime_type(&filename).to_string());
    let mut attrs = shared.metadata.base(Some(&filename));
    attrs.extend(part.attributes);
    let size = part.content.len();
    let mut flow_file = FlowFile::create(part.content, attrs)
        .with_attr(attr::FILENAME, filename.clone())
        .with_attr(attr::MIME_TYPE, mime)
        .with_attr(FILE_SIZE, size.to_string())
        .with_attr(UPLOAD_REMOTE_ADDRESS, peer.ip().to_string())
        .with_attr(CAPTURE_INPUT, "upload");
    shared.metadata.finish(&mut flow_file.attributes);
    flow_file.uuid = uuid.clone();

    let spool = shared.spool.clone();
    let spooled = flow_file.clone();
    let written = tokio::task::spawn_blocking(move || spool.write(&spooled))
        .await
        .map_err(std::io::Error::other)
        .and_then(|r| r);
    if let Err(e) = written {
        tracing::warn!(%peer, %uuid, error = %e, spool = %shared.spool.dir().display(),
            "cannot spool an upload; answered 503");
        return Err(Refusal(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("capture cannot store the upload right now ({e}); retry later"),
        ));
    }
    if !hold(shared, flow_file, Some(permit), false) {
        // Only when the node is stopping: the spooled file is offered at the next start.
        return Err(Refusal(
            StatusCode::SERVICE_UNAVAILABLE,
            "capture is stopping; retry later".to_string(),
        ));
    }
    tracing::debug!(%peer, %uuid, %filename, size, "upload spooled");
    let body = serde_json::json!({"uuid": uuid, "filename": filename, "size": size});
    Ok((
        StatusCode::ACCEPTED,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response())
}

/// The uuid of an upload: the same bytes under the same client file name are the same
/// FlowFile (a client retrying after a lost answer makes no duplicate record).
fn upload_uuid(content: &[u8], filename: Option<&str>) -> String {
    let mut hash = Sha256::new();
    hash.update(filename.unwrap_or("").as_bytes());
    hash.update([0]);
    hash.update(content);
    uuid::Uuid::new_v5(&UPLOAD_NAMESPACE, &hash.finalize()).to_string()
}

/// The file of one upload, with the attributes the request gave.
struct Part {
    content: Bytes,
    filename: Option<String>,
    mime: Option<String>,
    attributes: HashMap<String, String>,
}

/// `type/subtype` of the `Content-Type` header, lower-case, without parameters.
fn media_type(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(header::CONTENT_TYPE)?.to_str().ok()?;
    let essence = value.split(';').next()?.trim().to_ascii_lowercase();
    (!essence.is_empty()).then_some(essence)
}

/// The last component of a client-supplied name (never a path), if any is left.
fn clean_name(name: &str) -> Option<String> {
    let base = name.rsplit(['/', '\\']).next()?.trim();
    (!base.is_empty() && base != "." && base != "..").then(|| base.to_string())
}

async fn read_raw(
    request: Request,
    mime: Option<String>,
    limit: u64,
    too_large: impl Fn() -> Refusal,
) -> Result<Part, Refusal> {
    let mut attributes = HashMap::new();
    let headers = request.headers();
    for (name, value) in headers {
        let Some(attr_name) = name.as_str().strip_prefix(ATTR_HEADER_PREFIX) else {
            continue;
        };
        if attr_name.is_empty() {
            return Err(Refusal::bad(format!("header `{name}` names no attribute")));
        }
        let value = value
            .to_str()
            .map_err(|_| Refusal::bad(format!("header `{name}` is not visible ASCII text")))?;
        attributes.insert(attr_name.to_string(), value.to_string());
    }
    let filename =
        match headers.get(FILENAME_HEADER) {
            Some(v) => Some(v.to_str().ok().and_then(clean_name).ok_or_else(|| {
                Refusal::bad(format!("header `{FILENAME_HEADER}` is no file name"))
            })?),
            None => None,
        };
    let limit = usize::try_from(limit).unwrap_or(usize::MAX);
    let content = axum::body::to_bytes(request.into_body(), limit)
        .await
        .map_err(|e| {
            if is_length_limit(&e) {
                too_large()
            } else {
                Refusal::bad(format!("cannot read the upload body: {e}"))
            }
        })?;
    Ok(Part {
        content,
        filename,
        mime,
        attributes,
    })
}

fn is_length_limit(e: &axum::Error) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = source {
        if err.is::<http_body_util::LengthLimitError>() {
            return true;
        }
        source = err.source();
    }
    false
}

async fn read_multipart(
    request: Request,
    too_large: impl Fn() -> Refusal,
) -> Result<Part, Refusal> {
    let mut multipart = Multipart::from_request(request, &())
        .await
        .map_err(|e| Refusal::bad(e.body_text()))?;
    let multipart_error = |e: axum::extract::multipart::MultipartError| {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            too_large()
        } else {
            Refusal::bad(format!("malformed multipart upload: {}", e.body_text()))
        }
    };
    let mut file: Option<(Bytes, Option<String>, Option<String>)> = None;
    let mut attributes = HashMap::new();
    while let Some(field) = multipart.next_field().await.map_err(multipart_error)? {
        let name = field.name().map(str::to_string);
        let is_file = field.file_name().is_some() || name.as_deref() == Some("file");
        if is_file {
            if file.is_some() {
                return Err(Refusal::bad(
                    "one file per upload: this form has two file parts",
                ));
            }
            let filename = field.file_name().and_then(clean_name);
            let mime = field
                .content_type()
                .map(|m| m.split(';').next().unwrap_or(m).trim().to_ascii_lowercase())
                .filter(|m| !m.is_empty());
            let bytes = field.bytes().await.map_err(multipart_error)?;
            file = Some((bytes, filename, mime));
        } else if let Some(name) = name.filter(|n| !n.is_empty()) {
            let value = field.bytes().await.map_err(multipart_error)?;
            let value = String::from_utf8(value.to_vec())
                .map_err(|_| Refusal::bad(format!("form field `{name}` is not UTF-8 text")))?;
            attributes.insert(name, value);
        }
    }
    let (content, filename, mime) = file.ok_or_else(|| {
        Refusal::bad("multipart upload has no file part (a part with a filename, or named `file`)")
    })?;
    Ok(Part {
        content,
        filename,
        mime,
        attributes,
    })
}
