use prometheus::{
    Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, Opts, Registry,
};

/// The media engine's metrics (base units, label values from fixed sets, never visit or
/// participant ids, which would be unbounded and identifying).
#[derive(Clone, Debug)]
pub struct SfuMetrics {
    /// Datagrams dropped on the media port, by reason (`malformed`, `unmatched`, `rejected`,
    /// `send_full`).
    pub dropped_datagrams: IntCounterVec,
    /// Datagrams received on the media port.
    pub received_datagrams: IntCounter,
    /// Media frames forwarded to a subscriber, by kind (`audio`, `video`).
    pub forwarded_frames: IntCounterVec,
    /// Payload bytes of the frames forwarded, by kind.
    pub forwarded_bytes: IntCounterVec,
    /// Peers ended by an internal error of the media engine (a caught panic).
    pub peer_panics: IntCounter,
    /// Media peers now.
    pub peers: IntGauge,
    /// ICE/DTLS connection attempts by outcome (`connected`, `failed`, `abandoned`).
    pub ice_attempts: IntCounterVec,
    /// Connected peers by the type of the client's selected candidate (`host`, `srflx`,
    /// `prflx`, `relay`) and transport (`udp`, `tcp`): the relay share is `relay` / all.
    pub selected_candidates: IntCounterVec,
    /// From join (or admission) to the first media received from the participant.
    pub setup_seconds: Histogram,
    /// RTP packets by direction (`in` from clients, `out` to clients) and kind.
    pub packets: IntCounterVec,
    /// RTP bytes by direction and kind.
    pub bytes: IntCounterVec,
    /// Packets lost, by direction: `out` from receivers' reports, `in` estimated from the
    /// loss fraction of our own reports.
    pub packets_lost: IntCounterVec,
    /// Fraction of packets lost per stream and report interval, by direction.
    pub loss_ratio: HistogramVec,
    /// Interarrival jitter per stream, by direction.
    pub jitter_seconds: HistogramVec,
    /// Round-trip time to clients.
    pub rtt_seconds: Histogram,
    /// NACKs by direction (`sent` to publishers, `received` from subscribers).
    pub nacks: IntCounterVec,
    /// PLIs (and FIRs) by direction.
    pub plis: IntCounterVec,
}

impl SfuMetrics {
    /// Creates the metrics and registers them in `registry`.
    pub fn new(registry: &Registry) -> prometheus::Result<Self> {
        let counter = |name: &str, help: &str, labels: &[&str]| {
            IntCounterVec::new(Opts::new(name, help), labels)
        };
        let m = SfuMetrics {
            dropped_datagrams: counter(
                "bedside_media_dropped_datagrams_total",
                "Datagrams dropped on the media port, by reason",
                &["reason"],
            )?,
            received_datagrams: IntCounter::new(
                "bedside_media_received_datagrams_total",
                "Datagrams received on the media port",
            )?,
            forwarded_frames: counter(
                "bedside_media_forwarded_frames_total",
                "Media frames forwarded to subscribers, by kind",
                &["kind"],
            )?,
            forwarded_bytes: counter(
                "bedside_media_forwarded_bytes_total",
                "Payload bytes forwarded to subscribers, by kind",
                &["kind"],
            )?,
            peer_panics: IntCounter::new(
                "bedside_media_peer_panics_total",
                "Media peers ended by an internal error of the media engine",
            )?,
            peers: IntGauge::new("bedside_media_peers", "Media peers now")?,
            ice_attempts: counter(
                "bedside_ice_attempts_total",
                "ICE/DTLS connection attempts by outcome",
                &["outcome"],
            )?,
            selected_candidates: counter(
                "bedside_ice_selected_candidates_total",
                "Connections by the client's selected candidate type and transport",
                &["type", "transport"],
            )?,
            setup_seconds: Histogram::with_opts(
                HistogramOpts::new(
                    "bedside_connection_setup_seconds",
                    "Join (or admission) to first media received",
                )
                .buckets(vec![0.25, 0.5, 1.0, 1.5, 2.0, 3.0, 5.0, 8.0, 13.0, 21.0]),
            )?,
            packets: counter(
                "bedside_media_packets_total",
                "RTP packets by direction and kind",
                &["direction", "kind"],
            )?,
            bytes: counter(
                "bedside_media_bytes_total",
                "RTP bytes by direction and kind",
                &["direction", "kind"],
            )?,
            packets_lost: counter(
                "bedside_media_packets_lost_total",
                "RTP packets lost, by direction",
                &["direction"],
            )?,
            loss_ratio: HistogramVec::new(
                HistogramOpts::new(
                    "bedside_media_loss_ratio",
                    "Fraction of packets lost per stream and report interval",
                )
                .buckets(vec![0.0, 0.001, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5]),
                &["direction"],
            )?,
            jitter_seconds: HistogramVec::new(
                HistogramOpts::new(
                    "bedside_media_jitter_seconds",
                    "Interarrival jitter per stream",
                )
                .buckets(vec![0.001, 0.005, 0.01, 0.02, 0.03, 0.05, 0.1, 0.2]),
                &["direction"],
            )?,
            rtt_seconds: Histogram::with_opts(
                HistogramOpts::new("bedside_media_rtt_seconds", "Round-trip time to clients")
                    .buckets(vec![0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.4, 1.0]),
            )?,
            nacks: counter(
                "bedside_media_nacks_total",
                "NACKs by direction",
                &["direction"],
            )?,
            plis: counter(
                "bedside_media_plis_total",
                "Keyframe requests (PLI and FIR) by direction",
                &["direction"],
            )?,
        };
        registry.register(Box::new(m.dropped_datagrams.clone()))?;
        registry.register(Box::new(m.received_datagrams.clone()))?;
        registry.register(Box::new(m.forwarded_frames.clone()))?;
        registry.register(Box::new(m.forwarded_bytes.clone()))?;
        registry.register(Box::new(m.peer_panics.clone()))?;
        registry.register(Box::new(m.peers.clone()))?;
        registry.register(Box::new(m.ice_attempts.clone()))?;
        registry.register(Box::new(m.selected_candidates.clone()))?;
        registry.register(Box::new(m.setup_seconds.clone()))?;
        registry.register(Box::new(m.packets.clone()))?;
        registry.register(Box::new(m.bytes.clone()))?;
        registry.register(Box::new(m.packets_lost.clone()))?;
        registry.register(Box::new(m.loss_ratio.clone()))?;
        registry.register(Box::new(m.jitter_seconds.clone()))?;
        registry.register(Box::new(m.rtt_seconds.clone()))?;
        registry.register(Box::new(m.nacks.clone()))?;
        registry.register(Box::new(m.plis.clone()))?;
        // Label sets that exist from the start, so dashboards and alerts never see gaps.
        for o in ["connected", "failed", "abandoned"] {
            m.ice_attempts.with_label_values(&[o]);
        }
        for d in ["in", "out"] {
            m.packets_lost.with_label_values(&[d]);
            for k in ["audio", "video"] {
                m.packets.with_label_values(&[d, k]);
                m.bytes.with_label_values(&[d, k]);
            }
        }
        for d in ["sent", "received"] {
            m.nacks.with_label_values(&[d]);
            m.plis.with_label_values(&[d]);
        }
        for t in ["host", "srflx", "prflx", "relay"] {
            m.selected_candidates.with_label_values(&[t, "udp"]);
        }
        for k in ["audio", "video"] {
            m.forwarded_frames.with_label_values(&[k]);
            m.forwarded_bytes.with_label_values(&[k]);
        }
        Ok(m)
    }

    /// Metrics registered nowhere, for tests and embedding.
    pub fn unregistered() -> Self {
        Self::new(&Registry::new()).expect("fresh registry has no name clashes")
    }
}
