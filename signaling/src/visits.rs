//! Visits: one task per visit owns its [`Room`] by value (no lock) and carries the room's outputs
//! out to sessions, the media engine and the audit log. The registry maps visit ids to those
//! tasks' channels and remembers visits a provider ended.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bedside_audit::{AuditEvent, AuditLog};
use bedside_proto::{ErrorCode, ParticipantId, ServerMessage, VisitId, VisitType};
use bedside_sfu::Sfu;
use tokio::sync::{mpsc, oneshot};
use tracing::info;

use crate::recorders::Recorders;
use crate::room::{
    AuditNote, Command, ConsentText, Departure, Entered, Joiner, Out, Refusal, Room, RoomLimits,
};
use crate::webhooks::events::Summary;
use crate::webhooks::VisitEvents;
use crate::Metrics;

/// What a visit tells one session.
#[derive(Debug)]
pub(crate) enum ToSession {
    Message(ServerMessage),
    /// Admitted from the waiting room: media may start; forward the message.
    Admitted(ServerMessage),
    /// The visit ends this session with an error code and a message for the person.
    Close(ErrorCode, String),
}

pub(crate) type SessionTx = mpsc::UnboundedSender<ToSession>;

enum VisitCmd {
    Join {
        who: Joiner,
        tx: SessionTx,
        reply: oneshot::Sender<Result<Entered, Refusal>>,
    },
    Leave {
        participant: ParticipantId,
        how: Departure,
    },
    Command {
        from: ParticipantId,
        cmd: Command,
        reply: oneshot::Sender<Result<(), ErrorCode>>,
    },
    /// The admin listener asks what is known of the visit now.
    Summary { reply: oneshot::Sender<Summary> },
}

/// Limits per visit type.
#[derive(Debug, Clone)]
pub struct VisitLimits {
    pub consult: RoomLimits,
    pub group: RoomLimits,
}

impl VisitLimits {
    fn for_type(&self, t: VisitType) -> RoomLimits {
        match t {
            VisitType::Consult => self.consult.clone(),
            VisitType::Group => self.group.clone(),
        }
    }
}

/// What every visit task needs from the server.
#[derive(Clone)]
pub(crate) struct VisitContext {
    pub(crate) sfu: Sfu,
    pub(crate) audit: AuditLog,
    pub(crate) metrics: Metrics,
    pub(crate) limits: VisitLimits,
    /// Recorder agents; `None` when recording is not enabled.
    pub(crate) recorders: Option<Recorders>,
    pub(crate) consent: Option<ConsentText>,
    /// The webhook outbox's writer; `None` when webhooks are off.
    pub(crate) webhooks: Option<crate::webhooks::Emitter>,
}

/// How long an ended visit id is refused (longer than any join token lives).
const ENDED_MEMORY: Duration = Duration::from_secs(24 * 3600);

/// How many finished visits' summaries the admin listener can still show (the newest).
const RECENT_SUMMARIES: usize = 1000;

#[derive(Default)]
struct Registry {
    live: HashMap<VisitId, (mpsc::UnboundedSender<VisitCmd>, VisitType)>,
    ended: HashMap<VisitId, Instant>,
    /// Summaries of visits whose task finished, for [`ENDED_MEMORY`], at most
    /// [`RECENT_SUMMARIES`].
    recent: HashMap<VisitId, (Instant, Arc<Summary>)>,
}

/// The registry of live visits.
#[derive(Default, Clone)]
pub(crate) struct Visits {
    inner: Arc<Mutex<Registry>>,
}

/// Why a join did not get into a visit.
pub(crate) enum JoinError {
    Refused(Refusal),
    Unavailable,
}

/// A session's membership of a visit. Dropping it tells the visit the session dropped
/// (grace applies); [`Membership::leave`] says it left on purpose.
pub(crate) struct Membership {
    visit: mpsc::UnboundedSender<VisitCmd>,
    participant: ParticipantId,
    how: Departure,
}

impl Membership {
    pub(crate) fn leave(mut self) {
        self.how = Departure::Left;
    }

    /// Sends a command to the visit and waits for its verdict.
    pub(crate) async fn command(&self, cmd: Command) -> Result<(), ErrorCode> {
        let (reply, rx) = oneshot::channel();
        self.visit
            .send(VisitCmd::Command {
                from: self.participant,
                cmd,
                reply,
            })
            .map_err(|_| ErrorCode::Unavailable)?;
        rx.await.map_err(|_| ErrorCode::Unavailable)?
    }
}

impl Drop for Membership {
    fn drop(&mut self) {
        let _ = self.visit.send(VisitCmd::Leave {
            participant: self.participant,
            how: self.how,
        });
    }
}

impl Visits {
    /// What is known of `visit`: asked of its task while it runs, else the summary it left
    /// when it finished (within a day, the newest [`RECENT_SUMMARIES`]).
    pub(crate) async fn summary(&self, visit: &VisitId) -> Option<Arc<Summary>> {
        let (live, recent) = {
            let reg = self
                .inner
                .lock()
                .expect("the visit registry lock is never poisoned");
            (
                reg.live.get(visit).map(|(s, _)| s.clone()),
                reg.recent.get(visit).map(|(_, s)| s.clone()),
            )
        };
        if let Some(tx) = live {
            let (reply, rx) = oneshot::channel();
            if tx.send(VisitCmd::Summary { reply }).is_ok() {
                if let Ok(s) = rx.await {
                    return Some(Arc::new(s));
                }
            }
        }
        recent
    }

    /// Adds a participant to `visit` (creating it on first join with `visit_type`).
    /// Returns the membership, the visit's type (the first joiner's) and how they entered.
    pub(crate) async fn join(
        &self,
        visit: &VisitId,
        visit_type: VisitType,
        who: Joiner,
        tx: SessionTx,
        ctx: &VisitContext,
    ) -> Result<(Membership, VisitType, Entered), JoinError> {
        // A visit task that just emptied may be closing: its channel then refuses the join and
        // the next attempt creates a fresh visit.
        for _ in 0..3 {
            let (sender, actual_type) = self.sender_for(visit, visit_type, ctx)?;
            let (reply, rx) = oneshot::channel();
            let cmd = VisitCmd::Join {
                who: who.clone(),
                tx: tx.clone(),
                reply,
            };
            if sender.send(cmd).is_err() {
                continue;
            }
            match rx.await {
                Ok(Ok(entered)) => {
                    let membership = Membership {
                        visit: sender,
                        participant: who.id,
                        how: Departure::Dropped,
                    };
                    return Ok((membership, actual_type, entered));
                }
                Ok(Err(refusal)) => return Err(JoinError::Refused(refusal)),
                Err(_) => continue,
            }
        }
        Err(JoinError::Unavailable)
    }

    fn sender_for(
        &self,
        visit: &VisitId,
        visit_type: VisitType,
        ctx: &VisitContext,
    ) -> Result<(mpsc::UnboundedSender<VisitCmd>, VisitType), JoinError> {
        let mut reg = self
            .inner
            .lock()
            .expect("the visit registry lock is never poisoned");
        let now = Instant::now();
        reg.ended
            .retain(|_, at| now.duration_since(*at) < ENDED_MEMORY);
        if reg.ended.contains_key(visit) {
            return Err(JoinError::Refused(Refusal::VisitEnded));
        }
        if let Some((s, t)) = reg.live.get(visit) {
            if !s.is_closed() {
                return Ok((s.clone(), *t));
            }
        }
        let (tx, rx) = mpsc::unbounded_channel();
        reg.live.insert(visit.clone(), (tx.clone(), visit_type));
        ctx.metrics.visits.set(reg.live.len() as i64);
        let task = VisitTask {
            visit: visit.clone(),
            room: Room::new(visit_type, ctx.limits.for_type(visit_type))
                .with_recording(ctx.consent.clone()),
            visit_type,
            sessions: HashMap::new(),
            ctx: ctx.clone(),
            waiting: 0,
            events: VisitEvents::start(crate::webhooks::now_ms(), visit.clone(), visit_type),
        };
        let registry = self.inner.clone();
        let metrics = ctx.metrics.clone();
        let me = tx.clone();
        let visit = visit.clone();
        tokio::spawn(async move {
            let (ended, summary) = task.run(rx).await;
            let mut reg = registry
                .lock()
                .expect("the visit registry lock is never poisoned");
            let now = Instant::now();
            reg.recent
                .retain(|_, (at, _)| now.duration_since(*at) < ENDED_MEMORY);
            if reg.recent.len() >= RECENT_SUMMARIES {
                if let Some(oldest) = reg
                    .recent
                    .iter()
                    .min_by_key(|(_, (at, _))| *at)
                    .map(|(v, _)| v.clone())
                {
                    reg.recent.remove(&oldest);
                }
            }
            reg.recent.insert(visit.clone(), (now, Arc::new(summary)));
            if reg
                .live
                .get(&visit)
                .is_some_and(|(s, _)| s.same_channel(&me))
            {
                reg.live.remove(&visit);
            }
            if ended {
                reg.ended.insert(visit, Instant::now());
            }
            metrics.visits.set(reg.live.len() as i64);
        });
        Ok((tx, visit_type))
    }
}

struct VisitTask {
    visit: VisitId,
    visit_type: VisitType,
    room: Room,
    sessions: HashMap<ParticipantId, SessionTx>,
    ctx: VisitContext,
    /// This visit's share of the waiting-room gauge.
    waiting: i64,
    /// What happened, for the webhooks and the admin listener's summary.
    events: VisitEvents,
}

impl VisitTask {
    /// Runs until the room is finished; returns whether a provider ended the visit, and the
    /// visit's final summary.
    async fn run(mut self, mut rx: mpsc::UnboundedReceiver<VisitCmd>) -> (bool, Summary) {
        info!(visit = %self.visit, "visit started");
        self.emit();
        loop {
            let deadline = self.room.poll_timeout();
            let cmd = tokio::select! {
                cmd = rx.recv() => cmd,
                _ = sleep_until(deadline) => {
                    self.room.handle_timeout(Instant::now());
                    self.flush();
                    if self.room.is_finished() { break; }
                    continue;
                }
            };
            let Some(cmd) = cmd else { break };
            let now = Instant::now();
            match cmd {
                VisitCmd::Join { who, tx, reply } => {
                    let id = who.id;
                    self.events.joining(&who);
                    let result = self.room.handle_join(now, who);
                    if result.is_ok() {
                        self.sessions.insert(id, tx);
                    }
                    // The session learns its state before any message the join caused.
                    let _ = reply.send(result);
                }
                VisitCmd::Leave { participant, how } => {
                    self.sessions.remove(&participant);
                    self.room.handle_leave(now, participant, how);
                }
                VisitCmd::Command { from, cmd, reply } => {
                    let _ = reply.send(self.room.handle_command(now, from, cmd));
                }
                VisitCmd::Summary { reply } => {
                    let _ = reply.send(self.events.summary(crate::webhooks::now_ms()));
                }
            }
            self.flush();
            if self.room.is_finished() {
                break;
            }
        }
        // `visit.ended` goes out before the channel closes: a join that comes later starts a new
        // visit task, whose `visit.started` must follow this one's end.
        let ended = self.room.is_ended();
        let summary = self.events.finish(crate::webhooks::now_ms(), ended);
        self.emit();
        // Closing the receiver makes late joins fail over to a new visit task.
        rx.close();
        while let Some(cmd) = rx.recv().await {
            drop(cmd);
        }
        info!(visit = %self.visit, ended, "visit closed");
        (ended, summary)
    }

    /// Carries out everything the room decided.
    fn flush(&mut self) {
        let now_ms = crate::webhooks::now_ms();
        while let Some(out) = self.room.poll_output() {
            self.events.observe(now_ms, &out);
            match out {
                Out::Send(id, msg) => self.send(id, ToSession::Message(msg)),
                Out::Admit(id, msg) => self.send(id, ToSession::Admitted(msg)),
                Out::Close(id, code, text) => {
                    self.send(id, ToSession::Close(code, text));
                    self.sessions.remove(&id);
                }
                Out::Shown(id, shown) => self.ctx.sfu.set_shown(id, shown),
                Out::Recordable(id, on) => self.ctx.sfu.set_recordable(id, on),
                Out::StartRecorder => {
                    let sent = self
                        .ctx
                        .recorders
                        .as_ref()
                        .is_some_and(|r| r.dispatch(&self.visit, self.visit_type));
                    self.ctx
                        .metrics
                        .recorder_dispatches
                        .with_label_values(&[if sent { "sent" } else { "no_agent" }])
                        .inc();
                    if sent {
                        info!(visit = %self.visit, "recorder requested");
                    } else {
                        tracing::warn!(visit = %self.visit, "no recorder agent is connected");
                    }
                }
                Out::WaitEnded(waited, how) => self
                    .ctx
                    .metrics
                    .wait_seconds
                    .with_label_values(&[how])
                    .observe(waited.as_secs_f64()),
                Out::Audit(note) => {
                    if note.kind == "consent" {
                        if let Some(decision) = note.code {
                            self.ctx
                                .metrics
                                .recording_consents
                                .with_label_values(&[decision])
                                .inc();
                        }
                    }
                    self.audit(note)
                }
                // Only the webhooks (above) report it.
                Out::RecordingStopped(..) => {}
            }
        }
        self.emit();
        let waiting = self.room.member_count().0 as i64;
        self.ctx.metrics.waiting.add(waiting - self.waiting);
        self.waiting = waiting;
    }

    /// Hands the webhook events produced so far to the outbox writer (never waits).
    fn emit(&mut self) {
        let drafts = self.events.take();
        if let Some(emitter) = &self.ctx.webhooks {
            emitter.emit(&self.visit, drafts);
        }
    }

    fn send(&self, id: ParticipantId, msg: ToSession) {
        if let Some(tx) = self.sessions.get(&id) {
            let _ = tx.send(msg);
        }
    }

    fn audit(&self, note: AuditNote) {
        let event = AuditEvent {
            kind: note.kind.to_owned(),
            visit: Some(self.visit.to_string()),
            participant: Some(note.participant.to_string()),
            subject: Some(note.subject),
            role: Some(note.role.to_string()),
            actor: note.actor.map(|a| a.to_string()),
            code: note.code.map(|c| match &note.text_version {
                Some(v) => format!("{c}:text_version={v}"),
                None => c.to_owned(),
            }),
        };
        crate::record_audit(&self.ctx.audit, event);
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d.into()).await,
        None => std::future::pending().await,
    }
}
