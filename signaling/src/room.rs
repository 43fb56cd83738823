//! One visit's clinic logic, without I/O (time is an argument, so every rule is a unit test): who
//! is in the visit, who waits, who may admit, deny, remove and end, grace periods and the maximum
//! wait. Inputs are `handle_*(now, …)`, outputs are [`Out`]s from [`Room::poll_output`] and timers
//! from [`Room::poll_timeout`]. The visit task in `visits.rs` owns one `Room` and carries the
//! outputs out.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use bedside_proto::{
    ConsentDecision, ConsentEntry, ConsentInfo, ConsentStatus, ErrorCode, MediaState,
    ParticipantId, ParticipantInfo, QueueEntry, Role, ServerMessage, VisitType,
};

/// Limits of one visit, from the visit type's config.
#[derive(Debug, Clone)]
pub struct RoomLimits {
    /// Most participants (waiting and admitted) at once.
    pub max_participants: usize,
    /// Longest time in the waiting room before the session is ended.
    pub max_wait: Duration,
    /// How long a dropped participant keeps their place (waiting) or admission.
    pub grace: Duration,
    /// How long someone a clinician denied is refused when they knock again (by the token's
    /// `sub`), so a denied patient cannot fill the queue again at once. Zero: no cool-down.
    pub deny_cooldown: Duration,
}

/// Someone joining, from their verified token.
#[derive(Clone)]
pub(crate) struct Joiner {
    pub(crate) id: ParticipantId,
    pub(crate) subject: String,
    pub(crate) jti: String,
    pub(crate) role: Role,
    pub(crate) name: Option<String>,
    pub(crate) reason: Option<String>,
    /// The token's FHIR references, for the visit's Encounter (opaque, like `subject`).
    pub(crate) fhir: bedside_token::FhirRefs,
}

/// What a clinician (or a participant, for their own video) asks of the visit.
#[derive(Debug, Clone)]
pub(crate) enum Command {
    Admit(ParticipantId),
    AdmitAll,
    Deny(ParticipantId, Option<String>),
    Remove(ParticipantId),
    EndVisit,
    NotifyWaiting(String),
    ShowVideo(bool),
    /// A participant's microphone and camera state (`media_state`), for the others' tiles.
    MediaState(MediaState),
    /// Provider: start recording; `recorder_available`: a recorder agent is connected.
    RecordStart {
        recorder_available: bool,
    },
    RecordStop,
    /// Provider: pause (`true`) or resume (`false`) the recording.
    RecordPause(bool),
    /// A participant's consent decision about the visit's recording, with the consent text
    /// version they answer and the wall-clock time it arrived.
    Consent {
        accept: bool,
        text_version: String,
        at_unix_ms: u64,
    },
}

/// The consent text participants are shown when a provider starts recording (from config).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsentText {
    pub version: String,
    pub text: String,
}

/// How a session ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Departure {
    /// The participant pressed leave.
    Left,
    /// The connection dropped: the grace period applies.
    Dropped,
}

/// An auditable event (opaque ids and codes only; `crate::audit` writes it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct AuditNote {
    pub(crate) kind: &'static str,
    pub(crate) participant: ParticipantId,
    pub(crate) subject: String,
    pub(crate) role: Role,
    pub(crate) actor: Option<ParticipantId>,
    pub(crate) code: Option<&'static str>,
    /// The consent text version a consent entry refers to.
    pub(crate) text_version: Option<String>,
}

/// Outputs for the visit task.
#[derive(Debug, Clone)]
pub(crate) enum Out {
    /// A message for one session.
    Send(ParticipantId, ServerMessage),
    /// The session was admitted: it may start media; the message tells the client.
    Admit(ParticipantId, ServerMessage),
    /// End that session with this error.
    Close(ParticipantId, ErrorCode, String),
    /// The participant's "show my video" changed (the SFU re-routes).
    Shown(ParticipantId, bool),
    /// The participant's tracks may now (or no longer) go to the recorder.
    Recordable(ParticipantId, bool),
    /// The visit records but has no recorder: ask a recorder agent to join.
    StartRecorder,
    /// A wait ended after this long, this way (`admitted`, `denied`, `left`, `timeout`,
    /// `removed`, `ended`), for the wait-time metric.
    WaitEnded(Duration, &'static str),
    Audit(AuditNote),
    /// The recording ended: a provider stopped it (`Some`), nobody was left to record, or the
    /// visit ended; for the webhooks, which report every stop.
    RecordingStopped(Option<ParticipantId>, &'static str),
}

/// Why a join was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refusal {
    VisitFull,
    VisitEnded,
    /// A recorder joined a visit that is not recording.
    NotRecording,
    /// A clinician denied this person (their token's `sub`) within the deny cool-down.
    RecentlyDenied,
}

/// The result of a successful join, for the `joined` message.
#[derive(Debug, Clone)]
pub(crate) struct Entered {
    pub(crate) admitted: bool,
    pub(crate) participants: Vec<ParticipantInfo>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Waiting { since: Instant },
    Admitted,
}

struct Member {
    who: Joiner,
    state: State,
    shown: bool,
    /// Consent to the current recording (reset when a recording stops).
    consent: Consent,
    /// What the SFU was last told (`Out::Recordable`).
    recordable: bool,
    /// The last `recording` message sent to this member.
    recording_sent: Option<RecordingState>,
    /// What their client last said of its microphone and camera.
    media: Option<MediaState>,
    /// The last `consents` list sent to this member (clinicians only).
    consents_sent: Option<Vec<ConsentEntry>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Consent {
    /// Not asked (no recording, or not admitted yet).
    None,
    Asked,
    Accepted,
    Declined,
}

/// What a member was last told of the recording (see `ServerMessage::Recording`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
struct RecordingState {
    active: bool,
    paused: bool,
    recorded: bool,
    you: bool,
}

/// A recording in progress: consent decisions so far, for the recorder's metadata.
struct Recording {
    records: Vec<ConsentInfo>,
    /// A provider paused it: nothing is recordable until resumed; consent stands.
    paused: bool,
}

/// A participant who dropped and may return within the grace period.
struct Away {
    subject: String,
    role: Role,
    state: State,
    until: Instant,
}

/// Someone a clinician denied: refused when knocking again until `until`.
struct Denied {
    subject: String,
    until: Instant,
}

/// The most deny cool-downs one visit remembers; beyond it the oldest is forgotten early.
const MAX_DENIED: usize = 1_000;

pub(crate) struct Room {
    visit_type: VisitType,
    limits: RoomLimits,
    members: Vec<Member>,
    away: Vec<Away>,
    denied: Vec<Denied>,
    note: Option<String>,
    ended: bool,
    /// `None`: recording is not enabled on this server.
    consent_text: Option<ConsentText>,
    recording: Option<Recording>,
    /// Whether the waiting room was last told a provider is present.
    provider_present_told: bool,
    out: VecDeque<Out>,
}

/// Roles that wait for a clinician (docs/design.md "Roles").
pub(crate) fn waits(role: Role) -> bool {
    matches!(role, Role::Patient | Role::Caregiver | Role::Interpreter)
}

/// Roles that may admit, deny, remove and end (docs/design.md "Roles": the provider).
fn runs_visit(role: Role) -> bool {
    role == Role::Provider
}

/// The longest clinician message to the waiting room, in characters.
pub(crate) const MAX_NOTE_CHARS: usize = 500;
/// The longest deny reason, in characters.
pub(crate) const MAX_REASON_CHARS: usize = 500;

impl Room {
    pub(crate) fn new(visit_type: VisitType, limits: RoomLimits) -> Self {
        Room {
            visit_type,
            limits,
            members: Vec::new(),
            away: Vec::new(),
            denied: Vec::new(),
            note: None,
            ended: false,
            consent_text: None,
            recording: None,
            provider_present_told: false,
            out: VecDeque::new(),
        }
    }

    /// Enables recording in this visit with this consent text.
    pub(crate) fn with_recording(mut self, consent_text: Option<ConsentText>) -> Self {
        self.consent_text = consent_text;
        self
    }

    /// A session joins. Clinicians enter; patients, caregivers and interpreters wait unless
    /// they return within the grace period after being admitted.
    pub(crate) fn handle_join(&mut self, now: Instant, who: Joiner) -> Result<Entered, Refusal> {
        if self.ended {
            return Err(Refusal::VisitEnded);
        }
        // One live session per token: the newer session takes the older one's place.
        let mut state = None;
        if let Some(pos) = self.members.iter().position(|m| m.who.jti == who.jti) {
            let old = self.members.remove(pos);
            if old.recordable {
                self.out.push_back(Out::Recordable(old.who.id, false));
            }
            self.out.push_back(Out::Close(
                old.who.id,
                ErrorCode::SessionReplaced,
                "this visit was opened again elsewhere".into(),
            ));
            if old.state == State::Admitted {
                self.broadcast_admitted(ServerMessage::ParticipantLeft {
                    participant: old.who.id,
                });
            }
            state = Some(old.state);
        }
        // A return within the grace period keeps the place or the admission.
        if state.is_none() {
            if let Some(pos) = self
                .away
                .iter()
                .position(|a| a.subject == who.subject && a.role == who.role)
            {
                state = Some(self.away.remove(pos).state);
            }
        }
        self.denied.retain(|d| d.until > now);
        if state.is_none()
            && waits(who.role)
            && self.denied.iter().any(|d| d.subject == who.subject)
        {
            self.audit("refuse", &who, None, Some("deny_cooldown"));
            return Err(Refusal::RecentlyDenied);
        }
        if state.is_none() && self.members.len() >= self.limits.max_participants {
            self.audit("refuse", &who, None, Some("visit_full"));
            return Err(Refusal::VisitFull);
        }
        let state = state.unwrap_or(if waits(who.role) {
            State::Waiting { since: now }
        } else {
            State::Admitted
        });
        let admitted = state == State::Admitted;
        self.audit(
            "join",
            &who,
            None,
            Some(if admitted { "admitted" } else { "waiting" }),
        );
        if who.role == Role::Recorder && self.recording.is_none() {
            // A recorder arrives for a recording that has stopped meanwhile.
            self.audit("refuse", &who, None, Some("recording_stopped"));
            return Err(Refusal::NotRecording);
        }
        let shown = self.visit_type == VisitType::Consult;
        self.members.push(Member {
            who: who.clone(),
            state,
            shown,
            consent: Consent::None,
            recordable: false,
            recording_sent: None,
            media: None,
            consents_sent: None,
        });
        let participants = if admitted {
            let info = self.info(who.id).expect("the member was just added");
            self.broadcast_admitted_except(
                who.id,
                ServerMessage::ParticipantJoined { participant: info },
            );
            if who.role.is_clinician() {
                let queue = self.queue(now);
                self.out.push_back(Out::Send(who.id, queue));
            }
            self.admitted_infos_except(who.id)
        } else {
            Vec::new()
        };
        if !admitted {
            self.queue_changed(now);
        } else {
            self.entered_recording_visit(who.id);
        }
        self.provider_presence_changed();
        Ok(Entered {
            admitted,
            participants,
        })
    }

    /// A session ended.
    pub(crate) fn handle_leave(&mut self, now: Instant, id: ParticipantId, how: Departure) {
        let Some(pos) = self.members.iter().position(|m| m.who.id == id) else {
            return;
        };
        let m = self.members.remove(pos);
        let code = match how {
            Departure::Left => "left",
            Departure::Dropped => "dropped",
        };
        if how == Departure::Left {
            self.wait_ended(now, m.state, "left");
        }
        self.audit("depart", &m.who, None, Some(code));
        if how == Departure::Dropped && !self.ended {
            self.away.push(Away {
                subject: m.who.subject.clone(),
                role: m.who.role,
                state: m.state,
                until: now + self.limits.grace,
            });
        }
        if m.recordable {
            self.out.push_back(Out::Recordable(id, false));
        }
        match m.state {
            State::Admitted => {
                self.broadcast_admitted(ServerMessage::ParticipantLeft { participant: id })
            }
            State::Waiting { .. } => self.queue_changed(now),
        }
        if self.recording.is_some() {
            if m.who.role == Role::Recorder && how == Departure::Dropped {
                // The recorder died: ask for another one; the gap shows in the metadata.
                self.out.push_back(Out::StartRecorder);
            }
            if !self
                .members
                .iter()
                .any(|m| m.state == State::Admitted && m.who.role != Role::Recorder)
            {
                // Nobody is left to record.
                self.stop_recording(None);
            }
        }
        self.sync_recording();
        self.provider_presence_changed();
    }

    /// A command from participant `from`. Errors are for `from` only.
    pub(crate) fn handle_command(
        &mut self,
        now: Instant,
        from: ParticipantId,
        cmd: Command,
    ) -> Result<(), ErrorCode> {
        let Some(actor) = self.members.iter().find(|m| m.who.id == from) else {
            return Err(ErrorCode::NotJoined);
        };
        let actor_role = actor.who.role;
        let actor_admitted = actor.state == State::Admitted;
        if let Command::ShowVideo(show) = cmd {
            let m = self
                .members
                .iter_mut()
                .find(|m| m.who.id == from)
                .expect("the actor was found above");
            if m.shown != show {
                m.shown = show;
                self.out.push_back(Out::Shown(from, show));
                if let Some(info) = self.info(from) {
                    self.broadcast_admitted(ServerMessage::ParticipantUpdated {
                        participant: info,
                    });
                }
            }
            return Ok(());
        }
        if let Command::MediaState(media) = cmd {
            let m = self
                .members
                .iter_mut()
                .find(|m| m.who.id == from)
                .expect("the actor was found above");
            // Told once it changes; while waiting it is kept for the admission.
            if m.media != Some(media) {
                m.media = Some(media);
                if actor_admitted {
                    if let Some(info) = self.info(from) {
                        self.broadcast_admitted_except(
                            from,
                            ServerMessage::ParticipantUpdated { participant: info },
                        );
                    }
                }
            }
            return Ok(());
        }
        if let Command::Consent {
            accept,
            text_version,
            at_unix_ms,
        } = cmd
        {
            return self.consent(from, accept, text_version, at_unix_ms);
        }
        if !runs_visit(actor_role) || !actor_admitted {
            let who = self
                .members
                .iter()
                .find(|m| m.who.id == from)
                .map(|m| m.who.clone());
            if let Some(who) = who {
                self.audit("refuse", &who, None, Some("forbidden"));
            }
            return Err(ErrorCode::Forbidden);
        }
        match cmd {
            Command::Admit(target) => {
                if !self.is_waiting(target) {
                    return Err(ErrorCode::UnknownParticipant);
                }
                self.admit(now, from, target);
            }
            Command::AdmitAll => {
                let waiting: Vec<ParticipantId> = self
                    .members
                    .iter()
                    .filter(|m| matches!(m.state, State::Waiting { .. }))
                    .map(|m| m.who.id)
                    .collect();
                for target in waiting {
                    self.admit(now, from, target);
                }
            }
            Command::Deny(target, reason) => {
                if !self.is_waiting(target) {
                    return Err(ErrorCode::UnknownParticipant);
                }
                let pos = self
                    .members
                    .iter()
                    .position(|m| m.who.id == target)
                    .expect("is_waiting found the target");
                let m = self.members.remove(pos);
                self.wait_ended(now, m.state, "denied");
                self.audit("deny", &m.who, Some(from), None);
                if !self.limits.deny_cooldown.is_zero() {
                    if self.denied.len() >= MAX_DENIED {
                        self.denied.remove(0);
                    }
                    self.denied.push(Denied {
                        subject: m.who.subject.clone(),
                        until: now + self.limits.deny_cooldown,
                    });
                }
                let text = reason
                    .map(|r| r.chars().take(MAX_REASON_CHARS).collect::<String>())
                    .filter(|r| !r.trim().is_empty())
                    .unwrap_or_else(|| "A clinician could not admit you to this visit.".into());
                self.out
                    .push_back(Out::Close(target, ErrorCode::Denied, text));
                self.queue_changed(now);
            }
            Command::Remove(target) => {
                let Some(pos) = self.members.iter().position(|m| m.who.id == target) else {
                    return Err(ErrorCode::UnknownParticipant);
                };
                if target == from {
                    return Err(ErrorCode::Forbidden);
                }
                let m = self.members.remove(pos);
                if m.recordable {
                    self.out.push_back(Out::Recordable(target, false));
                }
                self.wait_ended(now, m.state, "removed");
                self.audit("remove", &m.who, Some(from), None);
                // No grace: a removed participant who comes back waits again.
                self.away.retain(|a| a.subject != m.who.subject);
                self.out.push_back(Out::Close(
                    target,
                    ErrorCode::Removed,
                    "A clinician removed you from this visit.".into(),
                ));
                match m.state {
                    State::Admitted => self.broadcast_admitted(ServerMessage::ParticipantLeft {
                        participant: target,
                    }),
                    State::Waiting { .. } => self.queue_changed(now),
                }
                self.provider_presence_changed();
            }
            Command::EndVisit => {
                let who = self
                    .members
                    .iter()
                    .find(|m| m.who.id == from)
                    .map(|m| m.who.clone())
                    .expect("the actor was found above");
                self.audit("end_visit", &who, Some(from), None);
                self.ended = true;
                self.away.clear();
                if self.recording.take().is_some() {
                    self.out
                        .push_back(Out::RecordingStopped(Some(from), "visit_ended"));
                }
                for m in std::mem::take(&mut self.members) {
                    if m.recordable {
                        self.out.push_back(Out::Recordable(m.who.id, false));
                    }
                    self.wait_ended(now, m.state, "ended");
                    self.out.push_back(Out::Close(
                        m.who.id,
                        ErrorCode::VisitEnded,
                        "The visit has ended.".into(),
                    ));
                }
            }
            Command::NotifyWaiting(text) => {
                let text: String = text.chars().take(MAX_NOTE_CHARS).collect();
                self.note = (!text.trim().is_empty()).then_some(text);
                self.positions_changed();
            }
            Command::RecordStart { recorder_available } => {
                let Some(text) = self.consent_text.clone() else {
                    return Err(ErrorCode::RecordingDisabled);
                };
                if self.recording.is_some() {
                    return Ok(());
                }
                if !recorder_available {
                    return Err(ErrorCode::RecordingUnavailable);
                }
                let who = self.joiner(from).expect("the actor was found above");
                self.audit("recording_start", &who, Some(from), None);
                self.recording = Some(Recording {
                    records: Vec::new(),
                    paused: false,
                });
                let ask: Vec<ParticipantId> = self
                    .members
                    .iter()
                    .filter(|m| m.state == State::Admitted && m.who.role != Role::Recorder)
                    .map(|m| m.who.id)
                    .collect();
                for id in ask {
                    self.ask_consent(id, &text);
                }
                self.out.push_back(Out::StartRecorder);
                self.sync_recording();
            }
            Command::RecordStop => {
                if self.recording.is_none() {
                    return Err(ErrorCode::RecordingUnavailable);
                }
                self.stop_recording(Some(from));
                self.sync_recording();
            }
            Command::RecordPause(pause) => {
                let Some(rec) = &mut self.recording else {
                    return Err(ErrorCode::RecordingUnavailable);
                };
                if rec.paused == pause {
                    return Ok(());
                }
                rec.paused = pause;
                let who = self.joiner(from).expect("the actor was found above");
                let kind = if pause {
                    "recording_pause"
                } else {
                    "recording_resume"
                };
                self.audit(kind, &who, Some(from), None);
                self.sync_recording();
            }
            Command::ShowVideo(_) | Command::MediaState(_) | Command::Consent { .. } => {
                unreachable!("handled before the permission check")
            }
        }
        Ok(())
    }

    /// Time passed: waits that ran out end, grace periods expire.
    pub(crate) fn handle_timeout(&mut self, now: Instant) {
        let expired: Vec<ParticipantId> = self
            .members
            .iter()
            .filter(|m| match m.state {
                State::Waiting { since } => now >= since + self.limits.max_wait,
                State::Admitted => false,
            })
            .map(|m| m.who.id)
            .collect();
        for id in &expired {
            if let Some(pos) = self.members.iter().position(|m| m.who.id == *id) {
                let m = self.members.remove(pos);
                self.wait_ended(now, m.state, "timeout");
                self.audit("depart", &m.who, None, Some("wait_timeout"));
                self.out.push_back(Out::Close(
                    *id,
                    ErrorCode::WaitTimeout,
                    "No clinician could admit you in time. Please contact your clinic.".into(),
                ));
            }
        }
        if !expired.is_empty() {
            self.queue_changed(now);
        }
        self.away.retain(|a| a.until > now);
    }

    /// The next moment [`Room::handle_timeout`] has work.
    pub(crate) fn poll_timeout(&self) -> Option<Instant> {
        let waits = self.members.iter().filter_map(|m| match m.state {
            State::Waiting { since } => Some(since + self.limits.max_wait),
            State::Admitted => None,
        });
        let aways = self.away.iter().map(|a| a.until);
        waits.chain(aways).min()
    }

    pub(crate) fn poll_output(&mut self) -> Option<Out> {
        self.out.pop_front()
    }

    /// Nobody is here and nobody may return: the visit task can end.
    pub(crate) fn is_finished(&self) -> bool {
        self.members.is_empty() && (self.away.is_empty() || self.ended)
    }

    pub(crate) fn is_ended(&self) -> bool {
        self.ended
    }

    pub(crate) fn member_count(&self) -> (usize, usize) {
        let waiting = self
            .members
            .iter()
            .filter(|m| matches!(m.state, State::Waiting { .. }))
            .count();
        (waiting, self.members.len() - waiting)
    }

    fn wait_ended(&mut self, now: Instant, state: State, how: &'static str) {
        if let State::Waiting { since } = state {
            self.out
                .push_back(Out::WaitEnded(now.saturating_duration_since(since), how));
        }
    }

    fn is_waiting(&self, id: ParticipantId) -> bool {
        self.members
            .iter()
            .any(|m| m.who.id == id && matches!(m.state, State::Waiting { .. }))
    }

    fn admit(&mut self, now: Instant, actor: ParticipantId, target: ParticipantId) {
        let Some(m) = self.members.iter_mut().find(|m| m.who.id == target) else {
            return;
        };
        let was = m.state;
        m.state = State::Admitted;
        let who = m.who.clone();
        self.wait_ended(now, was, "admitted");
        self.audit("admit", &who, Some(actor), None);
        let participants = self.admitted_infos_except(target);
        self.out.push_back(Out::Admit(
            target,
            ServerMessage::Admitted {
                participants,
                // The session adds TURN credentials: the room does not hold secrets.
                ice_servers: Vec::new(),
            },
        ));
        if let Some(info) = self.info(target) {
            self.broadcast_admitted_except(
                target,
                ServerMessage::ParticipantJoined { participant: info },
            );
        }
        if who.role.is_clinician() {
            let queue = self.queue(now);
            self.out.push_back(Out::Send(target, queue));
        }
        self.queue_changed(now);
        self.entered_recording_visit(target);
    }

    /// An admitted participant (or the recorder) is in the visit: while it records, a
    /// participant is asked for consent and everyone learns the recording state; the recorder
    /// receives the consent decisions so far.
    fn entered_recording_visit(&mut self, id: ParticipantId) {
        let Some(rec) = &self.recording else {
            return;
        };
        if self.joiner(id).is_some_and(|w| w.role == Role::Recorder) {
            let records = rec.records.clone();
            for consent in records {
                self.out
                    .push_back(Out::Send(id, ServerMessage::ConsentRecorded { consent }));
            }
        } else if let Some(text) = self.consent_text.clone() {
            self.ask_consent(id, &text);
        }
        self.sync_recording();
    }

    fn ask_consent(&mut self, id: ParticipantId, text: &ConsentText) {
        if let Some(m) = self.members.iter_mut().find(|m| m.who.id == id) {
            m.consent = Consent::Asked;
            self.out.push_back(Out::Send(
                id,
                ServerMessage::ConsentRequest {
                    text_version: text.version.clone(),
                    text: text.text.clone(),
                },
            ));
        }
    }

    fn consent(
        &mut self,
        from: ParticipantId,
        accept: bool,
        text_version: String,
        at_unix_ms: u64,
    ) -> Result<(), ErrorCode> {
        let Some(current) = self.consent_text.as_ref().map(|t| t.version.clone()) else {
            return Err(ErrorCode::RecordingDisabled);
        };
        let Some(m) = self.members.iter_mut().find(|m| m.who.id == from) else {
            return Err(ErrorCode::NotJoined);
        };
        if self.recording.is_none() || m.consent == Consent::None || text_version != current {
            return Err(ErrorCode::ConsentMismatch);
        }
        let decision = match (accept, m.consent) {
            (true, _) => ConsentDecision::Accepted,
            (false, Consent::Accepted) => ConsentDecision::Withdrawn,
            (false, _) => ConsentDecision::Declined,
        };
        let unchanged = matches!(
            (accept, m.consent),
            (true, Consent::Accepted) | (false, Consent::Declined)
        );
        if unchanged {
            return Ok(());
        }
        m.consent = if accept {
            Consent::Accepted
        } else {
            Consent::Declined
        };
        let who = m.who.clone();
        let code = match decision {
            ConsentDecision::Accepted => "accepted",
            ConsentDecision::Declined => "declined",
            ConsentDecision::Withdrawn => "withdrawn",
        };
        self.out.push_back(Out::Audit(AuditNote {
            kind: "consent",
            participant: who.id,
            subject: who.subject.clone(),
            role: who.role,
            actor: None,
            code: Some(code),
            text_version: Some(current),
        }));
        let record = ConsentInfo {
            participant: from,
            decision,
            at_unix_ms,
            text_version,
        };
        if let Some(rec) = &mut self.recording {
            rec.records.push(record.clone());
        }
        let recorders = self.recorder_ids();
        for id in recorders {
            self.out.push_back(Out::Send(
                id,
                ServerMessage::ConsentRecorded {
                    consent: record.clone(),
                },
            ));
        }
        self.sync_recording();
        Ok(())
    }

    /// Ends the recording: nobody is recordable any more, consent is forgotten (a new
    /// recording asks again) and the recorder leaves.
    fn stop_recording(&mut self, actor: Option<ParticipantId>) {
        if self.recording.take().is_none() {
            return;
        }
        self.out.push_back(Out::RecordingStopped(
            actor,
            if actor.is_some() {
                "stopped"
            } else {
                "nobody_left"
            },
        ));
        if let Some(who) = actor.and_then(|a| self.joiner(a)) {
            self.audit("recording_stop", &who, actor, None);
        }
        for m in &mut self.members {
            m.consent = Consent::None;
        }
        let recorders = self.recorder_ids();
        for id in recorders {
            self.send_recording_state_to(id, RecordingState::default());
            if let Some(pos) = self.members.iter().position(|m| m.who.id == id) {
                let m = self.members.remove(pos);
                self.audit("depart", &m.who, actor, Some("recording_stopped"));
                self.out.push_back(Out::Close(
                    id,
                    ErrorCode::RecordingStopped,
                    "The recording was stopped.".into(),
                ));
                self.broadcast_admitted(ServerMessage::ParticipantLeft { participant: id });
            }
        }
    }

    /// Tells the SFU who is recordable and every admitted member the recording state, where
    /// either changed.
    fn sync_recording(&mut self) {
        let active = self.recording.is_some();
        let paused = self.recording.as_ref().is_some_and(|r| r.paused);
        let has_recorder = self
            .members
            .iter()
            .any(|m| m.who.role == Role::Recorder && m.state == State::Admitted);
        let mut any = false;
        for m in &mut self.members {
            let want = active
                && !paused
                && m.state == State::Admitted
                && m.who.role != Role::Recorder
                && m.consent == Consent::Accepted;
            if want != m.recordable {
                m.recordable = want;
                self.out.push_back(Out::Recordable(m.who.id, want));
            }
            any |= want;
        }
        let recorded = active && has_recorder && any;
        let states: Vec<(ParticipantId, RecordingState)> = self
            .members
            .iter()
            .filter(|m| m.state == State::Admitted)
            .map(|m| {
                let state = RecordingState {
                    active,
                    paused,
                    recorded,
                    you: recorded && m.recordable,
                };
                (m.who.id, state)
            })
            .collect();
        for (id, state) in states {
            self.send_recording_state_to(id, state);
        }
        self.sync_consents();
    }

    /// Tells each admitted clinician every participant's consent to the current recording,
    /// where it changed: clinicians see who agreed, nobody else does.
    fn sync_consents(&mut self) {
        let entries: Vec<ConsentEntry> = self
            .members
            .iter()
            .filter(|m| m.state == State::Admitted && m.who.role != Role::Recorder)
            .filter_map(|m| {
                let consent = match m.consent {
                    Consent::None => return None,
                    Consent::Asked => ConsentStatus::Asked,
                    Consent::Accepted => ConsentStatus::Accepted,
                    Consent::Declined => ConsentStatus::Declined,
                };
                Some(ConsentEntry {
                    participant: m.who.id,
                    consent,
                })
            })
            .collect();
        for m in &mut self.members {
            if m.state != State::Admitted || !m.who.role.is_clinician() {
                continue;
            }
            // An empty list is what someone who never saw a recording already knows.
            if m.consents_sent.as_deref().unwrap_or_default() == entries.as_slice() {
                continue;
            }
            m.consents_sent = Some(entries.clone());
            self.out.push_back(Out::Send(
                m.who.id,
                ServerMessage::Consents {
                    entries: entries.clone(),
                },
            ));
        }
    }

    fn send_recording_state_to(&mut self, id: ParticipantId, state: RecordingState) {
        let Some(m) = self.members.iter_mut().find(|m| m.who.id == id) else {
            return;
        };
        // Nothing to say to someone who never saw a recording.
        if m.recording_sent.unwrap_or_default() == state {
            return;
        }
        m.recording_sent = Some(state);
        self.out.push_back(Out::Send(
            id,
            ServerMessage::Recording {
                active: state.active,
                recorded: state.recorded,
                you: state.you,
                paused: state.paused,
            },
        ));
    }

    fn recorder_ids(&self) -> Vec<ParticipantId> {
        self.members
            .iter()
            .filter(|m| m.who.role == Role::Recorder)
            .map(|m| m.who.id)
            .collect()
    }

    fn joiner(&self, id: ParticipantId) -> Option<Joiner> {
        self.members
            .iter()
            .find(|m| m.who.id == id)
            .map(|m| m.who.clone())
    }

    fn info(&self, id: ParticipantId) -> Option<ParticipantInfo> {
        self.members
            .iter()
            .find(|m| m.who.id == id)
            .map(|m| ParticipantInfo {
                participant: m.who.id,
                role: m.who.role,
                name: m.who.name.clone(),
                shown: m.shown,
                media: m.media,
            })
    }

    fn admitted_infos_except(&self, id: ParticipantId) -> Vec<ParticipantInfo> {
        self.members
            .iter()
            .filter(|m| m.state == State::Admitted && m.who.id != id)
            .filter_map(|m| self.info(m.who.id))
            .collect()
    }

    fn broadcast_admitted(&mut self, msg: ServerMessage) {
        let to: Vec<ParticipantId> = self
            .members
            .iter()
            .filter(|m| m.state == State::Admitted)
            .map(|m| m.who.id)
            .collect();
        for id in to {
            self.out.push_back(Out::Send(id, msg.clone()));
        }
    }

    fn broadcast_admitted_except(&mut self, except: ParticipantId, msg: ServerMessage) {
        let to: Vec<ParticipantId> = self
            .members
            .iter()
            .filter(|m| m.state == State::Admitted && m.who.id != except)
            .map(|m| m.who.id)
            .collect();
        for id in to {
            self.out.push_back(Out::Send(id, msg.clone()));
        }
    }

    fn queue(&self, now: Instant) -> ServerMessage {
        let entries = self
            .waiting_in_order()
            .into_iter()
            .map(|(m, since)| QueueEntry {
                participant: m.who.id,
                role: m.who.role,
                name: m.who.name.clone(),
                reason: m.who.reason.clone(),
                waited_ms: now.saturating_duration_since(since).as_millis() as u64,
            })
            .collect();
        ServerMessage::Queue { entries }
    }

    fn waiting_in_order(&self) -> Vec<(&Member, Instant)> {
        let mut w: Vec<(&Member, Instant)> = self
            .members
            .iter()
            .filter_map(|m| match m.state {
                State::Waiting { since } => Some((m, since)),
                State::Admitted => None,
            })
            .collect();
        w.sort_by_key(|(m, since)| (*since, m.who.id));
        w
    }

    /// The queue changed: clinicians see the new queue, waiting people their new position.
    fn queue_changed(&mut self, now: Instant) {
        let queue = self.queue(now);
        let clinicians: Vec<ParticipantId> = self
            .members
            .iter()
            .filter(|m| m.state == State::Admitted && m.who.role.is_clinician())
            .map(|m| m.who.id)
            .collect();
        for id in clinicians {
            self.out.push_back(Out::Send(id, queue.clone()));
        }
        self.positions_changed();
    }

    fn positions_changed(&mut self) {
        let present = self.provider_present();
        self.provider_present_told = present;
        let order: Vec<ParticipantId> = self
            .waiting_in_order()
            .into_iter()
            .map(|(m, _)| m.who.id)
            .collect();
        for (i, id) in order.into_iter().enumerate() {
            self.out.push_back(Out::Send(
                id,
                ServerMessage::Waiting {
                    position: i as u32 + 1,
                    message: self.note.clone(),
                    clinician_present: present,
                },
            ));
        }
    }

    /// Whether a provider (who can admit) is in the visit.
    fn provider_present(&self) -> bool {
        self.members
            .iter()
            .any(|m| m.state == State::Admitted && runs_visit(m.who.role))
    }

    /// A provider arrived or the last one left: the waiting room hears of it.
    fn provider_presence_changed(&mut self) {
        if self.provider_present() != self.provider_present_told {
            self.positions_changed();
        }
    }

    fn audit(
        &mut self,
        kind: &'static str,
        who: &Joiner,
        actor: Option<ParticipantId>,
        code: Option<&'static str>,
    ) {
        self.out.push_back(Out::Audit(AuditNote {
            kind,
            participant: who.id,
            subject: who.subject.clone(),
            role: who.role,
            actor,
            code,
            text_version: None,
        }));
    }
}

#[cfg(test)]
mod tests;
