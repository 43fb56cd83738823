//! One synthetic participant: the real signaling over a WebSocket and a real WebRTC session
//! (str0m: ICE, DTLS, SRTP) on its own loopback UDP socket. Many of them run as tasks of one
//! current-thread runtime, so the load generator stays on one core.

use std::cell::{Cell, RefCell};
use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::{Duration, Instant};

use bedside_proto::{ClientMessage, ErrorCode, JoinState, ServerMessage, PROTOCOL_VERSION};
use futures_util::{SinkExt, StreamExt};
use str0m::change::{SdpAnswer, SdpOffer, SdpPendingOffer};
use str0m::format::Codec;
use str0m::media::{Direction, Frequency, MediaKind, MediaTime, Mid, Pt};
use str0m::net::{DatagramRecv, Protocol, Receive};
use str0m::{Candidate, Event, IceConnectionState, Input, Output, Rtc};
use tokio::net::{TcpStream, UdpSocket};
use tokio::sync::watch;
use tokio::time::MissedTickBehavior;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use crate::stats::{Probe, SeqSet};

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// Why a participant stopped before the end of its run.
#[derive(Debug, thiserror::Error)]
pub enum ParticipantError {
    #[error("signaling: {0}")]
    Signaling(String),
    #[error("the server refused: {0:?}")]
    Refused(ErrorCode),
    #[error("the server closed the signaling socket")]
    Closed,
    #[error("socket: {0}")]
    Io(#[from] std::io::Error),
    #[error("WebRTC: {0}")]
    Rtc(#[from] str0m::RtcError),
    #[error("SDP: {0}")]
    Sdp(#[from] str0m::error::SdpError),
    #[error("the media session ended (ICE or DTLS)")]
    MediaEnded,
}

/// What a participant publishes.
#[derive(Debug, Clone, Copy)]
pub struct MediaShape {
    /// Bytes per 20 ms Opus frame (50 frames/s).
    pub audio_bytes: usize,
    /// Video frames per second.
    pub video_fps: u32,
    /// Bytes per video frame (bitrate / 8 / fps).
    pub video_frame_bytes: usize,
}

/// Received media of one track at one receiver, inside the measured window.
#[derive(Debug, Default)]
pub(crate) struct TrackRecv {
    pub(crate) seqs: SeqSet,
    /// RTP packets of the frames counted in `seqs` (from each frame's sequence number range).
    pub(crate) packets: u64,
    /// Frames of this track received at any time (warm-up included).
    pub(crate) frames_total: u64,
}

/// State shared by every participant of one run (one thread: `Rc`, `Cell`, `RefCell`).
pub(crate) struct Shared {
    pub(crate) epoch: Instant,
    /// The measured window in microseconds since `epoch`, once it is set.
    pub(crate) window: Cell<Option<(u64, u64)>>,
    /// Frames each track sent with a send time inside the window.
    pub(crate) sent: RefCell<HashMap<u32, u64>>,
    /// By (receiver index, track).
    pub(crate) received: RefCell<HashMap<(u32, u32), TrackRecv>>,
    /// Forwarding delays inside the window: `[audio, video]`, microseconds.
    pub(crate) delays: RefCell<[Vec<u32>; 2]>,
    /// Participants receiving every track they expect.
    pub(crate) ready: Cell<usize>,
    /// Join to first media of every expected track, per ready participant.
    pub(crate) setup_ms: RefCell<Vec<u32>>,
    /// Datagrams the load generator could not send (its socket buffer was full).
    pub(crate) send_drops: Cell<u64>,
}

impl Shared {
    pub(crate) fn new(epoch: Instant) -> Shared {
        Shared {
            epoch,
            window: Cell::new(None),
            sent: RefCell::new(HashMap::new()),
            received: RefCell::new(HashMap::new()),
            delays: RefCell::new([Vec::new(), Vec::new()]),
            ready: Cell::new(0),
            setup_ms: RefCell::new(Vec::new()),
            send_drops: Cell::new(0),
        }
    }

    pub(crate) fn micros(&self, t: Instant) -> u64 {
        t.saturating_duration_since(self.epoch).as_micros() as u64
    }

    fn in_window(&self, us: u64) -> bool {
        self.window.get().is_some_and(|(a, b)| us >= a && us < b)
    }
}

/// Track ids are global within a run: participant index × 2, plus 1 for video.
pub(crate) fn track_id(participant: u32, kind: MediaKind) -> u32 {
    participant * 2 + u32::from(kind == MediaKind::Video)
}

pub(crate) fn track_is_video(track: u32) -> bool {
    track % 2 == 1
}

/// Who this participant is.
#[derive(Debug, Clone)]
pub(crate) struct Spec {
    pub(crate) index: u32,
    pub(crate) token: String,
    /// Tracks it should receive (two per other participant of its visit).
    pub(crate) expected_tracks: usize,
}

enum Wake {
    Signal(Option<Result<Message, tokio_tungstenite::tungstenite::Error>>),
    Datagram(std::io::Result<(usize, SocketAddr)>),
    Timeout,
    Audio,
    Video,
    Stop,
}

struct Peer {
    spec: Spec,
    shape: MediaShape,
    shared: Rc<Shared>,
    rtc: Rtc,
    socket: UdpSocket,
    local: SocketAddr,
    next_timeout: Instant,
    pending: Option<SdpPendingOffer>,
    audio: (Mid, Option<Pt>, u32),
    video: (Mid, Option<Pt>, u32),
    connected: bool,
    joined_at: Instant,
    tracks_seen: HashSet<u32>,
    ready: bool,
}

/// The loopback address participant `index` connects from when the server is on IPv4
/// loopback: 127.1.x.y, one per participant, as real participants come from their own
/// addresses. The server's per-address limits (join rate, connections) then see one person
/// per address, as they would in production, instead of a whole load test on 127.0.0.1.
fn loopback_source(index: u32) -> std::net::Ipv4Addr {
    let n = index % (250 * 250);
    let third = u8::try_from(n / 250).expect("n / 250 < 250");
    let fourth = u8::try_from(n % 250 + 2).expect("n % 250 + 2 < 252");
    std::net::Ipv4Addr::new(127, 1, third, fourth)
}

/// A TCP connection to the signaling server of `url`, from participant `index`'s own
/// loopback address when the server is on IPv4 loopback.
async fn connect_signaling(url: &str, index: u32) -> Result<TcpStream, ParticipantError> {
    let bad = |what: &str| ParticipantError::Signaling(format!("{what} in --server"));
    let rest = url
        .strip_prefix("ws://")
        .ok_or_else(|| bad("only ws:// URLs are supported"))?;
    let authority = rest.split('/').next().unwrap_or(rest);
    let addr = tokio::net::lookup_host(authority)
        .await?
        .next()
        .ok_or_else(|| bad("no address for the host"))?;
    match addr {
        SocketAddr::V4(v4) if v4.ip().is_loopback() => {
            let socket = tokio::net::TcpSocket::new_v4()?;
            socket.bind(SocketAddr::from((loopback_source(index), 0)))?;
            Ok(socket.connect(addr).await?)
        }
        _ => Ok(TcpStream::connect(addr).await?),
    }
}

/// Connects and joins, retrying while the server rate-limits joins from this address.
async fn join(url: &str, token: &str, index: u32) -> Result<Ws, ParticipantError> {
    for attempt in 0u32.. {
        let stream = connect_signaling(url, index).await?;
        let (mut ws, _) = tokio_tungstenite::client_async(url, MaybeTlsStream::Plain(stream))
            .await
            .map_err(|e| ParticipantError::Signaling(e.to_string()))?;
        send(
            &mut ws,
            &ClientMessage::Join {
                v: PROTOCOL_VERSION,
                token: token.to_owned(),
                visit: None,
            },
        )
        .await?;
        loop {
            match recv(&mut ws).await? {
                ServerMessage::Joined {
                    state: JoinState::Admitted,
                    ..
                } => return Ok(ws),
                ServerMessage::Admitted { .. } => return Ok(ws),
                ServerMessage::Error {
                    code: ErrorCode::RateLimited,
                    ..
                } if attempt < 60 => break,
                ServerMessage::Error { code, .. } => return Err(ParticipantError::Refused(code)),
                _ => {}
            }
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    unreachable!("the join loop returns or fails within 60 attempts")
}

async fn send(ws: &mut Ws, msg: &ClientMessage) -> Result<(), ParticipantError> {
    let text = serde_json::to_string(msg).expect("client messages always serialize");
    ws.send(Message::Text(text.into()))
        .await
        .map_err(|e| ParticipantError::Signaling(e.to_string()))
}

async fn recv(ws: &mut Ws) -> Result<ServerMessage, ParticipantError> {
    loop {
        match ws.next().await {
            Some(Ok(msg)) => {
                if let Some(m) = parse(msg)? {
                    return Ok(m);
                }
            }
            Some(Err(e)) => return Err(ParticipantError::Signaling(e.to_string())),
            None => return Err(ParticipantError::Closed),
        }
    }
}

/// A server message; `None` for frames to skip (pings, unknown types).
fn parse(msg: Message) -> Result<Option<ServerMessage>, ParticipantError> {
    match msg {
        Message::Text(t) => Ok(serde_json::from_str(&t).ok()),
        Message::Close(_) => Err(ParticipantError::Closed),
        _ => Ok(None),
    }
}

/// Runs one participant until `stop` turns true: join, publish, receive, leave.
pub(crate) async fn run(
    spec: Spec,
    url: String,
    shape: MediaShape,
    shared: Rc<Shared>,
    mut stop: watch::Receiver<bool>,
) -> Result<(), ParticipantError> {
    let joined_at = Instant::now();
    let mut ws = join(&url, &spec.token, spec.index).await?;
    let socket = UdpSocket::bind("127.0.0.1:0").await?;
    let local = socket.local_addr()?;
    let now = Instant::now();
    let mut rtc = Rtc::builder().build(now);
    let candidate = Candidate::host(local, "udp").map_err(|e| {
        ParticipantError::Signaling(format!("a host candidate for a loopback socket: {e}"))
    })?;
    let candidate_sdp = candidate.to_sdp_string();
    rtc.add_local_candidate(candidate);
    let mut change = rtc.sdp_api();
    let audio = change.add_media(MediaKind::Audio, Direction::SendOnly, None, None, None);
    let video = change.add_media(MediaKind::Video, Direction::SendOnly, None, None, None);
    let (offer, pending) = change
        .apply()
        .expect("adding two media always yields an offer");
    send(
        &mut ws,
        &ClientMessage::Offer {
            sdp: offer.to_sdp_string(),
            sources: Default::default(),
        },
    )
    .await?;
    let mut peer = Peer {
        spec,
        shape,
        shared,
        rtc,
        socket,
        local,
        next_timeout: now,
        pending: Some(pending),
        audio: (audio, None, 0),
        video: (video, None, 0),
        connected: false,
        joined_at,
        tracks_seen: HashSet::new(),
        ready: false,
    };
    let mut audio_tick = tokio::time::interval(Duration::from_millis(20));
    audio_tick.set_missed_tick_behavior(MissedTickBehavior::Skip);
    let mut video_tick = tokio::time::interval(Duration::from_secs(1) / shape.video_fps.max(1));
    video_tick.set_missed_tick_behavior(MissedTickBehavior::Skip);
    let mut buf = vec![0u8; 2048];
    let mut candidate_sent = false;
    let result = loop {
        peer.drive()?;
        let publishing = peer.connected;
        let wake = tokio::select! {
            m = ws.next() => Wake::Signal(m),
            r = peer.socket.recv_from(&mut buf) => Wake::Datagram(r),
            _ = tokio::time::sleep_until(peer.next_timeout.into()) => Wake::Timeout,
            _ = audio_tick.tick(), if publishing => Wake::Audio,
            _ = video_tick.tick(), if publishing => Wake::Video,
            _ = stop.changed() => Wake::Stop,
        };
        match wake {
            Wake::Signal(None) => break Err(ParticipantError::Closed),
            Wake::Signal(Some(Err(e))) => break Err(ParticipantError::Signaling(e.to_string())),
            Wake::Signal(Some(Ok(msg))) => {
                let Some(msg) = parse(msg)? else { continue };
                if let Some(reply) = peer.handle_signal(msg)? {
                    send(&mut ws, &reply).await?;
                }
                // Trickle our host candidate once the server has answered our offer.
                if !candidate_sent && peer.pending.is_none() {
                    candidate_sent = true;
                    for c in [candidate_sdp.clone(), String::new()] {
                        send(
                            &mut ws,
                            &ClientMessage::Candidate {
                                candidate: c,
                                sdp_mid: None,
                                sdp_mline_index: None,
                            },
                        )
                        .await?;
                    }
                }
            }
            Wake::Datagram(r) => {
                let mut r = r;
                for _ in 0..64 {
                    match r {
                        Ok((n, source)) => peer.receive(source, &buf[..n]),
                        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                        Err(_) => {}
                    }
                    r = peer.socket.try_recv_from(&mut buf);
                }
            }
            Wake::Timeout => peer.rtc.handle_input(Input::Timeout(Instant::now()))?,
            Wake::Audio => peer.publish(MediaKind::Audio),
            Wake::Video => peer.publish(MediaKind::Video),
            Wake::Stop => break Ok(()),
        }
    };
    let _ = send(&mut ws, &ClientMessage::Leave {}).await;
    peer.rtc.disconnect();
    result
}

impl Peer {
    /// Handles one signaling message; returns the reply to send, if any.
    fn handle_signal(
        &mut self,
        msg: ServerMessage,
    ) -> Result<Option<ClientMessage>, ParticipantError> {
        match msg {
            ServerMessage::Answer { sdp } => {
                let answer = SdpAnswer::from_sdp_string(&sdp)?;
                if let Some(pending) = self.pending.take() {
                    self.rtc.sdp_api().accept_answer(pending, answer)?;
                }
                self.audio.1 = self.pt(self.audio.0, Codec::Opus);
                self.video.1 = self.pt(self.video.0, Codec::Vp8);
                Ok(None)
            }
            ServerMessage::Offer { sdp, .. } => {
                let offer = SdpOffer::from_sdp_string(&sdp)?;
                let answer = self.rtc.sdp_api().accept_offer(offer)?;
                Ok(Some(ClientMessage::Answer {
                    sdp: answer.to_sdp_string(),
                }))
            }
            ServerMessage::Error { code, .. } if code.closes_session() => {
                Err(ParticipantError::Refused(code))
            }
            _ => Ok(None),
        }
    }

    fn pt(&mut self, mid: Mid, codec: Codec) -> Option<Pt> {
        let writer = self.rtc.writer(mid)?;
        let pt = writer
            .payload_params()
            .find(|p| p.spec().codec == codec)
            .map(|p| p.pt());
        pt
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

    /// Polls the session until it has nothing more to say: sends its datagrams, records the
    /// media it delivers, and notes when it next wants a timeout.
    fn drive(&mut self) -> Result<(), ParticipantError> {
        loop {
            if !self.rtc.is_alive() {
                return Err(ParticipantError::MediaEnded);
            }
            match self.rtc.poll_output()? {
                Output::Timeout(t) => {
                    self.next_timeout = t;
                    return Ok(());
                }
                Output::Transmit(t) => {
                    if self.socket.try_send_to(&t.contents, t.destination).is_err() {
                        self.shared.send_drops.set(self.shared.send_drops.get() + 1);
                    }
                }
                Output::Event(Event::Connected) => self.connected = true,
                Output::Event(Event::IceConnectionStateChange(
                    IceConnectionState::Disconnected,
                )) => return Err(ParticipantError::MediaEnded),
                Output::Event(Event::MediaData(d)) => {
                    let Some(probe) = Probe::decode(&d.data) else {
                        continue;
                    };
                    let packets = d.seq_range.end().saturating_sub(**d.seq_range.start()) + 1;
                    self.record(probe, packets);
                }
                Output::Event(_) => {}
            }
        }
    }

    fn record(&mut self, probe: Probe, packets: u64) {
        let now = Instant::now();
        let now_us = self.shared.micros(now);
        {
            let mut received = self.shared.received.borrow_mut();
            let r = received.entry((self.spec.index, probe.track)).or_default();
            r.frames_total += 1;
            if self.shared.in_window(probe.send_us) {
                r.seqs.insert(probe.seq);
                r.packets += packets;
                let delay = now_us
                    .saturating_sub(probe.send_us)
                    .min(u64::from(u32::MAX)) as u32;
                self.shared.delays.borrow_mut()[usize::from(track_is_video(probe.track))]
                    .push(delay);
            }
        }
        if !self.ready
            && self.tracks_seen.insert(probe.track)
            && self.tracks_seen.len() >= self.spec.expected_tracks
        {
            self.ready = true;
            self.shared.ready.set(self.shared.ready.get() + 1);
            let ms = now.duration_since(self.joined_at).as_millis();
            self.shared
                .setup_ms
                .borrow_mut()
                .push(ms.min(u128::from(u32::MAX)) as u32);
        }
    }

    fn publish(&mut self, kind: MediaKind) {
        let (mid, pt, seq, len, rtp_time) = match kind {
            MediaKind::Audio => {
                let (mid, pt, seq) = self.audio;
                self.audio.2 += 1;
                let t = MediaTime::new(u64::from(seq) * 960, Frequency::FORTY_EIGHT_KHZ);
                (mid, pt, seq, self.shape.audio_bytes, t)
            }
            MediaKind::Video => {
                let (mid, pt, seq) = self.video;
                self.video.2 += 1;
                let step = 90_000 / u64::from(self.shape.video_fps.max(1));
                let t = MediaTime::new(u64::from(seq) * step, Frequency::NINETY_KHZ);
                (mid, pt, seq, self.shape.video_frame_bytes, t)
            }
        };
        let Some(pt) = pt else { return };
        let now = Instant::now();
        let probe = Probe {
            track: track_id(self.spec.index, kind),
            seq,
            send_us: self.shared.micros(now),
        };
        let Some(writer) = self.rtc.writer(mid) else {
            return;
        };
        if writer.write(pt, now, rtp_time, probe.encode(len)).is_ok()
            && self.shared.in_window(probe.send_us)
        {
            *self
                .shared
                .sent
                .borrow_mut()
                .entry(probe.track)
                .or_default() += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_participant_of_a_large_run_gets_its_own_loopback_address() {
        let addrs: HashSet<_> = (0..2_000).map(loopback_source).collect();
        assert_eq!(addrs.len(), 2_000);
        assert!(addrs.iter().all(|a| a.is_loopback() && a.octets()[3] >= 2));
        assert!(!addrs.contains(&std::net::Ipv4Addr::LOCALHOST));
    }
}
