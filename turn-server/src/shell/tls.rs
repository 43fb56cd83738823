//! TLS server configuration with reload: on SIGHUP or when the certificate or key file changes,
//! new connections get the new certificate; a broken new file keeps the old one in service.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::SystemTime;

use rustls::ServerConfig;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::TlsAcceptor;

use crate::metrics::Metrics;

/// A certificate or key that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read certificate {0}: {1}")]
    Cert(PathBuf, String),
    #[error("cannot read private key {0}: {1}")]
    Key(PathBuf, String),
    #[error("certificate and key do not make a TLS configuration: {0}")]
    Config(String),
}

/// The current acceptor plus what is needed to rebuild it.
pub struct TlsState {
    cert: PathBuf,
    key: PathBuf,
    current: RwLock<(TlsAcceptor, Option<SystemTime>)>,
}

impl std::fmt::Debug for TlsState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TlsState")
    }
}

fn mtime(cert: &Path, key: &Path) -> Option<SystemTime> {
    let a = std::fs::metadata(cert).and_then(|m| m.modified()).ok()?;
    let b = std::fs::metadata(key).and_then(|m| m.modified()).ok()?;
    Some(a.max(b))
}

/// Build a rustls server config (TLS 1.2 and 1.3 only) from PEM files.
pub fn load(cert: &Path, key: &Path) -> Result<TlsAcceptor, TlsError> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .map_err(|e| TlsError::Cert(cert.into(), e.to_string()))?
        .collect::<Result<_, _>>()
        .map_err(|e| TlsError::Cert(cert.into(), e.to_string()))?;
    if certs.is_empty() {
        return Err(TlsError::Cert(cert.into(), "no certificate in file".into()));
    }
    let pkey =
        PrivateKeyDer::from_pem_file(key).map_err(|e| TlsError::Key(key.into(), e.to_string()))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| TlsError::Config(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(certs, pkey)
        .map_err(|e| TlsError::Config(e.to_string()))?;
    Ok(TlsAcceptor::from(Arc::new(config)))
}

impl TlsState {
    pub fn new(cert: PathBuf, key: PathBuf) -> Result<Self, TlsError> {
        let acceptor = load(&cert, &key)?;
        let m = mtime(&cert, &key);
        Ok(TlsState {
            cert,
            key,
            current: RwLock::new((acceptor, m)),
        })
    }

    pub fn acceptor(&self) -> TlsAcceptor {
        self.current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .0
            .clone()
    }

    /// Reload now (SIGHUP) or only if the files changed (`only_if_changed`).
    pub fn reload(&self, only_if_changed: bool, metrics: &Metrics) {
        let m = mtime(&self.cert, &self.key);
        if only_if_changed && m == self.current.read().unwrap_or_else(|e| e.into_inner()).1 {
            return;
        }
        match load(&self.cert, &self.key) {
            Ok(a) => {
                *self.current.write().unwrap_or_else(|e| e.into_inner()) = (a, m);
                metrics.tls_reloads.with_label_values(&["ok"]).inc();
                tracing::info!("TLS certificate reloaded");
            }
            Err(e) => {
                // Remember the mtime so a broken file is not retried every poll.
                self.current.write().unwrap_or_else(|e| e.into_inner()).1 = m;
                metrics.tls_reloads.with_label_values(&["error"]).inc();
                tracing::warn!(error = %e, "TLS reload failed; keeping the previous certificate");
            }
        }
    }
}
