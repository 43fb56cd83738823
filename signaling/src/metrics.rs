use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry, TextEncoder,
};

/// Signaling metrics (base units, label values from fixed sets, never ids). The media engine
/// registers its own in the same registry.
#[derive(Clone)]
pub struct Metrics {
    pub registry: Registry,
    /// Signaling errors sent to clients, by stable error code.
    pub errors: IntCounterVec,
    /// Join attempts by outcome (`ok`, `refused`).
    pub joins: IntCounterVec,
    /// Open signaling sessions that have joined a visit.
    pub sessions: IntGauge,
    /// Visits with at least one participant.
    pub visits: IntGauge,
    /// Participants in waiting rooms now.
    pub waiting: IntGauge,
    /// Joined sessions by role (waiting or admitted).
    pub participants: IntGaugeVec,
    /// Time from a `join` message to the `joined` answer.
    pub join_seconds: Histogram,
    /// Time spent in the waiting room, by how the wait ended.
    pub wait_seconds: HistogramVec,
    /// Consent decisions about recordings (`accepted`, `declined`, `withdrawn`).
    pub recording_consents: IntCounterVec,
    /// Requests for a recorder agent, by outcome (`sent`, `no_agent`).
    pub recorder_dispatches: IntCounterVec,
    /// Recorder agents connected on `/v1/recorder` now.
    pub recorder_agents: IntGauge,
    /// Open connections of the public listeners, from accept to close (WebSockets included).
    pub http_connections: IntGauge,
    /// Connections closed at accept because a cap was reached (`per_address`, `total`).
    pub http_refused: IntCounterVec,
    /// Connections closed for being too slow (`tls_handshake`, `header`, `idle`).
    pub http_timed_out: IntCounterVec,
    /// Webhook delivery attempts by outcome (`delivered`, `retry`, `dead_letter`).
    pub webhook_deliveries: IntCounterVec,
    /// Webhook events waiting for delivery (all endpoints).
    pub webhook_queue_depth: IntGauge,
    /// Webhook events given up on, until `bedside webhooks retry`.
    pub webhook_dead_letters: IntGauge,
    /// Webhook events not queued, by reason (`channel_full`, `queue_full`, `store_full`,
    /// `too_large`, `store_error`).
    pub webhook_dropped: IntCounterVec,
}

impl Metrics {
    pub fn new() -> Self {
        let registry = Registry::new();
        let errors = IntCounterVec::new(
            Opts::new(
                "bedside_signaling_errors_total",
                "Signaling errors sent to clients, by error code",
            ),
            &["code"],
        )
        .expect("static metric definition is valid");
        let joins = IntCounterVec::new(
            Opts::new("bedside_signaling_joins_total", "Join attempts by outcome"),
            &["outcome"],
        )
        .expect("static metric definition is valid");
        let sessions = IntGauge::new(
            "bedside_signaling_sessions",
            "Signaling sessions joined to a visit",
        )
        .expect("static metric definition is valid");
        let visits = IntGauge::new("bedside_visits", "Visits with at least one participant")
            .expect("static metric definition is valid");
        let waiting = IntGauge::new(
            "bedside_waiting_participants",
            "Participants in waiting rooms now",
        )
        .expect("static metric definition is valid");
        let participants = IntGaugeVec::new(
            Opts::new("bedside_participants", "Joined sessions by role"),
            &["role"],
        )
        .expect("static metric definition is valid");
        let join_seconds = Histogram::with_opts(
            HistogramOpts::new(
                "bedside_signaling_join_seconds",
                "Time from a join message to the joined answer",
            )
            .buckets(vec![0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5]),
        )
        .expect("static metric definition is valid");
        let wait_seconds = HistogramVec::new(
            HistogramOpts::new(
                "bedside_wait_seconds",
                "Time spent in the waiting room, by how the wait ended",
            )
            .buckets(vec![
                5.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1200.0, 3600.0,
            ]),
            &["outcome"],
        )
        .expect("static metric definition is valid");
        let recording_consents = IntCounterVec::new(
            Opts::new(
                "bedside_recording_consents_total",
                "Consent decisions about recordings",
            ),
            &["decision"],
        )
        .expect("static metric definition is valid");
        let recorder_dispatches = IntCounterVec::new(
            Opts::new(
                "bedside_recorder_dispatches_total",
                "Requests for a recorder agent to join a visit, by outcome",
            ),
            &["outcome"],
        )
        .expect("static metric definition is valid");
        let recorder_agents = IntGauge::new(
            "bedside_recorder_agents",
            "Recorder agents connected on /v1/recorder",
        )
        .expect("static metric definition is valid");
        let http_connections = IntGauge::new(
            "bedside_http_connections",
            "Open connections of the public listeners, WebSockets included",
        )
        .expect("static metric definition is valid");
        let http_refused = IntCounterVec::new(
            Opts::new(
                "bedside_http_connections_refused_total",
                "Connections closed at accept because a connection cap was reached",
            ),
            &["reason"],
        )
        .expect("static metric definition is valid");
        let http_timed_out = IntCounterVec::new(
            Opts::new(
                "bedside_http_connections_timed_out_total",
                "Connections closed because the client was too slow, by phase",
            ),
            &["phase"],
        )
        .expect("static metric definition is valid");
        let webhook_deliveries = IntCounterVec::new(
            Opts::new(
                "bedside_webhook_deliveries_total",
                "Webhook delivery attempts by outcome",
            ),
            &["outcome"],
        )
        .expect("static metric definition is valid");
        let webhook_queue_depth = IntGauge::new(
            "bedside_webhook_queue_depth",
            "Webhook events waiting for delivery",
        )
        .expect("static metric definition is valid");
        let webhook_dead_letters = IntGauge::new(
            "bedside_webhook_dead_letters",
            "Webhook events given up on (bedside webhooks retry puts them back)",
        )
        .expect("static metric definition is valid");
        let webhook_dropped = IntCounterVec::new(
            Opts::new(
                "bedside_webhook_events_dropped_total",
                "Webhook events not queued, by reason",
            ),
            &["reason"],
        )
        .expect("static metric definition is valid");
        for o in ["delivered", "retry", "dead_letter"] {
            webhook_deliveries.with_label_values(&[o]);
        }
        for r in [
            "channel_full",
            "queue_full",
            "store_full",
            "too_large",
            "store_error",
        ] {
            webhook_dropped.with_label_values(&[r]);
        }
        for r in ["per_address", "total"] {
            http_refused.with_label_values(&[r]);
        }
        for p in ["tls_handshake", "header", "idle"] {
            http_timed_out.with_label_values(&[p]);
        }
        for d in ["accepted", "declined", "withdrawn"] {
            recording_consents.with_label_values(&[d]);
        }
        for o in ["sent", "no_agent"] {
            recorder_dispatches.with_label_values(&[o]);
        }
        for code in bedside_proto::ErrorCode::ALL {
            errors.with_label_values(&[code.as_str()]);
        }
        for outcome in ["ok", "refused"] {
            joins.with_label_values(&[outcome]);
        }
        for role in bedside_proto::Role::ALL {
            participants.with_label_values(&[role.as_str()]);
        }
        for o in ["admitted", "denied", "left", "timeout", "removed", "ended"] {
            wait_seconds.with_label_values(&[o]);
        }
        for c in [
            Box::new(participants.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(join_seconds.clone()),
            Box::new(wait_seconds.clone()),
            Box::new(errors.clone()),
            Box::new(joins.clone()),
            Box::new(sessions.clone()),
            Box::new(visits.clone()),
            Box::new(waiting.clone()),
            Box::new(recording_consents.clone()),
            Box::new(recorder_dispatches.clone()),
            Box::new(recorder_agents.clone()),
            Box::new(http_connections.clone()),
            Box::new(http_refused.clone()),
            Box::new(http_timed_out.clone()),
            Box::new(webhook_deliveries.clone()),
            Box::new(webhook_queue_depth.clone()),
            Box::new(webhook_dead_letters.clone()),
            Box::new(webhook_dropped.clone()),
        ] {
            registry
                .register(c)
                .expect("each metric is registered once in a fresh registry");
        }
        Metrics {
            registry,
            errors,
            joins,
            sessions,
            visits,
            waiting,
            participants,
            join_seconds,
            wait_seconds,
            recording_consents,
            recorder_dispatches,
            recorder_agents,
            http_connections,
            http_refused,
            http_timed_out,
            webhook_deliveries,
            webhook_queue_depth,
            webhook_dead_letters,
            webhook_dropped,
        }
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        let mut buf = Vec::new();
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut buf);
        String::from_utf8(buf).unwrap_or_default()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}
