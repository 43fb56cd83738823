//! A real [`Room`] driven through visits, its outputs fed to [`VisitEvents`] as the visit task
//! does: the events, their order, their data, and what never appears in them.

use std::time::{Duration, Instant};

use super::*;
use crate::room::{Command, ConsentText, Departure, Joiner, Room, RoomLimits};

fn p(n: u64) -> ParticipantId {
    ParticipantId::from_raw(n)
}

fn joiner(n: u64, role: Role) -> Joiner {
    Joiner {
        id: p(n),
        subject: format!("sub-{n}"),
        jti: format!("jti-{n}"),
        role,
        name: Some("SENTINEL-NAME".into()),
        reason: Some("SENTINEL-REASON".into()),
        fhir: Default::default(),
    }
}

/// A room and its event observer on one simulated clock (ms since the visit started).
struct Visit {
    room: Room,
    events: VisitEvents,
    t0: Instant,
    all: Vec<Draft>,
}

impl Visit {
    fn new() -> Visit {
        let limits = RoomLimits {
            max_participants: 6,
            max_wait: Duration::from_secs(600),
            grace: Duration::from_secs(30),
            deny_cooldown: Duration::from_secs(120),
        };
        Visit {
            room: Room::new(VisitType::Consult, limits).with_recording(Some(ConsentText {
                version: "v7".into(),
                text: "SENTINEL-CONSENT-TEXT".into(),
            })),
            events: VisitEvents::start(1_000, VisitId::new("visit-1"), VisitType::Consult),
            t0: Instant::now(),
            all: Vec::new(),
        }
    }

    fn at(&self, ms: u64) -> Instant {
        self.t0 + Duration::from_millis(ms)
    }

    fn flush(&mut self, ms: u64) {
        while let Some(out) = self.room.poll_output() {
            self.events.observe(1_000 + ms, &out);
        }
        self.all.extend(self.events.take());
    }

    fn join(&mut self, ms: u64, n: u64, role: Role) {
        let at = self.at(ms);
        self.room.handle_join(at, joiner(n, role)).unwrap();
        self.flush(ms);
    }

    fn cmd(&mut self, ms: u64, from: u64, cmd: Command) {
        let at = self.at(ms);
        self.room.handle_command(at, p(from), cmd).unwrap();
        self.flush(ms);
    }

    fn leave(&mut self, ms: u64, n: u64, how: Departure) {
        let at = self.at(ms);
        self.room.handle_leave(at, p(n), how);
        self.flush(ms);
    }

    fn kinds(&self) -> Vec<&'static str> {
        self.all.iter().map(|d| d.kind.as_str()).collect()
    }

    fn data(&self, kind: &str) -> Vec<&Value> {
        self.all
            .iter()
            .filter(|d| d.kind.as_str() == kind)
            .map(|d| &d.data)
            .collect()
    }
}

#[test]
fn a_visit_reports_arrival_admission_presence_and_its_durations() {
    let mut v = Visit::new();
    v.join(0, 1, Role::Provider);
    v.join(1_000, 2, Role::Patient);
    v.cmd(61_000, 1, Command::Admit(p(2)));
    v.leave(661_000, 2, Departure::Left);
    v.cmd(662_000, 1, Command::EndVisit);
    v.events.finish(1_000 + 662_000, v.room.is_ended());
    v.all.extend(v.events.take());
    assert_eq!(
        v.kinds(),
        [
            "visit.started",
            "participant.joined",
            "participant.waiting",
            "participant.admitted",
            "participant.joined",
            "participant.left",
            "participant.left",
            "visit.ended",
            "visit.encounter",
        ]
    );
    let admitted = v.data("participant.admitted")[0];
    assert_eq!(
        *admitted,
        json!({"participant": "p2", "role": "patient", "sub": "sub-2", "by": "p1",
               "waited_ms": 60_000})
    );
    let left = v.data("participant.left");
    assert_eq!(
        (&left[0]["participant"], &left[0]["reason"]),
        (&json!("p2"), &json!("left"))
    );
    assert_eq!(
        (&left[1]["participant"], &left[1]["reason"]),
        (&json!("p1"), &json!("visit_ended"))
    );
    let ended = v.data("visit.ended")[0];
    assert_eq!(ended["reason"], "ended_by_provider");
    assert_eq!(ended["by"], "p1");
    assert_eq!(ended["duration_ms"], 662_000);
    assert_eq!(ended["started_at"], "1970-01-01T00:00:01.000Z");
    let patient = &ended["participants"][1];
    assert_eq!(
        (
            &patient["sub"],
            &patient["waited_ms"],
            &patient["in_visit_ms"]
        ),
        (&json!("sub-2"), &json!(60_000), &json!(600_000))
    );
    assert_eq!(patient["first_joined_at"], "1970-01-01T00:01:02.000Z");
}

#[test]
fn every_way_out_closes_presence_once_with_its_reason() {
    let mut v = Visit::new();
    v.join(0, 1, Role::Provider);
    v.join(0, 2, Role::Patient);
    v.join(0, 3, Role::Caregiver);
    v.join(0, 4, Role::Interpreter);
    v.cmd(
        10,
        1,
        Command::Deny(p(2), Some("SENTINEL-DENY-REASON".into())),
    );
    v.cmd(20, 1, Command::Admit(p(3)));
    v.cmd(30, 1, Command::Remove(p(3)));
    v.leave(40, 4, Departure::Dropped);
    // The same token again: the old session is replaced.
    let mut again = joiner(5, Role::Provider);
    again.jti = "jti-1".into();
    let at = v.at(50);
    v.room.handle_join(at, again).unwrap();
    v.flush(50);
    let reasons: Vec<(String, String)> = v
        .data("participant.left")
        .iter()
        .map(|d| {
            (
                d["participant"].as_str().unwrap().to_owned(),
                d["reason"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        reasons,
        [
            ("p2".into(), "denied".into()),
            ("p3".into(), "removed".into()),
            ("p4".into(), "dropped".into()),
            ("p1".into(), "replaced".into()),
        ]
    );
    let denied = v.data("participant.denied")[0];
    assert_eq!(
        (&denied["by"], &denied["participant"]),
        (&json!("p1"), &json!("p2"))
    );
    assert_eq!(v.data("participant.left")[1]["by"], "p1");
    let text = serde_json::to_string(&v.all.iter().map(|d| &d.data).collect::<Vec<_>>()).unwrap();
    for sentinel in [
        "SENTINEL-NAME",
        "SENTINEL-REASON",
        "SENTINEL-DENY",
        "SENTINEL-CONSENT",
        "jti-",
    ] {
        assert!(!text.contains(sentinel), "{sentinel} in {text}");
    }
}

#[test]
fn recording_start_consent_and_every_kind_of_stop_are_reported() {
    let mut v = Visit::new();
    v.join(0, 1, Role::Provider);
    v.join(0, 2, Role::Patient);
    v.cmd(1, 1, Command::Admit(p(2)));
    v.cmd(
        2,
        1,
        Command::RecordStart {
            recorder_available: true,
        },
    );
    v.cmd(
        3,
        2,
        Command::Consent {
            accept: true,
            text_version: "v7".into(),
            at_unix_ms: 3,
        },
    );
    v.cmd(4, 1, Command::RecordPause(true));
    v.cmd(5, 1, Command::RecordPause(false));
    v.cmd(6, 1, Command::RecordStop);
    v.cmd(
        7,
        1,
        Command::RecordStart {
            recorder_available: true,
        },
    );
    v.cmd(8, 1, Command::EndVisit);
    let recording: Vec<&str> = v
        .kinds()
        .into_iter()
        .filter(|k| k.starts_with("recording."))
        .collect();
    assert_eq!(
        recording,
        [
            "recording.started",
            "recording.consent",
            "recording.paused",
            "recording.resumed",
            "recording.stopped",
            "recording.started",
            "recording.stopped",
        ]
    );
    assert_eq!(
        *v.data("recording.consent")[0],
        json!({"participant": "p2", "role": "patient", "sub": "sub-2",
               "decision": "accepted", "text_version": "v7"})
    );
    let stops = v.data("recording.stopped");
    assert_eq!(*stops[0], json!({"reason": "stopped", "by": "p1"}));
    assert_eq!(*stops[1], json!({"reason": "visit_ended", "by": "p1"}));
}

#[test]
fn a_visit_everyone_left_ends_with_that_reason_and_nobody_left_present() {
    let mut v = Visit::new();
    v.join(0, 1, Role::Provider);
    v.join(0, 2, Role::Patient);
    // The task finishes while the patient still counts as waiting (e.g. the server stops).
    v.events.finish(5_000, false);
    v.all.extend(v.events.take());
    let left = v.data("participant.left");
    assert_eq!(left.len(), 2);
    assert!(left.iter().all(|d| d["reason"] == "left"));
    let ended = v.data("visit.ended")[0];
    assert_eq!(ended["reason"], "everyone_left");
    assert!(ended.get("by").is_none());
}
