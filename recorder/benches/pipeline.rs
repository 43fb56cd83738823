//! Recorder cost per recorded participant-minute: 60 s of Opus (a tone, pre-encoded) decoded
//! to WAV and encrypted into a recording, and 60 s of VP8 at 30 fps (~4 KB frames) written as
//! IVF and encrypted. Both go through `Capture`, the same code a session drives, into a
//! temporary directory (64 KiB chunks, each synced as in production).
//!
//! Two measurements per path: `cpu` is the benchmark thread's CPU time (Linux
//! `/proc/thread-self/schedstat`; the figure for sizing), `wall` includes waiting for the
//! disk's syncs. Run: `cargo bench -p bedside-recorder --bench pipeline`.

use std::hint::black_box;
use std::time::{Duration, Instant};

use bedside_proto::{ParticipantId, Source, TrackInfo, TrackKind};
use bedside_recorder::capture::{Capture, Frame};
use bedside_recording::{Kek, Keyring};
use criterion::{criterion_group, criterion_main, Criterion};

const SECONDS: usize = 60;

fn thread_cpu() -> Option<Duration> {
    let text = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    let ns: u64 = text.split_whitespace().next()?.parse().ok()?;
    Some(Duration::from_nanos(ns))
}

fn opus_minute() -> Vec<Vec<u8>> {
    let mut enc =
        opus::Encoder::new(48_000, opus::Channels::Mono, opus::Application::Voip).unwrap();
    enc.set_bitrate(opus::Bitrate::Bits(32_000)).unwrap();
    (0..SECONDS * 50)
        .map(|i| {
            let pcm: Vec<i16> = (0..960)
                .map(|k| {
                    let t = (i * 960 + k) as f64 / 48_000.0;
                    ((t * 440.0 * std::f64::consts::TAU).sin() * 8_000.0) as i16
                })
                .collect();
            enc.encode_vec(&pcm, 4000).unwrap()
        })
        .collect()
}

fn vp8_minute() -> Vec<Vec<u8>> {
    (0..SECONDS * 30)
        .map(|i| {
            let mut f: Vec<u8> = (0..4096u32).map(|k| (k * 31 + i as u32) as u8).collect();
            if i % 300 == 0 {
                f[0] = 0x10;
                f[3..6].copy_from_slice(&[0x9d, 0x01, 0x2a]);
                f[6..8].copy_from_slice(&640u16.to_le_bytes());
                f[8..10].copy_from_slice(&360u16.to_le_bytes());
            } else {
                f[0] = 0x11;
            }
            f
        })
        .collect()
}

/// Records one participant-minute of `kind` from `frames`; returns (cpu, wall).
fn record(keyring: &Keyring, kind: TrackKind, frames: &[Vec<u8>]) -> (Duration, Duration) {
    let dir = tempfile::tempdir().unwrap();
    let (step, source) = match kind {
        TrackKind::Audio => (960u64, Source::Microphone),
        TrackKind::Video => (3000u64, Source::Camera),
    };
    let cpu0 = thread_cpu();
    let wall0 = Instant::now();
    let mut c = Capture::create(dir.path(), "bench", keyring, 1).unwrap();
    c.set_tracks(
        1,
        &[TrackInfo {
            mid: "0".into(),
            participant: ParticipantId::from_raw(1),
            kind,
            source,
        }],
    );
    for (i, f) in frames.iter().enumerate() {
        c.media(
            1,
            "0",
            &Frame {
                rtp_time: i as u64 * step,
                contiguous: true,
                data: black_box(f),
            },
        );
    }
    black_box(c.finish(2).unwrap());
    let wall = wall0.elapsed();
    let cpu = match (cpu0, thread_cpu()) {
        (Some(a), Some(b)) => b.saturating_sub(a),
        _ => wall,
    };
    (cpu, wall)
}

fn bench(c: &mut Criterion) {
    let keyring = Keyring::new(Kek::new("bench", [7; 32]).unwrap());
    let audio = opus_minute();
    let video = vp8_minute();
    let mut group = c.benchmark_group("participant_minute");
    group.sample_size(10);
    for (name, kind, frames) in [
        ("audio_opus_to_wav", TrackKind::Audio, &audio),
        ("video_vp8_to_ivf", TrackKind::Video, &video),
    ] {
        group.bench_function(format!("{name}/cpu"), |b| {
            b.iter_custom(|iters| (0..iters).map(|_| record(&keyring, kind, frames).0).sum())
        });
        group.bench_function(format!("{name}/wall"), |b| {
            b.iter_custom(|iters| (0..iters).map(|_| record(&keyring, kind, frames).1).sum())
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
