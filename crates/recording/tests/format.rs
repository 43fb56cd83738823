//! Property and unit tests of the encrypted chunk format: round trip, tampering, truncation,
//! reordering, splicing, wrong keys, and random garbage.

use std::path::Path;

use bedside_recording::{
    DataKey, EncryptedReader, EncryptedWriter, FormatError, RecordingId, WriterOptions,
};
use proptest::prelude::*;

const SMALL: WriterOptions = WriterOptions {
    chunk_size: 64,
    sync_every: 0,
};

fn write(dir: &Path, name: &str, key: &DataKey, data: &[u8], options: WriterOptions) {
    let mut w = EncryptedWriter::create_with(dir, name, key, options).unwrap();
    // Uneven write sizes exercise the chunk buffering.
    for part in data.chunks(37) {
        w.write_all(part).unwrap();
    }
    let summary = w.finish().unwrap();
    assert_eq!(summary.bytes, data.len() as u64);
}

/// Reads every authentic chunk; returns the plaintext and the error that ended it, if any.
fn read(dir: &Path, name: &str, key: &DataKey) -> (Vec<u8>, Option<FormatError>) {
    let mut reader = match EncryptedReader::open(dir, name, key) {
        Ok(r) => r,
        Err(e) => return (Vec::new(), Some(e)),
    };
    let mut out = Vec::new();
    loop {
        match reader.next_chunk() {
            Ok(Some(c)) => out.extend_from_slice(&c),
            Ok(None) => return (out, None),
            Err(e) => return (out, Some(e)),
        }
    }
}

fn file(dir: &Path, name: &str) -> std::path::PathBuf {
    dir.join(format!("{name}.enc"))
}

/// Header length for a stream name of `n` bytes.
fn header_len(name: &str) -> usize {
    33 + name.len() + 16
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn round_trip(len in prop_oneof![Just(0usize), Just(64), Just(128), Just(640), 0usize..1000]) {
        let dir = tempfile::tempdir().unwrap();
        let key = DataKey::generate(RecordingId::generate());
        let data: Vec<u8> = (0..len).map(|i| (i * 7 + 3) as u8).collect();
        write(dir.path(), "s", &key, &data, SMALL);
        // Nothing in the file is the plaintext.
        let raw = std::fs::read(file(dir.path(), "s")).unwrap();
        if len >= 16 {
            prop_assert!(!raw.windows(16).any(|w| w == &data[..16]));
        }
        // Size: header + full chunks + final chunk (0..63 bytes) + tags.
        let expected = header_len("s") + (len / 64) * 80 + (len % 64) + 16;
        prop_assert_eq!(raw.len(), expected);
        let (back, err) = read(dir.path(), "s", &key);
        prop_assert!(err.is_none(), "{:?}", err);
        prop_assert_eq!(back, data);
    }

    #[test]
    fn any_bit_flip_is_detected(len in 0usize..300, pos_seed in any::<u64>(), bit in 0u8..8) {
        let dir = tempfile::tempdir().unwrap();
        let key = DataKey::generate(RecordingId::generate());
        let data = vec![0x5a; len];
        write(dir.path(), "s", &key, &data, SMALL);
        let path = file(dir.path(), "s");
        let mut raw = std::fs::read(&path).unwrap();
        let pos = (pos_seed % raw.len() as u64) as usize;
        raw[pos] ^= 1 << bit;
        std::fs::write(&path, &raw).unwrap();
        let (_, err) = read(dir.path(), "s", &key);
        prop_assert!(err.is_some(), "flip at byte {} bit {} unnoticed", pos, bit);
    }

    #[test]
    fn truncation_at_any_offset_is_reported_as_truncation(len in 0usize..400, cut_seed in any::<u64>()) {
        let dir = tempfile::tempdir().unwrap();
        let key = DataKey::generate(RecordingId::generate());
        let data: Vec<u8> = (0..len).map(|i| i as u8).collect();
        write(dir.path(), "s", &key, &data, SMALL);
        let path = file(dir.path(), "s");
        let raw = std::fs::read(&path).unwrap();
        let cut = (cut_seed % raw.len() as u64) as usize;
        std::fs::write(&path, &raw[..cut]).unwrap();
        let (back, err) = read(dir.path(), "s", &key);
        let err = err.expect("a cut file must not read as complete");
        prop_assert!(err.is_truncation(), "cut at {}: {}", cut, err);
        // Every chunk that is wholly before the cut is still readable.
        let whole = cut.saturating_sub(header_len("s")) / 80;
        prop_assert_eq!(back.len(), whole * 64);
        prop_assert_eq!(&back[..], &data[..whole * 64]);
    }

    /// Random bytes (with or without a plausible header) never panic the reader and never
    /// read as a complete file.
    #[test]
    fn random_bytes_are_refused_without_panic(garbage in proptest::collection::vec(any::<u8>(), 0..600), keep_header in any::<bool>()) {
        let dir = tempfile::tempdir().unwrap();
        let key = DataKey::generate(RecordingId::generate());
        let mut bytes = garbage;
        if keep_header {
            write(dir.path(), "s", &key, b"", SMALL);
            let mut real = std::fs::read(file(dir.path(), "s")).unwrap();
            real.truncate(header_len("s"));
            real.extend_from_slice(&bytes);
            bytes = real;
        }
        std::fs::write(file(dir.path(), "s"), &bytes).unwrap();
        let (_, err) = read(dir.path(), "s", &key);
        prop_assert!(err.is_some());
    }
}

fn chunk_range(name: &str, i: usize) -> std::ops::Range<usize> {
    let start = header_len(name) + i * 80;
    start..start + 80
}

#[test]
fn swapping_two_chunks_is_tampering() {
    let dir = tempfile::tempdir().unwrap();
    let key = DataKey::generate(RecordingId::generate());
    let data: Vec<u8> = (0..300).map(|i| i as u8).collect();
    write(dir.path(), "s", &key, &data, SMALL);
    let path = file(dir.path(), "s");
    let mut raw = std::fs::read(&path).unwrap();
    let (a, b) = (chunk_range("s", 0), chunk_range("s", 1));
    let first = raw[a.clone()].to_vec();
    raw.copy_within(b.clone(), a.start);
    raw[b].copy_from_slice(&first);
    std::fs::write(&path, &raw).unwrap();
    let (back, err) = read(dir.path(), "s", &key);
    assert!(back.is_empty());
    assert!(
        matches!(err, Some(FormatError::Tampered { chunk: 0, .. })),
        "{err:?}"
    );
}

#[test]
fn dropping_the_final_chunk_is_truncation() {
    let dir = tempfile::tempdir().unwrap();
    let key = DataKey::generate(RecordingId::generate());
    let data = vec![1u8; 64 * 3];
    write(dir.path(), "s", &key, &data, SMALL);
    let path = file(dir.path(), "s");
    let raw = std::fs::read(&path).unwrap();
    // 3 full chunks, then an empty final chunk of just its tag.
    assert_eq!(raw.len(), header_len("s") + 3 * 80 + 16);
    std::fs::write(&path, &raw[..raw.len() - 16]).unwrap();
    let (back, err) = read(dir.path(), "s", &key);
    assert_eq!(back, data);
    let err = err.unwrap();
    assert!(err.is_truncation(), "{err}");
    assert!(err.to_string().contains("3 complete chunk(s)"), "{err}");
}

#[test]
fn splicing_between_files_and_recordings_is_detected() {
    let dir = tempfile::tempdir().unwrap();
    let key = DataKey::generate(RecordingId::generate());
    let data = vec![9u8; 200];
    write(dir.path(), "a", &key, &data, SMALL);
    write(dir.path(), "b", &key, &data, SMALL);
    // Same key, same plaintext, same position: a chunk of `a` is still refused inside `b`.
    let a = std::fs::read(file(dir.path(), "a")).unwrap();
    let mut b = std::fs::read(file(dir.path(), "b")).unwrap();
    b[chunk_range("b", 1)].copy_from_slice(&a[chunk_range("a", 1)]);
    std::fs::write(file(dir.path(), "b"), &b).unwrap();
    let (back, err) = read(dir.path(), "b", &key);
    assert_eq!(back.len(), 64);
    assert!(
        matches!(err, Some(FormatError::Tampered { chunk: 1, .. })),
        "{err:?}"
    );

    // A whole file renamed over another stream: refused by name.
    std::fs::copy(file(dir.path(), "a"), file(dir.path(), "b")).unwrap();
    let (_, err) = read(dir.path(), "b", &key);
    assert!(
        matches!(err, Some(FormatError::WrongStream { .. })),
        "{err:?}"
    );

    // A file from another recording (another key): refused by recording id.
    let other_dir = tempfile::tempdir().unwrap();
    let other = DataKey::generate(RecordingId::generate());
    write(other_dir.path(), "a", &other, &data, SMALL);
    std::fs::copy(file(other_dir.path(), "a"), file(dir.path(), "a")).unwrap();
    let (_, err) = read(dir.path(), "a", &key);
    assert!(
        matches!(err, Some(FormatError::WrongRecording { .. })),
        "{err:?}"
    );
}

#[test]
fn wrong_key_is_refused_at_the_header() {
    let dir = tempfile::tempdir().unwrap();
    let id = RecordingId::generate();
    let key = DataKey::generate(id);
    write(dir.path(), "s", &key, b"hello", SMALL);
    let wrong = DataKey::generate(id);
    let (back, err) = read(dir.path(), "s", &wrong);
    assert!(back.is_empty());
    let err = err.unwrap();
    assert!(
        matches!(err, FormatError::HeaderNotAuthentic { .. }),
        "{err}"
    );
    assert!(err.to_string().contains("wrong data key"), "{err}");
}

#[test]
fn unfinished_writer_leaves_complete_chunks_readable() {
    let dir = tempfile::tempdir().unwrap();
    let key = DataKey::generate(RecordingId::generate());
    let mut w = EncryptedWriter::create_with(dir.path(), "s", &key, SMALL).unwrap();
    let data: Vec<u8> = (0..64 * 5 + 10).map(|i| i as u8).collect();
    w.write_all(&data).unwrap();
    // A crash: the writer never finishes; its open chunk (10 bytes) is lost.
    std::mem::forget(w);
    let (back, err) = read(dir.path(), "s", &key);
    assert_eq!(back, &data[..64 * 5]);
    let err = err.unwrap();
    assert!(
        matches!(
            err,
            FormatError::Truncated {
                complete_chunks: 5,
                complete_bytes: 320,
                trailing_bytes: 0,
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn data_after_the_final_chunk_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let key = DataKey::generate(RecordingId::generate());
    write(dir.path(), "s", &key, b"abc", SMALL);
    let path = file(dir.path(), "s");
    let mut raw = std::fs::read(&path).unwrap();
    raw.extend_from_slice(b"x");
    std::fs::write(&path, &raw).unwrap();
    // The extra byte joins the final chunk, which then no longer authenticates.
    let (back, err) = read(dir.path(), "s", &key);
    assert!(back.is_empty());
    assert!(err.is_some());
    // Enough extra bytes to make the final chunk look full-sized: tampering.
    raw.extend_from_slice(&[0u8; 60]);
    std::fs::write(&path, &raw).unwrap();
    let (_, err) = read(dir.path(), "s", &key);
    assert!(
        matches!(err, Some(FormatError::Tampered { chunk: 0, .. })),
        "{err:?}"
    );
}

#[test]
fn writer_refuses_existing_files_bad_names_and_read_only_keys() {
    let dir = tempfile::tempdir().unwrap();
    let key = DataKey::generate(RecordingId::generate());
    write(dir.path(), "s", &key, b"abc", SMALL);
    let err = EncryptedWriter::create(dir.path(), "s", &key).unwrap_err();
    assert!(matches!(err, FormatError::Io { .. }), "{err}");
    for bad in ["../s", "a/b", "", ".x"] {
        assert!(matches!(
            EncryptedWriter::create(dir.path(), bad, &key),
            Err(FormatError::InvalidName(_))
        ));
    }
    let err = EncryptedWriter::create_with(
        dir.path(),
        "t",
        &key,
        WriterOptions {
            chunk_size: 0,
            sync_every: 1,
        },
    )
    .unwrap_err();
    assert!(matches!(err, FormatError::BadChunkSize(0)));
}

#[test]
fn default_chunk_size_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let key = DataKey::generate(RecordingId::generate());
    let data: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
    write(dir.path(), "s", &key, &data, WriterOptions::default());
    let reader = EncryptedReader::open(dir.path(), "s", &key).unwrap();
    assert_eq!(reader.chunk_size(), 64 * 1024);
    let chunks: Vec<Vec<u8>> = reader.map(Result::unwrap).collect();
    assert_eq!(chunks.len(), 4);
    assert_eq!(chunks.concat(), data);
}
