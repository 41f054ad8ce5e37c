//! Errors of the `capture` node.

use std::io;
use std::path::PathBuf;

use loupe_sdk::NodeError;

/// What can go wrong building or running a `capture` node.
#[derive(Debug, thiserror::Error)]
pub enum CaptureError {
    /// The configured directory does not exist or cannot be reached.
    #[error(
        "capture directory `{}` is not accessible (create it, or fix `directory`): {source}",
        path.display()
    )]
    DirectoryMissing {
        /// The directory, resolved.
        path: PathBuf,
        /// Why it is not accessible.
        #[source]
        source: io::Error,
    },
    /// The configured directory is a file.
    #[error("capture directory `{}` is not a directory", .0.display())]
    NotADirectory(PathBuf),
    /// `move_to` could not be created.
    #[error("cannot create `move_to` directory `{}`: {source}", path.display())]
    MoveTo {
        /// The directory, resolved.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// `pattern` is not a valid glob.
    #[error("pattern: {0}")]
    Pattern(#[from] crate::glob::GlobError),
    /// `move_to` is the captured directory itself.
    #[error("`move_to` `{}` is the captured directory itself", .0.display())]
    MoveToIsDirectory(PathBuf),
    /// The directory could not be listed while scanning.
    #[error("cannot scan capture directory `{}`: {source}", path.display())]
    Scan {
        /// The directory.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// An accepted file could not be deleted or moved.
    #[error("cannot {action} accepted file `{}`: {source}", path.display())]
    Commit {
        /// `delete` or `move`.
        action: &'static str,
        /// The file.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// The upload endpoint could not listen on its address.
    #[error("cannot listen for uploads on `{address}` (setting `upload.listen`): {source}")]
    Listen {
        /// The address as configured.
        address: String,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// The upload endpoint's TLS or credentials cannot be loaded, or it would listen beyond
    /// loopback without them.
    #[error("upload endpoint (settings `upload.tls`, `upload.auth`): {0}")]
    UploadSecurity(#[source] loupe_sdk::serve::SecurityError),
    /// The upload spool directory cannot be created or read.
    #[error("upload spool `{}` (setting `upload.spool`): {source}", path.display())]
    Spool {
        /// The spool directory.
        path: std::path::PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// `metadata.filename_pattern` is not a valid template.
    #[error("metadata.filename_pattern: {0}")]
    Metadata(#[from] crate::pattern::PatternError),
    /// `snapshot.url` is not a plain-HTTP URL.
    #[error("snapshot.url: {0}")]
    SnapshotUrl(String),
    /// A blocking filesystem task panicked or was cancelled.
    #[error("capture filesystem task failed: {0}")]
    Task(String),
}

impl From<CaptureError> for NodeError {
    fn from(e: CaptureError) -> Self {
        match e {
            // Keep the io::Error as the source so callers can still see its kind.
            CaptureError::DirectoryMissing { path, source } => NodeError::io(
                format!(
                    "capture directory `{}` is not accessible (create it, or fix `directory`)",
                    path.display()
                ),
                source,
            ),
            CaptureError::MoveTo { path, source } => NodeError::io(
                format!("cannot create `move_to` directory `{}`", path.display()),
                source,
            ),
            CaptureError::Listen { address, source } => NodeError::io(
                format!("cannot listen for uploads on `{address}` (setting `upload.listen`)"),
                source,
            ),
            CaptureError::Spool { path, source } => NodeError::io(
                format!(
                    "upload spool `{}` is not usable (setting `upload.spool`)",
                    path.display()
                ),
                source,
            ),
            CaptureError::NotADirectory(_)
            | CaptureError::MoveToIsDirectory(_)
            | CaptureError::Pattern(_)
            | CaptureError::Metadata(_)
            | CaptureError::SnapshotUrl(_)
            | CaptureError::UploadSecurity(_) => NodeError::Settings(e.to_string()),
            // The directory may come back (a remounted share): worth another pull later.
            CaptureError::Scan { .. } => NodeError::Unavailable(e.to_string()),
            other => NodeError::failed("capture", other),
        }
    }
}
