//! From a visit's room outputs to webhook events, without I/O (time is an argument). The visit
//! task feeds every [`Out`] through [`VisitEvents::observe`] before carrying it out and hands
//! what comes back to the outbox writer.
//!
//! Each waiting or joined participant is closed by exactly one `participant.left`, whatever the
//! way out (left, dropped, wait_timeout, denied, removed, replaced, visit_ended), so a receiver
//! computes presence from `waiting`/`joined` … `left` alone. The recorder agent is not a
//! participant here: the `recording.*` events cover it.
//!
//! Only opaque ids, roles, codes and times go into `data`: a [`Joiner`]'s name and reason, a deny
//! reason's text and the messages to people never reach this module's output.
//!
//! [`Joiner`]: crate::room::Joiner

use std::collections::HashMap;

use bedside_proto::{ErrorCode, ParticipantId, Role, VisitId, VisitType};
use bedside_token::FhirRefs;
use bedside_webhook::{rfc3339_ms, EventType};
use serde_json::{json, Value};

use crate::room::{AuditNote, Joiner, Out};

/// An event before the outbox gives it a sequence number.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Draft {
    pub(crate) kind: EventType,
    pub(crate) created_ms: u64,
    pub(crate) data: Value,
}

/// The most people (by `sub` and role) a `visit.ended` summary lists.
const MAX_SUMMARY: usize = 200;
/// The most joins whose FHIR references wait for the room's verdict.
const MAX_PENDING_REFS: usize = 1000;

struct Present {
    role: Role,
    sub: String,
    /// Waiting since, or in the visit since.
    since_ms: u64,
    in_visit: bool,
}

/// One person's (`sub`, role) totals over the visit, for `visit.ended`.
#[derive(Default)]
struct Totals {
    sessions: u64,
    waited_ms: u64,
    in_visit_ms: u64,
    first_joined_ms: Option<u64>,
    last_left_ms: Option<u64>,
    /// The person's own FHIR resource (the token's `fhir.participant`).
    fhir: Option<String>,
}

/// What is known of a visit at one moment: the `visit.ended` data, the Encounter, and
/// `bedside visits show`.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Summary {
    pub(crate) visit: VisitId,
    pub(crate) visit_type: VisitType,
    pub(crate) started_ms: u64,
    /// When the visit ended; `None` while it runs (then `now_ms` is the moment of the summary).
    pub(crate) ended_ms: Option<u64>,
    pub(crate) now_ms: u64,
    pub(crate) ended_by_provider: bool,
    pub(crate) by: Option<ParticipantId>,
    /// From the tokens' `fhir` claims (the first given wins).
    pub(crate) subject: Option<String>,
    pub(crate) appointment: Option<String>,
    pub(crate) people: Vec<Person>,
    pub(crate) truncated: bool,
}

/// One person (`sub` and role) over all their sessions.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Person {
    pub(crate) sub: String,
    pub(crate) role: Role,
    pub(crate) sessions: u64,
    pub(crate) waited_ms: u64,
    pub(crate) in_visit_ms: u64,
    pub(crate) first_joined_ms: Option<u64>,
    /// The last time they left the visit; `None` while they are in it (or never were).
    pub(crate) last_left_ms: Option<u64>,
    /// In the visit (`Some(true)`) or waiting (`Some(false)`) now.
    pub(crate) present: Option<bool>,
    pub(crate) fhir: Option<String>,
}

impl Summary {
    /// The summary as JSON (the `visit.ended` data, and the admin listener's `/visits/{id}`).
    pub(crate) fn to_json(&self) -> Value {
        let participants: Vec<Value> = self
            .people
            .iter()
            .map(|p| {
                json!({
                    "sub": p.sub,
                    "role": p.role.as_str(),
                    "sessions": p.sessions,
                    "waited_ms": p.waited_ms,
                    "in_visit_ms": p.in_visit_ms,
                    "first_joined_at": p.first_joined_ms.map(rfc3339_ms),
                    "last_left_at": p.last_left_ms.map(rfc3339_ms),
                })
            })
            .collect();
        let mut participants = participants;
        for (json, p) in participants.iter_mut().zip(&self.people) {
            if let Some(in_visit) = p.present {
                json["present"] = json!(if in_visit { "in_visit" } else { "waiting" });
            }
        }
        let end = self.ended_ms.unwrap_or(self.now_ms);
        let mut data = json!({
            "visit_type": self.visit_type.as_str(),
            "started_at": rfc3339_ms(self.started_ms),
            "duration_ms": end.saturating_sub(self.started_ms),
            "participants": participants,
            "participants_truncated": self.truncated,
        });
        if let Some(ended) = self.ended_ms {
            data["ended_at"] = json!(rfc3339_ms(ended));
            data["reason"] = json!(if self.ended_by_provider {
                "ended_by_provider"
            } else {
                "everyone_left"
            });
        }
        if let Some(by) = self.by.filter(|_| self.ended_by_provider) {
            data["by"] = json!(by.to_string());
        }
        data
    }
}

/// What one visit task has told the webhooks so far.
pub(crate) struct VisitEvents {
    visit: VisitId,
    visit_type: VisitType,
    subject: Option<String>,
    appointment: Option<String>,
    /// FHIR references of joins the room has not answered yet.
    pending_refs: HashMap<ParticipantId, Option<String>>,
    started_ms: u64,
    present: HashMap<ParticipantId, Present>,
    totals: Vec<((String, Role), Totals)>,
    truncated: bool,
    ended_by: Option<ParticipantId>,
    out: Vec<Draft>,
}

impl VisitEvents {
    /// The visit task started: `visit.started`.
    pub(crate) fn start(now_ms: u64, visit: VisitId, visit_type: VisitType) -> VisitEvents {
        let mut v = VisitEvents {
            visit,
            visit_type,
            subject: None,
            appointment: None,
            pending_refs: HashMap::new(),
            started_ms: now_ms,
            present: HashMap::new(),
            totals: Vec::new(),
            truncated: false,
            ended_by: None,
            out: Vec::new(),
        };
        v.push(
            EventType::VisitStarted,
            now_ms,
            json!({"visit_type": visit_type.as_str()}),
        );
        v
    }

    /// The events produced since the last call.
    pub(crate) fn take(&mut self) -> Vec<Draft> {
        std::mem::take(&mut self.out)
    }

    fn push(&mut self, kind: EventType, now_ms: u64, data: Value) {
        self.out.push(Draft {
            kind,
            created_ms: now_ms,
            data,
        });
    }

    /// A session is about to join: its token's FHIR references, kept until the room admits it
    /// to the waiting room or the visit (the audit `join`), dropped if the room refuses.
    pub(crate) fn joining(&mut self, who: &Joiner) {
        let FhirRefs {
            patient,
            appointment,
            participant,
        } = &who.fhir;
        if self.subject.is_none() {
            self.subject.clone_from(patient);
        }
        if self.appointment.is_none() {
            self.appointment.clone_from(appointment);
        }
        if participant.is_some() && self.pending_refs.len() < MAX_PENDING_REFS {
            self.pending_refs.insert(who.id, participant.clone());
        }
    }

    pub(crate) fn observe(&mut self, now_ms: u64, out: &Out) {
        match out {
            Out::Audit(note) if note.role != Role::Recorder => self.audit(now_ms, note),
            Out::Close(id, code, _) => {
                let reason = match code {
                    ErrorCode::SessionReplaced => "replaced",
                    ErrorCode::VisitEnded => "visit_ended",
                    _ => return,
                };
                self.left(now_ms, *id, reason, None);
            }
            Out::RecordingStopped(by, reason) => {
                let mut data = json!({"reason": reason});
                if let Some(by) = by {
                    data["by"] = json!(by.to_string());
                }
                self.push(EventType::RecordingStopped, now_ms, data);
            }
            _ => {}
        }
    }

    fn audit(&mut self, now_ms: u64, note: &AuditNote) {
        let id = note.participant;
        let by = note.actor.map(|a| a.to_string());
        match (note.kind, note.code) {
            ("join", Some(code @ ("waiting" | "admitted"))) => {
                let in_visit = code == "admitted";
                self.present.insert(
                    id,
                    Present {
                        role: note.role,
                        sub: note.subject.clone(),
                        since_ms: now_ms,
                        in_visit,
                    },
                );
                let fhir = self.pending_refs.remove(&id).flatten();
                self.totals_of(&note.subject, note.role, |t| {
                    t.sessions += 1;
                    if fhir.is_some() {
                        t.fhir = fhir;
                    }
                });
                let data = self.who(id);
                if in_visit {
                    self.joined(now_ms, &note.subject, note.role, data);
                } else {
                    self.push(EventType::ParticipantWaiting, now_ms, data);
                }
            }
            ("admit", _) => {
                let Some(p) = self.present.get_mut(&id) else {
                    return;
                };
                let waited = now_ms.saturating_sub(p.since_ms);
                p.in_visit = true;
                p.since_ms = now_ms;
                self.totals_of(&note.subject, note.role, |t| t.waited_ms += waited);
                let mut data = self.who(id);
                data["by"] = json!(by);
                data["waited_ms"] = json!(waited);
                self.push(EventType::ParticipantAdmitted, now_ms, data);
                let data = self.who(id);
                self.joined(now_ms, &note.subject, note.role, data);
            }
            ("deny", _) => {
                let Some(p) = self.present.get(&id) else {
                    return;
                };
                let mut data = self.who(id);
                data["by"] = json!(by);
                data["waited_ms"] = json!(now_ms.saturating_sub(p.since_ms));
                self.push(EventType::ParticipantDenied, now_ms, data);
                self.left(now_ms, id, "denied", note.actor);
            }
            ("remove", _) => self.left(now_ms, id, "removed", note.actor),
            ("depart", Some(code @ ("left" | "dropped" | "wait_timeout"))) => {
                self.left(now_ms, id, code, None)
            }
            ("consent", Some(decision)) => {
                let mut data = self.who(id);
                if data.is_null() {
                    return;
                }
                data["decision"] = json!(decision);
                data["text_version"] = json!(note.text_version);
                self.push(EventType::RecordingConsent, now_ms, data);
            }
            ("recording_start", _) => {
                self.push(EventType::RecordingStarted, now_ms, json!({"by": by}))
            }
            ("recording_pause", _) => {
                self.push(EventType::RecordingPaused, now_ms, json!({"by": by}))
            }
            ("recording_resume", _) => {
                self.push(EventType::RecordingResumed, now_ms, json!({"by": by}))
            }
            ("end_visit", _) => self.ended_by = note.actor,
            ("refuse", _) => {
                self.pending_refs.remove(&id);
            }
            _ => {}
        }
    }

    fn joined(&mut self, now_ms: u64, sub: &str, role: Role, data: Value) {
        self.totals_of(sub, role, |t| {
            t.first_joined_ms.get_or_insert(now_ms);
        });
        self.push(EventType::ParticipantJoined, now_ms, data);
    }

    fn left(&mut self, now_ms: u64, id: ParticipantId, reason: &str, by: Option<ParticipantId>) {
        let mut data = self.who(id);
        let Some(p) = self.present.remove(&id) else {
            return;
        };
        let spent = now_ms.saturating_sub(p.since_ms);
        self.totals_of(&p.sub, p.role, |t| {
            if p.in_visit {
                t.in_visit_ms += spent;
                t.last_left_ms = Some(now_ms);
            } else {
                t.waited_ms += spent;
            }
        });
        data["reason"] = json!(reason);
        if let Some(by) = by {
            data["by"] = json!(by.to_string());
        }
        self.push(EventType::ParticipantLeft, now_ms, data);
    }

    /// `{participant, role, sub}` of someone present; `null` for anyone else.
    fn who(&self, id: ParticipantId) -> Value {
        match self.present.get(&id) {
            Some(p) => json!({
                "participant": id.to_string(),
                "role": p.role.as_str(),
                "sub": p.sub,
            }),
            None => Value::Null,
        }
    }

    fn totals_of(&mut self, sub: &str, role: Role, f: impl FnOnce(&mut Totals)) {
        if let Some((_, t)) = self
            .totals
            .iter_mut()
            .find(|((s, r), _)| s == sub && *r == role)
        {
            return f(t);
        }
        if self.totals.len() >= MAX_SUMMARY {
            self.truncated = true;
            return;
        }
        let mut t = Totals::default();
        f(&mut t);
        self.totals.push(((sub.to_owned(), role), t));
    }

    /// What is known now (`now_ms`): the people present count up to now. The visit task
    /// answers the admin listener's questions with it.
    pub(crate) fn summary(&self, now_ms: u64) -> Summary {
        let mut people: Vec<Person> = self
            .totals
            .iter()
            .map(|((sub, role), t)| Person {
                sub: sub.clone(),
                role: *role,
                sessions: t.sessions,
                waited_ms: t.waited_ms,
                in_visit_ms: t.in_visit_ms,
                first_joined_ms: t.first_joined_ms,
                last_left_ms: t.last_left_ms,
                present: None,
                fhir: t.fhir.clone(),
            })
            .collect();
        for p in self.present.values() {
            let Some(person) = people
                .iter_mut()
                .find(|x| x.sub == p.sub && x.role == p.role)
            else {
                continue;
            };
            let spent = now_ms.saturating_sub(p.since_ms);
            if p.in_visit {
                person.in_visit_ms += spent;
                person.last_left_ms = None;
                person.present = Some(true);
            } else {
                person.waited_ms += spent;
                person.present.get_or_insert(false);
            }
        }
        Summary {
            visit: self.visit.clone(),
            visit_type: self.visit_type,
            started_ms: self.started_ms,
            ended_ms: None,
            now_ms,
            ended_by_provider: false,
            by: self.ended_by,
            subject: self.subject.clone(),
            appointment: self.appointment.clone(),
            people,
            truncated: self.truncated,
        }
    }

    /// The visit task is done: anyone still counted as present leaves, then `visit.ended` with
    /// the visit's durations and each person's totals, then `visit.encounter` with the FHIR R4
    /// Encounter. Returns the final summary.
    pub(crate) fn finish(&mut self, now_ms: u64, ended: bool) -> Summary {
        let mut ids: Vec<ParticipantId> = self.present.keys().copied().collect();
        ids.sort();
        for id in ids {
            self.left(now_ms, id, if ended { "visit_ended" } else { "left" }, None);
        }
        let mut summary = self.summary(now_ms);
        summary.ended_ms = Some(now_ms);
        summary.ended_by_provider = ended;
        self.push(EventType::VisitEnded, now_ms, summary.to_json());
        self.push(
            EventType::VisitEncounter,
            now_ms,
            super::fhir::encounter(&summary),
        );
        summary
    }
}

#[cfg(test)]
mod tests;
