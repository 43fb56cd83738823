//! Signaling end to end against an in-process server on port 0: the join flow, presence, and
//! every kind of bad input, each refused with its documented code while other
//! sessions carry on.

use std::net::SocketAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bedside::{Server, Settings};
use bedside_audit::AuditLog;
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
    audit_path: std::path::PathBuf,
    _dir: tempfile::TempDir,
    _stop: tokio::sync::oneshot::Sender<()>,
}

async fn start() -> TestServer {
    start_with(|_| {}).await
}

async fn start_with(adjust: impl FnOnce(&mut Settings)) -> TestServer {
    let dir = tempfile::tempdir().unwrap();
    let audit_path = dir.path().join("audit.jsonl");
    let mut settings = Settings::loopback(
        Verifier::hs256(SECRET, Some(ISSUER), 5),
        AuditLog::open(&audit_path).unwrap(),
    );
    settings.join_timeout = Duration::from_secs(2);
    settings.turn = Some(bedside::turn::TurnSettings {
        urls: vec!["turn:127.0.0.1:3478?transport=udp".into()],
        secret: b"turn-secret-for-tests".to_vec(),
        ttl: Duration::from_secs(3600),
    });
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
        locale: None,
        fhir: None,
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

/// The next message of type `kind`, skipping waiting-room updates (`queue`, `waiting`) and
/// presence that a test does not look at.
async fn recv_type(ws: &mut Ws, kind: &str) -> Value {
    loop {
        let msg = recv(ws)
            .await
            .unwrap_or_else(|| panic!("socket closed while waiting for {kind}"));
        if msg["type"] == kind {
            return msg;
        }
        assert!(
            [
                "queue",
                "waiting",
                "participant_updated",
                "participant_joined",
                "participant_left"
            ]
            .contains(&msg["type"].as_str().unwrap()),
            "expected {kind}, got {msg}"
        );
    }
}

async fn expect_error(ws: &mut Ws, code: &str) {
    let msg = recv_type(ws, "error").await;
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
    // Fresh TURN REST credentials with the session's opaque id, never the token's sub.
    let ice = &ja["ice_servers"][0];
    assert_eq!(ice["urls"][0], "turn:127.0.0.1:3478?transport=udp");
    let user = ice["username"].as_str().unwrap();
    assert!(
        user.ends_with(&format!(":p{}", ja["participant"])),
        "{user}"
    );
    assert_eq!(
        ice["credential"].as_str().unwrap(),
        bedside::turn::password(b"turn-secret-for-tests", user)
    );
    assert_eq!(ja["role"], "provider");
    let (mut b, jb) = joined(&server, "v1", "chaperone").await;
    assert_eq!(jb["participants"][0]["role"], "provider");
    assert_eq!(jb["participants"][0]["name"], "Sentinel Name");
    let msg = recv_type(&mut a, "participant_joined").await;
    assert_eq!(msg["participant"]["participant"], jb["participant"]);

    // Another visit hears nothing of v1.
    let (mut c, jc) = joined(&server, "v2", "chaperone").await;
    assert_eq!(jc["participants"], json!([]));

    send(&mut b, json!({"type": "leave"})).await;
    recv_type(&mut b, "left").await;
    let msg = recv_type(&mut a, "participant_left").await;
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
    send(
        &mut ws,
        json!({"type": "join", "v": 1, "token": good, "visit": "another-visit"}),
    )
    .await;
    expect_error(&mut ws, "invalid_token").await;
    expect_closed(&mut ws).await;
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
        json!({"type": "join", "v": 1, "token": token("v", "provider")}),
    )
    .await;
    assert_eq!(recv(&mut ws).await.unwrap()["type"], "joined");
    assert_eq!(recv(&mut ws).await.unwrap()["type"], "queue");
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
    let (mut sender, _) = joined(&server, "v", "chaperone").await;
    recv_type(&mut victim, "participant_joined").await;
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
    recv_type(&mut victim, "participant_left").await;
    still_alive(&mut victim).await;
}

#[tokio::test]
async fn invalid_sdp_and_candidates_are_refused_and_the_session_goes_on() {
    let server = start().await;
    let (mut ws, _) = joined(&server, "v", "provider").await;
    assert_eq!(recv(&mut ws).await.unwrap()["type"], "queue");
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

fn claims_with(visit: &str, role: &str, visit_type: &str, name: &str, reason: &str) -> Claims {
    let mut c = claims(visit, role);
    c.visit_type = Some(visit_type.into());
    c.name = Some(name.into());
    c.reason = Some(reason.into());
    c
}

async fn join_with(server: &TestServer, c: &Claims) -> (Ws, Value) {
    let mut ws = connect(server).await;
    let t = sign_hs256(SECRET, c).unwrap();
    send(&mut ws, json!({"type": "join", "v": 1, "token": t})).await;
    let msg = recv(&mut ws).await.unwrap();
    assert_eq!(msg["type"], "joined", "{msg}");
    (ws, msg)
}

/// A real offer (from str0m acting as a client) sending audio and video.
fn client_offer() -> String {
    use str0m::media::{Direction, MediaKind};
    let mut rtc = str0m::Rtc::new(std::time::Instant::now());
    let mut change = rtc.sdp_api();
    change.add_media(MediaKind::Audio, Direction::SendOnly, None, None, None);
    change.add_media(MediaKind::Video, Direction::SendOnly, None, None, None);
    change.apply().unwrap().0.to_sdp_string()
}

#[tokio::test]
async fn patients_wait_until_the_provider_admits_them() {
    let server = start().await;
    let (mut doc, _) = joined(&server, "clinic", "provider").await;
    assert_eq!(recv_type(&mut doc, "queue").await["entries"], json!([]));

    let sentinel = claims_with(
        "clinic",
        "patient",
        "consult",
        "Zed Sentinel",
        "Sentinel reason",
    );
    let (mut pat, jp) = join_with(&server, &sentinel).await;
    assert_eq!(jp["state"], "waiting");
    // No relay credentials for a knock on the door: they come with admission.
    assert_eq!(jp["ice_servers"], json!([]), "{jp}");
    assert_eq!(
        jp["participants"],
        json!([]),
        "a waiting patient sees nobody"
    );
    let w = recv_type(&mut pat, "waiting").await;
    assert_eq!(w["position"], 1);

    // The provider sees the entry with name and reason, live.
    let q = recv_type(&mut doc, "queue").await;
    let entry = &q["entries"][0];
    assert_eq!(entry["participant"], jp["participant"]);
    assert_eq!(entry["name"], "Zed Sentinel");
    assert_eq!(entry["reason"], "Sentinel reason");
    assert!(entry["waited_ms"].as_u64().is_some());

    // Waiting patients may neither start media nor run the visit.
    send(&mut pat, json!({"type": "offer", "sdp": client_offer()})).await;
    expect_error(&mut pat, "not_admitted").await;
    for cmd in [
        json!({"type": "admit", "participant": jp["participant"]}),
        json!({"type": "admit_all"}),
        json!({"type": "deny", "participant": jp["participant"]}),
        json!({"type": "end_visit"}),
    ] {
        send(&mut pat, cmd).await;
        expect_error(&mut pat, "forbidden").await;
    }

    send(
        &mut doc,
        json!({"type": "notify_waiting", "text": "running 10 minutes late"}),
    )
    .await;
    let w = recv_type(&mut pat, "waiting").await;
    assert_eq!(w["message"], "running 10 minutes late");

    send(
        &mut doc,
        json!({"type": "admit", "participant": jp["participant"]}),
    )
    .await;
    let a = recv_type(&mut pat, "admitted").await;
    assert_eq!(a["participants"][0]["role"], "provider");
    let ice = &a["ice_servers"][0];
    let user = ice["username"]
        .as_str()
        .expect("TURN credentials on admission");
    assert!(
        user.ends_with(&format!(":p{}", jp["participant"])),
        "{user}"
    );
    assert_eq!(
        ice["credential"].as_str().unwrap(),
        bedside::turn::password(b"turn-secret-for-tests", user)
    );
    let pj = recv_type(&mut doc, "participant_joined").await;
    assert_eq!(pj["participant"]["participant"], jp["participant"]);

    // Admitted: media may start now.
    send(&mut pat, json!({"type": "offer", "sdp": client_offer()})).await;
    assert!(recv_type(&mut pat, "answer").await["sdp"]
        .as_str()
        .unwrap()
        .starts_with("v=0"));

    // The audit log has the story, chained, without the name or reason.
    drop(pat);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let report = bedside_audit::verify(&server.audit_path).unwrap();
    assert!(report.entries >= 3);
    let text = std::fs::read_to_string(&server.audit_path).unwrap();
    for kind in ["\"join\"", "\"admit\"", "\"refuse\"", "\"depart\""] {
        assert!(text.contains(kind), "audit lacks {kind}: {text}");
    }
    assert!(!text.contains("Sentinel"), "PHI in the audit log");
}

#[tokio::test]
async fn a_denied_patient_sees_the_reason_and_an_ended_visit_stays_ended() {
    let server = start().await;
    let (mut doc, _) = joined(&server, "v", "provider").await;
    let (mut pat, jp) = joined(&server, "v", "patient").await;
    recv_type(&mut doc, "queue").await;
    send(
        &mut doc,
        json!({"type": "deny", "participant": jp["participant"], "reason": "please call the front desk"}),
    )
    .await;
    let msg = recv_type(&mut pat, "error").await;
    assert_eq!(msg["code"], "denied");
    assert_eq!(msg["message"], "please call the front desk");
    expect_closed(&mut pat).await;
    send(
        &mut doc,
        json!({"type": "admit", "participant": jp["participant"]}),
    )
    .await;
    let msg = recv_type(&mut doc, "error").await;
    assert_eq!(msg["code"], "unknown_participant");

    // Knocking again at once with a token for the same person is refused (a cool-down).
    let mut again = connect(&server).await;
    let same_person = claims_with("v", "patient", "consult", "P", "R");
    send(
        &mut again,
        json!({"type": "join", "v": 1, "token": sign_hs256(SECRET, &same_person).unwrap()}),
    )
    .await;
    let msg = recv_type(&mut again, "error").await;
    assert_eq!(msg["code"], "denied");
    assert!(msg["message"].as_str().unwrap().contains("few minutes"));
    expect_closed(&mut again).await;
    let text = std::fs::read_to_string(&server.audit_path).unwrap();
    assert!(text.contains("deny_cooldown"), "the refusal is audited");

    let (mut nurse, _) = joined(&server, "v", "chaperone").await;
    send(&mut doc, json!({"type": "end_visit"})).await;
    for ws in [&mut doc, &mut nurse] {
        let msg = recv_type(ws, "error").await;
        assert_eq!(msg["code"], "visit_ended");
        expect_closed(ws).await;
    }
    let mut late = connect(&server).await;
    send(
        &mut late,
        json!({"type": "join", "v": 1, "token": token("v", "provider")}),
    )
    .await;
    expect_error(&mut late, "visit_ended").await;
    expect_closed(&mut late).await;
}

#[tokio::test]
async fn a_token_holds_one_live_session_and_a_reload_skips_the_queue() {
    let server = start().await;
    let (mut doc, _) = joined(&server, "v", "provider").await;
    let c = claims_with("v", "patient", "consult", "P", "R");
    let (mut first, j1) = join_with(&server, &c).await;
    send(
        &mut doc,
        json!({"type": "admit", "participant": j1["participant"]}),
    )
    .await;
    recv_type(&mut first, "admitted").await;
    // The same token again (a reload): the old session is replaced, the new one is admitted.
    let (_second, j2) = join_with(&server, &c).await;
    assert_eq!(j2["state"], "admitted");
    assert_ne!(j2["participant"], j1["participant"]);
    let msg = recv_type(&mut first, "error").await;
    assert_eq!(msg["code"], "session_replaced");
}

#[tokio::test]
async fn a_burst_of_joins_is_rate_limited_without_disturbing_others() {
    let server = start_with(|s| s.join_rate = (0.5, 3)).await;
    let mut codes = Vec::new();
    for _ in 0..8 {
        let mut ws = connect(&server).await;
        send(&mut ws, json!({"type": "join", "v": 1, "token": "forged"})).await;
        let msg = recv(&mut ws).await.unwrap();
        codes.push(msg["code"].as_str().unwrap().to_owned());
    }
    assert_eq!(
        codes.iter().filter(|c| *c == "invalid_token").count(),
        3,
        "{codes:?}"
    );
    assert_eq!(
        codes.iter().filter(|c| *c == "rate_limited").count(),
        5,
        "{codes:?}"
    );
    let text = std::fs::read_to_string(&server.audit_path).unwrap();
    assert_eq!(text.matches("rate_limited").count(), 5);
    assert!(!text.contains("forged"), "tokens never reach the audit log");
}

#[tokio::test]
async fn a_source_the_role_may_not_publish_is_refused() {
    let server = start().await;
    let (mut doc, _) = joined(&server, "v", "provider").await;
    let (mut pat, jp) = joined(&server, "v", "patient").await;
    send(
        &mut doc,
        json!({"type": "admit", "participant": jp["participant"]}),
    )
    .await;
    recv_type(&mut pat, "admitted").await;
    let offer = client_offer();
    let video_mid = offer
        .split("m=video")
        .nth(1)
        .and_then(|s| s.lines().find_map(|l| l.strip_prefix("a=mid:")))
        .unwrap()
        .trim()
        .to_string();
    send(
        &mut pat,
        json!({"type": "offer", "sdp": offer, "sources": {video_mid.clone(): "screen"}}),
    )
    .await;
    expect_error(&mut pat, "publish_not_allowed").await;
    // The provider may share a screen.
    send(
        &mut doc,
        json!({"type": "offer", "sdp": offer, "sources": {video_mid: "screen"}}),
    )
    .await;
    recv_type(&mut doc, "answer").await;
    still_alive(&mut pat).await;
}

#[tokio::test]
async fn show_video_in_a_group_visit_is_announced() {
    let server = start().await;
    let (mut doc, _) = join_with(&server, &claims_with("g", "provider", "group", "D", "")).await;
    let (mut pat, jp) = join_with(&server, &claims_with("g", "patient", "group", "P", "")).await;
    assert_eq!(jp["visit_type"], "group");
    send(
        &mut doc,
        json!({"type": "admit", "participant": jp["participant"]}),
    )
    .await;
    let admitted = recv_type(&mut pat, "admitted").await;
    assert_eq!(admitted["participants"][0]["shown"], false);
    send(&mut pat, json!({"type": "show_video", "show": true})).await;
    loop {
        let msg = recv(&mut doc).await.unwrap();
        if msg["type"] == "participant_updated" {
            assert_eq!(msg["participant"]["participant"], jp["participant"]);
            assert_eq!(msg["participant"]["shown"], true);
            break;
        }
    }
}

#[tokio::test]
async fn hs256_is_refused_where_a_public_key_is_configured() {
    let key = bedside_token::PublicKey {
        kid: Some("k1".into()),
        algorithm: bedside_token::PublicAlgorithm::Rs256,
        pem: include_bytes!("../../crates/token/tests/keys/test-only-rs256-public.pem").to_vec(),
    };
    let server = start_with(|s| {
        s.verifier = Verifier::new(None, &[key], Some(ISSUER), 5).unwrap();
    })
    .await;
    let mut ws = connect(&server).await;
    send(
        &mut ws,
        json!({"type": "join", "v": 1, "token": token("v", "provider")}),
    )
    .await;
    expect_error(&mut ws, "invalid_token").await;
    expect_closed(&mut ws).await;
    let rs = bedside_token::sign_with_pem(
        bedside_token::PublicAlgorithm::Rs256,
        Some("k1"),
        include_bytes!("../../crates/token/tests/keys/test-only-rs256-private.pem"),
        &claims("v", "provider"),
    )
    .unwrap();
    let mut ws = connect(&server).await;
    send(&mut ws, json!({"type": "join", "v": 1, "token": rs})).await;
    assert_eq!(recv(&mut ws).await.unwrap()["type"], "joined");
}

const RECORDER_SECRET: &str = "recorder-secret-recorder-secret-0123456789";

async fn start_recording_server() -> TestServer {
    start_with(|s| {
        s.recording = Some(bedside::RecordingSettings {
            consent: bedside::ConsentText {
                version: "t-7".into(),
                text: "May we record?".into(),
            },
            recorder_secret: RECORDER_SECRET.as_bytes().to_vec(),
        })
    })
    .await
}

/// A recorder agent's control socket, authenticated with `secret`.
async fn recorder_agent(server: &TestServer, secret: &str) -> Result<Ws, u16> {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let mut req = format!("ws://{}/v1/recorder", server.http)
        .into_client_request()
        .unwrap();
    req.headers_mut()
        .insert("authorization", format!("Bearer {secret}").parse().unwrap());
    match tokio_tungstenite::connect_async(req).await {
        Ok((ws, _)) => Ok(ws),
        Err(tokio_tungstenite::tungstenite::Error::Http(res)) => Err(res.status().as_u16()),
        Err(e) => panic!("unexpected error: {e}"),
    }
}

#[tokio::test]
async fn recording_is_refused_where_disabled_and_to_roles_that_may_not_record() {
    // Disabled (the default): the control endpoint does not exist and providers are told.
    let off = start().await;
    assert_eq!(recorder_agent(&off, RECORDER_SECRET).await.err(), Some(404));
    let (mut doc, j) = joined(&off, "rec-off", "provider").await;
    assert_eq!(j["recording_enabled"], false);
    send(&mut doc, json!({"type": "record_start"})).await;
    expect_error(&mut doc, "recording_disabled").await;
    still_alive(&mut doc).await;

    let server = start_recording_server().await;
    assert_eq!(
        recorder_agent(&server, "not-the-recorder-secret-at-all-0123456789")
            .await
            .err(),
        Some(401),
        "a wrong recorder secret is refused"
    );
    let (mut doc, j) = joined(&server, "rec-on", "provider").await;
    assert_eq!(j["recording_enabled"], true);
    // No recorder agent connected: a clear error, nothing starts.
    send(&mut doc, json!({"type": "record_start"})).await;
    expect_error(&mut doc, "recording_unavailable").await;

    // A signed token may not carry the recorder role, and a made-up ticket is refused.
    for t in [
        token("rec-on", "recorder"),
        "rec_00112233445566778899aabbccddeeff".to_owned(),
    ] {
        let mut ws = connect(&server).await;
        send(&mut ws, json!({"type": "join", "v": 1, "token": t})).await;
        expect_error(&mut ws, "invalid_token").await;
        expect_closed(&mut ws).await;
    }

    // An admitted caregiver may not start or stop recording, nor answer a question not asked.
    let (mut care, _) = joined(&server, "rec-on", "caregiver").await;
    let queue = recv_type(&mut doc, "queue").await;
    let id = queue["entries"][0]["participant"].clone();
    send(&mut doc, json!({"type": "admit", "participant": id})).await;
    recv_type(&mut care, "admitted").await;
    send(&mut care, json!({"type": "record_start"})).await;
    expect_error(&mut care, "forbidden").await;
    send(&mut care, json!({"type": "record_stop"})).await;
    expect_error(&mut care, "forbidden").await;
    send(
        &mut care,
        json!({"type": "consent_accept", "text_version": "t-7"}),
    )
    .await;
    expect_error(&mut care, "consent_mismatch").await;
    send(&mut care, json!({"type": "consent_accept"})).await;
    expect_error(&mut care, "invalid_message").await;
    still_alive(&mut care).await;
    let audit = std::fs::read_to_string(&server.audit_path).unwrap();
    assert!(audit.contains("\"code\":\"forbidden\""), "{audit}");
}

#[tokio::test]
async fn a_recorder_agent_gets_a_single_use_ticket_and_joins_as_the_recorder() {
    let server = start_recording_server().await;
    let mut agent = recorder_agent(&server, RECORDER_SECRET).await.unwrap();
    let (mut doc, _) = joined(&server, "rec-visit", "provider").await;
    recv_type(&mut doc, "queue").await;
    send(&mut doc, json!({"type": "record_start"})).await;
    let ask = recv_type_any(&mut doc, "consent_request").await;
    assert_eq!(ask["text_version"], "t-7");
    assert_eq!(ask["text"], "May we record?");

    let job = recv(&mut agent).await.expect("the agent is sent a job");
    assert_eq!(job["type"], "record");
    assert_eq!(job["visit"], "rec-visit");
    let ticket = job["ticket"].as_str().unwrap().to_owned();

    let mut rec = connect(&server).await;
    send(&mut rec, json!({"type": "join", "v": 1, "token": ticket})).await;
    let j = recv(&mut rec).await.unwrap();
    assert_eq!(j["type"], "joined", "{j}");
    assert_eq!(j["role"], "recorder");
    assert_eq!(j["state"], "admitted");
    assert_eq!(j["may_publish"], json!([]));

    // The ticket works once.
    let mut again = connect(&server).await;
    send(&mut again, json!({"type": "join", "v": 1, "token": ticket})).await;
    expect_error(&mut again, "invalid_token").await;

    // The provider consents with the right version: the recorder hears of it and everyone is
    // told something is recorded.
    send(
        &mut doc,
        json!({"type": "consent_accept", "text_version": "t-6"}),
    )
    .await;
    expect_error_any(&mut doc, "consent_mismatch").await;
    send(
        &mut doc,
        json!({"type": "consent_accept", "text_version": "t-7"}),
    )
    .await;
    let c = recv_type_any(&mut rec, "consent_recorded").await;
    assert_eq!(c["consent"]["decision"], "accepted");
    assert_eq!(c["consent"]["text_version"], "t-7");
    assert!(c["consent"]["at_unix_ms"].as_u64().unwrap() > 1_600_000_000_000);
    loop {
        let r = recv_type_any(&mut doc, "recording").await;
        if r["recorded"] == true {
            assert_eq!(r["you"], true);
            break;
        }
    }
    // Pause and resume reach the recorder (for its timeline) and the provider.
    send(&mut doc, json!({"type": "record_pause"})).await;
    loop {
        let r = recv_type_any(&mut rec, "recording").await;
        if r["paused"] == true {
            assert_eq!(r["active"], true, "{r}");
            break;
        }
    }
    loop {
        let r = recv_type_any(&mut doc, "recording").await;
        if r["paused"] == true {
            assert_eq!(r["recorded"], false, "nothing is recorded while paused");
            break;
        }
    }
    send(&mut doc, json!({"type": "record_resume"})).await;
    loop {
        let r = recv_type_any(&mut rec, "recording").await;
        if r["paused"] == false && r["recorded"] == true {
            break;
        }
    }
    // Stop: the recorder is sent away with a closing code.
    send(&mut doc, json!({"type": "record_stop"})).await;
    expect_error_any(&mut rec, "recording_stopped").await;
    expect_closed(&mut rec).await;
    let audit = std::fs::read_to_string(&server.audit_path).unwrap();
    for needle in [
        "\"kind\":\"recording_start\"",
        "\"code\":\"accepted:text_version=t-7\"",
        "\"kind\":\"recording_pause\"",
        "\"kind\":\"recording_resume\"",
        "\"kind\":\"recording_stop\"",
    ] {
        assert!(audit.contains(needle), "{needle} in {audit}");
    }
    assert!(!audit.contains(&ticket), "tickets are never logged");
    let metrics = http_get(server.admin, "/metrics").await;
    for line in [
        "bedside_recording_consents_total{decision=\"accepted\"} 1",
        "bedside_recording_consents_total{decision=\"declined\"} 0",
        "bedside_recorder_dispatches_total{outcome=\"sent\"} 1",
        "bedside_recorder_agents 1",
    ] {
        assert!(metrics.contains(line), "{line} in {metrics}");
    }
    drop(agent);
}

/// The next message of type `kind`, skipping any other.
async fn recv_type_any(ws: &mut Ws, kind: &str) -> Value {
    loop {
        let msg = recv(ws)
            .await
            .unwrap_or_else(|| panic!("socket closed while waiting for {kind}"));
        if msg["type"] == kind {
            return msg;
        }
    }
}

async fn expect_error_any(ws: &mut Ws, code: &str) {
    let msg = recv_type_any(ws, "error").await;
    assert_eq!(msg["code"], code, "{msg}");
}
