//! Who may call what on a node's port: bearer tokens and TLS client certificates, checked
//! once for every front-end (gRPC, NiFi, HTTP, the Open Inference Protocol) by one layer in
//! front of the whole router, so no front-end can be forgotten.
//!
//! Rights are per method:
//!
//! | needs | what |
//! |---|---|
//! | nothing | `grpc.health.v1.Health/*`, `GET /health`, the OIP's `ServerLive`/`ServerReady` |
//! | [`Right::Source`] | `loupe.v1.Source/Pull` and `/Ack` — taking and acknowledging a source's photos (acknowledging deletes them) |
//! | [`Right::Process`] | `loupe.v1.Processor/Process`, `/ProcessStream`, NiFi's `FlowFileService/Send`, `POST /process`, the OIP's `ModelInfer` |
//! | any valid credential | everything else: `Describe`, `GET /describe`, reflection, the OIP's metadata |
//!
//! Tokens are compared as SHA-256 digests in constant time, every configured token each
//! time; the token itself is never logged or kept in memory after start-up.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::header::{AUTHORIZATION, CONTENT_TYPE, WWW_AUTHENTICATE};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::listen::PeerInfo;

/// Shortest token accepted (bytes): shorter ones are guessable.
pub const MIN_TOKEN_BYTES: usize = 16;

/// One right a credential can grant.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Right {
    /// Process FlowFiles (Processor, NiFi, `POST /process`, OIP inference).
    Process,
    /// Pull and acknowledge a source's FlowFiles (acknowledging deletes or moves the input).
    Source,
}

impl std::fmt::Display for Right {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Right::Process => "process",
            Right::Source => "source",
        })
    }
}

fn default_rights() -> Vec<Right> {
    vec![Right::Process]
}

/// One accepted bearer token (`Authorization: Bearer TOKEN`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TokenSettings {
    /// Who holds it: named in logs, never the token itself. Several entries may share a
    /// name (an old and a new token while rotating).
    pub name: String,
    /// File holding the token (its content, trimmed); relative to the configuration.
    #[serde(default)]
    pub file: Option<PathBuf>,
    /// Environment variable holding the token.
    #[serde(default)]
    pub env: Option<String>,
    /// What the token allows (default `[process]`).
    #[serde(default = "default_rights")]
    pub rights: Vec<Right>,
}

/// Rights of callers identified by their TLS client certificate (mutual TLS).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CertificateRights {
    /// A common name or DNS name of the client certificate; `*` matches every certificate
    /// the client CA signed.
    pub subject: String,
    /// What it allows (default `[process]`).
    #[serde(default = "default_rights")]
    pub rights: Vec<Right>,
}

/// Credentials a node's port accepts. Nothing configured (and no client CA) means no
/// credentials are asked for — allowed only on loopback or with `insecure`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct AuthSettings {
    /// Accepted bearer tokens; several at once for rotation.
    pub tokens: Vec<TokenSettings>,
    /// Rights per client-certificate subject (needs `tls.client_ca`). Empty with a client
    /// CA: every certificate the CA signed has every right.
    pub certificates: Vec<CertificateRights>,
}

/// Credentials could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// A token names neither a file nor a variable, or both.
    #[error("token `{name}`: give exactly one of `file` or `env`")]
    Source {
        /// The token's name.
        name: String,
    },
    /// A token file could not be read.
    #[error("token `{name}`: cannot read {}: {source}", path.display())]
    Read {
        /// The token's name.
        name: String,
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A token variable is not set.
    #[error("token `{name}`: environment variable {var} is not set")]
    MissingEnv {
        /// The token's name.
        name: String,
        /// The variable.
        var: String,
    },
    /// A token is too short to be secret.
    #[error(
        "token `{name}` is shorter than {MIN_TOKEN_BYTES} bytes (`loupe certs token` makes one)"
    )]
    TooShort {
        /// The token's name.
        name: String,
    },
    /// A token allows nothing.
    #[error("token `{name}` has no rights")]
    NoRights {
        /// The token's name.
        name: String,
    },
    /// Certificate rights without mutual TLS.
    #[error("auth.certificates needs tls.client_ca (mutual TLS)")]
    CertificatesWithoutClientCa,
}

/// What a request needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need {
    /// Nothing (health).
    Open,
    /// Any valid credential.
    Authenticated,
    /// A credential with this right.
    Right(Right),
}

/// What a request path needs (gRPC paths are `/package.Service/Method`).
pub fn need(path: &str) -> Need {
    match path {
        "/health" => Need::Open,
        "/process" => Need::Right(Right::Process),
        "/loupe.v1.Processor/Process" | "/loupe.v1.Processor/ProcessStream" => {
            Need::Right(Right::Process)
        }
        "/inference.GRPCInferenceService/ServerLive"
        | "/inference.GRPCInferenceService/ServerReady" => Need::Open,
        "/inference.GRPCInferenceService/ModelInfer" => Need::Right(Right::Process),
        p if p.starts_with("/grpc.health.v1.Health/") => Need::Open,
        p if p.starts_with("/loupe.v1.Source/") => Need::Right(Right::Source),
        p if p.starts_with("/org.apache.nifi.processors.grpc.FlowFileService/") => {
            Need::Right(Right::Process)
        }
        _ => Need::Authenticated,
    }
}

/// Why a request was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Denied {
    /// No valid credential (401 / UNAUTHENTICATED).
    Unauthenticated(String),
    /// A valid credential without the right (403 / PERMISSION_DENIED).
    Forbidden(String),
}

struct Token {
    name: String,
    digest: [u8; 32],
    rights: BTreeSet<Right>,
}

/// Checks the credentials of every request on a port.
pub struct Authenticator {
    tokens: Vec<Token>,
    certificates: Vec<CertificateRights>,
    mutual_tls: bool,
}

impl std::fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<&str> = self.tokens.iter().map(|t| t.name.as_str()).collect();
        f.debug_struct("Authenticator")
            .field("tokens", &names)
            .field("certificates", &self.certificates)
            .field("mutual_tls", &self.mutual_tls)
            .finish()
    }
}

fn digest(token: &[u8]) -> [u8; 32] {
    Sha256::digest(token).into()
}

impl Authenticator {
    /// Anyone may call anything (no credentials configured).
    pub fn open() -> Self {
        Authenticator {
            tokens: Vec::new(),
            certificates: Vec::new(),
            mutual_tls: false,
        }
    }

    /// Reads the tokens (files relative to `base`); `mutual_tls` tells whether the listener
    /// verifies client certificates.
    pub fn load(settings: &AuthSettings, base: &Path, mutual_tls: bool) -> Result<Self, AuthError> {
        if !settings.certificates.is_empty() && !mutual_tls {
            return Err(AuthError::CertificatesWithoutClientCa);
        }
        let mut tokens = Vec::new();
        for t in &settings.tokens {
            let value = match (&t.file, &t.env) {
                (Some(file), None) => {
                    let path = base.join(file);
                    std::fs::read_to_string(&path).map_err(|source| AuthError::Read {
                        name: t.name.clone(),
                        path,
                        source,
                    })?
                }
                (None, Some(var)) => std::env::var(var).map_err(|_| AuthError::MissingEnv {
                    name: t.name.clone(),
                    var: var.clone(),
                })?,
                _ => {
                    return Err(AuthError::Source {
                        name: t.name.clone(),
                    });
                }
            };
            let value = value.trim();
            if value.len() < MIN_TOKEN_BYTES {
                return Err(AuthError::TooShort {
                    name: t.name.clone(),
                });
            }
            if t.rights.is_empty() {
                return Err(AuthError::NoRights {
                    name: t.name.clone(),
                });
            }
            tokens.push(Token {
                name: t.name.clone(),
                digest: digest(value.as_bytes()),
                rights: t.rights.iter().copied().collect(),
            });
        }
        Ok(Authenticator {
            tokens,
            certificates: settings.certificates.clone(),
            mutual_tls,
        })
    }

    /// True when callers must present a credential.
    pub fn requires_credentials(&self) -> bool {
        !self.tokens.is_empty() || self.mutual_tls
    }

    /// The token's holder and rights, comparing against every token in constant time.
    fn token(&self, presented: &[u8]) -> Option<(&str, &BTreeSet<Right>)> {
        let presented = digest(presented);
        let mut found = None;
        for t in &self.tokens {
            if bool::from(t.digest.ct_eq(&presented)) && found.is_none() {
                found = Some((t.name.as_str(), &t.rights));
            }
        }
        found
    }

    /// The rights of a verified client certificate with these subject names, or `None`
    /// when no rule names it.
    fn certificate(&self, subjects: &[String]) -> Option<BTreeSet<Right>> {
        if !self.mutual_tls || subjects.is_empty() {
            return None;
        }
        if self.certificates.is_empty() {
            return Some([Right::Process, Right::Source].into_iter().collect());
        }
        let mut rights = BTreeSet::new();
        let mut named = false;
        for rule in &self.certificates {
            if rule.subject == "*" || subjects.contains(&rule.subject) {
                named = true;
                rights.extend(rule.rights.iter().copied());
            }
        }
        named.then_some(rights)
    }

    /// Decides one request: its headers (a bearer token) and its connection (a client
    /// certificate). Returns the caller's name, when there is one.
    pub fn authorize(
        &self,
        need: Need,
        headers: &HeaderMap,
        peer: Option<&PeerInfo>,
    ) -> Result<Option<String>, Denied> {
        if need == Need::Open || !self.requires_credentials() {
            return Ok(None);
        }
        let mut rights = BTreeSet::new();
        let mut caller = None;
        if let Some(value) = headers.get(AUTHORIZATION) {
            let token = value
                .to_str()
                .ok()
                .and_then(|v| {
                    let (scheme, token) = v.trim().split_once(' ')?;
                    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
                })
                .ok_or_else(|| {
                    Denied::Unauthenticated("Authorization is not `Bearer TOKEN`".into())
                })?;
            let (name, token_rights) = self
                .token(token.as_bytes())
                .ok_or_else(|| Denied::Unauthenticated("unknown or revoked token".into()))?;
            rights.extend(token_rights.iter().copied());
            caller = Some(name.to_string());
        }
        if let Some(peer) = peer
            && let Some(cert_rights) = self.certificate(&peer.subjects)
        {
            rights.extend(cert_rights);
            caller.get_or_insert_with(|| peer.subjects.first().cloned().unwrap_or_default());
        }
        let Some(caller) = caller else {
            let wanted = if self.tokens.is_empty() {
                "a client certificate the node's CA signed and it accepts"
            } else if self.mutual_tls {
                "a bearer token or an accepted client certificate"
            } else {
                "a bearer token (Authorization: Bearer TOKEN)"
            };
            return Err(Denied::Unauthenticated(format!(
                "credentials required: {wanted}"
            )));
        };
        match need {
            Need::Right(right) if !rights.contains(&right) => Err(Denied::Forbidden(format!(
                "`{caller}` lacks the `{right}` right"
            ))),
            _ => Ok(Some(caller)),
        }
    }
}

impl Denied {
    /// The answer: a gRPC status for gRPC requests, else 401 / 403 with a text body.
    pub fn into_response(self, grpc: bool) -> Response {
        if grpc {
            let status = match self {
                Denied::Unauthenticated(m) => tonic::Status::unauthenticated(m),
                Denied::Forbidden(m) => tonic::Status::permission_denied(m),
            };
            return status.into_http::<Body>().into_response();
        }
        match self {
            Denied::Unauthenticated(m) => {
                let mut r = (StatusCode::UNAUTHORIZED, m).into_response();
                r.headers_mut().insert(
                    WWW_AUTHENTICATE,
                    HeaderValue::from_static("Bearer realm=\"loupe\""),
                );
                r
            }
            Denied::Forbidden(m) => (StatusCode::FORBIDDEN, m).into_response(),
        }
    }
}

/// The layer in front of a node's whole router.
pub(super) async fn guard(
    State(auth): State<Arc<Authenticator>>,
    request: Request,
    next: Next,
) -> Response {
    let need = need(request.uri().path());
    // A node's port (tonic) puts the connection's PeerInfo in the extensions; an
    // application served by `serve_app` (axum) wraps it in ConnectInfo.
    let peer = request.extensions().get::<PeerInfo>().or_else(|| {
        request
            .extensions()
            .get::<axum::extract::ConnectInfo<PeerInfo>>()
            .map(|c| &c.0)
    });
    match auth.authorize(need, request.headers(), peer) {
        Ok(_) => next.run(request).await,
        Err(denied) => {
            let remote = peer.and_then(|p| p.remote);
            tracing::info!(
                path = %request.uri().path(),
                remote = ?remote,
                reason = ?denied,
                "request refused"
            );
            let grpc = request
                .headers()
                .get(CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .is_some_and(|v| v.starts_with("application/grpc"));
            denied.into_response(grpc)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_token(token: &str, rights: Vec<Right>) -> Authenticator {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("t"), format!("{token}\n")).unwrap();
        let settings = AuthSettings {
            tokens: vec![TokenSettings {
                name: "runner".into(),
                file: Some("t".into()),
                env: None,
                rights,
            }],
            certificates: Vec::new(),
        };
        Authenticator::load(&settings, dir.path(), false).unwrap()
    }

    fn bearer(token: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(AUTHORIZATION, format!("Bearer {token}").parse().unwrap());
        h
    }

    #[test]
    fn methods_need_their_rights() {
        assert_eq!(need("/loupe.v1.Source/Ack"), Need::Right(Right::Source));
        assert_eq!(need("/loupe.v1.Source/Pull"), Need::Right(Right::Source));
        assert_eq!(
            need("/loupe.v1.Processor/Process"),
            Need::Right(Right::Process)
        );
        assert_eq!(need("/loupe.v1.Processor/Describe"), Need::Authenticated);
        assert_eq!(need("/grpc.health.v1.Health/Check"), Need::Open);
        assert_eq!(need("/anything/else"), Need::Authenticated);
    }

    #[test]
    fn tokens_are_checked_with_their_rights() {
        let auth = with_token("0123456789abcdef-secret", vec![Right::Process]);
        let process = Need::Right(Right::Process);
        let source = Need::Right(Right::Source);
        assert_eq!(
            auth.authorize(process, &bearer("0123456789abcdef-secret"), None),
            Ok(Some("runner".into()))
        );
        assert!(matches!(
            auth.authorize(source, &bearer("0123456789abcdef-secret"), None),
            Err(Denied::Forbidden(_))
        ));
        assert!(matches!(
            auth.authorize(process, &bearer("0123456789abcdef-secreT"), None),
            Err(Denied::Unauthenticated(_))
        ));
        assert!(matches!(
            auth.authorize(process, &HeaderMap::new(), None),
            Err(Denied::Unauthenticated(_))
        ));
        assert_eq!(
            auth.authorize(Need::Open, &HeaderMap::new(), None),
            Ok(None)
        );
    }

    #[test]
    fn short_or_missing_tokens_are_refused_at_start() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("t"), "short").unwrap();
        let token = |file: Option<&str>, env: Option<&str>| AuthSettings {
            tokens: vec![TokenSettings {
                name: "x".into(),
                file: file.map(Into::into),
                env: env.map(Into::into),
                rights: default_rights(),
            }],
            certificates: Vec::new(),
        };
        let load = |s: &AuthSettings| Authenticator::load(s, dir.path(), false);
        assert!(matches!(
            load(&token(Some("t"), None)),
            Err(AuthError::TooShort { .. })
        ));
        assert!(matches!(
            load(&token(None, None)),
            Err(AuthError::Source { .. })
        ));
        assert!(matches!(
            load(&token(None, Some("LOUPE_TEST_NO_SUCH_TOKEN_VAR"))),
            Err(AuthError::MissingEnv { .. })
        ));
        let certs = AuthSettings {
            certificates: vec![CertificateRights {
                subject: "*".into(),
                rights: default_rights(),
            }],
            ..AuthSettings::default()
        };
        assert!(matches!(
            load(&certs),
            Err(AuthError::CertificatesWithoutClientCa)
        ));
    }

    #[test]
    fn certificate_subjects_get_their_rules_rights() {
        let settings = AuthSettings {
            tokens: Vec::new(),
            certificates: vec![CertificateRights {
                subject: "nifi".into(),
                rights: vec![Right::Process],
            }],
        };
        let auth = Authenticator::load(&settings, Path::new("."), true).unwrap();
        let peer = |name: &str| PeerInfo {
            remote: None,
            tls: true,
            subjects: Arc::from(vec![name.to_string()]),
        };
        let h = HeaderMap::new();
        assert!(
            auth.authorize(Need::Right(Right::Process), &h, Some(&peer("nifi")))
                .is_ok()
        );
        assert!(matches!(
            auth.authorize(Need::Right(Right::Source), &h, Some(&peer("nifi"))),
            Err(Denied::Forbidden(_))
        ));
        assert!(matches!(
            auth.authorize(Need::Authenticated, &h, Some(&peer("other"))),
            Err(Denied::Unauthenticated(_))
        ));
    }
}
