//! Protocol robustness over real sockets, as a client written from docs/signaling.md alone
//! would meet it: unknown fields, candidate floods, offers with too many tracks, message
//! floods and invalid UTF-8 are each refused with their documented code or close code, and the
//! server goes on serving everyone else promptly.

mod common;

use std::time::{Duration, Instant};

use common::*;
use serde_json::json;

#[tokio::test]
async fn a_known_message_with_an_unknown_field_is_refused_and_does_nothing() {
    let server = start().await;
    let mut fresh = connect(&server).await;
    send(&mut fresh, json!({"type": "ping", "now": true})).await;
    expect_error(&mut fresh, "invalid_message").await;
    still_alive(&mut fresh).await;

    let (mut doc, mut pat) = provider_and_patient(&server, "v").await;
    send(&mut pat, json!({"type": "leave", "now": true})).await;
    expect_error(&mut pat, "invalid_message").await;
    still_alive(&mut pat).await;
    for kind in [
        "ping",
        "admit_all",
        "end_visit",
        "record_start",
        "record_stop",
        "record_pause",
        "record_resume",
    ] {
        send(&mut doc, json!({"type": kind, "now": true})).await;
        expect_error(&mut doc, "invalid_message").await;
    }
    // Nobody left and the visit did not end: the next thing the provider hears of the patient
    // is their real `leave`.
    still_alive(&mut doc).await;
    send(&mut pat, json!({"type": "leave"})).await;
    recv_type(&mut pat, "left").await;
    let msg = recv(&mut doc).await.unwrap();
    assert_eq!(msg["type"], "participant_left", "{msg}");
}

/// `n` distinct, well-formed host candidates.
fn candidates(n: usize, from_port: u16) -> Vec<String> {
    (0..n)
        .map(|i| {
            let port = from_port + i as u16;
            format!("candidate:{port} 1 udp 2130706431 192.0.2.9 {port} typ host")
        })
        .collect()
}

#[tokio::test]
async fn a_candidate_flood_is_capped_and_other_visits_keep_their_media_thread() {
    // The message rate limit would stop the flood first; this is about candidates.
    let server = start_with(|s| s.message_rate = (1e6, 1_000_000)).await;
    let (_doc, mut pat) = provider_and_patient(&server, "flooded").await;
    let (mut other, _) = joined(&server, "elsewhere", "provider").await;

    // An offer carrying more candidates than a media session may give is refused whole.
    let mut offer = client_offer();
    for c in candidates(51, 3000) {
        offer.push_str(&format!("a={c}\r\n"));
    }
    send(&mut pat, json!({"type": "offer", "sdp": offer})).await;
    let msg = recv(&mut pat).await.unwrap();
    assert_eq!(msg["code"], "invalid_candidate", "{}", msg["type"]);
    assert!(msg["message"].as_str().unwrap().contains("50"), "{msg}");
    send(&mut pat, json!({"type": "offer", "sdp": client_offer()})).await;
    recv_type(&mut pat, "answer").await;

    // The flood as an outside client sent it: 2,000 candidates with 30 KB foundations, then
    // far more distinct well-formed ones than a session may give, then a ping behind them.
    let huge = format!(
        "candidate:{} 1 udp 1 192.0.2.1 9 typ host",
        "f".repeat(30_000)
    );
    let oversized = 2000;
    let many = candidates(400, 5000);
    let flood_started = Instant::now();
    for _ in 0..oversized {
        send(
            &mut pat,
            json!({"type": "candidate", "candidate": huge, "sdpMid": "0"}),
        )
        .await;
    }
    for c in &many {
        send(
            &mut pat,
            json!({"type": "candidate", "candidate": c, "sdpMid": "0"}),
        )
        .await;
    }
    send(
        &mut pat,
        json!({"type": "candidate", "candidate": many[0], "sdpMid": "m".repeat(33)}),
    )
    .await;
    send(&mut pat, json!({"type": "ping"})).await;

    // Every oversized candidate and every one past the 50th is refused, and the ping behind
    // them is answered: the socket stays open, and the flood is dealt with quickly.
    let (mut too_long, mut too_many, mut bad_mid) = (0, 0, 0);
    loop {
        let msg = recv(&mut pat).await.expect("the socket stays open");
        if msg["type"] == "pong" {
            break;
        }
        assert_eq!(msg["code"], "invalid_candidate", "{msg}");
        let text = msg["message"].as_str().unwrap();
        if text.contains("512 bytes") {
            too_long += 1;
        } else if text.contains("(50)") {
            too_many += 1;
        } else {
            assert!(text.contains("sdpMid"), "{msg}");
            bad_mid += 1;
        }
    }
    let flood_time = flood_started.elapsed();
    // Checked on the signaling task, the flood takes some 150 ms here; when every candidate
    // reached str0m it kept the media thread busy for over 3 s.
    assert!(
        flood_time < Duration::from_millis(1500),
        "the flood took {flood_time:?}"
    );
    assert_eq!(
        (too_long, too_many, bad_mid),
        (oversized, many.len() - 50, 1)
    );

    // The media thread is free for everyone else: another visit negotiates at once.
    let started = Instant::now();
    send(&mut other, json!({"type": "offer", "sdp": client_offer()})).await;
    recv_type(&mut other, "answer").await;
    let answered = started.elapsed();
    assert!(
        answered < Duration::from_millis(500),
        "another visit's offer took {answered:?}"
    );
    assert!(ping_time(&mut other).await < Duration::from_millis(500));
}

/// `base` (a str0m offer) with `n` more sending audio sections, as small as str0m accepts: the
/// ICE credentials, fingerprint and setup move to the session level, once for all sections.
fn with_audio_sections(base: &str, n: usize) -> String {
    let shared: Vec<&str> = ["a=ice-ufrag:", "a=ice-pwd:", "a=fingerprint:", "a=setup:"]
        .iter()
        .filter_map(|p| base.lines().find(|l| l.starts_with(p)))
        .collect();
    let (session, media) = base.split_at(base.find("m=").unwrap());
    let media: String = media
        .lines()
        .filter(|l| !shared.contains(l))
        .map(|l| format!("{l}\r\n"))
        .collect();
    let extra: Vec<String> = (0..n).map(|i| format!("x{i}")).collect();
    let mut sdp = String::new();
    for line in session.lines() {
        sdp.push_str(line);
        if line.starts_with("a=group:BUNDLE") {
            sdp.push(' ');
            sdp.push_str(&extra.join(" "));
        }
        sdp.push_str("\r\n");
    }
    for l in &shared {
        sdp.push_str(&format!("{l}\r\n"));
    }
    sdp.push_str(&media);
    for mid in &extra {
        sdp.push_str(&format!(
            "m=audio 9 UDP/TLS/RTP/SAVPF 111\r\nc=IN IP4 0.0.0.0\r\na=mid:{mid}\r\n\
             a=sendonly\r\na=rtcp-mux\r\na=rtpmap:111 opus/48000/2\r\n"
        ));
    }
    sdp
}

#[tokio::test]
async fn an_offer_with_too_many_tracks_is_refused_and_never_fanned_out() {
    use str0m::media::{Direction, MediaKind};
    let server = start().await;
    let (mut doc, mut pat) = provider_and_patient(&server, "tracks").await;
    send(&mut doc, json!({"type": "offer", "sdp": client_offer()})).await;
    recv_type(&mut doc, "answer").await;

    // 380 sending audio sections in under 64 KiB: what an outside client sent.
    let flood = with_audio_sections(&client_offer(), 380);
    assert!(flood.len() < 64 * 1024, "{}", flood.len());
    send(&mut pat, json!({"type": "offer", "sdp": flood})).await;
    let reply = recv(&mut pat).await.unwrap();
    assert_eq!(reply["code"], "too_many_tracks", "{}", reply["type"]);
    // Two microphones in a real offer.
    let two_mics = offer_with(&[
        (MediaKind::Audio, Direction::SendOnly),
        (MediaKind::Audio, Direction::SendOnly),
    ]);
    send(&mut pat, json!({"type": "offer", "sdp": two_mics})).await;
    expect_error(&mut pat, "too_many_tracks").await;
    // Naming more sources than there are.
    let offer = client_offer();
    let sources: serde_json::Map<String, serde_json::Value> = ["a", "b", "c", "d"]
        .iter()
        .map(|m| (m.to_string(), json!("camera")))
        .collect();
    send(
        &mut pat,
        json!({"type": "offer", "sdp": offer, "sources": sources}),
    )
    .await;
    expect_error(&mut pat, "too_many_tracks").await;
    still_alive(&mut pat).await;

    // A proper offer goes through, and the provider is offered exactly its two tracks.
    send(&mut pat, json!({"type": "offer", "sdp": client_offer()})).await;
    recv_type(&mut pat, "answer").await;
    let offered = recv_type(&mut doc, "offer").await;
    assert_eq!(offered["tracks"].as_array().unwrap().len(), 2, "{offered}");
    assert_eq!(mids(offered["sdp"].as_str().unwrap()).len(), 4);
}

/// Counts what a socket hears until it ends: pongs, `rate_limited` errors, and the close code.
async fn tally(ws: &mut Ws) -> (usize, usize, Next) {
    let (mut pongs, mut limited) = (0, 0);
    loop {
        match next(ws).await {
            Next::Json(m) if m["type"] == "pong" => pongs += 1,
            Next::Json(m) if m["type"] == "error" => {
                assert_eq!(m["code"], "rate_limited", "{m}");
                limited += 1;
            }
            Next::Json(_) => {}
            end => return (pongs, limited, end),
        }
    }
}

#[tokio::test]
async fn messages_over_the_rate_are_refused_and_the_socket_stays_open() {
    let server = start().await;
    // Before join: a burst of 50 passes, the rest is refused, nothing closes.
    let mut ws = connect(&server).await;
    for _ in 0..60 {
        send(&mut ws, json!({"type": "ping"})).await;
    }
    let (mut pongs, mut limited) = (0, 0);
    while pongs + limited < 60 {
        let m = recv(&mut ws).await.expect("the socket stays open");
        match m["type"].as_str() {
            Some("pong") => pongs += 1,
            _ => {
                assert_eq!(m["code"], "rate_limited", "{m}");
                limited += 1;
            }
        }
    }
    assert!(
        (50..=52).contains(&pongs),
        "{pongs} pongs, {limited} refused"
    );
    // A pause pays the debt back (10 refused: half a second); then the session joins.
    tokio::time::sleep(Duration::from_millis(1000)).await;
    still_alive(&mut ws).await;
    send(
        &mut ws,
        json!({"type": "join", "v": 1, "token": token("paced", "provider")}),
    )
    .await;
    recv_type(&mut ws, "joined").await;

    // What a web client sends at once when media starts (an offer, a dozen candidates,
    // answers) is well under the burst: a fresh session's 45 messages are all answered.
    let (mut fresh, _) = joined(&server, "paced", "chaperone").await;
    for _ in 0..45 {
        send(&mut fresh, json!({"type": "ping"})).await;
    }
    let mut pongs = 0;
    while pongs < 45 {
        let m = recv(&mut fresh).await.expect("the socket stays open");
        assert_ne!(m["type"], "error", "{m}");
        if m["type"] == "pong" {
            pongs += 1;
        }
    }
}

#[tokio::test]
async fn a_sustained_flood_is_closed_with_1008_and_others_are_served() {
    use futures_util::SinkExt;
    let server = start().await;
    let (mut flooder, _) = joined(&server, "busy", "provider").await;
    let (mut bystander, _) = joined(&server, "quiet", "provider").await;
    let ping =
        tokio_tungstenite::tungstenite::Message::Text(json!({"type": "ping"}).to_string().into());
    let mut sent = 0;
    while sent < 2_000 && flooder.send(ping.clone()).await.is_ok() {
        sent += 1;
    }
    let (pongs, limited, end) = tally(&mut flooder).await;
    assert!(
        matches!(end, Next::Closed(Some(1008))),
        "closed with {end:?} after {pongs} pongs, {limited} refused"
    );
    // The join took a token: the rest of the burst is answered, one burst more is refused.
    assert!((49..=60).contains(&pongs), "{pongs} pongs");
    assert!((40..=60).contains(&limited), "{limited} refused");
    let t = ping_time(&mut bystander).await;
    assert!(t < Duration::from_millis(500), "{t:?}");
}

#[tokio::test]
async fn a_text_frame_that_is_not_utf8_closes_with_1007() {
    use futures_util::SinkExt;
    use tokio_tungstenite::tungstenite::protocol::frame::coding::{Data, OpCode};
    use tokio_tungstenite::tungstenite::protocol::frame::Frame;
    use tokio_tungstenite::tungstenite::Message;
    let text = |bytes: &[u8], last: bool| {
        Message::Frame(Frame::message(
            bytes.to_vec(),
            OpCode::Data(Data::Text),
            last,
        ))
    };
    let server = start().await;
    let (mut doc, _) = joined(&server, "utf8", "provider").await;
    let (mut bad, _) = joined(&server, "utf8", "chaperone").await;
    recv_type(&mut doc, "participant_joined").await;
    bad.send(text(b"{\"type\":\"ping\",\"x\":\"\xff\xfe\"}", true))
        .await
        .unwrap();
    assert_eq!(close_code(&mut bad).await, Some(1007));
    recv_type(&mut doc, "participant_left").await;

    // Before join, and split over fragments (the continuation is the bad part).
    let mut early = connect(&server).await;
    early.send(text(b"{\"type\":\"pi", false)).await.unwrap();
    early
        .send(Message::Frame(Frame::message(
            b"ng\xc3\x28\"}".to_vec(),
            OpCode::Data(Data::Continue),
            true,
        )))
        .await
        .unwrap();
    assert_eq!(close_code(&mut early).await, Some(1007));
    still_alive(&mut doc).await;
}
