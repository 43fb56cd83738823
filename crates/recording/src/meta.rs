//! The recording's metadata, stored encrypted as the stream `meta.json`.
//!
//! Times are Unix milliseconds (UTC) supplied by the caller. Participant ids are the opaque
//! session or token-subject ids used in signaling, never names.

use serde::{Deserialize, Serialize};

use crate::writer::StreamSummary;

/// Everything `meta.json` holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Metadata {
    /// Always 1.
    pub format: u32,
    /// The recording id (32 hex digits).
    pub recording_id: String,
    /// The opaque visit id from the scheduling system.
    pub visit_id: String,
    /// Id of the key-encryption key that wraps this recording's data key.
    pub kek_id: String,
    /// When the recording was created (same value as in key.json).
    pub created_unix_ms: u64,
    /// What the recorder supplied at the end.
    pub info: RecordingInfo,
    /// Every stream the writer opened, with its length and SHA-256 if it was finished.
    pub streams: Vec<StreamEntry>,
}

/// What the recorder (the WebRTC side) knows about the visit, handed to
/// [`crate::RecordingWriter::finish`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecordingInfo {
    /// Opaque ids of every participant present while recording (recorded or not).
    pub participants: Vec<String>,
    pub consents: Vec<ConsentRecord>,
    /// Start, pause, resume and stop, in order.
    pub timeline: Vec<TimelineEvent>,
    pub tracks: Vec<Track>,
}

/// One consent decision.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConsentRecord {
    /// Opaque participant id.
    pub participant: String,
    pub decision: ConsentDecision,
    pub at_unix_ms: u64,
    /// Version of the consent text the participant was shown.
    pub text_version: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConsentDecision {
    Accepted,
    Declined,
    /// Consent given earlier and taken back; the participant's tracks stop here.
    Withdrawn,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TimelineEvent {
    pub kind: TimelineKind,
    pub at_unix_ms: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TimelineKind {
    Start,
    Pause,
    Resume,
    Stop,
}

/// One recorded track and the stream that holds it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Track {
    /// Opaque participant id.
    pub participant: String,
    pub kind: TrackKind,
    /// Stream name, e.g. `p7-audio.wav` (stored as `p7-audio.wav.enc`).
    pub file: String,
    /// e.g. `pcm_s16le` for WAV, `vp8` or `h264` for IVF.
    pub codec: String,
    pub started_unix_ms: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ended_unix_ms: Option<u64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TrackKind {
    Audio,
    Video,
    Screen,
}

/// A stream as recorded in the metadata.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StreamEntry {
    pub name: String,
    /// Length and digest; `None` if the stream was never finished (its writer was dropped).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished: Option<StreamDigest>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StreamDigest {
    pub bytes: u64,
    pub chunks: u64,
    /// SHA-256 of the plaintext, lowercase hex.
    pub sha256: String,
}

impl From<&StreamSummary> for StreamDigest {
    fn from(s: &StreamSummary) -> Self {
        StreamDigest {
            bytes: s.bytes,
            chunks: s.chunks,
            sha256: s.sha256.clone(),
        }
    }
}
