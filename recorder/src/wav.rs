//! WAV output of decoded audio: 48 kHz, mono, signed 16-bit little-endian PCM.
//!
//! The stream is written front to back through an encrypting writer that cannot seek, so the
//! header carries zero sizes; `export` fixes them from the real length (see [`crate::fixup`]).

use std::io::Cursor;

/// Sample rate of every recorded WAV file (Opus always decodes to 48 kHz here).
pub const SAMPLE_RATE: u32 = 48_000;
/// Length of the canonical PCM header that [`wav_header`] produces.
pub const WAV_HEADER_LEN: usize = 44;

/// The 44-byte header of a 48 kHz mono 16-bit WAV file with no samples (RIFF size 36, data
/// size 0), as `hound` writes it.
pub fn wav_header() -> Vec<u8> {
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: SAMPLE_RATE,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut cursor = Cursor::new(Vec::with_capacity(WAV_HEADER_LEN));
    let writer = hound::WavWriter::new(&mut cursor, spec)
        .expect("hound writes a PCM header into memory, which cannot fail");
    writer
        .finalize()
        .expect("finalizing an empty WAV in memory cannot fail");
    cursor.into_inner()
}

/// Appends `samples` to `out` as little-endian 16-bit PCM.
pub fn push_pcm(samples: &[i16], out: &mut Vec<u8>) {
    out.reserve(samples.len() * 2);
    for s in samples {
        out.extend_from_slice(&s.to_le_bytes());
    }
}

/// Appends `count` samples of silence to `out`.
pub fn push_silence(count: usize, out: &mut Vec<u8>) {
    out.resize(out.len() + count * 2, 0);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_is_44_bytes_of_mono_48k_pcm() {
        let h = wav_header();
        assert_eq!(h.len(), WAV_HEADER_LEN);
        assert_eq!(&h[0..4], b"RIFF");
        assert_eq!(&h[8..16], b"WAVEfmt ");
        assert_eq!(&h[36..40], b"data");
        assert_eq!(u32::from_le_bytes(h[40..44].try_into().unwrap()), 0);
        let reader = hound::WavReader::new(Cursor::new(h)).unwrap();
        assert_eq!(reader.spec().sample_rate, 48_000);
        assert_eq!(reader.spec().channels, 1);
        assert_eq!(reader.spec().bits_per_sample, 16);
    }

    #[test]
    fn pcm_is_little_endian() {
        let mut out = Vec::new();
        push_pcm(&[1, -2], &mut out);
        push_silence(1, &mut out);
        assert_eq!(out, [1, 0, 0xfe, 0xff, 0, 0]);
    }
}
