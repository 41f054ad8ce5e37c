//! One worker per sink: takes notices from the sink's bounded queue, one at a time, and
//! tries each up to `max_attempts` times with exponential backoff.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::attempt::{AttemptError, Prepared};
use super::mqtt::MqttSink;
use super::webhook::WebhookSink;

/// Counts, shared by the notifier and its workers.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) sent: AtomicU64,
    pub(crate) failed: AtomicU64,
    pub(crate) suppressed: AtomicU64,
    pub(crate) dropped: AtomicU64,
    pub(crate) rejected: AtomicU64,
}

impl Counters {
    pub(crate) fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }
}

/// How hard one sink tries.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RetryPolicy {
    pub(crate) timeout: Duration,
    pub(crate) max_attempts: u32,
    pub(crate) initial_backoff: Duration,
    pub(crate) max_backoff: Duration,
}

impl RetryPolicy {
    /// The pause after failed attempt `attempt` (1-based): `initial_backoff` doubled
    /// `attempt - 1` times, at most `max_backoff`.
    pub(crate) fn backoff(&self, attempt: u32) -> Duration {
        let factor = 1u32 << attempt.saturating_sub(1).min(20);
        self.initial_backoff
            .saturating_mul(factor)
            .min(self.max_backoff)
    }
}

/// A destination.
pub(crate) enum Sink {
    Webhook(Box<WebhookSink>),
    Mqtt(MqttSink),
}

impl Sink {
    pub(crate) fn name(&self) -> &'static str {
        match self {
            Sink::Webhook(_) => "webhook",
            Sink::Mqtt(_) => "mqtt",
        }
    }

    fn target(&self) -> String {
        match self {
            Sink::Webhook(w) => w.url(),
            Sink::Mqtt(m) => m.broker().to_string(),
        }
    }

    async fn attempt(&self, msg: &Prepared, attempt: u32) -> Result<(), AttemptError> {
        match self {
            Sink::Webhook(w) => w.attempt(msg, attempt).await,
            Sink::Mqtt(m) => m.attempt(msg).await,
        }
    }

    async fn close(self) {
        match self {
            Sink::Webhook(_) => {}
            Sink::Mqtt(m) => m.close().await,
        }
    }
}

enum Delivery {
    Sent,
    Failed { attempts: u32, error: String },
    Cancelled,
}

/// Delivers what arrives on `queue` until it is closed and empty, or `cancel` fires (then
/// what is left counts as dropped).
pub(crate) async fn run(
    sink: Sink,
    policy: RetryPolicy,
    mut queue: mpsc::Receiver<Arc<Prepared>>,
    counters: Arc<Counters>,
    cancel: CancellationToken,
) {
    let name = sink.name();
    let target = sink.target();
    let mut abandoned = 0u64;
    loop {
        let msg = tokio::select! {
            biased;
            () = cancel.cancelled() => break,
            msg = queue.recv() => match msg {
                Some(msg) => msg,
                None => break,
            },
        };
        match deliver(&sink, &policy, &msg, &cancel).await {
            Delivery::Sent => {
                Counters::add(&counters.sent, 1);
                tracing::debug!(sink = name, id = %msg.id, "notice sent");
            }
            Delivery::Failed { attempts, error } => {
                Counters::add(&counters.failed, 1);
                tracing::error!(sink = name, target = %target, id = %msg.id, attempts, %error,
                    "notice not delivered; giving up on it");
            }
            Delivery::Cancelled => {
                abandoned = 1;
                break;
            }
        }
    }
    queue.close();
    while queue.try_recv().is_ok() {
        abandoned += 1;
    }
    if abandoned > 0 {
        Counters::add(&counters.dropped, abandoned);
        tracing::warn!(sink = name, target = %target, dropped = abandoned,
            "notifications stopped before everything queued was delivered");
    }
    sink.close().await;
}

async fn deliver(
    sink: &Sink,
    policy: &RetryPolicy,
    msg: &Prepared,
    cancel: &CancellationToken,
) -> Delivery {
    let mut attempt = 1;
    loop {
        let result = tokio::select! {
            biased;
            () = cancel.cancelled() => return Delivery::Cancelled,
            r = tokio::time::timeout(policy.timeout, sink.attempt(msg, attempt)) => r,
        };
        let error = match result {
            Ok(Ok(())) => return Delivery::Sent,
            Ok(Err(e)) => e,
            Err(_) => AttemptError::retryable(format!(
                "no answer within {}",
                humantime::format_duration(policy.timeout)
            )),
        };
        if !error.retryable || attempt >= policy.max_attempts {
            return Delivery::Failed {
                attempts: attempt,
                error: error.message,
            };
        }
        let mut pause = policy.backoff(attempt);
        if let Some(asked) = error.retry_after {
            pause = pause.max(asked.min(policy.max_backoff));
        }
        tracing::debug!(sink = sink.name(), id = %msg.id, attempt, error = %error.message,
            pause = %humantime::format_duration(pause), "attempt failed; trying again");
        tokio::select! {
            biased;
            () = cancel.cancelled() => return Delivery::Cancelled,
            () = tokio::time::sleep(pause) => {}
        }
        attempt += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let p = RetryPolicy {
            timeout: Duration::from_secs(1),
            max_attempts: 10,
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(1),
        };
        let ms: Vec<u128> = (1..=6).map(|a| p.backoff(a).as_millis()).collect();
        assert_eq!(ms, [100, 200, 400, 800, 1000, 1000]);
        assert_eq!(p.backoff(u32::MAX), Duration::from_secs(1));
    }
}
