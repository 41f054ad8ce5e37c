//! # loupe-capture
//!
//! The `capture` node: a source that brings the files a camera (or its uploader) drops into
//! a directory into a flow, one FlowFile per file.
//!
//! ## Behaviour
//! - **Only finished files.** A file is offered once its size and modification time have
//!   stayed unchanged for `min_age` (as seen by this node), so half-written images are never
//!   ingested. Hidden files (rsync's temporary names) are skipped by default.
//! - **Nothing lost, at-least-once.** A file is deleted (or moved to `move_to`) only when
//!   the runner acknowledges its FlowFile as accepted; a rejected offer is offered again.
//!   Nothing is persisted: after a crash or restart, every file still in the directory is
//!   simply offered again, so a FlowFile may be delivered twice but never lost.
//! - **Never twice at once.** An offered file is not offered again while in flight.
//! - **Over-size files** (larger than `max_file_bytes`, or than the node's largest message)
//!   are never offered: they are moved to `<directory>/.rejected/` with a `.reason.txt`
//!   beside them and a warning is logged. Files that vanish between scan and read are
//!   skipped quietly; unreadable ones are skipped with one warning and retried later.
//! - **Bounded.** A pull reads at most `max` files into memory; at most `max_in_flight`
//!   offers are outstanding.
//! - **Exhaustion.** `pull` answers `exhausted` whenever nothing is left to offer (files
//!   still being written count as left) and every offer has been acknowledged. A runner
//!   started with `--once` ends the flow then; otherwise it keeps watching the folder.
//!
//! ## FlowFile attributes
//! `filename`, `path` (`./` at the top level, else `sub/dir/`, as NiFi's GetFile),
//! `absolute.path` (with a trailing `/`), `file.size`, `file.lastModifiedTime` (RFC 3339),
//! `mime.type` (from the extension), `capture.directory`.
//!
//! ## As a processor
//! `process` passes the FlowFile through unchanged to `success`.

mod error;
mod files;
mod glob;
mod settings;
mod source;

use async_trait::async_trait;
use loupe_sdk::{BuildContext, Node, NodeError, NodeKind, Relationship, SettingsError};

pub use error::CaptureError;
pub use files::REJECTED_DIR;
pub use glob::{Glob, GlobError};
pub use settings::{After, CaptureSettings, HumanDuration, Order};
pub use source::{CAPTURE_DIRECTORY, CaptureSource, FILE_LAST_MODIFIED, FILE_SIZE};

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
            "One FlowFile per captured file: content = the file's bytes",
        )]
    }

    fn validate(settings: &CaptureSettings) -> Vec<SettingsError> {
        settings.problems()
    }

    async fn build(settings: CaptureSettings, ctx: &BuildContext) -> Result<Node, NodeError> {
        let relationships = Self::relationships(&settings);
        let source = CaptureSource::open(settings, ctx, relationships).await?;
        Ok(Node::source(source))
    }
}
