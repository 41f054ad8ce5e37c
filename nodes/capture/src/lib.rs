//! # loupe-capture
//!
//! The `capture` node: a source that brings camera images into a flow, one FlowFile per
//! image, from up to three inputs at once (at least one must be set):
//! - **`directory`**: the files a camera (or its uploader) drops into a folder;
//! - **`upload`**: an HTTP endpoint cameras push images to (`POST /upload`);
//! - **`snapshot`**: a frame grabbed from an HTTP camera URL every `interval`.
//!
//! Attributes beyond the built-in ones come from **`metadata`**: static values, the file
//! name, a JSON sidecar beside the image, a JSONL manifest (`loupe synth coils` output is
//! understood as is).
//!
//! ```yaml
//! type: capture
//! settings:
//!   directory: drop/            # optional
//!   pattern: "*.png"
//!   recursive: true
//!   upload:                     # optional
//!     listen: 127.0.0.1:8088
//!     max_body_bytes: 16777216
//!     max_pending: 16
//!     wait_accept: 30s
//!     spool: .loupe/spool/camera-upload
//!   snapshot:                   # optional
//!     url: http://10.0.0.5/snapshot.jpg
//!     interval: 10s
//!     timeout: 5s
//!     camera_id: cam-3
//!   metadata:
//!     attributes: {line: L1}
//!     filename_pattern: "{product.id}_a{camera.angle:[0-9]+}.*"
//!     sidecar: true
//!     manifest: manifest.jsonl
//!     fragment_count: 8
//! ```
//!
//! ## Directory
//! - **Only finished files.** A file is offered once its size and modification time (and
//!   its sidecar's) have stayed unchanged for `min_age` (as seen by this node), so
//!   half-written images are never ingested. Hidden files (rsync's temporary names) are
//!   skipped by default.
//! - **Nothing lost, at-least-once.** A file (with its sidecar) is deleted, or moved to
//!   `move_to`, only when the runner acknowledges its FlowFile as accepted — when its record
//!   is durable; a rejected offer is offered again. Nothing is persisted: after a crash or restart, every file still in
//!   the directory is simply offered again, so a FlowFile may be delivered twice but never
//!   lost.
//! - **Never twice at once.** An offered file is not offered again while in flight.
//! - **Over-size files** (larger than `max_file_bytes`, or than the node's largest message)
//!   are never offered: they are moved to `<directory>/.rejected/` with a `.reason.txt`
//!   beside them and a warning is logged. Files that vanish between scan and read are
//!   skipped quietly; unreadable ones are skipped with one warning and retried later.
//! - **Bounded.** A pull reads at most `max` files into memory; at most `max_in_flight`
//!   offers are outstanding.
//! - Attributes: `filename`, `path` (`./` at the top level, else `sub/dir/`, as NiFi's
//!   GetFile), `absolute.path` (with a trailing `/`), `file.size`, `file.lastModifiedTime`
//!   (RFC 3339), `mime.type` (from the extension), `capture.directory`, and
//!   `capture.sidecar` (the sidecar's path) when there was one.
//!
//! ## Upload
//! `POST /upload`, the image as the raw body (attributes from headers
//! `X-Loupe-Attr-<name>: value`, file name from `X-Loupe-Filename`) or as
//! `multipart/form-data` (the part with a file name, or named `file`, is the image; every
//! other field becomes an attribute). The upload is written to the node's spool directory
//! (`upload.spool`, default `.loupe/spool/<node id>`) and synced before the request is answered
//! `202` with `{"uuid", "filename", "size"}`: a `2xx` means the image survives a crash, and
//! anything else means the sender still owns it. The spool file is removed when the runner
//! acknowledges the upload (its record is durable); a restarted node offers what is left.
//! The uuid derives from the content and the client's file name, so a retried upload is the
//! same FlowFile. Refusals: `400` (empty body, no or two file parts), `413` (over
//! `max_body_bytes`), `503` with `Retry-After` when `max_pending` uploads are held for longer
//! than `wait_accept` or the spool cannot be written: overload slows the sender down, memory
//! and spool stay bounded. Attributes: `filename`, `mime.type`, `file.size`,
//! `upload.remote.address`. See [`upload`] for the details.
//!
//! ## Snapshot
//! `GET url` every `interval`; each frame is a FlowFile with `snapshot.url`,
//! `snapshot.time`, `camera.id` (if set), `mime.type` (the response's `Content-Type`),
//! `filename`, `file.size`. A failing camera logs a warning and is tried again at the next
//! interval. At most `max_pending` frames wait for the flow; while the flow does not take
//! them, new frames are skipped (counted, logged), not queued.
//!
//! ## Metadata
//! Layers, later ones winning: `metadata.attributes`; `metadata.filename_pattern` on the
//! file name; the `metadata.manifest` line for the file; the sidecar; upload headers or
//! form fields. The input's own attributes above are never overridden. A JSON record
//! (sidecar, manifest line) gives its keys as attributes (nested objects flattened with
//! `.`, arrays as JSON text, `file` skipped), except a `loupe synth coils` record
//! (recognised by `product_id`, `angle` and `camera_verdict`), which maps to:
//!
//! | record | attribute |
//! |---|---|
//! | `product_id` | `product.id`, `fragment.identifier` |
//! | `angle` | `camera.angle`, `fragment.index` |
//! | (8, or `fragment_count`) | `fragment.count` |
//! | `camera_verdict`, `camera_score` | `camera.verdict`, `camera.score` |
//! | `label` | `truth.label`: ground truth, worst defect visible in this image |
//! | `product_label` | `truth.product_label`: ground truth, worst defect of the product |
//! | `defects` | `truth.defects`: ground-truth defects of this image, JSON |
//! | `width`, `height` | `image.width`, `image.height` |
//!
//! The `truth.*` attributes are for evaluation and reports; a production camera does not
//! have them. `loupe synth coils --out DIR` output is fed in with `directory: DIR`,
//! `recursive: true`, `pattern: "*.png"` (or `*.jpg`) and `metadata.manifest:
//! manifest.jsonl`. A synth surfaces folder works with the generic mapping (restrict
//! `pattern` or use `directory: DIR/images` with `manifest: ../manifest.jsonl` so masks are
//! not captured as images). With `fragment_count` set, any FlowFile carrying `product.id`
//! and `camera.angle` gets `fragment.*` too. A malformed sidecar never loses its image: the
//! image goes out with `metadata.error` saying why, and a warning is logged; a malformed
//! manifest line is logged and skipped.
//!
//! ## Pulls and exhaustion
//! A pull offers uploads first (a client is waiting), then snapshots, then directory
//! files; every FlowFile has `capture.input` (`directory`, `upload`, `snapshot`). A capture
//! with a `directory` answers `exhausted` when the directory is (nothing left to offer, files
//! still being written count as left, every offer acknowledged) and no upload or snapshot
//! is waiting: `loupe run --once` processes the folder and stops, and its upload endpoint
//! takes images while the run lasts (the dashboard's upload page during a demo). A capture
//! without a directory never answers `exhausted`.
//!
//! ## As a processor
//! `process` passes the FlowFile through unchanged to `success`.
//!
//! ## Layout
//! Leaves first (no module imports one below it in this list):
//! - `settings`: the validated settings types (imports only the leaves `glob` and
//!   [`pattern`]); `error`: the node's errors;
//! - `glob`: file-name globs; [`pattern`]: `metadata.filename_pattern` templates;
//! - [`metadata`]: attributes from static values, file names, sidecars and manifests;
//! - `pending`: the bounded set of uploads and snapshots waiting to be offered or acknowledged;
//! - `files`: the blocking file-system work; `directory`: the folder input on top of it;
//! - `spool`, [`upload`]: the HTTP upload input and its synced spool;
//! - [`snapshot`]: the periodic HTTP snapshot input;
//! - `source`: the running node, one `Source` over the three inputs.

mod directory;
mod error;
mod files;
mod glob;
pub mod metadata;
pub mod pattern;
mod pending;
mod settings;
pub mod snapshot;
mod source;
mod spool;
pub mod upload;

use async_trait::async_trait;
use loupe_sdk::{BuildContext, Node, NodeError, NodeKind, Relationship, SettingsError};

pub use directory::{CAPTURE_DIRECTORY, FILE_LAST_MODIFIED, SIDECAR};
pub use error::CaptureError;
pub use files::REJECTED_DIR;
pub use glob::{Glob, GlobError};
pub use metadata::{CAPTURE_INPUT, FILE_SIZE};
pub use settings::{
    After, CaptureSettings, HumanDuration, MetadataSettings, Order, SnapshotSettings,
    UploadSettings,
};
pub use source::CaptureSource;

/// The `capture` node type (register it with `Registry::with::<Capture>()`).
#[derive(Debug, Clone, Copy, Default)]
pub struct Capture;

#[async_trait]
impl NodeKind for Capture {
    const TYPE: &'static str = "capture";
    const IS_SOURCE: bool = true;
    type Settings = CaptureSettings;

    fn relationships(_settings: &CaptureSettings) -> Vec<Relationship> {
        vec![Relationship::new(
            loupe_sdk::SUCCESS,
            "One FlowFile per captured image (file, upload or snapshot): content = its bytes",
        )]
    }

    fn validate(settings: &CaptureSettings) -> Vec<SettingsError> {
        settings.problems()
    }

    async fn build(settings: CaptureSettings, ctx: &BuildContext) -> Result<Node, NodeError> {
        let source = CaptureSource::open(settings, ctx).await?;
        Ok(Node::source(source))
    }
}
