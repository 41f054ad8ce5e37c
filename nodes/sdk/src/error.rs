//! Typed errors and their single mapping to and from gRPC status.
//!
//! A processing failure is data, not a transport error: [`ProcessError`]s whose kind is not
//! retryable become an output on the `failure` relationship (see [`crate::invoke`]). Only
//! transport trouble (overload, a node that is down or draining) travels as a gRPC status, so
//! callers know to back off and retry.

use tonic::{Code, Status};

/// Why processing a FlowFile did not succeed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// The content or attributes are not acceptable (corrupt image, bad JSON, ...).
    InvalidInput,
    /// The FlowFile is larger than the node accepts.
    TooLarge,
    /// The node's model or runtime failed on this input.
    Model,
    /// The node panicked while processing; it keeps serving.
    Panic,
    /// An unexpected internal error.
    Internal,
    /// The node is overloaded; retry later.
    Overloaded,
    /// The node cannot be reached, is starting or is draining; retry later.
    Unavailable,
    /// Retries were exhausted.
    RetriesExhausted,
}

impl ErrorKind {
    /// The value written to the `error.kind` attribute.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::InvalidInput => "invalid_input",
            ErrorKind::TooLarge => "too_large",
            ErrorKind::Model => "model",
            ErrorKind::Panic => "panic",
            ErrorKind::Internal => "internal",
            ErrorKind::Overloaded => "overloaded",
            ErrorKind::Unavailable => "unavailable",
            ErrorKind::RetriesExhausted => "retries_exhausted",
        }
    }

    /// Whether the caller should retry later rather than route to `failure`.
    pub fn is_retryable(self) -> bool {
        matches!(self, ErrorKind::Overloaded | ErrorKind::Unavailable)
    }
}

impl std::fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Processing one FlowFile failed.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{kind}: {message}")]
pub struct ProcessError {
    /// What kind of failure.
    pub kind: ErrorKind,
    /// Human-readable reason, written to `error.message`.
    pub message: String,
}

impl ProcessError {
    /// A failure of the given kind.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        ProcessError {
            kind,
            message: message.into(),
        }
    }

    /// Input the node cannot accept.
    pub fn invalid_input(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::InvalidInput, message)
    }

    /// An internal error.
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Internal, message)
    }

    /// Whether a caller should retry.
    pub fn is_retryable(&self) -> bool {
        self.kind.is_retryable()
    }

    /// The gRPC status for a transport-level error (only retryable kinds travel as status).
    pub fn to_status(&self) -> Status {
        match self.kind {
            ErrorKind::Overloaded => Status::resource_exhausted(self.message.clone()),
            ErrorKind::Unavailable => Status::unavailable(self.message.clone()),
            ErrorKind::TooLarge => Status::out_of_range(self.message.clone()),
            ErrorKind::InvalidInput => Status::invalid_argument(self.message.clone()),
            _ => Status::internal(self.message.clone()),
        }
    }

    /// Interprets a gRPC status received from a remote node.
    pub fn from_status(status: &Status) -> Self {
        let kind = match status.code() {
            Code::ResourceExhausted => ErrorKind::Overloaded,
            // Connection refused/reset and deadlines are worth another try.
            Code::Unavailable | Code::DeadlineExceeded | Code::Aborted | Code::Cancelled => {
                ErrorKind::Unavailable
            }
            // The connection broke mid-call (the node crashed, restarted, a proxy reset it):
            // hyper/h2 report that as UNKNOWN or INTERNAL; the request may not have been
            // processed, so it is worth another try.
            Code::Unknown | Code::Internal if is_transport_message(status.message()) => {
                ErrorKind::Unavailable
            }
            Code::OutOfRange => ErrorKind::TooLarge,
            Code::InvalidArgument | Code::FailedPrecondition => ErrorKind::InvalidInput,
            _ => ErrorKind::Internal,
        };
        let message = if status.message().is_empty() {
            format!("gRPC status {:?}", status.code())
        } else {
            status.message().to_string()
        };
        ProcessError::new(kind, message)
    }
}

fn is_transport_message(message: &str) -> bool {
    let m = message.to_ascii_lowercase();
    [
        "transport",
        "connection",
        "broken pipe",
        "h2 protocol error",
        "http2 error",
        "stream closed",
        "reset",
    ]
    .iter()
    .any(|needle| m.contains(needle))
}

/// A node could not be built, started or served.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    /// Settings were rejected.
    #[error("invalid settings: {0}")]
    Settings(String),
    /// A resource (file, model, library, port) could not be acquired.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The node could not reach or talk to something it needs.
    #[error("{0}")]
    Unavailable(String),
    /// A step failed with a typed cause (a model card, an expression, a store).
    #[error("{what}: {source}")]
    Failed {
        /// What was being done.
        what: String,
        /// The underlying error, kept for [`chain`] and `anyhow`'s `{:#}`.
        #[source]
        source: BoxError,
    },
    /// Anything else.
    #[error("{0}")]
    Other(String),
}

/// A boxed error that can cross threads, the source of [`NodeError::Failed`].
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// An error and its sources, `: `-separated: the one way Loupe writes an error with its
/// causes into a log line, an `error.message` attribute or an answer. A source whose text
/// the message already ends with (an error that prints its source, like
/// [`NodeError::Io`]) is not repeated.
pub fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let part = s.to_string();
        if !text.ends_with(&part) {
            text.push_str(": ");
            text.push_str(&part);
        }
        source = s.source();
    }
    text
}

impl NodeError {
    /// An I/O error with context.
    pub fn io(what: impl Into<String>, source: std::io::Error) -> Self {
        NodeError::Io {
            what: what.into(),
            source,
        }
    }

    /// A failure of `what`, keeping `source` as the error's source.
    pub fn failed(what: impl Into<String>, source: impl Into<BoxError>) -> Self {
        NodeError::Failed {
            what: what.into(),
            source: source.into(),
        }
    }

    /// The gRPC status for this error.
    pub fn to_status(&self) -> Status {
        match self {
            NodeError::Settings(m) => Status::invalid_argument(m.clone()),
            NodeError::Unavailable(m) => Status::unavailable(m.clone()),
            other => Status::internal(other.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retryable_kinds_round_trip_through_status() {
        for kind in [ErrorKind::Overloaded, ErrorKind::Unavailable] {
            let e = ProcessError::new(kind, "busy");
            let back = ProcessError::from_status(&e.to_status());
            assert_eq!(back.kind, kind);
            assert!(back.is_retryable());
        }
        let e = ProcessError::from_status(&Status::internal("h2 protocol error: http2 error"));
        assert_eq!(
            e.kind,
            ErrorKind::Unavailable,
            "a broken connection is retried"
        );
        let e = ProcessError::from_status(&Status::internal("model exploded"));
        assert_eq!(e.kind, ErrorKind::Internal);
        let e = ProcessError::from_status(&Status::out_of_range("too big"));
        assert_eq!(e.kind, ErrorKind::TooLarge);
        assert!(!e.is_retryable());
    }

    #[derive(Debug, thiserror::Error)]
    #[error("outer")]
    struct Outer(#[source] std::io::Error);

    #[test]
    fn chain_writes_every_source_once() {
        let e = Outer(std::io::Error::other("disk gone"));
        assert_eq!(chain(&e), "outer: disk gone");
        // Io prints its source already: not repeated.
        let e = NodeError::io("reading model.yaml", std::io::Error::other("no such file"));
        assert_eq!(chain(&e), "reading model.yaml: no such file");
        let e = NodeError::failed("route", Outer(std::io::Error::other("bad rule")));
        assert_eq!(chain(&e), "route: outer: bad rule");
        assert!(std::error::Error::source(&e).is_some(), "the cause is kept");
    }
}
