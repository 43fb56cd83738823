//! Turns str0m's periodic statistics into Prometheus metrics: deltas of the cumulative
//! per-stream counters, loss, jitter, RTT, and the selected candidate's type.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Instant;

use str0m::media::{MediaKind, Mid};
use str0m::net::Protocol;
use str0m::stats::{MediaEgressStats, MediaIngressStats, PeerStats};
use str0m::CandidateKind;

use crate::metrics::SfuMetrics;

#[derive(Default, Clone, Copy)]
struct Counters {
    packets: u64,
    bytes: u64,
    nacks: u64,
    plis: u64,
    lost: u64,
}

/// What one peer's metrics need remembered between reports.
#[derive(Default)]
pub(crate) struct PeerStatsState {
    /// When the participant joined or was admitted (setup time starts here).
    pub(crate) joined_at: Option<Instant>,
    first_media_seen: bool,
    candidate_reported: bool,
    /// The type of each candidate the client trickled, by address.
    remote_kinds: HashMap<SocketAddr, &'static str>,
    ingress: HashMap<Mid, Counters>,
    egress: HashMap<Mid, Counters>,
}

fn kind_label(kind: Option<MediaKind>) -> &'static str {
    match kind {
        Some(MediaKind::Audio) => "audio",
        _ => "video",
    }
}

fn clock_rate(kind: Option<MediaKind>) -> f64 {
    match kind {
        Some(MediaKind::Audio) => 48_000.0,
        _ => 90_000.0,
    }
}

impl PeerStatsState {
    pub(crate) fn remember_candidate(&mut self, addr: SocketAddr, kind: CandidateKind) {
        let label = match kind {
            CandidateKind::Host => "host",
            CandidateKind::ServerReflexive => "srflx",
            CandidateKind::PeerReflexive => "prflx",
            CandidateKind::Relayed => "relay",
        };
        if self.remote_kinds.len() < 64 {
            self.remote_kinds.insert(addr, label);
        }
    }

    /// The first media frame from this participant: the connection is set up.
    pub(crate) fn media_received(&mut self, now: Instant, m: &SfuMetrics) {
        if self.first_media_seen {
            return;
        }
        self.first_media_seen = true;
        if let Some(at) = self.joined_at {
            m.setup_seconds
                .observe(now.saturating_duration_since(at).as_secs_f64());
        }
    }

    pub(crate) fn peer(&mut self, s: &PeerStats, m: &SfuMetrics) {
        if let Some(rtt) = s.rtt {
            m.rtt_seconds.observe(rtt.as_secs_f64());
        }
        if self.candidate_reported {
            return;
        }
        let Some(pair) = &s.selected_candidate_pair else {
            return;
        };
        self.candidate_reported = true;
        let kind = self
            .remote_kinds
            .get(&pair.remote.addr)
            .copied()
            // An address the client never announced was learned from its checks.
            .unwrap_or("prflx");
        let transport = match pair.protocol {
            Protocol::Udp => "udp",
            _ => "tcp",
        };
        m.selected_candidates
            .with_label_values(&[kind, transport])
            .inc();
    }

    pub(crate) fn ingress(
        &mut self,
        s: &MediaIngressStats,
        kind: Option<MediaKind>,
        m: &SfuMetrics,
    ) {
        let k = kind_label(kind);
        let last = self.ingress.entry(s.mid).or_default();
        let packets = s.packets.saturating_sub(last.packets);
        m.packets.with_label_values(&["in", k]).inc_by(packets);
        m.bytes
            .with_label_values(&["in", k])
            .inc_by(s.bytes.saturating_sub(last.bytes));
        m.nacks
            .with_label_values(&["sent"])
            .inc_by(s.nacks.saturating_sub(last.nacks));
        let plis = s.plis + s.firs;
        m.plis
            .with_label_values(&["sent"])
            .inc_by(plis.saturating_sub(last.plis));
        if let Some(loss) = s.loss {
            let loss = f64::from(loss).clamp(0.0, 1.0);
            m.loss_ratio.with_label_values(&["in"]).observe(loss);
            // Lost ≈ loss × expected, expected = received / (1 - loss).
            if loss < 1.0 {
                let lost = (packets as f64 * loss / (1.0 - loss)).round() as u64;
                m.packets_lost.with_label_values(&["in"]).inc_by(lost);
            }
        }
        m.jitter_seconds
            .with_label_values(&["in"])
            .observe(f64::from(s.jitter) / clock_rate(kind));
        *last = Counters {
            packets: s.packets,
            bytes: s.bytes,
            nacks: s.nacks,
            plis,
            lost: 0,
        };
    }

    pub(crate) fn egress(&mut self, s: &MediaEgressStats, kind: Option<MediaKind>, m: &SfuMetrics) {
        let k = kind_label(kind);
        let last = self.egress.entry(s.mid).or_default();
        m.packets
            .with_label_values(&["out", k])
            .inc_by(s.packets.saturating_sub(last.packets));
        m.bytes
            .with_label_values(&["out", k])
            .inc_by(s.bytes.saturating_sub(last.bytes));
        m.nacks
            .with_label_values(&["received"])
            .inc_by(s.nacks.saturating_sub(last.nacks));
        let plis = s.plis + s.firs;
        m.plis
            .with_label_values(&["received"])
            .inc_by(plis.saturating_sub(last.plis));
        if let Some(loss) = s.loss {
            m.loss_ratio
                .with_label_values(&["out"])
                .observe(f64::from(loss).clamp(0.0, 1.0));
        }
        let mut lost = last.lost;
        if let Some(r) = &s.remote {
            m.packets_lost
                .with_label_values(&["out"])
                .inc_by(r.packets_lost.saturating_sub(last.lost));
            lost = r.packets_lost;
            m.jitter_seconds
                .with_label_values(&["out"])
                .observe(f64::from(r.jitter) / clock_rate(kind));
        }
        *last = Counters {
            packets: s.packets,
            bytes: s.bytes,
            nacks: s.nacks,
            plis,
            lost,
        };
    }
}
