//! Visits: who is in which visit, and telling them about each other. Each visit is owned by
//! one task (STYLE.md 2); sessions talk to it through a channel. The registry only maps visit
//! ids to those channels.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use bedside_proto::{ParticipantId, ParticipantInfo, ServerMessage, VisitId};
use tokio::sync::{mpsc, oneshot};
use tracing::info;

use crate::Metrics;

/// Messages from the visit to one session.
pub(crate) type SessionTx = mpsc::UnboundedSender<ServerMessage>;

enum VisitCmd {
    Join {
        info: ParticipantInfo,
        tx: SessionTx,
        reply: oneshot::Sender<Vec<ParticipantInfo>>,
    },
    Leave {
        participant: ParticipantId,
    },
}

/// The registry of live visits.
#[derive(Default)]
pub(crate) struct Visits {
    live: Arc<Mutex<HashMap<VisitId, mpsc::UnboundedSender<VisitCmd>>>>,
}

/// A session's membership of a visit; leaving is explicit ([`Membership::leave`]) and also
/// happens on drop, so a crashed session never lingers in the participant list.
pub(crate) struct Membership {
    visit: mpsc::UnboundedSender<VisitCmd>,
    participant: ParticipantId,
}

impl Membership {
    pub(crate) fn leave(self) {}
}

impl Drop for Membership {
    fn drop(&mut self) {
        let _ = self.visit.send(VisitCmd::Leave {
            participant: self.participant,
        });
    }
}

impl Visits {
    /// Adds a participant to `visit` (creating it on first join) and returns the membership
    /// and everyone who was there already.
    pub(crate) async fn join(
        &self,
        visit: &VisitId,
        info: ParticipantInfo,
        tx: SessionTx,
        metrics: &Metrics,
    ) -> Option<(Membership, Vec<ParticipantInfo>)> {
        // A visit task that just emptied may be closing: its channel then refuses the join and
        // the next attempt creates a fresh visit.
        for _ in 0..3 {
            let sender = self.sender_for(visit, metrics);
            let (reply, rx) = oneshot::channel();
            let cmd = VisitCmd::Join {
                info: info.clone(),
                tx: tx.clone(),
                reply,
            };
            if sender.send(cmd).is_err() {
                continue;
            }
            if let Ok(others) = rx.await {
                let membership = Membership {
                    visit: sender,
                    participant: info.participant,
                };
                return Some((membership, others));
            }
        }
        None
    }

    fn sender_for(&self, visit: &VisitId, metrics: &Metrics) -> mpsc::UnboundedSender<VisitCmd> {
        let mut live = self
            .live
            .lock()
            .expect("the visit registry lock is never poisoned");
        if let Some(s) = live.get(visit) {
            if !s.is_closed() {
                return s.clone();
            }
        }
        let (tx, rx) = mpsc::unbounded_channel();
        live.insert(visit.clone(), tx.clone());
        metrics.visits.set(live.len() as i64);
        let visit = visit.clone();
        let me = tx.clone();
        let metrics = metrics.clone();
        let registry = self.live.clone();
        tokio::spawn(async move {
            run_visit(visit.clone(), rx).await;
            let mut live = registry
                .lock()
                .expect("the visit registry lock is never poisoned");
            if live.get(&visit).is_some_and(|s| s.same_channel(&me)) {
                live.remove(&visit);
            }
            metrics.visits.set(live.len() as i64);
        });
        tx
    }
}

async fn run_visit(visit: VisitId, mut rx: mpsc::UnboundedReceiver<VisitCmd>) {
    info!(%visit, "visit started");
    let mut members: Vec<(ParticipantInfo, SessionTx)> = Vec::new();
    while let Some(cmd) = rx.recv().await {
        match cmd {
            VisitCmd::Join { info, tx, reply } => {
                let others: Vec<ParticipantInfo> = members.iter().map(|(i, _)| i.clone()).collect();
                if reply.send(others).is_err() {
                    continue;
                }
                for (_, other) in &members {
                    let _ = other.send(ServerMessage::ParticipantJoined {
                        participant: info.clone(),
                    });
                }
                members.push((info, tx));
            }
            VisitCmd::Leave { participant } => {
                let before = members.len();
                members.retain(|(i, _)| i.participant != participant);
                if members.len() != before {
                    for (_, other) in &members {
                        let _ = other.send(ServerMessage::ParticipantLeft { participant });
                    }
                }
                if members.is_empty() {
                    break;
                }
            }
        }
    }
    // Closing the receiver makes late joins fail over to a new visit task.
    rx.close();
    while let Some(cmd) = rx.recv().await {
        drop(cmd);
    }
    info!(%visit, "visit ended");
}
