//! The measurement math, free of I/O: the probe header every synthetic frame carries, loss
//! counting that tolerates reordering and duplicates, and delay percentiles.

use std::collections::HashSet;

/// Every synthetic frame starts with this header; the rest is filler.
///
/// Layout (big endian): `b"BDLD"`, track (u32), frame sequence (u32), send time in
/// microseconds since the load generator's epoch (u64). The first byte, `B` (0x42), has its low
/// bit clear, which VP8 reads as "keyframe": every synthetic video frame is independently
/// "decodable", so a subscriber never waits for a keyframe.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Probe {
    pub track: u32,
    pub seq: u32,
    pub send_us: u64,
}

const MAGIC: &[u8; 4] = b"BDLD";

impl Probe {
    /// The header's length: payloads must be at least this long.
    pub const LEN: usize = 20;

    /// A payload of `len` bytes (at least [`Probe::LEN`]) starting with this header.
    pub fn encode(&self, len: usize) -> Vec<u8> {
        let mut out = Vec::with_capacity(len.max(Self::LEN));
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&self.track.to_be_bytes());
        out.extend_from_slice(&self.seq.to_be_bytes());
        out.extend_from_slice(&self.send_us.to_be_bytes());
        // Filler that is not all zeros, so nothing along the way can compress or elide it.
        out.extend((Self::LEN..len).map(|i| (i as u8).wrapping_mul(31) | 1));
        out
    }

    /// Reads the header of a received frame; `None` for anything else.
    pub fn decode(data: &[u8]) -> Option<Probe> {
        if data.len() < Self::LEN || &data[..4] != MAGIC {
            return None;
        }
        let u32_at =
            |i: usize| u32::from_be_bytes([data[i], data[i + 1], data[i + 2], data[i + 3]]);
        let mut t = [0u8; 8];
        t.copy_from_slice(&data[12..20]);
        Some(Probe {
            track: u32_at(4),
            seq: u32_at(8),
            send_us: u64::from_be_bytes(t),
        })
    }
}

/// The frame sequences one receiver got of one track inside the measured window. Duplicates
/// count once, order does not matter.
#[derive(Debug, Default, Clone)]
pub struct SeqSet {
    seen: HashSet<u32>,
    duplicates: u64,
}

impl SeqSet {
    pub fn insert(&mut self, seq: u32) {
        if !self.seen.insert(seq) {
            self.duplicates += 1;
        }
    }

    /// Distinct frames received.
    pub fn unique(&self) -> u64 {
        self.seen.len() as u64
    }

    pub fn duplicates(&self) -> u64 {
        self.duplicates
    }
}

/// The share of `expected` frames that never arrived (0.0 to 1.0). More received than expected
/// (a frame sent just before the window edge) is no loss.
pub fn loss_fraction(expected: u64, received_unique: u64) -> f64 {
    if expected == 0 {
        return 0.0;
    }
    expected.saturating_sub(received_unique) as f64 / expected as f64
}

/// Nearest-rank percentile (`p` in 0..=100) of unsorted samples; `None` when there are none.
pub fn percentile(samples: &mut [u32], p: f64) -> Option<u32> {
    if samples.is_empty() {
        return None;
    }
    samples.sort_unstable();
    let rank = ((p / 100.0) * samples.len() as f64).ceil() as usize;
    Some(samples[rank.clamp(1, samples.len()) - 1])
}

/// Summary of a delay sample, in microseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize)]
pub struct DelaySummary {
    pub samples: usize,
    pub p50_us: u32,
    pub p90_us: u32,
    pub p99_us: u32,
    pub max_us: u32,
}

impl DelaySummary {
    pub fn of(samples: &mut [u32]) -> DelaySummary {
        DelaySummary {
            samples: samples.len(),
            p50_us: percentile(samples, 50.0).unwrap_or(0),
            p90_us: percentile(samples, 90.0).unwrap_or(0),
            p99_us: percentile(samples, 99.0).unwrap_or(0),
            max_us: percentile(samples, 100.0).unwrap_or(0),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_probe_survives_encoding_at_any_payload_size() {
        let p = Probe {
            track: 7,
            seq: u32::MAX - 1,
            send_us: 0x0102_0304_0506_0708,
        };
        for len in [0, Probe::LEN, 100, 1200, 5000] {
            let bytes = p.encode(len);
            assert_eq!(bytes.len(), len.max(Probe::LEN));
            assert_eq!(Probe::decode(&bytes), Some(p));
        }
        // VP8 sees a keyframe: the low bit of the first byte is clear.
        assert_eq!(p.encode(100)[0] & 1, 0);
    }

    #[test]
    fn foreign_or_short_payloads_are_not_probes() {
        assert_eq!(Probe::decode(b""), None);
        assert_eq!(Probe::decode(&[0u8; 40]), None);
        let bytes = Probe {
            track: 1,
            seq: 2,
            send_us: 3,
        }
        .encode(40);
        assert_eq!(Probe::decode(&bytes[..Probe::LEN - 1]), None);
    }

    #[test]
    fn loss_ignores_reordering_and_counts_duplicates_once() {
        let mut s = SeqSet::default();
        for seq in [5, 3, 4, 1, 2, 2, 5, 7, 6, 9, 8] {
            s.insert(seq);
        }
        // 1..=10 sent, 10 missing.
        assert_eq!(s.unique(), 9);
        assert_eq!(s.duplicates(), 2);
        assert!((loss_fraction(10, s.unique()) - 0.1).abs() < 1e-12);
    }

    #[test]
    fn loss_is_zero_when_nothing_was_expected_or_more_arrived() {
        assert_eq!(loss_fraction(0, 0), 0.0);
        assert_eq!(loss_fraction(0, 5), 0.0);
        assert_eq!(loss_fraction(10, 11), 0.0);
        assert_eq!(loss_fraction(4, 0), 1.0);
    }

    #[test]
    fn percentiles_use_the_nearest_rank() {
        let mut v: Vec<u32> = (1..=100).rev().collect();
        assert_eq!(percentile(&mut v, 50.0), Some(50));
        assert_eq!(percentile(&mut v, 99.0), Some(99));
        assert_eq!(percentile(&mut v, 100.0), Some(100));
        assert_eq!(percentile(&mut v, 0.0), Some(1));
        assert_eq!(percentile(&mut [42], 99.0), Some(42));
        assert_eq!(percentile(&mut [], 50.0), None);
        let mut three = vec![30, 10, 20];
        assert_eq!(percentile(&mut three, 50.0), Some(20));
        let s = DelaySummary::of(&mut three);
        assert_eq!((s.samples, s.p50_us, s.max_us), (3, 20, 30));
    }
}
