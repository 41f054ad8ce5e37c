//! Login sessions: a random 256-bit id in the `loupe_session` cookie, held in a bounded
//! in-memory map (lost on restart: people log in again). A session ends after `session_idle`
//! without a request, `session_lifetime` after its login, at logout, or when the map is full
//! and a new login needs its place (the one idle longest goes).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use subtle::ConstantTimeEq as _;

/// The session cookie's name.
pub(crate) const COOKIE: &str = "loupe_session";

/// A random 256-bit value as 64 hex digits.
pub(crate) fn random_token() -> String {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).expect("the operating system's random source works");
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Whether two secrets are equal, in time independent of where they differ.
pub(crate) fn same_secret(a: &str, b: &str) -> bool {
    a.len() == b.len() && bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

/// One logged-in browser.
#[derive(Debug, Clone)]
pub(crate) struct Session {
    /// Who logged in.
    pub user: String,
    /// The token every change must carry (`x-csrf-token` or form field `csrf`).
    pub csrf: String,
    created: Instant,
    last_seen: Instant,
}

/// The sessions.
#[derive(Debug)]
pub(crate) struct Sessions {
    map: Mutex<HashMap<String, Session>>,
    max: usize,
    idle: Duration,
    lifetime: Duration,
}

impl Sessions {
    /// At most `max` sessions, each ending after `idle` without use or `lifetime` in all.
    pub(crate) fn new(max: usize, idle: Duration, lifetime: Duration) -> Sessions {
        Sessions {
            map: Mutex::new(HashMap::new()),
            max: max.max(1),
            idle,
            lifetime,
        }
    }

    fn live(&self, s: &Session, now: Instant) -> bool {
        now.duration_since(s.last_seen) < self.idle && now.duration_since(s.created) < self.lifetime
    }

    /// A new session for `user` (its role is the users file's, looked up at each request);
    /// returns its id.
    pub(crate) fn create(&self, user: &str) -> String {
        let now = Instant::now();
        let id = random_token();
        let mut map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        if map.len() >= self.max {
            map.retain(|_, s| self.live(s, now));
        }
        while map.len() >= self.max {
            let Some(oldest) = map
                .iter()
                .min_by_key(|(_, s)| s.last_seen)
                .map(|(k, _)| k.clone())
            else {
                break;
            };
            map.remove(&oldest);
        }
        map.insert(
            id.clone(),
            Session {
                user: user.to_string(),
                csrf: random_token(),
                created: now,
                last_seen: now,
            },
        );
        id
    }

    /// The session `id`, if it is live (and marks it used); an expired one is removed.
    pub(crate) fn touch(&self, id: &str) -> Option<Session> {
        let now = Instant::now();
        let mut map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        let live = self.live(map.get(id)?, now);
        if !live {
            map.remove(id);
            return None;
        }
        let session = map.get_mut(id)?;
        session.last_seen = now;
        Some(session.clone())
    }

    /// Ends the session `id`.
    pub(crate) fn remove(&self, id: &str) {
        self.map
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(id);
    }

    /// How many sessions are held.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.map.lock().unwrap().len()
    }
}

/// The value of cookie `name` in a request's `Cookie` headers.
pub(crate) fn cookie<'a>(headers: &'a http::HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.trim())
}

/// The `Set-Cookie` value that hands the browser session `id` (`Secure` over TLS).
pub(crate) fn set_cookie(id: &str, secure: bool) -> String {
    format!(
        "{COOKIE}={id}; HttpOnly; SameSite=Strict; Path=/{}",
        if secure { "; Secure" } else { "" }
    )
}

/// The `Set-Cookie` value that makes the browser forget its session.
pub(crate) fn clear_cookie(secure: bool) -> String {
    format!(
        "{COOKIE}=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0{}",
        if secure { "; Secure" } else { "" }
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sessions_end_idle_expired_or_when_crowded_out() {
        let sessions = Sessions::new(2, Duration::from_secs(60), Duration::from_secs(3600));
        let a = sessions.create("anna");
        assert_eq!(a.len(), 64, "256 bits as hex");
        let got = sessions.touch(&a).unwrap();
        assert_eq!(got.user, "anna");
        assert_eq!(got.csrf.len(), 64);
        assert_ne!(got.csrf, a);
        std::thread::sleep(Duration::from_millis(5));
        let b = sessions.create("ben");
        std::thread::sleep(Duration::from_millis(5));
        sessions.touch(&a).unwrap();
        let c = sessions.create("carl");
        assert_eq!(sessions.len(), 2, "bounded");
        assert!(sessions.touch(&b).is_none(), "the one idle longest went");
        assert!(sessions.touch(&a).is_some() && sessions.touch(&c).is_some());
        sessions.remove(&a);
        assert!(sessions.touch(&a).is_none());
        assert!(sessions.touch("nope").is_none());

        let short = Sessions::new(10, Duration::from_millis(20), Duration::from_secs(3600));
        let s = short.create("anna");
        std::thread::sleep(Duration::from_millis(40));
        assert!(short.touch(&s).is_none(), "idle too long");
        let brief = Sessions::new(10, Duration::from_secs(60), Duration::from_millis(30));
        let s = brief.create("anna");
        for _ in 0..5 {
            std::thread::sleep(Duration::from_millis(10));
            let _ = brief.touch(&s);
        }
        assert!(brief.touch(&s).is_none(), "past its lifetime however busy");
    }

    #[test]
    fn cookies_are_read_and_set_strictly() {
        let mut h = http::HeaderMap::new();
        h.append("cookie", "a=1; loupe_session=abc ; b=2".parse().unwrap());
        assert_eq!(cookie(&h, COOKIE), Some("abc"));
        assert_eq!(cookie(&h, "c"), None);
        let set = set_cookie("abc", false);
        assert!(
            set.contains("HttpOnly") && set.contains("SameSite=Strict") && set.contains("Path=/")
        );
        assert!(!set.contains("Secure"));
        assert!(set_cookie("abc", true).ends_with("; Secure"));
        assert!(same_secret("abc", "abc") && !same_secret("abc", "abd") && !same_secret("a", "ab"));
    }
}
