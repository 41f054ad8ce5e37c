//! One warning per episode of trouble, not one per retry.
//!
//! A node that is down, a source that cannot be read, an acknowledgement that does not get
//! through: the runner retries, often many times a second. The first failure of an episode is
//! a warning; the repeats are debug lines; the first success after them is one info line
//! saying how long the episode lasted and how many retries it took.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::Instant;

/// The trouble state of one node.
#[derive(Debug, Default)]
pub(crate) struct Trouble {
    /// Fast path for [`Trouble::cleared`]: true while an episode is open.
    open: AtomicBool,
    episode: Mutex<Option<Episode>>,
}

#[derive(Debug)]
struct Episode {
    since: Instant,
    repeats: u64,
}

impl Trouble {
    /// Something failed: a warning if this opens an episode, else a debug line.
    pub(crate) fn failed(&self, node: &str, what: &str, error: &str) {
        let mut episode = self.episode.lock().unwrap_or_else(PoisonError::into_inner);
        match episode.as_mut() {
            Some(e) => {
                e.repeats += 1;
                tracing::debug!(node, error, repeats = e.repeats, "{what}");
            }
            None => {
                tracing::warn!(
                    node,
                    error,
                    "{what} (further failures of this episode are logged at debug level)"
                );
                *episode = Some(Episode {
                    since: Instant::now(),
                    repeats: 0,
                });
                self.open.store(true, Ordering::SeqCst);
            }
        }
    }

    /// Something worked: closes an open episode with one info line. Returns whether one was
    /// open.
    pub(crate) fn cleared(&self, node: &str, what: &str) -> bool {
        if !self.open.load(Ordering::Relaxed) {
            return false;
        }
        let mut episode = self.episode.lock().unwrap_or_else(PoisonError::into_inner);
        let Some(e) = episode.take() else {
            return false;
        };
        self.open.store(false, Ordering::SeqCst);
        tracing::info!(
            node,
            lasted_s = e.since.elapsed().as_secs_f64(),
            retries = e.repeats + 1,
            "{what} works again"
        );
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_episode_opens_once_and_closes_once() {
        let t = Trouble::default();
        assert!(!t.cleared("n", "x"));
        t.failed("n", "down", "refused");
        t.failed("n", "down", "refused");
        assert_eq!(
            t.episode.lock().unwrap().as_ref().map(|e| e.repeats),
            Some(1)
        );
        assert!(t.cleared("n", "x"));
        assert!(!t.cleared("n", "x"));
        t.failed("n", "down", "refused");
        assert_eq!(
            t.episode.lock().unwrap().as_ref().map(|e| e.repeats),
            Some(0)
        );
    }
}
