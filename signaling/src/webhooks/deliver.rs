//! The deliverer: one tokio task that hands each due queue head to its endpoint, at most one
//! request in flight per (endpoint, visit) queue, so a receiver sees a visit's events in order,
//! and up to `max_in_flight` queues at once, so one slow visit or receiver never holds up the
//! rest. A failure is retried with exponential backoff and jitter ([`Policy`]) until the
//! event's retry window (`max_age_seconds`, at least a day) runs out; then it is a dead letter,
//! listed and retried by `bedside webhooks`. Store updates run on the blocking pool.
//!
//! A crash between a receiver's 2xx and the store's update delivers that event again after the
//! restart: delivery is at-least-once, and receivers de-duplicate by the event id.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use bedside_store::{Outbox, Pending};
use tokio::sync::{mpsc, watch, Notify};

use super::client::{self, Timeouts};
use super::Endpoint;
use crate::Metrics;

/// When to try again after a failure.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Policy {
    /// The delay after the first failure; each later one doubles.
    pub(crate) initial: Duration,
    /// The longest delay.
    pub(crate) max: Duration,
    /// How long after the retry window began the last attempt is made.
    pub(crate) max_age: Duration,
}

impl Policy {
    /// After `attempts` failed attempts at `now_ms`, when to try next, or `None` to give up.
    /// `jitter` in [0, 1) spreads retries over the upper half of the delay, so receivers that
    /// come back are not hit by every queue at the same instant. The last attempt falls at the
    /// end of the window, so an event is retried for the whole window.
    pub(crate) fn next_attempt(
        &self,
        now_ms: u64,
        attempts: u32,
        window_start_ms: u64,
        jitter: f64,
    ) -> Option<u64> {
        let end = window_start_ms.saturating_add(self.max_age.as_millis() as u64);
        if now_ms >= end {
            return None;
        }
        let doublings = attempts.saturating_sub(1).min(40);
        let delay = (self.initial.as_millis() as u64)
            .saturating_mul(1u64 << doublings)
            .min(self.max.as_millis() as u64);
        let jittered = delay / 2 + ((delay / 2) as f64 * jitter.clamp(0.0, 1.0)) as u64;
        Some(now_ms.saturating_add(jittered.max(1)).min(end))
    }
}

/// What the deliverer needs; built by the server at start.
pub(crate) struct Deliverer {
    pub(crate) store: Arc<dyn Outbox>,
    pub(crate) endpoints: HashMap<String, Arc<Endpoint>>,
    pub(crate) policy: Policy,
    pub(crate) timeouts: Timeouts,
    pub(crate) max_in_flight: usize,
    pub(crate) wake: Arc<Notify>,
    pub(crate) metrics: Metrics,
}

type Queue = (String, String);

/// A visit's sequence counter is kept this long after its last event (far longer than any
/// visit, so numbering never restarts within one), then forgotten.
const SEQUENCE_MEMORY: Duration = Duration::from_secs(30 * 86_400);
const PRUNE_EVERY: Duration = Duration::from_secs(3600);

/// How often the deliverer looks at the store when nothing wakes it.
const IDLE_POLL: Duration = Duration::from_secs(5);

impl Deliverer {
    /// Delivers until `stop` turns true.
    pub(crate) async fn run(self, mut stop: watch::Receiver<bool>) {
        let this = Arc::new(self);
        let mut in_flight: HashSet<Queue> = HashSet::new();
        let (done_tx, mut done_rx) = mpsc::unbounded_channel::<Queue>();
        let mut next_prune = std::time::Instant::now();
        loop {
            this.update_gauges().await;
            if std::time::Instant::now() >= next_prune {
                next_prune = std::time::Instant::now() + PRUNE_EVERY;
                let store = this.store.clone();
                let before = super::now_ms().saturating_sub(SEQUENCE_MEMORY.as_millis() as u64);
                let _ = tokio::task::spawn_blocking(move || store.prune_sequences(before)).await;
            }
            let now = super::now_ms();
            let room = this.max_in_flight.saturating_sub(in_flight.len());
            let mut due = Vec::new();
            if room > 0 {
                let store = this.store.clone();
                let skip: HashSet<Queue> = in_flight.clone();
                let known: HashSet<String> = this.endpoints.keys().cloned().collect();
                due = tokio::task::spawn_blocking(move || {
                    store.due(now, room, &|d, v| {
                        !known.contains(d) || skip.contains(&(d.to_owned(), v.to_owned()))
                    })
                })
                .await
                .ok()
                .and_then(|r| {
                    r.map_err(|e| tracing::error!(error = %e, "webhook outbox read failed"))
                        .ok()
                })
                .unwrap_or_default();
            }
            for p in due {
                let Some(endpoint) = this.endpoints.get(&p.key.destination).cloned() else {
                    continue;
                };
                let queue = (p.key.destination.clone(), p.key.visit.clone());
                in_flight.insert(queue.clone());
                let this = this.clone();
                let done = done_tx.clone();
                tokio::spawn(async move {
                    this.attempt(&endpoint, p).await;
                    let _ = done.send(queue);
                });
            }
            let next = {
                let store = this.store.clone();
                tokio::task::spawn_blocking(move || store.next_due_ms())
                    .await
                    .ok()
                    .and_then(Result::ok)
                    .flatten()
            };
            let now = super::now_ms();
            let wait = match next {
                // Due but in flight (or for an endpoint no longer configured): wait for a
                // delivery to finish, or poll.
                Some(at) if at <= now => Duration::from_secs(1),
                Some(at) => Duration::from_millis(at - now).min(IDLE_POLL),
                None => IDLE_POLL,
            };
            tokio::select! {
                Some(q) = done_rx.recv() => {
                    in_flight.remove(&q);
                    while let Ok(q) = done_rx.try_recv() {
                        in_flight.remove(&q);
                    }
                }
                _ = this.wake.notified() => {}
                _ = tokio::time::sleep(wait) => {}
                _ = stop.wait_for(|s| *s) => return,
            }
        }
    }

    async fn update_gauges(&self) {
        let store = self.store.clone();
        if let Ok(Ok(stats)) = tokio::task::spawn_blocking(move || store.stats()).await {
            self.metrics.webhook_queue_depth.set(stats.pending as i64);
            self.metrics.webhook_dead_letters.set(stats.dead as i64);
        }
    }

    /// One attempt at `p`, and the store's update for its outcome.
    async fn attempt(&self, endpoint: &Endpoint, p: Pending) {
        let id = super::writer::event_id(&p.id);
        let t = super::now_ms() / 1000;
        let headers = [
            (
                bedside_webhook::SIGNATURE_HEADER,
                bedside_webhook::sign(&endpoint.secret, t, &p.body),
            ),
            (bedside_webhook::EVENT_ID_HEADER, id),
            (bedside_webhook::EVENT_TYPE_HEADER, p.kind.clone()),
        ];
        let result = client::post(
            &endpoint.url,
            endpoint.tls.as_ref(),
            &headers,
            p.body.clone(),
            self.timeouts,
        )
        .await;
        let attempts = p.attempts.saturating_add(1);
        let now = super::now_ms();
        let store = self.store.clone();
        let key = p.key.clone();
        let (outcome, update) = match result {
            Ok(status) if (200..300).contains(&status) => ("delivered", Update::Delivered),
            failed => {
                let error = match failed {
                    Ok(status) => format!("http_{status}"),
                    Err(code) => code.to_owned(),
                };
                let jitter: f64 = rand::random();
                match self
                    .policy
                    .next_attempt(now, attempts, p.window_start_ms, jitter)
                {
                    Some(next) => ("retry", Update::Retry(next, error)),
                    None => ("dead_letter", Update::Dead(error)),
                }
            }
        };
        self.metrics
            .webhook_deliveries
            .with_label_values(&[outcome])
            .inc();
        let written = tokio::task::spawn_blocking(move || match update {
            Update::Delivered => store.delivered(&key),
            Update::Retry(next, error) => store.retry_later(&key, attempts, next, &error),
            Update::Dead(error) => store.dead_letter(&key, attempts, &error),
        })
        .await;
        if let Ok(Err(e)) = written {
            tracing::error!(error = %e, "webhook outbox update failed");
        }
    }
}

enum Update {
    Delivered,
    Retry(u64, String),
    Dead(String),
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> Policy {
        Policy {
            initial: Duration::from_secs(1),
            max: Duration::from_secs(3600),
            max_age: Duration::from_secs(86_400),
        }
    }

    #[test]
    fn delays_double_from_the_initial_up_to_the_maximum_with_jitter_in_the_upper_half() {
        let p = policy();
        let at = |attempts, jitter| p.next_attempt(0, attempts, 0, jitter).unwrap();
        assert_eq!(at(1, 0.0), 500);
        assert_eq!(at(1, 0.999_999), 999);
        assert_eq!(at(2, 0.0), 1_000);
        assert_eq!(at(4, 0.0), 4_000);
        assert_eq!(at(13, 0.0), 1_800_000, "2^12 s is over an hour: capped");
        assert_eq!(at(1_000, 0.5), 2_700_000);
    }

    #[test]
    fn an_event_is_retried_for_the_whole_window_then_given_up() {
        let p = policy();
        let day = 86_400_000;
        // Simulated time: fail every attempt, follow the schedule.
        let (mut now, mut attempts) = (0u64, 0u32);
        while let Some(next) = p.next_attempt(now, attempts + 1, 0, 0.5) {
            attempts += 1;
            assert!(next > now);
            now = next;
        }
        assert_eq!(now, day, "the last attempt is at the end of the window");
        assert!(
            (30..=50).contains(&attempts),
            "{attempts} attempts in a day"
        );
        // A retried dead letter gets a new window.
        assert!(p.next_attempt(day + 5, 1, day, 0.0).is_some());
        assert_eq!(p.next_attempt(day, 1, 0, 0.0), None);
    }
}
