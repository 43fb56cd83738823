//! The public listeners' deadlines and caps against an in-process server on port 0, with real
//! sockets and limits of well under a second: slow and idle clients are disconnected, the
//! connection caps refuse the excess and let go when connections close, the TLS listener drops
//! a handshake that never finishes and keeps reloading its certificate, joined WebSocket
//! sessions are left alone, and shutdown still ends the listener promptly.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bedside::{Server, Settings};
use bedside_audit::AuditLog;
use bedside_token::{sign_hs256, Claims, Verifier};
use futures_util::{SinkExt, StreamExt};
use rustls::pki_types::{CertificateDer, ServerName};
use serde_json::{json, Value};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;

const SECRET: &[u8] = b"test-secret-test-secret-test-secret!";
const ISSUER: &str = "test-scheduler";

/// The limit a test is about; the others stay at [`LONG`] so only that one can fire.
const SHORT: Duration = Duration::from_millis(700);
const LONG: Duration = Duration::from_secs(10);

struct TestServer {
    http: SocketAddr,
    admin: SocketAddr,
    served: tokio::task::JoinHandle<std::io::Result<()>>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    _dir: tempfile::TempDir,
}

async fn start(adjust: impl FnOnce(&mut Settings, &std::path::Path)) -> TestServer {
    let dir = tempfile::tempdir().unwrap();
    let mut settings = Settings::loopback(
        Verifier::hs256(SECRET, Some(ISSUER), 5),
        AuditLog::open(&dir.path().join("audit.jsonl")).unwrap(),
    );
    settings.http.header_read_timeout = LONG;
    settings.http.idle_timeout = LONG;
    settings.http.tls_handshake_timeout = LONG;
    adjust(&mut settings, dir.path());
    let http = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let admin = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addrs = (http.local_addr().unwrap(), admin.local_addr().unwrap());
    let server = Server::start(settings).unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let served = tokio::spawn(server.serve(http, admin, async {
        let _ = stopped.await;
    }));
    TestServer {
        http: addrs.0,
        admin: addrs.1,
        served,
        stop: Some(stop),
        _dir: dir,
    }
}

/// Reads (and discards) until the server closes the connection; the time that took. Fails the
/// test if it stays open longer than `within`.
async fn closed_within<S: AsyncRead + Unpin>(s: &mut S, within: Duration) -> Duration {
    let begun = Instant::now();
    let mut buf = [0u8; 4096];
    loop {
        match tokio::time::timeout_at((begun + within).into(), s.read(&mut buf)).await {
            Err(_) => panic!("the connection is still open after {within:?}"),
            Ok(Ok(0) | Err(_)) => return begun.elapsed(),
            Ok(Ok(_)) => continue,
        }
    }
}

/// One keep-alive GET on an open connection: the status line and body, or the error if the
/// server closed it instead of answering.
async fn get<S: AsyncRead + AsyncWrite + Unpin>(s: &mut S, path: &str) -> std::io::Result<String> {
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n").as_bytes())
        .await?;
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let mut byte = [0u8; 1];
        if s.read(&mut byte).await? == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        head.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&head).to_string();
    let length: usize = head
        .lines()
        .find_map(|l| {
            let (name, value) = l.split_once(':')?;
            name.eq_ignore_ascii_case("content-length")
                .then(|| value.trim().parse().ok())?
        })
        .unwrap_or(0);
    let mut body = vec![0u8; length];
    s.read_exact(&mut body).await?;
    Ok(format!("{head}{}", String::from_utf8_lossy(&body)))
}

async fn healthy<S: AsyncRead + AsyncWrite + Unpin>(s: &mut S) {
    let res = tokio::time::timeout(Duration::from_secs(5), get(s, "/healthz"))
        .await
        .expect("an answer within 5 s")
        .expect("the connection answers");
    assert!(res.starts_with("HTTP/1.1 200"), "{res}");
    assert!(res.ends_with("ok\n"), "{res}");
}

/// The admin listener's value of one sample, e.g. `name{label="x"}`.
async fn metric(server: &TestServer, sample: &str) -> f64 {
    let mut s = TcpStream::connect(server.admin).await.unwrap();
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).await.unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix(sample)?.trim().parse().ok())
        .unwrap_or_else(|| panic!("{sample} not in /metrics"))
}

/// Tries `f` every 50 ms until it holds or `within` has passed.
async fn eventually<F: std::future::Future<Output = bool>>(within: Duration, f: impl Fn() -> F) {
    let begun = Instant::now();
    while !f().await {
        assert!(begun.elapsed() < within, "not within {within:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_half_sent_request_header_is_cut_off_after_the_header_timeout() {
    let server = start(|s, _| s.http.header_read_timeout = SHORT).await;
    let mut slow = TcpStream::connect(server.http).await.unwrap();
    slow.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        .await
        .unwrap();
    // Meanwhile a client that sends its request in time is answered.
    let mut quick = TcpStream::connect(server.http).await.unwrap();
    healthy(&mut quick).await;
    let took = closed_within(&mut slow, Duration::from_secs(5)).await;
    assert!(took >= SHORT - Duration::from_millis(100), "{took:?}");
    let timed_out = r#"bedside_http_connections_timed_out_total{phase="header"}"#;
    assert!(metric(&server, timed_out).await >= 1.0);
}

#[tokio::test]
async fn a_keep_alive_connection_waiting_for_its_next_request_is_bound_by_the_header_timeout() {
    // hyper starts the header timer as soon as a response is done, not at the first byte of
    // the next request; this holds it to that.
    let server = start(|s, _| s.http.header_read_timeout = SHORT).await;
    let mut c = TcpStream::connect(server.http).await.unwrap();
    healthy(&mut c).await;
    let took = closed_within(&mut c, Duration::from_secs(5)).await;
    assert!(took >= SHORT - Duration::from_millis(100), "{took:?}");
}

#[tokio::test]
async fn an_idle_keep_alive_connection_is_closed_after_the_idle_timeout() {
    let server = start(|s, _| s.http.idle_timeout = SHORT).await;
    let mut c = TcpStream::connect(server.http).await.unwrap();
    healthy(&mut c).await;
    // Requests inside the idle timeout keep the connection, longer than the timeout in all.
    for _ in 0..2 {
        tokio::time::sleep(SHORT / 2).await;
        healthy(&mut c).await;
    }
    let took = closed_within(&mut c, Duration::from_secs(3)).await;
    assert!(took >= SHORT - Duration::from_millis(100), "{took:?}");
    let timed_out = r#"bedside_http_connections_timed_out_total{phase="idle"}"#;
    assert_eq!(metric(&server, timed_out).await, 1.0);
    // A new connection is served as usual.
    healthy(&mut TcpStream::connect(server.http).await.unwrap()).await;
}

/// A connection from another loopback address (Linux answers on all of 127.0.0.0/8).
async fn connect_from(ip: &str, to: SocketAddr) -> TcpStream {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket
        .bind(SocketAddr::new(ip.parse().unwrap(), 0))
        .unwrap();
    socket.connect(to).await.unwrap()
}

#[tokio::test]
async fn the_per_address_cap_refuses_the_next_connection_until_one_closes() {
    let server = start(|s, _| s.http.max_connections_per_address = 3).await;
    let mut open = Vec::new();
    for _ in 0..3 {
        let mut c = TcpStream::connect(server.http).await.unwrap();
        healthy(&mut c).await;
        open.push(c);
    }
    let mut fourth = TcpStream::connect(server.http).await.unwrap();
    closed_within(&mut fourth, Duration::from_secs(2)).await;
    let refused = r#"bedside_http_connections_refused_total{reason="per_address"}"#;
    assert_eq!(metric(&server, refused).await, 1.0);
    assert_eq!(metric(&server, "bedside_http_connections").await, 3.0);
    // Another address has its own count, and the three open connections still work.
    healthy(&mut connect_from("127.0.0.2", server.http).await).await;
    for c in &mut open {
        healthy(c).await;
    }
    // Once one closes, a new connection from the first address is served again.
    drop(open.pop());
    eventually(Duration::from_secs(3), || async {
        let mut c = TcpStream::connect(server.http).await.unwrap();
        tokio::time::timeout(Duration::from_secs(2), get(&mut c, "/healthz"))
            .await
            .is_ok_and(|r| r.is_ok_and(|r| r.starts_with("HTTP/1.1 200")))
    })
    .await;
}

#[tokio::test]
async fn the_overall_cap_refuses_connections_beyond_it_from_any_address() {
    let server = start(|s, _| s.http.max_connections = 2).await;
    let mut a = TcpStream::connect(server.http).await.unwrap();
    let mut b = connect_from("127.0.0.2", server.http).await;
    healthy(&mut a).await;
    healthy(&mut b).await;
    let mut third = connect_from("127.0.0.3", server.http).await;
    closed_within(&mut third, Duration::from_secs(2)).await;
    let refused = r#"bedside_http_connections_refused_total{reason="total"}"#;
    assert_eq!(metric(&server, refused).await, 1.0);
    healthy(&mut a).await;
}

type Ws = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<TcpStream>>;

/// The next message of type `kind`, skipping others (the waiting-room `queue`); fails the
/// test if the session ends first.
async fn next_of_type(ws: &mut Ws, kind: &str) {
    loop {
        let msg = tokio::time::timeout(Duration::from_secs(5), ws.next())
            .await
            .expect("the server answers within 5 s");
        match msg {
            Some(Ok(Message::Text(t))) => {
                let msg: Value = serde_json::from_str(&t).unwrap();
                if msg["type"] == kind {
                    return;
                }
            }
            Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
            other => panic!("the session ended while waiting for {kind}: {other:?}"),
        }
    }
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

#[tokio::test]
async fn a_joined_session_quiet_for_longer_than_the_idle_timeout_stays_open() {
    let server = start(|s, _| {
        s.http.idle_timeout = SHORT;
        s.http.header_read_timeout = SHORT;
    })
    .await;
    let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{}/v1/signal", server.http))
        .await
        .unwrap();
    let claims = Claims {
        iss: ISSUER.into(),
        sub: "sub-provider".into(),
        visit: "quiet-visit".into(),
        visit_type: None,
        role: "provider".into(),
        exp: now() + 600,
        nbf: None,
        jti: "jti-quiet".into(),
        name: None,
        reason: None,
        locale: None,
        fhir: None,
    };
    let join = json!({"type": "join", "v": 1, "token": sign_hs256(SECRET, &claims).unwrap()});
    ws.send(Message::Text(join.to_string().into()))
        .await
        .unwrap();
    next_of_type(&mut ws, "joined").await;
    // Longer than both HTTP deadlines, with nothing sent either way.
    tokio::time::sleep(SHORT * 3).await;
    ws.send(Message::Text(json!({"type": "ping"}).to_string().into()))
        .await
        .unwrap();
    next_of_type(&mut ws, "pong").await;
    // The WebSocket still counts as an open connection of the public listener.
    assert_eq!(metric(&server, "bedside_http_connections").await, 1.0);
    let timed_out = r#"bedside_http_connections_timed_out_total{phase="idle"}"#;
    assert_eq!(metric(&server, timed_out).await, 0.0);
}

#[tokio::test]
async fn shutdown_stops_the_listener_and_closes_idle_connections_at_once() {
    let mut server = start(|_, _| {}).await;
    let mut idle = TcpStream::connect(server.http).await.unwrap();
    healthy(&mut idle).await;
    drop(server.stop.take());
    let took = closed_within(&mut idle, Duration::from_secs(2)).await;
    assert!(took < Duration::from_secs(2), "{took:?}");
    tokio::time::timeout(Duration::from_secs(2), &mut server.served)
        .await
        .expect("serve returns well inside the shutdown grace")
        .unwrap()
        .unwrap();
    assert!(TcpStream::connect(server.http).await.is_err());
}

/// A self-signed certificate for `localhost` named `name`, moved into `dir/cert.pem` in one
/// rename. Every certificate has the same key (`dir/key.pem`), so the pair on disk always
/// matches, whenever the watcher looks.
fn write_cert(dir: &std::path::Path, key: &rcgen::KeyPair, name: &str) -> CertificateDer<'static> {
    let mut params = rcgen::CertificateParams::new(vec!["localhost".to_string()]).unwrap();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, name);
    let cert = params.self_signed(key).unwrap();
    let next = dir.join("cert.pem.next");
    std::fs::write(&next, cert.pem()).unwrap();
    // Some file systems stamp files coarsely: make sure the watcher sees a newer file.
    let current = std::fs::metadata(dir.join("cert.pem")).and_then(|m| m.modified());
    if let Ok(current) = current {
        let file = std::fs::File::options().write(true).open(&next).unwrap();
        file.set_modified(current + Duration::from_secs(1)).unwrap();
    }
    std::fs::rename(&next, dir.join("cert.pem")).unwrap();
    cert.der().clone()
}

async fn start_tls(
    adjust: impl FnOnce(&mut Settings),
) -> (TestServer, rcgen::KeyPair, CertificateDer<'static>) {
    let key = rcgen::KeyPair::generate().unwrap();
    let mut first = None;
    let server = start(|s, dir| {
        std::fs::write(dir.join("key.pem"), key.serialize_pem()).unwrap();
        first = Some(write_cert(dir, &key, "bedside test A"));
        s.tls = Some(bedside::tls::TlsFiles {
            cert: dir.join("cert.pem"),
            key: dir.join("key.pem"),
        });
        adjust(s);
    })
    .await;
    (server, key, first.unwrap())
}

/// A TLS connection trusting `roots`, and the certificate the server presented.
async fn tls_connect(
    to: SocketAddr,
    roots: &[&CertificateDer<'static>],
) -> (
    tokio_rustls::client::TlsStream<TcpStream>,
    CertificateDer<'static>,
) {
    let mut store = rustls::RootCertStore::empty();
    for r in roots {
        store.add((*r).clone()).unwrap();
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(store)
    .with_no_client_auth();
    let tcp = TcpStream::connect(to).await.unwrap();
    let tls = tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .unwrap();
    let presented = tls.get_ref().1.peer_certificates().unwrap()[0].clone();
    (tls, presented)
}

#[tokio::test]
async fn a_tls_client_that_never_finishes_its_handshake_is_dropped() {
    let (server, _key, cert) = start_tls(|s| s.http.tls_handshake_timeout = SHORT).await;
    // A real client is served over HTTPS, with HSTS.
    let (mut tls, _) = tls_connect(server.http, &[&cert]).await;
    let res = get(&mut tls, "/healthz").await.unwrap();
    assert!(res.starts_with("HTTP/1.1 200"), "{res}");
    assert!(res
        .to_ascii_lowercase()
        .contains("strict-transport-security"));
    // One that sends the start of a ClientHello and then nothing is dropped.
    let mut stalled = TcpStream::connect(server.http).await.unwrap();
    stalled
        .write_all(&[0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00])
        .await
        .unwrap();
    let took = closed_within(&mut stalled, Duration::from_secs(5)).await;
    assert!(took >= SHORT - Duration::from_millis(100), "{took:?}");
    let timed_out = r#"bedside_http_connections_timed_out_total{phase="tls_handshake"}"#;
    assert_eq!(metric(&server, timed_out).await, 1.0);
}

#[tokio::test]
async fn a_replaced_certificate_is_served_to_new_handshakes_and_open_ones_go_on() {
    let (server, key, a) = start_tls(|_| {}).await;
    let (mut before, presented) = tls_connect(server.http, &[&a]).await;
    assert_eq!(presented, a);
    let b = write_cert(server._dir.path(), &key, "bedside test B");
    // The watcher looks at the files every 2 s.
    eventually(Duration::from_secs(6), || async {
        tls_connect(server.http, &[&a, &b]).await.1 == b
    })
    .await;
    healthy(&mut before).await;
}
