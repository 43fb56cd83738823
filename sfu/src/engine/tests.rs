use super::*;

fn client_offer() -> String {
    let mut rtc = Rtc::new(Instant::now());
    let mut change = rtc.sdp_api();
    change.add_media(
        MediaKind::Audio,
        str0m::media::Direction::SendOnly,
        None,
        None,
        None,
    );
    change.add_media(
        MediaKind::Video,
        str0m::media::Direction::SendOnly,
        None,
        None,
        None,
    );
    let (offer, _pending) = change.apply().expect("an offer with two media");
    offer.to_sdp_string()
}

fn new_peer(id: ParticipantId, visit: VisitId, role: Role) -> NewPeer {
    NewPeer {
        id,
        visit,
        visit_type: VisitType::Consult,
        role,
        sources: vec![],
        joined_at: None,
    }
}

fn start() -> (Sfu, SfuMetrics) {
    let metrics = SfuMetrics::unregistered();
    let sfu = Sfu::start(
        SfuConfig {
            bind: "127.0.0.1:0".parse().unwrap(),
            advertise: vec![],
            routing: Arc::new(RoutingTable::default()),
        },
        metrics.clone(),
    )
    .unwrap();
    (sfu, metrics)
}

async fn next_event(rx: &mut mpsc::UnboundedReceiver<PeerEvent>) -> PeerEvent {
    tokio::time::timeout(Duration::from_secs(5), rx.recv())
        .await
        .expect("an event within 5 s")
        .expect("the event channel stays open")
}

#[tokio::test]
async fn a_second_peer_is_offered_the_first_peers_tracks() {
    let (sfu, metrics) = start();
    let visit = VisitId::new("v");
    let (tx1, mut rx1) = mpsc::unbounded_channel();
    let p1 = ParticipantId::from_raw(1);
    sfu.add_peer(
        new_peer(p1, visit.clone(), Role::Provider),
        client_offer(),
        tx1,
    )
    .await
    .unwrap();
    assert!(matches!(
        next_event(&mut rx1).await,
        PeerEvent::Answer { .. }
    ));

    let (tx2, mut rx2) = mpsc::unbounded_channel();
    let p2 = ParticipantId::from_raw(2);
    sfu.add_peer(new_peer(p2, visit, Role::Patient), client_offer(), tx2)
        .await
        .unwrap();
    assert!(matches!(
        next_event(&mut rx2).await,
        PeerEvent::Answer { .. }
    ));
    // Each is offered the other's audio and video, labelled with the publisher.
    for (rx, other) in [(&mut rx2, p1), (&mut rx1, p2)] {
        match next_event(rx).await {
            PeerEvent::Offer { sdp, tracks } => {
                assert!(sdp.contains("a=sendonly"));
                assert_eq!(tracks.len(), 2);
                assert!(tracks.iter().all(|t| t.participant == other));
            }
            other => panic!("expected an offer, got {other:?}"),
        }
    }
    assert_eq!(metrics.peers.get(), 2);
}

#[tokio::test]
async fn bad_sdp_and_candidates_are_refused_cleanly() {
    let (sfu, _) = start();
    let (tx, _rx) = mpsc::unbounded_channel();
    let p = ParticipantId::from_raw(1);
    let err = sfu
        .add_peer(
            new_peer(p, VisitId::new("v"), Role::Patient),
            "v=0\r\nnonsense".into(),
            tx.clone(),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, SfuError::InvalidSdp));
    sfu.add_peer(
        new_peer(p, VisitId::new("v"), Role::Patient),
        client_offer(),
        tx,
    )
    .await
    .unwrap();
    assert!(matches!(
        sfu.add_candidate(p, "candidate:garbage".into()).await,
        Err(SfuError::InvalidCandidate)
    ));
    assert!(matches!(
        sfu.client_answer(p, "v=0".into()).await,
        Err(SfuError::InvalidSdp)
    ));
    assert!(matches!(
        sfu.add_candidate(
            ParticipantId::from_raw(9),
            "candidate:1 1 udp 1 127.0.0.1 9 typ host".into()
        )
        .await,
        Err(SfuError::UnknownPeer)
    ));
}

#[tokio::test]
async fn a_panic_in_one_peer_ends_only_that_peer() {
    let (sfu, metrics) = start();
    let visit = VisitId::new("v");
    let (tx1, mut rx1) = mpsc::unbounded_channel();
    let (tx2, mut rx2) = mpsc::unbounded_channel();
    let (p1, p2) = (ParticipantId::from_raw(1), ParticipantId::from_raw(2));
    sfu.add_peer(
        new_peer(p1, visit.clone(), Role::Provider),
        client_offer(),
        tx1,
    )
    .await
    .unwrap();
    sfu.add_peer(new_peer(p2, visit, Role::Patient), client_offer(), tx2)
        .await
        .unwrap();
    sfu.inject_panic(p1);
    loop {
        if let PeerEvent::Closed { reason } = next_event(&mut rx1).await {
            assert_eq!(reason, CloseReason::Internal);
            break;
        }
    }
    // p2 lives on and is told p1's tracks are gone (a renegotiation removing them).
    let candidate = "candidate:1 1 udp 2130706431 127.0.0.1 9 typ host".to_string();
    sfu.add_candidate(p2, candidate).await.unwrap();
    assert_eq!(metrics.peer_panics.get(), 1);
    assert_eq!(metrics.peers.get(), 1);
    let _ = next_event(&mut rx2).await;
}

#[tokio::test]
async fn garbage_datagrams_are_dropped_and_counted() {
    let (sfu, metrics) = start();
    let sock = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let garbage: [&[u8]; 4] = [
        b"",
        b"\x80\x60garbage-rtp-without-a-session",
        b"\x00\x01\x00\x08\x21\x12\xa4\x42truncated-stun",
        &[0xff; 1500],
    ];
    for g in garbage {
        sock.send_to(g, sfu.local_addr()).unwrap();
    }
    // The engine keeps serving commands.
    let (tx, _rx) = mpsc::unbounded_channel();
    sfu.add_peer(
        new_peer(ParticipantId::from_raw(1), VisitId::new("v"), Role::Patient),
        client_offer(),
        tx,
    )
    .await
    .unwrap();
    let dropped = || {
        ["malformed", "unmatched", "rejected"]
            .iter()
            .map(|r| metrics.dropped_datagrams.with_label_values(&[r]).get())
            .sum::<u64>()
    };
    for _ in 0..50 {
        if dropped() >= 3 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(dropped() >= 3, "dropped {}", dropped());
}

#[tokio::test]
async fn a_source_the_role_may_not_publish_is_refused_at_negotiation() {
    let (sfu, metrics) = start();
    let (tx, _rx) = mpsc::unbounded_channel();
    let offer = client_offer();
    let video_mid = offer
        .split("m=video")
        .nth(1)
        .and_then(|s| s.lines().find_map(|l| l.strip_prefix("a=mid:")))
        .unwrap()
        .trim()
        .to_string();
    // A patient marking its video as a screen share is refused.
    let mut patient = new_peer(ParticipantId::from_raw(1), VisitId::new("v"), Role::Patient);
    patient.sources = vec![(video_mid.clone(), Source::Screen)];
    let err = sfu
        .add_peer(patient.clone(), offer.clone(), tx.clone())
        .await
        .unwrap_err();
    assert!(matches!(err, SfuError::PublishNotAllowed));
    // A supervisor publishes nothing by default.
    let supervisor = new_peer(
        ParticipantId::from_raw(2),
        VisitId::new("v"),
        Role::Supervisor,
    );
    let err = sfu
        .add_peer(supervisor, offer.clone(), tx.clone())
        .await
        .unwrap_err();
    assert!(matches!(err, SfuError::PublishNotAllowed));
    // Marking audio as a camera is malformed.
    patient.sources = vec![(video_mid, Source::Microphone)];
    assert!(matches!(
        sfu.add_peer(patient.clone(), offer.clone(), tx.clone())
            .await,
        Err(SfuError::InvalidSdp)
    ));
    // The same offer with default sources is fine, and nothing was created before.
    patient.sources = vec![];
    sfu.add_peer(patient, offer, tx).await.unwrap();
    assert_eq!(metrics.peers.get(), 1);
}

/// An offer from str0m as a client with `sections` and one host candidate per port in `ports`.
fn offer_with(sections: &[(MediaKind, str0m::media::Direction)], ports: &[u16]) -> String {
    let mut rtc = Rtc::new(Instant::now());
    for port in ports {
        let addr = SocketAddr::from(([192, 0, 2, 1], *port));
        rtc.add_local_candidate(Candidate::host(addr, "udp").unwrap());
    }
    let mut change = rtc.sdp_api();
    for (kind, dir) in sections {
        change.add_media(*kind, *dir, None, None, None);
    }
    change.apply().expect("an offer").0.to_sdp_string()
}

fn host_candidate(port: u16) -> String {
    format!("candidate:{port} 1 udp 2130706431 192.0.2.9 {port} typ host")
}

#[tokio::test]
async fn remote_candidates_are_capped_per_media_session() {
    let (sfu, _) = start();
    let (tx, _rx) = mpsc::unbounded_channel();
    let p = ParticipantId::from_raw(1);
    // The offer's own candidates count too.
    let offer = offer_with(
        &[(MediaKind::Audio, str0m::media::Direction::SendOnly)],
        &[4000, 4001],
    );
    assert_eq!(offer.matches("a=candidate:").count(), 2, "{offer}");
    sfu.add_peer(new_peer(p, VisitId::new("v"), Role::Patient), offer, tx)
        .await
        .unwrap();
    for port in 0..(MAX_REMOTE_CANDIDATES as u16 - 2) {
        sfu.add_candidate(p, host_candidate(5000 + port))
            .await
            .unwrap();
    }
    let refused = sfu
        .add_candidate(p, host_candidate(6000))
        .await
        .unwrap_err();
    assert!(
        matches!(refused, SfuError::CandidateRefused(CandidateError::TooMany)),
        "{refused:?}"
    );
    // Repeats of given candidates, the end of candidates and mDNS names cost nothing.
    sfu.add_candidate(p, host_candidate(5000)).await.unwrap();
    sfu.add_candidate(p, format!("a={}", host_candidate(5001)))
        .await
        .unwrap();
    sfu.add_candidate(p, String::new()).await.unwrap();
    sfu.add_candidate(
        p,
        "candidate:1 1 udp 2130706431 0c1f.local 9 typ host".into(),
    )
    .await
    .unwrap();
    // Oversized ones are refused before the media thread sees them, whatever the count.
    let huge = format!(
        "candidate:{} 1 udp 1 192.0.2.1 9 typ host",
        "f".repeat(30_000)
    );
    assert!(matches!(
        sfu.add_candidate(ParticipantId::from_raw(9), huge).await,
        Err(SfuError::CandidateRefused(CandidateError::TooLong))
    ));
}

#[tokio::test]
async fn an_offer_over_the_candidate_limit_is_refused() {
    let (sfu, metrics) = start();
    let (tx, _rx) = mpsc::unbounded_channel();
    let ports: Vec<u16> = (0..=MAX_REMOTE_CANDIDATES as u16)
        .map(|p| 4000 + p)
        .collect();
    let offer = offer_with(
        &[(MediaKind::Audio, str0m::media::Direction::SendOnly)],
        &ports,
    );
    let p = ParticipantId::from_raw(1);
    let err = sfu
        .add_peer(new_peer(p, VisitId::new("v"), Role::Patient), offer, tx)
        .await
        .unwrap_err();
    assert!(
        matches!(err, SfuError::CandidateRefused(CandidateError::TooMany)),
        "{err:?}"
    );
    assert_eq!(metrics.peers.get(), 0);
}

#[tokio::test]
async fn an_offer_may_send_one_of_each_source_and_a_bounded_number_of_sections() {
    use str0m::media::Direction::{RecvOnly, SendOnly};
    let (sfu, _) = start();
    let (tx, mut rx) = mpsc::unbounded_channel();
    let p = ParticipantId::from_raw(1);
    let provider = new_peer(p, VisitId::new("v"), Role::Provider);
    let two_mics = offer_with(
        &[(MediaKind::Audio, SendOnly), (MediaKind::Audio, SendOnly)],
        &[],
    );
    let err = sfu
        .add_peer(provider.clone(), two_mics, tx.clone())
        .await
        .unwrap_err();
    assert!(matches!(err, SfuError::DuplicateSource), "{err:?}");
    // Receive-only sections (subscriptions after renegotiation) are fine up to the limit.
    let mut sections = vec![(MediaKind::Audio, SendOnly), (MediaKind::Video, SendOnly)];
    sections.extend(std::iter::repeat_n(
        (MediaKind::Video, RecvOnly),
        MAX_ACTIVE_M_LINES - 2,
    ));
    sfu.add_peer(provider.clone(), offer_with(&sections, &[]), tx.clone())
        .await
        .unwrap();
    assert!(matches!(
        next_event(&mut rx).await,
        PeerEvent::Answer { .. }
    ));
    sfu.remove_peer(p);
    sections.push((MediaKind::Audio, RecvOnly));
    let err = sfu
        .add_peer(provider.clone(), offer_with(&sections, &[]), tx.clone())
        .await
        .unwrap_err();
    assert!(matches!(err, SfuError::TooManyMLines), "{err:?}");
    // A camera and a screen are two sources, both allowed for the provider.
    let offer = offer_with(
        &[(MediaKind::Video, SendOnly), (MediaKind::Video, SendOnly)],
        &[],
    );
    let mids: Vec<String> = offer
        .lines()
        .filter_map(|l| l.strip_prefix("a=mid:"))
        .map(|m| m.trim().to_owned())
        .collect();
    let mut with_screen = provider.clone();
    with_screen.sources = vec![(mids[1].clone(), Source::Screen)];
    sfu.add_peer(with_screen, offer.clone(), tx.clone())
        .await
        .unwrap();
    sfu.remove_peer(p);
    // Two cameras are not.
    let err = sfu.add_peer(provider, offer, tx).await.unwrap_err();
    assert!(matches!(err, SfuError::DuplicateSource), "{err:?}");
}
