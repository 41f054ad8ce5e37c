//! Who is asking ([`Identity`]) and how that is known ([`Via`]): what the authentication
//! middleware (`auth.rs`) establishes and the pages, the API and the login read. A leaf.

use super::users::Role;

/// How a request's identity was established.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Via {
    /// Open mode: nobody logged in, everyone may review.
    Open,
    /// A login session (its id).
    Session(String),
    /// The trusted reverse proxy's header.
    Proxy,
}

/// Who is asking.
#[derive(Debug, Clone)]
pub(crate) struct Identity {
    /// The user name (`local` in open mode).
    pub name: String,
    /// What they may do.
    pub role: Role,
    /// How we know.
    pub via: Via,
    /// The token changes must carry (`None` in open mode).
    pub csrf: Option<String>,
}

impl Identity {
    /// Whether someone logged in (a session or the proxy), as opposed to open mode.
    pub(crate) fn logged_in(&self) -> bool {
        self.via != Via::Open
    }

    /// The reviewer a review is stored under: the logged-in user; in open mode `local:NAME`
    /// with the name the reviewer gave, or `local`. A logged-in user naming someone else is
    /// refused.
    pub(crate) fn reviewer(&self, given: Option<&str>) -> Result<String, String> {
        let given = given.map(str::trim).filter(|g| !g.is_empty());
        if self.logged_in() {
            return match given {
                Some(g) if g != self.name => Err(format!(
                    "reviewer: reviews are stored under the logged-in user `{}`; leave `reviewer` out",
                    self.name
                )),
                _ => Ok(self.name.clone()),
            };
        }
        Ok(match given {
            Some(g) => format!("local:{}", g.chars().take(80).collect::<String>()),
            None => "local".to_string(),
        })
    }
}
