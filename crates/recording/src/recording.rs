//! A whole recording: `<root>/<id>/key.json`, one `<stream>.enc` per stream, `meta.json.enc`.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use sha2::{Digest, Sha256};

use crate::format::FormatError;
use crate::fsutil;
use crate::id::{check_stream_name, InvalidName, RecordingId, META_STREAM};
use crate::keys::{hex, DataKey, KeyError, KeyFile, Keyring};
use crate::meta::{Metadata, RecordingInfo, StreamDigest, StreamEntry};
use crate::reader::EncryptedReader;
use crate::writer::{EncryptedWriter, Registry, WriterOptions};

/// The file holding the wrapped data key.
pub const KEY_FILE: &str = "key.json";

/// Why a recording could not be written, opened or verified.
#[derive(Debug, thiserror::Error)]
pub enum RecordingError {
    #[error(transparent)]
    InvalidName(#[from] InvalidName),
    #[error(transparent)]
    Key(#[from] KeyError),
    #[error(transparent)]
    Format(#[from] FormatError),
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("recording {0} already exists")]
    AlreadyExists(RecordingId),
    #[error("no recording {id} in {}", root.display())]
    NotFound { id: RecordingId, root: PathBuf },
    #[error("visit id must be 1 to 256 bytes without control characters")]
    InvalidVisitId,
    #[error("stream `{0}` was already added to this recording")]
    DuplicateStream(String),
    #[error("track names stream `{0}`, which this recording does not have")]
    UnknownTrackStream(String),
    #[error("{} is not a recording stream file", path.display())]
    UnexpectedFile { path: PathBuf },
    #[error("metadata cannot be parsed: {0}")]
    BadMetadata(String),
    #[error("metadata does not match key.json: {0}")]
    MetadataMismatch(&'static str),
    #[error("stream `{0}` is listed in the metadata but its file is missing")]
    StreamMissing(String),
    #[error("stream `{0}` is not listed in the metadata")]
    UnlistedStream(String),
    /// The metadata says the stream was finished, but its file ends early or its last chunk
    /// does not authenticate.
    #[error(
        "stream `{name}` was finished with {expected_bytes} bytes but only {found_bytes} \
         authentic bytes remain: its file was cut short or its end altered"
    )]
    StreamDamaged {
        name: String,
        expected_bytes: u64,
        found_bytes: u64,
    },
    #[error("stream `{name}` does not match the length or SHA-256 in the metadata")]
    DigestMismatch { name: String },
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> RecordingError + '_ {
    move |source| RecordingError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Milliseconds since the Unix epoch, now.
pub fn now_unix_ms() -> u64 {
    let since = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    u64::try_from(since.as_millis()).unwrap_or(u64::MAX)
}

/// Writes one recording. Create it, add one stream per track (each an [`EncryptedWriter`] that
/// can move to its own task or thread), finish each stream, then [`RecordingWriter::finish`]
/// with what the recorder knows about the visit; it writes `meta.json.enc` holding the digest
/// of every stream.
#[derive(Debug)]
pub struct RecordingWriter {
    dir: PathBuf,
    id: RecordingId,
    visit_id: String,
    kek_id: String,
    created_unix_ms: u64,
    key: DataKey,
    streams: Registry,
}

impl RecordingWriter {
    /// Creates `<root>/<recording_id>/` (root is created if missing; the recording directory
    /// must not exist), a fresh data key, and `key.json` wrapped with the keyring's current KEK.
    pub fn create(
        root: &Path,
        recording_id: &RecordingId,
        visit_id: &str,
        keyring: &Keyring,
    ) -> Result<RecordingWriter, RecordingError> {
        RecordingWriter::create_at(root, recording_id, visit_id, keyring, now_unix_ms())
    }

    /// [`RecordingWriter::create`] with an explicit creation time (retention counts from it).
    pub fn create_at(
        root: &Path,
        recording_id: &RecordingId,
        visit_id: &str,
        keyring: &Keyring,
        created_unix_ms: u64,
    ) -> Result<RecordingWriter, RecordingError> {
        if visit_id.is_empty() || visit_id.len() > 256 || visit_id.chars().any(char::is_control) {
            return Err(RecordingError::InvalidVisitId);
        }
        fsutil::create_private_dirs(root).map_err(io_err(root))?;
        let dir = root.join(recording_id.to_string());
        match fsutil::create_private_dir(&dir) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                return Err(RecordingError::AlreadyExists(*recording_id))
            }
            Err(e) => return Err(io_err(&dir)(e)),
        }
        fsutil::sync_dir(root).map_err(io_err(root))?;
        let key = DataKey::generate(*recording_id);
        let key_file = keyring.wrap(&key, created_unix_ms);
        let path = dir.join(KEY_FILE);
        let mut json = serde_json::to_vec_pretty(&key_file).expect("KeyFile serializes");
        json.push(b'\n');
        let mut file = fsutil::create_new_private(&path).map_err(io_err(&path))?;
        file.write_all(&json).map_err(io_err(&path))?;
        file.sync_all().map_err(io_err(&path))?;
        fsutil::sync_dir(&dir).map_err(io_err(&dir))?;
        Ok(RecordingWriter {
            dir,
            id: *recording_id,
            visit_id: visit_id.to_owned(),
            kek_id: keyring.current_id().to_owned(),
            created_unix_ms,
            key,
            streams: Arc::new(Mutex::new(BTreeMap::new())),
        })
    }

    pub fn id(&self) -> RecordingId {
        self.id
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Starts a stream `<name>.enc` (e.g. `p7-audio.wav`, `p7-video.ivf`) with 64 KiB chunks,
    /// synced per chunk.
    pub fn add_stream(&self, name: &str) -> Result<EncryptedWriter, RecordingError> {
        self.add_stream_with(name, WriterOptions::default())
    }

    pub fn add_stream_with(
        &self,
        name: &str,
        options: WriterOptions,
    ) -> Result<EncryptedWriter, RecordingError> {
        check_stream_name(name)?;
        if name == META_STREAM {
            return Err(InvalidName::Reserved(META_STREAM).into());
        }
        {
            let mut streams = self.streams.lock().unwrap_or_else(|p| p.into_inner());
            if streams.contains_key(name) {
                return Err(RecordingError::DuplicateStream(name.to_owned()));
            }
            streams.insert(name.to_owned(), None);
        }
        let created = EncryptedWriter::create_with(&self.dir, name, &self.key, options);
        match created {
            Ok(mut writer) => {
                writer.register_in(Arc::clone(&self.streams));
                Ok(writer)
            }
            Err(e) => {
                let mut streams = self.streams.lock().unwrap_or_else(|p| p.into_inner());
                streams.remove(name);
                Err(e.into())
            }
        }
    }

    /// Writes `meta.json.enc`: the visit, `info`, the key id, and every stream added (with
    /// length and SHA-256 for those finished; streams still open are listed as unfinished).
    /// Every track must name a stream of this recording.
    pub fn finish(self, info: RecordingInfo) -> Result<Metadata, RecordingError> {
        let streams: Vec<StreamEntry> = {
            let streams = self.streams.lock().unwrap_or_else(|p| p.into_inner());
            streams
                .iter()
                .map(|(name, summary)| StreamEntry {
                    name: name.clone(),
                    finished: summary.as_ref().map(StreamDigest::from),
                })
                .collect()
        };
        for track in &info.tracks {
            if !streams.iter().any(|s| s.name == track.file) {
                return Err(RecordingError::UnknownTrackStream(track.file.clone()));
            }
        }
        let meta = Metadata {
            format: 1,
            recording_id: self.id.to_string(),
            visit_id: self.visit_id.clone(),
            kek_id: self.kek_id.clone(),
            created_unix_ms: self.created_unix_ms,
            info,
            streams,
        };
        let json =
            zeroize::Zeroizing::new(serde_json::to_vec_pretty(&meta).expect("Metadata serializes"));
        let mut writer = EncryptedWriter::create(&self.dir, META_STREAM, &self.key)?;
        writer.write_all(&json)?;
        writer.finish()?;
        Ok(meta)
    }
}

/// The state of a recording's `meta.json.enc`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MetadataState {
    /// Written by [`RecordingWriter::finish`] and intact.
    Finished(Box<Metadata>),
    /// No metadata: the recorder stopped before finishing (crash, `kill -9`).
    Missing,
    /// The metadata file itself was cut short (crash while finishing).
    Truncated,
}

/// A recording opened for reading, its data key unwrapped.
#[derive(Debug)]
pub struct Recording {
    dir: PathBuf,
    id: RecordingId,
    key: DataKey,
    key_file: KeyFile,
}

/// Reads `<root>/<id>/key.json` without unwrapping it. The recording directory must be a real
/// directory (not a symlink).
pub fn read_key_file(root: &Path, id: &RecordingId) -> Result<KeyFile, RecordingError> {
    let dir = root.join(id.to_string());
    match std::fs::symlink_metadata(&dir) {
        Ok(m) if m.is_dir() => {}
        Ok(_) => {
            return Err(RecordingError::NotFound {
                id: *id,
                root: root.to_path_buf(),
            })
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(RecordingError::NotFound {
                id: *id,
                root: root.to_path_buf(),
            })
        }
        Err(e) => return Err(io_err(&dir)(e)),
    }
    let path = dir.join(KEY_FILE);
    let text = std::fs::read(&path).map_err(io_err(&path))?;
    if text.len() > 4096 {
        return Err(KeyError::BadKeyFile("larger than 4 KiB".into()).into());
    }
    serde_json::from_slice(&text).map_err(|e| KeyError::BadKeyFile(e.to_string()).into())
}

/// What [`Recording::verify`] found for one stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamCheck {
    pub name: String,
    /// Authentic plaintext bytes.
    pub bytes: u64,
    /// Authentic chunks.
    pub chunks: u64,
    /// SHA-256 of the authentic plaintext, hex.
    pub sha256: String,
    /// `Some(trailing_bytes)` if the stream has no final chunk (the writer stopped).
    pub truncated: Option<u64>,
}

/// What [`Recording::verify`] found: everything authentic; possibly truncated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifyReport {
    pub recording: RecordingId,
    pub kek_id: String,
    pub metadata: MetadataState,
    pub streams: Vec<StreamCheck>,
}

impl VerifyReport {
    /// Finished metadata and every stream complete.
    pub fn is_complete(&self) -> bool {
        matches!(self.metadata, MetadataState::Finished(_))
            && self.streams.iter().all(|s| s.truncated.is_none())
    }
}

impl Recording {
    /// Opens `<root>/<id>/`, reads `key.json` and unwraps the data key with the KEK it names.
    pub fn open(
        root: &Path,
        id: &RecordingId,
        keyring: &Keyring,
    ) -> Result<Recording, RecordingError> {
        let key_file = read_key_file(root, id)?;
        let key = keyring.unwrap(&key_file, *id)?;
        Ok(Recording {
            dir: root.join(id.to_string()),
            id: *id,
            key,
            key_file,
        })
    }

    pub fn id(&self) -> RecordingId {
        self.id
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn key_file(&self) -> &KeyFile {
        &self.key_file
    }

    /// Names of the media streams present (every `<name>.enc` but `meta.json.enc`), sorted.
    /// Any other `.enc` file, or a directory or symlink named `.enc`, is an error.
    pub fn stream_names(&self) -> Result<Vec<String>, RecordingError> {
        let mut names = Vec::new();
        for entry in std::fs::read_dir(&self.dir).map_err(io_err(&self.dir))? {
            let entry = entry.map_err(io_err(&self.dir))?;
            let file_name = entry.file_name();
            let Some(stem) = file_name.to_str().and_then(|n| n.strip_suffix(".enc")) else {
                continue;
            };
            let path = entry.path();
            let is_file = entry.file_type().map_err(io_err(&path))?.is_file();
            if check_stream_name(stem).is_err() || !is_file {
                return Err(RecordingError::UnexpectedFile { path });
            }
            if stem != META_STREAM {
                names.push(stem.to_owned());
            }
        }
        names.sort();
        Ok(names)
    }

    pub fn open_stream(&self, name: &str) -> Result<EncryptedReader, RecordingError> {
        Ok(EncryptedReader::open(&self.dir, name, &self.key)?)
    }

    /// Reads and checks `meta.json.enc`.
    pub fn metadata(&self) -> Result<MetadataState, RecordingError> {
        if !self.dir.join(format!("{META_STREAM}.enc")).exists() {
            return Ok(MetadataState::Missing);
        }
        let read = EncryptedReader::open(&self.dir, META_STREAM, &self.key)
            .and_then(EncryptedReader::read_to_end);
        let json = match read {
            Ok(json) => zeroize::Zeroizing::new(json),
            Err(e) if e.is_truncation() => return Ok(MetadataState::Truncated),
            Err(e) => return Err(e.into()),
        };
        let meta: Metadata = serde_json::from_slice(&json)
            .map_err(|e| RecordingError::BadMetadata(e.to_string()))?;
        if meta.recording_id != self.id.to_string() {
            return Err(RecordingError::MetadataMismatch("recording id"));
        }
        if meta.kek_id != self.key_file.kek_id {
            return Err(RecordingError::MetadataMismatch("key id"));
        }
        if meta.created_unix_ms != self.key_file.created_unix_ms {
            return Err(RecordingError::MetadataMismatch("creation time"));
        }
        Ok(MetadataState::Finished(Box::new(meta)))
    }

    /// Authenticates every chunk of every stream and the metadata, and checks each finished
    /// stream's length and SHA-256 against the metadata. Writes nothing.
    ///
    /// `Ok` means everything present is authentic; truncation (a recorder that stopped
    /// without finishing) is reported in the result. Tampering, a wrong key, a stream cut
    /// short after it was finished, or a digest mismatch is an `Err`.
    pub fn verify(&self) -> Result<VerifyReport, RecordingError> {
        let metadata = self.metadata()?;
        let names = self.stream_names()?;
        let listed: Option<BTreeMap<&str, Option<&StreamDigest>>> = match &metadata {
            MetadataState::Finished(meta) => Some(
                meta.streams
                    .iter()
                    .map(|s| (s.name.as_str(), s.finished.as_ref()))
                    .collect(),
            ),
            _ => None,
        };
        if let Some(listed) = &listed {
            let present: BTreeSet<&str> = names.iter().map(String::as_str).collect();
            if let Some(missing) = listed.keys().find(|n| !present.contains(*n)) {
                return Err(RecordingError::StreamMissing((*missing).to_owned()));
            }
            if let Some(extra) = present.iter().find(|n| !listed.contains_key(*n)) {
                return Err(RecordingError::UnlistedStream((*extra).to_owned()));
            }
        }
        let mut streams = Vec::with_capacity(names.len());
        for name in names {
            let check = self.check_stream(&name)?;
            let expected = listed.as_ref().and_then(|l| l.get(name.as_str()).copied());
            if let Some(Some(digest)) = expected {
                if check.truncated.is_some() {
                    return Err(RecordingError::StreamDamaged {
                        name,
                        expected_bytes: digest.bytes,
                        found_bytes: check.bytes,
                    });
                }
                if digest.bytes != check.bytes || digest.sha256 != check.sha256 {
                    return Err(RecordingError::DigestMismatch { name });
                }
            }
            streams.push(check);
        }
        Ok(VerifyReport {
            recording: self.id,
            kek_id: self.key_file.kek_id.clone(),
            metadata,
            streams,
        })
    }

    fn check_stream(&self, name: &str) -> Result<StreamCheck, RecordingError> {
        let mut reader = self.open_stream(name)?;
        let mut sha = Sha256::new();
        let truncated = loop {
            match reader.next_chunk() {
                Ok(Some(chunk)) => sha.update(zeroize::Zeroizing::new(chunk).as_slice()),
                Ok(None) => break None,
                Err(FormatError::Truncated { trailing_bytes, .. }) => break Some(trailing_bytes),
                Err(e) => return Err(e.into()),
            }
        };
        Ok(StreamCheck {
            name: name.to_owned(),
            bytes: reader.bytes_read(),
            chunks: reader.chunks_read(),
            sha256: hex(&sha.finalize()),
            truncated,
        })
    }
}
