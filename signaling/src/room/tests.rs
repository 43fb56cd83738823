use super::*;
use bedside_proto::MediaPresence;

fn p(n: u64) -> ParticipantId {
    ParticipantId::from_raw(n)
}

fn joiner(n: u64, role: Role) -> Joiner {
    Joiner {
        id: p(n),
        subject: format!("sub-{n}"),
        jti: format!("jti-{n}"),
        role,
        name: Some(format!("Name {n}")),
        reason: Some(format!("Reason {n}")),
        fhir: Default::default(),
    }
}

fn limits() -> RoomLimits {
    RoomLimits {
        max_participants: 4,
        max_wait: Duration::from_secs(600),
        grace: Duration::from_secs(30),
        deny_cooldown: Duration::from_secs(120),
    }
}

fn drain(r: &mut Room) -> Vec<Out> {
    std::iter::from_fn(|| r.poll_output()).collect()
}

/// Messages sent to `id`, in order (sends and admissions).
fn to(outs: &[Out], id: ParticipantId) -> Vec<ServerMessage> {
    outs.iter()
        .filter_map(|o| match o {
            Out::Send(t, m) | Out::Admit(t, m) if *t == id => Some(m.clone()),
            _ => None,
        })
        .collect()
}

fn closed(outs: &[Out], id: ParticipantId) -> Option<ErrorCode> {
    outs.iter().find_map(|o| match o {
        Out::Close(t, code, _) if *t == id => Some(*code),
        _ => None,
    })
}

fn audits(outs: &[Out]) -> Vec<(&'static str, ParticipantId, Option<&'static str>)> {
    outs.iter()
        .filter_map(|o| match o {
            Out::Audit(a) => Some((a.kind, a.participant, a.code)),
            _ => None,
        })
        .collect()
}

#[test]
fn patients_wait_clinicians_see_the_queue_and_admit() {
    let t0 = Instant::now();
    let mut r = Room::new(VisitType::Consult, limits());
    let doc = r.handle_join(t0, joiner(1, Role::Provider)).unwrap();
    assert!(doc.admitted);
    let outs = drain(&mut r);
    assert!(matches!(&to(&outs, p(1))[0], ServerMessage::Queue { entries } if entries.is_empty()));

    let pat = r
        .handle_join(t0 + Duration::from_secs(5), joiner(2, Role::Patient))
        .unwrap();
    assert!(!pat.admitted);
    assert!(pat.participants.is_empty(), "a waiting patient sees nobody");
    let outs = drain(&mut r);
    // The provider sees the entry with the reason; the patient sees position 1.
    match &to(&outs, p(1))[..] {
        [ServerMessage::Queue { entries }] => {
            assert_eq!(entries.len(), 1);
            assert_eq!(entries[0].participant, p(2));
            assert_eq!(entries[0].reason.as_deref(), Some("Reason 2"));
        }
        other => panic!("provider got {other:?}"),
    }
    assert!(matches!(
        &to(&outs, p(2))[..],
        [ServerMessage::Waiting { position: 1, .. }]
    ));

    r.handle_command(t0 + Duration::from_secs(60), p(1), Command::Admit(p(2)))
        .unwrap();
    let outs = drain(&mut r);
    assert!(outs.iter().any(|o| matches!(o, Out::Admit(id, ServerMessage::Admitted { participants, .. }) if *id == p(2) && participants.len() == 1)));
    assert!(to(&outs, p(1))
        .iter()
        .any(|m| matches!(m, ServerMessage::ParticipantJoined { participant } if participant.participant == p(2))));
    assert!(audits(&outs).contains(&("admit", p(2), None)));
    assert_eq!(r.member_count(), (0, 2));
}

#[test]
fn positions_follow_arrival_and_the_clinician_message_reaches_the_waiting() {
    let t0 = Instant::now();
    let mut r = Room::new(VisitType::Group, limits());
    r.handle_join(t0, joiner(1, Role::Provider)).unwrap();
    r.handle_join(t0 + Duration::from_secs(1), joiner(2, Role::Patient))
        .unwrap();
    r.handle_join(t0 + Duration::from_secs(2), joiner(3, Role::Caregiver))
        .unwrap();
    drain(&mut r);
    r.handle_command(
        t0,
        p(1),
        Command::NotifyWaiting("running 10 minutes late".into()),
    )
    .unwrap();
    let outs = drain(&mut r);
    assert!(
        matches!(&to(&outs, p(3))[..], [ServerMessage::Waiting { position: 2, message: Some(m), .. }] if m.contains("10 minutes"))
    );
    // The first leaves: the second moves up.
    r.handle_leave(t0 + Duration::from_secs(3), p(2), Departure::Left);
    let outs = drain(&mut r);
    assert!(matches!(
        &to(&outs, p(3))[..],
        [ServerMessage::Waiting { position: 1, .. }]
    ));
}

#[test]
fn deny_closes_with_the_reason_and_patients_cannot_run_the_visit() {
    let t0 = Instant::now();
    let mut r = Room::new(VisitType::Consult, limits());
    r.handle_join(t0, joiner(1, Role::Provider)).unwrap();
    r.handle_join(t0, joiner(2, Role::Patient)).unwrap();
    r.handle_join(t0, joiner(3, Role::Patient)).unwrap();
    drain(&mut r);
    // A waiting patient may not admit, deny or end.
    for cmd in [
        Command::Admit(p(3)),
        Command::Deny(p(3), None),
        Command::EndVisit,
        Command::AdmitAll,
    ] {
        assert_eq!(r.handle_command(t0, p(2), cmd), Err(ErrorCode::Forbidden));
    }
    // Neither may an admitted chaperone.
    r.handle_join(t0, joiner(4, Role::Chaperone)).unwrap();
    assert_eq!(
        r.handle_command(t0, p(4), Command::Admit(p(2))),
        Err(ErrorCode::Forbidden)
    );
    let outs = drain(&mut r);
    assert!(audits(&outs).contains(&("refuse", p(2), Some("forbidden"))));

    r.handle_command(
        t0,
        p(1),
        Command::Deny(p(2), Some("please call the clinic".into())),
    )
    .unwrap();
    let outs = drain(&mut r);
    match outs.iter().find(|o| matches!(o, Out::Close(..))) {
        Some(Out::Close(id, ErrorCode::Denied, text)) => {
            assert_eq!(*id, p(2));
            assert_eq!(text, "please call the clinic");
        }
        other => panic!("expected a denial, got {other:?}"),
    }
    assert!(audits(&outs).contains(&("deny", p(2), None)));
    assert_eq!(
        r.handle_command(t0, p(1), Command::Admit(p(2))),
        Err(ErrorCode::UnknownParticipant)
    );
}

#[test]
fn admit_all_admits_everyone_waiting() {
    let t0 = Instant::now();
    let mut r = Room::new(VisitType::Group, limits());
    r.handle_join(t0, joiner(1, Role::Provider)).unwrap();
    r.handle_join(t0, joiner(2, Role::Patient)).unwrap();
    r.handle_join(t0, joiner(3, Role::Interpreter)).unwrap();
    drain(&mut r);
    r.handle_command(t0, p(1), Command::AdmitAll).unwrap();
    let outs = drain(&mut r);
    let admitted: Vec<_> = outs
        .iter()
        .filter_map(|o| match o {
            Out::Admit(id, _) => Some(*id),
            _ => None,
        })
        .collect();
    assert_eq!(admitted, vec![p(2), p(3)]);
    assert_eq!(r.member_count(), (0, 3));
}

#[test]
fn the_maximum_wait_ends_a_wait_with_a_clear_message() {
    let t0 = Instant::now();
    let mut r = Room::new(VisitType::Consult, limits());
    r.handle_join(t0, joiner(2, Role::Patient)).unwrap();
    drain(&mut r);
    assert_eq!(r.poll_timeout(), Some(t0 + Duration::from_secs(600)));
    r.handle_timeout(t0 + Duration::from_secs(599));
    assert!(closed(&drain(&mut r), p(2)).is_none());
    r.handle_timeout(t0 + Duration::from_secs(600));
    assert_eq!(closed(&drain(&mut r), p(2)), Some(ErrorCode::WaitTimeout));
    assert!(r.is_finished());
}

#[test]
fn a_dropped_participant_returning_within_grace_keeps_their_state() {
    let t0 = Instant::now();
    let s = Duration::from_secs;
    let mut r = Room::new(VisitType::Consult, limits());
    r.handle_join(t0, joiner(1, Role::Provider)).unwrap();
    r.handle_join(t0, joiner(2, Role::Patient)).unwrap();
    r.handle_join(t0 + s(1), joiner(3, Role::Caregiver))
        .unwrap();
    r.handle_command(t0 + s(2), p(1), Command::Admit(p(2)))
        .unwrap();
    drain(&mut r);

    // The admitted patient reloads: a new session (new id, same subject) skips the queue.
    r.handle_leave(t0 + s(10), p(2), Departure::Dropped);
    let mut back = joiner(12, Role::Patient);
    back.subject = "sub-2".into();
    let e = r.handle_join(t0 + s(20), back).unwrap();
    assert!(e.admitted);
    assert_eq!(e.participants.len(), 1);

    // The waiting caregiver drops and returns: keeps the first place ahead of a newcomer.
    r.handle_join(t0 + s(21), joiner(4, Role::Patient)).unwrap();
    r.handle_leave(t0 + s(22), p(3), Departure::Dropped);
    let mut back = joiner(13, Role::Caregiver);
    back.subject = "sub-3".into();
    assert!(!r.handle_join(t0 + s(30), back).unwrap().admitted);
    let outs = drain(&mut r);
    assert!(matches!(
        to(&outs, p(13)).last(),
        Some(ServerMessage::Waiting { position: 1, .. })
    ));

    // After the grace period, a return waits again.
    r.handle_leave(t0 + s(40), p(12), Departure::Dropped);
    r.handle_timeout(t0 + s(71));
    let mut late = joiner(22, Role::Patient);
    late.subject = "sub-2".into();
    assert!(!r.handle_join(t0 + s(72), late).unwrap().admitted);
    // An explicit leave has no grace at all.
    r.handle_leave(t0 + s(73), p(22), Departure::Left);
    let mut again = joiner(32, Role::Patient);
    again.subject = "sub-2".into();
    assert!(!r.handle_join(t0 + s(74), again).unwrap().admitted);
}

#[test]
fn the_same_token_twice_replaces_the_older_session() {
    let t0 = Instant::now();
    let mut r = Room::new(VisitType::Consult, limits());
    r.handle_join(t0, joiner(1, Role::Provider)).unwrap();
    r.handle_join(t0, joiner(2, Role::Patient)).unwrap();
    r.handle_command(t0, p(1), Command::Admit(p(2))).unwrap();
    drain(&mut r);
    let mut twin = joiner(5, Role::Patient);
    twin.jti = "jti-2".into();
    twin.subject = "sub-2".into();
    assert!(r.handle_join(t0, twin).unwrap().admitted);
    let outs = drain(&mut r);
    assert_eq!(closed(&outs, p(2)), Some(ErrorCode::SessionReplaced));
    assert_eq!(r.member_count(), (0, 2));
}

#[test]
fn full_and_ended_visits_refuse_joins_and_ending_closes_everyone() {
    let t0 = Instant::now();
    let mut r = Room::new(VisitType::Consult, limits());
    for n in 1..=4 {
        let role = if n == 1 {
            Role::Provider
        } else {
            Role::Patient
        };
        r.handle_join(t0, joiner(n, role)).unwrap();
    }
    assert_eq!(
        r.handle_join(t0, joiner(5, Role::Patient)).err(),
        Some(Refusal::VisitFull)
    );
    drain(&mut r);
    r.handle_command(t0, p(1), Command::EndVisit).unwrap();
    let outs = drain(&mut r);
    for n in 1..=4 {
        assert_eq!(closed(&outs, p(n)), Some(ErrorCode::VisitEnded));
    }
    assert!(r.is_ended() && r.is_finished());
    assert_eq!(
        r.handle_join(t0, joiner(6, Role::Provider)).err(),
        Some(Refusal::VisitEnded)
    );
}

#[test]
fn show_video_is_announced_and_routed() {
    let t0 = Instant::now();
    let mut r = Room::new(VisitType::Group, limits());
    r.handle_join(t0, joiner(1, Role::Provider)).unwrap();
    r.handle_join(t0, joiner(2, Role::Patient)).unwrap();
    r.handle_command(t0, p(1), Command::Admit(p(2))).unwrap();
    drain(&mut r);
    r.handle_command(t0, p(2), Command::ShowVideo(true))
        .unwrap();
    let outs = drain(&mut r);
    assert!(outs
        .iter()
        .any(|o| matches!(o, Out::Shown(id, true) if *id == p(2))));
    assert!(to(&outs, p(1)).iter().any(
        |m| matches!(m, ServerMessage::ParticipantUpdated { participant } if participant.shown)
    ));
    // Repeating it changes nothing.
    r.handle_command(t0, p(2), Command::ShowVideo(true))
        .unwrap();
    assert!(drain(&mut r).is_empty());
}

#[test]
fn removal_has_no_grace() {
    let t0 = Instant::now();
    let mut r = Room::new(VisitType::Consult, limits());
    r.handle_join(t0, joiner(1, Role::Provider)).unwrap();
    r.handle_join(t0, joiner(2, Role::Patient)).unwrap();
    r.handle_command(t0, p(1), Command::Admit(p(2))).unwrap();
    r.handle_command(t0, p(1), Command::Remove(p(2))).unwrap();
    let outs = drain(&mut r);
    assert_eq!(closed(&outs, p(2)), Some(ErrorCode::Removed));
    assert_eq!(
        r.handle_command(t0, p(1), Command::Remove(p(1))),
        Err(ErrorCode::Forbidden)
    );
    let mut back = joiner(3, Role::Patient);
    back.subject = "sub-2".into();
    assert!(!r.handle_join(t0, back).unwrap().admitted);
}

#[test]
fn a_denied_person_knocking_again_is_refused_until_the_cooldown_ends() {
    let t0 = Instant::now();
    let mut r = Room::new(VisitType::Consult, limits());
    r.handle_join(t0, joiner(1, Role::Provider)).unwrap();
    r.handle_join(t0, joiner(2, Role::Patient)).unwrap();
    r.handle_command(t0, p(1), Command::Deny(p(2), None))
        .unwrap();
    drain(&mut r);
    // Same person (the token's sub), a new session: refused and audited, the queue untouched.
    let mut again = joiner(3, Role::Patient);
    again.subject = "sub-2".into();
    let t1 = t0 + Duration::from_secs(119);
    assert_eq!(
        r.handle_join(t1, again.clone()).err(),
        Some(Refusal::RecentlyDenied)
    );
    let outs = drain(&mut r);
    assert!(audits(&outs).contains(&("refuse", p(3), Some("deny_cooldown"))));
    assert!(
        to(&outs, p(1)).is_empty(),
        "the clinician's queue did not change"
    );
    // Someone else is not affected.
    assert!(
        !r.handle_join(t1, joiner(4, Role::Patient))
            .unwrap()
            .admitted
    );
    // After the cool-down the person may knock again and waits as usual.
    let t2 = t0 + Duration::from_secs(121);
    assert!(!r.handle_join(t2, again).unwrap().admitted);
}

#[test]
fn a_zero_cooldown_lets_a_denied_person_knock_again_at_once() {
    let t0 = Instant::now();
    let mut r = Room::new(
        VisitType::Consult,
        RoomLimits {
            deny_cooldown: Duration::ZERO,
            ..limits()
        },
    );
    r.handle_join(t0, joiner(1, Role::Provider)).unwrap();
    r.handle_join(t0, joiner(2, Role::Patient)).unwrap();
    r.handle_command(t0, p(1), Command::Deny(p(2), None))
        .unwrap();
    let mut again = joiner(3, Role::Patient);
    again.subject = "sub-2".into();
    assert!(r.handle_join(t0, again).is_ok());
}

fn consent_text() -> ConsentText {
    ConsentText {
        version: "v2".into(),
        text: "May we record?".into(),
    }
}

fn recordable(outs: &[Out]) -> Vec<(ParticipantId, bool)> {
    outs.iter()
        .filter_map(|o| match o {
            Out::Recordable(id, on) => Some((*id, *on)),
            _ => None,
        })
        .collect()
}

fn recording_state(outs: &[Out], id: ParticipantId) -> Option<(bool, bool, bool)> {
    to(outs, id).into_iter().rev().find_map(|m| match m {
        ServerMessage::Recording {
            active,
            recorded,
            you,
            ..
        } => Some((active, recorded, you)),
        _ => None,
    })
}

fn paused_state(outs: &[Out], id: ParticipantId) -> Option<bool> {
    to(outs, id).into_iter().rev().find_map(|m| match m {
        ServerMessage::Recording { paused, .. } => Some(paused),
        _ => None,
    })
}

fn consent(accept: bool, version: &str) -> Command {
    Command::Consent {
        accept,
        text_version: version.into(),
        at_unix_ms: 1_700_000_000_000,
    }
}

/// A consult with a provider (1) and an admitted patient (2), recording enabled.
fn recording_room(t0: Instant) -> Room {
    let mut r = Room::new(VisitType::Consult, limits()).with_recording(Some(consent_text()));
    r.handle_join(t0, joiner(1, Role::Provider)).unwrap();
    r.handle_join(t0, joiner(2, Role::Patient)).unwrap();
    r.handle_command(t0, p(1), Command::Admit(p(2))).unwrap();
    drain(&mut r);
    r
}

/// The provider (1) starts recording with a recorder agent available.
fn start_recording(r: &mut Room, t0: Instant) {
    r.handle_command(
        t0,
        p(1),
        Command::RecordStart {
            recorder_available: true,
        },
    )
    .unwrap();
}

#[test]
fn only_a_provider_starts_recording_and_only_where_it_is_enabled() {
    let t0 = Instant::now();
    let mut off = Room::new(VisitType::Consult, limits());
    off.handle_join(t0, joiner(1, Role::Provider)).unwrap();
    let start = || Command::RecordStart {
        recorder_available: true,
    };
    assert_eq!(
        off.handle_command(t0, p(1), start()),
        Err(ErrorCode::RecordingDisabled)
    );

    let mut r = recording_room(t0);
    assert_eq!(
        r.handle_command(t0, p(2), start()),
        Err(ErrorCode::Forbidden)
    );
    assert_eq!(
        r.handle_command(
            t0,
            p(1),
            Command::RecordStart {
                recorder_available: false
            }
        ),
        Err(ErrorCode::RecordingUnavailable)
    );
    assert_eq!(
        r.handle_command(t0, p(1), Command::RecordStop),
        Err(ErrorCode::RecordingUnavailable)
    );
    assert_eq!(
        r.handle_command(t0, p(2), consent(true, "v2")),
        Err(ErrorCode::ConsentMismatch),
        "nothing was asked"
    );
    let outs = drain(&mut r);
    assert!(recordable(&outs).is_empty());
    // A recorder cannot join a visit that is not recording.
    assert!(matches!(
        r.handle_join(t0, joiner(9, Role::Recorder)),
        Err(Refusal::NotRecording)
    ));
}

#[test]
fn only_consenting_participants_are_recorded_and_withdrawal_stops_it() {
    let t0 = Instant::now();
    let mut r = recording_room(t0);
    start_recording(&mut r, t0);
    let outs = drain(&mut r);
    for id in [p(1), p(2)] {
        assert!(
            to(&outs, id).iter().any(|m| matches!(m,
                ServerMessage::ConsentRequest { text_version, .. } if text_version == "v2")),
            "everyone present is asked"
        );
        assert_eq!(recording_state(&outs, id), Some((true, false, false)));
    }
    assert!(outs.iter().any(|o| matches!(o, Out::StartRecorder)));
    assert!(recordable(&outs).is_empty(), "nobody consented yet");

    let rec = r.handle_join(t0, joiner(9, Role::Recorder)).unwrap();
    assert!(rec.admitted, "the recorder does not wait");
    drain(&mut r);

    // The provider consents: recorded from now on, everyone sees the indicator.
    r.handle_command(t0, p(1), consent(true, "v2")).unwrap();
    let outs = drain(&mut r);
    assert_eq!(recordable(&outs), vec![(p(1), true)]);
    assert_eq!(recording_state(&outs, p(1)), Some((true, true, true)));
    assert_eq!(recording_state(&outs, p(2)), Some((true, true, false)));
    assert!(to(&outs, p(9)).iter().any(|m| matches!(m,
        ServerMessage::ConsentRecorded { consent }
            if consent.participant == p(1)
                && consent.decision == bedside_proto::ConsentDecision::Accepted
                && consent.text_version == "v2")));
    let consent_audits: Vec<_> = outs
        .iter()
        .filter_map(|o| match o {
            Out::Audit(a) if a.kind == "consent" => Some(a.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(consent_audits.len(), 1);
    assert_eq!(consent_audits[0].code, Some("accepted"));
    assert_eq!(consent_audits[0].text_version.as_deref(), Some("v2"));

    // The patient declines: never recordable. A stale text version is refused.
    assert_eq!(
        r.handle_command(t0, p(2), consent(true, "v1")),
        Err(ErrorCode::ConsentMismatch)
    );
    r.handle_command(t0, p(2), consent(false, "v2")).unwrap();
    let outs = drain(&mut r);
    assert!(recordable(&outs).is_empty());

    // A later arrival is asked and left out until they consent.
    r.handle_join(t0, joiner(3, Role::Caregiver)).unwrap();
    r.handle_command(t0, p(1), Command::Admit(p(3))).unwrap();
    let outs = drain(&mut r);
    assert!(to(&outs, p(3))
        .iter()
        .any(|m| matches!(m, ServerMessage::ConsentRequest { .. })));
    assert_eq!(recording_state(&outs, p(3)), Some((true, true, false)));
    assert!(recordable(&outs).is_empty());
    r.handle_command(t0, p(3), consent(true, "v2")).unwrap();
    assert_eq!(recordable(&drain(&mut r)), vec![(p(3), true)]);

    // Withdrawal stops that participant only, and is recorded as a withdrawal.
    r.handle_command(t0, p(3), consent(false, "v2")).unwrap();
    let outs = drain(&mut r);
    assert_eq!(recordable(&outs), vec![(p(3), false)]);
    assert!(to(&outs, p(9)).iter().any(|m| matches!(m,
        ServerMessage::ConsentRecorded { consent }
            if consent.participant == p(3)
                && consent.decision == bedside_proto::ConsentDecision::Withdrawn)));

    // Stop: nobody recordable, the indicator goes off, the recorder is sent away.
    r.handle_command(t0, p(1), Command::RecordStop).unwrap();
    let outs = drain(&mut r);
    assert_eq!(recordable(&outs), vec![(p(1), false)]);
    assert_eq!(recording_state(&outs, p(2)), Some((false, false, false)));
    assert_eq!(closed(&outs, p(9)), Some(ErrorCode::RecordingStopped));
    assert_eq!(
        r.handle_command(t0, p(2), consent(true, "v2")),
        Err(ErrorCode::ConsentMismatch),
        "consent belongs to a recording"
    );
}

#[test]
fn a_paused_recording_records_nobody_and_resumes_with_consent_intact() {
    let t0 = Instant::now();
    let mut r = recording_room(t0);
    start_recording(&mut r, t0);
    r.handle_join(t0, joiner(9, Role::Recorder)).unwrap();
    r.handle_command(t0, p(1), consent(true, "v2")).unwrap();
    r.handle_command(t0, p(2), consent(true, "v2")).unwrap();
    drain(&mut r);
    assert_eq!(
        r.handle_command(t0, p(2), Command::RecordPause(true)),
        Err(ErrorCode::Forbidden),
        "only the provider pauses"
    );
    drain(&mut r);
    r.handle_command(t0, p(1), Command::RecordPause(true))
        .unwrap();
    let outs = drain(&mut r);
    let mut off = recordable(&outs);
    off.sort();
    assert_eq!(off, vec![(p(1), false), (p(2), false)]);
    assert_eq!(recording_state(&outs, p(2)), Some((true, false, false)));
    assert_eq!(
        paused_state(&outs, p(9)),
        Some(true),
        "the recorder notes the pause"
    );
    assert!(audits(&outs).iter().any(|a| a.0 == "recording_pause"));
    // Pausing twice is harmless; a consent answer while paused still counts.
    r.handle_command(t0, p(1), Command::RecordPause(true))
        .unwrap();
    assert!(drain(&mut r).is_empty());

    r.handle_command(t0, p(1), Command::RecordPause(false))
        .unwrap();
    let outs = drain(&mut r);
    let mut on = recordable(&outs);
    on.sort();
    assert_eq!(on, vec![(p(1), true), (p(2), true)], "consent stands");
    assert_eq!(recording_state(&outs, p(2)), Some((true, true, true)));
    assert_eq!(paused_state(&outs, p(9)), Some(false));
    assert!(audits(&outs).iter().any(|a| a.0 == "recording_resume"));
    r.handle_command(t0, p(1), Command::RecordStop).unwrap();
    assert_eq!(
        r.handle_command(t0, p(1), Command::RecordPause(true)),
        Err(ErrorCode::RecordingUnavailable)
    );
}

#[test]
fn the_recorder_is_sent_away_when_everyone_else_has_left() {
    let t0 = Instant::now();
    let mut r = recording_room(t0);
    start_recording(&mut r, t0);
    r.handle_join(t0, joiner(9, Role::Recorder)).unwrap();
    r.handle_command(t0, p(2), consent(true, "v2")).unwrap();
    drain(&mut r);
    r.handle_leave(t0, p(2), Departure::Left);
    let outs = drain(&mut r);
    assert_eq!(recordable(&outs), vec![(p(2), false)]);
    assert_eq!(closed(&outs, p(9)), None, "the provider is still there");
    r.handle_leave(t0, p(1), Departure::Left);
    let outs = drain(&mut r);
    assert_eq!(closed(&outs, p(9)), Some(ErrorCode::RecordingStopped));
    assert!(r.is_finished());
}

fn media(audio: MediaPresence, video: MediaPresence) -> MediaState {
    MediaState { audio, video }
}

#[test]
fn media_state_reaches_the_others_once_it_changes_and_waits_with_the_patient() {
    use MediaPresence::{None as Missing, Off, On};
    let t0 = Instant::now();
    let mut r = Room::new(VisitType::Consult, limits());
    r.handle_join(t0, joiner(1, Role::Provider)).unwrap();
    r.handle_join(t0, joiner(2, Role::Patient)).unwrap();
    drain(&mut r);
    // A waiting patient without a camera says so: nobody in the visit is told yet.
    r.handle_command(t0, p(2), Command::MediaState(media(On, Missing)))
        .unwrap();
    let outs = drain(&mut r);
    assert!(to(&outs, p(1)).is_empty(), "{outs:?}");
    // On admission the provider learns it with the patient's info.
    r.handle_command(t0, p(1), Command::Admit(p(2))).unwrap();
    let outs = drain(&mut r);
    let joined = to(&outs, p(1)).into_iter().find_map(|m| match m {
        ServerMessage::ParticipantJoined { participant } => Some(participant),
        _ => None,
    });
    assert_eq!(joined.unwrap().media, Some(media(On, Missing)));
    // A mute is relayed to the others, not echoed to the sender; a repeat says nothing.
    r.handle_command(t0, p(2), Command::MediaState(media(Off, Missing)))
        .unwrap();
    let outs = drain(&mut r);
    assert!(matches!(&to(&outs, p(1))[..],
        [ServerMessage::ParticipantUpdated { participant }]
            if participant.participant == p(2) && participant.media == Some(media(Off, Missing))));
    assert!(to(&outs, p(2)).is_empty());
    r.handle_command(t0, p(2), Command::MediaState(media(Off, Missing)))
        .unwrap();
    assert!(drain(&mut r).is_empty());
    // Someone arriving later sees it in the participants they are given.
    let chap = r.handle_join(t0, joiner(3, Role::Chaperone)).unwrap();
    let pat = chap.participants.iter().find(|i| i.participant == p(2));
    assert_eq!(pat.unwrap().media, Some(media(Off, Missing)));
}

fn clinician_present(outs: &[Out], id: ParticipantId) -> Option<bool> {
    to(outs, id).into_iter().rev().find_map(|m| match m {
        ServerMessage::Waiting {
            clinician_present, ..
        } => Some(clinician_present),
        _ => None,
    })
}

#[test]
fn the_waiting_room_hears_when_a_provider_arrives_and_when_the_last_one_leaves() {
    let t0 = Instant::now();
    let mut r = Room::new(VisitType::Consult, limits());
    r.handle_join(t0, joiner(2, Role::Patient)).unwrap();
    assert_eq!(clinician_present(&drain(&mut r), p(2)), Some(false));
    // A chaperone cannot admit: no change for the patient.
    r.handle_join(t0, joiner(3, Role::Chaperone)).unwrap();
    assert_eq!(clinician_present(&drain(&mut r), p(2)), None);
    r.handle_join(t0, joiner(1, Role::Provider)).unwrap();
    assert_eq!(clinician_present(&drain(&mut r), p(2)), Some(true));
    // A reload of the provider (the same token) is no departure.
    let mut again = joiner(4, Role::Provider);
    again.jti = "jti-1".into();
    r.handle_join(t0, again).unwrap();
    assert_eq!(clinician_present(&drain(&mut r), p(2)), None);
    r.handle_leave(t0, p(4), Departure::Dropped);
    assert_eq!(clinician_present(&drain(&mut r), p(2)), Some(false));
}

fn consents(outs: &[Out], id: ParticipantId) -> Option<Vec<(ParticipantId, ConsentStatus)>> {
    to(outs, id).into_iter().rev().find_map(|m| match m {
        ServerMessage::Consents { entries } => {
            Some(entries.iter().map(|e| (e.participant, e.consent)).collect())
        }
        _ => None,
    })
}

#[test]
fn clinicians_see_each_participants_consent_and_patients_do_not() {
    let t0 = Instant::now();
    let mut r = recording_room(t0);
    r.handle_join(t0, joiner(3, Role::Chaperone)).unwrap();
    drain(&mut r);
    start_recording(&mut r, t0);
    let outs = drain(&mut r);
    let asked = vec![
        (p(1), ConsentStatus::Asked),
        (p(2), ConsentStatus::Asked),
        (p(3), ConsentStatus::Asked),
    ];
    assert_eq!(consents(&outs, p(1)), Some(asked.clone()));
    assert_eq!(consents(&outs, p(3)), Some(asked));
    assert_eq!(
        consents(&outs, p(2)),
        None,
        "a patient is not told others' consent"
    );
    // The recorder joins: it is not among the entries.
    r.handle_join(t0, joiner(9, Role::Recorder)).unwrap();
    assert_eq!(consents(&drain(&mut r), p(1)), None, "nothing changed");
    r.handle_command(t0, p(2), consent(true, "v2")).unwrap();
    r.handle_command(t0, p(3), consent(false, "v2")).unwrap();
    let outs = drain(&mut r);
    assert_eq!(
        consents(&outs, p(1)),
        Some(vec![
            (p(1), ConsentStatus::Asked),
            (p(2), ConsentStatus::Accepted),
            (p(3), ConsentStatus::Declined),
        ])
    );
    assert_eq!(consents(&outs, p(2)), None);
    // A stopped recording empties the list.
    r.handle_command(t0, p(1), Command::RecordStop).unwrap();
    assert_eq!(consents(&drain(&mut r), p(1)), Some(vec![]));
}
