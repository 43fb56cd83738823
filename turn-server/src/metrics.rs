//! Prometheus metrics. Label values come from small fixed sets (transport, direction, reason);
//! never addresses, usernames or ids. Hot-path counters are resolved once per allocation.

use prometheus::{IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry};

use crate::core::Transport;

/// All metrics of one server instance.
#[derive(Debug, Clone)]
pub struct Metrics {
    pub registry: Registry,
    allocations: IntGaugeVec,
    connections: IntGaugeVec,
    bytes: IntCounterVec,
    packets: IntCounterVec,
    auth_failures: IntCounterVec,
    policy_refusals: IntCounterVec,
    quota_refusals: IntCounterVec,
    malformed: IntCounterVec,
    pub tls_reloads: IntCounterVec,
}

/// Relayed-traffic counters for one transport and direction.
#[derive(Debug, Clone)]
pub struct Traffic {
    pub bytes: IntCounter,
    pub packets: IntCounter,
}

impl Traffic {
    pub fn add(&self, bytes: usize) {
        self.bytes.inc_by(bytes as u64);
        self.packets.inc();
    }
}

/// Direction of relayed traffic.
#[derive(Debug, Clone, Copy)]
pub enum Direction {
    ToPeer,
    ToClient,
}

fn reg<T: prometheus::core::Collector + Clone + 'static>(r: &Registry, c: T) -> T {
    r.register(Box::new(c.clone()))
        .expect("metric names are unique and valid");
    c
}

impl Metrics {
    pub fn new() -> Self {
        let r = Registry::new();
        let gv = |n: &str, h: &str, l: &[&str]| {
            reg(
                &r,
                IntGaugeVec::new(Opts::new(n, h), l).expect("valid metric"),
            )
        };
        let cv = |n: &str, h: &str, l: &[&str]| {
            reg(
                &r,
                IntCounterVec::new(Opts::new(n, h), l).expect("valid metric"),
            )
        };
        let m = Metrics {
            allocations: gv(
                "bedside_turn_allocations",
                "Live TURN allocations",
                &["transport"],
            ),
            connections: gv(
                "bedside_turn_connections",
                "Open TCP/TLS client connections",
                &["transport"],
            ),
            bytes: cv(
                "bedside_turn_relayed_bytes_total",
                "Relayed payload bytes",
                &["transport", "direction"],
            ),
            packets: cv(
                "bedside_turn_relayed_packets_total",
                "Relayed packets",
                &["transport", "direction"],
            ),
            auth_failures: cv(
                "bedside_turn_auth_failures_total",
                "Refused credentials",
                &["reason"],
            ),
            policy_refusals: cv(
                "bedside_turn_policy_refusals_total",
                "Peers refused by the peer policy",
                &["request"],
            ),
            quota_refusals: cv(
                "bedside_turn_quota_refusals_total",
                "Requests or packets refused by a limit",
                &["quota"],
            ),
            malformed: cv(
                "bedside_turn_malformed_messages_total",
                "Dropped malformed messages",
                &["transport"],
            ),
            tls_reloads: cv(
                "bedside_turn_tls_reloads_total",
                "Certificate reloads",
                &["result"],
            ),
            registry: r,
        };
        for t in Transport::ALL {
            m.allocations.with_label_values(&[t.label()]);
            m.malformed.with_label_values(&[t.label()]);
            for d in ["to_peer", "to_client"] {
                m.bytes.with_label_values(&[t.label(), d]);
                m.packets.with_label_values(&[t.label(), d]);
            }
        }
        for t in [Transport::Tcp, Transport::Tls] {
            m.connections.with_label_values(&[t.label()]);
        }
        m
    }

    pub fn traffic(&self, t: Transport, d: Direction) -> Traffic {
        let d = match d {
            Direction::ToPeer => "to_peer",
            Direction::ToClient => "to_client",
        };
        Traffic {
            bytes: self.bytes.with_label_values(&[t.label(), d]),
            packets: self.packets.with_label_values(&[t.label(), d]),
        }
    }

    pub fn allocations(&self, t: Transport) -> IntGauge {
        self.allocations.with_label_values(&[t.label()])
    }

    pub fn connections(&self, t: Transport) -> IntGauge {
        self.connections.with_label_values(&[t.label()])
    }

    pub fn auth_failure(&self, reason: &'static str) {
        self.auth_failures.with_label_values(&[reason]).inc();
    }

    pub fn policy_refusal(&self, request: &'static str) {
        self.policy_refusals.with_label_values(&[request]).inc();
    }

    pub fn quota_refusal(&self, quota: &'static str) {
        self.quota_refusals.with_label_values(&[quota]).inc();
    }

    pub fn malformed(&self, t: Transport) {
        self.malformed.with_label_values(&[t.label()]).inc();
    }

    /// Text exposition of all metrics.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let enc = prometheus::TextEncoder::new();
        if enc.encode_utf8(&self.registry.gather(), &mut out).is_err() {
            out.clear();
        }
        out
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}
