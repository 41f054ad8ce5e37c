//! One warning per outage, not one per retry.
//!
//! While a database or a node is down the flow retries every FlowFile with backoff, and each
//! retry fails again: logging each would bury the one line that matters. An [`Episode`]
//! tracks one thing that can be in trouble (the report's database, media directory or
//! JSON-lines file; a node the runner calls; a source it pulls from): the first failure of an
//! episode is a WARN, the repeats are DEBUG, and the first success after it is an INFO
//! "recovered after N s, M retries". A success outside an episode costs one atomic load.

use std::borrow::Cow;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// The trouble of one [`Episode`] so far.
#[derive(Debug, Clone, Copy)]
struct Trouble {
    since: Instant,
    retries: u64,
}

/// What a failure meant for the episode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failed {
    /// The first failure since the last success: logged as a warning.
    Began,
    /// Another failure of the same episode (this many failures so far, the first included):
    /// logged at debug level.
    Continues(u64),
}

/// An episode that ended: the thing works again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Recovered {
    /// From the first failure to the success.
    pub after: Duration,
    /// Failures after the first one (the retries that failed too).
    pub retries: u64,
}

/// Tracks the failures of one thing, and logs them once per episode.
#[derive(Debug)]
pub struct Episode {
    what: Cow<'static, str>,
    /// True while an episode is going on: the fast path of [`Episode::succeeded`].
    open: AtomicBool,
    trouble: Mutex<Option<Trouble>>,
}

impl Episode {
    /// A tracker for `what` (`database`, `media directory`, "node `classify`"), which works
    /// so far.
    pub fn new(what: impl Into<Cow<'static, str>>) -> Episode {
        Episode {
            what: what.into(),
            open: AtomicBool::new(false),
            trouble: Mutex::new(None),
        }
    }

    /// Whether an episode is going on (the last attempt failed).
    pub fn in_trouble(&self) -> bool {
        self.lock().is_some()
    }

    /// Notes a failure (`error`); logs a warning when it begins an episode, debug otherwise.
    pub fn failed(&self, error: &dyn std::fmt::Display) -> Failed {
        let outcome = {
            let mut trouble = self.lock();
            match trouble.as_mut() {
                None => {
                    *trouble = Some(Trouble {
                        since: Instant::now(),
                        retries: 0,
                    });
                    self.open.store(true, Ordering::SeqCst);
                    Failed::Began
                }
                Some(t) => {
                    t.retries += 1;
                    Failed::Continues(t.retries + 1)
                }
            }
        };
        match outcome {
            Failed::Began => tracing::warn!(
                what = %self.what,
                error = %error,
                "{} failing; retrying until it works again (further failures at debug level)",
                self.what
            ),
            Failed::Continues(n) => {
                tracing::debug!(what = %self.what, error = %error, failures = n, "{} still failing", self.what)
            }
        }
        outcome
    }

    /// Notes a success; when it ends an episode, logs and returns how long it lasted.
    pub fn succeeded(&self) -> Option<Recovered> {
        if !self.open.load(Ordering::Acquire) {
            return None;
        }
        let trouble = {
            let mut guard = self.lock();
            let trouble = guard.take()?;
            self.open.store(false, Ordering::SeqCst);
            trouble
        };
        let recovered = Recovered {
            after: trouble.since.elapsed(),
            retries: trouble.retries,
        };
        tracing::info!(
            what = %self.what,
            after_s = recovered.after.as_secs_f64(),
            retries = recovered.retries,
            "{} recovered after {:.1} s, {} retries",
            self.what,
            recovered.after.as_secs_f64(),
            recovered.retries
        );
        Some(recovered)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<Trouble>> {
        self.trouble
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_warning_per_episode_and_one_recovery() {
        let episode = Episode::new("database");
        assert_eq!(episode.succeeded(), None, "no episode: nothing to report");
        assert!(!episode.in_trouble());
        assert_eq!(episode.failed(&"refused"), Failed::Began);
        assert!(episode.in_trouble());
        assert_eq!(episode.failed(&"refused"), Failed::Continues(2));
        assert_eq!(episode.failed(&"refused"), Failed::Continues(3));
        std::thread::sleep(Duration::from_millis(20));
        let recovered = episode.succeeded().expect("the episode ends");
        assert_eq!(recovered.retries, 2);
        assert!(recovered.after >= Duration::from_millis(20));
        assert_eq!(episode.succeeded(), None, "reported once");
        assert_eq!(episode.failed(&"again"), Failed::Began, "a new episode");
    }

    #[test]
    fn concurrent_failures_begin_one_episode() {
        let episode = std::sync::Arc::new(Episode::new("media"));
        let began: usize = (0..8)
            .map(|_| {
                let episode = episode.clone();
                std::thread::spawn(move || episode.failed(&"full") == Failed::Began)
            })
            .collect::<Vec<_>>()
            .into_iter()
            .map(|t| usize::from(t.join().unwrap()))
            .sum();
        assert_eq!(began, 1);
        assert_eq!(episode.succeeded().unwrap().retries, 7);
    }
}
