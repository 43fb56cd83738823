//! A visit as a FHIR R4 `Encounter` (docs/integration.md "FHIR Encounter"), built from the
//! same [`Summary`] as `visit.ended`: status, class `VR` (virtual), period and length, the
//! subject and appointment from the tokens' `fhir` claims, each participant typed by role with
//! their own period, and the modality timeline as an extension. Opaque references and codes
//! only: no name, no join link, no key.

use bedside_proto::Role;
use bedside_webhook::rfc3339_ms;
use serde_json::{json, Value};

use super::events::{Person, Summary};

/// The identifier system of the visit id (the scheduler's `visit` claim).
pub(crate) const VISIT_ID_SYSTEM: &str = "urn:bedside:visit";
/// The identifier system of a participant known only by the token's `sub`.
pub(crate) const SUB_SYSTEM: &str = "urn:bedside:sub";
/// The modality timeline extension (docs/integration.md).
pub(crate) const MODALITY_EXTENSION: &str = "urn:bedside:fhir:modality-timeline";

const PARTICIPATION: &str = "http://terminology.hl7.org/CodeSystem/v3-ParticipationType";
const PARTICIPANT_TYPE: &str = "http://terminology.hl7.org/CodeSystem/participant-type";

/// The Encounter of `s` (`finished` once the visit ended, `in-progress` while someone is in it,
/// `arrived` while people only wait).
pub(crate) fn encounter(s: &Summary) -> Value {
    let status = match s.ended_ms {
        Some(_) => "finished",
        None if s.people.iter().any(|p| p.first_joined_ms.is_some()) => "in-progress",
        None => "arrived",
    };
    let mut period = json!({"start": rfc3339_ms(s.started_ms)});
    if let Some(end) = s.ended_ms {
        period["end"] = json!(rfc3339_ms(end));
    }
    let mut e = json!({
        "resourceType": "Encounter",
        "identifier": [{"system": VISIT_ID_SYSTEM, "value": s.visit.as_str()}],
        "status": status,
        "class": {
            "system": "http://terminology.hl7.org/CodeSystem/v3-ActCode",
            "code": "VR",
            "display": "virtual"
        },
        "period": period,
        "extension": [modality(s)],
    });
    if let Some(end) = s.ended_ms {
        let minutes = end.saturating_sub(s.started_ms) as f64 / 60_000.0;
        e["length"] = json!({
            "value": (minutes * 10.0).round() / 10.0,
            "unit": "min",
            "system": "http://unitsofmeasure.org",
            "code": "min"
        });
    }
    // The subject: the `fhir.patient` claim, else a patient's own `fhir.participant`.
    let subject = s.subject.clone().or_else(|| {
        s.people
            .iter()
            .filter(|p| p.role == Role::Patient)
            .find_map(|p| p.fhir.clone().filter(|r| r.starts_with("Patient/")))
    });
    if let Some(subject) = subject {
        e["subject"] = json!({"reference": subject});
    }
    if let Some(a) = &s.appointment {
        e["appointment"] = json!([{"reference": a}]);
    }
    let participants = participants(s);
    if !participants.is_empty() {
        e["participant"] = Value::Array(participants);
    }
    e
}

/// Everyone but the patient (the subject) who was in the visit, typed by role. The provider
/// who joined first is the primary performer, other providers attenders.
fn participants(s: &Summary) -> Vec<Value> {
    let mut joined: Vec<&Person> = s
        .people
        .iter()
        .filter(|p| p.first_joined_ms.is_some() && p.role != Role::Patient)
        .collect();
    joined.sort_by_key(|p| p.first_joined_ms);
    let primary = joined
        .iter()
        .find(|p| p.role == Role::Provider)
        .map(|p| (p.sub.clone(), p.role));
    joined
        .into_iter()
        .filter_map(|p| {
            let (system, code, display) = match p.role {
                Role::Provider if primary == Some((p.sub.clone(), p.role)) => {
                    (PARTICIPATION, "PPRF", "primary performer")
                }
                Role::Provider => (PARTICIPATION, "ATND", "attender"),
                Role::Interpreter => (PARTICIPANT_TYPE, "translator", "Translator"),
                Role::Chaperone | Role::Supervisor | Role::Caregiver => {
                    (PARTICIPATION, "PART", "Participation")
                }
                Role::Patient | Role::Recorder => return None,
            };
            let mut period = json!({});
            if let Some(start) = p.first_joined_ms {
                period["start"] = json!(rfc3339_ms(start));
            }
            if let Some(end) = p.last_left_ms {
                period["end"] = json!(rfc3339_ms(end));
            }
            Some(json!({
                "type": [{"coding": [{"system": system, "code": code, "display": display}]}],
                "period": period,
                "individual": individual(p),
            }))
        })
        .collect()
}

/// The participant's own reference where the token gave one of a type an Encounter participant
/// may be (a caregiver only as `RelatedPerson`), else their `sub` as an identifier.
fn individual(p: &Person) -> Value {
    let allowed: &[&str] = match p.role {
        Role::Caregiver => &["RelatedPerson/"],
        _ => &["Practitioner/", "PractitionerRole/", "RelatedPerson/"],
    };
    match &p.fhir {
        Some(r) if allowed.iter().any(|t| r.starts_with(t)) => json!({"reference": r}),
        _ => json!({"identifier": {"system": SUB_SYSTEM, "value": p.sub}}),
    }
}

/// The modality timeline: segments of `audio-video` or `audio-only` with their periods. Bedside
/// has no audio-only mode yet, so today a visit is one `audio-video` segment over its period.
fn modality(s: &Summary) -> Value {
    let mut period = json!({"start": rfc3339_ms(s.started_ms)});
    if let Some(end) = s.ended_ms {
        period["end"] = json!(rfc3339_ms(end));
    }
    json!({
        "url": MODALITY_EXTENSION,
        "extension": [{
            "url": "segment",
            "extension": [
                {"url": "modality", "valueCode": "audio-video"},
                {"url": "period", "valuePeriod": period}
            ]
        }]
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use bedside_proto::{ParticipantId, VisitId, VisitType};

    fn person(
        sub: &str,
        role: Role,
        joined: Option<u64>,
        left: Option<u64>,
        fhir: Option<&str>,
    ) -> Person {
        Person {
            sub: sub.into(),
            role,
            sessions: 1,
            waited_ms: 0,
            in_visit_ms: 0,
            first_joined_ms: joined,
            last_left_ms: left,
            present: None,
            fhir: fhir.map(str::to_owned),
        }
    }

    /// A finished consult with every role (starts 2026-01-05T09:00:00Z, lasts 30 minutes).
    fn finished() -> Summary {
        let t0 = 1_767_603_600_000;
        let min = 60_000;
        Summary {
            visit: VisitId::new("visit-123"),
            visit_type: VisitType::Consult,
            started_ms: t0,
            ended_ms: Some(t0 + 30 * min),
            now_ms: t0 + 30 * min,
            ended_by_provider: true,
            by: Some(ParticipantId::from_raw(1)),
            subject: Some("Patient/pt-889".into()),
            appointment: Some("Appointment/ap-1".into()),
            people: vec![
                person(
                    "dr-1",
                    Role::Provider,
                    Some(t0),
                    Some(t0 + 30 * min),
                    Some("Practitioner/dr-1"),
                ),
                person(
                    "dr-2",
                    Role::Provider,
                    Some(t0 + 5 * min),
                    Some(t0 + 20 * min),
                    None,
                ),
                person(
                    "pt-889",
                    Role::Patient,
                    Some(t0 + 2 * min),
                    Some(t0 + 30 * min),
                    None,
                ),
                person(
                    "ch-1",
                    Role::Chaperone,
                    Some(t0 + 2 * min),
                    Some(t0 + 30 * min),
                    None,
                ),
                person(
                    "in-1",
                    Role::Interpreter,
                    Some(t0 + 3 * min),
                    Some(t0 + 25 * min),
                    None,
                ),
                person(
                    "cg-1",
                    Role::Caregiver,
                    Some(t0 + 4 * min),
                    Some(t0 + 30 * min),
                    Some("RelatedPerson/rp-7"),
                ),
                person(
                    "cg-2",
                    Role::Caregiver,
                    None,
                    None,
                    Some("RelatedPerson/rp-8"),
                ),
            ],
            truncated: false,
        }
    }

    fn codes(e: &Value) -> Vec<(String, String)> {
        e["participant"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| {
                (
                    p["type"][0]["coding"][0]["code"]
                        .as_str()
                        .unwrap()
                        .to_owned(),
                    p["individual"]["reference"]
                        .as_str()
                        .or(p["individual"]["identifier"]["value"].as_str())
                        .unwrap()
                        .to_owned(),
                )
            })
            .collect()
    }

    #[test]
    fn a_finished_visit_is_a_finished_virtual_encounter_with_typed_participants() {
        let e = encounter(&finished());
        assert_eq!(e["resourceType"], "Encounter");
        assert_eq!(e["status"], "finished");
        assert_eq!(e["class"]["code"], "VR");
        assert_eq!(
            e["class"]["system"],
            "http://terminology.hl7.org/CodeSystem/v3-ActCode"
        );
        assert_eq!(e["identifier"][0]["value"], "visit-123");
        assert_eq!(e["period"]["start"], "2026-01-05T09:00:00.000Z");
        assert_eq!(e["period"]["end"], "2026-01-05T09:30:00.000Z");
        assert_eq!(e["length"]["value"], 30.0);
        assert_eq!(e["length"]["code"], "min");
        assert_eq!(e["subject"]["reference"], "Patient/pt-889");
        assert_eq!(e["appointment"][0]["reference"], "Appointment/ap-1");
        assert_eq!(
            codes(&e),
            codes_in_join_order(),
            "the patient is the subject; who never got in is not a participant"
        );
        let interp = &e["participant"][2];
        assert_eq!(interp["period"]["start"], "2026-01-05T09:03:00.000Z");
        assert_eq!(interp["period"]["end"], "2026-01-05T09:25:00.000Z");
        assert_eq!(e["extension"][0]["url"], MODALITY_EXTENSION);
        assert_eq!(
            e["extension"][0]["extension"][0]["extension"][0]["valueCode"],
            "audio-video"
        );
    }

    fn codes_in_join_order() -> Vec<(String, String)> {
        [
            ("PPRF", "Practitioner/dr-1"),
            ("PART", "ch-1"),
            ("translator", "in-1"),
            ("PART", "RelatedPerson/rp-7"),
            ("ATND", "dr-2"),
        ]
        .iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect()
    }

    #[test]
    fn a_running_visit_is_in_progress_without_an_end_and_references_are_checked_by_type() {
        let mut s = finished();
        s.ended_ms = None;
        s.people[0].last_left_ms = None;
        // A caregiver's Practitioner reference is not a caregiver: the sub stands in.
        s.people[5].fhir = Some("Practitioner/x".into());
        let e = encounter(&s);
        assert_eq!(e["status"], "in-progress");
        assert!(e["period"].get("end").is_none());
        assert!(e.get("length").is_none());
        assert!(e["participant"][0]["period"].get("end").is_none());
        assert_eq!(
            e["participant"][3]["individual"]["identifier"]["value"],
            "cg-1"
        );
        s.people.retain(|p| p.first_joined_ms.is_none());
        assert_eq!(encounter(&s)["status"], "arrived");
    }

    /// Writes sample Encounters for the FHIR validator (tests/fhir/check.sh) when
    /// `BEDSIDE_FHIR_SAMPLES` names a directory; a no-op otherwise.
    #[test]
    fn samples_for_the_fhir_validator() {
        let Some(dir) = std::env::var_os("BEDSIDE_FHIR_SAMPLES") else {
            return;
        };
        let dir = std::path::PathBuf::from(dir);
        let mut running = finished();
        running.ended_ms = None;
        let mut bare = finished();
        bare.subject = None;
        bare.appointment = None;
        bare.people.truncate(1);
        for (name, s) in [
            ("finished", finished()),
            ("running", running),
            ("bare", bare),
        ] {
            let text = serde_json::to_string_pretty(&encounter(&s)).unwrap();
            std::fs::write(dir.join(format!("encounter-{name}.json")), text).unwrap();
        }
    }
}
