//! One WebSocket signaling session, as two typed states (STYLE.md 3): [`AwaitingJoin`] holds a
//! fresh socket until a valid `join`, which turns it into a [`Joined`] session in a visit.
//! Only a `Joined` session can reach the media engine.

use std::sync::Arc;

use axum::extract::ws::{CloseFrame, Message, WebSocket};
use bedside_proto::{
    decode_client_message, ClientMessage, DecodeError, ErrorCode, ParticipantId, ParticipantInfo,
    ServerMessage, MAX_MESSAGE_BYTES, PROTOCOL_VERSION,
};
use bedside_sfu::{PeerEvent, SfuError};
use bedside_token::{Grant, TokenError};
use tokio::sync::mpsc;
use tracing::{debug, info};

use crate::visits::Membership;
use crate::AppState;

/// WebSocket close codes (RFC 6455 §7.4.1).
const CLOSE_NORMAL: u16 = 1000;
const CLOSE_POLICY: u16 = 1008;
const CLOSE_TOO_BIG: u16 = 1009;
const CLOSE_UNAVAILABLE: u16 = 1013;

/// Runs a session from upgrade to close.
pub(crate) async fn run(state: Arc<AppState>, socket: WebSocket) {
    let waiting = AwaitingJoin { state, socket };
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
        if sent && code.closes_session() {
            let close = match code {
                ErrorCode::MessageTooLarge => CLOSE_TOO_BIG,
                ErrorCode::Unavailable | ErrorCode::MediaFailed => CLOSE_UNAVAILABLE,
                _ => CLOSE_POLICY,
            };
            self.close(close, code.as_str()).await;
        }
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

    /// Turns one received frame into a message, refusing what the protocol does not allow.
    async fn decode(&mut self, frame: Option<Result<Message, axum::Error>>) -> Incoming {
        let text = match frame {
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

/// A new socket that has not joined yet.
struct AwaitingJoin {
    state: Arc<AppState>,
    socket: WebSocket,
}

impl AwaitingJoin {
    async fn await_join(self) -> Option<Joined> {
        let timeout = self.state.join_timeout;
        let mut conn = Conn {
            state: self.state,
            socket: self.socket,
        };
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
                Incoming::Message(ClientMessage::Join { v, token }) => {
                    return Joined::enter(conn, v, &token).await;
                }
                Incoming::Message(ClientMessage::Ping) => {
                    conn.send(&ServerMessage::Pong).await;
                }
                Incoming::Message(_) => {
                    conn.error(ErrorCode::NotJoined, "send join first").await;
                }
            }
        }
    }
}

/// A session that has joined a visit.
struct Joined {
    conn: Conn,
    grant: Grant,
    participant: ParticipantId,
    membership: Membership,
    visit_rx: mpsc::UnboundedReceiver<ServerMessage>,
    media_started: bool,
}

impl Joined {
    async fn enter(mut conn: Conn, v: u32, token: &str) -> Option<Joined> {
        let metrics = conn.state.metrics.clone();
        if v != PROTOCOL_VERSION {
            metrics.joins.with_label_values(&["refused"]).inc();
            conn.error(
                ErrorCode::UnsupportedVersion,
                "this server speaks signaling protocol version 1",
            )
            .await;
            return None;
        }
        let grant = match conn.state.verifier.verify(token) {
            Ok(g) => g,
            Err(e) => {
                metrics.joins.with_label_values(&["refused"]).inc();
                let code = match e {
                    TokenError::Expired | TokenError::NotYetValid => ErrorCode::TokenExpired,
                    _ => ErrorCode::InvalidToken,
                };
                info!(code = code.as_str(), "join refused");
                conn.error(code, &e.to_string()).await;
                return None;
            }
        };
        let participant = conn.state.mint_participant_id();
        let (tx, visit_rx) = mpsc::unbounded_channel();
        let info = ParticipantInfo {
            participant,
            role: grant.role,
            name: grant.name.clone(),
        };
        let state = conn.state.clone();
        let Some((membership, others)) = state.visits.join(&grant.visit, info, tx, &metrics).await
        else {
            conn.error(ErrorCode::Unavailable, "the visit cannot be joined now")
                .await;
            return None;
        };
        metrics.joins.with_label_values(&["ok"]).inc();
        metrics.sessions.inc();
        info!(%participant, visit = %grant.visit, role = %grant.role, "joined");
        let joined = ServerMessage::Joined {
            v: PROTOCOL_VERSION,
            visit: grant.visit.clone(),
            participant,
            role: grant.role,
            ice_servers: Vec::new(),
            participants: others,
        };
        let mut session = Joined {
            conn,
            grant,
            participant,
            membership,
            visit_rx,
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
        let result = match msg {
            ClientMessage::Join { .. } => {
                self.conn
                    .error(ErrorCode::AlreadyJoined, "this session has joined already")
                    .await;
                return true;
            }
            ClientMessage::Ping => return self.conn.send(&ServerMessage::Pong).await,
            ClientMessage::Leave => {
                self.conn.send(&ServerMessage::Left).await;
                self.conn.close(CLOSE_NORMAL, "left").await;
                return false;
            }
            ClientMessage::Offer { sdp } if !self.media_started => {
                let r = sfu
                    .add_peer(
                        self.participant,
                        self.grant.visit.clone(),
                        self.grant.role,
                        sdp,
                        peer_tx.clone(),
                    )
                    .await;
                self.media_started = r.is_ok();
                r
            }
            ClientMessage::Offer { sdp } => sfu.client_offer(self.participant, sdp).await,
            ClientMessage::Answer { .. } | ClientMessage::Candidate { .. }
                if !self.media_started =>
            {
                Err(SfuError::NegotiationState)
            }
            ClientMessage::Answer { sdp } => sfu.client_answer(self.participant, sdp).await,
            ClientMessage::Candidate { candidate, .. } => {
                sfu.add_candidate(self.participant, candidate).await
            }
        };
        match result {
            Ok(()) => true,
            Err(e) => {
                let code = match e {
                    SfuError::InvalidSdp => ErrorCode::InvalidSdp,
                    SfuError::InvalidCandidate => ErrorCode::InvalidCandidate,
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

    fn end(self) {
        if self.media_started {
            self.conn.state.sfu.remove_peer(self.participant);
        }
        self.conn.state.metrics.sessions.dec();
        info!(participant = %self.participant, "left");
        self.membership.leave();
    }
}
