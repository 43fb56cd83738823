//! One WebSocket signaling session, as two typed states, so a message only valid after
//! joining cannot be handled before it: [`AwaitingJoin`] holds a
//! fresh socket until a valid `join`, which turns it into a [`Joined`] session in a visit.
//! Only a `Joined` session can reach the media engine.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Instant;

use axum::extract::ws::{CloseFrame, Message, WebSocket};
use bedside_audit::AuditEvent;
use bedside_proto::{
    decode_client_message, ClientMessage, DecodeError, ErrorCode, JoinState, ParticipantId, Role,
    ServerMessage, VisitType, MAX_MESSAGE_BYTES, PROTOCOL_VERSION,
};
use bedside_sfu::{NewPeer, PeerEvent, SfuError};
use bedside_token::{Grant, TokenError};
use tokio::sync::mpsc;
use tracing::{debug, info};

use crate::limiter::{MessageBucket, Verdict};
use crate::room::{Command, Joiner, Refusal};
use crate::visits::{JoinError, Membership, ToSession};
use crate::AppState;

/// WebSocket close codes (RFC 6455 §7.4.1).
const CLOSE_NORMAL: u16 = 1000;
/// Invalid frame payload data: a text frame that is not UTF-8.
const CLOSE_INVALID_DATA: u16 = 1007;
const CLOSE_POLICY: u16 = 1008;
const CLOSE_TOO_BIG: u16 = 1009;
const CLOSE_UNAVAILABLE: u16 = 1013;

/// How long a closing socket is read (and what arrives dropped) for the client's own close
/// frame, when the client may still be sending: see [`Conn::linger`].
const LINGER: std::time::Duration = std::time::Duration::from_secs(1);

/// Wall-clock Unix milliseconds, for consent records.
fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// Runs a session from upgrade to close.
pub(crate) async fn run(state: Arc<AppState>, socket: WebSocket, client_ip: IpAddr) {
    let (per_second, burst) = state.message_rate;
    let waiting = AwaitingJoin {
        conn: Conn {
            socket,
            state,
            bucket: MessageBucket::new(per_second, burst),
        },
        client_ip,
    };
    if let Some(joined) = waiting.await_join().await {
        joined.run().await;
    }
}

/// A text frame from the client, checked for size and decoded.
enum Incoming {
    Message(ClientMessage),
    /// The socket ended (closed by the client or failed).
    Gone,
    /// A frame that was refused; the error has been sent. `true` if the socket must close.
    Refused(bool),
}

struct Conn {
    socket: WebSocket,
    state: Arc<AppState>,
    /// Every frame the client sends takes a token, before and after `join`.
    bucket: MessageBucket,
}

impl Conn {
    async fn send(&mut self, msg: &ServerMessage) -> bool {
        let Ok(text) = serde_json::to_string(msg) else {
            return false;
        };
        self.socket.send(Message::Text(text.into())).await.is_ok()
    }

    /// Sends an error; closes the socket if the code says so.
    async fn error(&mut self, code: ErrorCode, message: &str) {
        let close = code.closes_session().then_some(match code {
            ErrorCode::MessageTooLarge => CLOSE_TOO_BIG,
            ErrorCode::Unavailable | ErrorCode::MediaFailed => CLOSE_UNAVAILABLE,
            _ => CLOSE_POLICY,
        });
        self.error_then(code, message, close).await;
    }

    /// Sends an error, then closes the socket with `close` if given.
    async fn error_then(&mut self, code: ErrorCode, message: &str, close: Option<u16>) {
        self.state
            .metrics
            .errors
            .with_label_values(&[code.as_str()])
            .inc();
        debug!(code = code.as_str(), "signaling error");
        let sent = self
            .send(&ServerMessage::Error {
                code,
                message: message.to_owned(),
            })
            .await;
        if let (true, Some(close)) = (sent, close) {
            self.close(close, code.as_str()).await;
        }
    }

    /// Records a refusal in the audit log (codes only: the token is never recorded).
    fn audit_refusal(&self, code: ErrorCode, visit: Option<String>) {
        let event = AuditEvent {
            kind: "refuse".into(),
            visit,
            code: Some(code.as_str().into()),
            ..AuditEvent::default()
        };
        crate::record_audit(&self.state.audit, event);
    }

    async fn close(&mut self, code: u16, reason: &'static str) {
        let _ = self
            .socket
            .send(Message::Close(Some(CloseFrame {
                code,
                reason: reason.into(),
            })))
            .await;
    }

    /// After a close frame to a client that may still be sending (a flood): reads and drops
    /// whatever arrives until the client's own close frame, the end of the connection, or
    /// [`LINGER`]. Dropping a TCP socket with unread data makes the kernel reset the
    /// connection, and the client would lose the close frame with its code.
    async fn linger(&mut self) {
        let deadline = tokio::time::Instant::now() + LINGER;
        while let Ok(Some(Ok(m))) = tokio::time::timeout_at(deadline, self.socket.recv()).await {
            if matches!(m, Message::Close(_)) {
                return;
            }
        }
    }

    /// Turns one received frame into a message, refusing what the protocol does not allow.
    async fn decode(&mut self, frame: Option<Result<Message, axum::Error>>) -> Incoming {
        if let Some(Ok(m)) = &frame {
            if !matches!(m, Message::Close(_)) {
                match self.bucket.take(Instant::now()) {
                    Verdict::Allow => {}
                    Verdict::Refuse => {
                        self.error(
                            ErrorCode::RateLimited,
                            "too many messages on this connection; slow down",
                        )
                        .await;
                        return Incoming::Refused(false);
                    }
                    Verdict::Close => {
                        self.error_then(
                            ErrorCode::RateLimited,
                            "too many messages on this connection; it is closed",
                            Some(CLOSE_POLICY),
                        )
                        .await;
                        self.linger().await;
                        return Incoming::Refused(true);
                    }
                }
            }
        }
        let text = match frame {
            Some(Err(ref e)) if is_invalid_utf8(e) => {
                // tungstenite checks UTF-8 while reading a text frame and hands back only the
                // error; the stream then ends, but the socket can still send. So the client
                // hears why (RFC 6455 §7.4.1) instead of a bare drop (1006). Nothing can be
                // read to wait for its close reply, so the connection ends right after.
                self.close(CLOSE_INVALID_DATA, "text frames must be UTF-8")
                    .await;
                return Incoming::Gone;
            }
            None | Some(Err(_)) | Some(Ok(Message::Close(_))) => return Incoming::Gone,
            Some(Ok(Message::Ping(_) | Message::Pong(_))) => return Incoming::Refused(false),
            Some(Ok(Message::Binary(_))) => {
                self.error(
                    ErrorCode::InvalidMessage,
                    "signaling messages are JSON text frames",
                )
                .await;
                return Incoming::Refused(false);
            }
            Some(Ok(Message::Text(t))) => t,
        };
        if text.len() > MAX_MESSAGE_BYTES {
            self.error(
                ErrorCode::MessageTooLarge,
                "signaling messages are limited to 64 KiB",
            )
            .await;
            return Incoming::Refused(true);
        }
        match decode_client_message(text.as_str()) {
            Ok(m) => Incoming::Message(m),
            Err(DecodeError::UnknownType) => {
                self.error(ErrorCode::UnknownType, "unknown message type")
                    .await;
                Incoming::Refused(false)
            }
            Err(DecodeError::Malformed) => {
                self.error(
                    ErrorCode::InvalidMessage,
                    "the message is not valid JSON for its type",
                )
                .await;
                Incoming::Refused(false)
            }
        }
    }
}

/// Whether a receive error is a text frame that is not UTF-8 (and not, say, a reset).
fn is_invalid_utf8(e: &axum::Error) -> bool {
    let inner = std::error::Error::source(e).and_then(|s| s.downcast_ref::<tungstenite::Error>());
    matches!(inner, Some(tungstenite::Error::Utf8(_)))
}

/// A new socket that has not joined yet.
struct AwaitingJoin {
    conn: Conn,
    client_ip: IpAddr,
}

impl AwaitingJoin {
    async fn await_join(self) -> Option<Joined> {
        let mut conn = self.conn;
        let timeout = conn.state.join_timeout;
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let frame = match tokio::time::timeout_at(deadline, conn.socket.recv()).await {
                Ok(f) => f,
                Err(_) => {
                    conn.error(ErrorCode::Timeout, "no join message arrived in time")
                        .await;
                    return None;
                }
            };
            match conn.decode(frame).await {
                Incoming::Gone | Incoming::Refused(true) => return None,
                Incoming::Refused(false) => continue,
                Incoming::Message(ClientMessage::Join { v, token, visit }) => {
                    if !conn
                        .state
                        .join_limiter
                        .allow(Instant::now(), self.client_ip)
                    {
                        conn.state
                            .metrics
                            .joins
                            .with_label_values(&["refused"])
                            .inc();
                        conn.audit_refusal(ErrorCode::RateLimited, None);
                        conn.error_then(
                            ErrorCode::RateLimited,
                            "too many join attempts; wait a moment and try again",
                            Some(CLOSE_POLICY),
                        )
                        .await;
                        return None;
                    }
                    let started = Instant::now();
                    let metrics = conn.state.metrics.clone();
                    let joined = Joined::enter(conn, v, &token, visit.as_deref()).await;
                    if joined.is_some() {
                        metrics
                            .join_seconds
                            .observe(started.elapsed().as_secs_f64());
                    }
                    return joined;
                }
                Incoming::Message(ClientMessage::Ping {}) => {
                    conn.send(&ServerMessage::Pong).await;
                }
                Incoming::Message(_) => {
                    conn.error(ErrorCode::NotJoined, "send join first").await;
                }
            }
        }
    }
}

/// A session that has joined a visit, waiting or admitted.
struct Joined {
    conn: Conn,
    grant: Grant,
    /// The visit's type (the first joiner's token set it).
    visit_type: VisitType,
    participant: ParticipantId,
    membership: Option<Membership>,
    visit_rx: mpsc::UnboundedReceiver<ToSession>,
    admitted: bool,
    /// When this session entered the visit (joined admitted, or was admitted).
    admitted_at: Instant,
    media_started: bool,
}

impl Joined {
    async fn enter(
        mut conn: Conn,
        v: u32,
        token: &str,
        expected_visit: Option<&str>,
    ) -> Option<Joined> {
        let metrics = conn.state.metrics.clone();
        if v != PROTOCOL_VERSION {
            metrics.joins.with_label_values(&["refused"]).inc();
            conn.audit_refusal(ErrorCode::UnsupportedVersion, None);
            conn.error(
                ErrorCode::UnsupportedVersion,
                "this server speaks signaling protocol version 1",
            )
            .await;
            return None;
        }
        let ticket = token.starts_with(crate::recorders::TICKET_PREFIX);
        let verified = if ticket {
            conn.state
                .recorders
                .as_ref()
                .and_then(|r| r.redeem(token))
                .ok_or(TokenError::Malformed)
        } else {
            conn.state.verifier.verify(token)
        };
        let verified = match verified {
            // The recorder role joins only with a ticket from a recorder agent's job: a signed
            // token cannot smuggle a silent listener into a visit.
            Ok(g) if g.role == Role::Recorder && !ticket => Err(TokenError::UnknownRole),
            other => other,
        };
        let grant = match verified {
            Ok(g) => g,
            Err(e) => {
                metrics.joins.with_label_values(&["refused"]).inc();
                let code = match e {
                    TokenError::Expired | TokenError::NotYetValid => ErrorCode::TokenExpired,
                    _ => ErrorCode::InvalidToken,
                };
                info!(code = code.as_str(), "join refused");
                conn.audit_refusal(code, None);
                conn.error(code, &e.to_string()).await;
                return None;
            }
        };
        if expected_visit.is_some_and(|v| v != grant.visit.as_str()) {
            metrics.joins.with_label_values(&["refused"]).inc();
            conn.audit_refusal(ErrorCode::InvalidToken, Some(grant.visit.to_string()));
            conn.error(
                ErrorCode::InvalidToken,
                "the join token is for another visit",
            )
            .await;
            return None;
        }
        let participant = conn.state.mint_participant_id();
        let (tx, visit_rx) = mpsc::unbounded_channel();
        let who = Joiner {
            id: participant,
            subject: grant.subject.clone(),
            jti: grant.jti.clone(),
            role: grant.role,
            name: grant.name.clone(),
            reason: grant.reason.clone(),
            fhir: grant.fhir.clone(),
        };
        let state = conn.state.clone();
        let joined = state
            .visits
            .join(
                &grant.visit,
                grant.visit_type,
                who,
                tx,
                &state.visit_context,
            )
            .await;
        let (membership, visit_type, entered) = match joined {
            Ok(x) => x,
            Err(e) => {
                metrics.joins.with_label_values(&["refused"]).inc();
                let (code, text) = match e {
                    JoinError::Refused(Refusal::VisitFull) => {
                        (ErrorCode::VisitFull, "this visit is full")
                    }
                    JoinError::Refused(Refusal::VisitEnded) => {
                        (ErrorCode::VisitEnded, "this visit has ended")
                    }
                    JoinError::Refused(Refusal::NotRecording) => {
                        (ErrorCode::RecordingStopped, "the visit is not recording")
                    }
                    JoinError::Refused(Refusal::RecentlyDenied) => (
                        ErrorCode::Denied,
                        "A clinician could not admit you just now. Please wait a few minutes \
                         before trying again, or contact the clinic.",
                    ),
                    JoinError::Unavailable => {
                        (ErrorCode::Unavailable, "the visit cannot be joined now")
                    }
                };
                info!(code = code.as_str(), visit = %grant.visit, "join refused");
                if code == ErrorCode::VisitEnded || code == ErrorCode::Unavailable {
                    // visit_full is audited by the room with the participant's ids.
                    conn.audit_refusal(code, Some(grant.visit.to_string()));
                }
                conn.error(code, text).await;
                return None;
            }
        };
        metrics.joins.with_label_values(&["ok"]).inc();
        metrics.sessions.inc();
        metrics
            .participants
            .with_label_values(&[grant.role.as_str()])
            .inc();
        info!(%participant, visit = %grant.visit, role = %grant.role, admitted = entered.admitted, "joined");
        let joined = ServerMessage::Joined {
            v: PROTOCOL_VERSION,
            visit: grant.visit.clone(),
            visit_type,
            participant,
            role: grant.role,
            state: if entered.admitted {
                JoinState::Admitted
            } else {
                JoinState::Waiting
            },
            may_publish: state
                .routing
                .policy(visit_type)
                .publish
                .get(&grant.role)
                .cloned()
                .unwrap_or_default(),
            // TURN credentials only for someone in the call: a waiting participant gets them
            // when admitted, so a knock on the door does not hand out hours of relay use.
            ice_servers: if entered.admitted {
                state.ice_servers(participant)
            } else {
                Vec::new()
            },
            participants: entered.participants,
            recording_enabled: state.recorders.is_some(),
            locale: grant.locale.clone(),
        };
        let mut session = Joined {
            conn,
            grant,
            visit_type,
            participant,
            membership: Some(membership),
            visit_rx,
            admitted: entered.admitted,
            admitted_at: Instant::now(),
            media_started: false,
        };
        if !session.conn.send(&joined).await {
            session.end();
            return None;
        }
        Some(session)
    }

    async fn run(mut self) {
        let (peer_tx, mut peer_rx) = mpsc::unbounded_channel();
        loop {
            tokio::select! {
                frame = self.conn.socket.recv() => {
                    match self.conn.decode(frame).await {
                        Incoming::Gone | Incoming::Refused(true) => break,
                        Incoming::Refused(false) => {}
                        Incoming::Message(m) => {
                            if !self.handle(m, &peer_tx).await {
                                break;
                            }
                        }
                    }
                }
                Some(msg) = self.visit_rx.recv() => {
                    let msg = match msg {
                        ToSession::Message(m) => m,
                        ToSession::Admitted(mut m) => {
                            self.admitted = true;
                            self.admitted_at = Instant::now();
                            if let ServerMessage::Admitted { ice_servers, .. } = &mut m {
                                *ice_servers = self.conn.state.ice_servers(self.participant);
                            }
                            m
                        }
                        ToSession::Close(code, text) => {
                            self.conn.error(code, &text).await;
                            break;
                        }
                    };
                    if !self.conn.send(&msg).await {
                        break;
                    }
                }
                Some(event) = peer_rx.recv() => {
                    let msg = match event {
                        PeerEvent::Answer { sdp } => ServerMessage::Answer { sdp },
                        PeerEvent::Offer { sdp, tracks } => ServerMessage::Offer { sdp, tracks },
                        PeerEvent::Connected => continue,
                        PeerEvent::Closed { .. } => {
                            self.media_started = false;
                            self.conn.error(ErrorCode::MediaFailed, "the media connection ended").await;
                            break;
                        }
                    };
                    if !self.conn.send(&msg).await {
                        break;
                    }
                }
            }
        }
        self.end();
    }

    /// Handles one client message; returns false when the session ends.
    async fn handle(
        &mut self,
        msg: ClientMessage,
        peer_tx: &mpsc::UnboundedSender<PeerEvent>,
    ) -> bool {
        let sfu = self.conn.state.sfu.clone();
        let command = match msg {
            ClientMessage::Admit { participant } => Some(Command::Admit(participant)),
            ClientMessage::AdmitAll {} => Some(Command::AdmitAll),
            ClientMessage::Deny {
                participant,
                ref reason,
            } => Some(Command::Deny(participant, reason.clone())),
            ClientMessage::Remove { participant } => Some(Command::Remove(participant)),
            ClientMessage::EndVisit {} => Some(Command::EndVisit),
            ClientMessage::NotifyWaiting { ref text } => Some(Command::NotifyWaiting(text.clone())),
            ClientMessage::ShowVideo { show } => Some(Command::ShowVideo(show)),
            ClientMessage::MediaState { audio, video } => {
                Some(Command::MediaState(bedside_proto::MediaState {
                    audio,
                    video,
                }))
            }
            ClientMessage::RecordStart {} => Some(Command::RecordStart {
                recorder_available: self
                    .conn
                    .state
                    .recorders
                    .as_ref()
                    .is_some_and(|r| r.available()),
            }),
            ClientMessage::RecordStop {} => Some(Command::RecordStop),
            ClientMessage::RecordPause {} => Some(Command::RecordPause(true)),
            ClientMessage::RecordResume {} => Some(Command::RecordPause(false)),
            ClientMessage::ConsentAccept { ref text_version }
            | ClientMessage::ConsentDecline { ref text_version } => Some(Command::Consent {
                accept: matches!(msg, ClientMessage::ConsentAccept { .. }),
                text_version: text_version.clone(),
                at_unix_ms: unix_ms(),
            }),
            _ => None,
        };
        if let Some(cmd) = command {
            let verdict = match &self.membership {
                Some(m) => m.command(cmd).await,
                None => Err(ErrorCode::Unavailable),
            };
            return match verdict {
                Ok(()) => true,
                Err(code) => {
                    let text = match code {
                        ErrorCode::Forbidden => "your role may not do that in this visit",
                        ErrorCode::UnknownParticipant => "that participant is not here",
                        ErrorCode::RecordingDisabled => "recording is not enabled on this server",
                        ErrorCode::RecordingUnavailable => {
                            "no recorder is available, or the visit is not recording"
                        }
                        ErrorCode::ConsentMismatch => {
                            "that answers no current consent request (or an older consent text)"
                        }
                        _ => "the visit could not do that now",
                    };
                    self.conn.error(code, text).await;
                    !code.closes_session()
                }
            };
        }
        let result = match msg {
            ClientMessage::Join { .. } => {
                self.conn
                    .error(ErrorCode::AlreadyJoined, "this session has joined already")
                    .await;
                return true;
            }
            ClientMessage::Ping {} => return self.conn.send(&ServerMessage::Pong).await,
            ClientMessage::Leave {} => {
                if let Some(m) = self.membership.take() {
                    m.leave();
                }
                self.conn.send(&ServerMessage::Left).await;
                self.conn.close(CLOSE_NORMAL, "left").await;
                return false;
            }
            ClientMessage::Offer { .. }
            | ClientMessage::Answer { .. }
            | ClientMessage::Candidate { .. }
                if !self.admitted =>
            {
                self.conn
                    .error(ErrorCode::NotAdmitted, "wait until a clinician admits you")
                    .await;
                return true;
            }
            ClientMessage::Offer { sdp, sources } if !self.media_started => {
                let peer = NewPeer {
                    id: self.participant,
                    visit: self.grant.visit.clone(),
                    visit_type: self.visit_type,
                    role: self.grant.role,
                    sources: sources.into_iter().collect(),
                    joined_at: Some(self.admitted_at),
                };
                let r = sfu.add_peer(peer, sdp, peer_tx.clone()).await;
                self.media_started = r.is_ok();
                r
            }
            ClientMessage::Offer { sdp, sources } => {
                sfu.client_offer(self.participant, sdp, sources.into_iter().collect())
                    .await
            }
            ClientMessage::Answer { .. } | ClientMessage::Candidate { .. }
                if !self.media_started =>
            {
                Err(SfuError::NegotiationState)
            }
            ClientMessage::Answer { sdp } => sfu.client_answer(self.participant, sdp).await,
            ClientMessage::Candidate {
                candidate, sdp_mid, ..
            } => match sdp_mid.as_deref().map(bedside_sfu::sdp::check_mid) {
                Some(Err(e)) => Err(SfuError::CandidateRefused(e)),
                _ => sfu.add_candidate(self.participant, candidate).await,
            },
            _ => unreachable!("commands are handled above"),
        };
        match result {
            Ok(()) => true,
            Err(e) => {
                let code = match e {
                    SfuError::InvalidSdp => ErrorCode::InvalidSdp,
                    SfuError::InvalidCandidate | SfuError::CandidateRefused(_) => {
                        ErrorCode::InvalidCandidate
                    }
                    SfuError::DuplicateSource | SfuError::TooManyMLines => ErrorCode::TooManyTracks,
                    SfuError::PublishNotAllowed => {
                        let event = AuditEvent {
                            kind: "refuse".into(),
                            visit: Some(self.grant.visit.to_string()),
                            participant: Some(self.participant.to_string()),
                            subject: Some(self.grant.subject.clone()),
                            role: Some(self.grant.role.to_string()),
                            code: Some("publish_not_allowed".into()),
                            ..AuditEvent::default()
                        };
                        crate::record_audit(&self.conn.state.audit, event);
                        ErrorCode::PublishNotAllowed
                    }
                    SfuError::NegotiationState
                    | SfuError::UnknownPeer
                    | SfuError::DuplicatePeer => ErrorCode::NegotiationState,
                    SfuError::EngineGone => ErrorCode::Unavailable,
                };
                self.conn.error(code, &e.to_string()).await;
                !code.closes_session()
            }
        }
    }

    fn end(mut self) {
        if self.media_started {
            self.conn.state.sfu.remove_peer(self.participant);
        }
        self.conn.state.metrics.sessions.dec();
        self.conn
            .state
            .metrics
            .participants
            .with_label_values(&[self.grant.role.as_str()])
            .dec();
        info!(participant = %self.participant, "session ended");
        // Dropping the membership tells the visit (as a drop unless `leave` was called).
        self.membership.take();
    }
}
