//! The recording pipeline without a network: a `Capture` fed the way a session feeds it
//! (track maps, Opus and VP8 frames, consent), then `export`ed and read back as a user would
//! (hound for WAV, the IVF frame table), including after a simulated `kill -9`.

use std::path::{Path, PathBuf};

use bedside_proto::{
    ConsentDecision as ProtoDecision, ConsentInfo, ParticipantId, Source, TrackInfo, TrackKind,
};
use bedside_recorder::capture::{Capture, Frame};
use bedside_recorder::{export, Config};
use bedside_recording::{ConsentDecision, TimelineKind};

struct Setup {
    dir: tempfile::TempDir,
    config: Config,
}

fn setup() -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let kek = dir.path().join("kek");
    std::fs::write(&kek, "ab".repeat(32)).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&kek, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    let text = format!(
        "storage_dir = {:?}\nkek_file = {:?}\nkek_id = \"k1\"\naudit_log = {:?}\n",
        dir.path().join("rec"),
        kek,
        dir.path().join("audit.jsonl")
    );
    let path = dir.path().join("recorder.toml");
    std::fs::write(&path, text).unwrap();
    let config = Config::load(&path).unwrap();
    Setup { dir, config }
}

impl Setup {
    fn capture(&self) -> Capture {
        Capture::create(
            &self.config.storage_dir,
            "visit-7",
            &self.config.keyring().unwrap(),
            1_000,
        )
        .unwrap()
    }

    fn export(&self, capture_id: &str) -> PathBuf {
        let out = self.dir.path().join(format!("out-{capture_id}"));
        export(&self.config, capture_id, &out).unwrap();
        out
    }
}

fn track(mid: &str, p: u64, kind: TrackKind, source: Source) -> TrackInfo {
    TrackInfo {
        mid: mid.into(),
        participant: ParticipantId::from_raw(p),
        kind,
        source,
    }
}

/// 20 ms Opus frames of a 440 Hz tone.
fn tone_frames(n: usize) -> Vec<Vec<u8>> {
    let mut enc =
        opus::Encoder::new(48_000, opus::Channels::Mono, opus::Application::Audio).unwrap();
    (0..n)
        .map(|i| {
            let pcm: Vec<i16> = (0..960)
                .map(|k| {
                    let t = (i * 960 + k) as f64 / 48_000.0;
                    ((t * 440.0 * std::f64::consts::TAU).sin() * 10_000.0) as i16
                })
                .collect();
            enc.encode_vec(&pcm, 4000).unwrap()
        })
        .collect()
}

fn keyframe(w: u16, h: u16, len: usize) -> Vec<u8> {
    let mut f = vec![0x55u8; len];
    f[0] = 0x10;
    f[1] = 0;
    f[2] = 0;
    f[3..6].copy_from_slice(&[0x9d, 0x01, 0x2a]);
    f[6..8].copy_from_slice(&w.to_le_bytes());
    f[8..10].copy_from_slice(&h.to_le_bytes());
    f
}

fn inter(len: usize) -> Vec<u8> {
    let mut f = vec![0x33u8; len];
    f[0] = 0x11;
    f
}

fn audio(c: &mut Capture, at: u64, mid: &str, ts: u32, data: &[u8]) {
    c.media(
        at,
        mid,
        &Frame {
            rtp_time: u64::from(ts),
            contiguous: true,
            data,
        },
    );
}

fn video(c: &mut Capture, mid: &str, ts: u32, contiguous: bool, data: &[u8]) {
    c.media(
        2_000,
        mid,
        &Frame {
            rtp_time: u64::from(ts),
            contiguous,
            data,
        },
    );
}

/// Dominant frequency by a DFT magnitude scan over 50..2000 Hz in 5 Hz steps.
fn dominant_hz(samples: &[i16]) -> f64 {
    let n = samples.len().min(48_000);
    let s = &samples[samples.len() - n..];
    let mut best = (0.0, 0.0);
    let mut f = 50.0;
    while f <= 2000.0 {
        let w = f * std::f64::consts::TAU / 48_000.0;
        let (mut re, mut im) = (0.0, 0.0);
        for (k, &x) in s.iter().enumerate() {
            re += f64::from(x) * (w * k as f64).cos();
            im += f64::from(x) * (w * k as f64).sin();
        }
        let mag = re * re + im * im;
        if mag > best.1 {
            best = (f, mag);
        }
        f += 5.0;
    }
    best.0
}

struct Ivf {
    width: u16,
    height: u16,
    declared: u32,
    frames: Vec<(u64, usize)>,
}

fn read_ivf(path: &Path) -> Ivf {
    let b = std::fs::read(path).unwrap();
    assert_eq!(&b[0..4], b"DKIF");
    assert_eq!(&b[8..12], b"VP80");
    let mut frames = Vec::new();
    let mut off = 32;
    while off < b.len() {
        let size = u32::from_le_bytes(b[off..off + 4].try_into().unwrap()) as usize;
        let pts = u64::from_le_bytes(b[off + 4..off + 12].try_into().unwrap());
        off += 12 + size;
        assert!(off <= b.len(), "a torn frame survived the fix-up");
        frames.push((pts, size));
    }
    Ivf {
        width: u16::from_le_bytes([b[12], b[13]]),
        height: u16::from_le_bytes([b[14], b[15]]),
        declared: u32::from_le_bytes(b[24..28].try_into().unwrap()),
        frames,
    }
}

fn wav_samples(path: &Path) -> (hound::WavSpec, Vec<i16>) {
    let reader = hound::WavReader::open(path).unwrap();
    let spec = reader.spec();
    let samples = reader.into_samples().map(Result::unwrap).collect();
    (spec, samples)
}

#[test]
fn tone_and_video_record_export_and_play_back() {
    let s = setup();
    let mut c = s.capture();
    c.set_tracks(
        1_000,
        &[
            track("0", 1, TrackKind::Audio, Source::Microphone),
            track("1", 2, TrackKind::Video, Source::Camera),
            track("2", 2, TrackKind::Video, Source::Screen),
        ],
    );
    c.consent(&ConsentInfo {
        participant: ParticipantId::from_raw(1),
        decision: ProtoDecision::Accepted,
        at_unix_ms: 900,
        text_version: "v3".into(),
    });
    // 5 s of tone; frames 100..110 not sent (DTX): the WAV still lasts 5 s.
    let base = 123_456u32;
    for (i, f) in tone_frames(250).iter().enumerate() {
        if (100..110).contains(&i) {
            continue;
        }
        audio(&mut c, 1_000 + i as u64 * 20, "0", base + i as u32 * 960, f);
    }
    // Video: inter frames before the first keyframe are dropped; after a loss, nothing
    // until the next keyframe. Screen frames are not recorded.
    let mut ts = 90_000u32;
    let mut next = |step: u32| {
        ts = ts.wrapping_add(step);
        ts
    };
    for _ in 0..3 {
        video(&mut c, "1", next(3000), true, &inter(500));
    }
    video(&mut c, "1", next(3000), true, &keyframe(640, 360, 4000));
    for _ in 0..10 {
        video(&mut c, "1", next(3000), true, &inter(800));
    }
    video(&mut c, "1", next(6000), false, &inter(800));
    video(&mut c, "1", next(3000), true, &inter(800));
    video(&mut c, "1", next(3000), true, &keyframe(640, 360, 4000));
    video(&mut c, "1", next(3000), true, &inter(700));
    video(&mut c, "2", 5, true, &keyframe(1280, 720, 4000));
    let id = c.id().to_string();
    let meta = c.finish(9_000).unwrap();

    let info = &meta.info;
    assert_eq!(info.participants, ["p1", "p2"]);
    assert_eq!(info.consents.len(), 1);
    assert_eq!(info.consents[0].decision, ConsentDecision::Accepted);
    assert_eq!(info.timeline[0].kind, TimelineKind::Start);
    assert_eq!(info.timeline[1].kind, TimelineKind::Stop);
    let files: Vec<&str> = info.tracks.iter().map(|t| t.file.as_str()).collect();
    assert_eq!(files, ["p1-audio-1.wav", "p2-video-1.ivf"]);
    assert_eq!(info.tracks[0].codec, "pcm_s16le");
    assert_eq!(info.tracks[1].codec, "vp8");
    assert!(info.tracks.iter().all(|t| t.ended_unix_ms == Some(9_000)));

    let out = s.export(&id);
    let (spec, samples) = wav_samples(&out.join("p1-audio-1.wav"));
    assert_eq!(
        (spec.sample_rate, spec.channels, spec.bits_per_sample),
        (48_000, 1, 16)
    );
    assert_eq!(samples.len(), 250 * 960, "5 s exactly, the DTX gap filled");
    let hz = dominant_hz(&samples[200 * 960..]);
    assert!((hz - 440.0).abs() <= 10.0, "dominant frequency {hz} Hz");
    let gap = &samples[100 * 960 + 480..110 * 960];
    assert!(gap.iter().all(|&x| x == 0), "the DTX gap is silence");

    let ivf = read_ivf(&out.join("p2-video-1.ivf"));
    assert_eq!((ivf.width, ivf.height), (640, 360));
    assert_eq!(ivf.declared as usize, ivf.frames.len());
    assert_eq!(ivf.frames.len(), 1 + 10 + 1 + 1);
    assert_eq!(ivf.frames[0], (0, 4000));
    assert_eq!(ivf.frames[10].0, 30_000);
    // The keyframe after the loss: 10 frames, the lost 6000 and the dropped 3000 later.
    assert_eq!(ivf.frames[11], (30_000 + 6000 + 3000 + 3000, 4000));
    assert!(out.join("meta.json").exists());
    assert!(!out.join("p2-video-2.ivf").exists());
}

#[test]
fn withdrawn_consent_ends_a_stream_and_a_return_starts_the_next() {
    let s = setup();
    let mut c = s.capture();
    let frames = tone_frames(100);
    let mic = [track("3", 4, TrackKind::Audio, Source::Microphone)];
    c.set_tracks(1_000, &mic);
    for (i, f) in frames[..50].iter().enumerate() {
        audio(&mut c, 1_000, "3", i as u32 * 960, f);
    }
    c.consent(&ConsentInfo {
        participant: ParticipantId::from_raw(4),
        decision: ProtoDecision::Withdrawn,
        at_unix_ms: 2_000,
        text_version: "v3".into(),
    });
    // The server renegotiates the mid away.
    c.set_tracks(2_000, &[]);
    audio(&mut c, 2_500, "3", 60 * 960, &frames[60]);
    // Consent again: the mid comes back.
    c.set_tracks(3_000, &mic);
    for (i, f) in frames[70..].iter().enumerate() {
        audio(&mut c, 3_000, "3", (70 + i) as u32 * 960, f);
    }
    // Renegotiated inactive, then media again: a third stream.
    c.mid_inactive(4_000, "3");
    audio(&mut c, 5_000, "3", 200 * 960, &frames[0]);
    let id = c.id().to_string();
    let meta = c.finish(6_000).unwrap();
    let t = &meta.info.tracks;
    let summary: Vec<(&str, u64, Option<u64>)> = t
        .iter()
        .map(|t| (t.file.as_str(), t.started_unix_ms, t.ended_unix_ms))
        .collect();
    assert_eq!(
        summary,
        [
            ("p4-audio-1.wav", 1_000, Some(2_000)),
            ("p4-audio-2.wav", 3_000, Some(4_000)),
            ("p4-audio-3.wav", 5_000, Some(6_000)),
        ]
    );
    assert_eq!(meta.info.consents[0].decision, ConsentDecision::Withdrawn);
    let out = s.export(&id);
    assert_eq!(wav_samples(&out.join("p4-audio-1.wav")).1.len(), 50 * 960);
    assert_eq!(wav_samples(&out.join("p4-audio-2.wav")).1.len(), 30 * 960);
    assert_eq!(wav_samples(&out.join("p4-audio-3.wav")).1.len(), 960);
}

#[test]
fn killed_recorder_exports_playable_files() {
    let s = setup();
    let mut c = s.capture();
    c.set_tracks(
        1_000,
        &[
            track("0", 1, TrackKind::Audio, Source::Microphone),
            track("1", 1, TrackKind::Video, Source::Camera),
        ],
    );
    // 3 s of audio (288 044 bytes: four full 64 KiB chunks and an open one).
    for (i, f) in tone_frames(150).iter().enumerate() {
        audio(&mut c, 1_000, "0", i as u32 * 960, f);
    }
    video(&mut c, "1", 0, true, &keyframe(320, 240, 5000));
    for i in 1..40u32 {
        video(&mut c, "1", i * 3000, true, &inter(3001));
    }
    let id = c.id().to_string();
    // kill -9: nothing finished, no metadata.
    std::mem::forget(c);
    let out = s.export(&id);
    let wav = out.join("p1-audio-1.wav");
    let (_, samples) = wav_samples(&wav);
    let len = std::fs::metadata(&wav).unwrap().len();
    assert_eq!(len, 4 * 65_536, "the complete chunks survive");
    assert_eq!(samples.len() as u64, (len - 44) / 2);
    let ivf = read_ivf(&out.join("p1-video-1.ivf"));
    assert_eq!(ivf.declared as usize, ivf.frames.len());
    assert!(ivf.frames.len() >= 15, "{} frames", ivf.frames.len());
    assert_eq!(ivf.frames[0], (0, 5000));
    assert!(!out.join("meta.json").exists());
}

#[test]
fn pause_and_resume_are_on_the_timeline_once_each() {
    use bedside_recording::TimelineKind;
    let s = setup();
    let mut c = s.capture();
    // The server re-sends its state on every change: only transitions count.
    c.paused(1_000, false);
    c.paused(2_000, true);
    c.paused(2_500, true);
    c.paused(3_000, false);
    c.paused(3_500, false);
    let meta = c.finish(4_000).unwrap();
    let timeline: Vec<(TimelineKind, u64)> = meta
        .info
        .timeline
        .iter()
        .map(|e| (e.kind, e.at_unix_ms))
        .collect();
    assert_eq!(timeline.len(), 4, "{timeline:?}");
    assert_eq!(timeline[0].0, TimelineKind::Start);
    assert_eq!(
        timeline[1..],
        [
            (TimelineKind::Pause, 2_000),
            (TimelineKind::Resume, 3_000),
            (TimelineKind::Stop, 4_000)
        ]
    );
}
