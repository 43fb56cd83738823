//! Opus to PCM with honest timing: each received frame is decoded at 48 kHz mono, and gaps in
//! the RTP clock (loss, or the sender's discontinuous transmission during silence) become
//! concealment or silence, so a minute of visit is a minute of WAV.

use crate::wav::{push_pcm, push_silence, SAMPLE_RATE};

/// Longest gap filled with silence: a longer jump in RTP time (a sender that restarted its
/// clock, or a track paused for minutes) is filled with this much and then followed on.
pub const MAX_GAP_SAMPLES: u32 = 5 * SAMPLE_RATE;
/// A frame this far or less behind the stream is late (reordered or duplicated) and dropped;
/// further behind, the sender's clock went back and the stream resynchronises on it.
pub const MAX_LATE_SAMPLES: u32 = SAMPLE_RATE;
/// Longest Opus frame (120 ms) and the longest gap given to the decoder's loss concealment
/// (with in-band FEC from the next packet) instead of silence.
pub const MAX_FRAME_SAMPLES: usize = 5_760;
/// libopus conceals in steps of 2.5 ms.
const CONCEAL_STEP: u32 = 120;

/// What to do with a frame at RTP time `ts` when the stream has reached `expected`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FramePlan {
    /// Write `gap` samples of filler (concealment or silence), then the frame.
    Play { gap: u32 },
    /// Late or duplicated: drop it.
    Late,
}

/// Plans one frame. RTP time is 32 bits and wraps; the difference is read as signed.
pub fn plan_frame(expected: Option<u32>, ts: u32) -> FramePlan {
    let Some(expected) = expected else {
        return FramePlan::Play { gap: 0 };
    };
    let delta = ts.wrapping_sub(expected) as i32;
    if delta >= 0 {
        FramePlan::Play {
            gap: delta.unsigned_abs().min(MAX_GAP_SAMPLES),
        }
    } else if delta.unsigned_abs() <= MAX_LATE_SAMPLES {
        FramePlan::Late
    } else {
        FramePlan::Play { gap: 0 }
    }
}

/// Counters of what the decoder did, for logs and tests.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct AudioStats {
    pub frames: u64,
    pub late: u64,
    pub undecodable: u64,
    pub concealed_samples: u64,
    pub silence_samples: u64,
}

/// Decodes one Opus track into PCM bytes.
pub struct OpusToPcm {
    decoder: opus::Decoder,
    /// RTP time the stream has reached (the next expected frame's time).
    expected: Option<u32>,
    buf: Vec<i16>,
    pub stats: AudioStats,
}

impl std::fmt::Debug for OpusToPcm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpusToPcm")
            .field("expected", &self.expected)
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

impl OpusToPcm {
    pub fn new() -> Result<OpusToPcm, opus::Error> {
        Ok(OpusToPcm {
            decoder: opus::Decoder::new(SAMPLE_RATE, opus::Channels::Mono)?,
            expected: None,
            buf: vec![0; MAX_FRAME_SAMPLES],
            stats: AudioStats::default(),
        })
    }

    /// Decodes the frame `packet` with RTP time `ts` (48 kHz clock), appending filler for any
    /// gap before it and then its samples to `out` as PCM bytes. A packet that does not decode
    /// is counted and skipped (the next one fills its place).
    pub fn push(&mut self, ts: u32, packet: &[u8], out: &mut Vec<u8>) {
        if packet.is_empty() {
            // An empty payload would ask libopus for concealment, not decode anything.
            self.stats.undecodable += 1;
            return;
        }
        let gap = match plan_frame(self.expected, ts) {
            FramePlan::Late => {
                self.stats.late += 1;
                return;
            }
            FramePlan::Play { gap } => gap,
        };
        if gap > 0 {
            self.fill(gap, packet, out);
        }
        match self.decoder.decode(packet, &mut self.buf, false) {
            Ok(n) => {
                let n = n.min(self.buf.len());
                push_pcm(&self.buf[..n], out);
                self.stats.frames += 1;
                self.expected = Some(ts.wrapping_add(n as u32));
            }
            Err(_) => {
                self.stats.undecodable += 1;
                // Time still moved on by at least the gap we filled.
                self.expected = Some(ts);
            }
        }
    }

    /// Short gaps (up to one long frame, in 2.5 ms steps) are concealed by the decoder, using
    /// the in-band FEC of the packet after the gap where there is some; longer ones (DTX) are
    /// silence.
    fn fill(&mut self, gap: u32, next: &[u8], out: &mut Vec<u8>) {
        let len = gap as usize;
        if len <= MAX_FRAME_SAMPLES && gap.is_multiple_of(CONCEAL_STEP) {
            if let Ok(n) = self.decoder.decode(next, &mut self.buf[..len], true) {
                if n == len {
                    push_pcm(&self.buf[..n], out);
                    self.stats.concealed_samples += u64::from(gap);
                    return;
                }
            }
        }
        push_silence(len, out);
        self.stats.silence_samples += u64::from(gap);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plans_gaps_late_frames_and_resyncs() {
        assert_eq!(plan_frame(None, 12345), FramePlan::Play { gap: 0 });
        assert_eq!(plan_frame(Some(960), 960), FramePlan::Play { gap: 0 });
        assert_eq!(plan_frame(Some(960), 1920), FramePlan::Play { gap: 960 });
        // DTX: 400 ms without packets.
        assert_eq!(plan_frame(Some(0), 19_200), FramePlan::Play { gap: 19_200 });
        // Capped at 5 s.
        assert_eq!(
            plan_frame(Some(0), 48_000 * 60),
            FramePlan::Play {
                gap: MAX_GAP_SAMPLES
            }
        );
        // Across the 32-bit wrap.
        assert_eq!(
            plan_frame(Some(u32::MAX - 479), 480),
            FramePlan::Play { gap: 960 }
        );
        // Reordered or duplicated.
        assert_eq!(plan_frame(Some(1920), 960), FramePlan::Late);
        // The sender's clock jumped back: follow it.
        assert_eq!(plan_frame(Some(10 * 48_000), 0), FramePlan::Play { gap: 0 });
    }

    fn encoder() -> opus::Encoder {
        opus::Encoder::new(48_000, opus::Channels::Mono, opus::Application::Voip).unwrap()
    }

    fn frame(enc: &mut opus::Encoder, i: usize) -> Vec<u8> {
        let pcm: Vec<i16> = (0..960)
            .map(|k| {
                let t = (i * 960 + k) as f64 / 48_000.0;
                ((t * 440.0 * std::f64::consts::TAU).sin() * 8000.0) as i16
            })
            .collect();
        enc.encode_vec(&pcm, 4000).unwrap()
    }

    #[test]
    fn loss_and_dtx_keep_the_duration() {
        let mut enc = encoder();
        let mut dec = OpusToPcm::new().unwrap();
        let mut out = Vec::new();
        let base = 4_000_000_000u32; // wraps during the test
        for i in 0..100usize {
            let packet = frame(&mut enc, i);
            // Frame 10 lost, frames 50..70 not sent (DTX), frame 80 delivered twice.
            if i == 10 || (50..70).contains(&i) {
                continue;
            }
            dec.push(base.wrapping_add(i as u32 * 960), &packet, &mut out);
            if i == 80 {
                dec.push(base.wrapping_add(i as u32 * 960), &packet, &mut out);
            }
        }
        assert_eq!(out.len(), 100 * 960 * 2, "2 s of audio, gaps filled");
        assert_eq!(dec.stats.late, 1);
        assert_eq!(dec.stats.concealed_samples, 960);
        assert_eq!(dec.stats.silence_samples, 20 * 960);
    }

    #[test]
    fn garbage_is_skipped_without_panic() {
        let mut dec = OpusToPcm::new().unwrap();
        let mut out = Vec::new();
        for (i, p) in [
            &[][..],
            &[0xff; 3][..],
            &[0xfc, 0xff, 0xff][..],
            &[7u8; 1500][..],
        ]
        .iter()
        .enumerate()
        {
            dec.push(i as u32 * 960, p, &mut out);
        }
        assert!(out.len() <= 4 * MAX_FRAME_SAMPLES * 2 + MAX_GAP_SAMPLES as usize * 2);
    }
}
