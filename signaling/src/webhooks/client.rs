//! The webhook HTTP client: one HTTP/1.1 POST per connection (hyper's client connection over
//! tokio, TLS through tokio-rustls with the server's own rustls and ring provider), with a
//! connect deadline and an overall one. Only the response status is read.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper_util::rt::TokioIo;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::net::TcpStream;

use super::config::Url;

/// A TLS client config trusting `ca_file`'s certificates, or the system's when none is given.
pub(crate) fn tls_config(
    ca_file: Option<&std::path::Path>,
) -> Result<Arc<rustls::ClientConfig>, String> {
    let mut roots = rustls::RootCertStore::empty();
    match ca_file {
        Some(path) => {
            let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
                .map_err(|e| format!("{}: {e}", path.display()))?
                .collect::<Result<_, _>>()
                .map_err(|e| format!("{}: {e}", path.display()))?;
            let (added, _) = roots.add_parsable_certificates(certs);
            if added == 0 {
                return Err(format!("{}: no usable CA certificate", path.display()));
            }
        }
        None => {
            let native = rustls_native_certs::load_native_certs();
            roots.add_parsable_certificates(native.certs);
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// Deadlines of one attempt.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Timeouts {
    pub(crate) connect: Duration,
    pub(crate) overall: Duration,
}

/// POSTs `body` to `url` with `headers`; the response status, or a short code saying what
/// failed (`connect`, `timeout`, `tls`, `http`). Codes, never addresses or bodies: they end up
/// in the store and the CLI's listing.
pub(crate) async fn post(
    url: &Url,
    tls: Option<&Arc<rustls::ClientConfig>>,
    headers: &[(&'static str, String)],
    body: Vec<u8>,
    timeouts: Timeouts,
) -> Result<u16, &'static str> {
    tokio::time::timeout(
        timeouts.overall,
        attempt(url, tls, headers, body, timeouts.connect),
    )
    .await
    .unwrap_or(Err("timeout"))
}

async fn attempt(
    url: &Url,
    tls: Option<&Arc<rustls::ClientConfig>>,
    headers: &[(&'static str, String)],
    body: Vec<u8>,
    connect: Duration,
) -> Result<u16, &'static str> {
    let tcp = tokio::time::timeout(connect, TcpStream::connect((url.host.as_str(), url.port)))
        .await
        .map_err(|_| "connect_timeout")?
        .map_err(|_| "connect")?;
    let _ = tcp.set_nodelay(true);
    match (url.https, tls) {
        (true, Some(config)) => {
            let name = ServerName::try_from(url.host.clone()).map_err(|_| "tls")?;
            let stream = tokio::time::timeout(
                connect,
                tokio_rustls::TlsConnector::from(config.clone()).connect(name, tcp),
            )
            .await
            .map_err(|_| "connect_timeout")?
            .map_err(|_| "tls")?;
            send(TokioIo::new(stream), url, headers, body).await
        }
        (true, None) => Err("tls"),
        (false, _) => send(TokioIo::new(tcp), url, headers, body).await,
    }
}

async fn send<IO>(
    io: IO,
    url: &Url,
    headers: &[(&'static str, String)],
    body: Vec<u8>,
) -> Result<u16, &'static str>
where
    IO: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let (mut sender, conn) = hyper::client::conn::http1::handshake::<_, Full<Bytes>>(io)
        .await
        .map_err(|_| "http")?;
    let conn = tokio::spawn(conn);
    let mut req = hyper::Request::post(url.path.as_str())
        .header(hyper::header::HOST, url.authority.as_str())
        .header(hyper::header::CONTENT_TYPE, "application/json")
        .header(
            hyper::header::USER_AGENT,
            concat!("bedside/", env!("CARGO_PKG_VERSION")),
        )
        .header(hyper::header::CONNECTION, "close");
    for (name, value) in headers {
        req = req.header(*name, value.as_str());
    }
    let req = req.body(Full::new(Bytes::from(body))).map_err(|_| "http")?;
    let result = sender.send_request(req).await;
    conn.abort();
    result.map(|res| res.status().as_u16()).map_err(|_| "http")
}
