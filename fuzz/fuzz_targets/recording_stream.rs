//! Stored recordings read back from disk (`bedside-recording`): an encrypted stream file, a
//! `key.json`, the metadata JSON, and a whole recording directory through `Recording::verify`.
//! None of them may panic on any file contents.
//!
//! Random bytes almost never get past the header tag, so besides raw files the input can
//! describe a file that this harness seals itself under a fixed data key (an independent
//! implementation of docs/recording-format.md) and then damages. When the described file is
//! well-formed and undamaged the reader must return exactly its plaintext: a mismatch is a
//! failure too, not only a panic.
#![no_main]

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use aes_gcm::aead::{AeadInOut, Nonce};
use aes_gcm::{Aes256Gcm, KeyInit};
use bedside_recording::{
    DataKey, EncryptedReader, FormatError, Kek, KeyFile, Keyring, Metadata, Recording,
    RecordingId, RecordingInfo, StreamDigest, StreamEntry, KEY_FILE, KEY_WRAP_ALG, META_STREAM,
};
use libfuzzer_sys::arbitrary::{self, Arbitrary, Unstructured};
use libfuzzer_sys::fuzz_target;
use sha2::{Digest, Sha256};

const KEK_ID: &str = "fuzz-kek";
const KEK_BYTES: [u8; 32] = [0x11; 32];
const DATA_KEY: [u8; 32] = [0x22; 32];
const RECORDING: [u8; 16] = [0x33; 16];
const OTHER_RECORDING: [u8; 16] = [0x44; 16];
const CREATED_UNIX_MS: u64 = 1_750_000_000_000;
const WRAP_NONCE: [u8; 12] = [0x55; 12];
const STREAM: &str = "p1-audio.wav";

/// The first input byte picks what the rest is:
/// 0: arbitrary bytes as the stream file `p1-audio.wav.enc`;
/// 1: a [`SealedFile`] sealed by the harness, then damaged;
/// 2: arbitrary bytes as `key.json` (parsed, then unwrapped with the fixed keyring);
/// 3: arbitrary bytes as the metadata JSON;
/// 4: a [`Dir`]ectory, opened and verified as `bedside-recorder verify` does.
/// Raw modes take the bytes as they are, so seeds are easy to write by hand.
const MODES: u8 = 5;

#[derive(Arbitrary, Debug)]
struct SealedFile {
    /// Header fields; `None` means the value the reader expects.
    version: Option<u8>,
    alg: Option<u8>,
    /// Plaintext bytes per chunk: small values unless overridden (the reader allocates one
    /// chunk, up to 16 MiB, per read).
    chunk_size: u8,
    chunk_size_override: Option<u32>,
    file_no: u32,
    other_recording: bool,
    /// Stream name in the header; `None` = the one the reader asks for.
    name: Option<Vec<u8>>,
    bad_header_tag: bool,
    chunks: Vec<ChunkSpec>,
    damage: Vec<Damage>,
}

#[derive(Arbitrary, Debug)]
struct ChunkSpec {
    plaintext: Vec<u8>,
    /// Seal as the final chunk.
    last: bool,
    /// Seal under another chunk index than its position.
    index_override: Option<u64>,
    bad_tag: bool,
}

#[derive(Arbitrary, Debug)]
enum Damage {
    Truncate(u16),
    Flip(u16, u8),
    Append(Vec<u8>),
    Insert(u16, Vec<u8>),
}

#[derive(Arbitrary, Debug)]
struct Dir {
    /// Raw `key.json` instead of the valid one.
    key_json: Option<Vec<u8>>,
    meta: MetaChoice,
    streams: Vec<DirStream>,
    /// Extra directory entries: names ending in `.enc` that are not stream names, symlinks…
    junk: Vec<Junk>,
}

#[derive(Arbitrary, Debug)]
enum MetaChoice {
    Absent,
    /// Sealed raw JSON bytes.
    Raw(SealedFileBody),
    /// A metadata document built from the streams, with optional lies.
    Built {
        wrong_recording: bool,
        wrong_kek: bool,
        wrong_time: bool,
        /// Per stream: list it, with a digest (possibly wrong).
        listed: Vec<(bool, Option<bool>)>,
        extra_listed: Option<String>,
        truncate_file: Option<u16>,
    },
}

#[derive(Arbitrary, Debug)]
struct SealedFileBody {
    chunk_size: u8,
    json: Vec<u8>,
}

#[derive(Arbitrary, Debug)]
struct DirStream {
    /// Index into a few valid names; out of range = an invalid name.
    name: u8,
    file: SealedFile,
}

#[derive(Arbitrary, Debug)]
enum Junk {
    File(String, Vec<u8>),
    Dir(String),
    Symlink(String),
}

fn kek_cipher() -> Aes256Gcm {
    Aes256Gcm::new(&KEK_BYTES.into())
}

/// `key.json` wrapping [`DATA_KEY`] for [`RECORDING`] (keys.rs `wrap_aad`, recording-format.md).
fn valid_key_file() -> KeyFile {
    let mut aad = b"bedside-recording-key\x00\x01".to_vec();
    aad.extend_from_slice(&RECORDING);
    aad.push(KEK_ID.len() as u8);
    aad.extend_from_slice(KEK_ID.as_bytes());
    aad.extend_from_slice(&CREATED_UNIX_MS.to_be_bytes());
    let mut wrapped = DATA_KEY;
    let tag = kek_cipher()
        .encrypt_inout_detached(&Nonce::<Aes256Gcm>::from(WRAP_NONCE), &aad, (&mut wrapped[..]).into())
        .expect("AES-GCM seals 32 bytes");
    let mut out = wrapped.to_vec();
    out.extend_from_slice(&tag);
    KeyFile {
        format: 1,
        alg: KEY_WRAP_ALG.to_owned(),
        recording: RecordingId::from_bytes(RECORDING).to_string(),
        kek_id: KEK_ID.to_owned(),
        created_unix_ms: CREATED_UNIX_MS,
        nonce: hex(&WRAP_NONCE),
        wrapped_key: hex(&out),
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

struct Fixed {
    keyring: Keyring,
    key: DataKey,
    key_json: Vec<u8>,
    scratch: PathBuf,
}

fn fixed() -> &'static Fixed {
    static F: OnceLock<Fixed> = OnceLock::new();
    F.get_or_init(|| {
        let keyring = Keyring::new(Kek::new(KEK_ID, KEK_BYTES).expect("valid KEK id"));
        let key_file = valid_key_file();
        let key = keyring
            .unwrap(&key_file, RecordingId::from_bytes(RECORDING))
            .expect("the harness wraps the data key like keys.rs does");
        let key_json = serde_json::to_vec(&key_file).expect("KeyFile serializes");
        // tmpfs when there is one: every run writes a few files.
        let base = if Path::new("/dev/shm").is_dir() {
            PathBuf::from("/dev/shm")
        } else {
            std::env::temp_dir()
        };
        let scratch = base.join(format!("bedside-fuzz-recording-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&scratch);
        std::fs::create_dir_all(&scratch).expect("scratch directory");
        Fixed {
            keyring,
            key,
            key_json,
            scratch,
        }
    })
}

/// A sealed file and, when it is well-formed and undamaged, the plaintext it must read as.
fn seal(spec: &SealedFile, stream: &str) -> (Vec<u8>, Option<Vec<u8>>) {
    let chunk_size = spec
        .chunk_size_override
        .unwrap_or(u32::from(spec.chunk_size % 64) + 1);
    let name: &[u8] = spec.name.as_deref().unwrap_or(stream.as_bytes());
    let mut fields = b"BDSREC".to_vec();
    fields.push(spec.version.unwrap_or(1));
    fields.push(spec.alg.unwrap_or(1));
    fields.extend_from_slice(&chunk_size.to_be_bytes());
    fields.extend_from_slice(&spec.file_no.to_be_bytes());
    fields.extend_from_slice(if spec.other_recording {
        &OTHER_RECORDING
    } else {
        &RECORDING
    });
    fields.push(name.len() as u8);
    fields.extend_from_slice(name);
    let cipher = Aes256Gcm::new(&DATA_KEY.into());
    let nonce = |index: u64| {
        let mut n = [0u8; 12];
        n[..4].copy_from_slice(&spec.file_no.to_be_bytes());
        n[4..].copy_from_slice(&index.to_be_bytes());
        Nonce::<Aes256Gcm>::from(n)
    };
    let mut header_tag = cipher
        .encrypt_inout_detached(&nonce(u64::MAX), &fields, (&mut [][..]).into())
        .expect("AES-GCM seals an empty message");
    if spec.bad_header_tag {
        header_tag[0] ^= 1;
    }
    let mut file = fields.clone();
    file.extend_from_slice(&header_tag);

    let cs = chunk_size as usize;
    let mut well_formed = spec.version.is_none_or(|v| v == 1)
        && spec.alg.is_none_or(|a| a == 1)
        && (1..=bedside_recording::MAX_CHUNK_SIZE).contains(&chunk_size)
        && spec.file_no != 0
        && !spec.other_recording
        && name == stream.as_bytes()
        && !spec.bad_header_tag
        && spec.damage.is_empty()
        && spec.chunks.last().is_some_and(|c| c.last);
    let mut plaintext = Vec::new();
    for (i, chunk) in spec.chunks.iter().enumerate() {
        let index = chunk.index_override.unwrap_or(i as u64);
        let mut aad = fields.clone();
        aad.extend_from_slice(&index.to_be_bytes());
        aad.push(u8::from(chunk.last));
        let mut buf = chunk.plaintext.clone();
        let mut tag = cipher
            .encrypt_inout_detached(&nonce(index), &aad, (&mut buf[..]).into())
            .expect("AES-GCM seals a short message");
        if chunk.bad_tag {
            tag[15] ^= 0x80;
        }
        let final_position = i + 1 == spec.chunks.len();
        let size_ok = if chunk.last {
            chunk.plaintext.len() < cs
        } else {
            chunk.plaintext.len() == cs
        };
        well_formed &= index == i as u64 && !chunk.bad_tag && size_ok && chunk.last == final_position;
        plaintext.extend_from_slice(&chunk.plaintext);
        file.extend_from_slice(&buf);
        file.extend_from_slice(&tag);
    }
    for d in &spec.damage {
        match d {
            Damage::Truncate(n) => file.truncate(usize::from(*n)),
            Damage::Flip(at, mask) => {
                if !file.is_empty() {
                    let at = usize::from(*at) % file.len();
                    file[at] ^= mask;
                }
            }
            Damage::Append(bytes) => file.extend_from_slice(bytes),
            Damage::Insert(at, bytes) => {
                let at = usize::from(*at).min(file.len());
                file.splice(at..at, bytes.iter().copied());
            }
        }
    }
    (file, well_formed.then_some(plaintext))
}

/// Reads every chunk of `path` as stream `stream`; the plaintext if it read to a clean end.
fn read_stream(path: &Path, stream: &str) -> Result<Vec<u8>, FormatError> {
    let file = File::open(path).expect("the harness just wrote this file");
    let mut reader = EncryptedReader::from_file(file, path.to_path_buf(), stream, &fixed().key)?;
    let mut out = Vec::new();
    loop {
        match reader.next_chunk() {
            Ok(Some(chunk)) => out.extend_from_slice(&chunk),
            Ok(None) => break,
            Err(e) => {
                let _ = e.to_string();
                let _ = e.is_truncation();
                // After an error the reader is finished.
                assert!(matches!(reader.next_chunk(), Ok(None)));
                return Err(e);
            }
        }
    }
    assert_eq!(reader.bytes_read(), out.len() as u64);
    assert!(matches!(reader.next_chunk(), Ok(None)));
    Ok(out)
}

fn stream_file(bytes: &[u8], check: Option<&[u8]>) {
    let path = fixed().scratch.join(format!("{STREAM}.enc"));
    std::fs::write(&path, bytes).expect("scratch write");
    let result = read_stream(&path, STREAM);
    if let Some(expected) = check {
        match result {
            Ok(plain) => assert!(plain == expected, "well-formed file read back differently"),
            Err(e) => panic!("well-formed file refused: {e}"),
        }
    }
}

const NAMES: [&str; 4] = ["p1-audio.wav", "p2-video.ivf", "p3-screen.ivf", "notes.txt"];

fn directory(dir: &Dir) {
    let f = fixed();
    let root = f.scratch.join("root");
    let _ = std::fs::remove_dir_all(&root);
    let id = RecordingId::from_bytes(RECORDING);
    let rec_dir = root.join(id.to_string());
    std::fs::create_dir_all(&rec_dir).expect("scratch directory");
    std::fs::write(
        rec_dir.join(KEY_FILE),
        dir.key_json.as_deref().unwrap_or(&f.key_json),
    )
    .expect("scratch write");

    let mut written: Vec<(String, Vec<u8>, Option<Vec<u8>>)> = Vec::new();
    for s in dir.streams.iter().take(4) {
        let name = NAMES
            .get(usize::from(s.name))
            .copied()
            .unwrap_or("..bad name");
        let (bytes, plain) = seal(&s.file, name);
        if std::fs::write(rec_dir.join(format!("{name}.enc")), &bytes).is_ok() {
            written.push((name.to_owned(), bytes, plain));
        }
    }
    for j in dir.junk.iter().take(3) {
        let clean = |n: &str| n.replace(['/', '\0'], "_");
        let _ = match j {
            Junk::File(n, b) => std::fs::write(rec_dir.join(clean(n)), b),
            Junk::Dir(n) => std::fs::create_dir(rec_dir.join(clean(n))),
            Junk::Symlink(n) => {
                std::os::unix::fs::symlink(rec_dir.join(KEY_FILE), rec_dir.join(clean(n)))
            }
        };
    }

    let meta_path = rec_dir.join(format!("{META_STREAM}.enc"));
    let meta_file = |chunk_size: u8, json: &[u8], truncate: Option<u16>| {
        // Chunks of `chunk_size`, the last one short (possibly empty).
        let cs = usize::from(chunk_size % 64) + 1;
        let mut chunks: Vec<ChunkSpec> = json
            .chunks(cs)
            .map(|c| ChunkSpec {
                plaintext: c.to_vec(),
                last: false,
                index_override: None,
                bad_tag: false,
            })
            .collect();
        if chunks.last().is_some_and(|c| c.plaintext.len() == cs) || chunks.is_empty() {
            chunks.push(ChunkSpec {
                plaintext: Vec::new(),
                last: true,
                index_override: None,
                bad_tag: false,
            });
        } else if let Some(c) = chunks.last_mut() {
            c.last = true;
        }
        let spec = SealedFile {
            version: None,
            alg: None,
            chunk_size,
            chunk_size_override: None,
            file_no: 7,
            other_recording: false,
            name: None,
            bad_header_tag: false,
            chunks,
            damage: truncate.map(Damage::Truncate).into_iter().collect(),
        };
        let (bytes, _) = seal(&spec, META_STREAM);
        std::fs::write(&meta_path, bytes).expect("scratch write");
    };
    match &dir.meta {
        MetaChoice::Absent => {}
        MetaChoice::Raw(body) => meta_file(body.chunk_size, &body.json, None),
        MetaChoice::Built {
            wrong_recording,
            wrong_kek,
            wrong_time,
            listed,
            extra_listed,
            truncate_file,
        } => {
            let mut streams = Vec::new();
            for (i, (name, _, plain)) in written.iter().enumerate() {
                let (list, digest) = listed.get(i).copied().unwrap_or((true, Some(true)));
                if !list {
                    continue;
                }
                let finished = digest.map(|right| {
                    let plain = plain.as_deref().unwrap_or(b"");
                    let mut sha = hex(&Sha256::digest(plain));
                    if !right {
                        sha.replace_range(0..1, "x");
                    }
                    StreamDigest {
                        bytes: plain.len() as u64,
                        chunks: 0,
                        sha256: sha,
                    }
                });
                streams.push(StreamEntry {
                    name: name.clone(),
                    finished,
                });
            }
            if let Some(extra) = extra_listed {
                streams.push(StreamEntry {
                    name: extra.clone(),
                    finished: None,
                });
            }
            let meta = Metadata {
                format: 1,
                recording_id: RecordingId::from_bytes(if *wrong_recording {
                    OTHER_RECORDING
                } else {
                    RECORDING
                })
                .to_string(),
                visit_id: "visit-1".into(),
                kek_id: if *wrong_kek { "other" } else { KEK_ID }.into(),
                created_unix_ms: CREATED_UNIX_MS + u64::from(*wrong_time),
                info: RecordingInfo::default(),
                streams,
            };
            let json = serde_json::to_vec(&meta).expect("Metadata serializes");
            meta_file(16, &json, *truncate_file);
        }
    }

    let Ok(rec) = Recording::open(&root, &id, &f.keyring) else {
        return;
    };
    let _ = rec.key_file();
    if let Ok(report) = rec.verify() {
        let _ = report.is_complete();
        for check in &report.streams {
            // verify() accepted every stream: reading it again gives the same length.
            let mut reader = rec.open_stream(&check.name).expect("verified stream opens");
            let mut bytes = 0u64;
            loop {
                match reader.next_chunk() {
                    Ok(Some(c)) => bytes += c.len() as u64,
                    Ok(None) => break,
                    Err(e) => {
                        assert!(e.is_truncation(), "verified stream fails on re-read: {e}");
                        break;
                    }
                }
            }
            assert_eq!(bytes, check.bytes);
        }
    }
    let _ = rec.metadata();
    let _ = rec.stream_names();
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    match mode % MODES {
        0 => stream_file(rest, None),
        1 => {
            if let Ok(spec) = SealedFile::arbitrary_take_rest(Unstructured::new(rest)) {
                let (bytes, plain) = seal(&spec, STREAM);
                stream_file(&bytes, plain.as_deref());
            }
        }
        2 => {
            if let Ok(key_file) = serde_json::from_slice::<KeyFile>(rest) {
                let f = fixed();
                let _ = f.keyring.unwrap(&key_file, RecordingId::from_bytes(RECORDING));
                if let Ok(id) = RecordingId::parse(&key_file.recording) {
                    let _ = f.keyring.unwrap(&key_file, id);
                }
            }
        }
        3 => {
            if let Ok(meta) = serde_json::from_slice::<Metadata>(rest) {
                let again = serde_json::to_vec(&meta).expect("Metadata serializes");
                let back: Metadata = serde_json::from_slice(&again).expect("round trip");
                assert_eq!(back, meta);
            }
        }
        _ => {
            if let Ok(dir) = Dir::arbitrary_take_rest(Unstructured::new(rest)) {
                directory(&dir);
            }
        }
    }
});
