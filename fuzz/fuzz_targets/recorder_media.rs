//! The recorder's media parsers: VP8 keyframe headers and Opus packets as received from the
//! network, and the WAV/IVF header fix-ups `export` applies to decrypted files. None may panic
//! on any input; the fix-ups must leave a file they understand well-formed and be idempotent.
#![no_main]

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use bedside_recorder::audio::{OpusToPcm, MAX_FRAME_SAMPLES, MAX_GAP_SAMPLES};
use bedside_recorder::fixup::{fix_exported, Fixup};
use bedside_recorder::ivf::vp8_keyframe_size;
use libfuzzer_sys::fuzz_target;

// The first input byte picks what the rest is (raw bytes, so seeds are easy to write by hand):
// 0: one depacketized VP8 frame;
// 1: Opus packets through one decoder, each as RTP timestamp (u32 LE), length (u16 LE), bytes;
// 2: a decrypted file fixed up as `<name>.wav`;
// 3: a decrypted file fixed up as `<name>.ivf`.
const MODES: u8 = 4;

/// Splits mode-1 input into (timestamp, packet) pairs; a short tail is the last packet.
fn packets(mut data: &[u8]) -> impl Iterator<Item = (u32, &[u8])> {
    std::iter::from_fn(move || {
        if data.len() < 6 {
            return None;
        }
        let ts = u32::from_le_bytes(data[..4].try_into().expect("4 bytes"));
        let len = usize::from(u16::from_le_bytes([data[4], data[5]]));
        let end = (6 + len).min(data.len());
        let packet = &data[6..end];
        data = &data[end..];
        Some((ts, packet))
    })
}

fn scratch() -> &'static Path {
    static S: OnceLock<PathBuf> = OnceLock::new();
    S.get_or_init(|| {
        let base = if Path::new("/dev/shm").is_dir() {
            PathBuf::from("/dev/shm")
        } else {
            std::env::temp_dir()
        };
        let dir = base.join(format!("bedside-fuzz-recorder-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("scratch directory");
        dir
    })
}

fn contents(file: &mut File) -> Vec<u8> {
    let mut v = Vec::new();
    file.seek(SeekFrom::Start(0)).expect("seek");
    file.read_to_end(&mut v).expect("read back");
    v
}

fn fixup(name: &str, bytes: &[u8]) {
    let path = scratch().join(name);
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(&path)
        .expect("scratch file");
    file.write_all(bytes).expect("scratch write");
    let first = fix_exported(name, &mut file).expect("I/O on a scratch file");
    let after = contents(&mut file);
    match first {
        Fixup::Unrecognised => assert!(after == bytes, "an unrecognised file was changed"),
        Fixup::Wav { data_bytes } => {
            // At most the torn half sample is cut; only the two size fields change.
            assert!(after.len() <= bytes.len() && bytes.len() - after.len() <= 1);
            assert_eq!(data_bytes % 2, 0, "whole 16-bit samples");
        }
        Fixup::Ivf { .. } => assert!(after.len() <= bytes.len() && after.len() >= 32),
    }
    // Idempotent: a second pass changes nothing.
    let second = fix_exported(name, &mut file).expect("I/O on a scratch file");
    assert_eq!(first, second, "fix-up is not idempotent");
    assert!(contents(&mut file) == after, "second fix-up changed the file");
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    match mode % MODES {
        0 => {
            if let Some((w, h)) = vp8_keyframe_size(rest) {
                assert!(w > 0 && h > 0 && w < 0x4000 && h < 0x4000);
            }
        }
        1 => {
            let mut dec = OpusToPcm::new().expect("a 48 kHz mono Opus decoder");
            let mut out = Vec::new();
            for (ts, packet) in packets(rest).take(64) {
                let before = out.len();
                dec.push(ts, packet, &mut out);
                let added = out.len() - before;
                assert_eq!(added % 2, 0);
                assert!(
                    added <= (MAX_GAP_SAMPLES as usize + MAX_FRAME_SAMPLES) * 2,
                    "one packet produced {added} bytes of PCM"
                );
            }
        }
        2 => fixup("p1-audio.wav", rest),
        _ => fixup("p2-video.ivf", rest),
    }
});
