//! TLS for the agent's `wss://` connections (control and signaling): a rustls client config
//! built once at start-up with the ring provider (the one the signaling server's listener uses),
//! trusting the system's CA certificates plus, optionally, the PEM bundle named by `ca_file`
//! (a hospital-internal CA). Hostname verification is always on.

use std::path::Path;
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;
use rustls::{ClientConfig, RootCertStore};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::handshake::client::Response;
use tokio_tungstenite::{Connector, MaybeTlsStream, WebSocketStream};
use tracing::{info, warn};

use crate::RecorderError;

/// A WebSocket over TCP, with or without TLS.
pub(crate) type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// The client config for `wss://`: the system's CA certificates (as `rustls-native-certs`
/// finds them, honouring `SSL_CERT_FILE`/`SSL_CERT_DIR`) plus every certificate in `ca_file`.
/// An unreadable `ca_file`, one without certificates, or one with a certificate that is not a
/// usable trust anchor is an error naming the file.
pub fn client_config(ca_file: Option<&Path>) -> Result<Arc<ClientConfig>, RecorderError> {
    let mut roots = RootCertStore::empty();
    let native = rustls_native_certs::load_native_certs();
    if !native.errors.is_empty() {
        warn!(
            errors = native.errors.len(),
            "some system CA certificates could not be loaded"
        );
    }
    let (system, _unusable) = roots.add_parsable_certificates(native.certs);
    let mut extra = 0;
    if let Some(path) = ca_file {
        let bad = |why: String| RecorderError::CaFile {
            path: path.to_path_buf(),
            why,
        };
        let pem = std::fs::read(path).map_err(|e| bad(e.to_string()))?;
        for cert in ca_certificates(&pem).map_err(bad)? {
            roots
                .add(cert)
                .map_err(|e| bad(format!("a certificate is not a usable CA certificate: {e}")))?;
            extra += 1;
        }
    }
    if roots.is_empty() {
        warn!("no CA certificates to trust: wss:// connections will fail; set ca_file");
    }
    info!(system, ca_file = extra, "TLS trust anchors loaded");
    let config =
        ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .map_err(|e| RecorderError::Config(format!("TLS: {e}")))?
            .with_root_certificates(roots)
            .with_no_client_auth();
    Ok(Arc::new(config))
}

/// The certificates of a PEM bundle (other sections, such as keys, are skipped). Errors on a
/// malformed section or a bundle without any certificate.
fn ca_certificates(pem: &[u8]) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("not a valid PEM file: {e}"))?;
    if certs.is_empty() {
        return Err("no PEM certificate (BEGIN CERTIFICATE) in it".into());
    }
    Ok(certs)
}

/// Opens a WebSocket: `ws://` in plain TCP, `wss://` over TLS with `tls` (which must then be
/// set; without it the connection is refused rather than made with other trust settings).
pub(crate) async fn connect(
    request: impl IntoClientRequest + Unpin,
    tls: Option<&Arc<ClientConfig>>,
) -> Result<(Ws, Response), tokio_tungstenite::tungstenite::Error> {
    let request = request.into_client_request()?;
    if request.uri().scheme_str() == Some("wss") && tls.is_none() {
        return Err(tokio_tungstenite::tungstenite::Error::Url(
            tokio_tungstenite::tungstenite::error::UrlError::TlsFeatureNotEnabled,
        ));
    }
    let connector = tls.map(|config| Connector::Rustls(Arc::clone(config)));
    tokio_tungstenite::connect_async_tls_with_config(request, None, false, connector).await
}

/// A connection error for the log, with a hint when the server's certificate was refused.
pub(crate) fn describe(error: &tokio_tungstenite::tungstenite::Error) -> String {
    use tokio_tungstenite::tungstenite::Error;
    let rustls_error = match error {
        Error::Io(io) => io
            .get_ref()
            .and_then(|inner| inner.downcast_ref::<rustls::Error>()),
        _ => None,
    };
    match rustls_error {
        Some(e @ rustls::Error::InvalidCertificate(why)) => {
            let self_signed = if format!("{why:?}").contains("CaUsedAsEndEntity") {
                " (a CA certificate, e.g. a self-signed one, cannot be the server's own)"
            } else {
                ""
            };
            format!(
                "TLS: the server's certificate was refused: {e}{self_signed}; it must be issued \
                 by a CA in the system store or in ca_file, and name the URL's host"
            )
        }
        Some(other) => format!("TLS: {other}"),
        None => error.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // A self-signed P-256 CA certificate (CN=Bedside Test CA, CA:TRUE).
    const CA_PEM: &str = "-----BEGIN CERTIFICATE-----
MIIBiTCCAS+gAwIBAgIUUl7ZBiVaZxbi3tI/TozC2uqrATIwCgYIKoZIzj0EAwIw
GjEYMBYGA1UEAwwPQmVkc2lkZSBUZXN0IENBMB4XDTI2MTEyMjE1NDE1MFoXDTM2
MTExOTE1NDE1MFowGjEYMBYGA1UEAwwPQmVkc2lkZSBUZXN0IENBMFkwEwYHKoZI
zj0CAQYIKoZIzj0DAQcDQgAEp8uQdL8IjjXoeSn1nCHZbrtS/zPI4Nt5V9yiwncO
Z8zB0/cb+jj276DvGXwX0arfTi7KbGivh9TRqboh9Kv4VaNTMFEwHQYDVR0OBBYE
FHb/mPm2TWLOuOBqMH78j9rIStBrMB8GA1UdIwQYMBaAFHb/mPm2TWLOuOBqMH78
j9rIStBrMA8GA1UdEwEB/wQFMAMBAf8wCgYIKoZIzj0EAwIDSAAwRQIhAI27VzJf
3aF91pjVyWH6DFAG21DEw8zfNp5HBFCnnpW/AiANfF1K7rHqYn6v3BYgTkvS4f+k
Kit+0FqXeJfB+06UMw==
-----END CERTIFICATE-----
";

    #[test]
    fn a_bundle_needs_certificates() {
        assert!(ca_certificates(b"")
            .unwrap_err()
            .contains("no PEM certificate"));
        assert!(ca_certificates(b"just some text\n")
            .unwrap_err()
            .contains("no PEM certificate"));
        let key_only =
            b"-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEIA==\n-----END PRIVATE KEY-----\n";
        assert!(ca_certificates(key_only).is_err());
        let unterminated = b"-----BEGIN CERTIFICATE-----\nMIIB\n";
        assert!(ca_certificates(unterminated)
            .unwrap_err()
            .contains("not a valid PEM"));
    }

    #[test]
    fn pem_sections_are_found() {
        let two = format!("comment\n{CA_PEM}\n{CA_PEM}");
        assert_eq!(ca_certificates(two.as_bytes()).unwrap().len(), 2);
    }

    #[test]
    fn ca_file_is_trusted_or_refused_by_name() {
        let dir = tempfile::tempdir().unwrap();
        let good = dir.path().join("hospital-ca.pem");
        std::fs::write(&good, CA_PEM).unwrap();
        client_config(Some(&good)).unwrap();
        client_config(None).unwrap();

        let refused = |path: &Path, what: &str| {
            let err = client_config(Some(path)).unwrap_err().to_string();
            assert!(err.contains(&path.display().to_string()), "{err}");
            assert!(err.contains(what), "{err}");
        };
        refused(&dir.path().join("absent.pem"), "No such file");
        let text = dir.path().join("text.pem");
        std::fs::write(&text, "not a certificate\n").unwrap();
        refused(&text, "no PEM certificate");
        // Well-formed PEM whose content is not an X.509 certificate.
        let junk = dir.path().join("junk.pem");
        std::fs::write(
            &junk,
            "-----BEGIN CERTIFICATE-----\naGVsbG8gd29ybGQ=\n-----END CERTIFICATE-----\n",
        )
        .unwrap();
        refused(&junk, "not a usable CA certificate");
    }
}
