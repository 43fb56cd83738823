//! The Bedside signaling protocol, version 1: every message that travels over `/v1/signal`,
//! the stable error codes, roles and typed ids. `docs/signaling.md` is the prose version of
//! this file; keep them in step.

mod ids;
mod messages;
mod role;

pub use ids::{ParticipantId, VisitId};
pub use messages::{
    ClientMessage, ConsentDecision, ConsentEntry, ConsentInfo, ConsentStatus, ErrorCode, IceServer,
    JoinState, MediaPresence, MediaState, ParticipantInfo, QueueEntry, RecorderJob, ServerMessage,
    Source, TrackInfo, TrackKind, PROTOCOL_VERSION,
};
pub use role::{Role, VisitType};

/// The largest signaling message the server accepts, in bytes: an SDP offer with every
/// source a role may publish fits many times over, and a flood of large frames cannot grow memory.
pub const MAX_MESSAGE_BYTES: usize = 64 * 1024;

/// Why a client message could not be decoded.
#[derive(Debug)]
pub enum DecodeError {
    /// The text is not JSON, or a known message is missing fields.
    Malformed,
    /// The JSON is an object whose `type` is not one this version knows.
    UnknownType,
}

/// Decodes one client message from a WebSocket text frame, telling an unknown `type` apart
/// from malformed JSON so the client gets the right error code.
pub fn decode_client_message(text: &str) -> Result<ClientMessage, DecodeError> {
    match serde_json::from_str::<ClientMessage>(text) {
        Ok(msg) => Ok(msg),
        Err(_) => {
            #[derive(serde::Deserialize)]
            struct Tagged<'a> {
                #[serde(rename = "type", borrow)]
                kind: std::borrow::Cow<'a, str>,
            }
            match serde_json::from_str::<Tagged<'_>>(text) {
                Ok(t) if !ClientMessage::KNOWN_TYPES.contains(&t.kind.as_ref()) => {
                    Err(DecodeError::UnknownType)
                }
                _ => Err(DecodeError::Malformed),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_join() {
        let msg = decode_client_message(r#"{"type":"join","v":1,"token":"abc"}"#).unwrap();
        assert!(
            matches!(msg, ClientMessage::Join { v: 1, ref token, visit: None } if token == "abc")
        );
    }

    #[test]
    fn unknown_type_is_told_apart_from_garbage() {
        assert!(matches!(
            decode_client_message(r#"{"type":"teleport"}"#),
            Err(DecodeError::UnknownType)
        ));
        assert!(matches!(
            decode_client_message("{not json"),
            Err(DecodeError::Malformed)
        ));
        // A known type with missing fields is malformed, not unknown.
        assert!(matches!(
            decode_client_message(r#"{"type":"offer"}"#),
            Err(DecodeError::Malformed)
        ));
        assert!(matches!(
            decode_client_message("[]"),
            Err(DecodeError::Malformed)
        ));
    }

    #[test]
    fn known_types_cover_every_variant() {
        for text in [
            r#"{"type":"join","v":1,"token":"t"}"#,
            r#"{"type":"offer","sdp":"x"}"#,
            r#"{"type":"answer","sdp":"x"}"#,
            r#"{"type":"candidate","candidate":"x"}"#,
            r#"{"type":"leave"}"#,
            r#"{"type":"ping"}"#,
            r#"{"type":"admit","participant":3}"#,
            r#"{"type":"admit_all"}"#,
            r#"{"type":"deny","participant":3,"reason":"wrong clinic"}"#,
            r#"{"type":"remove","participant":3}"#,
            r#"{"type":"end_visit"}"#,
            r#"{"type":"notify_waiting","text":"ten minutes"}"#,
            r#"{"type":"show_video","show":true}"#,
            r#"{"type":"media_state","audio":"on","video":"off"}"#,
        ] {
            let msg = decode_client_message(text).unwrap();
            assert!(ClientMessage::KNOWN_TYPES.contains(&msg.type_name()));
        }
    }

    /// A valid message of every known type, with every field it may carry.
    fn example(kind: &str) -> serde_json::Value {
        use serde_json::json;
        let mut v = match kind {
            "join" => json!({"v": 1, "token": "t", "visit": "v"}),
            "offer" => json!({"sdp": "x", "sources": {"0": "screen"}}),
            "answer" => json!({"sdp": "x"}),
            "candidate" => json!({"candidate": "x", "sdpMid": "0", "sdpMLineIndex": 0}),
            "admit" | "remove" => json!({"participant": 3}),
            "deny" => json!({"participant": 3, "reason": "r"}),
            "notify_waiting" => json!({"text": "t"}),
            "show_video" => json!({"show": true}),
            "consent_accept" | "consent_decline" => json!({"text_version": "1"}),
            "media_state" => json!({"audio": "off", "video": "none"}),
            "leave" | "ping" | "admit_all" | "end_visit" | "record_start" | "record_stop"
            | "record_pause" | "record_resume" => json!({}),
            other => panic!("no example for {other}: add one"),
        };
        v["type"] = json!(kind);
        v
    }

    #[test]
    fn every_known_type_refuses_an_unknown_field() {
        for kind in ClientMessage::KNOWN_TYPES {
            let good = example(kind);
            let msg = decode_client_message(&good.to_string())
                .unwrap_or_else(|_| panic!("{kind}: the example decodes"));
            assert_eq!(msg.type_name(), kind);
            let mut extra = good.clone();
            extra["now"] = serde_json::json!(true);
            assert!(
                matches!(
                    decode_client_message(&extra.to_string()),
                    Err(DecodeError::Malformed)
                ),
                "{kind} with an unknown field is refused as malformed"
            );
        }
    }

    #[test]
    fn media_state_takes_only_on_off_none() {
        for bad in [
            r#"{"type":"media_state","audio":"muted","video":"on"}"#,
            r#"{"type":"media_state","audio":"on"}"#,
            r#"{"type":"media_state","audio":true,"video":"on"}"#,
        ] {
            assert!(
                matches!(decode_client_message(bad), Err(DecodeError::Malformed)),
                "{bad}"
            );
        }
        let info = ParticipantInfo {
            participant: ParticipantId::from_raw(4),
            role: Role::Patient,
            name: None,
            shown: true,
            media: Some(MediaState {
                audio: MediaPresence::On,
                video: MediaPresence::None,
            }),
        };
        assert_eq!(
            serde_json::to_value(&info).unwrap()["media"],
            serde_json::json!({"audio": "on", "video": "none"})
        );
    }

    #[test]
    fn messages_without_fields_keep_their_wire_form() {
        for (msg, text) in [
            (ClientMessage::Leave {}, r#"{"type":"leave"}"#),
            (ClientMessage::Ping {}, r#"{"type":"ping"}"#),
            (ClientMessage::AdmitAll {}, r#"{"type":"admit_all"}"#),
            (
                ClientMessage::RecordResume {},
                r#"{"type":"record_resume"}"#,
            ),
        ] {
            assert_eq!(serde_json::to_string(&msg).unwrap(), text);
            assert_eq!(
                decode_client_message(text).unwrap().type_name(),
                msg.type_name()
            );
        }
    }

    #[test]
    fn every_error_code_is_listed_once_with_its_serde_name() {
        let mut names: Vec<&str> = ErrorCode::ALL.iter().map(|c| c.as_str()).collect();
        for c in ErrorCode::ALL {
            assert_eq!(
                serde_json::to_string(&c).unwrap(),
                format!("\"{}\"", c.as_str())
            );
        }
        names.sort();
        names.dedup();
        assert_eq!(names.len(), ErrorCode::ALL.len());
    }

    #[test]
    fn error_messages_serialise_with_stable_codes() {
        let msg = ServerMessage::Error {
            code: ErrorCode::InvalidToken,
            message: "the join token is not valid".into(),
        };
        let json = serde_json::to_string(&msg).unwrap();
        assert_eq!(
            json,
            r#"{"type":"error","code":"invalid_token","message":"the join token is not valid"}"#
        );
    }
}
