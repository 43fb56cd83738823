//! The recording of one visit, without any networking: the session shell feeds it the track
//! map from each server offer, media frames, participants and consent decisions, each with the
//! wall-clock time as an argument, and it writes one encrypted stream per track subscription and
//! the metadata at the end.
//!
//! It runs on a blocking thread (file writes sync every 64 KiB chunk), fed through a channel.

use std::collections::BTreeMap;
use std::path::Path;

use bedside_proto::{ConsentInfo, ParticipantId, Source, TrackInfo, TrackKind as ProtoKind};
use bedside_recording::{
    ConsentDecision, ConsentRecord, EncryptedWriter, Keyring, Metadata, RecordingError,
    RecordingId, RecordingInfo, RecordingWriter, TimelineEvent, TimelineKind, Track, TrackKind,
};
use tracing::{debug, info, warn};

use crate::audio::OpusToPcm;
use crate::ivf::{ivf_frame_header, ivf_header, vp8_keyframe_size, KeyframeGate};
use crate::wav::wav_header;

/// Codec names in the metadata.
pub const CODEC_PCM: &str = "pcm_s16le";
pub const CODEC_VP8: &str = "vp8";

/// A jump in video RTP time larger than this (or backwards) is a new time base, not a pause.
const MAX_VIDEO_JUMP: u64 = 10 * 90_000;
/// pts step assumed across such a jump: one frame at 30 fps.
const VIDEO_STEP: u64 = 3_000;

/// One received media frame, as the session shell hands it over.
#[derive(Debug, Clone)]
pub struct Frame<'a> {
    /// RTP time (48 kHz for Opus, 90 kHz for VP8); only the low 32 bits are used.
    pub rtp_time: u64,
    /// False if packets were lost since the previous frame of this mid.
    pub contiguous: bool,
    pub data: &'a [u8],
}

/// One recorded stream being written.
struct Stream {
    writer: EncryptedWriter,
    /// Index of its entry in `info.tracks`.
    track: usize,
    sink: Sink,
    /// Reused buffer of bytes to write.
    out: Vec<u8>,
}

enum Sink {
    Audio(Box<OpusToPcm>),
    Video(VideoState),
}

#[derive(Default)]
struct VideoState {
    gate: KeyframeGate,
    /// Last written frame's (rtp time, pts).
    last: Option<(u32, u64)>,
}

/// A mid the server maps to a participant's camera or microphone.
struct MidState {
    participant: ParticipantId,
    kind: ProtoKind,
    /// Open while media flows; closed when the mid goes away or turns inactive, reopened (as a
    /// new stream) if media comes back.
    stream: Option<Stream>,
    /// Video only: frames seen before a stream is open (waiting for a keyframe).
    gate: KeyframeGate,
}

/// Writes one recording.
pub struct Capture {
    recording: RecordingWriter,
    id: RecordingId,
    visit: String,
    info: RecordingInfo,
    mids: BTreeMap<String, MidState>,
    /// Streams opened so far per (participant, kind), for `<n>` in the stream names.
    counters: BTreeMap<(ParticipantId, ProtoKind), u32>,
}

impl std::fmt::Debug for Capture {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Capture")
            .field("id", &self.id)
            .field("mids", &self.mids.len())
            .finish_non_exhaustive()
    }
}

/// The stream name of the `n`th subscription of `participant`'s `kind`: `p7-audio-1.wav`,
/// `p7-video-2.ivf`.
pub fn stream_name(participant: ParticipantId, kind: ProtoKind, n: u32) -> String {
    match kind {
        ProtoKind::Audio => format!("{participant}-audio-{n}.wav"),
        ProtoKind::Video => format!("{participant}-video-{n}.ivf"),
    }
}

impl Capture {
    /// Creates the recording (directory, wrapped key) and notes the start.
    pub fn create(
        root: &Path,
        visit: &str,
        keyring: &Keyring,
        now_unix_ms: u64,
    ) -> Result<Capture, RecordingError> {
        let id = RecordingId::generate();
        let recording = RecordingWriter::create_at(root, &id, visit, keyring, now_unix_ms)?;
        let mut info = RecordingInfo::default();
        info.timeline.push(TimelineEvent {
            kind: TimelineKind::Start,
            at_unix_ms: now_unix_ms,
        });
        Ok(Capture {
            recording,
            id,
            visit: visit.to_owned(),
            info,
            mids: BTreeMap::new(),
            counters: BTreeMap::new(),
        })
    }

    pub fn id(&self) -> RecordingId {
        self.id
    }

    pub fn visit(&self) -> &str {
        &self.visit
    }

    /// What the metadata will say so far.
    pub fn info(&self) -> &RecordingInfo {
        &self.info
    }

    /// A participant present in the visit (recorded or not).
    pub fn participant(&mut self, participant: ParticipantId) {
        let id = participant.to_string();
        if !self.info.participants.contains(&id) {
            self.info.participants.push(id);
        }
    }

    /// The server's recording state says paused or running: a change is a timeline event
    /// (repeats are ignored; the server re-sends the state on other changes too).
    pub fn paused(&mut self, now_unix_ms: u64, paused: bool) {
        let now_paused = self
            .info
            .timeline
            .iter()
            .rev()
            .find_map(|e| match e.kind {
                TimelineKind::Pause => Some(true),
                TimelineKind::Resume | TimelineKind::Start => Some(false),
                TimelineKind::Stop => None,
            })
            .unwrap_or(false);
        if now_paused == paused {
            return;
        }
        self.info.timeline.push(TimelineEvent {
            kind: if paused {
                TimelineKind::Pause
            } else {
                TimelineKind::Resume
            },
            at_unix_ms: now_unix_ms,
        });
    }

    /// A consent decision the server relayed.
    pub fn consent(&mut self, consent: &ConsentInfo) {
        self.participant(consent.participant);
        self.info.consents.push(ConsentRecord {
            participant: consent.participant.to_string(),
            decision: match consent.decision {
                bedside_proto::ConsentDecision::Accepted => ConsentDecision::Accepted,
                bedside_proto::ConsentDecision::Declined => ConsentDecision::Declined,
                bedside_proto::ConsentDecision::Withdrawn => ConsentDecision::Withdrawn,
            },
            at_unix_ms: consent.at_unix_ms,
            text_version: consent.text_version.clone(),
        });
    }

    /// The server's track map from its latest offer: every mid that carries media to us. Mids
    /// no longer listed (or now carrying someone else) have their streams finished; screen
    /// shares are ignored.
    pub fn set_tracks(&mut self, now_unix_ms: u64, tracks: &[TrackInfo]) {
        let wanted: BTreeMap<&str, &TrackInfo> = tracks
            .iter()
            .filter(|t| t.source != Source::Screen && t.source.kind() == t.kind)
            .map(|t| (t.mid.as_str(), t))
            .collect();
        let gone: Vec<String> = self
            .mids
            .iter()
            .filter(|(mid, state)| {
                wanted
                    .get(mid.as_str())
                    .is_none_or(|t| t.participant != state.participant || t.kind != state.kind)
            })
            .map(|(mid, _)| mid.clone())
            .collect();
        for mid in gone {
            if let Some(mut state) = self.mids.remove(&mid) {
                self.close(now_unix_ms, &mut state);
            }
        }
        for (mid, t) in wanted {
            self.participant(t.participant);
            self.mids.entry(mid.to_owned()).or_insert_with(|| MidState {
                participant: t.participant,
                kind: t.kind,
                stream: None,
                gate: KeyframeGate::default(),
            });
        }
    }

    /// A mid stopped carrying media (renegotiated to inactive): finish its stream. Media on it
    /// later starts a new stream.
    pub fn mid_inactive(&mut self, now_unix_ms: u64, mid: &str) {
        if let Some(mut state) = self.mids.remove(mid) {
            self.close(now_unix_ms, &mut state);
            self.mids.insert(mid.to_owned(), state);
        }
    }

    /// Mids with a video track, for keyframe requests.
    pub fn video_mids(&self) -> impl Iterator<Item = &str> {
        self.mids
            .iter()
            .filter(|(_, s)| s.kind == ProtoKind::Video)
            .map(|(m, _)| m.as_str())
    }

    /// One frame of media on `mid`. Frames on unknown mids are dropped. A failure to write
    /// finishes nothing else: the failed stream is dropped (it stays readable up to its last
    /// complete chunk) and the error is logged.
    pub fn media(&mut self, now_unix_ms: u64, mid: &str, frame: &Frame<'_>) {
        let Some(mut state) = self.mids.remove(mid) else {
            return;
        };
        if state.stream.is_none() {
            match self.open(now_unix_ms, &mut state, frame) {
                Ok(Some(stream)) => state.stream = Some(stream),
                Ok(None) => {
                    self.mids.insert(mid.to_owned(), state);
                    return;
                }
                Err(e) => {
                    warn!(recording = %self.id, participant = %state.participant, error = %e, "cannot open a stream");
                    self.mids.insert(mid.to_owned(), state);
                    return;
                }
            }
        }
        if let Some(stream) = &mut state.stream {
            stream.out.clear();
            write_frame(&mut stream.sink, frame, &mut stream.out);
            if !stream.out.is_empty() {
                if let Err(e) = stream.writer.write_all(&stream.out) {
                    warn!(recording = %self.id, participant = %state.participant, error = %e, "stream write failed; stream dropped");
                    let track = stream.track;
                    state.stream = None;
                    self.info.tracks[track].ended_unix_ms = Some(now_unix_ms);
                }
            }
        }
        self.mids.insert(mid.to_owned(), state);
    }

    /// Opens a stream for `state` if `frame` can start one (any audio; a video keyframe).
    fn open(
        &mut self,
        now_unix_ms: u64,
        state: &mut MidState,
        frame: &Frame<'_>,
    ) -> Result<Option<Stream>, RecordingError> {
        let (sink, header, codec, kind) = match state.kind {
            ProtoKind::Audio => {
                let Ok(decoder) = OpusToPcm::new() else {
                    return Ok(None);
                };
                (
                    Sink::Audio(Box::new(decoder)),
                    wav_header(),
                    CODEC_PCM,
                    TrackKind::Audio,
                )
            }
            ProtoKind::Video => {
                let size = vp8_keyframe_size(frame.data);
                if !state.gate.admit(frame.contiguous, size.is_some()) {
                    return Ok(None);
                }
                let Some((w, h)) = size else {
                    return Ok(None);
                };
                (
                    Sink::Video(VideoState::default()),
                    ivf_header(w, h, 0).to_vec(),
                    CODEC_VP8,
                    TrackKind::Video,
                )
            }
        };
        let counter = self
            .counters
            .entry((state.participant, state.kind))
            .or_insert(0);
        *counter += 1;
        let name = stream_name(state.participant, state.kind, *counter);
        let mut writer = self.recording.add_stream(&name)?;
        writer.write_all(&header)?;
        info!(recording = %self.id, participant = %state.participant, stream = %name, "stream started");
        self.info.tracks.push(Track {
            participant: state.participant.to_string(),
            kind,
            file: name,
            codec: codec.to_owned(),
            started_unix_ms: now_unix_ms,
            ended_unix_ms: None,
        });
        Ok(Some(Stream {
            writer,
            track: self.info.tracks.len() - 1,
            sink,
            out: Vec::new(),
        }))
    }

    fn close(&mut self, now_unix_ms: u64, state: &mut MidState) {
        state.gate = KeyframeGate::default();
        let Some(stream) = state.stream.take() else {
            return;
        };
        self.info.tracks[stream.track].ended_unix_ms = Some(now_unix_ms);
        if let Sink::Audio(dec) = &stream.sink {
            debug!(recording = %self.id, participant = %state.participant, stats = ?dec.stats, "audio stream ended");
        }
        match stream.writer.finish() {
            Ok(summary) => {
                info!(recording = %self.id, participant = %state.participant, bytes = summary.bytes, "stream finished")
            }
            Err(e) => {
                warn!(recording = %self.id, participant = %state.participant, error = %e, "cannot finish a stream")
            }
        }
    }

    /// Finishes every stream, notes the stop, and writes the metadata.
    pub fn finish(mut self, now_unix_ms: u64) -> Result<Metadata, RecordingError> {
        let mids = std::mem::take(&mut self.mids);
        for (_, mut state) in mids {
            self.close(now_unix_ms, &mut state);
        }
        self.info.timeline.push(TimelineEvent {
            kind: TimelineKind::Stop,
            at_unix_ms: now_unix_ms,
        });
        self.recording.finish(self.info)
    }
}

/// Turns one frame into the bytes to append to its stream.
fn write_frame(sink: &mut Sink, frame: &Frame<'_>, out: &mut Vec<u8>) {
    match sink {
        Sink::Audio(dec) => dec.push(frame.rtp_time as u32, frame.data, out),
        Sink::Video(v) => {
            let keyframe = vp8_keyframe_size(frame.data).is_some();
            if !v.gate.admit(frame.contiguous, keyframe) {
                return;
            }
            let Ok(size) = u32::try_from(frame.data.len()) else {
                return;
            };
            let ts = frame.rtp_time as u32;
            let pts = match v.last {
                None => 0,
                Some((last_ts, last_pts)) => {
                    let delta = u64::from(ts.wrapping_sub(last_ts));
                    if delta == 0 || delta > MAX_VIDEO_JUMP {
                        // Same time (should not happen for whole frames) or a new time base.
                        last_pts + if delta == 0 { 1 } else { VIDEO_STEP }
                    } else {
                        last_pts + delta
                    }
                }
            };
            v.last = Some((ts, pts));
            out.extend_from_slice(&ivf_frame_header(size, pts));
            out.extend_from_slice(frame.data);
        }
    }
}
