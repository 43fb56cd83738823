//! One recording session: the recorder joins a visit as a participant over `/v1/signal`,
//! subscribes to nothing itself (its offer holds only a data channel, so it publishes nothing
//! and the publish policy has nothing to refuse), accepts the server's offers of everyone's
//! consented tracks, and hands the media to a [`Capture`] on a blocking thread.
//!
//! The async shell here owns the WebSocket, the UDP socket and the str0m session; the
//! decisions it makes are in plain functions ([`classify`], [`KeyframeRequests`]) that unit
//! tests cover without a network.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bedside_audit::{AuditEvent, AuditLog};
use bedside_proto::{
    ClientMessage, ConsentInfo, ErrorCode, JoinState, ParticipantId, ParticipantInfo, Role,
    ServerMessage, TrackInfo, TrackKind, VisitId, PROTOCOL_VERSION,
};
use bedside_recording::{now_unix_ms, Keyring, Metadata, RecordingError, RecordingId};
use futures_util::{SinkExt, StreamExt};
use str0m::change::{SdpAnswer, SdpOffer, SdpPendingOffer};
use str0m::media::{Direction, KeyframeRequestKind, Mid};
use str0m::net::{DatagramRecv, Protocol, Receive};
use str0m::{Candidate, Event, IceConnectionState, Input, Output, Rtc};
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, watch};
use tokio_tungstenite::tungstenite::Message;
use tracing::{debug, info, warn};

use crate::capture::{Capture, Frame};
use crate::ivf::{vp8_keyframe_size, KeyframeGate};
use crate::tls::Ws;

/// How long the server has to answer `join`.
const JOIN_TIMEOUT: Duration = Duration::from_secs(20);
/// Keep-alive on the signaling socket.
const PING_INTERVAL: Duration = Duration::from_secs(20);
/// Minimum time between two keyframe requests for one track.
const KEYFRAME_REQUEST_INTERVAL: Duration = Duration::from_millis(500);
/// Frames queued for the capture thread before new ones are dropped (a stalled disk).
const CAPTURE_QUEUE: usize = 4096;

/// Why a session ended early or could not start. Messages carry no SDP, tokens or addresses.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    #[error("signaling: {0}")]
    Signaling(String),
    #[error("the server refused: {}", .0.as_str())]
    Refused(ErrorCode),
    #[error("the server closed the signaling socket before the join completed")]
    Closed,
    #[error("no answer to join within {}s", JOIN_TIMEOUT.as_secs())]
    JoinTimeout,
    #[error("socket: {0}")]
    Io(#[from] std::io::Error),
    #[error("WebRTC: {0}")]
    Rtc(#[from] str0m::RtcError),
    #[error(transparent)]
    Recording(#[from] RecordingError),
    #[error("the capture thread stopped unexpectedly")]
    CaptureLost,
}

/// Everything one session needs.
#[derive(Clone)]
pub struct SessionParams {
    /// `wss://host:port/v1/signal` or `ws://host:port/v1/signal`.
    pub signal_url: String,
    /// TLS for a `wss://` signaling URL.
    pub tls: Option<Arc<rustls::ClientConfig>>,
    /// The single-use join token from the job.
    pub ticket: String,
    pub visit: VisitId,
    pub media_ip: IpAddr,
    pub storage_dir: PathBuf,
    pub keyring: Arc<Keyring>,
    pub audit: AuditLog,
}

impl std::fmt::Debug for SessionParams {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionParams")
            .field("visit", &self.visit)
            .finish_non_exhaustive()
    }
}

/// How a session ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EndReason {
    /// `recording` with `active: false`.
    RecordingInactive,
    /// An error code that closes the session (`recording_stopped`, `visit_ended`, …).
    ServerClosed(ErrorCode),
    /// The server said `left` or closed the socket.
    SocketClosed,
    /// ICE or DTLS failed, or the media session died.
    MediaEnded,
    /// The agent is shutting down.
    Shutdown,
}

/// What one signaling message means for the session.
#[derive(Debug)]
pub enum Step {
    /// Nothing to do.
    Ignore,
    /// The server answered our offer.
    Answer(String),
    /// A server offer: answer it; `tracks` is the new track map.
    Offer {
        sdp: String,
        tracks: Vec<TrackInfo>,
    },
    Participants(Vec<ParticipantId>),
    Consent(ConsentInfo),
    /// The recording runs; `true` while a provider has paused it.
    Paused(bool),
    /// A non-fatal error code (logged).
    Warn(ErrorCode),
    End(EndReason),
}

fn others(participants: &[ParticipantInfo]) -> Vec<ParticipantId> {
    participants
        .iter()
        .filter(|p| p.role != Role::Recorder)
        .map(|p| p.participant)
        .collect()
}

/// Decides what a server message means once joined. Total: every message maps to a step.
pub fn classify(msg: ServerMessage) -> Step {
    match msg {
        ServerMessage::Answer { sdp } => Step::Answer(sdp),
        ServerMessage::Offer { sdp, tracks } => Step::Offer { sdp, tracks },
        ServerMessage::Joined { participants, .. }
        | ServerMessage::Admitted { participants, .. } => Step::Participants(others(&participants)),
        ServerMessage::ParticipantJoined { participant }
        | ServerMessage::ParticipantUpdated { participant } => {
            Step::Participants(others(std::slice::from_ref(&participant)))
        }
        ServerMessage::ConsentRecorded { consent } => Step::Consent(consent),
        ServerMessage::Recording { active: false, .. } => Step::End(EndReason::RecordingInactive),
        ServerMessage::Left => Step::End(EndReason::SocketClosed),
        ServerMessage::Error { code, .. } if code.closes_session() => {
            Step::End(EndReason::ServerClosed(code))
        }
        ServerMessage::Error { code, .. } => Step::Warn(code),
        ServerMessage::Recording {
            active: true,
            paused,
            ..
        } => Step::Paused(paused),
        ServerMessage::Waiting { .. }
        | ServerMessage::Queue { .. }
        | ServerMessage::ParticipantLeft { .. }
        | ServerMessage::Pong
        | ServerMessage::ConsentRequest { .. }
        | ServerMessage::Consents { .. } => Step::Ignore,
    }
}

/// Keyframe requests for the video mids: after a track appears nothing is written until a
/// keyframe, and after a loss nothing until the next one, so ask (PLI) while waiting, at most
/// every [`KEYFRAME_REQUEST_INTERVAL`].
#[derive(Debug, Default)]
pub struct KeyframeRequests {
    mids: HashMap<String, (KeyframeGate, Option<Instant>)>,
}

impl KeyframeRequests {
    /// The video mids of the latest track map.
    pub fn set_tracks(&mut self, tracks: &[TrackInfo]) {
        self.mids.retain(|mid, _| {
            tracks
                .iter()
                .any(|t| t.mid == *mid && t.kind == TrackKind::Video)
        });
        for t in tracks.iter().filter(|t| t.kind == TrackKind::Video) {
            self.mids.entry(t.mid.clone()).or_default();
        }
    }

    /// A video mid renegotiated to inactive: when it comes back it needs a keyframe.
    pub fn reset(&mut self, mid: &str) {
        if let Some(entry) = self.mids.get_mut(mid) {
            entry.0 = KeyframeGate::default();
        }
    }

    /// A frame arrived on `mid`; true if a keyframe should be requested now.
    pub fn on_frame(&mut self, now: Instant, mid: &str, contiguous: bool, data: &[u8]) -> bool {
        let Some((gate, last)) = self.mids.get_mut(mid) else {
            return false;
        };
        gate.admit(contiguous, vp8_keyframe_size(data).is_some());
        if !gate.waiting() || last.is_some_and(|t| now < t + KEYFRAME_REQUEST_INTERVAL) {
            return false;
        }
        *last = Some(now);
        true
    }
}

/// Work for the capture thread.
#[derive(Debug)]
pub enum CaptureInput {
    Tracks(u64, Vec<TrackInfo>),
    Inactive(u64, String),
    Participants(Vec<ParticipantId>),
    Consent(ConsentInfo),
    /// The recording was paused (`true`) or resumed at this time (Unix ms).
    Paused(u64, bool),
    Media {
        at: u64,
        mid: String,
        rtp_time: u64,
        contiguous: bool,
        data: Arc<[u8]>,
    },
}

/// Applies one input to the capture.
pub fn apply(capture: &mut Capture, input: CaptureInput) {
    match input {
        CaptureInput::Tracks(at, tracks) => capture.set_tracks(at, &tracks),
        CaptureInput::Inactive(at, mid) => capture.mid_inactive(at, &mid),
        CaptureInput::Participants(ps) => ps.into_iter().for_each(|p| capture.participant(p)),
        CaptureInput::Consent(c) => capture.consent(&c),
        CaptureInput::Paused(at, paused) => capture.paused(at, paused),
        CaptureInput::Media {
            at,
            mid,
            rtp_time,
            contiguous,
            data,
        } => capture.media(
            at,
            &mid,
            &Frame {
                rtp_time,
                contiguous,
                data: &data,
            },
        ),
    }
}

/// Runs the capture until the channel closes, then finishes the recording.
fn capture_loop(
    mut capture: Capture,
    mut rx: mpsc::Receiver<CaptureInput>,
) -> Result<Metadata, RecordingError> {
    while let Some(input) = rx.blocking_recv() {
        apply(&mut capture, input);
    }
    capture.finish(now_unix_ms())
}

async fn send(ws: &mut Ws, msg: &ClientMessage) -> Result<(), SessionError> {
    let text = serde_json::to_string(msg).expect("client messages always serialize");
    ws.send(Message::Text(text.into()))
        .await
        .map_err(|e| SessionError::Signaling(e.to_string()))
}

/// A server message from a frame; `Ok(None)` for frames to skip, `Err` when the socket closed.
fn parse(msg: Message) -> Result<Option<ServerMessage>, ()> {
    match msg {
        Message::Text(t) => Ok(serde_json::from_str(&t).ok()),
        Message::Close(_) => Err(()),
        _ => Ok(None),
    }
}

/// Connects, joins and waits for admission; returns the socket and who is there.
async fn join(params: &SessionParams) -> Result<(Ws, Vec<ParticipantId>), SessionError> {
    let (mut ws, _) = crate::tls::connect(params.signal_url.as_str(), params.tls.as_ref())
        .await
        .map_err(|e| SessionError::Signaling(crate::tls::describe(&e)))?;
    send(
        &mut ws,
        &ClientMessage::Join {
            v: PROTOCOL_VERSION,
            token: params.ticket.clone(),
            visit: None,
        },
    )
    .await?;
    let wait = async {
        loop {
            let msg = match ws.next().await {
                Some(Ok(m)) => m,
                Some(Err(e)) => return Err(SessionError::Signaling(e.to_string())),
                None => return Err(SessionError::Closed),
            };
            match parse(msg) {
                Err(()) => return Err(SessionError::Closed),
                Ok(None) => {}
                Ok(Some(ServerMessage::Joined {
                    state: JoinState::Admitted,
                    participants,
                    ..
                }))
                | Ok(Some(ServerMessage::Admitted { participants, .. })) => {
                    return Ok(others(&participants))
                }
                // A refused join closes the socket; `rate_limited` (too many joins) does
                // too, although it does not always close later in a session.
                Ok(Some(ServerMessage::Error { code, .. }))
                    if code.closes_session() || code == ErrorCode::RateLimited =>
                {
                    return Err(SessionError::Refused(code))
                }
                Ok(Some(_)) => {}
            }
        }
    };
    let participants = tokio::time::timeout(JOIN_TIMEOUT, wait)
        .await
        .map_err(|_| SessionError::JoinTimeout)??;
    Ok((ws, participants))
}

fn audit(log: &AuditLog, kind: &str, visit: &str, id: RecordingId) {
    let event = AuditEvent {
        kind: kind.into(),
        visit: Some(visit.to_owned()),
        code: Some(format!("recording:{id}")),
        ..AuditEvent::default()
    };
    if let Err(e) = log.append(event) {
        warn!(recording = %id, error = %e, "cannot append to the audit log");
    }
}

/// Runs one recording session to its end: join, record, finish. The recording is finished
/// (streams and metadata written) however the session ends, once it has started.
pub async fn run_session(
    params: SessionParams,
    mut shutdown: watch::Receiver<bool>,
) -> Result<(RecordingId, EndReason), SessionError> {
    let (mut ws, participants) = join(&params).await?;
    let (root, visit, keyring, log) = (
        params.storage_dir.clone(),
        params.visit.to_string(),
        Arc::clone(&params.keyring),
        params.audit.clone(),
    );
    let capture = tokio::task::spawn_blocking(move || {
        let capture = Capture::create(&root, &visit, &keyring, now_unix_ms())?;
        audit(&log, "recording_started", &visit, capture.id());
        Ok::<_, RecordingError>(capture)
    })
    .await
    .map_err(|_| SessionError::CaptureLost)??;
    let id = capture.id();
    info!(recording = %id, visit = %params.visit, "recording started");
    let (tx, rx) = mpsc::channel(CAPTURE_QUEUE);
    let writer = tokio::task::spawn_blocking(move || capture_loop(capture, rx));
    let _ = tx.send(CaptureInput::Participants(participants)).await;

    let media = Media::start(params.media_ip, &mut ws).await;
    let end = match media {
        Ok(mut media) => {
            let end = media.run(&mut ws, &tx, &mut shutdown, id).await;
            media.rtc.disconnect();
            end
        }
        Err(e) => {
            warn!(recording = %id, error = %e, "media setup failed");
            EndReason::MediaEnded
        }
    };
    if !matches!(end, EndReason::SocketClosed | EndReason::ServerClosed(_)) {
        let _ = send(&mut ws, &ClientMessage::Leave {}).await;
    }
    let _ = ws.close(None).await;
    drop(tx);
    let finished = writer.await.map_err(|_| SessionError::CaptureLost)?;
    let log = params.audit.clone();
    let visit = params.visit.to_string();
    tokio::task::spawn_blocking(move || audit(&log, "recording_finished", &visit, id))
        .await
        .map_err(|_| SessionError::CaptureLost)?;
    let meta = finished?;
    info!(recording = %id, streams = meta.streams.len(), end = ?end, "recording finished");
    Ok((id, end))
}

enum Wake {
    Signal(Option<Result<Message, tokio_tungstenite::tungstenite::Error>>),
    Datagram(std::io::Result<(usize, SocketAddr)>),
    Timeout,
    Ping,
    Stop,
}

/// The str0m side of a session.
struct Media {
    rtc: Rtc,
    socket: UdpSocket,
    local: SocketAddr,
    candidate: String,
    pending: Option<SdpPendingOffer>,
    next_timeout: Instant,
    keyframes: KeyframeRequests,
    dropped: u64,
}

impl Media {
    /// Binds the UDP socket and sends the initial offer (a data channel only).
    async fn start(ip: IpAddr, ws: &mut Ws) -> Result<Media, SessionError> {
        let socket = UdpSocket::bind(SocketAddr::new(ip, 0)).await?;
        let local = socket.local_addr()?;
        let now = Instant::now();
        let mut rtc = Rtc::builder().build(now);
        let candidate = Candidate::host(local, "udp")
            .map_err(|e| SessionError::Signaling(format!("host candidate: {e}")))?;
        let candidate_sdp = candidate.to_sdp_string();
        rtc.add_local_candidate(candidate);
        let mut change = rtc.sdp_api();
        change.add_channel("bedside-recorder".to_owned());
        let (offer, pending) = change
            .apply()
            .expect("adding a data channel always yields an offer");
        send(
            ws,
            &ClientMessage::Offer {
                sdp: offer.to_sdp_string(),
                sources: Default::default(),
            },
        )
        .await?;
        Ok(Media {
            rtc,
            socket,
            local,
            candidate: candidate_sdp,
            pending: Some(pending),
            next_timeout: now,
            keyframes: KeyframeRequests::default(),
            dropped: 0,
        })
    }

    async fn run(
        &mut self,
        ws: &mut Ws,
        tx: &mpsc::Sender<CaptureInput>,
        shutdown: &mut watch::Receiver<bool>,
        id: RecordingId,
    ) -> EndReason {
        let mut buf = vec![0u8; 2048];
        let mut ping = tokio::time::interval(PING_INTERVAL);
        ping.reset();
        loop {
            if let Err(end) = self.drive(tx) {
                return end;
            }
            if *shutdown.borrow() {
                return EndReason::Shutdown;
            }
            let wake = tokio::select! {
                m = ws.next() => Wake::Signal(m),
                r = self.socket.recv_from(&mut buf) => Wake::Datagram(r),
                _ = tokio::time::sleep_until(self.next_timeout.into()) => Wake::Timeout,
                _ = ping.tick() => Wake::Ping,
                _ = shutdown.changed() => Wake::Stop,
            };
            match wake {
                Wake::Signal(None) | Wake::Signal(Some(Err(_))) => return EndReason::SocketClosed,
                Wake::Signal(Some(Ok(msg))) => {
                    let Ok(msg) = parse(msg) else {
                        return EndReason::SocketClosed;
                    };
                    let Some(msg) = msg else { continue };
                    match self.signal(ws, tx, classify(msg), id).await {
                        Ok(None) => {}
                        Ok(Some(end)) => return end,
                        Err(e) => {
                            warn!(recording = %id, error = %e, "signaling failed");
                            return EndReason::SocketClosed;
                        }
                    }
                }
                Wake::Datagram(r) => {
                    let mut r = r;
                    for _ in 0..64 {
                        match r {
                            Ok((n, source)) => self.receive(source, &buf[..n]),
                            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                            Err(_) => {}
                        }
                        r = self.socket.try_recv_from(&mut buf);
                    }
                }
                Wake::Timeout => {
                    if self
                        .rtc
                        .handle_input(Input::Timeout(Instant::now()))
                        .is_err()
                    {
                        return EndReason::MediaEnded;
                    }
                }
                Wake::Ping => {
                    if send(ws, &ClientMessage::Ping {}).await.is_err() {
                        return EndReason::SocketClosed;
                    }
                }
                Wake::Stop => return EndReason::Shutdown,
            }
        }
    }

    /// Acts on one signaling step; `Some` ends the session.
    async fn signal(
        &mut self,
        ws: &mut Ws,
        tx: &mpsc::Sender<CaptureInput>,
        step: Step,
        id: RecordingId,
    ) -> Result<Option<EndReason>, SessionError> {
        match step {
            Step::Ignore => {}
            Step::Answer(sdp) => {
                let Some(pending) = self.pending.take() else {
                    debug!(recording = %id, "answer without a pending offer ignored");
                    return Ok(None);
                };
                let answer = SdpAnswer::from_sdp_string(&sdp)
                    .map_err(|_| SessionError::Signaling("unparsable SDP answer".into()))?;
                self.rtc.sdp_api().accept_answer(pending, answer)?;
                // Trickle our one host candidate, then end of candidates.
                for candidate in [self.candidate.clone(), String::new()] {
                    send(
                        ws,
                        &ClientMessage::Candidate {
                            candidate,
                            sdp_mid: None,
                            sdp_mline_index: None,
                        },
                    )
                    .await?;
                }
            }
            Step::Offer { sdp, tracks } => {
                let offer = SdpOffer::from_sdp_string(&sdp)
                    .map_err(|_| SessionError::Signaling("unparsable SDP offer".into()))?;
                let answer = self.rtc.sdp_api().accept_offer(offer)?;
                send(
                    ws,
                    &ClientMessage::Answer {
                        sdp: answer.to_sdp_string(),
                    },
                )
                .await?;
                debug!(recording = %id, tracks = tracks.len(), "server offer answered");
                self.keyframes.set_tracks(&tracks);
                let _ = tx.send(CaptureInput::Tracks(now_unix_ms(), tracks)).await;
            }
            Step::Participants(ps) => {
                let _ = tx.send(CaptureInput::Participants(ps)).await;
            }
            Step::Consent(c) => {
                let _ = tx.send(CaptureInput::Consent(c)).await;
            }
            Step::Paused(paused) => {
                let at = bedside_recording::now_unix_ms();
                let _ = tx.send(CaptureInput::Paused(at, paused)).await;
            }
            Step::Warn(code) => {
                debug!(recording = %id, code = code.as_str(), "server error (not fatal)");
            }
            Step::End(end) => return Ok(Some(end)),
        }
        Ok(None)
    }

    fn receive(&mut self, source: SocketAddr, data: &[u8]) {
        let Ok(contents) = DatagramRecv::try_from(data) else {
            return;
        };
        let input = Input::Receive(
            Instant::now(),
            Receive {
                proto: Protocol::Udp,
                source,
                destination: self.local,
                contents,
            },
        );
        // str0m refuses what it cannot use (a stray or damaged packet); that is not fatal.
        let _ = self.rtc.handle_input(input);
    }

    /// Polls str0m until it waits for a timeout: sends datagrams, forwards media.
    fn drive(&mut self, tx: &mpsc::Sender<CaptureInput>) -> Result<(), EndReason> {
        loop {
            if !self.rtc.is_alive() {
                return Err(EndReason::MediaEnded);
            }
            let output = self.rtc.poll_output().map_err(|_| EndReason::MediaEnded)?;
            match output {
                Output::Timeout(t) => {
                    self.next_timeout = t;
                    return Ok(());
                }
                Output::Transmit(t) => {
                    let _ = self.socket.try_send_to(&t.contents, t.destination);
                }
                Output::Event(Event::IceConnectionStateChange(
                    IceConnectionState::Disconnected,
                )) => return Err(EndReason::MediaEnded),
                Output::Event(Event::MediaData(d)) => {
                    let mid = d.mid.to_string();
                    if self
                        .keyframes
                        .on_frame(Instant::now(), &mid, d.contiguous, &d.data)
                    {
                        self.request_keyframe(d.mid);
                    }
                    let input = CaptureInput::Media {
                        at: now_unix_ms(),
                        mid,
                        rtp_time: d.time.numer(),
                        contiguous: d.contiguous,
                        data: d.data,
                    };
                    if tx.try_send(input).is_err() {
                        self.dropped += 1;
                        if self.dropped.is_power_of_two() {
                            warn!(dropped = self.dropped, "capture queue full: media dropped");
                        }
                    }
                }
                Output::Event(Event::MediaChanged(c)) => {
                    if matches!(c.direction, Direction::Inactive | Direction::SendOnly) {
                        let mid = c.mid.to_string();
                        self.keyframes.reset(&mid);
                        let _ = tx.try_send(CaptureInput::Inactive(now_unix_ms(), mid));
                    }
                }
                Output::Event(_) => {}
            }
        }
    }

    fn request_keyframe(&mut self, mid: Mid) {
        if let Some(mut writer) = self.rtc.writer(mid) {
            if writer.is_request_keyframe_possible(KeyframeRequestKind::Pli) {
                let _ = writer.request_keyframe(None, KeyframeRequestKind::Pli);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bedside_proto::Source;

    fn info(id: u64, role: Role) -> ParticipantInfo {
        ParticipantInfo {
            participant: ParticipantId::from_raw(id),
            role,
            name: Some("Pat".into()),
            shown: false,
            media: None,
        }
    }

    fn error(code: ErrorCode) -> ServerMessage {
        ServerMessage::Error {
            code,
            message: String::new(),
        }
    }

    #[test]
    fn classify_ends_on_stop_and_closing_errors_only() {
        let end = |m| match classify(m) {
            Step::End(r) => Some(r),
            _ => None,
        };
        assert_eq!(
            end(ServerMessage::Recording {
                active: false,
                recorded: false,
                you: false,
                paused: false,
            }),
            Some(EndReason::RecordingInactive)
        );
        assert_eq!(
            end(ServerMessage::Recording {
                active: true,
                recorded: true,
                you: false,
                paused: false,
            }),
            None
        );
        for code in [
            ErrorCode::RecordingStopped,
            ErrorCode::VisitEnded,
            ErrorCode::Removed,
        ] {
            assert_eq!(end(error(code)), Some(EndReason::ServerClosed(code)));
        }
        assert!(matches!(
            classify(error(ErrorCode::NegotiationState)),
            Step::Warn(ErrorCode::NegotiationState)
        ));
        assert_eq!(end(ServerMessage::Left), Some(EndReason::SocketClosed));
    }

    #[test]
    fn classify_lists_participants_but_not_recorders() {
        let msg = ServerMessage::Admitted {
            participants: vec![
                info(1, Role::Provider),
                info(2, Role::Recorder),
                info(3, Role::Patient),
            ],
            ice_servers: Vec::new(),
        };
        match classify(msg) {
            Step::Participants(ps) => {
                assert_eq!(ps, [ParticipantId::from_raw(1), ParticipantId::from_raw(3)])
            }
            other => panic!("{other:?}"),
        }
        let msg = ServerMessage::ParticipantJoined {
            participant: info(9, Role::Recorder),
        };
        assert!(matches!(classify(msg), Step::Participants(ps) if ps.is_empty()));
    }

    #[test]
    fn keyframes_are_requested_while_waiting_at_most_twice_a_second() {
        let mut k = KeyframeRequests::default();
        k.set_tracks(&[
            TrackInfo {
                mid: "1".into(),
                participant: ParticipantId::from_raw(2),
                kind: TrackKind::Video,
                source: Source::Camera,
            },
            TrackInfo {
                mid: "0".into(),
                participant: ParticipantId::from_raw(2),
                kind: TrackKind::Audio,
                source: Source::Microphone,
            },
        ]);
        let t0 = Instant::now();
        let inter = [0x11u8; 20];
        let key = crate::ivf::test_keyframe(64, 48, 20);
        assert!(!k.on_frame(t0, "0", true, &inter), "audio never asks");
        assert!(!k.on_frame(t0, "9", true, &inter), "unknown mids never ask");
        assert!(k.on_frame(t0, "1", true, &inter));
        assert!(!k.on_frame(t0 + Duration::from_millis(100), "1", true, &inter));
        assert!(k.on_frame(t0 + Duration::from_millis(600), "1", true, &inter));
        assert!(!k.on_frame(t0 + Duration::from_millis(700), "1", true, &key));
        assert!(!k.on_frame(t0 + Duration::from_secs(5), "1", true, &inter));
        assert!(
            k.on_frame(t0 + Duration::from_secs(6), "1", false, &inter),
            "after a loss"
        );
        k.on_frame(t0 + Duration::from_secs(7), "1", true, &key);
        k.reset("1");
        assert!(
            k.on_frame(t0 + Duration::from_secs(8), "1", true, &inter),
            "after inactive"
        );
        k.set_tracks(&[]);
        assert!(!k.on_frame(t0 + Duration::from_secs(9), "1", true, &inter));
    }
}
