use super::*;
use crate::policy::RoutingTable;
use bedside_proto::Source;

fn p(n: u64) -> ParticipantId {
    ParticipantId::from_raw(n)
}

fn visit(name: &str) -> VisitId {
    VisitId::new(name)
}

fn drain(f: &mut Forwarder) -> Vec<Decision> {
    std::iter::from_fn(|| f.poll_decision()).collect()
}

/// Accepts every pending subscription, as a client answering the renegotiation would.
fn accept_all(f: &mut Forwarder, now: Instant) -> Vec<Decision> {
    let decisions = drain(f);
    for d in &decisions {
        if let Decision::Subscribe {
            subscriber, track, ..
        } = d
        {
            f.handle_subscription_active(now, *subscriber, *track);
        }
    }
    decisions
}

#[test]
fn three_participants_receive_each_other_and_never_another_visit() {
    let now = Instant::now();
    let mut f = Forwarder::new(Arc::new(RoutingTable::open()));
    let a = visit("a");
    let b = visit("b");
    f.handle_peer_joined(now, p(1), a.clone(), VisitType::Consult, Role::Provider);
    f.handle_peer_joined(now, p(2), a.clone(), VisitType::Consult, Role::Patient);
    f.handle_peer_joined(now, p(4), b.clone(), VisitType::Consult, Role::Patient);
    let t1 = f
        .handle_track_published(now, p(1), TrackKind::Video, Source::Camera)
        .unwrap();
    let t2 = f
        .handle_track_published(now, p(2), TrackKind::Audio, Source::Microphone)
        .unwrap();
    let t4 = f
        .handle_track_published(now, p(4), TrackKind::Video, Source::Camera)
        .unwrap();
    // A late joiner is offered what is already published in its visit.
    f.handle_peer_joined(now, p(3), a.clone(), VisitType::Consult, Role::Caregiver);
    let t3 = f
        .handle_track_published(now, p(3), TrackKind::Video, Source::Camera)
        .unwrap();
    accept_all(&mut f, now);

    assert_eq!(sorted(f.receivers(t1)), vec![p(2), p(3)]);
    assert_eq!(sorted(f.receivers(t2)), vec![p(1), p(3)]);
    assert_eq!(sorted(f.receivers(t3)), vec![p(1), p(2)]);
    assert!(f.receivers(t4).is_empty(), "nobody else is in visit b");
}

fn sorted(s: &[ParticipantId]) -> Vec<ParticipantId> {
    let mut v = s.to_vec();
    v.sort();
    v
}

#[test]
fn media_flows_only_after_the_subscriber_accepted() {
    let now = Instant::now();
    let mut f = Forwarder::new(Arc::new(RoutingTable::open()));
    f.handle_peer_joined(now, p(1), visit("v"), VisitType::Consult, Role::Provider);
    f.handle_peer_joined(now, p(2), visit("v"), VisitType::Consult, Role::Patient);
    let t = f
        .handle_track_published(now, p(1), TrackKind::Video, Source::Camera)
        .unwrap();
    assert_eq!(
        drain(&mut f),
        vec![Decision::Subscribe {
            subscriber: p(2),
            track: t,
            publisher: p(1),
            kind: TrackKind::Video,
            source: Source::Camera
        }]
    );
    assert!(f.receivers(t).is_empty());
    f.handle_subscription_active(now, p(2), t);
    assert_eq!(f.receivers(t), &[p(2)]);
    // The new video subscriber needs a keyframe at once.
    assert_eq!(
        drain(&mut f),
        vec![Decision::RequestKeyframe {
            publisher: p(1),
            track: t
        }]
    );
}

#[test]
fn leaving_withdraws_tracks_from_everyone() {
    let now = Instant::now();
    let mut f = Forwarder::new(Arc::new(RoutingTable::open()));
    for n in 1..=3 {
        f.handle_peer_joined(now, p(n), visit("v"), VisitType::Consult, Role::Patient);
    }
    let t1a = f
        .handle_track_published(now, p(1), TrackKind::Audio, Source::Microphone)
        .unwrap();
    let t2v = f
        .handle_track_published(now, p(2), TrackKind::Video, Source::Camera)
        .unwrap();
    accept_all(&mut f, now);
    drain(&mut f);

    f.handle_peer_left(now, p(1));
    let mut d = drain(&mut f);
    d.sort_by_key(|d| format!("{d:?}"));
    assert_eq!(
        d,
        vec![
            Decision::Unsubscribe {
                subscriber: p(2),
                track: t1a
            },
            Decision::Unsubscribe {
                subscriber: p(3),
                track: t1a
            },
        ]
    );
    assert!(f.receivers(t1a).is_empty());
    assert_eq!(f.receivers(t2v), &[p(3)], "p1 no longer receives p2");
    assert_eq!(f.track_count(), 1);
}

#[test]
fn keyframe_requests_are_throttled_per_track_on_simulated_time() {
    let t0 = Instant::now();
    let mut f = Forwarder::new(Arc::new(RoutingTable::open()));
    f.handle_peer_joined(t0, p(1), visit("v"), VisitType::Consult, Role::Provider);
    f.handle_peer_joined(t0, p(2), visit("v"), VisitType::Consult, Role::Patient);
    f.handle_peer_joined(t0, p(3), visit("v"), VisitType::Consult, Role::Patient);
    let t = f
        .handle_track_published(t0, p(1), TrackKind::Video, Source::Camera)
        .unwrap();
    accept_all(&mut f, t0);
    drain(&mut f);

    let ms = Duration::from_millis;
    // Within the interval after the subscription's own request: merged.
    f.handle_keyframe_request(t0 + ms(100), p(2), t);
    f.handle_keyframe_request(t0 + ms(200), p(3), t);
    assert!(drain(&mut f).is_empty());
    // After it: one request goes through, the next one close behind is merged again.
    f.handle_keyframe_request(t0 + ms(600), p(2), t);
    f.handle_keyframe_request(t0 + ms(700), p(3), t);
    assert_eq!(
        drain(&mut f),
        vec![Decision::RequestKeyframe {
            publisher: p(1),
            track: t
        }]
    );
    f.handle_discontinuity(t0 + ms(1200), t);
    assert_eq!(drain(&mut f).len(), 1);
    // A subscriber whose connection just came up gets a keyframe at once, unthrottled.
    f.handle_subscriber_connected(t0 + ms(1300), p(2));
    assert_eq!(
        drain(&mut f),
        vec![Decision::RequestKeyframe {
            publisher: p(1),
            track: t
        }]
    );
}

#[test]
fn keyframe_requests_from_non_subscribers_and_for_audio_are_ignored() {
    let now = Instant::now();
    let mut f = Forwarder::new(Arc::new(RoutingTable::open()));
    f.handle_peer_joined(now, p(1), visit("v"), VisitType::Consult, Role::Provider);
    f.handle_peer_joined(now, p(9), visit("other"), VisitType::Consult, Role::Patient);
    let v = f
        .handle_track_published(now, p(1), TrackKind::Video, Source::Camera)
        .unwrap();
    let a = f
        .handle_track_published(now, p(1), TrackKind::Audio, Source::Microphone)
        .unwrap();
    f.handle_keyframe_request(now, p(9), v);
    f.handle_discontinuity(now, a);
    assert!(drain(&mut f).is_empty());
}

#[test]
fn the_policy_decides_who_is_offered_what() {
    let now = Instant::now();
    let mut f = Forwarder::new(Arc::new(RoutingTable::default()));
    let g = visit("g");
    f.handle_peer_joined(now, p(1), g.clone(), VisitType::Group, Role::Provider);
    f.handle_peer_joined(now, p(2), g.clone(), VisitType::Group, Role::Patient);
    let pv = f
        .handle_track_published(now, p(2), TrackKind::Video, Source::Camera)
        .unwrap();
    let pa = f
        .handle_track_published(now, p(2), TrackKind::Audio, Source::Microphone)
        .unwrap();
    f.handle_peer_joined(now, p(3), g.clone(), VisitType::Group, Role::Patient);
    accept_all(&mut f, now);
    assert_eq!(sorted(f.receivers(pa)), vec![p(1), p(3)]);
    assert_eq!(
        f.receivers(pv),
        &[p(1)],
        "a group patient's video is hidden by default"
    );

    // Showing the video subscribes the other patient; hiding it again unsubscribes.
    f.handle_shown_changed(now, p(2), true);
    accept_all(&mut f, now);
    assert_eq!(sorted(f.receivers(pv)), vec![p(1), p(3)]);
    drain(&mut f); // the new subscriber's keyframe request
    f.handle_shown_changed(now, p(2), false);
    let d = drain(&mut f);
    assert_eq!(
        d,
        vec![Decision::Unsubscribe {
            subscriber: p(3),
            track: pv
        }]
    );
    assert_eq!(f.receivers(pv), &[p(1)]);

    // A patient may not publish a screen; a supervisor publishes nothing by default.
    assert!(f
        .handle_track_published(now, p(2), TrackKind::Video, Source::Screen)
        .is_none());
    f.handle_peer_joined(now, p(4), g, VisitType::Group, Role::Supervisor);
    assert!(!f.may_publish(p(4), Source::Microphone));
    assert!(f.may_publish(p(1), Source::Screen));
}

#[test]
fn the_recorder_receives_only_consented_publishers_and_never_their_screen() {
    let now = Instant::now();
    let mut f = Forwarder::new(Arc::new(RoutingTable::default()));
    let v = visit("v");
    f.handle_peer_joined(now, p(1), v.clone(), VisitType::Consult, Role::Provider);
    f.handle_peer_joined(now, p(2), v.clone(), VisitType::Consult, Role::Patient);
    let prov_cam = f
        .handle_track_published(now, p(1), TrackKind::Video, Source::Camera)
        .unwrap();
    let prov_screen = f
        .handle_track_published(now, p(1), TrackKind::Video, Source::Screen)
        .unwrap();
    let pat_mic = f
        .handle_track_published(now, p(2), TrackKind::Audio, Source::Microphone)
        .unwrap();
    f.handle_peer_joined(now, p(9), v.clone(), VisitType::Consult, Role::Recorder);
    accept_all(&mut f, now);
    for t in [prov_cam, prov_screen, pat_mic] {
        assert!(
            !f.receivers(t).contains(&p(9)),
            "nobody consented yet: the recorder receives nothing"
        );
    }

    // The provider consents: their camera is recorded, never their screen.
    f.handle_recordable_changed(now, p(1), true);
    accept_all(&mut f, now);
    assert!(f.receivers(prov_cam).contains(&p(9)));
    assert!(!f.receivers(prov_screen).contains(&p(9)));
    assert!(!f.receivers(pat_mic).contains(&p(9)));

    // The patient consents, then withdraws: the recorder is unsubscribed at once.
    f.handle_recordable_changed(now, p(2), true);
    accept_all(&mut f, now);
    assert!(f.receivers(pat_mic).contains(&p(9)));
    drain(&mut f);
    f.handle_recordable_changed(now, p(2), false);
    assert_eq!(
        drain(&mut f),
        vec![Decision::Unsubscribe {
            subscriber: p(9),
            track: pat_mic
        }]
    );
    assert!(!f.receivers(pat_mic).contains(&p(9)));
    // Other subscribers are untouched by consent.
    assert_eq!(f.receivers(pat_mic), &[p(1)]);
    // A recordable publisher's new track goes to the recorder too.
    let prov_mic = f
        .handle_track_published(now, p(1), TrackKind::Audio, Source::Microphone)
        .unwrap();
    accept_all(&mut f, now);
    assert_eq!(sorted(f.receivers(prov_mic)), vec![p(2), p(9)]);
}

#[test]
fn consult_patients_never_receive_each_other() {
    let now = Instant::now();
    let mut f = Forwarder::new(Arc::new(RoutingTable::default()));
    let v = visit("c");
    f.handle_peer_joined(now, p(1), v.clone(), VisitType::Consult, Role::Patient);
    f.handle_peer_joined(now, p(2), v.clone(), VisitType::Consult, Role::Patient);
    f.handle_peer_joined(now, p(3), v, VisitType::Consult, Role::Provider);
    let a = f
        .handle_track_published(now, p(1), TrackKind::Audio, Source::Microphone)
        .unwrap();
    accept_all(&mut f, now);
    assert_eq!(f.receivers(a), &[p(3)]);
    // Showing video changes nothing in a consult: the rule has no `+shown`.
    f.handle_shown_changed(now, p(1), true);
    assert!(drain(&mut f).is_empty());
}

#[test]
fn unknown_ids_and_repeats_are_harmless() {
    let now = Instant::now();
    let mut f = Forwarder::new(Arc::new(RoutingTable::open()));
    assert!(f
        .handle_track_published(now, p(7), TrackKind::Audio, Source::Microphone)
        .is_none());
    f.handle_peer_left(now, p(7));
    f.handle_subscription_active(now, p(7), TrackId(42));
    f.handle_track_unpublished(now, TrackId(42));
    f.handle_peer_joined(now, p(1), visit("v"), VisitType::Consult, Role::Provider);
    f.handle_peer_joined(now, p(1), visit("w"), VisitType::Consult, Role::Provider);
    assert_eq!(f.peer_count(), 1);
    assert!(drain(&mut f).is_empty());
}

/// A seeded random walk of joins, leaves, publications and acceptances across three visits:
/// after every step, no track is routed outside its visit or back to its publisher, and every
/// receiver is a live participant.
#[test]
fn simulation_never_routes_across_visits() {
    let mut rng = 0x9E37_79B9_7F4A_7C15_u64;
    let mut next = move || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    let t0 = Instant::now();
    let mut f = Forwarder::new(Arc::new(RoutingTable::open()));
    let mut live: HashMap<ParticipantId, VisitId> = HashMap::new();
    let mut published: Vec<(TrackId, ParticipantId)> = Vec::new();
    let mut pending: Vec<(ParticipantId, TrackId)> = Vec::new();
    for step in 0..5_000u64 {
        let now = t0 + Duration::from_millis(step * 10);
        let id = p(next() % 12);
        match next() % 5 {
            0 => {
                let v = visit(["x", "y", "z"][(next() % 3) as usize]);
                live.entry(id).or_insert_with(|| v.clone());
                f.handle_peer_joined(now, id, v, VisitType::Consult, Role::Patient);
            }
            1 => {
                live.remove(&id);
                published.retain(|(_, owner)| *owner != id);
                f.handle_peer_left(now, id);
            }
            2 => {
                let kind = if next() % 2 == 0 {
                    TrackKind::Audio
                } else {
                    TrackKind::Video
                };
                let source = Source::default_for(kind);
                if let Some(t) = f.handle_track_published(now, id, kind, source) {
                    published.push((t, id));
                }
            }
            3 => {
                if let Some((s, t)) = pending.pop() {
                    f.handle_subscription_active(now, s, t);
                }
            }
            _ => {
                if let Some((t, _)) = published.get((next() % 8) as usize).copied() {
                    f.handle_keyframe_request(now, id, t);
                }
            }
        }
        while let Some(d) = f.poll_decision() {
            if let Decision::Subscribe {
                subscriber, track, ..
            } = d
            {
                pending.push((subscriber, track));
            }
        }
        for (t, owner) in &published {
            for r in f.receivers(*t) {
                assert_ne!(
                    r, owner,
                    "step {step}: a track routed back to its publisher"
                );
                assert_eq!(live.get(r), live.get(owner), "step {step}: crossed visits");
            }
        }
    }
}
