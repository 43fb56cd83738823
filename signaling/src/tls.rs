//! HTTPS for `bedside serve`: the certificate and key come from PEM files and are reloaded
//! without a restart (on SIGHUP, or when either file changes), so certificate rotation never
//! drops a visit: open connections keep their session, new ones get the new certificate.

use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::ServerConfig;
use tracing::{info, warn};

/// Where the certificate chain and its key live.
#[derive(Debug, Clone)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// Why a certificate could not be loaded. Names the file, never key material.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("TLS certificate {0}: {1}")]
    Cert(PathBuf, String),
    #[error("TLS key {0}: {1}")]
    Key(PathBuf, String),
    #[error("TLS configuration: {0}")]
    Config(String),
}

/// Builds a rustls server config (TLS 1.2 and 1.3, HTTP/1.1 for WebSockets) from PEM files.
pub fn load(files: &TlsFiles) -> Result<Arc<ServerConfig>, TlsError> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&files.cert)
        .map_err(|e| TlsError::Cert(files.cert.clone(), e.to_string()))?
        .collect::<Result<_, _>>()
        .map_err(|e| TlsError::Cert(files.cert.clone(), e.to_string()))?;
    if certs.is_empty() {
        return Err(TlsError::Cert(
            files.cert.clone(),
            "no certificate in file".into(),
        ));
    }
    let key = PrivateKeyDer::from_pem_file(&files.key)
        .map_err(|e| TlsError::Key(files.key.clone(), e.to_string()))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| TlsError::Config(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| TlsError::Config(e.to_string()))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// The server config new handshakes use. [`watch`] replaces it; a connection keeps the config it
/// was accepted with, so a reload never touches running visits.
#[derive(Clone)]
pub struct LiveConfig(Arc<RwLock<Arc<ServerConfig>>>);

impl LiveConfig {
    pub fn new(config: Arc<ServerConfig>) -> Self {
        LiveConfig(Arc::new(RwLock::new(config)))
    }

    /// The config for the next handshake.
    pub fn current(&self) -> Arc<ServerConfig> {
        // A writer only swaps one Arc for another, so a poisoned lock still holds a whole config.
        self.0.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn replace(&self, config: Arc<ServerConfig>) {
        *self.0.write().unwrap_or_else(|e| e.into_inner()) = config;
    }
}

fn mtime(files: &TlsFiles) -> Option<SystemTime> {
    let a = std::fs::metadata(&files.cert)
        .and_then(|m| m.modified())
        .ok()?;
    let b = std::fs::metadata(&files.key)
        .and_then(|m| m.modified())
        .ok()?;
    Some(a.max(b))
}

/// Reloads the certificate on SIGHUP or when a file's modification time changes, until the
/// process ends. A bad new certificate is logged and the old one stays in use.
pub async fn watch(files: TlsFiles, live: LiveConfig) {
    let mut last = mtime(&files);
    #[cfg(unix)]
    let mut hup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok();
    let mut tick = tokio::time::interval(Duration::from_secs(2));
    loop {
        #[cfg(unix)]
        let forced = tokio::select! {
            _ = tick.tick() => false,
            Some(()) = async { match hup.as_mut() { Some(h) => h.recv().await, None => std::future::pending().await } } => true,
        };
        #[cfg(not(unix))]
        let forced = {
            tick.tick().await;
            false
        };
        let now = mtime(&files);
        if !forced && now == last {
            continue;
        }
        last = now;
        match load(&files) {
            Ok(config) => {
                live.replace(config);
                info!(forced, "TLS certificate reloaded");
            }
            Err(e) => warn!(error = %e, "TLS certificate reload failed; keeping the old one"),
        }
    }
}
