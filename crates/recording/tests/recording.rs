//! Whole recordings: writer, metadata, verify, key rotation, crash recovery.

use bedside_recording::{
    ConsentDecision, ConsentRecord, Kek, KeyError, Keyring, MetadataState, Recording,
    RecordingError, RecordingId, RecordingInfo, RecordingWriter, TimelineEvent, TimelineKind,
    Track, TrackKind, WriterOptions,
};
use sha2::Digest;

fn keyring(id: &str, fill: u8) -> Keyring {
    Keyring::new(Kek::new(id, [fill; 32]).unwrap())
}

fn info() -> RecordingInfo {
    RecordingInfo {
        participants: vec!["p1".into(), "p2".into()],
        consents: vec![
            ConsentRecord {
                participant: "p1".into(),
                decision: ConsentDecision::Accepted,
                at_unix_ms: 1_000,
                text_version: "v3".into(),
            },
            ConsentRecord {
                participant: "p2".into(),
                decision: ConsentDecision::Declined,
                at_unix_ms: 1_100,
                text_version: "v3".into(),
            },
        ],
        timeline: vec![
            TimelineEvent {
                kind: TimelineKind::Start,
                at_unix_ms: 1_200,
            },
            TimelineEvent {
                kind: TimelineKind::Stop,
                at_unix_ms: 9_000,
            },
        ],
        tracks: vec![Track {
            participant: "p1".into(),
            kind: TrackKind::Audio,
            file: "p1-audio.wav".into(),
            codec: "pcm_s16le".into(),
            started_unix_ms: 1_200,
            ended_unix_ms: Some(9_000),
        }],
    }
}

#[test]
fn write_finish_open_verify() {
    let root = tempfile::tempdir().unwrap();
    let ring = keyring("k1", 1);
    let id = RecordingId::generate();
    let rec = RecordingWriter::create(root.path(), &id, "visit-1", &ring).unwrap();
    let audio: Vec<u8> = (0..150_000u32).map(|i| (i % 253) as u8).collect();
    let mut w = rec.add_stream("p1-audio.wav").unwrap();
    w.write_all(&audio).unwrap();
    let summary = w.finish().unwrap();
    assert_eq!(
        summary.sha256,
        format!("{:x}", sha2::Sha256::digest(&audio))
    );
    assert!(matches!(
        rec.add_stream("p1-audio.wav"),
        Err(RecordingError::DuplicateStream(_))
    ));
    assert!(rec.add_stream("meta.json").is_err());
    assert!(rec.add_stream("../x").is_err());
    let meta = rec.finish(info()).unwrap();
    assert_eq!(meta.kek_id, "k1");
    assert_eq!(meta.streams.len(), 1);

    // Rotate: the old KEK kept as an older key still opens it.
    let rotated = keyring("k2", 2)
        .with_older(Kek::new("k1", [1; 32]).unwrap())
        .unwrap();
    let opened = Recording::open(root.path(), &id, &rotated).unwrap();
    let report = opened.verify().unwrap();
    assert!(report.is_complete());
    assert_eq!(report.streams[0].bytes, audio.len() as u64);
    match opened.metadata().unwrap() {
        MetadataState::Finished(m) => assert_eq!(*m, meta),
        other => panic!("{other:?}"),
    }
    let back = opened
        .open_stream("p1-audio.wav")
        .unwrap()
        .read_to_end()
        .unwrap();
    assert_eq!(back, audio);

    // The plaintext is nowhere on disk.
    for entry in std::fs::read_dir(opened.dir()).unwrap() {
        let raw = std::fs::read(entry.unwrap().path()).unwrap();
        assert!(!raw.windows(32).any(|w| w == &audio[1000..1032]));
        assert!(!raw.windows(7).any(|w| w == b"visit-1"));
    }

    // Wrong KEK (id unknown, or same id with other bytes): clear errors.
    let err = Recording::open(root.path(), &id, &keyring("k2", 2)).unwrap_err();
    assert!(
        matches!(err, RecordingError::Key(KeyError::UnknownKek(_))),
        "{err}"
    );
    let err = Recording::open(root.path(), &id, &keyring("k1", 7)).unwrap_err();
    assert!(
        matches!(err, RecordingError::Key(KeyError::UnwrapFailed(_))),
        "{err}"
    );

    // Creating the same id twice is refused.
    assert!(matches!(
        RecordingWriter::create(root.path(), &id, "visit-1", &ring),
        Err(RecordingError::AlreadyExists(_))
    ));
}

#[test]
fn crash_without_finish_verifies_as_truncated() {
    let root = tempfile::tempdir().unwrap();
    let ring = keyring("k1", 1);
    let id = RecordingId::generate();
    let rec = RecordingWriter::create(root.path(), &id, "visit-1", &ring).unwrap();
    let options = WriterOptions {
        chunk_size: 1024,
        sync_every: 1,
    };
    let mut w = rec.add_stream_with("p1-video.ivf", options).unwrap();
    w.write_all(&[7u8; 1024 * 6 + 500]).unwrap();
    // kill -9: neither the stream nor the recording is finished.
    std::mem::forget(w);
    std::mem::forget(rec);
    let opened = Recording::open(root.path(), &id, &ring).unwrap();
    let report = opened.verify().unwrap();
    assert!(!report.is_complete());
    assert_eq!(report.metadata, MetadataState::Missing);
    assert_eq!(report.streams[0].chunks, 6);
    assert_eq!(report.streams[0].bytes, 6 * 1024);
    assert_eq!(report.streams[0].truncated, Some(0));
}

#[test]
fn stream_cut_after_finish_or_altered_is_an_error() {
    let root = tempfile::tempdir().unwrap();
    let ring = keyring("k1", 1);
    let id = RecordingId::generate();
    let rec = RecordingWriter::create(root.path(), &id, "visit-1", &ring).unwrap();
    let mut w = rec.add_stream("p1-audio.wav").unwrap();
    w.write_all(&[3u8; 70_000]).unwrap();
    w.finish().unwrap();
    rec.finish(info()).unwrap();
    let path = root.path().join(id.to_string()).join("p1-audio.wav.enc");
    let raw = std::fs::read(&path).unwrap();

    // The last chunk altered: the reader alone cannot tell it from a torn write, but the
    // metadata says the stream was finished.
    let mut bad = raw.clone();
    *bad.last_mut().unwrap() ^= 1;
    std::fs::write(&path, &bad).unwrap();
    let opened = Recording::open(root.path(), &id, &ring).unwrap();
    let err = opened.verify().unwrap_err();
    assert!(matches!(err, RecordingError::StreamDamaged { .. }), "{err}");

    // A middle byte altered: tampering.
    let mut bad = raw.clone();
    bad[100] ^= 1;
    std::fs::write(&path, &bad).unwrap();
    let err = opened.verify().unwrap_err();
    assert!(err.to_string().contains("does not authenticate"), "{err}");

    // The file removed: missing.
    std::fs::remove_file(&path).unwrap();
    assert!(matches!(
        opened.verify(),
        Err(RecordingError::StreamMissing(_))
    ));
}

#[test]
fn unknown_track_stream_is_refused() {
    let root = tempfile::tempdir().unwrap();
    let ring = keyring("k1", 1);
    let rec =
        RecordingWriter::create(root.path(), &RecordingId::generate(), "visit-1", &ring).unwrap();
    assert!(matches!(
        rec.finish(info()),
        Err(RecordingError::UnknownTrackStream(_))
    ));
}

#[test]
fn hostile_visit_ids_are_refused() {
    let root = tempfile::tempdir().unwrap();
    let ring = keyring("k1", 1);
    for bad in ["", "a\nb", &"v".repeat(257)] {
        assert!(matches!(
            RecordingWriter::create(root.path(), &RecordingId::generate(), bad, &ring),
            Err(RecordingError::InvalidVisitId)
        ));
    }
}
