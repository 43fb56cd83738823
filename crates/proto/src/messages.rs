use serde::{Deserialize, Serialize};

use crate::{ParticipantId, Role, VisitId};

/// The protocol version this build speaks. A client names it in `join.v`.
pub const PROTOCOL_VERSION: u32 = 1;

/// Messages a client sends. The first must be `join`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum ClientMessage {
    /// Join a visit with a signed join token.
    Join { v: u32, token: String },
    /// The client's SDP offer (its first offer, which publishes its camera and microphone).
    Offer { sdp: String },
    /// The client's SDP answer to a server offer.
    Answer { sdp: String },
    /// A trickled ICE candidate (`a=candidate` value without the `a=`); empty ends gathering.
    Candidate {
        candidate: String,
        #[serde(default, rename = "sdpMid", skip_serializing_if = "Option::is_none")]
        sdp_mid: Option<String>,
        #[serde(
            default,
            rename = "sdpMLineIndex",
            skip_serializing_if = "Option::is_none"
        )]
        sdp_mline_index: Option<u32>,
    },
    /// Leave the visit; the server answers `left` and closes the socket.
    Leave,
    /// Keep-alive; the server answers `pong`.
    Ping,
}

impl ClientMessage {
    /// The `type` values of every client message, for telling unknown types from bad JSON.
    pub const KNOWN_TYPES: [&'static str; 6] =
        ["join", "offer", "answer", "candidate", "leave", "ping"];

    pub fn type_name(&self) -> &'static str {
        match self {
            ClientMessage::Join { .. } => "join",
            ClientMessage::Offer { .. } => "offer",
            ClientMessage::Answer { .. } => "answer",
            ClientMessage::Candidate { .. } => "candidate",
            ClientMessage::Leave => "leave",
            ClientMessage::Ping => "ping",
        }
    }
}

/// Messages the server sends.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerMessage {
    /// The join succeeded. `participants` lists everyone already in the visit.
    Joined {
        v: u32,
        visit: VisitId,
        participant: ParticipantId,
        role: Role,
        ice_servers: Vec<IceServer>,
        participants: Vec<ParticipantInfo>,
    },
    /// Someone entered the visit.
    ParticipantJoined { participant: ParticipantInfo },
    /// Someone left the visit (or was disconnected).
    ParticipantLeft { participant: ParticipantId },
    /// The server's answer to a client offer.
    Answer { sdp: String },
    /// A server-driven renegotiation: new or removed tracks. `tracks` maps every sending `mid`
    /// of the session to the participant whose media it carries.
    Offer { sdp: String, tracks: Vec<TrackInfo> },
    /// Answer to `leave`; the server closes the socket after it.
    Left,
    /// Answer to `ping`.
    Pong,
    /// Something went wrong; `code` is stable, `message` is for people.
    Error { code: ErrorCode, message: String },
}

/// A participant as other participants see them. `name` is PHI: shown, never logged.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ParticipantInfo {
    pub participant: ParticipantId,
    pub role: Role,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

/// Which participant's media a server-sent `mid` carries.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrackInfo {
    pub mid: String,
    pub participant: ParticipantId,
    pub kind: TrackKind,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TrackKind {
    Audio,
    Video,
}

/// An entry of RTCPeerConnection's `iceServers`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct IceServer {
    pub urls: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credential: Option<String>,
}

/// Stable error codes (docs/signaling.md lists what each means and whether the socket closes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// The frame is not JSON, not text, or a known message lacks fields.
    InvalidMessage,
    /// The frame exceeds 64 KiB. The socket closes.
    MessageTooLarge,
    /// The message `type` is not part of this protocol version.
    UnknownType,
    /// `join.v` names a protocol version this server does not speak. The socket closes.
    UnsupportedVersion,
    /// The first message was not `join`, or a message needs a joined session.
    NotJoined,
    /// A second `join` on a joined socket.
    AlreadyJoined,
    /// The token is missing, malformed, badly signed, for another issuer, or names an unknown
    /// role. The socket closes.
    InvalidToken,
    /// The token has expired or is not valid yet. The socket closes.
    TokenExpired,
    /// The SDP could not be parsed or negotiated.
    InvalidSdp,
    /// An offer or answer arrived when none was expected (e.g. an answer with no server offer).
    NegotiationState,
    /// A trickled candidate could not be parsed.
    InvalidCandidate,
    /// The media connection failed or the media engine dropped the session. The socket closes.
    MediaFailed,
    /// The server is shutting down or cannot take more sessions. The socket closes.
    Unavailable,
    /// No `join` arrived in time. The socket closes.
    Timeout,
}

impl ErrorCode {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::InvalidMessage => "invalid_message",
            ErrorCode::MessageTooLarge => "message_too_large",
            ErrorCode::UnknownType => "unknown_type",
            ErrorCode::UnsupportedVersion => "unsupported_version",
            ErrorCode::NotJoined => "not_joined",
            ErrorCode::AlreadyJoined => "already_joined",
            ErrorCode::InvalidToken => "invalid_token",
            ErrorCode::TokenExpired => "token_expired",
            ErrorCode::InvalidSdp => "invalid_sdp",
            ErrorCode::NegotiationState => "negotiation_state",
            ErrorCode::InvalidCandidate => "invalid_candidate",
            ErrorCode::MediaFailed => "media_failed",
            ErrorCode::Unavailable => "unavailable",
            ErrorCode::Timeout => "timeout",
        }
    }

    /// Whether the server closes the socket after sending this error.
    pub fn closes_session(self) -> bool {
        matches!(
            self,
            ErrorCode::MessageTooLarge
                | ErrorCode::UnsupportedVersion
                | ErrorCode::InvalidToken
                | ErrorCode::TokenExpired
                | ErrorCode::MediaFailed
                | ErrorCode::Unavailable
                | ErrorCode::Timeout
        )
    }
}
