//! Errors of the `report` node.

use std::io;
use std::path::PathBuf;

use loupe_sdk::{ErrorKind, NodeError, ProcessError};

/// What can go wrong opening or writing a report.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    /// The report's directory could not be created.
    #[error("cannot create report directory `{}`: {source}", path.display())]
    CreateDir {
        /// The directory.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// The report file could not be opened.
    #[error("cannot open report `{}`: {source}", path.display())]
    Open {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// The existing report could not be read (to learn which uuids it holds).
    #[error("cannot read existing report `{}`: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// A record could not be written.
    #[error("cannot write to report `{}`: {source}", path.display())]
    Write {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// A record could not be encoded.
    #[error("cannot encode report record: {0}")]
    Encode(#[from] serde_json::Error),
    /// A background task panicked or was cancelled.
    #[error("report task failed: {0}")]
    Task(String),
}

impl From<ReportError> for NodeError {
    fn from(e: ReportError) -> Self {
        // The io::Error stays the source (NodeError::Io prints it after the context).
        let (what, path, source) = match e {
            ReportError::CreateDir { path, source } => {
                ("cannot create report directory", path, source)
            }
            ReportError::Open { path, source } => ("cannot open report", path, source),
            ReportError::Read { path, source } => ("cannot read existing report", path, source),
            ReportError::Write { path, source } => ("cannot write to report", path, source),
            other => return NodeError::failed("report", other),
        };
        NodeError::io(format!("{what} `{}`", path.display()), source)
    }
}

impl ReportError {
    /// Whether the write may work later (disk full, I/O error, ...; see
    /// [`loupe_store::transient`]): the flow retries the FlowFile instead of routing it to `failure`.
    pub fn is_transient(&self) -> bool {
        match self {
            ReportError::CreateDir { source, .. }
            | ReportError::Open { source, .. }
            | ReportError::Read { source, .. }
            | ReportError::Write { source, .. } => loupe_store::transient::io_is_transient(source),
            ReportError::Encode(_) | ReportError::Task(_) => false,
        }
    }
}

impl From<ReportError> for ProcessError {
    fn from(e: ReportError) -> Self {
        let kind = match &e {
            _ if e.is_transient() => ErrorKind::Unavailable,
            ReportError::Encode(_) => ErrorKind::InvalidInput,
            _ => ErrorKind::Internal,
        };
        ProcessError::new(kind, e.to_string())
    }
}
