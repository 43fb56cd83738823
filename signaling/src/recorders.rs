//! Recorder agents (`bedside-recorder run`) hold a WebSocket on `/v1/recorder`, authenticated
//! with the recorder secret. When a provider starts recording, a visit asks [`Recorders`] to
//! dispatch: one agent gets a job naming the visit and a single-use ticket, and joins the
//! visit over `/v1/signal` with the ticket as its join token, like any participant (media
//! stays DTLS-SRTP on the wire). Signed join tokens never carry the recorder role.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::ws::{Message, WebSocket};
use bedside_proto::{RecorderJob, Role, VisitId, VisitType};
use bedside_token::Grant;
use rand::RngCore;
use subtle::ConstantTimeEq;
use tokio::sync::mpsc;
use tracing::{info, warn};

/// How long a ticket may wait to be redeemed.
const TICKET_TTL: Duration = Duration::from_secs(60);
/// Tickets start with this, so a join can tell them from JWTs (which start with `ey`).
pub(crate) const TICKET_PREFIX: &str = "rec_";

struct Ticket {
    visit: VisitId,
    visit_type: VisitType,
    expires: Instant,
}

#[derive(Default)]
struct Inner {
    agents: Vec<(u64, mpsc::UnboundedSender<RecorderJob>)>,
    tickets: HashMap<String, Ticket>,
    /// Round-robin position among agents.
    turn: usize,
}

/// The connected recorder agents and the tickets handed to them.
#[derive(Clone)]
pub(crate) struct Recorders {
    secret: Arc<[u8]>,
    connected: prometheus::IntGauge,
    inner: Arc<Mutex<Inner>>,
    next_id: Arc<AtomicU64>,
}

impl Recorders {
    pub(crate) fn new(secret: Vec<u8>, connected: prometheus::IntGauge) -> Recorders {
        Recorders {
            secret: secret.into(),
            connected,
            inner: Arc::default(),
            next_id: Arc::new(AtomicU64::new(1)),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether `Authorization` carries the recorder secret (compared in constant time).
    pub(crate) fn authorised(&self, header: Option<&str>) -> bool {
        let Some(token) = header.and_then(|h| h.strip_prefix("Bearer ")) else {
            return false;
        };
        bool::from(token.trim().as_bytes().ct_eq(&self.secret))
    }

    /// Whether any agent is connected.
    pub(crate) fn available(&self) -> bool {
        self.lock().agents.iter().any(|(_, tx)| !tx.is_closed())
    }

    /// Sends a job for `visit` to one agent; false if none is connected.
    pub(crate) fn dispatch(&self, visit: &VisitId, visit_type: VisitType) -> bool {
        let mut bytes = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut bytes);
        let ticket = format!(
            "{TICKET_PREFIX}{}",
            bytes.iter().map(|b| format!("{b:02x}")).collect::<String>()
        );
        let now = Instant::now();
        let mut inner = self.lock();
        inner.tickets.retain(|_, t| t.expires > now);
        inner.agents.retain(|(_, tx)| !tx.is_closed());
        if inner.agents.is_empty() {
            return false;
        }
        let n = inner.agents.len();
        for i in 0..n {
            let pos = (inner.turn + i) % n;
            let job = RecorderJob::Record {
                visit: visit.clone(),
                ticket: ticket.clone(),
            };
            if inner.agents[pos].1.send(job).is_ok() {
                inner.turn = pos + 1;
                inner.tickets.insert(
                    ticket,
                    Ticket {
                        visit: visit.clone(),
                        visit_type,
                        expires: now + TICKET_TTL,
                    },
                );
                return true;
            }
        }
        false
    }

    /// Redeems a ticket (once) for the recorder's grant in its visit.
    pub(crate) fn redeem(&self, ticket: &str) -> Option<Grant> {
        let now = Instant::now();
        let mut inner = self.lock();
        inner.tickets.retain(|_, t| t.expires > now);
        let t = inner.tickets.remove(ticket)?;
        let n = self.next_id.fetch_add(1, Ordering::Relaxed);
        Some(Grant {
            subject: "recorder".into(),
            visit: t.visit,
            visit_type: t.visit_type,
            role: Role::Recorder,
            jti: format!("recorder-ticket-{n}"),
            expires_at: 0,
            name: Some("Recorder".into()),
            reason: None,
            locale: None,
            fhir: Default::default(),
        })
    }

    /// Serves one agent's control socket until it closes.
    pub(crate) async fn serve_agent(self, mut socket: WebSocket) {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (tx, mut rx) = mpsc::unbounded_channel();
        self.lock().agents.push((id, tx));
        self.connected.inc();
        info!(agent = id, "recorder agent connected");
        let mut keepalive = tokio::time::interval(Duration::from_secs(20));
        loop {
            tokio::select! {
                job = rx.recv() => {
                    let Some(job) = job else { break };
                    let text = serde_json::to_string(&job).expect("jobs serialize");
                    if socket.send(Message::Text(text.into())).await.is_err() {
                        warn!(agent = id, "a recording job could not be sent");
                        break;
                    }
                }
                frame = socket.recv() => match frame {
                    None | Some(Err(_)) | Some(Ok(Message::Close(_))) => break,
                    Some(Ok(_)) => {}
                },
                _ = keepalive.tick() => {
                    if socket.send(Message::Ping(Vec::new().into())).await.is_err() {
                        break;
                    }
                }
            }
        }
        self.lock().agents.retain(|(a, _)| *a != id);
        self.connected.dec();
        info!(agent = id, "recorder agent disconnected");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tickets_are_single_use_and_only_for_their_visit() {
        let r = Recorders::new(
            b"0123456789abcdef0123456789abcdef".to_vec(),
            prometheus::IntGauge::new("g", "g").unwrap(),
        );
        let visit = VisitId::new("v1");
        assert!(
            !r.dispatch(&visit, VisitType::Consult),
            "no agent: nothing is sent"
        );
        let (tx, mut rx) = mpsc::unbounded_channel();
        r.lock().agents.push((99, tx));
        assert!(r.available());
        assert!(r.dispatch(&visit, VisitType::Consult));
        let RecorderJob::Record { visit: v, ticket } = rx.try_recv().unwrap();
        assert_eq!(v, visit);
        assert!(ticket.starts_with(TICKET_PREFIX));
        let grant = r.redeem(&ticket).expect("a fresh ticket is accepted");
        assert_eq!(grant.role, Role::Recorder);
        assert_eq!(grant.visit, visit);
        assert!(r.redeem(&ticket).is_none(), "a ticket works once");
        assert!(r.redeem("rec_00").is_none());
    }

    #[test]
    fn only_the_exact_secret_authorises() {
        let r = Recorders::new(
            b"0123456789abcdef0123456789abcdef".to_vec(),
            prometheus::IntGauge::new("g", "g").unwrap(),
        );
        assert!(r.authorised(Some("Bearer 0123456789abcdef0123456789abcdef")));
        assert!(!r.authorised(Some("Bearer 0123456789abcdef0123456789abcde")));
        assert!(!r.authorised(Some("0123456789abcdef0123456789abcdef")));
        assert!(!r.authorised(Some("Bearer ")));
        assert!(!r.authorised(None));
    }
}
