use prometheus::{IntCounter, IntCounterVec, IntGauge, Opts, Registry};

/// The media engine's counters (STYLE.md 11: fixed label values, no ids).
#[derive(Clone, Debug)]
pub struct SfuMetrics {
    /// Datagrams dropped on the media port, by reason (`malformed`, `unmatched`, `rejected`).
    pub dropped_datagrams: IntCounterVec,
    /// Datagrams received on the media port.
    pub received_datagrams: IntCounter,
    /// Media frames forwarded to a subscriber, by kind (`audio`, `video`).
    pub forwarded_frames: IntCounterVec,
    /// Peers ended by an internal error of the media engine (a caught panic).
    pub peer_panics: IntCounter,
    /// Media peers connected now.
    pub peers: IntGauge,
}

impl SfuMetrics {
    /// Creates the metrics and registers them in `registry`.
    pub fn new(registry: &Registry) -> prometheus::Result<Self> {
        let m = SfuMetrics {
            dropped_datagrams: IntCounterVec::new(
                Opts::new(
                    "bedside_media_dropped_datagrams_total",
                    "Datagrams dropped on the media port, by reason",
                ),
                &["reason"],
            )?,
            received_datagrams: IntCounter::new(
                "bedside_media_received_datagrams_total",
                "Datagrams received on the media port",
            )?,
            forwarded_frames: IntCounterVec::new(
                Opts::new(
                    "bedside_media_forwarded_frames_total",
                    "Media frames forwarded to subscribers, by kind",
                ),
                &["kind"],
            )?,
            peer_panics: IntCounter::new(
                "bedside_media_peer_panics_total",
                "Media peers ended by an internal error of the media engine",
            )?,
            peers: IntGauge::new("bedside_media_peers", "Media peers now")?,
        };
        registry.register(Box::new(m.dropped_datagrams.clone()))?;
        registry.register(Box::new(m.received_datagrams.clone()))?;
        registry.register(Box::new(m.forwarded_frames.clone()))?;
        registry.register(Box::new(m.peer_panics.clone()))?;
        registry.register(Box::new(m.peers.clone()))?;
        Ok(m)
    }

    /// Metrics registered nowhere, for tests and embedding.
    pub fn unregistered() -> Self {
        Self::new(&Registry::new()).expect("fresh registry has no name clashes")
    }
}
