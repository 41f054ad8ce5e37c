//! What every sink's attempt works with: a notice prepared for delivery ([`Prepared`]) and
//! why one attempt failed ([`AttemptError`]). A leaf: the sinks and the delivery worker use it.

use std::time::Duration;

use bytes::Bytes;

/// A notice ready to send: its JSON and what topics are made of.
#[derive(Debug)]
pub(crate) struct Prepared {
    pub(crate) id: String,
    pub(crate) body: Bytes,
    pub(crate) line: String,
    pub(crate) verdict: String,
    pub(crate) product_id: String,
}

/// Why one attempt failed.
#[derive(Debug)]
pub(crate) struct AttemptError {
    pub(crate) message: String,
    /// Worth trying again (connection trouble, timeouts, 5xx).
    pub(crate) retryable: bool,
    /// The receiver asked for this pause.
    pub(crate) retry_after: Option<Duration>,
}

impl AttemptError {
    pub(crate) fn retryable(message: String) -> Self {
        AttemptError {
            message,
            retryable: true,
            retry_after: None,
        }
    }

    pub(crate) fn permanent(message: String) -> Self {
        AttemptError {
            message,
            retryable: false,
            retry_after: None,
        }
    }
}
