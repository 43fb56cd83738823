//! The webhook envelope and the event types. Every body is one [`Event`]:
//!
//! ```json
//! {"id":"evt_4f…","type":"participant.admitted","created_at":"2026-01-05T09:30:12.345Z",
//!  "visit":"visit-123","seq":3,"data":{"participant":"p7","role":"patient","sub":"pt-889",
//!  "by":"p6","waited_ms":42000}}
//! ```
//!
//! `data` carries opaque ids, roles, codes and times only: never a name, a visit reason, a deny
//! reason's text, a token or an address.

use serde::{Deserialize, Serialize};

/// One webhook body.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// `evt_` and 32 hex digits (128 random bits): unique, the de-duplication key.
    pub id: String,
    /// One of [`EventType`]'s names.
    #[serde(rename = "type")]
    pub kind: String,
    /// When the event happened, RFC 3339 in UTC with milliseconds.
    pub created_at: String,
    /// The scheduler's opaque visit id (the join token's `visit` claim).
    pub visit: String,
    /// The visit's sequence number: 1, 2, 3… in the order the events happened. A gap means
    /// events were dropped (a full outbox; counted in the metrics).
    pub seq: u64,
    pub data: serde_json::Value,
}

macro_rules! event_types {
    ($($variant:ident => $name:literal,)*) => {
        /// What happened.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum EventType { $($variant,)* }

        impl EventType {
            pub const ALL: &'static [EventType] = &[$(EventType::$variant,)*];

            pub fn as_str(self) -> &'static str {
                match self { $(EventType::$variant => $name,)* }
            }

            pub fn parse(s: &str) -> Option<EventType> {
                match s { $($name => Some(EventType::$variant),)* _ => None }
            }
        }
    };
}

event_types! {
    VisitStarted => "visit.started",
    VisitEnded => "visit.ended",
    VisitEncounter => "visit.encounter",
    ParticipantWaiting => "participant.waiting",
    ParticipantAdmitted => "participant.admitted",
    ParticipantDenied => "participant.denied",
    ParticipantJoined => "participant.joined",
    ParticipantLeft => "participant.left",
    RecordingStarted => "recording.started",
    RecordingPaused => "recording.paused",
    RecordingResumed => "recording.resumed",
    RecordingStopped => "recording.stopped",
    RecordingConsent => "recording.consent",
}

/// Unix milliseconds as RFC 3339 UTC with milliseconds (`2026-01-05T09:30:12.345Z`).
pub fn rfc3339_ms(ms: u64) -> String {
    let secs = ms / 1000;
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // Civil date from days since 1970-01-01 (proleptic Gregorian).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        ms % 1000
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_format_as_rfc3339_utc() {
        assert_eq!(rfc3339_ms(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339_ms(951_782_400_123), "2000-02-29T00:00:00.123Z");
        assert_eq!(rfc3339_ms(1_767_605_412_345), "2026-01-05T09:30:12.345Z");
    }

    #[test]
    fn type_names_round_trip() {
        for t in EventType::ALL {
            assert_eq!(EventType::parse(t.as_str()), Some(*t));
        }
        assert_eq!(EventType::parse("visit.exploded"), None);
    }
}
