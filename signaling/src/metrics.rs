use prometheus::{Encoder, IntCounterVec, IntGauge, Opts, Registry, TextEncoder};

/// Signaling metrics (STYLE.md 11). The media engine registers its own in the same registry.
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
        for c in [
            Box::new(errors.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(joins.clone()),
            Box::new(sessions.clone()),
            Box::new(visits.clone()),
            Box::new(waiting.clone()),
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
