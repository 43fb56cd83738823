use serde::{Deserialize, Serialize};

use std::collections::BTreeMap;

use crate::{ParticipantId, Role, VisitId, VisitType};

/// The protocol version this build speaks. A client names it in `join.v`.
pub const PROTOCOL_VERSION: u32 = 1;

/// Messages a client sends. The first must be `join`.
///
/// Messages without fields are empty struct variants (`Leave {}`), not unit variants: serde
/// lets a unit variant of an internally tagged enum ignore any other fields, so
/// `{"type":"leave","now":true}` would be accepted. `deny_unknown_fields` applies to struct
/// variants only; the wire form stays `{"type":"leave"}` both ways.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum ClientMessage {
    /// Join a visit with a signed join token. A client that knows which visit it means (a
    /// clinician's dashboard) names it in `visit`; a token for another visit is then refused.
    Join {
        v: u32,
        token: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        visit: Option<String>,
    },
    /// The client's SDP offer. The first publishes its camera and microphone; later ones add
    /// or stop tracks (a screen share). `sources` names what each sending `mid` carries;
    /// unlisted audio is the microphone, unlisted video the camera.
    Offer {
        sdp: String,
        #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
        sources: BTreeMap<String, Source>,
    },
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
    Leave {},
    /// Keep-alive; the server answers `pong`.
    Ping {},
    /// Provider: admit a waiting participant.
    Admit { participant: ParticipantId },
    /// Provider: admit everyone waiting.
    AdmitAll {},
    /// Provider: turn a waiting participant away; `reason` is shown to them.
    Deny {
        participant: ParticipantId,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
    },
    /// Provider: remove a participant from the visit.
    Remove { participant: ParticipantId },
    /// Provider: end the visit for everyone.
    EndVisit {},
    /// Provider: a message shown to everyone waiting ("running 10 minutes late").
    NotifyWaiting { text: String },
    /// Show or hide one's own video from other patients (group visits).
    ShowVideo { show: bool },
    /// Provider: start recording the visit. Everyone present is asked for consent; only
    /// consenting participants are recorded. Refused unless recording is enabled in config.
    RecordStart {},
    /// Provider: stop recording the visit.
    RecordStop {},
    /// Provider: pause the recording (nothing is recorded until `record_resume`; consent
    /// stands).
    RecordPause {},
    /// Provider: resume a paused recording.
    RecordResume {},
    /// Consent to being recorded, naming the version of the consent text that was shown.
    ConsentAccept { text_version: String },
    /// Decline being recorded, or withdraw an earlier consent (recording of this participant's
    /// tracks stops).
    ConsentDecline { text_version: String },
    /// What this participant's microphone and camera are doing, for the others' tiles: a
    /// muted track still flows (as silence or black), so media alone cannot tell.
    MediaState {
        audio: MediaPresence,
        video: MediaPresence,
    },
}

impl ClientMessage {
    /// The `type` values of every client message, for telling unknown types from bad JSON.
    pub const KNOWN_TYPES: [&'static str; 20] = [
        "join",
        "offer",
        "answer",
        "candidate",
        "leave",
        "ping",
        "admit",
        "admit_all",
        "deny",
        "remove",
        "end_visit",
        "notify_waiting",
        "show_video",
        "record_start",
        "record_stop",
        "record_pause",
        "record_resume",
        "consent_accept",
        "consent_decline",
        "media_state",
    ];

    pub fn type_name(&self) -> &'static str {
        match self {
            ClientMessage::Join { .. } => "join",
            ClientMessage::Offer { .. } => "offer",
            ClientMessage::Answer { .. } => "answer",
            ClientMessage::Candidate { .. } => "candidate",
            ClientMessage::Leave {} => "leave",
            ClientMessage::Ping {} => "ping",
            ClientMessage::Admit { .. } => "admit",
            ClientMessage::AdmitAll {} => "admit_all",
            ClientMessage::Deny { .. } => "deny",
            ClientMessage::Remove { .. } => "remove",
            ClientMessage::EndVisit {} => "end_visit",
            ClientMessage::NotifyWaiting { .. } => "notify_waiting",
            ClientMessage::ShowVideo { .. } => "show_video",
            ClientMessage::RecordStart {} => "record_start",
            ClientMessage::RecordStop {} => "record_stop",
            ClientMessage::RecordPause {} => "record_pause",
            ClientMessage::RecordResume {} => "record_resume",
            ClientMessage::ConsentAccept { .. } => "consent_accept",
            ClientMessage::ConsentDecline { .. } => "consent_decline",
            ClientMessage::MediaState { .. } => "media_state",
        }
    }
}

/// Messages the server sends.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerMessage {
    /// The join succeeded. In state `admitted`, `participants` lists everyone in the visit and
    /// the client starts media; in state `waiting` it waits for `admitted`.
    Joined {
        v: u32,
        visit: VisitId,
        visit_type: VisitType,
        participant: ParticipantId,
        role: Role,
        state: JoinState,
        /// The sources this role may publish in this visit (the client offers only these).
        may_publish: Vec<Source>,
        /// STUN/TURN servers with credentials; empty while waiting (they come in `admitted`).
        ice_servers: Vec<IceServer>,
        participants: Vec<ParticipantInfo>,
        /// Recording is enabled on this server (a provider may `record_start`).
        #[serde(default)]
        recording_enabled: bool,
        /// The token's `locale` claim (a BCP 47 tag): the language to show this person.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        locale: Option<String>,
    },
    /// For a waiting participant: their place in the queue (1 is next) and the latest message
    /// from the clinicians.
    Waiting {
        position: u32,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        message: Option<String>,
        /// A provider, who can admit them, is in the visit now.
        #[serde(default)]
        clinician_present: bool,
    },
    /// A clinician admitted this waiting participant: start media now. `ice_servers` carries
    /// the TURN credentials, which a waiting participant is not given in `joined`.
    Admitted {
        participants: Vec<ParticipantInfo>,
        #[serde(default)]
        ice_servers: Vec<IceServer>,
    },
    /// For clinicians: the waiting room as it is now (sent on every change).
    Queue { entries: Vec<QueueEntry> },
    /// Someone's details changed (e.g. they turned "show my video" on).
    ParticipantUpdated { participant: ParticipantInfo },
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
    /// A provider asked to record: show `text` and answer `consent_accept` or
    /// `consent_decline` with `text_version`. Until then this participant is not recorded.
    ConsentRequest { text_version: String, text: String },
    /// The visit's recording state, sent to everyone admitted on every change. `recorded`:
    /// something is being recorded now (show the recording indicator); `you`: this
    /// participant's own tracks are among it; `paused`: a provider paused the recording.
    Recording {
        active: bool,
        recorded: bool,
        you: bool,
        #[serde(default)]
        paused: bool,
    },
    /// For the recorder only: a consent decision, for the recording's metadata.
    ConsentRecorded { consent: ConsentInfo },
    /// For clinicians: each admitted participant's answer to the current recording's consent
    /// request, on every change; empty when nothing records.
    Consents { entries: Vec<ConsentEntry> },
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
    /// "Show my video" (group visits): other patients see this participant's camera.
    #[serde(default)]
    pub shown: bool,
    /// Their microphone and camera as their client last said (`media_state`); absent until
    /// it says.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media: Option<MediaState>,
}

/// A participant's microphone and camera, as their client reports them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MediaState {
    pub audio: MediaPresence,
    pub video: MediaPresence,
}

/// One device's state: sending (`on`), turned off by the person (`off`), or missing or
/// refused by the browser (`none`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MediaPresence {
    On,
    Off,
    None,
}

/// One participant's answer to the current recording's consent request, for clinicians.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConsentEntry {
    pub participant: ParticipantId,
    pub consent: ConsentStatus,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ConsentStatus {
    /// Asked, not answered yet: not recorded.
    Asked,
    Accepted,
    /// Declined, or withdrew an earlier consent: not recorded.
    Declined,
}

/// One consent decision (opaque participant id; no names).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConsentInfo {
    pub participant: ParticipantId,
    pub decision: ConsentDecision,
    /// Unix time in milliseconds when the server received the decision.
    pub at_unix_ms: u64,
    /// The version of the consent text the participant was shown.
    pub text_version: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConsentDecision {
    Accepted,
    Declined,
    /// An earlier consent taken back: recording of this participant stops.
    Withdrawn,
}

/// A job sent by `bedside` to a recorder agent over `/v1/recorder` (a WebSocket authenticated
/// with the recorder secret as a bearer token). The agent then joins `visit` over `/v1/signal`
/// like any participant, with `ticket` as its join token (single use, valid for a minute).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum RecorderJob {
    Record { visit: VisitId, ticket: String },
}

/// Whether a joined session is in the visit or in its waiting room.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum JoinState {
    Waiting,
    Admitted,
}

/// One waiting participant as clinicians see them. `name` and `reason` are PHI: shown to
/// clinicians only, never logged.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct QueueEntry {
    pub participant: ParticipantId,
    pub role: Role,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// How long they have waited so far, in milliseconds, when this was sent.
    pub waited_ms: u64,
}

/// Which participant's media a server-sent `mid` carries.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrackInfo {
    pub mid: String,
    pub participant: ParticipantId,
    pub kind: TrackKind,
    pub source: Source,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TrackKind {
    Audio,
    Video,
}

/// What a published track carries; the routing policy decides by role and source.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    Microphone,
    Camera,
    Screen,
}

impl Source {
    pub const ALL: [Source; 3] = [Source::Microphone, Source::Camera, Source::Screen];

    pub fn as_str(self) -> &'static str {
        match self {
            Source::Microphone => "microphone",
            Source::Camera => "camera",
            Source::Screen => "screen",
        }
    }

    /// The media kind that can carry this source.
    pub fn kind(self) -> TrackKind {
        match self {
            Source::Microphone => TrackKind::Audio,
            Source::Camera | Source::Screen => TrackKind::Video,
        }
    }

    /// The source a track of `kind` carries when the client does not say.
    pub fn default_for(kind: TrackKind) -> Source {
        match kind {
            TrackKind::Audio => Source::Microphone,
            TrackKind::Video => Source::Camera,
        }
    }

    pub fn parse(s: &str) -> Option<Source> {
        Source::ALL.into_iter().find(|x| x.as_str() == s)
    }
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
    /// A candidate (trickled or in an offer) could not be parsed or is over the limits: size,
    /// foundation, or the number per media session.
    InvalidCandidate,
    /// The media connection failed or the media engine dropped the session. The socket closes.
    MediaFailed,
    /// The server is shutting down or cannot take more sessions. The socket closes.
    Unavailable,
    /// No `join` arrived in time. The socket closes.
    Timeout,
    /// Too many join attempts from this client address (the socket closes), or messages on
    /// this socket faster than its rate (the message is dropped; a client that keeps sending
    /// is closed). Either way: slow down and try again shortly.
    RateLimited,
    /// The visit has as many participants as its type allows. The socket closes.
    VisitFull,
    /// A provider ended the visit. The socket closes.
    VisitEnded,
    /// A clinician turned this waiting participant away; `message` is their reason. Closes.
    Denied,
    /// A provider removed this participant. The socket closes.
    Removed,
    /// Nobody admitted this participant within the maximum wait. The socket closes.
    WaitTimeout,
    /// The same token joined again from elsewhere (e.g. a reload); this older session ends.
    SessionReplaced,
    /// This role may not do that (e.g. a patient sending `admit`).
    Forbidden,
    /// Media before admission: wait for `admitted`.
    NotAdmitted,
    /// The offer sends a source this role may not publish in this visit.
    PublishNotAllowed,
    /// The offer sends more than one microphone, camera or screen, or has more media sections
    /// than any client needs.
    TooManyTracks,
    /// The command names a participant who is not (or no longer) there.
    UnknownParticipant,
    /// Recording is not enabled on this server.
    RecordingDisabled,
    /// No recorder is connected, or the visit is not recording (for `record_stop`).
    RecordingUnavailable,
    /// The consent answer names another version of the consent text than the one asked, or
    /// nothing was asked.
    ConsentMismatch,
    /// A provider stopped the recording (sent to the recorder; the socket closes).
    RecordingStopped,
}

impl ErrorCode {
    /// Every code, for metrics that should show zeros rather than gaps.
    pub const ALL: [ErrorCode; 30] = [
        ErrorCode::InvalidMessage,
        ErrorCode::MessageTooLarge,
        ErrorCode::UnknownType,
        ErrorCode::UnsupportedVersion,
        ErrorCode::NotJoined,
        ErrorCode::AlreadyJoined,
        ErrorCode::InvalidToken,
        ErrorCode::TokenExpired,
        ErrorCode::InvalidSdp,
        ErrorCode::NegotiationState,
        ErrorCode::InvalidCandidate,
        ErrorCode::MediaFailed,
        ErrorCode::Unavailable,
        ErrorCode::Timeout,
        ErrorCode::RateLimited,
        ErrorCode::VisitFull,
        ErrorCode::VisitEnded,
        ErrorCode::Denied,
        ErrorCode::Removed,
        ErrorCode::WaitTimeout,
        ErrorCode::SessionReplaced,
        ErrorCode::Forbidden,
        ErrorCode::NotAdmitted,
        ErrorCode::PublishNotAllowed,
        ErrorCode::TooManyTracks,
        ErrorCode::UnknownParticipant,
        ErrorCode::RecordingDisabled,
        ErrorCode::RecordingUnavailable,
        ErrorCode::ConsentMismatch,
        ErrorCode::RecordingStopped,
    ];

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
            ErrorCode::RateLimited => "rate_limited",
            ErrorCode::VisitFull => "visit_full",
            ErrorCode::VisitEnded => "visit_ended",
            ErrorCode::Denied => "denied",
            ErrorCode::Removed => "removed",
            ErrorCode::WaitTimeout => "wait_timeout",
            ErrorCode::SessionReplaced => "session_replaced",
            ErrorCode::Forbidden => "forbidden",
            ErrorCode::NotAdmitted => "not_admitted",
            ErrorCode::PublishNotAllowed => "publish_not_allowed",
            ErrorCode::TooManyTracks => "too_many_tracks",
            ErrorCode::UnknownParticipant => "unknown_participant",
            ErrorCode::RecordingDisabled => "recording_disabled",
            ErrorCode::RecordingUnavailable => "recording_unavailable",
            ErrorCode::ConsentMismatch => "consent_mismatch",
            ErrorCode::RecordingStopped => "recording_stopped",
        }
    }

    /// Whether the server always closes the socket after sending this error. `rate_limited`
    /// is not among them: a refused join closes, a message over the socket's rate does not
    /// (until the flood goes on).
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
                | ErrorCode::VisitFull
                | ErrorCode::VisitEnded
                | ErrorCode::Denied
                | ErrorCode::Removed
                | ErrorCode::WaitTimeout
                | ErrorCode::SessionReplaced
                | ErrorCode::RecordingStopped
        )
    }
}
