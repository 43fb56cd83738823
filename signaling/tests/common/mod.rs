//! What the signaling integration tests share: an in-process server on port 0, join tokens,
//! and a WebSocket client that reads JSON messages the way an outside client would.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bedside::{Server, Settings};
use bedside_audit::AuditLog;
use bedside_token::{sign_hs256, Claims, Verifier};
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

pub(crate) const SECRET: &[u8] = b"test-secret-test-secret-test-secret!";
pub(crate) const ISSUER: &str = "test-scheduler";

pub(crate) type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

pub(crate) struct TestServer {
    pub(crate) http: SocketAddr,
    pub(crate) admin: SocketAddr,
    pub(crate) audit_path: std::path::PathBuf,
    _dir: tempfile::TempDir,
    _stop: tokio::sync::oneshot::Sender<()>,
}

pub(crate) async fn start() -> TestServer {
    start_with(|_| {}).await
}

pub(crate) async fn start_with(adjust: impl FnOnce(&mut Settings)) -> TestServer {
    let dir = tempfile::tempdir().unwrap();
    let audit_path = dir.path().join("audit.jsonl");
    let mut settings = Settings::loopback(
        Verifier::hs256(SECRET, Some(ISSUER), 5),
        AuditLog::open(&audit_path).unwrap(),
    );
    settings.join_timeout = Duration::from_secs(2);
    adjust(&mut settings);
    let http = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let admin = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addrs = (http.local_addr().unwrap(), admin.local_addr().unwrap());
    let server = Server::start(settings).unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(server.serve(http, admin, async {
        let _ = stopped.await;
    }));
    TestServer {
        http: addrs.0,
        admin: addrs.1,
        audit_path,
        _dir: dir,
        _stop: stop,
    }
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

pub(crate) fn claims(visit: &str, role: &str) -> Claims {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    Claims {
        iss: ISSUER.into(),
        sub: format!("sub-{role}-{n}"),
        visit: visit.into(),
        visit_type: None,
        role: role.into(),
        exp: now() + 600,
        nbf: None,
        jti: format!("jti-{n}"),
        name: Some("Sentinel Name".into()),
        reason: None,
        locale: None,
        fhir: None,
    }
}

pub(crate) fn token(visit: &str, role: &str) -> String {
    sign_hs256(SECRET, &claims(visit, role)).unwrap()
}

pub(crate) async fn connect(server: &TestServer) -> Ws {
    let (ws, _) = tokio_tungstenite::connect_async(format!("ws://{}/v1/signal", server.http))
        .await
        .unwrap();
    ws
}

pub(crate) async fn send(ws: &mut Ws, v: Value) {
    ws.send(Message::Text(v.to_string().into())).await.unwrap();
}

/// What the server sent next, as an outside client sees it.
#[derive(Debug)]
pub(crate) enum Next {
    Json(Value),
    /// A close frame, with its code if it had one.
    Closed(Option<u16>),
    /// The connection ended without a close frame (what a browser reports as 1006).
    Dropped,
}

/// The next JSON message or the end of the socket, within 5 s.
pub(crate) async fn next(ws: &mut Ws) -> Next {
    loop {
        let msg = tokio::time::timeout(Duration::from_secs(5), ws.next())
            .await
            .expect("the server answers within 5 s");
        match msg {
            Some(Ok(Message::Text(t))) => return Next::Json(serde_json::from_str(&t).unwrap()),
            Some(Ok(Message::Close(frame))) => {
                return Next::Closed(frame.map(|f: CloseFrame| u16::from(f.code)))
            }
            None | Some(Err(_)) => return Next::Dropped,
            Some(Ok(_)) => continue,
        }
    }
}

/// The next JSON message; `None` when the server closed the socket.
pub(crate) async fn recv(ws: &mut Ws) -> Option<Value> {
    match next(ws).await {
        Next::Json(v) => Some(v),
        Next::Closed(_) | Next::Dropped => None,
    }
}

/// The next message of type `kind`, skipping any other.
pub(crate) async fn recv_type(ws: &mut Ws, kind: &str) -> Value {
    loop {
        let msg = recv(ws)
            .await
            .unwrap_or_else(|| panic!("socket closed while waiting for {kind}"));
        if msg["type"] == kind {
            return msg;
        }
    }
}

/// The next `error`, skipping anything else; its code must be `code`.
pub(crate) async fn expect_error(ws: &mut Ws, code: &str) -> Value {
    let msg = recv_type(ws, "error").await;
    assert_eq!(msg["code"], code, "{msg}");
    assert!(msg["message"].as_str().is_some_and(|m| !m.is_empty()));
    msg
}

/// Skips JSON messages until the socket ends; returns the close code (`None`: no close frame).
pub(crate) async fn close_code(ws: &mut Ws) -> Option<u16> {
    loop {
        match next(ws).await {
            Next::Json(_) => continue,
            Next::Closed(code) => return code,
            Next::Dropped => return None,
        }
    }
}

pub(crate) async fn joined(server: &TestServer, visit: &str, role: &str) -> (Ws, Value) {
    join_with(server, &claims(visit, role)).await
}

pub(crate) async fn join_with(server: &TestServer, c: &Claims) -> (Ws, Value) {
    let mut ws = connect(server).await;
    let t = sign_hs256(SECRET, c).unwrap();
    send(&mut ws, json!({"type": "join", "v": 1, "token": t})).await;
    let msg = recv(&mut ws).await.unwrap();
    assert_eq!(msg["type"], "joined", "{msg}");
    (ws, msg)
}

/// A provider and an admitted patient in `visit`.
pub(crate) async fn provider_and_patient(server: &TestServer, visit: &str) -> (Ws, Ws) {
    let (mut doc, _) = joined(server, visit, "provider").await;
    let (mut pat, jp) = joined(server, visit, "patient").await;
    send(
        &mut doc,
        json!({"type": "admit", "participant": jp["participant"]}),
    )
    .await;
    recv_type(&mut pat, "admitted").await;
    recv_type(&mut doc, "participant_joined").await;
    (doc, pat)
}

/// A ping answered by a pong: the session is open and served.
pub(crate) async fn still_alive(ws: &mut Ws) {
    send(ws, json!({"type": "ping"})).await;
    recv_type(ws, "pong").await;
}

/// How long a ping takes to be answered.
pub(crate) async fn ping_time(ws: &mut Ws) -> Duration {
    let t = std::time::Instant::now();
    still_alive(ws).await;
    t.elapsed()
}

/// A real offer (from str0m acting as a client) sending audio and video.
pub(crate) fn client_offer() -> String {
    use str0m::media::{Direction, MediaKind};
    offer_with(&[
        (MediaKind::Audio, Direction::SendOnly),
        (MediaKind::Video, Direction::SendOnly),
    ])
}

/// A real offer with the given sections, in order.
pub(crate) fn offer_with(
    sections: &[(str0m::media::MediaKind, str0m::media::Direction)],
) -> String {
    let mut rtc = str0m::Rtc::new(std::time::Instant::now());
    let mut change = rtc.sdp_api();
    for (kind, dir) in sections {
        change.add_media(*kind, *dir, None, None, None);
    }
    change.apply().unwrap().0.to_sdp_string()
}

/// The `mid` of every m-line of `sdp`, in order.
pub(crate) fn mids(sdp: &str) -> Vec<String> {
    sdp.lines()
        .filter_map(|l| l.strip_prefix("a=mid:"))
        .map(|m| m.trim().to_owned())
        .collect()
}
