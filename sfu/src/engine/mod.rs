//! The async shell around the forwarding core: one UDP socket shared by every peer, one
//! `str0m::Rtc` per peer, all owned by a single media thread (no locks: one owner, by `&mut`).
//! Signaling talks to it through [`Sfu`], a cheap handle that sends commands; the engine answers
//! each peer through that peer's event channel, so answers and server offers reach the client in
//! order.

mod peer;
mod stats;

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, HashSet};
use std::io;
use std::net::SocketAddr;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::{Duration, Instant};

use std::sync::Arc;

use bedside_proto::{ParticipantId, Role, Source, TrackInfo, TrackKind, VisitId, VisitType};
use str0m::change::{SdpAnswer, SdpOffer};
use str0m::media::{KeyframeRequestKind, MediaData, MediaKind, Mid};
use str0m::net::{DatagramRecv, Protocol, Receive};
use str0m::{Candidate, Event, IceConnectionState, Input, Output, Rtc};
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, oneshot};
use tracing::{debug, info, warn};

use crate::core::{Decision, Forwarder};
use crate::metrics::SfuMetrics;
use crate::policy::RoutingTable;
use crate::sdp::{
    candidate_text, check_candidate, read_offer, CandidateError, MAX_ACTIVE_M_LINES, MAX_M_LINES,
    MAX_REMOTE_CANDIDATES,
};
use peer::Peer;

/// Where the media engine listens and what it advertises.
#[derive(Debug, Clone)]
pub struct SfuConfig {
    /// The UDP socket every peer shares. Port 0 picks a free port.
    pub bind: SocketAddr,
    /// Addresses put in host candidates. Empty: the bound address (which must then be a
    /// specific address, not `0.0.0.0`). A port of 0 means "the bound port".
    pub advertise: Vec<SocketAddr>,
    /// Who may publish and receive what, per visit type.
    pub routing: Arc<RoutingTable>,
}

/// What the engine tells a peer's signaling session.
#[derive(Debug, Clone)]
pub enum PeerEvent {
    /// The answer to the client's offer.
    Answer { sdp: String },
    /// A server-driven renegotiation.
    Offer { sdp: String, tracks: Vec<TrackInfo> },
    /// ICE and DTLS are up.
    Connected,
    /// The engine ended this peer (ICE failure, DTLS close, internal error).
    Closed { reason: CloseReason },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloseReason {
    /// ICE lost the client or the client closed DTLS.
    Disconnected,
    /// An internal error of the media engine ended this peer (other peers are unaffected).
    Internal,
}

/// Errors of a media command. Safe to show to the client.
#[derive(Debug, thiserror::Error)]
pub enum SfuError {
    #[error("the SDP could not be parsed or negotiated")]
    InvalidSdp,
    #[error("a negotiation is already in progress")]
    NegotiationState,
    #[error("the ICE candidate could not be parsed")]
    InvalidCandidate,
    /// A candidate over the limits (size, foundation, count per media session).
    #[error("{0}")]
    CandidateRefused(CandidateError),
    /// The offer sends two of one source (two cameras, say).
    #[error("an offer may send at most one microphone, one camera and one screen")]
    DuplicateSource,
    /// The offer has more m-lines than any client needs.
    #[error("an offer may have at most {MAX_ACTIVE_M_LINES} media sections in use and {MAX_M_LINES} in all")]
    TooManyMLines,
    #[error("the media session does not exist")]
    UnknownPeer,
    #[error("the media session exists already")]
    DuplicatePeer,
    #[error("your role may not publish this media in this visit")]
    PublishNotAllowed,
    #[error("the media engine has stopped")]
    EngineGone,
}

enum Command {
    AddPeer {
        peer: NewPeer,
        offer: String,
        events: mpsc::UnboundedSender<PeerEvent>,
        reply: oneshot::Sender<Result<(), SfuError>>,
    },
    ClientOffer {
        id: ParticipantId,
        offer: String,
        sources: Vec<(String, Source)>,
        reply: oneshot::Sender<Result<(), SfuError>>,
    },
    SetShown {
        id: ParticipantId,
        shown: bool,
    },
    SetRecordable {
        id: ParticipantId,
        recordable: bool,
    },
    ClientAnswer {
        id: ParticipantId,
        answer: String,
        reply: oneshot::Sender<Result<(), SfuError>>,
    },
    Candidate {
        id: ParticipantId,
        candidate: String,
        reply: oneshot::Sender<Result<(), SfuError>>,
    },
    RemovePeer {
        id: ParticipantId,
    },
    #[cfg(test)]
    Panic {
        id: ParticipantId,
    },
}

/// Who a new media peer is.
#[derive(Debug, Clone)]
pub struct NewPeer {
    pub id: ParticipantId,
    pub visit: VisitId,
    pub visit_type: VisitType,
    pub role: Role,
    /// The source of each `mid` the client sends; unlisted audio is the microphone, unlisted
    /// video the camera.
    pub sources: Vec<(String, Source)>,
    /// When the participant joined or was admitted: connection setup time counts from here.
    pub joined_at: Option<Instant>,
}

/// A handle to the media engine. Cloning is cheap; the engine stops when every handle is gone.
#[derive(Clone, Debug)]
pub struct Sfu {
    tx: mpsc::UnboundedSender<Command>,
    local_addr: SocketAddr,
}

impl Sfu {
    /// Binds the media socket and starts the media thread.
    pub fn start(config: SfuConfig, metrics: SfuMetrics) -> io::Result<Sfu> {
        let std_socket = std::net::UdpSocket::bind(config.bind)?;
        std_socket.set_nonblocking(true)?;
        let local_addr = std_socket.local_addr()?;
        let mut advertise: Vec<SocketAddr> = config
            .advertise
            .iter()
            .map(|a| {
                let mut a = *a;
                if a.port() == 0 {
                    a.set_port(local_addr.port());
                }
                a
            })
            .collect();
        if advertise.is_empty() {
            if local_addr.ip().is_unspecified() {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    "media bind address is unspecified (0.0.0.0 or ::): set the addresses to advertise",
                ));
            }
            advertise.push(local_addr);
        }
        let routing = config.routing.clone();
        let (tx, rx) = mpsc::unbounded_channel();
        std::thread::Builder::new()
            .name("bedside-media".into())
            .spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("a current-thread runtime builds with I/O and time enabled");
                rt.block_on(async move {
                    let socket = match UdpSocket::from_std(std_socket) {
                        Ok(s) => s,
                        Err(e) => {
                            warn!(error = %e, "media socket could not be registered");
                            return;
                        }
                    };
                    Engine::new(local_addr, advertise, routing, metrics)
                        .run(socket, rx)
                        .await;
                });
            })?;
        Ok(Sfu { tx, local_addr })
    }

    /// The bound media socket address.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Creates a peer from the client's first offer. The answer arrives as
    /// [`PeerEvent::Answer`] on `events`, followed by any server offers.
    pub async fn add_peer(
        &self,
        peer: NewPeer,
        offer: String,
        events: mpsc::UnboundedSender<PeerEvent>,
    ) -> Result<(), SfuError> {
        self.call(|reply| Command::AddPeer {
            peer,
            offer,
            events,
            reply,
        })
        .await
    }

    /// A later offer from the client; answered as [`PeerEvent::Answer`].
    pub async fn client_offer(
        &self,
        id: ParticipantId,
        offer: String,
        sources: Vec<(String, Source)>,
    ) -> Result<(), SfuError> {
        self.call(|reply| Command::ClientOffer {
            id,
            offer,
            sources,
            reply,
        })
        .await
    }

    /// The participant turned "show my video" on or off (group visits).
    pub fn set_shown(&self, id: ParticipantId, shown: bool) {
        let _ = self.tx.send(Command::SetShown { id, shown });
    }

    /// The participant's tracks may (or may no longer) go to the visit's recorder: the visit
    /// records and they consented.
    pub fn set_recordable(&self, id: ParticipantId, recordable: bool) {
        let _ = self.tx.send(Command::SetRecordable { id, recordable });
    }

    /// The client's answer to the last [`PeerEvent::Offer`].
    pub async fn client_answer(&self, id: ParticipantId, answer: String) -> Result<(), SfuError> {
        self.call(|reply| Command::ClientAnswer { id, answer, reply })
            .await
    }

    /// A trickled remote candidate (`candidate:…`, with or without `a=`). Its size and
    /// foundation are checked here, on the caller's task, so a flood of oversized candidates
    /// costs the media thread nothing; the count per session is checked first thing there.
    pub async fn add_candidate(
        &self,
        id: ParticipantId,
        candidate: String,
    ) -> Result<(), SfuError> {
        check_candidate(&candidate).map_err(SfuError::CandidateRefused)?;
        self.call(|reply| Command::Candidate {
            id,
            candidate,
            reply,
        })
        .await
    }

    /// Ends a peer (the participant left or its signaling session ended).
    pub fn remove_peer(&self, id: ParticipantId) {
        let _ = self.tx.send(Command::RemovePeer { id });
    }

    async fn call(
        &self,
        make: impl FnOnce(oneshot::Sender<Result<(), SfuError>>) -> Command,
    ) -> Result<(), SfuError> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(make(reply))
            .map_err(|_| SfuError::EngineGone)?;
        rx.await.map_err(|_| SfuError::EngineGone)?
    }

    #[cfg(test)]
    fn inject_panic(&self, id: ParticipantId) {
        let _ = self.tx.send(Command::Panic { id });
    }
}

/// A str0m call panicked: that peer is ended, the engine goes on.
struct Panicked;

fn guard<R>(peer: &mut Peer, f: impl FnOnce(&mut Peer) -> R) -> Result<R, Panicked> {
    catch_unwind(AssertUnwindSafe(|| f(peer))).map_err(|_| Panicked)
}

/// What [`Engine::check_offer`] lets through.
struct CheckedOffer {
    sources: HashMap<String, Source>,
    /// Candidates in the offer that the session had not given before.
    candidates: Vec<Box<str>>,
}

enum Wake {
    Command(Option<Command>),
    Datagram(io::Result<(usize, SocketAddr)>),
    Timer,
}

struct Engine {
    local_addr: SocketAddr,
    routing: Arc<RoutingTable>,
    /// One DTLS certificate for every peer, made at start: str0m would otherwise generate a
    /// key pair per peer on this thread (~140 M instructions, mostly seeding the DRBG), which
    /// stalled every other peer's media at each join.
    dtls_cert: Option<str0m::config::DtlsCert>,
    advertise: Vec<SocketAddr>,
    metrics: SfuMetrics,
    forwarder: Forwarder,
    /// Consent that arrived before the participant's media peer existed, applied when it
    /// does (signaling and media start race).
    early_recordable: HashMap<ParticipantId, bool>,
    peers: HashMap<ParticipantId, Peer>,
    by_addr: HashMap<SocketAddr, ParticipantId>,
    timers: BinaryHeap<Reverse<(Instant, ParticipantId)>>,
    dirty: Vec<ParticipantId>,
    doomed: Vec<(ParticipantId, CloseReason)>,
    outgoing: Vec<(SocketAddr, Vec<u8>)>,
}

const MAX_DATAGRAM: usize = 2048;
/// How often str0m reports per-stream statistics for the metrics.
const STATS_INTERVAL: Duration = Duration::from_secs(2);
const RECV_BATCH: usize = 64;

impl Engine {
    fn new(
        local_addr: SocketAddr,
        advertise: Vec<SocketAddr>,
        routing: Arc<RoutingTable>,
        metrics: SfuMetrics,
    ) -> Self {
        let dtls_cert = str0m::crypto::from_feature_flags()
            .dtls_provider
            .generate_certificate();
        Engine {
            local_addr,
            dtls_cert,
            forwarder: Forwarder::new(routing.clone()),
            routing,
            advertise,
            metrics,
            peers: HashMap::new(),
            by_addr: HashMap::new(),
            timers: BinaryHeap::new(),
            dirty: Vec::new(),
            early_recordable: HashMap::new(),
            doomed: Vec::new(),
            outgoing: Vec::new(),
        }
    }

    async fn run(mut self, socket: UdpSocket, mut rx: mpsc::UnboundedReceiver<Command>) {
        info!(media_port = self.local_addr.port(), "media engine started");
        let mut buf = vec![0u8; MAX_DATAGRAM];
        loop {
            let deadline = self.next_deadline();
            let wake = tokio::select! {
                cmd = rx.recv() => Wake::Command(cmd),
                r = socket.recv_from(&mut buf) => Wake::Datagram(r),
                _ = tokio::time::sleep_until(deadline.into()) => Wake::Timer,
            };
            match wake {
                Wake::Command(None) => break,
                Wake::Command(Some(cmd)) => self.handle_command(Instant::now(), cmd),
                Wake::Datagram(r) => {
                    let mut r = r;
                    for _ in 0..RECV_BATCH {
                        match r {
                            Ok((n, source)) => {
                                self.handle_datagram(Instant::now(), source, &buf[..n])
                            }
                            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                            // ICMP errors surface as ConnectionRefused etc. on some systems.
                            Err(e) => debug!(error = %e, "media socket receive error"),
                        }
                        r = socket.try_recv_from(&mut buf);
                    }
                }
                Wake::Timer => {}
            }
            let now = Instant::now();
            self.fire_timers(now);
            self.drain(now);
            for (dest, data) in self.outgoing.drain(..) {
                if let Err(e) = socket.try_send_to(&data, dest) {
                    if e.kind() == io::ErrorKind::WouldBlock {
                        self.metrics
                            .dropped_datagrams
                            .with_label_values(&["send_full"])
                            .inc();
                    }
                }
            }
        }
        info!("media engine stopped");
    }

    fn next_deadline(&mut self) -> Instant {
        let fallback = Instant::now() + Duration::from_secs(1);
        while let Some(Reverse((t, id))) = self.timers.peek().copied() {
            match self.peers.get(&id) {
                Some(p) if p.next_timeout == t => return t.min(fallback),
                _ => {
                    self.timers.pop();
                }
            }
        }
        fallback
    }

    fn fire_timers(&mut self, now: Instant) {
        while let Some(Reverse((t, id))) = self.timers.peek().copied() {
            if t > now {
                break;
            }
            self.timers.pop();
            let Some(peer) = self.peers.get_mut(&id) else {
                continue;
            };
            if peer.next_timeout != t {
                continue;
            }
            match guard(peer, |p| p.rtc.handle_input(Input::Timeout(now))) {
                Ok(Ok(())) => {}
                Ok(Err(e)) => {
                    debug!(participant = %id, error = %e, "peer timeout handling failed");
                    self.doomed.push((id, CloseReason::Disconnected));
                }
                Err(Panicked) => self.doomed.push((id, CloseReason::Internal)),
            }
            self.mark_dirty(id);
        }
    }

    fn mark_dirty(&mut self, id: ParticipantId) {
        if !self.dirty.contains(&id) {
            self.dirty.push(id);
        }
    }

    fn handle_datagram(&mut self, now: Instant, source: SocketAddr, data: &[u8]) {
        self.metrics.received_datagrams.inc();
        let Ok(contents) = DatagramRecv::try_from(data) else {
            self.drop_datagram("malformed");
            return;
        };
        let input = Input::Receive(
            now,
            Receive {
                proto: Protocol::Udp,
                source,
                destination: self.advertise[0],
                contents,
            },
        );
        let known = self
            .by_addr
            .get(&source)
            .copied()
            .filter(|id| self.peers.get(id).is_some_and(|p| p.rtc.accepts(&input)));
        // Only STUN (first byte 0..=3, RFC 7983) may come from a new address: ICE checks find
        // the peer by username fragment. Anything else from an unknown address is dropped
        // without a scan, so garbage floods cost O(1) each.
        let target = known.or_else(|| {
            if data.first().is_some_and(|b| *b <= 3) {
                self.peers
                    .iter()
                    .find(|(_, p)| p.rtc.accepts(&input))
                    .map(|(id, _)| *id)
            } else {
                None
            }
        });
        let Some(id) = target else {
            self.drop_datagram("unmatched");
            return;
        };
        if known.is_none() {
            self.by_addr.insert(source, id);
        }
        let Some(peer) = self.peers.get_mut(&id) else {
            return;
        };
        match guard(peer, |p| p.rtc.handle_input(input)) {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                // str0m refuses input it cannot use (e.g. a bad SRTP packet) with an error;
                // that is the peer's garbage, not a reason to end the session.
                debug!(participant = %id, error = %e, "peer input rejected");
                self.drop_datagram("rejected");
            }
            Err(Panicked) => self.doomed.push((id, CloseReason::Internal)),
        }
        self.mark_dirty(id);
    }

    fn drop_datagram(&self, reason: &str) {
        self.metrics
            .dropped_datagrams
            .with_label_values(&[reason])
            .inc();
    }

    fn handle_command(&mut self, now: Instant, cmd: Command) {
        match cmd {
            Command::AddPeer {
                peer,
                offer,
                events,
                reply,
            } => {
                let _ = reply.send(self.add_peer(now, peer, offer, events));
            }
            Command::ClientOffer {
                id,
                offer,
                sources,
                reply,
            } => {
                let _ = reply.send(self.client_offer(now, id, offer, sources));
            }
            Command::SetShown { id, shown } => {
                self.forwarder.handle_shown_changed(now, id, shown);
                self.apply_decisions(now);
            }
            Command::SetRecordable { id, recordable } => {
                if !self.peers.contains_key(&id) {
                    // Signaling ends every session with `false`, so this map stays small.
                    if recordable {
                        self.early_recordable.insert(id, true);
                    } else {
                        self.early_recordable.remove(&id);
                    }
                    return;
                }
                self.forwarder
                    .handle_recordable_changed(now, id, recordable);
                self.apply_decisions(now);
            }
            Command::ClientAnswer { id, answer, reply } => {
                let _ = reply.send(self.client_answer(now, id, answer));
            }
            Command::Candidate {
                id,
                candidate,
                reply,
            } => {
                let _ = reply.send(self.add_candidate(id, &candidate));
            }
            Command::RemovePeer { id } => self.remove_peer(now, id, None),
            #[cfg(test)]
            Command::Panic { id } => {
                if let Some(peer) = self.peers.get_mut(&id) {
                    if guard(peer, |_| panic!("injected by a test")).is_err() {
                        self.doomed.push((id, CloseReason::Internal));
                    }
                }
            }
        }
    }

    /// Checks a client's offer before str0m sees it: the m-line counts, one of each source at
    /// most, the role's publish policy (docs/roles.md), and the candidates it carries (the
    /// same limits as trickled ones; `known` are those this session gave already).
    fn check_offer(
        &self,
        visit_type: VisitType,
        role: Role,
        offer: &str,
        sources: &[(String, Source)],
        known: &HashSet<Box<str>>,
    ) -> Result<CheckedOffer, SfuError> {
        let shape = read_offer(offer).ok_or(SfuError::InvalidSdp)?;
        if shape.m_lines > MAX_M_LINES || shape.active_m_lines > MAX_ACTIVE_M_LINES {
            return Err(SfuError::TooManyMLines);
        }
        if sources.len() > Source::ALL.len() {
            return Err(SfuError::DuplicateSource);
        }
        let policy = self.routing.policy(visit_type);
        let mut out = HashMap::new();
        let mut seen: Vec<Source> = Vec::new();
        for (mid, kind) in shape.sends {
            let source = sources
                .iter()
                .find(|(m, _)| *m == mid)
                .map(|(_, s)| *s)
                .unwrap_or(Source::default_for(kind));
            if source.kind() != kind {
                return Err(SfuError::InvalidSdp);
            }
            if !policy.may_publish(role, source) {
                return Err(SfuError::PublishNotAllowed);
            }
            if seen.contains(&source) {
                return Err(SfuError::DuplicateSource);
            }
            seen.push(source);
            out.insert(mid, source);
        }
        let mut candidates: Vec<Box<str>> = Vec::new();
        for c in shape.candidates {
            check_candidate(c).map_err(SfuError::CandidateRefused)?;
            let text = candidate_text(c);
            if known.contains(text) || candidates.iter().any(|k| &**k == text) {
                continue;
            }
            if known.len() + candidates.len() >= MAX_REMOTE_CANDIDATES {
                return Err(SfuError::CandidateRefused(CandidateError::TooMany));
            }
            candidates.push(text.into());
        }
        Ok(CheckedOffer {
            sources: out,
            candidates,
        })
    }

    fn add_peer(
        &mut self,
        now: Instant,
        new: NewPeer,
        offer: String,
        events: mpsc::UnboundedSender<PeerEvent>,
    ) -> Result<(), SfuError> {
        let id = new.id;
        if self.peers.contains_key(&id) {
            return Err(SfuError::DuplicatePeer);
        }
        let checked = self.check_offer(
            new.visit_type,
            new.role,
            &offer,
            &new.sources,
            &HashSet::new(),
        )?;
        let offer = SdpOffer::from_sdp_string(&offer).map_err(|_| SfuError::InvalidSdp)?;
        let advertise = self.advertise.clone();
        let dtls_cert = self.dtls_cert.clone();
        let built = catch_unwind(AssertUnwindSafe(move || {
            let mut builder = Rtc::builder().set_stats_interval(Some(STATS_INTERVAL));
            if let Some(cert) = dtls_cert {
                builder = builder.set_dtls_cert(cert);
            }
            let mut rtc = builder.build(now);
            for addr in advertise {
                if let Ok(c) = Candidate::host(addr, "udp") {
                    rtc.add_local_candidate(c);
                }
            }
            rtc.sdp_api()
                .accept_offer(offer)
                .map(|answer| (rtc, answer))
        }));
        let (rtc, answer) = match built {
            Ok(Ok(x)) => x,
            Ok(Err(e)) => {
                debug!(participant = %id, error = %e, "offer refused");
                return Err(SfuError::InvalidSdp);
            }
            Err(_) => {
                self.metrics.peer_panics.inc();
                return Err(SfuError::InvalidSdp);
            }
        };
        let answer = answer.to_sdp_string();
        let _ = events.send(PeerEvent::Answer {
            sdp: answer.clone(),
        });
        let mut peer = Peer::new(rtc, events, now);
        peer.negotiation_ready = true;
        peer.role = new.role;
        peer.visit_type = new.visit_type;
        peer.sources = checked.sources;
        peer.remote_candidates.extend(checked.candidates);
        peer.stats.joined_at = new.joined_at;
        self.peers.insert(id, peer);
        self.metrics.peers.set(self.peers.len() as i64);
        self.forwarder
            .handle_peer_joined(now, id, new.visit, new.visit_type, new.role);
        if let Some(recordable) = self.early_recordable.remove(&id) {
            self.forwarder
                .handle_recordable_changed(now, id, recordable);
        }
        self.publish_negotiated(now, id, &answer);
        self.apply_decisions(now);
        self.mark_dirty(id);
        info!(participant = %id, "media peer added");
        Ok(())
    }

    fn client_offer(
        &mut self,
        now: Instant,
        id: ParticipantId,
        offer: String,
        sources: Vec<(String, Source)>,
    ) -> Result<(), SfuError> {
        let peer = self.peers.get(&id).ok_or(SfuError::UnknownPeer)?;
        if peer.pending_offer.is_some() {
            return Err(SfuError::NegotiationState);
        }
        let checked = self.check_offer(
            peer.visit_type,
            peer.role,
            &offer,
            &sources,
            &peer.remote_candidates,
        )?;
        let offer = SdpOffer::from_sdp_string(&offer).map_err(|_| SfuError::InvalidSdp)?;
        let peer = self.peers.get_mut(&id).ok_or(SfuError::UnknownPeer)?;
        peer.sources = checked.sources;
        // Counted even if str0m refuses the offer below: it may have taken them already.
        peer.remote_candidates.extend(checked.candidates);
        let answer = match guard(peer, |p| p.rtc.sdp_api().accept_offer(offer)) {
            Ok(Ok(a)) => a,
            Ok(Err(_)) => return Err(SfuError::InvalidSdp),
            Err(Panicked) => {
                self.doomed.push((id, CloseReason::Internal));
                return Err(SfuError::InvalidSdp);
            }
        };
        let answer = answer.to_sdp_string();
        let _ = peer.events.send(PeerEvent::Answer {
            sdp: answer.clone(),
        });
        self.publish_negotiated(now, id, &answer);
        self.apply_decisions(now);
        self.mark_dirty(id);
        Ok(())
    }

    fn client_answer(
        &mut self,
        now: Instant,
        id: ParticipantId,
        answer: String,
    ) -> Result<(), SfuError> {
        let answer = SdpAnswer::from_sdp_string(&answer).map_err(|_| SfuError::InvalidSdp)?;
        let peer = self.peers.get_mut(&id).ok_or(SfuError::UnknownPeer)?;
        if peer.pending_offer.is_none() {
            return Err(SfuError::NegotiationState);
        }
        let opened = match guard(peer, |p| p.accept_answer(answer)) {
            Ok(Ok(opened)) => opened,
            Ok(Err(e)) => {
                // The pending offer is consumed either way: a client that cannot answer our
                // offer cannot continue on this session.
                debug!(participant = %id, error = %e, "answer refused");
                self.doomed.push((id, CloseReason::Disconnected));
                return Err(SfuError::InvalidSdp);
            }
            Err(Panicked) => {
                self.doomed.push((id, CloseReason::Internal));
                return Err(SfuError::InvalidSdp);
            }
        };
        for track in opened {
            self.forwarder.handle_subscription_active(now, id, track);
        }
        self.apply_decisions(now);
        self.mark_dirty(id);
        Ok(())
    }

    /// A trickled candidate, already checked for size by [`Sfu::add_candidate`]. The count
    /// comes first, so a flood past the limit costs a lookup each.
    fn add_candidate(&mut self, id: ParticipantId, candidate: &str) -> Result<(), SfuError> {
        let peer = self.peers.get_mut(&id).ok_or(SfuError::UnknownPeer)?;
        let text = candidate_text(candidate);
        if text.is_empty() {
            return Ok(()); // end of candidates
        }
        // Browsers may hide host addresses behind mDNS names, which this server cannot
        // resolve; the peer-reflexive candidate from its checks works instead.
        if text
            .split_whitespace()
            .nth(4)
            .is_some_and(|a| a.ends_with(".local"))
        {
            return Ok(());
        }
        if peer.remote_candidates.contains(text) {
            return Ok(()); // str0m has it already (trickled twice, or in an offer too)
        }
        if peer.remote_candidates.len() >= MAX_REMOTE_CANDIDATES {
            return Err(SfuError::CandidateRefused(CandidateError::TooMany));
        }
        let c = Candidate::from_sdp_string(text).map_err(|_| SfuError::InvalidCandidate)?;
        peer.remote_candidates.insert(text.into());
        peer.stats.remember_candidate(c.addr(), c.kind());
        match guard(peer, |p| p.rtc.add_remote_candidate(c)) {
            Ok(()) => {}
            Err(Panicked) => self.doomed.push((id, CloseReason::Internal)),
        }
        self.mark_dirty(id);
        Ok(())
    }

    fn remove_peer(&mut self, now: Instant, id: ParticipantId, reason: Option<CloseReason>) {
        let Some(mut peer) = self.peers.remove(&id) else {
            return;
        };
        let _ = guard(&mut peer, |p| p.rtc.disconnect());
        if !peer.connected {
            let outcome = if reason.is_some() {
                "failed"
            } else {
                "abandoned"
            };
            self.metrics
                .ice_attempts
                .with_label_values(&[outcome])
                .inc();
        }
        if let Some(reason) = reason {
            let _ = peer.events.send(PeerEvent::Closed { reason });
        }
        self.by_addr.retain(|_, p| *p != id);
        self.dirty.retain(|p| *p != id);
        self.metrics.peers.set(self.peers.len() as i64);
        self.forwarder.handle_peer_left(now, id);
        self.apply_decisions(now);
        info!(participant = %id, ?reason, "media peer removed");
    }

    /// Polls every touched peer until it has nothing more to say, carrying media and feedback
    /// between peers, until the whole engine is quiet.
    fn drain(&mut self, now: Instant) {
        loop {
            while let Some((id, reason)) = self.doomed.pop() {
                if reason == CloseReason::Internal {
                    self.metrics.peer_panics.inc();
                    warn!(participant = %id, "media engine error: ending this peer only");
                }
                self.remove_peer(now, id, Some(reason));
            }
            let Some(id) = self.dirty.pop() else {
                break;
            };
            self.poll_peer(now, id);
            self.apply_decisions(now);
        }
    }

    fn poll_peer(&mut self, now: Instant, id: ParticipantId) {
        let Some(peer) = self.peers.get_mut(&id) else {
            return;
        };
        if guard(peer, |p| p.negotiate_if_needed()).is_err() {
            self.doomed.push((id, CloseReason::Internal));
            return;
        }
        loop {
            let Some(peer) = self.peers.get_mut(&id) else {
                return;
            };
            if !peer.rtc.is_alive() {
                self.doomed.push((id, CloseReason::Disconnected));
                return;
            }
            let output = match guard(peer, |p| p.rtc.poll_output()) {
                Ok(Ok(o)) => o,
                Ok(Err(e)) => {
                    debug!(participant = %id, error = %e, "peer poll failed");
                    self.doomed.push((id, CloseReason::Disconnected));
                    return;
                }
                Err(Panicked) => {
                    self.doomed.push((id, CloseReason::Internal));
                    return;
                }
            };
            match output {
                Output::Timeout(t) => {
                    if peer.next_timeout != t || t <= now {
                        peer.next_timeout = t;
                        self.timers.push(Reverse((t, id)));
                    }
                    return;
                }
                Output::Transmit(t) => self.outgoing.push((t.destination, t.contents.into())),
                Output::Event(e) => self.handle_event(now, id, e),
            }
        }
    }

    fn handle_event(&mut self, now: Instant, id: ParticipantId, event: Event) {
        match event {
            Event::Connected => {
                if let Some(p) = self.peers.get_mut(&id) {
                    if !p.connected {
                        self.metrics
                            .ice_attempts
                            .with_label_values(&["connected"])
                            .inc();
                    }
                    p.connected = true;
                    let _ = p.events.send(PeerEvent::Connected);
                }
                self.forwarder.handle_subscriber_connected(now, id);
                info!(participant = %id, "media connected");
            }
            Event::IceConnectionStateChange(IceConnectionState::Disconnected) => {
                self.doomed.push((id, CloseReason::Disconnected));
            }
            Event::Closed => self.doomed.push((id, CloseReason::Disconnected)),
            Event::MediaAdded(m) if m.direction.is_receiving() => {
                self.publish(now, id, m.mid, m.kind);
            }
            Event::MediaChanged(m) => {
                if m.direction.is_receiving() {
                    let kind = self
                        .peers
                        .get(&id)
                        .and_then(|p| p.rtc.media(m.mid))
                        .map(|media| media.kind());
                    if let Some(kind) = kind {
                        self.publish(now, id, m.mid, kind);
                    }
                } else {
                    self.unpublish(now, id, m.mid);
                }
            }
            Event::PeerStats(s) => {
                if let Some(p) = self.peers.get_mut(&id) {
                    p.stats.peer(&s, &self.metrics);
                }
            }
            Event::MediaIngressStats(s) => {
                if let Some(p) = self.peers.get_mut(&id) {
                    let kind = p.rtc.media(s.mid).map(|m| m.kind());
                    p.stats.ingress(&s, kind, &self.metrics);
                }
            }
            Event::MediaEgressStats(s) => {
                if let Some(p) = self.peers.get_mut(&id) {
                    let kind = p.rtc.media(s.mid).map(|m| m.kind());
                    p.stats.egress(&s, kind, &self.metrics);
                }
            }
            Event::MediaData(data) => {
                if let Some(p) = self.peers.get_mut(&id) {
                    p.stats.media_received(now, &self.metrics);
                }
                if !data.contiguous {
                    let track = self
                        .peers
                        .get(&id)
                        .and_then(|p| p.tracks_in.get(&data.mid).copied());
                    if let Some(track) = track {
                        self.forwarder.handle_discontinuity(now, track);
                    }
                }
                // The poll that produced this frame no longer borrows the publisher, so the
                // frame goes straight out to the subscribers: no queue, no copy.
                self.forward(id, &data);
            }
            Event::KeyframeRequest(req) => {
                let track = self
                    .peers
                    .get(&id)
                    .and_then(|p| p.track_for_out_mid(req.mid));
                if let Some(track) = track {
                    self.forwarder.handle_keyframe_request(now, id, track);
                }
            }
            _ => {}
        }
    }

    /// Publishes every media the client sends, as soon as our answer accepts it: subscribers
    /// can negotiate while the publisher's ICE and DTLS are still connecting (str0m's own
    /// `MediaAdded` only comes once DTLS is up).
    fn publish_negotiated(&mut self, now: Instant, id: ParticipantId, answer: &str) {
        let Some(peer) = self.peers.get(&id) else {
            return;
        };
        let mut receiving: Vec<(Mid, MediaKind)> = Vec::new();
        let mut stopped: Vec<Mid> = Vec::new();
        for m in answer.lines().filter_map(|l| l.strip_prefix("a=mid:")) {
            let Some(media) = peer.rtc.media(Mid::from(m.trim())) else {
                continue;
            };
            if media.direction().is_receiving() {
                receiving.push((media.mid(), media.kind()));
            } else if peer.tracks_in.contains_key(&media.mid()) {
                stopped.push(media.mid());
            }
        }
        for (mid, kind) in receiving {
            self.publish(now, id, mid, kind);
        }
        for mid in stopped {
            self.unpublish(now, id, mid);
        }
    }

    fn unpublish(&mut self, now: Instant, id: ParticipantId, mid: Mid) {
        let track = self
            .peers
            .get_mut(&id)
            .and_then(|p| p.tracks_in.remove(&mid));
        if let Some(track) = track {
            self.forwarder.handle_track_unpublished(now, track);
        }
    }

    fn publish(&mut self, now: Instant, id: ParticipantId, mid: Mid, kind: MediaKind) {
        let Some(peer) = self.peers.get(&id) else {
            return;
        };
        if peer.tracks_in.contains_key(&mid) {
            return;
        }
        let kind = match kind {
            MediaKind::Audio => TrackKind::Audio,
            MediaKind::Video => TrackKind::Video,
        };
        let source = peer
            .sources
            .get(&mid.to_string())
            .copied()
            .unwrap_or(Source::default_for(kind));
        if let Some(track) = self.forwarder.handle_track_published(now, id, kind, source) {
            if let Some(p) = self.peers.get_mut(&id) {
                p.tracks_in.insert(mid, track);
            }
            debug!(participant = %id, ?track, ?source, "track published");
        }
    }

    /// The hot path: one received frame out to every subscriber of its track.
    fn forward(&mut self, from: ParticipantId, data: &MediaData) {
        let Some(track) = self
            .peers
            .get(&from)
            .and_then(|p| p.tracks_in.get(&data.mid).copied())
        else {
            return;
        };
        let kind_label = if data.params.spec().codec.is_audio() {
            "audio"
        } else {
            "video"
        };
        for sub in self.forwarder.receivers(track) {
            let Some(peer) = self.peers.get_mut(sub) else {
                continue;
            };
            let Some(&mid) = peer.out_mid.get(&track) else {
                continue;
            };
            let written = guard(peer, |p| {
                let writer = p.rtc.writer(mid)?;
                let pt = writer.match_params(data.params)?;
                Some(
                    writer
                        .write(pt, data.network_time, data.time, data.data.clone())
                        .is_ok(),
                )
            });
            match written {
                Ok(Some(true)) => {
                    self.metrics
                        .forwarded_frames
                        .with_label_values(&[kind_label])
                        .inc();
                    self.metrics
                        .forwarded_bytes
                        .with_label_values(&[kind_label])
                        .inc_by(data.data.len() as u64);
                }
                Ok(_) => {}
                Err(Panicked) => self.doomed.push((*sub, CloseReason::Internal)),
            }
            if !self.dirty.contains(sub) {
                self.dirty.push(*sub);
            }
        }
    }

    fn apply_decisions(&mut self, _now: Instant) {
        while let Some(d) = self.forwarder.poll_decision() {
            match d {
                Decision::Subscribe {
                    subscriber,
                    track,
                    publisher,
                    kind,
                    source,
                } => {
                    if let Some(p) = self.peers.get_mut(&subscriber) {
                        p.add_out_track(track, publisher, kind, source);
                        self.mark_dirty(subscriber);
                    }
                }
                Decision::Unsubscribe { subscriber, track } => {
                    if let Some(p) = self.peers.get_mut(&subscriber) {
                        p.remove_out_track(track);
                        self.mark_dirty(subscriber);
                    }
                }
                Decision::RequestKeyframe { publisher, track } => {
                    let Some(peer) = self.peers.get_mut(&publisher) else {
                        continue;
                    };
                    let Some(mid) = peer
                        .tracks_in
                        .iter()
                        .find(|(_, t)| **t == track)
                        .map(|(m, _)| *m)
                    else {
                        continue;
                    };
                    let r = guard(peer, |p| {
                        if let Some(mut w) = p.rtc.writer(mid) {
                            if w.is_request_keyframe_possible(KeyframeRequestKind::Pli) {
                                let _ = w.request_keyframe(None, KeyframeRequestKind::Pli);
                            } else if w.is_request_keyframe_possible(KeyframeRequestKind::Fir) {
                                let _ = w.request_keyframe(None, KeyframeRequestKind::Fir);
                            }
                        }
                    });
                    if r.is_err() {
                        self.doomed.push((publisher, CloseReason::Internal));
                    }
                    self.mark_dirty(publisher);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests;
