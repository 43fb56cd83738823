//! Signaling end to end against an in-process server on port 0: the join flow, presence, and
//! every kind of bad input of issue 2, each refused with its documented code while other
//! sessions carry on.

use std::net::SocketAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bedside::{Server, Settings};
use bedside_sfu::SfuConfig;
use bedside_token::{sign_hs256, Claims, Verifier};
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

const SECRET: &[u8] = b"test-secret-test-secret-test-secret!";
const ISSUER: &str = "test-scheduler";

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

struct TestServer {
    http: SocketAddr,
    admin: SocketAddr,
    _stop: tokio::sync::oneshot::Sender<()>,
}

async fn start() -> TestServer {
    let settings = Settings {
        verifier: Verifier::hs256(SECRET, Some(ISSUER), 5),
        join_timeout: Duration::from_secs(2),
        sfu: SfuConfig {
            bind: "127.0.0.1:0".parse().unwrap(),
            advertise: vec![],
        },
    };
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
        _stop: stop,
    }
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn claims(visit: &str, role: &str) -> Claims {
    Claims {
        iss: ISSUER.into(),
        sub: format!("sub-{role}"),
        visit: visit.into(),
        visit_type: None,
        role: role.into(),
        exp: now() + 600,
        nbf: None,
        jti: format!("jti-{}", rand_suffix()),
        name: Some("Sentinel Name".into()),
        reason: None,
    }
}

fn rand_suffix() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    N.fetch_add(1, Ordering::Relaxed)
}

fn token(visit: &str, role: &str) -> String {
    sign_hs256(SECRET, &claims(visit, role)).unwrap()
}

async fn connect(server: &TestServer) -> Ws {
    let (ws, _) = tokio_tungstenite::connect_async(format!("ws://{}/v1/signal", server.http))
        .await
        .unwrap();
    ws
}

async fn send(ws: &mut Ws, v: Value) {
    ws.send(Message::Text(v.to_string().into())).await.unwrap();
}

/// The next JSON message; `None` when the server closed the socket.
async fn recv(ws: &mut Ws) -> Option<Value> {
    loop {
        let msg = tokio::time::timeout(Duration::from_secs(5), ws.next())
            .await
            .expect("the server answers within 5 s");
        match msg {
            Some(Ok(Message::Text(t))) => return Some(serde_json::from_str(&t).unwrap()),
            Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return None,
            Some(Ok(_)) => continue,
        }
    }
}

async fn expect_error(ws: &mut Ws, code: &str) {
    let msg = recv(ws).await.expect("an error message");
    assert_eq!(msg["type"], "error", "{msg}");
    assert_eq!(msg["code"], code, "{msg}");
    assert!(msg["message"].as_str().is_some_and(|m| !m.is_empty()));
}

async fn expect_closed(ws: &mut Ws) {
    assert!(recv(ws).await.is_none(), "the server closes the socket");
}

async fn joined(server: &TestServer, visit: &str, role: &str) -> (Ws, Value) {
    let mut ws = connect(server).await;
    send(
        &mut ws,
        json!({"type": "join", "v": 1, "token": token(visit, role)}),
    )
    .await;
    let msg = recv(&mut ws).await.unwrap();
    assert_eq!(msg["type"], "joined", "{msg}");
    (ws, msg)
}

async fn still_alive(ws: &mut Ws) {
    send(ws, json!({"type": "ping"})).await;
    loop {
        let msg = recv(ws).await.expect("the session is still open");
        if msg["type"] == "pong" {
            return;
        }
    }
}

#[tokio::test]
async fn join_announces_participants_to_each_other_and_departures() {
    let server = start().await;
    let (mut a, ja) = joined(&server, "v1", "provider").await;
    assert_eq!(ja["participants"], json!([]));
    assert_eq!(ja["role"], "provider");
    let (mut b, jb) = joined(&server, "v1", "patient").await;
    assert_eq!(jb["participants"][0]["role"], "provider");
    assert_eq!(jb["participants"][0]["name"], "Sentinel Name");
    let msg = recv(&mut a).await.unwrap();
    assert_eq!(msg["type"], "participant_joined");
    assert_eq!(msg["participant"]["participant"], jb["participant"]);

    // Another visit hears nothing of v1.
    let (mut c, jc) = joined(&server, "v2", "patient").await;
    assert_eq!(jc["participants"], json!([]));

    send(&mut b, json!({"type": "leave"})).await;
    assert_eq!(recv(&mut b).await.unwrap()["type"], "left");
    let msg = recv(&mut a).await.unwrap();
    assert_eq!(msg["type"], "participant_left");
    assert_eq!(msg["participant"], jb["participant"]);
    still_alive(&mut c).await;
    // Only `pong` reached c: nothing of v1 leaked into v2.
}

#[tokio::test]
async fn bad_tokens_are_refused_with_clear_codes_and_the_socket_closes() {
    let server = start().await;
    let mut expired = claims("v", "patient");
    expired.exp = now() - 3600;
    let mut future = claims("v", "patient");
    future.nbf = Some(now() + 3600);
    let mut wrong_issuer = claims("v", "patient");
    wrong_issuer.iss = "somebody-else".into();
    let mut bad_role = claims("v", "patient");
    bad_role.role = "surgeon".into();
    let forged = sign_hs256(
        b"another-secret-another-secret-another",
        &claims("v", "patient"),
    )
    .unwrap();
    let good = token("v", "patient");
    let alg_none = format!(
        "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.{}.",
        good.split('.').nth(1).unwrap()
    );
    let cases = [
        (sign_hs256(SECRET, &expired).unwrap(), "token_expired"),
        (sign_hs256(SECRET, &future).unwrap(), "token_expired"),
        (sign_hs256(SECRET, &wrong_issuer).unwrap(), "invalid_token"),
        (sign_hs256(SECRET, &bad_role).unwrap(), "invalid_token"),
        (forged, "invalid_token"),
        (alg_none, "invalid_token"),
        ("not-a-jwt".to_string(), "invalid_token"),
    ];
    for (token, code) in cases {
        let mut ws = connect(&server).await;
        send(&mut ws, json!({"type": "join", "v": 1, "token": token})).await;
        expect_error(&mut ws, code).await;
        expect_closed(&mut ws).await;
    }
    let mut ws = connect(&server).await;
    send(&mut ws, json!({"type": "join", "v": 7, "token": good})).await;
    expect_error(&mut ws, "unsupported_version").await;
    expect_closed(&mut ws).await;
}

#[tokio::test]
async fn malformed_unknown_and_premature_messages_get_codes_without_closing() {
    let server = start().await;
    let mut ws = connect(&server).await;
    ws.send(Message::Text("{not json".into())).await.unwrap();
    expect_error(&mut ws, "invalid_message").await;
    send(&mut ws, json!({"type": "teleport"})).await;
    expect_error(&mut ws, "unknown_type").await;
    send(&mut ws, json!({"type": "offer", "sdp": "v=0"})).await;
    expect_error(&mut ws, "not_joined").await;
    ws.send(Message::Binary(vec![1, 2, 3].into()))
        .await
        .unwrap();
    expect_error(&mut ws, "invalid_message").await;
    send(&mut ws, json!({"type": "join", "v": 1})).await;
    expect_error(&mut ws, "invalid_message").await;
    // Still able to join after all that.
    send(
        &mut ws,
        json!({"type": "join", "v": 1, "token": token("v", "patient")}),
    )
    .await;
    assert_eq!(recv(&mut ws).await.unwrap()["type"], "joined");
    send(
        &mut ws,
        json!({"type": "join", "v": 1, "token": token("v", "patient")}),
    )
    .await;
    expect_error(&mut ws, "already_joined").await;
    send(&mut ws, json!({"type": "answer", "sdp": "v=0"})).await;
    expect_error(&mut ws, "negotiation_state").await;
    send(
        &mut ws,
        json!({"type": "candidate", "candidate": "candidate:1 1 udp 1 1.2.3.4 5 typ host"}),
    )
    .await;
    expect_error(&mut ws, "negotiation_state").await;
    still_alive(&mut ws).await;
}

#[tokio::test]
async fn oversized_messages_close_only_the_sender() {
    let server = start().await;
    let (mut victim, _) = joined(&server, "v", "provider").await;
    let (mut sender, _) = joined(&server, "v", "patient").await;
    let _ = recv(&mut victim).await; // participant_joined
    let big = json!({"type": "offer", "sdp": "x".repeat(70 * 1024)});
    send(&mut sender, big).await;
    expect_error(&mut sender, "message_too_large").await;
    expect_closed(&mut sender).await;
    // Before join too.
    let mut early = connect(&server).await;
    send(
        &mut early,
        json!({"type": "join", "v": 1, "token": "x".repeat(65 * 1024)}),
    )
    .await;
    expect_error(&mut early, "message_too_large").await;
    let msg = recv(&mut victim).await.unwrap();
    assert_eq!(msg["type"], "participant_left");
    still_alive(&mut victim).await;
}

#[tokio::test]
async fn invalid_sdp_and_candidates_are_refused_and_the_session_goes_on() {
    let server = start().await;
    let (mut ws, _) = joined(&server, "v", "patient").await;
    for sdp in [
        "",
        "v=0",
        "garbage\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\n",
        &"a=x\r\n".repeat(1000),
    ] {
        send(&mut ws, json!({"type": "offer", "sdp": sdp})).await;
        expect_error(&mut ws, "invalid_sdp").await;
    }
    still_alive(&mut ws).await;
}

#[tokio::test]
async fn a_silent_socket_times_out() {
    let server = start().await;
    let mut ws = connect(&server).await;
    expect_error(&mut ws, "timeout").await;
    expect_closed(&mut ws).await;
}

#[tokio::test]
async fn metrics_are_on_the_admin_listener_only() {
    let server = start().await;
    let mut ws = connect(&server).await;
    send(&mut ws, json!({"type": "teleport"})).await;
    expect_error(&mut ws, "unknown_type").await;
    let public = http_get(server.http, "/metrics").await;
    assert!(public.starts_with("HTTP/1.1 404"), "{public}");
    let admin = http_get(server.admin, "/metrics").await;
    assert!(admin.starts_with("HTTP/1.1 200"), "{admin}");
    assert!(admin.contains("bedside_signaling_errors_total{code=\"unknown_type\"} 1"));
    assert!(
        admin.contains("bedside_media_dropped_datagrams_total")
            || admin.contains("bedside_media_peers")
    );
    let health = http_get(server.http, "/healthz").await;
    assert!(health.starts_with("HTTP/1.1 200"));
    let join_page = http_get(server.http, "/join").await;
    assert!(join_page.contains("data-testid=\"join\""));
    assert!(join_page
        .to_ascii_lowercase()
        .contains("cache-control: no-store"));
}

async fn http_get(addr: SocketAddr, path: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).await.unwrap();
    out
}
