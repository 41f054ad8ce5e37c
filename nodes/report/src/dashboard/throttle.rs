//! The login rate limit: at most `max_failed_logins` failed logins per minute per user name
//! and per client address. Past it, logins for that name or from that address are answered
//! `429` with `Retry-After` (without checking the password) until the oldest failure is a
//! minute old. The map is bounded: the key failed longest ago goes first.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The window failures are counted in.
const WINDOW: Duration = Duration::from_secs(60);
/// Most names and addresses tracked at once.
const MAX_KEYS: usize = 10_000;

#[derive(Debug, Default)]
struct Failures {
    /// When each recent failure happened, oldest first.
    times: VecDeque<Instant>,
    /// Whether the warning of this episode was logged.
    warned: bool,
}

/// Failed logins per key (`user:NAME`, `ip:ADDRESS`).
#[derive(Debug)]
pub(crate) struct Throttle {
    map: Mutex<HashMap<String, Failures>>,
    max: usize,
}

impl Throttle {
    /// At most `max` failures per key per minute.
    pub(crate) fn new(max: u32) -> Throttle {
        Throttle {
            map: Mutex::new(HashMap::new()),
            max: max.max(1) as usize,
        }
    }

    /// How long until a login for any of `keys` may be tried again (`None`: now). Logs a
    /// warning once per episode of a key.
    pub(crate) fn blocked(&self, keys: &[String]) -> Option<Duration> {
        let now = Instant::now();
        let mut map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        let mut wait: Option<Duration> = None;
        for key in keys {
            let Some(f) = map.get_mut(key) else { continue };
            while f
                .times
                .front()
                .is_some_and(|t| now.duration_since(*t) >= WINDOW)
            {
                f.times.pop_front();
            }
            if f.times.len() >= self.max {
                let oldest = *f.times.front().expect("not empty");
                let left = WINDOW.saturating_sub(now.duration_since(oldest));
                wait = Some(wait.map_or(left, |w| w.max(left)));
                if !f.warned {
                    f.warned = true;
                    tracing::warn!(
                        key = %key,
                        failures = f.times.len(),
                        "dashboard: too many failed logins; refusing more for a while"
                    );
                }
            } else {
                f.warned = false;
            }
        }
        wait
    }

    /// Counts a failed login against every key.
    pub(crate) fn failed(&self, keys: &[String]) {
        let now = Instant::now();
        let mut map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        for key in keys {
            if !map.contains_key(key) && map.len() >= MAX_KEYS {
                map.retain(|_, f| {
                    f.times
                        .back()
                        .is_some_and(|t| now.duration_since(*t) < WINDOW)
                });
                if map.len() >= MAX_KEYS
                    && let Some(oldest) = map
                        .iter()
                        .min_by_key(|(_, f)| f.times.back().copied())
                        .map(|(k, _)| k.clone())
                {
                    map.remove(&oldest);
                }
            }
            let f = map.entry(key.clone()).or_default();
            f.times.push_back(now);
            while f.times.len() > self.max {
                f.times.pop_front();
            }
        }
    }

    /// Forgets the failures of `keys` (after a successful login).
    pub(crate) fn succeeded(&self, keys: &[String]) {
        let mut map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        for key in keys {
            map.remove(key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_past_the_limit_block_the_name_and_the_address() {
        let t = Throttle::new(3);
        let anna = vec!["user:anna".to_string(), "ip:10.0.0.1".to_string()];
        for _ in 0..3 {
            assert_eq!(t.blocked(&anna), None);
            t.failed(&anna);
        }
        let wait = t.blocked(&anna).expect("blocked");
        assert!(wait > Duration::from_secs(58) && wait <= WINDOW, "{wait:?}");
        // Another name from the same address, the same name from elsewhere: blocked too.
        assert!(
            t.blocked(&["user:ben".into(), "ip:10.0.0.1".into()])
                .is_some()
        );
        assert!(
            t.blocked(&["user:anna".into(), "ip:10.0.0.2".into()])
                .is_some()
        );
        assert!(
            t.blocked(&["user:ben".into(), "ip:10.0.0.2".into()])
                .is_none()
        );
        t.succeeded(&anna);
        assert!(t.blocked(&anna).is_none());
    }
}
