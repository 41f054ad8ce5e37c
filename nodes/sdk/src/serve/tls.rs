//! TLS for a listener: a rustls server configuration read from PEM files, mutual TLS when a
//! client CA is given, and reloading when the files change (certificate rotation without a
//! restart).
//!
//! The files are checked every [`TlsSettings::reload_interval`] (modification time and
//! size). A change that does not load (a half-written file, a key that does not match) keeps
//! the configuration in use and is logged once until the files load again; connections
//! already open keep the certificate they were made with.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock, Weak};
use std::time::{Duration, SystemTime};

use rustls::ServerConfig;
use rustls::server::WebPkiClientVerifier;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use serde::{Deserialize, Serialize};

use crate::episode::Episode;

/// TLS of one listener.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TlsSettings {
    /// PEM certificate chain of this listener, leaf first (`loupe certs issue` writes one).
    pub cert: PathBuf,
    /// PEM private key of `cert` (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
    /// PEM CA certificate(s): when set, every client must present a certificate signed by
    /// one of them (mutual TLS), and its subject is the caller's identity.
    #[serde(default)]
    pub client_ca: Option<PathBuf>,
    /// How often the files are checked for changes, e.g. `10s` (rotation without restart).
    #[serde(default = "default_reload_interval", with = "crate::config::duration")]
    #[schemars(with = "String")]
    pub reload_interval: Duration,
}

fn default_reload_interval() -> Duration {
    Duration::from_secs(10)
}

/// TLS files could not be used.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A file could not be read.
    #[error("cannot read {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A file holds no PEM certificate, or a malformed one.
    #[error("{}: no valid PEM certificate ({reason})", path.display())]
    Certificate {
        /// The file.
        path: PathBuf,
        /// What was wrong.
        reason: String,
    },
    /// A file holds no PEM private key, or a malformed one.
    #[error("{}: no valid PEM private key ({reason})", path.display())]
    Key {
        /// The file.
        path: PathBuf,
        /// What was wrong.
        reason: String,
    },
    /// The client CA cannot verify certificates.
    #[error("client CA {}: {source}", path.display())]
    ClientCa {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: rustls::server::VerifierBuilderError,
    },
    /// rustls refused the configuration (e.g. the key does not match the certificate).
    #[error("TLS configuration: {0}")]
    Rustls(#[from] rustls::Error),
}

/// The ring crypto provider, named explicitly so that no process-wide default is needed.
/// (ring rather than aws-lc-rs keeps the build free of cmake and a second C toolchain; tonic's
/// client TLS uses ring too.)
#[allow(deprecated)]
pub(crate) fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read {
        path: path.to_path_buf(),
        source,
    })
}

/// Every certificate of a PEM file (at least one).
pub(crate) fn certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let bytes = read(path)?;
    let certs = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError::Certificate {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
    if certs.is_empty() {
        return Err(TlsError::Certificate {
            path: path.to_path_buf(),
            reason: "the file holds no CERTIFICATE block".into(),
        });
    }
    Ok(certs)
}

/// The private key of a PEM file.
pub(crate) fn private_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    let bytes = read(path)?;
    PrivateKeyDer::from_pem_slice(&bytes).map_err(|e| TlsError::Key {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })
}

impl TlsSettings {
    /// These settings with relative paths resolved against `base`.
    pub fn resolved(&self, base: &Path) -> TlsSettings {
        TlsSettings {
            cert: base.join(&self.cert),
            key: base.join(&self.key),
            client_ca: self.client_ca.as_ref().map(|p| base.join(p)),
            reload_interval: self.reload_interval,
        }
    }

    /// True when clients must present a certificate (mutual TLS).
    pub fn mutual(&self) -> bool {
        self.client_ca.is_some()
    }

    /// Loads the files into a server configuration (ALPN `h2` and `http/1.1`).
    pub fn load(&self) -> Result<Arc<ServerConfig>, TlsError> {
        let chain = certificates(&self.cert)?;
        let key = private_key(&self.key)?;
        let builder = ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()?;
        let builder = match &self.client_ca {
            Some(ca) => {
                let mut roots = rustls::RootCertStore::empty();
                for cert in certificates(ca)? {
                    roots.add(cert)?;
                }
                let verifier =
                    WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider())
                        .build()
                        .map_err(|source| TlsError::ClientCa {
                            path: ca.clone(),
                            source,
                        })?;
                builder.with_client_cert_verifier(verifier)
            }
            None => builder.with_no_client_auth(),
        };
        let mut config = builder.with_single_cert(chain, key)?;
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(Arc::new(config))
    }

    /// What identifies the files' current versions: modification time and size of each.
    fn stamp(&self) -> Vec<Option<(SystemTime, u64)>> {
        let mut paths = vec![&self.cert, &self.key];
        paths.extend(self.client_ca.as_ref());
        paths
            .into_iter()
            .map(|p| {
                let m = std::fs::metadata(p).ok()?;
                Some((m.modified().ok()?, m.len()))
            })
            .collect()
    }
}

/// A server configuration that follows its files.
#[derive(Debug)]
pub struct ReloadingTls {
    settings: TlsSettings,
    current: RwLock<Arc<ServerConfig>>,
}

impl ReloadingTls {
    /// Loads the files once and starts watching them (the watch ends with the last
    /// reference to the returned value).
    pub fn start(settings: TlsSettings) -> Result<Arc<Self>, TlsError> {
        let config = settings.load()?;
        let tls = Arc::new(ReloadingTls {
            settings,
            current: RwLock::new(config),
        });
        if let Ok(handle) = tokio::runtime::Handle::try_current() {
            handle.spawn(watch(Arc::downgrade(&tls)));
        }
        Ok(tls)
    }

    /// The configuration for the next handshake.
    pub fn config(&self) -> Arc<ServerConfig> {
        self.current
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Reads the files again now; on success the next handshakes use them.
    pub fn reload(&self) -> Result<(), TlsError> {
        let config = self.settings.load()?;
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = config;
        Ok(())
    }
}

async fn watch(tls: Weak<ReloadingTls>) {
    let (interval, mut stamp) = match tls.upgrade() {
        Some(t) => (t.settings.reload_interval, t.settings.stamp()),
        None => return,
    };
    let episode = Episode::new("TLS certificate files");
    loop {
        tokio::time::sleep(interval.max(Duration::from_millis(100))).await;
        let Some(tls) = tls.upgrade() else { return };
        let now = tls.settings.stamp();
        if now == stamp {
            continue;
        }
        match tls.reload() {
            Ok(()) => {
                stamp = now;
                episode.succeeded();
                tracing::info!(cert = %tls.settings.cert.display(), "TLS certificate reloaded");
            }
            // The configuration in use stays; the next change of the files is tried again.
            Err(e) => {
                episode.failed(&e);
            }
        }
    }
}
