//! The outbox writer: visit tasks hand their events to one thread through a bounded channel
//! and never wait for the disk. The thread appends whatever has arrived in one durable
//! transaction (a commit with fsync costs milliseconds; batching makes that once per batch,
//! not once per event), then wakes the deliverer. A full channel drops the event and counts it
//! (`bedside_webhook_events_dropped_total{reason="channel_full"}`): a slow disk never slows a
//! visit.

use std::sync::Arc;

use bedside_proto::VisitId;
use bedside_store::{NewMessage, Outbox};
use bedside_webhook::{rfc3339_ms, Event};
use tokio::sync::{mpsc, oneshot, Notify};

use super::events::Draft;
use crate::Metrics;

/// Events waiting for the writer; beyond this, new ones are dropped.
const CHANNEL: usize = 10_000;
/// The most events one transaction appends.
const BATCH: usize = 512;

enum Msg {
    Event(VisitId, Draft),
    /// Answered once everything sent before it is in the store.
    Flush(oneshot::Sender<()>),
}

/// The visit tasks' end of the channel.
#[derive(Clone)]
pub(crate) struct Emitter {
    tx: mpsc::Sender<Msg>,
    metrics: Metrics,
}

impl Emitter {
    /// Queues `drafts` of `visit` for the writer, in order; never waits.
    pub(crate) fn emit(&self, visit: &VisitId, drafts: Vec<Draft>) {
        for d in drafts {
            if self.tx.try_send(Msg::Event(visit.clone(), d)).is_err() {
                self.metrics
                    .webhook_dropped
                    .with_label_values(&["channel_full"])
                    .inc();
            }
        }
    }

    /// Waits until every event emitted so far is stored (at shutdown).
    pub(crate) async fn flush(&self) {
        let (tx, rx) = oneshot::channel();
        if self.tx.send(Msg::Flush(tx)).await.is_ok() {
            let _ = rx.await;
        }
    }
}

/// Starts the writer thread.
pub(crate) fn start(
    store: Arc<dyn Outbox>,
    destinations: Vec<String>,
    wake: Arc<Notify>,
    metrics: Metrics,
) -> std::io::Result<Emitter> {
    let (tx, rx) = mpsc::channel(CHANNEL);
    let m = metrics.clone();
    std::thread::Builder::new()
        .name("webhook-outbox".into())
        .spawn(move || run(rx, store.as_ref(), &destinations, &wake, &m))?;
    Ok(Emitter { tx, metrics })
}

fn run(
    mut rx: mpsc::Receiver<Msg>,
    store: &dyn Outbox,
    destinations: &[String],
    wake: &Notify,
    metrics: &Metrics,
) {
    while let Some(first) = rx.blocking_recv() {
        let mut batch = Vec::new();
        let mut flushes = Vec::new();
        let mut next = Some(first);
        while let Some(msg) = next {
            match msg {
                Msg::Event(visit, draft) => batch.push(message(visit, draft, destinations)),
                Msg::Flush(ack) => flushes.push(ack),
            }
            next = if batch.len() < BATCH {
                rx.try_recv().ok()
            } else {
                None
            };
        }
        if !batch.is_empty() {
            let n = batch.len() as u64;
            match store.append(super::now_ms(), batch) {
                Ok(results) => {
                    for why in results.iter().flat_map(|r| &r.dropped) {
                        metrics
                            .webhook_dropped
                            .with_label_values(&[why.as_str()])
                            .inc();
                    }
                    wake.notify_one();
                }
                Err(e) => {
                    tracing::error!(error = %e, events = n, "webhook outbox append failed");
                    metrics
                        .webhook_dropped
                        .with_label_values(&["store_error"])
                        .inc_by(n);
                }
            }
        }
        for ack in flushes {
            let _ = ack.send(());
        }
    }
}

fn message(visit: VisitId, draft: Draft, destinations: &[String]) -> NewMessage {
    let id: [u8; 16] = rand::random();
    let visit_text = visit.to_string();
    NewMessage {
        visit: visit_text.clone(),
        destinations: destinations.to_vec(),
        id,
        kind: draft.kind.as_str().to_owned(),
        created_ms: draft.created_ms,
        render: Box::new(move |seq| {
            let event = Event {
                id: event_id(&id),
                kind: draft.kind.as_str().to_owned(),
                created_at: rfc3339_ms(draft.created_ms),
                visit: visit_text,
                seq,
                data: draft.data,
            };
            serde_json::to_vec(&event).unwrap_or_default()
        }),
    }
}

/// `evt_` and the id's 32 hex digits.
pub(crate) fn event_id(id: &[u8; 16]) -> String {
    let hex: String = id.iter().map(|b| format!("{b:02x}")).collect();
    format!("evt_{hex}")
}
