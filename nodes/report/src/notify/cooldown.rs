//! The cooldown: one notice per key (line, defect kind) per window, the rest counted.

use std::collections::HashMap;
use std::time::{Duration, Instant};

/// Most keys remembered. Past it, keys whose window is over are forgotten, then (if still
/// full) the one whose window began first: memory stays bounded whatever the input.
pub(crate) const MAX_KEYS: usize = 4096;

/// A cooldown key: (line, defect kind).
pub(crate) type Key = (String, String);

#[derive(Debug, Clone, Copy)]
struct Window {
    /// When the last notice that went out for this key was admitted.
    since: Instant,
    /// Notices held back since then.
    suppressed: u64,
}

/// What the cooldown says about one notice.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Admit {
    /// Send it, telling how many were held back before it.
    Send {
        /// Notices suppressed since the previous one that went out.
        suppressed: u64,
    },
    /// Within the cooldown of an earlier notice: held back (and counted).
    Suppress,
}

/// Per-key windows. Not synchronized: the notifier keeps it under a lock.
#[derive(Debug)]
pub(crate) struct Cooldown {
    period: Duration,
    windows: HashMap<Key, Window>,
}

/// An admission that can be taken back (when no sink took the notice).
#[derive(Debug)]
pub(crate) struct Admitted {
    key: Key,
    previous: Option<Window>,
}

impl Cooldown {
    pub(crate) fn new(period: Duration) -> Self {
        Cooldown {
            period,
            windows: HashMap::new(),
        }
    }

    /// Decides about a notice with `key` arriving at `now`. When it is to be sent, a new
    /// window starts at `now` (undo it with [`Cooldown::undo`]).
    pub(crate) fn admit(&mut self, key: Key, now: Instant) -> (Admit, Option<Admitted>) {
        if self.period.is_zero() {
            return (Admit::Send { suppressed: 0 }, None);
        }
        if let Some(w) = self.windows.get_mut(&key)
            && now.saturating_duration_since(w.since) < self.period
        {
            w.suppressed += 1;
            return (Admit::Suppress, None);
        }
        if !self.windows.contains_key(&key) && self.windows.len() >= MAX_KEYS {
            self.make_room(now);
        }
        let previous = self.windows.insert(
            key.clone(),
            Window {
                since: now,
                suppressed: 0,
            },
        );
        let suppressed = previous.map_or(0, |w| w.suppressed);
        (Admit::Send { suppressed }, Some(Admitted { key, previous }))
    }

    /// Takes back an admission: the key's window is as it was before (its suppressed count
    /// included, so it is reported by the next notice that does go out).
    pub(crate) fn undo(&mut self, admitted: Admitted) {
        match admitted.previous {
            Some(w) => {
                self.windows.insert(admitted.key, w);
            }
            None => {
                self.windows.remove(&admitted.key);
            }
        }
    }

    fn make_room(&mut self, now: Instant) {
        let period = self.period;
        let before = self.windows.len();
        let mut lost = 0u64;
        self.windows.retain(|_, w| {
            let keep = now.saturating_duration_since(w.since) < period;
            if !keep {
                lost += w.suppressed;
            }
            keep
        });
        if self.windows.len() >= MAX_KEYS
            && let Some(oldest) = self
                .windows
                .iter()
                .min_by_key(|(_, w)| w.since)
                .map(|(k, _)| k.clone())
            && let Some(w) = self.windows.remove(&oldest)
        {
            lost += w.suppressed;
        }
        tracing::debug!(
            forgotten = before - self.windows.len(),
            suppressed_unreported = lost,
            "cooldown: too many keys (line, defect kind); forgot the oldest"
        );
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.windows.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(line: &str, kind: &str) -> Key {
        (line.to_string(), kind.to_string())
    }

    #[test]
    fn first_goes_out_repeats_are_counted_then_reported() {
        let t0 = Instant::now();
        let mut c = Cooldown::new(Duration::from_secs(60));
        let s = Duration::from_secs;
        assert_eq!(c.admit(key("a", "x"), t0).0, Admit::Send { suppressed: 0 });
        assert_eq!(c.admit(key("a", "x"), t0 + s(1)).0, Admit::Suppress);
        assert_eq!(c.admit(key("a", "x"), t0 + s(59)).0, Admit::Suppress);
        // Another line, another kind: their own windows.
        assert_eq!(
            c.admit(key("b", "x"), t0 + s(2)).0,
            Admit::Send { suppressed: 0 }
        );
        assert_eq!(
            c.admit(key("a", "y"), t0 + s(2)).0,
            Admit::Send { suppressed: 0 }
        );
        // After the cooldown: out, carrying the count; a new window starts.
        assert_eq!(
            c.admit(key("a", "x"), t0 + s(60)).0,
            Admit::Send { suppressed: 2 }
        );
        assert_eq!(c.admit(key("a", "x"), t0 + s(61)).0, Admit::Suppress);
        assert_eq!(
            c.admit(key("a", "x"), t0 + s(200)).0,
            Admit::Send { suppressed: 1 }
        );
    }

    #[test]
    fn undo_restores_the_window() {
        let t0 = Instant::now();
        let mut c = Cooldown::new(Duration::from_secs(10));
        c.admit(key("a", "x"), t0);
        c.admit(key("a", "x"), t0 + Duration::from_secs(1));
        let (admit, admitted) = c.admit(key("a", "x"), t0 + Duration::from_secs(11));
        assert_eq!(admit, Admit::Send { suppressed: 1 });
        c.undo(admitted.unwrap());
        // Not sent after all: the count is still there for the next one.
        let (admit, _) = c.admit(key("a", "x"), t0 + Duration::from_secs(12));
        assert_eq!(admit, Admit::Send { suppressed: 1 });

        let (_, admitted) = c.admit(key("new", ""), t0);
        c.undo(admitted.unwrap());
        assert_eq!(c.admit(key("new", ""), t0).0, Admit::Send { suppressed: 0 });
    }

    #[test]
    fn zero_turns_it_off() {
        let t0 = Instant::now();
        let mut c = Cooldown::new(Duration::ZERO);
        for _ in 0..3 {
            assert_eq!(c.admit(key("a", "x"), t0).0, Admit::Send { suppressed: 0 });
        }
        assert_eq!(c.len(), 0);
    }

    #[test]
    fn keys_are_bounded() {
        let t0 = Instant::now();
        let mut c = Cooldown::new(Duration::from_secs(60));
        for i in 0..MAX_KEYS + 10 {
            let (admit, _) = c.admit(
                key(&format!("line-{i}"), "x"),
                t0 + Duration::from_millis(i as u64),
            );
            assert_eq!(admit, Admit::Send { suppressed: 0 });
        }
        assert!(c.len() <= MAX_KEYS);
        // The newest keys are still cooling down.
        let last = format!("line-{}", MAX_KEYS + 9);
        assert_eq!(
            c.admit(key(&last, "x"), t0 + Duration::from_secs(1)).0,
            Admit::Suppress
        );
    }
}
