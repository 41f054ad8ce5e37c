//! The dashboard's local users: a text file of `NAME:ROLE:HASH` lines, the hash an argon2id
//! PHC string (`$argon2id$v=19$m=19456,t=2,p=1$SALT$HASH`). `#` starts a comment line.
//! `loupe users add|remove|list` edits it; the dashboard reads it (again whenever it
//! changes on disk).
//!
//! The file is written whole to a temporary file in the same folder, synced, then renamed over
//! the old one (a crash leaves the old or the new file, never half of one), with mode `0600`.

use std::fmt;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};

/// What a user may do on the dashboard; each role may do all the one before it may.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    serde::Serialize,
    serde::Deserialize,
    schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Every page, the JSON API's reads, media, live events.
    Viewer,
    /// A viewer who may also review inspections and check images through the upload page.
    Reviewer,
    /// A reviewer who may also see the users (`/admin/users`).
    Admin,
}

impl Role {
    /// The role's name as written in the users file (`viewer`, `reviewer`, `admin`).
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Reviewer => "reviewer",
            Role::Admin => "admin",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Role {
    type Err = UsersError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "viewer" => Ok(Role::Viewer),
            "reviewer" => Ok(Role::Reviewer),
            "admin" => Ok(Role::Admin),
            other => Err(UsersError::BadRole(other.to_string())),
        }
    }
}

/// One local user.
#[derive(Clone, PartialEq, Eq)]
pub struct User {
    /// The login name (letters, digits, `.`, `_`, `-`, `@`; 1 to 64).
    pub name: String,
    /// What the user may do.
    pub role: Role,
    /// The argon2id PHC string of the password.
    pub hash: String,
}

impl fmt::Debug for User {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never the hash, not even in debug output.
        f.debug_struct("User")
            .field("name", &self.name)
            .field("role", &self.role)
            .finish_non_exhaustive()
    }
}

/// What can go wrong with the users file or a password.
#[derive(Debug, thiserror::Error)]
pub enum UsersError {
    /// The file could not be read.
    #[error("cannot read users file `{}`: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The file could not be written.
    #[error("cannot write users file `{}`: {source}", path.display())]
    Write {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A line of the file is not `NAME:ROLE:HASH`.
    #[error("users file `{}` line {line}: {why}", path.display())]
    Syntax {
        /// The file.
        path: PathBuf,
        /// The line number, from 1.
        line: usize,
        /// What is wrong.
        why: String,
    },
    /// Not a user name.
    #[error("user name `{0}` is not allowed: 1 to 64 letters, digits, `.`, `_`, `-`, `@`")]
    BadName(String),
    /// Not a role.
    #[error("role `{0}` is not viewer, reviewer or admin")]
    BadRole(String),
    /// The password is empty.
    #[error("the password is empty")]
    EmptyPassword,
    /// The user exists already (add) or does not (remove).
    #[error("user `{0}` {1}")]
    User(String, &'static str),
    /// Hashing failed.
    #[error("cannot hash the password: {0}")]
    Hash(argon2::password_hash::Error),
}

/// Whether `name` may be a user name.
pub fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-@".contains(c))
}

/// The argon2id hasher with the parameters new hashes get (RFC 9106 / OWASP: 19 MiB, 2
/// passes, 1 lane). Verification uses the parameters written in each hash.
fn hasher() -> Argon2<'static> {
    Argon2::new(
        Algorithm::Argon2id,
        Version::V0x13,
        Params::new(19 * 1024, 2, 1, None).expect("valid argon2 parameters"),
    )
}

/// The argon2id PHC string of `password`, with a fresh random salt.
pub fn hash_password(password: &str) -> Result<String, UsersError> {
    if password.is_empty() {
        return Err(UsersError::EmptyPassword);
    }
    let mut salt = [0u8; 16];
    getrandom::fill(&mut salt)
        .map_err(|_| UsersError::Hash(argon2::password_hash::Error::Crypto))?;
    let salt = SaltString::encode_b64(&salt).map_err(UsersError::Hash)?;
    hasher()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(UsersError::Hash)
}

/// Whether `password` matches the PHC string `hash` (argon2id only; slow on purpose: call it
/// on a blocking thread).
pub fn verify_password(hash: &str, password: &str) -> bool {
    match PasswordHash::new(hash) {
        Ok(parsed) if parsed.algorithm.as_str() == "argon2id" => hasher()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok(),
        _ => false,
    }
}

/// A hash no password matches, verified against when the user does not exist so that an
/// unknown name takes as long as a wrong password.
pub(crate) fn decoy_hash() -> &'static str {
    static DECOY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DECOY.get_or_init(|| {
        hash_password("decoy password nobody has").unwrap_or_else(|_| String::from("$argon2id$"))
    })
}

/// The users of a users file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Users {
    /// In file order.
    pub users: Vec<User>,
}

impl Users {
    /// Reads `path`; a missing file is an error (use [`Users::load_or_empty`] to create one).
    pub fn load(path: &Path) -> Result<Users, UsersError> {
        let text = std::fs::read_to_string(path).map_err(|source| UsersError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Users::parse(&text, path)
    }

    /// Reads `path`, or no users when it does not exist yet.
    pub fn load_or_empty(path: &Path) -> Result<Users, UsersError> {
        match std::fs::metadata(path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Users::default()),
            _ => Users::load(path),
        }
    }

    /// Parses the text of a users file (`path` names it in errors).
    pub fn parse(text: &str, path: &Path) -> Result<Users, UsersError> {
        let mut users: Vec<User> = Vec::new();
        for (i, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let syntax = |why: String| UsersError::Syntax {
                path: path.to_path_buf(),
                line: i + 1,
                why,
            };
            let mut parts = line.splitn(3, ':');
            let (Some(name), Some(role), Some(hash)) = (parts.next(), parts.next(), parts.next())
            else {
                return Err(syntax("not NAME:ROLE:HASH".to_string()));
            };
            if !valid_name(name) {
                return Err(syntax(UsersError::BadName(name.to_string()).to_string()));
            }
            let role: Role = role
                .parse()
                .map_err(|e: UsersError| syntax(e.to_string()))?;
            match PasswordHash::new(hash) {
                Ok(h) if h.algorithm.as_str() == "argon2id" => {}
                _ => {
                    return Err(syntax(format!(
                        "the hash of `{name}` is not an argon2id PHC string"
                    )));
                }
            }
            if users.iter().any(|u| u.name == name) {
                return Err(syntax(format!("user `{name}` appears twice")));
            }
            users.push(User {
                name: name.to_string(),
                role,
                hash: hash.to_string(),
            });
        }
        Ok(Users { users })
    }

    /// The user called `name`.
    pub fn get(&self, name: &str) -> Option<&User> {
        self.users.iter().find(|u| u.name == name)
    }

    /// Adds `name` with `role` and `password` (hashed); refuses a name already there.
    pub fn add(&mut self, name: &str, role: Role, password: &str) -> Result<(), UsersError> {
        if !valid_name(name) {
            return Err(UsersError::BadName(name.to_string()));
        }
        if self.get(name).is_some() {
            return Err(UsersError::User(name.to_string(), "exists already"));
        }
        let hash = hash_password(password)?;
        self.users.push(User {
            name: name.to_string(),
            role,
            hash,
        });
        Ok(())
    }

    /// Removes `name`; refuses a name not there.
    pub fn remove(&mut self, name: &str) -> Result<(), UsersError> {
        let before = self.users.len();
        self.users.retain(|u| u.name != name);
        if self.users.len() == before {
            return Err(UsersError::User(name.to_string(), "does not exist"));
        }
        Ok(())
    }

    /// The file's text.
    pub fn to_text(&self) -> String {
        let mut text = String::from(
            "# Loupe dashboard users: NAME:ROLE:ARGON2ID-HASH (edit with `loupe users`).\n",
        );
        for u in &self.users {
            text.push_str(&format!("{}:{}:{}\n", u.name, u.role, u.hash));
        }
        text
    }

    /// Writes the file: a temporary file in the same folder (mode 0600), synced, renamed
    /// over `path`, the folder synced.
    pub fn save(&self, path: &Path) -> Result<(), UsersError> {
        let write = |source| UsersError::Write {
            path: path.to_path_buf(),
            source,
        };
        let dir = match path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
            _ => PathBuf::from("."),
        };
        let file_name = path
            .file_name()
            .ok_or_else(|| write(std::io::Error::other("not a file name")))?;
        let mut suffix = [0u8; 6];
        getrandom::fill(&mut suffix).map_err(|e| write(std::io::Error::other(e)))?;
        let suffix: String = suffix.iter().map(|b| format!("{b:02x}")).collect();
        let temp = dir.join(format!(".{}.{suffix}.tmp", file_name.to_string_lossy()));
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt as _;
            options.mode(0o600);
        }
        let result = (|| {
            let mut file = options.open(&temp)?;
            file.write_all(self.to_text().as_bytes())?;
            file.sync_all()?;
            drop(file);
            std::fs::rename(&temp, path)?;
            // The rename itself is durable once the folder is synced.
            if let Ok(d) = std::fs::File::open(&dir) {
                let _ = d.sync_all();
            }
            Ok(())
        })();
        if result.is_err() {
            let _ = std::fs::remove_file(&temp);
        }
        result.map_err(write)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn add_list_remove_round_trip_through_the_file() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("users");
        let mut users = Users::load_or_empty(&path).unwrap();
        assert!(users.users.is_empty());
        users.add("anna", Role::Reviewer, "s3cret pass").unwrap();
        users.add("ben", Role::Viewer, "another one").unwrap();
        assert!(matches!(
            users.add("anna", Role::Admin, "x"),
            Err(UsersError::User(..))
        ));
        assert!(matches!(
            users.add("bad name", Role::Admin, "x"),
            Err(UsersError::BadName(_))
        ));
        assert!(matches!(
            users.add("carl", Role::Admin, ""),
            Err(UsersError::EmptyPassword)
        ));
        users.save(&path).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600, "only the owner reads the hashes");
        }
        let leftovers: Vec<_> = std::fs::read_dir(tmp.path()).unwrap().collect();
        assert_eq!(leftovers.len(), 1, "no temporary file left behind");
        let mut read = Users::load(&path).unwrap();
        assert_eq!(read, users);
        assert_eq!(read.get("anna").unwrap().role, Role::Reviewer);
        read.remove("ben").unwrap();
        assert!(read.remove("ben").is_err());
        read.save(&path).unwrap();
        let names: Vec<String> = Users::load(&path)
            .unwrap()
            .users
            .into_iter()
            .map(|u| u.name)
            .collect();
        assert_eq!(names, ["anna"]);
        assert!(
            !format!("{:?}", read.users[0]).contains("argon2"),
            "debug output shows no hash"
        );
    }

    #[test]
    fn hashes_are_argon2id_with_the_chosen_parameters_and_verify() {
        let hash = hash_password("correct horse").unwrap();
        assert!(
            hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
            "{hash}"
        );
        assert!(verify_password(&hash, "correct horse"));
        assert!(!verify_password(&hash, "correct hors"));
        assert!(!verify_password(&hash, ""));
        assert_ne!(hash, hash_password("correct horse").unwrap(), "salted");
        assert!(!verify_password(decoy_hash(), ""));
        assert!(!verify_password("not a hash", "x"));
    }

    #[test]
    fn a_broken_file_says_where() {
        let path = Path::new("users");
        let hash = hash_password("pw").unwrap();
        let err = Users::parse(&format!("# c\n\nanna:boss:{hash}\n"), path).unwrap_err();
        assert!(err.to_string().contains("line 3"), "{err}");
        let err = Users::parse("anna:viewer:$2b$10$bcrypt\n", path).unwrap_err();
        assert!(err.to_string().contains("argon2id"), "{err}");
        let err = Users::parse(&format!("a:viewer:{hash}\na:admin:{hash}\n"), path).unwrap_err();
        assert!(err.to_string().contains("twice"), "{err}");
        assert!(Users::parse("anna\n", path).is_err());
    }
}
