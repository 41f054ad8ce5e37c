//! Real-time notifications when a product is confirmed defective (webhook, MQTT), with a
//! cooldown so one bad batch does not flood the engineers.
//!
//! ```yaml
//! notify:
//!   cooldown: 5m            # per (line, defect kind); 0s turns it off
//!   queue: 256              # pending notices per sink; more are dropped, never waited for
//!   webhook:
//!     url: http://alerts.plant.local:8080/loupe
//!     secret: "…32 random bytes…"
//!     timeout: 10s
//!     max_attempts: 5
//!     initial_backoff: 1s
//!     max_backoff: 1m
//!   mqtt:
//!     url: mqtt://127.0.0.1:1883
//!     topic: loupe/defects/{line}
//!     qos: 1
//! ```
//!
//! How it works:
//!
//! - [`Notifier::notify`] never waits: it checks the notice ([`Notice::check`], at most
//!   [`MAX_NOTICE_BYTES`] of JSON), asks the cooldown, encodes the JSON once and offers it
//!   to every sink's bounded queue (`queue` notices each) with `try_send`. A sink whose
//!   queue is full drops it (a warning, then debug while it stays full; counted in
//!   `dropped`).
//! - **Cooldown**, per key (line, defect kind = sorted set of `defects`): the first notice
//!   goes out at once and opens a window of `cooldown`; later ones within it are
//!   suppressed and counted; the first one after it goes out carrying `suppressed: N` and
//!   opens the next window. A notice that no sink could queue does not open a window. At
//!   most 4096 keys are remembered (the oldest are forgotten first).
//! - Each sink has its own worker task, so a dead webhook does not hold up MQTT. A worker
//!   delivers one notice at a time, each attempt bounded by `timeout`, up to `max_attempts`
//!   with exponential backoff (`initial_backoff`, doubling, at most `max_backoff`; no
//!   jitter). When it gives up it logs an error and counts `failed`.
//! - Delivery is at least once per sink: a receiver may see a notice twice (an answer lost
//!   after the receiver took it) and de-duplicates by `id` (`X-Loupe-Delivery`).
//! - [`Notifier::shutdown`] stops taking notices and delivers what is queued until a
//!   deadline; what is left then counts as `dropped`. Dropping a [`Notifier`] without
//!   `shutdown` stops its tasks at once.
//!
//! Counters ([`NotifyStats`]): `sent`, `failed`, `dropped` count deliveries (one per notice
//! and sink); `suppressed` and `rejected` count notices.

mod attempt;
mod cooldown;
mod delivery;
mod mqtt;
mod notice;
mod settings;
mod topic;
mod webhook;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use loupe_sdk::{NodeError, SettingsError};
use serde::Serialize;
use tokio::sync::mpsc;
use tokio::sync::mpsc::error::TrySendError;
use tokio::task::JoinHandle;
use tokio_util::sync::{CancellationToken, DropGuard};

pub use notice::{MAX_NOTICE_BYTES, Notice, NoticeError};
pub use settings::{MAX_QUEUE, MqttSettings, NotifySettings, WebhookSettings};
pub use webhook::{ATTEMPT_HEADER, DELIVERY_HEADER, SIGNATURE_HEADER, TIMESTAMP_HEADER, signature};

use attempt::Prepared;
use cooldown::{Admit, Cooldown};
use delivery::{Counters, RetryPolicy, Sink};
use notice::Message;

/// What [`Notifier::notify`] did with a notice.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Queued for delivery (by every sink, or by some when others' queues were full).
    Queued,
    /// Held back by the cooldown of an earlier notice with the same line and defect kind;
    /// counted, and reported by the next notice for that key that goes out.
    Suppressed,
    /// Every sink's queue was full: not sent (counted in `dropped`).
    Dropped,
    /// The notice itself is bad (counted in `rejected`).
    Rejected(NoticeError),
}

/// Counts since the notifier started. `sent`, `failed` and `dropped` count deliveries (one
/// per notice and sink); `suppressed` and `rejected` count notices.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct NotifyStats {
    /// Delivered (webhook: a 2xx answer; MQTT QoS 0: written, QoS 1: acknowledged).
    pub sent: u64,
    /// Given up on after `max_attempts`, or on an answer not worth retrying.
    pub failed: u64,
    /// Held back by the cooldown.
    pub suppressed: u64,
    /// Not delivered because a queue was full, or still queued at shutdown's deadline.
    pub dropped: u64,
    /// Refused as bad input ([`Outcome::Rejected`]).
    pub rejected: u64,
}

/// Why notifications could not start.
#[derive(Debug, thiserror::Error)]
pub enum NotifyError {
    /// The settings have problems (see [`NotifySettings::problems`]).
    #[error("invalid notification settings: {}", join(.0))]
    Settings(Vec<SettingsError>),
    /// Not called from within a Tokio runtime.
    #[error("notifications must be started inside a Tokio runtime")]
    NoRuntime,
}

fn join(problems: &[SettingsError]) -> String {
    problems
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

impl From<NotifyError> for NodeError {
    fn from(e: NotifyError) -> Self {
        NodeError::failed("report: notifications", e)
    }
}

/// One sink's queue, as the notifier sees it.
struct Queue {
    name: &'static str,
    tx: mpsc::Sender<Arc<Prepared>>,
    /// Dropping since the last notice it took (warn once per episode).
    dropping: AtomicBool,
}

/// Sends notices to the configured sinks in the background. See the [module](self) docs.
pub struct Notifier {
    queues: Vec<Queue>,
    workers: Vec<JoinHandle<()>>,
    cooldown: Mutex<Cooldown>,
    counters: Arc<Counters>,
    id_prefix: String,
    next_id: AtomicU64,
    /// Cancels the workers when the notifier is dropped without `shutdown`.
    guard: DropGuard,
}

impl std::fmt::Debug for Notifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Notifier")
            .field(
                "sinks",
                &self.queues.iter().map(|q| q.name).collect::<Vec<_>>(),
            )
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

impl Notifier {
    /// Checks `settings` and starts one background task per sink (plus the MQTT connection
    /// task). Must be called inside a Tokio runtime. Connecting happens in the background:
    /// an unreachable receiver or broker is not an error here (it is logged and retried).
    pub fn start(settings: &NotifySettings) -> Result<Notifier, NotifyError> {
        let problems = settings.problems();
        if !problems.is_empty() {
            return Err(NotifyError::Settings(problems));
        }
        if tokio::runtime::Handle::try_current().is_err() {
            return Err(NotifyError::NoRuntime);
        }
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let cancel = CancellationToken::new();
        let counters = Arc::new(Counters::default());

        let mut sinks = Vec::new();
        if let Some(w) = &settings.webhook {
            let sink = webhook::WebhookSink::new(w)
                .map_err(|e| NotifyError::Settings(vec![SettingsError::new("webhook.url", e)]))?;
            let policy = RetryPolicy {
                timeout: w.timeout,
                max_attempts: w.max_attempts,
                initial_backoff: w.initial_backoff,
                max_backoff: w.max_backoff,
            };
            sinks.push((Sink::Webhook(Box::new(sink)), policy));
        }
        if let Some(m) = &settings.mqtt {
            let client_id = m.client_id.clone().unwrap_or_else(|| {
                format!(
                    "loupe-report-{}-{:06x}",
                    std::process::id(),
                    nanos & 0xff_ffff
                )
            });
            let sink = mqtt::MqttSink::start(m, client_id)
                .map_err(|e| NotifyError::Settings(vec![SettingsError::new("mqtt", e)]))?;
            let policy = RetryPolicy {
                timeout: m.timeout,
                max_attempts: m.max_attempts,
                initial_backoff: m.initial_backoff,
                max_backoff: m.max_backoff,
            };
            sinks.push((Sink::Mqtt(sink), policy));
        }

        let mut queues = Vec::new();
        let mut workers = Vec::new();
        for (sink, policy) in sinks {
            let (tx, rx) = mpsc::channel(settings.queue);
            queues.push(Queue {
                name: sink.name(),
                tx,
                dropping: AtomicBool::new(false),
            });
            workers.push(tokio::spawn(delivery::run(
                sink,
                policy,
                rx,
                counters.clone(),
                cancel.clone(),
            )));
        }
        Ok(Notifier {
            queues,
            workers,
            cooldown: Mutex::new(Cooldown::new(settings.cooldown)),
            counters,
            id_prefix: format!("{nanos:x}"),
            next_id: AtomicU64::new(1),
            guard: cancel.drop_guard(),
        })
    }

    /// Offers a notice for delivery; never waits (no I/O, a short lock, `try_send`).
    pub fn notify(&self, notice: &Notice) -> Outcome {
        if let Err(e) = notice.check() {
            return self.reject(notice, e);
        }
        let key = (notice.line.clone(), notice.kind());
        let mut cooldown = self.cooldown.lock().unwrap_or_else(PoisonError::into_inner);
        let (admit, admitted) = cooldown.admit(key, Instant::now());
        let suppressed = match admit {
            Admit::Suppress => {
                drop(cooldown);
                Counters::add(&self.counters.suppressed, 1);
                tracing::debug!(product_id = %notice.product_id, line = %notice.line,
                    "notice suppressed by the cooldown");
                return Outcome::Suppressed;
            }
            Admit::Send { suppressed } => suppressed,
        };
        let id = format!(
            "{}-{}",
            self.id_prefix,
            self.next_id.fetch_add(1, Ordering::Relaxed)
        );
        let body = match serde_json::to_vec(&Message {
            id: &id,
            notice,
            suppressed,
        }) {
            Ok(body) if body.len() <= MAX_NOTICE_BYTES => body,
            Ok(body) => {
                if let Some(a) = admitted {
                    cooldown.undo(a);
                }
                drop(cooldown);
                let e = NoticeError::TooLarge {
                    bytes: body.len(),
                    max: MAX_NOTICE_BYTES,
                };
                return self.reject(notice, e);
            }
            Err(e) => {
                if let Some(a) = admitted {
                    cooldown.undo(a);
                }
                drop(cooldown);
                return self.reject(notice, NoticeError::Encode(e.to_string()));
            }
        };
        let msg = Arc::new(Prepared {
            id,
            body: Bytes::from(body),
            line: notice.line.clone(),
            verdict: notice.verdict.clone(),
            product_id: notice.product_id.clone(),
        });
        let mut queued = 0;
        for queue in &self.queues {
            match queue.tx.try_send(msg.clone()) {
                Ok(()) => {
                    queued += 1;
                    if queue.dropping.swap(false, Ordering::Relaxed) {
                        tracing::info!(sink = queue.name, "notification queue has room again");
                    }
                }
                Err(TrySendError::Full(_) | TrySendError::Closed(_)) => {
                    Counters::add(&self.counters.dropped, 1);
                    if queue.dropping.swap(true, Ordering::Relaxed) {
                        tracing::debug!(sink = queue.name, id = %msg.id, "notice dropped: queue full");
                    } else {
                        tracing::warn!(sink = queue.name, id = %msg.id, capacity = queue.tx.max_capacity(),
                            "notification queue full: dropping notices until it has room \
                             (repeats at debug)");
                    }
                }
            }
        }
        if queued == 0 {
            if let Some(a) = admitted {
                cooldown.undo(a);
            }
            return Outcome::Dropped;
        }
        Outcome::Queued
    }

    fn reject(&self, notice: &Notice, error: NoticeError) -> Outcome {
        Counters::add(&self.counters.rejected, 1);
        tracing::warn!(product_id = %notice.product_id, line = %notice.line, %error,
            "notice rejected");
        Outcome::Rejected(error)
    }

    /// The counts so far.
    pub fn stats(&self) -> NotifyStats {
        stats(&self.counters)
    }

    /// Stops taking notices, delivers what is queued (retries included) for at most
    /// `deadline`, then stops the rest (counted as `dropped`) and closes connections.
    /// Returns the final counts.
    pub async fn shutdown(self, deadline: Duration) -> NotifyStats {
        let Notifier {
            queues,
            workers,
            counters,
            guard,
            ..
        } = self;
        let cancel = guard.disarm();
        // Closing the queues lets each worker finish once its queue is empty.
        drop(queues);
        let until = tokio::time::Instant::now() + deadline;
        for mut worker in workers {
            if tokio::time::timeout_at(until, &mut worker).await.is_err() {
                cancel.cancel();
                // A cancelled worker stops at once; only closing MQTT takes a moment.
                if tokio::time::timeout(Duration::from_secs(5), &mut worker)
                    .await
                    .is_err()
                {
                    worker.abort();
                }
            }
        }
        cancel.cancel();
        let stats = stats(&counters);
        tracing::info!(
            sent = stats.sent,
            failed = stats.failed,
            suppressed = stats.suppressed,
            dropped = stats.dropped,
            rejected = stats.rejected,
            "notifications stopped"
        );
        stats
    }
}

fn stats(c: &Counters) -> NotifyStats {
    NotifyStats {
        sent: c.sent.load(Ordering::Relaxed),
        failed: c.failed.load(Ordering::Relaxed),
        suppressed: c.suppressed.load(Ordering::Relaxed),
        dropped: c.dropped.load(Ordering::Relaxed),
        rejected: c.rejected.load(Ordering::Relaxed),
    }
}
